#include "core/nn/trainer.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <sstream>

#include <dlfcn.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/common/error.h"
#include "core/common/parallel.h"
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

std::string firstLine(const std::string &s)
{
    const auto p = s.find('\n');
    return p == std::string::npos ? s : s.substr(0, p);
}

/// LibTorch's own exceptions (c10::Error, with a C++ backtrace in what()) and std::bad_alloc
/// become one-line core Errors at the public API boundary.
template <typename F>
auto torchBoundary(const char *what, F &&fn) -> decltype(fn())
{
    try {
        return fn();
    } catch (const c10::Error &e) {
        throw Error(std::string(what) + ": LibTorch: " + firstLine(e.what_without_backtrace()));
    } catch (const std::bad_alloc &) {
        throw Error(std::string(what) + ": out of memory");
    }
}

// Rows to train on: /fit/usable when the labels have it (status converged and centre standard
// error within the threshold braggnac fit chose, docs/fitting.md), else /fit/converged.
std::vector<std::uint8_t> usableRows(const PatchDataset &data)
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

torch::Device checkedDevice(const std::string &name)
{
    const torch::Device device = parseDevice(name);
    if (device.is_cuda() && device.has_index()
        && std::size_t(device.index()) >= torch::cuda::device_count())
        throw InputError(fieldError("train options", "device",
                                    "'" + name + "' requested but this machine has "
                                        + std::to_string(torch::cuda::device_count())
                                        + " CUDA device(s)"));
    return device;
}

