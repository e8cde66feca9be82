#include "ui/searchpanel.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include <QChart>
#include <QDateTime>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QPushButton>
#include <QSettings>
#include <QShortcut>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QTabWidget>
#include <QTableView>
#include <QToolButton>
#include <QValueAxis>
#include <QVBoxLayout>
#include <QComboBox>
#include <QDir>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QThread>
#include <QtConcurrent/QtConcurrentRun>

#include "core/common/error.h"
#include "core/search/builtinspaces.h"
#include "core/io/patchdataset.h"
#include "core/nn/searchrunner.h"
#include "core/search/driver.h"
#include "core/search/tpe.h"
#include "core/search/tune.h"
#include "core/sim/simulator.h"
#include "ui/chartview.h"
#include "ui/errors.h"
#include "ui/job.h"
#include "ui/searchjob.h"
#include "ui/trialactions.h"
#include "ui/paretochart.h"
#include "ui/spaceeditor.h"
#include "ui/studiocontext.h"
#include "ui/studywatcher.h"
#include "ui/tableexport.h"
#include "ui/trialinspector.h"
#include "ui/trialtablemodel.h"

namespace braggnac::ui {

namespace {
QString duration(double seconds)
{
    if (!std::isfinite(seconds) || seconds < 0)
        return QStringLiteral("\u2014");
    const qint64 s = qint64(std::llround(seconds));
    if (s < 60)
        return QStringLiteral("%1 s").arg(s);
    if (s < 3600)
        return QStringLiteral("%1 min %2 s").arg(s / 60).arg(s % 60);
    return QStringLiteral("%1 h %2 min").arg(s / 3600).arg((s % 3600) / 60);
}
} // namespace

SearchPanel::SearchPanel(StudioContext *context, QWidget *parent) : QWidget(parent), m_context(context)
{
    setObjectName(QStringLiteral("searchPanel"));
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    m_tabs = new QTabWidget(this);
    layout->addWidget(m_tabs);
    buildSpaceTab();
    buildStudyTab();

    m_refreshTimer.setSingleShot(true);
    m_refreshTimer.setInterval(40);
    connect(&m_refreshTimer, &QTimer::timeout, this, &SearchPanel::refresh);
    m_clockTimer.setInterval(1000);
    connect(&m_clockTimer, &QTimer::timeout, this, &SearchPanel::updateProgress);
    connect(&m_trialFuture, &QFutureWatcher<std::shared_ptr<core::TrialRecord>>::finished, this, [this]() {
        auto t = m_trialFuture.result();
        if (t && t->id == m_selected)
            m_inspector->setTrial(*t, m_storeFolder);
    });
}

SearchPanel::~SearchPanel()
{
    // Before the members go (the demo folder among them): stop what runs on other threads.
    if (m_run) {
        m_run->stop();
        m_run->wait();
    }
    if (m_actions) {
        m_actions->cancel();
        m_actions->wait();
    }
    if (m_demoJob) {
        m_demoJob->cancel();
        m_demoJob->wait();
    }
    m_trialFuture.waitForFinished();
}

void SearchPanel::buildSpaceTab()
{
    auto *page = new QWidget(m_tabs);
    auto *v = new QVBoxLayout(page);
    auto *bar = new QHBoxLayout;
    auto *builtin = new QComboBox(page);
    builtin->setObjectName(QStringLiteral("builtinSpace"));
    for (const auto &n : core::builtinSpaceNames())
        builtin->addItem(QString::fromStdString(n));
    bar->addWidget(new QLabel(tr("Built-in space:"), page));
    bar->addWidget(builtin);
    auto *open = new QPushButton(tr("Open space\u2026"), page);
    open->setShortcut(QKeySequence(QStringLiteral("Ctrl+Shift+L")));
    open->setToolTip(tr("Open a search space JSON file (Ctrl+Shift+L)"));
    auto *save = new QPushButton(tr("Save space\u2026"), page);
    save->setObjectName(QStringLiteral("saveSpace"));
    save->setShortcut(QKeySequence(QStringLiteral("Ctrl+Shift+S")));
    save->setToolTip(tr("Save the space as JSON for braggnac search --space (Ctrl+Shift+S)"));
    bar->addWidget(open);
    bar->addWidget(save);
    bar->addStretch(1);
    v->addLayout(bar);
    m_editor = new SpaceEditor(page);
    v->addWidget(m_editor, 1);
    m_tabs->addTab(page, tr("Space"));

    connect(builtin, &QComboBox::textActivated, this, [this](const QString &name) {
        try {
            m_editor->setSpace(core::resolveSpace(name.toStdString()));
        } catch (const std::exception &e) {
            showError(tr("Search space"), QString::fromStdString(e.what()));
        }
    });
    connect(open, &QPushButton::clicked, this, &SearchPanel::openSpaceDialog);
    connect(save, &QPushButton::clicked, this, &SearchPanel::saveSpaceDialog);
    connect(m_editor, &SpaceEditor::spaceChanged, save, &QPushButton::setEnabled);
    connect(m_editor, &SpaceEditor::errorOccurred, this,
            [this](const QString &m) { showError(tr("Search space"), m); });
    try {
        m_editor->setSpace(core::resolveSpace("nac"));
    } catch (const std::exception &e) {
        showError(tr("Search space"), QString::fromStdString(e.what()));
    }
}

void SearchPanel::buildStudyTab()
{
    auto *page = new QWidget(m_tabs);
    auto *v = new QVBoxLayout(page);
    auto *bar = new QHBoxLayout;
    m_attach = new QPushButton(tr("Attach study\u2026"), page);
    m_attach->setObjectName(QStringLiteral("attachStudy"));
    m_attach->setShortcut(QKeySequence(QStringLiteral("Ctrl+Shift+A")));
    m_attach->setToolTip(tr("Watch a study file (read-only) that a CLI or MPI search is writing (Ctrl+Shift+A)"));
    m_detach = new QPushButton(tr("Detach"), page);
    m_detach->setEnabled(false);
    auto *exportCsv = new QPushButton(tr("Trials CSV\u2026"), page);
    exportCsv->setToolTip(tr("Export the trial table as shown (sorted, filtered)"));
    m_studyPath = new QLabel(tr("No study attached."), page);
    m_studyPath->setObjectName(QStringLiteral("studyPath"));
    bar->addWidget(m_attach);
    bar->addWidget(m_detach);
    bar->addWidget(m_studyPath, 1);
    m_colourBy = new QComboBox(page);
    m_colourBy->setObjectName(QStringLiteral("colourBy"));
    m_colourBy->addItem(tr("state"), int(ParetoChart::Colouring::State));
    m_colourBy->addItem(tr("generation"), int(ParetoChart::Colouring::Generation));
    m_colourBy->addItem(tr("fidelity (epochs)"), int(ParetoChart::Colouring::Fidelity));
    m_colourBy->setToolTip(tr("Colour the trials of the Pareto chart by state, NSGA-II generation or fidelity"));
    bar->addWidget(new QLabel(tr("Colour by:"), page));
    bar->addWidget(m_colourBy);
    bar->addWidget(exportCsv);
    v->addLayout(bar);
    buildRunRow(page, v);
    m_progress = new QLabel(page);
    m_progress->setObjectName(QStringLiteral("studyProgress"));
    m_progress->setTextFormat(Qt::RichText);
    v->addWidget(m_progress);
    m_message = new QLabel(page);
    m_message->setObjectName(QStringLiteral("studyMessage"));
    m_message->setStyleSheet(QStringLiteral("color: #c0392b;"));
    m_message->setWordWrap(true);
    m_message->setVisible(false);
    v->addWidget(m_message);

    auto *vsplit = new QSplitter(Qt::Vertical, page);
    auto *hsplit = new QSplitter(Qt::Horizontal, vsplit);
    auto *charts = new QSplitter(Qt::Vertical, hsplit);
    m_pareto = new ParetoChart(charts);
    m_pareto->setObjectName(QStringLiteral("paretoChart"));
    m_pareto->setMinimumSize(420, 330);
    auto *hv = new QChart;
    hv->setTitle(tr("Hypervolume of the front (distance, log10 BOPs)"));
    hv->legend()->hide();
    m_hvSeries = new QLineSeries(hv);
    QPen hvPen(QColor(200, 50, 40), 2);
    m_hvSeries->setPen(hvPen);
    hv->addSeries(m_hvSeries);
    m_hvX = new QValueAxis(hv);
    m_hvX->setTitleText(tr("minutes since the first trial started"));
    m_hvX->setLabelFormat(QStringLiteral("%.1f"));
    m_hvX->setTickCount(5);
    m_hvY = new QValueAxis(hv);
    m_hvY->setTitleText(tr("HV"));
    m_hvY->setLabelFormat(QStringLiteral("%.2f"));
    m_hvY->setTickCount(4);
    hv->addAxis(m_hvX, Qt::AlignBottom);
    hv->addAxis(m_hvY, Qt::AlignLeft);
    m_hvSeries->attachAxis(m_hvX);
    m_hvSeries->attachAxis(m_hvY);
    m_hvChart = new ChartView(hv, charts);
    m_hvChart->setMinimumHeight(200);
    charts->addWidget(m_pareto);
    charts->addWidget(m_hvChart);
    charts->setStretchFactor(0, 3);
    charts->setStretchFactor(1, 1);

    auto *tableBox = new QWidget(hsplit);
    auto *tv = new QVBoxLayout(tableBox);
    tv->setContentsMargins(0, 0, 0, 0);
    m_filter = new QLineEdit(tableBox);
    m_filter->setObjectName(QStringLiteral("trialFilter"));
    m_filter->setPlaceholderText(tr("Filter trials (e.g. complete, pruned, \u2605 for the front)"));
    m_filter->setClearButtonEnabled(true);
    tv->addWidget(m_filter);
    m_model = new TrialTableModel(this);
    m_proxy = new QSortFilterProxyModel(this);
    m_proxy->setSourceModel(m_model);
    m_proxy->setSortRole(Qt::EditRole);
    m_proxy->setFilterKeyColumn(-1);
    m_proxy->setFilterCaseSensitivity(Qt::CaseInsensitive);
    m_table = new QTableView(tableBox);
    m_table->setObjectName(QStringLiteral("trialTable"));
    m_table->setModel(m_proxy);
    m_table->setSortingEnabled(true);
    m_table->sortByColumn(TrialTableModel::Number, Qt::AscendingOrder);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->verticalHeader()->setVisible(false);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->horizontalHeader()->setStretchLastSection(true);
    tv->addWidget(m_table);
    hsplit->addWidget(charts);
    hsplit->addWidget(tableBox);
    hsplit->setStretchFactor(0, 3);
    hsplit->setStretchFactor(1, 2);

    m_inspector = new TrialInspector(vsplit);
    m_inspector->setObjectName(QStringLiteral("trialInspector"));
    vsplit->addWidget(hsplit);
    vsplit->addWidget(m_inspector);
    vsplit->setStretchFactor(0, 3);
    vsplit->setStretchFactor(1, 2);
    v->addWidget(vsplit, 1);
    m_tabs->addTab(page, tr("Study"));

    m_watcher = new StudyWatcher(this);
    connect(m_watcher, &StudyWatcher::updated, this, &SearchPanel::onWatcherUpdated);
    connect(m_watcher, &StudyWatcher::attached, this, [this](const QString &path) {
        m_studyPath->setText(tr("Study: %1 (read-only, live)").arg(path));
        m_detach->setEnabled(true);
        m_clockTimer.start();
        QSettings().setValue(QStringLiteral("search/study"), QFileInfo(path).absoluteFilePath());
        Q_EMIT studyAttached(path);
    });
    connect(m_watcher, &StudyWatcher::failed, this, [this](const QString &message) {
        m_clockTimer.stop();
        m_detach->setEnabled(false);
        m_studyPath->setText(tr("No study attached."));
        m_message->setText(message);
        m_message->setVisible(true);
        showError(tr("Study"), message);
    });
    connect(m_attach, &QPushButton::clicked, this, &SearchPanel::attachStudyDialog);
    connect(m_detach, &QPushButton::clicked, this, &SearchPanel::detachStudy);
    connect(exportCsv, &QPushButton::clicked, this, &SearchPanel::exportTrialsDialog);
    connect(m_filter, &QLineEdit::textChanged, m_proxy, &QSortFilterProxyModel::setFilterFixedString);
    connect(m_pareto, &ParetoChart::trialClicked, this, &SearchPanel::selectTrial);
    connect(m_table->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
            [this](const QModelIndex &current) {
                if (m_syncing || !current.isValid())
                    return;
                selectTrial(m_proxy->data(current, TrialTableModel::IdRole).toLongLong());
            });
    connect(m_inspector, &TrialInspector::useModelRequested, this, &SearchPanel::useModelRequested);
    connect(m_inspector, &TrialInspector::errorOccurred, this,
            [this](const QString &m) { showError(tr("Trial"), m); });
    connect(m_colourBy, &QComboBox::currentIndexChanged, this, [this](int) {
        const auto c = ParetoChart::Colouring(m_colourBy->currentData().toInt());
        m_pareto->setColouring(c);
        QSettings().setValue(QStringLiteral("search/colour_by"), m_colourBy->currentData().toInt());
    });
    {
        const int saved = QSettings().value(QStringLiteral("search/colour_by"), 0).toInt();
        const int index = m_colourBy->findData(saved);
        if (index > 0)
            m_colourBy->setCurrentIndex(index);
    }

    m_actions = new TrialActions(this);
    connect(m_inspector, &TrialInspector::retrainRequested, this, &SearchPanel::retrainInspected);
    connect(m_inspector, &TrialInspector::tuneRequested, this, &SearchPanel::tuneInspected);
    connect(m_inspector, &TrialInspector::cancelActionRequested, m_actions, &TrialActions::cancel);
    connect(m_actions, &TrialActions::started, m_inspector, &TrialInspector::setActionRunning);
    connect(m_actions, &TrialActions::progressUpdated, m_inspector, &TrialInspector::setActionProgress);
    connect(m_actions, &TrialActions::failed, this, [this](const QString &message) {
        m_inspector->setActionDone(QStringLiteral("<span style='color:#c0392b'>%1</span>").arg(message.toHtmlEscaped()));
        showError(tr("Trial"), message);
    });
    connect(m_actions, &TrialActions::cancelled, this,
            [this]() { m_inspector->setActionDone(tr("Cancelled (nothing was written).")); });
    connect(m_actions, &TrialActions::finished, this, [this]() {
        const TrialActionResult &r = m_actions->lastResult();
        auto px = [](const nlohmann::json &m, const char *split) {
            if (m.is_object() && m.contains(split) && m[split].is_object() && m[split].contains("mean")
                && m[split]["mean"].is_number())
                return QString::number(m[split]["mean"].get<double>(), 'f', 4) + QStringLiteral(" px");
            return QStringLiteral("\u2014");
        };
        QString html;
        if (r.kind == TrialActionResult::Kind::Retrain) {
            html = tr("<b>Retrained</b> for %1 epochs: validation %2, test %3<br>%4")
                       .arg(r.epochs).arg(px(r.metrics, "validation"), px(r.metrics, "test"), r.modelFolder.toHtmlEscaped());
        } else {
            html = tr("<b>Tuned</b>: %1 complete, %2 pruned, %3 failed in %4")
                       .arg(r.counts.complete).arg(r.counts.pruned).arg(r.counts.failed).arg(r.studyPath.toHtmlEscaped());
            if (r.bestNumber >= 0)
                html += tr("<br>best trial %1: %2 px with %3")
                            .arg(r.bestNumber)
                            .arg(r.bestValue, 0, 'f', 4)
                            .arg(QString::fromStdString(r.bestParams.dump()).toHtmlEscaped());
        }
        m_inspector->setActionDone(html, r.modelFolder);
        m_context->statusMessage(r.kind == TrialActionResult::Kind::Retrain ? tr("Retrained: %1").arg(r.modelFolder)
                                                                            : tr("Tune study: %1").arg(r.studyPath));
    });
}

void SearchPanel::buildRunRow(QWidget *page, QVBoxLayout *v)
{
    QSettings settings;
    auto *row = new QHBoxLayout;
    row->addWidget(new QLabel(tr("Run:"), page));
    m_dataEdit = new QLineEdit(settings.value(QStringLiteral("search/run_data")).toString(), page);
    m_dataEdit->setObjectName(QStringLiteral("runData"));
    m_dataEdit->setPlaceholderText(tr("labelled patch file (.h5)"));
    m_dataEdit->setToolTip(tr("The labelled patch dataset every trial trains on"));
    auto *browseData = new QToolButton(page);
    browseData->setText(QStringLiteral("\u2026"));
    browseData->setToolTip(tr("Choose the patch dataset"));
    m_studyEdit = new QLineEdit(settings.value(QStringLiteral("search/run_study")).toString(), page);
    m_studyEdit->setObjectName(QStringLiteral("runStudy"));
    m_studyEdit->setPlaceholderText(tr("study file (.db): created, or resumed"));
    auto *browseStudy = new QToolButton(page);
    browseStudy->setText(QStringLiteral("\u2026"));
    browseStudy->setToolTip(tr("Choose the study file (a new one, or one to resume)"));
    auto spin = [&](const char *name, int lo, int hi, int value, const QString &tip) {
        auto *box = new QSpinBox(page);
        box->setObjectName(QString::fromLatin1(name));
        box->setRange(lo, hi);
        box->setValue(value);
        box->setToolTip(tip);
        return box;
    };
    const int hw = std::max(1, QThread::idealThreadCount());
    m_trials = spin("runTrials", 1, 10000000, settings.value(QStringLiteral("search/run_trials"), 96).toInt(),
                    tr("Finished trials the study should hold (counting earlier runs)"));
    m_epochs = spin("runEpochs", 1, 100000, settings.value(QStringLiteral("search/run_epochs"), 20).toInt(),
                    tr("Per-trial budget in epochs"));
    m_workers = spin("runWorkers", 1, 1024, settings.value(QStringLiteral("search/run_workers"), hw).toInt(),
                     tr("Trials trained at once (one LibTorch thread each)"));
    m_population = spin("runPopulation", 2, 100000, settings.value(QStringLiteral("search/run_population"), 20).toInt(),
                        tr("NSGA-II population size"));
    m_batch = spin("runBatch", 1, 1 << 20, settings.value(QStringLiteral("search/run_batch"), 256).toInt(),
                   tr("Training batch size of every trial (braggnac search --batch)"));
    row->addWidget(m_dataEdit, 2);
    row->addWidget(browseData);
    row->addWidget(new QLabel(tr("study"), page));
    row->addWidget(m_studyEdit, 2);
    row->addWidget(browseStudy);
    row->addWidget(new QLabel(tr("trials"), page));
    row->addWidget(m_trials);
    row->addWidget(new QLabel(tr("epochs"), page));
    row->addWidget(m_epochs);
    row->addWidget(new QLabel(tr("workers"), page));
    row->addWidget(m_workers);
    row->addWidget(new QLabel(tr("population"), page));
    row->addWidget(m_population);
    row->addWidget(new QLabel(tr("batch"), page));
    row->addWidget(m_batch);
    m_start = new QPushButton(tr("Start"), page);
    m_start->setObjectName(QStringLiteral("startSearch"));
    m_start->setShortcut(QKeySequence(QStringLiteral("Ctrl+R")));
    m_start->setToolTip(tr("Start a search with the space of the Space tab, or resume the study file (Ctrl+R)"));
    m_pause = new QPushButton(tr("Pause"), page);
    m_pause->setObjectName(QStringLiteral("pauseSearch"));
    m_pause->setToolTip(tr("Pause: no new trial starts, running ones finish; press again to resume"));
    m_stop = new QPushButton(tr("Stop"), page);
    m_stop->setObjectName(QStringLiteral("stopSearch"));
    m_stop->setToolTip(tr("Stop: running trials are cancelled and requeued, every finished trial is kept; "
                          "Start resumes the study"));
    row->addWidget(m_start);
    row->addWidget(m_pause);
    row->addWidget(m_stop);
    v->addLayout(row);
    m_runStatus = new QLabel(page);
    m_runStatus->setObjectName(QStringLiteral("runStatus"));
    m_runStatus->setTextFormat(Qt::RichText);
    m_runStatus->setVisible(false);
    v->addWidget(m_runStatus);

    m_run = new SearchJob(this);
    m_demoJob = new Job(tr("Demo data"), this);
    connect(m_start, &QPushButton::clicked, this, [this]() { startSearch(); });
    connect(m_pause, &QPushButton::clicked, this, [this]() {
        if (m_run->state() == SearchJob::State::Paused)
            resumeSearch();
        else
            pauseSearch();
    });
    connect(m_stop, &QPushButton::clicked, this, &SearchPanel::stopSearch);
    connect(m_studyEdit, &QLineEdit::textChanged, this, &SearchPanel::updateRunControls);
    connect(browseData, &QToolButton::clicked, this, [this]() {
        auto *dialog = new QFileDialog(this, tr("Patch dataset for the search"), m_dataEdit->text(),
                                       tr("Patch files (*.h5 *.hdf5);;All files (*)"));
        dialog->setFileMode(QFileDialog::ExistingFile);
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        connect(dialog, &QFileDialog::fileSelected, m_dataEdit, &QLineEdit::setText);
        dialog->open();
    });
    connect(browseStudy, &QToolButton::clicked, this, [this]() {
        auto *dialog = new QFileDialog(this, tr("Study file"), m_studyEdit->text(), tr("Study files (*.db);;All files (*)"));
        dialog->setAcceptMode(QFileDialog::AcceptSave);
        dialog->setOption(QFileDialog::DontConfirmOverwrite); // an existing study is resumed, never replaced
        dialog->setDefaultSuffix(QStringLiteral("db"));
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        connect(dialog, &QFileDialog::fileSelected, m_studyEdit, &QLineEdit::setText);
        dialog->open();
    });
    connect(m_context, &StudioContext::datasetChanged, this, [this]() {
        if (m_dataEdit->text().isEmpty() && !m_context->datasetPath().isEmpty())
            m_dataEdit->setText(m_context->datasetPath());
    });
    connect(m_run, &SearchJob::storeReady, this, [this](const QString &path) {
        if (QFileInfo(m_watcher->path()).absoluteFilePath() != QFileInfo(path).absoluteFilePath()
            || !m_watcher->isAttached())
            attachStudy(path);
    });
    connect(m_run, &SearchJob::statusUpdated, this, &SearchPanel::updateRunStatus);
    connect(m_run, &SearchJob::stateChanged, this, [this]() {
        updateRunControls();
        updateRunStatus();
    });
    auto ended = [this](const QString &how) {
        m_runEnd = how;
        m_watcher->pollNow();
        updateRunControls();
        updateRunStatus();
        updateProgress();
    };
    connect(m_run, &SearchJob::finished, this, [this, ended]() {
        const auto &summary = m_run->summary();
        ended(summary && summary->exhausted ? tr("Ended: the space has no new valid spec left.")
                                            : tr("Finished: the study holds its trials."));
        m_context->statusMessage(tr("Search finished: %1").arg(m_run->params().studyPath));
    });
    connect(m_run, &SearchJob::stopped, this, [this, ended]() {
        const auto &summary = m_run->summary();
        ended(tr("Stopped: every finished trial is kept%1; Start resumes the study.")
                  .arg(summary ? tr(" (running trials requeued: %1)").arg(summary->requeued) : QString()));
    });
    connect(m_run, &SearchJob::failed, this, [this, ended](const QString &message) {
        ended(QStringLiteral("<span style='color:#c0392b'>%1</span>").arg(message.toHtmlEscaped()));
        showError(tr("Search"), message);
    });
    connect(m_demoJob, &Job::progressUpdated, this, [this](double f, const QString &message) {
        m_runStatus->setVisible(true);
        m_runStatus->setText(tr("Demo: %1 (%2 %)").arg(message.toHtmlEscaped()).arg(int(f * 100)));
    });
    connect(m_demoJob, &Job::failed, this, [this](const QString &message) {
        m_runStatus->setText(QStringLiteral("<span style='color:#c0392b'>%1</span>").arg(message.toHtmlEscaped()));
        showError(tr("Demo"), message);
        updateRunControls();
    });
    connect(m_demoJob, &Job::cancelled, this, [this]() {
        m_runStatus->setText(tr("Demo cancelled."));
        updateRunControls();
    });
    connect(m_demoJob, &Job::finished, this, [this]() {
        QSettings settings;
        const QDir dir(m_demoDir->path());
        setRunInputs(dir.filePath(QStringLiteral("demo-patches.h5")), dir.filePath(QStringLiteral("demo-search.db")),
                     std::clamp(settings.value(QStringLiteral("demo/search_trials"), 12).toInt(), 1, 10000),
                     std::clamp(settings.value(QStringLiteral("demo/search_epochs"), 2).toInt(), 1, 1000),
                     std::clamp(settings.value(QStringLiteral("demo/search_workers"), 2).toInt(), 1, 64),
                     std::clamp(settings.value(QStringLiteral("demo/search_population"), 6).toInt(), 2, 1000),
                     std::clamp(settings.value(QStringLiteral("demo/search_batch"), 64).toInt(), 1, 65536));
        startSearch();
    });
    updateRunControls();
}

void SearchPanel::setRunInputs(const QString &dataPath, const QString &studyPath, int trials, int epochs, int workers,
                               int population, int batch)
{
    m_batch->setValue(batch);
    m_dataEdit->setText(dataPath);
    m_studyEdit->setText(studyPath);
    m_trials->setValue(trials);
    m_epochs->setValue(epochs);
    m_workers->setValue(workers);
    m_population->setValue(population);
    updateRunControls();
}

bool SearchPanel::startSearch()
{
    if (m_run->isRunning())
        return false;
    const auto &space = m_editor->space();
    if (!space) {
        showError(tr("Search"), tr("The search space has errors (Space tab): %1").arg(m_editor->errorMessage()));
        return false;
    }
    SearchRunParams p;
    p.dataPath = m_dataEdit->text().trimmed();
    p.studyPath = m_studyEdit->text().trimmed();
    p.search.trials = m_trials->value();
    p.search.epochs = m_epochs->value();
    p.search.population = m_population->value();
    p.search.seed = 1;
    p.workers = m_workers->value();
    // The recipe `braggnac search` uses with only --batch: defaults, seed 1, one LibTorch
    // thread per worker.
    p.recipe.seed = 1;
    p.recipe.threads = 1;
    p.recipe.batchSize = m_batch->value();
    QString error;
    if (!m_run->start(p, *space, &error)) {
        showError(tr("Search"), error);
        return false;
    }
    QSettings settings;
    settings.setValue(QStringLiteral("search/run_data"), p.dataPath);
    settings.setValue(QStringLiteral("search/run_study"), p.studyPath);
    settings.setValue(QStringLiteral("search/run_trials"), p.search.trials);
    settings.setValue(QStringLiteral("search/run_epochs"), p.search.epochs);
    settings.setValue(QStringLiteral("search/run_workers"), p.workers);
    settings.setValue(QStringLiteral("search/run_population"), p.search.population);
    settings.setValue(QStringLiteral("search/run_batch"), p.recipe.batchSize);
    m_runEnd.clear();
    m_tabs->setCurrentIndex(1);
    return true;
}

void SearchPanel::pauseSearch()
{
    m_run->pause();
}

void SearchPanel::resumeSearch()
{
    m_run->resume();
}

void SearchPanel::stopSearch()
{
    m_run->stop();
}

void SearchPanel::updateRunControls()
{
    const SearchJob::State state = m_run->state();
    const bool idle = state == SearchJob::State::Idle && !m_demoJob->isRunning();
    m_start->setEnabled(idle);
    m_start->setText(QFileInfo::exists(m_studyEdit->text().trimmed()) ? tr("Resume study") : tr("Start"));
    m_pause->setEnabled(state == SearchJob::State::Running || state == SearchJob::State::Paused);
    m_pause->setText(state == SearchJob::State::Paused ? tr("Resume") : tr("Pause"));
    m_stop->setEnabled(state == SearchJob::State::Running || state == SearchJob::State::Paused
                       || m_demoJob->isRunning());
    for (QWidget *w : {static_cast<QWidget *>(m_dataEdit), static_cast<QWidget *>(m_studyEdit),
                       static_cast<QWidget *>(m_trials), static_cast<QWidget *>(m_epochs),
                       static_cast<QWidget *>(m_workers), static_cast<QWidget *>(m_population),
                       static_cast<QWidget *>(m_batch)})
        w->setEnabled(idle);
}

void SearchPanel::updateRunStatus()
{
    const SearchJob::State state = m_run->state();
    if (state == SearchJob::State::Idle) {
        m_runStatus->setVisible(!m_runEnd.isEmpty());
        m_runStatus->setText(m_runEnd);
        return;
    }
    const SearchRunStatus s = m_run->status();
    QString text;
    switch (state) {
    case SearchJob::State::Running:
        text = tr("<b>Searching here</b>");
        break;
    case SearchJob::State::Paused:
        text = s.busy > 0 ? tr("<b>Paused</b>: no new trials; %1 running finishing").arg(s.busy)
                          : tr("<b>Paused</b>: no trial running; Resume continues");
        break;
    default:
        text = tr("<b>Stopping</b>: cancelling the running trials (they are requeued)");
        break;
    }
    text += tr(" &nbsp;\u00b7&nbsp; workers busy <b>%1 / %2</b>").arg(s.busy).arg(s.capacity);
    if (s.phase != QLatin1String("running") && !s.phase.isEmpty())
        text += QStringLiteral(" &nbsp;\u00b7&nbsp; ") + s.phase.toHtmlEscaped();
    else if (s.haveProgress) {
        text += tr(" &nbsp;\u00b7&nbsp; generation %1").arg(s.progress.generation);
        if (std::isfinite(s.progress.bestDistance))
            text += tr(" &nbsp;\u00b7&nbsp; best %1 px").arg(s.progress.bestDistance, 0, 'f', 4);
        if (s.progress.hypervolume > 0)
            text += tr(" &nbsp;\u00b7&nbsp; HV %1").arg(s.progress.hypervolume, 0, 'f', 3);
    }
    m_runStatus->setVisible(true);
    m_runStatus->setText(text);
}

QString SearchPanel::demoFolder() const
{
    return m_demoDir && m_demoDir->isValid() ? m_demoDir->path() : QString();
}

void SearchPanel::startDemo()
{
    if (m_run->isRunning() || m_demoJob->isRunning()) {
        m_context->statusMessage(tr("A search is already running in the Search stage."));
        return;
    }
    const QString base = QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation);
    if (base.isEmpty() || !QDir().mkpath(base)) {
        showError(tr("Demo"), tr("%1: cannot create the data folder for the demo").arg(base));
        return;
    }
    m_demoDir = std::make_unique<QTemporaryDir>(QDir(base).filePath(QStringLiteral("demo-search-XXXXXX")));
    if (!m_demoDir->isValid()) {
        showError(tr("Demo"), tr("%1: cannot create a temporary folder for the demo (%2)").arg(base, m_demoDir->errorString()));
        m_demoDir.reset();
        return;
    }
    try {
        m_editor->setSpace(core::resolveSpace("nac"));
    } catch (const std::exception &e) {
        showError(tr("Demo"), QString::fromStdString(e.what()));
        return;
    }
    const int n = std::clamp(QSettings().value(QStringLiteral("demo/search_patches"), 2000).toInt(), 50, 1000000);
    const std::string path = QDir(m_demoDir->path()).filePath(QStringLiteral("demo-patches.h5")).toStdString();
    m_tabs->setCurrentIndex(1);
    m_runEnd.clear();
    m_demoJob->start([n, path](const core::Monitor &monitor) {
        core::PatchSimOptions options = core::PatchSimOptions::realistic();
        options.seed = 1;
        monitor.report(0, "simulating " + std::to_string(n) + " realistic patches");
        const core::PatchDataset data = core::simulatePatches(std::size_t(n), options, monitor.sub(0, 0.8, "simulating"));
        monitor.check();
        monitor.report(0.8, "writing " + path);
        core::writePatchDataset(path, data);
        monitor.report(1, "written " + path);
    });
    updateRunControls();
}

