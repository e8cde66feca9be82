#include "core/search/tune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "core/arch/archspec.h"
#include "core/search/driver.h"
#include "core/common/error.h"

namespace braggnac::core {

using nlohmann::json;

namespace {
double nan() { return std::numeric_limits<double>::quiet_NaN(); }
} // namespace

void TuneOptions::validate(const std::string &source) const
{
    if (trials < 1)
        throw InputError(source + ": trials: must be at least 1, got " + std::to_string(trials));
    if (epochs < 1)
        throw InputError(source + ": epochs: must be at least 1, got " + std::to_string(epochs));
    if (pruneStartupTrials < 0)
        throw InputError(source + ": prune startup trials: must be >= 0");
    if (pruneWarmupEpochs < 0)
        throw InputError(source + ": prune warmup epochs: must be >= 0");
    if (startupTrials < 0)
        throw InputError(source + ": startup trials: must be >= 0");
}

json TuneOptions::toJson() const
{
    return json{{"trials", trials},
                {"epochs", epochs},
                {"prune", prune},
                {"prune_startup_trials", pruneStartupTrials},
                {"prune_warmup_epochs", pruneWarmupEpochs},
                {"startup_trials", startupTrials},
                {"seed", seed}};
}

std::vector<HyperParam> defaultTuneStudySpace()
{
    std::vector<HyperParam> s = defaultTuneSpace();
    for (HyperParam &p : s) {
        if (p.name == "learning_rate") {
            p.low = 1e-4;
            p.high = 1e-2;
        } else if (p.name == "weight_decay") {
            p.low = 1e-9;
            p.high = 1e-3;
        }
    }
    return s;
}

const std::vector<std::string> &tuneParamNames()
{
    static const std::vector<std::string> names = {"optimizer", "learning_rate", "weight_decay",
                                                   "momentum",  "schedule",      "batch_size"};
    return names;
}

void checkTuneSpace(const std::vector<HyperParam> &space, const std::string &source)
{
    if (space.empty())
        throw InputError(source + ": params: empty");
    const auto &names = tuneParamNames();
    for (std::size_t i = 0; i < space.size(); ++i) {
        const HyperParam &p = space[i];
        const std::string field = source + ": params[" + std::to_string(i) + "]";
        if (std::find(names.begin(), names.end(), p.name) == names.end())
            throw InputError(field + ".name: '" + p.name
                             + "' is not a training hyper-parameter (known: optimizer, learning_rate, "
                               "weight_decay, momentum, schedule, batch_size)");
        const bool categorical = p.kind == HyperParam::Kind::Categorical;
        if ((p.name == "optimizer" || p.name == "schedule") && !categorical)
            throw InputError(field + ".type: " + p.name + " must be categorical");
        if ((p.name == "learning_rate" || p.name == "weight_decay" || p.name == "momentum") && categorical)
            throw InputError(field + ".type: " + p.name + " must be a float");
        if (p.name == "batch_size") {
            if (categorical) {
                for (const auto &c : p.choices) {
                    std::size_t used = 0;
                    int b = 0;
                    try {
                        b = std::stoi(c, &used);
                    } catch (const std::exception &) {
                        used = 0;
                    }
                    if (used != c.size() || b < 1)
                        throw InputError(field + ".choices: '" + c + "' is not a positive batch size");
                }
            } else if (p.kind != HyperParam::Kind::Int || p.low < 1) {
                throw InputError(field + ": batch_size must be categorical or an int range >= 1");
            }
        }
    }
}

ParamSet paramSetFromJson(const std::vector<HyperParam> &space, const json &j, const std::string &source)
{
    if (!j.is_object())
        throw InputError(source + ": hyper-parameters: expected an object");
    ParamSet out;
    for (const HyperParam &p : space) {
        if (!j.contains(p.name))
            throw InputError(source + ": hyper-parameters: " + p.name + ": missing");
        const json &v = j[p.name];
        ParamValue pv;
        if (p.kind == HyperParam::Kind::Categorical) {
            if (!v.is_string())
                throw InputError(source + ": hyper-parameters: " + p.name + ": expected a string");
            pv.choice = v.get<std::string>();
        } else {
            if (!v.is_number())
                throw InputError(source + ": hyper-parameters: " + p.name + ": expected a number");
            pv.number = v.get<double>();
        }
        out[p.name] = pv;
    }
    return out;
}

json tuneRunnerParams(const ParamSet &params)
{
    const HyperParams h = HyperParams::fromParams(params);
    json j = json::object();
    if (params.count("optimizer"))
        j["optimizer"] = h.optimizer;
    if (params.count("learning_rate"))
        j["lr"] = h.learningRate;
    if (params.count("weight_decay"))
        j["weight_decay"] = h.weightDecay;
    if (params.count("momentum"))
        j["momentum"] = h.momentum;
    if (params.count("schedule"))
        j["schedule"] = h.schedule;
    if (params.count("batch_size"))
        j["batch"] = h.batchSize;
    return j;
}

namespace {

int finished(const StateCounts &c) { return c.complete + c.pruned + c.failed; }

class TuneRun {
public:
    TuneRun(const std::vector<HyperParam> &space, const json &spec, StudyStore &store, Executor &executor,
            const TuneOptions &options, const CancelToken &cancel, const TuneCallbacks &callbacks)
        : m_space(space), m_spec(spec), m_store(store), m_executor(executor), m_options(options),
          m_cancel(cancel), m_callbacks(callbacks), m_sampler(space, tpeOptions(options)),
          m_pruner(options.pruneStartupTrials, options.pruneWarmupEpochs)
    {
        m_specHash = ArchSpec::fromJson(spec, "tune spec").canonicalHash();
    }

