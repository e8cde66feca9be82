#include "ui/datasetpanel.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <QCheckBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QSpinBox>
#include <QVBoxLayout>

#include "core/common/error.h"
#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "core/peaks/finder.h"
#include "core/peaks/fitter.h"
#include "core/sim/simulator.h"
#include "ui/errors.h"
#include "ui/job.h"
#include "ui/patchgallery.h"
#include "ui/studiocontext.h"

namespace braggnac::ui {

namespace {

DatasetPanel::Summary summarize(const core::PatchDataset &data)
{
    DatasetPanel::Summary s;
    s.n = data.size();
    s.patchSize = data.patchSize;
    s.labelSource = QString::fromStdString(data.labelSource);
    s.storedSplit = !data.split.empty();
    if (s.n > 0) {
        const std::vector<std::uint8_t> split = s.storedSplit ? data.split : core::effectiveSplit(data);
        for (std::uint8_t v : split) {
            if (v == std::uint8_t(core::Split::Train))
                ++s.train;
            else if (v == std::uint8_t(core::Split::Validation))
                ++s.validation;
            else if (v == std::uint8_t(core::Split::Test))
                ++s.test;
        }
    }
    const auto fit = data.extraFlags.find("/fit/converged");
    if (fit != data.extraFlags.end()) {
        s.fitted = fit->second.size();
        s.converged = std::size_t(std::count_if(fit->second.begin(), fit->second.end(),
                                                [](std::uint8_t v) { return v != 0; }));
    }
    return s;
}

} // namespace

struct DatasetPanel::Outcome {
    std::shared_ptr<const core::PatchDataset> data;
    Summary summary;
};

DatasetPanel::DatasetPanel(StudioContext *context, QWidget *parent)
    : QWidget(parent), m_context(context)
{
    setObjectName(QStringLiteral("datasetPanel"));
    m_job = new Job(tr("Dataset"), this);
    connect(m_job, &Job::progressUpdated, this, [this](double f, const QString &message) {
        m_progress->setValue(int(std::lround(1000 * std::clamp(f, 0.0, 1.0))));
        if (!message.isEmpty())
            m_status->setText(message);
    });
    connect(m_job, &Job::finished, this, &DatasetPanel::onJobFinished);
    connect(m_job, &Job::failed, this, &DatasetPanel::onJobFailed);
    connect(m_job, &Job::cancelled, this, &DatasetPanel::onJobCancelled);
    buildUi();
    connect(m_context, &StudioContext::framesChanged, this, &DatasetPanel::onFramesChanged);
    connect(m_context, &StudioContext::datasetChanged, this, &DatasetPanel::onDatasetChanged);
    onFramesChanged();
    onDatasetChanged();
}

DatasetPanel::~DatasetPanel()
{
    // The work functions capture only shared state, never the panel; stop them before the
    // widgets go away so no signal arrives half-way through destruction.
    disconnect(m_job, nullptr, this, nullptr);
    delete m_job;
    m_job = nullptr;
}

void DatasetPanel::buildUi()
{
    auto *content = new QWidget;
    auto *layout = new QVBoxLayout(content);

    // --- from frames -------------------------------------------------------------------------
    auto *framesBox = new QGroupBox(tr("From frames: find peaks, fit pseudo-Voigt"));
    auto *framesForm = new QFormLayout(framesBox);
    framesForm->setFieldGrowthPolicy(QFormLayout::FieldsStayAtSizeHint);
    m_framesLabel = new QLabel(tr("no frames open"));
    m_framesLabel->setObjectName(QStringLiteral("framesLabel"));
    framesForm->addRow(tr("Frames:"), m_framesLabel);

    auto *range = new QHBoxLayout;
    m_firstFrame = new QSpinBox;
    m_firstFrame->setObjectName(QStringLiteral("firstFrame"));
    m_lastFrame = new QSpinBox;
    m_lastFrame->setObjectName(QStringLiteral("lastFrame"));
    m_firstFrame->setToolTip(tr("first frame (0-based, included)"));
    m_lastFrame->setToolTip(tr("end frame (excluded)"));
    range->addWidget(m_firstFrame);
    range->addWidget(new QLabel(tr("to (excluded)")));
    range->addWidget(m_lastFrame);
    range->addStretch(1);
    framesForm->addRow(tr("Frame range:"), range);

    m_threshold = new QDoubleSpinBox;
    m_threshold->setObjectName(QStringLiteral("threshold"));
    m_threshold->setRange(-1, 1e9);
    m_threshold->setDecimals(1);
    m_threshold->setSpecialValueText(tr("auto"));
    m_threshold->setValue(-1);
    m_threshold->setToolTip(tr("absolute threshold in counts; 'auto' = median + k * robust sigma"));
    framesForm->addRow(tr("Threshold:"), m_threshold);
    m_autoSigma = new QDoubleSpinBox;
    m_autoSigma->setObjectName(QStringLiteral("autoSigma"));
    m_autoSigma->setRange(0.5, 100);
    m_autoSigma->setValue(5.0);
    framesForm->addRow(tr("Auto threshold k (sigma):"), m_autoSigma);
    m_minPixels = new QSpinBox;
    m_minPixels->setObjectName(QStringLiteral("minPixels"));
    m_minPixels->setRange(1, 1000000);
    m_minPixels->setValue(3);
    m_maxPixels = new QSpinBox;
    m_maxPixels->setObjectName(QStringLiteral("maxPixels"));
    m_maxPixels->setRange(1, 100000000);
    m_maxPixels->setValue(2500);
    auto *sizes = new QHBoxLayout;
    sizes->addWidget(m_minPixels);
    sizes->addWidget(new QLabel(tr("to")));
    sizes->addWidget(m_maxPixels);
    sizes->addStretch(1);
    framesForm->addRow(tr("Component pixels:"), sizes);
    m_patchSize = new QSpinBox;
    m_patchSize->setObjectName(QStringLiteral("patchSize"));
    m_patchSize->setRange(3, 63);
    m_patchSize->setSingleStep(2);
    m_patchSize->setValue(11);
    framesForm->addRow(tr("Patch size (odd):"), m_patchSize);
    m_maskOthers = new QCheckBox(tr("mask other peaks inside a patch"));
    m_maskOthers->setObjectName(QStringLiteral("maskOthers"));
    m_maskOthers->setChecked(true);
    framesForm->addRow(QString(), m_maskOthers);
    m_maxIterations = new QSpinBox;
    m_maxIterations->setObjectName(QStringLiteral("maxIterations"));
    m_maxIterations->setRange(1, 10000);
    m_maxIterations->setValue(100);
    framesForm->addRow(tr("Fit iterations (max):"), m_maxIterations);
    m_toleranceExp = new QDoubleSpinBox;
    m_toleranceExp->setObjectName(QStringLiteral("toleranceExponent"));
    m_toleranceExp->setRange(-15, -1);
    m_toleranceExp->setDecimals(1);
    m_toleranceExp->setValue(-8);
    m_toleranceExp->setPrefix(QStringLiteral("1e"));
    framesForm->addRow(tr("Fit tolerance:"), m_toleranceExp);
    m_threads = new QSpinBox;
    m_threads->setObjectName(QStringLiteral("threads"));
    m_threads->setRange(0, 1024);
    m_threads->setSpecialValueText(tr("all"));
    framesForm->addRow(tr("Threads:"), m_threads);
    auto *dark = new QHBoxLayout;
    m_darkPath = new QLineEdit;
    m_darkPath->setObjectName(QStringLiteral("darkPath"));
    m_darkPath->setPlaceholderText(tr("optional dark file (the mean of its frames is subtracted)"));
    m_darkPath->setMinimumWidth(360);
    auto *darkBrowse = new QPushButton(tr("..."));
    connect(darkBrowse, &QPushButton::clicked, this, &DatasetPanel::browseDark);
    dark->addWidget(m_darkPath, 1);
    dark->addWidget(darkBrowse);
    framesForm->addRow(tr("Dark:"), dark);
    m_buildButton = new QPushButton(tr("Build dataset..."));
    m_buildButton->setObjectName(QStringLiteral("buildButton"));
    m_buildButton->setToolTip(tr("find peaks, fit them and save the labelled patches"));
    connect(m_buildButton, &QPushButton::clicked, this, &DatasetPanel::browseBuild);
    framesForm->addRow(QString(), m_buildButton);
    layout->addWidget(framesBox);

    // --- simulate / files --------------------------------------------------------------------
    auto *simBox = new QGroupBox(tr("Simulated patches (quick start)"));
    auto *simRow = new QHBoxLayout(simBox);
    m_simCount = new QSpinBox;
    m_simCount->setObjectName(QStringLiteral("simCount"));
    m_simCount->setRange(10, 10000000);
    m_simCount->setSingleStep(1000);
    m_simCount->setValue(20000);
    m_simSeed = new QSpinBox;
    m_simSeed->setObjectName(QStringLiteral("simSeed"));
    m_simSeed->setRange(0, 2147483647);
    m_simSeed->setValue(1);
    m_simPatchSize = new QSpinBox;
    m_simPatchSize->setObjectName(QStringLiteral("simPatchSize"));
    m_simPatchSize->setRange(3, 63);
    m_simPatchSize->setSingleStep(2);
    m_simPatchSize->setValue(11);
    m_simulateButton = new QPushButton(tr("Simulate"));
    m_simulateButton->setObjectName(QStringLiteral("simulateButton"));
    connect(m_simulateButton, &QPushButton::clicked, this,
            [this] { simulate(m_simCount->value(), quint64(m_simSeed->value()), m_simPatchSize->value()); });
    simRow->addWidget(new QLabel(tr("n")));
    simRow->addWidget(m_simCount);
    simRow->addWidget(new QLabel(tr("seed")));
    simRow->addWidget(m_simSeed);
    simRow->addWidget(new QLabel(tr("patch size")));
    simRow->addWidget(m_simPatchSize);
    simRow->addWidget(m_simulateButton);
    simRow->addStretch(1);
    layout->addWidget(simBox);

    auto *fileRow = new QHBoxLayout;
    m_openButton = new QPushButton(tr("Open patch file..."));
    m_openButton->setObjectName(QStringLiteral("openButton"));
    connect(m_openButton, &QPushButton::clicked, this, &DatasetPanel::browseOpen);
    m_saveButton = new QPushButton(tr("Save As..."));
    m_saveButton->setObjectName(QStringLiteral("saveButton"));
    connect(m_saveButton, &QPushButton::clicked, this, &DatasetPanel::browseSave);
    fileRow->addWidget(m_openButton);
    fileRow->addWidget(m_saveButton);
    fileRow->addStretch(1);
    layout->addLayout(fileRow);

    // --- progress ----------------------------------------------------------------------------
    auto *progressRow = new QHBoxLayout;
    m_progress = new QProgressBar;
    m_progress->setObjectName(QStringLiteral("progress"));
    m_progress->setRange(0, 1000);
    m_progress->setTextVisible(false);
    m_cancelButton = new QPushButton(tr("Cancel"));
    m_cancelButton->setObjectName(QStringLiteral("cancelButton"));
    m_cancelButton->setEnabled(false);
    connect(m_cancelButton, &QPushButton::clicked, this, &DatasetPanel::cancel);
    progressRow->addWidget(m_progress, 1);
    progressRow->addWidget(m_cancelButton);
    layout->addLayout(progressRow);
    m_status = new QLabel;
    m_status->setObjectName(QStringLiteral("status"));
    m_status->setWordWrap(true);
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_status);

