// BraggNAC HLS layer templates (io_parallel). Each layer reads a flat array in torch layout
// ({C, H, W} row-major, or {features}) and writes one. Conv and dense layers take their weights
// in a sparse form: only the non-zero (unpruned) weights are stored and multiplied.
//   w[j]     the j-th non-zero weight of the layer, grouped by output channel / feature
//   off[j]   conv: the input offset ci*H*W + ky*W + kx of that weight; dense: the input index
//   start[o] first entry of output o (start[n_out] = number of non-zero weights)
// Arithmetic: ap_fixed only (products exact, sums in CONFIG_T::accum_t, stored into res_T with
// res_T's quantisation and overflow), the same as BraggNAC's integer reference bit for bit.
#ifndef BRAGGNAC_NNET_LAYERS_H
#define BRAGGNAC_NNET_LAYERS_H

#include "ap_fixed.h"

namespace nnet {

// Valid convolution, stride 1, with bias (BatchNorm folded in). One output pixel (all output
// channels) per reuse_factor cycles; its multiplications are spread over reuse_factor cycles.
template <class data_T, class res_T, class CONFIG_T>
void conv2d(const data_T in[CONFIG_T::n_chan * CONFIG_T::in_height * CONFIG_T::in_width],
            res_T out[CONFIG_T::n_filt * CONFIG_T::out_height * CONFIG_T::out_width],
            const typename CONFIG_T::weight_t w[], const unsigned off[], const unsigned start[],
            const typename CONFIG_T::bias_t b[])
{
ConvRow:
    for (unsigned oy = 0; oy < CONFIG_T::out_height; oy++) {
    ConvCol:
        for (unsigned ox = 0; ox < CONFIG_T::out_width; ox++) {
#pragma HLS PIPELINE II = CONFIG_T::reuse_factor
            const unsigned base = oy * CONFIG_T::in_width + ox;
        ConvFilt:
            for (unsigned co = 0; co < CONFIG_T::n_filt; co++) {
                typename CONFIG_T::accum_t acc = b[co];
            ConvMult:
                for (unsigned j = start[co]; j < start[co + 1]; j++) {
                    acc += in[base + off[j]] * w[j];
                }
                out[(co * CONFIG_T::out_height + oy) * CONFIG_T::out_width + ox] = acc;
            }
        }
    }
}

// Fully connected layer with bias (BatchNorm folded in).
template <class data_T, class res_T, class CONFIG_T>
void dense(const data_T in[CONFIG_T::n_in], res_T out[CONFIG_T::n_out], const typename CONFIG_T::weight_t w[],
           const unsigned off[], const unsigned start[], const typename CONFIG_T::bias_t b[])
{
#pragma HLS PIPELINE II = CONFIG_T::reuse_factor
DenseOut:
    for (unsigned o = 0; o < CONFIG_T::n_out; o++) {
        typename CONFIG_T::accum_t acc = b[o];
    DenseMult:
        for (unsigned j = start[o]; j < start[o + 1]; j++) {
            acc += in[off[j]] * w[j];
        }
        out[o] = acc;
    }
}

template <class data_T, class res_T, class CONFIG_T>
void relu(const data_T in[CONFIG_T::n_in], res_T out[CONFIG_T::n_in])
{
#pragma HLS PIPELINE
    for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
#pragma HLS UNROLL
        if (in[i] > 0)
            out[i] = in[i];
        else
            out[i] = 0;
    }
}

template <class data_T, class res_T, class CONFIG_T>
void leaky_relu(const data_T in[CONFIG_T::n_in], res_T out[CONFIG_T::n_in], const typename CONFIG_T::slope_t slope)
{
#pragma HLS PIPELINE
    for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
#pragma HLS UNROLL
        if (in[i] >= 0)
            out[i] = in[i];
        else
            out[i] = in[i] * slope;
    }
}

// Residual addition (exact sum, then stored into res_T).
template <class a_T, class b_T, class res_T, class CONFIG_T>
void add(const a_T a[CONFIG_T::n_in], const b_T b[CONFIG_T::n_in], res_T out[CONFIG_T::n_in])
{
#pragma HLS PIPELINE
    for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
#pragma HLS UNROLL
        out[i] = a[i] + b[i];
    }
}


