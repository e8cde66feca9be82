#include "core/cost/cost.h"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/arch/layerplan.h"
#include "core/common/error.h"

namespace braggnac::core {

namespace {

/// Batch size the NAC code multiplies into the attention softmax term (its input_shape[0]).
constexpr double kNacBatch = 256;

/// BOPs of one plan op at the given bits and weight sparsity (docs/cost.md), in either convention.
class Counter {
public:
    explicit Counter(CostConvention convention) : m_nac(convention == CostConvention::NacOpt) {}

    Cost result() const { return m_cost; }

    void op(const PlanOp &op, double ba, double bw, double s)
    {
        m_ba = ba;
        m_bw = bw;
        m_s = s;
        switch (op.kind) {
        case OpKind::Conv:
            // The NAC rules skip the stem's BOPs.
            conv(op, op.section != PlanSection::Stem);
            break;
        case OpKind::Linear: linear(op); break;
        case OpKind::BatchNorm:
        case OpKind::LayerNorm:
            // NAC counts 2C for a BatchNorm inside a conv block (not after the stem; the MLP
            // counts Linear only).
            norm(op, op.section == PlanSection::Blocks);
            break;
        case OpKind::MatMulQK:
        case OpKind::Softmax:
        case OpKind::MatMulSV:
        case OpKind::Add: attention(op); break;
        case OpKind::Activation:
        case OpKind::Flatten: break;
        }
    }

private:
    /// Conv (valid, stride 1). `counted` = false: the NAC rules skip this layer's BOPs (stem).
    void conv(const PlanOp &op, bool counted)
    {
        const std::int64_t cin = op.inChannels(), k = op.kernel;
        LayerCost l{op.label, "conv", op.params, op.macs, 0};
        if (m_nac) {
            // NAC: out * in * k^4 * [(1-s) ba bw + ba + bw + log2(in * k^4)], no output positions.
            const double k4 = double(k) * k * k * k;
            l.bops = counted ? double(op.outChannels()) * cin * k4 * weightTerm(std::log2(double(cin) * k4)) : 0;
        } else {
            l.bops = double(l.macs) * weightTerm(std::log2(double(cin * k * k)));
        }
        add(l);
    }

    void linear(const PlanOp &op)
    {
        LayerCost l{op.label, "linear", op.params, op.macs, 0};
        l.bops = double(l.macs) * weightTerm(std::log2(double(op.inChannels())));
        add(l);
    }

    void norm(const PlanOp &op, bool nacCounted)
    {
        const std::int64_t n = op.outElements();
        LayerCost l{op.label, "", op.params, op.macs, 0};
        if (op.kind == OpKind::BatchNorm) {
            // Inference: folded scale and shift, one MAC per element (fan-in 1).
            l.kind = "batchnorm";
            l.bops = m_nac ? (nacCounted ? 2.0 * op.outChannels() : 0.0) : double(n) * (m_ba * m_bw + m_ba + m_bw);
        } else {
            // Statistics: sum x and sum x^2 over n (fan-in n); normalise (x - mu) * rstd; affine.
            l.kind = "layernorm";
            l.bops = m_nac ? 0.0
                           : 2.0 * n * actTerm(std::log2(double(n))) + double(n) * actTerm(0)
                    + double(n) * (m_ba * m_bw + m_ba + m_bw);
        }
        add(l);
    }

    /// The non-product parts of a non-local block on a C x S x S map with h attention channels.
    void attention(const PlanOp &op)
    {
        const double c = op.blockChannels, h = op.attentionChannels;
        const double b = m_ba;
        LayerCost l{op.label, "", 0, op.macs, 0};
        switch (op.kind) {
        case OpKind::MatMulQK: {
            const double hw = double(op.outShape[0]);
            l.kind = "matmul";
            // NAC: seq_len = C (the block's input channels), embed = HW, no batch factor.
            l.bops = m_nac ? c * c * hw * b * b + c * c * (hw - 1) * b : double(l.macs) * actTerm(std::log2(h));
            break;
        }
        case OpKind::Softmax: {
            const double hw = double(op.outShape[0]);
            l.kind = "softmax";
            // Standard: sum of HW exponentials (fan-in HW), then one multiply per score.
            l.bops = m_nac ? kNacBatch * hw * hw * 1.5 * (b - 1) + kNacBatch * hw * (hw - 1) + kNacBatch * hw * hw
                           : double(l.macs) * actTerm(std::log2(hw));
            break;
        }
        case OpKind::MatMulSV: {
            const double hw = double(op.inShape[0]);
            l.kind = "matmul";
            l.bops = m_nac ? hw * hw * c * b * b + hw * hw * (c - 1) * b : double(l.macs) * actTerm(std::log2(hw));
            break;
        }
        default: // Add
            l.kind = "add";
            l.bops = m_nac ? 0.0 : double(op.outElements()) * b; // one b_a-bit addition per element
            break;
        }
        add(l);
    }

