// braggnac-test-libs: systemc
// The ap_fixed emulation header that HLS exports carry (resources/hls/include/ap_fixed.h):
//  - exhaustively, for every width up to 8 and every integer-bit count from -3 to W+3, every
//    quantisation and overflow mode, against an independent rational/integer model;
//  - arithmetic result types and exact values of +, -, * and unary - at small widths;
//  - bit for bit against SystemC's sc_fixed (the reference for these semantics) on many random
//    values in every mode, for the widths the generated code uses.
#define SC_INCLUDE_FX
#include <systemc>

#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <utility>

#include <QtTest>

#include "../resources/hls/include/ap_fixed.h"

// libsystemc's own main() calls sc_main; this test has its own main (QtTest), so sc_main is only
// there to satisfy the shared library's reference.
int sc_main(int, char **) { return 0; }

namespace {

using i128 = __int128;

const ap_q_mode kQModes[] = {AP_RND, AP_RND_ZERO, AP_RND_MIN_INF, AP_RND_INF, AP_RND_CONV, AP_TRN,
                             AP_TRN_ZERO};
const ap_o_mode kOModes[] = {AP_SAT, AP_SAT_ZERO, AP_SAT_SYM, AP_WRAP};

std::int64_t floorDiv(std::int64_t a, std::int64_t b) // b > 0
{
    std::int64_t q = a / b;
    if (a % b != 0 && a < 0)
        --q;
    return q;
}

// Independent model: the value num/den (den > 0) rounded to an integer with mode q, then fitted
// into w bits (signed or not) with mode o. Written from the definitions, not from the header.
std::int64_t modelStore(std::int64_t num, std::int64_t den, int w, bool sgn, ap_q_mode q, ap_o_mode o)
{
    const std::int64_t fl = floorDiv(num, den);
    const std::int64_t rem = num - fl * den; // in [0, den)
    std::int64_t r = fl;
    if (rem != 0) {
        const bool neg = num < 0;
        const int cmp = 2 * rem < den ? -1 : (2 * rem == den ? 0 : 1); // dropped part vs 1/2
        const std::int64_t toZero = neg ? fl + 1 : fl;
        const std::int64_t awayFromZero = neg ? fl : fl + 1;
        const std::int64_t nearest = cmp > 0 ? fl + 1 : fl; // when not a tie
        switch (q) {
        case AP_TRN: r = fl; break;
        case AP_TRN_ZERO: r = toZero; break;
        case AP_RND: r = cmp == 0 ? fl + 1 : nearest; break;
        case AP_RND_ZERO: r = cmp == 0 ? toZero : nearest; break;
        case AP_RND_MIN_INF: r = cmp == 0 ? fl : nearest; break;
        case AP_RND_INF: r = cmp == 0 ? awayFromZero : nearest; break;
        case AP_RND_CONV: r = cmp == 0 ? (fl % 2 == 0 ? fl : fl + 1) : nearest; break;
        }
    }
    const std::int64_t lo = sgn ? -(std::int64_t(1) << (w - 1)) : 0;
    const std::int64_t hi = sgn ? (std::int64_t(1) << (w - 1)) - 1 : (std::int64_t(1) << w) - 1;
    if (r > hi || r < lo) {
        switch (o) {
        case AP_SAT: return r > hi ? hi : lo;
        case AP_SAT_ZERO: return 0;
        case AP_SAT_SYM: return r > hi ? hi : (sgn ? -hi : 0);
        default: {
            const std::int64_t m = std::int64_t(1) << w;
            std::int64_t x = ((r - lo) % m + m) % m + lo;
            return x;
        }
        }
    }
    if (o == AP_SAT_SYM && sgn && r == lo)
        return -hi;
    return r;
}

template <int W, int I> double value(const ap_fixed<W, I> &x) { return x.to_double(); }

// sc_fixed modes for ap modes.
constexpr sc_dt::sc_q_mode scQ(ap_q_mode q)
{
    return q == AP_RND ? sc_dt::SC_RND
         : q == AP_RND_ZERO ? sc_dt::SC_RND_ZERO
         : q == AP_RND_MIN_INF ? sc_dt::SC_RND_MIN_INF
         : q == AP_RND_INF ? sc_dt::SC_RND_INF
         : q == AP_RND_CONV ? sc_dt::SC_RND_CONV
         : q == AP_TRN ? sc_dt::SC_TRN
                       : sc_dt::SC_TRN_ZERO;
}
constexpr sc_dt::sc_o_mode scO(ap_o_mode o)
{
    return o == AP_SAT ? sc_dt::SC_SAT
         : o == AP_SAT_ZERO ? sc_dt::SC_SAT_ZERO
         : o == AP_SAT_SYM ? sc_dt::SC_SAT_SYM
                           : sc_dt::SC_WRAP;
}

// Random doubles that hit the interesting cases of a <W, I> type: exact ties at half an LSB,
// values just around the range limits, far out of range, tiny, and plain random ones.
double interestingValue(std::mt19937_64 &rng, int W, int I)
{
    const int F = W - I;
    std::uniform_int_distribution<int> kind(0, 5);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    const double lsb = std::ldexp(1.0, -F);
    const double range = std::ldexp(1.0, I - 1); // |MIN|
    switch (kind(rng)) {
    case 0: { // a tie: (k + 1/2) LSB
        std::uniform_int_distribution<long long> k(-(1LL << std::min(W, 50)), (1LL << std::min(W, 50)));
        return (double(k(rng)) + 0.5) * lsb;
    }
    case 1: return u(rng) * range * 1.02;             // around the limits
    case 2: return u(rng) * range * 37.0;             // well out of range
    case 3: return u(rng) * lsb * 3.0;                // a few LSBs
    case 4: { // exactly representable, possibly MIN or MAX
        std::uniform_int_distribution<int> e(0, 2);
        const double mn = -range, mx = range - lsb;
        const int which = e(rng);
        return which == 0 ? mn : which == 1 ? mx : std::floor(u(rng) * range / lsb) * lsb;
    }
    default: return u(rng) * range * 1.5;
    }
}

template <int W, int I, ap_q_mode Q, ap_o_mode O>
int compareWithSystemC(std::mt19937_64 &rng, int count, QString *firstFailure)
{
    int bad = 0;
    for (int n = 0; n < count; ++n) {
        const double x = interestingValue(rng, W, I);
        const ap_fixed<W, I, Q, O> a(x);
        const sc_dt::sc_fixed<W, I, scQ(Q), scO(O)> s(x);
        // A second operand of another format, and exact results stored into <W, I, Q, O>.
        const double y = interestingValue(rng, W / 2 + 2, I / 2 + 1);
        const ap_fixed<W / 2 + 2, I / 2 + 1, AP_RND, AP_SAT> b(y);
        const sc_dt::sc_fixed<W / 2 + 2, I / 2 + 1, sc_dt::SC_RND, sc_dt::SC_SAT> sb(y);
        const ap_fixed<W, I, Q, O> prod = a * b, sum = a + b, diff = b - a;
        const sc_dt::sc_fixed<W, I, scQ(Q), scO(O)> sprod = s * sb, ssum = s + sb, sdiff = sb - s;
        // Re-quantising a value of this type into a narrower one.
        constexpr int WN = W > 2 ? W - 1 : 1;
        const ap_fixed<WN, I - 1, Q, O> narrow = a;
        const sc_dt::sc_fixed<WN, I - 1, scQ(Q), scO(O)> snarrow = s;
        const bool ok = a.to_double() == s.to_double() && b.to_double() == sb.to_double()
            && prod.to_double() == sprod.to_double() && sum.to_double() == ssum.to_double()
            && diff.to_double() == sdiff.to_double() && narrow.to_double() == snarrow.to_double();
        if (!ok) {
            if (bad == 0 && firstFailure)
                *firstFailure = QStringLiteral("<%1,%2,q%3,o%4> x=%5 y=%6: ap %7 %8 %9 %10 %11 | sc %12 %13 %14 %15 %16")
                                    .arg(W).arg(I).arg(int(Q)).arg(int(O))
                                    .arg(x, 0, 'g', 17).arg(y, 0, 'g', 17)
                                    .arg(a.to_double(), 0, 'g', 17).arg(prod.to_double(), 0, 'g', 17)
                                    .arg(sum.to_double(), 0, 'g', 17).arg(diff.to_double(), 0, 'g', 17)
                                    .arg(narrow.to_double(), 0, 'g', 17)
                                    .arg(s.to_double(), 0, 'g', 17).arg(sprod.to_double(), 0, 'g', 17)
                                    .arg(ssum.to_double(), 0, 'g', 17).arg(sdiff.to_double(), 0, 'g', 17)
                                    .arg(snarrow.to_double(), 0, 'g', 17);
            ++bad;
        }
    }
    return bad;
}

template <ap_q_mode Q, ap_o_mode O>
int compareFormats(std::mt19937_64 &rng, int count, QString *firstFailure)
{
    // Widths and integer bits the generated code uses (weights, activations, accumulators,
    // tables), including I <= 0 and I >= W.
    return compareWithSystemC<2, 1, Q, O>(rng, count, firstFailure)
         + compareWithSystemC<4, 2, Q, O>(rng, count, firstFailure)
         + compareWithSystemC<6, 0, Q, O>(rng, count, firstFailure)
         + compareWithSystemC<7, 3, Q, O>(rng, count, firstFailure)
         + compareWithSystemC<8, 10, Q, O>(rng, count, firstFailure)
         + compareWithSystemC<12, 4, Q, O>(rng, count, firstFailure)
         + compareWithSystemC<16, 6, Q, O>(rng, count, firstFailure)
         + compareWithSystemC<18, -2, Q, O>(rng, count, firstFailure)
         + compareWithSystemC<24, 12, Q, O>(rng, count, firstFailure)
         + compareWithSystemC<32, 16, Q, O>(rng, count, firstFailure);
}

} // namespace

