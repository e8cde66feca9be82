#include "core/search/driver.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "core/arch/archspec.h"
#include "core/common/error.h"
#include "core/search/nsga2.h"
#include "core/search/pareto.h"

namespace braggnac::core {

using nlohmann::json;

namespace {

const std::set<std::string> &knownObjectives()
{
    static const std::set<std::string> names = {"distance", "bops", "params", "macs", "latency", "dsp"};
    return names;
}

double nan() { return std::numeric_limits<double>::quiet_NaN(); }

bool isDistanceBops(const std::vector<std::string> &objectives)
{
    return objectives.size() == 2 && objectives[0] == "distance" && objectives[1] == "bops";
}

} // namespace

void SearchOptions::validate(const std::string &source) const
{
    auto fail = [&](const std::string &field, const std::string &what) {
        throw InputError(source + ": " + field + ": " + what);
    };
    if (trials < 1)
        fail("trials", "must be at least 1 (got " + std::to_string(trials) + ")");
    if (epochs < 1)
        fail("epochs", "must be at least 1 (got " + std::to_string(epochs) + ")");
    if (population < 2)
        fail("population", "must be at least 2 (got " + std::to_string(population) + ")");
    if (objectives.empty())
        fail("objectives", "at least one objective is needed");
    std::set<std::string> seen;
    for (const auto &o : objectives) {
        if (!knownObjectives().count(o))
            fail("objectives", "unknown objective '" + o + "' (known: distance, bops, params, macs, latency, dsp)");
        if (!seen.insert(o).second)
            fail("objectives", "'" + o + "' is listed twice");
    }
    if (hlsBits < 2 || hlsBits > 32)
        fail("hls.bits", "expected 2..32 (got " + std::to_string(hlsBits) + ")");
    if (hlsReuse < 1)
        fail("hls.reuse_factor", "must be at least 1 (got " + std::to_string(hlsReuse) + ")");
    if (!std::isfinite(hlsClockMhz) || hlsClockMhz <= 0)
        fail("hls.clock_mhz", "must be a finite positive frequency");
    if (hlsPart.empty())
        fail("hls.part", "must name a part");
    if (!std::isfinite(hvDistance) || hvDistance <= 0)
        fail("hv_distance", "must be a finite positive distance");
    if (!std::isfinite(hvLog10Bops))
        fail("hv_log10_bops", "must be finite");
    if (asha) {
        Asha check(ashaOptions); // validates rungs and reduction factor
        (void)check;
        if (ashaOptions.rungs.back() >= epochs)
            fail("asha.rungs", "the last rung (" + std::to_string(ashaOptions.rungs.back())
                                   + " epochs) must be below the trial budget (" + std::to_string(epochs)
                                   + " epochs)");
    }
}

json SearchOptions::toJson() const
{
    return {{"trials", trials},
            {"epochs", epochs},
            {"asha", asha},
            {"rungs", ashaOptions.rungs},
            {"reduction_factor", ashaOptions.reductionFactor},
            {"objectives", objectives},
            {"population", population},
            {"seed", seed},
            {"seed_builtins", seedBuiltins},
            {"hv_distance", hvDistance},
            {"hv_log10_bops", hvLog10Bops},
            {"hls", {{"bits", hlsBits}, {"reuse_factor", hlsReuse}, {"clock_mhz", hlsClockMhz}, {"part", hlsPart}}}};
}

SearchOptions SearchOptions::fromJson(const json &j, const std::string &source)
{
    SearchOptions o;
    try {
        o.trials = j.value("trials", o.trials);
        o.epochs = j.value("epochs", o.epochs);
        o.asha = j.value("asha", o.asha);
        o.ashaOptions.rungs = j.value("rungs", o.ashaOptions.rungs);
        o.ashaOptions.reductionFactor = j.value("reduction_factor", o.ashaOptions.reductionFactor);
        o.objectives = j.value("objectives", o.objectives);
        o.population = j.value("population", o.population);
        o.seed = j.value("seed", o.seed);
        o.seedBuiltins = j.value("seed_builtins", o.seedBuiltins);
        o.hvDistance = j.value("hv_distance", o.hvDistance);
        o.hvLog10Bops = j.value("hv_log10_bops", o.hvLog10Bops);
        if (j.contains("hls")) {
            const json &h = j.at("hls");
            o.hlsBits = h.value("bits", o.hlsBits);
            o.hlsReuse = h.value("reuse_factor", o.hlsReuse);
            o.hlsClockMhz = h.value("clock_mhz", o.hlsClockMhz);
            o.hlsPart = h.value("part", o.hlsPart);
        }
    } catch (const json::exception &e) {
        throw InputError(source + ": " + e.what());
    }
    o.validate(source);
    return o;
}

TrialOutcome trialOutcome(const TaskResult &result, const StudyStore &store)
{
    TrialOutcome outcome;
    outcome.metrics = result.metrics;
    outcome.cost = result.cost;
    outcome.history = result.history;
    outcome.fidelity = result.fidelity;
    outcome.seconds = result.seconds;
    outcome.host = result.host;
    outcome.rank = result.rank;
    if (!result.modelPath.empty()) {
        const std::string folder = store.folder();
        outcome.modelPath = result.modelPath.rfind(folder + "/", 0) == 0
            ? result.modelPath.substr(folder.size() + 1)
            : result.modelPath;
    }
    return outcome;
}

std::vector<double> objectiveValues(const std::vector<std::string> &objectives, const json &metrics,
                                    const json &cost)
{
    std::vector<double> values;
    for (const auto &name : objectives) {
        const json *v = nullptr;
        std::string field;
        if (name == "distance") {
            field = "metrics.validation.mean";
            if (metrics.is_object() && metrics.contains("validation") && metrics["validation"].is_object()
                && metrics["validation"].contains("mean"))
                v = &metrics["validation"]["mean"];
        } else if (name == "latency" || name == "dsp") {
            const char *key = name == "latency" ? "latency_us" : "dsp";
            field = std::string("cost.hls.") + key;
            if (cost.is_object() && cost.contains("hls") && cost["hls"].is_object() && cost["hls"].contains(key))
                v = &cost["hls"][key];
        } else {
            field = "cost." + name;
            if (cost.is_object() && cost.contains(name))
                v = &cost[name];
        }
        if (!v || !v->is_number())
            throw InputError("trial result: " + field + ": missing (needed for the objective '" + name + "')");
        const double x = v->get<double>();
        if (!std::isfinite(x))
            throw InputError("trial result: " + field + ": not a finite number");
        values.push_back(x);
    }
    return values;
}

int fidelityLevel(TrialState state, int fidelity)
{
    // Complete trials are at full fidelity whatever their epoch count (early stopping by the
    // recipe's patience is not a lower fidelity); a pruned trial's level is the epochs it got.
    return state == TrialState::Complete ? std::numeric_limits<int>::max() : fidelity;
}

std::vector<std::size_t> studyFrontIndices(const std::vector<TrialPoint> &points)
{
    std::vector<std::size_t> eligible;
    int top = std::numeric_limits<int>::min();
    std::size_t dims = 0;
    for (std::size_t i = 0; i < points.size(); ++i) {
        const TrialPoint &p = points[i];
        if ((p.state != TrialState::Complete && p.state != TrialState::Pruned) || p.values.empty())
            continue;
        bool finite = true;
        for (double v : p.values)
            finite = finite && std::isfinite(v);
        if (!finite)
            continue;
        if (dims == 0)
            dims = p.values.size();
        if (p.values.size() != dims)
            continue;
        const int level = fidelityLevel(p.state, p.fidelity);
        if (level > top) {
            top = level;
            eligible.clear();
        }
        if (level == top)
            eligible.push_back(i);
    }
    auto byFirst = [&](std::size_t a, std::size_t b) {
        const auto &x = points[a], &y = points[b];
        if (x.values != y.values)
            return x.values < y.values; // lexicographic: first objective, then the others
        return x.number < y.number;
    };
    std::sort(eligible.begin(), eligible.end(), byFirst);
    std::vector<std::size_t> front;
    if (dims == 2) {
        // Sweep in order of (v0, v1): a point is on the front iff its v1 is below every earlier
        // one, or it equals the last front point exactly.
        double minV1 = std::numeric_limits<double>::infinity();
        for (std::size_t i : eligible) {
            const auto &v = points[i].values;
            if (v[1] < minV1) {
                front.push_back(i);
                minV1 = v[1];
            } else if (!front.empty() && points[front.back()].values == v) {
                front.push_back(i);
            }
        }
        return front;
    }
    std::vector<Objectives> pts;
    for (std::size_t i : eligible)
        pts.push_back(points[i].values);
    for (std::size_t k : paretoFront(pts))
        front.push_back(eligible[k]);
    std::sort(front.begin(), front.end(), byFirst);
    return front;
}

namespace {
TrialPoint pointOf(const TrialRecord &t)
{
    TrialPoint p;
    p.id = t.id;
    p.number = t.number;
    p.state = t.state;
    p.fidelity = t.fidelity;
    p.values = t.values;
    return p;
}
} // namespace

std::vector<TrialRecord> studyFront(const std::vector<TrialRecord> &trials)
{
    std::vector<TrialPoint> points;
    points.reserve(trials.size());
    for (const auto &t : trials)
        points.push_back(pointOf(t));
    std::vector<TrialRecord> front;
    for (std::size_t i : studyFrontIndices(points))
        front.push_back(trials[i]);
    return front;
}

std::vector<TrialRecord> studyFront(const StudyStore &store)
{
    const std::vector<TrialPoint> points = store.points(std::nullopt);
    std::vector<TrialRecord> front;
    for (std::size_t i : studyFrontIndices(points))
        if (auto t = store.trial(points[i].id))
            front.push_back(std::move(*t));
    return front;
}

double studyHypervolume(const std::vector<TrialRecord> &front, const SearchOptions &options)
{
    if (!isDistanceBops(options.objectives) || front.empty())
        return 0;
    std::vector<Objectives> pts;
    for (const auto &t : front)
        if (t.values.size() == 2 && t.values[1] > 0)
            pts.push_back({t.values[0], std::log10(t.values[1])});
    if (pts.empty())
        return 0;
    return hypervolume(pts, {options.hvDistance, options.hvLog10Bops});
}

namespace {

struct Running {
    ArchSpec spec;
    std::string key;
    int generation = -1;
    double best = std::numeric_limits<double>::infinity();
};

// Times one store write (RAII: from construction to the end of its scope).
class WriteTimer {
public:
    explicit WriteTimer(std::vector<double> &sink) : m_sink(sink), m_t0(std::chrono::steady_clock::now()) {}
    ~WriteTimer()
    {
        m_sink.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - m_t0).count());
    }
    WriteTimer(const WriteTimer &) = delete;
    WriteTimer &operator=(const WriteTimer &) = delete;

private:
    std::vector<double> &m_sink;
    std::chrono::steady_clock::time_point m_t0;
};

