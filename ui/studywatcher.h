#pragma once
// Watches a study file read-only: opens it and polls it on a worker thread (QtConcurrent), never
// on the GUI thread. Each poll reads changeSeq() and, when it moved, trialsSince(last seq)
// without blobs plus counts(); the GUI thread receives whole batches (updated), never one signal
// per trial. A CLI or MPI run may be writing the file meanwhile (the store's readers never block
// its writer). Errors (not a study, corrupt, foreign SQLite file, missing file) arrive as
// failed("path: reason") with the core's words; the watcher then stops and can attach again.
// GUI thread only (the QObject); the store object is used by one poll at a time.
#include <cstdint>
#include <map>
#include <string>
#include <memory>
#include <vector>

#include <QFutureWatcher>
#include <QObject>
#include <QString>
#include <QTimer>

#include "core/search/studystore.h"

namespace braggnac::ui {

/// What one poll found.
struct StudyUpdate {
    std::vector<core::TrialRecord> changed; // trials written since the previous poll (no blobs)
    core::StateCounts counts;
    std::int64_t seq = 0;                   // changeSeq() after this poll
    bool first = false;                     // the first poll after attach (changed = all trials)
    core::StudyInfo info;                   // filled on the first poll
    std::shared_ptr<core::StudyStore> store; // the store the poll used (opened on the first)
    std::string error;                       // non-empty: the poll failed (the core's message)
};

class StudyWatcher : public QObject {
    Q_OBJECT
public:
    explicit StudyWatcher(QObject *parent = nullptr);
    ~StudyWatcher() override; // waits for a poll in flight

    /// Opens `path` read-only on the worker and starts polling every intervalMs.
    void attach(const QString &path, int intervalMs = 250);
    void detach();
    bool isAttached() const { return !m_path.isEmpty(); }
    QString path() const { return m_path; }
    /// Polls now (if no poll is in flight).
    void pollNow();
    /// Blocks until the poll in flight (if any) returned; tests and shutdown only.
    void waitForPoll();

    /// Every trial seen so far, by id (latest version of each).
    const std::map<std::int64_t, core::TrialRecord> &trials() const { return m_trials; }
    const core::StudyInfo &info() const { return m_info; }
    const core::StateCounts &counts() const { return m_counts; }

Q_SIGNALS:
    void attached(const QString &path);
    void updated(int changedTrials); // m_trials / counts already updated
    void failed(const QString &message);

private:
    void startPoll();
    void onPollDone();

    QString m_path;
    QTimer m_timer;
    std::shared_ptr<core::StudyStore> m_store; // used only inside a poll
    std::int64_t m_seq = 0;
    bool m_needOpen = false;
    int m_generation = 0; // attach counter: results of an older attach are dropped
    QFutureWatcher<std::shared_ptr<StudyUpdate>> m_future;
    int m_futureGeneration = 0;
    std::map<std::int64_t, core::TrialRecord> m_trials;
    core::StudyInfo m_info;
    core::StateCounts m_counts;
};

} // namespace braggnac::ui
