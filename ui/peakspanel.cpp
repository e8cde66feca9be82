#include "ui/peakspanel.h"

#include <algorithm>
#include <cmath>

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>

#include "core/common/error.h"
#include "core/io/framesource.h"
#include "core/nn/model.h"
#include "ui/framespanel.h"
#include "ui/frameview.h"
#include "ui/job.h"
#include "ui/studiocontext.h"

namespace braggnac::ui {

namespace {

// Fits (when asked) and predicts (when a model is given) every peak of `r`, in place.
void completeResults(PeakResults &r, bool fit, const std::shared_ptr<const core::Model> &model,
                     const core::Monitor &monitor, double from)
{
    r.normalise();
    const std::size_t n = r.size();
    if (n == 0)
        return;
    if (fit) {
        monitor.report(from, "fitting " + std::to_string(n) + " peaks");
        r.fits = core::fitPatches(r.patches, {}, monitor.sub(from, model ? 0.95 : 1.0));
        r.fitted.assign(n, 1);
    }
    monitor.check();
    if (model) {
        monitor.report(0.95, "predicting centres");
        r.predictions = model->predict(r.patches.patches.data(), n);
    }
}

} // namespace

PeaksPanel::PeaksPanel(StudioContext *context, FramesPanel *frames, FrameView *view, QWidget *parent)
    : QWidget(parent), m_context(context), m_frames(frames), m_view(view),
      m_model(new PeakTableModel(this)), m_proxy(new PeakFilterProxy(this)),
      m_findJob(new Job(tr("Finding peaks"), this)), m_fitJob(new Job(tr("Fitting peaks"), this)),
      m_predictJob(new Job(tr("Predicting centres"), this))
{
    setObjectName(QStringLiteral("peaksPanel"));
    m_proxy->setSourceModel(m_model);
    buildUi();
    loadSettings();
    applyOverlayOptions();

    for (Job *job : jobs()) {
        connect(job, &Job::finished, this, [this]() {
            auto done = std::move(m_onFinished);
            m_onFinished = nullptr;
            if (done)
                done();
            onJobEnded();
        });
        connect(job, &Job::failed, this, [this]() { m_onFinished = nullptr; onJobEnded(); });
        connect(job, &Job::cancelled, this, [this]() { m_onFinished = nullptr; onJobEnded(); });
    }
    connect(m_frames, &FramesPanel::frameShown, this, &PeaksPanel::onFrameShown);
    connect(m_frames, &FramesPanel::maxShown, this, &PeaksPanel::updateMarkers);
    connect(m_frames, &FramesPanel::darkChanged, this, &PeaksPanel::clearPeaks);
    connect(m_context, &StudioContext::framesChanged, this, [this]() {
        clearPeaks();
        updateControls();
    });
    connect(m_context, &StudioContext::modelChanged, this, [this]() {
        if (!m_context->model()) {
            m_model->setPredictions({});
            updateMarkers();
            Q_EMIT resultsChanged();
        } else if (m_model->peakCount() > 0) {
            if (isBusy())
                m_predictPending = true;
            else
                predict();
        }
        updateControls();
    });
    connect(m_model, &QAbstractItemModel::modelReset, this, &PeaksPanel::updateMarkers);
    connect(m_model, &QAbstractItemModel::dataChanged, this, &PeaksPanel::updateMarkers);
    updateControls();
}

PeaksPanel::~PeaksPanel() = default;

void PeaksPanel::buildUi()
{
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 6, 6, 6);

