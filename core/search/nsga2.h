#pragma once
// NSGA-II (Deb et al. 2002) as an ask-and-tell optimiser, generic over the genome type through
// a problem interface, so the same code runs ZDT test problems (real vectors) and architecture
// specs (ArchProblem below). Objectives are minimised; their number is whatever tell() gets
// (the same for every genome).
//   generations of `populationSize` genomes; generation 0 = seeds, then random valid samples;
//   generation g+1 is bred from the parents: binary tournaments (lower rank wins, then larger
//   crowding distance), crossover with probability crossoverProbability (else a copy of the
//   first parent), then mutation; every child is valid and new (its key unseen by this
//   optimiser and by the `seen` predicate), else redrawn (maxRedraws, then random samples).
//   Survival is elitist (mu + lambda): parents plus the generation's results, ranked by
//   fidelity (higher first: a result at more epochs outranks one stopped early by ASHA), then
//   by non-dominated front, the last front cut by crowding distance.
// ask(n) hands out at most what is left of the current generation; when the generation is all
// handed out it returns fewer (possibly none) until every genome of it has been told (tell or
// tellFailed), then breeds the next one. exhausted() is true when no new valid genome could be
// found. Deterministic for a given seed and sequence of calls. Not thread-safe (the driver
// serialises calls); the problem is borrowed and must outlive the optimiser. ask() lets the
// problem's exceptions through (ArchProblem::sample throws Error when the constraints reject
// every draw).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/arch/archspec.h"
#include "core/common/error.h"
#include "core/search/pareto.h"
#include "core/search/random.h"
#include "core/search/space.h"

