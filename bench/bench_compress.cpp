// braggnac-bench-libs: braggnac_nn braggnac_compress torch
// A compressed (quantised) model folder against its own definitions (bench/compress.sh):
//  - agreement: the fake-quantised LibTorch forward (core/nn/qat.h, what QAT trained) against the
//    integer reference (core/compress/intref.h) on the patches of one split: raw output values
//    compared one by one, mismatches counted (expected 0);
//  - throughput: the integer reference (IntegerReference::forwardRaw) on 1..T threads beside
//    LibTorch float inference of the same weights (Model::predict), patches/s, median of R passes
//    after one warm-up pass (normalisation included in both).
//   bench_compress --model M --data D [--split test|validation|all] [--n N] [--threads 1,2] [--repeats 3]
// Prints one JSON object on stdout.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arch/layerplan.h"
#include "core/common/runtime.h"
#include "core/compress/intref.h"
#include "core/io/patchdataset.h"
#include "core/nn/compress.h"
#include "core/nn/model.h"
#include "core/nn/qat.h"
#include "core/nn/torch_net.h"

using namespace braggnac::core;

namespace {

template <class F>
double medianSeconds(int repeats, F &&f)
{
    f(); // warm-up
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
        const auto a = std::chrono::steady_clock::now();
        f();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

} // namespace

int main(int argc, char **argv)
{
    configureNumericRuntime();
    std::string modelPath, dataPath, split = "test", threadList = "1,2";
    std::size_t limit = 0;
    int repeats = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--model")
            modelPath = v;
        else if (k == "--data")
            dataPath = v;
        else if (k == "--split")
            split = v;
        else if (k == "--n")
            limit = std::strtoul(v.c_str(), nullptr, 10);
        else if (k == "--threads")
            threadList = v;
        else if (k == "--repeats")
            repeats = std::max(1, std::atoi(v.c_str()));
        else {
            std::fprintf(stderr, "bench_compress: unknown option %s\n", k.c_str());
            return 2;
        }
    }
    if (modelPath.empty() || dataPath.empty() || (split != "test" && split != "validation" && split != "all")) {
        std::fprintf(stderr, "usage: bench_compress --model M --data D [--split test|validation|all] [--n N] "
                             "[--threads 1,2] [--repeats 3]\n");
        return 2;
    }
    try {
        const Model model = Model::load(modelPath);
        if (!hasQuantSpec(model)) {
            std::fprintf(stderr, "bench_compress: %s: not a quantised model folder (no quantization.json)\n",
                         modelPath.c_str());
            return 2;
        }
        const QuantSpec spec = modelQuantSpec(model, modelPath + "/quantization.json");
        const PatchDataset data = readPatchDataset(dataPath);
        const int want = split == "test" ? 2 : split == "validation" ? 1 : -1;
        const int s = data.patchSize;
        std::vector<float> raw;
        std::size_t n = 0;
        for (std::size_t i = 0; i < data.size() && (limit == 0 || n < limit); ++i) {
            if (want >= 0 && (data.split.empty() || data.split[i] != want))
                continue;
            raw.insert(raw.end(), data.patch(i), data.patch(i) + std::size_t(s) * s);
            ++n;
        }
        if (n == 0) {
            std::fprintf(stderr, "bench_compress: %s: no patches in split %s\n", dataPath.c_str(), split.c_str());
            return 2;
        }

        setTorchThreads(1);
        const LayerPlan plan = LayerPlan::lower(model.spec());
        const IntegerReference ref(plan, model.namedParameters(), spec);
        const std::vector<std::int64_t> intRaw = ref.forwardRaw(raw.data(), n, 1);
        const FakeQuantForward fq(model.impl().net, spec);
        torch::Tensor fqRaw;
        {
            torch::NoGradGuard guard;
            fqRaw = fq.forwardRaw(normalisePatches(raw.data(), n, s)).contiguous();
        }
        std::int64_t mismatches = 0;
        const std::int64_t *f = fqRaw.data_ptr<std::int64_t>();
        const bool sameCount = std::size_t(fqRaw.numel()) == intRaw.size();
        for (std::size_t i = 0; sameCount && i < intRaw.size(); ++i)
            mismatches += f[i] != intRaw[i];

        nlohmann::json out = {{"model", modelPath}, {"data", dataPath}, {"split", split}, {"patches", n},
                              {"raw_values", intRaw.size()},
                              {"mismatches", sameCount ? nlohmann::json(mismatches) : nlohmann::json("count differs")},
                              {"repeats", repeats}};
        nlohmann::json intref = nlohmann::json::object(), torchFloat = nlohmann::json::object();
        std::stringstream list(threadList);
        for (std::string item; std::getline(list, item, ',');) {
            const int t = std::max(1, std::atoi(item.c_str()));
            const double si = medianSeconds(repeats, [&] { (void)ref.forwardRaw(raw.data(), n, t); });
            setTorchThreads(t);
            const double st = medianSeconds(repeats, [&] { (void)model.predict(raw.data(), n); });
            setTorchThreads(1);
            intref[std::to_string(t)] = double(n) / si;
            torchFloat[std::to_string(t)] = double(n) / st;
        }
        out["intref_patches_per_s"] = intref;
        out["torch_float_patches_per_s"] = torchFloat;
        std::printf("%s\n", out.dump().c_str());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "bench_compress: %s\n", e.what());
        return 1;
    }
    return 0;
}
