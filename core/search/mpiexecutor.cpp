#include "core/search/mpiexecutor.h"

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <mpi.h>

#include "core/common/error.h"

namespace braggnac::core {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

enum Tag : int {
    TagTask = 1,
    TagDecide = 2,
    TagCancel = 3,
    TagStop = 4,
    TagHeartbeatToWorker = 5,
    TagEpoch = 11,
    TagResult = 12,
    TagHeartbeat = 13,
};

constexpr auto kHeartbeatEvery = std::chrono::milliseconds(500);

bool g_active = false;
// MPI_Finalize is a collective over every rank: with a dead rank OpenMPI 4.1 sometimes never
// returns from it (seen here about one run in three), so after a death it is skipped (rank 0
// knows; it tells the workers in its stop message).
bool g_skipFinalize = false;
int g_rank = 0;
int g_size = 1;

bool sendString(int dest, int tag, const std::string &s)
{
    return MPI_Send(s.data(), int(s.size()), MPI_CHAR, dest, tag, MPI_COMM_WORLD) == MPI_SUCCESS;
}

struct Message {
    int source = -1;
    int tag = 0;
    std::string body;
};

/// One pending message from `source` (MPI_ANY_SOURCE allowed), if any.
std::optional<Message> tryReceive(int source)
{
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(source, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st) != MPI_SUCCESS || !flag)
        return std::nullopt;
    int count = 0;
    MPI_Get_count(&st, MPI_CHAR, &count);
    Message m;
    m.source = st.MPI_SOURCE;
    m.tag = st.MPI_TAG;
    m.body.resize(std::size_t(std::max(0, count)));
    if (MPI_Recv(m.body.data(), count, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE)
        != MPI_SUCCESS)
        return std::nullopt;
    return m;
}

} // namespace

bool launchedByMpirun()
{
    return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr;
}

MpiSession::MpiSession(int *argc, char ***argv)
{
    if (!launchedByMpirun() || g_active)
        return;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        throw Error("MPI_Init_thread failed");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_active = true;
}

MpiSession::~MpiSession()
{
    if (!g_active)
        return;
    if (!g_skipFinalize)
        MPI_Finalize();
    g_active = false;
}

bool MpiSession::active() { return g_active; }
int MpiSession::rank() { return g_active ? g_rank : 0; }
int MpiSession::size() { return g_active ? g_size : 1; }

// ------------------------------------------------------------------------------------------

struct MpiExecutor::Impl {
    struct Worker {
        bool alive = true;
        bool seen = false;
        std::int64_t task = -1; // running task id, -1 idle
        Clock::time_point lastSeen;
    };
    std::chrono::milliseconds timeout;
    std::vector<Worker> workers; // index = rank (0 unused)
    std::map<std::int64_t, int> rankOf;
    std::deque<ExecutorEvent> pending; // synthesised events (dead ranks)
    std::vector<int> dead;
    Clock::time_point lastBeat;
    bool stopped = false;

    void markDead(int rank, const std::string &why)
    {
        Worker &w = workers[std::size_t(rank)];
        if (!w.alive)
            return;
        w.alive = false;
        dead.push_back(rank);
        g_skipFinalize = true;
        if (w.task >= 0) {
            ExecutorEvent ev;
            ev.kind = ExecutorEvent::Kind::Finished;
            ev.result.id = w.task;
            ev.result.status = TaskStatus::Cancelled; // the driver requeues it
            ev.result.reason = "rank " + std::to_string(rank) + " died (" + why + ")";
            ev.result.rank = rank;
            rankOf.erase(w.task);
            w.task = -1;
            pending.push_back(std::move(ev));
        }
    }

    void send(int rank, int tag, const std::string &body)
    {
        if (!workers[std::size_t(rank)].alive)
            return;
        if (!sendString(rank, tag, body))
            markDead(rank, "a send failed");
    }

    int alive() const
    {
        int n = 0;
        for (std::size_t r = 1; r < workers.size(); ++r)
            n += workers[r].alive ? 1 : 0;
        return n;
    }
};

MpiExecutor::MpiExecutor(std::chrono::milliseconds heartbeatTimeout) : m_impl(std::make_unique<Impl>())
{
    if (!MpiSession::active())
        throw InputError("MPI executor: not launched by mpirun");
    if (MpiSession::rank() != 0)
        throw Error("MPI executor: only rank 0 drives the search");
    if (MpiSession::size() < 2)
        throw InputError("mpirun -np " + std::to_string(MpiSession::size())
                         + ": no worker rank (rank 0 drives the search, ranks 1.. train trials): use -np 2 or more");
    m_impl->timeout = heartbeatTimeout;
    m_impl->workers.resize(std::size_t(MpiSession::size()));
    const auto now = Clock::now();
    for (auto &w : m_impl->workers)
        w.lastSeen = now;
    m_impl->workers[0].alive = false;
    m_impl->lastBeat = now;
}

