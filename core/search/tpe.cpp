#include "core/search/tpe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "core/common/error.h"

namespace braggnac::core {

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string &source, const std::string &field, const std::string &what)
{
    throw InputError(source + ": " + field + ": " + what);
}

double phi(double z)
{
    return 0.5 * std::erfc(-z / std::sqrt(2.0));
}

double logSumExp(const std::vector<double> &v)
{
    double m = -std::numeric_limits<double>::infinity();
    for (double x : v)
        m = std::max(m, x);
    if (!std::isfinite(m))
        return m;
    double s = 0;
    for (double x : v)
        s += std::exp(x - m);
    return m + std::log(s);
}

// Optuna's default_weights: flat for the last 25 observations, a linear ramp before them.
std::vector<double> observationWeights(std::size_t n)
{
    std::vector<double> w(n, 1.0);
    if (n > 25) {
        const std::size_t ramp = n - 25;
        for (std::size_t i = 0; i < ramp; ++i)
            w[i] = ramp == 1 ? 1.0 / double(n) : 1.0 / double(n) + (1.0 - 1.0 / double(n)) * double(i) / double(ramp - 1);
    }
    return w;
}

struct Parzen {
    // Numerical: truncated Gaussians on [low, high] (transformed space).
    std::vector<double> weights, mus, sigmas;
    double low = 0, high = 1;
    bool discrete = false; // integer grid of width 1
    // Categorical: mixture weights over choices (already mixed).
    std::vector<double> choiceProbs;

    double logPdf(double x) const
    {
        std::vector<double> terms;
        for (std::size_t i = 0; i < mus.size(); ++i) {
            const double z = phi((high - mus[i]) / sigmas[i]) - phi((low - mus[i]) / sigmas[i]);
            double p;
            if (discrete) {
                p = (phi((x + 0.5 - mus[i]) / sigmas[i]) - phi((x - 0.5 - mus[i]) / sigmas[i])) / std::max(z, 1e-300);
                terms.push_back(std::log(std::max(p, 1e-300)) + std::log(weights[i]));
            } else {
                const double u = (x - mus[i]) / sigmas[i];
                terms.push_back(-0.5 * u * u - std::log(sigmas[i] * std::sqrt(2 * M_PI) * std::max(z, 1e-300))
                                + std::log(weights[i]));
            }
        }
        return logSumExp(terms);
    }

    double sample(SearchRandom &rng) const
    {
        double u = rng.uniform(), acc = 0;
        std::size_t k = 0;
        for (; k + 1 < weights.size(); ++k) {
            acc += weights[k];
            if (u < acc)
                break;
        }
        for (int tries = 0; tries < 1000; ++tries) {
            const double x = mus[k] + sigmas[k] * rng.normal();
            if (x >= low && x <= high)
                return x;
        }
        return std::clamp(mus[k], low, high);
    }
};

Parzen numericalParzen(const std::vector<double> &obs, double low, double high, bool discrete,
                       const TpeOptions &o)
{
    Parzen pz;
    pz.low = low;
    pz.high = high;
    pz.discrete = discrete;
    const double lo = discrete ? low - 0.5 : low;
    const double hi = discrete ? high + 0.5 : high;
    // Bounds of the truncation (discrete: half a step outside the grid).
    pz.low = lo;
    pz.high = hi;
    std::vector<double> w = observationWeights(obs.size());
    w.push_back(o.priorWeight);
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    for (double &x : w)
        x /= total;
    std::vector<double> mus = obs;
    mus.push_back(0.5 * (lo + hi));
    const std::size_t n = mus.size();
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return mus[a] < mus[b]; });
    std::vector<double> ends(n + 2);
    ends[0] = lo;
    ends[n + 1] = hi;
    for (std::size_t i = 0; i < n; ++i)
        ends[i + 1] = mus[order[i]];
    std::vector<double> sortedSigma(n);
    for (std::size_t i = 0; i < n; ++i)
        sortedSigma[i] = std::max(ends[i + 1] - ends[i], ends[i + 2] - ends[i + 1]);
    if (!o.considerEndpoints && ends.size() >= 4) {
        sortedSigma[0] = ends[2] - ends[1];
        sortedSigma[n - 1] = ends[n] - ends[n - 1];
    }
    std::vector<double> sigmas(n);
    for (std::size_t i = 0; i < n; ++i)
        sigmas[order[i]] = sortedSigma[i];
    const double maxSigma = hi - lo;
    const double minSigma = o.magicClip ? (hi - lo) / std::min(100.0, 1.0 + double(n)) : 1e-12;
    for (double &s : sigmas)
        s = std::clamp(s, minSigma, maxSigma);
    sigmas[n - 1] = maxSigma; // the prior
    pz.weights = w;
    pz.mus = mus;
    pz.sigmas = sigmas;
    return pz;
}

