// braggnac-test-libs: braggnac_sim braggnac_peaks braggnac_io
// Peak finder: exact results on hand-built frames (max pixel, centroid, patch contents, masking,
// border, NaN/Inf), the automatic threshold, recall/precision on simulated frames (definitions in
// core/sim/peakscore.h), thread-count independence, the real Zr frames against their reference
// peak list, and the `braggnac peaks` command.
#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <tuple>

#include <nlohmann/json.hpp>

#include <QtTest>

#include "core/common/error.h"
#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "core/peaks/finder.h"
#include "core/sim/peakscore.h"
#include "core/sim/simulator.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

struct Pixel {
    int row, col;
    float value;
};

// 32 x 32 frame at level 5 (the median) with, threshold 20 (absolute):
//   E at the top-right corner (border), A a 2x2 blob whose 7x7 patch holds part of C,
//   C three equal pixels (ties: first in row-major order), B a blob whose tied maxima are
//   (19,7) and (20,5)/(20,7) with too shallow a dip (75) to count as merged; D two pixels
//   (dropped, < 3 px); an Inf cluster (never foreground).
const std::vector<Pixel> kE = {{0, 30, 50}, {0, 31, 90}, {1, 31, 50}};
const std::vector<Pixel> kA = {{10, 10, 100}, {10, 11, 50}, {11, 10, 50}, {11, 11, 30}};
const std::vector<Pixel> kC = {{12, 13, 60}, {13, 13, 60}, {13, 14, 60}};
const std::vector<Pixel> kB = {{19, 7, 80}, {20, 5, 80}, {20, 6, 75}, {20, 7, 80}};
const std::vector<Pixel> kD = {{28, 2, 70}, {28, 3, 70}};

Frame handBuilt()
{
    Frame f(32, 32, 5.f);
    for (const auto *blob : {&kE, &kA, &kC, &kB, &kD})
        for (const Pixel &p : *blob)
            f.at(p.row, p.col) = p.value;
    f.at(9, 13) = 12;    // below threshold, inside A's patch: kept as is
    f.at(8, 8) = kNaN;   // inside A's patch: replaced by the background
    f.at(25, 25) = kInf; // a 3-pixel cluster of +Inf is not a peak
    f.at(25, 26) = kInf;
    f.at(26, 25) = kInf;
    f.at(26, 26) = -kInf;
    return f;
}

void expectCentroid(const Peak &p, const std::vector<Pixel> &blob, double background)
{
    double sw = 0, sr = 0, sc = 0;
    for (const Pixel &x : blob) {
        const double w = x.value - background;
        sw += w;
        sr += w * x.row;
        sc += w * x.col;
    }
    QVERIFY(std::abs(p.centroidRow - sr / sw) < 1e-9);
    QVERIFY(std::abs(p.centroidCol - sc / sw) < 1e-9);
    QVERIFY(std::abs(p.sum - sw) < 1e-9);
    QCOMPARE(p.pixels, int(blob.size()));
}

/// Gaussian blobs (no noise) on a flat background.
Frame blobs(int size, float level, const std::vector<PseudoVoigt> &peaks)
{
    Frame f(size, size, level);
    for (const PseudoVoigt &p : peaks)
        p.render(f.data.data(), size, size, 0, 0, true, 12);
    return f;
}

PseudoVoigt gaussian(double row, double col, double amplitude, double sigma)
{
    PseudoVoigt p;
    p.amplitude = amplitude;
    p.row = row;
    p.col = col;
    p.sigmaU = p.sigmaV = sigma;
    p.eta = 0;
    return p;
}

std::string readText(const QString &path)
{
    std::ifstream in(path.toStdString());
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

} // namespace

class TestFinder : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void handBuiltFrame();
    void handBuiltPatches_data();
    void handBuiltPatches();
    void sizeFilters();
    void mergedFlag_data();
    void mergedFlag();
    void degenerateFrames_data();
    void degenerateFrames();
    void autoThreshold();
    void badOptions();
    void recallPrecision_data();
    void recallPrecision();
    void threadsIdentical();
    void darkAndRange();
    void realFrames_data();
    void realFrames();
    void cliPeaks();
    void cliBadInput_data();
    void cliBadInput();

