#include "core/nn/torch_net.h"

#include <cmath>
#include <limits>
#include <mutex>

#include "core/common/error.h"

namespace braggnac::core {

namespace {

torch::nn::AnyModule makeModule(const PlanOp &op)
{
    switch (op.kind) {
    case OpKind::Conv:
        return torch::nn::AnyModule(torch::nn::Conv2d(
            torch::nn::Conv2dOptions(op.inChannels(), op.outChannels(), op.kernel).stride(1).padding(0).bias(true)));
    case OpKind::Linear:
        return torch::nn::AnyModule(torch::nn::Linear(op.inChannels(), op.outChannels()));
    case OpKind::BatchNorm:
        if (op.inShape.size() == 3)
            return torch::nn::AnyModule(torch::nn::BatchNorm2d(
                torch::nn::BatchNorm2dOptions(op.outChannels()).eps(op.eps)));
        return torch::nn::AnyModule(torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(op.outChannels()).eps(op.eps)));
    case OpKind::LayerNorm:
        return torch::nn::AnyModule(torch::nn::LayerNorm(torch::nn::LayerNormOptions(op.outShape).eps(op.eps)));
    case OpKind::Activation:
        switch (op.act) {
        case Activation::ReLU: return torch::nn::AnyModule(torch::nn::ReLU());
        case Activation::LeakyReLU:
            return torch::nn::AnyModule(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(op.slope)));
        case Activation::GELU: return torch::nn::AnyModule(torch::nn::GELU());
        case Activation::None: break;
        }
        break;
    case OpKind::MatMulQK:
    case OpKind::Softmax:
    case OpKind::MatMulSV:
    case OpKind::Add:
    case OpKind::Flatten: break;
    }
    return {};
}

std::string leafName(const PlanOp &op)
{
    return op.name.substr(op.unit.size() + 1);
}

} // namespace

// ---------------------------------------------------------------------------------------------

PlanUnitImpl::PlanUnitImpl(std::shared_ptr<const LayerPlan> plan, std::vector<int> ops)
    : m_plan(std::move(plan)), m_ops(std::move(ops))
{
    reset();
}

void PlanUnitImpl::reset()
{
    m_modules.clear();
    for (int i : m_ops) {
        const PlanOp &op = m_plan->ops[std::size_t(i)];
        torch::nn::AnyModule m = makeModule(op);
        if (!m.is_empty())
            register_module(leafName(op), m.ptr());
        m_modules.push_back(std::move(m));
    }
}

torch::Tensor PlanUnitImpl::forward(torch::Tensor x)
{
    const int64_t n = x.size(0);
    std::vector<torch::Tensor> values(m_ops.size());
    auto input = [&](int planIndex) -> const torch::Tensor & {
        for (std::size_t k = 0; k < m_ops.size(); ++k)
            if (m_ops[k] == planIndex)
                return values[k];
        return x; // the unit's one external input
    };
    for (std::size_t k = 0; k < m_ops.size(); ++k) {
        const PlanOp &op = m_plan->ops[std::size_t(m_ops[k])];
        const torch::Tensor &a = input(op.inputs[0]);
        switch (op.kind) {
        case OpKind::MatMulQK: {
            const int64_t h = op.attentionChannels, hw = op.outShape[0];
            auto theta = a.view({n, h, hw}).permute({0, 2, 1});   // [N, HW, h]
            auto phi = input(op.inputs[1]).view({n, h, hw});       // [N, h, HW]
            values[k] = torch::matmul(theta, phi);                // [N, HW, HW]
            break;
        }
        case OpKind::Softmax: values[k] = torch::softmax(a, -1); break;
        case OpKind::MatMulSV: {
            const int64_t h = op.outShape[0], hh = op.outShape[1], ww = op.outShape[2];
            auto g = input(op.inputs[1]).view({n, h, hh * ww}).permute({0, 2, 1}); // [N, HW, h]
            values[k] = torch::matmul(a, g).permute({0, 2, 1}).contiguous().view({n, h, hh, ww});
            break;
        }
        case OpKind::Add: values[k] = a + input(op.inputs[1]); break;
        case OpKind::Flatten: values[k] = a.flatten(1); break;
        default: values[k] = m_modules[k].forward(a); break;
        }
    }
    return values.back();
}