QString SearchPanel::actionDataPath() const
{
    const QString run = m_dataEdit->text().trimmed();
    if (!run.isEmpty())
        return run;
    const QString stored = QString::fromStdString(m_watcher->info().dataset.path);
    if (stored.isEmpty())
        return {};
    if (QFileInfo(stored).isAbsolute() || QFileInfo::exists(stored))
        return stored;
    return QDir(m_storeFolder).filePath(stored);
}

core::TrainOptions SearchPanel::studyRecipe(const core::TrialRecord &trial) const
{
    core::TrainOptions recipe;
    recipe.seed = 1;
    const nlohmann::json &options = m_watcher->info().options;
    if (options.is_object() && options.contains("recipe") && options["recipe"].is_object())
        recipe = core::TrainOptions::fromJson(options["recipe"], m_watcher->path().toStdString() + ": recipe");
    if (trial.hyperParams.is_object() && !trial.hyperParams.empty()) {
        const core::StudyInfo &info = m_watcher->info();
        const std::string source = m_watcher->path().toStdString() + ": trial " + std::to_string(trial.number);
        if (info.kind == core::StudyKind::Tune && info.space.is_object() && info.space.contains("tune")) {
            // A tune study stores the sampled parameters by the names of its space.
            const std::vector<core::HyperParam> space = core::tuneSpaceFromJson(info.space["tune"], source);
            recipe = core::applyHyperParams(recipe, core::tuneRunnerParams(core::paramSetFromJson(space, trial.hyperParams, source)));
        } else {
            recipe = core::applyHyperParams(recipe, trial.hyperParams);
        }
    }
    return recipe;
}