    auto *finderBox = new QGroupBox(tr("Finder"), this);
    auto *form = new QFormLayout(finderBox);
    m_thresholdMode = new QComboBox(finderBox);
    m_thresholdMode->setObjectName(QStringLiteral("thresholdMode"));
    m_thresholdMode->addItem(tr("Automatic: median + k·σ"), QStringLiteral("auto"));
    m_thresholdMode->addItem(tr("Absolute (counts)"), QStringLiteral("absolute"));
    form->addRow(tr("Threshold"), m_thresholdMode);
    m_sigma = new QDoubleSpinBox(finderBox);
    m_sigma->setObjectName(QStringLiteral("autoSigma"));
    m_sigma->setRange(0.5, 1000);
    m_sigma->setDecimals(1);
    m_sigma->setToolTip(tr("k: the threshold is the background median plus k robust sigmas (1.4826 MAD)"));
    form->addRow(tr("k (σ)"), m_sigma);
    m_threshold = new QDoubleSpinBox(finderBox);
    m_threshold->setObjectName(QStringLiteral("absoluteThreshold"));
    m_threshold->setRange(0, 1e9);
    m_threshold->setDecimals(1);
    m_threshold->setToolTip(tr("Pixels strictly above this value are foreground"));
    form->addRow(tr("Absolute"), m_threshold);
    m_minPixels = new QSpinBox(finderBox);
    m_minPixels->setObjectName(QStringLiteral("minPixels"));
    m_minPixels->setRange(1, 1000000);
    form->addRow(tr("Min pixels"), m_minPixels);
    m_maxPixels = new QSpinBox(finderBox);
    m_maxPixels->setObjectName(QStringLiteral("maxPixels"));
    m_maxPixels->setRange(1, 100000000);
    form->addRow(tr("Max pixels"), m_maxPixels);
    m_patchSize = new QSpinBox(finderBox);
    m_patchSize->setObjectName(QStringLiteral("patchSize"));
    m_patchSize->setRange(3, 99);
    m_patchSize->setSingleStep(2);
    m_patchSize->setToolTip(tr("Side of the square patch cut around each peak (odd)"));
    form->addRow(tr("Patch size"), m_patchSize);
    m_maskOthers = new QCheckBox(tr("Mask other peaks inside a patch"), finderBox);
    m_maskOthers->setObjectName(QStringLiteral("maskOthers"));
    form->addRow(m_maskOthers);
    layout->addWidget(finderBox);

    auto *runBox = new QGroupBox(tr("Run"), this);
    auto *run = new QVBoxLayout(runBox);
    m_findCurrent = new QPushButton(QIcon(QStringLiteral(":/braggnac/icons/find.svg")), tr("Find in current frame"), runBox);
    m_findCurrent->setObjectName(QStringLiteral("findCurrent"));
    m_findCurrent->setToolTip(tr("Find peaks in the frame shown (Ctrl+F)"));
    run->addWidget(m_findCurrent);
    m_autoFind = new QCheckBox(tr("Find on every frame shown"), runBox);
    m_autoFind->setObjectName(QStringLiteral("autoFind"));
    run->addWidget(m_autoFind);
    auto *rangeRow = new QHBoxLayout;
    rangeRow->addWidget(new QLabel(tr("Frames"), runBox));
    m_firstFrame = new QSpinBox(runBox);
    m_firstFrame->setObjectName(QStringLiteral("rangeFirst"));
    m_lastFrame = new QSpinBox(runBox);
    m_lastFrame->setObjectName(QStringLiteral("rangeLast"));
    m_lastFrame->setToolTip(tr("Last frame (inclusive)"));
    rangeRow->addWidget(m_firstFrame);
    rangeRow->addWidget(new QLabel(QStringLiteral("–"), runBox));
    rangeRow->addWidget(m_lastFrame);
    m_findRange = new QPushButton(tr("Find"), runBox);
    m_findRange->setObjectName(QStringLiteral("findRange"));
    m_findRange->setToolTip(tr("Find peaks in every frame of the range (Ctrl+Shift+F)"));
    rangeRow->addWidget(m_findRange);
    run->addLayout(rangeRow);
    m_fitAfter = new QCheckBox(tr("Fit pseudo-Voigt after finding"), runBox);
    m_fitAfter->setObjectName(QStringLiteral("fitAfterFind"));
    run->addWidget(m_fitAfter);
    auto *actionRow = new QHBoxLayout;
    m_fit = new QPushButton(QIcon(QStringLiteral(":/braggnac/icons/fit.svg")), tr("Fit peaks"), runBox);
    m_fit->setObjectName(QStringLiteral("fitPeaks"));
    m_fit->setToolTip(tr("Fit a 2-D pseudo-Voigt to every peak not fitted yet (Ctrl+T)"));
    m_clear = new QPushButton(tr("Clear"), runBox);
    m_clear->setObjectName(QStringLiteral("clearPeaks"));
    actionRow->addWidget(m_fit);
    actionRow->addWidget(m_clear);
    run->addLayout(actionRow);
    m_send = new QPushButton(QIcon(QStringLiteral(":/braggnac/icons/dataset.svg")), tr("Use as dataset"), runBox);
    m_send->setObjectName(QStringLiteral("sendToDataset"));
    m_send->setToolTip(tr("Fit what is not fitted yet and make these labelled patches the studio's dataset"));
    run->addWidget(m_send);
    m_summary = new QLabel(runBox);
    m_summary->setObjectName(QStringLiteral("peaksSummary"));
    m_summary->setWordWrap(true);
    run->addWidget(m_summary);
    layout->addWidget(runBox);

