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
#include <QValueAxis>
#include <QVBoxLayout>
#include <QComboBox>
#include <QtConcurrent/QtConcurrentRun>

#include "core/common/error.h"
#include "core/search/builtinspaces.h"
#include "core/search/driver.h"
#include "ui/chartview.h"
#include "ui/errors.h"
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
    bar->addWidget(exportCsv);
    v->addLayout(bar);
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
