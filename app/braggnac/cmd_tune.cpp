// braggnac tune: local hyper-parameter search (TPE with median pruning) over one architecture's
// training hyper-parameters, in a study store of kind tune; resumable: the same command
// continues the study (docs/search.md "Tune").
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "cli.h"
#include "core/arch/archspec.h"
#include "core/common/error.h"
#include "core/io/patchdataset.h"
#include "core/nn/searchrunner.h"
#include "core/search/executor.h"
#include "core/search/mpiexecutor.h"
#include "core/search/studystore.h"
#include "core/search/tune.h"

namespace braggnac::cli {

namespace {

std::string fmt(const char *format, double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

std::vector<core::HyperParam> loadTuneSpace(const std::string &path)
{
    std::ifstream in(path);
    if (!in)
        throw core::InputError(core::fileMessage(path, "cannot be read"));
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception &e) {
        throw core::InputError(core::fileMessage(path, std::string("not valid JSON: ") + e.what()));
    }
    auto space = core::tuneSpaceFromJson(j, path);
    core::checkTuneSpace(space, path);
    return space;
}

void declareTune(VerbSpec &v)
{
    v.positional("DATA", "a labelled patch file").existingFile().input();
    v.option("arch", "NAME|SPEC.json", "the architecture: a built-in name or a spec file").required().input();
    v.option("study", "S.db", "the study file (created, or resumed when it exists)").required();
    v.option("trials", "N", "finished trials the study should hold (counting earlier runs)").integer(1, 10000000).defaultValue("50");
    v.option("workers", "W", "parallel trials in this process (each with --threads LibTorch threads, default 1)").integer(1, 1024);
    v.option("space", "TUNE.json", "the hyper-parameter space ({\"params\": [...]}; default: optimizer, learning_rate, "
                                   "weight_decay, momentum, schedule, batch_size)").existingFile().input();
    v.flag("no-prune", "train every trial to its budget (no median pruning)");
    declareRecipeOptions(v);
    for (auto &d : v.decls())
        if (d.name == "epochs") {
            d.help = "per-trial budget: training epochs of a trial that is not pruned";
            d.defaultText = "20";
        }
    v.flag("force", "resume even when the study was made with another dataset or space");
}

int runTune(const Args &args)
{
    // Every rank would run its own tune on the same study: refused (tune runs local workers).
    if (core::MpiSession::active())
        throw core::InputError("tune does not run under mpirun (every rank would tune the same study): "
                               "run it without mpirun, with --workers W");
    const std::string dataPath = args.positionalAt(0, "DATA (a labelled patch file)");
    const std::string studyPath = args.required("study");
    checkStudyPath(studyPath);

    core::TuneOptions to;
    to.trials = int(args.getInt("trials", to.trials));
    to.epochs = int(args.getInt("epochs", 20));
    to.prune = !args.flag("no-prune");
    to.seed = args.seed(1);
    core::TrainOptions recipe = recipeFromArgs(args, dataPath);
    recipe.epochs = to.epochs;
    if (!args.has("threads"))
        recipe.threads = 1;
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    const int workers = int(args.getInt("workers", std::max(1, int(hw) / std::max(1, recipe.threads))));
    const std::string spacePath = args.get("space");
    const std::string arch = args.required("arch");
    args.finish(1);
    to.validate("tune");
    recipe.validate("tune recipe");

    const std::vector<core::HyperParam> space = spacePath.empty() ? core::defaultTuneStudySpace() : loadTuneSpace(spacePath);
    const core::ArchSpec spec = core::resolveArch(arch);

    core::StudyInfo study;
    study.name = std::filesystem::path(studyPath).stem().string();
    study.kind = core::StudyKind::Tune;
    study.space = {{"tune", core::tuneSpaceToJson(space)}, {"arch", spec.toJson()}};
    study.dataset = core::describeDataset(dataPath);
    study.objectives.push_back({"distance", true});
    study.options = {{"tune", to.toJson()}, {"recipe", recipe.toJson()}, {"workers", workers}};
    study.seed = to.seed;

    const core::PatchDataset data = core::readPatchDataset(dataPath);
    core::StudyStore store = core::StudyStore::createOrOpen(studyPath, study, args.force());
    const auto runner = core::makeTorchTrialRunner(data, recipe);
    core::LocalExecutor executor(*runner, workers);

    const core::Monitor monitor = makeMonitor(args, "tune");
    const bool human = !args.json() || args.flag("progress");
    if (human)
        info(std::string(store.created() ? "new tune study " : "resuming tune study ") + studyPath + ": "
             + std::to_string(to.trials) + " trials of up to " + std::to_string(to.epochs) + " epochs"
             + (to.prune ? " with median pruning" : "") + ", " + executor.describe() + ", "
             + std::to_string(space.size()) + " hyper-parameters");
    core::TuneCallbacks callbacks;
    callbacks.onProgress = [&](const core::TuneProgress &p) {
        const int done = p.counts.complete + p.counts.pruned + p.counts.failed;
        std::string msg = std::to_string(done) + "/" + std::to_string(p.target) + " done, "
            + std::to_string(p.counts.running) + " running, " + std::to_string(p.counts.pruned) + " pruned, "
            + std::to_string(p.counts.failed) + " failed";
        if (std::isfinite(p.best))
            msg += ", best " + fmt("%.4f", p.best) + " px";
        monitor.report(p.target > 0 ? double(done) / p.target : 0, msg);
    };
    callbacks.onTrialFinished = [&](const core::TrialRecord &t) {
        if (!human || monitor.progress)
            return;
        std::string line = "trial " + std::to_string(t.number) + " " + core::trialStateName(t.state) + " after "
            + std::to_string(t.fidelity) + " epochs";
        if (!t.values.empty())
            line += ": distance " + fmt("%.5g", t.values[0]) + " px";
        if (!t.error.empty() && t.state == core::TrialState::Failed)
            line += " (" + t.error + ")";
        info(line);
    };
    const core::TuneSummary summary = core::runTune(space, spec.toJson(), store, executor, to, monitor.cancel, callbacks);
    endProgress();

    if (args.json()) {
        nlohmann::json best = nullptr;
        if (summary.best)
            best = {{"number", summary.best->number},
                    {"params", summary.best->hyperParams},
                    {"value", summary.best->values.front()},
                    {"epochs", summary.best->fidelity},
                    {"model", summary.best->modelPath.empty() ? "" : store.resolve(summary.best->modelPath)}};
        printJson({{"study", studyPath},
                   {"best", best},
                   {"best_params", summary.best ? summary.best->hyperParams : nlohmann::json(nullptr)},
                   {"best_value", summary.best ? nlohmann::json(summary.best->values.front()) : nlohmann::json(nullptr)},
                   {"counts", {{"complete", summary.counts.complete}, {"pruned", summary.counts.pruned},
                               {"failed", summary.counts.failed}, {"queued", summary.counts.queued},
                               {"running", summary.counts.running}}},
                   {"recovered", summary.recovered},
                   {"trained", summary.trainedThisRun},
                   {"interrupted", summary.interrupted},
                   {"seconds", summary.seconds}});
    }
    if (human) {
        std::string line = "study " + studyPath + ": " + std::to_string(summary.counts.complete) + " complete, "
            + std::to_string(summary.counts.pruned) + " pruned, " + std::to_string(summary.counts.failed) + " failed";
        if (summary.best)
            line += "; best trial " + std::to_string(summary.best->number) + ": " + fmt("%.5g", summary.best->values.front())
                + " px with " + summary.best->hyperParams.dump();
        info(line);
    }
    if (summary.interrupted) {
        info("interrupted: every finished trial is stored (" + std::to_string(summary.requeued)
             + " running trials requeued); run the same command to resume");
        return 1;
    }
    return 0;
}

const VerbRegistrar registrar(
    "tune",
    "hyper-parameter search (TPE, median pruning on epochs) over one architecture's training "
    "recipe; resumable: the same command continues the study; --json: {\"best_params\", "
    "\"best_value\", \"counts\", ...} (docs/search.md)",
    &declareTune, &runTune);

} // namespace

} // namespace braggnac::cli
