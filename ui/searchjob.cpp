#include "ui/searchjob.h"

#include <filesystem>

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "core/common/error.h"
#include "core/io/patchdataset.h"
#include "core/nn/searchrunner.h"
#include "core/search/executor.h"
#include "core/search/studystore.h"
#include "ui/job.h"

namespace braggnac::ui {

struct SearchJob::Shared {
    std::atomic_bool hold{false};
    std::atomic_bool storeReady{false};
    std::atomic_int busy{0};
    std::atomic_int capacity{0};
    mutable std::mutex mutex;
    core::SearchProgress progress;
    bool haveProgress = false;
    std::string phase;
    std::optional<core::SearchSummary> summary;
};

namespace {

// Lowers the scheduling priority of the thread it runs on, once per thread: trial workers then
// yield to the GUI thread (Linux schedules threads individually; raising niceness needs no
// privilege).
class BackgroundRunner : public core::TrialRunner {
public:
    explicit BackgroundRunner(core::TrialRunner &inner) : m_inner(inner) {}
    core::TaskResult run(const core::TrialTask &task,
                         const std::function<bool(const core::EpochReport &)> &onEpoch,
                         const core::CancelToken &cancel) override
    {
#ifdef __linux__
        thread_local bool lowered = false;
        if (!lowered) {
            lowered = true;
            const int tid = int(::syscall(SYS_gettid));
            const int now = ::getpriority(PRIO_PROCESS, id_t(tid));
            ::setpriority(PRIO_PROCESS, id_t(tid), std::min(19, now + 10));
        }
#endif
        return m_inner.run(task, onEpoch, cancel);
    }

private:
    core::TrialRunner &m_inner;
};

// Forwards to an executor and publishes how many of its workers are busy.
class CountingExecutor : public core::Executor {
public:
    CountingExecutor(core::Executor &inner, std::atomic_int &busy) : m_inner(inner), m_busy(busy) {}
    int capacity() const override { return m_inner.capacity(); }
    int busy() const override { return m_inner.busy(); }
    void submit(const core::TrialTask &task) override
    {
        m_inner.submit(task);
        m_busy = m_inner.busy();
    }
    std::vector<core::ExecutorEvent> poll(std::chrono::milliseconds timeout) override
    {
        auto events = m_inner.poll(timeout);
        m_busy = m_inner.busy();
        return events;
    }
    void decide(std::int64_t id, bool keepGoing) override { m_inner.decide(id, keepGoing); }
    void cancelAll() override { m_inner.cancelAll(); }
    std::string describe() const override { return m_inner.describe(); }

private:
    core::Executor &m_inner;
    std::atomic_int &m_busy;
};

enum Outcome { Finished = 0, Stopped = 1, Failed = 2 };

} // namespace

SearchJob::SearchJob(QObject *parent) : QObject(parent)
{
    m_job = new Job(tr("Search"), this);
    m_timer.setInterval(100);
    connect(&m_timer, &QTimer::timeout, this, &SearchJob::poll);
    connect(m_job, &Job::finished, this, [this]() { onEnded(Finished, {}); });
    connect(m_job, &Job::cancelled, this, [this]() { onEnded(Stopped, {}); });
    connect(m_job, &Job::failed, this, [this](const QString &message) { onEnded(Failed, message); });
}

SearchJob::~SearchJob()
{
    if (m_job->isRunning())
        m_job->cancel();
    m_job->wait();
}

bool SearchJob::start(const SearchRunParams &params, const core::SearchSpace &space, QString *error)
{
    auto refuse = [&](const QString &message) {
        if (error)
            *error = message;
        return false;
    };
    if (m_job->isRunning())
        return refuse(tr("a search is already running (%1)").arg(m_params.studyPath));
    if (params.dataPath.isEmpty())
        return refuse(tr("search: no patch dataset chosen"));
    if (params.studyPath.isEmpty())
        return refuse(tr("search: no study file chosen"));
    if (params.workers < 1)
        return refuse(tr("search: workers: must be at least 1 (got %1)").arg(params.workers));
    SearchRunParams p = params;
    p.recipe.epochs = p.search.epochs;
    p.recipe.dataSource = p.dataPath.toStdString();
    try {
        p.search.validate("search");
        p.recipe.validate("search recipe");
        const std::string data = p.dataPath.toStdString(), study = p.studyPath.toStdString();
        if (!std::filesystem::is_regular_file(data))
            throw core::InputError(core::fileMessage(data, "no such file (the patch dataset)"));
        if (std::filesystem::is_directory(study))
            throw core::InputError(core::fileMessage(study, "is a folder, not a study file"));
        const std::filesystem::path parent = std::filesystem::path(study).parent_path();
        if (!parent.empty() && !std::filesystem::is_directory(parent))
            throw core::InputError(core::fileMessage(study, "its folder '" + parent.string() + "' does not exist"));
    } catch (const std::exception &e) {
        return refuse(QString::fromStdString(e.what()));
    }

    m_params = p;
    m_summary.reset();
    m_storeAnnounced = false;
    m_shared = std::make_shared<Shared>();
    auto shared = m_shared;
    shared->capacity = p.workers;
    const bool started = m_job->start([shared, p, space](const core::Monitor &monitor) {
        auto phase = [&](const std::string &what) {
            std::lock_guard<std::mutex> lock(shared->mutex);
            shared->phase = what;
        };
        const std::string dataPath = p.dataPath.toStdString();
        const std::string studyPath = p.studyPath.toStdString();
        phase("reading " + dataPath);
        const core::PatchDataset data = core::readPatchDataset(dataPath);
        monitor.check();

        core::StudyInfo study;
        study.name = std::filesystem::path(studyPath).stem().string();
        study.kind = core::StudyKind::Search;
        study.space = space.toJson();
        study.dataset = core::describeDataset(dataPath);
        for (const auto &o : p.search.objectives)
            study.objectives.push_back({o, true});
        study.options = {{"search", p.search.toJson()}, {"recipe", p.recipe.toJson()}, {"workers", p.workers}};
        study.seed = p.search.seed;
        core::StudyStore store = core::StudyStore::createOrOpen(studyPath, study, p.force);
        shared->storeReady = true;
        monitor.check();

        phase("preparing the data");
        const auto torchRunner = core::makeTorchTrialRunner(data, p.recipe);
        BackgroundRunner runner(*torchRunner);
        core::LocalExecutor local(runner, p.workers);
        CountingExecutor executor(local, shared->busy);
        phase("running");

        core::SearchCallbacks callbacks;
        callbacks.onProgress = [shared](const core::SearchProgress &progress) {
            std::lock_guard<std::mutex> lock(shared->mutex);
            shared->progress = progress;
            shared->haveProgress = true;
        };
        callbacks.holdNewTrials = [shared]() { return shared->hold.load(); };
        core::SearchSummary summary = core::runSearch(space, store, executor, p.search, monitor.cancel, callbacks);
        std::lock_guard<std::mutex> lock(shared->mutex);
        shared->summary = std::move(summary);
        shared->phase = "ended";
    });
    if (!started)
        return refuse(tr("a search is already running"));
    m_timer.start();
    setState(State::Running);
    return true;
}

void SearchJob::pause()
{
    if (m_state != State::Running || !m_shared)
        return;
    m_shared->hold = true;
    setState(State::Paused);
}

void SearchJob::resume()
{
    if (m_state != State::Paused || !m_shared)
        return;
    m_shared->hold = false;
    setState(State::Running);
}

void SearchJob::stop()
{
    if (m_state == State::Idle || m_state == State::Stopping)
        return;
    m_job->cancel();
    setState(State::Stopping);
}

void SearchJob::wait()
{
    m_job->wait();
}

SearchRunStatus SearchJob::status() const
{
    SearchRunStatus s;
    if (!m_shared)
        return s;
    s.busy = m_shared->busy;
    s.capacity = m_shared->capacity;
    std::lock_guard<std::mutex> lock(m_shared->mutex);
    s.progress = m_shared->progress;
    s.haveProgress = m_shared->haveProgress;
    s.phase = QString::fromStdString(m_shared->phase);
    return s;
}

void SearchJob::setState(State s)
{
    if (m_state == s)
        return;
    m_state = s;
    Q_EMIT stateChanged(s);
}

void SearchJob::poll()
{
    if (!m_shared)
        return;
    if (!m_storeAnnounced && m_shared->storeReady) {
        m_storeAnnounced = true;
        Q_EMIT storeReady(m_params.studyPath);
    }
    Q_EMIT statusUpdated();
}

void SearchJob::onEnded(int outcome, const QString &message)
{
    m_timer.stop();
    poll();
    {
        std::lock_guard<std::mutex> lock(m_shared->mutex);
        m_summary = m_shared->summary;
    }
    m_shared->busy = 0;
    setState(State::Idle);
    if (outcome == Finished)
        Q_EMIT finished();
    else if (outcome == Stopped)
        Q_EMIT stopped();
    else
        Q_EMIT failed(message);
}

} // namespace braggnac::ui
