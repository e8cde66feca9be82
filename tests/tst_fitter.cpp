// braggnac-test-libs: braggnac_peaks braggnac_sim braggnac_io
// Pseudo-Voigt fitter: exact recovery of noiseless peaks of several shapes, unbiased centres on
// noisy simulated patches, flags for input with no peak, masks and NaN pixels, neighbour
// handling, thread-count independence, labels, cancellation and the `fit` CLI verb.
#include <algorithm>
#include <cmath>
#include <random>
#include <array>
#include <cstring>
#include <numeric>
#include <tuple>

#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

#include "core/common/error.h"
#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "core/peaks/finder.h"
#include "core/peaks/fitter.h"
#include "core/sim/simulator.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

Q_DECLARE_METATYPE(braggnac::core::PseudoVoigt)

namespace {

constexpr int kP = PseudoVoigt::kParameterCount;
constexpr double kPi = 3.14159265358979323846;

PseudoVoigt peak(double amp, double bg, double row, double col, double su, double sv, double gu,
                 double gv, double eta, double theta)
{
    return PseudoVoigt::fromArray({amp, bg, row, col, su, sv, gu, gv, eta, theta});
}

// The fitter reports theta in [-pi/4, pi/4), swapping the U and V widths (theta +- pi/2 with
// swapped widths is the same peak); bring a truth into the same form.
PseudoVoigt canonical(PseudoVoigt p)
{
    p.theta -= kPi * std::nearbyint(p.theta / kPi);
    if (p.theta >= kPi / 4 || p.theta < -kPi / 4) {
        p.theta -= kPi / 2;
        p.theta -= kPi * std::nearbyint(p.theta / kPi);
        std::swap(p.sigmaU, p.sigmaV);
        std::swap(p.gammaU, p.gammaV);
    }
    return p;
}

std::vector<float> render(const PseudoVoigt &p, int size = 11)
{
    std::vector<float> img(std::size_t(size) * size);
    p.render(img.data(), size, size);
    return img;
}

double centreError(const FitResult &f, double row, double col)
{
    return std::hypot(f.params.row - row, f.params.col - col);
}

bool sameResults(const std::vector<FitResult> &a, const std::vector<FitResult> &b)
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto pa = a[i].params.toArray(), pb = b[i].params.toArray();
        if (std::memcmp(pa.data(), pb.data(), sizeof(double) * kP) != 0
            || std::memcmp(&a[i].rms, &b[i].rms, sizeof(double)) != 0
            || a[i].iterations != b[i].iterations || a[i].converged != b[i].converged)
            return false;
    }
    return true;
}

PatchSimOptions noisy(std::uint64_t seed, double neighbourFraction)
{
    PatchSimOptions o;
    o.seed = seed;
    o.neighbourFraction = neighbourFraction;
    o.threads = 2;
    return o;
}

} // namespace

class TestFitter : public QObject {
    Q_OBJECT

private:
    PatchDataset m_plain;      // noisy simulated patches, no neighbours
    PatchDataset m_neighbours; // every patch has a partly visible neighbour
    std::vector<FitResult> m_plainFits;

private Q_SLOTS:
    void initTestCase();
    void noiseless_data();
    void noiseless();
    void unbiasedOnNoisyPatches_data();
    void unbiasedOnNoisyPatches();
    void flagsNonConvergent_data();
    void flagsNonConvergent();
    void pureNoiseIsFlagged();
    void maskHidesBlob();
    void nanPixelsAreMasked();
    void neighbourHandlingReducesError();
    void twoPeakNeighbourOwnShape();
    void twoPeakEllipticalNeighbour();
    void faintNeighbourSameShape();
    void poissonWeightsLowerBrightError();
    void iterationLimit();
    void threadsGiveIdenticalResults();
    void labelsFollowConvergence();
    void stderrIsCalibrated_data();
    void stderrIsCalibrated();
    void noPatchLabelledAtCentre();
    void keptUnweightedFitStderr();
    void saturatedPixelsMasked();
    void cancellation();
    void realFrames();
    void cliFit();
    void cliBadInput_data();
    void cliBadInput();
};

void TestFitter::initTestCase()
{
    m_plain = simulatePatches(8000, noisy(101, 0.0));
    m_neighbours = simulatePatches(2000, noisy(202, 1.0));
    FitOptions o;
    o.threads = 2;
    m_plainFits = fitPatches(m_plain, o);
}

void TestFitter::noiseless_data()
{
    QTest::addColumn<PseudoVoigt>("truth");
    QTest::addColumn<int>("size");
    QTest::newRow("round") << peak(1000, 20, 5, 5, 1.2, 1.2, 1.3, 1.3, 0.5, 0) << 11;
    QTest::newRow("elongated") << peak(2000, 10, 5.2, 4.9, 0.8, 1.8, 1.0, 2.0, 0.3, 0) << 11;
    QTest::newRow("rotated") << peak(1500, 15, 4.7, 5.3, 0.8, 1.8, 0.9, 1.9, 0.4, 0.6) << 11;
    QTest::newRow("rotated the other way")
        << peak(900, 30, 5.4, 5.45, 1.6, 0.7, 1.5, 0.8, 0.6, -1.1) << 11;
    QTest::newRow("lorentzian-heavy") << peak(800, 25, 5.3, 5.1, 1.0, 1.1, 0.9, 1.4, 0.9, -0.4) << 11;
    QTest::newRow("pure gaussian") << peak(800, 25, 5.3, 5.1, 1.0, 1.4, 0.9, 1.4, 0.0, 0.3) << 11;
    QTest::newRow("pure lorentzian") << peak(800, 25, 4.6, 5.1, 1.0, 1.1, 0.9, 1.4, 1.0, 0.2) << 11;
    QTest::newRow("off-centre") << peak(3000, 5, 6.4, 3.7, 1.1, 0.9, 1.2, 1.0, 0.5, 1.0) << 11;
    QTest::newRow("narrow") << peak(500, 30, 5.1, 4.8, 0.6, 0.7, 0.6, 0.7, 0.5, 0.2) << 11;
    QTest::newRow("faint") << peak(5, 100, 5.25, 4.75, 1.1, 1.3, 1.0, 1.2, 0.5, 0.4) << 11;
    QTest::newRow("15 px patch") << peak(1200, 20, 7.3, 6.6, 1.5, 2.2, 1.4, 2.0, 0.5, 0.7) << 15;
}

