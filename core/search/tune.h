#pragma once
// The local hyper-parameter search (`braggnac tune`, the studio's Tune panel): TPE over one
// architecture's training hyper-parameters, one minimised objective (validation mean distance,
// px), Optuna-style median pruning on epochs, the same study store (kind "tune") and the same
// executors as the architecture search (runSearch). docs/search.md "Tune".
//
//   runTune() runs until the study holds options.trials finished trials (complete + pruned +
//   failed, counting earlier runs) or `cancel` is set. Resuming is running it again on the same
//   store: running trials of a dead process are requeued (recoverAfterCrash) and trained
//   first; the sampler is told every finished trial in trial-number order and the pruner gets
//   every complete trial's per-epoch values, so the run continues where it stopped. On cancel
//   the running trials stop and are requeued, finished ones are kept.
//   Per-epoch values go to the store (reportEpoch) as they arrive; the median pruner judges a
//   running trial against the complete trials' values at the same epoch.
// Stored hyper-parameters are the sampled ParamSet (paramSetToJson, names of the space); the
// runner gets them mapped by tuneRunnerParams (TrainOptions keys of applyHyperParams).
// Torch-free. Not thread-safe (the caller's thread drives it). Errors: InputError for bad
// options or a space naming an unknown parameter, Error from the store.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/common/progress.h"
#include "core/search/executor.h"
#include "core/search/studystore.h"
#include "core/search/tpe.h"

namespace braggnac::core {

struct TuneOptions {
    int trials = 50;           // finished trials the study should hold
    int epochs = 20;           // per-trial budget (max epochs)
    bool prune = true;         // median pruning on epochs
    int pruneStartupTrials = 5; // complete trials before the pruner acts (Optuna's default)
    int pruneWarmupEpochs = 0;  // epochs of a trial never pruned
    int startupTrials = 10;    // TPE: random trials first
    std::uint64_t seed = 1;

    /// Throws InputError("<source>: <field>: ...").
    void validate(const std::string &source = "tune options") const;
    nlohmann::json toJson() const;
};

/// The default tune space: optimizer {adam, rmsprop, sgd}; learning_rate log [1e-4, 1e-2];
/// weight_decay log [1e-9, 1e-3]; momentum [0.5, 0.99]; schedule {cosine, step, exponential,
/// none}; batch_size {64, 128, 256, 512}. (tpe.h's defaultTuneSpace() with these bounds.)
std::vector<HyperParam> defaultTuneStudySpace();

/// The parameter names a tune space may use (the ones HyperParams maps onto the recipe).
const std::vector<std::string> &tuneParamNames();
/// Throws InputError("<source>: params[i].name: ...") for a name outside tuneParamNames() or
/// a batch_size that is not a positive integer (choices or bounds).
void checkTuneSpace(const std::vector<HyperParam> &space, const std::string &source = "tune space");

/// The ParamSet a stored trial's hyperParams describes (InputError naming the trial and the
/// parameter when one is missing or of the wrong type).
ParamSet paramSetFromJson(const std::vector<HyperParam> &space, const nlohmann::json &j,
                          const std::string &source);
/// A ParamSet as the runner's hyper-parameters: {"optimizer", "lr", "weight_decay",
/// "momentum", "schedule", "batch"}, only those the set names.
nlohmann::json tuneRunnerParams(const ParamSet &params);

struct TuneProgress {
    StateCounts counts;
    int target = 0;
    double best = 0;     // best complete validation distance (NaN: none yet)
    double elapsed = 0;  // seconds of this run
};

struct TuneCallbacks {
    std::function<void(const TrialRecord &)> onTrialStarted;
    std::function<void(const TrialRecord &)> onTrialFinished; // complete, pruned or failed
    std::function<void(const TuneProgress &)> onProgress;     // after every event batch
};

struct TuneSummary {
    StateCounts counts;
    int recovered = 0;        // running trials requeued at start
    int requeued = 0;         // trials stopped by cancel and requeued
    int trainedThisRun = 0;   // trials finished by this run
    bool interrupted = false;
    double seconds = 0;
    std::optional<TrialRecord> best; // the complete trial with the smallest value
};

/// spec: the ArchSpec JSON every trial trains (one architecture per study).
TuneSummary runTune(const std::vector<HyperParam> &space, const nlohmann::json &spec,
                    StudyStore &store, Executor &executor, const TuneOptions &options,
                    const CancelToken &cancel = {}, const TuneCallbacks &callbacks = {});

} // namespace braggnac::core