MpiExecutor::~MpiExecutor()
{
    try {
        shutdown();
    } catch (...) {
    }
}

std::chrono::milliseconds MpiExecutor::defaultHeartbeatTimeout()
{
    if (const char *s = std::getenv("BRAGGNAC_MPI_TIMEOUT")) {
        char *end = nullptr;
        const double v = std::strtod(s, &end);
        if (end != s && *end == '\0' && v > 0)
            return std::chrono::milliseconds(long(v * 1000));
    }
    return std::chrono::milliseconds(15000);
}

int MpiExecutor::capacity() const { return m_impl->alive(); }

int MpiExecutor::busy() const
{
    int n = 0;
    for (std::size_t r = 1; r < m_impl->workers.size(); ++r)
        n += m_impl->workers[r].alive && m_impl->workers[r].task >= 0 ? 1 : 0;
    return n + int(m_impl->pending.size());
}

void MpiExecutor::submit(const TrialTask &task)
{
    for (std::size_t r = 1; r < m_impl->workers.size(); ++r) {
        auto &w = m_impl->workers[r];
        if (w.alive && w.task < 0) {
            w.task = task.id;
            m_impl->rankOf[task.id] = int(r);
            m_impl->send(int(r), TagTask, task.toJson().dump());
            return;
        }
    }
    throw Error("MPI executor: submit with every worker rank busy");
}

