#pragma once
// Training of a Model on a patch dataset with LibTorch: per-patch min-max normalisation, target
// = centre / S, MSE loss, Adam / RMSprop / SGD(momentum), cosine / step / exponential schedules,
// weight decay, early stopping on validation distance, +-k px shift augmentation, seeded.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/common/progress.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"

namespace braggnac::core {

struct TrainOptions {
    std::string optimizer = "rmsprop"; // rmsprop | adam | sgd
    double learningRate = 1.5e-3;
    double weightDecay = 2.2e-9;
    double momentum = 0.9;             // sgd momentum
    double rmspropMomentum = 0;        // rmsprop momentum (0 = plain RMSprop, the NAC recipe)
    std::string schedule = "cosine";   // cosine | step | exponential | none
    int stepSize = 10;                 // step schedule: epochs per decay
    double gamma = 0.5;                // step / exponential decay factor
    int batchSize = 256;
    int epochs = 50;
    int patience = 0;                  // early stopping: epochs without improvement (0 = off)
    int shift = 0;                     // augmentation: random integer shift in [-shift, shift] px
    std::uint64_t seed = 0;
    std::string device = "auto";       // auto | cpu | cuda
    int threads = 0;                   // <= 0: all hardware threads
    /// Name used for the data in error messages (e.g. the file path); not part of the recipe.
    std::string dataSource = "patch dataset";

    nlohmann::json toJson() const;
    /// Throws InputError naming the field on unknown optimizer/schedule or invalid values.
    static TrainOptions fromJson(const nlohmann::json &j, const std::string &source = "recipe");
    /// Throws InputError("<source>: <field>: ...") on an unknown optimizer/schedule/device or an
    /// out-of-range value (lr <= 0, batch < 1, epochs < 1, ...).
    void validate(const std::string &source = "train options") const;
};

struct EpochStats {
    int epoch = 0;              // 1-based
    double trainLoss = 0;       // mean MSE on normalised targets
    double validationMean = 0;  // mean distance (px) on the validation split
    double learningRate = 0;
    double seconds = 0;         // wall time of this epoch
};

/// Why a training run ended.
enum class StopReason {
    Completed, // every epoch of TrainOptions::epochs
    MaxEpochs, // TrainBudget::maxEpochs reached first
    WallTime,  // TrainBudget::maxSeconds passed (checked after every epoch)
    Patience,  // early stopping (TrainOptions::patience)
    Pruned,    // the per-epoch callback returned EpochDecision::Stop
    Diverged   // non-finite training loss or validation distance: the run failed
};
/// "completed", "max_epochs", "wall_time", "patience", "pruned", "diverged".
std::string stopReasonName(StopReason reason);
/// Inverse of stopReasonName; throws InputError("<source>: stop_reason: ...") on an unknown name.
StopReason stopReasonFromName(const std::string &name, const std::string &source = "trial");

enum class EpochDecision { Continue, Stop };

/// Limits of one run on top of the recipe. maxEpochs stops after that many epochs without
/// changing the learning-rate schedule (which follows TrainOptions::epochs), so a budget-stopped
/// run is the exact prefix of the full run (successive halving relies on this). maxSeconds is
/// the wall time of the training loop (preparation and evaluation not included), checked after
/// every epoch: the run stops after the first epoch that ends past it.
struct TrainBudget {
    int maxEpochs = 0;     // <= 0: TrainOptions::epochs
    double maxSeconds = 0; // <= 0: no limit
    /// Called after every epoch on the training thread, after the best model was updated;
    /// returning Stop ends the run (StopReason::Pruned) keeping the best epoch's model. Not
    /// called for an epoch that diverged (the run ends there); after the last epoch it is called
    /// too, and its decision changes nothing.
    std::function<EpochDecision(const EpochStats &)> onEpoch;
};

struct TrainResult {
    Model model;                     // best model on validation (the last one without a split)
    std::vector<EpochStats> history;
    int bestEpoch = 0;
    bool stoppedEarly = false;       // stopped before TrainOptions::epochs for any reason
    StopReason stopReason = StopReason::Completed;
    /// Empty unless stopReason == Diverged: "training diverged at epoch 3: loss nan". The model
    /// is then the best finite epoch's, or the diverged weights when there was none.
    std::string failure;
};

/// A labelled dataset made ready for training once (rows split and filtered, patches normalised
/// into tensors on the device) and shared read-only by any number of runs: copies share the
/// same tensors, and concurrent trainModel / runTrial / evaluateModel calls on one PreparedData
/// from several threads are safe (nothing writes to it after prepareData). Immutable.
class PreparedData {
public:
    PreparedData();                          // empty (valid() false)
    bool valid() const { return bool(m_impl); }
    int patchSize() const;
    std::string device() const;              // "cpu", "cuda:0"
    const std::string &source() const;       // the data's name in messages (file path)
    const std::string &labelSource() const;
    std::size_t rows() const;                // rows of the dataset
    std::size_t trainRows() const;
    std::size_t validationRows() const;
    std::size_t testRows() const;
    std::size_t excludedRows() const;        // left out: /fit/converged == 0
    /// The recipe's "data" object: source file, patch size, label source and the row counts.
    nlohmann::json describe() const;

