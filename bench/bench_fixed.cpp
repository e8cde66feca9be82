// Fixed-point CPU engine throughput (bench/fixed.sh writes docs/benchmarks/fixed-engine.md).
//
//   bench_fixed MODEL DATA [--n N] [--repeats R] [--pass-seconds S] [--threads 1,2] [--intref-n N]
//               [--torch-batch B]
//       patches/s of the fixed engine (best ISA, and AVX2 / portable for comparison), the
//       integer reference and LibTorch float inference (Model::predict) of one quantised model
//       folder on the patches of DATA (tiled to N), per thread count: the median of R timed
//       passes of about S seconds (at most N patches) after a warm-up; the engine checked bit
//       for bit against the reference on --intref-n patches. One JSON object on stdout.
//       --fixed-only: the best-ISA engine alone (for profiling).
//   bench_fixed --peak [--seconds S]
//       the arithmetic limit: multiply-adds per second of a tight vpdpwssd (int16 pairs) and
//       vpdpbusd (int8 quads) loop with 12 independent accumulators, on 1 and 2 threads.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include <immintrin.h>
#include <nlohmann/json.hpp>

#include "core/arch/layerplan.h"
#include "core/compress/fixedengine.h"
#include "core/compress/intref.h"
#include "core/io/patchdataset.h"
#include "core/nn/compress.h"
#include "core/nn/model.h"

using namespace braggnac::core;
using Clock = std::chrono::steady_clock;

namespace {

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

double cpuSeconds()
{
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

/// Patches per wall-clock second (median of `repeats` passes) and per CPU second of the process
/// (all threads; on a shared machine the wall rate also measures the other users, the CPU rate
/// much less so). fn(k) runs k patches; a warm-up pass of min(n, 1024) patches sizes the timed
/// passes to about `seconds` each (at most n, at least 256 patches).
template <class Fn>
nlohmann::json timeRuns(std::size_t n, int repeats, double secs, Fn fn)
{
    std::size_t k = std::min<std::size_t>(n, 1024);
    const auto w0 = Clock::now();
    fn(k); // warm-up
    const double rate = double(k) / std::max(1e-9, seconds(w0, Clock::now()));
    k = std::max<std::size_t>(std::min<std::size_t>(n, 256), std::min<std::size_t>(n, std::size_t(rate * secs)));
    std::vector<double> rates, cpuRates;
    for (int r = 0; r < repeats; ++r) {
        const double c0 = cpuSeconds();
        const auto t0 = Clock::now();
        fn(k);
        rates.push_back(double(k) / seconds(t0, Clock::now()));
        cpuRates.push_back(double(k) / std::max(1e-9, cpuSeconds() - c0));
    }
    return {{"patches", k}, {"median_per_s", median(rates)}, {"runs_per_s", rates},
            {"median_per_cpu_s", median(cpuRates)}};
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vnni")
/// `iters` x 12 vpdpwssd (or vpdpbusd) on independent accumulators; returns a checksum.
__attribute__((noinline)) std::int64_t vnniLoop(std::int64_t iters, bool int8)
{
    __m512i a0 = _mm512_set1_epi32(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
            a9 = a0, a10 = a0, a11 = a0;
    const __m512i x = _mm512_set1_epi32(0x00030002), w = _mm512_set1_epi32(0x00050007);
#define FE_STEP(op)                                                                                               \
    for (std::int64_t i = 0; i < iters; ++i) {                                                                     \
        a0 = op(a0, x, w); a1 = op(a1, x, w); a2 = op(a2, x, w); a3 = op(a3, x, w); a4 = op(a4, x, w);             \
        a5 = op(a5, x, w); a6 = op(a6, x, w); a7 = op(a7, x, w); a8 = op(a8, x, w); a9 = op(a9, x, w);             \
        a10 = op(a10, x, w); a11 = op(a11, x, w);                                                                  \
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));                       \
    }
    if (int8) {
        FE_STEP(_mm512_dpbusd_epi32)
    } else {
        FE_STEP(_mm512_dpwssd_epi32)
    }
#undef FE_STEP
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                 _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)));
    return _mm512_reduce_add_epi32(s);
}
#pragma GCC pop_options

nlohmann::json peak(double secs)
{
    nlohmann::json out = nlohmann::json::object();
    if (!FixedEngine::supported(FixedEngine::Isa::Avx512Vnni)) {
        out["note"] = "no AVX-512 VNNI on this CPU";
        return out;
    }
    for (bool int8 : {false, true})
        for (int threads : {1, 2}) {
            // Calibrate the iteration count on one thread, then time `threads` copies at once.
            std::int64_t iters = 1 << 20;
            for (;;) {
                const auto t0 = Clock::now();
                vnniLoop(iters, int8);
                if (seconds(t0, Clock::now()) > secs / 4)
                    break;
                iters *= 2;
            }
            std::vector<double> rates;
            for (int r = 0; r < 3; ++r) {
                std::vector<std::thread> pool;
                std::atomic<std::int64_t> sink{0};
                const auto t0 = Clock::now();
                for (int t = 0; t < threads; ++t)
                    pool.emplace_back([&] { sink += vnniLoop(iters, int8); });
                for (auto &th : pool)
                    th.join();
                const double s = seconds(t0, Clock::now());
                const double macsPerInstr = int8 ? 64 : 32;
                rates.push_back(double(threads) * double(iters) * 12 * macsPerInstr / s);
            }
            out[std::string(int8 ? "vpdpbusd_int8" : "vpdpwssd_int16") + "_threads" + std::to_string(threads)
                + "_macs_per_s"] = median(rates);
        }
    return out;
}