namespace braggnac::core {

template <class G> class Nsga2Problem {
public:
    virtual ~Nsga2Problem() = default;
    /// A random genome (need not be valid: the optimiser checks valid() and redraws).
    virtual G sample(SearchRandom &rng) = 0;
    virtual G crossover(const G &a, const G &b, SearchRandom &rng) = 0;
    virtual void mutate(G &g, SearchRandom &rng) = 0;
    virtual bool valid(const G &g) = 0;
    /// Identity for deduplication (e.g. a canonical hash): equal keys = the same genome.
    virtual std::string key(const G &g) = 0;
};

struct Nsga2Options {
    int populationSize = 20;
    double crossoverProbability = 0.9;
    int maxRedraws = 200;       // attempts per child before falling back to random samples
    std::uint64_t seed = 0;
    /// Ablation switch: false replaces crowding distance by random tie-breaking (for tests and
    /// studies of the algorithm; keep true for searches).
    bool crowding = true;
};

template <class G> class Nsga2 {
public:
    struct Individual {
        G genome;
        std::string key;
        Objectives objectives;
        int fidelity = 0;
        int generation = 0;
        // Set at survival:
        int rank = 0;
        double crowding = 0;
    };

    /// seen(key): whether the study already holds that genome (e.g. from an earlier run); such
    /// genomes are never handed out. May be empty.
    Nsga2(Nsga2Problem<G> &problem, Nsga2Options options,
          std::function<bool(const std::string &)> seen = {})
        : m_problem(problem), m_options(options), m_rng(options.seed), m_seen(std::move(seen))
    {
        if (m_options.populationSize < 2)
            throw InputError("nsga2: population size must be at least 2 (got "
                             + std::to_string(m_options.populationSize) + ")");
    }

    /// Genomes for generation 0, handed out first (before random samples), in order. Duplicates
    /// are skipped, and so are invalid ones unless requireValid is false (reference networks
    /// outside the space, e.g. braggnn's four-layer head in the NAC space: they compete and
    /// breed, and their children are checked as usual). Returns how many were accepted. Call
    /// before the first ask.
    std::size_t seed(const std::vector<G> &genomes, bool requireValid = true)
    {
        std::size_t accepted = 0;
        for (const G &g : genomes) {
            if (requireValid && !m_problem.valid(g))
                continue;
            const std::string k = m_problem.key(g);
            if (isKnown(k))
                continue;
            m_known.insert(k);
            m_seeds.push_back(g);
            ++accepted;
        }
        return accepted;
    }

    std::vector<G> ask(std::size_t n)
    {
        std::vector<G> out;
        while (out.size() < n && !m_exhausted) {
            if (m_handedOut < m_options.populationSize) {
                G g;
                if (!produce(g)) {
                    m_exhausted = true;
                    break;
                }
                const std::string k = m_problem.key(g);
                m_known.insert(k);
                m_pending[k] = m_generation;
                ++m_handedOut;
                out.push_back(std::move(g));
            } else if (pendingIn(m_generation) == 0) {
                advance();
            } else {
                break;
            }
        }
        return out;
    }

    /// Records a result of a genome this optimiser handed out. Throws Error for an unknown
    /// genome or one already told.
    void tell(const G &genome, const Objectives &objectives, int fidelity = 0)
    {
        const std::string k = m_problem.key(genome);
        auto it = m_pending.find(k);
        if (it == m_pending.end())
            throw Error("nsga2: tell() for a genome that was not asked or was already told");
        if (!m_results.empty() && m_results.front().objectives.size() != objectives.size())
            throw Error("nsga2: tell() with " + std::to_string(objectives.size())
                        + " objectives, earlier results had " + std::to_string(m_results.front().objectives.size()));
        for (double v : objectives)
            if (!std::isfinite(v))
                throw Error("nsga2: tell() with a non-finite objective (use tellFailed for a failed trial)");
        Individual ind{genome, k, objectives, fidelity, it->second, 0, 0};
        m_pending.erase(it);
        m_results.push_back(ind);
        m_generationResults[ind.generation].push_back(std::move(ind));
    }

    /// The trial of this genome failed: it leaves the generation without a result.
    void tellFailed(const G &genome)
    {
        const std::string k = m_problem.key(genome);
        if (m_pending.erase(k) == 0)
            throw Error("nsga2: tellFailed() for a genome that was not asked or was already told");
    }

    /// A result from an earlier run (resume): counts as handed out and told in `generation`.
    /// Restore every stored result, in trial order, before the first ask.
    void restore(const G &genome, const Objectives &objectives, int fidelity, int generation)
    {
        const std::string k = m_problem.key(genome);
        m_known.insert(k);
        Individual ind{genome, k, objectives, fidelity, generation, 0, 0};
        m_results.push_back(ind);
        m_generationResults[generation].push_back(std::move(ind));
        while (m_generation < generation)
            advance();
        if (generation == m_generation)
            ++m_handedOut;
    }

    /// A genome of an earlier run that was handed out but has no result (requeued after a
    /// crash): pending again in `generation`, so its later tell() or tellFailed() is accepted.
    /// Call after the restore() calls, before the first ask. After a resume the random stream
    /// differs from an uninterrupted run (determinism holds per process, not across resumes).
    void restorePending(const G &genome, int generation)
    {
        const std::string k = m_problem.key(genome);
        m_known.insert(k);
        while (m_generation < generation)
            advance();
        m_pending[k] = generation;
        if (generation == m_generation)
            ++m_handedOut;
    }

    /// The generation a handed-out, not yet told genome belongs to (store it with the trial for
    /// restore()); -1 when it is not pending. One ask() can span two generations.
    int pendingGeneration(const G &genome)
    {
        auto it = m_pending.find(m_problem.key(genome));
        return it == m_pending.end() ? -1 : it->second;
    }

    int generation() const { return m_generation; }
    std::size_t pending() const { return m_pending.size(); }
    bool exhausted() const { return m_exhausted; }
    /// The current parents (the survivors of the last completed generation), with rank/crowding.
    const std::vector<Individual> &parents() const { return m_parents; }
    /// Every told result, in the order told.
    const std::vector<Individual> &results() const { return m_results; }

private:
    bool isKnown(const std::string &k) const { return m_known.count(k) || (m_seen && m_seen(k)); }

    std::size_t pendingIn(int generation) const
    {
        std::size_t n = 0;
        for (const auto &p : m_pending)
            n += p.second == generation;
        return n;
    }

    bool acceptable(const G &g)
    {
        return m_problem.valid(g) && !isKnown(m_problem.key(g));
    }

    bool produce(G &out)
    {
        if (m_generation == 0 || m_parents.empty()) {
            while (m_nextSeed < m_seeds.size()) {
                const G &g = m_seeds[m_nextSeed++];
                out = g;
                return true;
            }
        } else {
            for (int attempt = 0; attempt < m_options.maxRedraws; ++attempt) {
                const Individual &a = tournament();
                const Individual &b = tournament();
                G child = m_rng.chance(m_options.crossoverProbability)
                    ? m_problem.crossover(a.genome, b.genome, m_rng)
                    : a.genome;
                m_problem.mutate(child, m_rng);
                if (acceptable(child)) {
                    out = std::move(child);
                    return true;
                }
            }
        }
        for (int attempt = 0; attempt < std::max(m_options.maxRedraws, 1) * 5; ++attempt) {
            G g = m_problem.sample(m_rng);
            if (acceptable(g)) {
                out = std::move(g);
                return true;
            }
        }
        return false;
    }

    const Individual &tournament()
    {
        const Individual &a = m_parents[m_rng.below(m_parents.size())];
        const Individual &b = m_parents[m_rng.below(m_parents.size())];
        if (a.rank != b.rank)
            return a.rank < b.rank ? a : b;
        if (m_options.crowding && a.crowding != b.crowding)
            return a.crowding > b.crowding ? a : b;
        return m_rng.chance(0.5) ? a : b;
    }

    void advance()
    {
        std::vector<Individual> pool = m_parents;
        for (auto &ind : m_generationResults[m_generation])
            pool.push_back(ind);
        m_parents = survive(std::move(pool));
        ++m_generation;
        m_handedOut = 0;
    }

    std::vector<Individual> survive(std::vector<Individual> pool)
    {
        const std::size_t mu = std::size_t(m_options.populationSize);
        // Fidelity levels, highest first; within each, non-dominated fronts.
        std::map<int, std::vector<std::size_t>, std::greater<int>> byFidelity;
        for (std::size_t i = 0; i < pool.size(); ++i)
            byFidelity[pool[i].fidelity].push_back(i);
        std::vector<Individual> survivors;
        int rank = 0;
        for (const auto &[fid, members] : byFidelity) {
            (void)fid;
            std::vector<Objectives> pts;
            for (std::size_t i : members)
                pts.push_back(pool[i].objectives);
            for (const auto &front : nonDominatedSort(pts)) {
                const auto dist = crowdingDistance(pts, front);
                std::vector<std::size_t> order(front.size());
                std::iota(order.begin(), order.end(), std::size_t(0));
                if (m_options.crowding) {
                    std::stable_sort(order.begin(), order.end(),
                                     [&](std::size_t x, std::size_t y) { return dist[x] > dist[y]; });
                } else {
                    for (std::size_t i = order.size(); i > 1; --i)
                        std::swap(order[i - 1], order[m_rng.below(i)]);
                }
                for (std::size_t o : order) {
                    if (survivors.size() >= mu)
                        break;
                    Individual ind = pool[members[front[o]]];
                    ind.rank = rank;
                    ind.crowding = m_options.crowding ? dist[o] : 0;
                    survivors.push_back(std::move(ind));
                }
                ++rank;
                if (survivors.size() >= mu)
                    return survivors;
            }
        }
        return survivors;
    }

    Nsga2Problem<G> &m_problem;
    Nsga2Options m_options;
    SearchRandom m_rng;
    std::function<bool(const std::string &)> m_seen;
    std::set<std::string> m_known;
    std::vector<G> m_seeds;
    std::size_t m_nextSeed = 0;
    int m_generation = 0;
    int m_handedOut = 0;
    std::map<std::string, int> m_pending; // key -> generation
    std::map<int, std::vector<Individual>> m_generationResults;
    std::vector<Individual> m_parents;
    std::vector<Individual> m_results;
    bool m_exhausted = false;
};

/// NSGA-II over a SearchSpace: genomes are ArchSpecs with one block per slot; valid = inside
/// the space and its constraints; key = ArchSpec::canonicalHash(). Variation as
/// SearchSpace::crossover / mutate (every gene evolves, including each block's own channels,
/// kernels, norms and activations). The space is borrowed.
class ArchProblem : public Nsga2Problem<ArchSpec> {
public:
    explicit ArchProblem(const SearchSpace &space, double mutationRate = 0);
    ArchSpec sample(SearchRandom &rng) override;
    ArchSpec crossover(const ArchSpec &a, const ArchSpec &b, SearchRandom &rng) override;
    void mutate(ArchSpec &g, SearchRandom &rng) override;
    bool valid(const ArchSpec &g) override;
    std::string key(const ArchSpec &g) override;
    /// A spec (e.g. the built-in braggnn) placed into the space's slots: its non-none blocks
    /// first, then "none" blocks; the space's forceOneByOne. The result may still be outside the
    /// space (check valid()).
    ArchSpec fitToSlots(const ArchSpec &spec) const;

private:
    const SearchSpace &m_space;
    double m_rate;
};

/// Real-vector variation for benchmark problems (Deb's defaults): simulated binary crossover
/// (distribution index eta) per variable with probability 0.5, and polynomial mutation of each
/// variable with probability rate (<= 0: 1 / size), both within [lo, hi].
std::vector<double> sbxCrossover(const std::vector<double> &a, const std::vector<double> &b, double lo,
                                 double hi, SearchRandom &rng, double eta = 15);
void polynomialMutation(std::vector<double> &x, double lo, double hi, SearchRandom &rng, double rate = 0,
                        double eta = 20);

} // namespace braggnac::core
