#pragma once
// The search's executor over OpenMPI (`mpirun --enable-recovery -np N braggnac search ...`):
// rank 0 runs the driver with an MpiExecutor (it owns the optimiser and the study store), every
// rank >= 1 runs runMpiWorker() with its own TrialRunner (its own PreparedData). One code path
// for any N >= 2; N = 1 (no worker rank) is an InputError. docs/search.md "MPI".
//
// Messages (MPI_COMM_WORLD, JSON strings of executor.h's types):
//   0 -> w  task (TrialTask), decide ({"id", "keep"}), cancel ({"id"}), stop
//   w -> 0  epoch (EpochReport; the trial waits for decide), result (TaskResult), heartbeat
// A worker sends a heartbeat every 0.5 s from its communication thread while its trial trains
// on another thread. Rank 0 counts a worker silent for longer than the heartbeat timeout
// (BRAGGNAC_MPI_TIMEOUT seconds, default 15) as dead: its task comes back as Cancelled with
// reason "rank R died" (so the driver requeues it, and another rank trains it), nothing is
// sent to that rank again, and the search goes on with one rank fewer; when no worker rank is
// left, poll() throws Error. Surviving a killed rank needs mpirun's --enable-recovery (without
// it OpenMPI 4.1 aborts the whole job when a process dies).
// MPI is initialised with MPI_THREAD_FUNNELED: only the thread that made the MpiSession calls
// MPI (rank 0: the driver's thread; workers: runMpiWorker's thread). Not thread-safe.
// This header does not include mpi.h.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/search/executor.h"

namespace braggnac::core {

/// True when this process was started by OpenMPI's mpirun (OMPI_COMM_WORLD_SIZE is set).
bool launchedByMpirun();

/// MPI_Init_thread when launchedByMpirun() (otherwise nothing), MPI_Finalize at destruction.
/// One per process, made by main().
class MpiSession {
public:
    MpiSession(int *argc, char ***argv);
    ~MpiSession();
    MpiSession(const MpiSession &) = delete;
    MpiSession &operator=(const MpiSession &) = delete;

    /// True between a successful MPI_Init_thread and MPI_Finalize.
    static bool active();
    static int rank(); // 0 when not active
    static int size(); // 1 when not active
};

/// Rank 0's executor: capacity() = the worker ranks still alive. Requires an active
/// MpiSession with size() >= 2 on rank 0 (InputError otherwise, naming the rank count).
/// Destroying it sends stop to every live worker (so workers end even when the driver threw).
class MpiExecutor : public Executor {
public:
    explicit MpiExecutor(std::chrono::milliseconds heartbeatTimeout = defaultHeartbeatTimeout());
    ~MpiExecutor() override;
    MpiExecutor(const MpiExecutor &) = delete;
    MpiExecutor &operator=(const MpiExecutor &) = delete;

    int capacity() const override;
    int busy() const override;
    void submit(const TrialTask &task) override;
    std::vector<ExecutorEvent> poll(std::chrono::milliseconds timeout) override;
    void decide(std::int64_t id, bool keepGoing) override;
    void cancelAll() override;
    std::string describe() const override;

    /// Sends stop to every live worker (idempotent; the destructor calls it).
    void shutdown();
    /// Ranks found dead so far.
    std::vector<int> deadRanks() const;

    /// BRAGGNAC_MPI_TIMEOUT (seconds, > 0) or 15 s.
    static std::chrono::milliseconds defaultHeartbeatTimeout();

    struct Impl;

private:
    std::unique_ptr<Impl> m_impl;
};

/// A worker rank's loop: receives tasks from rank 0, runs them with runner (on a training
/// thread), relays epoch reports and decisions, sends results and heartbeats, and returns when
/// rank 0 sends stop (or when rank 0 is gone: no message for 3 heartbeat timeouts). Requires
/// an active MpiSession with rank() >= 1. Interrupt signals do not end it: rank 0 decides.
/// Test hook: BRAGGNAC_TEST_MPI_KILL="R:K" makes rank R raise SIGKILL after the first epoch
/// report of its K-th task (1-based).
void runMpiWorker(TrialRunner &runner);

} // namespace braggnac::core
