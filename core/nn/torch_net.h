#pragma once
// INTERNAL: the LibTorch network built from an ArchSpec. Include only from core/nn/*.cpp (and
// tests that link torch themselves); never from a public header (torch and Qt's keywords clash,
// and a torch TU costs ~10 s to compile).
//
// Contract with the trainer (stable):
//  - PeakNet(spec) builds every layer with register_module; initial weights come from torch's
//    global generator, so call torch::manual_seed(seed) first (Model(spec, seed) does).
//  - forward(x): x [N, 1, S, S] float, min-max normalised per patch (normalisePatches) ->
//    [N, 2] = centre (row, col) / S. Training mode (train()/eval()) affects BatchNorm only.
//  - PeakNet is Cloneable: net->clone() deep-copies parameters and buffers (best-epoch snapshot).
//  - Model::Impl holds spec, net and device; Model::Impl::to(device) moves the net.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <torch/torch.h>

#include "core/arch/archspec.h"
#include "core/nn/model.h"

namespace braggnac::core {

/// conv (valid, stride 1) -> optional norm (BatchNorm2d, or LayerNorm over [C, H, W]) -> act.
/// Submodules: "conv", "norm" (when any), "act" (when any).
class ConvUnitImpl : public torch::nn::Cloneable<ConvUnitImpl> {
public:
    /// `kernel` is the effective kernel (ArchSpec::shapes(), after forceOneByOne).
    ConvUnitImpl(int inChannels, int inSize, const ConvLayerSpec &layer, int kernel);
    void reset() override;
    torch::Tensor forward(torch::Tensor x); // [N, Cin, H, H] -> [N, Cout, H-k+1, H-k+1]

private:
    int m_inChannels, m_inSize;
    ConvLayerSpec m_layer;
    int m_kernel;
    torch::nn::Conv2d m_conv{nullptr};
    torch::nn::BatchNorm2d m_bn{nullptr};
    torch::nn::LayerNorm m_ln{nullptr};
    torch::nn::AnyModule m_act;
};
TORCH_MODULE(ConvUnit);

/// Non-local block (BraggNN's NLB): 1x1 "theta", "phi", "g" to h channels, softmax over positions
/// of theta^T phi, times g, 1x1 "out" back to C, residual add, then the optional "act".
class NonLocalBlockImpl : public torch::nn::Cloneable<NonLocalBlockImpl> {
public:
    NonLocalBlockImpl(int channels, int attentionChannels, Activation act);
    void reset() override;
    torch::Tensor forward(torch::Tensor x); // [N, C, H, W] -> [N, C, H, W]

private:
    int m_channels, m_h;
    Activation m_actKind;
    torch::nn::Conv2d m_theta{nullptr}, m_phi{nullptr}, m_g{nullptr}, m_out{nullptr};
    torch::nn::AnyModule m_act;
};
TORCH_MODULE(NonLocalBlock);

/// linear -> optional norm (LayerNorm or BatchNorm1d) -> act. Submodules "linear", "norm", "act".
class DenseUnitImpl : public torch::nn::Cloneable<DenseUnitImpl> {
public:
    DenseUnitImpl(int inFeatures, const DenseLayerSpec &layer);
    void reset() override;
    torch::Tensor forward(torch::Tensor x); // [N, in] -> [N, width]

private:
    int m_in;
    DenseLayerSpec m_layer;
    torch::nn::Linear m_linear{nullptr};
    torch::nn::BatchNorm1d m_bn{nullptr};
    torch::nn::LayerNorm m_ln{nullptr};
    torch::nn::AnyModule m_act;
};
TORCH_MODULE(DenseUnit);

/// The whole network: "features" (Sequential: "stem", "b<i>" for attention blocks,
/// "b<i>_l<j>" for conv layers) -> flatten -> "head" (Sequential: "h<k>" dense units, "out"
/// linear to 2). Parameter names are therefore e.g. "features.stem.conv.weight",
/// "features.b1_l0.norm.weight", "head.out.bias".
class PeakNetImpl : public torch::nn::Cloneable<PeakNetImpl> {
public:
    /// Throws InputError for an invalid spec (ArchSpec::shapes()).
    explicit PeakNetImpl(ArchSpec spec);
    void reset() override;
    /// x: [N, 1, S, S] normalised patches -> [N, 2] = centre / S.
    torch::Tensor forward(torch::Tensor x);
    const ArchSpec &spec() const { return m_spec; }

private:
    ArchSpec m_spec;
    torch::nn::Sequential m_features{nullptr};
    torch::nn::Sequential m_head{nullptr};
};
TORCH_MODULE(PeakNet);

/// Deep copy (parameters and buffers, same device, same train/eval mode).
PeakNet clonePeakNet(const PeakNet &net);

/// n patches of size x size raw counts -> [n, 1, size, size] float (CPU), each patch mapped to
/// [0, 1] by (p - min) / (max - min). A constant patch (or one whose finite values are constant)
/// gives zeros; NaN / inf pixels are ignored for min/max and become 0.
torch::Tensor normalisePatches(const float *patches, std::size_t n, int size);

/// "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:N". Throws InputError otherwise
/// or when cuda is requested but not available.
torch::Device parseDevice(const std::string &name);

struct Model::Impl {
    ArchSpec spec;
    PeakNet net;
    torch::Device device;
    /// Held by Model::predict while it switches a training-mode net to eval() and back, so
    /// concurrent predictions never see (or restore) each other's mode.
    std::mutex modeMutex;

    /// torch::manual_seed(seed), then builds the net on the CPU.
    Impl(const ArchSpec &spec, std::uint64_t seed);
    /// Moves the net (parameters and buffers) to `device`.
    void to(const torch::Device &target);
};

} // namespace braggnac::core
