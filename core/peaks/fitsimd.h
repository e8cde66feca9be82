#pragma once
// Internal to the fitter (fitter.cpp): fixed-width double vectors (GCC/Clang vector extensions)
// (double: 2, 4 or 8 lanes; float: 4, 8 or 16) for the SSE2, AVX2 and AVX-512 builds of the
// kernels, aligned storage shared by all widths, and exp()s that vectorise (glibc's scalar exp
// does not).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

// Every function taking or returning a vector is always inlined into a kernel compiled for one
// instruction set, so the vector calling convention (which differs between them) never matters.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace braggnac::core::fit {

#define BRAGGNAC_FIT_INLINE inline __attribute__((always_inline))

/// The widest vector (16 floats or 8 doubles, 64 bytes): storage is padded to a multiple of
/// kPadLanes elements and aligned for it.
constexpr int kMaxLanes = 8;
constexpr int kPadLanes = 16;
constexpr std::size_t kVecAlign = 64;

template <typename T, int N>
struct VecOf;
template <int N>
struct VecOf<double, N> {
    typedef double D __attribute__((vector_size(N * sizeof(double))));
    typedef long long L __attribute__((vector_size(N * sizeof(long long))));
};
template <int N>
struct VecOf<float, N> {
    typedef float D __attribute__((vector_size(N * sizeof(float))));
    typedef int L __attribute__((vector_size(N * sizeof(int))));
};
template <int N>
using Vec = VecOf<double, N>;

/// A zero-initialised, aligned array of T, viewed by the kernels as N-lane vectors.
template <typename T>
class AlignedArray {
public:
    AlignedArray() = default;
    explicit AlignedArray(std::size_t n)
        : m_data(static_cast<T *>(::operator new(n * sizeof(T), std::align_val_t(kVecAlign))))
    {
        std::fill(m_data.get(), m_data.get() + n, T(0));
    }
    T *data() { return m_data.get(); }
    const T *data() const { return m_data.get(); }
    T &operator[](std::size_t i) { return m_data.get()[i]; }
    T operator[](std::size_t i) const { return m_data.get()[i]; }
    template <int N>
    typename VecOf<T, N>::D *vec()
    {
        return reinterpret_cast<typename VecOf<T, N>::D *>(m_data.get());
    }
    template <int N>
    const typename VecOf<T, N>::D *vec() const
    {
        return reinterpret_cast<const typename VecOf<T, N>::D *>(m_data.get());
    }

private:
    struct Free {
        void operator()(T *p) const { ::operator delete(p, std::align_val_t(kVecAlign)); }
    };
    std::unique_ptr<T[], Free> m_data;
};
using DoubleArray = AlignedArray<double>;
using FloatArray = AlignedArray<float>;

template <int N>
BRAGGNAC_FIT_INLINE typename Vec<N>::D broadcast(double x)
{
    return typename Vec<N>::D{} + x;
}

/// Sum of the lanes of any vector, in double: halves are added in the vector's own type
/// (a shuffle and an add per halving) down to 2 lanes, which are summed in double.
template <typename V>
BRAGGNAC_FIT_INLINE double horizontalSum(const V &v)
{
    using T = std::remove_cv_t<std::remove_reference_t<decltype(v[0])>>;
    constexpr int n = int(sizeof(V) / sizeof(T));
    if constexpr (n <= 2) {
        double s = 0;
        for (int i = 0; i < n; ++i)
            s += v[i];
        return s;
    } else {
        typedef T H __attribute__((vector_size(sizeof(V) / 2)));
        H lo, hi;
        std::memcpy(&lo, &v, sizeof(H));
        std::memcpy(&hi, reinterpret_cast<const char *>(&v) + sizeof(H), sizeof(H));
        return horizontalSum(H(lo + hi));
    }
}

/// Transposed reduction of N float vectors of N lanes each: lane i of the result is the sum of
// the lanes of x[i]. Each level folds pairs of vectors (the lower and upper halves of every block
// of B lanes, two-source shuffles with constant masks), so N sums cost N - 1 additions and
// 2 (N - 1) shuffles instead of log2(N) shuffles and additions each.
template <int N, int B, std::size_t... I>
BRAGGNAC_FIT_INLINE typename VecOf<float, N>::D foldBlocks(const typename VecOf<float, N>::D &x,
                                                          const typename VecOf<float, N>::D &y,
                                                          std::index_sequence<I...>)
{
    using M = typename VecOf<float, N>::L;
    constexpr int h = B / 2, blocks = N / B;
    // Output lane i: block j = i / h of size h, lane t = i % h; blocks < `blocks` come from x.
    constexpr auto lo = [](int i) {
        const int j = i / h, t = i % h;
        return (j % blocks) * B + t + (j >= blocks ? N : 0);
    };
    const M mlo = {lo(int(I))...};
    const M mhi = {(lo(int(I)) + h)...};
    return __builtin_shuffle(x, y, mlo) + __builtin_shuffle(x, y, mhi);
}

template <int N, int B>
BRAGGNAC_FIT_INLINE void foldLevel(typename VecOf<float, N>::D *x, int count)
{
    for (int i = 0; i < count / 2; ++i)
        x[i] = foldBlocks<N, B>(x[2 * i], x[2 * i + 1], std::make_index_sequence<N>{});
    if constexpr (B > 2)
        foldLevel<N, B / 2>(x, count / 2);
}

/// Sums of each of N vectors (overwritten): lane i of the result is the sum of x[i].
template <int N>
BRAGGNAC_FIT_INLINE typename VecOf<float, N>::D transposedSums(typename VecOf<float, N>::D *x)
{
    if constexpr (N >= 2)
        foldLevel<N, N>(x, N);
    return x[0];
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

/// Single-precision exp(x) for x <= 0 (x < -87 gives ~1.6e-38, not 0): Cody-Waite reduction
/// and a degree-7 Taylor polynomial on |r| <= ln2/2 (relative error < 2e-7, float rounding).
template <int N>
BRAGGNAC_FIT_INLINE typename VecOf<float, N>::D
expNonPositiveF(const typename VecOf<float, N>::D &arg)
{
    using D = typename VecOf<float, N>::D;
    using L = typename VecOf<float, N>::L;
    const D lo = D{} - 87.0f;
    const D x = arg < lo ? lo : arg;
    const float magic = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer
    const D t = x * 1.44269504f + magic;
    const D n = t - magic;
    const D r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    D p = D{} + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const L k = (L)t - (L)(D{} + magic);
    const L bits = (k + 127) << 23;
    return p * (D)bits;
}

} // namespace braggnac::core::fit
