#include "core/cost/cost.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/common/error.h"

namespace braggnac::core {

namespace {

/// Batch size the NAC code multiplies into the attention softmax term (its input_shape[0]).
constexpr double kNacBatch = 256;

class Counter {
public:
    Counter(const CostOptions &o)
        : m_o(o), m_ba(o.activationBits), m_bw(o.weightBits), m_s(o.sparsity),
          m_nac(o.convention == CostConvention::NacOpt)
    {
    }

    Cost result() const { return m_cost; }

    /// Conv (valid, stride 1). `counted` = false: the NAC rules skip this layer's BOPs (stem).
    void conv(const std::string &name, std::int64_t cin, std::int64_t cout, std::int64_t k,
              std::int64_t outSize, bool counted = true)
    {
        LayerCost l{name, "conv", cout * cin * k * k + cout, cout * outSize * outSize * cin * k * k, 0};
        if (m_nac) {
            // NAC: out * in * k^4 * [(1-s) ba bw + ba + bw + log2(in * k^4)], no output positions.
            const double k4 = double(k) * k * k * k;
            l.bops = counted ? double(cout) * cin * k4 * weightTerm(std::log2(double(cin) * k4)) : 0;
        } else {
            l.bops = double(l.macs) * weightTerm(std::log2(double(cin * k * k)));
        }
        add(l);
    }

    void linear(const std::string &name, std::int64_t in, std::int64_t out)
    {
        LayerCost l{name, "linear", in * out + out, in * out, 0};
        l.bops = double(l.macs) * weightTerm(std::log2(double(in)));
        add(l);
    }

    /// Norm over `n` elements per sample; `channels` = BatchNorm features (NAC counts 2C).
    void norm(const std::string &name, Norm kind, std::int64_t n, std::int64_t channels, bool nacCounted)
    {
        if (kind == Norm::None)
            return;
        LayerCost l;
        l.name = name;
        if (kind == Norm::Batch) {
            // Inference: folded scale and shift, one MAC per element (fan-in 1).
            l.kind = "batchnorm";
            l.params = 2 * channels;
            l.macs = n;
            l.bops = m_nac ? (nacCounted ? 2.0 * channels : 0.0) : double(n) * (m_ba * m_bw + m_ba + m_bw);
        } else {
            // Statistics: sum x and sum x^2 over n (fan-in n); normalise (x - mu) * rstd; affine.
            l.kind = "layernorm";
            l.params = 2 * n;
            l.macs = 4 * n;
            l.bops = m_nac ? 0.0
                           : 2.0 * n * actTerm(std::log2(double(n))) + double(n) * actTerm(0)
                    + double(n) * (m_ba * m_bw + m_ba + m_bw);
        }
        add(l);
    }

    /// Non-local block on a C x S x S map with h attention channels.
    void attention(const std::string &name, std::int64_t c, std::int64_t h, std::int64_t size)
    {
        const std::int64_t hw = size * size;
        conv(name + ".theta", c, h, 1, size);
        conv(name + ".phi", c, h, 1, size);
        conv(name + ".g", c, h, 1, size);
        const double b = m_ba;
        {
            LayerCost l{name + ".qk", "matmul", 0, hw * hw * h, 0};
            // NAC: seq_len = C (the block's input channels), embed = HW, no batch factor.
            l.bops = m_nac ? double(c) * c * hw * b * b + double(c) * c * (hw - 1) * b
                           : double(l.macs) * actTerm(std::log2(double(h)));
            add(l);
        }
        {
            LayerCost l{name + ".softmax", "softmax", 0, hw * hw, 0};
            // Standard: sum of HW exponentials (fan-in HW), then one multiply per score.
            l.bops = m_nac ? kNacBatch * hw * hw * 1.5 * (b - 1) + kNacBatch * hw * (hw - 1)
                    + kNacBatch * hw * hw
                           : double(l.macs) * actTerm(std::log2(double(hw)));
            add(l);
        }
        {
            LayerCost l{name + ".sv", "matmul", 0, hw * hw * h, 0};
            l.bops = m_nac ? double(hw) * hw * c * b * b + double(hw) * hw * (c - 1) * b
                           : double(l.macs) * actTerm(std::log2(double(hw)));
            add(l);
        }
        conv(name + ".out", h, c, 1, size);
        {
            LayerCost l{name + ".add", "add", 0, 0, 0};
            l.bops = m_nac ? 0.0 : double(c * hw) * b; // one b_a-bit addition per element
            add(l);
        }
    }

private:
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

    CostOptions m_o;
    double m_ba, m_bw, m_s;
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
    if (options.weightBits < 1 || options.weightBits > 64)
        throw InputError("--weight-bits: expected 1..64 (got " + std::to_string(options.weightBits) + ")");
    if (options.activationBits < 1 || options.activationBits > 64)
        throw InputError("--act-bits: expected 1..64 (got " + std::to_string(options.activationBits) + ")");
    if (!(options.sparsity >= 0 && options.sparsity < 1))
        throw InputError("--sparsity: expected a fraction in [0, 1) (got " + std::to_string(options.sparsity) + ")");

    const auto shapes = spec.shapes(); // validates
    Counter c(options);
    std::size_t si = 0;
    int channels = 1, size = spec.inputSize;
    auto convLayer = [&](const ConvLayerSpec &l, bool counted) {
        const auto &sh = shapes[si++];
        c.conv(sh.field, channels, sh.channels, sh.kernel, sh.size, counted);
        channels = sh.channels;
        size = sh.size;
        // NAC counts 2C for a BatchNorm inside a conv block (not after the stem: stem not counted).
        c.norm(sh.field + ".norm", l.norm, std::int64_t(channels) * size * size, channels, counted);
    };
    convLayer(spec.stem, false);
    for (const auto &b : spec.blocks) {
        if (b.type == BlockType::Conv) {
            for (const auto &l : b.layers)
                convLayer(l, true);
        } else if (b.type == BlockType::ConvAttention) {
            const auto &sh = shapes[si++];
            c.attention(sh.field, channels, b.attentionChannels, size);
        }
    }
    std::int64_t features = std::int64_t(channels) * size * size;
    for (const auto &d : spec.head) {
        const auto &sh = shapes[si++];
        c.linear(sh.field, features, d.width);
        c.norm(sh.field + ".norm", d.norm, d.width, d.width, false); // NAC's MLP counts Linear only
        features = d.width;
    }
    c.linear("output", features, 2);
    return c.result();
}

} // namespace braggnac::core