/// Mean Euclidean distance (px) of the net on normalised inputs x vs targets y (both / S).
double meanDistance(PeakNet &net, const torch::Tensor &x, const torch::Tensor &y, int size)
{
    if (!x.defined() || x.size(0) == 0)
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

std::string numberText(double v)
{
    if (std::isnan(v))
        return "nan";
    if (std::isinf(v))
        return v > 0 ? "inf" : "-inf";
    std::ostringstream os;
    os << v;
    return os.str();
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

// ---- stop reasons ----------------------------------------------------------------------------

std::string stopReasonName(StopReason reason)
{
    switch (reason) {
    case StopReason::Completed: return "completed";
    case StopReason::MaxEpochs: return "max_epochs";
    case StopReason::WallTime: return "wall_time";
    case StopReason::Patience: return "patience";
    case StopReason::Pruned: return "pruned";
    case StopReason::Diverged: return "diverged";
    }
    return "completed";
}

StopReason stopReasonFromName(const std::string &name, const std::string &source)
{
    for (StopReason r : {StopReason::Completed, StopReason::MaxEpochs, StopReason::WallTime,
                         StopReason::Patience, StopReason::Pruned, StopReason::Diverged})
        if (stopReasonName(r) == name)
            return r;
    throw InputError(fieldError(source, "stop_reason",
                                "expected completed, max_epochs, wall_time, patience, pruned or "
                                "diverged, got '" + name + "'"));
}

// ---- per-thread LibTorch threads ---------------------------------------------------------------

namespace {

/// OpenMP's per-thread team size (the ICV nthreads-var of the calling thread), looked up in the
/// process (LibTorch's OpenMP runtime) so that nn/ needs no OpenMP link of its own.
struct OmpThreads {
    using Set = void (*)(int);
    using Get = int (*)();
    Set set = nullptr;
    Get get = nullptr;
    OmpThreads()
    {
        set = reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
        get = reinterpret_cast<Get>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
        if (!set || !get)
            set = nullptr, get = nullptr;
    }
};

const OmpThreads &ompThreads()
{
    static const OmpThreads fns;
    return fns;
}

} // namespace

ScopedTorchThreads::ScopedTorchThreads(int threads)
{
    const int n = resolveThreads(threads);
    // at::get_num_threads() runs LibTorch's lazy per-thread initialisation first; done later, it
    // would overwrite this thread's team size with the process-wide default.
    m_previous = at::get_num_threads();
    if (const auto &omp = ompThreads(); omp.set)
        omp.set(n);
    else
        at::set_num_threads(n); // a LibTorch without OpenMP: only a process-wide count exists
}

ScopedTorchThreads::~ScopedTorchThreads()
{
    if (const auto &omp = ompThreads(); omp.set)
        omp.set(m_previous);
    else
        at::set_num_threads(m_previous);
}

int ScopedTorchThreads::current()
{
    return at::get_num_threads();
}

// ---- prepared data ----------------------------------------------------------------------------

struct PreparedData::Impl {
    struct Part {
        std::vector<std::size_t> indices;   // dataset rows, ascending
        torch::Tensor x, y;                 // [n,1,S,S] normalised, [n,2] centre / S, on device
        std::vector<float> labels;          // centres (row, col), 2 per row
        std::vector<std::pair<std::string, std::vector<std::uint8_t>>> flags; // per row
    };
    std::string source, labelSource;
    int patchSize = 0;
    torch::Device device{torch::kCPU};
    std::size_t rows = 0, excluded = 0;
    Part train, validation, test;
};

PreparedData::PreparedData() = default;
PreparedData::PreparedData(std::shared_ptr<const Impl> impl) : m_impl(std::move(impl)) {}

namespace {
const PreparedData::Impl &need(const std::shared_ptr<const PreparedData::Impl> &p)
{
    if (!p)
        throw Error("prepared data: empty (made by prepareData only)");
    return *p;
}
} // namespace

int PreparedData::patchSize() const { return need(m_impl).patchSize; }
std::string PreparedData::device() const { return need(m_impl).device.str(); }
const std::string &PreparedData::source() const { return need(m_impl).source; }
const std::string &PreparedData::labelSource() const { return need(m_impl).labelSource; }
std::size_t PreparedData::rows() const { return need(m_impl).rows; }
std::size_t PreparedData::trainRows() const { return need(m_impl).train.indices.size(); }
std::size_t PreparedData::validationRows() const { return need(m_impl).validation.indices.size(); }
std::size_t PreparedData::testRows() const { return need(m_impl).test.indices.size(); }
std::size_t PreparedData::excludedRows() const { return need(m_impl).excluded; }

nlohmann::json PreparedData::describe() const
{
    const Impl &d = need(m_impl);
    return {{"file", d.source},
            {"patch_size", d.patchSize},
            {"label_source", d.labelSource},
            {"rows", d.rows},
            {"train", d.train.indices.size()},
            {"validation", d.validation.indices.size()},
            {"test", d.test.indices.size()},
            {"excluded_unconverged", d.excluded}};
}

namespace {

void fillPart(const PatchDataset &data, const torch::Device &device, bool withFlags,
              PreparedData::Impl::Part &part)
{
    const int s = data.patchSize;
    const std::size_t area = std::size_t(s) * s, n = part.indices.size();
    std::vector<float> raw(n * area);
    part.labels.resize(2 * n);
    auto y = torch::empty({std::int64_t(n), 2}, torch::kFloat);
    float *yp = y.data_ptr<float>();
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t i = part.indices[k];
        std::copy_n(data.patch(i), area, raw.data() + k * area);
        part.labels[2 * k] = data.centers[2 * i];
        part.labels[2 * k + 1] = data.centers[2 * i + 1];
        yp[2 * k] = data.centers[2 * i] / float(s);
        yp[2 * k + 1] = data.centers[2 * i + 1] / float(s);
    }
    part.x = normalisePatches(raw.data(), n, s).to(device);
    part.y = y.to(device);
    if (!withFlags)
        return;
    for (const auto &[path, flags] : data.extraFlags) {
        if (path.rfind("/flags/", 0) != 0 || flags.size() != data.size())
            continue;
        std::vector<std::uint8_t> rows(n);
        for (std::size_t k = 0; k < n; ++k)
            rows[k] = flags[part.indices[k]];
        part.flags.emplace_back(path.substr(7), std::move(rows));
    }
}

} // namespace

PreparedData prepareData(const PatchDataset &data, const PrepareOptions &options)
{
    const std::string &source = options.source;
    data.validate(source);
    if (!data.labelled())
        throw InputError(fileMessage(source, "/centers: missing: the patches are unlabelled "
                                             "(label them with 'braggnac fit' first)"));
    const torch::Device device = checkedDevice(options.device);
    return torchBoundary("prepare data", [&] {
        auto impl = std::make_shared<PreparedData::Impl>();
        impl->source = source;
        impl->labelSource = data.labelSource;
        impl->patchSize = data.patchSize;
        impl->device = device;
        impl->rows = data.size();
        const auto split = effectiveSplit(data);
        const auto use = usableRows(data);
        for (std::size_t i = 0; i < data.size(); ++i) {
            if (!use[i]) {
                ++impl->excluded;
                continue;
            }
            if (!std::isfinite(data.centers[2 * i]) || !std::isfinite(data.centers[2 * i + 1]))
                throw InputError(fileMessage(source, "/centers: row " + std::to_string(i)
                                                         + " is not a finite number"));
            (split[i] == 0 ? impl->train : split[i] == 1 ? impl->validation : impl->test)
                .indices.push_back(i);
        }
        if (impl->train.indices.empty())
            throw InputError(fileMessage(source, "/split: no usable training rows (split 0)"));
        fillPart(data, device, false, impl->train);
        fillPart(data, device, true, impl->validation);
        fillPart(data, device, true, impl->test);
        return PreparedData(std::move(impl));
    });
}

// ---- training ------------------------------------------------------------------------------------

namespace {

void checkCompatible(const ArchSpec &spec, int patchSize, const TrainOptions &options,
                     const std::string &source)
{
    if (patchSize != spec.inputSize)
        throw InputError(fileMessage(
            source, "/patches: patch size " + std::to_string(patchSize)
                        + " does not match the architecture's input size (inputSize "
                        + std::to_string(spec.inputSize) + ")"));
    if (options.shift >= patchSize)
        throw InputError(fieldError("train options", "shift",
                                    "expected less than the patch size "
                                        + std::to_string(patchSize) + ", got "
                                        + std::to_string(options.shift)));
}

TrainResult trainPrepared(const ArchSpec &spec, const PreparedData &prepared,
                          const TrainOptions &options, const Monitor &monitor,
                          const TrainBudget &budget)
{
    const PreparedData::Impl &data = prepared.impl();
    const torch::Device device = data.device;
    const int s = data.patchSize;
    const torch::Tensor &xTrain = data.train.x, &yTrain = data.train.y;
    const torch::Tensor &xVal = data.validation.x, &yVal = data.validation.y;
    const bool haveValidation = !data.validation.indices.empty();
    const int maxEpochs = budget.maxEpochs > 0 ? std::min(budget.maxEpochs, options.epochs)
                                               : options.epochs;

    TrainResult result{Model(spec, options.seed), {}, 0, false, StopReason::Completed, {}};
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
    const auto start = std::chrono::steady_clock::now();
    const std::string ofEpochs = "/" + std::to_string(maxEpochs);

    for (int epoch = 0; epoch < maxEpochs; ++epoch) {
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
            monitor.report((epoch + double(b + 1) / double(batches)) / maxEpochs,
                           "epoch " + std::to_string(epoch + 1) + ofEpochs);
        }
        monitor.check();

        EpochStats stats;
        stats.epoch = epoch + 1;
        stats.trainLoss = lossSum.item<double>() / double(seen);
        stats.learningRate = lr;
        stats.validationMean = meanDistance(net, xVal, yVal, s);
        const auto now = std::chrono::steady_clock::now();
        stats.seconds = std::chrono::duration<double>(now - t0).count();
        result.history.push_back(stats);

        if (!std::isfinite(stats.trainLoss) || (haveValidation && !std::isfinite(stats.validationMean))) {
            result.stopReason = StopReason::Diverged;
            result.failure = "training diverged at epoch " + std::to_string(stats.epoch) + ": "
                             + (!std::isfinite(stats.trainLoss)
                                    ? "loss " + numberText(stats.trainLoss)
                                    : "validation distance " + numberText(stats.validationMean));
            break;
        }
        if (!haveValidation) {
            result.bestEpoch = stats.epoch;
        } else if (stats.validationMean < bestDistance) {
            bestDistance = stats.validationMean;
            result.bestEpoch = stats.epoch;
            best.take(net);
            sinceBest = 0;
        } else {
            ++sinceBest;
        }
        const bool last = epoch + 1 >= maxEpochs;
        if (budget.onEpoch && budget.onEpoch(stats) == EpochDecision::Stop && !last) {
            result.stopReason = StopReason::Pruned;
            break;
        }
        if (options.patience > 0 && sinceBest >= options.patience && !last) {
            result.stopReason = StopReason::Patience;
            break;
        }
        if (budget.maxSeconds > 0 && !last
            && std::chrono::duration<double>(now - start).count() > budget.maxSeconds) {
            result.stopReason = StopReason::WallTime;
            break;
        }
        if (last && maxEpochs < options.epochs)
            result.stopReason = StopReason::MaxEpochs;
    }
    result.stoppedEarly = result.stopReason != StopReason::Completed;
    if (!best.tensors.empty())
        best.restore(net);
    net->eval();
    impl.to(torch::Device(torch::kCPU));

    auto &recipe = result.model.recipe;
    recipe = options.toJson();
    recipe["data"] = prepared.describe();
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
    metrics["stop_reason"] = stopReasonName(result.stopReason);
    if (!result.failure.empty())
        metrics["failure"] = result.failure;
    if (haveValidation && std::isfinite(bestDistance))
        metrics["validation"] = {{"mean", bestDistance}, {"n", data.validation.indices.size()}};
    return result;
}

} // namespace

