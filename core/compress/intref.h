#pragma once
// Integer reference inference: the quantised network's forward pass in exact integer arithmetic
// (docs/compress.md, "Integer reference"). Torch-free. It is the bit-exact definition of what the
// quantised network computes: the fake-quantised LibTorch forward and the HLS C simulation must
// reproduce its raw outputs exactly.
//
// Contract:
//  - Built from a LayerPlan, float weights (Model::namedParameters(): state_dict name -> tensor)
//    and a QuantSpec. BatchNorm is folded into the preceding Conv / Linear in double, then
//    quantised with that op's weight / bias formats. Tables (GELU, softmax exponential, layer
//    norm inverse square root) are built once here.
//  - Every value is a raw two's-complement integer in its op's output format; products keep all
//    fraction bits in 128-bit accumulators (wrapped to the op's accumulator width when one is
//    set); every requantisation applies the target format's rounding, then its overflow.
//  - Input: each patch min-max normalised exactly as the trainer does (float arithmetic, NaN/inf
//    pixels -> 0, constant patch -> 0), then quantised to the spec's input format.
//  - Thread-safety: const methods may be called concurrently. Errors: InputError naming the
//    tensor or the spec field (missing / mis-shaped weights, unsupported formats).
#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include "core/arch/layerplan.h"
#include "core/compress/quantspec.h"
#include "core/cost/cost.h"

namespace braggnac::core {

/// Per Conv / Linear / LayerNorm op name: (weight, bias) in double, row-major as in torch.
using FoldedWeights = std::map<std::string, std::pair<std::vector<double>, std::vector<double>>>;
/// The weights the integer path quantises: every BatchNorm folded into its preceding Conv /
/// Linear in double (w' = w g / sqrt(v + eps), b' = (b - m) g / sqrt(v + eps) + beta, each
/// float widened to double first); LayerNorm gamma / beta as they are. Throws InputError naming
/// a missing or mis-shaped tensor.
FoldedWeights foldBatchNorm(const LayerPlan &plan, const NamedTensors &weights);

class IntegerReference {
public:
    IntegerReference(const LayerPlan &plan, const NamedTensors &weights, const QuantSpec &spec);
    ~IntegerReference();
    IntegerReference(IntegerReference &&) noexcept;
    IntegerReference &operator=(IntegerReference &&) noexcept;

    const LayerPlan &plan() const;
    const QuantSpec &spec() const;

    /// n patches of S x S raw counts -> n * 2 raw outputs in the output op's format.
    std::vector<std::int64_t> forwardRaw(const float *patches, std::size_t n, int threads = 1) const;
    /// n patches -> n * 2 centres (row, col) in pixels: raw * 2^-F * S.
    std::vector<double> predict(const float *patches, std::size_t n, int threads = 1) const;
    /// One patch: the raw output of every plan op (index = op index; BatchNorm and Flatten
    /// repeat their input), for layer-by-layer comparison with QAT and HLS.
    std::vector<std::vector<std::int64_t>> trace(const float *patch) const;
    /// One normalised patch (S * S floats, already in [0, 1]) -> every op's raw output.
    std::vector<std::vector<std::int64_t>> traceNormalised(const float *normalised) const;
    /// The output format of op `index` (BatchNorm / Flatten: their input's; -1: the input format).
    const FixedFormat &format(int index) const;
    /// Quantised (folded) weights / biases of a Conv / Linear / LayerNorm op (raw values).
    const std::vector<std::int64_t> &weightsRaw(const std::string &op) const;
    const std::vector<std::int64_t> &biasRaw(const std::string &op) const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

/// The tables of the integer path (shared with the fake-quantised LibTorch forward and the HLS
/// writer so all three use the same values):
///  GELU: out.quantise(gelu(r 2^-F_in)) for every raw input r = minRaw .. maxRaw.
std::vector<std::int64_t> geluTable(const FixedFormat &in, const FixedFormat &out);
///  Softmax: exp.quantise(exp(-k 2^-F_in)) for k = 0 .. 2^(W_in + 1) - 1 (k = max - x).
std::vector<std::int64_t> softmaxExpTable(const FixedFormat &in, const FixedFormat &exp);
///  Layer norm: rstd.quantise(1 / sqrt(m 2^-12)) for the mantissas m = 2^10 .. 2^12 - 1.
constexpr int kRstdTableBits = 12;
std::vector<std::int64_t> rstdTable(const FixedFormat &rstd);
///  Layer norm eps at 2 F_in fraction bits (the exact variance's scale), rounded half up.
std::int64_t layerNormEpsRaw(const FixedFormat &in, double eps);

/// The same min-max normalisation as the trainer (normalisePatches in core/nn/torch_net.h),
/// torch-free: n patches of S x S -> n * S * S floats in [0, 1].
std::vector<float> normalisePatchesCpu(const float *patches, std::size_t n, int size);

/// Largest |value| of every op's output (index = op index; the last entry: the normalised
/// input) over n patches, from a double-precision forward pass of the folded float weights.
std::vector<double> observedRanges(const LayerPlan &plan, const NamedTensors &weights, const float *patches,
                                   std::size_t n);
/// QuantSpec::defaults(plan, bits) with integer bits chosen from observed ranges: every output
/// gets floor(log2 max|v|) + 2 + margin integer bits (softmax: 2), weights and biases
/// floor(log2 max|w|) + 2 (after BatchNorm folding), the LeakyReLU slope likewise.
QuantSpec calibratedQuantSpec(const LayerPlan &plan, const NamedTensors &weights, const float *patches,
                              std::size_t n, int bits, int margin = 1);

/// Standard-convention cost of a quantised model (issue 8 item 6): every op with its own bits
/// from `spec` (weights: the weight width; activations: the width of the op's input) and the
/// measured fraction of zero weights of each Conv / Linear after folding and quantisation.
Cost quantisedCost(const IntegerReference &ref);

} // namespace braggnac::core