    auto *overlayBox = new QGroupBox(tr("Overlays"), this);
    auto *overlay = new QVBoxLayout(overlayBox);
    m_modelLabel = new QLabel(overlayBox);
    m_modelLabel->setObjectName(QStringLiteral("modelInfo"));
    m_modelLabel->setWordWrap(true);
    overlay->addWidget(m_modelLabel);
    m_showBoxes = new QCheckBox(tr("Patch boxes"), overlayBox);
    m_showFit = new QCheckBox(tr("Pseudo-Voigt centres  (+, cyan)"), overlayBox);
    m_showModel = new QCheckBox(tr("Model centres  (×, pink)"), overlayBox);
    m_showVectors = new QCheckBox(tr("Fit → model error vectors"), overlayBox);
    for (QCheckBox *c : {m_showBoxes, m_showFit, m_showModel, m_showVectors})
        overlay->addWidget(c);
    auto *scaleRow = new QHBoxLayout;
    scaleRow->addWidget(new QLabel(tr("Vector scale ×"), overlayBox));
    m_vectorScale = new QDoubleSpinBox(overlayBox);
    m_vectorScale->setObjectName(QStringLiteral("vectorScale"));
    m_vectorScale->setRange(1, 100);
    m_vectorScale->setDecimals(0);
    scaleRow->addWidget(m_vectorScale);
    scaleRow->addStretch();
    overlay->addLayout(scaleRow);
    layout->addWidget(overlayBox);
    layout->addStretch();

    const auto thresholdUi = [this]() {
        const bool automatic = m_thresholdMode->currentData().toString() == QLatin1String("auto");
        m_sigma->setEnabled(automatic);
        m_threshold->setEnabled(!automatic);
    };
    connect(m_thresholdMode, qOverload<int>(&QComboBox::currentIndexChanged), this, thresholdUi);
    thresholdUi();
    for (QDoubleSpinBox *s : {m_sigma, m_threshold})
        connect(s, qOverload<double>(&QDoubleSpinBox::valueChanged), this, &PeaksPanel::saveSettings);
    for (QSpinBox *s : {m_minPixels, m_maxPixels, m_patchSize})
        connect(s, qOverload<int>(&QSpinBox::valueChanged), this, &PeaksPanel::saveSettings);
    connect(m_patchSize, &QSpinBox::editingFinished, this, [this]() {
        if (m_patchSize->value() % 2 == 0)
            m_patchSize->setValue(m_patchSize->value() + 1);
    });
    connect(m_thresholdMode, qOverload<int>(&QComboBox::currentIndexChanged), this, &PeaksPanel::saveSettings);
    for (QCheckBox *c : {m_maskOthers, m_autoFind, m_fitAfter})
        connect(c, &QCheckBox::toggled, this, &PeaksPanel::saveSettings);
    connect(m_autoFind, &QCheckBox::toggled, this, [this](bool on) {
        if (on && m_frames->currentIndex() >= 0 && !m_frames->maxView())
            onFrameShown(m_frames->currentIndex());
    });
    for (QCheckBox *c : {m_showBoxes, m_showFit, m_showModel, m_showVectors})
        connect(c, &QCheckBox::toggled, this, [this]() { applyOverlayOptions(); saveSettings(); });
    connect(m_vectorScale, qOverload<double>(&QDoubleSpinBox::valueChanged), this, [this]() { applyOverlayOptions(); saveSettings(); });
    connect(m_findCurrent, &QPushButton::clicked, this, &PeaksPanel::findInCurrentFrame);
    connect(m_findRange, &QPushButton::clicked, this, [this]() { findInRange(m_firstFrame->value(), m_lastFrame->value() + 1); });
    connect(m_fit, &QPushButton::clicked, this, &PeaksPanel::fitPeaks);
    connect(m_send, &QPushButton::clicked, this, &PeaksPanel::sendToDataset);
    connect(m_clear, &QPushButton::clicked, this, &PeaksPanel::clearPeaks);
    connect(m_firstFrame, qOverload<int>(&QSpinBox::valueChanged), this, [this](int v) {
        if (m_lastFrame->value() < v)
            m_lastFrame->setValue(v);
    });
    connect(m_lastFrame, qOverload<int>(&QSpinBox::valueChanged), this, [this](int v) {
        if (m_firstFrame->value() > v)
            m_firstFrame->setValue(v);
    });
}