void TestFitter::noiseless()
{
    QFETCH(PseudoVoigt, truth);
    QFETCH(int, size);
    const std::vector<float> img = render(truth, size);
    const FitResult f = fitPseudoVoigt(img.data(), size);
    QVERIFY(f.converged);
    QVERIFY2(centreError(f, truth.row, truth.col) < 1e-3,
             qPrintable(QString("row %1 col %2").arg(f.params.row).arg(f.params.col)));
    QVERIFY(f.rms < 1e-4 * truth.amplitude);
    QVERIFY(f.iterations > 0 && f.iterations < 100);
    const PseudoVoigt t = canonical(truth);
    const PseudoVoigt &p = f.params;
    QVERIFY(std::fabs(p.amplitude - t.amplitude) < 1e-3 * t.amplitude);
    QVERIFY(std::fabs(p.background - t.background) < 1e-3 * t.amplitude);
    QVERIFY(std::fabs(p.eta - t.eta) < 1e-3);
    // Widths that shape the peak (Gaussian unless eta = 1, Lorentzian unless eta = 0), and the
    // rotation unless the peak is round.
    if (t.eta < 1) {
        QVERIFY(std::fabs(p.sigmaU - t.sigmaU) < 1e-3 * t.sigmaU);
        QVERIFY(std::fabs(p.sigmaV - t.sigmaV) < 1e-3 * t.sigmaV);
    }
    if (t.eta > 0) {
        QVERIFY(std::fabs(p.gammaU - t.gammaU) < 1e-3 * t.gammaU);
        QVERIFY(std::fabs(p.gammaV - t.gammaV) < 1e-3 * t.gammaV);
    }
    if (t.sigmaU != t.sigmaV)
        QVERIFY(std::fabs(p.theta - t.theta) < 1e-3);
}

void TestFitter::unbiasedOnNoisyPatches_data()
{
    QTest::addColumn<int>("axis");
    QTest::newRow("row") << 0;
    QTest::newRow("col") << 1;
}

void TestFitter::unbiasedOnNoisyPatches()
{
    // Mean signed centre error over converged fits is consistent with zero (|mean| < 3
    // standard errors) and small; errors are small too, and most fits converge.
    QFETCH(int, axis);
    std::vector<double> err;
    for (std::size_t i = 0; i < m_plain.size(); ++i)
        if (m_plainFits[i].converged)
            err.push_back((axis == 0 ? m_plainFits[i].params.row : m_plainFits[i].params.col)
                          - m_plain.centers[2 * i + axis]);
    QVERIFY2(err.size() > 0.9 * m_plain.size(), qPrintable(QString::number(err.size())));
    const double mean = std::accumulate(err.begin(), err.end(), 0.0) / err.size();
    double var = 0;
    for (double e : err)
        var += (e - mean) * (e - mean);
    const double sd = std::sqrt(var / (err.size() - 1));
    const double se = sd / std::sqrt(double(err.size()));
    QVERIFY2(std::fabs(mean) < 3 * se && std::fabs(mean) < 0.005,
             qPrintable(QString("mean %1 se %2").arg(mean).arg(se)));
    QVERIFY2(sd < 0.06, qPrintable(QString::number(sd)));
}

void TestFitter::flagsNonConvergent_data()
{
    QTest::addColumn<QString>("kind");
    QTest::addColumn<int>("status");
    QTest::newRow("flat") << "flat" << int(FitStatus::TooFaint);
    QTest::newRow("flat with NaN") << "flat-nan" << int(FitStatus::TooFaint);
    QTest::newRow("all NaN") << "nan" << int(FitStatus::TooFaint);
    QTest::newRow("single hot pixel") << "hot" << -1;
    QTest::newRow("everything masked but 5 pixels") << "masked" << int(FitStatus::TooFaint);
}

