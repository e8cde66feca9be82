#pragma once
// Fixed-point CPU engine: the quantised network of an IntegerReference compiled once into a
// batched, multi-threaded, SIMD inference engine (docs/benchmarks/fixed-engine.md, "How the
// engine computes").
// Torch-free. Its raw outputs are bit-exact with IntegerReference::forwardRaw for every input
// (tests/tst_fixedengine.cpp); the integer reference stays the definition.
//
// How it computes (the plan is chosen once, at construction):
//  - Patches run in blocks of 16, one patch per 32-bit SIMD lane. Every tensor is stored as
//    int16 channel pairs: word (c / 2, position) holds channels c and c + 1 of the 16 patches
//    (64-byte aligned); the 1-channel input read only by the stem conv as pixel pairs, word p
//    = (pixel p, pixel p + 1), so the stem pairs horizontally adjacent taps.
//  - Conv and Linear (a Linear is a valid conv whose kernel covers its whole input) are lists
//    of non-zero weight pairs per output channel (pruned weights are skipped, not multiplied):
//    each pair is one vpdpwssd (AVX-512 VNNI) or vpmaddwd + vpaddd (AVX2) over 16 patches,
//    accumulated in int32. That is exact when the op's accumulator is at most 32 bits (the sum
//    wraps as the reference wraps) or when |bias| + sum |w| * max|x| < 2^31 for every output
//    (checked from the real weights); then the requantisation (rounding, then overflow) runs
//    in int32 lanes with the same result as FixedFormat::requantise.
//  - ReLU, LeakyReLU, GELU (table), Add run in int32 lanes where their intermediates provably
//    fit; otherwise, and for LayerNorm, MatMulQK, Softmax and MatMulSV, the op runs lane by lane
//    with the integer reference's own arithmetic (the same code path, in 128-bit where the
//    reference uses it). describe() lists which.
//  - When a tensor or weight format is wider than 16 bits, or a Conv / Linear cannot be exact
//    in int32, the network is not compiled: every call runs IntegerReference::forwardRaw
//    itself (vectorised() is false and fallbackReason() says why).
//  - Input: the trainer's min-max normalisation and the input quantisation, as the reference.
//
// Thread-safety: const methods may be called concurrently (each call has its own buffers).
// Errors: as IntegerReference's constructor (InputError naming the tensor or spec field).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/arch/layerplan.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"

namespace braggnac::core {

class FixedEngine {
public:
    /// Instruction set of the kernels. Auto: the best this CPU supports (AVX-512 VNNI, else
    /// AVX2, else portable C++). Asking for one the CPU lacks throws Error.
    enum class Isa { Auto, Portable, Avx2, Avx512Vnni };

    FixedEngine(const LayerPlan &plan, const NamedTensors &weights, const QuantSpec &spec, Isa isa = Isa::Auto);
    ~FixedEngine();
    FixedEngine(FixedEngine &&) noexcept;
    FixedEngine &operator=(FixedEngine &&) noexcept;

    /// n patches of S x S raw counts -> n * 2 raw outputs in the output op's format, exactly
    /// IntegerReference::forwardRaw. threads <= 0: all hardware threads.
    std::vector<std::int64_t> forwardRaw(const float *patches, std::size_t n, int threads = 1) const;
    /// n patches -> n * 2 centres (row, col) in pixels, exactly IntegerReference::predict.
    std::vector<double> predict(const float *patches, std::size_t n, int threads = 1) const;

    /// The integer reference the engine was compiled from (and falls back to).
    const IntegerReference &reference() const;
    /// The kernels in use (never Auto).
    Isa isa() const;
    static const char *isaName(Isa isa);
    /// Does this CPU run `isa`?
    static bool supported(Isa isa);
    /// False when the whole network runs through the integer reference (fallbackReason()).
    bool vectorised() const;
    std::string fallbackReason() const;
    /// One line per plan op: how it runs ("vnni dot, 41 of 72 weight pairs non-zero",
    /// "lane-by-lane reference arithmetic", "alias"), for logs and the benchmark.
    std::vector<std::string> describe() const;
    /// Non-zero multiply-accumulates per patch of the compiled Conv / Linear ops (pruned
    /// weights excluded; what the kernels execute, counted per weight, not per pair).
    std::int64_t nonZeroMacs() const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace braggnac::core