TrainResult trainModel(const ArchSpec &spec, const PreparedData &data, const TrainOptions &options,
                       const Monitor &monitor, const TrainBudget &budget)
{
    options.validate();
    if (!data.valid())
        throw InputError("train: the prepared data is empty");
    checkCompatible(spec, data.patchSize(), options, data.source());
    const torch::Device device = checkedDevice(options.device);
    const torch::Device &prepared = data.impl().device;
    const auto index = [](const torch::Device &d) { return d.has_index() ? d.index() : 0; };
    if (device.type() != prepared.type() || (device.is_cuda() && index(device) != index(prepared)))
        throw InputError(fieldError("train options", "device",
                                    "'" + options.device + "' is " + device.str()
                                        + " but the data was prepared on " + data.device()));
    return torchBoundary("train", [&] {
        ScopedTorchThreads threads(options.threads);
        return trainPrepared(spec, data, options, monitor, budget);
    });
}

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
    checkCompatible(spec, data.patchSize, options, source);
    checkedDevice(options.device);
    const PreparedData prepared = [&] {
        ScopedTorchThreads threads(options.threads);
        return prepareData(data, {options.device, source});
    }();
    TrainBudget budget;
    if (onEpoch)
        budget.onEpoch = [&onEpoch](const EpochStats &e) {
            onEpoch(e);
            return EpochDecision::Continue;
        };
    return trainModel(spec, prepared, options, monitor, budget);
}

