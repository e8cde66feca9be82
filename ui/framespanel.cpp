#include "ui/framespanel.h"

#include <algorithm>
#include <cmath>

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QSettings>
#include <QSlider>
#include <QSpinBox>
#include <QStyle>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>

#include "core/common/error.h"
#include "core/io/framesource.h"
#include "ui/frameview.h"
#include "ui/job.h"
#include "ui/studiocontext.h"

namespace braggnac::ui {

struct FramesPanel::Loaded {
    int generation = 0;
    int index = 0;
    std::shared_ptr<const core::Frame> frame;
    std::shared_ptr<const std::vector<core::Frame>> pyramid;
    FrameStats stats;
    std::vector<QImage> images;
    double low = 0, high = 1;
    Scaling scaling = Scaling::Linear;
    Colormap::Name colormap = Colormap::Name::Grey;
};

namespace {
// P98, or the maximum when the percentiles collapse (sparse frames: mostly one value).
double autoHigh(const FrameStats &s)
{
    return s.p98 > s.p2 ? s.p98 : std::max(s.p98, s.max);
}

QString formatName(core::FrameFormat f)
{
    switch (f) {
    case core::FrameFormat::GE:
        return QStringLiteral("GE");
    case core::FrameFormat::TIFF:
        return QStringLiteral("TIFF");
    default:
        return QStringLiteral("HDF5");
    }
}
} // namespace

FramesPanel::FramesPanel(StudioContext *context, FrameView *view, QWidget *parent)
    : QWidget(parent), m_context(context), m_view(view),
      m_loadJob(new Job(tr("Loading frame"), this)), m_maxJob(new Job(tr("Max over frames"), this)),
      m_darkJob(new Job(tr("Loading dark frame"), this)), m_renderTimer(new QTimer(this))
{
    setObjectName(QStringLiteral("framesPanel"));
    QSettings settings;
    m_scaling = scalingFromKey(settings.value(QStringLiteral("display/scaling"), QStringLiteral("sqrt")).toString());
    m_colormap = Colormap(Colormap::fromKey(settings.value(QStringLiteral("display/colormap"), QStringLiteral("grey")).toString()));
    buildUi();
    m_autoCheck->setChecked(settings.value(QStringLiteral("display/autoLevels"), true).toBool());

    m_renderTimer->setSingleShot(true);
    m_renderTimer->setInterval(10);
    connect(m_renderTimer, &QTimer::timeout, this, &FramesPanel::render);
    connect(m_context, &StudioContext::framesChanged, this, &FramesPanel::onFramesChanged);
    connect(m_loadJob, &Job::finished, this, &FramesPanel::onLoadFinished);
    const auto loadEnded = [this]() {
        const int pending = m_pending;
        m_pending = -1;
        if (pending >= 0 && pending != m_index)
            startLoad(pending);
        updateControls();
    };
    connect(m_loadJob, &Job::failed, this, loadEnded);
    connect(m_loadJob, &Job::cancelled, this, loadEnded);
    connect(m_maxJob, &Job::finished, this, [this]() {
        auto out = m_maxLoading;
        if (!out || out->generation != m_generation)
            return;
        m_max = out->frame;
        m_maxPyramid = out->pyramid;
        m_maxStats = out->stats;
        if (m_maxView) {
            applyLevels(m_maxStats);
            m_histogram->setStats(m_maxStats);
            m_view->setFrame(m_max, renderLevels(*m_max, m_maxPyramid));
            Q_EMIT maxShown();
            Q_EMIT imageChanged();
        }
        updateControls();
    });
    const auto maxEnded = [this]() {
        if (!m_max && m_maxView) {
            m_maxView = false;
            updateControls();
        }
    };
    connect(m_darkJob, &Job::finished, this, [this]() {
        if (!m_darkResult || !*m_darkResult)
            return;
        m_dark = *m_darkResult;
        m_darkPath = m_darkLoadingPath;
        m_darkResult.reset();
        m_subtract = true;
        ++m_generation; // frames in flight were read with the old dark
        m_max.reset();
        Q_EMIT darkChanged();
        updateControls();
        if (m_maxView) {
            m_maxView = false;
            setMaxView(true);
        } else if (m_index >= 0) {
            showFrame(m_index);
        }
    });
    connect(m_darkJob, &Job::failed, this, &FramesPanel::updateControls);
    connect(m_darkJob, &Job::cancelled, this, &FramesPanel::updateControls);
    connect(m_maxJob, &Job::failed, this, maxEnded);
    connect(m_maxJob, &Job::cancelled, this, maxEnded);
    updateControls();
}

FramesPanel::~FramesPanel() = default;

void FramesPanel::buildUi()
{
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 6, 6, 6);

