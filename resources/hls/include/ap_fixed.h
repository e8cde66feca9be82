// BraggNAC's emulation of the subset of Xilinx's arbitrary-precision fixed-point types that the
// generated HLS code uses, with the same semantics bit for bit (Vitis HLS user guide UG1399,
// "Arbitrary Precision Fixed-Point Data Types"), so that the C simulation runs with plain g++.
// With Vitis installed, build the same sources against $XILINX_HLS/include instead.
//
//   ap_fixed<W, I, Q, O>   signed, W total bits (1..127), I integer bits including the sign
//                          (may be negative or larger than W); value = raw * 2^-(W - I).
//   ap_ufixed<W, I, Q, O>  unsigned; conversions and comparisons only (no arithmetic).
//   Quantisation Q, applied when a value with more fractional bits is stored:
//     AP_TRN floor; AP_TRN_ZERO toward zero; AP_RND ties toward +inf; AP_RND_ZERO ties toward
//     zero; AP_RND_MIN_INF ties toward -inf; AP_RND_INF ties away from zero; AP_RND_CONV ties
//     to even.
//   Overflow O, applied when the value does not fit: AP_WRAP keeps the low W bits (two's
//   complement); AP_SAT saturates to MIN/MAX; AP_SAT_ZERO gives 0; AP_SAT_SYM saturates to
//   -MAX/MAX. AP_WRAP_SM and N > 0 are not supported (a compile-time error).
//   Arithmetic is exact: a + b and a - b have max(F1, F2) fractional and max(I1, I2) + 1 integer
//   bits; a * b has W1 + W2 bits and I1 + I2 integer bits; -a has W + 1 bits and I + 1 integer
//   bits. Quantisation and overflow happen only when a value is stored into a type
//   (construction, assignment, compound assignment), as in Vitis HLS. Construction from a
//   double or float is exact (the double's value, then Q and O). An int operand acts as
//   ap_fixed<32, 32>. There is no arithmetic with double operands (convert explicitly), so code
//   that compiles here does not silently compute in floating point.
// Extension used by BraggNAC's own tests only (not in Xilinx's headers, never in generated
// code): ap_fixed_raw(x) returns the raw bits as a signed 128-bit integer.
#ifndef BRAGGNAC_AP_FIXED_H
#define BRAGGNAC_AP_FIXED_H

#include <cmath>
#include <cstdint>
#include <ostream>

enum ap_q_mode { AP_RND, AP_RND_ZERO, AP_RND_MIN_INF, AP_RND_INF, AP_RND_CONV, AP_TRN, AP_TRN_ZERO };
enum ap_o_mode { AP_SAT, AP_SAT_ZERO, AP_SAT_SYM, AP_WRAP, AP_WRAP_SM };

