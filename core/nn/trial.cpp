#include "core/nn/trial.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <utility>

#include "core/common/error.h"

namespace braggnac::core {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0)
{
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string field(const std::string &source, const std::string &name)
{
    return source + ": " + name;
}

const nlohmann::json &member(const nlohmann::json &j, const char *key, const std::string &source)
{
    if (!j.is_object())
        throw InputError(source + ": expected a JSON object");
    const auto it = j.find(key);
    if (it == j.end())
        throw InputError(field(source, key) + ": missing");
    return *it;
}

/// A number, or null for a non-finite one (JSON has no NaN / inf).
nlohmann::json finiteOrNull(double v)
{
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

double readNumber(const nlohmann::json &j, const char *key, const std::string &source,
                  bool nullable = false)
{
    const nlohmann::json &v = member(j, key, source);
    if (nullable && v.is_null())
        return std::numeric_limits<double>::quiet_NaN();
    if (!v.is_number())
        throw InputError(field(source, key) + ": expected a number, got " + v.dump());
    return v.get<double>();
}

template <typename Int>
Int readInt(const nlohmann::json &j, const char *key, const std::string &source)
{
    const nlohmann::json &v = member(j, key, source);
    if (!v.is_number_integer())
        throw InputError(field(source, key) + ": expected an integer, got " + v.dump());
    return v.get<Int>();
}

std::string readString(const nlohmann::json &j, const char *key, const std::string &source)
{
    const nlohmann::json &v = member(j, key, source);
    if (!v.is_string())
        throw InputError(field(source, key) + ": expected a string, got " + v.dump());
    return v.get<std::string>();
}

nlohmann::json statsJson(const DistanceStats &s)
{
    return {{"n", s.n},
            {"mean", finiteOrNull(s.mean)},
            {"p50", finiteOrNull(s.p50)},
            {"p75", finiteOrNull(s.p75)},
            {"p95", finiteOrNull(s.p95)},
            {"max", finiteOrNull(s.max)}};
}

DistanceStats statsFromJson(const nlohmann::json &j, const std::string &source)
{
    DistanceStats s;
    s.n = readInt<std::size_t>(j, "n", source);
    s.mean = readNumber(j, "mean", source, true);
    s.p50 = readNumber(j, "p50", source, true);
    s.p75 = readNumber(j, "p75", source, true);
    s.p95 = readNumber(j, "p95", source, true);
    s.max = readNumber(j, "max", source, true);
    return s;
}

nlohmann::json costJson(const Cost &c)
{
    nlohmann::json j = c.toJson();
    j["convention"] = "standard";
    j["weight_bits"] = 32;
    j["activation_bits"] = 32;
    return j;
}

Cost costFromJson(const nlohmann::json &j, const std::string &source)
{
    Cost c;
    c.params = readInt<std::int64_t>(j, "params", source);
    c.macs = readInt<std::int64_t>(j, "macs", source);
    c.bops = readNumber(j, "bops", source);
    const nlohmann::json &layers = member(j, "layers", source);
    if (!layers.is_array())
        throw InputError(field(source, "layers") + ": expected an array");
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const std::string where = source + ".layers[" + std::to_string(i) + "]";
        LayerCost l;
        l.name = readString(layers[i], "name", where);
        l.kind = readString(layers[i], "kind", where);
        l.params = readInt<std::int64_t>(layers[i], "params", where);
        l.macs = readInt<std::int64_t>(layers[i], "macs", where);
        l.bops = readNumber(layers[i], "bops", where);
        c.layers.push_back(std::move(l));
    }
    return c;
}

nlohmann::json epochJson(const EpochStats &e)
{
    return {{"epoch", e.epoch},
            {"loss", finiteOrNull(e.trainLoss)},
            {"validation_mean", finiteOrNull(e.validationMean)},
            {"lr", e.learningRate},
            {"seconds", e.seconds}};
}

EpochStats epochFromJson(const nlohmann::json &j, const std::string &source)
{
    EpochStats e;
    e.epoch = readInt<int>(j, "epoch", source);
    e.trainLoss = readNumber(j, "loss", source, true);
    e.validationMean = readNumber(j, "validation_mean", source, true);
    e.learningRate = readNumber(j, "lr", source);
    e.seconds = readNumber(j, "seconds", source);
    return e;
}

} // namespace