    auto *fileBox = new QGroupBox(tr("File"), this);
    auto *fileLayout = new QVBoxLayout(fileBox);
    m_fileLabel = new QLabel(tr("No file open"), fileBox);
    m_fileLabel->setObjectName(QStringLiteral("fileInfo"));
    m_fileLabel->setWordWrap(true);
    m_fileLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    fileLayout->addWidget(m_fileLabel);
    layout->addWidget(fileBox);

    auto *frameBox = new QGroupBox(tr("Frame"), this);
    auto *frameLayout = new QVBoxLayout(frameBox);
    m_slider = new QSlider(Qt::Horizontal, frameBox);
    m_slider->setObjectName(QStringLiteral("frameSlider"));
    m_slider->setPageStep(1);
    frameLayout->addWidget(m_slider);
    auto *stepRow = new QHBoxLayout;
    const auto tool = [&](QStyle::StandardPixmap icon, const QString &tip, const QString &name) {
        auto *b = new QToolButton(frameBox);
        b->setIcon(style()->standardIcon(icon));
        b->setToolTip(tip);
        b->setObjectName(name);
        b->setAutoRaise(true);
        stepRow->addWidget(b);
        return b;
    };
    m_firstButton = tool(QStyle::SP_MediaSkipBackward, tr("First frame (Home)"), QStringLiteral("firstFrame"));
    m_prevButton = tool(QStyle::SP_MediaSeekBackward, tr("Previous frame (PgUp, Left)"), QStringLiteral("previousFrame"));
    m_frameSpin = new QSpinBox(frameBox);
    m_frameSpin->setObjectName(QStringLiteral("frameSpin"));
    m_frameSpin->setKeyboardTracking(false);
    m_frameSpin->setMinimumWidth(60);
    stepRow->addWidget(m_frameSpin);
    m_countLabel = new QLabel(frameBox);
    stepRow->addWidget(m_countLabel);
    m_nextButton = tool(QStyle::SP_MediaSeekForward, tr("Next frame (PgDn, Right)"), QStringLiteral("nextFrame"));
    m_lastButton = tool(QStyle::SP_MediaSkipForward, tr("Last frame (End)"), QStringLiteral("lastFrame"));
    stepRow->addStretch();
    frameLayout->addLayout(stepRow);
    m_maxCheck = new QCheckBox(tr("Max over frames"), frameBox);
    m_maxCheck->setObjectName(QStringLiteral("maxView"));
    m_maxCheck->setToolTip(tr("Show the pixel-wise maximum over all frames (M)"));
    frameLayout->addWidget(m_maxCheck);
    layout->addWidget(frameBox);

