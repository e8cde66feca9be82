#pragma once
// The study store: one SQLite file per study (search or tune) holding the study's description
// and every trial (spec, hyper-parameters, state, fidelity, metrics, objective values, cost,
// per-epoch values, timings, host/rank, model folder). Format and guarantees: docs/study-store.md.
//
// Durability: the file is in WAL mode with synchronous=NORMAL; every write is one transaction
// (BEGIN IMMEDIATE ... COMMIT). A transaction whose call returned survives kill -9 of the
// process (not necessarily a power loss). After a crash, recoverAfterCrash() requeues the
// trials that were running; nothing else is needed.
//
// Threads and processes: a StudyStore object owns one SQLite connection guarded by an internal
// mutex, so one object may be shared by several threads (calls are serialised); threads that
// want parallel reads open their own StudyStore on the same file. Any number of processes may
// open the same file: writers serialise on SQLite's lock (busy timeout 30 s, then core::Error),
// readers (mode ReadOnly) never block the writer and see every committed transaction.
//
// Errors: a file that is not a study store (not SQLite, truncated, corrupt, another
// application's SQLite file, a newer schema) -> core::InputError naming the file and what is
// wrong, and the file is left untouched. Misuse (unknown trial id, completing a trial that is not
// running, a value count that is not the objective count) -> core::InputError naming the trial.
// SQLite failures (disk full, lock timeout) -> core::Error naming the file.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace braggnac::core {

enum class StudyKind { Search, Tune, Compress };
const char *studyKindName(StudyKind k);                       // "search" | "tune" | "compress"
StudyKind studyKindFromName(const std::string &s, const std::string &source = "kind");

enum class TrialState { Queued, Running, Complete, Failed, Pruned };
const char *trialStateName(TrialState s);                     // "queued" | "running" | ...
TrialState trialStateFromName(const std::string &s, const std::string &source = "state");
/// True for complete, failed and pruned.
bool isFinished(TrialState s);

/// 16 lowercase hex digits: FNV-1a 64 of j.dump() (object keys sorted, so equal JSON values
/// hash equally whatever order their keys were written in).
std::string canonicalJsonHash(const nlohmann::json &j);

struct Objective {
    std::string name;     // "distance", "bops", ...
    bool minimize = true; // JSON "direction": "minimize" | "maximize"
    bool operator==(const Objective &o) const { return name == o.name && minimize == o.minimize; }
};

/// The dataset a study trains on. describeDataset() fills it from a file.
struct DatasetInfo {
    std::string path;        // as given by the user (absolute or relative to the working dir)
    std::int64_t size = 0;   // bytes
    std::string contentHash; // 16 hex digits (FNV-1a 64 of the bytes); "" = not recorded
    nlohmann::json toJson() const;
    static DatasetInfo fromJson(const nlohmann::json &j, const std::string &source = "dataset");
};
/// Size and content hash of a file. Throws InputError when it cannot be read.
DatasetInfo describeDataset(const std::string &path);

struct StudyInfo {
    std::string name;                 // non-empty
    StudyKind kind = StudyKind::Search;
    double created = 0;               // Unix seconds (UTC); set by createOrOpen when 0
    nlohmann::json space;             // the search space JSON (null for none)
    std::string spaceHash;            // canonicalJsonHash(space) when left empty
    DatasetInfo dataset;
    std::vector<Objective> objectives; // at least one; values are stored in this order
    nlohmann::json options;           // the driver's options (trials, workers, epochs, ...)
    std::uint64_t seed = 0;
    nlohmann::json toJson() const;
    static StudyInfo fromJson(const nlohmann::json &j, const std::string &source = "study");
};

/// One per-epoch value of a trial (Optuna's "intermediate value"; TPE's median pruner).
struct EpochValue {
    int epoch = 0;          // 1-based: the number of epochs trained when it was reported
    double value = 0;       // the pruning metric (validation distance); NaN allowed
    nlohmann::json metrics; // anything else about the epoch (loss, lr, ...); may be null
    bool operator==(const EpochValue &o) const;
};

/// What the driver asks for: enqueue() stores it as a queued trial.
struct TrialRequest {
    nlohmann::json spec;          // ArchSpec JSON (the genome)
    std::string specHash;         // the spec's canonical hash (from core/arch), non-empty
    nlohmann::json hyperParams = nlohmann::json::object(); // training hyper-parameters
    int budget = 0;               // epochs requested (0 = the study's default)
    int generation = -1;          // NSGA-II generation (-1 = none)
};

/// What a finished (complete or pruned) trial reports.
struct TrialOutcome {
    nlohmann::json metrics;       // {"validation": {...}, "test": {...}} as the trial returns it
    std::vector<double> values;   // one per objective, in StudyInfo::objectives order
    nlohmann::json cost;          // {"params":..., "macs":..., "bops":...}
    nlohmann::json history;       // per-epoch history as the trainer returns it
    int fidelity = 0;             // epochs actually trained
    double seconds = 0;           // wall seconds of the trial
    std::string modelPath;        // model folder, relative to the store's folder ("" = none)
    std::string host;             // who trained it (with rank >= 0: replaces the claim's host/rank,
    int rank = -1;                //  which rank 0 records for an MPI worker's trial before it runs)
};

