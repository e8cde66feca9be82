#include "ui/mainwindow.h"

#include <algorithm>
#include <cmath>

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QCheckBox>
#include <QCloseEvent>
#include <QDir>
#include <QDoubleSpinBox>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QListWidget>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QMimeData>
#include <QProgressBar>
#include <QScrollArea>
#include <QSettings>
#include <QSplitter>
#include <QStackedWidget>
#include <QStatusBar>
#include <QStyle>
#include <QTabWidget>
#include <QTableView>
#include <QTemporaryDir>
#include <QTimer>
#include <QToolBar>
#include <QToolButton>
#include <QVBoxLayout>

#include "core/common/error.h"
#include "core/io/framesource.h"
#include "core/nn/model.h"
#include "core/sim/simulator.h"
#include "ui/aboutdialog.h"
#include "ui/compresspanel.h"
#include "ui/datasetpanel.h"
#include "ui/evaluatepanel.h"
#include "ui/exportpanel.h"
#include "ui/framespanel.h"
#include "ui/frameview.h"
#include "ui/hdf5browserdialog.h"
#include "ui/job.h"
#include "ui/patchinspector.h"
#include "ui/peakspanel.h"
#include "ui/peaktablemodel.h"
#include "ui/screenshottour.h"
#include "ui/searchpanel.h"
#include "ui/studiocontext.h"
#include "ui/tableexport.h"
#include "ui/trainpanel.h"
#include "ui/trialinspector.h"

// Resources of a static library must be registered by name, at global scope.
static void initStudioResources()
{
    Q_INIT_RESOURCE(braggnac);
}