void TestFitter::flagsNonConvergent()
{
    QFETCH(QString, kind);
    std::vector<float> img(121, 20.0f);
    std::vector<std::uint8_t> mask;
    if (kind == "flat-nan") {
        img[3] = NAN;
        img[77] = INFINITY;
    } else if (kind == "nan") {
        std::fill(img.begin(), img.end(), NAN);
    } else if (kind == "hot") {
        img[60] = 500;
    } else if (kind == "masked") {
        img = render(peak(1000, 20, 5, 5, 1, 1, 1, 1, 0.5, 0));
        mask.assign(121, 1);
        for (int k : {58, 59, 60, 61, 62})
            mask[k] = 0;
    }
    QFETCH(int, status);
    const FitResult f = fitPseudoVoigt(img.data(), 11, {}, mask.empty() ? nullptr : mask.data());
    QVERIFY(!f.converged);
    QVERIFY(f.status != FitStatus::Converged);
    if (status >= 0) {
        QCOMPARE(int(f.status), status);
        QVERIFY(!std::isfinite(f.centerStderr())); // no fit: no standard error
    }
    if (kind == "hot") { // the estimate is the hot pixel (to float rounding of the kernels)
        QVERIFY2(std::fabs(f.params.row - 5.0) < 1e-3, qPrintable(QString::number(f.params.row)));
        QVERIFY2(std::fabs(f.params.col - 5.0) < 1e-3, qPrintable(QString::number(f.params.col)));
    }
    if (kind == "masked") { // the centroid of the 5 visible pixels of a peak at (5, 5)
        QVERIFY(std::fabs(f.params.row - 5) < 1e-6);
        QVERIFY(std::fabs(f.params.col - 5) < 0.2);
    }
    for (double v : f.params.toArray())
        QVERIFY(std::isfinite(v));
    QVERIFY(std::isfinite(f.rms));
}

void TestFitter::pureNoiseIsFlagged()
{
    // Background + Poisson + read noise and no peak: a fit may find a noise bump, but it is not
    // a significant peak, so it is not labelled.
    PatchSimOptions o = noisy(303, 0.0);
    o.amplitudeMin = o.amplitudeMax = 1e-9;
    const PatchDataset d = simulatePatches(400, o);
    const auto fits = fitPatches(d, {});
    const long converged =
        std::count_if(fits.begin(), fits.end(), [](const FitResult &f) { return f.converged; });
    QVERIFY2(converged <= 4, qPrintable(QString::number(converged)));
}

void TestFitter::maskHidesBlob()
{
    // A brighter Gaussian blob in a corner pulls an unmasked fit away; masked out, the fit is
    // exact again.
    const PseudoVoigt truth = peak(1000, 20, 5.2, 4.8, 1.0, 1.3, 1.1, 1.4, 0.4, 0.3);
    std::vector<float> img = render(truth);
    peak(3000, 0, 1.5, 8.5, 0.8, 0.8, 0.8, 0.8, 0.0, 0).render(img.data(), 11, 11, 0, 0, true);
    std::vector<std::uint8_t> mask(121, 0);
    for (int r = 0; r < 11; ++r)
        for (int c = 0; c < 11; ++c)
            mask[r * 11 + c] = std::hypot(r - 1.5, c - 8.5) < 3.2;
    FitOptions o;
    o.neighbours = NeighbourHandling::Ignore; // the user's mask alone
    const FitResult unmasked = fitPseudoVoigt(img.data(), 11, o);
    const FitResult masked = fitPseudoVoigt(img.data(), 11, o, mask.data());
    QVERIFY(centreError(unmasked, truth.row, truth.col) > 0.05);
    QVERIFY(masked.converged);
    QVERIFY2(centreError(masked, truth.row, truth.col) < 1e-3,
             qPrintable(QString::number(centreError(masked, truth.row, truth.col))));
    // The same blob set to NaN is masked too.
    std::vector<float> withNan = img;
    for (int k = 0; k < 121; ++k)
        if (mask[k])
            withNan[k] = NAN;
    const FitResult nanFit = fitPseudoVoigt(withNan.data(), 11, o);
    QCOMPARE(nanFit.params.toArray(), masked.params.toArray());
}

void TestFitter::nanPixelsAreMasked()
{
    // NaN pixels inside a noisy peak: finite output, converged, identical to masking them.
    for (std::size_t i = 0; i < 50; ++i) {
        std::vector<float> img(m_plain.patch(i), m_plain.patch(i) + 121);
        std::vector<std::uint8_t> mask(121, 0);
        for (int k : {0, 14, 60, 61, 100}) {
            img[k] = NAN;
            mask[k] = 1;
        }
        const FitResult withNan = fitPseudoVoigt(img.data(), 11);
        const FitResult masked = fitPseudoVoigt(m_plain.patch(i), 11, {}, mask.data());
        for (double v : withNan.params.toArray())
            QVERIFY(std::isfinite(v));
        QVERIFY(std::isfinite(withNan.rms));
        QCOMPARE(withNan.params.toArray(), masked.params.toArray());
        QCOMPARE(withNan.converged, masked.converged);
    }
}

void TestFitter::neighbourHandlingReducesError()
{
    // Patches with a second, partly visible peak: masking its basin lowers the centre error and
    // raises the convergence rate; the two-peak fit lowers the error further (numbers in
    // docs/benchmarks/fit.md).
    auto summary = [&](NeighbourHandling h) {
        FitOptions o;
        o.neighbours = h;
        o.threads = 2;
        const auto fits = fitPatches(m_neighbours, o);
        std::vector<double> err;
        for (std::size_t i = 0; i < fits.size(); ++i)
            if (fits[i].converged)
                err.push_back(centreError(fits[i], m_neighbours.centers[2 * i],
                                          m_neighbours.centers[2 * i + 1]));
        std::sort(err.begin(), err.end());
        const double mean = std::accumulate(err.begin(), err.end(), 0.0) / err.size();
        return std::make_tuple(mean, err[err.size() * 95 / 100], int(err.size()));
    };
    const auto [meanIgnore, p95Ignore, nIgnore] = summary(NeighbourHandling::Ignore);
    const auto [meanMask, p95Mask, nMask] = summary(NeighbourHandling::Mask);
    const auto [meanTwo, p95Two, nTwo] = summary(NeighbourHandling::TwoPeak);
    qInfo("neighbour patches, converged: mean / p95 centre error (px), count: ignore %.3f / %.3f "
          "(%d), mask %.3f / %.3f (%d), two-peak %.3f / %.3f (%d)",
          meanIgnore, p95Ignore, nIgnore, meanMask, p95Mask, nMask, meanTwo, p95Two, nTwo);
    QVERIFY(meanMask < 0.7 * meanIgnore);
    QVERIFY(nMask > nIgnore);
    QVERIFY(meanTwo < 0.6 * meanMask);
    QVERIFY(p95Two < 0.7 * p95Mask);
    QVERIFY(nTwo > nIgnore);
}