struct TrialRecord {
    std::int64_t id = 0;          // stable primary key
    int number = 0;               // 0, 1, 2, ... in enqueue order (Optuna's trial number)
    TrialState state = TrialState::Queued;
    nlohmann::json spec;
    std::string specHash;
    nlohmann::json hyperParams = nlohmann::json::object();
    std::string hyperHash;        // canonicalJsonHash(hyperParams)
    int budget = 0;
    int fidelity = 0;
    int generation = -1;
    nlohmann::json metrics;       // null until finished
    std::vector<double> values;   // empty until finished (pruned: may stay empty)
    nlohmann::json cost;
    nlohmann::json history;
    double queuedAt = 0, startedAt = 0, finishedAt = 0; // Unix seconds; 0 = not yet
    double seconds = 0;
    std::string host;
    int rank = -1;
    std::string error;            // failed: the reason; pruned: why (may be empty)
    std::string modelPath;
    int attempts = 0;             // how many times it was claimed
    std::int64_t updateSeq = 0;   // change counter value of its last write (see trialsSince)
    std::vector<EpochValue> epochs; // filled only when asked (ListOptions::withEpochs, trial())

    nlohmann::json toJson() const;
    static TrialRecord fromJson(const nlohmann::json &j, const std::string &source = "trial");
};

struct StateCounts {
    int queued = 0, running = 0, complete = 0, failed = 0, pruned = 0;
    int total() const { return queued + running + complete + failed + pruned; }
};

struct EnqueueResult {
    std::int64_t id = 0;
    int number = 0;
    bool inserted = false;        // false: the same spec + hyper-parameters was already there
    TrialState state = TrialState::Queued; // the (existing) trial's state
};

/// What a Pareto front or a progress chart needs of a trial, and nothing else.
struct TrialPoint {
    std::int64_t id = 0;
    int number = 0;
    TrialState state = TrialState::Queued;
    int fidelity = 0;
    std::vector<double> values;   // empty when the trial has none
};

/// One `braggnac compress` run stored in a study (schema version 2, docs/study-store.md): the
/// start model, the data, the options, and once finished the chosen record and its folder.
struct CompressRunInfo {
    std::int64_t id = 0;          // set by beginCompressRun
    double created = 0;           // Unix seconds; set by beginCompressRun when 0
    std::string sourceModel;      // the start model folder (as given)
    int sourceTrial = -1;         // the trial number the start model came from (-1: none)
    DatasetInfo dataset;          // the compress data
    nlohmann::json options;       // CompressOptions::toJson()
    bool finished = false;        // finishCompressRun was called
    int chosen = -1;              // index of the chosen record (-1: not finished)
    std::string modelPath;        // the chosen record's saved folder, as given ("" = none)
};

/// One (bits, round) record of a compress run (CompressRecord in core/nn/compress.h).
struct CompressRecordRow {
    int bits = 0;
    int round = 0;
    double sparsity = 0;          // pruned fraction of the conv / linear weights
    double bops = 0;              // standard BOPs, per-layer bits, real zeros
    std::int64_t params = 0;      // non-zero quantised weights + biases
    double validation = 0, test = 0; // mean distance (px); NaN (stored NULL) for an empty split
    std::string modelPath;        // its saved folder ("" = not saved: only the chosen one is)
    bool operator==(const CompressRecordRow &o) const;
};

struct CompressRun {
    CompressRunInfo info;
    std::vector<CompressRecordRow> records; // in the order they were measured
};

struct ListOptions {
    std::optional<TrialState> state; // only trials in this state
    bool withBlobs = true;   // false: spec, hyperParams, metrics, cost, history stay null
                             // (fast listing for fronts and progress: ~10x fewer bytes parsed)
    bool withEpochs = false; // fill TrialRecord::epochs
    bool withHistory = true; // with withBlobs: also the per-epoch history (the largest blob;
                             // false roughly halves a full listing's time)
};

class StudyStore {
public:
    enum class Mode { ReadWrite, ReadOnly };

    /// Opens the study at path, creating it (atomically: the file appears fully initialised or
    /// not at all) when it does not exist. An existing study must have the same kind and
    /// objectives (always refused otherwise) and the same dataset (size + content hash) and
    /// space hash (refused unless force; forcing records the new ones and keeps the old ones in
    /// the study's "overrides" list). The stored name, options and seed are kept (read info()).
    static StudyStore createOrOpen(const std::string &path, const StudyInfo &study,
                                   bool force = false);
    /// Opens an existing study (InputError when the file does not exist or is not a study).
    static StudyStore open(const std::string &path, Mode mode = Mode::ReadWrite);

    StudyStore(StudyStore &&) noexcept;
    StudyStore &operator=(StudyStore &&) noexcept;
    ~StudyStore();

