#include "core/nn/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/common/error.h"
#include "core/nn/augmentation.h"
#include "core/nn/torch_net.h"

namespace braggnac::core {

namespace {

constexpr double kPi = 3.14159265358979323846;

std::string fieldError(const std::string &source, const std::string &field, const std::string &what)
{
    return source + ": " + field + ": " + what;
}

// ---- options ---------------------------------------------------------------------------------

template <typename T>
void readField(const nlohmann::json &j, const char *key, T &out, const std::string &source)
{
    auto it = j.find(key);
    if (it == j.end() || it->is_null())
        return;
    try {
        if constexpr (std::is_same_v<T, std::string>) {
            if (!it->is_string())
                throw std::invalid_argument("type");
        } else {
            if (!it->is_number())
                throw std::invalid_argument("type");
        }
        out = it->get<T>();
    } catch (const std::exception &) {
        throw InputError(fieldError(source, key,
                                    std::string("expected ")
                                        + (std::is_same_v<T, std::string> ? "a string" : "a number")
                                        + ", got " + it->dump()));
    }
}

// ---- shift augmentation ----------------------------------------------------------------------

/// x [B, 1, S, S], dy / dx int64 [B] with |d| <= k: content moves by (dy, dx), edges replicate.
torch::Tensor shiftBatch(const torch::Tensor &x, const torch::Tensor &dy, const torch::Tensor &dx,
                         int k)
{
    const auto b = x.size(0);
    const auto s = x.size(2);
    const auto p = s + 2 * k;
    namespace F = torch::nn::functional;
    auto padded = F::pad(x, F::PadFuncOptions({k, k, k, k}).mode(torch::kReplicate));
    auto r = torch::arange(s, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
    auto rows = r.view({1, s}) - dy.view({b, 1}) + k; // [B, S]: source row in the padded patch
    auto cols = r.view({1, s}) - dx.view({b, 1}) + k;
    auto index = (rows.view({b, s, 1}) * p + cols.view({b, 1, s})).view({b, s * s});
    return padded.reshape({b, p * p}).gather(1, index).view({b, 1, s, s});
}

// ---- optimizers --------------------------------------------------------------------------------

std::unique_ptr<torch::optim::Optimizer> makeOptimizer(const TrainOptions &o,
                                                       std::vector<torch::Tensor> params)
{
    if (o.optimizer == "adam")
        return std::make_unique<torch::optim::Adam>(
            std::move(params), torch::optim::AdamOptions(o.learningRate).weight_decay(o.weightDecay));
    if (o.optimizer == "sgd")
        return std::make_unique<torch::optim::SGD>(
            std::move(params),
            torch::optim::SGDOptions(o.learningRate).momentum(o.momentum).weight_decay(o.weightDecay));
    return std::make_unique<torch::optim::RMSprop>(
        std::move(params), torch::optim::RMSpropOptions(o.learningRate)
                               .weight_decay(o.weightDecay)
                               .momentum(o.rmspropMomentum));
}

void setLearningRate(torch::optim::Optimizer &opt, double lr)
{
    for (auto &group : opt.param_groups())
        group.options().set_lr(lr);
}

// ---- data ------------------------------------------------------------------------------------

struct Rows {
    std::vector<std::size_t> train, validation;
};

std::vector<std::uint8_t> usableRows(const PatchDataset &data)
{
    std::vector<std::uint8_t> use(data.size(), 1);
    auto conv = data.extraFlags.find("/fit/converged");
    if (conv != data.extraFlags.end() && conv->second.size() == use.size())
        for (std::size_t i = 0; i < use.size(); ++i)
            use[i] = conv->second[i] != 0;
    return use;
}

/// Normalised patches [n, 1, S, S] and targets centre / S [n, 2] for `rows`, on `device`.
std::pair<torch::Tensor, torch::Tensor> gather(const PatchDataset &data,
                                               const std::vector<std::size_t> &rows,
                                               const torch::Device &device)
{
    const int s = data.patchSize;
    const std::size_t area = std::size_t(s) * s;
    std::vector<float> raw(rows.size() * area);
    auto y = torch::empty({std::int64_t(rows.size()), 2}, torch::kFloat);
    float *yp = y.data_ptr<float>();
    for (std::size_t k = 0; k < rows.size(); ++k) {
        std::copy_n(data.patch(rows[k]), area, raw.data() + k * area);
        yp[2 * k] = data.centers[2 * rows[k]] / float(s);
        yp[2 * k + 1] = data.centers[2 * rows[k] + 1] / float(s);
    }
    auto x = normalisePatches(raw.data(), rows.size(), s);
    return {x.to(device), y.to(device)};
}

/// Mean Euclidean distance (px) of the net on normalised inputs x vs targets y (both / S).
double meanDistance(PeakNet &net, const torch::Tensor &x, const torch::Tensor &y, int size)
{
    if (x.size(0) == 0)
        return std::numeric_limits<double>::quiet_NaN();
    torch::NoGradGuard noGrad;
    net->eval();
    const std::int64_t n = x.size(0), chunk = 512;
    auto total = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(x.device()));
    for (std::int64_t i = 0; i < n; i += chunk) {
        const auto e = std::min(n, i + chunk);
        auto d = (net->forward(x.slice(0, i, e)) - y.slice(0, i, e)).pow(2).sum(1).sqrt();
        total += d.to(torch::kDouble).sum();
    }
    net->train();
    return total.item<double>() * size / double(n);
}

struct Snapshot {
    std::vector<torch::Tensor> tensors;
    void take(PeakNet &net)
    {
        torch::NoGradGuard noGrad;
        tensors.clear();
        for (const auto &p : net->parameters())
            tensors.push_back(p.detach().clone());
        for (const auto &b : net->buffers())
            tensors.push_back(b.detach().clone());
    }
    void restore(PeakNet &net) const
    {
        torch::NoGradGuard noGrad;
        std::size_t k = 0;
        for (auto &p : net->parameters())
            p.copy_(tensors[k++]);
        for (auto &b : net->buffers())
            b.copy_(tensors[k++]);
    }
};

} // namespace

// ---- TrainOptions --------------------------------------------------------------------------------

nlohmann::json TrainOptions::toJson() const
{
    return {{"optimizer", optimizer},       {"learning_rate", learningRate},
            {"weight_decay", weightDecay},   {"momentum", momentum},
            {"rmsprop_momentum", rmspropMomentum},
            {"schedule", schedule},         {"step_size", stepSize},
            {"gamma", gamma},               {"batch_size", batchSize},
            {"epochs", epochs},             {"patience", patience},
            {"shift", shift},               {"seed", seed},
            {"device", device},             {"threads", threads}};
}

TrainOptions TrainOptions::fromJson(const nlohmann::json &j, const std::string &source)
{
    if (!j.is_object())
        throw InputError(source + ": expected a JSON object of training options");
    TrainOptions o;
    readField(j, "optimizer", o.optimizer, source);
    readField(j, "learning_rate", o.learningRate, source);
    readField(j, "weight_decay", o.weightDecay, source);
    readField(j, "momentum", o.momentum, source);
    readField(j, "rmsprop_momentum", o.rmspropMomentum, source);
    readField(j, "schedule", o.schedule, source);
    readField(j, "step_size", o.stepSize, source);
    readField(j, "gamma", o.gamma, source);
    readField(j, "batch_size", o.batchSize, source);
    readField(j, "epochs", o.epochs, source);
    readField(j, "patience", o.patience, source);
    readField(j, "shift", o.shift, source);
    readField(j, "seed", o.seed, source);
    readField(j, "device", o.device, source);
    readField(j, "threads", o.threads, source);
    o.validate(source);
    return o;
}

void TrainOptions::validate(const std::string &source) const
{
    auto fail = [&](const char *field, const std::string &what) {
        throw InputError(fieldError(source, field, what));
    };
    auto num = [](double v) {
        std::ostringstream os;
        os << v;
        return os.str();
    };
    if (optimizer != "rmsprop" && optimizer != "adam" && optimizer != "sgd")
        fail("optimizer", "expected rmsprop, adam or sgd, got '" + optimizer + "'");
    if (schedule != "cosine" && schedule != "step" && schedule != "exponential" && schedule != "none")
        fail("schedule", "expected cosine, step, exponential or none, got '" + schedule + "'");
    if (!(learningRate > 0) || !std::isfinite(learningRate))
        fail("learning_rate", "expected a positive number, got " + num(learningRate));
    if (!(weightDecay >= 0) || !std::isfinite(weightDecay))
        fail("weight_decay", "expected a number >= 0, got " + num(weightDecay));
    if (!(momentum >= 0 && momentum < 1))
        fail("momentum", "expected a number in [0, 1), got " + num(momentum));
    if (!(rmspropMomentum >= 0 && rmspropMomentum < 1))
        fail("rmsprop_momentum", "expected a number in [0, 1), got " + num(rmspropMomentum));
    if (stepSize < 1)
        fail("step_size", "expected an integer >= 1, got " + std::to_string(stepSize));
    if (!(gamma > 0 && gamma <= 1))
        fail("gamma", "expected a number in (0, 1], got " + num(gamma));
    if (batchSize < 1)
        fail("batch_size", "expected an integer >= 1, got " + std::to_string(batchSize));
    if (epochs < 1)
        fail("epochs", "expected an integer >= 1, got " + std::to_string(epochs));
    if (patience < 0)
        fail("patience", "expected an integer >= 0, got " + std::to_string(patience));
    if (shift < 0)
        fail("shift", "expected an integer >= 0, got " + std::to_string(shift));
    if (device != "auto" && device != "cpu" && device.rfind("cuda", 0) != 0)
        fail("device", "expected auto, cpu or cuda, got '" + device + "'");
}

// ---- internal helpers (augmentation.h) ---------------------------------------------------------

double scheduledLearningRate(const TrainOptions &o, int epoch)
{
    if (o.schedule == "cosine")
        return o.learningRate * 0.5 * (1.0 + std::cos(kPi * double(epoch) / double(o.epochs)));
    if (o.schedule == "step")
        return o.learningRate * std::pow(o.gamma, double(epoch / o.stepSize));
    if (o.schedule == "exponential")
        return o.learningRate * std::pow(o.gamma, double(epoch));
    return o.learningRate;
}

void shiftPatches(float *patches, float *centers, std::size_t n, int size, const int *dy,
                  const int *dx)
{
    if (n == 0)
        return;
    int k = 0;
    std::vector<std::int64_t> vy(dy, dy + n), vx(dx, dx + n);
    for (std::size_t i = 0; i < n; ++i) {
        if (std::abs(dy[i]) >= size || std::abs(dx[i]) >= size)
            throw InputError("shift: offset (" + std::to_string(dy[i]) + ", "
                             + std::to_string(dx[i]) + ") must be smaller than the patch size "
                             + std::to_string(size));
        k = std::max({k, std::abs(dy[i]), std::abs(dx[i])});
    }
    torch::NoGradGuard noGrad;
    const auto nn = std::int64_t(n);
    auto x = torch::from_blob(patches, {nn, 1, size, size}, torch::kFloat);
    auto ty = torch::from_blob(vy.data(), {nn}, torch::kLong);
    auto tx = torch::from_blob(vx.data(), {nn}, torch::kLong);
    x.copy_(shiftBatch(x, ty, tx, k));
    for (std::size_t i = 0; i < n; ++i) {
        centers[2 * i] += float(dy[i]);
        centers[2 * i + 1] += float(dx[i]);
    }
}

// ---- training ------------------------------------------------------------------------------------

TrainResult trainModel(const ArchSpec &spec, const PatchDataset &data, const TrainOptions &options,
                       const Monitor &monitor,
                       const std::function<void(const EpochStats &)> &onEpoch)
{
    options.validate();
    const std::string &source = options.dataSource;
    data.validate(source);
    if (!data.labelled())
        throw InputError(fileMessage(source, "/centers: missing: the patches are unlabelled "
                                             "(label them with 'braggnac fit' first)"));
    if (data.patchSize != spec.inputSize)
        throw InputError(fileMessage(
            source, "/patches: patch size " + std::to_string(data.patchSize)
                        + " does not match the architecture's input size (inputSize "
                        + std::to_string(spec.inputSize) + ")"));
    if (options.shift >= data.patchSize)
        throw InputError(fieldError("train options", "shift",
                                    "expected less than the patch size "
                                        + std::to_string(data.patchSize) + ", got "
                                        + std::to_string(options.shift)));
    const torch::Device device = parseDevice(options.device);
    if (device.is_cuda() && device.has_index()
        && std::size_t(device.index()) >= torch::cuda::device_count())
        throw InputError(fieldError("train options", "device",
                                    "'" + options.device + "' requested but this machine has "
                                        + std::to_string(torch::cuda::device_count())
                                        + " CUDA device(s)"));
    setTorchThreads(options.threads);

    // Rows: train / validation split, unconverged fits left out.
    const auto split = effectiveSplit(data);
    const auto use = usableRows(data);
    Rows rows;
    std::size_t excluded = 0, testRows = 0;
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (!use[i]) {
            ++excluded;
            continue;
        }
        if (!std::isfinite(data.centers[2 * i]) || !std::isfinite(data.centers[2 * i + 1]))
            throw InputError(fileMessage(source, "/centers: row " + std::to_string(i)
                                                     + " is not a finite number"));
        if (split[i] == 0)
            rows.train.push_back(i);
        else if (split[i] == 1)
            rows.validation.push_back(i);
        else
            ++testRows;
    }
    if (rows.train.empty())
        throw InputError(fileMessage(source, "/split: no usable training rows (split 0)"));

