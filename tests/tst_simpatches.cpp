// braggnac-test-libs: braggnac_sim braggnac_io
// Patch simulator: determinism (seed, thread count), labels = true centres (the truth renders the
// noiseless patch exactly; the centroid of a symmetric peak sits on the label), neighbour
// fraction, split fractions, noise statistics, option checks and the HDF5 round trip.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <QtTest>

#include "core/common/error.h"
#include "core/io/patchdataset.h"
#include "core/sim/simulator.h"

using namespace braggnac::core;

namespace {

constexpr int kP = PseudoVoigt::kParameterCount;

PatchSimOptions noiseless(PatchSimOptions o)
{
    o.poisson = false;
    o.readNoise = 0;
    return o;
}

PseudoVoigt truthOf(const PatchDataset &d, std::size_t i, const char *path = "/truth/params")
{
    std::array<double, kP> a{};
    const auto &t = d.extraFloat.at(path).data;
    for (int j = 0; j < kP; ++j)
        a[j] = t[i * kP + j];
    return PseudoVoigt::fromArray(a);
}

bool identical(const PatchDataset &a, const PatchDataset &b)
{
    return a.patches == b.patches && a.centers == b.centers && a.split == b.split
        && a.extraFloat.at("/truth/params").data == b.extraFloat.at("/truth/params").data
        && a.extraFlags.at("/flags/neighbour") == b.extraFlags.at("/flags/neighbour");
}

} // namespace

class TestSimPatches : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void determinism_data();
    void determinism();
    void seedChangesOutput();
    void truthRendersPatch_data();
    void truthRendersPatch();
    void centroidOnLabel_data();
    void centroidOnLabel();
    void neighbourFraction_data();
    void neighbourFraction();
    void splitFractions_data();
    void splitFractions();
    void noiseStatistics();
    void badOptions_data();
    void badOptions();
    void boundaryOptionsAccepted_data();
    void boundaryOptionsAccepted();
    void cancellation();
    void fileRoundTrip();
    void realisticRegime();
    void realisticIsPixelIntegrated();
};

void TestSimPatches::determinism_data()
{
    QTest::addColumn<int>("threadsA");
    QTest::addColumn<int>("threadsB");
    QTest::addColumn<int>("n");
    QTest::newRow("1 vs 2 threads") << 1 << 2 << 3001;
    QTest::newRow("2 vs 7 threads") << 2 << 7 << 2500;
    QTest::newRow("same call twice") << 1 << 1 << 777;
}

void TestSimPatches::determinism()
{
    QFETCH(int, threadsA);
    QFETCH(int, threadsB);
    QFETCH(int, n);
    PatchSimOptions o;
    o.seed = 42;
    o.threads = threadsA;
    const PatchDataset a = simulatePatches(n, o);
    o.threads = threadsB;
    const PatchDataset b = simulatePatches(n, o);
    QCOMPARE(a.size(), std::size_t(n));
    QVERIFY(identical(a, b));
    // A prefix run gives the prefix: every patch depends only on (seed, index).
    const PatchDataset c = simulatePatches(100, o);
    QVERIFY(std::equal(c.patches.begin(), c.patches.end(), a.patches.begin()));
}

void TestSimPatches::seedChangesOutput()
{
    PatchSimOptions o;
    o.seed = 1;
    const PatchDataset a = simulatePatches(200, o);
    o.seed = 2;
    const PatchDataset b = simulatePatches(200, o);
    QVERIFY(a.patches != b.patches);
    QVERIFY(a.centers != b.centers);
}

void TestSimPatches::truthRendersPatch_data()
{
    QTest::addColumn<int>("patchSize");
    QTest::addColumn<double>("neighbourFraction");
    QTest::newRow("11 px, no neighbours") << 11 << 0.0;
    QTest::newRow("15 px, no neighbours") << 15 << 0.0;
    QTest::newRow("11 px, all neighbours") << 11 << 1.0;
}

