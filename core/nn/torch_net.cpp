#include "core/nn/torch_net.h"

#include <cmath>
#include <limits>
#include <mutex>

#include "core/common/error.h"

namespace braggnac::core {

namespace {

torch::nn::AnyModule makeActivation(torch::nn::Module &owner, Activation act)
{
    switch (act) {
    case Activation::ReLU:
        return torch::nn::AnyModule(owner.register_module("act", torch::nn::ReLU()));
    case Activation::LeakyReLU:
        return torch::nn::AnyModule(owner.register_module(
            "act", torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.01))));
    case Activation::GELU:
        return torch::nn::AnyModule(owner.register_module("act", torch::nn::GELU()));
    case Activation::None:
        break;
    }
    return {};
}

} // namespace

// ---------------------------------------------------------------------------------------------

ConvUnitImpl::ConvUnitImpl(int inChannels, int inSize, const ConvLayerSpec &layer, int kernel)
    : m_inChannels(inChannels), m_inSize(inSize), m_layer(layer), m_kernel(kernel)
{
    reset();
}

void ConvUnitImpl::reset()
{
    m_bn = nullptr;
    m_ln = nullptr;
    m_act = {};
    m_conv = register_module(
        "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(m_inChannels, m_layer.channels, m_kernel)
                                      .stride(1)
                                      .padding(0)
                                      .bias(true)));
    const int out = m_inSize - m_kernel + 1;
    if (m_layer.norm == Norm::Batch)
        m_bn = register_module("norm", torch::nn::BatchNorm2d(m_layer.channels));
    else if (m_layer.norm == Norm::Layer)
        m_ln = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions(
                                           {int64_t(m_layer.channels), int64_t(out), int64_t(out)})));
    m_act = makeActivation(*this, m_layer.act);
}

torch::Tensor ConvUnitImpl::forward(torch::Tensor x)
{
    x = m_conv->forward(x);
    if (m_bn)
        x = m_bn->forward(x);
    else if (m_ln)
        x = m_ln->forward(x);
    if (!m_act.is_empty())
        x = m_act.forward(x);
    return x;
}

// ---------------------------------------------------------------------------------------------

NonLocalBlockImpl::NonLocalBlockImpl(int channels, int attentionChannels, Activation act)
    : m_channels(channels), m_h(attentionChannels), m_actKind(act)
{
    reset();
}

void NonLocalBlockImpl::reset()
{
    m_act = {};
    auto conv1 = [](int in, int out) {
        return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(1).padding(0).bias(true));
    };
    m_theta = register_module("theta", conv1(m_channels, m_h));
    m_phi = register_module("phi", conv1(m_channels, m_h));
    m_g = register_module("g", conv1(m_channels, m_h));
    m_out = register_module("out", conv1(m_h, m_channels));
    m_act = makeActivation(*this, m_actKind);
}

torch::Tensor NonLocalBlockImpl::forward(torch::Tensor x)
{
    const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
    auto theta = m_theta->forward(x).view({n, m_h, h * w}).permute({0, 2, 1}); // [N, HW, h]
    auto phi = m_phi->forward(x).view({n, m_h, h * w});                          // [N, h, HW]
    auto g = m_g->forward(x).view({n, m_h, h * w}).permute({0, 2, 1});          // [N, HW, h]
    auto att = torch::softmax(torch::matmul(theta, phi), -1);                   // [N, HW, HW]
    auto y = torch::matmul(att, g).permute({0, 2, 1}).contiguous().view({n, m_h, h, w});
    auto out = m_out->forward(y) + x;
    if (!m_act.is_empty())
        out = m_act.forward(out);
    return out;
}

// ---------------------------------------------------------------------------------------------

DenseUnitImpl::DenseUnitImpl(int inFeatures, const DenseLayerSpec &layer)
    : m_in(inFeatures), m_layer(layer)
{
    reset();
}

void DenseUnitImpl::reset()
{
    m_bn = nullptr;
    m_ln = nullptr;
    m_act = {};
    m_linear = register_module("linear", torch::nn::Linear(m_in, m_layer.width));
    if (m_layer.norm == Norm::Batch)
        m_bn = register_module("norm", torch::nn::BatchNorm1d(m_layer.width));
    else if (m_layer.norm == Norm::Layer)
        m_ln = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({int64_t(m_layer.width)})));
    m_act = makeActivation(*this, m_layer.act);
}

torch::Tensor DenseUnitImpl::forward(torch::Tensor x)
{
    x = m_linear->forward(x);
    if (m_bn)
        x = m_bn->forward(x);
    else if (m_ln)
        x = m_ln->forward(x);
    if (!m_act.is_empty())
        x = m_act.forward(x);
    return x;
}

// ---------------------------------------------------------------------------------------------

PeakNetImpl::PeakNetImpl(ArchSpec spec) : m_spec(std::move(spec))
{
    m_spec.shapes(); // validates (throws InputError naming the field)
    reset();
}

void PeakNetImpl::reset()
{
    const auto shapes = m_spec.shapes();
    std::size_t si = 0; // index into shapes, in the same order as shapes() produces them
    m_features = torch::nn::Sequential();
    int channels = 1;
    int size = m_spec.inputSize;
    {
        const auto &sh = shapes[si++];
        m_features->push_back("stem", ConvUnit(channels, size, m_spec.stem, sh.kernel));
        channels = sh.channels;
        size = sh.size;
    }
    for (std::size_t i = 0; i < m_spec.blocks.size(); ++i) {
        const BlockSpec &b = m_spec.blocks[i];
        if (b.type == BlockType::Conv) {
            for (std::size_t k = 0; k < b.layers.size(); ++k) {
                const auto &sh = shapes[si++];
                m_features->push_back("b" + std::to_string(i) + "_l" + std::to_string(k),
                                      ConvUnit(channels, size, b.layers[k], sh.kernel));
                channels = sh.channels;
                size = sh.size;
            }
        } else if (b.type == BlockType::ConvAttention) {
            ++si;
            m_features->push_back("b" + std::to_string(i),
                                  NonLocalBlock(channels, b.attentionChannels, b.act));
        }
    }
    register_module("features", m_features);

    m_head = torch::nn::Sequential();
    int features = channels * size * size;
    for (std::size_t k = 0; k < m_spec.head.size(); ++k) {
        m_head->push_back("h" + std::to_string(k), DenseUnit(features, m_spec.head[k]));
        features = m_spec.head[k].width;
    }
    m_head->push_back("out", torch::nn::Linear(features, 2));
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