private:
    FrameSimOptions m_smallOptions, m_largeOptions;
    SimulatedFrames m_small, m_large;
    QTemporaryDir m_dir;
};

void TestFinder::initTestCase()
{
    QVERIFY(m_dir.isValid());
    m_smallOptions.size = 512;
    m_smallOptions.peaksPerFrame = 30;
    m_smallOptions.seed = 101;
    m_small = simulateFrames(6, m_smallOptions);
    m_largeOptions.size = 2048;
    m_largeOptions.peaksPerFrame = 300;
    m_largeOptions.seed = 202;
    m_large = simulateFrames(1, m_largeOptions);
}

void TestFinder::handBuiltFrame()
{
    const Frame f = handBuilt();
    FinderOptions o;
    o.threshold = 20;
    o.patchSize = 7;
    const FrameThreshold t = frameThreshold(f, o);
    QCOMPARE(t.background, 5.0); // finite pixels only
    QCOMPARE(t.threshold, 20.0);
    const std::vector<Peak> peaks = findPeaks(f, 3, o);
    QCOMPARE(int(peaks.size()), 4); // E, A, C, B in row-major order of their maxima; D dropped
    const int rows[] = {0, 10, 12, 19}, cols[] = {31, 10, 13, 7};
    const float maxima[] = {90, 100, 60, 80};
    const bool border[] = {true, false, false, false};
    for (int i = 0; i < 4; ++i) {
        QCOMPARE(peaks[i].frame, 3);
        QCOMPARE(peaks[i].row, rows[i]);
        QCOMPARE(peaks[i].col, cols[i]);
        QCOMPARE(peaks[i].maxValue, maxima[i]);
        QCOMPARE(peaks[i].border, border[i]);
        QCOMPARE(peaks[i].merged, false);
        QCOMPARE(peaks[i].background, 5.f);
        QCOMPARE(peaks[i].originRow, rows[i] - 3);
        QCOMPARE(peaks[i].originCol, cols[i] - 3);
    }
    expectCentroid(peaks[0], kE, 5);
    expectCentroid(peaks[1], kA, 5);
    expectCentroid(peaks[2], kC, 5);
    expectCentroid(peaks[3], kB, 5);
}

void TestFinder::handBuiltPatches_data()
{
    QTest::addColumn<bool>("maskOthers");
    QTest::newRow("others masked") << true;
    QTest::newRow("others kept") << false;
}

void TestFinder::handBuiltPatches()
{
    QFETCH(bool, maskOthers);
    const Frame f = handBuilt();
    FinderOptions o;
    o.threshold = 20;
    o.patchSize = 7;
    o.maskOthers = maskOthers;
    std::vector<float> patches;
    const std::vector<Peak> peaks = findPeaks(f, 0, o, &patches);
    QCOMPARE(patches.size(), peaks.size() * 49);
    for (std::size_t k = 0; k < peaks.size(); ++k) {
        const float *patch = patches.data() + k * 49;
        for (int i = 0; i < 7; ++i) {
            for (int j = 0; j < 7; ++j) {
                const int r = peaks[k].originRow + i, c = peaks[k].originCol + j;
                float expected;
                if (r < 0 || c < 0 || r >= 32 || c >= 32)
                    expected = 5; // padding with the background
                else if (!std::isfinite(f.at(r, c)))
                    expected = 5;
                else
                    expected = f.at(r, c);
                // Pixels of another component inside the patch.
                if (maskOthers && r >= 0 && c >= 0 && r < 32 && c < 32) {
                    for (const auto *blob : {&kE, &kA, &kC, &kB, &kD}) {
                        const bool own = std::any_of(blob->begin(), blob->end(), [&](const Pixel &p) {
                            return p.row == peaks[k].row && p.col == peaks[k].col;
                        });
                        for (const Pixel &p : *blob)
                            if (!own && p.row == r && p.col == c)
                                expected = 5;
                    }
                }
                QCOMPARE(patch[i * 7 + j], expected);
            }
        }
    }
    // Spot checks on A's patch (origin (7,7)): NaN at (8,8) -> 5, the sub-threshold 12 at (9,13)
    // kept, C's pixels (12,13) and (13,13) masked only when asked.
    const float *a = patches.data() + 1 * 49;
    QCOMPARE(a[(8 - 7) * 7 + (8 - 7)], 5.f);
    QCOMPARE(a[(9 - 7) * 7 + (13 - 7)], 12.f);
    QCOMPARE(a[(10 - 7) * 7 + (10 - 7)], 100.f);
    QCOMPARE(a[(12 - 7) * 7 + (13 - 7)], maskOthers ? 5.f : 60.f);
    QCOMPARE(a[(13 - 7) * 7 + (13 - 7)], maskOthers ? 5.f : 60.f);
    // E's patch (origin (-3, 28)) crosses the top and right edges.
    const float *e = patches.data();
    QCOMPARE(e[0], 5.f);
    QCOMPARE(e[3 * 7 + 3], 90.f);
    QCOMPARE(e[3 * 7 + 2], 50.f);
    QCOMPARE(e[3 * 7 + 6], 5.f); // column 34: outside
}

