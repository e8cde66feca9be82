// Peak-finder benchmark: both split modes (none = one peak per connected component, prominence =
// the default) side by side in the same run: throughput on simulated 2048 x 2048 frames (in memory,
// and including the HDF5 or GE2 read) at several thread counts, repetitions interleaved between the
// modes; recall / precision against the simulator's truth (isolated peaks, as core/sim/peakscore.h
// defines them, and all bright peaks with close pairs >= 3 px apart), by SNR bin; saturated peaks'
// patch-centre error. Prints one JSON object on stdout; bench/finder.sh runs it beside the Python
// (scipy.ndimage) reference of the CC finder and writes docs/benchmarks/finder.md.
//   bench_finder [--frames 20] [--size 2048] [--peaks 300] [--reps 7] [--seed 1]
//                [--threads 1,2] [--close-fraction 0.05] [--h5 /tmp/bench_finder.h5]
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

#include "core/common/parallel.h"
#include "core/common/runtime.h"
#include "core/io/chunkdecode.h"
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
    so.closePairFraction = std::stod(arg(argc, argv, "close-fraction", "0.05"));

    nlohmann::json out;
    out["config"] = {{"frames", frames}, {"size", so.size}, {"peaks_per_frame", so.peaksPerFrame},
                     {"reps", reps}, {"seed", so.seed}, {"h5", h5},
                     {"close_fraction", so.closePairFraction}, {"saturation", so.saturation}};
    const char *cvThreads = std::getenv("OPENCV_FOR_THREADS_NUM");
    out["config"]["OPENCV_FOR_THREADS_NUM"] = cvThreads ? cvThreads : "";

    auto t0 = Clock::now();
    const SimulatedFrames sim = simulateFrames(frames, so);
    out["simulate_seconds"] = since(t0);
    t0 = Clock::now();
    writeSimulatedFrames(h5, sim, SimFormat::HDF5);
    out["write_seconds"] = since(t0);

    const std::vector<std::pair<std::string, SplitMode>> modes = {{"none", SplitMode::None},
                                                                   {"prominence", SplitMode::Prominence}};
    auto optionsFor = [](SplitMode mode, int threads) {
        FinderOptions o;
        o.split = mode;
        o.threads = threads;
        return o;
    };
    auto samePeaks = [](const std::vector<Peak> &a, const std::vector<Peak> &b) {
        return a.size() == b.size()
            && std::equal(a.begin(), a.end(), b.begin(), [](const Peak &x, const Peak &y) {
                   return x.frame == y.frame && x.row == y.row && x.col == y.col
                       && x.centroidRow == y.centroidRow && x.merged == y.merged
                       && x.neighbourDistance == y.neighbourDistance;
               });
    };
    // Frames in memory: repetitions interleaved (rep, threads, mode) so load changes hit both modes.
    std::map<std::string, std::vector<Peak>> reference;
    std::map<std::string, std::map<int, std::vector<double>>> seconds, cpu;
    for (int r = 0; r < reps; ++r)
        for (int threads : threadCounts)
            for (const auto &[name, mode] : modes) {
                std::vector<Peak> peaks;
                t0 = Clock::now();
                const double c0 = cpuSeconds();
                const PatchDataset d = findPeaksInFrames(sim.frames, optionsFor(mode, threads), {}, &peaks);
                cpu[name][threads].push_back(cpuSeconds() - c0);
                seconds[name][threads].push_back(since(t0));
                if (!reference.count(name))
                    reference[name] = peaks;
                else if (!samePeaks(peaks, reference[name])) {
                    std::cerr << "bench_finder: " << name << " results differ between runs/thread counts\n";
                    return 1;
                }
            }
    for (const auto &[name, mode] : modes)
        for (int threads : threadCounts) {
            auto &t = out["modes"][name]["in_memory"][std::to_string(threads)];
            t = timing(seconds[name][threads], frames);
            t["cpu_ms_per_frame_median"] = 1e3 * median(cpu[name][threads]) / frames;
        }
    // The threshold statistics alone (median / MAD of the subsample), per frame.
    {
        std::vector<double> s;
        for (int r = 0; r < reps; ++r) {
            t0 = Clock::now();
            for (const Frame &f : sim.frames)
                frameThreshold(f, FinderOptions());
            s.push_back(since(t0));
        }
        out["threshold_ms_per_frame"] = 1e3 * median(s) / frames;
    }
    // From the HDF5 file (gzip uint16, one chunk per frame): read only, and read + find, each with
    // the raw-chunk read (deflate decoded outside the HDF5 lock, chunkdecode.h) and with the plain
    // H5Dread (decoded under the lock), repetitions interleaved between the two.
    {
        const auto source = openFrameSource(h5);
        const std::vector<std::pair<std::string, bool>> reads = {{"", true}, {"_plain", false}};
        const int maxThreads = *std::max_element(threadCounts.begin(), threadCounts.end());
        std::map<std::string, std::vector<double>> s, sPar, readCpu;
        std::map<std::string, std::map<std::string, std::map<int, std::vector<double>>>> withRead;
        const std::uint64_t direct0 = chunkdecode::directFrameCount();
        for (int r = 0; r < reps; ++r)
            for (const auto &[suffix, direct] : reads) {
                chunkdecode::setDirectChunkReads(direct);
                t0 = Clock::now();
                const double c0 = cpuSeconds();
                for (int i = 0; i < frames; ++i)
                    source->readFrame(i);
                readCpu[suffix].push_back(cpuSeconds() - c0);
                s[suffix].push_back(since(t0));
                // Read alone from maxThreads threads (frames dealt out round-robin).
                t0 = Clock::now();
                parallelChunks(std::size_t(frames), maxThreads, 1, [&](std::size_t lo, std::size_t hi, int) {
                    for (std::size_t i = lo; i < hi; ++i)
                        source->readFrame(int(i));
                });
                sPar[suffix].push_back(since(t0));
                for (int threads : threadCounts)
                    for (const auto &[name, mode] : modes) {
                        t0 = Clock::now();
                        const PatchDataset d = findPeaksInSource(*source, 0, frames, optionsFor(mode, threads));
                        withRead[suffix][name][threads].push_back(since(t0));
                    }
            }
        chunkdecode::setDirectChunkReads(true);
        out["hdf5_direct_frames"] = chunkdecode::directFrameCount() - direct0;
        for (const auto &[suffix, direct] : reads) {
            out["hdf5_read_only" + suffix] = timing(s[suffix], frames);
            out["hdf5_read_only" + suffix]["cpu_ms_per_frame_median"] = 1e3 * median(readCpu[suffix]) / frames;
            out["hdf5_read_only" + suffix + "_threads"] = timing(sPar[suffix], frames);
            out["hdf5_read_only" + suffix + "_threads"]["threads"] = maxThreads;
            for (const auto &[name, mode] : modes)
                for (int threads : threadCounts)
                    out["modes"][name]["with_hdf5_read" + suffix][std::to_string(threads)] =
                        timing(withRead[suffix][name][threads], frames);
        }
    }
    // From a GE2 file (raw uint16, no compression): read + find.
    if (so.size == 2048) {
        const std::string ge = h5 + ".ge2";
        writeGeFrames(ge, sim.frames);
        const auto source = openFrameSource(ge);
        std::map<std::string, std::map<int, std::vector<double>>> withRead;
        for (int r = 0; r < reps; ++r)
            for (int threads : threadCounts)
                for (const auto &[name, mode] : modes) {
                    t0 = Clock::now();
                    const PatchDataset d = findPeaksInSource(*source, 0, frames, optionsFor(mode, threads));
                    withRead[name][threads].push_back(since(t0));
                }
        for (const auto &[name, mode] : modes)
            for (int threads : threadCounts)
                out["modes"][name]["with_ge2_read"][std::to_string(threads)] =
                    timing(withRead[name][threads], frames);
        std::remove(ge.c_str());
    }

    // Quality against the truth, per mode.
    // Distance from every truth peak to the nearest other truth peak of its frame.
    std::vector<double> nearestTruth(sim.truth.size(), HUGE_VAL);
    for (std::size_t i = 0; i < sim.truth.size(); ++i)
        for (std::size_t j = 0; j < sim.truth.size(); ++j)
            if (j != i && sim.truth[j].frame == sim.truth[i].frame)
                nearestTruth[i] = std::min(nearestTruth[i],
                                           std::hypot(sim.truth[i].params.row - sim.truth[j].params.row,
                                                      sim.truth[i].params.col - sim.truth[j].params.col));
    out["truth_peaks"] = sim.truth.size();
    const std::vector<double> edges = {0, 5, 10, 20, 50, 100, 1000, 1e300};
    auto binOf = [&](double snr) {
        return int(std::upper_bound(edges.begin(), edges.end(), snr) - edges.begin()) - 1;
    };
    for (const auto &[name, mode] : modes) {
        const FinderOptions fo = optionsFor(mode, 1);
        const std::vector<Peak> &found = reference[name];
        nlohmann::json &m = out["modes"][name];
        const PeakScore score = scorePeaks(sim, so, found, fo);
        m["peaks_found"] = found.size();
        m["recall_isolated_bright"] = {{"matched", score.isolatedBrightMatched}, {"of", score.isolatedBright}};
        m["precision_bright"] = {{"matched", score.precisionMatched}, {"of", score.precisionCounted}};
        int all = 0, allMatched = 0, bright = 0, brightMatched = 0;
        for (const FoundScore &f : score.found) {
            ++all;
            allMatched += f.matched >= 0;
            bright += f.bright;
            brightMatched += f.bright && f.matched >= 0;
        }
        m["precision_all_detections"] = {{"matched", allMatched}, {"of", all}};
        // The issue-11 goal: every truth peak brighter than 10 sigma whose nearest other truth
        // peak is >= 3 px away (close pairs >= 3 px included), and every detection > 10 sigma.
        int goal = 0, goalMatched = 0, closeGoal = 0, closeGoalMatched = 0;
        for (std::size_t i = 0; i < sim.truth.size(); ++i)
            if (score.truth[i].bright && nearestTruth[i] >= 3) {
                ++goal;
                goalMatched += score.truth[i].matched >= 0;
                if (sim.truth[i].closePair) {
                    ++closeGoal;
                    closeGoalMatched += score.truth[i].matched >= 0;
                }
            }
        m["recall_all_bright_3px"] = {{"matched", goalMatched}, {"of", goal}};
        m["recall_close_pairs_bright_3px"] = {{"matched", closeGoalMatched}, {"of", closeGoal}};
        m["precision_all_bright"] = {{"matched", brightMatched}, {"of", bright}};

        std::map<std::string, std::vector<std::array<int, 2>>> bins;
        for (const char *kind : {"isolated", "close_pair", "crowded"})
            bins[kind].assign(edges.size() - 1, {0, 0});
        int isolatedMatched = 0, isolatedMerged = 0, isolatedSplit = 0, closeFound = 0, closeMerged = 0;
        std::vector<double> closeErrors, isolatedErrors;
        for (std::size_t i = 0; i < sim.truth.size(); ++i) {
            const TruthScore &t = score.truth[i];
            const std::string kind = t.isolated ? "isolated" : sim.truth[i].closePair ? "close_pair" : "crowded";
            auto &b = bins[kind][std::size_t(binOf(t.snr))];
            ++b[0];
            b[1] += t.matched >= 0;
            const PseudoVoigt &p = sim.truth[i].params;
            if (t.matched >= 0) {
                const Peak &f = found[std::size_t(t.matched)];
                const double e = std::hypot(f.centroidRow - p.row, f.centroidCol - p.col);
                if (t.isolated) {
                    ++isolatedMatched;
                    isolatedMerged += f.merged;
                    isolatedSplit += f.componentPeaks > 1;
                    isolatedErrors.push_back(e);
                } else if (sim.truth[i].closePair && nearestTruth[i] >= 3 && t.bright) {
                    closeErrors.push_back(e);
                }
            }
            if (sim.truth[i].closePair) {
                // The detection whose maximum pixel is nearest this close-pair peak (within 5 px).
                const Peak *nearest = nullptr;
                double best = 5;
                for (const Peak &f : found)
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
                m["recall_by_snr"][kind].push_back(
                    {{"snr_min", edges[k]}, {"snr_max", k + 2 < edges.size() ? edges[k + 1] : -1},
                     {"truth", b[k][0]}, {"matched", b[k][1]}});
        m["merged_flag"] = {{"isolated_matched", isolatedMatched}, {"isolated_flagged", isolatedMerged},
                            {"isolated_split", isolatedSplit},
                            {"close_pair_detected", closeFound}, {"close_pair_flagged", closeMerged}};
        m["centroid_error_px"] = {{"isolated_median", median(isolatedErrors)},
                                  {"close_pair_3px_median", median(closeErrors)},
                                  {"close_pair_3px_n", closeErrors.size()}};
        int merged = 0, neighbour = 0, saturatedFlags = 0;
        for (const Peak &f : found) {
            merged += f.merged;
            neighbour += f.neighbour;
            saturatedFlags += f.saturatedPixels > 0;
        }
        m["flags"] = {{"merged", merged}, {"neighbour", neighbour}, {"saturated", saturatedFlags}};
        // Saturated peaks: truth peaks whose pixel at the true centre reached the saturation
        // level; the error of the patch centre (row, col) of the nearest detection (within 5 px).
        int satTruth = 0, satFound = 0, satWithin1 = 0;
        double satSum = 0, satMax = 0;
        for (std::size_t i = 0; i < sim.truth.size(); ++i) {
            const PseudoVoigt &p = sim.truth[i].params;
            const Frame &frame = sim.frames[std::size_t(sim.truth[i].frame)];
            const int r = int(std::lround(p.row)), c = int(std::lround(p.col));
            if (so.saturation <= 0 || frame.at(r, c) < so.saturation || nearestTruth[i] < 3)
                continue;
            ++satTruth;
            double best = 5;
            for (const Peak &f : found)
                if (f.frame == sim.truth[i].frame)
                    best = std::min(best, std::hypot(f.row - p.row, f.col - p.col));
            if (best < 5) {
                ++satFound;
                satSum += best;
                satMax = std::max(satMax, best);
                satWithin1 += best <= 1;
            }
        }
        m["saturated"] = {{"truth", satTruth}, {"detected", satFound}, {"patch_centre_within_1px", satWithin1},
                          {"patch_centre_error_mean", satFound ? satSum / satFound : 0},
                          {"patch_centre_error_max", satMax}};
    }
    std::cout << out.dump(1) << std::endl;
    return 0;
}