void PeaksPanel::loadSettings()
{
    m_loadingSettings = true;
    QSettings s;
    const core::FinderOptions defaults;
    core::FinderOptions o;
    o.threshold = s.value(QStringLiteral("finder/threshold"), defaults.threshold).toDouble();
    o.autoSigma = s.value(QStringLiteral("finder/autoSigma"), defaults.autoSigma).toDouble();
    o.minPixels = s.value(QStringLiteral("finder/minPixels"), defaults.minPixels).toInt();
    o.maxPixels = s.value(QStringLiteral("finder/maxPixels"), defaults.maxPixels).toInt();
    o.patchSize = s.value(QStringLiteral("finder/patchSize"), defaults.patchSize).toInt();
    o.maskOthers = s.value(QStringLiteral("finder/maskOthers"), defaults.maskOthers).toBool();
    setOptions(o);
    if (o.threshold < 0)
        m_threshold->setValue(s.value(QStringLiteral("finder/absoluteValue"), 100.0).toDouble());
    m_autoFind->setChecked(s.value(QStringLiteral("finder/autoFind"), false).toBool());
    m_fitAfter->setChecked(s.value(QStringLiteral("finder/fitAfter"), true).toBool());
    m_showBoxes->setChecked(s.value(QStringLiteral("overlays/boxes"), true).toBool());
    m_showFit->setChecked(s.value(QStringLiteral("overlays/fit"), true).toBool());
    m_showModel->setChecked(s.value(QStringLiteral("overlays/model"), true).toBool());
    m_showVectors->setChecked(s.value(QStringLiteral("overlays/vectors"), true).toBool());
    m_vectorScale->setValue(s.value(QStringLiteral("overlays/vectorScale"), 5.0).toDouble());
    m_loadingSettings = false;
}

void PeaksPanel::saveSettings() const
{
    if (m_loadingSettings)
        return;
    QSettings s;
    const core::FinderOptions o = options();
    s.setValue(QStringLiteral("finder/threshold"), o.threshold);
    s.setValue(QStringLiteral("finder/absoluteValue"), m_threshold->value());
    s.setValue(QStringLiteral("finder/autoSigma"), o.autoSigma);
    s.setValue(QStringLiteral("finder/minPixels"), o.minPixels);
    s.setValue(QStringLiteral("finder/maxPixels"), o.maxPixels);
    s.setValue(QStringLiteral("finder/patchSize"), o.patchSize);
    s.setValue(QStringLiteral("finder/maskOthers"), o.maskOthers);
    s.setValue(QStringLiteral("finder/autoFind"), m_autoFind->isChecked());
    s.setValue(QStringLiteral("finder/fitAfter"), m_fitAfter->isChecked());
    s.setValue(QStringLiteral("overlays/boxes"), m_showBoxes->isChecked());
    s.setValue(QStringLiteral("overlays/fit"), m_showFit->isChecked());
    s.setValue(QStringLiteral("overlays/model"), m_showModel->isChecked());
    s.setValue(QStringLiteral("overlays/vectors"), m_showVectors->isChecked());
    s.setValue(QStringLiteral("overlays/vectorScale"), m_vectorScale->value());
}