void TestFinder::sizeFilters()
{
    Frame f(40, 40, 0.f);
    for (int r = 5; r < 15; ++r)
        for (int c = 5; c < 15; ++c)
            f.at(r, c) = 100 + r + c; // 100 px, max at (14,14)
    f.at(30, 30) = f.at(30, 31) = f.at(31, 30) = 50; // 3 px
    FinderOptions o;
    o.threshold = 10;
    o.maxPixels = 100;
    QCOMPARE(int(findPeaks(f, 0, o).size()), 2);
    o.maxPixels = 99;
    std::vector<Peak> p = findPeaks(f, 0, o);
    QCOMPARE(int(p.size()), 1);
    QCOMPARE(p[0].row, 30);
    o.maxPixels = 2500;
    o.minPixels = 4;
    p = findPeaks(f, 0, o);
    QCOMPARE(int(p.size()), 1);
    QCOMPARE(p[0].row, 14);
    QCOMPARE(p[0].col, 14);
    QCOMPARE(p[0].pixels, 100);
}

void TestFinder::mergedFlag_data()
{
    QTest::addColumn<double>("separation");
    QTest::addColumn<double>("secondAmplitude");
    QTest::addColumn<double>("saturation");
    QTest::addColumn<bool>("merged");
    QTest::newRow("two peaks 6 px apart") << 6.0 << 900.0 << 0.0 << true;
    QTest::newRow("second one at 40%") << 6.0 << 400.0 << 0.0 << false;
    QTest::newRow("too close to show a dip") << 2.0 << 1000.0 << 0.0 << false;
    QTest::newRow("one saturated peak (plateau)") << 0.0 << 0.0 << 300.0 << false;
    QTest::newRow("two saturated peaks") << 9.0 << 1000.0 << 300.0 << true;
}

void TestFinder::mergedFlag()
{
    QFETCH(double, separation);
    QFETCH(double, secondAmplitude);
    QFETCH(double, saturation);
    QFETCH(bool, merged);
    std::vector<PseudoVoigt> peaks = {gaussian(20, 20, 1000, 2.0)};
    if (secondAmplitude > 0)
        peaks.push_back(gaussian(20, 20 + separation, secondAmplitude, 2.0));
    Frame f = blobs(48, 10, peaks);
    if (saturation > 0)
        for (float &v : f.data)
            v = std::min(v, float(saturation));
    FinderOptions o;
    o.threshold = 30;
    const std::vector<Peak> found = findPeaks(f, 0, o);
    QCOMPARE(int(found.size()), 1); // one component either way
    QCOMPARE(found[0].merged, merged);
}