namespace ap_detail {

typedef __int128 i128;
typedef unsigned __int128 u128;

constexpr int imax(int a, int b) { return a > b ? a : b; }

inline i128 max_raw(int w, bool is_signed)
{
    return is_signed ? (i128)((((u128)1) << (w - 1)) - 1) : (i128)((((u128)1) << w) - 1);
}
inline i128 min_raw(int w, bool is_signed)
{
    return is_signed ? -(i128)(((u128)1) << (w - 1)) : 0;
}

// The low w bits of x, sign-extended (signed) or zero-extended.
inline i128 extend(u128 x, int w, bool is_signed)
{
    const u128 mask = (((u128)1) << w) - 1; // w <= 127
    x &= mask;
    if (is_signed && ((x >> (w - 1)) & 1))
        x |= ~mask;
    return (i128)x;
}

// Rounds the floor fl of a quotient up by one or not, given how its dropped fraction compares
// with one half (cmp: -1 below, 0 equal, 1 above; frac_zero when nothing was dropped).
inline i128 round_quotient(i128 fl, bool frac_zero, int cmp, bool neg, ap_q_mode q)
{
    if (frac_zero)
        return fl;
    switch (q) {
    case AP_TRN: return fl;
    case AP_TRN_ZERO: return neg ? fl + 1 : fl;
    case AP_RND: return cmp >= 0 ? fl + 1 : fl;
    case AP_RND_ZERO: return (cmp > 0 || (cmp == 0 && neg)) ? fl + 1 : fl;
    case AP_RND_MIN_INF: return cmp > 0 ? fl + 1 : fl;
    case AP_RND_INF: return (cmp > 0 || (cmp == 0 && !neg)) ? fl + 1 : fl;
    case AP_RND_CONV: return (cmp > 0 || (cmp == 0 && (fl & 1))) ? fl + 1 : fl;
    }
    return fl;
}

// raw / 2^s for s >= 1, quantised with mode q.
inline i128 shift_right(i128 raw, int s, ap_q_mode q)
{
    if (raw == 0)
        return 0;
    const bool neg = raw < 0;
    if (s >= 127) {
        // 0 < |raw| < 2^127 <= 2^s: the quotient lies in (-1, 1); its floor is -1 or 0 and the
        // dropped fraction is |raw|/2^s (positive) or 1 - |raw|/2^s (negative).
        const u128 mag = neg ? (u128)0 - (u128)raw : (u128)raw;
        int magcmp = -1; // |raw| against 2^(s-1)
        if (s == 127)
            magcmp = mag < (((u128)1) << 126) ? -1 : (mag == (((u128)1) << 126) ? 0 : 1);
        const int cmp = neg ? -magcmp : magcmp;
        return round_quotient(neg ? -1 : 0, false, cmp, neg, q);
    }
    const i128 fl = raw >> s; // arithmetic shift: floor
    const u128 rem = ((u128)raw) & ((((u128)1) << s) - 1);
    const u128 half = ((u128)1) << (s - 1);
    return round_quotient(fl, rem == 0, rem < half ? -1 : (rem == half ? 0 : 1), neg, q);
}

inline i128 overflow(bool over, u128 wrapped, int w, bool is_signed, ap_o_mode o)
{
    switch (o) {
    case AP_SAT: return over ? max_raw(w, is_signed) : min_raw(w, is_signed);
    case AP_SAT_ZERO: return 0;
    case AP_SAT_SYM: return over ? max_raw(w, is_signed) : (is_signed ? -max_raw(w, true) : 0);
    default: return extend(wrapped, w, is_signed);
    }
}

// Stores the exact value raw * 2^-from_f into a type of w bits with f fractional bits.
// Under AP_SAT_SYM a signed type's MIN is not used: it saturates to -MAX (as SystemC's
// SC_SAT_SYM does).
inline i128 store(i128 v, int w, bool is_signed, ap_o_mode o)
{
    if (o == AP_SAT_SYM && is_signed && v == min_raw(w, true))
        return -max_raw(w, true);
    return v;
}

inline i128 convert(i128 raw, int from_f, int w, int f, bool is_signed, ap_q_mode q, ap_o_mode o)
{
    const int d = f - from_f;
    const i128 maxv = max_raw(w, is_signed), minv = min_raw(w, is_signed);
    if (d <= 0) {
        const i128 v = d == 0 ? raw : shift_right(raw, -d, q);
        if (v > maxv) return overflow(true, (u128)v, w, is_signed, o);
        if (v < minv) return overflow(false, (u128)v, w, is_signed, o);
        return store(v, w, is_signed, o);
    }
    if (raw == 0)
        return 0;
    // Left shift by d: the scaled value is raw * 2^d, exact; its low bits for wrapping are
    // (raw << d) mod 2^128 (w <= 127 of them are kept).
    const u128 wrapped = d >= 128 ? 0 : ((u128)raw) << d;
    if (raw > 0) {
        if (d >= w || raw > (maxv >> d))
            return overflow(true, wrapped, w, is_signed, o);
    } else {
        if (!is_signed || d >= w || raw < -(i128)(((u128)1) << (w - 1 - d)))
            return overflow(false, wrapped, w, is_signed, o);
    }
    return store((i128)wrapped, w, is_signed, o);
}

// The double x scaled by 2^f and quantised with q (exact). When the scaled value reaches 2^126
// (beyond every type here), sets huge and returns its low 128 bits (two's complement) instead.
inline i128 from_double(double x, int f, ap_q_mode q, bool &huge)
{
    huge = false;
    if (!(x == x) || x == 0)
        return 0;
    const bool neg = x < 0;
    const double v = std::ldexp(x, f); // exact unless it leaves the normal double range
    if (std::isinf(v) || std::fabs(v) >= 0x1p126) {
        huge = true;
        if (std::isinf(v) || std::isinf(x))
            return 0;
        int e = 0;
        const double m = std::frexp(std::fabs(v), &e); // |v| = m 2^e, m in [0.5, 1)
        const u128 mant = (u128)(std::uint64_t)std::ldexp(m, 53);
        const int sh = e - 53; // >= 73
        const u128 low = sh >= 128 ? 0 : mant << sh;
        return (i128)(neg ? (u128)0 - low : low);
    }
    if (v == 0) // |x 2^f| underflowed below the smallest double: a nonzero value in (-1, 1) ulp
        return round_quotient(neg ? -1 : 0, false, neg ? 1 : -1, neg, q);
    const double fl = std::floor(v);
    const double rem = v - fl; // exact
    return round_quotient((i128)fl, rem == 0, rem < 0.5 ? -1 : (rem == 0.5 ? 0 : 1), neg, q);
}

// The integer part of raw * 2^-f, truncated toward zero.
inline i128 integer_part(i128 raw, int f)
{
    if (f <= 0)
        return raw * ((i128)1 << (-f)); // not raw << -f: a negative raw would be undefined before C++20
    return shift_right(raw, f, AP_TRN_ZERO);
}

} // namespace ap_detail

