// braggnac-test-libs: braggnac_peaks
// The noise limit (core/peaks/crlb.h): the Cramer-Rao bound of a Gaussian peak's centre on zero
// background against the closed forms, point-sampled (sigma^2 / N) and pixel-integrated
// (erf differences); scaling with the counts; read noise raises it; nuisance parameters of a
// symmetric peak leave it unchanged; bad input is refused.
#include <cmath>

#include <QtTest>

#include "core/common/error.h"
#include "core/peaks/crlb.h"

using namespace braggnac::core;

namespace {

constexpr double kPi = 3.14159265358979323846;

PseudoVoigt gaussian(double amp, double row, double col, double sigma)
{
    return PseudoVoigt::fromArray({amp, 0, row, col, sigma, sigma, 1, 1, 0, 0});
}

double phi(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2 * kPi); }
double Phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

CrlbOptions centreOnly(int points)
{
    CrlbOptions o;
    o.readNoise = 0;
    o.integrationPoints = points;
    o.free.fill(false);
    o.free[2] = o.free[3] = true;
    return o;
}

} // namespace

class TestCrlb : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void pointSampledClosedForm_data();
    void pointSampledClosedForm();
    void pixelIntegratedClosedForm();
    void nuisanceOfSymmetricPeak();
    void readNoiseRaisesBound();
    void badInput();
};

void TestCrlb::pointSampledClosedForm_data()
{
    QTest::addColumn<double>("sigma");
    QTest::addColumn<double>("amplitude");
    QTest::newRow("sigma 1.5, A 1000") << 1.5 << 1000.0;
    QTest::newRow("sigma 2.0, A 50") << 2.0 << 50.0;
    QTest::newRow("sigma 1.2, A 20000") << 1.2 << 20000.0;
}

void TestCrlb::pointSampledClosedForm()
{
    // Poisson counts of a Gaussian: I_row = sum mu (r - r0)^2 / sigma^4 = N / sigma^2 for a
    // patch much larger than the peak (the lattice sum is exact to ~exp(-2 pi^2 sigma^2)).
    QFETCH(double, sigma);
    QFETCH(double, amplitude);
    const int s = 41;
    const PseudoVoigt p = gaussian(amplitude, 20, 20, sigma);
    double total = 0;
    for (int r = 0; r < s; ++r)
        for (int c = 0; c < s; ++c)
            total += p.evaluate(r, c);
    const CrlbResult b = centreCrlb(p, s, centreOnly(1));
    QVERIFY(b.ok);
    QCOMPARE(b.freeParameters, 2);
    const double expected = sigma / std::sqrt(total);
    QVERIFY2(std::fabs(b.rowStd / expected - 1) < 1e-6, qPrintable(QString::number(b.rowStd / expected)));
    QVERIFY(std::fabs(b.colStd / expected - 1) < 1e-6);
    // And N = 2 pi sigma^2 A, the continuous closed form.
    QVERIFY(std::fabs(b.rowStd / (sigma / std::sqrt(2 * kPi * sigma * sigma * amplitude)) - 1) < 1e-6);
    QVERIFY(std::fabs(b.centreStd() - std::sqrt(2.0) * expected) < 1e-9 + 1e-6 * expected);
}

void TestCrlb::pixelIntegratedClosedForm()
{
    // A Gaussian integrated over unit pixels is separable: mu_ij = N px(i) py(j) with
    // px(i) = Phi((i + 1/2 - r0) / sigma) - Phi((i - 1/2 - r0) / sigma), so
    // I_row = N sum_i px'(i)^2 / px(i), px'(i) = (phi((i - 1/2 - r0)/sigma) - phi((i + 1/2 - r0)/sigma)) / sigma.
    for (double sigma : {0.7, 1.0, 1.8}) {
        const double amp = 3000, r0 = 20.3, c0 = 19.8;
        const int s = 41;
        const double total = 2 * kPi * sigma * sigma * amp;
        double info = 0;
        for (int i = 0; i < s; ++i) {
            const double a = (i - 0.5 - r0) / sigma, b = (i + 0.5 - r0) / sigma;
            const double px = Phi(b) - Phi(a);
            const double dpx = (phi(a) - phi(b)) / sigma;
            if (px > 1e-300)
                info += dpx * dpx / px;
        }
        const double expected = 1 / std::sqrt(total * info);
        const CrlbResult got = centreCrlb(gaussian(amp, r0, c0, sigma), s, centreOnly(8));
        QVERIFY(got.ok);
        qInfo("sigma %.1f: integrated bound %.5f px, closed form %.5f, point-sampled sigma/sqrt(N) %.5f",
              sigma, got.rowStd, expected, sigma / std::sqrt(total));
        QVERIFY2(std::fabs(got.rowStd / expected - 1) < 2e-3,
                 qPrintable(QString::number(got.rowStd / expected)));
        // Integration over the pixel loses information: the bound is above sigma / sqrt(N).
        QVERIFY(got.rowStd > sigma / std::sqrt(total));
    }
}

void TestCrlb::nuisanceOfSymmetricPeak()
{
    // A Gaussian centred on a pixel in a symmetric patch: amplitude, background and widths are
    // orthogonal to the centre, so estimating them too leaves the bound unchanged; theta
    // (round peak) and the Lorentzian widths (eta = 0) carry no information and are dropped.
    const PseudoVoigt p = gaussian(2000, 10, 10, 1.3);
    CrlbOptions all;
    all.readNoise = 0;
    all.integrationPoints = 1;
    const CrlbResult a = centreCrlb(p, 21, all);
    const CrlbResult b = centreCrlb(p, 21, centreOnly(1));
    QVERIFY(a.ok && b.ok);
    QVERIFY(a.freeParameters < 10);
    QVERIFY2(std::fabs(a.rowStd / b.rowStd - 1) < 1e-4, qPrintable(QString::number(a.rowStd / b.rowStd)));
}

void TestCrlb::readNoiseRaisesBound()
{
    const PseudoVoigt p = PseudoVoigt::fromArray({300, 20, 5.2, 4.7, 1.2, 0.9, 1.4, 1.0, 0.4, 0.3});
    CrlbOptions o;
    o.readNoise = 0;
    const double quiet = centreCrlb(p, 11, o).centreStd();
    o.readNoise = 10;
    const double noisy = centreCrlb(p, 11, o).centreStd();
    QVERIFY(std::isfinite(quiet) && quiet > 0);
    QVERIFY(noisy > 1.1 * quiet);
    // Four times the counts (no read noise, no background): half the bound.
    CrlbOptions z = centreOnly(6);
    PseudoVoigt g = gaussian(400, 5.1, 4.8, 1.1);
    const double one = centreCrlb(g, 11, z).rowStd;
    g.amplitude *= 4;
    QVERIFY(std::fabs(centreCrlb(g, 11, z).rowStd / one - 0.5) < 1e-9);
}

void TestCrlb::badInput()
{
    const PseudoVoigt p = gaussian(100, 5, 5, 1);
    QVERIFY_THROWS_EXCEPTION(InputError, centreCrlb(p, 2));
    CrlbOptions o;
    o.integrationPoints = 9;
    QVERIFY_THROWS_EXCEPTION(InputError, centreCrlb(p, 11, o));
    o = {};
    o.gain = 0;
    QVERIFY_THROWS_EXCEPTION(InputError, centreCrlb(p, 11, o));
    o = {};
    o.readNoise = -1;
    QVERIFY_THROWS_EXCEPTION(InputError, centreCrlb(p, 11, o));
}

QTEST_APPLESS_MAIN(TestCrlb)
#include "tst_crlb.moc"