class TestApFixed : public QObject {
    Q_OBJECT
private Q_SLOTS:
    // Every raw value of every source format <W1, I1> (W1 <= 6) stored into every target format
    // <W2, I2> (W2 <= 8, -3 <= I2 <= W2 + 3) in every mode, against the independent model.
    void exhaustiveConversionSmallWidths()
    {
        long long checked = 0;
        for (int w1 = 1; w1 <= 6; ++w1)
            for (int i1 = -2; i1 <= w1 + 2; ++i1)
                for (int w2 = 1; w2 <= 8; ++w2)
                    for (int i2 = -3; i2 <= w2 + 3; ++i2)
                        for (ap_q_mode q : kQModes)
                            for (ap_o_mode o : kOModes)
                                for (std::int64_t raw = -(1 << (w1 - 1)); raw < (1 << (w1 - 1)); ++raw) {
                                    const int f1 = w1 - i1, f2 = w2 - i2, d = f2 - f1;
                                    const std::int64_t num = d >= 0 ? raw * (std::int64_t(1) << d) : raw;
                                    const std::int64_t den = d >= 0 ? 1 : (std::int64_t(1) << -d);
                                    const std::int64_t want = modelStore(num, den, w2, true, q, o);
                                    const i128 got = ap_detail::convert(raw, f1, w2, f2, true, q, o);
                                    if (got != i128(want))
                                        QFAIL(qPrintable(QStringLiteral("raw %1 <%2,%3> -> <%4,%5> q%6 o%7: got %8 want %9")
                                                             .arg(raw).arg(w1).arg(i1).arg(w2).arg(i2)
                                                             .arg(int(q)).arg(int(o))
                                                             .arg(qint64(got)).arg(want)));
                                    ++checked;
                                }
        QVERIFY(checked > 1000000);
    }

