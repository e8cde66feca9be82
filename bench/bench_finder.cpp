// Peak-finder benchmark: throughput on simulated 2048 x 2048 frames (in memory, and including the
// HDF5 or GE2 read) at several thread counts, and recall / precision against the simulator's truth by
// SNR bin for isolated, close-pair and crowded peaks. Prints one JSON object on stdout; bench/
// finder.sh runs it beside the Python (scipy.ndimage) reference and writes
// docs/benchmarks/finder.md.
//   bench_finder [--frames 20] [--size 2048] [--peaks 300] [--reps 7] [--seed 1]
//                [--threads 1,2] [--h5 /tmp/bench_finder.h5]
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include "core/common/runtime.h"
#include "core/io/framesource.h"
#include "core/peaks/finder.h"
#include "core/sim/peakscore.h"
#include "core/sim/simulator.h"

using namespace braggnac::core;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0)
{
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// CPU seconds (user + system) this process has used so far, all threads.
double cpuSeconds()
{
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n == 0 ? 0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

nlohmann::json timing(const std::vector<double> &seconds, int frames)
{
    std::vector<double> fps;
    for (double s : seconds)
        fps.push_back(frames / s);
    return {{"frames_per_s_median", median(fps)},
            {"frames_per_s_min", *std::min_element(fps.begin(), fps.end())},
            {"frames_per_s_max", *std::max_element(fps.begin(), fps.end())},
            {"reps", seconds.size()}};
}

std::string arg(int argc, char **argv, const std::string &name, const std::string &fallback)
{
    for (int i = 1; i + 1 < argc; ++i)
        if (argv[i] == "--" + name)
            return argv[i + 1];
    return fallback;
}

} // namespace

int main(int argc, char **argv)
{
    configureNumericRuntime();
    const int frames = std::stoi(arg(argc, argv, "frames", "20"));
    const int reps = std::stoi(arg(argc, argv, "reps", "7"));
    const std::string h5 = arg(argc, argv, "h5", "/tmp/bench_finder.h5");
    std::vector<int> threadCounts;
    {
        std::stringstream ss(arg(argc, argv, "threads", "1,2"));
        for (std::string t; std::getline(ss, t, ',');)
            threadCounts.push_back(std::stoi(t));
    }
    FrameSimOptions so;
    so.size = std::stoi(arg(argc, argv, "size", "2048"));
    so.peaksPerFrame = std::stoi(arg(argc, argv, "peaks", "300"));
    so.seed = std::stoull(arg(argc, argv, "seed", "1"));

    nlohmann::json out;
    out["config"] = {{"frames", frames}, {"size", so.size}, {"peaks_per_frame", so.peaksPerFrame},
                     {"reps", reps}, {"seed", so.seed}, {"h5", h5}};
    const char *cvThreads = std::getenv("OPENCV_FOR_THREADS_NUM");
    out["config"]["OPENCV_FOR_THREADS_NUM"] = cvThreads ? cvThreads : "";

    auto t0 = Clock::now();
    const SimulatedFrames sim = simulateFrames(frames, so);
    out["simulate_seconds"] = since(t0);
    t0 = Clock::now();
    writeSimulatedFrames(h5, sim, SimFormat::HDF5);
    out["write_seconds"] = since(t0);

    FinderOptions fo;
    // Frames in memory.
    std::vector<Peak> reference;
    for (int threads : threadCounts) {
        fo.threads = threads;
        std::vector<double> seconds, cpu;
        for (int r = 0; r < reps; ++r) {
            std::vector<Peak> peaks;
            t0 = Clock::now();
            const double c0 = cpuSeconds();
            const PatchDataset d = findPeaksInFrames(sim.frames, fo, {}, &peaks);
            cpu.push_back(cpuSeconds() - c0);
            seconds.push_back(since(t0));
            if (reference.empty())
                reference = peaks;
            else if (peaks.size() != reference.size()
                     || !std::equal(peaks.begin(), peaks.end(), reference.begin(), [](const Peak &a, const Peak &b) {
                            return a.frame == b.frame && a.row == b.row && a.col == b.col
                                && a.centroidRow == b.centroidRow && a.merged == b.merged;
                        })) {
                std::cerr << "bench_finder: results differ between runs/thread counts\n";
                return 1;
            }
        }
        out["in_memory"][std::to_string(threads)] = timing(seconds, frames);
        out["in_memory"][std::to_string(threads)]["cpu_ms_per_frame_median"] = 1e3 * median(cpu) / frames;
    }
    // The threshold statistics alone (median / MAD of the subsample), per frame.
    {
        std::vector<double> seconds;
        for (int r = 0; r < reps; ++r) {
            t0 = Clock::now();
            for (const Frame &f : sim.frames)
                frameThreshold(f, fo);
            seconds.push_back(since(t0));
        }
        out["threshold_ms_per_frame"] = 1e3 * median(seconds) / frames;
    }
    // From the HDF5 file (gzip uint16, one chunk per frame): read only, and read + find.
    {
        const auto source = openFrameSource(h5);
        std::vector<double> seconds;
        for (int r = 0; r < reps; ++r) {
            t0 = Clock::now();
            for (int i = 0; i < frames; ++i)
                source->readFrame(i);
            seconds.push_back(since(t0));
        }
        out["hdf5_read_only"] = timing(seconds, frames);
        for (int threads : threadCounts) {
            fo.threads = threads;
            seconds.clear();
            for (int r = 0; r < reps; ++r) {
                t0 = Clock::now();
                const PatchDataset d = findPeaksInSource(*source, 0, frames, fo);
                seconds.push_back(since(t0));
            }
            out["with_hdf5_read"][std::to_string(threads)] = timing(seconds, frames);
        }
    }

    // From a GE2 file (raw uint16, no compression): read + find.
    if (so.size == 2048) {
        const std::string ge = h5 + ".ge2";
        writeGeFrames(ge, sim.frames);
        const auto source = openFrameSource(ge);
        for (int threads : threadCounts) {
            fo.threads = threads;
            std::vector<double> seconds;
            for (int r = 0; r < reps; ++r) {
                t0 = Clock::now();
                const PatchDataset d = findPeaksInSource(*source, 0, frames, fo);
                seconds.push_back(since(t0));
            }
            out["with_ge2_read"][std::to_string(threads)] = timing(seconds, frames);
        }
        std::remove(ge.c_str());
    }

    // Quality against the truth.
    const PeakScore score = scorePeaks(sim, so, reference, fo);
    out["peaks_found"] = reference.size();
    out["truth_peaks"] = sim.truth.size();
    out["recall_isolated_bright"] = {{"matched", score.isolatedBrightMatched}, {"of", score.isolatedBright}};
    out["precision_bright"] = {{"matched", score.precisionMatched}, {"of", score.precisionCounted}};
    {
        int all = 0, allMatched = 0;
        for (const FoundScore &f : score.found) {
            ++all;
            allMatched += f.matched >= 0;
        }
        out["precision_all_detections"] = {{"matched", allMatched}, {"of", all}};
    }
    const std::vector<double> edges = {0, 5, 10, 20, 50, 100, 1000, 1e300};
    auto binOf = [&](double snr) {
        return int(std::upper_bound(edges.begin(), edges.end(), snr) - edges.begin()) - 1;
    };
    std::map<std::string, std::vector<std::array<int, 2>>> bins;
    for (const char *kind : {"isolated", "close_pair", "crowded"})
        bins[kind].assign(edges.size() - 1, {0, 0});
    int isolatedMatched = 0, isolatedMerged = 0, closeFound = 0, closeMerged = 0;
    for (std::size_t i = 0; i < sim.truth.size(); ++i) {
        const TruthScore &t = score.truth[i];
        const std::string kind = t.isolated ? "isolated" : sim.truth[i].closePair ? "close_pair" : "crowded";
        auto &b = bins[kind][std::size_t(binOf(t.snr))];
        ++b[0];
        b[1] += t.matched >= 0;
        if (t.isolated && t.matched >= 0) {
            ++isolatedMatched;
            isolatedMerged += reference[std::size_t(t.matched)].merged;
        }
        if (sim.truth[i].closePair) {
            // The detection whose maximum pixel is nearest this close-pair peak (within 5 px).
            const PseudoVoigt &p = sim.truth[i].params;
            const Peak *nearest = nullptr;
            double best = 5;
            for (const Peak &f : reference)
                if (f.frame == sim.truth[i].frame && std::hypot(f.row - p.row, f.col - p.col) < best) {
                    best = std::hypot(f.row - p.row, f.col - p.col);
                    nearest = &f;
                }
            if (nearest) {
                ++closeFound;
                closeMerged += nearest->merged;
            }
        }
    }
    for (auto &[kind, b] : bins)
        for (std::size_t k = 0; k < b.size(); ++k)
            out["recall_by_snr"][kind].push_back(
                {{"snr_min", edges[k]}, {"snr_max", k + 2 < edges.size() ? edges[k + 1] : -1},
                 {"truth", b[k][0]}, {"matched", b[k][1]}});
    out["merged_flag"] = {{"isolated_matched", isolatedMatched}, {"isolated_flagged", isolatedMerged},
                          {"close_pair_detected", closeFound}, {"close_pair_flagged", closeMerged}};
    std::cout << out.dump(1) << std::endl;
    return 0;
}