// The raw integer of x, a value with F fraction bits: x * 2^F is an exact integer-valued product.
template <int F, class T> long long raw_of(const T &x)
{
    const ap_fixed<2, F + 2> up = std::ldexp(1.0, F); // exactly 2^F
    return (x * up).to_int64();
}

// floor(num / den), den > 0.
inline long long floor_div(long long num, long long den)
{
    long long q = num / den;
    if ((num % den != 0) && (num < 0))
        q--;
    return q;
}

// raw with `from` fraction bits expressed with `to` fraction bits; dropped bits rounded half up
// (rnd) or floored.
inline long long align_raw(long long raw, int from, int to, bool rnd)
{
    if (to >= from)
        return raw * (1LL << (to - from));
    const int s = from - to;
    if (rnd)
        raw += 1LL << (s - 1);
    return raw >> s;
}

// GELU by table over every raw value of the input type (table[raw - min]).
template <class data_T, class res_T, class CONFIG_T>
void gelu(const data_T in[CONFIG_T::n_in], res_T out[CONFIG_T::n_in], const res_T table[])
{
#pragma HLS PIPELINE
    for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
#pragma HLS UNROLL
        out[i] = table[raw_of<CONFIG_T::f_in>(in[i]) - CONFIG_T::in_min_raw];
    }
}

// Layer norm over the whole sample, integer arithmetic as BraggNAC's integer reference: exact
// sums, mean rounded half up to the input grid, variance exact at 2 f_in fraction bits plus eps,
// 1/sqrt from a table over the variance's 12-bit mantissa (even exponent), gamma / beta raw.
template <class data_T, class res_T, class CONFIG_T>
void layer_norm(const data_T in[CONFIG_T::n_in], res_T out[CONFIG_T::n_in], const long long gamma[],
                const long long beta[], const long long rstd[])
{
    long long x[CONFIG_T::n_in];
#pragma HLS ARRAY_PARTITION variable = x complete
    long long sum = 0;
    for (unsigned j = 0; j < CONFIG_T::n_in; j++) {
#pragma HLS UNROLL
        x[j] = raw_of<CONFIG_T::f_in>(in[j]);
        sum += x[j];
    }
    const long long m = CONFIG_T::n_in;
    const long long mean = floor_div(2 * sum + m, 2 * m);
    long long sq = 0;
    for (unsigned j = 0; j < CONFIG_T::n_in; j++) {
#pragma HLS UNROLL
        const long long d = x[j] - mean;
        sq += d * d;
    }
    long long var = floor_div(2 * sq + m, 2 * m) + CONFIG_T::eps_raw;
    if (var < 1)
        var = 1;
    int msb = 0;
    for (long long v = var; v > 0; v >>= 1)
        msb++;
    int shift = msb - 12;
    if (shift & 1)
        shift++;
    const long long mant = shift >= 0 ? (var >> shift) : (var << -shift);
    const long long t = rstd[mant - 1024];
    const int e = (shift + 12) / 2 - CONFIG_T::f_in;
    const int fp = CONFIG_T::f_in + CONFIG_T::f_rstd + CONFIG_T::f_gamma + e;
    const ap_fixed<2, 2 - CONFIG_T::f_out> down = std::ldexp(1.0, -CONFIG_T::f_out); // exactly 2^-f_out
    for (unsigned j = 0; j < CONFIG_T::n_in; j++) {
#pragma HLS UNROLL
        long long v = (x[j] - mean) * t * gamma[j];
        v += align_raw(beta[j], CONFIG_T::f_beta, fp, CONFIG_T::beta_rnd);
        const long long r = align_raw(v, fp, CONFIG_T::f_out, CONFIG_T::out_rnd);
        out[j] = ap_fixed<64, 64>(r) * down; // exact on res_T's grid: only its overflow applies
    }
}