// ---- SplitMetrics ------------------------------------------------------------------------------

SplitMetrics SplitMetrics::of(const Evaluation &evaluation)
{
    SplitMetrics m;
    m.overall = evaluation.overall;
    for (const auto &[name, stats] : evaluation.subsets)
        m.subsets[name] = stats;
    return m;
}

nlohmann::json SplitMetrics::toJson() const
{
    nlohmann::json j = statsJson(overall);
    if (!subsets.empty()) {
        nlohmann::json s = nlohmann::json::object();
        for (const auto &[name, stats] : subsets)
            s[name] = statsJson(stats);
        j["subsets"] = s;
    }
    return j;
}

SplitMetrics SplitMetrics::fromJson(const nlohmann::json &j, const std::string &source)
{
    SplitMetrics m;
    m.overall = statsFromJson(j, source);
    const auto it = j.find("subsets");
    if (it != j.end()) {
        if (!it->is_object())
            throw InputError(field(source, "subsets") + ": expected an object");
        for (const auto &[name, stats] : it->items())
            m.subsets[name] = statsFromJson(stats, source + ".subsets." + name);
    }
    return m;
}

// ---- TrialResult -------------------------------------------------------------------------------

nlohmann::json TrialResult::toJson() const
{
    nlohmann::json j;
    j["status"] = failed() ? "failed" : "complete";
    if (failed())
        j["failure"] = failure;
    j["stop_reason"] = stopReasonName(stopReason);
    j["stopped_early"] = stopReason != StopReason::Completed;
    j["epochs"] = epochs;
    j["best_epoch"] = bestEpoch;
    j["spec"] = spec.toJson();
    j["recipe"] = recipe.toJson();
    j["budget"] = {{"max_epochs", budget.maxEpochs}, {"max_seconds", budget.maxSeconds}};
    j["data"] = data.is_null() ? nlohmann::json::object() : data;
    nlohmann::json metrics = nlohmann::json::object();
    if (validation.present())
        metrics["validation"] = validation.toJson();
    if (test.present())
        metrics["test"] = test.toJson();
    j["metrics"] = metrics;
    j["cost"] = costJson(cost);
    j["seconds"] = seconds.total();
    j["timings"] = {{"prepare", seconds.prepare}, {"train", seconds.train},
                    {"evaluate", seconds.evaluate}};
    nlohmann::json h = nlohmann::json::array();
    for (const EpochStats &e : history)
        h.push_back(epochJson(e));
    j["history"] = h;
    return j;
}

TrialResult TrialResult::fromJson(const nlohmann::json &j, const std::string &source)
{
    TrialResult r;
    const std::string status = readString(j, "status", source);
    if (status != "complete" && status != "failed")
        throw InputError(field(source, "status") + ": expected complete or failed, got '" + status + "'");
    if (status == "failed") {
        r.failure = readString(j, "failure", source);
        if (r.failure.empty())
            throw InputError(field(source, "failure") + ": empty for a failed trial");
    }
    r.stopReason = stopReasonFromName(readString(j, "stop_reason", source), source);
    r.epochs = readInt<int>(j, "epochs", source);
    r.bestEpoch = readInt<int>(j, "best_epoch", source);
    r.spec = ArchSpec::fromJson(member(j, "spec", source), source + ".spec");
    r.recipe = TrainOptions::fromJson(member(j, "recipe", source), source + ".recipe");
    const nlohmann::json &budget = member(j, "budget", source);
    r.budget.maxEpochs = readInt<int>(budget, "max_epochs", source + ".budget");
    r.budget.maxSeconds = readNumber(budget, "max_seconds", source + ".budget");
    r.data = member(j, "data", source);
    if (!r.data.is_object())
        throw InputError(field(source, "data") + ": expected an object");
    const nlohmann::json &metrics = member(j, "metrics", source);
    if (!metrics.is_object())
        throw InputError(field(source, "metrics") + ": expected an object");
    if (metrics.contains("validation"))
        r.validation = SplitMetrics::fromJson(metrics["validation"], source + ".metrics.validation");
    if (metrics.contains("test"))
        r.test = SplitMetrics::fromJson(metrics["test"], source + ".metrics.test");
    r.cost = costFromJson(member(j, "cost", source), source + ".cost");
    const nlohmann::json &timings = member(j, "timings", source);
    r.seconds.prepare = readNumber(timings, "prepare", source + ".timings");
    r.seconds.train = readNumber(timings, "train", source + ".timings");
    r.seconds.evaluate = readNumber(timings, "evaluate", source + ".timings");
    const nlohmann::json &history = member(j, "history", source);
    if (!history.is_array())
        throw InputError(field(source, "history") + ": expected an array");
    for (std::size_t i = 0; i < history.size(); ++i)
        r.history.push_back(epochFromJson(history[i], source + ".history[" + std::to_string(i) + "]"));
    if (r.epochs != int(r.history.size()))
        throw InputError(field(source, "epochs") + ": " + std::to_string(r.epochs) + " but history has "
                         + std::to_string(r.history.size()) + " entries");
    return r;
}