std::vector<int> parseList(const std::string &s)
{
    std::vector<int> v;
    std::size_t p = 0;
    while (p < s.size()) {
        const std::size_t q = s.find(',', p);
        v.push_back(std::stoi(s.substr(p, q == std::string::npos ? std::string::npos : q - p)));
        if (q == std::string::npos)
            break;
        p = q + 1;
    }
    return v;
}

} // namespace

int main(int argc, char **argv)
{
    std::vector<std::string> pos;
    std::size_t n = 200000, intrefN = 2000;
    int repeats = 5, torchBatch = 4096;
    double passSeconds = 1.0;
    double peakSeconds = 2;
    bool doPeak = false, fixedOnly = false;
    std::vector<int> threadList = {1, 2};
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        if (a == "--n") n = std::stoul(next());
        else if (a == "--repeats") repeats = std::stoi(next());
        else if (a == "--threads") threadList = parseList(next());
        else if (a == "--intref-n") intrefN = std::stoul(next());
        else if (a == "--torch-batch") torchBatch = std::stoi(next());
        else if (a == "--pass-seconds") passSeconds = std::stod(next());
        else if (a == "--peak") doPeak = true;
        else if (a == "--fixed-only") fixedOnly = true;
        else if (a == "--seconds") peakSeconds = std::stod(next());
        else pos.push_back(a);
    }
    if (doPeak) {
        std::printf("%s\n", peak(peakSeconds).dump().c_str());
        return 0;
    }
    if (pos.size() != 2) {
        std::fprintf(stderr, "usage: bench_fixed MODEL DATA [--n N] [--repeats R] [--threads 1,2] | --peak\n");
        return 2;
    }
    const Model model = Model::load(pos[0]);
    const PatchDataset data = readPatchDataset(pos[1]);
    const LayerPlan plan = LayerPlan::lower(model.spec());
    const QuantSpec spec = modelQuantSpec(model, pos[0] + "/quantization.json");
    const std::size_t area = std::size_t(data.patchSize) * std::size_t(data.patchSize);
    std::vector<float> patches(n * area);
    for (std::size_t i = 0; i < n; ++i)
        std::memcpy(patches.data() + i * area, data.patches.data() + (i % data.size()) * area, area * sizeof(float));

    const FixedEngine engine(plan, model.namedParameters(), spec);
    nlohmann::json out;
    out["model"] = pos[0];
    out["data"] = pos[1];
    out["arch"] = model.spec().toJson();
    out["dense_macs"] = plan.macs();
    out["params"] = plan.params();
    out["nonzero_macs"] = engine.nonZeroMacs();
    out["vectorised"] = engine.vectorised();
    out["fallback"] = engine.fallbackReason();
    out["isa"] = FixedEngine::isaName(engine.isa());
    out["ops"] = engine.describe();
    const Cost qc = quantisedCost(engine.reference());
    out["quantised_cost"] = qc.toJson();

    // Bit-exactness on the reference subset.
    const std::size_t m = std::min(intrefN, n);
    const auto want = engine.reference().forwardRaw(patches.data(), m, 2);
    const auto got = engine.forwardRaw(patches.data(), m, 2);
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < want.size(); ++i)
        mismatches += want[i] != got[i];
    out["checked_patches"] = m;
    out["mismatches"] = mismatches;

    nlohmann::json runs = nlohmann::json::array();
    for (int t : threadList) {
        runs.push_back({{"engine", std::string("fixed-") + FixedEngine::isaName(engine.isa())}, {"threads", t},
                        {"result", timeRuns(n, repeats, passSeconds,
                                            [&](std::size_t k) { engine.forwardRaw(patches.data(), k, t); })}});
        if (fixedOnly)
            continue;
        for (auto isa : {FixedEngine::Isa::Avx2, FixedEngine::Isa::Portable}) {
            if (isa == engine.isa() || !FixedEngine::supported(isa))
                continue;
            const FixedEngine e(plan, model.namedParameters(), spec, isa);
            runs.push_back({{"engine", std::string("fixed-") + FixedEngine::isaName(isa)}, {"threads", t},
                            {"result", timeRuns(n, repeats, passSeconds,
                                                [&](std::size_t k) { e.forwardRaw(patches.data(), k, t); })}});
        }
        runs.push_back({{"engine", "intref"}, {"threads", t},
                        {"result", timeRuns(n, repeats, passSeconds, [&](std::size_t k) {
                             engine.reference().forwardRaw(patches.data(), k, t);
                         })}});
        setTorchThreads(t);
        runs.push_back({{"engine", "libtorch-float"}, {"threads", t}, {"batch", torchBatch},
                        {"result", timeRuns(n, repeats, passSeconds,
                                            [&](std::size_t k) { model.predict(patches.data(), k, torchBatch); })}});
    }
    out["runs"] = runs;
    std::printf("%s\n", out.dump().c_str());
    return 0;
}