template <int W, int I, ap_q_mode Q = AP_TRN, ap_o_mode O = AP_WRAP, int N = 0> struct ap_fixed;
template <int W, int I, ap_q_mode Q = AP_TRN, ap_o_mode O = AP_WRAP, int N = 0> struct ap_ufixed;

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
struct ap_fixed_base {
    static_assert(W >= 1 && W <= 127, "BraggNAC ap_fixed emulation: 1 <= W <= 127");
    static_assert(O != AP_WRAP_SM, "BraggNAC ap_fixed emulation: AP_WRAP_SM is not supported");
    static_assert(N == 0, "BraggNAC ap_fixed emulation: saturation bits N must be 0");
    static const int width = W;
    static const int iwidth = I;
    static const ap_q_mode qmode = Q;
    static const ap_o_mode omode = O;

    ap_detail::i128 V; // raw bits, sign- or zero-extended; value = V * 2^-(W - I)

    ap_fixed_base() : V(0) {}

    void set_raw(ap_detail::i128 raw, int from_f)
    {
        V = ap_detail::convert(raw, from_f, W, W - I, S, Q, O);
    }
    void set_double(double x)
    {
        bool huge = false;
        const ap_detail::i128 r = ap_detail::from_double(x, W - I, Q, huge);
        if (huge) // beyond every representable value: r holds its low bits
            V = ap_detail::overflow(x > 0, (ap_detail::u128)r, W, S, O);
        else
            V = ap_detail::convert(r, W - I, W, W - I, S, Q, O);
    }

    double to_double() const { return std::ldexp((double)V, I - W); }
    float to_float() const { return (float)to_double(); }
    /// The integer part, truncated toward zero.
    int to_int() const { return (int)ap_detail::integer_part(V, W - I); }
    long long to_int64() const { return (long long)ap_detail::integer_part(V, W - I); }
    explicit operator double() const { return to_double(); }
    explicit operator float() const { return to_float(); }
};

