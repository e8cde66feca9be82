// braggnac-bench-libs: braggnac_nn braggnac_compress torch
// One QAT fine-tune of a float model folder with a per-layer variant of the calibrated formats
// that the compress verb does not offer (bench/compress.sh, "what would close the gap"): every
// format B bits wide as `braggnac compress --bits B` does, except the network output (the last
// plan op's output format), which gets --output-bits bits with the same integer bits. BOPs do
// not count an op's own output width, so the variant costs exactly as many standard BOPs as
// the uniform one; the test says what the output step costs in distance.
//   bench_compress_variant --model M --data D --bits B [--output-bits W] [--margin 1]
//       [--epochs 1] [--lr 5e-4] [--threads 1]
// Prints one JSON object: the formats changed, validation / test mean distance through the
// integer reference (evaluateQuantised), standard BOPs (quantisedCost), seconds.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arch/layerplan.h"
#include "core/common/runtime.h"
#include "core/compress/intref.h"
#include "core/compress/prune.h"
#include "core/io/patchdataset.h"
#include "core/nn/compress.h"
#include "core/nn/model.h"

using namespace braggnac::core;

int main(int argc, char **argv)
{
    configureNumericRuntime();
    std::string modelPath, dataPath;
    int bits = 8, outputBits = 0, margin = 1, epochs = 1, threads = 1;
    double lr = 5e-4;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--model")
            modelPath = v;
        else if (k == "--data")
            dataPath = v;
        else if (k == "--bits")
            bits = std::atoi(v.c_str());
        else if (k == "--output-bits")
            outputBits = std::atoi(v.c_str());
        else if (k == "--margin")
            margin = std::atoi(v.c_str());
        else if (k == "--epochs")
            epochs = std::atoi(v.c_str());
        else if (k == "--lr")
            lr = std::atof(v.c_str());
        else if (k == "--threads")
            threads = std::atoi(v.c_str());
        else {
            std::fprintf(stderr, "bench_compress_variant: unknown option %s\n", k.c_str());
            return 2;
        }
    }
    if (modelPath.empty() || dataPath.empty() || bits < 2 || bits > 16 || outputBits < 0 || outputBits > 16) {
        std::fprintf(stderr, "usage: bench_compress_variant --model M --data D --bits 2..16 [--output-bits 2..16] "
                             "[--margin 1] [--epochs 1] [--lr 5e-4] [--threads 1]\n");
        return 2;
    }
    try {
        const auto t0 = std::chrono::steady_clock::now();
        setTorchThreads(threads);
        Model model = Model::load(modelPath);
        const PatchDataset data = readPatchDataset(dataPath);
        const LayerPlan plan = LayerPlan::lower(model.spec());
        // Calibration patches: the first 1024 training rows, as compress does.
        std::vector<float> calib;
        std::size_t n = 0;
        const int s = data.patchSize;
        for (std::size_t i = 0; i < data.size() && n < 1024; ++i)
            if (data.split.empty() || data.split[i] == 0) {
                calib.insert(calib.end(), data.patch(i), data.patch(i) + std::size_t(s) * s);
                ++n;
            }
        QuantSpec spec = calibratedQuantSpec(plan, model.namedParameters(), calib.data(), n, bits, margin);
        nlohmann::json changed = nlohmann::json::object();
        const std::string last = plan.ops.back().name;
        if (outputBits > 0) {
            FixedFormat &f = spec.ops.at(last).output;
            f.width = outputBits; // the same integer bits, outputBits - bits more fraction bits
            changed[last + ".output"] = {{"width", f.width}, {"integer", f.integer}, {"hls", f.hlsType()}};
        }
        spec.checkSupported(plan, "variant");
        TrainOptions t;
        t.learningRate = lr;
        t.batchSize = 256;
        t.threads = threads;
        t.seed = 1 + std::uint64_t(bits) * 1000;
        fineTune(model, data, &spec, PruneMasks::full(plan), epochs, t);
        model.quantization = spec.toJson();
        const Evaluation val = evaluateQuantised(model, data, 1, threads), test = evaluateQuantised(model, data, 2, threads);
        const IntegerReference ref(plan, model.namedParameters(), spec);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        nlohmann::json out = {{"model", modelPath}, {"bits", bits}, {"output_bits", outputBits > 0 ? outputBits : bits},
                              {"margin", margin}, {"epochs", epochs}, {"lr", lr}, {"changed", changed},
                              {"validation", val.overall.mean}, {"test", test.overall.mean},
                              {"bops", quantisedCost(ref).bops}, {"seconds", seconds}};
        std::printf("%s\n", out.dump().c_str());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "bench_compress_variant: %s\n", e.what());
        return 1;
    }
    return 0;
}
