// braggnac-bench-libs: braggnac_peaks braggnac_sim braggnac_io braggnac_common
// bench_fit: pseudo-Voigt fitting throughput on simulated 11x11 patches, and the fits themselves
// for bench/fit_scipy.py to score against the truth (bench/fit.sh runs both, docs/benchmarks/fit.md).
//
//   bench_fit --out PATCHES.h5 [--n 20000] [--repeats 5] [--seed 1] [--threads 1,2]
//             [--modes two-peak,mask,ignore] [--regime realistic|easy] [--unweighted]
//             [--no-write]
//
// Writes the simulated patches (PatchSimOptions::realistic() or ::easy(), with /truth/*,
// /flags/neighbour) plus, per neighbour mode M, /bench/M/params [N,10], /bench/M/converged,
// /bench/M/status, /bench/M/peaks (1 or 2), /bench/M/center_stderr [N,2], /bench/M/iterations,
// /bench/M/rms, and the
// noise limit /bench/crlb [N,2] (row, col; crlb.h, pixel-integrated when the regime is) and
// /bench/snr to PATCHES.h5; prints one JSON object with the median wall and CPU times per
// (mode, threads).
#include <algorithm>
#include <array>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/common/runtime.h"
#include "core/io/patchdataset.h"
#include "core/peaks/crlb.h"
#include "core/peaks/fitter.h"
#include "core/sim/simulator.h"

using namespace braggnac::core;

namespace {

double cpuSeconds()
{
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

std::vector<std::string> split(const std::string &s)
{
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');)
        if (!item.empty())
            out.push_back(item);
    return out;
}

NeighbourHandling modeOf(const std::string &m)
{
    if (m == "two-peak")
        return NeighbourHandling::TwoPeak;
    if (m == "mask")
        return NeighbourHandling::Mask;
    if (m == "ignore")
        return NeighbourHandling::Ignore;
    throw std::runtime_error("unknown mode '" + m + "' (two-peak, mask, ignore)");
}

std::string cpuModel()
{
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("model name", 0) == 0) {
            const auto colon = line.find(':');
            return colon == std::string::npos ? line : line.substr(colon + 2);
        }
    return "unknown";
}

} // namespace