    /// Per-MAC bit operations of an activation x weight product with accumulator fan-in.
    double weightTerm(double log2FanIn) const
    {
        return (1 - m_s) * m_ba * m_bw + m_ba + m_bw + log2FanIn;
    }
    /// Activation x activation product (no weight sparsity).
    double actTerm(double log2FanIn) const { return m_ba * m_ba + 2.0 * m_ba + log2FanIn; }

    void add(const LayerCost &l)
    {
        m_cost.params += l.params;
        m_cost.macs += l.macs;
        m_cost.bops += l.bops;
        m_cost.layers.push_back(l);
    }

    double m_ba = 32, m_bw = 32, m_s = 0;
    bool m_nac;
    Cost m_cost;
};

} // namespace

nlohmann::json Cost::toJson() const
{
    nlohmann::json j;
    j["params"] = params;
    j["macs"] = macs;
    j["bops"] = bops;
    nlohmann::json ls = nlohmann::json::array();
    for (const auto &l : layers)
        ls.push_back({{"name", l.name}, {"kind", l.kind}, {"params", l.params}, {"macs", l.macs}, {"bops", l.bops}});
    j["layers"] = ls;
    return j;
}

Cost computeCost(const ArchSpec &spec, const CostOptions &options)
{
    options.validate();

    const LayerPlan plan = LayerPlan::lower(spec); // validates
    Counter c(options.convention);
    for (const auto &op : plan.ops)
        c.op(op, options.activationBits, options.weightBits, options.sparsity);
    return c.result();
}

Cost computeCost(const LayerPlan &plan, const CostOptions &options,
                 const std::map<std::string, OpPrecision> &perOp)
{
    options.validate();
    for (const auto &[name, p] : perOp) {
        if (plan.find(name) < 0)
            throw InputError("cost: layer '" + name + "': not an operation of the plan of '" + plan.spec.name + "'");
        if (p.weightBits < 1 || p.weightBits > 64 || p.activationBits < 1 || p.activationBits > 64)
            throw InputError("cost: layer '" + name + "': bits: expected 1..64");
        if (!(p.zeroFraction >= 0 && p.zeroFraction <= 1))
            throw InputError("cost: layer '" + name + "': zero fraction: expected [0, 1]");
    }
    Counter c(options.convention);
    for (const auto &op : plan.ops) {
        auto it = perOp.find(op.name);
        if (it == perOp.end())
            c.op(op, options.activationBits, options.weightBits, options.sparsity);
        else
            c.op(op, it->second.activationBits, it->second.weightBits, it->second.zeroFraction);
    }
    return c.result();
}

// ---- CostOptions::validate (input validation; kept apart from the counting code) --------------

void CostOptions::validate(const std::string &source) const
{
    auto fail = [&](const char *field, const std::string &what) {
        throw InputError(source + ": " + field + ": " + what);
    };
    if (weightBits < 1 || weightBits > 64)
        fail("weight_bits", "must be an integer in 1..64, got " + std::to_string(weightBits));
    if (activationBits < 1 || activationBits > 64)
        fail("activation_bits", "must be an integer in 1..64, got " + std::to_string(activationBits));
    if (!(sparsity >= 0 && sparsity < 1)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", sparsity);
        fail("sparsity", std::string("must be a fraction in [0, 1), got ") + buf);
    }
    if (convention != CostConvention::Standard && convention != CostConvention::NacOpt)
        fail("convention", "must be standard or nac-opt, got the value " + std::to_string(int(convention)));
}

} // namespace braggnac::core
