#pragma once
// Internal (not installed, not part of the public API): the per-op integer arithmetic of the
// integer reference (docs/compress.md, "Integer reference"), written once and called by both
// IntegerReference (intref.cpp) and the fixed engine's lane-by-lane path (fixedengine.cpp), so
// the two cannot drift apart. Torch-free; header-only inline functions, no state.
//
// Contract: every function takes raw two's-complement values in their formats (x: the op's
// first input in `fx`, x2: the second in `f2`), writes raw values in `out` and behaves exactly
// as described in intref.h (128-bit products, wrap to the accumulator width `acc` when > 0,
// the target format's rounding then overflow). Buffers are caller-owned; y must not alias x.
// Thread-safety: pure functions.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/compress/intref.h"
#include "core/compress/quantspec.h"

namespace braggnac::core::intref_detail {

using i128 = __int128;

/// floor(num / den) or round-half-up(num / den) for den > 0.
inline i128 divRound(i128 num, i128 den, Rounding r)
{
    if (r == Rounding::RoundHalfUp) {
        num = 2 * num + den;
        den = 2 * den;
    }
    i128 q = num / den;
    if ((num % den != 0) && (num < 0))
        --q; // C++ division truncates toward zero: make it floor
    return q;
}

/// raw with `from` fraction bits re-expressed with `to` >= from fraction bits (exact).
inline i128 alignUp(i128 raw, int from, int to)
{
    return raw * (i128(1) << (to - from));
}

/// raw with `from` fraction bits expressed with `to` fraction bits, rounding with `r` when bits
/// are dropped; no overflow step.
inline i128 alignTo(i128 raw, int from, int to, Rounding r)
{
    if (to >= from)
        return alignUp(raw, from, to);
    const int shift = from - to;
    if (r == Rounding::RoundHalfUp)
        raw += i128(1) << (shift - 1);
    return raw >> shift;
}

/// v wrapped to `bits` two's-complement bits (bits <= 0 or >= 127: unchanged).
inline i128 wrapBits(i128 v, int bits)
{
    if (bits <= 0 || bits >= 127)
        return v;
    const i128 m = (i128(1) << bits);
    i128 low = v & (m - 1);
    if (low & (i128(1) << (bits - 1)))
        low -= m;
    return low;
}

/// ReLU over m values.
inline void reluOp(const std::int64_t *x, std::int64_t *y, std::size_t m, const FixedFormat &fx,
                   const FixedFormat &out)
{
    for (std::size_t j = 0; j < m; ++j)
        y[j] = out.requantise(std::max<std::int64_t>(x[j], 0), fx.fraction());
}

/// LeakyReLU over m values: x >= 0 passes, else x * slope (slope raw with fs fraction bits).
inline void leakyReluOp(const std::int64_t *x, std::int64_t *y, std::size_t m, const FixedFormat &fx,
                        const FixedFormat &out, int fs, std::int64_t slope)
{
    for (std::size_t j = 0; j < m; ++j) {
        const i128 v = x[j] >= 0 ? alignUp(x[j], 0, fs) : i128(x[j]) * slope;
        y[j] = out.requantise(v, fx.fraction() + fs);
    }
}

/// GELU over m values: the table over the input format (geluTable), indexed by x - minRaw.
inline void geluOp(const std::int64_t *x, std::int64_t *y, std::size_t m, const FixedFormat &fx,
                   const std::vector<std::int64_t> &table)
{
    const std::int64_t lo = fx.minRaw();
    for (std::size_t j = 0; j < m; ++j)
        y[j] = table[std::size_t(x[j] - lo)];
}

/// Layer norm's 1 / sqrt(var) (var at 2F fraction bits, F = the input's): clamped to >= 1, looked
/// up in rstdTable by its 12-bit mantissa at an even exponent. t: the table value (rstd raw);
/// e: the extra exponent, so rstd = t 2^-(F_rstd + e).
struct RstdLookup {
    std::int64_t t = 0;
    int e = 0;
};
inline RstdLookup rstdLookup(i128 var, const std::vector<std::int64_t> &table, int f)
{
    if (var < 1)
        var = 1;
    int msb = 0;
    for (i128 v = var; v > 0; v >>= 1)
        ++msb;
    int shift = msb - kRstdTableBits;
    if (shift & 1)
        ++shift;
    const i128 mant = shift >= 0 ? (var >> shift) : (var << -shift);
    RstdLookup r;
    r.t = table[std::size_t(mant - (i128(1) << (kRstdTableBits - 2)))];
    r.e = (shift + kRstdTableBits) / 2 - f;
    return r;
}

/// Layer norm over m values: exact sums; mean rounded half up to the input format; variance
/// exact at 2F fraction bits plus epsRaw (layerNormEpsRaw); rstdLookup; (x - mean) rstd gamma
/// + beta at full precision, then the output format. g, b: gamma / beta raw (m each).
inline void layerNormOp(const std::int64_t *x, std::int64_t *y, std::int64_t m, const FixedFormat &fx,
                        const OpQuant &q, const std::vector<std::int64_t> &rstdTab, std::int64_t epsRaw,
                        const std::vector<std::int64_t> &g, const std::vector<std::int64_t> &b)
{
    const FixedFormat &rf = q.internal.at("rstd");
    const FixedFormat &out = q.output;
    const int f = fx.fraction();
    i128 sum = 0;
    for (std::int64_t j = 0; j < m; ++j)
        sum += x[j];
    const i128 mean = divRound(sum, m, Rounding::RoundHalfUp);
    i128 sq = 0;
    for (std::int64_t j = 0; j < m; ++j) {
        const i128 dj = x[j] - mean;
        sq += dj * dj;
    }
    const RstdLookup r = rstdLookup(divRound(sq, m, Rounding::RoundHalfUp) + epsRaw, rstdTab, f);
    const int fp = f + rf.fraction() + q.weight.fraction() + r.e;
    for (std::int64_t j = 0; j < m; ++j) {
        i128 v = (i128(x[j]) - mean) * r.t * g[std::size_t(j)];
        v += alignTo(b[std::size_t(j)], q.bias.fraction(), fp, q.bias.rounding);
        y[std::size_t(j)] = out.requantise(v, fp);
    }
}

/// scores[r][c] = sum_ch theta[ch][r] phi[ch][c], ch = 0 .. h-1 (theta = x, hw x hw scores).
inline void matMulQKOp(const std::int64_t *x, const std::int64_t *phi, std::int64_t *y, std::int64_t h,
                       std::int64_t hw, const FixedFormat &fx, const FixedFormat &fphi, int acc,
                       const FixedFormat &out)
{
    const int fp = fx.fraction() + fphi.fraction();
    for (std::int64_t r = 0; r < hw; ++r)
        for (std::int64_t c = 0; c < hw; ++c) {
            i128 s = 0;
            for (std::int64_t ch = 0; ch < h; ++ch)
                s += i128(x[ch * hw + r]) * phi[ch * hw + c];
            y[std::size_t(r * hw + c)] = out.requantise(wrapBits(s, acc), fp);
        }
}

/// Row softmax of rows x cols scores: e = expTab[max - x] (softmaxExpTable), reciprocal of the
/// row sum in the "reciprocal" format (sum <= 0: its max), e * recip requantised to the output.
inline void softmaxOp(const std::int64_t *x, std::int64_t *y, std::int64_t rows, std::int64_t cols,
                      const OpQuant &q, const std::vector<std::int64_t> &expTab)
{
    const FixedFormat &ef = q.internal.at("exp");
    const FixedFormat &rf = q.internal.at("reciprocal");
    const FixedFormat &out = q.output;
    std::vector<std::int64_t> e(std::size_t(cols), 0);
    for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t *xr = x + r * cols;
        const std::int64_t mx = *std::max_element(xr, xr + cols);
        i128 sum = 0;
        for (std::int64_t c = 0; c < cols; ++c) {
            e[std::size_t(c)] = expTab[std::size_t(mx - xr[c])];
            sum += e[std::size_t(c)];
        }
        // 1 / sum: sum has F_e fraction bits, so 1/sum = 2^(F_e + F_r) / sum raw.
        std::int64_t recip;
        if (sum <= 0) {
            recip = rf.maxRaw();
        } else {
            const int sh = ef.fraction() + rf.fraction();
            i128 num = 1, den = sum;
            if (sh >= 0)
                num = i128(1) << sh;
            else
                den = den << (-sh);
            recip = rf.overflowRaw(divRound(num, den, rf.rounding));
        }
        const int fp = ef.fraction() + rf.fraction();
        for (std::int64_t c = 0; c < cols; ++c)
            y[std::size_t(r * cols + c)] = out.requantise(i128(e[std::size_t(c)]) * recip, fp);
    }
}

