// braggnac-bench-libs: braggnac_search
// Study store benchmark (docs/study-store.md has the command and the numbers):
//   write: W writer processes run T trials each against one store (enqueue, claim, 2 epochs,
//          complete, back to back or paced), timing every complete() transaction: median, p99.
//   rows:  a store of N synthetic complete trials with realistic payloads; times opening it,
//          counts(), the light listing + 2-objective front (what `study --pareto` and the
//          studio's refresh need), the full listing with every JSON blob, and an incremental
//          trialsSince() refresh.
//   --optuna: also times exportToOptuna of the N-row store.
// Usage: bench_studystore [--dir D] [--writers 1,3] [--trials T] [--pace-ms P] [--rows N]
//        [--optuna] [--json]
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/search/optunaexport.h"
#include "core/search/studystore.h"

using namespace braggnac::core;
using nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0)
{
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

StudyInfo benchStudy()
{
    StudyInfo s;
    s.name = "bench";
    s.space = {{"bench", true}};
    s.dataset = {"sim.h5", 1, "0000000000000000"};
    s.objectives = {{"distance", true}, {"bops", true}};
    return s;
}

json conv(std::mt19937 &rng)
{
    static const char *norms[] = {"none", "batch", "layer"};
    static const char *acts[] = {"none", "relu", "leakyrelu", "gelu"};
    return {{"channels", 2 << (rng() % 6)}, {"kernel", rng() % 2 ? 3 : 1},
            {"norm", norms[rng() % 3]}, {"act", acts[rng() % 4]}};
}

// A NAC-space-like spec (~0.6 kB compact), the trial's metrics, cost and a 20-epoch history.
TrialRequest synthRequest(std::mt19937 &rng, const std::string &hash)
{
    json blocks = json::array();
    for (int b = 0; b < 3; ++b) {
        const int t = rng() % 3;
        if (t == 0)
            blocks.push_back({{"type", "conv"}, {"layers", {conv(rng), conv(rng)}}});
        else if (t == 1)
            blocks.push_back({{"type", "conv-attention"}, {"attention_channels", 1 << (rng() % 6)}, {"act", "relu"}});
        else
            blocks.push_back({{"type", "none"}});
    }
    json head = json::array();
    for (int h = 0; h < 3; ++h)
        head.push_back({{"width", 4 << (rng() % 5)}, {"norm", "none"}, {"act", "relu"}});
    TrialRequest r;
    r.spec = {{"name", hash}, {"input_size", 11}, {"stem", conv(rng)}, {"blocks", blocks}, {"head", head}};
    r.specHash = hash;
    r.budget = 18;
    r.generation = 0;
    return r;
}

TrialOutcome synthOutcome(std::mt19937 &rng)
{
    std::uniform_real_distribution<double> u(0, 1);
    const double logBops = 6 + 3 * u(rng);
    const double distance = 0.05 + 0.45 * std::pow(u(rng), 0.5) * (1.2 - (logBops - 6) / 3.0);
    auto split = [&](double m) {
        return json{{"mean", m}, {"median", 0.8 * m}, {"p90", 2 * m}, {"n", 3000},
                    {"subsets", {{"snr<10", {{"mean", 1.5 * m}, {"n", 700}}},
                                 {"snr>=10", {{"mean", 0.8 * m}, {"n", 2300}}},
                                 {"neighbour", {{"mean", 1.3 * m}, {"n", 450}}}}}};
    };
    TrialOutcome o;
    o.values = {distance, std::pow(10.0, logBops)};
    o.metrics = {{"validation", split(distance)}, {"test", split(distance * 1.02)}};
    o.cost = {{"params", int(1000 + 50000 * u(rng))}, {"macs", 1e5 + 1e7 * u(rng)},
              {"bops", o.values[1]}, {"bops_nac", o.values[1] / 13}};
    o.history = json::array();
    for (int e = 1; e <= 20; ++e)
        o.history.push_back({{"epoch", e}, {"train_loss", 1.0 / e}, {"val_loss", 1.1 / e},
                             {"val_distance", distance * (1 + 5.0 / e)}, {"lr", 1e-3}, {"seconds", 0.7}});
    o.fidelity = 18;
    o.seconds = 12.5;
    o.modelPath = "bench.models/trial";
    return o;
}

struct Percentiles {
    double median = 0, p99 = 0, max = 0;
};

Percentiles percentiles(std::vector<double> v)
{
    Percentiles p;
    if (v.empty())
        return p;
    std::sort(v.begin(), v.end());
    p.median = v[v.size() / 2];
    p.p99 = v[std::min(v.size() - 1, static_cast<std::size_t>(std::ceil(0.99 * v.size())) - 1)];
    p.max = v.back();
    return p;
}

// W processes, T trials each; returns the complete() latencies (ms) of all of them.
json benchWrite(const std::string &dir, int writers, int trials, int paceMs)
{
    const std::string path = dir + "/write-" + std::to_string(writers) + ".db";
    for (const char *suffix : {"", "-wal", "-shm"})
        fs::remove(path + suffix);
    { StudyStore::createOrOpen(path, benchStudy()); }
    const auto t0 = Clock::now();
    std::vector<pid_t> pids;
    for (int w = 0; w < writers; ++w) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            try {
                std::mt19937 rng(w + 1);
                StudyStore store = StudyStore::open(path);
                std::vector<double> complete, claim;
                for (int i = 0; i < trials; ++i) {
                    store.enqueue(synthRequest(rng, "w" + std::to_string(w) + "-" + std::to_string(i)));
                    auto c0 = Clock::now();
                    auto t = store.claimNext("bench", w);
                    claim.push_back(since(c0) * 1e3);
                    store.reportEpoch(t->id, 1, 0.5);
                    store.reportEpoch(t->id, 2, 0.4);
                    const TrialOutcome o = synthOutcome(rng);
                    c0 = Clock::now();
                    store.complete(t->id, o);
                    complete.push_back(since(c0) * 1e3);
                    if (paceMs > 0)
                        std::this_thread::sleep_for(std::chrono::milliseconds(paceMs));
                }
                std::ofstream out(dir + "/lat-" + std::to_string(w) + ".json");
                out << json{{"complete", complete}, {"claim", claim}}.dump();
            } catch (const std::exception &e) {
                std::fprintf(stderr, "writer %d: %s\n", w, e.what());
                _exit(1);
            }
            _exit(0);
        }
        pids.push_back(pid);
    }
    bool ok = true;
    for (pid_t pid : pids) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    const double wall = since(t0);
    if (!ok)
        throw std::runtime_error("a writer failed");
    std::vector<double> complete, claim;
    for (int w = 0; w < writers; ++w) {
        const std::string f = dir + "/lat-" + std::to_string(w) + ".json";
        std::ifstream in(f);
        const json j = json::parse(in);
        for (double v : j["complete"])
            complete.push_back(v);
        for (double v : j["claim"])
            claim.push_back(v);
        fs::remove(f);
    }
    StudyStore check = StudyStore::open(path, StudyStore::Mode::ReadOnly);
    if (check.counts().complete != writers * trials)
        throw std::runtime_error("lost trials");
    const Percentiles pc = percentiles(complete), pl = percentiles(claim);
    return {{"writers", writers}, {"trials_per_writer", trials}, {"pace_ms", paceMs},
            {"complete_ms", {{"median", pc.median}, {"p99", pc.p99}, {"max", pc.max}}},
            {"claim_ms", {{"median", pl.median}, {"p99", pl.p99}, {"max", pl.max}}},
            {"transactions_per_s", writers * trials * 5 / wall}, {"wall_s", wall}};
}