    TuneSummary run()
    {
        m_start = std::chrono::steady_clock::now();
        TuneSummary summary;
        summary.recovered = m_store.recoverAfterCrash();
        restore();
        while (!m_cancel.isCancelled()) {
            fill();
            if (m_executor.busy() == 0 && finished(m_store.counts()) >= m_options.trials)
                break;
            handle(m_executor.poll(std::chrono::milliseconds(200)));
        }
        if (m_cancel.isCancelled()) {
            summary.interrupted = true;
            m_executor.cancelAll();
            while (m_executor.busy() > 0)
                handle(m_executor.poll(std::chrono::milliseconds(200)));
        }
        summary.requeued = m_requeued;
        summary.trainedThisRun = m_finishedThisRun;
        summary.counts = m_store.counts();
        summary.best = bestTrial();
        summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
        return summary;
    }

private:
    static TpeOptions tpeOptions(const TuneOptions &o)
    {
        TpeOptions t;
        t.startupTrials = o.startupTrials;
        t.seed = o.seed;
        return t;
    }

    static std::vector<double> epochValues(const std::vector<EpochValue> &epochs)
    {
        std::vector<double> v;
        for (const EpochValue &e : epochs) {
            if (e.epoch < 1)
                continue;
            if (int(v.size()) < e.epoch)
                v.resize(std::size_t(e.epoch), nan());
            v[std::size_t(e.epoch - 1)] = e.value;
        }
        return v;
    }

    // Every finished trial, in number order, to the sampler (and the complete ones' epochs to
    // the pruner): the state a run that never stopped would have.
    void restore()
    {
        ListOptions lo;
        lo.withEpochs = true;
        lo.withHistory = false;
        for (const TrialRecord &t : m_store.listTrials(lo))
            tellFinished(t);
    }

    void tellFinished(const TrialRecord &t)
    {
        if (t.state != TrialState::Complete && t.state != TrialState::Pruned)
            return;
        const ParamSet params = paramSetFromJson(m_space, t.hyperParams, "study trial " + std::to_string(t.number));
        const std::vector<double> values = epochValues(t.epochs);
        if (t.state == TrialState::Complete) {
            if (t.values.empty() || !std::isfinite(t.values.front()))
                return;
            m_sampler.tell(params, t.values.front());
            m_pruner.addCompleted(values);
        } else {
            double last = nan();
            for (double v : values)
                if (std::isfinite(v))
                    last = v;
            if (!t.values.empty() && std::isfinite(t.values.front()))
                last = t.values.front();
            if (std::isfinite(last))
                m_sampler.tellPruned(params, std::max(1, t.fidelity), last);
        }
    }