// ---------------------------------------------------------------------------------------------

PeakNetImpl::PeakNetImpl(ArchSpec spec) : m_spec(std::move(spec))
{
    m_plan = std::make_shared<const LayerPlan>(LayerPlan::lower(m_spec)); // validates
    reset();
}

void PeakNetImpl::reset()
{
    m_features = torch::nn::Sequential();
    m_head = torch::nn::Sequential();
    const auto &ops = m_plan->ops;
    for (std::size_t i = 0; i < ops.size();) {
        const PlanOp &op = ops[i];
        if (op.unit.empty()) { // flatten: done by forward()
            ++i;
            continue;
        }
        std::vector<int> unit;
        for (; i < ops.size() && ops[i].unit == op.unit; ++i)
            unit.push_back(int(i));
        const bool head = op.unit.rfind("head.", 0) == 0;
        torch::nn::Sequential &seq = head ? m_head : m_features;
        std::string child = op.unit.substr(head ? 5 : 9);
        if (unit.size() == 1 && op.name == op.unit) // "head.out": the module itself
            seq->push_back(std::move(child), makeModule(op));
        else
            seq->push_back(std::move(child), PlanUnit(m_plan, std::move(unit)));
    }
    register_module("features", m_features);
    register_module("head", m_head);
}

torch::Tensor PeakNetImpl::forward(torch::Tensor x)
{
    const int64_t s = m_spec.inputSize;
    if (x.dim() != 4 || x.size(1) != 1 || x.size(2) != s || x.size(3) != s)
        throw InputError("model input: expected [N, 1, " + std::to_string(s) + ", "
                         + std::to_string(s) + "] patches, got " + c10::str(x.sizes()));
    x = m_features->forward(x);
    x = x.flatten(1);
    return m_head->forward(x);
}

// ---------------------------------------------------------------------------------------------

torch::Tensor normalisePatches(const float *patches, std::size_t n, int size)
{
    const std::size_t area = std::size_t(size) * std::size_t(size);
    torch::Tensor out = torch::empty({int64_t(n), 1, int64_t(size), int64_t(size)}, torch::kFloat32);
    float *dst = out.data_ptr<float>();
    for (std::size_t i = 0; i < n; ++i) {
        const float *p = patches + i * area;
        float *q = dst + i * area;
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

torch::Device parseDevice(const std::string &name)
{
    if (name.empty() || name == "auto")
        return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    if (name == "cpu")
        return torch::Device(torch::kCPU);
    if (name.rfind("cuda", 0) == 0) {
        if (!torch::cuda::is_available())
            throw InputError("--device: '" + name + "' requested but this LibTorch sees no CUDA device");
        try {
            return torch::Device(name);
        } catch (const c10::Error &) {
            throw InputError("--device: malformed device '" + name + "' (expected cuda or cuda:N)");
        }
    }
    throw InputError("--device: unknown device '" + name + "' (expected auto, cpu, cuda or cuda:N)");
}

// ---------------------------------------------------------------------------------------------

namespace {
std::mutex &seedMutex()
{
    static std::mutex m;
    return m;
}
} // namespace

Model::Impl::Impl(const ArchSpec &s, std::uint64_t seed) : spec(s), net(nullptr), device(torch::kCPU)
{
    // The global generator is process-wide: serialise seeding + initialisation so that models
    // built concurrently (search workers) still get weights that depend only on their seed.
    std::lock_guard<std::mutex> lock(seedMutex());
    torch::manual_seed(seed);
    net = PeakNet(spec);
}

void Model::Impl::to(const torch::Device &target)
{
    net->to(target);
    device = target;
}

} // namespace braggnac::core

namespace braggnac::core {

PeakNet clonePeakNet(const PeakNet &net)
{
    // clone() calls reset(), which re-initialises every layer from torch's global generator
    // before the values are copied over: hold the seeding lock so a concurrent Model(spec, seed)
    // does not lose draws to this clone (its weights must depend only on its seed).
    std::lock_guard<std::mutex> lock(seedMutex());
    auto copy = std::dynamic_pointer_cast<PeakNetImpl>(net->clone());
    copy->train(net->is_training());
    return PeakNet(copy);
}

} // namespace braggnac::core