int main(int argc, char **argv)
{
    configureNumericRuntime();
    std::map<std::string, std::string> opt = {{"n", "20000"},   {"repeats", "5"},
                                              {"seed", "1"},     {"threads", "1,2"},
                                              {"modes", "two-peak,mask,ignore"},
                                              {"regime", "realistic"}};
    bool write = true, poisson = FitOptions{}.poissonWeights;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--unweighted") {
            poisson = false; // no Poisson-weighted continuation (FitOptions::poissonWeights)
        } else if (a == "--no-write") {
            write = false;
        } else if (a.rfind("--", 0) == 0 && i + 1 < argc) {
            opt[a.substr(2)] = argv[++i];
        } else {
            std::cerr << "usage: bench_fit --out PATCHES.h5 [--n 20000] [--repeats 5] [--seed 1] "
                         "[--threads 1,2] [--modes two-peak,mask,ignore] [--no-write]\n";
            return 2;
        }
    }
    if (write && !opt.count("out")) {
        std::cerr << "bench_fit: --out is required (or --no-write)\n";
        return 2;
    }
    try {
        const std::size_t n = std::stoul(opt["n"]);
        const int repeats = std::max(1, std::stoi(opt["repeats"]));
        if (opt["regime"] != "realistic" && opt["regime"] != "easy")
            throw std::runtime_error("--regime must be realistic or easy");
        PatchSimOptions so = opt["regime"] == "easy" ? PatchSimOptions::easy()
                                                     : PatchSimOptions::realistic();
        so.seed = std::stoull(opt["seed"]);
        PatchDataset data = simulatePatches(n, so);

        nlohmann::json result;
        result["n"] = n;
        result["patch_size"] = data.patchSize;
        result["seed"] = so.seed;
        result["repeats"] = repeats;
        result["cpu"] = cpuModel();
        result["isa"] = fitKernelIsa();
        result["regime"] = opt["regime"];
        result["poisson_weights"] = poisson;
        if (write) {
            // The noise limit of every patch (true parameters, Poisson + read noise; a
            // neighbour, when there is one, is a known part of the mean).
            const auto &tp = data.extraFloat.at("/truth/params").data;
            const auto &np = data.extraFloat.at("/truth/neighbour_params").data;
            const auto &hasNb = data.extraFlags.at("/flags/neighbour");
            std::vector<float> crlb(n * 2), snr(n);
            CrlbOptions co;
            co.readNoise = so.readNoise;
            co.integrationPoints = so.pixelIntegrated ? 6 : 1;
            for (std::size_t i = 0; i < n; ++i) {
                std::array<double, 10> a, b;
                for (int j = 0; j < 10; ++j) {
                    a[j] = tp[i * 10 + j];
                    b[j] = np[i * 10 + j];
                }
                const PseudoVoigt t = PseudoVoigt::fromArray(a), q = PseudoVoigt::fromArray(b);
                const CrlbResult r = centreCrlb(t, data.patchSize, co, hasNb[i] ? &q : nullptr);
                crlb[2 * i] = float(r.rowStd);
                crlb[2 * i + 1] = float(r.colStd);
                snr[i] = float(t.amplitude
                               / std::sqrt(t.amplitude + t.background + so.readNoise * so.readNoise));
            }
            const auto nn = static_cast<unsigned long long>(n);
            data.extraFloat["/bench/crlb"] = {{nn, 2ull}, std::move(crlb)};
            data.extraFloat["/bench/snr"] = {{nn}, std::move(snr)};
        }
        nlohmann::json timings = nlohmann::json::array();
        for (const std::string &mode : split(opt["modes"])) {
            FitOptions fo;
            fo.neighbours = modeOf(mode);
            fo.poissonWeights = poisson;
            fo.readNoise = so.readNoise;
            std::vector<FitResult> fits;
            for (const std::string &t : split(opt["threads"])) {
                fo.threads = std::stoi(t);
                fits = fitPatches(data, fo); // warm-up (and the fits written below)
                std::vector<double> wall, cpu;
                for (int r = 0; r < repeats; ++r) {
                    const double c0 = cpuSeconds();
                    const auto t0 = std::chrono::steady_clock::now();
                    const auto again = fitPatches(data, fo);
                    const auto t1 = std::chrono::steady_clock::now();
                    const double c1 = cpuSeconds();
                    wall.push_back(std::chrono::duration<double>(t1 - t0).count());
                    cpu.push_back(c1 - c0);
                    if (again.size() != fits.size())
                        throw std::runtime_error("inconsistent fit count");
                }
                const double w = median(wall), c = median(cpu);
                timings.push_back({{"mode", mode},
                                   {"threads", fo.threads},
                                   {"wall_s", wall},
                                   {"cpu_s", cpu},
                                   {"median_wall_s", w},
                                   {"median_cpu_s", c},
                                   {"patches_per_s", double(n) / w},
                                   {"patches_per_s_per_core", double(n) / w / fo.threads},
                                   {"patches_per_cpu_s", double(n) / c}});
                std::cerr << mode << ", " << fo.threads << " thread(s): " << double(n) / w
                          << " patches/s (" << double(n) / c << " per CPU second)\n";
            }
            std::vector<float> params(n * PseudoVoigt::kParameterCount), iters(n), rms(n), se(n * 2);
            std::vector<std::uint8_t> conv(n), status(n), peaks(n);
            std::size_t converged = 0;
            for (std::size_t i = 0; i < n; ++i) {
                const auto a = fits[i].params.toArray();
                std::copy(a.begin(), a.end(), params.begin() + i * PseudoVoigt::kParameterCount);
                iters[i] = float(fits[i].iterations);
                rms[i] = float(fits[i].rms);
                conv[i] = fits[i].converged;
                status[i] = std::uint8_t(fits[i].status);
                peaks[i] = std::uint8_t(fits[i].peaks);
                se[2 * i] = float(fits[i].rowStderr);
                se[2 * i + 1] = float(fits[i].colStderr);
                converged += fits[i].converged;
            }
            result["converged"][mode] = converged;
            const auto nn = static_cast<unsigned long long>(n);
            const std::string g = "/bench/" + mode;
            data.extraFloat[g + "/params"] = {{nn, 10ull}, std::move(params)};
            data.extraFloat[g + "/iterations"] = {{nn}, std::move(iters)};
            data.extraFloat[g + "/rms"] = {{nn}, std::move(rms)};
            data.extraFlags[g + "/converged"] = std::move(conv);
            data.extraFlags[g + "/status"] = std::move(status);
            data.extraFlags[g + "/peaks"] = std::move(peaks);
            data.extraFloat[g + "/center_stderr"] = {{nn, 2ull}, std::move(se)};
        }
        result["timings"] = timings;
        if (write) {
            writePatchDataset(opt["out"], data, false);
            result["out"] = opt["out"];
        }
        std::cout << result.dump() << std::endl;
    } catch (const std::exception &e) {
        std::cerr << "bench_fit: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