    // Unsigned targets, exhaustively at small widths, for the modes the export uses.
    void exhaustiveUnsignedSmallWidths()
    {
        for (int w1 = 1; w1 <= 6; ++w1)
            for (int w2 = 1; w2 <= 7; ++w2)
                for (int i2 = -2; i2 <= w2 + 2; ++i2)
                    for (ap_q_mode q : {AP_TRN, AP_RND})
                        for (ap_o_mode o : {AP_WRAP, AP_SAT})
                            for (std::int64_t raw = -(1 << (w1 - 1)); raw < (1 << (w1 - 1)); ++raw) {
                                const int f1 = 2, f2 = w2 - i2, d = f2 - f1;
                                const std::int64_t num = d >= 0 ? raw * (std::int64_t(1) << d) : raw;
                                const std::int64_t den = d >= 0 ? 1 : (std::int64_t(1) << -d);
                                QCOMPARE(qint64(ap_detail::convert(raw, f1, w2, f2, false, q, o)),
                                         qint64(modelStore(num, den, w2, false, q, o)));
                            }
    }

    // Result types and exact values of the arithmetic, for every pair of raw values.
    void arithmeticResultTypesAndValues()
    {
        using A = ap_fixed<5, 2>;   // 3 fractional bits
        using B = ap_fixed<4, 3>;   // 1 fractional bit
        static_assert(decltype(A() + B())::width == 7 && decltype(A() + B())::iwidth == 4, "sum type");
        static_assert(decltype(A() - B())::width == 7 && decltype(A() - B())::iwidth == 4, "difference type");
        static_assert(decltype(A() * B())::width == 9 && decltype(A() * B())::iwidth == 5, "product type");
        static_assert(decltype(-A())::width == 6 && decltype(-A())::iwidth == 3, "negation type");
        static_assert(decltype(A() + 1)::width == 36 && decltype(A() + 1)::iwidth == 33, "int operand");
        for (int ra = -16; ra < 16; ++ra)
            for (int rb = -8; rb < 8; ++rb) {
                const A a(ra / 8.0);
                const B b(rb / 2.0);
                QCOMPARE(double(ap_fixed_raw(a)), double(ra));
                QCOMPARE((a + b).to_double(), ra / 8.0 + rb / 2.0);
                QCOMPARE((a - b).to_double(), ra / 8.0 - rb / 2.0);
                QCOMPARE((a * b).to_double(), (ra / 8.0) * (rb / 2.0));
                QCOMPARE((-a).to_double(), -(ra / 8.0));
                QCOMPARE(a < b, ra / 8.0 < rb / 2.0);
                QCOMPARE(a == b, ra / 8.0 == rb / 2.0);
                // compound assignment quantises into the left operand's type (AP_TRN, AP_WRAP)
                A c = a;
                c += b;
                QCOMPARE(double(ap_fixed_raw(c)),
                         double(modelStore(ra + 4 * rb, 1, 5, true, AP_TRN, AP_WRAP)));
                A m = a;
                m *= b;
                QCOMPARE(double(ap_fixed_raw(m)), double(modelStore(ra * rb, 2, 5, true, AP_TRN, AP_WRAP)));
            }
        // Accumulating wide products: exact in a 64-bit accumulator.
        ap_fixed<64, 24> acc = 0;
        const ap_fixed<32, 8> w(-3.1415926535), x(2.718281828);
        for (int k = 0; k < 1000; ++k)
            acc += w * x;
        // each product has 48 fractional bits and is floored (AP_TRN) to the accumulator's 40
        const i128 step = (ap_fixed_raw(w) * ap_fixed_raw(x)) >> 8;
        QVERIFY(ap_fixed_raw(acc) == 1000 * step);
        QCOMPARE(acc.to_double(), 1000.0 * std::ldexp(double(step), -40));
        QVERIFY(std::abs(acc.to_double() + 1000 * 3.1415926535 * 2.718281828) < 1e-3);
    }

