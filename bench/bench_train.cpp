// Training and inference throughput of the LibTorch trainer (the real trainModel / Model::predict
// code paths), for bench/train.sh, which runs bench/train_torch.py beside it.
//
//   bench_train --data P.h5 --arch braggnn|nac|SPEC.json [--threads 1] [--batch 256]
//               [--epochs 6] [--infer-batch 256] [--infer-repeats 5]
//   bench_train --write-spec NAME OUT.json     (the built-in spec as JSON, for the Python side)
//
// Prints one JSON object: train_samples_per_s (median over epochs after the first),
// infer_samples_per_s (median over repeats after a warm-up), the per-epoch / per-repeat values.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/common/runtime.h"
#include "core/io/patchdataset.h"
#include "core/arch/archspec.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"

using namespace braggnac::core;

namespace {

double median(std::vector<double> v)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

std::string arg(const std::vector<std::string> &a, const std::string &name, const std::string &def)
{
    for (std::size_t i = 0; i + 1 < a.size(); ++i)
        if (a[i] == name)
            return a[i + 1];
    return def;
}

} // namespace

int main(int argc, char **argv)
{
    configureNumericRuntime();
    std::vector<std::string> a(argv + 1, argv + argc);
    try {
        if (a.size() == 3 && a[0] == "--write-spec") {
            resolveArch(a[1]).save(a[2]);
            return 0;
        }
        const std::string dataPath = arg(a, "--data", "");
        if (dataPath.empty()) {
            std::cerr << "usage: bench_train --data P.h5 --arch NAME [--threads 1] [--batch 256] "
                         "[--epochs 6] [--infer-batch 256] [--infer-repeats 5]\n";
            return 2;
        }
        const ArchSpec spec = resolveArch(arg(a, "--arch", "nac"));
        const int threads = std::stoi(arg(a, "--threads", "1"));
        const int batch = std::stoi(arg(a, "--batch", "256"));
        const int epochs = std::stoi(arg(a, "--epochs", "6"));
        const int inferBatch = std::stoi(arg(a, "--infer-batch", "256"));
        const int inferRepeats = std::stoi(arg(a, "--infer-repeats", "5"));

        PatchDataset data = readPatchDataset(dataPath);
        // Every row in the train split: the epoch time is then pure training (no validation pass).
        data.split.assign(data.size(), 0);
        data.extraFlags.erase("/fit/converged");

        TrainOptions o;
        o.epochs = epochs;
        o.batchSize = batch;
        o.threads = threads;
        o.device = "cpu";
        o.seed = 1;
        o.dataSource = dataPath;
        TrainResult r = trainModel(spec, data, o);
        std::vector<double> train;
        for (std::size_t e = 1; e < r.history.size(); ++e)
            train.push_back(double(data.size()) / r.history[e].seconds);

        std::vector<double> infer;
        for (int k = 0; k <= inferRepeats; ++k) {
            const auto t0 = std::chrono::steady_clock::now();
            auto p = r.model.predict(data.patches.data(), data.size(), inferBatch);
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (k > 0) // the first pass is a warm-up
                infer.push_back(double(data.size()) / s);
        }
        nlohmann::json j = {{"impl", "libtorch"},
                            {"torch", torchVersion()},
                            {"arch", spec.name},
                            {"params", r.model.parameterCount()},
                            {"threads", threads},
                            {"batch", batch},
                            {"infer_batch", inferBatch},
                            {"samples", data.size()},
                            {"train_samples_per_s", median(train)},
                            {"infer_samples_per_s", median(infer)},
                            {"train_epochs_samples_per_s", train},
                            {"infer_repeats_samples_per_s", infer}};
        std::cout << j.dump() << std::endl;
        return 0;
    } catch (const InputError &e) {
        std::cerr << "bench_train: " << e.what() << "\n";
        return 2;
    } catch (const std::exception &e) {
        std::cerr << "bench_train: " << e.what() << "\n";
        return 1;
    }
}
