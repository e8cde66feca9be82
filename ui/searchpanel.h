#pragma once
// The Search stage: the search space editor (tab "Space") and the live study view (tab
// "Study"): attach to a study file read-only (a CLI or MPI run may be writing it; StudyWatcher
// polls it off the GUI thread), progress (trials done / running / failed / pruned, elapsed,
// estimate of remaining), the live Pareto chart (front = core's studyFront, the rule of
// `braggnac study S.db --pareto`), the hypervolume over time, the sortable and filterable trial
// table linked to the chart both ways, and the trial inspector of the selected trial. Redraws are
// coalesced on a 40 ms single-shot timer, never one per trial. Errors (corrupt, foreign, missing
// study file; space JSON with errors) are shown with the file and the core's reason, and the
// panel stays usable.
// Running a search here (the "Run" row of the Study tab): a patch file, the editor's current
// space, trials, epochs, workers, population, batch size and a study file; Start runs SearchJob (core
// runSearch, the study file `braggnac search` writes) and attaches the live view to its study;
// Pause holds new trials (running ones finish), Resume continues, Stop cancels the running
// trials (requeued; finished ones kept); Start on an existing study file resumes it (as the
// same `braggnac search` command does). Workers busy are shown in the progress line. The
// inspector's Retrain / Tune run through TrialActions with the study's recipe and the run's
// patch file. startDemo() simulates a small realistic patch set in a temporary folder under the
// user's data location and runs a small search on it (QSettings demo/search_*). GUI thread only.
#include <cstdint>
#include <memory>
#include <vector>

#include <QElapsedTimer>
#include <QFutureWatcher>
#include <QTimer>
#include <QWidget>

#include "core/nn/trainer.h"
#include "core/search/studystore.h"

class QComboBox;
class QLabel;
class QSpinBox;
class QTemporaryDir;
class QVBoxLayout;
class QLineEdit;
class QLineSeries;
class QPushButton;
class QSortFilterProxyModel;
class QTabWidget;
class QTableView;
class QValueAxis;

namespace braggnac::ui {

class ChartView;
class Job;
class SearchJob;
class TrialActions;
class ParetoChart;
class SpaceEditor;
class StudioContext;
class StudyWatcher;
class TrialInspector;
class TrialTableModel;

class SearchPanel : public QWidget {
    Q_OBJECT
public:
    explicit SearchPanel(StudioContext *context, QWidget *parent = nullptr);
    ~SearchPanel() override;

    /// Attaches to a study file (read-only). Errors arrive as errorOccurred + an error box.
    void attachStudy(const QString &path);
    void detachStudy();
    /// Selects a trial (table row, chart mark, inspector).
    void selectTrial(std::int64_t id);

    /// Starts (or resumes) a search from the Run row; false (error shown) when the input is bad.
    bool startSearch();
    void pauseSearch();
    void resumeSearch();
    void stopSearch();
    /// The Run row's inputs (tests and the demo fill them).
    void setRunInputs(const QString &dataPath, const QString &studyPath, int trials, int epochs, int workers,
                      int population, int batch = 256);
    /// Simulates the demo patches and starts the demo search (see the header comment).
    void startDemo();
    /// The demo's folder ("" before startDemo()).
    QString demoFolder() const;
    /// Retrain / tune the inspected trial (the inspector's buttons).
    void retrainInspected();
    void tuneInspected();
    /// Where retrain writes the inspected trial's model folder (unique name).
    QString retrainFolderFor(int trialNumber) const;

    SearchJob *searchJob() const { return m_run; }
    TrialActions *trialActions() const { return m_actions; }
    Job *demoJob() const { return m_demoJob; }
    QComboBox *colourBox() const { return m_colourBy; }
    QPushButton *startButton() const { return m_start; }
    QPushButton *pauseButton() const { return m_pause; }
    QPushButton *stopButton() const { return m_stop; }
    QLabel *runStatusLabel() const { return m_runStatus; }