    void fromDoubleEdgeCases()
    {
        // ties, both signs, every rounding mode: 2.5 LSB and -2.5 LSB
        QCOMPARE((ap_fixed<8, 4, AP_RND>(2.5 / 16)).to_double(), 3.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_RND>(-2.5 / 16)).to_double(), -2.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_RND_ZERO>(-2.5 / 16)).to_double(), -2.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_RND_ZERO>(2.5 / 16)).to_double(), 2.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_RND_INF>(-2.5 / 16)).to_double(), -3.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_RND_MIN_INF>(2.5 / 16)).to_double(), 2.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_RND_CONV>(2.5 / 16)).to_double(), 2.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_RND_CONV>(3.5 / 16)).to_double(), 4.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_TRN>(-0.01)).to_double(), -1.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_TRN_ZERO>(-0.01)).to_double(), 0.0);
        // overflow
        QCOMPARE((ap_fixed<8, 4, AP_TRN, AP_SAT>(100.0)).to_double(), 8.0 - 1.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_TRN, AP_SAT>(-100.0)).to_double(), -8.0);
        QCOMPARE((ap_fixed<8, 4, AP_TRN, AP_SAT_SYM>(-100.0)).to_double(), -8.0 + 1.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_TRN, AP_SAT_ZERO>(9.0)).to_double(), 0.0);
        QCOMPARE((ap_fixed<8, 4, AP_TRN, AP_WRAP>(9.0)).to_double(), 9.0 - 16.0);
        // far out of range and wrapped: low bits of a huge double
        QCOMPARE((ap_fixed<8, 4, AP_TRN, AP_WRAP>(std::ldexp(1.0, 200))).to_double(), 0.0);
        QCOMPARE((ap_fixed<8, 4, AP_TRN, AP_SAT>(1e300)).to_double(), 8.0 - 1.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_TRN, AP_SAT>(-1e300)).to_double(), -8.0);
        // tiny values
        QCOMPARE((ap_fixed<8, 4, AP_TRN>(-1e-300)).to_double(), -1.0 / 16);
        QCOMPARE((ap_fixed<8, 4, AP_RND>(-1e-300)).to_double(), 0.0);
        QCOMPARE((ap_fixed<8, 4>(1.9999).to_int()), 1);
        QCOMPARE((ap_fixed<8, 4>(-1.5).to_int()), -1);
    }

    // Bit for bit against SystemC's sc_fixed in every mode, for widths 2..32 and integer bits
    // from -2 to W + 2: construction from double, products, sums, differences with a second
    // format, and re-quantisation into a narrower type.
    void matchesSystemC()
    {
        std::mt19937_64 rng(20261201);
        QString first;
        int bad = 0;
        const int n = 400;
        bad += compareFormats<AP_RND, AP_SAT>(rng, n, &first);
        bad += compareFormats<AP_RND, AP_WRAP>(rng, n, &first);
        bad += compareFormats<AP_RND, AP_SAT_ZERO>(rng, n, &first);
        bad += compareFormats<AP_RND, AP_SAT_SYM>(rng, n, &first);
        bad += compareFormats<AP_TRN, AP_SAT>(rng, n, &first);
        bad += compareFormats<AP_TRN, AP_WRAP>(rng, n, &first);
        bad += compareFormats<AP_TRN, AP_SAT_ZERO>(rng, n, &first);
        bad += compareFormats<AP_TRN, AP_SAT_SYM>(rng, n, &first);
        bad += compareFormats<AP_TRN_ZERO, AP_SAT>(rng, n, &first);
        bad += compareFormats<AP_TRN_ZERO, AP_WRAP>(rng, n, &first);
        bad += compareFormats<AP_RND_ZERO, AP_SAT>(rng, n, &first);
        bad += compareFormats<AP_RND_ZERO, AP_WRAP>(rng, n, &first);
        bad += compareFormats<AP_RND_MIN_INF, AP_SAT>(rng, n, &first);
        bad += compareFormats<AP_RND_MIN_INF, AP_WRAP>(rng, n, &first);
        bad += compareFormats<AP_RND_INF, AP_SAT>(rng, n, &first);
        bad += compareFormats<AP_RND_INF, AP_WRAP>(rng, n, &first);
        bad += compareFormats<AP_RND_CONV, AP_SAT>(rng, n, &first);
        bad += compareFormats<AP_RND_CONV, AP_WRAP>(rng, n, &first);
        if (bad)
            QFAIL(qPrintable(QStringLiteral("%1 mismatches with sc_fixed; first: %2").arg(bad).arg(first)));
    }
};

QTEST_GUILESS_MAIN(TestApFixed)
#include "tst_apfixed.moc"