Evaluation evaluateModel(const Model &model, const PreparedData &data, int split)
{
    if (!data.valid())
        throw InputError("evaluate: the prepared data is empty");
    if (split != 1 && split != 2)
        throw InputError("split: expected 1 (validation) or 2 (test) for prepared data, got "
                         + std::to_string(split));
    const PreparedData::Impl &d = data.impl();
    if (d.patchSize != model.spec().inputSize)
        throw InputError(fileMessage(d.source, "/patches: patch size " + std::to_string(d.patchSize)
                                                   + " does not match the model's input size "
                                                   + std::to_string(model.spec().inputSize)));
    const PreparedData::Impl::Part &part = split == 1 ? d.validation : d.test;
    if (part.indices.empty())
        throw InputError(fileMessage(d.source, std::string("split: the ")
                                                   + (split == 1 ? "validation" : "test")
                                                   + " split holds no patches to evaluate; an "
                                                     "empty split has no score"));
    Evaluation ev;
    ev.indices = part.indices;
    ev.predictions.resize(2 * part.indices.size());
    torchBoundary("evaluate", [&] {
        Model::Impl &mi = model.impl();
        PeakNet &net = mi.net;
        std::unique_lock<std::mutex> modeLock(mi.modeMutex);
        const bool wasTraining = net->is_training();
        if (wasTraining)
            net->eval();
        else
            modeLock.unlock();
        try {
            torch::InferenceMode guard;
            const std::int64_t n = part.x.size(0), chunk = 512;
            const int s = d.patchSize;
            for (std::int64_t i = 0; i < n; i += chunk) {
                const auto e = std::min(n, i + chunk);
                torch::Tensor x = part.x.slice(0, i, e);
                if (x.device() != mi.device)
                    x = x.to(mi.device);
                torch::Tensor y = net->forward(x).mul(float(s)).to(torch::kCPU).contiguous();
                std::memcpy(ev.predictions.data() + 2 * i, y.data_ptr<float>(),
                            std::size_t(e - i) * 2 * sizeof(float));
            }
        } catch (...) {
            if (wasTraining)
                net->train();
            throw;
        }
        if (wasTraining)
            net->train();
    });
    summariseEvaluation(ev, part.labels, part.flags);
    return ev;
}

} // namespace braggnac::core
