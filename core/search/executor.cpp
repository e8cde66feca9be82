#include "core/search/executor.h"

#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include <unistd.h>

#include "core/common/error.h"

namespace braggnac::core {

using nlohmann::json;

namespace {

double numberOrNan(const json &j, const char *key)
{
    auto it = j.find(key);
    if (it == j.end() || it->is_null())
        return std::numeric_limits<double>::quiet_NaN();
    return it->get<double>();
}

json valueOf(const json &j, const char *key)
{
    auto it = j.find(key);
    return it == j.end() ? json() : *it;
}

TaskStatus taskStatusFromName(const std::string &s)
{
    for (TaskStatus t : {TaskStatus::Complete, TaskStatus::Pruned, TaskStatus::Failed, TaskStatus::Cancelled})
        if (s == taskStatusName(t))
            return t;
    throw InputError("task result: status: unknown value '" + s + "'");
}

} // namespace

const char *taskStatusName(TaskStatus s)
{
    switch (s) {
    case TaskStatus::Complete: return "complete";
    case TaskStatus::Pruned: return "pruned";
    case TaskStatus::Failed: return "failed";
    case TaskStatus::Cancelled: return "cancelled";
    }
    return "failed";
}

json TrialTask::toJson() const
{
    return {{"id", id}, {"number", number}, {"spec", spec}, {"hyper_params", hyperParams},
            {"epochs", epochs}, {"model_path", modelPath}};
}

TrialTask TrialTask::fromJson(const json &j)
{
    TrialTask t;
    t.id = j.at("id").get<std::int64_t>();
    t.number = j.at("number").get<int>();
    t.spec = j.at("spec");
    t.hyperParams = j.value("hyper_params", json::object());
    t.epochs = j.value("epochs", 0);
    t.modelPath = j.value("model_path", std::string());
    return t;
}

json EpochReport::toJson() const
{
    return {{"id", id}, {"epoch", epoch}, {"value", value}, {"metrics", metrics}};
}

EpochReport EpochReport::fromJson(const json &j)
{
    EpochReport r;
    r.id = j.at("id").get<std::int64_t>();
    r.epoch = j.at("epoch").get<int>();
    r.value = numberOrNan(j, "value");
    r.metrics = valueOf(j, "metrics");
    return r;
}

json TaskResult::toJson() const
{
    return {{"id", id},           {"status", taskStatusName(status)}, {"reason", reason},
            {"metrics", metrics}, {"cost", cost},                     {"history", history},
            {"fidelity", fidelity}, {"seconds", seconds},             {"model_path", modelPath},
            {"host", host},       {"rank", rank}};
}

TaskResult TaskResult::fromJson(const json &j)
{
    TaskResult r;
    r.id = j.at("id").get<std::int64_t>();
    r.status = taskStatusFromName(j.at("status").get<std::string>());
    r.reason = j.value("reason", std::string());
    r.metrics = valueOf(j, "metrics");
    r.cost = valueOf(j, "cost");
    r.history = valueOf(j, "history");
    r.fidelity = j.value("fidelity", 0);
    r.seconds = j.value("seconds", 0.0);
    r.modelPath = j.value("model_path", std::string());
    r.host = j.value("host", std::string());
    r.rank = j.value("rank", 0);
    return r;
}

std::string hostName()
{
    char buf[256] = {0};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0)
        return "localhost";
    return buf;
}

// --- LocalExecutor ---

struct LocalExecutor::Impl {
    TrialRunner &runner;
    int workers;
    std::string host;

    std::mutex mutex;
    std::condition_variable taskReady;     // workers wait for tasks
    std::condition_variable eventReady;    // the driver waits for events
    std::condition_variable decisionReady; // trials wait for decisions
    std::deque<TrialTask> tasks;
    std::deque<ExecutorEvent> events;
    std::map<std::int64_t, int> decisions;     // id -> 1 keep going, 0 stop (absent: none yet)
    std::map<std::int64_t, CancelToken> running;
    int inFlight = 0;
    bool stopping = false;
    std::vector<std::thread> threads;

    Impl(TrialRunner &r, int w, std::string h) : runner(r), workers(w), host(std::move(h)) {}

    void push(ExecutorEvent ev)
    {
        {
            std::lock_guard<std::mutex> lock(mutex);
            events.push_back(std::move(ev));
        }
        eventReady.notify_all();
    }