void TestSimPatches::truthRendersPatch()
{
    QFETCH(int, patchSize);
    QFETCH(double, neighbourFraction);
    PatchSimOptions o = noiseless({});
    o.patchSize = patchSize;
    o.neighbourFraction = neighbourFraction;
    o.seed = 3;
    const std::size_t n = 300;
    const PatchDataset d = simulatePatches(n, o);
    QCOMPARE(d.labelSource, std::string("simulation"));
    QCOMPARE(d.patchSize, patchSize);
    const std::size_t pix = std::size_t(patchSize) * patchSize;
    std::vector<float> img(pix);
    double maxNeighbourPart = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const PseudoVoigt t = truthOf(d, i);
        // The label is the rendered peak's centre.
        QCOMPARE(d.centers[2 * i], float(t.row));
        QCOMPARE(d.centers[2 * i + 1], float(t.col));
        QCOMPARE(d.extraFloat.at("/truth/amplitude").data[i], float(t.amplitude));
        t.render(img.data(), patchSize, patchSize);
        if (neighbourFraction > 0) {
            const PseudoVoigt q = truthOf(d, i, "/truth/neighbour_params");
            const double dist = std::hypot(q.row - t.row, q.col - t.col);
            QVERIFY2(dist >= 3.0 - 1e-4 && dist <= 7.0 + 1e-4, qPrintable(QString::number(dist)));
            QVERIFY(q.amplitude <= t.amplitude * (1 + 1e-6));
            double part = 0;
            for (std::size_t k = 0; k < pix; ++k)
                part = std::max(part, double(d.patch(i)[k] - img[k]));
            maxNeighbourPart = std::max(maxNeighbourPart, part / q.amplitude);
            q.render(img.data(), patchSize, patchSize, 0, 0, true);
        }
        for (std::size_t k = 0; k < pix; ++k)
            QVERIFY(std::fabs(d.patch(i)[k] - img[k]) <= 1e-4f * std::max(1.0f, img[k]));
    }
    if (neighbourFraction > 0)
        QVERIFY(maxNeighbourPart > 0.2); // the neighbour is visible in the patch
}

void TestSimPatches::centroidOnLabel_data()
{
    QTest::addColumn<double>("sigma");
    QTest::addColumn<double>("jitter");
    QTest::newRow("narrow, jitter 1") << 0.7 << 1.0;
    QTest::newRow("wide, jitter 1") << 1.5 << 1.0;
    QTest::newRow("wide, no jitter") << 1.5 << 0.0;
}

void TestSimPatches::centroidOnLabel()
{
    // Round, nearly Gaussian peaks (eta < 0.1 and a short Lorentzian part): the
    // background-subtracted, intensity-weighted centroid is the true centre up to the truncated
    // tails. A label off by a convention (half a pixel, rows and columns swapped) fails.
    QFETCH(double, sigma);
    QFETCH(double, jitter);
    PatchSimOptions o = noiseless({});
    o.sigmaMin = o.sigmaMax = sigma;
    o.gammaMin = o.gammaMax = 0.3;
    o.neighbourFraction = 0;
    o.centreJitter = jitter;
    o.seed = 11;
    const std::size_t n = 3000;
    const PatchDataset d = simulatePatches(n, o);
    const int s = d.patchSize;
    const auto &truth = d.extraFloat.at("/truth/params").data;
    double maxErr = 0, minR = 1e9, maxR = -1e9;
    int used = 0;
    for (std::size_t i = 0; i < n; ++i) {
        minR = std::min(minR, double(d.centers[2 * i]));
        maxR = std::max(maxR, double(d.centers[2 * i]));
        if (truth[i * kP + 8] >= 0.1)
            continue;
        ++used;
        const double bg = truth[i * kP + 1];
        double sw = 0, sr = 0, sc = 0;
        for (int r = 0; r < s; ++r)
            for (int c = 0; c < s; ++c) {
                const double w = d.patch(i)[r * s + c] - bg;
                sw += w;
                sr += w * r;
                sc += w * c;
            }
        maxErr = std::max({maxErr, std::fabs(sr / sw - d.centers[2 * i]),
                           std::fabs(sc / sw - d.centers[2 * i + 1])});
    }
    QVERIFY(used > 200);
    QVERIFY2(maxErr < 0.02, qPrintable(QString::number(maxErr)));
    // Centres spread over the jitter range, and stay inside it.
    const double mid = s / 2;
    QVERIFY(minR >= mid - jitter - 1e-6 && maxR <= mid + jitter + 1e-6);
    if (jitter > 0)
        QVERIFY(minR < mid - 0.8 * jitter && maxR > mid + 0.8 * jitter);
    else
        QCOMPARE(minR, mid);
}

