#pragma once
// The search's TrialRunner with LibTorch behind it (torch-free header): the dataset is prepared
// once (normalised, split, on the recipe's device) and shared read-only by every trial; each
// task runs runTrial(spec, recipe with the task's hyper-parameters, budget = task.epochs) on the
// calling worker thread with recipe.threads LibTorch threads (default 1 per worker), reports the
// validation distance after every epoch, and saves the kept model of a complete or pruned trial
// in task.modelPath (atomic). Divergence and bad specs come back as Failed with the reason.
// Thread-safe: one runner serves every worker of a LocalExecutor.
#include <memory>

#include <nlohmann/json.hpp>

#include "core/io/patchdataset.h"
#include "core/nn/trainer.h"
#include "core/search/executor.h"

namespace braggnac::core {

/// recipe.dataSource names the data in messages. Throws InputError when the data cannot be
/// prepared (unlabelled, empty splits).
std::unique_ptr<TrialRunner> makeTorchTrialRunner(const PatchDataset &data, const TrainOptions &recipe,
                                                  bool saveModels = true);

/// The recipe with tune hyper-parameters applied: "optimizer", "lr", "weight_decay", "momentum",
/// "schedule", "batch" (missing keys keep the recipe's value). Throws InputError naming the key
/// on a wrong type or an unknown key; the result is validated.
TrainOptions applyHyperParams(TrainOptions recipe, const nlohmann::json &hyperParams);

} // namespace braggnac::core