/// y[c][r] = sum_j att[r][j] g[c][j], j = 0 .. hw-1 (att = x, hw x hw; g: h x hw).
inline void matMulSVOp(const std::int64_t *x, const std::int64_t *g, std::int64_t *y, std::int64_t h,
                       std::int64_t hw, const FixedFormat &fx, const FixedFormat &fg, int acc,
                       const FixedFormat &out)
{
    const int fp = fx.fraction() + fg.fraction();
    for (std::int64_t c = 0; c < h; ++c)
        for (std::int64_t r = 0; r < hw; ++r) {
            i128 s = 0;
            for (std::int64_t j = 0; j < hw; ++j)
                s += i128(x[r * hw + j]) * g[c * hw + j];
            y[std::size_t(c * hw + r)] = out.requantise(wrapBits(s, acc), fp);
        }
}

/// Elementwise x + x2 over m values, aligned to the larger fraction.
inline void addOp(const std::int64_t *x, const std::int64_t *x2, std::int64_t *y, std::size_t m,
                  const FixedFormat &fx, const FixedFormat &f2, const FixedFormat &out)
{
    const int fp = std::max(fx.fraction(), f2.fraction());
    for (std::size_t j = 0; j < m; ++j)
        y[j] = out.requantise(alignUp(x[j], fx.fraction(), fp) + alignUp(x2[j], f2.fraction(), fp), fp);
}

} // namespace braggnac::core::intref_detail