    void fill()
    {
        while (m_executor.busy() < m_executor.capacity() && !m_cancel.isCancelled()) {
            const StateCounts c = m_store.counts();
            if (finished(c) + c.running >= m_options.trials)
                return;
            std::optional<TrialRecord> claimed = m_store.claimNext(hostName(), 0);
            if (!claimed) {
                // A new point from TPE; a duplicate of an earlier trial is asked again (a
                // categorical-only space may be exhausted: then stop filling).
                bool got = false;
                for (int attempt = 0; attempt < 100 && !got; ++attempt) {
                    const ParamSet p = m_sampler.ask();
                    TrialRequest req;
                    req.spec = m_spec;
                    req.specHash = m_specHash;
                    req.hyperParams = paramSetToJson(p);
                    req.budget = m_options.epochs;
                    const EnqueueResult e = m_store.enqueue(req);
                    if (e.inserted || e.state == TrialState::Queued) {
                        claimed = m_store.claim(e.id, hostName(), 0);
                        got = true;
                    }
                }
                if (!got)
                    throw Error(m_store.path() + ": the tune space yields no new hyper-parameters after 100 draws");
            }
            const ParamSet params
                = paramSetFromJson(m_space, claimed->hyperParams, "study trial " + std::to_string(claimed->number));
            TrialTask task;
            task.id = claimed->id;
            task.number = claimed->number;
            task.spec = claimed->spec;
            task.hyperParams = tuneRunnerParams(params);
            task.epochs = claimed->budget > 0 ? claimed->budget : m_options.epochs;
            task.modelPath = m_store.resolve(m_store.suggestedModelPath(claimed->number));
            m_running[claimed->id] = {};
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
        if (!events.empty() && m_callbacks.onProgress) {
            TuneProgress p;
            p.counts = m_store.counts();
            p.target = m_options.trials;
            const auto b = bestTrial();
            p.best = b ? b->values.front() : nan();
            p.elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
            m_callbacks.onProgress(p);
        }
    }

    void onEpoch(const EpochReport &report)
    {
        auto it = m_running.find(report.id);
        if (it == m_running.end()) {
            m_executor.decide(report.id, false);
            return;
        }
        if (m_cancel.isCancelled()) {
            // Stopping: the trial is cancelled right after this batch and requeued (as in
            // the search driver); "stop" here would store it as pruned at a partial fidelity.
            m_executor.decide(report.id, true);
            return;
        }
        m_store.reportEpoch(report.id, report.epoch, report.value, report.metrics);
        std::vector<double> &v = it->second;
        if (int(v.size()) < report.epoch)
            v.resize(std::size_t(report.epoch), nan());
        v[std::size_t(report.epoch - 1)] = report.value;
        const bool prune = m_options.prune && m_pruner.shouldPrune(v);
        m_executor.decide(report.id, !prune);
    }

    void onFinished(const TaskResult &result)
    {
        auto it = m_running.find(result.id);
        if (it == m_running.end())
            return;
        m_running.erase(it);
        if (result.status == TaskStatus::Cancelled) {
            m_store.requeue(result.id);
            ++m_requeued;
            return;
        }
        TrialOutcome outcome = trialOutcome(result, m_store);
        std::string failure = result.status == TaskStatus::Failed ? result.reason : std::string();
        if (failure.empty()) {
            const json *mean = nullptr;
            if (result.metrics.is_object() && result.metrics.contains("validation")
                && result.metrics["validation"].is_object() && result.metrics["validation"].contains("mean"))
                mean = &result.metrics["validation"]["mean"];
            if (!mean || !mean->is_number())
                failure = "metrics: validation.mean: missing";
            else if (!std::isfinite(mean->get<double>()))
                failure = "validation mean distance is not finite";
            else
                outcome.values = {mean->get<double>()};
        }
        if (!failure.empty())
            m_store.fail(result.id, failure, outcome.host, outcome.rank);
        else if (result.status == TaskStatus::Pruned)
            m_store.prune(result.id, outcome, result.reason.empty() ? "median pruner" : result.reason);
        else
            m_store.complete(result.id, outcome);
        ++m_finishedThisRun;
        if (auto rec = m_store.trial(result.id)) {
            tellFinished(*rec);
            if (m_callbacks.onTrialFinished)
                m_callbacks.onTrialFinished(*rec);
        }
    }

    std::optional<TrialRecord> bestTrial() const
    {
        std::optional<TrialPoint> best;
        for (const TrialPoint &p : m_store.points(TrialState::Complete))
            if (!p.values.empty() && std::isfinite(p.values.front())
                && (!best || p.values.front() < best->values.front()))
                best = p;
        if (!best)
            return std::nullopt;
        return m_store.trial(best->id);
    }

    const std::vector<HyperParam> &m_space;
    json m_spec;
    std::string m_specHash;
    StudyStore &m_store;
    Executor &m_executor;
    TuneOptions m_options;
    CancelToken m_cancel;
    TuneCallbacks m_callbacks;
    TpeSampler m_sampler;
    MedianPruner m_pruner;
    std::map<std::int64_t, std::vector<double>> m_running; // id -> per-epoch values so far
    int m_requeued = 0;
    int m_finishedThisRun = 0;
    std::chrono::steady_clock::time_point m_start;
};

} // namespace

TuneSummary runTune(const std::vector<HyperParam> &space, const json &spec, StudyStore &store,
                    Executor &executor, const TuneOptions &options, const CancelToken &cancel,
                    const TuneCallbacks &callbacks)
{
    options.validate();
    checkTuneSpace(space);
    if (store.readOnly())
        throw InputError(store.path() + ": the study is open read-only; tune needs to write it");
    if (store.info().kind != StudyKind::Tune)
        throw InputError(store.path() + ": is a " + std::string(studyKindName(store.info().kind))
                         + " study, not a tune study");
    TuneRun run(space, spec, store, executor, options, cancel, callbacks);
    return run.run();
}

} // namespace braggnac::core
