#include "core/nn/qat.h"

#include <cmath>

#include "core/common/error.h"
#include "core/compress/intref.h"

namespace braggnac::core {

namespace {

using torch::Tensor;

double p2(int e)
{
    return std::ldexp(1.0, e);
}

/// x already scaled by 2^F (exact): rounding, then overflow -> raw integers (double).
Tensor roundOverflow(const Tensor &x, const FixedFormat &f)
{
    Tensor r = torch::floor(x);
    if (f.rounding == Rounding::RoundHalfUp)
        r = r + (x - r >= 0.5).to(torch::kDouble);
    return f.overflow == Overflow::Saturate
        ? r.clamp(double(f.minRaw()), double(f.maxRaw()))
        : r - p2(f.width) * torch::floor((r + p2(f.width - 1)) * p2(-f.width));
}

/// Raw integers of the exact values v in format f.
Tensor quantRaw(const Tensor &v, const FixedFormat &f)
{
    return roundOverflow(v * p2(f.fraction()), f);
}

/// Straight-through: the value of q, the gradient of x.
Tensor ste(const Tensor &q, const Tensor &x)
{
    return q.detach() + (x - x.detach());
}

/// raw at `from` fraction bits re-expressed at `to` bits, rounding with r when bits are dropped.
Tensor alignTo(const Tensor &raw, int from, int to, Rounding r)
{
    if (to >= from)
        return raw * p2(to - from);
    Tensor x = raw * p2(to - from);
    return r == Rounding::RoundHalfUp ? torch::floor(x + 0.5) : torch::floor(x);
}

/// Wraps raw integers to `bits` (two's complement); bits 0: unchanged.
Tensor wrapBits(const Tensor &raw, int bits)
{
    if (bits <= 0)
        return raw;
    return raw - p2(bits) * torch::floor((raw + p2(bits - 1)) * p2(-bits));
}

Tensor tableTensor(const std::vector<std::int64_t> &t)
{
    std::vector<double> d(t.begin(), t.end());
    return torch::tensor(d, torch::kDouble);
}

Tensor gather(const Tensor &table, const Tensor &index)
{
    return table.index_select(0, index.flatten()).view(index.sizes());
}

[[noreturn]] void notExact(const PlanOp &op, const std::string &what)
{
    throw InputError("quantisation spec: layers." + op.name + ": the fake-quantised forward cannot emulate this "
                     "exactly in double: " + what);
}

} // namespace

FakeQuantForward::FakeQuantForward(PeakNet net, QuantSpec spec)
    : m_net(std::move(net)), m_plan(m_net->plan()), m_spec(std::move(spec))
{
    m_spec.checkSupported(m_plan, "quantisation spec");
    const std::size_t n = m_plan.ops.size();
    m_tables.resize(n);
    m_eps.assign(n, 0);
    auto fmt = [&](int index) -> const FixedFormat & {
        while (index >= 0 && !opHasFormats(m_plan, std::size_t(index)))
            index = m_plan.ops[std::size_t(index)].inputs[0];
        return index < 0 ? m_spec.input : m_spec.op(m_plan.ops[std::size_t(index)].name).output;
    };
    for (std::size_t i = 0; i < n; ++i) {
        const PlanOp &op = m_plan.ops[i];
        if (!opHasFormats(m_plan, i))
            continue;
        const OpQuant &q = m_spec.op(op.name);
        const FixedFormat &in = fmt(op.inputs[0]);
        switch (op.kind) {
        case OpKind::Conv:
        case OpKind::Linear: {
            const std::int64_t fanIn = op.kind == OpKind::Conv ? op.inChannels() * op.kernel * op.kernel : op.inChannels();
            const int fp = in.fraction() + q.weight.fraction();
            if (exactAccumulatorBits(in.width, q.weight.width, fanIn) > 53
                || q.bias.width + std::max(0, fp - q.bias.fraction()) > 52)
                notExact(op, "the accumulator needs more than 53 bits");
            break;
        }
        case OpKind::MatMulQK:
        case OpKind::MatMulSV: {
            const std::int64_t fanIn = op.kind == OpKind::MatMulQK ? op.attentionChannels : op.inShape[0];
            if (exactAccumulatorBits(in.width, fmt(op.inputs[1]).width, fanIn) > 53)
                notExact(op, "the accumulator needs more than 53 bits");
            break;
        }
        case OpKind::Activation:
            if (op.act == Activation::GELU)
                m_tables[i] = tableTensor(geluTable(in, q.output));
            break;
        case OpKind::Softmax: {
            const FixedFormat &e = q.internal.at("exp"), &r = q.internal.at("reciprocal");
            if (e.width + r.width > 53 || e.fraction() + r.fraction() > 61 || e.fraction() + r.fraction() < 0)
                notExact(op, "exp and reciprocal formats too wide");
            m_tables[i] = tableTensor(softmaxExpTable(in, e));
            break;
        }
        case OpKind::LayerNorm: {
            const FixedFormat &r = q.internal.at("rstd");
            if (in.width + 1 + r.width + q.weight.width > 52 || 2 * in.width + 2 + 12 > 62)
                notExact(op, "input, rstd and weight formats too wide");
            m_tables[i] = tableTensor(rstdTable(r));
            m_eps[i] = layerNormEpsRaw(in, op.eps);
            break;
        }
        default: break;
        }
    }
}

torch::Tensor FakeQuantForward::forwardRaw(const torch::Tensor &x) const
{
    torch::NoGradGuard g;
    const Tensor y = forward(x);
    const FixedFormat &f = m_spec.op(m_plan.output().name).output;
    return (y * p2(f.fraction())).round().to(torch::kLong);
}

torch::Tensor FakeQuantForward::forward(const torch::Tensor &x) const
{
    return run(x, nullptr);
}

std::vector<torch::Tensor> FakeQuantForward::forwardTrace(const torch::Tensor &x) const
{
    torch::NoGradGuard g;
    std::vector<torch::Tensor> trace;
    run(x, &trace);
    return trace;
}

torch::Tensor FakeQuantForward::run(const torch::Tensor &input, std::vector<torch::Tensor> *trace) const
{
    std::map<std::string, Tensor> params;
    for (const auto &p : m_net->named_parameters(true))
        params[p.key()] = p.value().to(torch::kDouble);
    for (const auto &b : m_net->named_buffers(true))
        if (b.value().is_floating_point())
            params[b.key()] = b.value().to(torch::kDouble);
    auto param = [&](const PlanOp &op, const char *suffix) -> const Tensor & {
        return params.at(op.name + "." + suffix);
    };

    const std::size_t n = m_plan.ops.size();
    std::vector<Tensor> val(n);
    std::vector<const FixedFormat *> fmts(n, nullptr);
    const Tensor x0 = input.to(torch::kDouble);
    const Tensor in0 = ste(quantRaw(x0, m_spec.input) * p2(-m_spec.input.fraction()), x0);
    const int64_t batch = x0.size(0);
    auto value = [&](int index) -> const Tensor & { return index < 0 ? in0 : val[std::size_t(index)]; };
    auto format = [&](int index) -> const FixedFormat & { return index < 0 ? m_spec.input : *fmts[std::size_t(index)]; };
    /// acc (exact values with fp fraction bits) -> output format, with STE on `grad`.
    auto requant = [&](const Tensor &acc, int fp, int accBits, const FixedFormat &out, const Tensor &grad) {
        Tensor raw = wrapBits((acc * p2(fp)).detach(), accBits);
        return ste(roundOverflow(raw * p2(out.fraction() - fp), out) * p2(-out.fraction()), grad);
    };

    for (std::size_t i = 0; i < n; ++i) {
        const PlanOp &op = m_plan.ops[i];
        const Tensor &x = value(op.inputs[0]);
        const FixedFormat &fx = format(op.inputs[0]);
        if (!opHasFormats(m_plan, i)) {
            fmts[i] = &fx;
            val[i] = op.kind == OpKind::Flatten ? x.flatten(1) : x;
            continue;
        }
        const OpQuant &q = m_spec.op(op.name);
        const FixedFormat &out = q.output;
        fmts[i] = &out;
        switch (op.kind) {
        case OpKind::Conv:
        case OpKind::Linear: {
            Tensor w = param(op, "weight"), b = param(op, "bias");
            if (i + 1 < n && m_plan.ops[i + 1].kind == OpKind::BatchNorm) {
                const PlanOp &bn = m_plan.ops[i + 1];
                const Tensor scale = param(bn, "weight") / torch::sqrt(param(bn, "running_var") + bn.eps);
                std::vector<int64_t> shape(std::size_t(w.dim()), 1);
                shape[0] = -1;
                w = w * scale.view(shape);
                b = (b - param(bn, "running_mean")) * scale + param(bn, "bias");
            }
            const int fw = q.weight.fraction(), fb = q.bias.fraction();
            const int fp = fx.fraction() + fw;
            const Tensor wq = ste(quantRaw(w, q.weight) * p2(-fw), w);
            const Tensor bq = ste(alignTo(quantRaw(b, q.bias), fb, fp, q.bias.rounding) * p2(-fp), b);
            const Tensor acc = op.kind == OpKind::Conv ? torch::conv2d(x, wq, bq) : torch::linear(x, wq, bq);
            val[i] = requant(acc, fp, q.accumulator, out, acc);
            break;
        }
        case OpKind::Activation: {
            if (op.act == Activation::ReLU) {
                const Tensor y = torch::relu(x);
                val[i] = requant(y, fx.fraction(), 0, out, y);
            } else if (op.act == Activation::LeakyReLU) {
                const FixedFormat &sf = q.internal.at("slope");
                const double slope = sf.toDouble(sf.quantise(op.slope));
                const Tensor y = torch::where(x >= 0, x, x * slope);
                val[i] = requant(y, fx.fraction() + sf.fraction(), 0, out, y);
            } else {
                const Tensor idx = (x.detach() * p2(fx.fraction()) - double(fx.minRaw())).to(torch::kLong);
                const Tensor raw = gather(m_tables[i], idx);
                val[i] = ste(raw * p2(-out.fraction()), torch::gelu(x));
            }
            break;
        }
        case OpKind::LayerNorm: {
            const FixedFormat &rf = q.internal.at("rstd");
            const int f = fx.fraction();
            const Tensor X = (x.detach() * p2(f)).view({batch, -1}).to(torch::kLong);
            const int64_t m = X.size(1);
            const Tensor mean = torch::div(2 * X.sum(1, true) + m, 2 * m, "floor");
            const Tensor d = X - mean;
            Tensor var = torch::div(2 * (d * d).sum(1, true) + m, 2 * m, "floor") + m_eps[i];
            var = var.clamp_min(1);
            const Tensor vd = var.to(torch::kDouble);
            const Tensor e = std::get<1>(torch::frexp(vd)).to(torch::kLong); // bit length
            Tensor shift = e - kRstdTableBits;
            shift = shift + torch::remainder(shift, 2);
            const Tensor sd = shift.to(torch::kDouble);
            const Tensor mant = torch::floor(vd * torch::pow(2.0, -sd)).to(torch::kLong);
            const Tensor t = gather(m_tables[i], mant - (int64_t(1) << (kRstdTableBits - 2))); // [N, 1]
            const Tensor E = torch::div(shift + kRstdTableBits, 2, "floor") - f;              // [N, 1]
            const Tensor gRaw = quantRaw(param(op, "weight"), q.weight).view({1, -1});
            const Tensor bRaw = quantRaw(param(op, "bias"), q.bias).view({1, -1});
            const Tensor fp = (E + (f + rf.fraction() + q.weight.fraction())).to(torch::kDouble); // [N, 1]
            const Tensor v = d.to(torch::kDouble) * t * gRaw;
            const Tensor sh = fp - q.bias.fraction();
            Tensor bAl = bRaw * torch::pow(2.0, sh);
            bAl = torch::where(sh >= 0, bAl, q.bias.rounding == Rounding::RoundHalfUp ? torch::floor(bAl + 0.5) : torch::floor(bAl));
            const Tensor raw = roundOverflow((v + bAl) * torch::pow(2.0, out.fraction() - fp), out);
            const std::vector<int64_t> shape(op.outShape.begin(), op.outShape.end());
            const Tensor ln = torch::layer_norm(x, shape, param(op, "weight"), param(op, "bias"), op.eps);
            val[i] = ste(raw.view(x.sizes()) * p2(-out.fraction()), ln);
            break;
        }
        case OpKind::MatMulQK: {
            const Tensor &phi = value(op.inputs[1]);
            const int64_t h = op.attentionChannels, hw = op.outShape[0];
            const Tensor acc = torch::matmul(x.view({batch, h, hw}).permute({0, 2, 1}), phi.view({batch, h, hw}));
            val[i] = requant(acc, fx.fraction() + format(op.inputs[1]).fraction(), q.accumulator, out, acc);
            break;
        }
        case OpKind::Softmax: {
            const FixedFormat &ef = q.internal.at("exp"), &rf = q.internal.at("reciprocal");
            const Tensor X = x.detach() * p2(fx.fraction());
            const Tensor d = (X.amax(-1, true) - X).to(torch::kLong);
            const Tensor e = gather(m_tables[i], d);
            const Tensor sum = e.sum(-1, true).to(torch::kLong);
            const int sh = ef.fraction() + rf.fraction();
            const int64_t num = int64_t(1) << sh;
            Tensor recip = rf.rounding == Rounding::RoundHalfUp ? torch::div(2 * num + sum, 2 * sum, "floor")
                                                                 : torch::div(torch::full_like(sum, num), sum, "floor");
            recip = torch::where(sum > 0, recip, torch::full_like(recip, rf.maxRaw()));
            recip = roundOverflow(recip.to(torch::kDouble), rf);
            const Tensor p = e * recip;
            const Tensor raw = roundOverflow(p * p2(out.fraction() - sh), out);
            val[i] = ste(raw * p2(-out.fraction()), torch::softmax(x, -1));
            break;
        }
        case OpKind::MatMulSV: {
            const Tensor &g = value(op.inputs[1]);
            const int64_t h = op.outShape[0], hh = op.outShape[1], ww = op.outShape[2];
            const Tensor acc = torch::matmul(x, g.view({batch, h, hh * ww}).permute({0, 2, 1}))
                                   .permute({0, 2, 1})
                                   .contiguous()
                                   .view({batch, h, hh, ww});
            val[i] = requant(acc, fx.fraction() + format(op.inputs[1]).fraction(), q.accumulator, out, acc);
            break;
        }
        case OpKind::Add: {
            const Tensor y = x + value(op.inputs[1]);
            val[i] = requant(y, std::max(fx.fraction(), format(op.inputs[1]).fraction()), 0, out, y);
            break;
        }
        default: break;
        }
    }
    if (trace)
        for (std::size_t i = 0; i < n; ++i)
            trace->push_back((val[i].detach() * p2(fmts[i]->fraction())).round().to(torch::kLong).contiguous());
    return val.back();
}

} // namespace braggnac::core