    auto *displayBox = new QGroupBox(tr("Display"), this);
    auto *form = new QFormLayout(displayBox);
    form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    m_scalingCombo = new QComboBox(displayBox);
    m_scalingCombo->setObjectName(QStringLiteral("scaling"));
    m_scalingCombo->addItem(tr("Linear"), QStringLiteral("linear"));
    m_scalingCombo->addItem(tr("Square root"), QStringLiteral("sqrt"));
    m_scalingCombo->addItem(tr("Logarithmic"), QStringLiteral("log"));
    m_scalingCombo->setCurrentIndex(m_scalingCombo->findData(scalingKey(m_scaling)));
    form->addRow(tr("Scaling"), m_scalingCombo);
    m_colormapCombo = new QComboBox(displayBox);
    m_colormapCombo->setObjectName(QStringLiteral("colormap"));
    for (Colormap::Name n : Colormap::all())
        m_colormapCombo->addItem(Colormap::displayName(n), Colormap::key(n));
    m_colormapCombo->setCurrentIndex(m_colormapCombo->findData(Colormap::key(m_colormap.name())));
    form->addRow(tr("Colormap"), m_colormapCombo);
    m_autoCheck = new QCheckBox(tr("Auto levels (P2–P98)"), displayBox);
    m_autoCheck->setObjectName(QStringLiteral("autoLevels"));
    m_autoCheck->setToolTip(tr("Low and high levels at the 2nd and 98th percentiles of the pixels "
                               "(the maximum when both percentiles are equal)"));
    form->addRow(m_autoCheck);
    auto *levelRow = new QHBoxLayout;
    m_lowSpin = new QDoubleSpinBox(displayBox);
    m_lowSpin->setObjectName(QStringLiteral("lowLevel"));
    m_highSpin = new QDoubleSpinBox(displayBox);
    m_highSpin->setObjectName(QStringLiteral("highLevel"));
    for (QDoubleSpinBox *s : {m_lowSpin, m_highSpin}) {
        s->setRange(-1e9, 1e9);
        s->setDecimals(1);
        s->setMinimumWidth(70);
        s->setKeyboardTracking(false);
        s->setAccelerated(true);
    }
    levelRow->addWidget(m_lowSpin);
    levelRow->addWidget(new QLabel(QStringLiteral("–"), displayBox));
    levelRow->addWidget(m_highSpin);
    form->addRow(tr("Levels"), levelRow);
    m_histogram = new LevelsHistogram(displayBox);
    m_histogram->setScaling(m_scaling);
    m_histogram->setColormap(m_colormap);
    form->addRow(m_histogram);
    layout->addWidget(displayBox);

    auto *darkBox = new QGroupBox(tr("Dark frame"), this);
    auto *darkLayout = new QVBoxLayout(darkBox);
    m_darkLabel = new QLabel(tr("None"), darkBox);
    m_darkLabel->setObjectName(QStringLiteral("darkInfo"));
    m_darkLabel->setWordWrap(true);
    darkLayout->addWidget(m_darkLabel);
    auto *darkRow = new QHBoxLayout;
    m_darkCheck = new QCheckBox(tr("Subtract"), darkBox);
    m_darkCheck->setObjectName(QStringLiteral("subtractDark"));
    m_darkCheck->setToolTip(tr("Subtract the dark frame (clipped at 0) before display and peak finding"));
    m_darkLoad = new QPushButton(tr("Load…"), darkBox);
    m_darkLoad->setObjectName(QStringLiteral("loadDark"));
    m_darkClear = new QPushButton(tr("Clear"), darkBox);
    m_darkClear->setObjectName(QStringLiteral("clearDark"));
    darkRow->addWidget(m_darkCheck);
    darkRow->addStretch();
    darkRow->addWidget(m_darkLoad);
    darkRow->addWidget(m_darkClear);
    darkLayout->addLayout(darkRow);
    layout->addWidget(darkBox);
    layout->addStretch();

