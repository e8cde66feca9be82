// Peak-finder benchmark: both split modes (none = one peak per connected component, prominence =
// the default) side by side in the same run: throughput on simulated 2048 x 2048 frames (in memory,
// and including the HDF5 or GE2 read) at several thread counts, repetitions interleaved between the
// modes; recall / precision against the simulator's truth (isolated peaks, as core/sim/peakscore.h
// defines them, and all bright peaks with close pairs >= 3 px apart), by SNR bin; saturated peaks'
// patch-centre error. Prints one JSON object on stdout; bench/finder.sh runs it beside the Python
// (scipy.ndimage) reference of the CC finder and writes docs/benchmarks/finder.md.
//   bench_finder [--frames 20] [--size 2048] [--peaks 300] [--reps 7] [--seed 1]
//                [--threads 1,2] [--close-fraction 0.05] [--h5 /tmp/bench_finder.h5]
//                [--diagnose misses|time|dump:F,R,C|real:PATH]  (see diagnose() below)
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

/// --diagnose WHAT (no timing benchmark, no JSON; tab-separated text on stdout):
///   misses     every bright truth peak >= 3 px from its nearest other truth peak that the default
///              finder misses: its partner's distance and amplitude ratio, the matched-filter SNR
///              its known shape would give, whether its noisy pixel nearest the centre is a local
///              maximum, the nearest detection (distance, flags, whether it matched another truth
///              peak), and which relaxed option recovers it (prominence fraction 0, prominence
///              sigma 0, min separation 1, shoulder sigma 2, all four); then every bright detection
///              that matches no truth peak, with the two nearest truth peaks.
///   time       CPU ms per frame on 1 thread, split none / prominence / prominence without the
///              shoulder search, interleaved, min and median of 7.
///   dump:F,R,C the truth peaks near (R, C) of frame F and the frame's 15 x 15 pixels there.
///   real:PATH  the components the default finder splits in a real frame file (threshold 100).
///   read:PATH  CPU ms per frame of readFrameInto alone on 1 thread over every frame of an
///              existing file (e.g. one --h5 wrote), then of read + find (default options),
///              each repeated 5 times: min and median (for perf).
int diagnose(const std::string &what, int frames, const FrameSimOptions &so)
{
    if (what.rfind("read:", 0) == 0) {
        const auto source = openFrameSource(what.substr(5));
        std::vector<double> cpu;
        Frame into;
        for (int r = 0; r < 5; ++r) {
            const double c0 = cpuSeconds();
            for (int i = 0; i < source->frameCount(); ++i)
                source->readFrameInto(i, into);
            cpu.push_back(1e3 * (cpuSeconds() - c0) / source->frameCount());
        }
        std::printf("read: min %.2f median %.2f ms/frame over %d frames\n",
                    *std::min_element(cpu.begin(), cpu.end()), median(cpu), source->frameCount());
        // Then read + find (default options, 1 thread), as findPeaksInSource runs it.
        cpu.clear();
        FinderOptions o;
        o.threads = 1;
        for (int r = 0; r < 5; ++r) {
            const double c0 = cpuSeconds();
            findPeaksInSource(*source, 0, source->frameCount(), o);
            cpu.push_back(1e3 * (cpuSeconds() - c0) / source->frameCount());
        }
        std::printf("read + find: min %.2f median %.2f ms/frame\n", *std::min_element(cpu.begin(), cpu.end()),
                    median(cpu));
        return 0;
    }
    if (what.rfind("real:", 0) == 0) {
        const std::string real = what.substr(5);
        // Real frames (threshold 100, as tst_finder's realFramesSplit): each split component's
        // peaks and a window of the frame around the first.
        const auto source = openFrameSource(real);
        FinderOptions o;
        o.threshold = 100;
        o.maxPixels = 1 << 30;
        std::vector<Peak> peaks;
        findPeaksInSource(*source, 0, source->frameCount(), o, {}, {}, &peaks);
        for (std::size_t j = 0; j < peaks.size(); ++j) {
            const Peak &p = peaks[j];
            if (p.componentPeaks < 2 || (j > 0 && peaks[j - 1].frame == p.frame && peaks[j - 1].componentPeaks > 1
                                         && std::hypot(peaks[j - 1].row - p.row, peaks[j - 1].col - p.col) < 12))
                continue;
            const Frame f = source->readFrame(p.frame);
            std::printf("frame %d component of %d near (%d, %d):", p.frame, p.componentPeaks, p.row, p.col);
            for (const Peak &q : peaks)
                if (q.frame == p.frame && std::hypot(q.row - p.row, q.col - p.col) < 12)
                    std::printf(" (%.2f, %.2f)%s max %.0f", q.centroidRow, q.centroidCol, q.shoulder ? "S" : "", q.maxValue);
            std::printf("\n");
            for (int r = p.row - 6; r <= p.row + 6; ++r) {
                std::printf("%5d:", r);
                for (int c = p.col - 6; c <= p.col + 6; ++c)
                    std::printf(" %5.0f", r >= 0 && c >= 0 && r < f.rows && c < f.cols ? f.at(r, c) : 0.f);
                std::printf("\n");
            }
        }
        return 0;
    }
    const SimulatedFrames sim = simulateFrames(frames, so);
    if (what == "time") {
        // CPU per frame, 1 thread, modes interleaved; min and median of 7.
        std::map<int, std::vector<double>> cpu;
        for (int r = 0; r < 7; ++r)
            for (int m = 0; m < 3; ++m) {
                FinderOptions o;
                o.split = m == 0 ? SplitMode::None : SplitMode::Prominence;
                o.shoulderSigma = m == 2 ? 0 : o.shoulderSigma;
                o.threads = 1;
                const double c0 = cpuSeconds();
                findPeaksInFrames(sim.frames, o);
                cpu[m].push_back(1e3 * (cpuSeconds() - c0) / frames);
            }
        for (int m = 0; m < 3; ++m)
            std::printf("%s: min %.2f median %.2f ms/frame (ratio to none: %.2f)\n",
                        m == 0 ? "none" : m == 1 ? "prominence" : "prominence, no shoulders",
                        *std::min_element(cpu[m].begin(), cpu[m].end()), median(cpu[m]),
                        *std::min_element(cpu[m].begin(), cpu[m].end()) / *std::min_element(cpu[0].begin(), cpu[0].end()));
        return 0;
    }
    if (what.rfind("dump:", 0) == 0) {
        int f = 0, r = 0, c = 0;
        std::sscanf(what.c_str() + 5, "%d,%d,%d", &f, &r, &c);
        if (f < 0 || f >= int(sim.frames.size())) {
            std::fprintf(stderr, "bench_finder: dump: frame %d is not one of the %d simulated\n", f,
                         int(sim.frames.size()));
            return 2;
        }
        const Frame &frame = sim.frames[std::size_t(f)];
        for (const TruthPeak &t : sim.truth)
            if (t.frame == f && std::hypot(t.params.row - r, t.params.col - c) < 12)
                std::printf("truth %.2f %.2f amp %.0f s %.2f %.2f g %.2f %.2f eta %.2f theta %.2f\n", t.params.row,
                            t.params.col, t.params.amplitude, t.params.sigmaU, t.params.sigmaV, t.params.gammaU,
                            t.params.gammaV, t.params.eta, t.params.theta);
        for (int i = r - 7; i <= r + 7; ++i) {
            std::printf("%5d:", i);
            for (int j = c - 7; j <= c + 7; ++j) // outside the frame: blank
                if (i >= 0 && j >= 0 && i < frame.rows && j < frame.cols)
                    std::printf(" %6.0f", frame.at(i, j));
                else
                    std::printf("       ");
            std::printf("\n");
        }
        return 0;
    }
    std::vector<int> nearestIdx(sim.truth.size(), -1);
    std::vector<double> nearestTruth(sim.truth.size(), HUGE_VAL);
    for (std::size_t i = 0; i < sim.truth.size(); ++i)
        for (std::size_t j = 0; j < sim.truth.size(); ++j)
            if (j != i && sim.truth[j].frame == sim.truth[i].frame) {
                const double d = std::hypot(sim.truth[i].params.row - sim.truth[j].params.row,
                                            sim.truth[i].params.col - sim.truth[j].params.col);
                if (d < nearestTruth[i]) {
                    nearestTruth[i] = d;
                    nearestIdx[i] = int(j);
                }
            }
    std::vector<std::pair<std::string, FinderOptions>> variants(6);
    variants[0].first = "default";
    variants[1].first = "frac0";
    variants[1].second.prominenceFraction = 0;
    variants[2].first = "sig0";
    variants[2].second.prominenceSigma = 0;
    variants[3].first = "sep1";
    variants[3].second.minSeparation = 1;
    variants[4].first = "shoulder2";
    variants[4].second.shoulderSigma = 2;
    variants[5].first = "all";
    variants[5].second.prominenceFraction = 0;
    variants[5].second.prominenceSigma = 0;
    variants[5].second.minSeparation = 1;
    variants[5].second.shoulderSigma = 2;
    std::vector<std::vector<Peak>> found(variants.size());
    std::vector<PeakScore> scores;
    for (std::size_t v = 0; v < variants.size(); ++v) {
        findPeaksInFrames(sim.frames, variants[v].second, {}, &found[v]);
        scores.push_back(scorePeaks(sim, so, found[v], variants[v].second));
        int goal = 0, matched = 0, bright = 0, brightMatched = 0;
        for (std::size_t i = 0; i < sim.truth.size(); ++i)
            if (scores[v].truth[i].bright && nearestTruth[i] >= 3) {
                ++goal;
                matched += scores[v].truth[i].matched >= 0;
            }
        for (const FoundScore &f : scores[v].found) {
            bright += f.bright;
            brightMatched += f.bright && f.matched >= 0;
        }
        std::printf("# %s: recall %d/%d precision %d/%d peaks %zu\n", variants[v].first.c_str(), matched,
                    goal, brightMatched, bright, found[v].size());
    }
    std::printf("mfsnr\tframe\trow\tcol\tamp\tsnr\tclose\tpartner_d\tpartner_ratio\tlocalmax\tnear_d\tnear_flags\tnear_other"
                "\tnear_centroid_d_to_partner");
    for (std::size_t v = 1; v < variants.size(); ++v)
        std::printf("\t%s", variants[v].first.c_str());
    std::printf("\n");
    const PeakScore &score = scores[0];
    for (std::size_t i = 0; i < sim.truth.size(); ++i) {
        if (!score.truth[i].bright || nearestTruth[i] < 3 || score.truth[i].matched >= 0)
            continue;
        const TruthPeak &t = sim.truth[i];
        const Frame &frame = sim.frames[std::size_t(t.frame)];
        const int r = int(std::lround(t.params.row)), c = int(std::lround(t.params.col));
        bool localMax = true;
        for (int dr = -1; dr <= 1; ++dr)
            for (int dc = -1; dc <= 1; ++dc) {
                const int rr = r + dr, cc = c + dc;
                if ((dr || dc) && rr >= 0 && cc >= 0 && rr < frame.rows && cc < frame.cols
                    && frame.at(rr, cc) > frame.at(r, c))
                    localMax = false;
            }
        const TruthPeak &partner = sim.truth[std::size_t(nearestIdx[i])];
        double best = HUGE_VAL;
        int nearest = -1;
        for (std::size_t j = 0; j < found[0].size(); ++j) {
            const Peak &f = found[0][j];
            if (f.frame != t.frame)
                continue;
            const double d = std::hypot(f.centroidRow - t.params.row, f.centroidCol - t.params.col);
            if (d < best) {
                best = d;
                nearest = int(j);
            }
        }
        std::string flags = "-";
        int other = -1;
        double toPartner = -1;
        if (nearest >= 0) {
            const Peak &f = found[0][std::size_t(nearest)];
            flags = std::string(f.shoulder ? "S" : "") + (f.merged ? "M" : "") + (f.neighbour ? "N" : "")
                + (f.saturatedPixels ? "T" : "") + std::to_string(f.componentPeaks);
            other = score.found[std::size_t(nearest)].matched;
            toPartner = std::hypot(f.centroidRow - partner.params.row, f.centroidCol - partner.params.col);
        }
        // Matched-filter SNR with the peak's own noiseless model (pixels within 3 px), noise from
        // every truth peak's model + background + read noise: what a known-shape detector could reach.
        double mm = 0, mmv = 0;
        for (int dr = -3; dr <= 3; ++dr)
            for (int dc = -3; dc <= 3; ++dc) {
                const int rr = r + dr, cc = c + dc;
                if (rr < 0 || cc < 0 || rr >= frame.rows || cc >= frame.cols)
                    continue;
                const double m = t.params.evaluate(rr, cc);
                double total = so.background + so.readNoise * so.readNoise;
                for (const TruthPeak &u : sim.truth)
                    if (u.frame == t.frame && std::abs(u.params.row - rr) < 20 && std::abs(u.params.col - cc) < 20)
                        total += u.params.evaluate(rr, cc);
                mm += m * m;
                mmv += m * m * total;
            }
        std::printf("%.1f\t", mm / std::sqrt(mmv));
        std::printf("%d\t%.1f\t%.1f\t%.0f\t%.1f\t%d\t%.2f\t%.3f\t%d\t%.2f\t%s\t%s\t%.2f", t.frame,
                    t.params.row, t.params.col, t.params.amplitude, score.truth[i].snr, int(t.closePair),
                    nearestTruth[i], partner.params.amplitude / t.params.amplitude, int(localMax), best,
                    flags.c_str(), other < 0 ? "none" : other == nearestIdx[i] ? "partner" : "other", toPartner);
        for (std::size_t v = 1; v < variants.size(); ++v)
            std::printf("\t%d", int(scores[v].truth[i].matched >= 0));
        std::printf("\n");
    }
    // Bright detections that match no truth peak: the nearest truth peaks and the detection's flags.
    std::printf("false\tframe\trow\tcol\theight\tflags\tnearest_d\tnearest_amp\tnearest_matched\tsecond_d\tsecond_amp\n");
    for (std::size_t j = 0; j < found[0].size(); ++j) {
        const FoundScore &fs = score.found[j];
        if (!fs.bright || fs.matched >= 0)
            continue;
        const Peak &f = found[0][j];
        double d1 = HUGE_VAL, d2 = HUGE_VAL;
        int i1 = -1, i2 = -1;
        for (std::size_t i = 0; i < sim.truth.size(); ++i) {
            if (sim.truth[i].frame != f.frame)
                continue;
            const double d = std::hypot(f.centroidRow - sim.truth[i].params.row, f.centroidCol - sim.truth[i].params.col);
            if (d < d1) {
                d2 = d1;
                i2 = i1;
                d1 = d;
                i1 = int(i);
            } else if (d < d2) {
                d2 = d;
                i2 = int(i);
            }
        }
        const std::string flags = std::string(f.shoulder ? "S" : "") + (f.merged ? "M" : "") + (f.neighbour ? "N" : "")
            + (f.saturatedPixels ? "T" : "") + std::to_string(f.componentPeaks);
        std::printf("false\t%d\t%.2f\t%.2f\t%.0f\t%s\t%.2f\t%.0f\t%d\t%.2f\t%.0f\n", f.frame, f.centroidRow,
                    f.centroidCol, f.maxValue - f.background, flags.c_str(), d1,
                    i1 >= 0 ? sim.truth[std::size_t(i1)].params.amplitude : 0.0,
                    i1 >= 0 ? int(score.truth[std::size_t(i1)].matched >= 0) : -1, d2,
                    i2 >= 0 ? sim.truth[std::size_t(i2)].params.amplitude : 0.0);
    }
    return 0;
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

    if (const std::string what = arg(argc, argv, "diagnose", ""); !what.empty())
        return diagnose(what, frames, so);

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
                // Into one reused frame, as the finder's reader loop does (readFrameInto).
                Frame into;
                for (int i = 0; i < frames; ++i)
                    source->readFrameInto(i, into);
                readCpu[suffix].push_back(cpuSeconds() - c0);
                s[suffix].push_back(since(t0));
                // Read alone from maxThreads threads (frames handed out one by one), one reused
                // frame per worker as the finder's reader loop has.
                std::vector<Frame> perWorker{std::size_t(maxThreads)};
                t0 = Clock::now();
                parallelChunks(std::size_t(frames), maxThreads, 1, [&](std::size_t lo, std::size_t hi, int worker) {
                    for (std::size_t i = lo; i < hi; ++i)
                        source->readFrameInto(int(i), perWorker[std::size_t(worker)]);
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
