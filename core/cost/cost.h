#pragma once
// Exact cost of an architecture: parameters, MACs and bit operations (BOPs) per layer and total.
// Conventions (docs/cost.md):
//  - Standard: BOPs = sum over layers of MACs * [(1 - s) b_a b_w + b_a + b_w + log2(fan-in)],
//    MACs counted over every output position; attention includes the Q K^T and softmax V
//    products; norms count their per-element operations.
//  - NacOpt: reproduces the NAC paper's published figures (1.106144e9 braggnn, 8.520787e7 nac
//    at 32 bits) by following that code's rules.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/arch/archspec.h"

namespace braggnac::core {

enum class CostConvention { Standard, NacOpt };

struct CostOptions {
    int weightBits = 32;
    int activationBits = 32;
    double sparsity = 0; // fraction of zero weights, in [0, 1)
    CostConvention convention = CostConvention::Standard;

    /// Throws InputError("<source>: <field>: ...") naming the field: weight_bits and
    /// activation_bits integers in 1..64, sparsity finite in [0, 1), convention one of the
    /// CostConvention values. computeCost calls it.
    void validate(const std::string &source = "cost options") const;
};

struct LayerCost {
    std::string name;   // spec field, e.g. "blocks[0].layers[1]"
    std::string kind;   // conv, attention, linear, batchnorm, layernorm, ...
    std::int64_t params = 0;
    std::int64_t macs = 0;
    double bops = 0;
};

struct Cost {
    std::int64_t params = 0;
    std::int64_t macs = 0;
    double bops = 0;
    std::vector<LayerCost> layers;
    nlohmann::json toJson() const; // {"params", "macs", "bops", "layers": [...]}
};

Cost computeCost(const ArchSpec &spec, const CostOptions &options = {});

struct LayerPlan;
/// Per-op bits and measured weight sparsity of a real (quantised, pruned) model, keyed by the
/// plan's op names (core/arch/layerplan.h).
struct OpPrecision {
    int weightBits = 32;
    int activationBits = 32;  // bits of the op's input activations
    double zeroFraction = 0;  // fraction of exactly-zero weights of this op, in [0, 1]
};
/// Cost of `plan` with per-op precision: ops in `perOp` use their own bits and zero fraction
/// (in place of options' bits and global sparsity). Throws InputError for a name that is not
/// an op of the plan or bits / fractions out of range.
Cost computeCost(const LayerPlan &plan, const CostOptions &options,
                 const std::map<std::string, OpPrecision> &perOp);

} // namespace braggnac::core
