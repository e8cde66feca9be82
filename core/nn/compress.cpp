#include "core/nn/compress.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include <torch/torch.h>

#include "core/common/error.h"
#include "core/compress/fixedengine.h"
#include "core/compress/intref.h"
#include "core/nn/qat.h"
#include "core/nn/torch_net.h"
#include "core/nn/trial.h"

namespace braggnac::core {

namespace {

const char *const kQuantFormat = "braggnac-quantization";

std::vector<std::uint8_t> usable(const PatchDataset &data)
{
    std::vector<std::uint8_t> use(data.size(), 1);
    auto conv = data.extraFlags.find("/fit/usable");
    if (conv == data.extraFlags.end() || conv->second.size() != use.size())
        conv = data.extraFlags.find("/fit/converged");
    if (conv != data.extraFlags.end() && conv->second.size() == use.size())
        for (std::size_t i = 0; i < use.size(); ++i)
            use[i] = conv->second[i] != 0;
    return use;
}

/// Rows of a split as evaluateModel selects them (split match, /fit/converged != 0).
std::vector<std::size_t> evalRows(const PatchDataset &data, int split)
{
    std::vector<std::uint8_t> splits;
    if (split >= 0)
        splits = effectiveSplit(data);
    const std::vector<std::uint8_t> *converged = nullptr;
    auto conv = data.extraFlags.find("/fit/converged");
    if (conv != data.extraFlags.end() && conv->second.size() == data.size())
        converged = &conv->second;
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < data.size(); ++i)
        if ((split < 0 || splits[i] == split) && !(converged && (*converged)[i] == 0))
            rows.push_back(i);
    return rows;
}

std::vector<std::size_t> trainRows(const PatchDataset &data)
{
    const auto splits = effectiveSplit(data);
    const auto use = usable(data);
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < data.size(); ++i)
        if (splits[i] == 0 && use[i])
            rows.push_back(i);
    return rows;
}

std::vector<float> gatherPatches(const PatchDataset &data, const std::vector<std::size_t> &rows)
{
    const std::size_t area = std::size_t(data.patchSize) * std::size_t(data.patchSize);
    std::vector<float> raw(rows.size() * area);
    for (std::size_t k = 0; k < rows.size(); ++k)
        std::copy_n(data.patch(rows[k]), area, raw.data() + k * area);
    return raw;
}

void checkData(const Model &model, const PatchDataset &data)
{
    data.validate("patch dataset");
    if (!data.labelled())
        throw InputError("/centers: missing: the patches are unlabelled");
    if (data.patchSize != model.spec().inputSize)
        throw InputError("/patches: patch size " + std::to_string(data.patchSize)
                         + " does not match the model's input size " + std::to_string(model.spec().inputSize));
}

/// Copies every float parameter and buffer of `from` (by state_dict name) into `model`.
void loadNamed(Model &model, const NamedTensors &from)
{
    torch::NoGradGuard g;
    auto put = [&](const std::string &key, torch::Tensor &t) {
        auto it = from.find(key);
        if (it == from.end() || !t.is_floating_point())
            return;
        auto src = torch::from_blob(const_cast<float *>(it->second.values.data()), t.sizes(), torch::kFloat);
        t.copy_(src);
    };
    for (auto &p : model.impl().net->named_parameters(true))
        put(p.key(), p.value());
    for (auto &b : model.impl().net->named_buffers(true))
        put(b.key(), b.value());
}

Model copyModel(const Model &m)
{
    Model c(m.spec(), 0);
    loadNamed(c, m.namedParameters());
    c.recipe = m.recipe;
    c.metrics = m.metrics;
    c.quantization = m.quantization;
    return c;
}

std::map<std::string, torch::Tensor> maskTensors(const Model &model, const PruneMasks &masks)
{
    std::map<std::string, torch::Tensor> out;
    for (auto &p : model.impl().net->named_parameters(true)) {
        auto it = masks.keep.find(p.key());
        if (it == masks.keep.end())
            continue;
        if (std::int64_t(it->second.size()) != p.value().numel())
            throw InputError("pruning masks: " + p.key() + ": " + std::to_string(it->second.size())
                             + " entries, the weight has " + std::to_string(p.value().numel()));
        std::vector<float> f(it->second.begin(), it->second.end());
        out[p.key()] = torch::tensor(f, torch::kFloat).view(p.value().sizes()).to(p.value().device());
    }
    return out;
}

void enforce(const Model &model, const std::map<std::string, torch::Tensor> &masks)
{
    torch::NoGradGuard g;
    for (auto &p : model.impl().net->named_parameters(true)) {
        auto it = masks.find(p.key());
        if (it != masks.end())
            p.value().mul_(it->second);
    }
}