namespace braggnac::ui {

namespace {

constexpr int kMaxRecent = 10;

bool looksLikeHdf5(const QString &path)
{
    const QString suffix = QFileInfo(path).suffix().toLower();
    if (suffix == QLatin1String("h5") || suffix == QLatin1String("hdf5") || suffix == QLatin1String("hdf")
        || suffix == QLatin1String("nxs") || suffix == QLatin1String("nx5"))
        return true;
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        return false;
    return file.read(8) == QByteArray("\x89HDF\r\n\x1a\n", 8);
}

QWidget *scrolled(QWidget *inner, QWidget *parent)
{
    auto *area = new QScrollArea(parent);
    area->setWidget(inner);
    area->setWidgetResizable(true);
    area->setFrameShape(QFrame::NoFrame);
    area->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    return area;
}

} // namespace

MainWindow::MainWindow(QWidget *parent)
    : QMainWindow(parent), m_context(new StudioContext(this)),
      m_openJob(new Job(tr("Opening file"), this)), m_demoJob(new Job(tr("Simulating demo frames"), this)),
      m_modelJob(new Job(tr("Loading model"), this))
{
    initStudioResources();
    setObjectName(QStringLiteral("mainWindow"));
    setWindowIcon(QIcon(QStringLiteral(":/braggnac/icons/braggnac.svg")));
    setAcceptDrops(true);

    auto *central = new QWidget(this);
    auto *layout = new QHBoxLayout(central);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(0);
    m_stageList = new QListWidget(central);
    m_stageList->setObjectName(QStringLiteral("stageList"));
    m_stageList->setViewMode(QListView::IconMode);
    m_stageList->setFlow(QListView::TopToBottom);
    m_stageList->setMovement(QListView::Static);
    m_stageList->setWrapping(false);
    m_stageList->setIconSize(QSize(32, 32));
    m_stageList->setFixedWidth(88);
    m_stageList->setSpacing(2);
    m_stageList->setFrameShape(QFrame::NoFrame);
    m_stageList->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_stageList->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_stageList->setStyleSheet(QStringLiteral(
        "QListWidget#stageList { background: #2b2e3b; border: none; padding-top: 4px; }"
        "QListWidget#stageList::item { color: #d8dbe6; border-radius: 4px; padding: 4px 0px; }"
        "QListWidget#stageList::item:hover:!selected { background: #3a3e50; }"
        "QListWidget#stageList::item:selected { background: #3d6ea8; color: white; }"));
    m_stages = new QStackedWidget(central);
    m_stages->setObjectName(QStringLiteral("stageStack"));
    layout->addWidget(m_stageList);
    layout->addWidget(m_stages, 1);
    setCentralWidget(central);
    connect(m_stageList, &QListWidget::currentRowChanged, this, [this](int row) {
        if (row < 0)
            return;
        const QString key = m_stageList->item(row)->data(Qt::UserRole).toString();
        if (QWidget *page = m_stagePages.value(key)) {
            m_stages->setCurrentWidget(page);
            if (page != m_framesPage)
                trackForeignJobs(page);
        }
    });

    buildFramesStage();
    // Stages in pipeline order; Search, Compress and Export are added here as they land.
    m_datasetPanel = new DatasetPanel(m_context, this);
    addStage(QStringLiteral("dataset"), tr("Dataset"), QStringLiteral(":/braggnac/icons/dataset.svg"), m_datasetPanel);
    m_trainPanel = new TrainPanel(m_context, this);
    addStage(QStringLiteral("train"), tr("Train"), QStringLiteral(":/braggnac/icons/train.svg"), m_trainPanel);
    m_evaluatePanel = new EvaluatePanel(m_context, this);
    addStage(QStringLiteral("evaluate"), tr("Evaluate"), QStringLiteral(":/braggnac/icons/evaluate.svg"), m_evaluatePanel);
    auto *searchPanel = new SearchPanel(m_context, this);
    addStage(QStringLiteral("search"), tr("Search"), QStringLiteral(":/braggnac/icons/search.svg"), searchPanel);
    connect(searchPanel, &SearchPanel::errorOccurred, this, &MainWindow::errorShown);
    connect(searchPanel, &SearchPanel::useModelRequested, this, &MainWindow::openModel);
    auto *compressPanel = new CompressPanel(m_context, this);
    addStage(QStringLiteral("compress"), tr("Compress"), QStringLiteral(":/braggnac/icons/compress.svg"), compressPanel);
    auto *exportPanel = new ExportPanel(m_context, this);
    addStage(QStringLiteral("export"), tr("Export"), QStringLiteral(":/braggnac/icons/export.svg"), exportPanel);
    connect(compressPanel, &CompressPanel::errorOccurred, this, &MainWindow::errorShown);
    connect(exportPanel, &ExportPanel::errorOccurred, this, &MainWindow::errorShown);
    // Search's "Use this model" also becomes the model to compress; a saved compressed model the
    // model to export.
    connect(searchPanel, &SearchPanel::useModelRequested, compressPanel, &CompressPanel::setModelFolder);
    compressPanel->setTrialSource([searchPanel]() { return searchPanel->inspector()->modelFolder(); });
    connect(compressPanel, &CompressPanel::modelSaved, exportPanel, &ExportPanel::setModelFolder);
    // The tabs show their own error boxes; announce their errors too.
    connect(m_datasetPanel, &DatasetPanel::errorOccurred, this, &MainWindow::errorShown);
    connect(m_trainPanel, &TrainPanel::errorOccurred, this, &MainWindow::errorShown);
    connect(m_evaluatePanel, &EvaluatePanel::errorOccurred, this, &MainWindow::errorShown);
    for (QWidget *page : {static_cast<QWidget *>(m_datasetPanel), static_cast<QWidget *>(m_trainPanel),
                          static_cast<QWidget *>(m_evaluatePanel), static_cast<QWidget *>(searchPanel),
                          static_cast<QWidget *>(compressPanel), static_cast<QWidget *>(exportPanel)})
        trackForeignJobs(page);

    buildStatusBar();
    buildMenus();

    trackJob(m_openJob);
    trackJob(m_demoJob);
    trackJob(m_modelJob);
    connect(m_openJob, &Job::finished, this, [this]() {
        if (!m_openResult || !*m_openResult)
            return;
        const QString path = m_openingPath;
        const QString dataset = m_openingDataset;
        auto source = *m_openResult;
        m_openResult.reset();
        m_context->setFrames(std::move(source));
        addRecent(path, dataset);
        QSettings().setValue(QStringLiteral("paths/frames"), QFileInfo(path).absolutePath());
        setStage(QStringLiteral("frames"));
        updateTitle();
        statusBar()->showMessage(tr("Opened %1").arg(path), 4000);
        Q_EMIT fileOpened(path);
    });
    connect(m_modelJob, &Job::finished, this, [this]() {
        if (!m_modelResult || !*m_modelResult)
            return;
        m_context->setModel(*m_modelResult, m_modelFolder);
        m_modelResult.reset();
        statusBar()->showMessage(tr("Model %1 loaded").arg(m_modelFolder), 5000);
    });
    connect(m_demoJob, &Job::finished, this, [this]() {
        m_demoPath = m_demoPending;
        openFile(m_demoPath);
    });
    connect(m_context, &StudioContext::statusMessage, this, [this](const QString &text, int timeout) {
        statusBar()->showMessage(text, timeout);
    });
    connect(m_context, &StudioContext::framesChanged, this, &MainWindow::updateTitle);

    setStage(QStringLiteral("frames"));
    restoreSettings();
    updateTitle();
}

MainWindow::~MainWindow() = default;

void MainWindow::addStage(const QString &key, const QString &title, const QString &iconPath, QWidget *page)
{
    page->setParent(m_stages);
    m_stages->addWidget(page);
    m_stagePages.insert(key, page);
    auto *item = new QListWidgetItem(QIcon(iconPath), title, m_stageList);
    item->setData(Qt::UserRole, key);
    item->setTextAlignment(Qt::AlignHCenter);
    item->setSizeHint(QSize(80, 62));
    const int index = m_stageList->count();
    if (index <= 9)
        item->setToolTip(tr("%1 (Ctrl+%2)").arg(title).arg(index));
}

QStringList MainWindow::stageKeys() const
{
    QStringList keys;
    for (int i = 0; i < m_stageList->count(); ++i)
        keys << m_stageList->item(i)->data(Qt::UserRole).toString();
    return keys;
}

QString MainWindow::currentStage() const
{
    return m_stagePages.key(m_stages->currentWidget());
}

void MainWindow::setStage(const QString &key)
{
    for (int i = 0; i < m_stageList->count(); ++i)
        if (m_stageList->item(i)->data(Qt::UserRole).toString() == key) {
            m_stageList->setCurrentRow(i);
            return;
        }
}

void MainWindow::buildFramesStage()
{
    auto *page = new QWidget(this);
    m_framesPage = page;
    auto *pageLayout = new QHBoxLayout(page);
    pageLayout->setContentsMargins(0, 0, 0, 0);
    m_mainSplitter = new QSplitter(Qt::Horizontal, page);
    m_mainSplitter->setObjectName(QStringLiteral("framesSplitter"));
    pageLayout->addWidget(m_mainSplitter);

    m_viewSplitter = new QSplitter(Qt::Vertical, m_mainSplitter);
    m_viewSplitter->setObjectName(QStringLiteral("viewSplitter"));
    m_view = new FrameView(m_viewSplitter);
    m_bottomSplitter = new QSplitter(Qt::Horizontal, m_viewSplitter);
    m_bottomSplitter->setObjectName(QStringLiteral("tableSplitter"));

    auto *tableArea = new QWidget(m_bottomSplitter);
    auto *tableLayout = new QVBoxLayout(tableArea);
    tableLayout->setContentsMargins(4, 4, 4, 0);
    auto *filters = new QHBoxLayout;
    filters->addWidget(new QLabel(tr("Amplitude ≥"), tableArea));
    m_filterAmplitude = new QDoubleSpinBox(tableArea);
    m_filterAmplitude->setObjectName(QStringLiteral("filterAmplitude"));
    m_filterAmplitude->setRange(0, 1e9);
    m_filterAmplitude->setDecimals(0);
    m_filterAmplitude->setSingleStep(50);
    filters->addWidget(m_filterAmplitude);
    m_filterConverged = new QCheckBox(tr("Converged fits only"), tableArea);
    m_filterConverged->setObjectName(QStringLiteral("filterConverged"));
    filters->addWidget(m_filterConverged);
    filters->addWidget(new QLabel(tr("Fit–model ≥"), tableArea));
    m_filterDistance = new QDoubleSpinBox(tableArea);
    m_filterDistance->setObjectName(QStringLiteral("filterDistance"));
    m_filterDistance->setRange(0, 100);
    m_filterDistance->setDecimals(2);
    m_filterDistance->setSingleStep(0.1);
    m_filterDistance->setSuffix(tr(" px"));
    filters->addWidget(m_filterDistance);
    m_filterFrame = new QCheckBox(tr("This frame only"), tableArea);
    m_filterFrame->setObjectName(QStringLiteral("filterFrame"));
    filters->addWidget(m_filterFrame);
    filters->addStretch();
    m_tableCount = new QLabel(tableArea);
    m_tableCount->setObjectName(QStringLiteral("tableCount"));
    filters->addWidget(m_tableCount);
    auto *csv = new QToolButton(tableArea);
    csv->setText(tr("CSV…"));
    csv->setToolTip(tr("Export the table as shown (sorted, filtered) as CSV"));
    filters->addWidget(csv);
    tableLayout->addLayout(filters);
    m_table = new QTableView(tableArea);
    m_table->setObjectName(QStringLiteral("peakTable"));
    tableLayout->addWidget(m_table);

    m_inspector = new PatchInspector(m_bottomSplitter);

    m_sideTabs = new QTabWidget(m_mainSplitter);
    m_sideTabs->setObjectName(QStringLiteral("sideTabs"));
    m_framesPanel = new FramesPanel(m_context, m_view, m_sideTabs);
    m_peaksPanel = new PeaksPanel(m_context, m_framesPanel, m_view, m_sideTabs);
    m_sideTabs->addTab(scrolled(m_framesPanel, m_sideTabs), tr("Display"));
    m_sideTabs->addTab(scrolled(m_peaksPanel, m_sideTabs), tr("Peaks"));
    const int panelWidth = std::max(m_framesPanel->minimumSizeHint().width(), m_peaksPanel->minimumSizeHint().width());
    m_sideTabs->setMinimumWidth(std::max(290, panelWidth + style()->pixelMetric(QStyle::PM_ScrollBarExtent) + 12));

    m_mainSplitter->setStretchFactor(0, 1);
    m_mainSplitter->setStretchFactor(1, 0);
    m_mainSplitter->setSizes({1000, 320});
    m_viewSplitter->setStretchFactor(0, 3);
    m_viewSplitter->setStretchFactor(1, 1);
    m_viewSplitter->setSizes({640, 260});
    m_bottomSplitter->setSizes({640, 380});

    m_table->setModel(m_peaksPanel->proxy());
    m_table->setSortingEnabled(true);
    m_table->sortByColumn(PeakTableModel::Id, Qt::AscendingOrder);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->setAlternatingRowColors(true);
    m_table->verticalHeader()->setVisible(false);
    m_table->verticalHeader()->setDefaultSectionSize(fontMetrics().height() + 6);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Interactive);
    m_table->horizontalHeader()->setDefaultSectionSize(72);
    m_table->horizontalHeader()->setStretchLastSection(true);
    m_table->setColumnWidth(PeakTableModel::Id, 48);
    m_table->setColumnWidth(PeakTableModel::Frame, 52);
    m_table->setColumnWidth(PeakTableModel::Row, 52);
    m_table->setColumnWidth(PeakTableModel::Col, 52);
    m_table->setColumnWidth(PeakTableModel::Pixels, 52);