QString SearchPanel::retrainFolderFor(int trialNumber) const
{
    const QFileInfo study(m_watcher->path());
    const QDir dir(QDir(study.absolutePath()).filePath(study.completeBaseName() + QStringLiteral(".retrained")));
    const QString base = QStringLiteral("trial-%1-full").arg(trialNumber, 5, 10, QLatin1Char('0'));
    QString name = base;
    for (int k = 2; QFileInfo::exists(dir.filePath(name)); ++k)
        name = base + QStringLiteral("-%1").arg(k);
    return dir.filePath(name);
}

void SearchPanel::retrainInspected()
{
    const core::TrialRecord *t = m_inspector->trial();
    if (!t || !m_watcher->isAttached())
        return;
    RetrainParams p;
    try {
        p.recipe = studyRecipe(*t);
    } catch (const std::exception &e) {
        showError(tr("Retrain"), QString::fromStdString(e.what()));
        return;
    }
    p.recipe.epochs = m_inspector->retrainEpochsBox()->value();
    p.recipe.threads = std::max(1, QThread::idealThreadCount());
    p.spec = t->spec;
    p.dataPath = actionDataPath();
    p.outFolder = retrainFolderFor(t->number);
    QString error;
    if (!m_actions->retrain(p, &error))
        showError(tr("Retrain"), error);
}

