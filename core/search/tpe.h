#pragma once
// Tree-structured Parzen estimator (Bergstra et al. 2011) for one minimised objective over a
// small hyper-parameter space, ask-and-tell, with Optuna 3.1's TPESampler defaults: the first
// startupTrials trials uniformly at random; then the told trials are split into the best
// gamma(n) = min(ceil(0.1 n), 25) ("below") and the rest ("above"); per parameter (univariate),
// a Parzen estimator of each group -- truncated Gaussians at the observations plus a prior
// (mid-range, sigma = range, weight priorWeight), sigmas from the neighbour gaps with the
// "magic clip" (at least range / min(100, 1 + kernels)), observation weights flat for the last
// 25 and ramping up before them; categoricals as smoothed counts -- and the candidate among
// eiCandidates draws from "below" with the largest log l(x) - log g(x). Log-scale floats are
// modelled in log space; integers as a grid of width 1. Pruned trials rank after every
// complete one (later step first, then value). Deterministic for a given seed and call order.
// Not thread-safe.
// MedianPruner: Optuna's MedianPruner(n_startup_trials=5, n_warmup_steps=0): at step k, prune a
// running trial whose best value so far is worse than the median of the completed trials'
// values at step k (trials that have no value at k do not count).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/nn/trainer.h" // TrainOptions only (a torch-free header); nothing here links nn
#include "core/search/random.h"

namespace braggnac::core {

struct HyperParam {
    enum class Kind { Categorical, Int, Float };
    std::string name;
    Kind kind = Kind::Float;
    std::vector<std::string> choices; // categorical
    double low = 0, high = 1;         // int / float, inclusive
    bool log = false;                 // float only: sampled and modelled in log space
};

/// A sampled value: `choice` for a categorical, `number` otherwise (an integer value for Int).
struct ParamValue {
    double number = 0;
    std::string choice;
    bool operator==(const ParamValue &o) const { return number == o.number && choice == o.choice; }
};
using ParamSet = std::map<std::string, ParamValue>;

/// {"params": [{"name": N, "type": "categorical", "choices": [...]} |
///             {"name": N, "type": "int" | "float", "low": L, "high": H, "log": bool}]}
/// Throws InputError("<source>: params[i].<field>: ...") on unknown keys, empty choices, bad
/// bounds, duplicate names.
std::vector<HyperParam> tuneSpaceFromJson(const nlohmann::json &j, const std::string &source = "tune space");
nlohmann::json tuneSpaceToJson(const std::vector<HyperParam> &space);
nlohmann::json paramSetToJson(const ParamSet &p);

struct TpeOptions {
    int startupTrials = 10;
    int eiCandidates = 24;
    double priorWeight = 1.0;
    bool magicClip = true;
    bool considerEndpoints = false;
    std::uint64_t seed = 0;
};

class TpeSampler {
public:
    /// Throws InputError on an empty space or invalid parameter definitions.
    TpeSampler(std::vector<HyperParam> space, TpeOptions options = {});

    ParamSet ask();
    /// A complete trial (value minimised, finite) or a pruned one (its last reported step and
    /// value). Parameters must cover the space (Error otherwise); failed trials are not told.
    void tell(const ParamSet &params, double value);
    void tellPruned(const ParamSet &params, int step, double value);

    std::size_t told() const { return m_trials.size(); }
    const std::vector<HyperParam> &space() const { return m_space; }

private:
    struct Trial {
        ParamSet params;
        double value;
        bool pruned;
        int step;
    };
    ParamValue sampleRandom(const HyperParam &p);
    ParamValue sampleTpe(const HyperParam &p, const std::vector<const Trial *> &below,
                         const std::vector<const Trial *> &above);
    void check(const ParamSet &params) const;

    std::vector<HyperParam> m_space;
    TpeOptions m_options;
    SearchRandom m_rng;
    std::vector<Trial> m_trials; // told order
};

class MedianPruner {
public:
    explicit MedianPruner(int startupTrials = 5, int warmupSteps = 0);
    /// Per-step values (index = step, 0-based, e.g. epoch - 1) of a completed trial.
    void addCompleted(const std::vector<double> &values);
    /// valuesSoFar: the running trial's values at steps 0..k; decides at step k.
    bool shouldPrune(const std::vector<double> &valuesSoFar) const;
    std::size_t completed() const { return m_completed.size(); }

private:
    int m_startup;
    int m_warmup;
    std::vector<std::vector<double>> m_completed;
};

/// The training hyper-parameters `braggnac tune` searches (defaultTuneSpace()), and their
/// mapping onto TrainOptions (the other TrainOptions fields are kept).
struct HyperParams {
    std::string optimizer = "rmsprop"; // adam | rmsprop | sgd
    double learningRate = 1.5e-3;
    double weightDecay = 2.2e-9;
    double momentum = 0.9;             // sgd momentum (unused by adam and rmsprop)
    std::string schedule = "cosine";   // cosine | step | exponential | none
    int batchSize = 256;

    /// From a ParamSet over defaultTuneSpace() (or any space naming these parameters: absent
    /// ones keep their defaults). Throws InputError on a non-numeric batch_size choice.
    static HyperParams fromParams(const ParamSet &p);
    nlohmann::json toJson() const;
};

/// optimizer {adam, rmsprop, sgd}; learning_rate log [1e-4, 3e-2]; weight_decay log
/// [1e-10, 1e-3]; momentum [0.5, 0.99]; schedule {cosine, step, exponential, none};
/// batch_size {64, 128, 256, 512}.
std::vector<HyperParam> defaultTuneSpace();

inline TrainOptions applyHyperParams(TrainOptions base, const HyperParams &h)
{
    base.optimizer = h.optimizer;
    base.learningRate = h.learningRate;
    base.weightDecay = h.weightDecay;
    base.momentum = h.momentum;
    base.schedule = h.schedule;
    base.batchSize = h.batchSize;
    return base;
}

} // namespace braggnac::core