    const int s = data.patchSize;
    auto [xTrain, yTrain] = gather(data, rows.train, device);
    auto [xVal, yVal] = gather(data, rows.validation, device);

    TrainResult result{Model(spec, options.seed), {}, 0, false};
    Model::Impl &impl = result.model.impl();
    impl.to(device);
    PeakNet &net = impl.net;
    net->train();

    auto optimizer = makeOptimizer(options, net->parameters());
    std::mt19937_64 rng(options.seed);
    const std::int64_t n = xTrain.size(0);
    const std::int64_t batch = std::min<std::int64_t>(options.batchSize, n);
    std::int64_t batches = (n + batch - 1) / batch;
    // A trailing batch of one sample is dropped (BatchNorm cannot train on it).
    if (batches > 1 && n % batch == 1)
        --batches;

    Snapshot best;
    double bestDistance = std::numeric_limits<double>::infinity();
    int sinceBest = 0;
    std::vector<std::int64_t> perm(n), shifts;

    for (int epoch = 0; epoch < options.epochs; ++epoch) {
        const auto t0 = std::chrono::steady_clock::now();
        const double lr = scheduledLearningRate(options, epoch);
        setLearningRate(*optimizer, lr);

        // Fisher-Yates with the seeded generator (no torch RNG involved).
        for (std::int64_t i = 0; i < n; ++i)
            perm[i] = i;
        for (std::int64_t i = n - 1; i > 0; --i) {
            std::uniform_int_distribution<std::int64_t> pick(0, i);
            std::swap(perm[i], perm[pick(rng)]);
        }
        auto permT = torch::from_blob(perm.data(), {n}, torch::kLong).to(device, false, true);

        auto lossSum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
        std::int64_t seen = 0;
        for (std::int64_t b = 0; b < batches; ++b) {
            monitor.check();
            const auto begin = b * batch, end = std::min(n, begin + batch), bs = end - begin;
            auto idx = permT.slice(0, begin, end);
            auto xb = xTrain.index_select(0, idx);
            auto yb = yTrain.index_select(0, idx);
            if (options.shift > 0) {
                std::uniform_int_distribution<int> d(-options.shift, options.shift);
                shifts.resize(2 * bs);
                for (auto &v : shifts)
                    v = d(rng);
                auto sh = torch::from_blob(shifts.data(), {bs, 2}, torch::kLong).to(device, false, true);
                xb = shiftBatch(xb, sh.select(1, 0), sh.select(1, 1), options.shift);
                yb = yb + sh.to(torch::kFloat) / float(s);
            }
            auto loss = torch::mse_loss(net->forward(xb), yb);
            optimizer->zero_grad();
            loss.backward();
            optimizer->step();
            lossSum += loss.detach().to(torch::kDouble) * double(bs);
            seen += bs;
            monitor.report((epoch + double(b + 1) / double(batches)) / options.epochs,
                           "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs));
        }
        monitor.check();

        EpochStats stats;
        stats.epoch = epoch + 1;
        stats.trainLoss = lossSum.item<double>() / double(seen);
        stats.learningRate = lr;
        stats.validationMean = meanDistance(net, xVal, yVal, s);
        stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        result.history.push_back(stats);

        if (rows.validation.empty()) {
            result.bestEpoch = stats.epoch;
        } else if (stats.validationMean < bestDistance) {
            bestDistance = stats.validationMean;
            result.bestEpoch = stats.epoch;
            best.take(net);
            sinceBest = 0;
        } else {
            ++sinceBest;
        }
        if (onEpoch)
            onEpoch(stats);
        if (options.patience > 0 && sinceBest >= options.patience && epoch + 1 < options.epochs) {
            result.stoppedEarly = true;
            break;
        }
    }
    if (!best.tensors.empty())
        best.restore(net);
    net->eval();
    impl.to(torch::Device(torch::kCPU));

    auto &recipe = result.model.recipe;
    recipe = options.toJson();
    recipe["data"] = {{"patch_size", s},
                      {"label_source", data.labelSource},
                      {"rows", data.size()},
                      {"train", rows.train.size()},
                      {"validation", rows.validation.size()},
                      {"test", testRows},
                      {"excluded_unconverged", excluded}};
    recipe["device_used"] = device.str();
    recipe["torch"] = torchVersion();
    nlohmann::json history = nlohmann::json::array();
    for (const auto &h : result.history)
        history.push_back({{"epoch", h.epoch},
                           {"loss", h.trainLoss},
                           {"validation_mean", h.validationMean},
                           {"lr", h.learningRate},
                           {"seconds", h.seconds}});
    auto &metrics = result.model.metrics;
    metrics["history"] = history;
    metrics["best_epoch"] = result.bestEpoch;
    metrics["stopped_early"] = result.stoppedEarly;
    if (!rows.validation.empty())
        metrics["validation"] = {{"mean", bestDistance}, {"n", rows.validation.size()}};
    return result;
}

} // namespace braggnac::core
