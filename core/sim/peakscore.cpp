#include "core/sim/peakscore.h"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace braggnac::core {

namespace {

// Supports closer than this cannot be told apart by 8-connectivity (pixels of both touch).
constexpr double kGap = 2.0;

double supportRadius(const PseudoVoigt &p, double renderWidths)
{
    return renderWidths * std::max({p.sigmaU, p.sigmaV, p.gammaU, p.gammaV});
}

/// The k-th brightest (1-based) noiseless model pixel of `p` inside a frame of `size` pixels,
/// and the brightest.
std::pair<double, double> modelPixels(const PseudoVoigt &p, int k, int rows, int cols, double radius)
{
    const int half = std::max(3, int(std::ceil(std::sqrt(double(k)))) + 1);
    const int r0 = int(std::lround(p.row)), c0 = int(std::lround(p.col));
    std::vector<double> values;
    for (int r = std::max(0, r0 - half); r <= std::min(rows - 1, r0 + half); ++r)
        for (int c = std::max(0, c0 - half); c <= std::min(cols - 1, c0 + half); ++c)
            if (std::hypot(r - p.row, c - p.col) <= radius)
                values.push_back(p.evaluate(r, c));
    if (values.empty())
        return {0, 0};
    std::sort(values.begin(), values.end(), std::greater<double>());
    return {values[std::min<std::size_t>(std::size_t(k), values.size()) - 1], values.front()};
}

} // namespace

PeakScore scorePeaks(const SimulatedFrames &sim, const FrameSimOptions &simOptions,
                     const std::vector<Peak> &found, const FinderOptions &finder,
                     const PeakScoreOptions &options)
{
    PeakScore score;
    score.truth.resize(sim.truth.size());
    score.found.resize(found.size());
    const int frames = int(sim.frames.size());
    std::vector<std::vector<int>> truthOf(frames), foundOf(frames);
    for (std::size_t i = 0; i < sim.truth.size(); ++i)
        if (sim.truth[i].frame >= 0 && sim.truth[i].frame < frames)
            truthOf[sim.truth[i].frame].push_back(int(i));
    for (std::size_t j = 0; j < found.size(); ++j)
        if (found[j].frame >= 0 && found[j].frame < frames)
            foundOf[found[j].frame].push_back(int(j));

    for (int f = 0; f < frames; ++f) {
        const Frame &frame = sim.frames[f];
        const double sigma = frameThreshold(frame, finder).sigma;
        const auto &ti = truthOf[f];
        const auto &fj = foundOf[f];
        std::vector<double> radius(ti.size());
        for (std::size_t a = 0; a < ti.size(); ++a)
            radius[a] = supportRadius(sim.truth[ti[a]].params, simOptions.renderWidths);

        for (std::size_t a = 0; a < ti.size(); ++a) {
            const PseudoVoigt &p = sim.truth[ti[a]].params;
            TruthScore &t = score.truth[ti[a]];
            t.isolated = p.row - radius[a] >= 0 && p.col - radius[a] >= 0
                && p.row + radius[a] <= frame.rows - 1 && p.col + radius[a] <= frame.cols - 1;
            for (std::size_t b = 0; b < ti.size() && t.isolated; ++b) {
                const PseudoVoigt &q = sim.truth[ti[b]].params;
                if (b != a && std::hypot(p.row - q.row, p.col - q.col) <= radius[a] + radius[b] + kGap)
                    t.isolated = false;
            }
            const auto [kth, top] = modelPixels(p, std::max(1, finder.minPixels), frame.rows,
                                                frame.cols, radius[a]);
            t.bright = kth > options.brightSigma * sigma;
            t.snr = sigma > 0 ? top / sigma : 0;
        }

        // One-to-one matching, closest pairs first.
        std::vector<std::tuple<double, int, int>> pairs;
        for (int j : fj)
            for (int i : ti) {
                const double d = std::hypot(found[j].centroidRow - sim.truth[i].params.row,
                                            found[j].centroidCol - sim.truth[i].params.col);
                if (d <= options.matchRadius)
                    pairs.emplace_back(d, i, j);
            }
        std::sort(pairs.begin(), pairs.end());
        for (const auto &[d, i, j] : pairs) {
            if (score.truth[i].matched >= 0 || score.found[j].matched >= 0)
                continue;
            score.truth[i].matched = j;
            score.found[j].matched = i;
        }

        for (int j : fj) {
            FoundScore &s = score.found[j];
            s.bright = found[j].maxValue - found[j].background > options.brightSigma * sigma;
            int supports = 0;
            bool inIsolated = false;
            for (std::size_t a = 0; a < ti.size(); ++a) {
                const PseudoVoigt &p = sim.truth[ti[a]].params;
                if (std::hypot(found[j].row - p.row, found[j].col - p.col) <= radius[a]) {
                    ++supports;
                    inIsolated |= score.truth[ti[a]].isolated;
                }
            }
            s.counted = s.bright && (supports == 0 || inIsolated);
        }
    }
    for (const TruthScore &t : score.truth)
        if (t.isolated && t.bright) {
            ++score.isolatedBright;
            score.isolatedBrightMatched += t.matched >= 0;
        }
    for (const FoundScore &s : score.found)
        if (s.counted) {
            ++score.precisionCounted;
            score.precisionMatched += s.matched >= 0;
        }
    return score;
}

} // namespace braggnac::core
