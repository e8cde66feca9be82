// simulatePatches (simulator.h): labelled synthetic S x S patches with ground truth.
// Every patch draws from its own counter-based generator seeded with (seed, index), so the
// output depends on the seed only, never on the thread count or the chunking.
#include "core/sim/simulator.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "core/common/error.h"
#include "core/common/parallel.h"
#include "core/sim/optioncheck.h"

namespace braggnac::core {

namespace {

constexpr double kPi = 3.14159265358979323846;

std::uint64_t splitmix64(std::uint64_t &state)
{
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Per-patch generator: splitmix64 over a state derived from (seed, index). Own samplers (not
// std:: distributions) so the stream is identical with every standard library.
class PatchRng {
public:
    PatchRng(std::uint64_t seed, std::uint64_t index)
    {
        std::uint64_t s = seed ^ 0x5851F42D4C957F2Dull;
        const std::uint64_t a = splitmix64(s);
        std::uint64_t t = index + 0x2545F4914F6CDD1Dull * (a | 1);
        m_state = splitmix64(t) ^ a;
    }
    std::uint64_t next() { return splitmix64(m_state); }
    /// Uniform in [0, 1).
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    double logUniform(double lo, double hi)
    {
        return lo == hi ? lo : std::exp(uniform(std::log(lo), std::log(hi)));
    }
    /// Standard normal (Box-Muller, both values used).
    double normal()
    {
        if (m_haveSpare) {
            m_haveSpare = false;
            return m_spare;
        }
        double u1 = 0;
        while (u1 <= 0)
            u1 = uniform();
        const double u2 = uniform();
        const double rad = std::sqrt(-2.0 * std::log(u1));
        m_spare = rad * std::sin(2 * kPi * u2);
        m_haveSpare = true;
        return rad * std::cos(2 * kPi * u2);
    }
    /// Poisson: inversion by sequential search for small means, PTRS (Hoermann 1993,
    /// transformed rejection with squeeze) for lambda >= 10. Exact for both.
    std::int64_t poisson(double lambda)
    {
        if (!(lambda > 0))
            return 0;
        if (lambda < 10) {
            const double l = std::exp(-lambda);
            std::int64_t k = 0;
            double p = l, cdf = l;
            const double u = uniform();
            while (u > cdf && k < 1000) {
                ++k;
                p *= lambda / double(k);
                cdf += p;
            }
            return k;
        }
        const double slam = std::sqrt(lambda);
        const double loglam = std::log(lambda);
        const double b = 0.931 + 2.53 * slam;
        const double a = -0.059 + 0.02483 * b;
        const double invalpha = 1.1239 + 1.1328 / (b - 3.4);
        const double vr = 0.9277 - 3.6224 / (b - 2);
        for (;;) {
            const double u = uniform() - 0.5;
            const double v = uniform();
            const double us = 0.5 - std::fabs(u);
            const double kd = std::floor((2 * a / us + b) * u + lambda + 0.43);
            if (us >= 0.07 && v <= vr)
                return std::int64_t(kd);
            if (kd < 0 || (us < 0.013 && v > us))
                continue;
            const double lhs = std::log(v) + std::log(invalpha) - std::log(a / (us * us) + b);
            const double rhs = -lambda + kd * loglam - logFactorial(kd);
            if (lhs <= rhs)
                return std::int64_t(kd);
        }
    }

private:
    static double logFactorial(double k)
    {
        if (k < 16) {
            double f = 0;
            for (int i = 2; i <= int(k); ++i)
                f += std::log(double(i));
            return f;
        }
        // Stirling series; error < 1e-12 for k >= 16.
        const double x = k + 1;
        const double ix = 1 / x, ix2 = ix * ix;
        return (x - 0.5) * std::log(x) - x + 0.5 * std::log(2 * kPi)
            + ix * (1.0 / 12 - ix2 * (1.0 / 360 - ix2 * (1.0 / 1260 - ix2 / 1680)));
    }

    std::uint64_t m_state = 0;
    double m_spare = 0;
    bool m_haveSpare = false;
};

} // namespace

void PatchSimOptions::validate(const std::string &source) const
{
    sim::OptionCheck c{source};
    if (patchSize < 3 || patchSize > 255 || patchSize % 2 == 0)
        c.fail("patch_size", "must be an odd integer in 3..255, got " + std::to_string(patchSize));
    c.range("amplitude_min", amplitudeMin, "amplitude_max", amplitudeMax);
    c.range("sigma_min", sigmaMin, "sigma_max", sigmaMax);
    c.range("gamma_min", gammaMin, "gamma_max", gammaMax);
    if (!(centreJitter >= 0 && centreJitter <= patchSize / 2))
        c.fail("centre_jitter", "must be in [0, patch_size / 2 = " + std::to_string(patchSize / 2)
                                    + "], got " + sim::numberText(centreJitter));
    c.fraction("neighbour_fraction", neighbourFraction);
    c.atLeastZero("background", background);
    c.atLeastZero("read_noise", readNoise);
    c.range("neighbour_distance_min", neighbourDistanceMin, "neighbour_distance_max",
            neighbourDistanceMax);
}

PatchSimOptions PatchSimOptions::easy()
{
    return PatchSimOptions{};
}

PatchSimOptions PatchSimOptions::realistic()
{
    PatchSimOptions o;
    o.amplitudeMin = 30;
    o.amplitudeMax = 20000;
    o.sigmaMin = o.gammaMin = 0.6;
    o.sigmaMax = o.gammaMax = 2.2;
    o.centreJitter = 1.5;
    o.neighbourFraction = 0.15;
    o.neighbourDistanceMin = 4.5;
    o.neighbourDistanceMax = 7;
    o.background = 20; // x uniform(0.5, 1.5): 10-30 counts
    o.readNoise = 3;
    o.pixelIntegrated = true;
    return o;
}

PatchDataset simulatePatches(std::size_t n, const PatchSimOptions &options, const Monitor &monitor)
{
    options.validate();
    if (n > (std::size_t(1) << 40))
        throw InputError("simulate patches: count: must be <= 2^40, got " + std::to_string(n));
    sim::OptionCheck{"simulate patches"}.fitsMemory(
        "count", (long double)n * ((long double)options.patchSize * options.patchSize + 2) * sizeof(float),
        std::to_string(n) + " patches");
    const int s = options.patchSize;
    const std::size_t pix = std::size_t(s) * s;
    const double mid = double(s / 2);

    PatchDataset data;
    data.patchSize = s;
    data.labelSource = "simulation";
    data.patches.assign(n * pix, 0.0f);
    data.centers.assign(n * 2, 0.0f);
    data.split.resize(n);
    std::vector<float> truth(n * PseudoVoigt::kParameterCount);
    std::vector<float> neighbourTruth(n * PseudoVoigt::kParameterCount, 0.0f);
    std::vector<float> amplitude(n);
    std::vector<std::uint8_t> neighbour(n, 0);

    std::atomic<std::size_t> done{0};
    const std::size_t grain = 512;
    parallelChunks(
        n, options.threads, grain,
        [&](std::size_t begin, std::size_t end, int) {
            std::vector<float> expected(pix);
            for (std::size_t i = begin; i < end; ++i) {
                PatchRng rng(options.seed, i);
                PseudoVoigt p;
                p.row = mid + rng.uniform(-options.centreJitter, options.centreJitter);
                p.col = mid + rng.uniform(-options.centreJitter, options.centreJitter);
                p.amplitude = rng.logUniform(options.amplitudeMin, options.amplitudeMax);
                p.background = options.background * rng.uniform(0.5, 1.5);
                p.sigmaU = rng.uniform(options.sigmaMin, options.sigmaMax);
                p.sigmaV = rng.uniform(options.sigmaMin, options.sigmaMax);
                p.gammaU = rng.uniform(options.gammaMin, options.gammaMax);
                p.gammaV = rng.uniform(options.gammaMin, options.gammaMax);
                p.eta = rng.uniform();
                p.theta = rng.uniform(-kPi / 2, kPi / 2);
                const bool hasNeighbour = rng.uniform() < options.neighbourFraction;
                if (options.pixelIntegrated)
                    p.renderIntegrated(expected.data(), s, s);
                else
                    p.render(expected.data(), s, s);

                if (hasNeighbour) {
                    // A second peak (3-7 px by default) away in a random direction, as bright as 0.25x-1x
                    // the main one (the patch is centred on the main peak's maximum, so its
                    // neighbour is not the brighter one), partly inside the patch.
                    PseudoVoigt q;
                    const double d = rng.uniform(options.neighbourDistanceMin, options.neighbourDistanceMax);
                    const double phi = rng.uniform(0, 2 * kPi);
                    q.row = p.row + d * std::sin(phi);
                    q.col = p.col + d * std::cos(phi);
                    q.amplitude = p.amplitude * rng.logUniform(0.25, 1.0);
                    q.background = 0;
                    q.sigmaU = rng.uniform(options.sigmaMin, options.sigmaMax);
                    q.sigmaV = rng.uniform(options.sigmaMin, options.sigmaMax);
                    q.gammaU = rng.uniform(options.gammaMin, options.gammaMax);
                    q.gammaV = rng.uniform(options.gammaMin, options.gammaMax);
                    q.eta = rng.uniform();
                    q.theta = rng.uniform(-kPi / 2, kPi / 2);
                    if (options.pixelIntegrated)
                        q.renderIntegrated(expected.data(), s, s, 0, 0, true);
                    else
                        q.render(expected.data(), s, s, 0, 0, true);
                    const auto qa = q.toArray();
                    std::copy(qa.begin(), qa.end(),
                              neighbourTruth.begin() + i * PseudoVoigt::kParameterCount);
                    neighbour[i] = 1;
                }

                float *out = data.patches.data() + i * pix;
                for (std::size_t k = 0; k < pix; ++k) {
                    double v = expected[k];
                    if (options.poisson)
                        v = double(rng.poisson(v));
                    if (options.readNoise > 0)
                        v += options.readNoise * rng.normal();
                    out[k] = float(v);
                }
                data.centers[2 * i] = float(p.row);
                data.centers[2 * i + 1] = float(p.col);
                const auto pa = p.toArray();
                std::copy(pa.begin(), pa.end(), truth.begin() + i * PseudoVoigt::kParameterCount);
                amplitude[i] = float(p.amplitude);
                const std::size_t decile = i % 10;
                data.split[i] = std::uint8_t(decile < 8 ? Split::Train
                                                        : decile == 8 ? Split::Validation
                                                                      : Split::Test);
            }
            const std::size_t total = done.fetch_add(end - begin) + (end - begin);
            monitor.report(double(total) / double(n),
                           std::to_string(total) + "/" + std::to_string(n) + " patches");
        },
        [&] { return monitor.cancelled(); });
    monitor.check();

    const auto nn = static_cast<unsigned long long>(n);
    const auto np = static_cast<unsigned long long>(PseudoVoigt::kParameterCount);
    data.extraFloat["/truth/params"] = {{nn, np}, std::move(truth)};
    data.extraFloat["/truth/neighbour_params"] = {{nn, np}, std::move(neighbourTruth)};
    data.extraFloat["/truth/amplitude"] = {{nn}, std::move(amplitude)};
    data.extraFlags["/flags/neighbour"] = std::move(neighbour);
    return data;
}

} // namespace braggnac::core
