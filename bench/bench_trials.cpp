// Trials per second with W worker threads x T LibTorch threads each (core/nn/trial.h): the data
// is prepared once and shared read-only; every worker runs its trials with recipe.threads = T,
// which sets only its own thread's OpenMP team size (ScopedTorchThreads).
//   bench_trials [--patches 4000] [--trials 8] [--epochs 2] [--arch nac] [--configs 1x2,2x1,1x1]
// Prints one line per configuration and a JSON summary on stdout.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arch/archspec.h"
#include "core/common/runtime.h"
#include "core/nn/trainer.h"
#include "core/nn/trial.h"
#include "core/sim/simulator.h"

using namespace braggnac::core;

int main(int argc, char **argv)
{
    configureNumericRuntime();
    std::size_t patches = 4000;
    int trials = 8, epochs = 2;
    std::string arch = "nac", configs = "1x2,2x1,1x1";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--patches")
            patches = std::strtoul(v.c_str(), nullptr, 10);
        else if (k == "--trials")
            trials = std::atoi(v.c_str());
        else if (k == "--epochs")
            epochs = std::atoi(v.c_str());
        else if (k == "--arch")
            arch = v;
        else if (k == "--configs")
            configs = v;
        else {
            std::fprintf(stderr, "unknown option %s\n", k.c_str());
            return 2;
        }
    }
    PatchSimOptions so;
    so.seed = 3;
    const PatchDataset data = simulatePatches(patches, so);
    const PreparedData prepared = prepareData(data, {"cpu", "simulated"});
    const ArchSpec spec = resolveArch(arch);

    nlohmann::json out = nlohmann::json::array();
    std::stringstream list(configs);
    for (std::string c; std::getline(list, c, ',');) {
        const auto x = c.find('x');
        const int workers = std::atoi(c.substr(0, x).c_str());
        const int threads = std::atoi(c.substr(x + 1).c_str());
        std::atomic<int> next{0};
        std::vector<double> trainSeconds(std::size_t(trials), 0);
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int w = 0; w < workers; ++w)
            pool.emplace_back([&] {
                for (int t; (t = next.fetch_add(1)) < trials;) {
                    TrainOptions o;
                    o.epochs = epochs;
                    o.threads = threads;
                    o.device = "cpu";
                    o.seed = std::uint64_t(t + 1);
                    trainSeconds[std::size_t(t)] = runTrial(spec, o, {}, prepared).seconds.total();
                }
            });
        for (auto &th : pool)
            th.join();
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        double perTrial = 0;
        for (double s : trainSeconds)
            perTrial += s / trials;
        std::fprintf(stderr, "%d worker(s) x %d thread(s): %d trials of %s (%d epochs, %zu patches) in %.2f s = %.3f trials/s (%.2f s per trial)\n",
                     workers, threads, trials, arch.c_str(), epochs, patches, wall, trials / wall, perTrial);
        out.push_back({{"workers", workers}, {"threads", threads}, {"trials", trials},
                       {"wall_seconds", wall}, {"trials_per_s", trials / wall},
                       {"seconds_per_trial", perTrial}});
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
}