    addStage(QStringLiteral("frames"), tr("Frames"), QStringLiteral(":/braggnac/icons/frames.svg"), page);

    connect(m_table->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
            [this](const QModelIndex &current) {
                if (m_selecting || !current.isValid())
                    return;
                const QModelIndex source = m_peaksPanel->proxy()->mapToSource(current);
                selectPeakFrom(source.row(), true);
            });
    connect(m_view, &FrameView::markerClicked, this, [this](int id) { selectPeakFrom(id, false); });
    connect(m_view, &FrameView::stepRequested, m_framesPanel, &FramesPanel::step);
    connect(m_view, &FrameView::firstRequested, m_framesPanel, &FramesPanel::showFirst);
    connect(m_view, &FrameView::lastRequested, m_framesPanel, &FramesPanel::showLast);
    connect(m_framesPanel, &FramesPanel::frameShown, this, [this](int index) {
        if (m_filterFrame->isChecked())
            m_peaksPanel->proxy()->setFrame(index);
        if (m_pendingPeak >= 0) {
            const int id = m_pendingPeak;
            m_pendingPeak = -1;
            m_view->setSelectedPeak(id, true);
        } else if (m_selectedPeak >= 0) {
            m_view->setSelectedPeak(m_selectedPeak, false);
        }
        updateTableCount();
    });
    connect(m_framesPanel, &FramesPanel::colormapChanged, this, [this]() { m_inspector->setColormap(m_framesPanel->colormap()); });
    m_inspector->setColormap(m_framesPanel->colormap());
    connect(m_framesPanel, &FramesPanel::jobStarted, this, [this](Job *job) { trackJob(job); });
    connect(m_peaksPanel, &PeaksPanel::jobStarted, this, [this](Job *job) { trackJob(job); });
    connect(m_framesPanel, &FramesPanel::errorOccurred, this, &MainWindow::showError);
    connect(m_peaksPanel, &PeaksPanel::errorOccurred, this, &MainWindow::showError);
    connect(m_peaksPanel->peakModel(), &QAbstractItemModel::modelReset, this, [this]() {
        m_selectedPeak = -1;
        m_pendingPeak = -1;
        m_inspector->clear();
        updateTableCount();
    });
    connect(m_peaksPanel, &PeaksPanel::resultsChanged, this, [this]() {
        if (m_selectedPeak >= 0)
            m_inspector->showPatch(m_peaksPanel->details(m_selectedPeak));
        updateTableCount();
    });
    connect(m_peaksPanel->proxy(), &QAbstractItemModel::rowsInserted, this, &MainWindow::updateTableCount);
    connect(m_peaksPanel->proxy(), &QAbstractItemModel::rowsRemoved, this, &MainWindow::updateTableCount);
    connect(m_peaksPanel->proxy(), &QAbstractItemModel::layoutChanged, this, &MainWindow::updateTableCount);