    // --- summary and gallery -----------------------------------------------------------------
    auto *summaryBox = new QGroupBox(tr("Current dataset"));
    auto *summaryLayout = new QVBoxLayout(summaryBox);
    m_summaryLabel = new QLabel;
    m_summaryLabel->setObjectName(QStringLiteral("summary"));
    m_summaryLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_summaryLabel->setWordWrap(true);
    summaryLayout->addWidget(m_summaryLabel);
    m_gallery = new PatchGallery;
    summaryLayout->addWidget(m_gallery);
    layout->addWidget(summaryBox);
    layout->addStretch(1);

    auto *scroll = new QScrollArea;
    scroll->setWidget(content);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    auto *outer = new QVBoxLayout(this);
    outer->setContentsMargins(0, 0, 0, 0);
    outer->addWidget(scroll);
}

bool DatasetPanel::isBusy() const
{
    return m_job->isRunning();
}

QString DatasetPanel::summaryText() const
{
    return m_summaryLabel->text();
}

QString DatasetPanel::statusText() const
{
    return m_status->text();
}

void DatasetPanel::setFrameRange(int first, int last)
{
    m_firstFrame->setValue(first);
    m_lastFrame->setValue(last);
}

void DatasetPanel::setBusy(bool busy)
{
    m_buildButton->setEnabled(!busy && m_context->frames() != nullptr);
    m_simulateButton->setEnabled(!busy);
    m_openButton->setEnabled(!busy);
    m_saveButton->setEnabled(!busy && m_context->dataset() != nullptr);
    m_cancelButton->setEnabled(busy);
    if (!busy)
        m_progress->setValue(0);
}

