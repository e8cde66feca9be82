// braggnac search: the global multi-objective architecture search (NSGA-II over a hierarchical
// space, optionally with ASHA), resumable: the same command continues the study (docs/search.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>

#include "cli.h"
#include "core/arch/layerplan.h"
#include "core/common/error.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "core/hls/hlsestimate.h"
#include "core/io/patchdataset.h"
#include "core/nn/searchrunner.h"
#include "core/search/builtinspaces.h"
#include "core/search/driver.h"
#include "core/search/executor.h"
#include "core/search/mpiexecutor.h"
#include "core/search/studystore.h"

namespace braggnac::cli {

namespace {

std::string fmt(const char *format, double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

std::string duration(double s)
{
    if (!std::isfinite(s))
        return "?";
    const long t = long(s + 0.5);
    if (t >= 3600)
        return std::to_string(t / 3600) + "h" + (t % 3600 / 60 < 10 ? "0" : "") + std::to_string(t % 3600 / 60) + "m";
    if (t >= 60)
        return std::to_string(t / 60) + "m" + (t % 60 < 10 ? "0" : "") + std::to_string(t % 60) + "s";
    return std::to_string(t) + "s";
}

std::vector<std::string> splitList(const std::string &s)
{
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty())
            out.push_back(item);
    return out;
}

std::vector<int> parseRungs(const std::string &s)
{
    std::vector<int> rungs;
    for (const auto &item : splitList(s)) {
        try {
            std::size_t pos = 0;
            const int v = std::stoi(item, &pos);
            if (pos != item.size())
                throw std::invalid_argument(item);
            rungs.push_back(v);
        } catch (const std::exception &) {
            throw UsageError("--rungs: expected comma-separated epoch counts like 2,6,18, got '" + s + "'");
        }
    }
    if (rungs.empty())
        throw UsageError("--rungs: expected comma-separated epoch counts like 2,6,18, got '" + s + "'");
    return rungs;
}

void declareSearch(VerbSpec &v)
{
    v.positional("DATA", "a labelled patch file").existingFile().input();
    v.option("space", "SPACE", "search space: a built-in name (nac, wide) or a space JSON file").defaultValue("nac");
    v.option("study", "S.db", "the study file (created, or resumed when it exists)").required();
    v.option("trials", "N", "finished trials the study should hold (counting earlier runs)").integer(1, 10000000).defaultValue("96");
    v.option("workers", "W", "parallel trials in this process (each with --threads LibTorch threads, default 1)").integer(1, 1024);
    v.flag("asha", "asynchronous successive halving over epochs (stop weak trials early)");
    v.option("rungs", "E1,E2,...", "ASHA rungs in epochs").defaultValue("2,6,18");
    v.option("reduction-factor", "ETA", "ASHA: keep the best 1/ETA at each rung").integer(2, 100).defaultValue("3");
    v.option("objectives", "LIST", "minimised objectives: distance, bops, params, macs, latency, dsp").defaultValue("distance,bops");
    v.option("objective", "latency|dsp|bops|params|macs",
             "the second objective beside distance (short for --objectives distance,X); latency and dsp are the "
             "analytic HLS estimate's (docs/search.md \"FPGA-aware objectives\")")
        .choices({"latency", "dsp", "bops", "params", "macs"});
    v.option("hls-bits", "B", "latency / dsp: every tensor at ap_fixed<B,6> (the export's default precision)")
        .integer(2, 32).defaultValue("16");
    v.option("reuse-factor", "R", "latency / dsp: the HLS reuse factor").integer(1, 1 << 20).defaultValue("1");
    v.option("clock-mhz", "F", "latency / dsp: the FPGA clock").number(1e-3, 1e5).defaultValue("200");
    v.option("part", "PART", "latency / dsp: xcu250, xcu55c, xczu7ev or xc7z020").defaultValue("xcu250");
    v.option("max-bops", "B", "constraint: at most B standard BOPs (overrides the space's)").number(0, 1e30, true);
    v.option("max-params", "P", "constraint: at most P parameters (overrides the space's)").integer(1, 1LL << 50);
    v.flag("fpga-friendly", "exclude layer norm over [C,H,W], GELU and attention softmax");
    v.option("population", "N", "NSGA-II population size").integer(2, 100000).defaultValue("20");
    declareRecipeOptions(v);
    for (auto &d : v.decls())
        if (d.name == "epochs") {
            d.help = "per-trial budget: training epochs of a trial that is not stopped early";
            d.defaultText = "20";
        }
    v.flag("force", "resume even when the study was made with another dataset or space");
}

/// The analytic HLS estimate of a spec for the latency / dsp objectives: every tensor at
/// QuantSpec::defaults(plan, hlsBits) (ap_fixed<B,6> activations), dense weights (every weight
/// 1.0, norms at their identity), so the estimate depends on the architecture alone.
nlohmann::json specHlsCost(const core::ArchSpec &spec, const core::SearchOptions &so)
{
    const core::LayerPlan plan = core::LayerPlan::lower(spec);
    core::NamedTensors w;
    for (const core::PlanTensor &t : plan.tensors()) {
        const bool var = t.key.size() > 11 && t.key.compare(t.key.size() - 11, 11, "running_var") == 0;
        const bool norm = t.key.find(".norm.") != std::string::npos;
        const bool bias = t.key.size() > 5 && t.key.compare(t.key.size() - 5, 5, ".bias") == 0;
        const float v = t.integer ? 0.0f : var ? 1.0f : norm ? (bias || t.buffer ? 0.0f : 1.0f) : 1.0f;
        w[t.key] = {t.shape, std::vector<float>(std::size_t(t.numel()), v)};
    }
    const core::IntegerReference ref(plan, w, core::QuantSpec::defaults(plan, so.hlsBits));
    const core::HlsEstimate e = core::estimateHls(ref, so.hlsReuse, so.hlsClockMhz, core::hlsPart(so.hlsPart));
    return {{"latency_us", e.latencyUs}, {"dsp", e.dsp}, {"lut", e.lut}, {"ff", e.ff}, {"bram18", e.bram18},
            {"cycles", e.cycles}, {"bits", so.hlsBits}, {"reuse_factor", so.hlsReuse},
            {"clock_mhz", so.hlsClockMhz}, {"part", so.hlsPart}};
}

int runSearch(const Args &args)
{
    // Under mpirun: rank 0 drives the search with the MPI executor (made first, so that the
    // workers are told to stop whatever rank 0 refuses next; -np 1 is an InputError), ranks >= 1
    // train trials (docs/search.md "MPI").
    const bool mpi = core::MpiSession::active();
    std::unique_ptr<core::MpiExecutor> mpiExecutor;
    if (mpi && core::MpiSession::rank() == 0)
        mpiExecutor = std::make_unique<core::MpiExecutor>();
    const std::string dataPath = args.positionalAt(0, "DATA (a labelled patch file)");
    const std::string studyPath = args.required("study");
    checkStudyPath(studyPath);

    core::SearchOptions so;
    so.trials = int(args.getInt("trials", so.trials));
    so.epochs = int(args.getInt("epochs", 20));
    so.asha = args.flag("asha");
    so.ashaOptions.rungs = parseRungs(args.get("rungs", "2,6,18"));
    so.ashaOptions.reductionFactor = int(args.getInt("reduction-factor", 3));
    so.objectives = splitList(args.get("objectives", "distance,bops"));
    if (args.has("objective")) {
        if (args.has("objectives"))
            throw UsageError("--objective X is short for --objectives distance,X: give one of them");
        so.objectives = {"distance", args.get("objective")};
    }
    so.hlsBits = int(args.getInt("hls-bits", so.hlsBits));
    so.hlsReuse = int(args.getInt("reuse-factor", so.hlsReuse));
    so.hlsClockMhz = args.getDouble("clock-mhz", so.hlsClockMhz);
    so.hlsPart = core::hlsPart(args.get("part", so.hlsPart)).name; // InputError naming the known parts
    so.population = int(args.getInt("population", so.population));
    so.seed = args.seed(1);
    core::TrainOptions recipe = recipeFromArgs(args, dataPath);
    recipe.epochs = so.epochs;
    if (!args.has("threads"))
        recipe.threads = 1;
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    const int workers = int(args.getInt("workers", std::max(1, int(hw) / std::max(1, recipe.threads))));
    args.finish(1);
    so.validate("search");
    recipe.validate("search recipe");
    if (mpi && core::MpiSession::rank() > 0) {
        recipe.threads = 1;
        const core::PatchDataset workerData = core::readPatchDataset(dataPath);
        const auto workerRunner = core::makeTorchTrialRunner(workerData, recipe);
        core::runMpiWorker(*workerRunner);
        return 0;
    }

    // The space, with the command line's constraints.
    core::SearchSpace loaded = core::resolveSpace(args.get("space", "nac"));
    core::SpaceDefinition def = loaded.definition();
    if (args.has("max-bops"))
        def.constraints.maxBops = args.getDouble("max-bops", 0);
    if (args.has("max-params"))
        def.constraints.maxParams = args.getInt("max-params", 0);
    if (args.flag("fpga-friendly"))
        def.constraints.fpgaFriendly = true;
    const core::SearchSpace space(def, loaded.source());

    core::StudyInfo study;
    study.name = std::filesystem::path(studyPath).stem().string();
    study.kind = core::StudyKind::Search;
    study.space = space.toJson();
    study.dataset = core::describeDataset(dataPath);
    for (const auto &o : so.objectives)
        study.objectives.push_back({o, true});
    study.options = {{"search", so.toJson()}, {"recipe", recipe.toJson()},
                     {"workers", mpi ? core::MpiSession::size() - 1 : workers}};
    study.seed = so.seed;

    core::PatchDataset data; // rank 0 under MPI does not train: the workers read it
    if (!mpiExecutor)
        data = core::readPatchDataset(dataPath);
    core::StudyStore store = core::StudyStore::createOrOpen(studyPath, study, args.force());
    std::unique_ptr<core::TrialRunner> runner;
    std::unique_ptr<core::LocalExecutor> localExecutor;
    if (!mpiExecutor) {
        runner = core::makeTorchTrialRunner(data, recipe);
        localExecutor = std::make_unique<core::LocalExecutor>(*runner, workers);
    }
    core::Executor &executor = mpiExecutor ? static_cast<core::Executor &>(*mpiExecutor) : *localExecutor;

    const core::Monitor monitor = makeMonitor(args, "search");
    const bool human = (!args.json() || args.flag("progress")) && !args.flag("quiet");
    if (human)
        info(std::string(store.created() ? "new study " : "resuming study ") + studyPath + ": "
             + std::to_string(so.trials) + " trials of up to " + std::to_string(so.epochs) + " epochs"
             + (so.asha ? " with ASHA" : "") + ", " + executor.describe() + ", space "
             + space.definition().name + " (" + space.size().count + " specs)");
    core::SearchCallbacks callbacks;
    callbacks.onProgress = [&](const core::SearchProgress &p) {
        const int done = p.counts.complete + p.counts.pruned + p.counts.failed;
        std::string msg = std::to_string(done) + "/" + std::to_string(p.target) + " done, "
            + std::to_string(p.counts.running) + " running, " + std::to_string(p.counts.failed) + " failed, "
            + std::to_string(p.counts.pruned) + " pruned";
        if (std::isfinite(p.bestDistance))
            msg += ", best " + fmt("%.4f", p.bestDistance) + " px";
        msg += ", " + duration(p.elapsed) + " elapsed, ~" + duration(p.remaining) + " left";
        monitor.report(p.target > 0 ? double(done) / p.target : 0, msg);
    };
    callbacks.onTrialFinished = [&](const core::TrialRecord &t) {
        if (!human || monitor.progress)
            return;
        std::string line = "trial " + std::to_string(t.number) + " " + core::trialStateName(t.state)
            + " after " + std::to_string(t.fidelity) + " epochs";
        if (!t.values.empty())
            line += ": " + so.objectives[0] + " " + fmt("%.5g", t.values[0])
                + (t.values.size() > 1 ? ", " + so.objectives[1] + " " + fmt("%.4g", t.values[1]) : "");
        if (!t.error.empty() && t.state == core::TrialState::Failed)
            line += " (" + t.error + ")";
        info(line);
    };
    if (std::find(so.objectives.begin(), so.objectives.end(), "latency") != so.objectives.end()
        || std::find(so.objectives.begin(), so.objectives.end(), "dsp") != so.objectives.end())
        callbacks.extendCost = [&so](const core::ArchSpec &spec, nlohmann::json &cost) {
            cost["hls"] = specHlsCost(spec, so);
        };
    const core::SearchSummary summary = core::runSearch(space, store, executor, so, monitor.cancel, callbacks);
    endProgress();

    if (args.json()) {
        nlohmann::json front = nlohmann::json::array();
        for (const auto &t : summary.front)
            front.push_back({{"id", t.id}, {"number", t.number}, {"spec", t.spec}, {"fidelity", t.fidelity},
                             {"values", t.values}, {"model", t.modelPath.empty() ? "" : store.resolve(t.modelPath)}});
        printJson({{"study", studyPath},
                   {"objectives", so.objectives},
                   {"counts", {{"complete", summary.counts.complete}, {"pruned", summary.counts.pruned},
                               {"failed", summary.counts.failed}, {"queued", summary.counts.queued},
                               {"running", summary.counts.running}}},
                   {"recovered", summary.recovered},
                   {"interrupted", summary.interrupted},
                   {"exhausted", summary.exhausted},
                   {"front", front},
                   {"hypervolume", summary.hypervolume},
                   {"store_writes", {{"count", summary.storeWrites.count},
                                     {"median_ms", summary.storeWrites.medianMs},
                                     {"p99_ms", summary.storeWrites.p99Ms},
                                     {"max_ms", summary.storeWrites.maxMs},
                                     {"total_ms", summary.storeWrites.totalMs}}},
                   {"seconds", summary.seconds}});
    }
    if (human) {
        info("study " + studyPath + ": " + std::to_string(summary.counts.complete) + " complete, "
             + std::to_string(summary.counts.pruned) + " pruned, " + std::to_string(summary.counts.failed)
             + " failed; front of " + std::to_string(summary.front.size()) + " trials"
             + (summary.hypervolume > 0 ? ", hypervolume " + fmt("%.4f", summary.hypervolume) : "") + " ("
             + duration(summary.seconds) + ")");
        if (summary.exhausted)
            info("the space has no new valid spec left: the search stopped before " + std::to_string(so.trials) + " trials");
    }
    if (summary.interrupted) {
        info("interrupted: every finished trial is stored (" + std::to_string(summary.requeued)
             + " running trials requeued); run the same command to resume");
        return 1;
    }
    return 0;
}

const VerbRegistrar registrar(
    "search",
    "global multi-objective architecture search (NSGA-II over a hierarchical space; --asha stops "
    "weak trials early); resumable: the same command continues the study; --json: "
    "{\"counts\", \"front\", \"hypervolume\", ...} (docs/search.md)",
    &declareSearch, &runSearch);

} // namespace

} // namespace braggnac::cli