void SearchPanel::tuneInspected()
{
    const core::TrialRecord *t = m_inspector->trial();
    if (!t || !m_watcher->isAttached())
        return;
    TuneParams p;
    try {
        p.recipe = studyRecipe(*t);
    } catch (const std::exception &e) {
        showError(tr("Tune"), QString::fromStdString(e.what()));
        return;
    }
    p.recipe.threads = 1;
    const nlohmann::json &options = m_watcher->info().options;
    int epochs = p.recipe.epochs;
    if (options.is_object() && options.contains("search") && options["search"].is_object())
        epochs = options["search"].value("epochs", epochs);
    p.tune.trials = m_inspector->tuneTrialsBox()->value();
    p.tune.epochs = std::max(1, epochs);
    p.tune.startupTrials = std::clamp(p.tune.trials / 3, 2, 10);
    p.tune.pruneStartupTrials = std::clamp(p.tune.trials / 3, 1, 5);
    p.tune.seed = 1;
    p.workers = m_workers->value();
    p.spec = t->spec;
    p.dataPath = actionDataPath();
    const QFileInfo study(m_watcher->path());
    p.studyPath = QDir(study.absolutePath())
                      .filePath(study.completeBaseName() + QStringLiteral(".tune-trial-%1.db").arg(t->number, 5, 10, QLatin1Char('0')));
    QString error;
    if (!m_actions->tune(p, &error))
        showError(tr("Tune"), error);
}