Parzen categoricalParzen(const std::vector<std::size_t> &obs, std::size_t nChoices, const TpeOptions &o)
{
    Parzen pz;
    std::vector<double> w = observationWeights(obs.size());
    w.push_back(o.priorWeight);
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    pz.choiceProbs.assign(nChoices, 0.0);
    for (std::size_t i = 0; i < obs.size(); ++i) {
        // Kernel i: prior_weight / k on every choice, +1 on the observed one, normalised.
        const double rowTotal = o.priorWeight + 1.0;
        for (std::size_t c = 0; c < nChoices; ++c)
            pz.choiceProbs[c] += (w[i] / total) * ((o.priorWeight / double(nChoices) + (c == obs[i] ? 1.0 : 0.0)) / rowTotal);
    }
    for (std::size_t c = 0; c < nChoices; ++c)
        pz.choiceProbs[c] += (w.back() / total) / double(nChoices);
    return pz;
}

double toModel(const HyperParam &p, double v)
{
    return p.kind == HyperParam::Kind::Float && p.log ? std::log(v) : v;
}

std::size_t choiceIndex(const HyperParam &p, const std::string &c)
{
    for (std::size_t i = 0; i < p.choices.size(); ++i)
        if (p.choices[i] == c)
            return i;
    return p.choices.size();
}

void validateSpace(const std::vector<HyperParam> &space, const std::string &source)
{
    if (space.empty())
        fail(source, "params", "empty list (give at least one parameter)");
    std::set<std::string> names;
    for (std::size_t i = 0; i < space.size(); ++i) {
        const HyperParam &p = space[i];
        const std::string f = "params[" + std::to_string(i) + "]";
        if (p.name.empty())
            fail(source, f + ".name", "missing or empty");
        if (!names.insert(p.name).second)
            fail(source, f + ".name", "duplicate parameter name '" + p.name + "'");
        if (p.kind == HyperParam::Kind::Categorical) {
            if (p.choices.empty())
                fail(source, f + ".choices", "empty list of choices");
            std::set<std::string> seen;
            for (const auto &c : p.choices)
                if (!seen.insert(c).second)
                    fail(source, f + ".choices", "duplicate choice '" + c + "'");
        } else {
            if (!std::isfinite(p.low) || !std::isfinite(p.high) || !(p.low <= p.high))
                fail(source, f + ".low", "needs finite low <= high");
            if (p.log && (p.kind != HyperParam::Kind::Float || p.low <= 0))
                fail(source, f + ".log", "log scale needs a float parameter with low > 0");
            if (p.kind == HyperParam::Kind::Int && (p.low != std::floor(p.low) || p.high != std::floor(p.high)))
                fail(source, f + ".low", "int bounds must be integers");
        }
    }
}

} // namespace

