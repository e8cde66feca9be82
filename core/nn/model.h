#pragma once
// A network built from an ArchSpec (LibTorch behind a pimpl: no torch headers here).
// Thread-safety: predict() may be called concurrently; training mutates the model.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"

namespace braggnac::core {

/// Sets LibTorch's intra-op threads (<= 0: all hardware threads) and configures the numeric
/// runtime (configureNumericRuntime).
void setTorchThreads(int threads);
/// "cuda" when this LibTorch build sees a CUDA device, else "cpu".
std::string defaultDevice();
bool cudaAvailable();
/// LibTorch version string ("1.13.1").
std::string torchVersion();

class Model {
public:
    /// Builds the network with weights initialised from `seed`. Throws InputError on a bad spec.
    explicit Model(const ArchSpec &spec, std::uint64_t seed = 0);
    ~Model();
    Model(Model &&) noexcept;
    Model &operator=(Model &&) noexcept;

    const ArchSpec &spec() const;
    std::int64_t parameterCount() const;
    /// Every floating-point parameter and buffer (running mean / variance) as a CPU float copy,
    /// keyed by its state_dict name (the LayerPlan's PlanTensor keys). Torch-free view of the
    /// weights for the integer reference and the HLS writer.
    NamedTensors namedParameters() const;

    /// Predicted centres (row, col) in patch coordinates for n patches of S x S raw counts
    /// (normalised per patch inside, as in training): returns n * 2 floats. Inference mode.
    std::vector<float> predict(const float *patches, std::size_t n, int batchSize = 4096) const;

    /// Model folder (formats.md): spec.json, weights.pt, recipe.json, metrics.json,
    /// quantization.json (when set), model.json (index). Atomic (temporary folder, rename).
    void save(const std::string &folder) const;
    /// Throws InputError naming the folder and file when something is missing or mismatched.
    static Model load(const std::string &folder);
    /// TorchScript module (input [N,1,S,S] normalised, output [N,2] = centre / S) loadable by
    /// Python's torch.jit.load.
    void exportTorchScript(const std::string &path) const;

    /// Free-form JSON stored in the model folder.
    nlohmann::json recipe;        // training options and dataset description
    nlohmann::json metrics;       // evaluation results
    nlohmann::json quantization;  // null unless quantised

    struct Impl;
    Impl &impl() const { return *m_impl; }

private:
    std::unique_ptr<Impl> m_impl;
};

} // namespace braggnac::core