core::FinderOptions PeaksPanel::options() const
{
    core::FinderOptions o;
    const bool automatic = m_thresholdMode->currentData().toString() == QLatin1String("auto");
    o.threshold = automatic ? -1.0 : m_threshold->value();
    o.autoSigma = m_sigma->value();
    o.minPixels = m_minPixels->value();
    o.maxPixels = std::max(m_minPixels->value(), m_maxPixels->value());
    o.patchSize = m_patchSize->value() | 1;
    o.maskOthers = m_maskOthers->isChecked();
    return o;
}

void PeaksPanel::setOptions(const core::FinderOptions &o)
{
    m_thresholdMode->setCurrentIndex(o.threshold < 0 ? 0 : 1);
    if (o.threshold >= 0)
        m_threshold->setValue(o.threshold);
    m_sigma->setValue(o.autoSigma);
    m_minPixels->setValue(o.minPixels);
    m_maxPixels->setValue(o.maxPixels);
    m_patchSize->setValue(o.patchSize | 1);
    m_maskOthers->setChecked(o.maskOthers);
}

bool PeaksPanel::autoFind() const
{
    return m_autoFind->isChecked();
}

bool PeaksPanel::fitAfterFind() const
{
    return m_fitAfter->isChecked();
}

void PeaksPanel::setAutoFind(bool on)
{
    m_autoFind->setChecked(on);
}

void PeaksPanel::setFitAfterFind(bool on)
{
    m_fitAfter->setChecked(on);
}

bool PeaksPanel::isBusy() const
{
    return m_findJob->isRunning() || m_fitJob->isRunning() || m_predictJob->isRunning();
}

bool PeaksPanel::modelMatches(QString *why) const
{
    const auto model = m_context->model();
    if (!model)
        return false;
    const int s = m_model->peakCount() > 0 ? m_model->results().patches.patchSize : options().patchSize;
    if (model->spec().inputSize != s) {
        if (why)
            *why = tr("the model takes %1×%1 patches, the peaks have %2×%2").arg(model->spec().inputSize).arg(s);
        return false;
    }
    return true;
}

bool PeaksPanel::startJob(Job *job, std::function<void(const core::Monitor &)> work, std::function<void()> onFinished)
{
    if (isBusy()) {
        Q_EMIT errorOccurred(tr("Peaks: wait for \"%1\" to finish or cancel it").arg(
            m_findJob->isRunning() ? m_findJob->title() : m_fitJob->isRunning() ? m_fitJob->title() : m_predictJob->title()));
        return false;
    }
    m_onFinished = std::move(onFinished);
    job->start(std::move(work));
    Q_EMIT jobStarted(job);
    updateControls();
    return true;
}

void PeaksPanel::onJobEnded()
{
    updateControls();
    if (m_predictPending && !isBusy()) {
        m_predictPending = false;
        if (m_context->model() && m_model->peakCount() > 0)
            predict();
    }
    if (m_autoPending && !isBusy()) {
        m_autoPending = false;
        if (m_frames->currentIndex() >= 0 && !m_frames->maxView())
            onFrameShown(m_frames->currentIndex());
    }
}

void PeaksPanel::publishResults(PeakResults results)
{
    ++m_generation;
    m_model->setResults(std::move(results));
    updateControls();
    Q_EMIT resultsChanged();
}

bool PeaksPanel::findInCurrentFrame()
{
    const auto frame = m_frames->currentFrame();
    const int index = m_frames->currentIndex();
    if (!frame || index < 0) {
        Q_EMIT errorOccurred(tr("Find peaks: no frame is shown; open a frame file first"));
        return false;
    }
    const core::FinderOptions opts = options();
    const bool fit = fitAfterFind();
    const auto model = modelMatches() ? m_context->model() : nullptr;
    auto out = std::make_shared<PeakResults>();
    const int generation = m_generation;
    return startJob(m_findJob, [frame, index, opts, fit, model, out](const core::Monitor &monitor) {
        monitor.report(0, "finding peaks in frame " + std::to_string(index));
        std::vector<float> patches;
        out->peaks = core::findPeaks(*frame, index, opts, &patches);
        out->patches.patchSize = opts.patchSize;
        out->patches.patches = std::move(patches);
        for (const core::Peak &p : out->peaks) {
            out->patches.frameIndex.push_back(p.frame);
            out->patches.origin.push_back(p.originRow);
            out->patches.origin.push_back(p.originCol);
        }
        out->frames = {index};
        monitor.check();
        completeResults(*out, fit, model, monitor, 0.2);
    }, [this, out, generation]() {
        if (generation != m_generation)
            return;
        PeakResults merged = m_model->results();
        merged.merge(std::move(*out));
        publishResults(std::move(merged));
    });
}