void TestFitter::twoPeakNeighbourOwnShape()
{
    // A narrow, elongated main peak and a broad, Lorentzian-heavy round neighbour 5 px away
    // (noiseless): the two-peak model gives the neighbour its own widths and mixing, so the
    // main peak's centre is recovered to < 5e-3 px (a neighbour forced into the main peak's
    // shape leaves residual structure under the main peak: least squares started at the truth
    // then ends 0.02 px off); the masked one-peak fit is biased. Only the centre is asserted:
    // the statistical stop (docs/fitting.md) ends once the centre is known far below its
    // standard error, before the background / neighbour-tail trade-off is settled (the round
    // pair stopped < 1e-3 px off; its continuation as a full neighbour, this patch being
    // bright, stops 0.004 px off).
    const PseudoVoigt main = peak(3000, 20, 5.2, 4.7, 0.8, 0.6, 0.9, 0.7, 0.3, 0.25);
    const PseudoVoigt nb = peak(2000, 0, 6.1, 9.6, 2.0, 2.0, 1.8, 1.8, 0.7, 0.0);
    std::vector<float> img = render(main);
    nb.render(img.data(), 11, 11, 0, 0, true);
    FitOptions o;
    const FitResult two = fitPseudoVoigt(img.data(), 11, o);
    QVERIFY(two.converged);
    QCOMPARE(two.peaks, 2);
    QVERIFY2(centreError(two, main.row, main.col) < 5e-3,
             qPrintable(QString::number(centreError(two, main.row, main.col))));
    o.neighbours = NeighbourHandling::Mask;
    const FitResult one = fitPseudoVoigt(img.data(), 11, o);
    QCOMPARE(one.peaks, 1);
    QVERIFY2(centreError(one, main.row, main.col) > 0.01,
             qPrintable(QString::number(centreError(one, main.row, main.col))));
}

void TestFitter::twoPeakEllipticalNeighbour()
{
    // A bright patch whose neighbour is elongated and rotated (noiseless): the round pair
    // continues as a full pseudo-Voigt neighbour (the F test on its 3 more parameters passes:
    // docs/fitting.md "Neighbours"), which recovers the main centre to < 2e-3 px; a round
    // neighbour cannot follow the ellipse and leaves the main centre ~0.01 px off.
    const PseudoVoigt main = peak(3000, 20, 5.3, 4.8, 1.0, 0.9, 1.1, 1.0, 0.4, 0.1);
    const PseudoVoigt nb = peak(2500, 0, 7.6, 9.5, 2.0, 0.7, 1.8, 0.6, 0.5, 0.6);
    std::vector<float> img = render(main);
    nb.render(img.data(), 11, 11, 0, 0, true);
    const FitResult two = fitPseudoVoigt(img.data(), 11, FitOptions{});
    QCOMPARE(two.peaks, 2);
    QVERIFY(two.status != FitStatus::TooFaint && two.status != FitStatus::Bounds);
    QVERIFY2(centreError(two, main.row, main.col) < 2e-3,
             qPrintable(QString::number(centreError(two, main.row, main.col))));
}

void TestFitter::faintNeighbourSameShape()
{
    // A faint peak (SNR 5.3) with a fainter neighbour (40 %) 5 px away, 300 noise realisations:
    // one peak is pulled towards the neighbour's tail, and the round pair (6 more parameters)
    // passes its F test in fewer than half of them. The pair with the neighbour in the main
    // peak's shape (3 more parameters, docs/fitting.md "Neighbours") is kept in most and
    // removes most of that pull; `mask` (one peak, the neighbour's basin left out) keeps it.
    // Measured: 257 pairs, pull 0.029 px (mask 0.166), rms 0.233 px (mask 0.290); without the
    // same-shape pair 123 pairs, pull 0.117 px, rms 0.271 px.
    const PseudoVoigt main = peak(50, 20, 5.2, 4.9, 1.4, 1.4, 1.5, 1.5, 0.4, 0.0);
    const PseudoVoigt nb = peak(20, 0, 8.2, 8.9, 1.4, 1.4, 1.5, 1.5, 0.4, 0.0);
    std::vector<float> mean = render(main);
    nb.render(mean.data(), 11, 11, 0, 0, true);
    const double ur = (nb.row - main.row) / 5.0, uc = (nb.col - main.col) / 5.0; // towards it
    std::mt19937_64 rng(5);
    std::normal_distribution<double> read(0.0, 3.0);
    FitOptions masked;
    masked.neighbours = NeighbourHandling::Mask;
    const int n = 300;
    int pairs = 0;
    double pullTwo = 0, pullMask = 0, sqTwo = 0, sqMask = 0;
    std::vector<float> img(mean.size());
    for (int t = 0; t < n; ++t) {
        for (std::size_t k = 0; k < img.size(); ++k)
            img[k] = float(std::poisson_distribution<long>(mean[k])(rng) + read(rng));
        const FitResult two = fitPseudoVoigt(img.data(), 11, FitOptions{});
        const FitResult one = fitPseudoVoigt(img.data(), 11, masked);
        pairs += two.peaks == 2;
        pullTwo += (two.params.row - main.row) * ur + (two.params.col - main.col) * uc;
        pullMask += (one.params.row - main.row) * ur + (one.params.col - main.col) * uc;
        sqTwo += std::pow(centreError(two, main.row, main.col), 2);
        sqMask += std::pow(centreError(one, main.row, main.col), 2);
    }
    qInfo("pairs %d / %d; pull towards the neighbour: two-peak %.4f px, mask %.4f px; rms %.4f / "
          "%.4f px",
          pairs, n, pullTwo / n, pullMask / n, std::sqrt(sqTwo / n), std::sqrt(sqMask / n));
    QVERIFY2(pairs > 2 * n / 3, qPrintable(QString::number(pairs)));
    QVERIFY2(pullTwo / n < 0.4 * (pullMask / n), qPrintable(QString::number(pullTwo / n)));
    QVERIFY2(std::sqrt(sqTwo / sqMask) < 0.9, qPrintable(QString::number(std::sqrt(sqTwo / n))));
}