void DatasetPanel::showError(const QString &message)
{
    m_status->setText(message);
    Q_EMIT errorOccurred(message);
    Q_EMIT m_context->statusMessage(message, 10000);
    showErrorBox(this, tr("Dataset"), message, QStringLiteral("datasetError"));
}

bool DatasetPanel::startJob(Action action, const QString &path, const QString &title,
                            std::shared_ptr<Outcome> outcome,
                            std::function<void(const core::Monitor &)> work)
{
    if (m_job->isRunning()) {
        showError(tr("%1: busy with another operation; cancel it or wait").arg(title));
        return false;
    }
    if (!m_job->start(std::move(work)))
        return false;
    m_action = action;
    m_actionPath = path;
    m_outcome = std::move(outcome);
    m_status->setText(title + QStringLiteral("..."));
    m_progress->setValue(0);
    setBusy(true);
    return true;
}

bool DatasetPanel::openFile(const QString &path)
{
    auto outcome = std::make_shared<Outcome>();
    const std::string file = path.toStdString();
    return startJob(Action::Open, path, tr("Opening %1").arg(path), outcome,
                             [file, outcome](const core::Monitor &monitor) {
                                 monitor.report(0, "reading");
                                 auto data = std::make_shared<core::PatchDataset>(core::readPatchDataset(file));
                                 monitor.check();
                                 outcome->summary = summarize(*data);
                                 outcome->data = std::move(data);
                                 monitor.report(1, "read");
                             });
}