bool PeaksPanel::findInRange(int first, int last)
{
    const auto source = m_context->frames();
    if (!source) {
        Q_EMIT errorOccurred(tr("Find peaks: no frame file is open"));
        return false;
    }
    first = std::max(0, first);
    last = std::min(source->frameCount(), last);
    if (last <= first) {
        Q_EMIT errorOccurred(tr("Find peaks: the frame range %1 to %2 is empty").arg(first).arg(last - 1));
        return false;
    }
    const core::FinderOptions opts = options();
    const bool fit = fitAfterFind();
    const auto model = modelMatches() ? m_context->model() : nullptr;
    const std::shared_ptr<const core::Frame> dark = m_frames->subtractingDark() ? m_frames->darkFrame() : nullptr;
    auto out = std::make_shared<PeakResults>();
    const int generation = m_generation;
    return startJob(m_findJob, [source, first, last, opts, fit, model, dark, out](const core::Monitor &monitor) {
        std::vector<core::Peak> peaks;
        core::PatchDataset data = core::findPeaksInSource(*source, first, last, opts, dark.get(),
                                                          monitor.sub(0, fit ? 0.4 : 0.9), &peaks);
        if (peaks.size() != data.size())
            throw core::Error(core::fileMessage(source->path(), "the finder returned " + std::to_string(peaks.size())
                                                                    + " peaks for " + std::to_string(data.size()) + " patches"));
        out->peaks = std::move(peaks);
        out->patches.patchSize = data.patchSize;
        out->patches.patches = std::move(data.patches);
        for (const core::Peak &p : out->peaks) {
            out->patches.frameIndex.push_back(p.frame);
            out->patches.origin.push_back(p.originRow);
            out->patches.origin.push_back(p.originCol);
        }
        for (int f = first; f < last; ++f)
            out->frames.push_back(f);
        monitor.check();
        completeResults(*out, fit, model, monitor, 0.4);
    }, [this, out, generation]() {
        if (generation != m_generation)
            return;
        PeakResults merged = m_model->results();
        merged.merge(std::move(*out));
        publishResults(std::move(merged));
    });
}

bool PeaksPanel::fitPeaks()
{
    const PeakResults &r = m_model->results();
    std::vector<std::size_t> ids;
    for (std::size_t i = 0; i < r.size(); ++i)
        if (!r.hasFit(i))
            ids.push_back(i);
    if (r.size() == 0) {
        Q_EMIT errorOccurred(tr("Fit peaks: there are no peaks; find peaks first (Ctrl+F)"));
        return false;
    }
    if (ids.empty()) {
        Q_EMIT m_context->statusMessage(tr("Every peak is fitted already"), 4000);
        return true;
    }
    auto data = std::make_shared<core::PatchDataset>();
    data->patchSize = r.patches.patchSize;
    const std::size_t area = std::size_t(data->patchSize) * data->patchSize;
    data->patches.reserve(ids.size() * area);
    for (std::size_t i : ids)
        data->patches.insert(data->patches.end(), r.patches.patches.begin() + std::ptrdiff_t(i * area),
                             r.patches.patches.begin() + std::ptrdiff_t((i + 1) * area));
    auto fits = std::make_shared<std::vector<core::FitResult>>();
    const int generation = m_generation;
    return startJob(m_fitJob, [data, fits](const core::Monitor &monitor) {
        *fits = core::fitPatches(*data, {}, monitor);
    }, [this, ids, fits, generation]() {
        if (generation != m_generation)
            return;
        m_model->setFits(ids, *fits);
        updateControls();
        Q_EMIT resultsChanged();
    });
}