void TestFinder::degenerateFrames_data()
{
    QTest::addColumn<int>("rows");
    QTest::addColumn<int>("cols");
    QTest::addColumn<float>("fill");
    QTest::addColumn<double>("threshold");
    QTest::addColumn<int>("expected");
    QTest::newRow("empty 0x0") << 0 << 0 << 0.f << -1.0 << 0;
    QTest::newRow("all zero, automatic") << 64 << 64 << 0.f << -1.0 << 0;
    QTest::newRow("all zero, absolute 0") << 64 << 64 << 0.f << 0.0 << 0;
    QTest::newRow("constant 100, automatic") << 64 << 64 << 100.f << -1.0 << 0;
    QTest::newRow("all NaN") << 64 << 64 << kNaN << -1.0 << 0;
    QTest::newRow("all +Inf, absolute") << 64 << 64 << kInf << 10.0 << 0;
    QTest::newRow("all -Inf") << 64 << 64 << -kInf << -1.0 << 0;
    QTest::newRow("1x1 at the threshold") << 1 << 1 << 7.f << 7.0 << 0;
    QTest::newRow("1x1 above the threshold") << 1 << 1 << 7.f << 6.0 << 1;
}

void TestFinder::degenerateFrames()
{
    QFETCH(int, rows);
    QFETCH(int, cols);
    QFETCH(float, fill);
    QFETCH(double, threshold);
    QFETCH(int, expected);
    const Frame f(rows, cols, fill);
    FinderOptions o;
    o.threshold = threshold;
    o.minPixels = 1;
    o.patchSize = 3;
    std::vector<float> patches;
    const std::vector<Peak> peaks = findPeaks(f, 0, o, &patches);
    QCOMPARE(int(peaks.size()), expected);
    QCOMPARE(int(patches.size()), 9 * expected);
    if (expected == 1) { // the one pixel, padded with the background (its own value: the median)
        QVERIFY(peaks[0].border);
        QVERIFY(std::all_of(patches.begin(), patches.end(), [&](float v) { return v == fill; }));
    }
    const FrameThreshold t = frameThreshold(f, o);
    QVERIFY(std::isfinite(t.background) && std::isfinite(t.sigma) && std::isfinite(t.threshold));
}

void TestFinder::autoThreshold()
{
    // 11 x 11 pixels 0..120: median 60, MAD 30, sigma 1.4826 * 30.
    Frame f(11, 11);
    std::iota(f.data.begin(), f.data.end(), 0.f);
    std::reverse(f.data.begin(), f.data.end());
    FinderOptions o;
    o.autoSigma = 2;
    FrameThreshold t = frameThreshold(f, o);
    QCOMPARE(t.background, 60.0);
    QVERIFY(std::abs(t.sigma - 1.4826 * 30) < 1e-9);
    QVERIFY(std::abs(t.threshold - (60 + 2 * 1.4826 * 30)) < 1e-9);
    // NaN/Inf pixels do not count.
    f.at(0, 0) = kNaN; // was 120
    f.at(0, 1) = kInf; // was 119
    t = frameThreshold(f, o);
    QCOMPARE(t.background, 59.0); // median of 0..118
    f.at(0, 2) = -kInf; // was 118: 0..117, even count, mean of 58 and 59
    QCOMPARE(frameThreshold(f, o).background, 58.5);
    // Large frames use a subsample: a ramp 0..N-1 still gives the median within 0.1%.
    Frame big(2048, 2048);
    std::iota(big.data.begin(), big.data.end(), 0.f);
    t = frameThreshold(big, o);
    const double n = double(big.data.size());
    QVERIFY(std::abs(t.background - n / 2) < 1e-3 * n);
    QVERIFY(std::abs(t.sigma - 1.4826 * n / 4) < 1e-3 * n);
    // On the simulated frames the robust sigma matches sqrt(background + readNoise^2).
    t = frameThreshold(m_large.frames[0], o);
    QVERIFY(std::abs(t.background - 20) < 4);
    QVERIFY(std::abs(t.sigma - std::sqrt(20.0 + 9.0)) < 1.2);
}