StoreWriteStats writeStats(std::vector<double> ms)
{
    StoreWriteStats s;
    s.count = static_cast<int>(ms.size());
    if (ms.empty())
        return s;
    std::sort(ms.begin(), ms.end());
    const auto at = [&ms](double q) {
        return ms[std::min(ms.size() - 1, static_cast<std::size_t>(std::ceil(q * static_cast<double>(ms.size())) - 1))];
    };
    s.medianMs = ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
    s.p99Ms = at(0.99);
    s.maxMs = ms.back();
    for (double v : ms)
        s.totalMs += v;
    return s;
}

class SearchRun {
public:
    SearchRun(const SearchSpace &space, StudyStore &store, Executor &executor,
              const SearchOptions &options, const CancelToken &cancel, const SearchCallbacks &callbacks)
        : m_space(space), m_store(store), m_executor(executor), m_options(options), m_cancel(cancel),
          m_callbacks(callbacks), m_problem(space),
          m_nsga(m_problem, nsgaOptions(options), [this](const std::string &k) { return m_known.count(k) > 0; }),
          m_asha(options.asha ? options.ashaOptions : AshaOptions{})
    {
    }

    SearchSummary run()
    {
        const auto t0 = std::chrono::steady_clock::now();
        m_start = t0;
        SearchSummary summary;
        summary.recovered = m_store.recoverAfterCrash();
        restore();

        while (!m_cancel.isCancelled()) {
            fill();
            if (m_executor.busy() == 0) {
                const StateCounts c = m_store.counts();
                if (finished(c) >= m_options.trials)
                    break;
                if (c.queued == 0 && !held()) { // nothing runs, nothing waits, nothing new: exhausted
                    summary.exhausted = true;
                    break;
                }
            }
            handle(m_executor.poll(std::chrono::milliseconds(200)));
        }
        if (m_cancel.isCancelled()) {
            summary.interrupted = true;
            m_executor.cancelAll();
            while (m_executor.busy() > 0)
                handle(m_executor.poll(std::chrono::milliseconds(200)));
        }
        summary.requeued = m_requeued;
        summary.counts = m_store.counts();
        summary.front = studyFront(m_store);
        summary.hypervolume = studyHypervolume(summary.front, m_options);
        summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        summary.storeWrites = writeStats(m_writeMs);
        return summary;
    }

private:
    static Nsga2Options nsgaOptions(const SearchOptions &o)
    {
        Nsga2Options n;
        n.populationSize = o.population;
        n.seed = o.seed;
        return n;
    }