void TestSimPatches::neighbourFraction_data()
{
    QTest::addColumn<double>("fraction");
    QTest::newRow("none") << 0.0;
    QTest::newRow("default 0.2") << 0.2;
    QTest::newRow("half") << 0.5;
    QTest::newRow("all") << 1.0;
}

void TestSimPatches::neighbourFraction()
{
    QFETCH(double, fraction);
    PatchSimOptions o;
    o.neighbourFraction = fraction;
    o.seed = 5;
    const std::size_t n = 4000;
    const PatchDataset d = simulatePatches(n, o);
    const auto &flags = d.extraFlags.at("/flags/neighbour");
    QCOMPARE(flags.size(), n);
    const double count = double(std::count(flags.begin(), flags.end(), 1));
    const double sd = std::sqrt(n * fraction * (1 - fraction));
    QVERIFY2(std::fabs(count - n * fraction) <= 4 * sd + 1e-9,
             qPrintable(QString("%1 of %2").arg(count).arg(n)));
    // Neighbour parameters are recorded exactly for the flagged patches.
    const auto &q = d.extraFloat.at("/truth/neighbour_params").data;
    for (std::size_t i = 0; i < n; ++i)
        QCOMPARE(q[i * kP] > 0, flags[i] == 1);
}

void TestSimPatches::splitFractions_data()
{
    QTest::addColumn<int>("n");
    QTest::addColumn<int>("train");
    QTest::addColumn<int>("validation");
    QTest::addColumn<int>("test");
    QTest::newRow("1000") << 1000 << 800 << 100 << 100;
    QTest::newRow("1005") << 1005 << 805 << 100 << 100;
    QTest::newRow("7") << 7 << 7 << 0 << 0;
}

void TestSimPatches::splitFractions()
{
    QFETCH(int, n);
    QFETCH(int, train);
    QFETCH(int, validation);
    QFETCH(int, test);
    const PatchDataset d = simulatePatches(n, {});
    QCOMPARE(int(d.split.size()), n);
    QCOMPARE(int(std::count(d.split.begin(), d.split.end(), std::uint8_t(Split::Train))), train);
    QCOMPARE(int(std::count(d.split.begin(), d.split.end(), std::uint8_t(Split::Validation))),
             validation);
    QCOMPARE(int(std::count(d.split.begin(), d.split.end(), std::uint8_t(Split::Test))), test);
}

void TestSimPatches::noiseStatistics()
{
    // Poisson + Gaussian read noise: residuals against the rendered truth have mean 0 and
    // variance expected + readNoise^2.
    PatchSimOptions o;
    o.neighbourFraction = 0;
    o.amplitudeMin = 50;
    o.amplitudeMax = 5000;
    o.readNoise = 4;
    o.seed = 9;
    const std::size_t n = 2000;
    const PatchDataset d = simulatePatches(n, o);
    const int s = d.patchSize;
    std::vector<float> img(s * s);
    double sumZ = 0, sumZ2 = 0;
    std::size_t count = 0;
    for (std::size_t i = 0; i < n; ++i) {
        truthOf(d, i).render(img.data(), s, s);
        for (int k = 0; k < s * s; ++k) {
            const double var = img[k] + o.readNoise * o.readNoise;
            const double z = (d.patch(i)[k] - img[k]) / std::sqrt(var);
            sumZ += z;
            sumZ2 += z * z;
            ++count;
        }
    }
    const double mean = sumZ / count, var = sumZ2 / count - mean * mean;
    QVERIFY2(std::fabs(mean) < 0.01, qPrintable(QString::number(mean)));
    QVERIFY2(std::fabs(var - 1) < 0.02, qPrintable(QString::number(var)));
    // Amplitudes are log-uniform over [min, max].
    const auto &a = d.extraFloat.at("/truth/amplitude").data;
    double sumLog = 0;
    for (float v : a) {
        QVERIFY(v >= o.amplitudeMin * 0.999 && v <= o.amplitudeMax * 1.001);
        sumLog += std::log(v);
    }
    const double expected = 0.5 * (std::log(o.amplitudeMin) + std::log(o.amplitudeMax));
    QVERIFY(std::fabs(sumLog / n - expected) < 0.1);
}