    connect(m_filterAmplitude, qOverload<double>(&QDoubleSpinBox::valueChanged), this, [this](double v) {
        m_peaksPanel->proxy()->setMinAmplitude(v);
        updateTableCount();
    });
    connect(m_filterConverged, &QCheckBox::toggled, this, [this](bool on) {
        m_peaksPanel->proxy()->setConvergedOnly(on);
        updateTableCount();
    });
    connect(m_filterDistance, qOverload<double>(&QDoubleSpinBox::valueChanged), this, [this](double v) {
        m_peaksPanel->proxy()->setMinDistance(v);
        updateTableCount();
    });
    connect(m_filterFrame, &QCheckBox::toggled, this, [this](bool on) {
        m_peaksPanel->proxy()->setFrame(on && !m_framesPanel->maxView() ? m_framesPanel->currentIndex() : -1);
        updateTableCount();
    });
    connect(csv, &QToolButton::clicked, this, &MainWindow::exportPeakTable);
    updateTableCount();
}

void MainWindow::updateTableCount()
{
    const int total = m_peaksPanel->peakModel()->peakCount();
    const int shown = m_peaksPanel->proxy()->rowCount();
    m_tableCount->setText(shown == total ? tr("%n peak(s)", nullptr, total) : tr("%1 of %2 peaks").arg(shown).arg(total));
}

void MainWindow::buildStatusBar()
{
    m_pixelLabel = new QLabel(this);
    m_pixelLabel->setObjectName(QStringLiteral("pixelReadout"));
    m_pixelLabel->setMinimumWidth(fontMetrics().horizontalAdvance(QStringLiteral("row 0000  col 0000  value 00000000.0")));
    m_zoomLabel = new QLabel(this);
    m_zoomLabel->setObjectName(QStringLiteral("zoomLabel"));
    m_zoomLabel->setMinimumWidth(fontMetrics().horizontalAdvance(QStringLiteral("zoom 0000%")));
    m_jobLabel = new QLabel(this);
    m_jobLabel->setObjectName(QStringLiteral("jobLabel"));
    m_jobProgress = new QProgressBar(this);
    m_jobProgress->setObjectName(QStringLiteral("jobProgress"));
    m_jobProgress->setRange(0, 1000);
    m_jobProgress->setMaximumWidth(180);
    m_jobProgress->setTextVisible(false);
    m_jobCancel = new QToolButton(this);
    m_jobCancel->setObjectName(QStringLiteral("jobCancel"));
    m_jobCancel->setIcon(QIcon(QStringLiteral(":/braggnac/icons/cancel.svg")));
    m_jobCancel->setToolTip(tr("Cancel (Esc)"));
    m_jobCancel->setAutoRaise(true);
    statusBar()->addPermanentWidget(m_jobLabel);
    statusBar()->addPermanentWidget(m_jobProgress);
    statusBar()->addPermanentWidget(m_jobCancel);
    statusBar()->addPermanentWidget(m_zoomLabel);
    statusBar()->addPermanentWidget(m_pixelLabel);
    m_jobLabel->hide();
    m_jobProgress->hide();
    m_jobCancel->hide();
    m_jobShowTimer = new QTimer(this);
    m_jobShowTimer->setSingleShot(true);
    m_jobShowTimer->setInterval(250);
    connect(m_jobShowTimer, &QTimer::timeout, this, &MainWindow::updateJobDisplay);
    connect(m_jobCancel, &QToolButton::clicked, this, [this]() {
        for (auto it = m_running.rbegin(); it != m_running.rend(); ++it)
            if (*it && (*it)->isRunning()) {
                (*it)->cancel();
                statusBar()->showMessage(tr("Cancelling %1…").arg((*it)->title()), 3000);
                return;
            }
    });
    connect(m_view, &FrameView::pixelHovered, this, [this](int row, int col, double value, bool inside) {
        m_pixelLabel->setText(inside ? tr("row %1  col %2  value %3").arg(row).arg(col).arg(value, 0, 'g', 7) : QString());
    });
    connect(m_view, &FrameView::scaleChanged, this, [this](double s) {
        m_zoomLabel->setText(tr("zoom %1%").arg(s * 100, 0, 'f', s < 0.1 ? 1 : 0));
    });
}

void MainWindow::trackJob(Job *job, bool reportErrors)
{
    if (!job)
        return;
    const bool known = std::any_of(m_tracked.begin(), m_tracked.end(), [job](const QPointer<Job> &j) { return j == job; });
    if (!known) {
        m_tracked.emplace_back(job);
        connect(job, &Job::started, this, [this, job]() {
            m_running.emplace_back(job);
            m_jobShowTimer->start();
        });
        connect(job, &Job::progressUpdated, this, [this, job](double fraction, const QString &message) {
            if (!m_running.empty() && m_running.back() == job) {
                m_jobProgress->setValue(int(std::lround(std::clamp(fraction, 0.0, 1.0) * 1000)));
                m_jobLabel->setText(message.isEmpty() ? job->title() : job->title() + QStringLiteral(": ") + message);
            }
        });
        const auto ended = [this, job]() {
            m_running.erase(std::remove_if(m_running.begin(), m_running.end(),
                                           [job](const QPointer<Job> &j) { return !j || j == job; }),
                            m_running.end());
            updateJobDisplay();
        };
        connect(job, &Job::finished, this, ended);
        connect(job, &Job::cancelled, this, [this, job, ended]() {
            ended();
            statusBar()->showMessage(tr("%1: cancelled").arg(job->title()), 4000);
        });
        connect(job, &Job::failed, this, [this, job, ended, reportErrors](const QString &message) {
            ended();
            if (reportErrors)
                showError(message);
        });
    }
    if (job->isRunning() && std::none_of(m_running.begin(), m_running.end(), [job](const QPointer<Job> &j) { return j == job; })) {
        m_running.emplace_back(job);
        m_jobShowTimer->start();
    }
}

// Jobs of tabs written elsewhere: progress and cancel in the status bar; they report their own
// errors.
void MainWindow::trackForeignJobs(QWidget *root)
{
    if (!root)
        return;
    for (Job *job : root->findChildren<Job *>())
        trackJob(job, false);
}

void MainWindow::updateJobDisplay()
{
    m_running.erase(std::remove_if(m_running.begin(), m_running.end(),
                                   [](const QPointer<Job> &j) { return !j || !j->isRunning(); }),
                    m_running.end());
    const bool busy = !m_running.empty();
    if (busy && !m_jobShowTimer->isActive()) {
        Job *job = m_running.back();
        if (m_jobLabel->text().isEmpty() || !m_jobLabel->text().startsWith(job->title()))
            m_jobLabel->setText(job->title());
        m_jobLabel->show();
        m_jobProgress->show();
        m_jobCancel->show();
    } else if (!busy) {
        m_jobLabel->hide();
        m_jobLabel->clear();
        m_jobProgress->hide();
        m_jobProgress->setValue(0);
        m_jobCancel->hide();
    }
}