    connect(m_slider, &QSlider::valueChanged, this, [this](int v) { if (v != m_index) showFrame(v); });
    connect(m_frameSpin, qOverload<int>(&QSpinBox::valueChanged), this, [this](int v) { if (v != m_index) showFrame(v); });
    connect(m_firstButton, &QToolButton::clicked, this, &FramesPanel::showFirst);
    connect(m_prevButton, &QToolButton::clicked, this, [this]() { step(-1); });
    connect(m_nextButton, &QToolButton::clicked, this, [this]() { step(+1); });
    connect(m_lastButton, &QToolButton::clicked, this, &FramesPanel::showLast);
    connect(m_maxCheck, &QCheckBox::toggled, this, &FramesPanel::setMaxView);
    connect(m_scalingCombo, qOverload<int>(&QComboBox::currentIndexChanged), this, [this]() {
        setScaling(scalingFromKey(m_scalingCombo->currentData().toString()));
    });
    connect(m_colormapCombo, qOverload<int>(&QComboBox::currentIndexChanged), this, [this]() {
        setColormap(Colormap::fromKey(m_colormapCombo->currentData().toString()));
    });
    connect(m_autoCheck, &QCheckBox::toggled, this, &FramesPanel::setAutoLevels);
    connect(m_lowSpin, qOverload<double>(&QDoubleSpinBox::valueChanged), this, [this](double v) {
        if (v != m_low)
            setLevels(v, std::max(m_high, v));
    });
    connect(m_highSpin, qOverload<double>(&QDoubleSpinBox::valueChanged), this, [this](double v) {
        if (v != m_high)
            setLevels(std::min(m_low, v), v);
    });
    connect(m_histogram, &LevelsHistogram::levelsEdited, this, &FramesPanel::setLevels);
    connect(m_darkCheck, &QCheckBox::toggled, this, &FramesPanel::setSubtractDark);
    connect(m_darkClear, &QPushButton::clicked, this, &FramesPanel::clearDark);
    connect(m_darkLoad, &QPushButton::clicked, this, [this]() {
        QSettings settings;
        const QString dir = settings.value(QStringLiteral("paths/dark"), settings.value(QStringLiteral("paths/frames"))).toString();
        const QString path = QFileDialog::getOpenFileName(
            this, tr("Load dark frame"), dir,
            tr("Frame files (*.h5 *.hdf5 *.nxs *.ge *.ge2 *.ge3 *.ge4 *.ge5 *.tif *.tiff);;All files (*)"));
        if (path.isEmpty())
            return;
        settings.setValue(QStringLiteral("paths/dark"), QFileInfo(path).absolutePath());
        loadDark(path);
    });
}

int FramesPanel::frameCount() const
{
    const auto source = m_context->frames();
    return source ? source->frameCount() : 0;
}

bool FramesPanel::subtractingDark() const
{
    return m_dark && m_subtract;
}

bool FramesPanel::isBusy() const
{
    return m_loadJob->isRunning() || m_maxJob->isRunning() || m_darkJob->isRunning();
}

bool FramesPanel::autoLevels() const
{
    return m_autoCheck->isChecked();
}

void FramesPanel::onFramesChanged()
{
    ++m_generation;
    m_pending = -1;
    m_index = -1;
    m_frame.reset();
    m_max.reset();
    m_maxView = false;
    if (m_maxJob->isRunning())
        m_maxJob->cancel();
    const auto source = m_context->frames();
    if (m_dark && source && (m_dark->rows != source->rows() || m_dark->cols != source->cols())) {
        Q_EMIT m_context->statusMessage(tr("Dark frame cleared: it is %1 × %2, the new frames are %3 × %4")
                                            .arg(m_dark->rows).arg(m_dark->cols).arg(source->rows()).arg(source->cols()), 8000);
        m_dark.reset();
        m_darkPath.clear();
        Q_EMIT darkChanged();
    }
    if (!source) {
        m_view->clear();
        m_frameStats = FrameStats{};
        m_histogram->setStats(m_frameStats);
        updateControls();
        return;
    }
    updateControls();
    showFrame(0);
}

void FramesPanel::showFrame(int index)
{
    const int count = frameCount();
    if (count <= 0)
        return;
    index = std::clamp(index, 0, count - 1);
    if (m_maxView) {
        m_maxView = false;
        if (m_maxJob->isRunning())
            m_maxJob->cancel();
    }
    if (m_loadJob->isRunning()) {
        m_pending = index;
        updateControls();
        return;
    }
    startLoad(index);
}

void FramesPanel::step(int delta)
{
    const int base = m_pending >= 0 ? m_pending : m_index;
    showFrame(base + delta);
}

void FramesPanel::showFirst()
{
    showFrame(0);
}

void FramesPanel::showLast()
{
    showFrame(frameCount() - 1);
}

