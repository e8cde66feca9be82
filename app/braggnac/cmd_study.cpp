// braggnac study: reads a study file (while a search may still be writing it): every trial, the
// Pareto front, the best trial and its model, a CSV table, or an export to Optuna's own storage.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "cli.h"
#include "core/arch/archspec.h"
#include "core/common/atomicfile.h"
#include "core/common/error.h"
#include "core/io/patchdataset.h"
#include "core/nn/trial.h"
#include "core/search/driver.h"
#include "core/search/optunaexport.h"
#include "core/search/space.h"
#include "core/search/studystore.h"

namespace braggnac::cli {

namespace {

namespace fs = std::filesystem;

void declareStudy(VerbSpec &v)
{
    v.positional("S.db", "a study file").existingFile().input();
    v.flag("pareto", "only the Pareto front (among the trials of the highest fidelity reached)");
    v.flag("best", "only the best trial: the front's lowest first objective (validation distance)");
    v.option("out", "MODEL", "with --best: write its model folder here").output(OutputKind::ModelFolder);
    v.option("retrain-epochs", "E", "with --best --out: retrain it with the study's recipe for E epochs instead of copying")
        .integer(1, 1000000);
    v.option("data", "DATA", "with --retrain-epochs: the labelled patch file (default: the study's dataset)")
        .existingFile()
        .input();
    v.flag("csv", "print the trials as a CSV table on stdout");
    v.option("to-optuna", "O.db", "write the study into Optuna's own SQLite storage (a new file)");
    v.flag("compress", "list the compress runs stored in the study and their (bits, round) records (also with --json, --csv)");
}

nlohmann::json trialJson(const core::StudyStore &store, const core::TrialRecord &t)
{
    return {{"id", t.id},
            {"number", t.number},
            {"state", core::trialStateName(t.state)},
            {"spec", t.spec},
            {"spec_hash", t.specHash},
            {"hyper_params", t.hyperParams},
            {"fidelity", t.fidelity},
            {"generation", t.generation},
            {"values", t.values},
            {"metrics", t.metrics},
            {"cost", t.cost},
            {"seconds", t.seconds},
            {"queued_at", t.queuedAt},
            {"started_at", t.startedAt},
            {"finished_at", t.finishedAt},
            {"host", t.host},
            {"rank", t.rank},
            {"error", t.error},
            {"model", t.modelPath.empty() ? std::string() : store.resolve(t.modelPath)}};
}

std::string csvField(const std::string &s)
{
    if (s.find_first_of(",\"\n") == std::string::npos)
        return s;
    std::string q = "\"";
    for (char c : s)
        q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

std::string num(double v)
{
    if (!std::isfinite(v))
        return "";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
}

void copyFolder(const fs::path &from, const fs::path &to)
{
    for (const auto &entry : fs::recursive_directory_iterator(from)) {
        const fs::path rel = fs::relative(entry.path(), from);
        if (entry.is_directory())
            fs::create_directories(to / rel);
        else
            fs::copy_file(entry.path(), to / rel, fs::copy_options::overwrite_existing);
    }
}

// One compress record as JSON (NaN distances -> null).
nlohmann::json compressRecordJson(const core::StudyStore &store, const core::CompressRecordRow &r)
{
    auto finite = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
    return {{"bits", r.bits},
            {"round", r.round},
            {"sparsity", r.sparsity},
            {"bops", r.bops},
            {"params", r.params},
            {"validation", finite(r.validation)},
            {"test", finite(r.test)},
            {"model", r.modelPath.empty() ? nlohmann::json() : nlohmann::json(store.resolve(r.modelPath))}};
}

// study S.db --compress: the compress runs and their records (docs/study-store.md).
int printCompressRuns(const Args &args, const core::StudyStore &store, bool csv)
{
    const std::vector<core::CompressRun> runs = store.compressRuns();
    if (csv) {
        std::cout << "run,source_model,source_trial,finished,chosen,bits,round,sparsity,bops,params,validation,test,model\n";
        for (const auto &run : runs)
            for (std::size_t i = 0; i < run.records.size(); ++i) {
                const auto &r = run.records[i];
                std::cout << run.info.id << "," << csvField(store.resolve(run.info.sourceModel)) << "," << run.info.sourceTrial << ","
                          << (run.info.finished ? 1 : 0) << "," << (int(i) == run.info.chosen ? 1 : 0) << "," << r.bits
                          << "," << r.round << "," << num(r.sparsity) << "," << num(r.bops) << "," << r.params << ","
                          << num(r.validation) << "," << num(r.test) << "," << csvField(store.resolve(r.modelPath)) << "\n";
            }
        return 0;
    }
    if (args.json()) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto &run : runs) {
            nlohmann::json records = nlohmann::json::array();
            for (const auto &r : run.records)
                records.push_back(compressRecordJson(store, r));
            list.push_back({{"id", run.info.id},
                            {"created", run.info.created},
                            {"source_model", store.resolve(run.info.sourceModel)},
                            {"source_trial", run.info.sourceTrial < 0 ? nlohmann::json() : nlohmann::json(run.info.sourceTrial)},
                            {"dataset", run.info.dataset.toJson()},
                            {"options", run.info.options},
                            {"finished", run.info.finished},
                            {"chosen", run.info.chosen < 0 ? nlohmann::json() : nlohmann::json(run.info.chosen)},
                            {"model", run.info.modelPath.empty() ? nlohmann::json() : nlohmann::json(store.resolve(run.info.modelPath))},
                            {"records", records}});
        }
        printJson({{"study", store.info().name}, {"compress_runs", list}});
        return 0;
    }
    cli::info("study '" + store.info().name + "': " + std::to_string(runs.size()) + " compress run(s)");
    for (const auto &run : runs) {
        cli::info("run " + std::to_string(run.info.id) + ": " + store.resolve(run.info.sourceModel)
                  + (run.info.sourceTrial >= 0 ? " (trial " + std::to_string(run.info.sourceTrial) + ")" : std::string())
                  + ", " + std::to_string(run.records.size()) + " records"
                  + (run.info.finished ? ", chosen " + std::to_string(run.info.chosen) + " -> " + store.resolve(run.info.modelPath)
                                       : std::string(", not finished")));
        cli::info("  bits round  sparsity        BOPs   params  validation      test");
        for (std::size_t i = 0; i < run.records.size(); ++i) {
            const auto &r = run.records[i];
            char line[200];
            std::snprintf(line, sizeof line, "  %4d %5d  %8.4f  %10.4e  %7lld  %10s  %8s%s", r.bits, r.round, r.sparsity,
                          r.bops, static_cast<long long>(r.params), num(r.validation).c_str(), num(r.test).c_str(),
                          int(i) == run.info.chosen ? "  (chosen)" : "");
            cli::info(line);
        }
    }
    return 0;
}

int runStudy(const Args &args)
{
    const std::string path = args.positionalAt(0, "S.db (a study file)");
    const bool pareto = args.flag("pareto"), best = args.flag("best"), csv = args.flag("csv");
    const std::string out = args.get("out"), optuna = args.get("to-optuna");
    const bool compress = args.flag("compress");
    const bool retrain = args.has("retrain-epochs");
    args.finish(1);
    if (!out.empty() && !best)
        throw UsageError("--out needs --best (which trial's model to write)");
    if (retrain && out.empty())
        throw UsageError("--retrain-epochs needs --best --out MODEL");
    if (args.has("data") && !retrain)
        throw UsageError("--data is only used with --retrain-epochs");
    if (csv && args.json())
        throw UsageError("--csv and --json both print on stdout: choose one");

    if (compress && (pareto || best || !out.empty() || !optuna.empty() || retrain))
        throw UsageError("--compress lists the compress records: not with --pareto, --best, --out or --to-optuna");

    const core::StudyStore store = core::StudyStore::open(path, core::StudyStore::Mode::ReadOnly);
    if (compress)
        return printCompressRuns(args, store, csv);
    const core::StudyInfo info = store.info();

    if (!optuna.empty()) {
        core::OptunaExportOptions o;
        if (info.space.is_object() && !info.space.empty()) {
            try {
                const core::SearchSpace space = core::SearchSpace::fromJson(info.space, path + " (its space)");
                o.distributions = core::optunaDistributions(space.definition());
            } catch (const core::InputError &) {
                // A space this build cannot read: export with the observed values only.
            }
        }
        const core::OptunaExportSummary s = core::exportToOptuna(store, optuna, o);
        if (!args.json())
            cli::info("wrote " + std::to_string(s.trials) + " trials (" + std::to_string(s.params.size())
                      + " parameters) of study '" + info.name + "' to Optuna storage " + optuna
                      + "; open it with optuna.load_study(study_name='" + info.name + "', storage='sqlite:///"
                      + optuna + "')");
        if (!pareto && !best && !csv && !args.json())
            return 0;
    }

    std::vector<core::TrialRecord> selected;
    if (pareto || best) {
        const std::vector<core::TrialRecord> front = core::studyFront(store);
        if (best) {
            if (front.empty())
                throw core::InputError(core::fileMessage(path, "no finished trial with values yet: there is no best trial"));
            selected = {front.front()};
        } else {
            selected = front;
        }
    } else {
        selected = store.listTrials();
    }

    if (!out.empty()) {
        const core::TrialRecord &t = selected.front();
        if (retrain) {
            nlohmann::json recipeJson = info.options.value("recipe", nlohmann::json::object());
            core::TrainOptions recipe = core::TrainOptions::fromJson(recipeJson, path + " (its recipe)");
            recipe.epochs = int(args.getInt("retrain-epochs", recipe.epochs));
            recipe.threads = args.threads();
            if (args.has("seed"))
                recipe.seed = args.seed(recipe.seed);
            const std::string dataPath = args.has("data") ? args.get("data") : info.dataset.path;
            recipe.dataSource = dataPath;
            if (!args.has("data")) {
                const core::DatasetInfo now = core::describeDataset(dataPath);
                if (now.size != info.dataset.size || (!info.dataset.contentHash.empty() && now.contentHash != info.dataset.contentHash))
                    throw core::InputError(core::fileMessage(dataPath, "is not the dataset the study was made with (size or content changed); pass --data"));
            }
            const core::ArchSpec spec = core::ArchSpec::fromJson(t.spec, path + " trial " + std::to_string(t.number));
            const core::PatchDataset data = core::readPatchDataset(dataPath);
            const core::Monitor monitor = makeMonitor(args, "retrain");
            const core::TrialResult r = core::runTrial(spec, recipe, core::TrialBudget{}, data, monitor);
            endProgress();
            if (r.failed())
                throw core::Error(core::fileMessage(dataPath, "retraining trial " + std::to_string(t.number) + " failed: " + r.failure + " (nothing saved)"));
            r.model->save(out);
            if (!args.json())
                cli::info("retrained trial " + std::to_string(t.number) + " for " + std::to_string(r.epochs)
                          + " epochs: test mean " + (r.test.present() ? num(r.test.overall.mean) + " px" : "-")
                          + "; model saved to " + out);
            selected.front().metrics["retrained"] = r.metricsJson();
        } else {
            if (t.modelPath.empty())
                throw core::InputError(core::fileMessage(path, "trial " + std::to_string(t.number)
                                                                   + " has no model folder; use --retrain-epochs E"));
            const std::string from = store.resolve(t.modelPath);
            if (!fs::is_regular_file(fs::path(from) / "model.json"))
                throw core::InputError(core::fileMessage(from, "the model folder of trial " + std::to_string(t.number)
                                                                   + " is missing (moved?); use --retrain-epochs E"));
            core::AtomicOutput output(out, core::AtomicOutput::Kind::Folder);
            copyFolder(from, output.tempPath());
            output.commit();
            if (!args.json())
                cli::info("copied the model of trial " + std::to_string(t.number) + " to " + out);
        }
    }

    if (csv) {
        std::cout << "number,state,fidelity,generation";
        for (const auto &o : info.objectives)
            std::cout << "," << csvField(o.name);
        std::cout << ",validation_mean,test_mean,params,macs,bops,seconds,host,rank,model,error\n";
        for (const auto &t : selected) {
            std::cout << t.number << "," << core::trialStateName(t.state) << "," << t.fidelity << "," << t.generation;
            for (std::size_t i = 0; i < info.objectives.size(); ++i)
                std::cout << "," << (i < t.values.size() ? num(t.values[i]) : std::string());
            auto metric = [&](const char *split) {
                if (t.metrics.is_object() && t.metrics.contains(split) && t.metrics[split].contains("mean")
                    && t.metrics[split]["mean"].is_number())
                    return num(t.metrics[split]["mean"].get<double>());
                return std::string();
            };
            auto cost = [&](const char *key) {
                return t.cost.is_object() && t.cost.contains(key) && t.cost[key].is_number()
                    ? num(t.cost[key].get<double>())
                    : std::string();
            };
            std::cout << "," << metric("validation") << "," << metric("test") << "," << cost("params") << ","
                      << cost("macs") << "," << cost("bops") << "," << num(t.seconds) << "," << csvField(t.host)
                      << "," << t.rank << "," << csvField(t.modelPath.empty() ? "" : store.resolve(t.modelPath))
                      << "," << csvField(t.error) << "\n";
        }
        return 0;
    }
    if (args.json()) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto &t : selected)
            list.push_back(trialJson(store, t));
        const core::StateCounts c = store.counts();
        printJson({{"study", info.toJson()},
                   {"counts", {{"queued", c.queued}, {"running", c.running}, {"complete", c.complete},
                               {"failed", c.failed}, {"pruned", c.pruned}}},
                   {"trials", list}});
        return 0;
    }
    if (out.empty()) {
        const core::StateCounts c = store.counts();
        cli::info("study '" + info.name + "' (" + core::studyKindName(info.kind) + "): " + std::to_string(c.complete)
                  + " complete, " + std::to_string(c.pruned) + " pruned, " + std::to_string(c.failed) + " failed, "
                  + std::to_string(c.running) + " running, " + std::to_string(c.queued) + " queued");
        for (const auto &t : selected) {
            std::string line = "  #" + std::to_string(t.number) + " " + core::trialStateName(t.state) + " e"
                + std::to_string(t.fidelity);
            for (std::size_t i = 0; i < t.values.size() && i < info.objectives.size(); ++i)
                line += "  " + info.objectives[i].name + " " + num(t.values[i]);
            cli::info(line);
        }
    }
    return 0;
}

const VerbRegistrar registrar(
    "study",
    "reads a study (also while a search writes it): --json {\"trials\":[{\"id\", \"state\", \"spec\", "
    "\"fidelity\", \"metrics\", \"cost\", \"values\"}...]}; --pareto the front (highest fidelity "
    "reached), --best the front's lowest distance, --out MODEL its model folder (--retrain-epochs E "
    "retrains it with the study's recipe), --csv a table, --to-optuna O.db Optuna's own storage, "
    "--compress the compress runs and their (bits, round) records",
    &declareStudy, &runStudy);

} // namespace

} // namespace braggnac::cli