bool MainWindow::isBusy() const
{
    return std::any_of(m_tracked.begin(), m_tracked.end(), [](const QPointer<Job> &j) { return j && j->isRunning(); });
}

void MainWindow::buildMenus()
{
    const auto icon = [](const char *name) { return QIcon(QStringLiteral(":/braggnac/icons/%1.svg").arg(QLatin1String(name))); };
    QMenu *file = menuBar()->addMenu(tr("&File"));
    QAction *open = file->addAction(icon("open"), tr("&Open frames…"), this, &MainWindow::openFileDialog);
    open->setShortcut(QKeySequence::Open);
    open->setObjectName(QStringLiteral("actionOpen"));
    QAction *openH5 = file->addAction(tr("Open HDF5 &dataset…"), this, [this]() { openHdf5Browser(); });
    openH5->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
    QAction *demo = file->addAction(icon("demo"), tr("Open d&emo (simulated frames)"), this, &MainWindow::openDemo);
    demo->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_D));
    demo->setObjectName(QStringLiteral("actionDemo"));
    // The demo search: simulated realistic patches and a small live search in the Search stage.
    QAction *demoSearch = file->addAction(icon("demo"), tr("Open demo &search (simulated patches, a small live search)"), this, [this]() {
        if (auto *panel = findChild<SearchPanel *>()) {
            setStage(QStringLiteral("search"));
            panel->startDemo();
        }
    });
    demoSearch->setObjectName(QStringLiteral("actionDemoSearch"));
    m_recentMenu = file->addMenu(tr("Open &recent"));
    file->addSeparator();
    file->addAction(tr("Load dar&k frame…"), this, [this]() {
        QSettings settings;
        const QString path = QFileDialog::getOpenFileName(this, tr("Load dark frame"),
            settings.value(QStringLiteral("paths/dark"), settings.value(QStringLiteral("paths/frames"))).toString(),
            tr("Frame files (*.h5 *.hdf5 *.nxs *.ge *.ge2 *.ge3 *.ge4 *.ge5 *.tif *.tiff);;All files (*)"));
        if (!path.isEmpty()) {
            settings.setValue(QStringLiteral("paths/dark"), QFileInfo(path).absolutePath());
            m_framesPanel->loadDark(path);
        }
    });
    QAction *model = file->addAction(tr("Open &model…"), this, &MainWindow::openModelDialog);
    model->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_M));
    file->addSeparator();
    QAction *exportView = file->addAction(tr("Export &view image (PNG/SVG)…"), this, &MainWindow::exportViewImage);
    exportView->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
    QAction *exportPatch = file->addAction(tr("Export &patch image (PNG/SVG)…"), this, &MainWindow::exportPatchImage);
    file->addAction(tr("Export peak &table (CSV)…"), this, &MainWindow::exportPeakTable);
    file->addSeparator();
    QAction *quit = file->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setShortcut(QKeySequence::Quit);

    QMenu *view = menuBar()->addMenu(tr("&View"));
    QAction *fit = view->addAction(icon("zoom-fit"), tr("&Fit to window"), m_view, &FrameView::fitToWindow);
    fit->setShortcut(QKeySequence(Qt::Key_F));
    QAction *zoomIn = view->addAction(tr("Zoom &in"), this, [this]() { m_view->zoomBy(1.25); });
    zoomIn->setShortcuts({QKeySequence(Qt::Key_Plus), QKeySequence(Qt::Key_Equal), QKeySequence::ZoomIn});
    QAction *zoomOut = view->addAction(tr("Zoom &out"), this, [this]() { m_view->zoomBy(0.8); });
    zoomOut->setShortcuts({QKeySequence(Qt::Key_Minus), QKeySequence::ZoomOut});
    QAction *actual = view->addAction(tr("&Actual pixels (100%)"), this, [this]() {
        m_view->setScale(1.0, QPointF(m_view->width() / 2.0, m_view->height() / 2.0));
    });
    actual->setShortcut(QKeySequence(Qt::Key_1));
    view->addSeparator();
    QAction *next = view->addAction(tr("&Next frame"), this, [this]() { m_framesPanel->step(+1); });
    next->setShortcut(QKeySequence(Qt::Key_PageDown));
    QAction *prev = view->addAction(tr("&Previous frame"), this, [this]() { m_framesPanel->step(-1); });
    prev->setShortcut(QKeySequence(Qt::Key_PageUp));
    view->addAction(tr("First frame\tHome"), m_framesPanel, &FramesPanel::showFirst);
    view->addAction(tr("Last frame\tEnd"), m_framesPanel, &FramesPanel::showLast);
    QAction *max = view->addAction(tr("&Max over frames"), this, [this]() { m_framesPanel->setMaxView(!m_framesPanel->maxView()); });
    max->setShortcut(QKeySequence(Qt::Key_M));
    // Right-click menus on the images.
    m_view->setContextMenuPolicy(Qt::ActionsContextMenu);
    m_view->addActions({fit, zoomIn, zoomOut, actual, max, exportView});
    m_inspector->setContextMenuPolicy(Qt::ActionsContextMenu);
    m_inspector->addAction(exportPatch);
    view->addSeparator();
    QMenu *stages = view->addMenu(tr("&Stage"));
    for (int i = 0; i < m_stageList->count(); ++i) {
        const QString key = m_stageList->item(i)->data(Qt::UserRole).toString();
        QAction *a = stages->addAction(m_stageList->item(i)->icon(), m_stageList->item(i)->text(), this, [this, key]() { setStage(key); });
        if (i < 9)
            a->setShortcut(QKeySequence(Qt::CTRL | (Qt::Key_1 + i)));
    }

    QMenu *peaks = menuBar()->addMenu(tr("&Peaks"));
    QAction *find = peaks->addAction(icon("find"), tr("&Find peaks in current frame"), m_peaksPanel, &PeaksPanel::findInCurrentFrame);
    find->setShortcut(QKeySequence::Find);
    find->setObjectName(QStringLiteral("actionFind"));
    QAction *findAll = peaks->addAction(tr("Find peaks in &all frames"), this, [this]() {
        m_peaksPanel->findInRange(0, m_framesPanel->frameCount());
    });
    findAll->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_F));
    QAction *fitPeaks = peaks->addAction(icon("fit"), tr("Fi&t peaks (pseudo-Voigt)"), m_peaksPanel, &PeaksPanel::fitPeaks);
    fitPeaks->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_T));
    peaks->addAction(tr("&Predict with model"), m_peaksPanel, &PeaksPanel::predict);
    peaks->addAction(icon("dataset"), tr("&Use as dataset"), m_peaksPanel, &PeaksPanel::sendToDataset);
    peaks->addSeparator();
    peaks->addAction(tr("&Clear peaks"), m_peaksPanel, &PeaksPanel::clearPeaks);
    QAction *cancel = peaks->addAction(icon("cancel"), tr("Ca&ncel running job"), m_jobCancel, &QToolButton::click);
    cancel->setShortcut(QKeySequence(Qt::Key_Escape));

    QMenu *help = menuBar()->addMenu(tr("&Help"));
    help->addAction(icon("braggnac"), tr("&About BraggNAC Studio"), this, &MainWindow::showAbout);
    help->addAction(tr("About &Qt"), qApp, &QApplication::aboutQt);

    auto *toolbar = addToolBar(tr("Main"));
    toolbar->setObjectName(QStringLiteral("mainToolbar"));
    toolbar->setIconSize(QSize(20, 20));
    toolbar->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    toolbar->addAction(open);
    toolbar->addAction(demo);
    toolbar->addSeparator();
    toolbar->addAction(fit);
    toolbar->addAction(find);
    toolbar->addAction(fitPeaks);
    rebuildRecentMenu();
}