void FramesPanel::startLoad(int index)
{
    const auto source = m_context->frames();
    if (!source)
        return;
    auto out = std::make_shared<Loaded>();
    out->generation = m_generation;
    out->index = index;
    out->scaling = m_scaling;
    out->colormap = m_colormap.name();
    const std::shared_ptr<const core::Frame> dark = subtractingDark() ? m_dark : nullptr;
    const bool autoL = autoLevels();
    const double low = m_low, high = m_high;
    m_loading = out;
    const int count = source->frameCount();
    m_loadJob->start([source, dark, out, autoL, low, high, index, count](const core::Monitor &monitor) {
        monitor.report(0, "frame " + std::to_string(index) + "/" + std::to_string(count));
        core::Frame frame = source->readFrame(index);
        monitor.check();
        if (dark)
            frame = core::subtractDark(frame, *dark);
        out->stats = computeFrameStats(frame);
        out->low = autoL ? out->stats.p2 : low;
        out->high = autoL ? autoHigh(out->stats) : high;
        const Colormap map(out->colormap);
        auto pyramid = std::make_shared<std::vector<core::Frame>>(FrameView::maxPyramid(frame));
        out->images.push_back(map.render(frame.data.data(), frame.rows, frame.cols, out->low, out->high, out->scaling));
        for (const core::Frame &level : *pyramid)
            out->images.push_back(map.render(level.data.data(), level.rows, level.cols, out->low, out->high, out->scaling));
        out->pyramid = std::move(pyramid);
        out->frame = std::make_shared<const core::Frame>(std::move(frame));
        monitor.report(1, "frame " + std::to_string(index) + "/" + std::to_string(count));
    });
    Q_EMIT jobStarted(m_loadJob);
    updateControls();
}

void FramesPanel::onLoadFinished()
{
    auto out = m_loading;
    if (out && out->generation == m_generation && out->frame) {
        m_index = out->index;
        m_frame = out->frame;
        m_framePyramid = out->pyramid;
        m_frameStats = out->stats;
        if (!m_maxView) {
            const bool stale = out->scaling != m_scaling || out->colormap != m_colormap.name()
                || (!autoLevels() && (out->low != m_low || out->high != m_high));
            applyLevels(m_frameStats);
            m_histogram->setStats(m_frameStats);
            m_view->setFrame(m_frame, stale ? renderLevels(*m_frame, m_framePyramid) : out->images);
        }
    }
    const int pending = m_pending;
    m_pending = -1;
    updateControls();
    if (out && out->generation == m_generation && out->frame && !m_maxView) {
        Q_EMIT frameShown(m_index);
        Q_EMIT imageChanged();
    }
    if (pending >= 0 && (pending != m_index || !out || out->generation != m_generation))
        startLoad(pending);
}

void FramesPanel::setMaxView(bool on)
{
    if (on == m_maxView) {
        updateControls();
        return;
    }
    if (on && frameCount() <= 0) {
        updateControls();
        return;
    }
    m_maxView = on;
    updateControls();
    if (on) {
        if (m_max) {
            applyLevels(m_maxStats);
            m_histogram->setStats(m_maxStats);
            m_view->setFrame(m_max, renderLevels(*m_max, m_maxPyramid));
            Q_EMIT maxShown();
            Q_EMIT imageChanged();
        } else {
            startMax();
        }
    } else {
        if (m_maxJob->isRunning())
            m_maxJob->cancel();
        if (m_frame) {
            applyLevels(m_frameStats);
            m_histogram->setStats(m_frameStats);
            m_view->setFrame(m_frame, renderLevels(*m_frame, m_framePyramid));
            Q_EMIT frameShown(m_index);
            Q_EMIT imageChanged();
        }
    }
}

void FramesPanel::startMax()
{
    const auto source = m_context->frames();
    if (!source || m_maxJob->isRunning())
        return;
    auto out = std::make_shared<Loaded>();
    out->generation = m_generation;
    m_maxLoading = out;
    const std::shared_ptr<const core::Frame> dark = subtractingDark() ? m_dark : nullptr;
    m_maxJob->start([source, dark, out](const core::Monitor &monitor) {
        const int n = source->frameCount();
        core::Frame acc;
        for (int i = 0; i < n; ++i) {
            monitor.check();
            core::Frame f = source->readFrame(i);
            if (dark)
                f = core::subtractDark(f, *dark);
            if (i == 0)
                acc = std::move(f);
            else
                core::accumulateMax(acc, f);
            monitor.report(double(i + 1) / n, "frame " + std::to_string(i + 1) + "/" + std::to_string(n));
        }
        out->stats = computeFrameStats(acc);
        out->pyramid = std::make_shared<const std::vector<core::Frame>>(FrameView::maxPyramid(acc));
        out->frame = std::make_shared<const core::Frame>(std::move(acc));
    });
    Q_EMIT jobStarted(m_maxJob);
}