double meanOf(const Evaluation &e)
{
    return e.overall.n ? e.overall.mean : std::numeric_limits<double>::quiet_NaN();
}

/// Distances of the quantised network on `rows`, run by the fixed-point engine (bit-exact with
/// the integer reference, docs/compress.md).
Evaluation evaluateRows(const FixedEngine &engine, const PatchDataset &data, const std::vector<std::size_t> &rows,
                        int threads)
{
    Evaluation ev;
    ev.indices = rows;
    const std::vector<float> raw = gatherPatches(data, rows);
    const std::vector<double> pred = engine.predict(raw.data(), rows.size(), std::max(1, threads));
    ev.predictions.assign(pred.begin(), pred.end());
    std::vector<float> labels(rows.size() * 2);
    for (std::size_t k = 0; k < rows.size(); ++k) {
        labels[2 * k] = data.centers[2 * rows[k]];
        labels[2 * k + 1] = data.centers[2 * rows[k] + 1];
    }
    std::vector<std::pair<std::string, std::vector<std::uint8_t>>> flagRows;
    for (const auto &[path, flags] : data.extraFlags) {
        if (path.rfind("/flags/", 0) != 0 || flags.size() != data.size())
            continue;
        std::vector<std::uint8_t> r(rows.size());
        for (std::size_t k = 0; k < rows.size(); ++k)
            r[k] = flags[rows[k]];
        flagRows.emplace_back(path.substr(7), std::move(r));
    }
    summariseEvaluation(ev, labels, flagRows);
    return ev;
}

/// Non-zero quantised weights and biases of the conv / linear / layer norm ops.
std::int64_t nonZeroParams(const IntegerReference &ref)
{
    std::int64_t n = 0;
    for (const PlanOp &op : ref.plan().ops)
        if (op.kind == OpKind::Conv || op.kind == OpKind::Linear || op.kind == OpKind::LayerNorm) {
            for (auto v : ref.weightsRaw(op.name))
                n += v != 0;
            for (auto v : ref.biasRaw(op.name))
                n += v != 0;
        }
    return n;
}

} // namespace

void CompressOptions::validate(const std::string &source) const
{
    auto bad = [&](const std::string &field, const std::string &what) {
        throw InputError(source + ": " + field + ": " + what);
    };
    if (bits.empty())
        bad("bits", "at least one bit width is needed");
    for (int b : bits) {
        if (b < 2 || b > 32)
            bad("bits", "expected 2..32 bits (got " + std::to_string(b) + ")");
        if (b > 16)
            bad("bits", std::to_string(b) + " bits: quantisation-aware training runs the exact fixed-point "
                        "forward in double, which holds formats of at most 16 bits on these networks (use 2..16)");
    }
    if (pruneRounds < 0)
        bad("prune-rounds", "expected >= 0 (got " + std::to_string(pruneRounds) + ")");
    if (!(pruneFraction > 0 && pruneFraction < 1))
        bad("prune-fraction", "expected a number in (0, 1) (got " + std::to_string(pruneFraction) + ")");
    if (!std::isfinite(targetDistance) || targetDistance < 0)
        bad("target-distance", "expected a finite distance >= 0 px");
    if (epochsPerRound < 0)
        bad("epochs-per-round", "expected >= 0");
    if (calibrationPatches < 1)
        bad("calibration-patches", "expected >= 1");
    if (train.learningRate <= 0 || !std::isfinite(train.learningRate))
        bad("lr", "expected a positive learning rate");
    if (train.batchSize < 1)
        bad("batch", "expected >= 1");
}

nlohmann::json CompressOptions::toJson() const
{
    return {{"bits", bits},
            {"prune_rounds", pruneRounds},
            {"prune_fraction", pruneFraction},
            {"structured", structured},
            {"target_distance", targetDistance},
            {"epochs_per_round", epochsPerRound},
            {"lr", train.learningRate},
            {"batch", train.batchSize},
            {"seed", train.seed},
            {"optimizer", "adam"},
            {"calibration_patches", calibrationPatches},
            {"margin", margin}};
}

nlohmann::json CompressRecord::toJson() const
{
    auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    return {{"bits", bits},        {"round", round},           {"sparsity", sparsity}, {"bops", bops},
            {"params", params},    {"validation", num(validation)}, {"test", num(test)}};
}