void TestSimPatches::badOptions_data()
{
    QTest::addColumn<int>("patchSize");
    QTest::addColumn<double>("amplitudeMin");
    QTest::addColumn<double>("fraction");
    QTest::newRow("even size") << 10 << 100.0 << 0.2;
    QTest::newRow("tiny size") << 1 << 100.0 << 0.2;
    QTest::newRow("zero amplitude") << 11 << 0.0 << 0.2;
    QTest::newRow("fraction > 1") << 11 << 100.0 << 1.5;
}

void TestSimPatches::badOptions()
{
    QFETCH(int, patchSize);
    QFETCH(double, amplitudeMin);
    QFETCH(double, fraction);
    PatchSimOptions o;
    o.patchSize = patchSize;
    o.amplitudeMin = amplitudeMin;
    o.neighbourFraction = fraction;
    QVERIFY_THROWS_EXCEPTION(InputError, simulatePatches(10, o));
}

void TestSimPatches::boundaryOptionsAccepted_data()
{
    // The edges of every validated range are legal values (PatchSimOptions::validate).
    QTest::addColumn<int>("patchSize");
    QTest::addColumn<double>("amplitude"); // amplitude_min == amplitude_max
    QTest::addColumn<double>("jitter");
    QTest::addColumn<double>("fraction");
    QTest::addColumn<double>("background");
    QTest::newRow("3 px, jitter = S/2 = 1, all neighbours, no background") << 3 << 500.0 << 1.0 << 1.0 << 0.0;
    QTest::newRow("255 px, no jitter, no neighbours") << 255 << 20000.0 << 0.0 << 0.0 << 20.0;
    QTest::newRow("11 px, jitter = 5") << 11 << 1e-3 << 5.0 << 0.5 << 0.0;
}

void TestSimPatches::boundaryOptionsAccepted()
{
    QFETCH(int, patchSize);
    QFETCH(double, amplitude);
    QFETCH(double, jitter);
    QFETCH(double, fraction);
    QFETCH(double, background);
    PatchSimOptions o;
    o.patchSize = patchSize;
    o.amplitudeMin = o.amplitudeMax = amplitude;
    o.centreJitter = jitter;
    o.neighbourFraction = fraction;
    o.background = background;
    o.readNoise = 0;
    o.poisson = false;
    o.validate();
    const PatchDataset d = simulatePatches(20, o);
    QCOMPARE(d.size(), std::size_t(20));
    QCOMPARE(d.patchSize, patchSize);
    const double mid = patchSize / 2;
    for (std::size_t i = 0; i < d.size(); ++i) {
        QVERIFY(std::fabs(d.centers[2 * i] - mid) <= jitter + 1e-6);
        QVERIFY(std::fabs(d.centers[2 * i + 1] - mid) <= jitter + 1e-6);
    }
    if (fraction == 0)
        QVERIFY(std::all_of(d.extraFlags.at("/flags/neighbour").begin(), d.extraFlags.at("/flags/neighbour").end(),
                            [](std::uint8_t v) { return v == 0; }));
}

void TestSimPatches::cancellation()
{
    Monitor m;
    m.cancel.cancel();
    PatchSimOptions o;
    o.threads = 2;
    QVERIFY_THROWS_EXCEPTION(CancelledError, simulatePatches(5000, o, m));
}

void TestSimPatches::fileRoundTrip()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string path = dir.filePath("sim.h5").toStdString();
    PatchSimOptions o;
    o.seed = 21;
    const PatchDataset d = simulatePatches(250, o);
    writePatchDataset(path, d);
    const PatchDataset r = readPatchDataset(path);
    QCOMPARE(r.labelSource, std::string("simulation"));
    QCOMPARE(r.patchSize, 11);
    QVERIFY(identical(d, r));
    const auto &params = r.extraFloat.at("/truth/params");
    QCOMPARE(params.shape, (std::vector<unsigned long long>{250, 10}));
    QCOMPARE(r.extraFloat.at("/truth/amplitude").shape, (std::vector<unsigned long long>{250}));
}