    void work()
    {
        for (;;) {
            TrialTask task;
            CancelToken token;
            {
                std::unique_lock<std::mutex> lock(mutex);
                taskReady.wait(lock, [&] { return stopping || !tasks.empty(); });
                if (stopping)
                    return;
                task = std::move(tasks.front());
                tasks.pop_front();
                running[task.id] = token;
            }
            const std::int64_t id = task.id;
            auto onEpoch = [&](const EpochReport &report) {
                ExecutorEvent ev;
                ev.kind = ExecutorEvent::Kind::Epoch;
                ev.epoch = report;
                ev.epoch.id = id;
                push(std::move(ev));
                std::unique_lock<std::mutex> lock(mutex);
                decisionReady.wait(lock, [&] { return decisions.count(id) || token.isCancelled(); });
                if (token.isCancelled())
                    throw CancelledError();
                const bool keep = decisions[id] != 0;
                decisions.erase(id);
                return keep;
            };
            TaskResult result;
            try {
                result = runner.run(task, onEpoch, token);
            } catch (const CancelledError &) {
                result = TaskResult{};
                result.status = TaskStatus::Cancelled;
                result.reason = "cancelled";
            } catch (const std::exception &e) {
                result = TaskResult{};
                result.status = TaskStatus::Failed;
                result.reason = e.what();
            }
            result.id = id;
            if (result.host.empty())
                result.host = host;
            {
                std::lock_guard<std::mutex> lock(mutex);
                running.erase(id);
                decisions.erase(id);
            }
            ExecutorEvent ev;
            ev.kind = ExecutorEvent::Kind::Finished;
            ev.result = std::move(result);
            push(std::move(ev));
        }
    }
};

LocalExecutor::LocalExecutor(TrialRunner &runner, int workers, std::string host)
    : m_impl(std::make_unique<Impl>(runner, workers, host.empty() ? hostName() : std::move(host)))
{
    if (workers < 1)
        throw InputError("workers: must be at least 1 (got " + std::to_string(workers) + ")");
    for (int i = 0; i < workers; ++i)
        m_impl->threads.emplace_back([this] { m_impl->work(); });
}

LocalExecutor::~LocalExecutor()
{
    {
        std::lock_guard<std::mutex> lock(m_impl->mutex);
        m_impl->stopping = true;
        for (auto &[id, token] : m_impl->running)
            token.cancel();
    }
    m_impl->taskReady.notify_all();
    m_impl->decisionReady.notify_all();
    for (auto &t : m_impl->threads)
        t.join();
}

int LocalExecutor::capacity() const { return m_impl->workers; }

int LocalExecutor::busy() const
{
    std::lock_guard<std::mutex> lock(m_impl->mutex);
    return m_impl->inFlight;
}

void LocalExecutor::submit(const TrialTask &task)
{
    {
        std::lock_guard<std::mutex> lock(m_impl->mutex);
        if (m_impl->inFlight >= m_impl->workers)
            throw Error("local executor: submit() with every worker busy");
        ++m_impl->inFlight;
        m_impl->tasks.push_back(task);
    }
    m_impl->taskReady.notify_one();
}

std::vector<ExecutorEvent> LocalExecutor::poll(std::chrono::milliseconds timeout)
{
    std::unique_lock<std::mutex> lock(m_impl->mutex);
    m_impl->eventReady.wait_for(lock, timeout, [&] { return !m_impl->events.empty(); });
    std::vector<ExecutorEvent> out(std::make_move_iterator(m_impl->events.begin()),
                                   std::make_move_iterator(m_impl->events.end()));
    m_impl->events.clear();
    for (const auto &ev : out)
        if (ev.kind == ExecutorEvent::Kind::Finished)
            --m_impl->inFlight;
    return out;
}

void LocalExecutor::decide(std::int64_t id, bool keepGoing)
{
    {
        std::lock_guard<std::mutex> lock(m_impl->mutex);
        if (m_impl->running.count(id))
            m_impl->decisions[id] = keepGoing ? 1 : 0;
    }
    m_impl->decisionReady.notify_all();
}

void LocalExecutor::cancelAll()
{
    {
        std::lock_guard<std::mutex> lock(m_impl->mutex);
        for (auto &[id, token] : m_impl->running)
            token.cancel();
        // Queued tasks that no worker has started yet finish as cancelled at once.
        for (const TrialTask &t : m_impl->tasks) {
            ExecutorEvent ev;
            ev.kind = ExecutorEvent::Kind::Finished;
            ev.result.id = t.id;
            ev.result.status = TaskStatus::Cancelled;
            ev.result.reason = "cancelled";
            ev.result.host = m_impl->host;
            m_impl->events.push_back(std::move(ev));
        }
        m_impl->tasks.clear();
    }
    m_impl->decisionReady.notify_all();
    m_impl->eventReady.notify_all();
}

std::string LocalExecutor::describe() const
{
    return std::to_string(m_impl->workers) + (m_impl->workers == 1 ? " worker thread" : " worker threads");
}

} // namespace braggnac::core