void SearchPanel::showError(const QString &title, const QString &message)
{
    Q_EMIT errorOccurred(message);
    showErrorBox(this, title, message, QStringLiteral("searchError"));
}

void SearchPanel::attachStudy(const QString &path)
{
    detachStudy();
    m_message->setVisible(false);
    m_studyPath->setText(tr("Opening %1\u2026").arg(path));
    m_storeFolder = QFileInfo(path).absolutePath();
    m_watcher->attach(path);
}

void SearchPanel::detachStudy()
{
    m_watcher->detach();
    m_clockTimer.stop();
    m_refreshTimer.stop();
    m_model->clear();
    m_pareto->clear();
    m_hvSeries->clear();
    m_hvFinished = -1;
    m_front.clear();
    m_selected = 0;
    m_t0 = 0;
    m_inspector->clear();
    m_progress->clear();
    m_detach->setEnabled(false);
    m_studyPath->setText(tr("No study attached."));
}

void SearchPanel::attachStudyDialog()
{
    auto *dialog = new QFileDialog(this, tr("Attach study"),
                                   QSettings().value(QStringLiteral("search/study")).toString(),
                                   tr("Study files (*.db *.sqlite);;All files (*)"));
    dialog->setFileMode(QFileDialog::ExistingFile);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QFileDialog::fileSelected, this, &SearchPanel::attachStudy);
    dialog->open();
}