void TestFinder::badOptions()
{
    const Frame f(16, 16, 0.f);
    FinderOptions o;
    o.patchSize = 10;
    QVERIFY_THROWS_EXCEPTION(InputError, findPeaks(f, 0, o));
    o = FinderOptions();
    o.minPixels = 5;
    o.maxPixels = 4;
    QVERIFY_THROWS_EXCEPTION(InputError, findPeaks(f, 0, o));
}

void TestFinder::recallPrecision_data()
{
    QTest::addColumn<bool>("large");
    QTest::addColumn<int>("minCounted"); // the score must rest on at least this many peaks
    QTest::newRow("6 frames 512x512, 30 peaks each") << false << 80;
    QTest::newRow("1 frame 2048x2048, 300 peaks") << true << 150;
}

void TestFinder::recallPrecision()
{
    QFETCH(bool, large);
    QFETCH(int, minCounted);
    const SimulatedFrames &sim = large ? m_large : m_small;
    const FrameSimOptions &so = large ? m_largeOptions : m_smallOptions;
    FinderOptions o;
    std::vector<Peak> peaks;
    findPeaksInFrames(sim.frames, o, {}, &peaks);
    const PeakScore score = scorePeaks(sim, so, peaks, o);
    qInfo("recall %d/%d, precision %d/%d", score.isolatedBrightMatched, score.isolatedBright,
          score.precisionMatched, score.precisionCounted);
    QVERIFY(score.isolatedBright >= minCounted);
    QVERIFY(score.precisionCounted >= minCounted);
    QVERIFY2(score.recall() >= 0.99, qPrintable(QString::number(score.recall())));
    QVERIFY2(score.precision() >= 0.99, qPrintable(QString::number(score.precision())));
    // The matched centroids are accurate: median error well below the 1.5 px match radius.
    std::vector<double> errors;
    for (std::size_t i = 0; i < sim.truth.size(); ++i)
        if (score.truth[i].isolated && score.truth[i].bright && score.truth[i].matched >= 0) {
            const Peak &p = peaks[score.truth[i].matched];
            errors.push_back(std::hypot(p.centroidRow - sim.truth[i].params.row,
                                        p.centroidCol - sim.truth[i].params.col));
        }
    std::nth_element(errors.begin(), errors.begin() + errors.size() / 2, errors.end());
    QVERIFY2(errors[errors.size() / 2] < 0.3, qPrintable(QString::number(errors[errors.size() / 2])));
    // Bright isolated peaks away from others are not flagged as merged (few false flags).
    int merged = 0, counted = 0;
    for (std::size_t i = 0; i < sim.truth.size(); ++i)
        if (score.truth[i].isolated && score.truth[i].matched >= 0) {
            ++counted;
            merged += peaks[score.truth[i].matched].merged;
        }
    QVERIFY2(merged <= counted / 50, qPrintable(QString::number(merged)));
}

void TestFinder::threadsIdentical()
{
    FinderOptions o;
    o.threads = 1;
    std::vector<Peak> p1, p2;
    const PatchDataset d1 = findPeaksInFrames(m_small.frames, o, {}, &p1);
    o.threads = 2;
    const PatchDataset d2 = findPeaksInFrames(m_small.frames, o, {}, &p2);
    QVERIFY(d1.size() > 100);
    QCOMPARE(d1.size(), p1.size());
    QVERIFY(d1.patches == d2.patches);
    QVERIFY(d1.origin == d2.origin);
    QVERIFY(d1.frameIndex == d2.frameIndex);
    QVERIFY(d1.extraFlags == d2.extraFlags);
    for (const auto &[name, array] : d1.extraFloat) {
        QVERIFY(d2.extraFloat.count(name));
        QVERIFY(array.data == d2.extraFloat.at(name).data);
        QCOMPARE(array.shape.front(), (unsigned long long)d1.size());
    }
    // Ordered by frame, then by the row-major position of the maximum pixel.
    for (std::size_t i = 1; i < p1.size(); ++i) {
        const auto key = [](const Peak &p) { return std::make_tuple(p.frame, p.row, p.col); };
        QVERIFY(key(p1[i - 1]) < key(p1[i]));
    }
    // Every patch holds its own maximum at the centre.
    for (std::size_t i = 0; i < p1.size(); ++i)
        QCOMPARE(d1.patch(i)[5 * 11 + 5], p1[i].maxValue);
}

