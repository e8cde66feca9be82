#include "ui/studywatcher.h"

#include <QtConcurrent/QtConcurrentRun>

#include "core/common/error.h"
#include "ui/errors.h"

namespace braggnac::ui {

StudyWatcher::StudyWatcher(QObject *parent) : QObject(parent)
{
    m_timer.setSingleShot(false);
    connect(&m_timer, &QTimer::timeout, this, &StudyWatcher::startPoll);
    connect(&m_future, &QFutureWatcher<std::shared_ptr<StudyUpdate>>::finished, this,
            &StudyWatcher::onPollDone);
}

StudyWatcher::~StudyWatcher()
{
    m_timer.stop();
    m_future.waitForFinished();
}

void StudyWatcher::attach(const QString &path, int intervalMs)
{
    detach();
    m_path = path;
    m_needOpen = true;
    m_seq = 0;
    ++m_generation;
    m_timer.setInterval(intervalMs);
    m_timer.start();
    startPoll();
}

void StudyWatcher::detach()
{
    m_timer.stop();
    ++m_generation;
    m_path.clear();
    m_trials.clear();
    m_counts = {};
    m_info = {};
    m_seq = 0;
    // The store is released by the poll in flight (it holds its own reference) or here.
    if (!m_future.isRunning())
        m_store.reset();
}

void StudyWatcher::pollNow()
{
    startPoll();
}

void StudyWatcher::waitForPoll()
{
    m_future.waitForFinished();
}

void StudyWatcher::startPoll()
{
    if (m_path.isEmpty() || m_future.isRunning())
        return;
    const std::string path = m_path.toStdString();
    const bool open = m_needOpen;
    const std::int64_t since = m_seq;
    std::shared_ptr<core::StudyStore> store = open ? nullptr : m_store;
    m_futureGeneration = m_generation;
    m_future.setFuture(QtConcurrent::run([path, open, since, store]() mutable -> std::shared_ptr<StudyUpdate> {
        auto update = std::make_shared<StudyUpdate>();
        try {
            if (open)
                store = std::make_shared<core::StudyStore>(
                    core::StudyStore::open(path, core::StudyStore::Mode::ReadOnly));
            core::ListOptions options;
            options.withBlobs = false;
            update->seq = store->changeSeq();
            if (open || update->seq != since)
                update->changed = store->trialsSince(open ? 0 : since, options);
            for (const auto &t : update->changed)
                update->seq = std::max(update->seq, t.updateSeq);
            update->counts = store->counts();
            update->first = open;
            if (open)
                update->info = store->info();
            update->store = store;
        } catch (const std::exception &e) {
            // QtConcurrent would wrap a foreign exception and lose its text: carry it instead.
            update->error = e.what();
            update->store.reset();
        }
        return update;
    }));
}

void StudyWatcher::onPollDone()
{
    std::shared_ptr<StudyUpdate> update = m_future.result();
    if (m_futureGeneration != m_generation) {
        if (m_path.isEmpty())
            m_store.reset();
        if (!m_path.isEmpty())
            startPoll();
        return;
    }
    if (!update->error.empty()) {
        const QString path = m_path;
        detach();
        Q_EMIT failed(withFile(path, QString::fromStdString(update->error)));
        return;
    }
    if (m_needOpen) {
        m_store = update->store;
        m_needOpen = false;
    }
    m_seq = update->seq;
    m_counts = update->counts;
    if (update->first)
        m_info = update->info;
    for (auto &t : update->changed)
        m_trials[t.id] = std::move(t);
    if (update->first)
        Q_EMIT attached(m_path);
    Q_EMIT updated(int(update->changed.size()));
}

} // namespace braggnac::ui
