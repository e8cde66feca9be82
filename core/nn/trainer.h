#pragma once
// Training of a Model on a patch dataset with LibTorch: per-patch min-max normalisation, target
// = centre / S, MSE loss, Adam / RMSprop / SGD(momentum), cosine / step / exponential schedules,
// weight decay, early stopping on validation distance, +-k px shift augmentation, seeded.
#include <cstdint>
#include <functional>
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

struct TrainResult {
    Model model;                     // best model on validation (the last one without a split)
    std::vector<EpochStats> history;
    int bestEpoch = 0;
    bool stoppedEarly = false;
};

/// Trains on the train split (effectiveSplit(data) with its defaults, as evaluateModel uses) and
/// validates on the validation split; rows whose /fit/converged is 0 are left out of both. Calls
/// onEpoch after every epoch (on the training thread). Throws CancelledError when cancelled
/// (the partially trained model is discarded) and InputError when the dataset does not match
/// the spec's input size or is unlabelled.
TrainResult trainModel(const ArchSpec &spec, const PatchDataset &data, const TrainOptions &options,
                       const Monitor &monitor = {},
                       const std::function<void(const EpochStats &)> &onEpoch = {});

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

/// Evaluates on one split (-1 = every row). Throws InputError on unlabelled data or a patch size
/// that differs from the model's.
Evaluation evaluateModel(const Model &model, const PatchDataset &data, int split = 2);

} // namespace braggnac::core