    static int finished(const StateCounts &c) { return c.complete + c.pruned + c.failed; }

    // Runs one store write and records how long it took (SearchSummary::storeWrites).
    template <class Write> decltype(auto) timedWrite(Write &&write)
    {
        WriteTimer timer(m_writeMs);
        return write();
    }

    bool held() const { return m_callbacks.holdNewTrials && m_callbacks.holdNewTrials(); }

    // NSGA-II ranks by fidelity first: a complete trial counts as the full budget (even when
    // the recipe's patience stopped it sooner), a pruned one as the epochs it got.
    int nsgaFidelity(TrialState state, int epochs) const
    {
        return state == TrialState::Complete ? m_options.epochs : std::min(epochs, m_options.epochs - 1);
    }

    // Rebuilds the optimiser and ASHA from the stored trials (a resumed study).
    void restore()
    {
        const std::vector<TrialRecord> trials = m_store.listTrials({std::nullopt, true, true});
        std::vector<std::pair<ArchSpec, int>> pending;
        for (const auto &t : trials) {
            m_known.insert(t.specHash);
            ArchSpec spec = ArchSpec::fromJson(t.spec, "study trial " + std::to_string(t.number));
            if ((t.state == TrialState::Complete || t.state == TrialState::Pruned) && !t.values.empty())
                m_nsga.restore(spec, t.values, nsgaFidelity(t.state, t.fidelity), std::max(t.generation, 0));
            else if (t.state == TrialState::Queued)
                pending.emplace_back(std::move(spec), std::max(t.generation, 0));
            if (m_options.asha && isFinished(t.state)) {
                double best = std::numeric_limits<double>::infinity();
                for (const auto &e : t.epochs) {
                    if (std::isfinite(e.value))
                        best = std::min(best, e.value);
                    if (std::isfinite(best))
                        m_asha.restore(t.specHash, e.epoch, best);
                }
            }
        }
        for (const auto &[spec, generation] : pending)
            m_nsga.restorePending(spec, generation);
        if (trials.empty() && m_options.seedBuiltins) {
            std::vector<ArchSpec> seeds;
            for (const char *name : {"nac", "braggnn"})
                seeds.push_back(m_problem.fitToSlots(builtinArch(name)));
            m_nsga.seed(seeds, false);
        }
    }