void FramesPanel::loadDark(const QString &path)
{
    if (m_darkJob->isRunning()) {
        Q_EMIT errorOccurred(tr("%1: a dark frame is already loading").arg(path));
        return;
    }
    const auto source = m_context->frames();
    const int rows = source ? source->rows() : 0, cols = source ? source->cols() : 0;
    const std::string framesPath = source ? source->path() : std::string();
    auto result = std::make_shared<std::shared_ptr<const core::Frame>>();
    m_darkResult = result;
    m_darkLoadingPath = path;
    m_darkJob->start([path, rows, cols, framesPath, result](const core::Monitor &monitor) {
        const std::string p = path.toStdString();
        auto dark = core::openFrameSource(p);
        if (rows > 0 && (dark->rows() != rows || dark->cols() != cols))
            throw core::InputError(core::fileMessage(
                p, "dark frame is " + std::to_string(dark->rows()) + "x" + std::to_string(dark->cols()) + " but the frames in "
                       + framesPath + " are " + std::to_string(rows) + "x" + std::to_string(cols)));
        core::Frame mean = core::readDarkFrame(p, {}, monitor);
        *result = std::make_shared<const core::Frame>(std::move(mean));
    });
    Q_EMIT jobStarted(m_darkJob);
}

void FramesPanel::clearDark()
{
    if (!m_dark)
        return;
    m_dark.reset();
    m_darkPath.clear();
    ++m_generation;
    m_max.reset();
    Q_EMIT darkChanged();
    updateControls();
    if (m_maxView) {
        m_maxView = false;
        setMaxView(true);
    } else if (m_index >= 0) {
        showFrame(m_index);
    }
}

void FramesPanel::setSubtractDark(bool on)
{
    if (on == m_subtract)
        return;
    m_subtract = on;
    if (!m_dark) {
        updateControls();
        return;
    }
    ++m_generation;
    m_max.reset();
    Q_EMIT darkChanged();
    updateControls();
    if (m_maxView) {
        m_maxView = false;
        setMaxView(true);
    } else if (m_index >= 0) {
        showFrame(m_index);
    }
}

void FramesPanel::setScaling(Scaling scaling)
{
    if (scaling == m_scaling)
        return;
    m_scaling = scaling;
    m_histogram->setScaling(scaling);
    updateControls();
    saveSettings();
    scheduleRender();
}

void FramesPanel::setColormap(Colormap::Name name)
{
    if (name == m_colormap.name())
        return;
    m_colormap = Colormap(name);
    m_histogram->setColormap(m_colormap);
    updateControls();
    saveSettings();
    scheduleRender();
    Q_EMIT colormapChanged();
}

void FramesPanel::setAutoLevels(bool on)
{
    if (m_autoCheck->isChecked() != on) {
        m_autoCheck->setChecked(on); // re-enters through toggled
        return;
    }
    saveSettings();
    if (on) {
        applyLevels(stats());
        scheduleRender();
    }
}

void FramesPanel::setLevels(double low, double high)
{
    if (m_autoCheck->isChecked()) {
        const QSignalBlocker block(m_autoCheck);
        m_autoCheck->setChecked(false);
        saveSettings();
    }
    m_low = low;
    m_high = std::max(high, low);
    m_histogram->setLevels(m_low, m_high);
    updateControls();
    scheduleRender();
}

void FramesPanel::applyLevels(const FrameStats &s)
{
    if (autoLevels() && s.finite > 0) {
        m_low = s.p2;
        m_high = autoHigh(s);
    }
    const double range = std::max(std::abs(s.max), std::abs(s.min));
    const int decimals = range < 10 ? 4 : range < 1000 ? 2 : 1;
    for (QDoubleSpinBox *spin : {m_lowSpin, m_highSpin}) {
        const QSignalBlocker block(spin);
        spin->setDecimals(decimals);
        spin->setSingleStep(std::max(1e-4, (s.max - s.min) / 200.0));
    }
    m_histogram->setLevels(m_low, m_high);
    updateControls();
}

void FramesPanel::scheduleRender()
{
    m_renderTimer->start();
}

