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
#include <vector>

#include <torch/torch.h>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/nn/model.h"

namespace braggnac::core {

/// The torch modules of one plan unit (LayerPlan ops sharing PlanOp::unit, e.g. "features.stem"
/// or "features.b0"): one submodule per op that has one, registered under the op name's last
/// part ("conv", "norm", "act", "theta", "phi", "g", "out", "linear"), so the state_dict keys are
/// the plan's PlanTensor keys. forward() runs the unit's ops in plan order; the unit has exactly
/// one external input (the previous unit's output).
class PlanUnitImpl : public torch::nn::Cloneable<PlanUnitImpl> {
public:
    PlanUnitImpl(std::shared_ptr<const LayerPlan> plan, std::vector<int> ops);
    void reset() override;
    torch::Tensor forward(torch::Tensor x); // [N, in...] -> [N, out...] (PlanOp shapes)

private:
    std::shared_ptr<const LayerPlan> m_plan;
    std::vector<int> m_ops;                      // plan op indices, in order
    std::vector<torch::nn::AnyModule> m_modules; // per op; empty for module-less ops
};
TORCH_MODULE(PlanUnit);

/// The whole network, built from the spec's LayerPlan: "features" (Sequential of the plan's
/// "features.*" units) -> flatten -> "head" (Sequential of the "head.h<k>" units, then the "out"
/// linear to 2). Parameter names are the plan's keys, e.g. "features.stem.conv.weight",
/// "features.b1_l0.norm.weight", "head.out.bias".
class PeakNetImpl : public torch::nn::Cloneable<PeakNetImpl> {
public:
    /// Throws InputError for an invalid spec (ArchSpec::shapes()).
    explicit PeakNetImpl(ArchSpec spec);
    void reset() override;
    /// x: [N, 1, S, S] normalised patches -> [N, 2] = centre / S.
    torch::Tensor forward(torch::Tensor x);
    const ArchSpec &spec() const { return m_spec; }
    const LayerPlan &plan() const { return *m_plan; }

private:
    ArchSpec m_spec;
    std::shared_ptr<const LayerPlan> m_plan;
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