// Attention scores: out[r][c] = sum_ch theta[ch][r] phi[ch][c] (theta, phi stored {h, HW}).
template <class a_T, class b_T, class res_T, class CONFIG_T>
void matmul_qk(const a_T theta[CONFIG_T::h * CONFIG_T::hw], const b_T phi[CONFIG_T::h * CONFIG_T::hw],
               res_T out[CONFIG_T::hw * CONFIG_T::hw])
{
    for (unsigned r = 0; r < CONFIG_T::hw; r++) {
#pragma HLS PIPELINE II = CONFIG_T::reuse_factor
        for (unsigned c = 0; c < CONFIG_T::hw; c++) {
            typename CONFIG_T::accum_t acc = 0;
            for (unsigned ch = 0; ch < CONFIG_T::h; ch++)
                acc += theta[ch * CONFIG_T::hw + r] * phi[ch * CONFIG_T::hw + c];
            out[r * CONFIG_T::hw + c] = acc;
        }
    }
}

// Attention output: out[c][r] = sum_j att[r][j] g[c][j] (att {HW, HW}, g and out {h, HW}).
template <class a_T, class b_T, class res_T, class CONFIG_T>
void matmul_sv(const a_T att[CONFIG_T::hw * CONFIG_T::hw], const b_T g[CONFIG_T::h * CONFIG_T::hw],
               res_T out[CONFIG_T::h * CONFIG_T::hw])
{
    for (unsigned r = 0; r < CONFIG_T::hw; r++) {
#pragma HLS PIPELINE II = CONFIG_T::reuse_factor
        for (unsigned c = 0; c < CONFIG_T::h; c++) {
            typename CONFIG_T::accum_t acc = 0;
            for (unsigned j = 0; j < CONFIG_T::hw; j++)
                acc += att[r * CONFIG_T::hw + j] * g[c * CONFIG_T::hw + j];
            out[c * CONFIG_T::hw + r] = acc;
        }
    }
}

// Softmax over each row, as BraggNAC's integer reference: exp from a table indexed by max - x,
// the exact sum, its reciprocal by one division (rounded, stored into recip_t), products stored
// into res_T.
template <class data_T, class res_T, class CONFIG_T>
void softmax(const data_T in[CONFIG_T::rows * CONFIG_T::cols], res_T out[CONFIG_T::rows * CONFIG_T::cols],
             const long long exp_table[])
{
    const ap_fixed<2, 2 - CONFIG_T::f_recip> down_r = std::ldexp(1.0, -CONFIG_T::f_recip);
    const ap_fixed<2, 2 - CONFIG_T::f_exp - CONFIG_T::f_recip> down = std::ldexp(1.0, -CONFIG_T::f_exp - CONFIG_T::f_recip);
    for (unsigned r = 0; r < CONFIG_T::rows; r++) {
#pragma HLS PIPELINE II = CONFIG_T::reuse_factor
        long long x[CONFIG_T::cols], e[CONFIG_T::cols];
        long long mx = 0;
        for (unsigned c = 0; c < CONFIG_T::cols; c++) {
            x[c] = raw_of<CONFIG_T::f_in>(in[r * CONFIG_T::cols + c]);
            if (c == 0 || x[c] > mx)
                mx = x[c];
        }
        long long sum = 0;
        for (unsigned c = 0; c < CONFIG_T::cols; c++) {
            e[c] = exp_table[mx - x[c]];
            sum += e[c];
        }
        typename CONFIG_T::recip_t rc;
        if (sum <= 0) {
            rc = ap_fixed<64, 64>(CONFIG_T::recip_max_raw) * down_r;
        } else {
            const int sh = CONFIG_T::f_exp + CONFIG_T::f_recip;
            long long num = 1, den = sum;
            if (sh >= 0)
                num = 1LL << sh;
            else
                den = den << (-sh);
            if (CONFIG_T::recip_rnd) {
                num = 2 * num + den;
                den = 2 * den;
            }
            rc = ap_fixed<64, 64>(floor_div(num, den)) * down_r; // overflow of recip_t applies
        }
        const long long recip = raw_of<CONFIG_T::f_recip>(rc);
        for (unsigned c = 0; c < CONFIG_T::cols; c++)
            out[r * CONFIG_T::cols + c] = ap_fixed<64, 64>(e[c] * recip) * down;
    }
}

} // namespace nnet

#endif
