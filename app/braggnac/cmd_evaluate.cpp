// braggnac evaluate: distance statistics of a trained model on one split of a labelled dataset.
#include <algorithm>
#include <cstdio>
#include <string>

#include "cli.h"
#include "core/nn/compress.h"
#include "core/common/error.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"

namespace braggnac::cli {

namespace {

int parseSplit(const std::string &name)
{
    if (name == "train")
        return 0;
    if (name == "validation")
        return 1;
    if (name == "test")
        return 2;
    if (name == "all")
        return -1;
    throw UsageError("--split: expected train, validation, test or all, got '" + name + "'");
}

std::string row(const std::string &name, const core::DistanceStats &s)
{
    char buf[200];
    std::snprintf(buf, sizeof buf, "%-16s %8zu %9.4f %9.4f %9.4f %9.4f %9.4f", name.c_str(), s.n,
                  s.mean, s.p50, s.p75, s.p95, s.max);
    return buf;
}

void declareEvaluate(VerbSpec &v)
{
    v.positional("MODEL", "a model folder").existingFolder().input();
    v.positional("DATA", "a labelled patch file").existingFile().input();
    v.option("split", "SPLIT", "which split to evaluate").choices({"test", "validation", "train", "all"}).defaultValue("test");
}

int runEvaluate(const Args &args)
{
    const std::string modelPath = args.positionalAt(0, "MODEL (a model folder)");
    const std::string dataPath = args.positionalAt(1, "DATA (a labelled patch file)");
    const std::string splitName = args.get("split", "test");
    const int split = parseSplit(splitName);
    args.finish(2);

    core::setTorchThreads(args.threads());
    const core::Model model = core::Model::load(modelPath);
    const core::PatchDataset data = core::readPatchDataset(dataPath);
    core::Evaluation ev;
    // A quantised model folder is what the FPGA runs: evaluate it with the fixed-point engine
    // (the integer reference), not with LibTorch float on its weights.
    const bool fixed = core::hasQuantSpec(model);
    try {
        ev = fixed ? core::evaluateQuantised(model, data, split, std::max(1, args.threads()))
                   : core::evaluateModel(model, data, split);
    } catch (const core::InputError &e) {
        throw core::InputError(core::fileMessage(dataPath, e.what()));
    }

    if (args.json()) {
        nlohmann::json j = ev.overall.toJson();
        j["split"] = splitName;
        j["engine"] = fixed ? "fixed" : "torch";
        if (!ev.subsets.empty()) {
            nlohmann::json subsets = nlohmann::json::object();
            for (const auto &[name, stats] : ev.subsets)
                subsets[name] = stats.toJson();
            j["subsets"] = subsets;
        }
        printJson(j);
    } else {
        info("distance to the label (px) on the " + splitName + " split of " + dataPath);
        info("subset                  n      mean       p50       p75       p95       max");
        info(row("all", ev.overall));
        for (const auto &[name, stats] : ev.subsets)
            info(row(name, stats));
    }
    return 0;
}

const VerbRegistrar registrar(
    "evaluate",
    "distances (px) between a model's predictions and the labels of one split; --json: "
    "{\"mean\", \"p50\", \"p75\", \"p95\", \"max\", \"n\", \"subsets\" (by /flags/*)}",
    &declareEvaluate, &runEvaluate);

} // namespace

} // namespace braggnac::cli
