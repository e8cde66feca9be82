#include "core/compress/prune.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/common/error.h"

namespace braggnac::core {

namespace {

void checkFraction(double fraction)
{
    if (!(fraction > 0 && fraction < 1))
        throw InputError("prune fraction: expected a number in (0, 1) (got " + std::to_string(fraction) + ")");
}

const NamedTensor &weightOf(const NamedTensors &weights, const std::string &key, std::size_t size)
{
    auto it = weights.find(key);
    if (it == weights.end())
        throw InputError("weights: " + key + ": missing (needed for pruning)");
    if (it->second.values.size() != size)
        throw InputError("weights: " + key + ": " + std::to_string(it->second.values.size())
                         + " values, the mask has " + std::to_string(size));
    return it->second;
}

PruneMasks completed(const LayerPlan &plan, const PruneMasks &current)
{
    PruneMasks m = PruneMasks::full(plan);
    for (auto &[key, keep] : m.keep) {
        auto it = current.keep.find(key);
        if (it == current.keep.end())
            continue;
        if (it->second.size() != keep.size())
            throw InputError("pruning masks: " + key + ": " + std::to_string(it->second.size())
                             + " entries, the weight has " + std::to_string(keep.size()));
        keep = it->second;
    }
    return m;
}

} // namespace

std::vector<std::string> prunableWeights(const LayerPlan &plan)
{
    std::vector<std::string> keys;
    for (const PlanOp &op : plan.ops)
        if (op.kind == OpKind::Conv || op.kind == OpKind::Linear)
            if (const PlanTensor *t = op.tensor("weight"))
                keys.push_back(t->key);
    return keys;
}

PruneMasks PruneMasks::full(const LayerPlan &plan)
{
    PruneMasks m;
    for (const PlanOp &op : plan.ops)
        if (op.kind == OpKind::Conv || op.kind == OpKind::Linear)
            if (const PlanTensor *t = op.tensor("weight"))
                m.keep[t->key].assign(std::size_t(t->numel()), 1);
    return m;
}

std::int64_t PruneMasks::total() const
{
    std::int64_t n = 0;
    for (const auto &[k, v] : keep)
        n += std::int64_t(v.size());
    return n;
}

std::int64_t PruneMasks::kept() const
{
    std::int64_t n = 0;
    for (const auto &[k, v] : keep)
        n += std::count(v.begin(), v.end(), std::uint8_t(1));
    return n;
}

double PruneMasks::sparsity() const
{
    const std::int64_t t = total();
    return t == 0 ? 0.0 : double(t - kept()) / double(t);
}

nlohmann::json PruneMasks::toJson() const
{
    nlohmann::json j = nlohmann::json::object();
    for (const auto &[key, v] : keep) {
        std::vector<std::int64_t> pruned;
        for (std::size_t i = 0; i < v.size(); ++i)
            if (!v[i])
                pruned.push_back(std::int64_t(i));
        j[key] = {{"size", v.size()}, {"pruned", pruned}};
    }
    return j;
}

PruneMasks PruneMasks::fromJson(const nlohmann::json &j, const LayerPlan &plan, const std::string &source)
{
    PruneMasks m = full(plan);
    if (!j.is_object())
        throw InputError(source + ": pruning masks: expected an object");
    for (const auto &[key, entry] : j.items()) {
        auto it = m.keep.find(key);
        if (it == m.keep.end())
            throw InputError(source + ": " + key + ": not a prunable weight of '" + plan.spec.name
                             + "' (conv / linear weights, e.g. features.stem.conv.weight)");
        if (!entry.is_object() || !entry.contains("size") || !entry["size"].is_number_integer()
            || !entry.contains("pruned") || !entry["pruned"].is_array())
            throw InputError(source + ": " + key + ": expected {\"size\": n, \"pruned\": [indices]}");
        if (entry["size"].get<std::int64_t>() != std::int64_t(it->second.size()))
            throw InputError(source + ": " + key + ".size: " + entry["size"].dump() + ", the weight has "
                             + std::to_string(it->second.size()) + " elements");
        for (const auto &v : entry["pruned"]) {
            if (!v.is_number_integer() || v.get<std::int64_t>() < 0
                || v.get<std::int64_t>() >= std::int64_t(it->second.size()))
                throw InputError(source + ": " + key + ".pruned: index " + v.dump() + " out of range 0.."
                                 + std::to_string(it->second.size() - 1));
            it->second[std::size_t(v.get<std::int64_t>())] = 0;
        }
    }
    return m;
}

std::int64_t keptAfterRounds(std::int64_t total, double fraction, int rounds)
{
    checkFraction(fraction);
    std::int64_t kept = total;
    for (int r = 0; r < rounds; ++r)
        kept -= std::llround(fraction * double(kept));
    return kept;
}

PruneMasks pruneGlobalL1(const LayerPlan &plan, const NamedTensors &weights, const PruneMasks &current,
                         double fraction)
{
    checkFraction(fraction);
    PruneMasks m = completed(plan, current);
    const std::vector<std::string> keys = prunableWeights(plan);
    // (|w|, tensor order, index) of every kept weight.
    std::vector<std::tuple<float, std::size_t, std::size_t>> cand;
    for (std::size_t t = 0; t < keys.size(); ++t) {
        const auto &keep = m.keep.at(keys[t]);
        const NamedTensor &w = weightOf(weights, keys[t], keep.size());
        for (std::size_t i = 0; i < keep.size(); ++i)
            if (keep[i])
                cand.emplace_back(std::fabs(w.values[i]), t, i);
    }
    const std::size_t k = std::size_t(std::llround(fraction * double(cand.size())));
    if (k == 0)
        return m;
    std::nth_element(cand.begin(), cand.begin() + std::ptrdiff_t(k - 1), cand.end());
    std::sort(cand.begin(), cand.begin() + std::ptrdiff_t(k));
    for (std::size_t c = 0; c < k; ++c)
        m.keep.at(keys[std::get<1>(cand[c])])[std::get<2>(cand[c])] = 0;
    return m;
}

PruneMasks pruneStructured(const LayerPlan &plan, const NamedTensors &weights, const PruneMasks &current,
                           double fraction)
{
    checkFraction(fraction);
    PruneMasks m = completed(plan, current);
    struct Channel {
        double score;
        std::size_t op, row;
    };
    std::vector<Channel> cand;
    std::map<std::size_t, std::int64_t> keptRows; // per op index
    for (std::size_t o = 0; o + 1 < plan.ops.size(); ++o) { // never the output op (the last)
        const PlanOp &op = plan.ops[o];
        if (op.kind != OpKind::Conv && op.kind != OpKind::Linear)
            continue;
        const PlanTensor *t = op.tensor("weight");
        if (!t)
            continue;
        auto &keep = m.keep.at(t->key);
        const NamedTensor &w = weightOf(weights, t->key, keep.size());
        const std::size_t rows = std::size_t(t->shape.at(0)), per = keep.size() / rows;
        for (std::size_t r = 0; r < rows; ++r) {
            bool any = false;
            double l1 = 0;
            for (std::size_t i = r * per; i < (r + 1) * per; ++i)
                if (keep[i]) {
                    any = true;
                    l1 += std::fabs(double(w.values[i]));
                }
            if (!any)
                continue;
            ++keptRows[o];
            cand.push_back({l1 / double(per), o, r});
        }
    }
    std::size_t k = std::size_t(std::llround(fraction * double(cand.size())));
    std::stable_sort(cand.begin(), cand.end(), [](const Channel &a, const Channel &b) { return a.score < b.score; });
    for (const Channel &c : cand) {
        if (k == 0)
            break;
        if (keptRows[c.op] <= 1)
            continue;
        const PlanTensor *t = plan.ops[c.op].tensor("weight");
        auto &keep = m.keep.at(t->key);
        const std::size_t per = keep.size() / std::size_t(t->shape.at(0));
        std::fill(keep.begin() + std::ptrdiff_t(c.row * per), keep.begin() + std::ptrdiff_t((c.row + 1) * per),
                  std::uint8_t(0));
        --keptRows[c.op];
        --k;
    }
    return m;
}

void applyMasks(NamedTensors &weights, const PruneMasks &masks)
{
    for (const auto &[key, keep] : masks.keep) {
        NamedTensor &w = const_cast<NamedTensor &>(weightOf(weights, key, keep.size()));
        for (std::size_t i = 0; i < keep.size(); ++i)
            if (!keep[i])
                w.values[i] = 0.0f;
    }
}

} // namespace braggnac::core