    const std::string &path() const;
    /// The folder holding the store; model paths are relative to it.
    std::string folder() const;
    /// folder()/relative (relative as stored in TrialRecord::modelPath).
    std::string resolve(const std::string &relative) const;
    /// "<store file stem>.models/trial-<number, 5 digits>": where the driver should save a model.
    std::string suggestedModelPath(int number) const;
    bool created() const;          // true when createOrOpen made the file
    bool readOnly() const;
    StudyInfo info() const;
    /// The dataset/space overrides accepted with force: [{"time", "field", "old", "new"}].
    nlohmann::json overrides() const;

    // --- writes: each is one transaction ---
    /// Adds a queued trial, or returns the existing one with the same spec hash and hyper-
    /// parameters (whatever its state): a study never trains the same genome twice.
    EnqueueResult enqueue(const TrialRequest &request);
    /// Same, all in one transaction (a generation at once).
    std::vector<EnqueueResult> enqueueAll(const std::vector<TrialRequest> &requests);
    /// Atomically takes the queued trial with the lowest number, marks it running with host and
    /// rank and returns it (nullopt when none is queued). Safe across processes.
    std::optional<TrialRecord> claimNext(const std::string &host, int rank);
    /// Claims one given queued trial (InputError when it is not queued).
    TrialRecord claim(std::int64_t id, const std::string &host, int rank);
    /// Records the value after `epoch` epochs of a running trial (replaces an earlier report
    /// for the same epoch) and raises its fidelity to epoch.
    void reportEpoch(std::int64_t id, int epoch, double value,
                     const nlohmann::json &metrics = nullptr);
    /// running -> complete. outcome.values: one per objective, none NaN (use fail()).
    void complete(std::int64_t id, const TrialOutcome &outcome);
    /// running -> pruned (stopped early by ASHA or the median pruner). values may be empty or
    /// one per objective (the values at the fidelity reached).
    void prune(std::int64_t id, const TrialOutcome &outcome, const std::string &reason = {});
    /// queued|running -> failed with its reason (exception text, "rank 3 died", ...).
    /// host/rank (rank >= 0): who ran it, replacing the claim's (as TrialOutcome::host/rank).
    void fail(std::int64_t id, const std::string &reason, const std::string &host = {}, int rank = -1);
    /// A finished or running trial back to queued, e.g. an ASHA promotion to a larger budget
    /// (budget > 0 replaces the old one) or a retry after a lost rank. Clears its epoch values
    /// only when it was running or failed (a promotion keeps the epochs already trained).
    void requeue(std::int64_t id, int budget = 0);
    /// Crash recovery at resume: every running trial back to queued (its epoch values cleared,
    /// host/rank/start cleared). Returns how many. Call once, before starting workers.
    int recoverAfterCrash();

    // --- reads ---
    std::optional<TrialRecord> trial(std::int64_t id) const; // with epochs
    std::optional<TrialRecord> trialByNumber(int number) const;
    std::vector<TrialRecord> listTrials(const ListOptions &options = {}) const; // by number
    /// id, number, state, fidelity and values of the trials (in one state, or all), by number:
    /// the cheapest read for fronts (about 5x less work than listTrials without blobs).
    std::vector<TrialPoint> points(std::optional<TrialState> state = TrialState::Complete) const;
    /// Trials written (inserted or changed) after change counter `seq`, ordered by updateSeq.
    /// A watcher keeps the largest updateSeq it has seen (or changeSeq()) and asks again.
    std::vector<TrialRecord> trialsSince(std::int64_t seq, const ListOptions &options = {}) const;
    /// The current change counter (largest updateSeq; 0 for an empty study). One index lookup.
    std::int64_t changeSeq() const;
    StateCounts counts() const;
    std::vector<EpochValue> epochs(std::int64_t id) const;
    /// The non-NaN values reported at `epoch` by every trial that reached it, by trial number
    /// (the median pruner's input; the caller leaves out the trial it is judging).
    std::vector<double> valuesAtEpoch(int epoch) const;

    // --- compress records (schema version 2; a version-1 file gains the tables when it is
    //     opened read-write, and reads as having no compress runs when opened read-only) ---
    /// Starts a run (one transaction); returns its id. Records are added as they are measured,
    /// so a run that is killed keeps the records it had (finished stays false).
    std::int64_t beginCompressRun(const CompressRunInfo &run);
    /// Appends one record to a run that is not finished (InputError otherwise, or when the run
    /// already has a record with the same bits and round).
    void addCompressRecord(std::int64_t run, const CompressRecordRow &record);
    /// Marks the run finished: chosen is an index into its records (InputError when out of
    /// range); modelPath is stored on the run and on the chosen record.
    void finishCompressRun(std::int64_t run, int chosen, const std::string &modelPath);
    /// Every compress run with its records, by id.
    std::vector<CompressRun> compressRuns() const;

    /// The schema version this build writes and reads.
    static int schemaVersion();

    struct Impl; // the connection (studystore.cpp only)

private:
    explicit StudyStore(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

} // namespace braggnac::core
