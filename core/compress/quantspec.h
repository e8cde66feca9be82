#pragma once
// Quantisation spec: the fixed-point format of every tensor of a network, per LayerPlan op.
// Stored in a model folder as quantization.json (Model::quantization). Torch-free.
//
// Formats follow Xilinx ap_fixed<W, I, Q, O> semantics (UG1399) so each maps one-to-one onto an
// HLS type: W total bits (2..32), I integer bits including the sign, F = W - I fraction bits
// (I may be negative or larger than W, as ap_fixed allows: here -16 <= F <= 40). A raw value r
// (a W-bit two's-complement integer) stands for r * 2^-F: power-of-two scales only.
// Quantisation (Q) applies first, then overflow (O):
//   Truncate    = AP_TRN: toward minus infinity (floor)
//   RoundHalfUp = AP_RND: to nearest, ties toward plus infinity (floor(x + 1/2))
//   Wrap        = AP_WRAP: keep the low W bits (two's complement)
//   Saturate    = AP_SAT: clamp to [-2^(W-1), 2^(W-1) - 1]
// Thread-safety: plain values.
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/arch/layerplan.h"

namespace braggnac::core {

enum class Rounding { Truncate, RoundHalfUp };
enum class Overflow { Wrap, Saturate };

struct FixedFormat {
    int width = 16;
    int integer = 6;
    Rounding rounding = Rounding::RoundHalfUp;
    Overflow overflow = Overflow::Saturate;

    int fraction() const { return width - integer; }
    std::int64_t maxRaw() const { return (std::int64_t(1) << (width - 1)) - 1; }
    std::int64_t minRaw() const { return -(std::int64_t(1) << (width - 1)); }
    double step() const; // 2^-F
    double toDouble(std::int64_t raw) const;
    /// The raw value of a real number: scale by 2^F exactly, round, then overflow. NaN -> 0;
    /// magnitudes beyond 2^62 raw are clamped to +-2^62 before the overflow step.
    std::int64_t quantise(double value) const;
    /// A raw value with `fracBits` fraction bits (|raw| < 2^126) converted to this format:
    /// shift (with this format's rounding when bits are dropped), then overflow.
    std::int64_t requantise(__int128 raw, int fracBits) const;
    /// Overflow step only (raw already has F fraction bits).
    std::int64_t overflowRaw(__int128 raw) const;
    /// "ap_fixed<16,6,AP_RND,AP_SAT>"
    std::string hlsType() const;

    nlohmann::json toJson() const;
    /// Throws InputError("<where>.<field>: ...") for bits outside 2..32, F outside -16..40, or an
    /// unknown mode.
    static FixedFormat fromJson(const nlohmann::json &j, const std::string &where);
    void validate(const std::string &where) const;
    bool operator==(const FixedFormat &o) const
    {
        return width == o.width && integer == o.integer && rounding == o.rounding && overflow == o.overflow;
    }
    bool operator!=(const FixedFormat &o) const { return !(*this == o); }
};

/// Formats of one LayerPlan op. Which fields apply depends on the op kind:
///   Conv, Linear:  weight, bias, output, accumulator (a BatchNorm right after is folded in:
///                  the output is the normalised result; the BatchNorm op has no entry)
///   LayerNorm:     weight (gamma), bias (beta), output; internal "rstd" (the inverse square
///                  root table's values, 1/sqrt of a 12-bit normalised variance mantissa, in (1, 2])
///   Activation:    output; LeakyReLU: internal "slope" (the slope as a constant); GELU: a table
///                  over the input format (input at most 16 bits)
///   MatMulQK, MatMulSV: output, accumulator
///   Softmax:       output; internal "exp" (exponential table values), "reciprocal" (1 / sum)
///   Add:           output
///   Flatten:       none (passes its input through)
struct OpQuant {
    OpKind kind = OpKind::Conv; // of the plan op (decides which fields apply and are written)
    FixedFormat weight, bias, output;
    /// Accumulator width in bits, 2..64 (products keep all their fraction bits); 0 = exact (as
    /// wide as the sum can get: exactAccumulatorBits). A narrower accumulator wraps (AP_WRAP) at
    /// every addition, which makes the result independent of the summation order.
    int accumulator = 0;
    std::map<std::string, FixedFormat> internal;
};

struct QuantSpec {
    std::string arch;                   // the spec name it was made for (informative)
    FixedFormat input{16, 2};           // the min-max normalised patch, [0, 1]
    std::map<std::string, OpQuant> ops; // keyed by PlanOp::name; every quantised op present

    /// Defaults by op kind at `bits` total bits (2..32) for every op of `plan` (see quantspec.cpp
    /// for the integer bits chosen per kind).
    static QuantSpec defaults(const LayerPlan &plan, int bits = 16);

    nlohmann::json toJson() const;
    /// Ops missing from the JSON get the defaults at 16 bits. Throws InputError
    /// "<source>: <field>: <what>" for bad formats, a layer name that is not an op of `plan`, a
    /// layer that has no formats of its own (BatchNorm: folded; Flatten), or an op the integer
    /// path cannot do with those formats (checkSupported).
    static QuantSpec fromJson(const nlohmann::json &j, const LayerPlan &plan, const std::string &source);
    /// Throws InputError "<source>: layers.<name>.<field>: <what>" when the integer reference
    /// cannot run `plan` with these formats (a GELU or softmax table input wider than 16 bits).
    void checkSupported(const LayerPlan &plan, const std::string &source) const;

    const OpQuant &op(const std::string &name) const; // throws Error when absent
};

/// Does `plan` op `index` carry its own formats (false for BatchNorm, which is folded into the
/// preceding Conv / Linear, and for Flatten)?
bool opHasFormats(const LayerPlan &plan, std::size_t index);
/// The exact accumulator width of a dot product of `fanIn` products of a- and b-bit operands
/// plus one bias term: a + b + ceil(log2(fanIn + 1)).
int exactAccumulatorBits(int aBits, int bBits, std::int64_t fanIn);

} // namespace braggnac::core
