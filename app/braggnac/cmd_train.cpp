// braggnac train: trains a built-in or JSON-spec network on a labelled patch dataset and saves a
// model folder (spec, weights, recipe, metrics with history and the test-split evaluation).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "cli.h"
#include "core/common/error.h"
#include "core/io/patchdataset.h"
#include "core/arch/archspec.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"

namespace braggnac::cli {

namespace {

std::string fmt(const char *format, double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

nlohmann::json evaluationJson(const core::Evaluation &ev)
{
    nlohmann::json j = ev.overall.toJson();
    if (!ev.subsets.empty()) {
        nlohmann::json subsets = nlohmann::json::object();
        for (const auto &[name, stats] : ev.subsets)
            subsets[name] = stats.toJson();
        j["subsets"] = subsets;
    }
    return j;
}

int runTrain(const Args &args)
{
    const std::string dataPath = args.positionalAt(0, "DATA (a labelled patch file)");
    const std::string arch = args.required("arch");
    const std::string out = args.required("out");

    core::TrainOptions o;
    o.epochs = int(args.getInt("epochs", o.epochs));
    o.batchSize = int(args.getInt("batch", o.batchSize));
    o.device = args.get("device", o.device);
    o.learningRate = args.getDouble("lr", o.learningRate);
    o.optimizer = args.get("optimizer", o.optimizer);
    o.schedule = args.get("schedule", o.schedule);
    o.weightDecay = args.getDouble("weight-decay", o.weightDecay);
    o.momentum = args.getDouble("momentum", o.momentum);
    o.rmspropMomentum = args.getDouble("rmsprop-momentum", o.rmspropMomentum);
    o.stepSize = int(args.getInt("step-size", o.stepSize));
    o.gamma = args.getDouble("gamma", o.gamma);
    o.patience = int(args.getInt("patience", o.patience));
    o.shift = int(args.getInt("shift", o.shift));
    o.threads = args.threads();
    o.seed = args.seed(1);
    o.dataSource = dataPath;
    args.finish(1);
    o.validate("train options");

    const core::ArchSpec spec = core::resolveArch(arch);
    const core::PatchDataset data = core::readPatchDataset(dataPath);

    const bool human = !args.json() || args.flag("progress");
    const core::Monitor monitor = makeMonitor(args, "train");
    const auto t0 = std::chrono::steady_clock::now();
    auto onEpoch = [&](const core::EpochStats &e) {
        if (!human)
            return;
        endProgress();
        info("epoch " + std::to_string(e.epoch) + "/" + std::to_string(o.epochs) + "  loss "
             + fmt("%.3e", e.trainLoss) + "  validation mean " + fmt("%.4f", e.validationMean)
             + " px  lr " + fmt("%.3e", e.learningRate) + "  " + fmt("%.1f", e.seconds) + " s");
    };
    core::TrainResult result = core::trainModel(spec, data, o, monitor, onEpoch);

    core::Evaluation test;
    try {
        test = core::evaluateModel(result.model, data, 2);
    } catch (const core::InputError &e) {
        throw core::InputError(core::fileMessage(dataPath, e.what()));
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    result.model.recipe["data"]["file"] = dataPath;
    result.model.recipe["arch"] = arch;
    result.model.metrics["test"] = evaluationJson(test);
    result.model.metrics["seconds"] = seconds;
    result.model.save(out);

    if (args.json()) {
        nlohmann::json j = {{"epochs", result.history.size()},
                            {"best_epoch", result.bestEpoch},
                            {"stopped_early", result.stoppedEarly},
                            {"test", evaluationJson(test)},
                            {"seconds", seconds},
                            {"params", result.model.parameterCount()},
                            {"device", result.model.recipe.value("device_used", std::string())}};
        if (result.model.metrics.contains("validation"))
            j["validation"] = result.model.metrics["validation"];
        printJson(j);
    } else {
        info("best epoch " + std::to_string(result.bestEpoch) + " of "
             + std::to_string(result.history.size())
             + (result.stoppedEarly ? " (stopped early)" : "") + "; test mean "
             + fmt("%.4f", test.overall.mean) + " px, p95 " + fmt("%.4f", test.overall.p95)
             + " px over " + std::to_string(test.overall.n) + " patches; model saved to " + out);
    }
    return 0;
}

const VerbRegistrar registrar(
    "train",
    "train DATA --arch braggnn|nac|SPEC.json --out MODEL [--epochs 50] [--batch 256] "
    "[--device auto|cpu|cuda] [--optimizer rmsprop|adam|sgd] [--lr 1.5e-3] "
    "[--schedule cosine|step|exponential|none] [--weight-decay 2.2e-9] [--momentum 0.9] "
    "[--step-size 10] [--gamma 0.5] [--patience 0] [--shift 0] [--threads N] [--seed 1] [--json]",
    "trains a network on the train split, early-stops on the validation split, evaluates the test "
    "split and saves a model folder; --json: {\"epochs\", \"best_epoch\", \"test\":{mean,p50,p75,"
    "p95,n}, \"seconds\"}",
    &runTrain);

} // namespace

} // namespace braggnac::cli
