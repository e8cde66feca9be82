#include "core/search/pareto.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "core/common/error.h"

namespace braggnac::core {

namespace {

void checkPoints(const std::vector<Objectives> &points, std::size_t dim, const char *what)
{
    for (std::size_t i = 0; i < points.size(); ++i) {
        if (points[i].size() != dim)
            throw InputError(std::string(what) + ": point " + std::to_string(i) + " has "
                             + std::to_string(points[i].size()) + " objectives, expected "
                             + std::to_string(dim));
        for (double v : points[i])
            if (!std::isfinite(v))
                throw InputError(std::string(what) + ": point " + std::to_string(i)
                                 + " has a non-finite objective");
    }
}

// Points are all strictly inside the reference box; dim >= 1.
double hvRecursive(std::vector<Objectives> pts, const Objectives &ref, std::size_t dim)
{
    if (pts.empty())
        return 0;
    if (dim == 1) {
        double best = ref[0];
        for (const auto &p : pts)
            best = std::min(best, p[0]);
        return ref[0] - best;
    }
    if (dim == 2) {
        std::sort(pts.begin(), pts.end(), [](const Objectives &a, const Objectives &b) {
            return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1]);
        });
        double volume = 0, lastY = ref[1];
        for (const auto &p : pts) {
            if (p[1] < lastY) {
                volume += (ref[0] - p[0]) * (lastY - p[1]);
                lastY = p[1];
            }
        }
        return volume;
    }
    // Slice along the last objective: between consecutive values, the (dim-1)-volume of the
    // points at or below the slice.
    const std::size_t k = dim - 1;
    std::sort(pts.begin(), pts.end(), [k](const Objectives &a, const Objectives &b) { return a[k] < b[k]; });
    double volume = 0;
    std::vector<Objectives> active;
    for (std::size_t i = 0; i < pts.size(); ++i) {
        active.push_back(pts[i]);
        const double top = i + 1 < pts.size() ? pts[i + 1][k] : ref[k];
        const double thickness = top - pts[i][k];
        if (thickness > 0)
            volume += thickness * hvRecursive(active, ref, k);
    }
    return volume;
}

} // namespace

bool dominates(const Objectives &a, const Objectives &b)
{
    bool strictly = false;
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        if (a[i] > b[i])
            return false;
        if (a[i] < b[i])
            strictly = true;
    }
    return strictly;
}

std::vector<std::vector<std::size_t>> nonDominatedSort(const std::vector<Objectives> &points)
{
    std::vector<std::vector<std::size_t>> fronts;
    if (points.empty())
        return fronts;
    checkPoints(points, points[0].size(), "non-dominated sort");
    const std::size_t n = points.size();
    std::vector<std::vector<std::size_t>> dominated(n);
    std::vector<std::size_t> count(n, 0);
    std::vector<std::size_t> current;
    for (std::size_t p = 0; p < n; ++p) {
        for (std::size_t q = p + 1; q < n; ++q) {
            if (dominates(points[p], points[q])) {
                dominated[p].push_back(q);
                ++count[q];
            } else if (dominates(points[q], points[p])) {
                dominated[q].push_back(p);
                ++count[p];
            }
        }
    }
    for (std::size_t p = 0; p < n; ++p)
        if (count[p] == 0)
            current.push_back(p);
    while (!current.empty()) {
        fronts.push_back(current);
        std::vector<std::size_t> next;
        for (std::size_t p : current)
            for (std::size_t q : dominated[p])
                if (--count[q] == 0)
                    next.push_back(q);
        std::sort(next.begin(), next.end());
        current = std::move(next);
    }
    return fronts;
}

std::vector<std::size_t> paretoFront(const std::vector<Objectives> &points)
{
    auto fronts = nonDominatedSort(points);
    return fronts.empty() ? std::vector<std::size_t>{} : fronts[0];
}

std::vector<double> crowdingDistance(const std::vector<Objectives> &points,
                                     const std::vector<std::size_t> &front)
{
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<double> distance(front.size(), 0.0);
    if (front.size() <= 2) {
        std::fill(distance.begin(), distance.end(), inf);
        return distance;
    }
    const std::size_t dim = points[front[0]].size();
    std::vector<std::size_t> order(front.size());
    for (std::size_t m = 0; m < dim; ++m) {
        std::iota(order.begin(), order.end(), std::size_t(0));
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            return points[front[a]][m] < points[front[b]][m];
        });
        const double lo = points[front[order.front()]][m];
        const double hi = points[front[order.back()]][m];
        distance[order.front()] = inf;
        distance[order.back()] = inf;
        if (!(hi > lo))
            continue;
        for (std::size_t i = 1; i + 1 < order.size(); ++i)
            distance[order[i]] += (points[front[order[i + 1]]][m] - points[front[order[i - 1]]][m]) / (hi - lo);
    }
    return distance;
}

double hypervolume(const std::vector<Objectives> &points, const Objectives &reference)
{
    if (reference.empty())
        throw InputError("hypervolume: empty reference point");
    checkPoints(points, reference.size(), "hypervolume");
    checkPoints({reference}, reference.size(), "hypervolume reference");
    std::vector<Objectives> inside;
    for (const auto &p : points) {
        bool ok = true;
        for (std::size_t i = 0; i < p.size(); ++i)
            ok = ok && p[i] < reference[i];
        if (ok)
            inside.push_back(p);
    }
    // Only the non-dominated ones matter; dropping the rest keeps the slicing cheap.
    std::vector<Objectives> front;
    for (std::size_t i : paretoFront(inside))
        front.push_back(inside[i]);
    return hvRecursive(std::move(front), reference, reference.size());
}

} // namespace braggnac::core