std::vector<HyperParam> tuneSpaceFromJson(const json &j, const std::string &source)
{
    if (!j.is_object())
        fail(source, "(root)", "expected a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() != "params")
            fail(source, it.key(), "unknown key (expected params)");
    auto pit = j.find("params");
    if (pit == j.end() || !pit->is_array())
        fail(source, "params", "missing (expected a list of parameters)");
    std::vector<HyperParam> space;
    for (std::size_t i = 0; i < pit->size(); ++i) {
        const json &pj = (*pit)[i];
        const std::string f = "params[" + std::to_string(i) + "]";
        if (!pj.is_object())
            fail(source, f, "expected a JSON object");
        HyperParam p;
        const std::string type = pj.value("type", std::string());
        const std::set<std::string> allowed = type == "categorical"
            ? std::set<std::string>{"name", "type", "choices"}
            : std::set<std::string>{"name", "type", "low", "high", "log"};
        for (auto it = pj.begin(); it != pj.end(); ++it)
            if (!allowed.count(it.key()))
                fail(source, f + "." + it.key(), "unknown key for a " + (type.empty() ? std::string("parameter") : type) + " parameter");
        if (!pj.contains("name") || !pj["name"].is_string())
            fail(source, f + ".name", "missing (expected a string)");
        p.name = pj["name"].get<std::string>();
        if (type == "categorical") {
            p.kind = HyperParam::Kind::Categorical;
            if (!pj.contains("choices") || !pj["choices"].is_array() || pj["choices"].empty())
                fail(source, f + ".choices", "empty list of choices (give at least one allowed value)");
            for (const auto &c : pj["choices"])
                p.choices.push_back(c.is_string() ? c.get<std::string>() : c.dump());
        } else if (type == "int" || type == "float") {
            p.kind = type == "int" ? HyperParam::Kind::Int : HyperParam::Kind::Float;
            for (const char *k : {"low", "high"})
                if (!pj.contains(k) || !pj[k].is_number())
                    fail(source, f + "." + k, "missing (expected a number)");
            p.low = pj["low"].get<double>();
            p.high = pj["high"].get<double>();
            if (pj.contains("log")) {
                if (!pj["log"].is_boolean())
                    fail(source, f + ".log", "expected true or false");
                p.log = pj["log"].get<bool>();
            }
        } else {
            fail(source, f + ".type", "unknown type '" + type + "' (expected categorical, int or float)");
        }
        space.push_back(std::move(p));
    }
    validateSpace(space, source);
    return space;
}

json tuneSpaceToJson(const std::vector<HyperParam> &space)
{
    json params = json::array();
    for (const auto &p : space) {
        if (p.kind == HyperParam::Kind::Categorical)
            params.push_back(json{{"name", p.name}, {"type", "categorical"}, {"choices", p.choices}});
        else
            params.push_back(json{{"name", p.name},
                                  {"type", p.kind == HyperParam::Kind::Int ? "int" : "float"},
                                  {"low", p.low},
                                  {"high", p.high},
                                  {"log", p.log}});
    }
    return json{{"params", params}};
}

json paramSetToJson(const ParamSet &p)
{
    json j = json::object();
    for (const auto &[name, v] : p) {
        if (!v.choice.empty())
            j[name] = v.choice;
        else
            j[name] = v.number;
    }
    return j;
}

// ------------------------------------------------------------------------------------------

TpeSampler::TpeSampler(std::vector<HyperParam> space, TpeOptions options)
    : m_space(std::move(space)), m_options(options), m_rng(options.seed)
{
    validateSpace(m_space, "tune space");
    if (m_options.eiCandidates < 1)
        throw InputError("tpe: eiCandidates must be at least 1");
}

void TpeSampler::check(const ParamSet &params) const
{
    for (const auto &p : m_space) {
        auto it = params.find(p.name);
        if (it == params.end())
            throw Error("tpe: tell() without parameter '" + p.name + "'");
        if (p.kind == HyperParam::Kind::Categorical && choiceIndex(p, it->second.choice) == p.choices.size())
            throw Error("tpe: tell() with '" + it->second.choice + "', not a choice of '" + p.name + "'");
    }
}

void TpeSampler::tell(const ParamSet &params, double value)
{
    check(params);
    if (!std::isfinite(value))
        throw Error("tpe: tell() with a non-finite value (a failed trial is not told)");
    m_trials.push_back(Trial{params, value, false, 0});
}

void TpeSampler::tellPruned(const ParamSet &params, int step, double value)
{
    check(params);
    m_trials.push_back(Trial{params, std::isfinite(value) ? value : HUGE_VAL, true, step});
}

ParamValue TpeSampler::sampleRandom(const HyperParam &p)
{
    ParamValue v;
    switch (p.kind) {
    case HyperParam::Kind::Categorical:
        v.choice = p.choices[m_rng.below(p.choices.size())];
        break;
    case HyperParam::Kind::Int:
        v.number = p.low + double(m_rng.below(std::size_t(p.high - p.low) + 1));
        break;
    case HyperParam::Kind::Float:
        v.number = p.log ? std::exp(m_rng.uniform(std::log(p.low), std::log(p.high))) : m_rng.uniform(p.low, p.high);
        break;
    }
    return v;
}

ParamValue TpeSampler::sampleTpe(const HyperParam &p, const std::vector<const Trial *> &below,
                                 const std::vector<const Trial *> &above)
{
    ParamValue best;
    if (p.kind == HyperParam::Kind::Categorical) {
        std::vector<std::size_t> ob, oa;
        for (const Trial *t : below)
            ob.push_back(choiceIndex(p, t->params.at(p.name).choice));
        for (const Trial *t : above)
            oa.push_back(choiceIndex(p, t->params.at(p.name).choice));
        const Parzen l = categoricalParzen(ob, p.choices.size(), m_options);
        const Parzen g = categoricalParzen(oa, p.choices.size(), m_options);
        double bestScore = -std::numeric_limits<double>::infinity();
        for (int i = 0; i < m_options.eiCandidates; ++i) {
            double u = m_rng.uniform(), acc = 0;
            std::size_t c = 0;
            for (; c + 1 < p.choices.size(); ++c) {
                acc += l.choiceProbs[c];
                if (u < acc)
                    break;
            }
            const double score = std::log(l.choiceProbs[c]) - std::log(g.choiceProbs[c]);
            if (score > bestScore) {
                bestScore = score;
                best.choice = p.choices[c];
            }
        }
        return best;
    }
    const bool discrete = p.kind == HyperParam::Kind::Int;
    std::vector<double> ob, oa;
    for (const Trial *t : below)
        ob.push_back(toModel(p, t->params.at(p.name).number));
    for (const Trial *t : above)
        oa.push_back(toModel(p, t->params.at(p.name).number));
    const double lo = toModel(p, p.low), hi = toModel(p, p.high);
    const Parzen l = numericalParzen(ob, lo, hi, discrete, m_options);
    const Parzen g = numericalParzen(oa, lo, hi, discrete, m_options);
    double bestScore = -std::numeric_limits<double>::infinity();
    double bestX = 0.5 * (lo + hi);
    for (int i = 0; i < m_options.eiCandidates; ++i) {
        double x = l.sample(m_rng);
        if (discrete)
            x = std::clamp(std::round(x), p.low, p.high);
        const double score = l.logPdf(x) - g.logPdf(x);
        if (score > bestScore) {
            bestScore = score;
            bestX = x;
        }
    }
    best.number = p.kind == HyperParam::Kind::Float && p.log ? std::clamp(std::exp(bestX), p.low, p.high)
                                                             : std::clamp(bestX, p.low, p.high);
    return best;
}

ParamSet TpeSampler::ask()
{
    ParamSet out;
    if (int(m_trials.size()) < m_options.startupTrials) {
        for (const auto &p : m_space)
            out[p.name] = sampleRandom(p);
        return out;
    }
    // Rank: complete trials by value, then pruned ones (later step first, then value).
    std::vector<std::size_t> order(m_trials.size());
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        const Trial &x = m_trials[a], &y = m_trials[b];
        if (x.pruned != y.pruned)
            return !x.pruned;
        if (x.pruned && x.step != y.step)
            return x.step > y.step;
        return x.value < y.value;
    });
    const std::size_t n = m_trials.size();
    const std::size_t nBelow = std::min<std::size_t>(std::size_t(std::ceil(0.1 * double(n))), 25);
    std::vector<bool> isBelow(n, false);
    for (std::size_t i = 0; i < nBelow; ++i)
        isBelow[order[i]] = true;
    std::vector<const Trial *> below, above; // in told order (the weights ramp over it)
    for (std::size_t i = 0; i < n; ++i)
        (isBelow[i] ? below : above).push_back(&m_trials[i]);
    for (const auto &p : m_space)
        out[p.name] = sampleTpe(p, below, above);
    return out;
}