    SpaceEditor *spaceEditor() const { return m_editor; }
    StudyWatcher *watcher() const { return m_watcher; }
    ParetoChart *paretoChart() const { return m_pareto; }
    ChartView *hypervolumeChart() const { return m_hvChart; }
    QLineSeries *hypervolumeSeries() const { return m_hvSeries; }
    TrialTableModel *trialModel() const { return m_model; }
    QSortFilterProxyModel *trialProxy() const { return m_proxy; }
    QTableView *trialTable() const { return m_table; }
    TrialInspector *inspector() const { return m_inspector; }
    QLabel *progressLabel() const { return m_progress; }
    QLabel *studyMessage() const { return m_message; }
    QTabWidget *tabs() const { return m_tabs; }
    /// The front last drawn (trial ids, by the first objective).
    std::vector<std::int64_t> frontIds() const { return m_front; }
    /// Coalesced refreshes done so far (tests: fewer than the polls that brought trials).
    int refreshCount() const { return m_refreshes; }
    /// Runs a pending refresh now (tests).
    void flush();

public Q_SLOTS:
    void attachStudyDialog();
    void openSpaceDialog();
    void saveSpaceDialog();
    void exportTrialsDialog();

Q_SIGNALS:
    void errorOccurred(const QString &message);
    void studyAttached(const QString &path);
    /// "Use this model" in the inspector: a model folder to load (the main window loads it).
    void useModelRequested(const QString &folder);

private:
    void buildSpaceTab();
    void buildStudyTab();
    void onWatcherUpdated();
    void refresh();
    void updateProgress();
    void replayHypervolume();
    void loadInspector(std::int64_t id);
    void showError(const QString &title, const QString &message);
    void buildRunRow(QWidget *page, QVBoxLayout *v);
    void updateRunControls();
    void updateRunStatus();
    QString actionDataPath() const;
    core::TrainOptions studyRecipe(const core::TrialRecord &trial) const;

    StudioContext *m_context;
    QTabWidget *m_tabs = nullptr;
    SpaceEditor *m_editor = nullptr;
    StudyWatcher *m_watcher = nullptr;
    ParetoChart *m_pareto = nullptr;
    ChartView *m_hvChart = nullptr;
    QLineSeries *m_hvSeries = nullptr;
    QValueAxis *m_hvX = nullptr;
    QValueAxis *m_hvY = nullptr;
    TrialTableModel *m_model = nullptr;
    QSortFilterProxyModel *m_proxy = nullptr;
    QTableView *m_table = nullptr;
    QLineEdit *m_filter = nullptr;
    TrialInspector *m_inspector = nullptr;
    QLabel *m_studyPath = nullptr;
    QLabel *m_progress = nullptr;
    QLabel *m_message = nullptr;
    QPushButton *m_attach = nullptr;
    QPushButton *m_detach = nullptr;

    QTimer m_refreshTimer;
    QTimer m_clockTimer;
    int m_refreshes = 0;
    std::vector<std::int64_t> m_front;
    int m_hvFinished = -1; // finished trials when the last hypervolume point was added
    double m_t0 = 0;       // first trial start (Unix s)
    int m_distanceIndex = 0, m_bopsIndex = 1;
    bool m_hvApplicable = false;
    double m_hvDistance = 1.0, m_hvLog10Bops = 10.0;
    int m_target = 0;
    std::int64_t m_selected = 0;
    bool m_syncing = false;
    QFutureWatcher<std::shared_ptr<core::TrialRecord>> m_trialFuture;
    QString m_storeFolder;

    // Run row.
    SearchJob *m_run = nullptr;
    TrialActions *m_actions = nullptr;
    Job *m_demoJob = nullptr;
    QLineEdit *m_dataEdit = nullptr;
    QLineEdit *m_studyEdit = nullptr;
    QSpinBox *m_trials = nullptr;
    QSpinBox *m_epochs = nullptr;
    QSpinBox *m_workers = nullptr;
    QSpinBox *m_population = nullptr;
    QSpinBox *m_batch = nullptr;
    QPushButton *m_start = nullptr;
    QPushButton *m_pause = nullptr;
    QPushButton *m_stop = nullptr;
    QLabel *m_runStatus = nullptr;
    QComboBox *m_colourBy = nullptr;
    QString m_runEnd; // how the last run here ended ("" while none ended)
    std::unique_ptr<QTemporaryDir> m_demoDir;
};

} // namespace braggnac::ui