// Non-dominated set of 2-objective points (both minimised): sort by the first, sweep the second.
std::vector<std::size_t> front2(const std::vector<std::array<double, 2>> &pts)
{
    std::vector<std::size_t> order(pts.size());
    for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return pts[a][0] < pts[b][0] || (pts[a][0] == pts[b][0] && pts[a][1] < pts[b][1]);
    });
    std::vector<std::size_t> front;
    double best = std::numeric_limits<double>::infinity();
    for (std::size_t i : order)
        if (pts[i][1] < best) {
            best = pts[i][1];
            front.push_back(i);
        }
    return front;
}

template <class Fn>
double bestOf(int reps, Fn fn)
{
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        fn();
        best = std::min(best, since(t0));
    }
    return best;
}

json benchRows(const std::string &dir, int n, bool optuna)
{
    const std::string path = dir + "/rows-" + std::to_string(n) + ".db";
    const auto tb = Clock::now();
    if (!fs::exists(path)) {
        const std::string tmp = path + ".building";
        for (const char *suffix : {"", "-wal", "-shm"})
            fs::remove(tmp + suffix);
        {
            StudyStore store = StudyStore::createOrOpen(tmp, benchStudy());
            std::mt19937 rng(7);
            for (int base = 0; base < n; base += 1000) {
                std::vector<TrialRequest> batch;
                for (int i = base; i < std::min(n, base + 1000); ++i)
                    batch.push_back(synthRequest(rng, "r" + std::to_string(i)));
                store.enqueueAll(batch);
            }
            while (auto t = store.claimNext("bench", 0)) {
                store.reportEpoch(t->id, 1, 0.5);
                store.reportEpoch(t->id, 2, 0.4);
                store.complete(t->id, synthOutcome(rng));
            }
        }
        fs::rename(tmp, path);
    }
    const double buildS = since(tb);
    const auto bytes = fs::file_size(path);

    std::size_t frontSize = 0, listed = 0, changed = 0;
    const double openS = bestOf(3, [&] { StudyStore::open(path, StudyStore::Mode::ReadOnly); });
    StudyStore store = StudyStore::open(path, StudyStore::Mode::ReadOnly);
    const double countsS = bestOf(3, [&] { listed = store.counts().total(); });
    const double lightS = bestOf(3, [&] {
        const auto trials = store.listTrials({TrialState::Complete, false, false});
        std::vector<std::array<double, 2>> pts;
        pts.reserve(trials.size());
        for (const auto &t : trials)
            pts.push_back({t.values[0], t.values[1]});
        frontSize = front2(pts).size();
        listed = trials.size();
    });
    std::size_t pointsFront = 0;
    const double pointsS = bestOf(3, [&] {
        const auto points = store.points(TrialState::Complete);
        std::vector<std::array<double, 2>> pts;
        pts.reserve(points.size());
        for (const auto &p : points)
            pts.push_back({p.values[0], p.values[1]});
        pointsFront = front2(pts).size();
    });
    const double fullS = bestOf(3, [&] { listed = store.listTrials().size(); });
    ListOptions noHistory;
    noHistory.withHistory = false;
    const double noHistoryS = bestOf(3, [&] { listed = store.listTrials(noHistory).size(); });
    std::int64_t oneId = 0;
    const double oneS = bestOf(3, [&] { oneId = store.trialByNumber(n / 2)->id; });
    const double since50S = bestOf(3, [&] { changed = store.trialsSince(store.changeSeq() - 50).size(); });
    double optunaS = 0, optunaMb = 0;
    if (optuna) {
        const std::string out = dir + "/optuna-" + std::to_string(n) + ".db";
        OptunaExportOptions opt;
        opt.overwrite = true;
        const auto t0 = Clock::now();
        exportToOptuna(store, out, opt);
        optunaS = since(t0);
        optunaMb = fs::file_size(out) / 1e6;
    }
    return {{"rows", n}, {"file_mb", bytes / 1e6}, {"optuna_export_s", optunaS},
            {"optuna_mb", optunaMb}, {"build_s", buildS}, {"open_s", openS},
            {"counts_s", countsS}, {"list_light_plus_front_s", lightS}, {"front_size", frontSize},
            {"points_plus_front_s", pointsS}, {"points_front_size", pointsFront},
            {"list_full_s", fullS}, {"list_no_history_s", noHistoryS}, {"one_trial_s", oneS},
            {"one_trial_id", oneId}, {"listed", listed}, {"since_last_50_s", since50S},
            {"since_rows", changed}};
}

} // namespace