void MainWindow::restoreSettings()
{
    QSettings s;
    if (!restoreGeometry(s.value(QStringLiteral("window/geometry")).toByteArray()))
        resize(1400, 900);
    restoreState(s.value(QStringLiteral("window/state")).toByteArray());
    m_mainSplitter->restoreState(s.value(QStringLiteral("window/framesSplitter")).toByteArray());
    m_viewSplitter->restoreState(s.value(QStringLiteral("window/viewSplitter")).toByteArray());
    m_bottomSplitter->restoreState(s.value(QStringLiteral("window/tableSplitter")).toByteArray());
    m_sideTabs->setCurrentIndex(s.value(QStringLiteral("window/sideTab"), 0).toInt());
}

void MainWindow::saveSettings() const
{
    QSettings s;
    s.setValue(QStringLiteral("window/geometry"), saveGeometry());
    s.setValue(QStringLiteral("window/state"), saveState());
    s.setValue(QStringLiteral("window/framesSplitter"), m_mainSplitter->saveState());
    s.setValue(QStringLiteral("window/viewSplitter"), m_viewSplitter->saveState());
    s.setValue(QStringLiteral("window/tableSplitter"), m_bottomSplitter->saveState());
    s.setValue(QStringLiteral("window/sideTab"), m_sideTabs->currentIndex());
}

void MainWindow::closeEvent(QCloseEvent *event)
{
    // Closing while work runs asks first: a search or a training would otherwise lose the
    // trials and epochs in progress without a word.
    QStringList running;
    for (const QPointer<Job> &job : m_tracked)
        if (job && job->isRunning() && !running.contains(job->title()))
            running << job->title();
    if (!running.isEmpty() && !m_quitConfirmed) {
        event->ignore();
        if (findChild<QMessageBox *>(QStringLiteral("quitWhileBusyBox")))
            return; // already asking
        auto *box = new QMessageBox(QMessageBox::Question, tr("Quit BraggNAC Studio"),
                                    tr("Still running: %1.\n\nQuit and stop it? Finished work is kept (a search's "
                                       "finished trials are in its study file; running trials are requeued and "
                                       "run again when the search is resumed); work in progress is lost.")
                                        .arg(running.join(QStringLiteral(", "))),
                                    QMessageBox::NoButton, this);
        box->setObjectName(QStringLiteral("quitWhileBusyBox"));
        QPushButton *quit = box->addButton(tr("Stop and Quit"), QMessageBox::DestructiveRole);
        quit->setObjectName(QStringLiteral("quitButton"));
        box->addButton(QMessageBox::Cancel)->setObjectName(QStringLiteral("keepRunningButton"));
        box->setDefaultButton(QMessageBox::Cancel);
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->setWindowModality(Qt::WindowModal);
        connect(box, &QMessageBox::buttonClicked, this, [this, quit](QAbstractButton *button) {
            if (button != quit)
                return;
            m_quitConfirmed = true;
            QTimer::singleShot(0, this, &QWidget::close);
        });
        box->open();
        return;
    }
    saveSettings();
    for (const QPointer<Job> &job : m_tracked)
        if (job && job->isRunning())
            job->cancel();
    event->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent *event)
{
    const auto urls = event->mimeData()->urls();
    if (!urls.isEmpty() && urls.first().isLocalFile())
        event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent *event)
{
    const auto urls = event->mimeData()->urls();
    if (urls.isEmpty() || !urls.first().isLocalFile())
        return;
    event->acceptProposedAction();
    const QString path = urls.first().toLocalFile();
    QTimer::singleShot(0, this, [this, path]() { openFile(path); });
}

QString MainWindow::currentFile() const
{
    const auto source = m_context->frames();
    return source ? QString::fromStdString(source->path()) : QString();
}

QString MainWindow::demoPath() const
{
    return m_demoPath;
}

void MainWindow::updateTitle()
{
    const QString file = currentFile();
    setWindowTitle(file.isEmpty() ? tr("BraggNAC Studio") : tr("%1 — BraggNAC Studio").arg(QFileInfo(file).fileName()));
}

void MainWindow::showError(const QString &message)
{
    Q_EMIT errorShown(message);
    statusBar()->showMessage(message, 10000);
    auto *box = new QMessageBox(QMessageBox::Warning, tr("BraggNAC Studio"), message, QMessageBox::Ok, this);
    box->setObjectName(QStringLiteral("errorBox"));
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->setWindowModality(Qt::WindowModal);
    box->open();
}