nlohmann::json TrialResult::metricsJson() const
{
    nlohmann::json j = toJson();
    j.erase("spec");
    j.erase("recipe");
    // Model folders keep the evaluations at the top level (readers of older folders look there).
    nlohmann::json metrics = std::move(j["metrics"]);
    j.erase("metrics");
    for (auto &[key, value] : metrics.items())
        j[key] = std::move(value);
    return j;
}

// ---- runTrial ------------------------------------------------------------------------------------

TrialResult runTrial(const ArchSpec &spec, const TrainOptions &recipe, const TrialBudget &budget,
                     const PreparedData &data, const Monitor &monitor,
                     const TrialCallbacks &callbacks)
{
    if (!data.valid())
        throw InputError("trial: the prepared data is empty");
    TrialResult r;
    r.spec = spec;
    r.recipe = recipe;
    r.budget = budget;
    r.data = data.describe();
    r.cost = computeCost(spec); // validates the spec before any training

    const auto t0 = Clock::now();
    TrainBudget trainBudget;
    trainBudget.maxEpochs = budget.maxEpochs;
    trainBudget.maxSeconds = budget.maxSeconds;
    trainBudget.onEpoch = callbacks.onEpoch;
    TrainResult trained = trainModel(spec, data, recipe, monitor, trainBudget);
    r.seconds.train = secondsSince(t0);
    r.history = std::move(trained.history);
    r.epochs = int(r.history.size());
    r.bestEpoch = trained.bestEpoch;
    r.stopReason = trained.stopReason;
    r.failure = std::move(trained.failure);
    r.model = std::make_shared<Model>(std::move(trained.model));

    const auto t1 = Clock::now();
    if (!r.failed()) {
        monitor.check();
        if (data.validationRows() > 0)
            r.validation = SplitMetrics::of(evaluateModel(*r.model, data, 1));
        if (data.testRows() > 0)
            r.test = SplitMetrics::of(evaluateModel(*r.model, data, 2));
        // A network that trains to finite losses but predicts non-finite centres has diverged too.
        if (r.validation.present() && !std::isfinite(r.validation.overall.mean)) {
            r.failure = "training diverged: the kept model's validation distance is not finite";
            r.stopReason = StopReason::Diverged;
            r.validation = {};
            r.test = {};
        }
    }
    r.seconds.evaluate = secondsSince(t1);

    nlohmann::json &rj = r.model->recipe;
    if (!rj.is_object())
        rj = recipe.toJson();
    rj["data"] = r.data;
    rj["arch"] = spec.name.empty() ? std::string("custom") : spec.name;
    r.model->metrics = r.metricsJson();
    return r;
}

TrialResult runTrial(const ArchSpec &spec, const TrainOptions &recipe, const TrialBudget &budget,
                     const PatchDataset &data, const Monitor &monitor,
                     const TrialCallbacks &callbacks)
{
    recipe.validate();
    const auto t0 = Clock::now();
    PreparedData prepared;
    {
        ScopedTorchThreads threads(recipe.threads);
        prepared = prepareData(data, {recipe.device, recipe.dataSource});
    }
    const double prepareSeconds = secondsSince(t0);
    TrialResult r = runTrial(spec, recipe, budget, prepared, monitor, callbacks);
    r.seconds.prepare = prepareSeconds;
    if (r.model)
        r.model->metrics = r.metricsJson();
    return r;
}

} // namespace braggnac::core