    struct Impl;
    const Impl &impl() const { return *m_impl; }
    explicit PreparedData(std::shared_ptr<const Impl> impl);

private:
    std::shared_ptr<const Impl> m_impl;
};

struct PrepareOptions {
    std::string device = "auto";              // auto | cpu | cuda | cuda:N
    std::string source = "patch dataset";     // name of the data in messages and the recipe
};

/// Splits (effectiveSplit with its defaults), leaves out /fit/converged == 0 rows, normalises
/// every patch (as Model::predict does) and moves the train, validation and test tensors to the
/// device. Throws InputError naming `options.source` on unlabelled data, non-finite labels or
/// an empty training split, and a one-line Error when LibTorch fails (e.g. out of memory).
PreparedData prepareData(const PatchDataset &data, const PrepareOptions &options = {});

/// Trains on the train split (effectiveSplit(data) with its defaults, as evaluateModel uses) and
/// validates on the validation split; rows whose /fit/converged is 0 are left out of both. Calls
/// onEpoch after every epoch (on the training thread). Throws CancelledError when cancelled
/// (the partially trained model is discarded) and InputError when the dataset does not match
/// the spec's input size or is unlabelled. Divergence does not throw: see TrainResult::failure.
/// LibTorch's threads: options.threads applies to the calling thread only (its OpenMP team
/// size), so runs on different threads may use different counts; nothing process-wide changes.
TrainResult trainModel(const ArchSpec &spec, const PatchDataset &data, const TrainOptions &options,
                       const Monitor &monitor = {},
                       const std::function<void(const EpochStats &)> &onEpoch = {});
/// The same on data prepared once; options.device must resolve to the data's device. Budget
/// and per-epoch decision as TrainBudget says. Thread-safe for concurrent calls.
TrainResult trainModel(const ArchSpec &spec, const PreparedData &data, const TrainOptions &options,
                       const Monitor &monitor, const TrainBudget &budget);

/// Runs fn with LibTorch's intra-op thread count set to `threads` (<= 0: all hardware threads)
/// for the calling thread only (OpenMP's per-thread team size), restoring it afterwards.
class ScopedTorchThreads {
public:
    explicit ScopedTorchThreads(int threads);
    ~ScopedTorchThreads();
    ScopedTorchThreads(const ScopedTorchThreads &) = delete;
    ScopedTorchThreads &operator=(const ScopedTorchThreads &) = delete;
    /// LibTorch's intra-op thread count as the calling thread sees it.
    static int current();

private:
    int m_previous = 0;
};

/// Euclidean distances in pixels between predictions and labels. Percentiles interpolate
/// linearly between order statistics (numpy's default): p = d[floor(q(n-1))] + frac * (next - it).
struct DistanceStats {
    std::size_t n = 0;
    double mean = 0, p50 = 0, p75 = 0, p95 = 0, max = 0;
    nlohmann::json toJson() const;
};
DistanceStats distanceStats(std::vector<float> distances);

struct Evaluation {
    DistanceStats overall;
    /// By flag when the dataset carries /flags/* (e.g. "neighbour", "no-neighbour").
    std::vector<std::pair<std::string, DistanceStats>> subsets;
    std::vector<std::size_t> indices;   // dataset rows evaluated
    std::vector<float> predictions;     // indices.size() * 2
    std::vector<float> distances;       // indices.size()
};

/// Evaluates on one split (-1 = every row). Throws InputError on unlabelled data, a patch size
/// that differs from the model's, or a split with no rows to evaluate (never a score over nothing).
Evaluation evaluateModel(const Model &model, const PatchDataset &data, int split = 2);
/// The same on prepared data, for split 1 (validation) or 2 (test): bit-identical to
/// evaluateModel on the dataset it was prepared from (same rows, same batches of 512, same
/// arithmetic). Thread-safe for concurrent calls with different models.
Evaluation evaluateModel(const Model &model, const PreparedData &data, int split);

/// Finishes an evaluation whose indices and predictions (indices.size() * 2) are set: distances
/// to `labels` (2 per evaluated row, in the order of indices), overall statistics and subsets by
/// the flags (name -> one value per evaluated row; "<name>" set, "no-<name>" clear, empty subsets
/// omitted), in the order of `flags`.
void summariseEvaluation(Evaluation &ev, const std::vector<float> &labels,
                         const std::vector<std::pair<std::string, std::vector<std::uint8_t>>> &flags);

} // namespace braggnac::core