nlohmann::json CompressResult::toJson() const
{
    nlohmann::json r = nlohmann::json::array();
    for (const auto &rec : records)
        r.push_back(rec.toJson());
    nlohmann::json j = {{"records", r}};
    if (chosen >= 0) {
        j["chosen"] = records[std::size_t(chosen)].toJson();
        j["chosen"]["index"] = chosen;
    }
    return j;
}

bool hasQuantSpec(const Model &model)
{
    return model.quantization.is_object() && model.quantization.value("format", std::string()) == kQuantFormat;
}

QuantSpec modelQuantSpec(const Model &model, const std::string &source)
{
    if (!hasQuantSpec(model))
        throw InputError(source + ": format: not a quantisation spec (\"format\": \"" + kQuantFormat
                         + "\" expected; the model is not quantised)");
    return QuantSpec::fromJson(model.quantization, LayerPlan::lower(model.spec()), source);
}

PruneMasks modelMasks(const Model &model, const std::string &source)
{
    const LayerPlan plan = LayerPlan::lower(model.spec());
    if (!model.recipe.is_object() || !model.recipe.contains("pruning"))
        return PruneMasks::full(plan);
    const auto &p = model.recipe["pruning"];
    if (!p.is_object() || !p.contains("masks"))
        throw InputError(source + ": pruning.masks: missing");
    return PruneMasks::fromJson(p["masks"], plan, source + ": pruning.masks");
}

Evaluation evaluateQuantised(const Model &model, const PatchDataset &data, int split, int threads)
{
    checkData(model, data);
    if (split < -1 || split > 2)
        throw InputError("split: expected -1 (all), 0, 1 or 2, got " + std::to_string(split));
    const auto rows = evalRows(data, split);
    if (rows.empty())
        throw InputError("split: the split holds no patches to evaluate; an empty split has no score");
    const FixedEngine engine(LayerPlan::lower(model.spec()), model.namedParameters(), modelQuantSpec(model));
    return evaluateRows(engine, data, rows, threads);
}

void fineTune(Model &model, const PatchDataset &data, const QuantSpec *spec, const PruneMasks &masks, int epochs,
              const TrainOptions &options, const Monitor &monitor)
{
    checkData(model, data);
    ScopedTorchThreads threads(options.threads);
    PeakNet &net = model.impl().net;
    const auto maskT = maskTensors(model, masks);
    enforce(model, maskT);
    if (epochs <= 0)
        return;
    const auto rows = trainRows(data);
    if (rows.empty())
        throw InputError("/split: no usable training rows (split 0)");
    const int s = data.patchSize;
    const std::vector<float> raw = gatherPatches(data, rows);
    const torch::Tensor x = normalisePatches(raw.data(), rows.size(), s);
    std::vector<float> yv(rows.size() * 2);
    for (std::size_t k = 0; k < rows.size(); ++k) {
        yv[2 * k] = data.centers[2 * rows[k]] / float(s);
        yv[2 * k + 1] = data.centers[2 * rows[k] + 1] / float(s);
    }
    const torch::Tensor y = torch::tensor(yv, torch::kFloat).view({std::int64_t(rows.size()), 2});

    std::unique_ptr<FakeQuantForward> fq;
    if (spec)
        fq = std::make_unique<FakeQuantForward>(net, *spec);
    net->train();
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(options.learningRate));
    std::mt19937_64 rng(options.seed);
    const std::int64_t n = x.size(0), batch = std::min<std::int64_t>(options.batchSize, n);
    std::int64_t batches = (n + batch - 1) / batch;
    if (batches > 1 && n % batch == 1)
        --batches; // BatchNorm cannot train on a batch of one (float fine-tuning)
    std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
    for (int e = 0; e < epochs; ++e) {
        for (std::int64_t i = 0; i < n; ++i)
            perm[std::size_t(i)] = i;
        std::shuffle(perm.begin(), perm.end(), rng);
        const auto permT = torch::from_blob(perm.data(), {n}, torch::kLong);
        for (std::int64_t b = 0; b < batches; ++b) {
            monitor.check();
            const auto idx = permT.slice(0, b * batch, std::min(n, (b + 1) * batch));
            const torch::Tensor xb = x.index_select(0, idx);
            const torch::Tensor yb = y.index_select(0, idx);
            const torch::Tensor out = fq ? fq->forward(xb) : net->forward(xb);
            const torch::Tensor loss = torch::mse_loss(out, yb.to(out.scalar_type()));
            opt.zero_grad();
            loss.backward();
            opt.step();
            enforce(model, maskT);
            monitor.report((e + double(b + 1) / double(batches)) / epochs, "fine-tune epoch " + std::to_string(e + 1));
        }
    }
    net->eval();
}