void TestFitter::poissonWeightsLowerBrightError()
{
    // A bright peak over a faint background: pixel variances differ ~100-fold, so the
    // Poisson-weighted continuation (the default) is measurably more efficient than unweighted
    // least squares on the same 400 noise realisations (~15 % lower rms; the ratio is stable
    // because both fit the same data), and it stays unbiased.
    const PseudoVoigt truth = peak(8000, 15, 5.3, 4.6, 1.1, 0.9, 1.2, 1.0, 0.4, 0.3);
    const std::vector<float> mean = render(truth);
    std::mt19937_64 rng(7);
    std::normal_distribution<double> read(0.0, 3.0);
    FitOptions weighted, plain;
    weighted.neighbours = plain.neighbours = NeighbourHandling::Ignore;
    plain.poissonWeights = false;
    QVERIFY(weighted.poissonWeights); // the default
    double sw = 0, sp = 0, bias = 0;
    const int n = 400;
    std::vector<float> img(mean.size());
    for (int t = 0; t < n; ++t) {
        for (std::size_t k = 0; k < img.size(); ++k)
            img[k] = float(std::poisson_distribution<long>(mean[k])(rng) + read(rng));
        const FitResult w = fitPseudoVoigt(img.data(), 11, weighted);
        const FitResult p = fitPseudoVoigt(img.data(), 11, plain);
        QVERIFY(w.converged && p.converged);
        sw += std::pow(centreError(w, truth.row, truth.col), 2);
        sp += std::pow(centreError(p, truth.row, truth.col), 2);
        bias += w.params.row - truth.row;
    }
    const double ratio = std::sqrt(sw / sp);
    qInfo("rms centre error weighted / unweighted: %.3f (%.4f px / %.4f px)", ratio,
          std::sqrt(sw / n), std::sqrt(sp / n));
    QVERIFY2(ratio < 0.93, qPrintable(QString::number(ratio)));
    QVERIFY(std::fabs(bias / n) < 3 * std::sqrt(sw / n) / std::sqrt(double(n)));
}

void TestFitter::iterationLimit()
{
    // One iteration cannot meet the convergence criteria from a moment start (iterations
    // count every stage a patch can run, one iteration each: the moment start, then the
    // neighbour alone and the round pair, then either the full pair and its Poisson-weighted
    // continuation (a kept pair) or the same-shape pair and the Poisson-weighted one-peak fit
    // (a rejected one): at most 5). Every such fit is reported as max-iterations (or
    // too-faint), with a finite estimate.
    FitOptions o;
    o.maxIterations = 1;
    int converged = 0, maxIterations = 0;
    for (std::size_t i = 0; i < 100; ++i) {
        const FitResult f = fitPseudoVoigt(m_plain.patch(i), 11, o);
        QVERIFY2(f.iterations >= 1 && f.iterations <= 5, qPrintable(QString::number(f.iterations)));
        QVERIFY(f.status != FitStatus::Converged);
        QVERIFY(std::isfinite(f.params.row) && std::isfinite(f.params.col));
        maxIterations += f.status == FitStatus::MaxIterations;
        converged += f.converged;
    }
    QCOMPARE(converged, 0);
    QVERIFY2(maxIterations >= 50, qPrintable(QString::number(maxIterations)));
}

void TestFitter::threadsGiveIdenticalResults()
{
    PatchSimOptions so = noisy(404, 0.3);
    const PatchDataset d = simulatePatches(3000, so);
    FitOptions o;
    o.threads = 1;
    const auto one = fitPatches(d, o);
    o.threads = 2;
    const auto two = fitPatches(d, o);
    o.threads = 5;
    const auto five = fitPatches(d, o);
    QVERIFY(sameResults(one, two));
    QVERIFY(sameResults(one, five));
    // And fitPatches agrees with fitting the patches one by one.
    for (std::size_t i = 0; i < 200; ++i)
        QVERIFY(sameResults({fitPseudoVoigt(d.patch(i), d.patchSize)}, {one[i]}));
}