void SearchPanel::openSpaceDialog()
{
    auto *dialog = new QFileDialog(this, tr("Open search space"), QSettings().value(QStringLiteral("search/space")).toString(),
                                   tr("Search space (*.json);;All files (*)"));
    dialog->setFileMode(QFileDialog::ExistingFile);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) {
        if (m_editor->loadFile(path))
            QSettings().setValue(QStringLiteral("search/space"), path);
    });
    dialog->open();
}

void SearchPanel::saveSpaceDialog()
{
    auto *dialog = new QFileDialog(this, tr("Save search space"), QSettings().value(QStringLiteral("search/space")).toString(),
                                   tr("Search space (*.json)"));
    dialog->setAcceptMode(QFileDialog::AcceptSave);
    dialog->setDefaultSuffix(QStringLiteral("json"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) {
        QString error;
        if (!m_editor->saveFile(path, &error))
            showError(tr("Search space"), error);
        else {
            QSettings().setValue(QStringLiteral("search/space"), path);
            m_context->statusMessage(tr("Saved %1").arg(path));
        }
    });
    dialog->open();
}

void SearchPanel::exportTrialsDialog()
{
    auto *dialog = new QFileDialog(this, tr("Export trials"), QString(), tr("CSV (*.csv)"));
    dialog->setAcceptMode(QFileDialog::AcceptSave);
    dialog->setDefaultSuffix(QStringLiteral("csv"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) {
        try {
            exportTableCsv(*m_proxy, path, Qt::EditRole);
            m_context->statusMessage(tr("Exported %1").arg(path));
        } catch (const std::exception &e) {
            showError(tr("Export"), QString::fromStdString(e.what()));
        }
    });
    dialog->open();
}