CompressResult compressModel(const Model &start, const PatchDataset &data, const CompressOptions &options,
                             const Monitor &monitor, const std::function<void(const CompressRecord &)> &onRecord)
{
    options.validate();
    checkData(start, data);
    const LayerPlan plan = LayerPlan::lower(start.spec());
    const auto train = trainRows(data);
    if (train.empty())
        throw InputError("/split: no usable training rows (split 0)");
    const auto valRows = evalRows(data, 1), testRows = evalRows(data, 2);
    std::vector<std::size_t> calRows(train.begin(),
                                     train.begin() + std::ptrdiff_t(std::min<std::size_t>(train.size(),
                                                                                           std::size_t(options.calibrationPatches))));
    const std::vector<float> calib = gatherPatches(data, calRows);
    const NamedTensors startWeights = start.namedParameters();

    struct Kept {
        NamedTensors weights;
        QuantSpec spec;
        PruneMasks masks;
        Evaluation validation, test;
        Cost cost;
    };
    std::vector<Kept> kept;
    CompressResult result;
    for (int bits : options.bits) {
        const QuantSpec spec = calibratedQuantSpec(plan, startWeights, calib.data(), calRows.size(), bits, options.margin);
        Model model = copyModel(start);
        PruneMasks masks = PruneMasks::full(plan);
        for (int round = 0; round <= options.pruneRounds; ++round) {
            if (round > 0) {
                const NamedTensors w = model.namedParameters();
                masks = options.structured ? pruneStructured(plan, w, masks, options.pruneFraction)
                                           : pruneGlobalL1(plan, w, masks, options.pruneFraction);
            }
            TrainOptions t = options.train;
            t.seed = options.train.seed + std::uint64_t(bits) * 1000 + std::uint64_t(round);
            fineTune(model, data, &spec, masks, options.epochsPerRound, t, monitor);
            Kept k;
            k.weights = model.namedParameters();
            k.spec = spec;
            k.masks = masks;
            const FixedEngine engine(plan, k.weights, spec);
            const IntegerReference &ref = engine.reference();
            if (!valRows.empty())
                k.validation = evaluateRows(engine, data, valRows, options.train.threads);
            if (!testRows.empty())
                k.test = evaluateRows(engine, data, testRows, options.train.threads);
            k.cost = quantisedCost(ref);
            CompressRecord rec;
            rec.bits = bits;
            rec.round = round;
            rec.sparsity = masks.sparsity();
            rec.bops = k.cost.bops;
            rec.params = nonZeroParams(ref);
            rec.validation = meanOf(k.validation);
            rec.test = meanOf(k.test);
            result.records.push_back(rec);
            kept.push_back(std::move(k));
            if (onRecord)
                onRecord(rec);
        }
    }

    // Choice: the smallest BOPs within the target, else the best validation distance.
    auto score = [&](const CompressRecord &r) { return std::isfinite(r.validation) ? r.validation : r.test; };
    int best = -1, within = -1;
    for (int i = 0; i < int(result.records.size()); ++i) {
        const auto &r = result.records[std::size_t(i)];
        const double d = score(r);
        if (best < 0 || (std::isfinite(d) && !(d >= score(result.records[std::size_t(best)]))))
            best = i;
        if (options.targetDistance > 0 && std::isfinite(d) && d <= options.targetDistance
            && (within < 0 || r.bops < result.records[std::size_t(within)].bops))
            within = i;
    }
    result.chosen = within >= 0 ? within : best;
    const Kept &c = kept[std::size_t(result.chosen)];
    auto model = std::make_shared<Model>(start.spec(), 0);
    loadNamed(*model, c.weights);
    model->quantization = c.spec.toJson();
    model->recipe = start.recipe.is_object() ? start.recipe : nlohmann::json::object();
    model->recipe["compress"] = options.toJson();
    model->recipe["pruning"] = {{"mode", options.structured ? "structured" : "global-l1"},
                                {"fraction", options.pruneFraction},
                                {"rounds", result.records[std::size_t(result.chosen)].round},
                                {"sparsity", c.masks.sparsity()},
                                {"masks", c.masks.toJson()}};
    nlohmann::json metrics = {{"engine", "fixed"}, {"cost", c.cost.toJson()}, {"compress", result.toJson()}};
    if (c.validation.overall.n)
        metrics["validation"] = SplitMetrics::of(c.validation).toJson();
    if (c.test.overall.n)
        metrics["test"] = SplitMetrics::of(c.test).toJson();
    model->metrics = metrics;
    result.model = model;
    return result;
}

} // namespace braggnac::core