void TestFitter::labelsFollowConvergence()
{
    PatchDataset d = m_plain.subset({0, 1, 2, 3, 4, 5, 6, 7});
    std::vector<FitResult> fits(m_plainFits.begin(), m_plainFits.begin() + 8);
    fits[2].converged = false;
    fits[2].status = FitStatus::MaxIterations;
    fits[5].converged = false;
    fits[5].status = FitStatus::Bounds;
    fits[6].rowStderr = 0.4; // converged but too uncertain for the explicit threshold below
    const double threshold = applyFitLabels(d, fits, 0.3);
    QCOMPARE(threshold, 0.3);
    QCOMPARE(d.labelSource, std::string("pseudo-voigt"));
    QCOMPARE(d.centers.size(), std::size_t(16));
    const auto &conv = d.extraFlags.at("/fit/converged");
    const auto &params = d.extraFloat.at("/fit/params");
    QCOMPARE(params.shape, (std::vector<unsigned long long>{8, 10}));
    QCOMPARE(d.extraFloat.at("/fit/residual").shape, (std::vector<unsigned long long>{8}));
    for (std::size_t i = 0; i < 8; ++i) {
        QCOMPARE(conv[i], std::uint8_t(fits[i].converged ? 1 : 0));
        QCOMPARE(d.extraFlags.at("/fit/status")[i], std::uint8_t(fits[i].status));
        QCOMPARE(d.extraFloat.at("/fit/center_stderr").data[2 * i], float(fits[i].rowStderr));
        const bool usable = fits[i].converged && i != 6;
        QCOMPARE(d.extraFlags.at("/fit/usable")[i], std::uint8_t(usable ? 1 : 0));
        QCOMPARE(params.data[i * kP + 2], float(fits[i].params.row));
        QCOMPARE(d.extraFloat.at("/fit/residual").data[i], float(fits[i].rms));
        // Every patch is labelled with its best estimate, whatever its status.
        QCOMPARE(d.centers[2 * i], float(fits[i].params.row));
        QCOMPARE(d.centers[2 * i + 1], float(fits[i].params.col));
    }
    QVERIFY_THROWS_EXCEPTION(Error, applyFitLabels(d, std::vector<FitResult>(3)));
}

void TestFitter::stderrIsCalibrated_data()
{
    QTest::addColumn<bool>("poisson");
    QTest::addColumn<double>("amplitude");
    QTest::newRow("unweighted, A 800") << false << 800.0;
    QTest::newRow("unweighted, A 5000") << false << 5000.0;
    QTest::newRow("Poisson weights, A 800") << true << 800.0;
}

void TestFitter::stderrIsCalibrated()
{
    // Many Poisson + read-noise realisations of one known peak: the z-scores (fitted - true
    // centre) / standard error have a standard deviation within 10 % of 1 on both axes.
    QFETCH(bool, poisson);
    QFETCH(double, amplitude);
    const PseudoVoigt truth = peak(amplitude, 20, 5.3, 4.6, 1.3, 1.0, 1.4, 1.1, 0.4, 0.3);
    const std::vector<float> mean = render(truth);
    std::mt19937_64 rng(42);
    std::normal_distribution<double> read(0.0, 3.0);
    FitOptions o;
    o.poissonWeights = poisson;
    o.neighbours = NeighbourHandling::Ignore;
    const int n = 600;
    std::vector<double> zr, zc;
    std::vector<float> img(121);
    for (int t = 0; t < n; ++t) {
        for (int k = 0; k < 121; ++k)
            img[k] = float(std::poisson_distribution<long>(mean[k])(rng) + read(rng));
        const FitResult f = fitPseudoVoigt(img.data(), 11, o);
        if (f.status != FitStatus::Converged)
            continue; // counted below
        QVERIFY(std::isfinite(f.rowStderr) && f.rowStderr > 0);
        zr.push_back((f.params.row - truth.row) / f.rowStderr);
        zc.push_back((f.params.col - truth.col) / f.colStderr);
    }
    auto sd = [](const std::vector<double> &z) {
        double m = 0, v = 0;
        for (double x : z)
            m += x;
        m /= z.size();
        for (double x : z)
            v += (x - m) * (x - m);
        return std::sqrt(v / (z.size() - 1));
    };
    QVERIFY2(zr.size() >= std::size_t(0.97 * n), qPrintable(QString::number(zr.size())));
    const double sr = sd(zr), sc = sd(zc);
    qInfo("z-score standard deviation: row %.3f, col %.3f", sr, sc);
    QVERIFY2(std::fabs(sr - 1) <= 0.1, qPrintable(QString::number(sr)));
    QVERIFY2(std::fabs(sc - 1) <= 0.1, qPrintable(QString::number(sc)));
}

void TestFitter::noPatchLabelledAtCentre()
{
    // The realistic regime (faint peaks, neighbours, centres up to 1.5 px off): every patch gets
    // a status and a finite estimate; no label is the bare patch centre; the estimates of the
    // patches that did not converge are closer to the truth than the patch centre would be.
    PatchSimOptions so = PatchSimOptions::realistic();
    so.seed = 7;
    PatchDataset d = simulatePatches(1500, so);
    const auto truth = d.centers;
    const auto fits = fitPatches(d, {});
    applyFitLabels(d, fits);
    int atCentre = 0, others = 0;
    double errFit = 0, errCentre = 0;
    std::array<int, 5> byStatus{};
    for (std::size_t i = 0; i < fits.size(); ++i) {
        for (double v : fits[i].params.toArray())
            QVERIFY(std::isfinite(v));
        ++byStatus[int(fits[i].status)];
        QCOMPARE(d.centers[2 * i], float(fits[i].params.row));
        if (d.centers[2 * i] == 5.0f && d.centers[2 * i + 1] == 5.0f)
            ++atCentre;
        if (!fits[i].converged) {
            ++others;
            errFit += std::hypot(fits[i].params.row - truth[2 * i], fits[i].params.col - truth[2 * i + 1]);
            errCentre += std::hypot(5.0 - truth[2 * i], 5.0 - truth[2 * i + 1]);
        }
    }
    qInfo("statuses: converged %d, max-iterations %d, singular %d, bounds %d, too-faint %d",
          byStatus[0], byStatus[1], byStatus[2], byStatus[3], byStatus[4]);
    QCOMPARE(atCentre, 0);
    QVERIFY(others > 0);
    QVERIFY2(errFit < 0.5 * errCentre, qPrintable(QString("%1 vs %2").arg(errFit).arg(errCentre)));
    QVERIFY(byStatus[0] > 1350); // > 90 % converge
}