void MainWindow::openFile(const QString &path, const QString &dataset)
{
    const QFileInfo info(path);
    if (!info.exists()) {
        showError(tr("%1: no such file").arg(path));
        return;
    }
    if (!info.isFile()) {
        showError(info.isDir() ? tr("%1: is a folder, not a file").arg(path)
                               : tr("%1: not a regular file").arg(path));
        return;
    }
    if (m_openJob->isRunning()) {
        showError(tr("%1: %2 is still opening").arg(path, m_openingPath));
        return;
    }
    if (dataset.isEmpty() && looksLikeHdf5(path)) {
        std::vector<core::Hdf5DatasetInfo> datasets;
        try {
            datasets = core::listHdf5Datasets(path.toStdString());
        } catch (const std::exception &e) {
            showError(QString::fromStdString(e.what()));
            return;
        }
        const bool hasDefault = std::any_of(datasets.begin(), datasets.end(), [](const core::Hdf5DatasetInfo &d) {
            return d.path == core::kDefaultHdf5Dataset && d.usableAsFrames;
        });
        if (!hasDefault) {
            openHdf5Browser(path);
            return;
        }
    }
    m_openingPath = info.absoluteFilePath();
    m_openingDataset = dataset;
    auto result = std::make_shared<std::shared_ptr<const core::FrameSource>>();
    m_openResult = result;
    const std::string p = m_openingPath.toStdString(), d = dataset.toStdString();
    m_openJob->start([p, d, result](const core::Monitor &monitor) {
        monitor.report(0, "reading the header");
        std::shared_ptr<const core::FrameSource> source = core::openFrameSource(p, d);
        if (source->frameCount() <= 0)
            throw core::InputError(core::fileMessage(p, "holds no frames"));
        *result = std::move(source);
    });
}

void MainWindow::openFileDialog()
{
    QSettings settings;
    const QString path = QFileDialog::getOpenFileName(
        this, tr("Open frames"), settings.value(QStringLiteral("paths/frames")).toString(),
        tr("Frame files (*.h5 *.hdf5 *.nxs *.ge *.ge2 *.ge3 *.ge4 *.ge5 *.tif *.tiff);;HDF5 (*.h5 *.hdf5 *.nxs);;"
           "GE raw (*.ge *.ge2 *.ge3 *.ge4 *.ge5);;TIFF (*.tif *.tiff);;All files (*)"));
    if (!path.isEmpty())
        openFile(path);
}

void MainWindow::openHdf5Browser(const QString &givenPath)
{
    QString path = givenPath;
    if (path.isEmpty()) {
        QSettings settings;
        path = QFileDialog::getOpenFileName(this, tr("Open HDF5 dataset"), settings.value(QStringLiteral("paths/frames")).toString(),
                                            tr("HDF5 (*.h5 *.hdf5 *.nxs *.hdf);;All files (*)"));
        if (path.isEmpty())
            return;
    }
    Hdf5BrowserDialog *dialog = nullptr;
    try {
        const auto source = m_context->frames();
        const QString current = source && QString::fromStdString(source->path()) == QFileInfo(path).absoluteFilePath()
                                    ? QString::fromStdString(source->dataset())
                                    : QString::fromLatin1(core::kDefaultHdf5Dataset);
        dialog = new Hdf5BrowserDialog(path, current, this);
    } catch (const std::exception &e) {
        showError(QString::fromStdString(e.what()));
        return;
    }
    if (dialog->usableCount() == 0) {
        const QString message = tr("%1: no 2-D or 3-D numeric dataset to show as frames").arg(path);
        delete dialog;
        showError(message);
        return;
    }
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QDialog::accepted, this, [this, dialog]() {
        const QString dataset = dialog->selectedDataset();
        const QString file = dialog->path();
        if (!dataset.isEmpty())
            QTimer::singleShot(0, this, [this, file, dataset]() { openFile(file, dataset); });
    });
    dialog->open();
}

void MainWindow::openDemo()
{
    if (!m_demoPath.isEmpty() && QFileInfo::exists(m_demoPath)) {
        openFile(m_demoPath);
        return;
    }
    if (m_demoJob->isRunning())
        return;
    if (!m_demoDir)
        m_demoDir = std::make_unique<QTemporaryDir>(QDir::temp().filePath(QStringLiteral("braggnac-demo-XXXXXX")));
    if (!m_demoDir->isValid()) {
        showError(tr("%1: cannot create a temporary folder for the demo (%2)").arg(QDir::tempPath(), m_demoDir->errorString()));
        return;
    }
    QSettings settings;
    const int size = std::clamp(settings.value(QStringLiteral("demo/size"), 2048).toInt(), 256, 4096);
    const int frames = std::clamp(settings.value(QStringLiteral("demo/frames"), 4).toInt(), 1, 100);
    const int peaks = std::clamp(settings.value(QStringLiteral("demo/peaks"), 300).toInt(), 1, 100000);
    const QString path = m_demoDir->filePath(QStringLiteral("demo-frames.h5"));
    m_demoPending = path;
    const std::string p = path.toStdString();
    m_demoJob->start([p, size, frames, peaks](const core::Monitor &monitor) {
        core::FrameSimOptions options;
        options.size = size;
        options.peaksPerFrame = peaks;
        options.seed = 7;
        const core::SimulatedFrames frames_ = core::simulateFrames(frames, options, monitor.sub(0, 0.9));
        monitor.check();
        monitor.report(0.9, "writing " + p);
        core::writeSimulatedFrames(p, frames_, core::SimFormat::HDF5);
        monitor.report(1.0, "written");
    });
}

void MainWindow::openModelDialog()
{
    QSettings settings;
    const QString folder = QFileDialog::getExistingDirectory(this, tr("Open model folder"),
                                                             settings.value(QStringLiteral("paths/models")).toString());
    if (!folder.isEmpty()) {
        settings.setValue(QStringLiteral("paths/models"), QFileInfo(folder).absolutePath());
        openModel(folder);
    }
}

void MainWindow::openModel(const QString &folder)
{
    if (m_modelJob->isRunning()) {
        showError(tr("%1: a model is still loading").arg(folder));
        return;
    }
    auto result = std::make_shared<std::shared_ptr<const core::Model>>();
    m_modelResult = result;
    m_modelFolder = folder;
    const std::string f = folder.toStdString();
    m_modelJob->start([f, result](const core::Monitor &) {
        *result = std::make_shared<const core::Model>(core::Model::load(f));
    });
}

