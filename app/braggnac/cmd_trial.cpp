// braggnac trial: one search trial without a study (the bridge for external optimisers such as
// Optuna): trains DATA with an architecture and a recipe under an optional budget, evaluates the
// validation and test splits, costs the spec and prints the trial as JSON (core/nn/trial.h).
#include <cstdio>
#include <string>

#include "cli.h"
#include "core/arch/archspec.h"
#include "core/common/error.h"
#include "core/io/patchdataset.h"
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

void declareTrial(VerbSpec &v)
{
    v.positional("DATA", "a labelled patch file").existingFile().input();
    v.option("arch", "NAME|SPEC.json", "the architecture: a built-in name or a spec file").required().input();
    declareRecipeOptions(v);
    v.option("max-epochs", "N", "budget: stop after N epochs, keeping the schedule of --epochs (0: none)")
        .integer(0, 1000000)
        .defaultValue("0");
    v.option("max-seconds", "S", "budget: stop after the first epoch that ends past S seconds of training (0: none)")
        .number(0, 1e12)
        .defaultValue("0");
    v.option("out", "MODEL", "also save the trained model folder").output(OutputKind::ModelFolder);
}

int runTrial(const Args &args)
{
    const std::string dataPath = args.positionalAt(0, "DATA (a labelled patch file)");
    const std::string arch = args.required("arch");
    const std::string out = args.get("out");

    core::TrainOptions o = recipeFromArgs(args, dataPath);
    core::TrialBudget budget;
    budget.maxEpochs = int(args.getInt("max-epochs", 0));
    budget.maxSeconds = args.getDouble("max-seconds", 0);
    args.finish(1);
    o.validate("trial options");

    const core::ArchSpec spec = core::resolveArch(arch);
    const core::PatchDataset data = core::readPatchDataset(dataPath);

    const bool human = !args.json() || args.flag("progress");
    const core::Monitor monitor = makeMonitor(args, "trial");
    core::TrialCallbacks callbacks;
    callbacks.onEpoch = [&](const core::EpochStats &e) {
        if (human) {
            endProgress();
            info("epoch " + std::to_string(e.epoch) + "/" + std::to_string(o.epochs) + "  loss "
                 + fmt("%.3e", e.trainLoss) + "  validation mean " + fmt("%.4f", e.validationMean)
                 + " px  " + fmt("%.1f", e.seconds) + " s");
        }
        return core::EpochDecision::Continue;
    };
    const core::TrialResult trial = core::runTrial(spec, o, budget, data, monitor, callbacks);
    endProgress();
    if (!out.empty() && !trial.failed())
        trial.model->save(out);

    if (args.json())
        printJson(trial.toJson());
    if (trial.failed()) {
        // --json has printed the failed trial (status, failure) for the optimiser; exit 1.
        if (args.json())
            return 1;
        throw core::Error(core::fileMessage(dataPath, trial.failure
                                                          + (out.empty() ? "" : " (nothing saved)")));
    }
    if (!args.json()) {
        info("trial " + spec.name + ": " + std::to_string(trial.epochs) + " epochs ("
             + core::stopReasonName(trial.stopReason) + "), validation mean "
             + (trial.validation.present() ? fmt("%.4f", trial.validation.overall.mean) + " px" : "-")
             + ", test mean "
             + (trial.test.present() ? fmt("%.4f", trial.test.overall.mean) + " px" : "-") + ", "
             + std::to_string(trial.cost.params) + " parameters, " + fmt("%.4g", trial.cost.bops)
             + " BOPs, " + fmt("%.1f", trial.seconds.total()) + " s"
             + (out.empty() ? std::string() : "; model saved to " + out));
    }
    return 0;
}

const VerbRegistrar registrar(
    "trial",
    "one search trial without a study (the bridge for other optimisers): trains, evaluates the "
    "validation and test splits and costs the network; --json: {\"status\", \"spec\", \"metrics\":"
    "{\"validation\", \"test\"}, \"cost\", \"epochs\", \"seconds\", \"history\", ...} "
    "(docs/training.md, Trials); exit 1 for a failed (diverged) trial",
    &declareTrial, &runTrial);

} // namespace

} // namespace braggnac::cli
