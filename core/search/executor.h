#pragma once
// Executors run the search driver's trial tasks: the local thread pool here, MPI ranks in
// mpiexecutor.h. The protocol is message-shaped so that it works the same over MPI:
//   driver -> executor:  submit(task)                 a trial to train
//   executor -> driver:  Epoch event (EpochReport)    after every epoch; the trial waits ...
//   driver -> executor:  decide(id, keepGoing)        ... for this answer (ASHA, pruning)
//   executor -> driver:  Finished event (TaskResult)  complete, pruned, failed or cancelled
// Only the driver touches the study store and the optimisers; workers never do.
// Every type round-trips through JSON (the MPI messages are these JSON strings).
// Thread-safety: an Executor is driven by one thread (the driver's); its workers are its own.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/common/progress.h"

namespace braggnac::core {

struct TrialTask {
    std::int64_t id = 0;        // the study store's trial id
    int number = 0;             // the trial number (for names and messages)
    nlohmann::json spec;        // ArchSpec JSON
    nlohmann::json hyperParams = nlohmann::json::object(); // training hyper-parameters (tune)
    int epochs = 0;             // budget: at most this many epochs (0: the recipe's)
    std::string modelPath;      // folder to save the kept model in ("" = do not save)

    nlohmann::json toJson() const;
    static TrialTask fromJson(const nlohmann::json &j);
};

struct EpochReport {
    std::int64_t id = 0;
    int epoch = 0;              // 1-based
    double value = 0;           // validation mean distance after this epoch (NaN allowed)
    nlohmann::json metrics;     // {"loss", "lr", "seconds"}

    nlohmann::json toJson() const;
    static EpochReport fromJson(const nlohmann::json &j);
};

enum class TaskStatus { Complete, Pruned, Failed, Cancelled };
const char *taskStatusName(TaskStatus s); // "complete" | "pruned" | "failed" | "cancelled"

struct TaskResult {
    std::int64_t id = 0;
    TaskStatus status = TaskStatus::Failed;
    std::string reason;         // failed: why; pruned: what stopped it
    nlohmann::json metrics;     // {"validation": {...}, "test": {...}} of the kept model
    nlohmann::json cost;        // {"params", "macs", "bops", ...}
    nlohmann::json history;     // per-epoch history
    int fidelity = 0;           // epochs trained
    double seconds = 0;         // wall seconds of the trial
    std::string modelPath;      // where the model was saved ("" = not saved)
    std::string host;           // who ran it
    int rank = 0;

    nlohmann::json toJson() const;
    static TaskResult fromJson(const nlohmann::json &j);
};

/// Trains one task on the calling thread. onEpoch is called after every epoch and returns
/// false to stop the trial (it then finishes as Pruned with the best epoch so far). A trial
/// that fails (divergence, a bad spec, an exception) returns Failed with the reason rather
/// than throwing; cancellation (the token) throws CancelledError. Must be safe to call from
/// several threads at once.
class TrialRunner {
public:
    virtual ~TrialRunner() = default;
    virtual TaskResult run(const TrialTask &task,
                           const std::function<bool(const EpochReport &)> &onEpoch,
                           const CancelToken &cancel) = 0;
};

struct ExecutorEvent {
    enum class Kind { Epoch, Finished };
    Kind kind = Kind::Finished;
    EpochReport epoch;   // Kind::Epoch: the trial waits for decide(epoch.id, ...)
    TaskResult result;   // Kind::Finished
};

class Executor {
public:
    virtual ~Executor() = default;
    /// How many tasks can run at once (local workers, or MPI ranks - 1).
    virtual int capacity() const = 0;
    /// Tasks submitted and not yet reported Finished.
    virtual int busy() const = 0;
    /// Starts a task; requires busy() < capacity().
    virtual void submit(const TrialTask &task) = 0;
    /// Waits at most `timeout` for events and returns every one available (possibly none).
    virtual std::vector<ExecutorEvent> poll(std::chrono::milliseconds timeout) = 0;
    /// The answer to an Epoch event: true = keep training, false = stop (prune).
    virtual void decide(std::int64_t id, bool keepGoing) = 0;
    /// Every running task stops as Cancelled (its Finished event still comes through poll).
    virtual void cancelAll() = 0;
    /// "2 threads", "3 MPI ranks": for messages.
    virtual std::string describe() const = 0;
};

/// W worker threads in this process, each running tasks with the given runner (borrowed: it
/// must outlive the executor). Destroying it cancels and joins the workers.
class LocalExecutor : public Executor {
public:
    LocalExecutor(TrialRunner &runner, int workers, std::string host = {});
    ~LocalExecutor() override;
    LocalExecutor(const LocalExecutor &) = delete;
    LocalExecutor &operator=(const LocalExecutor &) = delete;

    int capacity() const override;
    int busy() const override;
    void submit(const TrialTask &task) override;
    std::vector<ExecutorEvent> poll(std::chrono::milliseconds timeout) override;
    void decide(std::int64_t id, bool keepGoing) override;
    void cancelAll() override;
    std::string describe() const override;

    struct Impl;

private:
    std::unique_ptr<Impl> m_impl;
};

/// This machine's host name ("localhost" when it cannot be read).
std::string hostName();

} // namespace braggnac::core
