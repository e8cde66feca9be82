#pragma once
// The lowered layer plan of an ArchSpec: one ordered list of operations that every consumer
// iterates (the LibTorch builder, the TorchScript generator, the cost model, the quantisation
// spec, the integer reference, the HLS writer). Torch-free.
//
// Contract:
//  - LayerPlan::lower(spec) validates the spec (ArchSpec::shapes(); throws InputError naming the
//    field) and returns the operations in execution order. Operation i reads only the outputs of
//    operations listed in inputs (indices < i; -1 = the network input [1, S, S]).
//  - Op names are unique and stable: the torch module path of the op ("features.stem.conv",
//    "features.b0.theta", "head.h1.norm", "head.out"); ops without a torch module are named the
//    same way ("features.b0.qk", "features.b0.softmax", "features.b0.sv", "features.b0.add",
//    "flatten"). The state_dict keys of an op are "<name>.<suffix>" (PlanTensor::key).
//  - Shapes are per sample, in torch layout, without the batch dimension: conv maps {C, H, W},
//    attention scores {HW, HW}, dense {features}.
//  - Parameter counts and MACs follow docs/cost.md; the plan and the LibTorch module agree on
//    every state_dict key and shape (tests/tst_layerplan.cpp).
//  - Plain values: copy freely, thread-safe to read.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/arch/archspec.h"

namespace braggnac::core {

enum class OpKind {
    Conv,       // valid, stride 1, with bias; also the attention block's 1x1 theta/phi/g/out
    Linear,     // with bias
    BatchNorm,  // BatchNorm2d after a conv, BatchNorm1d after a linear (eps 1e-5)
    LayerNorm,  // over the whole per-sample shape, elementwise affine (eps 1e-5)
    Activation, // ReLU, LeakyReLU (slope 0.01), GELU (erf form)
    MatMulQK,   // attention scores: theta^T phi, [HW, h] x [h, HW] -> [HW, HW]
    Softmax,    // over the last dimension of the scores
    MatMulSV,   // attention output: softmax(scores) g, [HW, HW] x [HW, h] -> stored as [h, H, W]
    Add,        // residual: inputs[0] + inputs[1]
    Flatten,    // {C, H, W} -> {C * H * W}
};
const char *opKindName(OpKind k);

/// Which part of the spec an op belongs to (the NAC cost convention treats them differently).
enum class PlanSection { Stem, Blocks, Head };

/// One state_dict entry of an op.
struct PlanTensor {
    std::string key;                 // "features.stem.conv.weight"
    std::vector<std::int64_t> shape; // torch shape ({} for a scalar)
    bool buffer = false;             // running_mean / running_var / num_batches_tracked
    bool integer = false;            // num_batches_tracked (int64)
    std::int64_t numel() const;
};

struct PlanOp {
    OpKind kind = OpKind::Conv;
    std::string name;   // unique, see above
    std::string unit;   // the torch submodule holding it: "features.stem", "features.b0", "head.out"
    std::string field;  // spec field: "stem", "blocks[1].layers[0]", "blocks[0]", "head[2]", "output"
    std::string label;  // cost-table name: field, field + ".norm", field + ".theta", ...
    PlanSection section = PlanSection::Blocks;
    std::vector<int> inputs;                   // op indices, -1 = network input
    std::vector<std::int64_t> inShape, outShape;
    int kernel = 0;                            // Conv: effective kernel (after forceOneByOne)
    Activation act = Activation::None;         // Activation
    double slope = 0.01;                       // LeakyReLU negative slope
    double eps = 1e-5;                         // BatchNorm / LayerNorm
    int blockChannels = 0;                     // attention ops: the block's channels C
    int attentionChannels = 0;                 // attention ops: h
    std::vector<PlanTensor> tensors;           // state_dict entries, in registration order
    std::int64_t params = 0;                   // learnable parameters (excludes buffers)
    std::int64_t macs = 0;                     // docs/cost.md
    std::int64_t inElements() const;
    std::int64_t outElements() const;
    /// Conv / Linear: input channels (conv) or features (linear); output channels / features.
    std::int64_t inChannels() const { return inShape.empty() ? 0 : inShape[0]; }
    std::int64_t outChannels() const { return outShape.empty() ? 0 : outShape[0]; }
    const PlanTensor *tensor(const std::string &suffix) const; // "weight", "bias", ...
};

struct LayerPlan {
    ArchSpec spec;
    std::vector<PlanOp> ops;

    /// Throws InputError("spec: <field>: ...") for an invalid spec.
    static LayerPlan lower(const ArchSpec &spec);

    std::int64_t params() const;
    std::int64_t macs() const;
    /// Index of the op named `name`, or -1.
    int find(const std::string &name) const;
    /// Every state_dict entry (parameters then buffers interleaved, in op order).
    std::vector<PlanTensor> tensors() const;
    /// Output of the network (the last op: "head.out", {2}).
    const PlanOp &output() const { return ops.back(); }
};

/// A named float tensor (weights handed from the torch side to torch-free consumers).
struct NamedTensor {
    std::vector<std::int64_t> shape;
    std::vector<float> values; // row-major (torch contiguous)
};
using NamedTensors = std::map<std::string, NamedTensor>;

} // namespace braggnac::core
