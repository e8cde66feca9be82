#pragma once
// Seeded random stream for the search algorithms, with our own samplers (std:: distributions
// differ between standard library versions, so they would break "same seed, same search").
// splitmix64 state: copyable, 8 bytes, identical output on every platform. Not thread-safe: one
// per optimiser.
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace braggnac::core {

class SearchRandom {
public:
    explicit SearchRandom(std::uint64_t seed = 0) : m_state(seed) {}

    std::uint64_t next()
    {
        std::uint64_t x = (m_state += 0x9E3779B97F4A7C15ULL);
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
        return x ^ (x >> 31);
    }
    /// Uniform in [0, 1), 53 random bits.
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    /// Uniform integer in [0, n) (n > 0), without modulo bias.
    std::size_t below(std::size_t n)
    {
        const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        std::uint64_t x;
        do
            x = next();
        while (x >= limit);
        return std::size_t(x % n);
    }
    bool chance(double p) { return uniform() < p; }
    /// Standard normal (Box-Muller, one value per call).
    double normal()
    {
        const double u1 = 1.0 - uniform();
        const double u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
    }
    std::uint64_t state() const { return m_state; }

private:
    std::uint64_t m_state;
};

} // namespace braggnac::core