#define BRAGGNAC_AP_CTORS(NAME, SIGNED)                                                           \
    NAME() {}                                                                                     \
    template <int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2>                                 \
    NAME(const ap_fixed<W2, I2, Q2, O2, N2> &x) { this->set_raw(x.V, W2 - I2); }                  \
    template <int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2>                                 \
    NAME(const ap_ufixed<W2, I2, Q2, O2, N2> &x) { this->set_raw(x.V, W2 - I2); }                 \
    NAME(double x) { this->set_double(x); }                                                       \
    NAME(float x) { this->set_double(x); }                                                        \
    NAME(int x) { this->set_raw(x, 0); }                                                          \
    NAME(unsigned x) { this->set_raw(x, 0); }                                                     \
    NAME(long x) { this->set_raw(x, 0); }                                                         \
    NAME(unsigned long x) { this->set_raw(x, 0); }                                                \
    NAME(long long x) { this->set_raw(x, 0); }                                                    \
    NAME(unsigned long long x) { this->set_raw(x, 0); }                                           \
    template <int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2>                                 \
    NAME &operator=(const ap_fixed<W2, I2, Q2, O2, N2> &x) { this->set_raw(x.V, W2 - I2); return *this; } \
    template <int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2>                                 \
    NAME &operator=(const ap_ufixed<W2, I2, Q2, O2, N2> &x) { this->set_raw(x.V, W2 - I2); return *this; } \
    NAME &operator=(double x) { this->set_double(x); return *this; }

template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
struct ap_fixed : ap_fixed_base<W, I, true, Q, O, N> {
    BRAGGNAC_AP_CTORS(ap_fixed, true)
    ap_fixed(const ap_fixed &x) : ap_fixed_base<W, I, true, Q, O, N>(x) {}
    ap_fixed &operator=(const ap_fixed &x) { this->V = x.V; return *this; }

    template <int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2>
    ap_fixed &operator+=(const ap_fixed<W2, I2, Q2, O2, N2> &b) { return *this = *this + b; }
    template <int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2>
    ap_fixed &operator-=(const ap_fixed<W2, I2, Q2, O2, N2> &b) { return *this = *this - b; }
    template <int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2>
    ap_fixed &operator*=(const ap_fixed<W2, I2, Q2, O2, N2> &b) { return *this = *this * b; }
    ap_fixed &operator+=(int b) { return *this = *this + ap_fixed<32, 32>(b); }
    ap_fixed &operator-=(int b) { return *this = *this - ap_fixed<32, 32>(b); }
    ap_fixed &operator*=(int b) { return *this = *this * ap_fixed<32, 32>(b); }

    ap_fixed<W + 1, I + 1> operator-() const
    {
        ap_fixed<W + 1, I + 1> r;
        r.V = -this->V;
        return r;
    }
    const ap_fixed &operator+() const { return *this; }
};

template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
struct ap_ufixed : ap_fixed_base<W, I, false, Q, O, N> {
    BRAGGNAC_AP_CTORS(ap_ufixed, false)
    ap_ufixed(const ap_ufixed &x) : ap_fixed_base<W, I, false, Q, O, N>(x) {}
    ap_ufixed &operator=(const ap_ufixed &x) { this->V = x.V; return *this; }
};

#undef BRAGGNAC_AP_CTORS

namespace ap_detail {
template <int W1, int I1, int W2, int I2> struct sum_type {
    static const int F = imax(W1 - I1, W2 - I2);
    static const int RI = imax(I1, I2) + 1;
    typedef ap_fixed<RI + F, RI> type;
};
template <int W1, int I1, int W2, int I2> struct mul_type {
    typedef ap_fixed<W1 + W2, I1 + I2> type;
};
} // namespace ap_detail

template <int W1, int I1, ap_q_mode Q1, ap_o_mode O1, int N1, int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2>
typename ap_detail::sum_type<W1, I1, W2, I2>::type operator+(const ap_fixed<W1, I1, Q1, O1, N1> &a,
                                                             const ap_fixed<W2, I2, Q2, O2, N2> &b)
{
    typedef typename ap_detail::sum_type<W1, I1, W2, I2> T;
    typename T::type r;
    r.V = a.V * ((ap_detail::i128)1 << (T::F - (W1 - I1))) + b.V * ((ap_detail::i128)1 << (T::F - (W2 - I2)));
    return r;
}

