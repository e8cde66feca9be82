// braggnac compress: quantisation-aware fine-tuning and iterative pruning of a trained model
// folder, one record per (bits, round) measured with the exact integer reference; the chosen
// result is saved as a quantised model folder (docs/compress.md, "The compress verb").
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <regex>
#include <sstream>
#include <string>

#include "cli.h"
#include "core/common/error.h"
#include "core/io/patchdataset.h"
#include "core/nn/compress.h"
#include "core/nn/model.h"
#include "core/search/studystore.h"

namespace braggnac::cli {

namespace {

std::string num(const char *format, double v)
{
    if (!std::isfinite(v))
        return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

void declareCompress(VerbSpec &v)
{
    v.positional("MODEL", "a trained model folder").existingFolder().input();
    v.positional("DATA", "a labelled patch file").existingFile().input();
    v.option("out", "MODEL2", "the compressed model folder to write").required().output(OutputKind::ModelFolder);
    v.option("bits", "B", "total bits of every weight, bias and activation format (2..16)").integer(-1000000, 1000000);
    v.option("bits-grid", "B1,B2,...", "several bit widths, one series of records each (e.g. 4,6,8,12)");
    v.option("prune-rounds", "R", "pruning rounds after the QAT fine-tune").integer(0, 1000).defaultValue("0");
    v.option("prune-fraction", "F", "fraction of the remaining weights pruned per round, in (0, 1)")
        .number(-1e9, 1e9).defaultValue("0.2");
    v.flag("structured", "prune whole output channels (ranked by mean |w|) instead of single weights");
    v.option("target-distance", "D", "choose the smallest BOPs whose validation mean distance is <= D px")
        .number(0, 1e9);
    v.option("epochs-per-round", "E", "QAT fine-tuning epochs after calibration and after each round")
        .integer(0, 100000).defaultValue("1");
    v.option("lr", "LR", "fine-tuning learning rate (Adam)").number(0, 1, true).defaultValue("0.0005");
    v.option("batch", "N", "fine-tuning batch size").integer(1, 1 << 20).defaultValue("256");
    v.option("calibration-patches", "N", "training patches for the integer-bit calibration")
        .integer(1, 1 << 24).defaultValue("1024");
    v.option("calibration-margin", "M", "extra integer bits of the calibrated activation formats (0: just the observed range)")
        .integer(0, 16)
        .defaultValue("1");
    v.option("study", "S.db", "store every record in this study file (an existing study, or a new compress study); "
                              "default: the study the model folder came from (S.models/trial-N beside S.db), if any");
}

// A model folder saved by a study driver lies at <folder>/<stem>.models/trial-<number>
// (StudyStore::suggestedModelPath): its study file and trial number, or {"", -1}.
std::pair<std::string, int> studyOfModel(const std::string &modelPath)
{
    namespace fs = std::filesystem;
    fs::path p = fs::path(modelPath).lexically_normal();
    if (p.filename().empty())
        p = p.parent_path();
    static const std::regex trial("trial-([0-9]{1,9})");
    std::smatch m;
    const std::string name = p.filename().string();
    const std::string parent = p.parent_path().filename().string();
    const std::string suffix = ".models";
    if (!std::regex_match(name, m, trial) || parent.size() <= suffix.size()
        || parent.compare(parent.size() - suffix.size(), suffix.size(), suffix) != 0)
        return {"", -1};
    const fs::path db = p.parent_path().parent_path() / (parent.substr(0, parent.size() - suffix.size()) + ".db");
    std::error_code ec;
    if (!fs::is_regular_file(db, ec))
        return {"", -1};
    return {db.string(), std::stoi(m[1].str())};
}

// A path as stored in the study: relative to the study's folder (as trials' model folders are,
// so a study moves with its folders), absolute when that is not possible.
std::string storedPath(const core::StudyStore &store, const std::string &path)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path abs = fs::absolute(path, ec);
    const fs::path rel = fs::proximate(abs, fs::absolute(store.folder(), ec), ec);
    return ec || rel.empty() ? abs.lexically_normal().string() : rel.lexically_normal().string();
}

std::vector<int> parseGrid(const std::string &text)
{
    std::vector<int> bits;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        std::size_t used = 0;
        int b = 0;
        try {
            b = std::stoi(item, &used);
        } catch (const std::exception &) {
            used = 0;
        }
        if (item.empty() || used != item.size())
            throw core::InputError("--bits-grid: '" + item + "' is not an integer (expected e.g. 4,6,8,12)");
        bits.push_back(b);
    }
    if (bits.empty())
        throw core::InputError("--bits-grid: empty (expected e.g. 4,6,8,12)");
    return bits;
}

int runCompress(const Args &args)
{
    const std::string modelPath = args.positionalAt(0, "MODEL (a model folder)");
    const std::string dataPath = args.positionalAt(1, "DATA (a labelled patch file)");
    const std::string out = args.required("out");
    core::CompressOptions o;
    if (args.has("bits") && args.has("bits-grid"))
        throw UsageError("--bits and --bits-grid: give one of them");
    if (args.has("bits"))
        o.bits = {int(args.getInt("bits", 8))};
    else if (args.has("bits-grid"))
        o.bits = parseGrid(args.get("bits-grid"));
    o.pruneRounds = int(args.getInt("prune-rounds", 0));
    o.pruneFraction = args.getDouble("prune-fraction", 0.2);
    o.structured = args.flag("structured");
    o.targetDistance = args.getDouble("target-distance", 0);
    o.epochsPerRound = int(args.getInt("epochs-per-round", 1));
    o.train.learningRate = args.getDouble("lr", 5e-4);
    o.train.batchSize = int(args.getInt("batch", 256));
    o.train.threads = args.threads();
    o.train.seed = args.seed(1);
    o.calibrationPatches = int(args.getInt("calibration-patches", 1024));
    o.margin = int(args.getInt("calibration-margin", 1));
    auto [studyPath, sourceTrial] = studyOfModel(modelPath);
    if (args.has("study")) {
        const std::string given = args.get("study");
        std::error_code ec;
        if (studyPath.empty() || !std::filesystem::equivalent(given, studyPath, ec))
            sourceTrial = -1;
        studyPath = given;
        checkStudyPath(studyPath);
    }
    args.finish(2);
    for (int b : o.bits) {
        if (b < 2 || b > 32)
            throw core::InputError(std::string(args.has("bits") ? "--bits" : "--bits-grid") + ": expected 2..32 bits (got "
                                   + std::to_string(b) + ")");
        if (b > 16)
            throw core::InputError(std::string(args.has("bits") ? "--bits" : "--bits-grid") + ": " + std::to_string(b)
                                   + " bits: quantisation-aware training runs the exact fixed-point forward in "
                                     "double, which holds formats of at most 16 bits (use 2..16)");
    }
    if (!(o.pruneFraction > 0 && o.pruneFraction < 1))
        throw core::InputError("--prune-fraction: expected a number in (0, 1) (got " + args.get("prune-fraction") + ")");
    o.validate("compress options");

    const core::Model start = core::Model::load(modelPath);
    if (core::hasQuantSpec(start))
        info(modelPath + ": already quantised; compressing its float weights again");
    const core::PatchDataset data = core::readPatchDataset(dataPath);
    if (!data.labelled())
        throw core::InputError(core::fileMessage(dataPath, "/centers: missing: the patches are unlabelled"));
    if (data.patchSize != start.spec().inputSize)
        throw core::InputError(core::fileMessage(
            dataPath, "/patches: patch size " + std::to_string(data.patchSize) + " does not match the model's input size "
                          + std::to_string(start.spec().inputSize) + " (" + modelPath + ")"));

    // The study: opened (or created as a compress study) before the work starts, so that a bad
    // file is refused at once; every record is stored as it is measured.
    std::optional<core::StudyStore> store;
    std::int64_t runId = 0;
    if (!studyPath.empty()) {
        if (std::filesystem::exists(studyPath)) {
            store.emplace(core::StudyStore::open(studyPath, core::StudyStore::Mode::ReadWrite));
        } else {
            core::StudyInfo study;
            study.name = std::filesystem::path(studyPath).stem().string();
            study.kind = core::StudyKind::Compress;
            study.dataset = core::describeDataset(dataPath);
            study.objectives = {{"distance", true}, {"bops", true}};
            study.options = {{"compress", o.toJson()}};
            study.seed = o.train.seed;
            store.emplace(core::StudyStore::createOrOpen(studyPath, study));
        }
        core::CompressRunInfo run;
        run.sourceModel = storedPath(*store, modelPath);
        run.sourceTrial = sourceTrial;
        run.dataset = core::describeDataset(dataPath);
        run.options = o.toJson();
        runId = store->beginCompressRun(run);
        if (!args.has("quiet"))
            info("records go to study " + studyPath + " (compress run " + std::to_string(runId)
                 + (sourceTrial >= 0 ? ", from trial " + std::to_string(sourceTrial) : std::string()) + ")");
    }

    const bool human = !args.json() || args.flag("progress");
    const core::Monitor monitor = makeMonitor(args, "compress");
    if (!args.has("quiet")) {
        endProgress();
        info("bits round  sparsity        BOPs   params  validation      test");
    }
    auto onRecord = [&](const core::CompressRecord &r) {
        if (store) {
            core::CompressRecordRow row;
            row.bits = r.bits;
            row.round = r.round;
            row.sparsity = r.sparsity;
            row.bops = r.bops;
            row.params = r.params;
            row.validation = r.validation;
            row.test = r.test;
            store->addCompressRecord(runId, row);
        }
        if (args.has("quiet"))
            return;
        endProgress();
        char line[160];
        std::snprintf(line, sizeof line, "%4d %5d  %8.4f  %10.4e  %7lld  %10s  %8s", r.bits, r.round, r.sparsity, r.bops,
                      static_cast<long long>(r.params), num("%.4f", r.validation).c_str(), num("%.4f", r.test).c_str());
        info(line);
    };
    core::CompressResult result;
    try {
        result = core::compressModel(start, data, o, monitor, onRecord);
    } catch (const core::InputError &e) {
        const std::string what = e.what();
        if (what.rfind("/", 0) == 0)
            throw core::InputError(core::fileMessage(dataPath, what));
        throw;
    }
    result.model->save(out);
    if (store)
        store->finishCompressRun(runId, result.chosen, storedPath(*store, out));
    const core::CompressRecord &c = result.records[std::size_t(result.chosen)];
    if (args.json()) {
        nlohmann::json j = result.toJson();
        j["out"] = out;
        if (store) {
            j["study"] = studyPath;
            j["compress_run"] = runId;
        }
        printJson(j);
    }
    if (human)
        info("chosen: " + std::to_string(c.bits) + " bits, round " + std::to_string(c.round) + ", sparsity "
             + num("%.4f", c.sparsity) + ", BOPs " + num("%.4e", c.bops) + ", validation " + num("%.4f", c.validation)
             + " px, test " + num("%.4f", c.test) + " px; saved to " + out);
    (void)human;
    return 0;
}

const VerbRegistrar registrar(
    "compress",
    "quantisation-aware fine-tuning (exact fixed point, 2..16 bits) and iterative L1 pruning of a model "
    "folder; one record per (bits, round) measured with the integer reference, a table on stderr; "
    "saves the chosen result (smallest BOPs within --target-distance, else the best validation distance) "
    "with quantization.json and its pruning masks (docs/compress.md); --json: {\"records\": [{bits, round, "
    "sparsity, bops, params, validation, test}], \"chosen\": {..., \"index\"}, \"out\"}; with --study (or a model "
    "from a study) every record is also stored in the study file (braggnac study S.db --compress lists them)",
    &declareCompress, &runCompress);

} // namespace

} // namespace braggnac::cli