std::vector<ExecutorEvent> MpiExecutor::poll(std::chrono::milliseconds timeout)
{
    Impl &d = *m_impl;
    const auto deadline = Clock::now() + timeout;
    std::vector<ExecutorEvent> out;
    for (;;) {
        while (auto m = tryReceive(MPI_ANY_SOURCE)) {
            if (m->source <= 0 || m->source >= int(d.workers.size()))
                continue;
            Impl::Worker &w = d.workers[std::size_t(m->source)];
            if (!w.alive)
                continue; // a late message from a rank given up on
            w.lastSeen = Clock::now();
            w.seen = true;
            try {
                if (m->tag == TagEpoch) {
                    ExecutorEvent ev;
                    ev.kind = ExecutorEvent::Kind::Epoch;
                    ev.epoch = EpochReport::fromJson(json::parse(m->body));
                    out.push_back(std::move(ev));
                } else if (m->tag == TagResult) {
                    ExecutorEvent ev;
                    ev.kind = ExecutorEvent::Kind::Finished;
                    ev.result = TaskResult::fromJson(json::parse(m->body));
                    ev.result.rank = m->source;
                    if (w.task == ev.result.id) {
                        w.task = -1;
                        d.rankOf.erase(ev.result.id);
                        out.push_back(std::move(ev));
                    }
                }
            } catch (const std::exception &e) {
                d.markDead(m->source, std::string("unreadable message: ") + e.what());
            }
        }
        const auto now = Clock::now();
        for (std::size_t r = 1; r < d.workers.size(); ++r) {
            const Impl::Worker &w = d.workers[r];
            // a rank never heard from may still be loading its data: a longer grace
            const auto limit = w.seen ? d.timeout : std::max(d.timeout * 4, std::chrono::milliseconds(60000));
            if (w.alive && now - w.lastSeen > limit)
                d.markDead(int(r), "silent for " + std::to_string(limit.count() / 1000.0).substr(0, 4) + " s");
        }
        if (now - d.lastBeat >= kHeartbeatEvery) {
            d.lastBeat = now;
            for (std::size_t r = 1; r < d.workers.size(); ++r)
                d.send(int(r), TagHeartbeatToWorker, std::string());
        }
        while (!d.pending.empty()) {
            out.push_back(std::move(d.pending.front()));
            d.pending.pop_front();
        }
        if (!out.empty())
            return out;
        if (d.alive() == 0)
            throw Error("MPI executor: every worker rank died (" + std::to_string(d.dead.size()) + " of "
                        + std::to_string(d.workers.size() - 1) + ")");
        if (Clock::now() >= deadline)
            return out;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

void MpiExecutor::decide(std::int64_t id, bool keepGoing)
{
    auto it = m_impl->rankOf.find(id);
    if (it == m_impl->rankOf.end())
        return;
    m_impl->send(it->second, TagDecide, json{{"id", id}, {"keep", keepGoing}}.dump());
}

void MpiExecutor::cancelAll()
{
    const auto running = m_impl->rankOf;
    for (const auto &[id, rank] : running)
        m_impl->send(rank, TagCancel, json{{"id", id}}.dump());
}

std::string MpiExecutor::describe() const
{
    return std::to_string(m_impl->workers.size()) + " MPI ranks (" + std::to_string(capacity()) + " training)";
}

void MpiExecutor::shutdown()
{
    if (m_impl->stopped)
        return;
    m_impl->stopped = true;
    for (std::size_t r = 1; r < m_impl->workers.size(); ++r)
        m_impl->send(int(r), TagStop, g_skipFinalize ? std::string("skip-finalize") : std::string());
}

std::vector<int> MpiExecutor::deadRanks() const { return m_impl->dead; }

// ------------------------------------------------------------------------------------------

namespace {

// The test hook: BRAGGNAC_TEST_MPI_KILL="R:K".
int killAtTask()
{
    const char *s = std::getenv("BRAGGNAC_TEST_MPI_KILL");
    if (!s)
        return 0;
    int r = -1, k = 0;
    if (std::sscanf(s, "%d:%d", &r, &k) != 2 || r != MpiSession::rank())
        return 0;
    return k;
}

struct WorkerState {
    std::mutex mutex;
    std::condition_variable decided;
    std::deque<std::pair<int, std::string>> outbox; // (tag, body)
    std::optional<bool> decision;
    CancelToken token;
    std::int64_t taskId = -1;
    std::atomic<bool> done{false};
};

} // namespace

void runMpiWorker(TrialRunner &runner)
{
    if (!MpiSession::active() || MpiSession::rank() < 1)
        throw Error("runMpiWorker: not a worker rank");
    const int killAt = killAtTask();
    const auto timeout = MpiExecutor::defaultHeartbeatTimeout();
    WorkerState st;
    std::thread trainer;
    int tasksStarted = 0;
    bool killArmed = false;
    auto lastSent = Clock::now() - kHeartbeatEvery;
    auto lastFromDriver = Clock::now();
    bool stop = false;

    auto joinTrainer = [&] {
        if (trainer.joinable())
            trainer.join();
    };

    while (!stop) {
        bool active = false;
        // outgoing: epoch reports and results from the training thread
        std::deque<std::pair<int, std::string>> out;
        {
            std::lock_guard<std::mutex> lock(st.mutex);
            out.swap(st.outbox);
        }
        for (const auto &[tag, body] : out) {
            sendString(0, tag, body);
            lastSent = Clock::now();
            active = true;
            if (tag == TagEpoch && killArmed) {
                std::raise(SIGKILL);
            }
        }
        if (Clock::now() - lastSent >= kHeartbeatEvery) {
            sendString(0, TagHeartbeat, std::string());
            lastSent = Clock::now();
        }
        while (auto m = tryReceive(0)) {
            active = true;
            lastFromDriver = Clock::now();
            if (m->tag == TagTask) {
                joinTrainer();
                const TrialTask task = TrialTask::fromJson(json::parse(m->body));
                ++tasksStarted;
                killArmed = killAt > 0 && tasksStarted == killAt;
                {
                    std::lock_guard<std::mutex> lock(st.mutex);
                    st.token = CancelToken();
                    st.decision.reset();
                    st.taskId = task.id;
                    st.done = false;
                }
                const CancelToken token = st.token;
                trainer = std::thread([&st, &runner, task, token] {
                    auto onEpoch = [&](const EpochReport &report) {
                        EpochReport r = report;
                        r.id = task.id;
                        std::unique_lock<std::mutex> lock(st.mutex);
                        st.outbox.emplace_back(TagEpoch, r.toJson().dump());
                        st.decided.wait(lock, [&] { return st.decision.has_value() || token.isCancelled(); });
                        if (token.isCancelled())
                            throw CancelledError();
                        const bool keep = *st.decision;
                        st.decision.reset();
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
                    result.id = task.id;
                    if (result.host.empty())
                        result.host = hostName();
                    result.rank = MpiSession::rank();
                    std::lock_guard<std::mutex> lock(st.mutex);
                    st.outbox.emplace_back(TagResult, result.toJson().dump());
                    st.done = true;
                });
            } else if (m->tag == TagDecide || m->tag == TagCancel) {
                const json j = json::parse(m->body);
                std::lock_guard<std::mutex> lock(st.mutex);
                if (j.value("id", std::int64_t(-2)) == st.taskId) {
                    if (m->tag == TagDecide)
                        st.decision = j.value("keep", false);
                    else
                        st.token.cancel();
                }
                st.decided.notify_all();
            } else if (m->tag == TagStop) {
                if (m->body == "skip-finalize")
                    g_skipFinalize = true;
                stop = true;
                break;
            }
        }
        if (st.done && trainer.joinable()) {
            // the result is in the outbox; it goes out at the top of the loop
            joinTrainer();
            continue;
        }
        if (Clock::now() - lastFromDriver > timeout * 3) {
            stop = true; // rank 0 is gone
            g_skipFinalize = true;
        }
        if (!active)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    {
        std::lock_guard<std::mutex> lock(st.mutex);
        st.token.cancel();
        st.decided.notify_all();
    }
    joinTrainer();
}

} // namespace braggnac::core
