#pragma once
// INTERNAL (includes torch): the fake-quantised forward pass of a PeakNet under a QuantSpec, for
// quantisation-aware training. Include only from core/nn/*.cpp and tests that link torch.
//
// Contract:
//  - Values are computed in double. Every tensor holds exact fixed-point numbers (raw * 2^-F);
//    conv / linear / matmul sums of such numbers are exact in double while every raw partial sum
//    stays below 2^53, which the constructor checks (exactAccumulatorBits <= 53; so formats of
//    up to 16 bits on these networks). Every requantisation applies the format's rounding and
//    overflow exactly as the integer reference (core/compress/intref.h) does, and the tables are
//    the same (geluTable, softmaxExpTable, rstdTable): the forward equals
//    IntegerReference::forwardRaw bit for bit (tests/tst_qat.cpp).
//  - Gradients use the straight-through estimator: each quantiser passes its gradient through
//    unchanged (y = q(x).detach() + x - x.detach(), value exactly q(x)); tables take the gradient
//    of the float function they tabulate (GELU, softmax, layer norm).
//  - Batch norm is folded with its running statistics (frozen statistics during QAT), in double,
//    exactly as foldBatchNorm does.
//  - Not thread-safe for concurrent forward() on one object with training (autograd state).
#include <cstdint>

#include <torch/torch.h>

#include "core/arch/layerplan.h"
#include "core/compress/quantspec.h"
#include "core/nn/torch_net.h"

namespace braggnac::core {

class FakeQuantForward {
public:
    /// Throws InputError when an op cannot be emulated exactly in double (an accumulator wider
    /// than 53 bits, a softmax reciprocal scale beyond 2^61) or the spec is unsupported.
    FakeQuantForward(PeakNet net, QuantSpec spec);

    /// x: [N, 1, S, S] normalised patches (float or double) -> [N, 2] double fixed-point values
    /// (centre / S), differentiable with respect to the net's parameters (STE).
    torch::Tensor forward(const torch::Tensor &x) const;
    /// The raw integers of forward() (int64 [N, 2]), for comparison with the integer reference.
    torch::Tensor forwardRaw(const torch::Tensor &x) const;
    /// Raw int64 output of every plan op ([N, out...]; BatchNorm / Flatten repeat their input),
    /// for layer-by-layer comparison with IntegerReference::traceNormalised.
    std::vector<torch::Tensor> forwardTrace(const torch::Tensor &x) const;

    const LayerPlan &plan() const { return m_plan; }
    const QuantSpec &spec() const { return m_spec; }

private:
    torch::Tensor run(const torch::Tensor &x, std::vector<torch::Tensor> *trace) const;
    PeakNet m_net;
    LayerPlan m_plan;
    QuantSpec m_spec;
    std::vector<torch::Tensor> m_tables; // per op: table raw values as double (GELU / exp / rstd)
    std::vector<std::int64_t> m_eps;     // per LayerNorm op
};

} // namespace braggnac::core