bool DatasetPanel::simulate(int n, quint64 seed, int patchSize)
{
    if (n <= 0 || patchSize < 3 || patchSize % 2 == 0) {
        showError(tr("simulate: n must be positive and the patch size odd and >= 3 (got n=%1, size=%2)")
                      .arg(n)
                      .arg(patchSize));
        return false;
    }
    m_simCount->setValue(n);
    m_simSeed->setValue(int(std::min<quint64>(seed, 2147483647ull)));
    m_simPatchSize->setValue(patchSize);
    core::PatchSimOptions options;
    options.patchSize = patchSize;
    options.seed = seed;
    auto outcome = std::make_shared<Outcome>();
    return startJob(Action::Simulate, QString(), tr("Simulating %1 patches").arg(n), outcome,
                             [n, options, outcome](const core::Monitor &monitor) {
                                 auto data = std::make_shared<core::PatchDataset>(
                                     core::simulatePatches(std::size_t(n), options, monitor));
                                 monitor.check();
                                 outcome->summary = summarize(*data);
                                 outcome->data = std::move(data);
                             });
}

bool DatasetPanel::buildFromFrames(const QString &outputPath)
{
    std::shared_ptr<const core::FrameSource> source = m_context->frames();
    if (!source) {
        showError(tr("build: no frame file is open (open frames in the Frames tab first)"));
        return false;
    }
    const QString framesPath = QString::fromStdString(source->path());
    const int first = m_firstFrame->value();
    const int last = m_lastFrame->value();
    if (first < 0 || last > source->frameCount() || first >= last) {
        showError(tr("%1: frame range %2:%3 is empty or outside 0:%4")
                      .arg(framesPath)
                      .arg(first)
                      .arg(last)
                      .arg(source->frameCount()));
        return false;
    }
    if (m_patchSize->value() % 2 == 0) {
        showError(tr("build: patch size must be odd (got %1)").arg(m_patchSize->value()));
        return false;
    }
    core::FinderOptions finder;
    finder.threshold = m_threshold->value() < 0 ? -1 : m_threshold->value();
    finder.autoSigma = m_autoSigma->value();
    finder.minPixels = m_minPixels->value();
    finder.maxPixels = m_maxPixels->value();
    finder.patchSize = m_patchSize->value();
    finder.maskOthers = m_maskOthers->isChecked();
    finder.threads = m_threads->value();
    core::FitOptions fit;
    fit.maxIterations = m_maxIterations->value();
    fit.tolerance = std::pow(10.0, m_toleranceExp->value());
    fit.threads = m_threads->value();
    const std::string dark = m_darkPath->text().trimmed().toStdString();
    const std::string out = outputPath.toStdString();

    auto outcome = std::make_shared<Outcome>();
    return startJob(
        Action::Build, outputPath, tr("Building from %1").arg(QFileInfo(framesPath).fileName()), outcome,
        [source, first, last, finder, fit, dark, out, outcome](const core::Monitor &monitor) {
            core::Frame darkFrame;
            if (!dark.empty())
                darkFrame = core::readDarkFrame(dark, {}, core::Monitor{{}, monitor.cancel});
            auto data = std::make_shared<core::PatchDataset>(core::findPeaksInSource(
                *source, first, last, finder, dark.empty() ? nullptr : &darkFrame,
                monitor.sub(0.0, 0.4, "find")));
            const std::size_t found = data->size();
            if (found == 0)
                throw core::Error(core::fileMessage(
                    source->path(), "no peaks found in frames " + std::to_string(first) + ":" +
                                        std::to_string(last) + " (lower the threshold?)"));
            const std::vector<core::FitResult> fits =
                core::fitPatches(*data, fit, monitor.sub(0.4, out.empty() ? 1.0 : 0.9, "fit"));
            core::applyFitLabels(*data, fits);
            monitor.check();
            if (!out.empty()) {
                monitor.report(0.9, "writing " + out);
                core::writePatchDataset(out, *data);
            }
            outcome->summary = summarize(*data);
            outcome->summary.found = found;
            outcome->data = std::move(data);
            monitor.report(1.0, "done");
        });
}

