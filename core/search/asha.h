#pragma once
// Asynchronous successive halving (ASHA, Li et al. 2020) over training epochs, as a decision
// rule the search driver asks after every epoch of a trial. Values are minimised (validation
// distance: pass the trial's best value up to that epoch, as early stopping keeps the best
// model).
//   Rungs at increasing epoch counts (default 2, 6, 18) and a reduction factor eta (default 3).
//   When a trial reaches a rung, its value joins that rung's record, and it continues iff it is
//   within the best 1/eta of every value recorded at the rung so far, itself included: with n
//   values, iff value <= the (floor(n / eta))-th smallest, or, while n < eta, iff it is the
//   smallest yet (Optuna's SuccessiveHalvingPruner rule: trials cannot be paused and resumed,
//   so early trials are promoted only when they lead). Epochs between rungs always continue.
// A trial's fidelity level (level()) is the number of rungs it passed when ASHA stopped it,
// and the full level otherwise; the Pareto front of a study is computed only among the trials
// of the highest level reached (highestFidelity). Not thread-safe.
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace braggnac::core {

struct AshaOptions {
    std::vector<int> rungs{2, 6, 18}; // epochs, strictly increasing, >= 1
    int reductionFactor = 3;          // >= 2
};

class Asha {
public:
    /// Throws InputError naming the field ("asha.rungs", "asha.reduction_factor") when invalid.
    explicit Asha(AshaOptions options = {});

    /// After epoch `epoch` (1-based) of trial `trial`: true = keep training, false = stop it now.
    /// Reporting the same trial at the same rung twice keeps the first value (idempotent for
    /// resumed studies).
    bool report(const std::string &trial, int epoch, double value);
    /// Rung records from a stored study (resume); no decision.
    void restore(const std::string &trial, int epoch, double value);

    /// Highest rung (epochs) the trial reached, 0 if none.
    int rungReached(const std::string &trial) const;
    /// Fidelity level for ranking and for the front: the number of rungs the trial passed if
    /// ASHA stopped it (0 = stopped at the first rung), else rungs.size() -- a trial ASHA never
    /// stopped has full fidelity, whether it trained every epoch or its own early stopping
    /// (patience) ended it. Use this, not raw epochs, as NSGA-II's fidelity and for
    /// highestFidelity() when trials can stop early for other reasons.
    int level(const std::string &trial) const;
    bool stopped(const std::string &trial) const { return m_stopped.count(trial) > 0; }
    /// Values recorded at a rung (epochs), in report order.
    std::vector<double> rungValues(int rungEpochs) const;
    const AshaOptions &options() const { return m_options; }

    /// Indices of the entries whose fidelity (epochs trained) equals the largest one present.
    static std::vector<std::size_t> highestFidelity(const std::vector<int> &fidelities);

private:
    AshaOptions m_options;
    std::map<int, std::vector<std::pair<std::string, double>>> m_rungs; // epochs -> (trial, value)
    std::map<std::string, int> m_reached;
    std::map<std::string, int> m_passed;
    std::map<std::string, bool> m_stopped;
};

} // namespace braggnac::core