// ------------------------------------------------------------------------------------------

MedianPruner::MedianPruner(int startupTrials, int warmupSteps)
    : m_startup(std::max(0, startupTrials)), m_warmup(std::max(0, warmupSteps))
{
}

void MedianPruner::addCompleted(const std::vector<double> &values)
{
    m_completed.push_back(values);
}

bool MedianPruner::shouldPrune(const std::vector<double> &valuesSoFar) const
{
    if (valuesSoFar.empty() || int(m_completed.size()) < m_startup)
        return false;
    const std::size_t step = valuesSoFar.size() - 1;
    if (int(step) < m_warmup)
        return false;
    double best = HUGE_VAL;
    for (double v : valuesSoFar)
        if (!std::isnan(v))
            best = std::min(best, v);
    std::vector<double> atStep;
    for (const auto &c : m_completed)
        if (step < c.size() && !std::isnan(c[step]))
            atStep.push_back(c[step]);
    if (atStep.empty())
        return false;
    std::sort(atStep.begin(), atStep.end());
    const std::size_t m = atStep.size();
    const double median = m % 2 ? atStep[m / 2] : 0.5 * (atStep[m / 2 - 1] + atStep[m / 2]);
    return best > median;
}

// ------------------------------------------------------------------------------------------

std::vector<HyperParam> defaultTuneSpace()
{
    std::vector<HyperParam> s;
    HyperParam p;
    p = {};
    p.name = "optimizer";
    p.kind = HyperParam::Kind::Categorical;
    p.choices = {"adam", "rmsprop", "sgd"};
    s.push_back(p);
    p = {};
    p.name = "learning_rate";
    p.kind = HyperParam::Kind::Float;
    p.low = 1e-4;
    p.high = 3e-2;
    p.log = true;
    s.push_back(p);
    p = {};
    p.name = "weight_decay";
    p.kind = HyperParam::Kind::Float;
    p.low = 1e-10;
    p.high = 1e-3;
    p.log = true;
    s.push_back(p);
    p = {};
    p.name = "momentum";
    p.kind = HyperParam::Kind::Float;
    p.low = 0.5;
    p.high = 0.99;
    s.push_back(p);
    p = {};
    p.name = "schedule";
    p.kind = HyperParam::Kind::Categorical;
    p.choices = {"cosine", "step", "exponential", "none"};
    s.push_back(p);
    p = {};
    p.name = "batch_size";
    p.kind = HyperParam::Kind::Categorical;
    p.choices = {"64", "128", "256", "512"};
    s.push_back(p);
    return s;
}