void SearchPanel::onWatcherUpdated()
{
    if (!m_refreshTimer.isActive())
        m_refreshTimer.start();
}

void SearchPanel::flush()
{
    if (m_refreshTimer.isActive()) {
        m_refreshTimer.stop();
        refresh();
    }
    m_pareto->flush();
}

void SearchPanel::refresh()
{
    ++m_refreshes;
    const core::StudyInfo &info = m_watcher->info();
    m_distanceIndex = m_bopsIndex = -1;
    std::vector<std::string> names;
    for (int i = 0; i < int(info.objectives.size()); ++i) {
        names.push_back(info.objectives[std::size_t(i)].name);
        if (info.objectives[std::size_t(i)].name == "distance")
            m_distanceIndex = i;
        if (info.objectives[std::size_t(i)].name == "bops")
            m_bopsIndex = i;
    }
    // `braggnac search` stores {"search": SearchOptions, "recipe": ...}; a bare SearchOptions
    // object is read too.
    const nlohmann::json &opts =
        info.options.is_object() && info.options.contains("search") && info.options["search"].is_object()
            ? info.options["search"]
            : info.options;
    m_target = 0;
    m_hvDistance = 1.0;
    m_hvLog10Bops = 10.0;
    if (opts.is_object()) {
        auto number = [&](const char *key, double fallback) {
            auto it = opts.find(key);
            return it != opts.end() && it->is_number() ? it->get<double>() : fallback;
        };
        m_target = int(number("trials", 0));
        m_hvDistance = number("hv_distance", 1.0);
        m_hvLog10Bops = number("hv_log10_bops", 10.0);
    }
    m_hvApplicable = names == std::vector<std::string>{"distance", "bops"};

    const auto &trials = m_watcher->trials();
    std::vector<core::TrialRecord> all;
    all.reserve(trials.size());
    for (const auto &[id, t] : trials)
        all.push_back(t);
    const std::vector<core::TrialRecord> front = core::studyFront(all);
    m_front.clear();
    QSet<std::int64_t> frontSet;
    for (const auto &t : front) {
        m_front.push_back(t.id);
        frontSet.insert(t.id);
    }
    m_model->setObjectiveColumns(m_distanceIndex, m_bopsIndex);
    m_model->setTrials(trials);
    m_model->setFront(frontSet);
    m_pareto->setObjectiveColumns(m_distanceIndex, m_bopsIndex);
    m_pareto->setTrials(trials);
    m_pareto->setFront(m_front);
    replayHypervolume();
    updateProgress();
}