    // Starts trials while workers are free and the study needs more.
    void fill()
    {
        while (m_executor.busy() < m_executor.capacity() && !m_cancel.isCancelled() && !held()) {
            const StateCounts c = m_store.counts();
            if (finished(c) + c.running >= m_options.trials)
                return;
            std::optional<TrialRecord> claimed = timedWrite([&] { return m_store.claimNext(hostName(), 0); });
            if (!claimed) {
                std::vector<ArchSpec> genomes = m_nsga.ask(1);
                if (genomes.empty())
                    return; // the generation waits for running trials, or the space is exhausted
                const ArchSpec &spec = genomes.front();
                TrialRequest request;
                request.spec = spec.toJson();
                request.specHash = m_problem.key(spec);
                request.budget = m_options.epochs;
                request.generation = m_nsga.generation();
                const EnqueueResult e = timedWrite([&] { return m_store.enqueue(request); });
                m_known.insert(request.specHash);
                if (!e.inserted) {
                    // The store already held this spec (another writer): leave the optimiser's
                    // slot without a result rather than training it twice.
                    m_nsga.tellFailed(spec);
                    continue;
                }
                claimed = timedWrite([&] { return m_store.claim(e.id, hostName(), 0); });
            }
            Running r;
            r.spec = ArchSpec::fromJson(claimed->spec, "study trial " + std::to_string(claimed->number));
            r.key = claimed->specHash;
            r.generation = claimed->generation;
            TrialTask task;
            task.id = claimed->id;
            task.number = claimed->number;
            task.spec = claimed->spec;
            task.hyperParams = claimed->hyperParams;
            task.epochs = claimed->budget > 0 ? claimed->budget : m_options.epochs;
            task.modelPath = m_store.resolve(m_store.suggestedModelPath(claimed->number));
            m_running[claimed->id] = std::move(r);
            m_executor.submit(task);
            if (m_callbacks.onTrialStarted)
                m_callbacks.onTrialStarted(*claimed);
        }
    }

    void handle(const std::vector<ExecutorEvent> &events)
    {
        for (const ExecutorEvent &ev : events) {
            if (ev.kind == ExecutorEvent::Kind::Epoch)
                onEpoch(ev.epoch);
            else
                onFinished(ev.result);
        }
        if (!events.empty() && m_callbacks.onProgress)
            m_callbacks.onProgress(progress());
    }