void TestFinder::darkAndRange()
{
    const QString path = m_dir.filePath(QStringLiteral("dark_range.h5"));
    std::vector<Frame> frames(m_small.frames.begin(), m_small.frames.begin() + 4);
    writeHdf5Frames(path.toStdString(), frames);
    const auto source = openFrameSource(path.toStdString());
    FinderOptions o;
    o.threads = 2;
    // A constant dark of 15 counts is the same as finding on (frame - 15) clipped at 0.
    const Frame dark(512, 512, 15.f);
    std::vector<Peak> withDark, reference;
    const PatchDataset d = findPeaksInSource(*source, 1, 3, o, &dark, {}, &withDark);
    std::vector<Frame> shifted;
    for (int i = 0; i < 4; ++i)
        shifted.push_back(subtractDark(frames[i], dark));
    std::vector<Peak> all;
    findPeaksInFrames(shifted, o, {}, &all);
    for (const Peak &p : all)
        if (p.frame == 1 || p.frame == 2)
            reference.push_back(p);
    QCOMPARE(withDark.size(), reference.size());
    QVERIFY(!withDark.empty());
    for (std::size_t i = 0; i < withDark.size(); ++i) {
        QCOMPARE(withDark[i].frame, reference[i].frame);
        QCOMPARE(withDark[i].row, reference[i].row);
        QCOMPARE(withDark[i].col, reference[i].col);
        QCOMPARE(withDark[i].maxValue, reference[i].maxValue);
    }
    QVERIFY(std::all_of(d.frameIndex.begin(), d.frameIndex.end(), [](int f) { return f == 1 || f == 2; }));
    // Progress per frame; bad range and wrong dark shape are InputErrors naming the file.
    int reports = 0;
    Monitor m;
    m.progress = [&](double, const std::string &) { ++reports; };
    findPeaksInSource(*source, 0, 4, o, nullptr, m);
    QCOMPARE(reports, 4);
    try {
        findPeaksInSource(*source, 2, 9, o);
        QFAIL("expected InputError");
    } catch (const InputError &e) {
        QVERIFY(std::string(e.what()).find("dark_range.h5") != std::string::npos);
    }
    const Frame wrongDark(100, 100, 0.f);
    QVERIFY_THROWS_EXCEPTION(InputError, findPeaksInSource(*source, 0, 1, o, &wrongDark));
    Monitor cancelled;
    cancelled.cancel.cancel();
    QVERIFY_THROWS_EXCEPTION(CancelledError, findPeaksInSource(*source, 0, 4, o, nullptr, cancelled));
}

void TestFinder::realFrames_data()
{
    QTest::addColumn<QString>("reference");
    QTest::addColumn<double>("threshold");
    QTest::newRow("median + 100") << "real_zr_peaks_ref.json" << 100.0;
    QTest::newRow("median + 20") << "real_zr_peaks_ref_thr20.json" << 20.0;
}