bool PeaksPanel::predict()
{
    QString why;
    if (!m_context->model()) {
        Q_EMIT errorOccurred(tr("Predict: no model; train one (Train) or open a model folder"));
        return false;
    }
    if (!modelMatches(&why)) {
        Q_EMIT m_context->statusMessage(tr("No model predictions: %1").arg(why), 8000);
        return false;
    }
    const PeakResults &r = m_model->results();
    if (r.size() == 0)
        return true;
    auto patches = std::make_shared<std::vector<float>>(r.patches.patches);
    const std::size_t n = r.size();
    auto model = m_context->model();
    auto predictions = std::make_shared<std::vector<float>>();
    const int generation = m_generation;
    return startJob(m_predictJob, [patches, n, model, predictions](const core::Monitor &monitor) {
        monitor.report(0, "predicting " + std::to_string(n) + " centres");
        *predictions = model->predict(patches->data(), n);
        monitor.report(1, "predicted " + std::to_string(n) + " centres");
    }, [this, predictions, generation]() {
        if (generation != m_generation)
            return;
        m_model->setPredictions(std::move(*predictions));
        updateControls();
        Q_EMIT resultsChanged();
    });
}

core::PatchDataset PeaksPanel::toDataset() const
{
    const PeakResults &r = m_model->results();
    core::PatchDataset d;
    d.patchSize = r.patches.patchSize;
    d.patches = r.patches.patches;
    std::vector<std::uint8_t> border, merged;
    for (std::size_t i = 0; i < r.size(); ++i) {
        d.frameIndex.push_back(r.peaks[i].frame);
        d.origin.push_back(r.peaks[i].originRow);
        d.origin.push_back(r.peaks[i].originCol);
        border.push_back(r.peaks[i].border ? 1 : 0);
        merged.push_back(r.peaks[i].merged ? 1 : 0);
    }
    d.extraFlags["/flags/border"] = std::move(border);
    d.extraFlags["/flags/merged"] = std::move(merged);
    if (m_model->fittedCount() > 0) {
        std::vector<core::FitResult> fits(r.size());
        for (std::size_t i = 0; i < r.size(); ++i)
            if (r.hasFit(i))
                fits[i] = r.fits[i];
        core::applyFitLabels(d, fits);
    }
    return d;
}

bool PeaksPanel::sendToDataset()
{
    if (m_model->peakCount() == 0) {
        Q_EMIT errorOccurred(tr("Use as dataset: there are no peaks; find peaks first (Ctrl+F)"));
        return false;
    }
    const auto publish = [this]() {
        auto data = std::make_shared<const core::PatchDataset>(toDataset());
        const std::size_t n = data->size();
        m_context->setDataset(data);
        Q_EMIT m_context->statusMessage(tr("Dataset: %1 labelled patches from the peaks (%2 converged fits)")
                                            .arg(n).arg(m_model->convergedCount()), 6000);
    };
    if (m_model->fittedCount() == m_model->peakCount()) {
        publish();
        return true;
    }
    if (!fitPeaks())
        return false;
    const int generation = m_generation;
    auto chained = std::move(m_onFinished);
    m_onFinished = [chained, publish, generation, this]() {
        if (chained)
            chained();
        if (generation == m_generation && m_model->fittedCount() == m_model->peakCount())
            publish();
    };
    return true;
}

void PeaksPanel::clearPeaks()
{
    for (Job *job : jobs())
        if (job->isRunning())
            job->cancel();
    publishResults({});
}

void PeaksPanel::onFrameShown(int index)
{
    updateMarkers();
    updateControls();
    if (!m_autoFind->isChecked() || index < 0 || m_model->searched(index))
        return;
    if (isBusy()) {
        m_autoPending = true;
        return;
    }
    findInCurrentFrame();
}

void PeaksPanel::updateMarkers()
{
    if (!m_view->hasImage()) {
        m_view->setMarkers({});
        return;
    }
    const bool all = m_frames->maxView();
    const int frame = m_frames->currentIndex();
    const PeakResults &r = m_model->results();
    std::vector<PeakMarker> markers;
    for (std::size_t i = 0; i < r.size(); ++i) {
        const core::Peak &p = r.peaks[i];
        if (!all && p.frame != frame)
            continue;
        PeakMarker m;
        m.id = int(i);
        m.originRow = p.originRow;
        m.originCol = p.originCol;
        m.size = r.patches.patchSize;
        m.peakRow = p.row;
        m.peakCol = p.col;
        m.hasFit = m_model->fitCentre(int(i), m.fitRow, m.fitCol);
        m.fitConverged = m.hasFit && r.fits[i].converged;
        m.hasPrediction = m_model->predictedCentre(int(i), m.nnRow, m.nnCol);
        markers.push_back(m);
    }
    m_view->setMarkers(std::move(markers));
}