    void onEpoch(const EpochReport &report)
    {
        auto it = m_running.find(report.id);
        if (it == m_running.end()) {
            m_executor.decide(report.id, false);
            return;
        }
        if (m_cancel.isCancelled()) {
            // Stopping: cancelAll() cancels the trial right after this batch and it is
            // requeued; answering "stop" here would end it as pruned at a partial fidelity.
            m_executor.decide(report.id, true);
            return;
        }
        timedWrite([&] { m_store.reportEpoch(report.id, report.epoch, report.value, report.metrics); });
        if (std::isfinite(report.value))
            it->second.best = std::min(it->second.best, report.value);
        bool keep = true;
        if (m_options.asha && std::isfinite(it->second.best))
            keep = m_asha.report(it->second.key, report.epoch, it->second.best);
        m_executor.decide(report.id, keep);
    }

    void onFinished(const TaskResult &result)
    {
        auto it = m_running.find(result.id);
        if (it == m_running.end())
            return;
        Running r = std::move(it->second);
        m_running.erase(it);
        if (result.status == TaskStatus::Cancelled) {
            timedWrite([&] { m_store.requeue(result.id); });
            ++m_requeued;
            return;
        }
        TrialOutcome outcome = trialOutcome(result, m_store);
        std::string failure = result.status == TaskStatus::Failed ? result.reason : std::string();
        if (failure.empty() && m_callbacks.extendCost) {
            try {
                m_callbacks.extendCost(r.spec, outcome.cost);
            } catch (const std::exception &e) {
                failure = std::string("cost: ") + e.what();
            }
        }
        if (failure.empty()) {
            try {
                outcome.values = objectiveValues(m_options.objectives, result.metrics, outcome.cost);
            } catch (const InputError &e) {
                failure = e.what();
            }
        }
        if (!failure.empty()) {
            timedWrite([&] { m_store.fail(result.id, failure, outcome.host, outcome.rank); });
            m_nsga.tellFailed(r.spec);
        } else if (result.status == TaskStatus::Pruned) {
            timedWrite([&] { m_store.prune(result.id, outcome, result.reason); });
            m_nsga.tell(r.spec, outcome.values, nsgaFidelity(TrialState::Pruned, outcome.fidelity));
        } else {
            timedWrite([&] { m_store.complete(result.id, outcome); });
            m_nsga.tell(r.spec, outcome.values, nsgaFidelity(TrialState::Complete, outcome.fidelity));
        }
        ++m_finishedThisRun;
        if (m_callbacks.onTrialFinished)
            if (auto rec = m_store.trial(result.id))
                m_callbacks.onTrialFinished(*rec);
    }

    SearchProgress progress()
    {
        SearchProgress p;
        p.counts = m_store.counts();
        p.target = m_options.trials;
        p.generation = m_nsga.generation();
        const std::vector<TrialPoint> points = m_store.points(std::nullopt);
        std::vector<TrialRecord> front;
        for (std::size_t i : studyFrontIndices(points)) {
            TrialRecord r;
            r.id = points[i].id;
            r.number = points[i].number;
            r.state = points[i].state;
            r.fidelity = points[i].fidelity;
            r.values = points[i].values;
            front.push_back(std::move(r));
        }
        p.bestDistance = nan();
        if (!front.empty() && m_options.objectives.front() == "distance")
            p.bestDistance = front.front().values.front();
        p.hypervolume = studyHypervolume(front, m_options);
        p.elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
        const int left = std::max(0, m_options.trials - finished(p.counts));
        p.remaining = m_finishedThisRun > 0 ? p.elapsed / m_finishedThisRun * left : nan();
        return p;
    }

    const SearchSpace &m_space;
    StudyStore &m_store;
    Executor &m_executor;
    const SearchOptions &m_options;
    CancelToken m_cancel;
    const SearchCallbacks &m_callbacks;
    ArchProblem m_problem;
    std::set<std::string> m_known;
    Nsga2<ArchSpec> m_nsga;
    Asha m_asha;
    std::map<std::int64_t, Running> m_running;
    int m_requeued = 0;
    int m_finishedThisRun = 0;
    std::vector<double> m_writeMs; // every store write's duration this run (ms)
    std::chrono::steady_clock::time_point m_start;
};

} // namespace

SearchSummary runSearch(const SearchSpace &space, StudyStore &store, Executor &executor,
                        const SearchOptions &options, const CancelToken &cancel,
                        const SearchCallbacks &callbacks)
{
    options.validate();
    if (store.readOnly())
        throw InputError(store.path() + ": the study is open read-only; a search needs to write it");
    SearchRun run(space, store, executor, options, cancel, callbacks);
    return run.run();
}

} // namespace braggnac::core
