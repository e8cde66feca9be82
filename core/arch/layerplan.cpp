#include "core/arch/layerplan.h"

namespace braggnac::core {

const char *opKindName(OpKind k)
{
    switch (k) {
    case OpKind::Conv: return "conv";
    case OpKind::Linear: return "linear";
    case OpKind::BatchNorm: return "batchnorm";
    case OpKind::LayerNorm: return "layernorm";
    case OpKind::Activation: return "activation";
    case OpKind::MatMulQK: return "matmul-qk";
    case OpKind::Softmax: return "softmax";
    case OpKind::MatMulSV: return "matmul-sv";
    case OpKind::Add: return "add";
    case OpKind::Flatten: return "flatten";
    }
    return "?";
}

std::int64_t PlanTensor::numel() const
{
    std::int64_t n = 1;
    for (auto d : shape)
        n *= d;
    return n;
}

namespace {

std::int64_t product(const std::vector<std::int64_t> &s)
{
    std::int64_t n = 1;
    for (auto d : s)
        n *= d;
    return n;
}

class Lowering {
public:
    explicit Lowering(LayerPlan &plan) : m_plan(plan) {}

    int last() const { return int(m_plan.ops.size()) - 1; }
    const std::vector<std::int64_t> &shapeOf(int op) const
    {
        return op < 0 ? m_input : m_plan.ops[std::size_t(op)].outShape;
    }
    void setInput(std::vector<std::int64_t> s) { m_input = std::move(s); }

    PlanOp &add(OpKind kind, const std::string &name, const std::string &unit, const std::string &field,
                const std::string &label, PlanSection section, std::vector<int> inputs,
                std::vector<std::int64_t> out)
    {
        PlanOp op;
        op.kind = kind;
        op.name = name;
        op.unit = unit;
        op.field = field;
        op.label = label;
        op.section = section;
        op.inShape = shapeOf(inputs.empty() ? -1 : inputs[0]);
        op.inputs = std::move(inputs);
        op.outShape = std::move(out);
        m_plan.ops.push_back(std::move(op));
        return m_plan.ops.back();
    }

    static void param(PlanOp &op, const std::string &suffix, std::vector<std::int64_t> shape)
    {
        PlanTensor t{op.name + "." + suffix, std::move(shape), false, false};
        op.params += t.numel();
        op.tensors.push_back(std::move(t));
    }
    static void buffer(PlanOp &op, const std::string &suffix, std::vector<std::int64_t> shape, bool integer)
    {
        op.tensors.push_back(PlanTensor{op.name + "." + suffix, std::move(shape), true, integer});
    }

    void conv(const std::string &name, const std::string &unit, const std::string &field,
              const std::string &label, PlanSection section, int input, std::int64_t cout, int k)
    {
        const auto &in = shapeOf(input);
        const std::int64_t cin = in[0], size = in[1] - k + 1;
        PlanOp &op = add(OpKind::Conv, name, unit, field, label, section, {input}, {cout, size, size});
        op.kernel = k;
        param(op, "weight", {cout, cin, k, k});
        param(op, "bias", {cout});
        op.macs = cout * size * size * cin * k * k;
    }

    void linear(const std::string &name, const std::string &unit, const std::string &field,
                PlanSection section, std::int64_t out)
    {
        const int input = last();
        const std::int64_t in = shapeOf(input)[0];
        PlanOp &op = add(OpKind::Linear, name, unit, field, field, section, {input}, {out});
        param(op, "weight", {out, in});
        param(op, "bias", {out});
        op.macs = in * out;
    }

    void norm(Norm kind, const std::string &unit, const std::string &field, PlanSection section)
    {
        if (kind == Norm::None)
            return;
        const int input = last();
        const auto shape = shapeOf(input);
        const std::int64_t n = product(shape);
        PlanOp &op = add(kind == Norm::Batch ? OpKind::BatchNorm : OpKind::LayerNorm, unit + ".norm", unit,
                         field, field + ".norm", section, {input}, shape);
        if (kind == Norm::Batch) {
            const std::int64_t c = shape[0];
            param(op, "weight", {c});
            param(op, "bias", {c});
            buffer(op, "running_mean", {c}, false);
            buffer(op, "running_var", {c}, false);
            buffer(op, "num_batches_tracked", {}, true);
            op.macs = n;
        } else {
            param(op, "weight", shape);
            param(op, "bias", shape);
            op.macs = 4 * n;
        }
    }

    void activation(Activation act, const std::string &unit, const std::string &field, PlanSection section)
    {
        if (act == Activation::None)
            return;
        const int input = last();
        PlanOp &op = add(OpKind::Activation, unit + ".act", unit, field, field + ".act", section, {input},
                         shapeOf(input));
        op.act = act;
    }

    void convLayer(const ConvLayerSpec &l, const ArchSpec::Shape &sh, const std::string &unit,
                   PlanSection section)
    {
        conv(unit + ".conv", unit, sh.field, sh.field, section, last(), l.channels, sh.kernel);
        norm(l.norm, unit, sh.field, section);
        activation(l.act, unit, sh.field, section);
    }