void MainWindow::addRecent(const QString &path, const QString &dataset)
{
    QSettings settings;
    QVariantList list = settings.value(QStringLiteral("recentFiles")).toList();
    QVariantList out;
    QVariantMap entry;
    entry.insert(QStringLiteral("path"), path);
    entry.insert(QStringLiteral("dataset"), dataset);
    out << entry;
    for (const QVariant &v : list) {
        const QVariantMap m = v.toMap();
        if (m.value(QStringLiteral("path")).toString() == path)
            continue;
        if (out.size() < kMaxRecent)
            out << m;
    }
    settings.setValue(QStringLiteral("recentFiles"), out);
    rebuildRecentMenu();
}

QStringList MainWindow::recentFiles() const
{
    QStringList paths;
    for (const QVariant &v : QSettings().value(QStringLiteral("recentFiles")).toList())
        paths << v.toMap().value(QStringLiteral("path")).toString();
    return paths;
}

void MainWindow::rebuildRecentMenu()
{
    m_recentMenu->clear();
    const QVariantList list = QSettings().value(QStringLiteral("recentFiles")).toList();
    int n = 0;
    for (const QVariant &v : list) {
        const QVariantMap m = v.toMap();
        const QString path = m.value(QStringLiteral("path")).toString();
        const QString dataset = m.value(QStringLiteral("dataset")).toString();
        if (path.isEmpty())
            continue;
        ++n;
        const QString label = dataset.isEmpty() ? QStringLiteral("&%1 %2").arg(n % 10).arg(QFileInfo(path).fileName())
                                                : QStringLiteral("&%1 %2 : %3").arg(n % 10).arg(QFileInfo(path).fileName(), dataset);
        QAction *a = m_recentMenu->addAction(label, this, [this, path, dataset]() { openFile(path, dataset); });
        a->setToolTip(path);
        a->setStatusTip(path);
    }
    if (n == 0) {
        m_recentMenu->addAction(tr("(none)"))->setEnabled(false);
        return;
    }
    m_recentMenu->addSeparator();
    m_recentMenu->addAction(tr("Clear list"), this, [this]() {
        QSettings().remove(QStringLiteral("recentFiles"));
        rebuildRecentMenu();
    });
}

void MainWindow::selectPeak(int id)
{
    selectPeakFrom(id, true);
}

void MainWindow::selectPeakFrom(int id, bool centre)
{
    if (m_selecting)
        return;
    m_selecting = true;
    PeakTableModel *model = m_peaksPanel->peakModel();
    if (id < 0 || id >= model->peakCount()) {
        m_selectedPeak = -1;
        m_view->setSelectedPeak(-1);
        m_table->clearSelection();
        m_inspector->clear();
        m_selecting = false;
        Q_EMIT peakSelected(-1);
        return;
    }
    m_selectedPeak = id;
    const int frame = model->peak(id).frame;
    if (!m_framesPanel->maxView() && frame != m_framesPanel->currentIndex()) {
        m_pendingPeak = id;
        m_framesPanel->showFrame(frame);
    } else {
        m_view->setSelectedPeak(id, centre);
    }
    const QModelIndex proxyIndex = m_peaksPanel->proxy()->mapFromSource(model->index(id, 0));
    if (proxyIndex.isValid()) {
        m_table->selectionModel()->setCurrentIndex(proxyIndex, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
        m_table->scrollTo(proxyIndex);
    } else {
        m_table->clearSelection();
    }
    m_inspector->showPatch(m_peaksPanel->details(id));
    m_selecting = false;
    Q_EMIT peakSelected(id);
}

void MainWindow::exportViewImage()
{
    if (!m_view->hasImage()) {
        showError(tr("Export view: no image is shown"));
        return;
    }
    QSettings settings;
    const QString path = QFileDialog::getSaveFileName(this, tr("Export view image"),
        QDir(settings.value(QStringLiteral("paths/export")).toString()).filePath(QStringLiteral("frame.png")),
        tr("PNG image (*.png);;SVG drawing (*.svg)"));
    if (path.isEmpty())
        return;
    settings.setValue(QStringLiteral("paths/export"), QFileInfo(path).absolutePath());
    try {
        m_view->exportImage(path);
        statusBar()->showMessage(tr("Saved %1").arg(path), 4000);
    } catch (const std::exception &e) {
        showError(QString::fromStdString(e.what()));
    }
}

void MainWindow::exportPatchImage()
{
    if (m_selectedPeak < 0) {
        showError(tr("Export patch: select a peak first"));
        return;
    }
    QSettings settings;
    const QString path = QFileDialog::getSaveFileName(this, tr("Export patch image"),
        QDir(settings.value(QStringLiteral("paths/export")).toString()).filePath(QStringLiteral("peak-%1.png").arg(m_selectedPeak)),
        tr("PNG image (*.png);;SVG drawing (*.svg)"));
    if (path.isEmpty())
        return;
    settings.setValue(QStringLiteral("paths/export"), QFileInfo(path).absolutePath());
    try {
        m_inspector->exportImage(path);
        statusBar()->showMessage(tr("Saved %1").arg(path), 4000);
    } catch (const std::exception &e) {
        showError(QString::fromStdString(e.what()));
    }
}

void MainWindow::exportPeakTable()
{
    QSettings settings;
    const QString path = QFileDialog::getSaveFileName(this, tr("Export peak table"),
        QDir(settings.value(QStringLiteral("paths/export")).toString()).filePath(QStringLiteral("peaks.csv")),
        tr("CSV (*.csv)"));
    if (path.isEmpty())
        return;
    settings.setValue(QStringLiteral("paths/export"), QFileInfo(path).absolutePath());
    try {
        exportTableCsv(*m_peaksPanel->proxy(), path, Qt::EditRole);
        statusBar()->showMessage(tr("Saved %1 (%2 rows)").arg(path).arg(m_peaksPanel->proxy()->rowCount()), 4000);
    } catch (const std::exception &e) {
        showError(QString::fromStdString(e.what()));
    }
}

void MainWindow::showAbout()
{
    auto *dialog = new AboutDialog(this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->open();
}

void MainWindow::startScreenshotTour(const QString &dir)
{
    auto *tour = new ScreenshotTour(this, dir);
    tour->start();
}

} // namespace braggnac::ui