void TestFinder::realFrames()
{
    // Same algorithm as the reference (scipy.ndimage, see its "method"): the median of these
    // frames is 0, so threshold = 0 + T; components >= 3 px, no upper size limit.
    // One deliberate difference: on ties we take the first maximum in row-major order, as the
    // method says; the reference's scipy.ndimage.maximum_position(frame, labels, [list]) does not
    // always (frame 9: two 208-count pixels at (474,1173) and (474,1174), it reports the second).
    // Such peaks must be real ties: same value, ours first in row-major order.
    QFETCH(QString, reference);
    QFETCH(double, threshold);
    const QString dir = QStringLiteral(BRAGGNAC_TEST_DATA "/hexrd-zr/");
    const nlohmann::json ref = nlohmann::json::parse(readText(dir + reference));
    const auto source = openFrameSource((dir + "real_zr_20frames.h5").toStdString());
    QCOMPARE(source->frameCount(), 20);
    FinderOptions o;
    o.threshold = threshold;
    o.minPixels = 3;
    o.maxPixels = INT_MAX;
    o.threads = 2;
    std::vector<Peak> peaks;
    findPeaksInSource(*source, 0, 20, o, nullptr, {}, &peaks);
    int total = 0, ties = 0;
    for (const auto &frame : ref["per_frame"]) {
        const int f = frame["frame"];
        QCOMPARE(frame["median"].get<double>(), 0.0);
        std::vector<Peak> mine;
        for (const Peak &p : peaks)
            if (p.frame == f)
                mine.push_back(p);
        QCOMPARE(int(mine.size()), frame["n_peaks"].get<int>());
        const Frame pixels = source->readFrame(f);
        // Reference rows: centroid_row, centroid_col, max_row, max_col, npix, max_value, sum.
        for (const auto &row : frame["peaks"]) {
            const std::vector<double> r = row.get<std::vector<double>>();
            const auto it = std::find_if(mine.begin(), mine.end(), [&](const Peak &p) {
                return std::abs(p.centroidRow - r[0]) < 1e-2 && std::abs(p.centroidCol - r[1]) < 1e-2;
            });
            QVERIFY2(it != mine.end(), qPrintable(QStringLiteral("frame %1: no peak with centroid (%2, %3)")
                                                      .arg(f).arg(r[0]).arg(r[1])));
            const Peak &p = *it;
            QCOMPARE(p.pixels, int(r[4]));
            QCOMPARE(double(p.maxValue), r[5]);
            QCOMPARE(p.sum, r[6]);
            QCOMPARE(p.background, 0.f);
            if (p.row != int(r[2]) || p.col != int(r[3])) {
                ++ties;
                QCOMPARE(pixels.at(int(r[2]), int(r[3])), p.maxValue);
                QVERIFY(std::make_pair(p.row, p.col) < std::make_pair(int(r[2]), int(r[3])));
            }
            ++total;
        }
    }
    qInfo("%d peaks match the reference; %d of them are ties resolved in row-major order", total, ties);
    QVERIFY(total > 50);
    QVERIFY(ties <= total / 20);
}

