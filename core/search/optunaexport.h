#pragma once
// Export of a study store into Optuna's own RDB storage (the SQLite schema of Optuna 3.1, alembic
// revision v3.0.0.d), so that optuna.load_study(study_name=..., storage="sqlite:///O.db"), its
// plots and optuna-dashboard open our searches. Mapping: docs/study-store.md ("Optuna export").
//
// Parameters: a trial's spec JSON is flattened into one parameter per leaf ("stem.channels",
// "blocks[0].type", "blocks[0].layers[1].kernel"), its hyper-parameters likewise ("lr",
// "optimizer"; prefixed "hparams." only when a name collides with a spec parameter). Each
// parameter's distribution is the caller's (OptunaExportOptions::distributions) when given, else
// a CategoricalDistribution over the values observed in the study, sorted.
//
// Errors: the output exists and overwrite is false, or a value lies outside a caller-supplied
// distribution -> InputError naming the file / parameter and trial; SQLite failures -> Error.
// The output is written to a temporary file and renamed: it appears complete or not at all.
// Thread-safety: reads the store through its public API (see studystore.h).
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/search/studystore.h"

namespace braggnac::core {

/// One of Optuna's distributions, serialised exactly as optuna.distributions.distribution_to_json.
struct OptunaDistribution {
    enum class Kind { Categorical, Float, Int };
    Kind kind = Kind::Categorical;
    nlohmann::json choices = nlohmann::json::array(); // Categorical: null/bool/number/string
    double low = 0, high = 0;  // Float and Int (inclusive)
    bool log = false;
    double step = 0;           // Float: 0 = continuous; Int: >= 1

    static OptunaDistribution categorical(nlohmann::json choices);
    static OptunaDistribution floating(double low, double high, bool log = false, double step = 0);
    static OptunaDistribution integer(long long low, long long high, bool log = false,
                                      long long step = 1);
    /// {"name": "CategoricalDistribution", "attributes": {"choices": [...]}} etc.
    nlohmann::json toJson() const;
    /// Optuna's internal value of v (the choice index for Categorical); throws InputError
    /// naming `what` when v is not in the distribution.
    double internalValue(const nlohmann::json &v, const std::string &what) const;
};

struct OptunaExportOptions {
    std::string studyName;  // "" = the study's own name
    bool overwrite = false; // replace an existing output file
    /// Distributions by parameter name; a parameter not listed is categorical over its
    /// observed values. The search space provides these (its choices per field).
    std::map<std::string, OptunaDistribution> distributions;
    /// Top-level spec keys that are not parameters (the spec's display name).
    std::vector<std::string> skipSpecKeys = {"name"};
};

struct OptunaExportSummary {
    int trials = 0;
    std::vector<std::string> params; // every parameter name written, sorted
};

/// The leaves of a JSON value as (path, value): objects "a.b", arrays "a[0]"; empty objects and
/// arrays have no leaves.
std::vector<std::pair<std::string, nlohmann::json>> flattenJson(const nlohmann::json &j,
                                                                const std::string &prefix = {});

/// The parameters of one trial (spec leaves, then hyper-parameter leaves), as exported.
std::vector<std::pair<std::string, nlohmann::json>>
optunaParams(const TrialRecord &trial, const OptunaExportOptions &options = {});

struct SpaceDefinition;
/// The distributions of every spec parameter a search space allows, named as optunaParams names
/// them (stem.*, blocks[i].type, blocks[i].layers[j].*, blocks[i].attention_channels,
/// blocks[i].act, head[k].*), as categoricals over the space's lists in file order: pass them as
/// OptunaExportOptions::distributions so that Optuna sees the whole space, not only the values
/// tried. Parameters whose list is empty are left out (observed values are used for them).
std::map<std::string, OptunaDistribution> optunaDistributions(const SpaceDefinition &space);

/// Writes store's study into a new Optuna SQLite storage at outPath.
OptunaExportSummary exportToOptuna(const StudyStore &store, const std::string &outPath,
                                   const OptunaExportOptions &options = {});

} // namespace braggnac::core
