// braggnac train: trains a built-in or JSON-spec network on a labelled patch dataset and saves a
// model folder (spec, weights, recipe, metrics with history and the test-split evaluation).
#include <cmath>
#include <cstdio>
#include <string>

#include "cli.h"
#include "core/common/error.h"
#include "core/io/patchdataset.h"
#include "core/arch/archspec.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "core/nn/trial.h"

namespace braggnac::cli {

namespace {

std::string fmt(const char *format, double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

void declareTrain(VerbSpec &v)
{
    v.positional("DATA", "a labelled patch file").existingFile().input();
    v.option("arch", "braggnn|nac|SPEC.json", "the architecture: a built-in name or a spec file").required().input();
    v.option("out", "MODEL", "the model folder to write").required().output(OutputKind::ModelFolder);
    declareRecipeOptions(v);
    v.flag("keep-diverged", "save the model even when training diverged (the run still exits 1)");
}

int runTrain(const Args &args)
{
    const std::string dataPath = args.positionalAt(0, "DATA (a labelled patch file)");
    const std::string arch = args.required("arch");
    const std::string out = args.required("out");

    core::TrainOptions o = recipeFromArgs(args, dataPath);
    args.finish(1);
    o.validate("train options");

    const core::ArchSpec spec = core::resolveArch(arch);
    const core::PatchDataset data = core::readPatchDataset(dataPath);
    const bool keepDiverged = args.flag("keep-diverged");

    const bool human = !args.json() || args.flag("progress");
    const core::Monitor monitor = makeMonitor(args, "train");
    core::TrialCallbacks callbacks;
    callbacks.onEpoch = [&](const core::EpochStats &e) {
        if (human) {
            endProgress();
            info("epoch " + std::to_string(e.epoch) + "/" + std::to_string(o.epochs) + "  loss "
                 + fmt("%.3e", e.trainLoss) + "  validation mean " + fmt("%.4f", e.validationMean)
                 + " px  lr " + fmt("%.3e", e.learningRate) + "  " + fmt("%.1f", e.seconds) + " s");
        }
        return core::EpochDecision::Continue;
    };
    // The one train -> evaluate -> describe path (core/nn/trial.h); the model's recipe and
    // metrics are set by it.
    const core::TrialResult trial = core::runTrial(spec, o, {}, data, monitor, callbacks);
    if (trial.failed()) {
        endProgress();
        if (!keepDiverged)
            throw core::Error(core::fileMessage(dataPath, trial.failure + " (nothing saved; "
                                                          "--keep-diverged saves the model anyway)"));
        trial.model->save(out);
        throw core::Error(core::fileMessage(dataPath, trial.failure + " (the model was saved to "
                                                          + out + " as asked by --keep-diverged)"));
    }
    trial.model->save(out);

    if (args.json()) {
        nlohmann::json j = {{"epochs", trial.epochs},
                            {"best_epoch", trial.bestEpoch},
                            {"stopped_early", trial.stopReason != core::StopReason::Completed},
                            {"stop_reason", core::stopReasonName(trial.stopReason)},
                            {"seconds", trial.seconds.total()},
                            {"params", trial.cost.params},
                            {"device", trial.model->recipe.value("device_used", std::string())}};
        if (trial.validation.present())
            j["validation"] = trial.validation.toJson();
        if (trial.test.present())
            j["test"] = trial.test.toJson();
        printJson(j);
    } else {
        const std::string test = trial.test.present()
            ? "test mean " + fmt("%.4f", trial.test.overall.mean) + " px, p95 "
                  + fmt("%.4f", trial.test.overall.p95) + " px over "
                  + std::to_string(trial.test.overall.n) + " patches"
            : std::string("no test split");
        info("best epoch " + std::to_string(trial.bestEpoch) + " of " + std::to_string(trial.epochs)
             + (trial.stopReason != core::StopReason::Completed
                    ? " (stopped: " + core::stopReasonName(trial.stopReason) + ")"
                    : std::string())
             + "; " + test + "; model saved to " + out);
    }
    return 0;
}

const VerbRegistrar registrar(
    "train",
    "trains a network on the train split, early-stops on the validation split, evaluates the "
    "validation and test splits and saves a model folder (docs/training.md); a diverged training "
    "exits 1 and saves nothing unless --keep-diverged; --json: {\"epochs\", \"best_epoch\", "
    "\"stop_reason\", \"validation\", \"test\":{n,mean,p50,p75,p95,max,subsets}, \"seconds\", "
    "\"params\", \"device\"}",
    &declareTrain, &runTrain);

} // namespace

} // namespace braggnac::cli
