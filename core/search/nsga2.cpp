#include "core/search/nsga2.h"

#include <cmath>

#include <nlohmann/json.hpp>

namespace braggnac::core {

ArchProblem::ArchProblem(const SearchSpace &space, double mutationRate) : m_space(space), m_rate(mutationRate) {}

ArchSpec ArchProblem::sample(SearchRandom &rng)
{
    return m_space.sample(rng);
}

ArchSpec ArchProblem::crossover(const ArchSpec &a, const ArchSpec &b, SearchRandom &rng)
{
    return m_space.crossover(fitToSlots(a), fitToSlots(b), rng);
}

void ArchProblem::mutate(ArchSpec &g, SearchRandom &rng)
{
    g = fitToSlots(g);
    m_space.mutate(g, rng, m_rate);
}

bool ArchProblem::valid(const ArchSpec &g)
{
    return m_space.contains(g);
}

std::string ArchProblem::key(const ArchSpec &g)
{
    try {
        return g.canonicalHash();
    } catch (const InputError &) {
        return "invalid:" + g.toJson().dump();
    }
}

ArchSpec ArchProblem::fitToSlots(const ArchSpec &spec) const
{
    const int slots = m_space.effective().slots;
    ArchSpec s = spec;
    s.forceOneByOne = m_space.effective().forceOneByOne;
    if (int(spec.blocks.size()) == slots)
        return s;
    s.blocks.clear();
    for (const auto &b : spec.blocks)
        if (b.type != BlockType::None)
            s.blocks.push_back(b);
    while (int(s.blocks.size()) < slots)
        s.blocks.push_back(BlockSpec{});
    return s;
}

std::vector<double> sbxCrossover(const std::vector<double> &a, const std::vector<double> &b, double lo,
                                 double hi, SearchRandom &rng, double eta)
{
    std::vector<double> c = a;
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
        if (!rng.chance(0.5) || std::abs(a[i] - b[i]) < 1e-14)
            continue;
        const double y1 = std::min(a[i], b[i]), y2 = std::max(a[i], b[i]);
        const double u = rng.uniform();
        // Bounded SBX (Deb and Agrawal): spread factor limited by the distance to the bounds.
        auto child = [&](double beta) {
            const double alpha = 2.0 - std::pow(beta, -(eta + 1));
            const double betaq = u <= 1.0 / alpha ? std::pow(u * alpha, 1.0 / (eta + 1))
                                                  : std::pow(1.0 / (2.0 - u * alpha), 1.0 / (eta + 1));
            return betaq;
        };
        const double bq1 = child(1.0 + 2.0 * (y1 - lo) / (y2 - y1));
        const double bq2 = child(1.0 + 2.0 * (hi - y2) / (y2 - y1));
        const double c1 = 0.5 * ((y1 + y2) - bq1 * (y2 - y1));
        const double c2 = 0.5 * ((y1 + y2) + bq2 * (y2 - y1));
        c[i] = std::clamp(rng.chance(0.5) ? c1 : c2, lo, hi);
    }
    return c;
}

void polynomialMutation(std::vector<double> &x, double lo, double hi, SearchRandom &rng, double rate, double eta)
{
    if (x.empty())
        return;
    if (rate <= 0)
        rate = 1.0 / double(x.size());
    const double range = hi - lo;
    for (double &v : x) {
        if (!rng.chance(rate))
            continue;
        const double d1 = (v - lo) / range, d2 = (hi - v) / range;
        const double u = rng.uniform();
        const double p = 1.0 / (eta + 1);
        double dq;
        if (u < 0.5)
            dq = std::pow(2 * u + (1 - 2 * u) * std::pow(1 - d1, eta + 1), p) - 1;
        else
            dq = 1 - std::pow(2 * (1 - u) + 2 * (u - 0.5) * std::pow(1 - d2, eta + 1), p);
        v = std::clamp(v + dq * range, lo, hi);
    }
}

} // namespace braggnac::core