void FramesPanel::render()
{
    const auto values = m_maxView ? m_max : m_frame;
    if (!values)
        return;
    if (autoLevels())
        applyLevels(stats());
    m_view->setImage(renderLevels(*values, m_maxView ? m_maxPyramid : m_framePyramid));
}

std::vector<QImage> FramesPanel::renderLevels(const core::Frame &frame, const Pyramid &pyramid) const
{
    std::vector<QImage> images;
    images.push_back(m_colormap.render(frame.data.data(), frame.rows, frame.cols, m_low, m_high, m_scaling));
    if (pyramid)
        for (const core::Frame &level : *pyramid)
            images.push_back(m_colormap.render(level.data.data(), level.rows, level.cols, m_low, m_high, m_scaling));
    return images;
}

void FramesPanel::updateControls()
{
    const auto source = m_context->frames();
    const int count = source ? source->frameCount() : 0;
    if (source) {
        QString text = QStringLiteral("<b>%1</b><br>%2").arg(QFileInfo(QString::fromStdString(source->path())).fileName().toHtmlEscaped(),
                                                          formatName(source->format()));
        if (!source->dataset().empty())
            text += QStringLiteral(" · ") + QString::fromStdString(source->dataset()).toHtmlEscaped();
        text += tr("<br>%n frame(s) · %1 × %2 · %3", nullptr, count)
                    .arg(source->rows()).arg(source->cols()).arg(QString::fromLatin1(core::pixelTypeName(source->pixelType())));
        m_fileLabel->setText(text);
        m_fileLabel->setToolTip(QString::fromStdString(source->path()));
    } else {
        m_fileLabel->setText(tr("No file open"));
        m_fileLabel->setToolTip({});
    }
    const int shown = m_pending >= 0 ? m_pending : std::max(0, m_index);
    {
        const QSignalBlocker b1(m_slider), b2(m_frameSpin);
        m_slider->setRange(0, std::max(0, count - 1));
        m_frameSpin->setRange(0, std::max(0, count - 1));
        m_slider->setValue(shown);
        m_frameSpin->setValue(shown);
    }
    m_countLabel->setText(tr("of %1").arg(count));
    const bool has = count > 0;
    for (QWidget *w : std::initializer_list<QWidget *>{m_slider, m_frameSpin, m_firstButton, m_prevButton, m_nextButton, m_lastButton})
        w->setEnabled(has && !m_maxView);
    m_maxCheck->setEnabled(has);
    {
        const QSignalBlocker b(m_maxCheck);
        m_maxCheck->setChecked(m_maxView);
    }
    {
        const QSignalBlocker b1(m_lowSpin), b2(m_highSpin);
        m_lowSpin->setValue(m_low);
        m_highSpin->setValue(m_high);
    }
    {
        const QSignalBlocker b1(m_scalingCombo), b2(m_colormapCombo);
        m_scalingCombo->setCurrentIndex(m_scalingCombo->findData(scalingKey(m_scaling)));
        m_colormapCombo->setCurrentIndex(m_colormapCombo->findData(Colormap::key(m_colormap.name())));
    }
    if (m_dark) {
        m_darkLabel->setText(tr("%1 (%2 × %3, mean over its frames)")
                                 .arg(QFileInfo(m_darkPath).fileName()).arg(m_dark->rows).arg(m_dark->cols));
        m_darkLabel->setToolTip(m_darkPath);
    } else {
        m_darkLabel->setText(m_darkJob->isRunning() ? tr("Loading…") : tr("None"));
        m_darkLabel->setToolTip({});
    }
    {
        const QSignalBlocker b(m_darkCheck);
        m_darkCheck->setChecked(m_subtract);
    }
    m_darkCheck->setEnabled(bool(m_dark));
    m_darkClear->setEnabled(bool(m_dark));
}

void FramesPanel::saveSettings() const
{
    QSettings settings;
    settings.setValue(QStringLiteral("display/scaling"), scalingKey(m_scaling));
    settings.setValue(QStringLiteral("display/colormap"), Colormap::key(m_colormap.name()));
    settings.setValue(QStringLiteral("display/autoLevels"), m_autoCheck->isChecked());
}

} // namespace braggnac::ui
