#include "core/nn/searchrunner.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include "core/common/error.h"
#include "core/nn/trial.h"

namespace braggnac::core {

using nlohmann::json;

TrainOptions applyHyperParams(TrainOptions recipe, const json &hyper)
{
    if (hyper.is_null())
        return recipe;
    if (!hyper.is_object())
        throw InputError("hyper-parameters: expected an object");
    static const std::set<std::string> known = {"optimizer", "lr", "weight_decay", "momentum",
                                                "schedule", "batch"};
    for (auto it = hyper.begin(); it != hyper.end(); ++it)
        if (!known.count(it.key()))
            throw InputError("hyper-parameters: " + it.key()
                             + ": unknown (known: optimizer, lr, weight_decay, momentum, schedule, batch)");
    try {
        if (hyper.contains("optimizer"))
            recipe.optimizer = hyper["optimizer"].get<std::string>();
        if (hyper.contains("lr"))
            recipe.learningRate = hyper["lr"].get<double>();
        if (hyper.contains("weight_decay"))
            recipe.weightDecay = hyper["weight_decay"].get<double>();
        if (hyper.contains("momentum")) {
            recipe.momentum = hyper["momentum"].get<double>();
            if (recipe.optimizer == "rmsprop")
                recipe.rmspropMomentum = recipe.momentum;
        }
        if (hyper.contains("schedule"))
            recipe.schedule = hyper["schedule"].get<std::string>();
        if (hyper.contains("batch")) {
            const double b = hyper["batch"].is_string() ? std::stod(hyper["batch"].get<std::string>())
                                                        : hyper["batch"].get<double>();
            recipe.batchSize = int(std::lround(b));
        }
    } catch (const std::exception &e) {
        throw InputError(std::string("hyper-parameters: ") + e.what());
    }
    recipe.validate("hyper-parameters");
    return recipe;
}

namespace {

class TorchTrialRunner : public TrialRunner {
public:
    TorchTrialRunner(const PatchDataset &data, const TrainOptions &recipe, bool saveModels)
        : m_recipe(recipe), m_save(saveModels)
    {
        m_recipe.validate("search recipe");
        PrepareOptions p;
        p.device = recipe.device;
        p.source = recipe.dataSource;
        m_data = prepareData(data, p);
    }

    TaskResult run(const TrialTask &task, const std::function<bool(const EpochReport &)> &onEpoch,
                   const CancelToken &cancel) override
    {
        TaskResult out;
        out.id = task.id;
        ArchSpec spec;
        TrainOptions recipe;
        try {
            spec = ArchSpec::fromJson(task.spec, "trial " + std::to_string(task.number) + " spec");
            recipe = applyHyperParams(m_recipe, task.hyperParams);
        } catch (const InputError &e) {
            out.status = TaskStatus::Failed;
            out.reason = e.what();
            return out;
        }
        TrialBudget budget;
        budget.maxEpochs = task.epochs;
        Monitor monitor;
        monitor.cancel = cancel;
        TrialCallbacks callbacks;
        callbacks.onEpoch = [&](const EpochStats &e) {
            EpochReport r;
            r.id = task.id;
            r.epoch = e.epoch;
            r.value = e.validationMean;
            r.metrics = {{"loss", std::isfinite(e.trainLoss) ? json(e.trainLoss) : json()},
                         {"lr", e.learningRate},
                         {"seconds", e.seconds}};
            return onEpoch(r) ? EpochDecision::Continue : EpochDecision::Stop;
        };
        const auto t0 = std::chrono::steady_clock::now();
        TrialResult trial;
        try {
            trial = runTrial(spec, recipe, budget, m_data, monitor, callbacks);
        } catch (const CancelledError &) {
            throw;
        } catch (const std::exception &e) {
            out.status = TaskStatus::Failed;
            out.reason = e.what();
            out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            return out;
        }
        const json j = trial.toJson();
        out.metrics = j.value("metrics", json::object());
        out.cost = trial.cost.toJson();
        out.history = j.value("history", json::array());
        out.fidelity = trial.epochs;
        out.seconds = trial.seconds.total();
        if (trial.failed()) {
            out.status = TaskStatus::Failed;
            out.reason = trial.failure;
            return out;
        }
        out.status = trial.stopReason == StopReason::Pruned ? TaskStatus::Pruned : TaskStatus::Complete;
        if (out.status == TaskStatus::Pruned)
            out.reason = "stopped after epoch " + std::to_string(trial.epochs) + " by the search";
        if (m_save && !task.modelPath.empty() && trial.model) {
            const std::filesystem::path parent = std::filesystem::path(task.modelPath).parent_path();
            if (!parent.empty())
                std::filesystem::create_directories(parent);
            trial.model->save(task.modelPath);
            out.modelPath = task.modelPath;
        }
        return out;
    }

private:
    TrainOptions m_recipe;
    bool m_save;
    PreparedData m_data;
};

} // namespace

std::unique_ptr<TrialRunner> makeTorchTrialRunner(const PatchDataset &data, const TrainOptions &recipe,
                                                  bool saveModels)
{
    return std::make_unique<TorchTrialRunner>(data, recipe, saveModels);
}

} // namespace braggnac::core
