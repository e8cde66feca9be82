// Distance statistics and model evaluation (torch-free: inference goes through Model::predict).
#include "core/nn/trainer.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <string>

#include <nlohmann/json.hpp>

#include "core/common/error.h"

namespace braggnac::core {

namespace {

double percentile(const std::vector<float> &sorted, double q)
{
    if (sorted.empty())
        return 0;
    const double pos = q * double(sorted.size() - 1);
    const auto lo = std::size_t(std::floor(pos));
    const auto hi = std::min(lo + 1, sorted.size() - 1);
    const double frac = pos - double(lo);
    return double(sorted[lo]) + frac * (double(sorted[hi]) - double(sorted[lo]));
}

} // namespace

nlohmann::json DistanceStats::toJson() const
{
    return {{"n", n}, {"mean", mean}, {"p50", p50}, {"p75", p75}, {"p95", p95}, {"max", max}};
}

DistanceStats distanceStats(std::vector<float> distances)
{
    DistanceStats s;
    s.n = distances.size();
    if (distances.empty())
        return s;
    // Non-finite distances (a diverged network) sort last and make the mean non-finite.
    std::sort(distances.begin(), distances.end(), [](float a, float b) {
        if (std::isnan(a))
            return false;
        if (std::isnan(b))
            return true;
        return a < b;
    });
    double sum = 0;
    for (float d : distances)
        sum += d;
    s.mean = sum / double(distances.size());
    s.p50 = percentile(distances, 0.50);
    s.p75 = percentile(distances, 0.75);
    s.p95 = percentile(distances, 0.95);
    s.max = distances.back();
    return s;
}

Evaluation evaluateModel(const Model &model, const PatchDataset &data, int split)
{
    data.validate("patch dataset");
    if (!data.labelled())
        throw InputError("/centers: missing: the patches are unlabelled, nothing to evaluate against");
    if (data.patchSize != model.spec().inputSize)
        throw InputError("/patches: patch size " + std::to_string(data.patchSize)
                         + " does not match the model's input size "
                         + std::to_string(model.spec().inputSize));
    if (split < -1 || split > 2)
        throw InputError("split: expected -1 (all), 0 (train), 1 (validation) or 2 (test), got "
                         + std::to_string(split));

    std::vector<std::uint8_t> splits;
    if (split >= 0)
        splits = effectiveSplit(data);
    const std::vector<std::uint8_t> *converged = nullptr;
    auto conv = data.extraFlags.find("/fit/converged");
    if (conv != data.extraFlags.end() && conv->second.size() == data.size())
        converged = &conv->second;

    Evaluation ev;
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (split >= 0 && splits[i] != split)
            continue;
        if (converged && (*converged)[i] == 0)
            continue;
        ev.indices.push_back(i);
    }
    if (ev.indices.empty()) {
        static const char *const names[] = {"train", "validation", "test"};
        const std::string which = split < 0 ? std::string("the dataset") : std::string("the ") + names[split] + " split";
        throw InputError("split: " + which + " holds no patches to evaluate ("
                         + std::to_string(data.size()) + " patches"
                         + (converged ? ", rows with /fit/converged = 0 left out" : "")
                         + "); an empty split has no score");
    }

    const int s = data.patchSize;
    const std::size_t area = std::size_t(s) * s;
    std::vector<float> raw(ev.indices.size() * area);
    for (std::size_t k = 0; k < ev.indices.size(); ++k)
        std::copy_n(data.patch(ev.indices[k]), area, raw.data() + k * area);
    // Moderate batches keep the attention maps of BraggNN-sized nets in cache.
    try {
        ev.predictions = ev.indices.empty() ? std::vector<float>{}
                                            : model.predict(raw.data(), ev.indices.size(), 512);
    } catch (const Error &) {
        throw;
    } catch (const std::bad_alloc &) {
        throw Error("evaluate: out of memory");
    } catch (const std::exception &e) {
        // LibTorch's c10::Error: its what() carries a C++ backtrace after the first line.
        const std::string what = e.what();
        throw Error("evaluate: LibTorch: " + what.substr(0, what.find('\n')));
    }
    std::vector<float> labels(ev.indices.size() * 2);
    for (std::size_t k = 0; k < ev.indices.size(); ++k) {
        labels[2 * k] = data.centers[2 * ev.indices[k]];
        labels[2 * k + 1] = data.centers[2 * ev.indices[k] + 1];
    }
    std::vector<std::pair<std::string, std::vector<std::uint8_t>>> flagRows;
    for (const auto &[path, flags] : data.extraFlags) {
        if (path.rfind("/flags/", 0) != 0 || flags.size() != data.size())
            continue;
        std::vector<std::uint8_t> rows(ev.indices.size());
        for (std::size_t k = 0; k < ev.indices.size(); ++k)
            rows[k] = flags[ev.indices[k]];
        flagRows.emplace_back(path.substr(7), std::move(rows));
    }
    summariseEvaluation(ev, labels, flagRows);
    return ev;
}

void summariseEvaluation(Evaluation &ev, const std::vector<float> &labels,
                         const std::vector<std::pair<std::string, std::vector<std::uint8_t>>> &flags)
{
    const std::size_t n = ev.indices.size();
    if (ev.predictions.size() != 2 * n || labels.size() != 2 * n)
        throw Error("summariseEvaluation: " + std::to_string(n) + " rows but "
                    + std::to_string(ev.predictions.size()) + " prediction and "
                    + std::to_string(labels.size()) + " label values");
    ev.distances.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
        const double dr = double(ev.predictions[2 * k]) - labels[2 * k];
        const double dc = double(ev.predictions[2 * k + 1]) - labels[2 * k + 1];
        ev.distances[k] = float(std::sqrt(dr * dr + dc * dc));
    }
    ev.overall = distanceStats(ev.distances);
    ev.subsets.clear();
    for (const auto &[name, rows] : flags) {
        if (rows.size() != n)
            continue;
        std::vector<float> with, without;
        for (std::size_t k = 0; k < n; ++k)
            (rows[k] ? with : without).push_back(ev.distances[k]);
        if (!with.empty())
            ev.subsets.emplace_back(name, distanceStats(std::move(with)));
        if (!without.empty())
            ev.subsets.emplace_back("no-" + name, distanceStats(std::move(without)));
    }
}

} // namespace braggnac::core