HyperParams HyperParams::fromParams(const ParamSet &p)
{
    HyperParams h;
    if (auto it = p.find("optimizer"); it != p.end())
        h.optimizer = it->second.choice;
    if (auto it = p.find("learning_rate"); it != p.end())
        h.learningRate = it->second.number;
    if (auto it = p.find("weight_decay"); it != p.end())
        h.weightDecay = it->second.number;
    if (auto it = p.find("momentum"); it != p.end())
        h.momentum = it->second.number;
    if (auto it = p.find("schedule"); it != p.end())
        h.schedule = it->second.choice;
    if (auto it = p.find("batch_size"); it != p.end()) {
        const ParamValue &v = it->second;
        if (v.choice.empty()) {
            h.batchSize = int(v.number);
        } else {
            std::size_t used = 0;
            int b = 0;
            try {
                b = std::stoi(v.choice, &used);
            } catch (const std::exception &) {
                used = 0;
            }
            if (used != v.choice.size() || b < 1)
                throw InputError("tune space: batch_size: choice '" + v.choice + "' is not a positive integer");
            h.batchSize = b;
        }
    }
    return h;
}

json HyperParams::toJson() const
{
    return json{{"optimizer", optimizer},   {"learning_rate", learningRate}, {"weight_decay", weightDecay},
                {"momentum", momentum},     {"schedule", schedule},          {"batch_size", batchSize}};
}

} // namespace braggnac::core
