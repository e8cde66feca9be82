#pragma once
// Pruning masks for the conv / linear weights of a LayerPlan (issue 8 item 4). Torch-free.
//
// Contract:
//  - A mask is kept per prunable tensor: the ".weight" of every Conv and Linear op (never a
//    bias or a norm parameter), keyed by its state_dict name, one byte per element (1 = kept,
//    0 = pruned), row-major as in torch.
//  - pruneGlobalL1 removes round(fraction * kept) of the currently kept weights, those of the
//    smallest |w| over all prunable tensors together (ties: plan order, then element index), so
//    R rounds at fraction F leave the kept count of R successive roundings of (1 - F) * kept.
//  - pruneStructured removes whole output channels (rows of the weight) ranked by their mean
//    |w| (L1 norm / fan-in, so layers of different fan-in compare), round(fraction * kept
//    channels) of them; the network output op and the last kept channel of a layer are never
//    removed.
//  - Masks are stored in a model folder's recipe.json under "pruning" (toJson / fromJson).
//  - Errors: InputError naming the tensor or the JSON field. Plain values: thread-safe to read.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/arch/layerplan.h"

namespace braggnac::core {

struct PruneMasks {
    std::map<std::string, std::vector<std::uint8_t>> keep; // weight key -> 1 kept / 0 pruned

    /// All-ones masks for every prunable weight of `plan`.
    static PruneMasks full(const LayerPlan &plan);
    std::int64_t total() const;
    std::int64_t kept() const;
    double sparsity() const; // pruned / total (0 for no masks)

    /// {"<key>": {"size": n, "pruned": [flat indices, ascending]}}
    nlohmann::json toJson() const;
    /// Throws InputError("<source>: <key>...: ...") for a key that is not a prunable weight of
    /// `plan`, a wrong size or an index out of range. Weights absent from the JSON are all kept.
    static PruneMasks fromJson(const nlohmann::json &j, const LayerPlan &plan, const std::string &source);
};

/// The state_dict keys of the prunable weights of `plan`, in plan order.
std::vector<std::string> prunableWeights(const LayerPlan &plan);

/// Global unstructured L1 magnitude pruning of `fraction` (in (0, 1)) of the weights `current`
/// keeps. Throws InputError for a fraction outside (0, 1) or a missing / mis-sized weight.
PruneMasks pruneGlobalL1(const LayerPlan &plan, const NamedTensors &weights, const PruneMasks &current,
                         double fraction);
/// Structured pruning of whole output channels (see above).
PruneMasks pruneStructured(const LayerPlan &plan, const NamedTensors &weights, const PruneMasks &current,
                           double fraction);
/// Sets every pruned weight of `weights` to exactly 0.
void applyMasks(NamedTensors &weights, const PruneMasks &masks);
/// The kept count after `rounds` rounds of pruning `fraction` of the remaining from `total`
/// (the same rounding as pruneGlobalL1).
std::int64_t keptAfterRounds(std::int64_t total, double fraction, int rounds);

} // namespace braggnac::core
