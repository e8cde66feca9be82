#include "core/compress/intref.h"
#include "core/compress/intrefops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/common/error.h"
#include "core/common/parallel.h"

namespace braggnac::core {

namespace {

using intref_detail::alignTo;
using intref_detail::alignUp;
using intref_detail::i128;
using intref_detail::wrapBits;

double gelu(double x)
{
    return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

const NamedTensor &tensorOf(const NamedTensors &w, const PlanTensor &t)
{
    auto it = w.find(t.key);
    if (it == w.end())
        throw InputError("weights: tensor '" + t.key + "' missing");
    if (it->second.shape != t.shape || std::int64_t(it->second.values.size()) != t.numel())
        throw InputError("weights: tensor '" + t.key + "' has the wrong shape for the layer plan");
    return it->second;
}

} // namespace

FoldedWeights foldBatchNorm(const LayerPlan &plan, const NamedTensors &weights)
{
    FoldedWeights out;
    for (std::size_t i = 0; i < plan.ops.size(); ++i) {
        const PlanOp &op = plan.ops[i];
        if (op.kind != OpKind::Conv && op.kind != OpKind::Linear && op.kind != OpKind::LayerNorm)
            continue;
        const NamedTensor &w = tensorOf(weights, *op.tensor("weight"));
        const NamedTensor &b = tensorOf(weights, *op.tensor("bias"));
        std::vector<double> w2(w.values.begin(), w.values.end()), b2(b.values.begin(), b.values.end());
        const bool folded = i + 1 < plan.ops.size() && plan.ops[i + 1].kind == OpKind::BatchNorm
            && plan.ops[i + 1].inputs[0] == int(i) && op.kind != OpKind::LayerNorm;
        if (folded) {
            const PlanOp &bn = plan.ops[i + 1];
            const NamedTensor &g = tensorOf(weights, *bn.tensor("weight"));
            const NamedTensor &beta = tensorOf(weights, *bn.tensor("bias"));
            const NamedTensor &mean = tensorOf(weights, *bn.tensor("running_mean"));
            const NamedTensor &var = tensorOf(weights, *bn.tensor("running_var"));
            const std::size_t c = b2.size(), per = w2.size() / c;
            for (std::size_t o = 0; o < c; ++o) {
                const double scale = double(g.values[o]) / std::sqrt(double(var.values[o]) + bn.eps);
                for (std::size_t k = 0; k < per; ++k)
                    w2[o * per + k] *= scale;
                b2[o] = (b2[o] - double(mean.values[o])) * scale + double(beta.values[o]);
            }
        }
        out[op.name] = {std::move(w2), std::move(b2)};
    }
    return out;
}

std::vector<float> normalisePatchesCpu(const float *patches, std::size_t n, int size)
{
    const std::size_t area = std::size_t(size) * std::size_t(size);
    std::vector<float> out(n * area);
    for (std::size_t i = 0; i < n; ++i) {
        const float *p = patches + i * area;
        float *q = out.data() + i * area;
        float mn = std::numeric_limits<float>::infinity();
        float mx = -std::numeric_limits<float>::infinity();
        for (std::size_t k = 0; k < area; ++k) {
            if (std::isfinite(p[k])) {
                mn = std::min(mn, p[k]);
                mx = std::max(mx, p[k]);
            }
        }
        const float range = mx - mn;
        if (!(range > 0) || !std::isfinite(range)) {
            std::fill(q, q + area, 0.0f);
            continue;
        }
        for (std::size_t k = 0; k < area; ++k)
            q[k] = std::isfinite(p[k]) ? (p[k] - mn) / range : 0.0f;
    }
    return out;
}

std::vector<std::int64_t> geluTable(const FixedFormat &in, const FixedFormat &out)
{
    std::vector<std::int64_t> t;
    for (std::int64_t r = in.minRaw(); r <= in.maxRaw(); ++r)
        t.push_back(out.quantise(gelu(in.toDouble(r))));
    return t;
}

std::vector<std::int64_t> softmaxExpTable(const FixedFormat &in, const FixedFormat &exp)
{
    std::vector<std::int64_t> t;
    const std::int64_t size = std::int64_t(1) << (in.width + 1);
    for (std::int64_t k = 0; k < size; ++k)
        t.push_back(exp.quantise(std::exp(-in.toDouble(k))));
    return t;
}

std::vector<std::int64_t> rstdTable(const FixedFormat &rstd)
{
    std::vector<std::int64_t> t;
    for (std::int64_t k = std::int64_t(1) << (kRstdTableBits - 2); k < (std::int64_t(1) << kRstdTableBits); ++k)
        t.push_back(rstd.quantise(1.0 / std::sqrt(std::ldexp(double(k), -kRstdTableBits))));
    return t;
}

std::int64_t layerNormEpsRaw(const FixedFormat &in, double eps)
{
    return FixedFormat{62, 62 - 2 * in.fraction(), Rounding::RoundHalfUp, Overflow::Saturate}.quantise(eps);
}

// ---------------------------------------------------------------------------------------------

struct IntegerReference::Impl {
    LayerPlan plan;
    QuantSpec spec;
    std::vector<const FixedFormat *> formats;           // per op: its output format
    std::vector<std::vector<std::int64_t>> weights, biases; // per op (Conv / Linear / LayerNorm)
    std::vector<std::vector<std::int64_t>> tables;     // per op: GELU / exp / rstd table
    std::vector<std::int64_t> slopes;                  // per op: LeakyReLU slope raw
    std::vector<int> accumulators;                     // per op: accumulator bits (0: exact)
    std::vector<std::int64_t> epsRaw;                  // per LayerNorm op: eps at 2F fraction bits
    std::vector<char> narrow;                          // per Conv / Linear: sums fit int64