bool DatasetPanel::saveAs(const QString &path)
{
    std::shared_ptr<const core::PatchDataset> data = m_context->dataset();
    if (!data) {
        showError(tr("%1: nothing to save (no dataset)").arg(path));
        return false;
    }
    const std::string file = path.toStdString();
    auto outcome = std::make_shared<Outcome>();
    outcome->data = data;
    return startJob(Action::Save, path, tr("Saving %1").arg(path), outcome,
                             [file, data](const core::Monitor &monitor) {
                                 monitor.report(0, "writing");
                                 core::writePatchDataset(file, *data);
                                 monitor.report(1, "written");
                             });
}

void DatasetPanel::cancel()
{
    if (m_job->isRunning()) {
        m_status->setText(tr("Cancelling..."));
        m_job->cancel();
    }
}

void DatasetPanel::onJobFinished()
{
    const Action action = std::exchange(m_action, Action::None);
    std::shared_ptr<Outcome> outcome = std::move(m_outcome);
    setBusy(false);
    if (!outcome || !outcome->data)
        return;
    switch (action) {
    case Action::Save:
        m_context->setDataset(outcome->data, m_actionPath);
        m_status->setText(tr("Saved %1").arg(m_actionPath));
        Q_EMIT saved(m_actionPath);
        return;
    case Action::Open:
    case Action::Simulate:
    case Action::Build: {
        m_summary = outcome->summary;
        m_shownData = outcome->data.get();
        showSummary(m_summary, outcome->data.get(), m_actionPath);
        m_context->setDataset(outcome->data, m_actionPath);
        QString text;
        if (action == Action::Build)
            text = tr("Found %1 peaks; %2 fits converged").arg(outcome->summary.found).arg(outcome->summary.converged);
        else if (action == Action::Open)
            text = tr("Opened %1 (%2 patches)").arg(m_actionPath).arg(outcome->summary.n);
        else
            text = tr("Simulated %1 patches").arg(outcome->summary.n);
        m_status->setText(text);
        Q_EMIT m_context->statusMessage(text, 5000);
        setBusy(false);
        Q_EMIT datasetReady();
        if (action == Action::Build && !m_actionPath.isEmpty())
            Q_EMIT saved(m_actionPath);
        return;
    }
    case Action::None:
        return;
    }
}

void DatasetPanel::onJobFailed(const QString &message)
{
    const Action action = std::exchange(m_action, Action::None);
    m_outcome.reset();
    setBusy(false);
    QString text = message;
    if (action == Action::Open || action == Action::Save)
        text = withFile(m_actionPath, message);
    showError(text);
}

void DatasetPanel::onJobCancelled()
{
    m_action = Action::None;
    m_outcome.reset();
    setBusy(false);
    m_status->setText(tr("Cancelled"));
}

