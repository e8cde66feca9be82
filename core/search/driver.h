#pragma once
// The architecture search driver: NSGA-II proposes specs from a search space, the study store
// records them, an executor (local threads or MPI ranks) trains them, ASHA stops the weak ones
// early, and every result goes back to the optimiser and the store. docs/search.md.
//
//   runSearch() runs until the study holds options.trials finished trials (complete + pruned +
//   failed, counting earlier runs), the optimiser runs out of new valid specs, or `cancel` is
//   set. Resuming is running it again on the same store: trials that were running when a
//   process died are requeued and trained first; finished ones are never trained again (the
//   store refuses a second copy of a spec); the optimiser and ASHA are rebuilt from the stored
//   results. On cancel, running trials are stopped and requeued, never failed.
//   Objective values are computed by objectiveValues() from a trial's metrics and cost; the
//   front of a study is computed among the trials of the highest fidelity reached only
//   (studyFront), so a trial stopped early by ASHA never sits on the front beside fully
//   trained ones.
// Torch-free: training happens behind the executor's TrialRunner.
// Errors: InputError for bad options (naming the option), Error from the store.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/common/progress.h"
#include "core/search/asha.h"
#include "core/search/executor.h"
#include "core/search/space.h"
#include "core/search/studystore.h"

namespace braggnac::core {

struct SearchOptions {
    int trials = 96;                  // finished trials the study should hold
    int epochs = 20;                  // per-trial budget (max epochs)
    bool asha = false;
    AshaOptions ashaOptions;          // rungs must be < epochs
    /// Minimised objectives, by name: "distance" (validation mean, px), "bops" (standard BOPs
    /// at 32 bits), "params", "macs", "latency" (estimated FPGA latency, µs) and "dsp"
    /// (estimated DSP slices): these two read cost.hls, which SearchCallbacks::extendCost adds
    /// (braggnac search: the analytic HLS estimate at the hls* settings below). At least one,
    /// no duplicates.
    std::vector<std::string> objectives{"distance", "bops"};
    /// The HLS estimate behind "latency" / "dsp" (docs/search.md "FPGA-aware objectives"): every
    /// tensor at ap_fixed<hlsBits, 6> (the export's default precision), dense weights, reuse
    /// factor, clock and part as in export-hls. Stored with the study's options.
    int hlsBits = 16;
    int hlsReuse = 1;
    double hlsClockMhz = 200;
    std::string hlsPart = "xcu250";
    int population = 20;
    std::uint64_t seed = 1;
    /// Generation 0 starts with the built-in braggnn and nac (fitted to the space's slots; they
    /// may lie outside the space), then random valid specs.
    bool seedBuiltins = true;
    /// Hypervolume reference for (distance px, log10 BOPs) when the objectives are those two.
    double hvDistance = 1.0, hvLog10Bops = 10.0;

    /// Throws InputError("<source>: <field>: ...") on invalid values.
    void validate(const std::string &source = "search options") const;
    nlohmann::json toJson() const;
    static SearchOptions fromJson(const nlohmann::json &j, const std::string &source = "search options");
};

struct SearchProgress {
    StateCounts counts;       // of the whole study
    int target = 0;           // options.trials
    int generation = 0;
    double bestDistance = 0;  // best validation distance at the highest fidelity (NaN: none)
    double hypervolume = 0;   // of studyFront (distance, log10 bops), 0 when not applicable
    double elapsed = 0;       // seconds of this run
    double remaining = 0;     // estimate (seconds), from this run's rate; NaN before the first trial
};

struct SearchCallbacks {
    std::function<void(const TrialRecord &)> onTrialStarted;   // just claimed
    std::function<void(const TrialRecord &)> onTrialFinished;  // complete, pruned or failed
    std::function<void(const SearchProgress &)> onProgress;    // after every event batch
    /// Pause hook (the studio's Pause; optional): while it returns true no new trial is
    /// started, running ones finish and are recorded, and the run waits (polling the executor
    /// every 200 ms) instead of ending as exhausted; it still ends once the study holds
    /// options.trials finished trials, or on cancel. Called on the driver's thread before
    /// every start: must be cheap and thread-safe (e.g. reads an atomic flag).
    std::function<bool()> holdNewTrials;
    /// Optional: adds fields to a finished trial's cost before its objective values are read
    /// and it is stored (braggnac search adds cost.hls for the latency / dsp objectives). Called
    /// on the driver's thread; an exception fails that trial with its message.
    std::function<void(const ArchSpec &spec, nlohmann::json &cost)> extendCost;
};

/// How long the driver's writes to the study store took in one run (every claim, enqueue,
/// epoch report, complete / prune / fail / requeue: each one SQLite transaction on the
/// driver's thread, so under MPI these are rank 0's writes for all ranks). Milliseconds.
struct StoreWriteStats {
    int count = 0;
    double medianMs = 0;
    double p99Ms = 0;
    double maxMs = 0;
    double totalMs = 0;
};

struct SearchSummary {
    StateCounts counts;
    int recovered = 0;        // running trials requeued at start (an earlier run died)
    int requeued = 0;         // trials stopped by cancel and requeued
    bool interrupted = false; // cancel was set
    bool exhausted = false;   // the optimiser found no new valid spec
    double seconds = 0;
    std::vector<TrialRecord> front; // studyFront at the end
    double hypervolume = 0;
    StoreWriteStats storeWrites;
};

/// A finished task's result as the store records it (values left empty): metrics, cost,
/// history, fidelity, seconds, and the model path made relative to the store's folder.
TrialOutcome trialOutcome(const TaskResult &result, const StudyStore &store);

/// Objective values from a finished trial's metrics ({"validation": {"mean", ...}}) and cost
/// ({"bops", "params", "macs", "hls": {"latency_us", "dsp"}}); throws InputError naming the
/// missing field.
std::vector<double> objectiveValues(const std::vector<std::string> &objectives,
                                    const nlohmann::json &metrics, const nlohmann::json &cost);

/// A trial's fidelity level for the front: complete trials are at full fidelity (INT_MAX), a
/// pruned trial's level is the epochs it was trained.
int fidelityLevel(TrialState state, int fidelity);
inline int fidelityLevel(const TrialRecord &t) { return fidelityLevel(t.state, t.fidelity); }
/// The Pareto front of a study: among complete and pruned trials with finite values, those of
/// the highest fidelity level present (so: the complete trials, once there is one), the
/// non-dominated ones by their stored values (all minimised; equal points are all kept), in
/// order of the first objective, then trial number. Returns indices into `points`. Two
/// objectives: O(n log n) (100k trials in well under a second); more: O(n^2).
std::vector<std::size_t> studyFrontIndices(const std::vector<TrialPoint> &points);
/// The same over full records (copies of the front's records).
std::vector<TrialRecord> studyFront(const std::vector<TrialRecord> &trials);
/// The front read from a store: points() for the rule, then the front's full records.
std::vector<TrialRecord> studyFront(const StudyStore &store);
/// Hypervolume of front over (distance, log10 bops) against the options' reference, when the
/// objectives are exactly distance and bops; 0 otherwise.
double studyHypervolume(const std::vector<TrialRecord> &front, const SearchOptions &options);

SearchSummary runSearch(const SearchSpace &space, StudyStore &store, Executor &executor,
                        const SearchOptions &options, const CancelToken &cancel = {},
                        const SearchCallbacks &callbacks = {});

} // namespace braggnac::core
