#pragma once
// Internal to the fitter (fitter.cpp): fixed-width double vectors (GCC/Clang vector extensions)
// of 2, 4 or 8 lanes for the SSE2, AVX2 and AVX-512 builds of the kernels, aligned storage
// shared by all widths, and an exp() that vectorises (glibc's scalar exp does not).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

// Every function taking or returning a vector is always inlined into a kernel compiled for one
// instruction set, so the vector calling convention (which differs between them) never matters.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace braggnac::core::fit {

#define BRAGGNAC_FIT_INLINE inline __attribute__((always_inline))

/// The widest vector: storage is padded and aligned for it.
constexpr int kMaxLanes = 8;
constexpr std::size_t kVecAlign = kMaxLanes * sizeof(double);

template <int N>
struct Vec {
    typedef double D __attribute__((vector_size(N * sizeof(double))));
    typedef long long L __attribute__((vector_size(N * sizeof(long long))));
};

/// A zero-initialised, aligned array of doubles, viewed by the kernels as N-lane vectors.
class DoubleArray {
public:
    DoubleArray() = default;
    explicit DoubleArray(std::size_t n)
        : m_data(static_cast<double *>(
            ::operator new(n * sizeof(double), std::align_val_t(kVecAlign))))
    {
        std::fill(m_data.get(), m_data.get() + n, 0.0);
    }
    double *data() { return m_data.get(); }
    const double *data() const { return m_data.get(); }
    double &operator[](std::size_t i) { return m_data.get()[i]; }
    double operator[](std::size_t i) const { return m_data.get()[i]; }
    template <int N>
    typename Vec<N>::D *vec()
    {
        return reinterpret_cast<typename Vec<N>::D *>(m_data.get());
    }
    template <int N>
    const typename Vec<N>::D *vec() const
    {
        return reinterpret_cast<const typename Vec<N>::D *>(m_data.get());
    }

private:
    struct Free {
        void operator()(double *p) const { ::operator delete(p, std::align_val_t(kVecAlign)); }
    };
    std::unique_ptr<double[], Free> m_data;
};

template <int N>
BRAGGNAC_FIT_INLINE typename Vec<N>::D broadcast(double x)
{
    return typename Vec<N>::D{} + x;
}

template <int N>
BRAGGNAC_FIT_INLINE double horizontalSum(const typename Vec<N>::D &v)
{
    double s = 0;
    for (int i = 0; i < N; ++i)
        s += v[i];
    return s;
}

/// exp(x) for x <= 0 (x < -700 gives ~1e-304, not 0): Cody-Waite reduction by ln 2 and a
/// degree-11 Taylor polynomial on |r| <= ln2/2 (relative error < 1e-14).
template <int N>
BRAGGNAC_FIT_INLINE typename Vec<N>::D expNonPositive(const typename Vec<N>::D &arg)
{
    using D = typename Vec<N>::D;
    using L = typename Vec<N>::L;
    const D lo = broadcast<N>(-700.0);
    const D x = arg < lo ? lo : arg;
    const double magic = 6755399441055744.0; // 1.5 * 2^52: adding it rounds to an integer
    const D t = x * 1.4426950408889634 + magic;
    const D n = t - magic;
    const D r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    D p = broadcast<N>(1.0 / 39916800.0);
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const L k = (L)t - (L)broadcast<N>(magic);
    const L bits = (k + 1023) << 52;
    return p * (D)bits;
}

} // namespace braggnac::core::fit