PatchDetails PeaksPanel::details(int id) const
{
    PatchDetails d;
    const PeakResults &r = m_model->results();
    if (id < 0 || std::size_t(id) >= r.size())
        return d;
    const core::Peak &p = r.peaks[std::size_t(id)];
    d.id = id;
    d.frame = p.frame;
    d.originRow = p.originRow;
    d.originCol = p.originCol;
    d.size = r.patches.patchSize;
    const std::size_t area = std::size_t(d.size) * d.size;
    d.patch.assign(r.patches.patches.begin() + std::ptrdiff_t(std::size_t(id) * area),
                   r.patches.patches.begin() + std::ptrdiff_t((std::size_t(id) + 1) * area));
    d.hasFit = r.hasFit(std::size_t(id));
    if (d.hasFit)
        d.fit = r.fits[std::size_t(id)];
    d.hasPrediction = r.hasPrediction(std::size_t(id));
    if (d.hasPrediction) {
        d.nnRow = r.predictions[2 * std::size_t(id)];
        d.nnCol = r.predictions[2 * std::size_t(id) + 1];
    }
    return d;
}

void PeaksPanel::applyOverlayOptions()
{
    m_view->setShowBoxes(m_showBoxes->isChecked());
    m_view->setShowFit(m_showFit->isChecked());
    m_view->setShowPredictions(m_showModel->isChecked());
    m_view->setShowVectors(m_showVectors->isChecked());
    m_view->setVectorScale(m_vectorScale->value());
}

void PeaksPanel::updateControls()
{
    const auto source = m_context->frames();
    const int count = source ? source->frameCount() : 0;
    const bool busy = isBusy();
    {
        const QSignalBlocker b1(m_firstFrame), b2(m_lastFrame);
        const bool wasEmpty = m_lastFrame->maximum() != std::max(0, count - 1);
        m_firstFrame->setRange(0, std::max(0, count - 1));
        m_lastFrame->setRange(0, std::max(0, count - 1));
        if (wasEmpty) {
            m_firstFrame->setValue(0);
            m_lastFrame->setValue(std::max(0, count - 1));
        }
    }
    m_findCurrent->setEnabled(!busy && m_frames->currentFrame() != nullptr);
    m_findRange->setEnabled(!busy && count > 0);
    const int n = m_model->peakCount();
    m_fit->setEnabled(!busy && n > 0 && m_model->fittedCount() < n);
    m_send->setEnabled(!busy && n > 0);
    m_clear->setEnabled(n > 0 || busy);

    if (n == 0) {
        m_summary->setText(source ? tr("No peaks yet.") : tr("Open a frame file to find peaks."));
    } else {
        const auto &frames = m_model->results().frames;
        QString text = tr("%n peak(s) in %1 frame(s)", nullptr, n).arg(frames.size());
        if (m_model->fittedCount() > 0)
            text += tr(" · %1 fitted, %2 converged").arg(m_model->fittedCount()).arg(m_model->convergedCount());
        if (m_model->predictedCount() > 0)
            text += tr(" · %1 predicted").arg(m_model->predictedCount());
        m_summary->setText(text);
    }
    const auto model = m_context->model();
    if (!model) {
        m_modelLabel->setText(tr("Model: none (train one in Train, or File → Open model…)"));
    } else {
        QString why;
        const QString name = QString::fromStdString(model->spec().name);
        QString text = tr("Model: %1 · %2 parameters").arg(name.isEmpty() ? tr("unnamed") : name).arg(model->parameterCount());
        if (!modelMatches(&why))
            text += tr("<br><i>not used: %1</i>").arg(why);
        m_modelLabel->setText(text);
    }
}

} // namespace braggnac::ui