template <int W1, int I1, ap_q_mode Q1, ap_o_mode O1, int N1, int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2>
typename ap_detail::sum_type<W1, I1, W2, I2>::type operator-(const ap_fixed<W1, I1, Q1, O1, N1> &a,
                                                             const ap_fixed<W2, I2, Q2, O2, N2> &b)
{
    typedef typename ap_detail::sum_type<W1, I1, W2, I2> T;
    typename T::type r;
    r.V = a.V * ((ap_detail::i128)1 << (T::F - (W1 - I1))) - b.V * ((ap_detail::i128)1 << (T::F - (W2 - I2)));
    return r;
}

template <int W1, int I1, ap_q_mode Q1, ap_o_mode O1, int N1, int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2>
typename ap_detail::mul_type<W1, I1, W2, I2>::type operator*(const ap_fixed<W1, I1, Q1, O1, N1> &a,
                                                             const ap_fixed<W2, I2, Q2, O2, N2> &b)
{
    typename ap_detail::mul_type<W1, I1, W2, I2>::type r;
    r.V = a.V * b.V;
    return r;
}

// int operands act as ap_fixed<32, 32>.
#define BRAGGNAC_AP_INT_OP(OP)                                                                    \
    template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>                                      \
    auto operator OP(const ap_fixed<W, I, Q, O, N> &a, int b) { return a OP ap_fixed<32, 32>(b); } \
    template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>                                      \
    auto operator OP(int a, const ap_fixed<W, I, Q, O, N> &b) { return ap_fixed<32, 32>(a) OP b; }
BRAGGNAC_AP_INT_OP(+)
BRAGGNAC_AP_INT_OP(-)
BRAGGNAC_AP_INT_OP(*)
#undef BRAGGNAC_AP_INT_OP

namespace ap_detail {
// Compares a.V * 2^-fa with b.V * 2^-fb exactly; returns -1, 0, 1.
template <class A, class B> int compare(const A &a, const B &b)
{
    const int fa = A::width - A::iwidth, fb = B::width - B::iwidth;
    const int f = imax(fa, fb);
    const i128 x = a.V * ((i128)1 << (f - fa));
    const i128 y = b.V * ((i128)1 << (f - fb));
    return x < y ? -1 : (x > y ? 1 : 0);
}
} // namespace ap_detail

#define BRAGGNAC_AP_CMP(OP)                                                                       \
    template <int W1, int I1, ap_q_mode Q1, ap_o_mode O1, int N1, int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2> \
    bool operator OP(const ap_fixed<W1, I1, Q1, O1, N1> &a, const ap_fixed<W2, I2, Q2, O2, N2> &b) \
    { return ap_detail::compare(a, b) OP 0; }                                                     \
    template <int W1, int I1, ap_q_mode Q1, ap_o_mode O1, int N1, int W2, int I2, ap_q_mode Q2, ap_o_mode O2, int N2> \
    bool operator OP(const ap_ufixed<W1, I1, Q1, O1, N1> &a, const ap_ufixed<W2, I2, Q2, O2, N2> &b) \
    { return ap_detail::compare(a, b) OP 0; }                                                     \
    template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>                                      \
    bool operator OP(const ap_fixed<W, I, Q, O, N> &a, int b)                                     \
    { return ap_detail::compare(a, ap_fixed<32, 32>(b)) OP 0; }
BRAGGNAC_AP_CMP(==)
BRAGGNAC_AP_CMP(!=)
BRAGGNAC_AP_CMP(<)
BRAGGNAC_AP_CMP(<=)
BRAGGNAC_AP_CMP(>)
BRAGGNAC_AP_CMP(>=)
#undef BRAGGNAC_AP_CMP

template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
std::ostream &operator<<(std::ostream &os, const ap_fixed<W, I, Q, O, N> &x) { return os << x.to_double(); }
template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
std::ostream &operator<<(std::ostream &os, const ap_ufixed<W, I, Q, O, N> &x) { return os << x.to_double(); }

/// BraggNAC test extension (not in Xilinx's headers): the raw bits.
template <class T> __int128 ap_fixed_raw(const T &x) { return x.V; }

#endif // BRAGGNAC_AP_FIXED_H