    const FixedFormat &inputFormat(const PlanOp &op, int which = 0) const
    {
        const int in = op.inputs[std::size_t(which)];
        return in < 0 ? spec.input : *formats[std::size_t(in)];
    }

    void run(const std::int64_t *input, std::vector<std::vector<std::int64_t>> &values) const;
};

IntegerReference::IntegerReference(const LayerPlan &plan, const NamedTensors &weights, const QuantSpec &spec)
    : m_impl(std::make_unique<Impl>())
{
    Impl &d = *m_impl;
    d.plan = plan;
    d.spec = spec;
    spec.checkSupported(plan, "quantisation spec");
    const FoldedWeights folded = foldBatchNorm(plan, weights);
    const std::size_t n = plan.ops.size();
    d.formats.assign(n, nullptr);
    d.weights.resize(n);
    d.biases.resize(n);
    d.tables.resize(n);
    d.slopes.assign(n, 0);
    d.accumulators.assign(n, 0);
    d.epsRaw.assign(n, 0);
    d.narrow.assign(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
        const PlanOp &op = plan.ops[i];
        if (!opHasFormats(plan, i)) {
            d.formats[i] = &d.inputFormat(op);
            continue;
        }
        const OpQuant &q = d.spec.op(op.name);
        d.formats[i] = &q.output;
        d.accumulators[i] = q.accumulator;
        if (op.kind == OpKind::Conv || op.kind == OpKind::Linear || op.kind == OpKind::LayerNorm) {
            if (op.kind != OpKind::LayerNorm) {
                const FixedFormat &in = d.inputFormat(op);
                const std::int64_t fanIn = op.kind == OpKind::Conv ? op.inChannels() * op.kernel * op.kernel : op.inChannels();
                const int fp = in.fraction() + q.weight.fraction();
                const int biasBits = q.bias.width + std::max(0, fp - q.bias.fraction());
                d.narrow[i] = std::max(exactAccumulatorBits(in.width, q.weight.width, fanIn), biasBits) + 1 <= 62;
            }
            const auto &wb = folded.at(op.name);
            for (double v : wb.first)
                d.weights[i].push_back(q.weight.quantise(v));
            for (double v : wb.second)
                d.biases[i].push_back(q.bias.quantise(v));
        }
        const FixedFormat &in = d.inputFormat(op);
        if (op.kind == OpKind::Activation && op.act == Activation::GELU) {
            d.tables[i] = geluTable(in, q.output);
        } else if (op.kind == OpKind::Activation && op.act == Activation::LeakyReLU) {
            d.slopes[i] = q.internal.at("slope").quantise(op.slope);
        } else if (op.kind == OpKind::Softmax) {
            d.tables[i] = softmaxExpTable(in, q.internal.at("exp"));
        } else if (op.kind == OpKind::LayerNorm) {
            d.tables[i] = rstdTable(q.internal.at("rstd"));
            d.epsRaw[i] = layerNormEpsRaw(in, op.eps);
        }
    }
}

IntegerReference::~IntegerReference() = default;
IntegerReference::IntegerReference(IntegerReference &&) noexcept = default;
IntegerReference &IntegerReference::operator=(IntegerReference &&) noexcept = default;

const LayerPlan &IntegerReference::plan() const { return m_impl->plan; }
const QuantSpec &IntegerReference::spec() const { return m_impl->spec; }

const FixedFormat &IntegerReference::format(int index) const
{
    return index < 0 ? m_impl->spec.input : *m_impl->formats[std::size_t(index)];
}

const std::vector<std::int64_t> &IntegerReference::weightsRaw(const std::string &op) const
{
    const int i = m_impl->plan.find(op);
    if (i < 0)
        throw Error("integer reference: no layer '" + op + "'");
    return m_impl->weights[std::size_t(i)];
}

const std::vector<std::int64_t> &IntegerReference::biasRaw(const std::string &op) const
{
    const int i = m_impl->plan.find(op);
    if (i < 0)
        throw Error("integer reference: no layer '" + op + "'");
    return m_impl->biases[std::size_t(i)];
}

void IntegerReference::Impl::run(const std::int64_t *input, std::vector<std::vector<std::int64_t>> &values) const
{
    const std::size_t nops = plan.ops.size();
    values.resize(nops);
    auto in = [&](int index) -> const std::int64_t * {
        return index < 0 ? input : values[std::size_t(index)].data();
    };
    for (std::size_t i = 0; i < nops; ++i) {
        const PlanOp &op = plan.ops[i];
        const FixedFormat &out = *formats[i];
        std::vector<std::int64_t> &y = values[i];
        y.assign(std::size_t(op.outElements()), 0);
        const std::int64_t *x = in(op.inputs[0]);
        const FixedFormat &fx = inputFormat(op);
        const int acc = accumulators[i];
        switch (op.kind) {
        case OpKind::Conv: {
            const OpQuant &q = spec.ops.at(op.name);
            const int fp = fx.fraction() + q.weight.fraction();
            const std::int64_t cin = op.inShape[0], hin = op.inShape[1], win = op.inShape[2];
            const std::int64_t cout = op.outShape[0], ho = op.outShape[1], wo = op.outShape[2], k = op.kernel;
            const auto &w = weights[i];
            const auto &b = biases[i];
            auto loop = [&](auto zero) {
                using Acc = decltype(zero);
                for (std::int64_t co = 0; co < cout; ++co) {
                    const Acc bias = Acc(alignTo(b[std::size_t(co)], q.bias.fraction(), fp, q.bias.rounding));
                    for (std::int64_t oy = 0; oy < ho; ++oy)
                        for (std::int64_t ox = 0; ox < wo; ++ox) {
                            Acc s = bias;
                            for (std::int64_t ci = 0; ci < cin; ++ci)
                                for (std::int64_t ky = 0; ky < k; ++ky) {
                                    const std::int64_t *xr = x + (ci * hin + oy + ky) * win + ox;
                                    const std::int64_t *wr = w.data() + ((co * cin + ci) * k + ky) * k;
                                    for (std::int64_t kx = 0; kx < k; ++kx)
                                        s += Acc(xr[kx]) * wr[kx];
                                }
                            y[std::size_t((co * ho + oy) * wo + ox)] = out.requantise(wrapBits(i128(s), acc), fp);
                        }
                }
            };
            if (narrow[i])
                loop(std::int64_t(0)); // every partial sum fits 62 bits: the same exact result, faster
            else
                loop(i128(0));
            break;
        }
        case OpKind::Linear: {
            const OpQuant &q = spec.ops.at(op.name);
            const int fp = fx.fraction() + q.weight.fraction();
            const std::int64_t nin = op.inShape[0], nout = op.outShape[0];
            const auto &w = weights[i];
            const auto &b = biases[i];
            auto loop = [&](auto zero) {
                using Acc = decltype(zero);
                for (std::int64_t o = 0; o < nout; ++o) {
                    Acc s = Acc(alignTo(b[std::size_t(o)], q.bias.fraction(), fp, q.bias.rounding));
                    const std::int64_t *wr = w.data() + o * nin;
                    for (std::int64_t j = 0; j < nin; ++j)
                        s += Acc(x[j]) * wr[j];
                    y[std::size_t(o)] = out.requantise(wrapBits(i128(s), acc), fp);
                }
            };
            if (narrow[i])
                loop(std::int64_t(0));
            else
                loop(i128(0));
            break;
        }
        case OpKind::BatchNorm: // folded into the preceding Conv / Linear
        case OpKind::Flatten: std::copy(x, x + y.size(), y.begin()); break;
        case OpKind::Activation: {
            const std::size_t m = y.size();
            if (op.act == Activation::ReLU)
                intref_detail::reluOp(x, y.data(), m, fx, out);
            else if (op.act == Activation::LeakyReLU)
                intref_detail::leakyReluOp(x, y.data(), m, fx, out,
                                           spec.ops.at(op.name).internal.at("slope").fraction(), slopes[i]);
            else // GELU: table over the input format
                intref_detail::geluOp(x, y.data(), m, fx, tables[i]);
            break;
        }
        case OpKind::LayerNorm:
            intref_detail::layerNormOp(x, y.data(), op.outElements(), fx, spec.ops.at(op.name), tables[i], epsRaw[i],
                                       weights[i], biases[i]);
            break;
        case OpKind::MatMulQK: // scores[i][j] = sum_c theta[c][i] phi[c][j], c = 0 .. h-1.
            intref_detail::matMulQKOp(x, in(op.inputs[1]), y.data(), op.attentionChannels, op.outShape[0], fx,
                                      inputFormat(op, 1), acc, out);
            break;
        case OpKind::Softmax:
            intref_detail::softmaxOp(x, y.data(), op.outShape[0], op.outShape[1], spec.ops.at(op.name), tables[i]);
            break;
        case OpKind::MatMulSV: // y[c][i] = sum_j att[i][j] g[c][j], j = 0 .. HW-1.
            intref_detail::matMulSVOp(x, in(op.inputs[1]), y.data(), op.outShape[0], op.outShape[1] * op.outShape[2],
                                      fx, inputFormat(op, 1), acc, out);
            break;
        case OpKind::Add:
            intref_detail::addOp(x, in(op.inputs[1]), y.data(), y.size(), fx, inputFormat(op, 1), out);
            break;
        }
    }
}

std::vector<std::vector<std::int64_t>> IntegerReference::traceNormalised(const float *normalised) const
{
    const std::size_t area = std::size_t(m_impl->plan.spec.inputSize) * std::size_t(m_impl->plan.spec.inputSize);
    std::vector<std::int64_t> q(area);
    for (std::size_t k = 0; k < area; ++k)
        q[k] = m_impl->spec.input.quantise(normalised[k]);
    std::vector<std::vector<std::int64_t>> values;
    m_impl->run(q.data(), values);
    return values;
}

std::vector<std::vector<std::int64_t>> IntegerReference::trace(const float *patch) const
{
    const auto norm = normalisePatchesCpu(patch, 1, m_impl->plan.spec.inputSize);
    return traceNormalised(norm.data());
}

std::vector<std::int64_t> IntegerReference::forwardRaw(const float *patches, std::size_t n, int threads) const
{
    const int s = m_impl->plan.spec.inputSize;
    const std::size_t area = std::size_t(s) * std::size_t(s);
    std::vector<std::int64_t> out(n * 2);
    parallelChunks(n, resolveThreads(threads), 64, [&](std::size_t begin, std::size_t end, int) {
        std::vector<std::vector<std::int64_t>> values;
        std::vector<std::int64_t> q(area);
        const auto norm = normalisePatchesCpu(patches + begin * area, end - begin, s);
        for (std::size_t p = begin; p < end; ++p) {
            const float *np = norm.data() + (p - begin) * area;
            for (std::size_t k = 0; k < area; ++k)
                q[k] = m_impl->spec.input.quantise(np[k]);
            m_impl->run(q.data(), values);
            out[2 * p] = values.back()[0];
            out[2 * p + 1] = values.back()[1];
        }
    });
    return out;
}

std::vector<double> IntegerReference::predict(const float *patches, std::size_t n, int threads) const
{
    const auto raw = forwardRaw(patches, n, threads);
    const FixedFormat &f = *m_impl->formats.back();
    const double s = m_impl->plan.spec.inputSize;
    std::vector<double> out(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i)
        out[i] = f.toDouble(raw[i]) * s;
    return out;
}

Cost quantisedCost(const IntegerReference &ref)
{
    const LayerPlan &plan = ref.plan();
    std::map<std::string, OpPrecision> per;
    for (std::size_t i = 0; i < plan.ops.size(); ++i) {
        const PlanOp &op = plan.ops[i];
        OpPrecision p;
        p.activationBits = ref.format(op.inputs[0]).width;
        if (op.kind == OpKind::Conv || op.kind == OpKind::Linear) {
            p.weightBits = ref.spec().op(op.name).weight.width;
            const auto &w = ref.weightsRaw(op.name);
            p.zeroFraction = w.empty() ? 0.0
                                       : double(std::count(w.begin(), w.end(), std::int64_t(0))) / double(w.size());
        } else if (op.kind == OpKind::BatchNorm) {
            p.weightBits = ref.spec().op(plan.ops[std::size_t(op.inputs[0])].name).weight.width;
        } else if (op.kind == OpKind::LayerNorm) {
            p.weightBits = ref.spec().op(op.name).weight.width;
        } else {
            p.weightBits = p.activationBits;
        }
        per[op.name] = p;
    }
    return computeCost(plan, CostOptions{}, per);
}

// ---- calibration ------------------------------------------------------------------------------

std::vector<double> observedRanges(const LayerPlan &plan, const NamedTensors &weights, const float *patches,
                                   std::size_t n)
{
    const FoldedWeights folded = foldBatchNorm(plan, weights);
    const int s = plan.spec.inputSize;
    const std::size_t area = std::size_t(s) * std::size_t(s);
    const auto norm = normalisePatchesCpu(patches, n, s);
    std::vector<double> maxAbs(plan.ops.size() + 1, 0.0); // last: the input
    std::vector<std::vector<double>> v(plan.ops.size());
    for (std::size_t p = 0; p < n; ++p) {
        const std::vector<double> input(norm.begin() + std::ptrdiff_t(p * area), norm.begin() + std::ptrdiff_t((p + 1) * area));
        for (double x : input)
            maxAbs.back() = std::max(maxAbs.back(), std::abs(x));
        auto in = [&](int index) -> const std::vector<double> & { return index < 0 ? input : v[std::size_t(index)]; };
        for (std::size_t i = 0; i < plan.ops.size(); ++i) {
            const PlanOp &op = plan.ops[i];
            const auto &x = in(op.inputs[0]);
            auto &y = v[i];
            y.assign(std::size_t(op.outElements()), 0.0);
            switch (op.kind) {
            case OpKind::Conv: {
                const auto &wb = folded.at(op.name);
                const std::int64_t cin = op.inShape[0], hin = op.inShape[1], win = op.inShape[2];
                const std::int64_t cout = op.outShape[0], ho = op.outShape[1], wo = op.outShape[2], k = op.kernel;
                for (std::int64_t co = 0; co < cout; ++co)
                    for (std::int64_t oy = 0; oy < ho; ++oy)
                        for (std::int64_t ox = 0; ox < wo; ++ox) {
                            double a = wb.second[std::size_t(co)];
                            for (std::int64_t ci = 0; ci < cin; ++ci)
                                for (std::int64_t ky = 0; ky < k; ++ky)
                                    for (std::int64_t kx = 0; kx < k; ++kx)
                                        a += x[std::size_t((ci * hin + oy + ky) * win + ox + kx)]
                                            * wb.first[std::size_t(((co * cin + ci) * k + ky) * k + kx)];
                            y[std::size_t((co * ho + oy) * wo + ox)] = a;
                        }
                break;
            }
            case OpKind::Linear: {
                const auto &wb = folded.at(op.name);
                const std::int64_t nin = op.inShape[0];
                for (std::size_t o = 0; o < y.size(); ++o) {
                    double a = wb.second[o];
                    for (std::int64_t j = 0; j < nin; ++j)
                        a += x[std::size_t(j)] * wb.first[o * std::size_t(nin) + std::size_t(j)];
                    y[o] = a;
                }
                break;
            }
            case OpKind::BatchNorm:
            case OpKind::Flatten: y = x; break;
            case OpKind::Activation:
                for (std::size_t j = 0; j < y.size(); ++j)
                    y[j] = op.act == Activation::ReLU ? std::max(0.0, x[j])
                        : op.act == Activation::LeakyReLU ? (x[j] >= 0 ? x[j] : x[j] * op.slope)
                                                          : 0.5 * x[j] * (1.0 + std::erf(x[j] / std::sqrt(2.0)));
                break;
            case OpKind::LayerNorm: {
                const auto &wb = folded.at(op.name);
                double mean = 0, var = 0;
                for (double a : x)
                    mean += a;
                mean /= double(x.size());
                for (double a : x)
                    var += (a - mean) * (a - mean);
                var /= double(x.size());
                const double r = 1.0 / std::sqrt(var + op.eps);
                for (std::size_t j = 0; j < y.size(); ++j)
                    y[j] = (x[j] - mean) * r * wb.first[j] + wb.second[j];
                break;
            }
            case OpKind::MatMulQK: {
                const auto &phi = in(op.inputs[1]);
                const std::int64_t h = op.attentionChannels, hw = op.outShape[0];
                for (std::int64_t r = 0; r < hw; ++r)
                    for (std::int64_t c = 0; c < hw; ++c) {
                        double a = 0;
                        for (std::int64_t ch = 0; ch < h; ++ch)
                            a += x[std::size_t(ch * hw + r)] * phi[std::size_t(ch * hw + c)];
                        y[std::size_t(r * hw + c)] = a;
                    }
                break;
            }
            case OpKind::Softmax: {
                const std::int64_t rows = op.outShape[0], cols = op.outShape[1];
                for (std::int64_t r = 0; r < rows; ++r) {
                    const double mx = *std::max_element(x.begin() + r * cols, x.begin() + (r + 1) * cols);
                    double sum = 0;
                    for (std::int64_t c = 0; c < cols; ++c)
                        sum += (y[std::size_t(r * cols + c)] = std::exp(x[std::size_t(r * cols + c)] - mx));
                    for (std::int64_t c = 0; c < cols; ++c)
                        y[std::size_t(r * cols + c)] /= sum;
                }
                break;
            }
            case OpKind::MatMulSV: {
                const auto &g = in(op.inputs[1]);
                const std::int64_t h = op.outShape[0], hw = op.outShape[1] * op.outShape[2];
                for (std::int64_t c = 0; c < h; ++c)
                    for (std::int64_t r = 0; r < hw; ++r) {
                        double a = 0;
                        for (std::int64_t j = 0; j < hw; ++j)
                            a += x[std::size_t(r * hw + j)] * g[std::size_t(c * hw + j)];
                        y[std::size_t(c * hw + r)] = a;
                    }
                break;
            }
            case OpKind::Add: {
                const auto &x2 = in(op.inputs[1]);
                for (std::size_t j = 0; j < y.size(); ++j)
                    y[j] = x[j] + x2[j];
                break;
            }
            }
            for (double a : y)
                maxAbs[i] = std::max(maxAbs[i], std::abs(a));
        }
    }
    return maxAbs;
}

namespace {

/// Integer bits so that |v| <= maxAbs fits with `margin` spare bits: floor(log2 maxAbs) + 2 + margin,
/// kept within the format limits for `width`.
int integerBitsFor(double maxAbs, int width, int margin)
{
    int i = maxAbs > 0 ? int(std::floor(std::log2(maxAbs))) + 2 + margin : 1;
    return std::max(width - 40, std::min(width + 16, i));
}

double maxAbsOf(const std::vector<double> &v)
{
    double m = 0;
    for (double a : v)
        m = std::max(m, std::abs(a));
    return m;
}

} // namespace

QuantSpec calibratedQuantSpec(const LayerPlan &plan, const NamedTensors &weights, const float *patches,
                              std::size_t n, int bits, int margin)
{
    QuantSpec q = QuantSpec::defaults(plan, bits);
    const auto ranges = observedRanges(plan, weights, patches, n);
    const FoldedWeights folded = foldBatchNorm(plan, weights);
    q.input.integer = integerBitsFor(ranges.back(), bits, 0);
    for (std::size_t i = 0; i < plan.ops.size(); ++i) {
        if (!opHasFormats(plan, i))
            continue;
        const PlanOp &op = plan.ops[i];
        OpQuant &o = q.ops.at(op.name);
        // A Conv / Linear followed by its folded BatchNorm: the range after the BatchNorm.
        double range = ranges[i];
        if (i + 1 < plan.ops.size() && plan.ops[i + 1].kind == OpKind::BatchNorm)
            range = ranges[i + 1];
        o.output.integer = op.kind == OpKind::Softmax ? 2 : integerBitsFor(range, bits, margin);
        auto it = folded.find(op.name);
        if (it != folded.end()) {
            o.weight.integer = integerBitsFor(maxAbsOf(it->second.first), bits, 0);
            o.bias.integer = integerBitsFor(maxAbsOf(it->second.second), bits, 0);
        }
        if (o.internal.count("slope"))
            o.internal["slope"].integer = integerBitsFor(op.slope, bits, 0);
    }
    return q;
}

} // namespace braggnac::core