void TestFitter::keptUnweightedFitStderr()
{
    // With Poisson weights the first (unweighted) fit's standard-error pixel sums are deferred
    // until that fit is known to stay, and then recomputed from a repeated final evaluation.
    // Every field of every fit must be bit for bit what computing them at once gives, in every
    // neighbour mode (205 of these 18,000 fits keep their unweighted fit, counted once with a
    // temporary counter), and no standard error is left pending (NaN).
    PatchSimOptions so = PatchSimOptions::realistic();
    so.seed = 11;
    const PatchDataset d = simulatePatches(6000, so);
    for (NeighbourHandling mode :
         {NeighbourHandling::TwoPeak, NeighbourHandling::Mask, NeighbourHandling::Ignore}) {
        FitOptions deferred;
        deferred.neighbours = mode;
        FitOptions atOnce = deferred;
        atOnce.deferStderrSums = false;
        const auto a = fitPatches(d, deferred);
        const auto b = fitPatches(d, atOnce);
        QCOMPARE(a.size(), b.size());
        for (std::size_t i = 0; i < a.size(); ++i) {
            QVERIFY(!std::isnan(a[i].rowStderr) && !std::isnan(a[i].colStderr));
            const bool same = a[i].params.toArray() == b[i].params.toArray()
                && a[i].status == b[i].status && a[i].converged == b[i].converged
                && a[i].iterations == b[i].iterations && a[i].peaks == b[i].peaks
                && a[i].rms == b[i].rms && a[i].rowStderr == b[i].rowStderr
                && a[i].colStderr == b[i].colStderr;
            QVERIFY2(same, qPrintable(QString("mode %1, patch %2: stderr %3, %4 vs %5, %6")
                                          .arg(int(mode))
                                          .arg(i)
                                          .arg(a[i].rowStderr, 0, 'g', 17)
                                          .arg(a[i].colStderr, 0, 'g', 17)
                                          .arg(b[i].rowStderr, 0, 'g', 17)
                                          .arg(b[i].colStderr, 0, 'g', 17)));
        }
    }
}

void TestFitter::saturatedPixelsMasked()
{
    // A bright peak clipped at a 14-bit saturation level: with the clipped pixels left out
    // the centre is recovered; fitting them pulls the shape (and the residual) away.
    const PseudoVoigt truth = peak(60000, 20, 5.35, 4.8, 1.2, 1.0, 1.3, 1.1, 0.5, 0.2);
    std::vector<float> img = render(truth);
    int clipped = 0;
    for (float &v : img)
        if (v >= 16383) {
            v = 16383;
            ++clipped;
        }
    QVERIFY(clipped >= 4);
    FitOptions o;
    o.saturation = 16383;
    const FitResult masked = fitPseudoVoigt(img.data(), 11, o);
    o.saturation = 0;
    const FitResult plain = fitPseudoVoigt(img.data(), 11, o);
    QVERIFY2(centreError(masked, truth.row, truth.col) < 1e-3,
             qPrintable(QString::number(centreError(masked, truth.row, truth.col))));
    QVERIFY(std::fabs(masked.params.amplitude - truth.amplitude) < 1e-2 * truth.amplitude);
    QVERIFY(std::fabs(plain.params.amplitude - truth.amplitude) > 0.1 * truth.amplitude);
}

void TestFitter::cancellation()
{
    Monitor m;
    int calls = 0;
    m.progress = [&](double, const std::string &) { ++calls; };
    m.cancel.cancel();
    FitOptions o;
    o.threads = 1;
    QVERIFY_THROWS_EXCEPTION(CancelledError, fitPatches(m_plain, o, m));
    QCOMPARE(calls, 0);
    // Progress reaches 1 on a normal run.
    Monitor ok;
    double last = 0;
    ok.progress = [&](double f, const std::string &) { last = std::max(last, f); };
    fitPatches(m_plain.subset({0, 1, 2, 3}), o, ok);
    QCOMPARE(last, 1.0);
}

