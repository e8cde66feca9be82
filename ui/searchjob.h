#pragma once
// A search run by the studio: the same work as `braggnac search` (core runSearch over a
// LocalExecutor of makeTorchTrialRunner workers, writing the same SQLite study file), on its own
// thread, with Start / Pause / Resume / Stop.
//   start():  reads the patch file, creates the study file or resumes it (same dataset and
//             space, or refused with the core's message naming the file), then runs until the
//             study holds params.search.trials finished trials.
//   pause():  no new trial is started (the driver's holdNewTrials hook); running ones finish and
//             are stored. resume() lets it start trials again (same run, same study).
//   stop():   running trials are cancelled (the core's cancel token) and requeued; every
//             finished trial stays in the study. Starting again on the same study file (here or
//             `braggnac search ... --study S.db`) continues it.
// Trial workers run at a lower scheduling priority (nice +10 on Linux) so the window stays
// responsive while they train. Status (the driver's SearchProgress, workers busy) is copied
// under a mutex by the worker thread and read by the GUI thread on a 100 ms timer:
// statusUpdated() is coalesced, never one signal per event. storeReady() comes once per run when
// the study file exists (attach a StudyWatcher then). Exactly one of finished / stopped / failed
// ends a run, in the GUI thread. GUI thread only (the QObject); no exception crosses the thread.
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>

#include <QObject>
#include <QString>
#include <QTimer>

#include "core/nn/trainer.h"
#include "core/search/driver.h"
#include "core/search/space.h"

namespace braggnac::ui {

class Job;

struct SearchRunParams {
    QString dataPath;            // a labelled patch file
    QString studyPath;           // created, or resumed when it exists
    core::SearchOptions search;  // trials, epochs (per-trial budget), population, seed, ...
    core::TrainOptions recipe;   // the training recipe; epochs is set to search.epochs
    int workers = 1;             // parallel trials (each with recipe.threads LibTorch threads)
    bool force = false;          // resume even when the dataset or space differs
};

/// What the GUI shows about a running search.
struct SearchRunStatus {
    core::SearchProgress progress; // the driver's last report (counts of the whole study)
    bool haveProgress = false;
    int busy = 0;                  // workers training a trial now
    int capacity = 0;              // workers
    QString phase;                 // "reading data", "running", ...
};

class SearchJob : public QObject {
    Q_OBJECT
public:
    enum class State { Idle, Running, Paused, Stopping };
    Q_ENUM(State)

    explicit SearchJob(QObject *parent = nullptr);
    ~SearchJob() override; // stops a running search and waits for it

    /// Starts (or resumes) a search over `space`. Returns false with *error set when one is
    /// already running or the parameters are invalid (the core's message naming the field).
    bool start(const SearchRunParams &params, const core::SearchSpace &space, QString *error = nullptr);
    void pause();
    void resume();
    void stop();
    /// Blocks until the run's thread returned (tests and shutdown only).
    void wait();

    State state() const { return m_state; }
    bool isRunning() const { return m_state != State::Idle; }
    const SearchRunParams &params() const { return m_params; }
    SearchRunStatus status() const;
    /// The last run's summary (empty before a run ended, or when it failed).
    const std::optional<core::SearchSummary> &summary() const { return m_summary; }

Q_SIGNALS:
    void stateChanged(braggnac::ui::SearchJob::State state);
    void storeReady(const QString &studyPath);
    void statusUpdated();
    void finished();              // the study holds its trials (or the space is exhausted)
    void stopped();               // stop(): running trials requeued, finished ones kept
    void failed(const QString &message);

private:
    void setState(State s);
    void poll();
    void onEnded(int outcome, const QString &message);

    struct Shared;
    std::shared_ptr<Shared> m_shared;
    Job *m_job = nullptr;
    QTimer m_timer;
    State m_state = State::Idle;
    SearchRunParams m_params;
    bool m_storeAnnounced = false;
    std::optional<core::SearchSummary> m_summary;
};

} // namespace braggnac::ui
