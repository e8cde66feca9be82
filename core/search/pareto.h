#pragma once
// Multi-objective building blocks, all objectives MINIMISED: Pareto dominance, fast
// non-dominated sorting (Deb et al. 2002), crowding distance, and the exact hypervolume against
// a reference point (any dimension; O(n log n) in 2-D, O(n^2 log n) in 3-D by slicing).
// Pure functions, thread-safe. Throws InputError when points have different dimensions or a
// value is not finite (a failed trial must not be scored).
#include <cstddef>
#include <vector>

namespace braggnac::core {

using Objectives = std::vector<double>;

/// a dominates b: no worse in every objective and strictly better in at least one.
bool dominates(const Objectives &a, const Objectives &b);

/// Fronts of indices into points: front 0 is non-dominated, front 1 is non-dominated once front
/// 0 is removed, ... Within a front, indices are ascending. Equal points share a front.
std::vector<std::vector<std::size_t>> nonDominatedSort(const std::vector<Objectives> &points);

/// Indices of the non-dominated points (front 0), ascending.
std::vector<std::size_t> paretoFront(const std::vector<Objectives> &points);

/// Crowding distance of each member of front (same order as front): per objective, the front is
/// sorted and each interior member gets (next - previous) / (max - min); the two extremes of
/// every objective get +infinity. Fronts of one or two members are all infinite.
std::vector<double> crowdingDistance(const std::vector<Objectives> &points,
                                     const std::vector<std::size_t> &front);

/// Volume of the region dominated by points and bounded by reference (points not strictly
/// better than the reference in every objective contribute nothing). Exact.
double hypervolume(const std::vector<Objectives> &points, const Objectives &reference);

} // namespace braggnac::core