void TestFitter::realFrames()
{
    // Real HEDM peaks (tests/data/hexrd-zr, no truth): the patches the finder extracts from 5
    // frames mostly converge, and bright isolated peaks land next to the finder's own
    // intensity-weighted centroid.
    const auto source = openFrameSource(QStringLiteral(BRAGGNAC_TEST_DATA "/hexrd-zr/real_zr_20frames.h5").toStdString());
    FinderOptions fo;
    fo.threads = 2;
    const PatchDataset d = findPeaksInSource(*source, 0, 5, fo);
    QVERIFY(d.size() > 200);
    FitOptions o;
    o.threads = 2;
    const auto fits = fitPatches(d, o);
    const auto &centroid = d.extraFloat.at("/peaks/centroid").data;
    const auto &maxValue = d.extraFloat.at("/peaks/max_value").data;
    const auto &merged = d.extraFlags.at("/flags/merged");
    int converged = 0;
    std::vector<double> dist;
    for (std::size_t i = 0; i < d.size(); ++i) {
        converged += fits[i].converged;
        for (double v : fits[i].params.toArray())
            QVERIFY(std::isfinite(v));
        if (fits[i].converged && maxValue[i] >= 1000 && !merged[i])
            dist.push_back(std::hypot(fits[i].params.row + d.origin[2 * i] - centroid[2 * i],
                                      fits[i].params.col + d.origin[2 * i + 1] - centroid[2 * i + 1]));
    }
    QVERIFY2(converged > 0.8 * d.size(), qPrintable(QString("%1 of %2").arg(converged).arg(d.size())));
    QVERIFY(dist.size() >= 5);
    std::sort(dist.begin(), dist.end());
    QVERIFY2(dist[dist.size() / 2] < 0.15, qPrintable(QString::number(dist[dist.size() / 2])));
}

void TestFitter::cliFit()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const PatchDataset input = simulatePatches(600, noisy(505, 0.2));
    const QString in = dir.filePath("p.h5"), out = dir.filePath("l.h5");
    writePatchDataset(in.toStdString(), input);
    // The CLI fits as the library's defaults do (Poisson-weighted continuation on; --unweighted
    // turns it off).
    const CliResult r = runCli({"fit", in, "--out", out, "--threads", "2", "--json"}, 120000);
    QVERIFY(r.finished);
    QCOMPARE(r.exitCode, 0);
    const QJsonObject j = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(j.value("patches").toInt(), 600);
    QVERIFY(j.value("patches_per_s").toDouble() > 0);

    const auto fits = fitPatches(input, {});
    const int converged = int(
        std::count_if(fits.begin(), fits.end(), [](const FitResult &f) { return f.converged; }));
    QCOMPARE(j.value("converged").toInt(), converged);

    const PatchDataset labels = readPatchDataset(out.toStdString());
    QCOMPARE(labels.labelSource, std::string("pseudo-voigt"));
    QCOMPARE(labels.size(), std::size_t(600));
    QCOMPARE(labels.patches, input.patches);
    QCOMPARE(labels.split, input.split);
    PatchDataset expected = input;
    applyFitLabels(expected, fits);
    QCOMPARE(labels.centers, expected.centers);
    QCOMPARE(labels.extraFlags.at("/fit/converged"), expected.extraFlags.at("/fit/converged"));
    QCOMPARE(labels.extraFloat.at("/fit/params").data, expected.extraFloat.at("/fit/params").data);
    QCOMPARE(labels.extraFloat.at("/fit/params").shape,
             (std::vector<unsigned long long>{600, 10}));
    QCOMPARE(labels.extraFloat.at("/fit/residual").data,
             expected.extraFloat.at("/fit/residual").data);
    // The simulation truth travels along.
    QVERIFY(labels.extraFloat.count("/truth/params"));
}

void TestFitter::cliBadInput_data()
{
    QTest::addColumn<QString>("input");
    QTest::addColumn<QStringList>("extra");
    QTest::addColumn<QString>("mustMention");
    QTest::newRow("missing file") << "missing.h5" << QStringList{} << "missing.h5";
    QTest::newRow("not HDF5") << "text.h5" << QStringList{} << "text.h5";
    QTest::newRow("no /patches") << "empty.h5" << QStringList{} << "/patches";
    QTest::newRow("bad --max-iterations") << "good.h5" << QStringList{"--max-iterations", "0"}
                                          << "--max-iterations";
    QTest::newRow("bad --neighbours") << "good.h5" << QStringList{"--neighbours", "maybe"}
                                      << "--neighbours";
    QTest::newRow("unknown flag") << "good.h5" << QStringList{"--bogus", "1"} << "bogus";
    QTest::newRow("missing output folder")
        << "good.h5" << QStringList{"--out", "/nonexistent-folder/out.h5"} << "does not exist";
}

void TestFitter::cliBadInput()
{
    QFETCH(QString, input);
    QFETCH(QStringList, extra);
    QFETCH(QString, mustMention);
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    {
        QFile text(dir.filePath("text.h5"));
        QVERIFY(text.open(QIODevice::WriteOnly));
        text.write("this is not an HDF5 file\n");
    }
    writePatchDataset(dir.filePath("good.h5").toStdString(), simulatePatches(20, {}));
    {
        // An HDF5 file without /patches: a labelled dataset with its patches removed is not
        // something writePatchDataset makes, so write one holding only /centers by hand.
        PatchDataset d;
        writePatchDataset(dir.filePath("empty.h5").toStdString(), d);
    }
    const QStringList before = QDir(dir.path()).entryList(QDir::Files | QDir::Hidden);
    const QString out = dir.filePath("out.h5");
    const CliResult r = runCli(QStringList{"fit", dir.filePath(input), "--out", out, "--json"} + extra, 60000);
    QVERIFY(r.finished);
    QCOMPARE(r.exitStatus, QProcess::NormalExit);
    QCOMPARE(r.exitCode, 2);
    const QString err = QString::fromUtf8(r.err);
    QVERIFY2(err.contains(mustMention), qPrintable(err));
    QVERIFY(r.out.isEmpty());
    QVERIFY(!QFile::exists(out));
    QCOMPARE(QDir(dir.path()).entryList(QDir::Files | QDir::Hidden), before);
}

QTEST_GUILESS_MAIN(TestFitter)
#include "tst_fitter.moc"
