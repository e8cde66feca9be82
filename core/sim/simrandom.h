#pragma once
// Internal to core/sim: seeded random streams with our own samplers (std:: distributions differ
// between standard library versions, so they would break "same seed, same output").
//   uniform: 53 random bits; normal: Box-Muller (both values used); Poisson: Knuth below
//   lambda 10, Hoermann's PTRS above (exact for both).
#include <cmath>
#include <cstdint>
#include <random>

namespace braggnac::core::sim {

constexpr double kPi = 3.14159265358979323846;

inline std::uint64_t splitmix64(std::uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/// Seed of stream `stream` of item `index` (a frame, a patch) of a run seeded with `seed`.
inline std::uint64_t streamSeed(std::uint64_t seed, std::uint64_t index, std::uint64_t stream)
{
    return splitmix64(splitmix64(splitmix64(seed) ^ index) ^ stream);
}

/// std::mt19937_64 with portable samplers. Not thread-safe: one per stream.
class Random {
public:
    explicit Random(std::uint64_t seed) : m_engine(seed) {}

    /// Uniform in [0, 1).
    double uniform() { return double(m_engine() >> 11) * 0x1.0p-53; }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

    double normal()
    {
        if (m_haveSpare) {
            m_haveSpare = false;
            return m_spare;
        }
        const double u1 = 1.0 - uniform(); // (0, 1]
        const double u2 = uniform();
        const double r = std::sqrt(-2.0 * std::log(u1));
        m_spare = r * std::sin(2 * kPi * u2);
        m_haveSpare = true;
        return r * std::cos(2 * kPi * u2);
    }

    double poisson(double lambda)
    {
        if (!(lambda > 0))
            return 0;
        if (lambda < 10) { // Knuth: multiply uniforms until the product drops below exp(-lambda)
            const double limit = std::exp(-lambda);
            double prod = uniform();
            int k = 0;
            while (prod > limit) {
                ++k;
                prod *= uniform();
            }
            return k;
        }
        // PTRS: W. Hoermann, "The transformed rejection method for generating Poisson random
        // variables", Insurance: Mathematics and Economics 12 (1993).
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
            const double k = std::floor((2 * a / us + b) * u + lambda + 0.43);
            if (us >= 0.07 && v <= vr)
                return k;
            if (k < 0 || (us < 0.013 && v > us))
                continue;
            if (std::log(v) + std::log(invalpha) - std::log(a / (us * us) + b)
                <= -lambda + k * loglam - std::lgamma(k + 1))
                return k;
        }
    }

private:
    std::mt19937_64 m_engine;
    double m_spare = 0;
    bool m_haveSpare = false;
};

} // namespace braggnac::core::sim