void DatasetPanel::onFramesChanged()
{
    std::shared_ptr<const core::FrameSource> source = m_context->frames();
    if (!source) {
        m_framesLabel->setText(tr("no frames open"));
        m_firstFrame->setRange(0, 0);
        m_lastFrame->setRange(0, 0);
    } else {
        const int count = source->frameCount();
        m_framesLabel->setText(tr("%1 (%2 frames, %3 x %4)")
                                   .arg(QFileInfo(QString::fromStdString(source->path())).fileName())
                                   .arg(count)
                                   .arg(source->rows())
                                   .arg(source->cols()));
        m_firstFrame->setRange(0, std::max(0, count - 1));
        m_lastFrame->setRange(1, std::max(1, count));
        m_firstFrame->setValue(0);
        m_lastFrame->setValue(count);
    }
    setBusy(m_job->isRunning());
}

void DatasetPanel::onDatasetChanged()
{
    std::shared_ptr<const core::PatchDataset> data = m_context->dataset();
    if (data.get() != m_shownData) {
        // Set by another tab: summarise here (one pass over the split and flag arrays).
        m_shownData = data.get();
        m_summary = data ? summarize(*data) : Summary();
        showSummary(m_summary, data.get(), m_context->datasetPath());
    } else if (data) {
        showSummary(m_summary, data.get(), m_context->datasetPath());
    }
    setBusy(m_job->isRunning());
}

void DatasetPanel::showSummary(const Summary &s, const core::PatchDataset *data, const QString &path)
{
    if (!data) {
        m_summaryLabel->setText(tr("No dataset. Build one from frames, open a patch file or simulate patches."));
        m_gallery->setDataset(nullptr);
        return;
    }
    QStringList lines;
    lines << tr("File: %1").arg(path.isEmpty() ? tr("(not saved)") : path);
    lines << tr("Patches: %1 of %2 x %2").arg(s.n).arg(s.patchSize);
    lines << tr("Labels: %1").arg(s.labelSource.isEmpty() ? tr("none (unlabelled)") : s.labelSource);
    lines << tr("Split%1: train %2, validation %3, test %4")
                 .arg(s.storedSplit ? QString() : tr(" (by frame, 80/10/10)"))
                 .arg(s.train)
                 .arg(s.validation)
                 .arg(s.test);
    if (s.fitted > 0)
        lines << tr("Fit converged: %1 of %2 (%3%)")
                     .arg(s.converged)
                     .arg(s.fitted)
                     .arg(100.0 * double(s.converged) / double(s.fitted), 0, 'f', 1);
    if (s.found > 0)
        lines << tr("Peaks found: %1").arg(s.found);
    m_summaryLabel->setText(lines.join(QLatin1Char('\n')));
    m_gallery->setDataset(data);
}

void DatasetPanel::browseOpen()
{
    auto *dialog = new QFileDialog(this, tr("Open patch file"), QString(),
                                   tr("Patch datasets (*.h5 *.hdf5);;All files (*)"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setFileMode(QFileDialog::ExistingFile);
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) { openFile(path); });
    dialog->open();
}

void DatasetPanel::browseSave()
{
    auto *dialog = new QFileDialog(this, tr("Save patch dataset"), m_context->datasetPath(),
                                   tr("Patch datasets (*.h5)"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setAcceptMode(QFileDialog::AcceptSave);
    dialog->setDefaultSuffix(QStringLiteral("h5"));
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) { saveAs(path); });
    dialog->open();
}

void DatasetPanel::browseBuild()
{
    if (!m_context->frames()) {
        showError(tr("build: no frame file is open (open frames in the Frames tab first)"));
        return;
    }
    auto *dialog = new QFileDialog(this, tr("Save the labelled dataset as"), QString(),
                                   tr("Patch datasets (*.h5)"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setAcceptMode(QFileDialog::AcceptSave);
    dialog->setDefaultSuffix(QStringLiteral("h5"));
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) { buildFromFrames(path); });
    dialog->open();
}

void DatasetPanel::browseDark()
{
    auto *dialog = new QFileDialog(this, tr("Dark frame"), QString(),
                                   tr("Frames (*.h5 *.hdf5 *.nxs *.tif *.tiff *.ge *.ge2 *.ge3 *.ge5);;All files (*)"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setFileMode(QFileDialog::ExistingFile);
    connect(dialog, &QFileDialog::fileSelected, m_darkPath, &QLineEdit::setText);
    dialog->open();
}

} // namespace braggnac::ui