void TestSimPatches::realisticRegime()
{
    // PatchSimOptions::realistic(): the ranges of docs/fitting.md, a quarter (+-) of patches
    // below SNR 10, ~15 % with a neighbour 4.5-7 px away, centres up to 1.5 px off; seeded.
    PatchSimOptions o = PatchSimOptions::realistic();
    o.seed = 11;
    const std::size_t n = 4000;
    const PatchDataset d = simulatePatches(n, o);
    const PatchDataset again = simulatePatches(n, o);
    QVERIFY(identical(d, again));
    int faint = 0, neighbours = 0;
    double maxOff = 0, minAmp = 1e30, maxAmp = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const PseudoVoigt t = truthOf(d, i);
        QVERIFY(t.amplitude >= 30 * (1 - 1e-6) && t.amplitude <= 20000 * (1 + 1e-6));
        QVERIFY(t.background >= 10 - 1e-4 && t.background <= 30 + 1e-4);
        for (double w : {t.sigmaU, t.sigmaV, t.gammaU, t.gammaV})
            QVERIFY(w >= 0.6 - 1e-6 && w <= 2.2 + 1e-6);
        maxOff = std::max({maxOff, std::fabs(t.row - 5), std::fabs(t.col - 5)});
        minAmp = std::min(minAmp, t.amplitude);
        maxAmp = std::max(maxAmp, t.amplitude);
        faint += t.amplitude / std::sqrt(t.amplitude + t.background + 9) < 10;
        if (d.extraFlags.at("/flags/neighbour")[i]) {
            ++neighbours;
            const PseudoVoigt q = truthOf(d, i, "/truth/neighbour_params");
            const double dist = std::hypot(q.row - t.row, q.col - t.col);
            QVERIFY2(dist >= 4.5 - 1e-4 && dist <= 7 + 1e-4, qPrintable(QString::number(dist)));
        }
    }
    QVERIFY(maxOff <= 1.5 + 1e-6 && maxOff > 1.45);
    QVERIFY(minAmp < 35 && maxAmp > 17000);
    QVERIFY2(faint > 0.18 * n && faint < 0.3 * n, qPrintable(QString::number(faint)));
    QVERIFY2(neighbours > 0.13 * n && neighbours < 0.17 * n, qPrintable(QString::number(neighbours)));
    // easy() is today's defaults, bit for bit.
    QVERIFY(identical(simulatePatches(200, PatchSimOptions::easy()), simulatePatches(200, PatchSimOptions{})));
}

void TestSimPatches::realisticIsPixelIntegrated()
{
    // Noiseless realistic patches hold the pixel-integrated model (6-point Gauss-Legendre), not
    // the point samples: the two differ by more than 1 % at the peak of a narrow peak.
    PatchSimOptions o = noiseless(PatchSimOptions::realistic());
    o.neighbourFraction = 0;
    o.seed = 5;
    const PatchDataset d = simulatePatches(200, o);
    std::vector<float> integ(121), point(121);
    int differs = 0;
    for (std::size_t i = 0; i < 200; ++i) {
        const PseudoVoigt t = truthOf(d, i);
        t.renderIntegrated(integ.data(), 11, 11);
        t.render(point.data(), 11, 11);
        double maxDiff = 0;
        for (int k = 0; k < 121; ++k) {
            QVERIFY(std::fabs(d.patch(i)[k] - integ[k]) <= 1e-4f * std::max(1.0f, integ[k]));
            maxDiff = std::max(maxDiff, double(std::fabs(point[k] - integ[k])) / t.amplitude);
        }
        differs += maxDiff > 0.01;
    }
    QVERIFY2(differs > 50, qPrintable(QString::number(differs)));
    // The integral of a Gaussian over a pixel: erf closed form.
    const PseudoVoigt g = PseudoVoigt::fromArray({1000, 0, 5.3, 4.9, 0.7, 0.7, 1, 1, 0, 0});
    const double kSqrt2 = std::sqrt(2.0);
    auto cell = [&](double x, double x0, double s) {
        return 0.5 * (std::erf((x + 0.5 - x0) / (kSqrt2 * s)) - std::erf((x - 0.5 - x0) / (kSqrt2 * s)));
    };
    const double twoPiS2 = 2 * 3.14159265358979323846 * 0.49;
    for (int r = 3; r <= 7; ++r)
        for (int c = 3; c <= 7; ++c) {
            const double exact = 1000 * twoPiS2 * cell(r, 5.3, 0.7) * cell(c, 4.9, 0.7);
            QVERIFY2(std::fabs(g.integrated(r, c, 8) - exact) < 1e-4 * 1000,
                     qPrintable(QString("%1 vs %2").arg(g.integrated(r, c, 8)).arg(exact)));
        }
}

QTEST_GUILESS_MAIN(TestSimPatches)
#include "tst_simpatches.moc"