void SearchPanel::replayHypervolume()
{
    // One point per finished trial, in finishing order: the hypervolume of the study's front as
    // it was when that trial finished (same rule as the driver's progress).
    const auto &trials = m_watcher->trials();
    std::vector<const core::TrialRecord *> finished;
    double t0 = HUGE_VAL;
    for (const auto &[id, t] : trials) {
        if (t.startedAt > 0)
            t0 = std::min(t0, t.startedAt);
        if (core::isFinished(t.state) && t.finishedAt > 0)
            finished.push_back(&t);
    }
    if (!m_hvApplicable || finished.empty()) {
        m_hvSeries->clear();
        m_hvFinished = -1;
        return;
    }
    if (int(finished.size()) == m_hvFinished)
        return;
    m_t0 = std::isfinite(t0) ? t0 : 0;
    std::sort(finished.begin(), finished.end(),
              [](const auto *a, const auto *b) { return a->finishedAt < b->finishedAt; });
    core::SearchOptions options;
    options.hvDistance = m_hvDistance;
    options.hvLog10Bops = m_hvLog10Bops;
    // Long studies: at most ~400 replay points (each replay step is a front of the prefix).
    const std::size_t n = finished.size();
    const std::size_t stride = std::max<std::size_t>(1, n / 400);
    QList<QPointF> points;
    std::vector<core::TrialRecord> prefix;
    prefix.reserve(n);
    double yMax = 0;
    for (std::size_t i = 0; i < n; ++i) {
        prefix.push_back(*finished[i]);
        if ((i + 1) % stride != 0 && i + 1 != n)
            continue;
        double hv = 0;
        try {
            hv = core::studyHypervolume(core::studyFront(prefix), options);
        } catch (const std::exception &) {
            hv = 0;
        }
        const double x = (finished[i]->finishedAt - m_t0) / 60.0;
        points.append(QPointF(x, hv));
        yMax = std::max(yMax, hv);
    }
    m_hvSeries->replace(points);
    m_hvX->setRange(0, std::max(points.last().x() * 1.05, 0.1));
    m_hvY->setRange(0, yMax > 0 ? yMax * 1.1 : 1.0);
    m_hvFinished = int(n);
}

void SearchPanel::updateProgress()
{
    if (!m_watcher->isAttached()) {
        m_clockTimer.stop();
        return;
    }
    const core::StateCounts c = m_watcher->counts();
    const int finished = c.complete + c.pruned + c.failed;
    double first = HUGE_VAL, last = 0;
    for (const auto &[id, t] : m_watcher->trials()) {
        if (t.startedAt > 0)
            first = std::min(first, t.startedAt);
        last = std::max(last, t.finishedAt);
    }
    const double now = double(QDateTime::currentMSecsSinceEpoch()) / 1000.0;
    double elapsed = NAN;
    if (std::isfinite(first))
        elapsed = (c.running > 0 ? now : last) - first;
    double remaining = NAN;
    if (m_target > finished && finished > 0 && elapsed > 0)
        remaining = elapsed / finished * (m_target - finished);
    else if (m_target > 0 && finished >= m_target)
        remaining = 0;
    QString text = tr("<b>%1</b>%2 finished &nbsp;\u00b7&nbsp; %3 complete, %4 pruned, %5 failed, "
                      "<b>%6 running</b>, %7 queued &nbsp;\u00b7&nbsp; elapsed %8 &nbsp;\u00b7&nbsp; remaining ~%9 "
                      "&nbsp;\u00b7&nbsp; front: %10 trials")
                       .arg(finished)
                       .arg(m_target > 0 ? QStringLiteral(" / %1").arg(m_target) : QString())
                       .arg(c.complete)
                       .arg(c.pruned)
                       .arg(c.failed)
                       .arg(c.running)
                       .arg(c.queued)
                       .arg(duration(elapsed))
                       .arg(duration(remaining))
                       .arg(m_front.size());
    if (c.total() == 0)
        text = tr("The study has no trials yet (waiting for the search to enqueue some).");
    if (m_run && m_run->isRunning()) {
        const SearchRunStatus s = m_run->status();
        text += tr(" &nbsp;\u00b7&nbsp; <b>workers busy %1 / %2</b>").arg(s.busy).arg(s.capacity);
    }
    m_progress->setText(text);
}

void SearchPanel::selectTrial(std::int64_t id)
{
    if (id == 0)
        return;
    m_selected = id;
    m_pareto->setSelected(id);
    const int row = m_model->rowOf(id);
    if (row >= 0) {
        const QModelIndex proxyIndex = m_proxy->mapFromSource(m_model->index(row, 0));
        if (proxyIndex.isValid() && m_table->currentIndex().row() != proxyIndex.row()) {
            m_syncing = true;
            m_table->selectionModel()->setCurrentIndex(
                proxyIndex, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
            m_table->scrollTo(proxyIndex);
            m_syncing = false;
        }
    }
    loadInspector(id);
}

void SearchPanel::loadInspector(std::int64_t id)
{
    if (m_trialFuture.isRunning()) {
        // The result of the older read is ignored (m_selected moved on); read again after it.
        QTimer::singleShot(30, this, [this, id]() {
            if (id == m_selected)
                loadInspector(id);
        });
        return;
    }
    const std::string path = m_watcher->path().toStdString();
    if (path.empty())
        return;
    m_trialFuture.setFuture(QtConcurrent::run([path, id]() -> std::shared_ptr<core::TrialRecord> {
        try {
            const auto store = core::StudyStore::open(path, core::StudyStore::Mode::ReadOnly);
            auto t = store.trial(id);
            return t ? std::make_shared<core::TrialRecord>(std::move(*t)) : nullptr;
        } catch (const std::exception &) {
            return nullptr;
        }
    }));
}

} // namespace braggnac::ui
