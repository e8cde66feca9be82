#include "ui/job.h"

#include <QThread>

#include "core/common/error.h"

namespace braggnac::ui {

Job::Job(QString title, QObject *parent) : QObject(parent), m_title(std::move(title))
{
    m_timer.setInterval(40);
    connect(&m_timer, &QTimer::timeout, this, &Job::pollProgress);
}

Job::~Job()
{
    if (m_thread) {
        m_token.cancel();
        m_thread->wait();
        delete m_thread;
    }
}

bool Job::start(Work work)
{
    if (m_running)
        return false;
    if (m_thread) {
        m_thread->wait();
        delete m_thread;
        m_thread = nullptr;
    }
    m_token = core::CancelToken();
    m_shared = std::make_shared<Shared>();
    auto shared = m_shared;
    core::Monitor monitor;
    monitor.cancel = m_token;
    monitor.progress = [shared](double f, const std::string &msg) {
        std::lock_guard<std::mutex> lock(shared->mutex);
        shared->fraction = f;
        shared->message = msg;
        shared->dirty = true;
    };
    m_thread = QThread::create([shared, monitor, work = std::move(work)]() {
        Shared::Outcome outcome = Shared::Outcome::Ok;
        std::string error;
        try {
            work(monitor);
            if (monitor.cancelled())
                outcome = Shared::Outcome::Cancelled;
        } catch (const core::CancelledError &) {
            outcome = Shared::Outcome::Cancelled;
        } catch (const std::exception &e) {
            outcome = Shared::Outcome::Failed;
            error = e.what();
        } catch (...) {
            outcome = Shared::Outcome::Failed;
            error = "unknown error";
        }
        std::lock_guard<std::mutex> lock(shared->mutex);
        shared->outcome = outcome;
        shared->error = error;
    });
    connect(m_thread, &QThread::finished, this, &Job::onThreadDone, Qt::QueuedConnection);
    m_running = true;
    m_timer.start();
    Q_EMIT started();
    m_thread->start();
    return true;
}

void Job::cancel()
{
    m_token.cancel();
}

void Job::wait()
{
    if (m_thread)
        m_thread->wait();
}

void Job::pollProgress()
{
    if (!m_shared)
        return;
    double f = 0;
    std::string msg;
    {
        std::lock_guard<std::mutex> lock(m_shared->mutex);
        if (!m_shared->dirty)
            return;
        m_shared->dirty = false;
        f = m_shared->fraction;
        msg = m_shared->message;
    }
    Q_EMIT progressUpdated(f, QString::fromStdString(msg));
}

void Job::onThreadDone()
{
    if (!m_running)
        return;
    m_timer.stop();
    pollProgress();
    m_running = false;
    Shared::Outcome outcome;
    std::string error;
    {
        std::lock_guard<std::mutex> lock(m_shared->mutex);
        outcome = m_shared->outcome;
        error = m_shared->error;
    }
    switch (outcome) {
    case Shared::Outcome::Ok:
        Q_EMIT finished();
        break;
    case Shared::Outcome::Cancelled:
        Q_EMIT cancelled();
        break;
    default:
        Q_EMIT failed(QString::fromStdString(error));
        break;
    }
}

} // namespace braggnac::ui
