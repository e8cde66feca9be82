#pragma once
// One trial: an architecture trained with a recipe under a budget, then measured. The one
// train -> evaluate -> describe path of BraggNAC: `braggnac train`, `braggnac trial`, the
// studio's Train panel and the architecture search all call runTrial, so every model folder's
// metrics.json has the same schema (TrialResult::metricsJson, docs/training.md "Trials").
// Torch-free header (LibTorch stays behind PreparedData and Model).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arch/archspec.h"
#include "core/common/progress.h"
#include "core/cost/cost.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"

namespace braggnac::core {

/// Distances of one split: overall and by flag subset ("neighbour", "no-neighbour", ...).
/// Absent (n == 0) when the split is empty or was not evaluated (a failed trial).
struct SplitMetrics {
    DistanceStats overall;
    std::map<std::string, DistanceStats> subsets;

    bool present() const { return overall.n > 0; }
    static SplitMetrics of(const Evaluation &evaluation);
    /// {"n", "mean", "p50", "p75", "p95", "max"} plus "subsets": {name: {...}} when any.
    nlohmann::json toJson() const;
    /// Throws InputError("<source>: <field>: ...") on a missing or mistyped field.
    static SplitMetrics fromJson(const nlohmann::json &j, const std::string &source = "metrics");
};

/// Limits of one trial on top of the recipe (see TrainBudget for the exact semantics: maxEpochs
/// keeps the recipe's learning-rate schedule; maxSeconds is checked after every epoch).
struct TrialBudget {
    int maxEpochs = 0;     // <= 0: the recipe's epochs
    double maxSeconds = 0; // <= 0: no limit
};

struct TrialCallbacks {
    /// After every finished epoch, on the trial's thread: Stop prunes the trial (kept model: the
    /// best validation epoch so far). Must be thread-safe when trials run concurrently.
    std::function<EpochDecision(const EpochStats &)> onEpoch;
};

/// Wall seconds of the phases. prepare is 0 when the caller passed data prepared beforehand.
struct TrialTimings {
    double prepare = 0, train = 0, evaluate = 0;
    double total() const { return prepare + train + evaluate; }
};

struct TrialResult {
    ArchSpec spec;
    TrainOptions recipe;
    TrialBudget budget;
    nlohmann::json data;                 // PreparedData::describe(): file, patch size, row counts
    StopReason stopReason = StopReason::Completed;
    /// Empty for a successful trial; else why it failed ("training diverged at epoch 3: loss
    /// nan"). A failed trial has no validation / test metrics.
    std::string failure;
    int epochs = 0;                      // epochs run (history.size())
    int bestEpoch = 0;                   // 1-based epoch of the kept weights
    std::vector<EpochStats> history;
    SplitMetrics validation, test;       // of the kept model
    Cost cost;                           // computeCost(spec), standard convention, 32 bits
    TrialTimings seconds;
    /// The trained model (best validation epoch), its recipe and metrics set (recipe: the
    /// options, "data", "device_used", "torch", "arch"; metrics: metricsJson()). Null after
    /// fromJson. A failed trial keeps its model too (the caller decides whether to save it).
    std::shared_ptr<Model> model;

    bool failed() const { return !failure.empty(); }
    /// {"status": "complete"|"failed", "failure"?, "stop_reason", "stopped_early", "epochs",
    ///  "best_epoch", "spec", "recipe", "budget", "data", "metrics": {"validation"?, "test"?},
    ///  "cost", "seconds" (total), "timings": {"prepare", "train", "evaluate"}, "history": [...]}
    /// Non-finite numbers (a diverged epoch's loss) are written as null.
    nlohmann::json toJson() const;
    /// Exact inverse of toJson (the model is not part of it). Throws InputError naming the field.
    static TrialResult fromJson(const nlohmann::json &j, const std::string &source = "trial");
    /// The model folder's metrics.json: toJson() without "spec" and "recipe" (spec.json and
    /// recipe.json hold them) and with "validation" / "test" at the top level instead of under
    /// "metrics" (where model folders have always kept them).
    nlohmann::json metricsJson() const;
};

/// Trains `spec` with `recipe` on prepared data within `budget`, keeps the best validation
/// epoch, evaluates it on the validation and test splits (those that are not empty) and costs
/// it. Divergence (non-finite loss or validation distance) does not throw: the result is failed()
/// with the reason. Throws CancelledError when monitor is cancelled, InputError on a bad spec,
/// recipe or a data / spec mismatch, Error (one line) when LibTorch fails. Thread-safe: trials on
/// several threads may share one PreparedData; each uses recipe.threads LibTorch threads on its
/// own thread only.
TrialResult runTrial(const ArchSpec &spec, const TrainOptions &recipe, const TrialBudget &budget,
                     const PreparedData &data, const Monitor &monitor = {},
                     const TrialCallbacks &callbacks = {});
/// The same, preparing `data` first on recipe.device (seconds.prepare measured); recipe.dataSource
/// names the data in messages and in the recipe.
TrialResult runTrial(const ArchSpec &spec, const TrainOptions &recipe, const TrialBudget &budget,
                     const PatchDataset &data, const Monitor &monitor = {},
                     const TrialCallbacks &callbacks = {});

} // namespace braggnac::core
