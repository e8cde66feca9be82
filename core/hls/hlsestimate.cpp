#include "core/hls/hlsestimate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/common/error.h"

namespace braggnac::core {

namespace {

std::int64_t ceilDiv(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

int log2Ceil(std::int64_t v)
{
    int b = 0;
    while ((std::int64_t(1) << b) < v)
        ++b;
    return b;
}

/// Multiplier cost of an a x b bit product (docs/hls.md "Estimates").
struct MulCost {
    bool dsp = false;
    std::int64_t dspEach = 0, lutEach = 0, latency = 1;
};
MulCost mulCost(int a, int b)
{
    if (a < b)
        std::swap(a, b);
    MulCost m;
    if (a * b > 100) { // wider than ~10 x 10 bits: DSP48 slices (27 x 18 each)
        m.dsp = true;
        m.dspEach = ceilDiv(a, 27) * ceilDiv(b, 18);
        m.latency = 3;
    } else {
        m.lutEach = std::int64_t(std::ceil(0.55 * a * b));
        m.latency = 1;
    }
    return m;
}

} // namespace

const std::vector<HlsPart> &hlsParts()
{
    static const std::vector<HlsPart> parts = {
        {"xcu250", "xcu250-figd2104-2L-e", 12288, 1728000, 3456000, 5376},
        {"xcu55c", "xcu55c-fsvh2892-2L-e", 9024, 1303680, 2607360, 4032},
        {"xczu7ev", "xczu7ev-ffvc1156-2-e", 1728, 230400, 460800, 624},
        {"xc7z020", "xc7z020clg400-1", 220, 53200, 106400, 280},
    };
    return parts;
}

const HlsPart &hlsPart(const std::string &name)
{
    for (const HlsPart &p : hlsParts())
        if (p.name == name || p.number == name)
            return p;
    std::string known;
    for (const HlsPart &p : hlsParts())
        known += (known.empty() ? "" : ", ") + p.name;
    throw InputError("--part: unknown part '" + name + "' (known: " + known + ")");
}

HlsEstimate estimateHls(const IntegerReference &ref, int reuseFactor, double clockMhz, const HlsPart &part)
{
    if (reuseFactor < 1)
        throw InputError("--reuse-factor: must be at least 1, got " + std::to_string(reuseFactor));
    if (!(clockMhz > 0) || !std::isfinite(clockMhz))
        throw InputError("--clock-mhz: must be a positive number");
    const LayerPlan &plan = ref.plan();
    HlsEstimate e;
    e.reuseFactor = reuseFactor;
    e.clockMhz = clockMhz;
    e.part = part;
    const std::int64_t R = reuseFactor;
    for (std::size_t i = 0; i < plan.ops.size(); ++i) {
        const PlanOp &op = plan.ops[i];
        if (op.kind == OpKind::BatchNorm || op.kind == OpKind::Flatten)
            continue; // folded / a no-op on flat arrays
        LayerEstimate l;
        l.name = op.name;
        l.kind = opKindName(op.kind);
        const FixedFormat &in = ref.format(op.inputs[0]);
        const FixedFormat &out = ref.format(int(i));
        if (op.kind == OpKind::Conv || op.kind == OpKind::Linear) {
            const OpQuant &q = ref.spec().op(op.name);
            const auto &w = ref.weightsRaw(op.name);
            const std::int64_t nOut = op.outChannels();
            const std::int64_t per = std::int64_t(w.size()) / std::max<std::int64_t>(1, nOut);
            std::int64_t nnz = 0, maxPer = 0;
            for (std::int64_t o = 0; o < nOut; ++o) {
                std::int64_t c = 0;
                for (std::int64_t k = 0; k < per; ++k)
                    c += w[std::size_t(o * per + k)] != 0;
                nnz += c;
                maxPer = std::max(maxPer, c);
            }
            l.weights = std::int64_t(w.size());
            l.pruned = l.weights - nnz;
            const MulCost m = mulCost(in.width, q.weight.width);
            l.dspMultipliers = m.dsp;
            l.multipliers = ceilDiv(nnz, R);
            const int fp = in.fraction() + q.weight.fraction();
            const std::int64_t fanIn = op.kind == OpKind::Conv ? op.inChannels() * op.kernel * op.kernel : op.inChannels();
            const int accBits = q.accumulator > 0
                ? q.accumulator
                : std::max(exactAccumulatorBits(in.width, q.weight.width, fanIn),
                           q.bias.width + std::max(0, fp - q.bias.fraction())) + 1;
            l.dsp = l.multipliers * m.dspEach;
            l.lut = l.multipliers * (m.lutEach + accBits) + nOut * out.width; // multipliers, adders, output rounding
            l.ff = l.multipliers * (in.width + q.weight.width) + nOut * accBits;
            if (R > 1) // weights in ROM banks of depth R, one per multiplier
                l.bram18 = (R * q.weight.width > 1024) ? l.multipliers * ceilDiv(R * q.weight.width, 18432) : 0;
            const std::int64_t depth = m.latency + log2Ceil(maxPer + 1) + 1;
            const std::int64_t positions = op.kind == OpKind::Conv ? op.outShape[1] * op.outShape[2] : 1;
            l.cycles = positions * R + depth;
        } else if (op.kind == OpKind::Activation) {
            const std::int64_t n = op.outElements();
            l.lut = n * out.width;
            l.ff = n * out.width;
            l.cycles = 1;
            if (op.act == Activation::LeakyReLU) {
                const FixedFormat &sf = ref.spec().op(op.name).internal.at("slope");
                const MulCost m = mulCost(in.width, sf.width);
                l.multipliers = ceilDiv(n, R);
                l.dspMultipliers = m.dsp;
                l.dsp = l.multipliers * m.dspEach;
                l.lut += l.multipliers * m.lutEach;
                l.cycles = R + m.latency;
            }
        } else if (op.kind == OpKind::Activation && op.act == Activation::GELU) {
            // One ROM of 2^W_in entries per element, in LUTRAM (64 bits per LUT).
            const std::int64_t n = op.outElements();
            l.lut = n * ceilDiv((std::int64_t(1) << in.width) * out.width, 64);
            l.ff = n * out.width;
            l.cycles = 2;
        } else if (op.kind == OpKind::LayerNorm) {
            // Per element: a squarer and two products ((x - mean) t, then gamma); two adder trees,
            // two divisions by the constant element count (multiply by a reciprocal), the table.
            const OpQuant &q = ref.spec().op(op.name);
            const FixedFormat &rf = q.internal.at("rstd");
            const std::int64_t n = op.outElements();
            const MulCost sqm = mulCost(in.width + 1, in.width + 1), tm = mulCost(in.width + 1, rf.width),
                          gm = mulCost(in.width + 1 + rf.width, q.weight.width);
            l.multipliers = 3 * ceilDiv(n, R);
            l.dspMultipliers = sqm.dsp || tm.dsp || gm.dsp;
            l.dsp = ceilDiv(n, R) * (sqm.dspEach + tm.dspEach + gm.dspEach);
            l.lut = ceilDiv(n, R) * (sqm.lutEach + tm.lutEach + gm.lutEach) + 2 * n * (2 * in.width + 2)
                + ceilDiv(3072 * rf.width, 64);
            l.ff = n * (2 * in.width + 2 + out.width);
            const std::int64_t tree = log2Ceil(n + 1);
            l.cycles = 2 * tree + 2 * 4 + 2 + sqm.latency + tm.latency + gm.latency + (R - 1);
        } else if (op.kind == OpKind::MatMulQK || op.kind == OpKind::MatMulSV) {
            // One row of outputs per R cycles: rows x (outputs per row x fan-in) products.
            const FixedFormat &b = ref.format(op.inputs[1]);
            const std::int64_t h = op.kind == OpKind::MatMulQK ? op.attentionChannels : op.outShape[0];
            const std::int64_t hw = op.kind == OpKind::MatMulQK ? op.outShape[0] : op.outShape[1] * op.outShape[2];
            const std::int64_t perRow = op.kind == OpKind::MatMulQK ? hw * h : h * hw; // products per row
            const std::int64_t fanIn = op.kind == OpKind::MatMulQK ? h : hw;
            const MulCost m = mulCost(in.width, b.width);
            const int acc = exactAccumulatorBits(in.width, b.width, fanIn) + 1;
            l.multipliers = ceilDiv(perRow, R);
            l.dspMultipliers = m.dsp;
            l.dsp = l.multipliers * m.dspEach;
            l.lut = l.multipliers * (m.lutEach + acc);
            l.ff = l.multipliers * (in.width + b.width);
            l.cycles = hw * R + m.latency + log2Ceil(fanIn + 1) + 1;
        } else if (op.kind == OpKind::Softmax) {
            // Per row per R cycles: the maximum (comparator tree), exp ROMs in LUTRAM, the sum,
            // one divider (about W_r^2 LUTs, W_r cycles), the products.
            const OpQuant &q = ref.spec().op(op.name);
            const FixedFormat &ef = q.internal.at("exp"), &rf = q.internal.at("reciprocal");
            const std::int64_t cols = op.outShape[1], rows = op.outShape[0];
            const MulCost m = mulCost(ef.width, rf.width);
            l.multipliers = cols;
            l.dspMultipliers = m.dsp;
            l.dsp = cols * m.dspEach;
            l.lut = cols * (ceilDiv((std::int64_t(1) << (in.width + 1)) * ef.width, 64) + m.lutEach + in.width)
                + std::int64_t(rf.width) * rf.width;
            l.ff = cols * (ef.width + out.width);
            l.cycles = rows * R + 2 * log2Ceil(cols + 1) + rf.width + m.latency + 2;
        } else if (op.kind == OpKind::Add) {
            const std::int64_t n = op.outElements();
            l.lut = n * out.width;
            l.ff = n * out.width;
            l.cycles = 1;
        } else {
            throw InputError(std::string("unsupported layer: ") + op.name + " (" + opKindName(op.kind)
                             + "); use an FPGA-friendly space");
        }
        e.dsp += l.dsp;
        e.lut += l.lut;
        e.ff += l.ff;
        e.bram18 += l.bram18;
        e.cycles += l.cycles;
        e.layers.push_back(l);
    }
    e.latencyUs = double(e.cycles) / clockMhz;
    return e;
}

nlohmann::json HlsEstimate::toJson() const
{
    nlohmann::json layersJson = nlohmann::json::array();
    for (const LayerEstimate &l : layers)
        layersJson.push_back({{"name", l.name}, {"kind", l.kind}, {"weights", l.weights}, {"pruned", l.pruned},
                              {"multipliers", l.multipliers}, {"dsp_multipliers", l.dspMultipliers},
                              {"dsp", l.dsp}, {"lut", l.lut}, {"ff", l.ff}, {"bram", l.bram18},
                              {"latency_cycles", l.cycles}});
    return {{"dsp", dsp}, {"lut", lut}, {"ff", ff}, {"bram", bram18}, {"latency_cycles", cycles},
            {"latency_us", latencyUs}, {"clock_mhz", clockMhz}, {"reuse_factor", reuseFactor},
            {"part", part.name}, {"part_number", part.number},
            {"utilisation", {{"dsp", double(dsp) / double(part.dsp)}, {"lut", double(lut) / double(part.lut)},
                             {"ff", double(ff) / double(part.ff)}, {"bram", double(bram18) / double(part.bram18)}}},
            {"layers", layersJson}, {"model", "analytic estimate (docs/hls.md), not a synthesis result"}};
}

std::string HlsEstimate::text() const
{
    std::string s;
    char buf[256];
    std::snprintf(buf, sizeof buf, "ESTIMATE (analytic model, docs/hls.md; not a synthesis result): part %s, %.1f MHz, reuse factor %d\n",
                  part.number.c_str(), clockMhz, reuseFactor);
    s += buf;
    std::snprintf(buf, sizeof buf, "%-28s %-10s %8s %7s %6s %9s %9s %6s %8s\n", "layer", "kind", "weights", "pruned",
                  "DSP", "LUT", "FF", "BRAM18", "cycles");
    s += buf;
    for (const LayerEstimate &l : layers) {
        std::snprintf(buf, sizeof buf, "%-28s %-10s %8lld %7lld %6lld %9lld %9lld %6lld %8lld\n", l.name.c_str(),
                      l.kind.c_str(), (long long)l.weights, (long long)l.pruned, (long long)l.dsp, (long long)l.lut,
                      (long long)l.ff, (long long)l.bram18, (long long)l.cycles);
        s += buf;
    }
    std::snprintf(buf, sizeof buf, "%-28s %-10s %8s %7s %6lld %9lld %9lld %6lld %8lld\n", "total", "", "", "",
                  (long long)dsp, (long long)lut, (long long)ff, (long long)bram18, (long long)cycles);
    s += buf;
    std::snprintf(buf, sizeof buf, "capacity of %s: DSP %lld (%.1f%%), LUT %lld (%.1f%%), FF %lld (%.1f%%), BRAM18 %lld (%.1f%%)\n",
                  part.name.c_str(), (long long)part.dsp, 100.0 * dsp / part.dsp, (long long)part.lut,
                  100.0 * lut / part.lut, (long long)part.ff, 100.0 * ff / part.ff, (long long)part.bram18,
                  100.0 * bram18 / part.bram18);
    s += buf;
    std::snprintf(buf, sizeof buf, "latency: %lld cycles = %.3f us at %.1f MHz\n", (long long)cycles, latencyUs, clockMhz);
    s += buf;
    return s;
}

} // namespace braggnac::core