void TestFinder::cliPeaks()
{
    const QString frames = m_dir.filePath(QStringLiteral("cli_frames.h5"));
    const QString out = m_dir.filePath(QStringLiteral("cli_patches.h5"));
    std::vector<Frame> f(m_small.frames.begin(), m_small.frames.begin() + 3);
    writeHdf5Frames(frames.toStdString(), f);
    const CliResult r = runCli({"peaks", frames, "--out", out, "--frames", "1:3", "--json", "--threads", "2"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const nlohmann::json j = nlohmann::json::parse(r.out.toStdString());
    QCOMPARE(j["frames"].get<int>(), 2);
    QVERIFY(j["frames_per_s"].get<double>() > 0);
    // Same peaks as the library on frames 1 and 2.
    FinderOptions o;
    std::vector<Peak> expected;
    findPeaksInFrames(f, o, {}, &expected);
    expected.erase(std::remove_if(expected.begin(), expected.end(), [](const Peak &p) { return p.frame == 0; }),
                   expected.end());
    QCOMPARE(j["peaks"].get<std::size_t>(), expected.size());
    const PatchDataset d = readPatchDataset(out.toStdString());
    QCOMPARE(d.size(), expected.size());
    QCOMPARE(d.patchSize, 11);
    QVERIFY(!d.labelled());
    QCOMPARE(d.origin.size(), 2 * expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        QCOMPARE(d.frameIndex[i], expected[i].frame);
        QCOMPARE(d.origin[2 * i], expected[i].originRow);
        QCOMPARE(d.origin[2 * i + 1], expected[i].originCol);
        QCOMPARE(d.patch(i)[60], expected[i].maxValue);
    }
    QVERIFY(d.extraFlags.count("/flags/border") && d.extraFlags.count("/flags/merged"));
    QCOMPARE(d.extraFloat.at("/peaks/centroid").shape,
             std::vector<unsigned long long>({expected.size(), 2}));

    // Options reach the finder: a higher threshold finds fewer peaks, --patch-size changes S.
    const CliResult r2 = runCli({"peaks", frames, "--out", out, "--threshold", "2000", "--patch-size", "7",
                                 "--min-pixels", "2", "--json"});
    QVERIFY2(r2.exitCode == 0, r2.err.constData());
    const nlohmann::json j2 = nlohmann::json::parse(r2.out.toStdString());
    QCOMPARE(j2["frames"].get<int>(), 3);
    o.threshold = 2000;
    o.patchSize = 7;
    o.minPixels = 2;
    QCOMPARE(j2["peaks"].get<std::size_t>(), findPeaksInFrames(f, o).size());
    QCOMPARE(readPatchDataset(out.toStdString()).patchSize, 7);
}

void TestFinder::cliBadInput_data()
{
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("mentions");
    QTest::newRow("missing file") << QStringList{"peaks", "@DIR@/nope.h5", "--out", "@OUT@"} << "nope.h5";
    QTest::newRow("not a frame file") << QStringList{"peaks", "@DIR@/notes.txt", "--out", "@OUT@"} << "notes.txt";
    QTest::newRow("wrong dataset") << QStringList{"peaks", "@DIR@/cli_frames.h5", "--out", "@OUT@", "--dataset", "/nothing"} << "/nothing";
    QTest::newRow("range outside the file") << QStringList{"peaks", "@DIR@/cli_frames.h5", "--out", "@OUT@", "--frames", "2:9"} << "cli_frames.h5";
    QTest::newRow("unparsable range") << QStringList{"peaks", "@DIR@/cli_frames.h5", "--out", "@OUT@", "--frames", "a:b"} << "--frames";
    QTest::newRow("even patch size") << QStringList{"peaks", "@DIR@/cli_frames.h5", "--out", "@OUT@", "--patch-size", "10"} << "--patch-size";
    QTest::newRow("dark of another shape") << QStringList{"peaks", "@DIR@/cli_frames.h5", "--out", "@OUT@", "--dark", "@DIR@/small_dark.h5"} << "dark";
    QTest::newRow("unknown option") << QStringList{"peaks", "@DIR@/cli_frames.h5", "--out", "@OUT@", "--thresold", "5"} << "--thresold";
}

void TestFinder::cliBadInput()
{
    QFETCH(QStringList, args);
    QFETCH(QString, mentions);
    {
        std::ofstream(m_dir.filePath(QStringLiteral("notes.txt")).toStdString()) << "not frames\n";
        if (!QFile::exists(m_dir.filePath(QStringLiteral("cli_frames.h5"))))
            writeHdf5Frames(m_dir.filePath(QStringLiteral("cli_frames.h5")).toStdString(),
                            {m_small.frames[0], m_small.frames[1], m_small.frames[2]});
        writeHdf5Frames(m_dir.filePath(QStringLiteral("small_dark.h5")).toStdString(), {Frame(8, 8, 1.f)});
    }
    const QString out = m_dir.filePath(QStringLiteral("bad_out.h5"));
    for (QString &a : args)
        a.replace(QStringLiteral("@DIR@"), m_dir.path()).replace(QStringLiteral("@OUT@"), out);
    const CliResult r = runCli(args);
    QCOMPARE(r.exitCode, 2);
    const QString err = QString::fromUtf8(r.err).trimmed();
    QVERIFY2(err.section(QLatin1Char('\n'), 0, 0).contains(mentions), qPrintable(err));
    QVERIFY(r.out.isEmpty());
    QVERIFY(!QFile::exists(out));
    // No temporary file left behind.
    QVERIFY(QDir(m_dir.path()).entryList({QStringLiteral(".bad_out*")}, QDir::Hidden | QDir::Files).isEmpty());
}

QTEST_GUILESS_MAIN(TestFinder)
#include "tst_finder.moc"
