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

} // namespace nnet

#endif