    void attention(const BlockSpec &b, const std::string &unit, const std::string &field)
    {
        const int x = last();
        const auto in = shapeOf(x);
        const std::int64_t c = in[0], hh = in[1], ww = in[2], hw = hh * ww, h = b.attentionChannels;
        const auto sec = PlanSection::Blocks;
        auto tag = [&](PlanOp &op) {
            op.blockChannels = int(c);
            op.attentionChannels = int(h);
        };
        conv(unit + ".theta", unit, field, field + ".theta", sec, x, h, 1);
        const int theta = last();
        tag(m_plan.ops.back());
        conv(unit + ".phi", unit, field, field + ".phi", sec, x, h, 1);
        const int phi = last();
        tag(m_plan.ops.back());
        conv(unit + ".g", unit, field, field + ".g", sec, x, h, 1);
        const int g = last();
        tag(m_plan.ops.back());
        {
            PlanOp &op = add(OpKind::MatMulQK, unit + ".qk", unit, field, field + ".qk", sec, {theta, phi}, {hw, hw});
            op.macs = hw * hw * h;
            tag(op);
        }
        {
            const int qk = last();
            PlanOp &op = add(OpKind::Softmax, unit + ".softmax", unit, field, field + ".softmax", sec, {qk}, {hw, hw});
            op.macs = hw * hw;
            tag(op);
        }
        {
            const int sm = last();
            PlanOp &op = add(OpKind::MatMulSV, unit + ".sv", unit, field, field + ".sv", sec, {sm, g}, {h, hh, ww});
            op.macs = hw * hw * h;
            tag(op);
        }
        conv(unit + ".out", unit, field, field + ".out", sec, last(), c, 1);
        tag(m_plan.ops.back());
        {
            const int out = last();
            PlanOp &op = add(OpKind::Add, unit + ".add", unit, field, field + ".add", sec, {out, x}, in);
            tag(op);
        }
        activation(b.act, unit, field, sec);
    }

private:
    LayerPlan &m_plan;
    std::vector<std::int64_t> m_input;
};

} // namespace

std::int64_t PlanOp::inElements() const
{
    return product(inShape);
}

std::int64_t PlanOp::outElements() const
{
    return product(outShape);
}

const PlanTensor *PlanOp::tensor(const std::string &suffix) const
{
    const std::string key = name + "." + suffix;
    for (const auto &t : tensors)
        if (t.key == key)
            return &t;
    return nullptr;
}

LayerPlan LayerPlan::lower(const ArchSpec &spec)
{
    const auto shapes = spec.shapes(); // validates
    LayerPlan plan;
    plan.spec = spec;
    Lowering low(plan);
    low.setInput({1, spec.inputSize, spec.inputSize});
    std::size_t si = 0;
    low.convLayer(spec.stem, shapes[si++], "features.stem", PlanSection::Stem);
    for (std::size_t i = 0; i < spec.blocks.size(); ++i) {
        const BlockSpec &b = spec.blocks[i];
        const std::string bi = "b" + std::to_string(i);
        if (b.type == BlockType::Conv) {
            for (std::size_t k = 0; k < b.layers.size(); ++k)
                low.convLayer(b.layers[k], shapes[si++], "features." + bi + "_l" + std::to_string(k),
                              PlanSection::Blocks);
        } else if (b.type == BlockType::ConvAttention) {
            low.attention(b, "features." + bi, shapes[si++].field);
        }
    }
    {
        const int input = low.last();
        const std::int64_t n = product(low.shapeOf(input));
        low.add(OpKind::Flatten, "flatten", "", "flatten", "flatten", PlanSection::Head, {input}, {n});
    }
    for (std::size_t k = 0; k < spec.head.size(); ++k) {
        const auto &d = spec.head[k];
        const auto &sh = shapes[si++];
        const std::string unit = "head.h" + std::to_string(k);
        low.linear(unit + ".linear", unit, sh.field, PlanSection::Head, d.width);
        low.norm(d.norm, unit, sh.field, PlanSection::Head);
        low.activation(d.act, unit, sh.field, PlanSection::Head);
    }
    low.linear("head.out", "head.out", "output", PlanSection::Head, 2);
    return plan;
}

std::int64_t LayerPlan::params() const
{
    std::int64_t n = 0;
    for (const auto &op : ops)
        n += op.params;
    return n;
}

std::int64_t LayerPlan::macs() const
{
    std::int64_t n = 0;
    for (const auto &op : ops)
        n += op.macs;
    return n;
}

int LayerPlan::find(const std::string &name) const
{
    for (std::size_t i = 0; i < ops.size(); ++i)
        if (ops[i].name == name)
            return int(i);
    return -1;
}

std::vector<PlanTensor> LayerPlan::tensors() const
{
    std::vector<PlanTensor> out;
    for (const auto &op : ops)
        out.insert(out.end(), op.tensors.begin(), op.tensors.end());
    return out;
}

} // namespace braggnac::core
