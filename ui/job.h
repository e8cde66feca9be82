#pragma once
// A long core operation run off the GUI thread, as a QObject the widgets can connect to.
// The work function runs on its own thread with a core::Monitor whose progress is coalesced on a
// 40 ms timer in the GUI thread (progressUpdated) and whose token is triggered by cancel().
// Exactly one of finished / failed / cancelled is emitted, in the GUI thread, after the work
// returned. No exception crosses the thread: failures arrive as the core's message text.
#include <functional>
#include <memory>
#include <mutex>

#include <QObject>
#include <QString>
#include <QTimer>

#include "core/common/progress.h"

class QThread;

namespace braggnac::ui {

class Job : public QObject {
    Q_OBJECT
public:
    using Work = std::function<void(const core::Monitor &monitor)>;

    explicit Job(QString title, QObject *parent = nullptr);
    ~Job() override; // cancels and waits for a running work function

    const QString &title() const { return m_title; }
    bool isRunning() const { return m_running; }
    /// Starts `work` on a new thread. Returns false (and does nothing) if already running.
    bool start(Work work);
    /// Requests cancellation; the work stops at its next check.
    void cancel();
    /// Blocks until the work function returned (tests and shutdown only).
    void wait();

Q_SIGNALS:
    void started();
    void progressUpdated(double fraction, const QString &message);
    void finished();
    void failed(const QString &message);
    void cancelled();

private:
    void pollProgress();
    void onThreadDone();

    QString m_title;
    QThread *m_thread = nullptr;
    QTimer m_timer;
    core::CancelToken m_token;
    bool m_running = false;

    struct Shared {
        std::mutex mutex;
        double fraction = 0;
        std::string message;
        bool dirty = false;
        enum class Outcome { None, Ok, Failed, Cancelled } outcome = Outcome::None;
        std::string error;
    };
    std::shared_ptr<Shared> m_shared;
};

} // namespace braggnac::ui