int main(int argc, char **argv)
{
    std::string dir = "/tmp/bench_studystore";
    std::vector<int> writers = {1, 3};
    int trials = 300, paceMs = 0, rows = 100000;
    bool asJson = false, optuna = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--dir")
            dir = next();
        else if (a == "--writers") {
            writers.clear();
            std::string list = next();
            for (std::size_t p = 0; p < list.size();) {
                const std::size_t q = list.find(',', p);
                writers.push_back(std::stoi(list.substr(p, q - p)));
                p = q == std::string::npos ? list.size() : q + 1;
            }
        } else if (a == "--trials")
            trials = std::stoi(next());
        else if (a == "--pace-ms")
            paceMs = std::stoi(next());
        else if (a == "--rows")
            rows = std::stoi(next());
        else if (a == "--json")
            asJson = true;
        else if (a == "--optuna")
            optuna = true;
        else {
            std::fprintf(stderr, "usage: bench_studystore [--dir D] [--writers 1,3] [--trials T] "
                                 "[--pace-ms P] [--rows N] [--optuna] [--json]\n");
            return 2;
        }
    }
    fs::create_directories(dir);
    json result = {{"write", json::array()}};
    try {
        for (int w : writers) {
            json r = benchWrite(dir, w, trials, paceMs);
            if (!asJson)
                std::printf("%d writer(s) x %d trials (pace %d ms): complete() median %.3f ms, p99 "
                            "%.3f ms, max %.1f ms; claimNext() median %.3f ms, p99 %.3f ms; "
                            "%.0f transactions/s\n",
                            w, trials, paceMs, r["complete_ms"]["median"].get<double>(),
                            r["complete_ms"]["p99"].get<double>(), r["complete_ms"]["max"].get<double>(),
                            r["claim_ms"]["median"].get<double>(), r["claim_ms"]["p99"].get<double>(),
                            r["transactions_per_s"].get<double>());
            result["write"].push_back(r);
        }
        if (rows > 0) {
            json r = benchRows(dir, rows, optuna);
            if (!asJson)
                std::printf("%d rows (%.0f MB, built in %.0f s): open %.3f s, counts %.3f s, light "
                            "listing + 2-objective front (%d points) %.3f s, points() + front %.3f s, "
                            "full listing %.3f s "
                            "(%.3f s without histories), one trial with blobs %.4f s, "
                            "trialsSince(last 50) %.4f s\n",
                            rows, r["file_mb"].get<double>(), r["build_s"].get<double>(),
                            r["open_s"].get<double>(), r["counts_s"].get<double>(),
                            r["front_size"].get<int>(), r["list_light_plus_front_s"].get<double>(),
                            r["points_plus_front_s"].get<double>(), r["list_full_s"].get<double>(), r["list_no_history_s"].get<double>(),
                            r["one_trial_s"].get<double>(), r["since_last_50_s"].get<double>());
            if (!asJson && optuna)
                std::printf("Optuna export of %d trials: %.1f s, %.0f MB\n", rows,
                            r["optuna_export_s"].get<double>(), r["optuna_mb"].get<double>());
            result["rows"] = r;
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "bench_studystore: %s\n", e.what());
        return 1;
    }
    if (asJson)
        std::printf("%s\n", result.dump().c_str());
    return 0;
}
