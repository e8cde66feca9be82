// braggnac-test-libs: braggnac_sim braggnac_peaks braggnac_io opencv_imgproc
// Peak finder: exact results on hand-built frames (max pixel, centroid, patch contents, masking,
// border, NaN/Inf), both split modes (one peak per component, and prominent maxima: close pairs,
// shoulders from the point symmetry -- faint peaks on bright, saturated, anisotropic flanks --
// and single anisotropic peaks never split, merged / neighbour flags, saturated plateaus),
// option validation naming fields, the automatic
// threshold, recall/precision on simulated frames (definitions in core/sim/peakscore.h), thread-
// count independence, the real Zr frames against their CC reference peak list (split none) and
// what the prominence split changes there, and the `braggnac peaks` command.
#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <random>
#include <tuple>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <QtTest>

#include "core/common/error.h"
#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "core/peaks/finder.h"
#include "core/peaks/labelling.h"
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
} // namespace
Q_DECLARE_METATYPE(Pixel)
Q_DECLARE_METATYPE(braggnac::core::PseudoVoigt)
namespace {

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
    void handBuiltFrame_data();
    void handBuiltFrame();
    void handBuiltPatches_data();
    void handBuiltPatches();
    void labellingMatchesOpenCv_data();
    void labellingMatchesOpenCv();
    void sizeFilters();
    void mergedFlag_data();
    void mergedFlag();
    void closePair_data();
    void closePair();
    void shoulderOnBrightPeak_data();
    void shoulderOnBrightPeak();
    void singlePeakNotSplit_data();
    void singlePeakNotSplit();
    void splitFlags_data();
    void splitFlags();
    void sprawlingComponent();
    void splitDataset();
    void saturatedPeak_data();
    void saturatedPeak();
    void closePairRecall();
    void degenerateFrames_data();
    void degenerateFrames();
    void autoThreshold();
    void badOptions_data();
    void badOptions();
    void recallPrecision_data();
    void recallPrecision();
    void threadsIdentical();
    void darkAndRange();
    void realFrames_data();
    void realFrames();
    void realFramesSplit();
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

void TestFinder::handBuiltFrame_data()
{
    QTest::addColumn<int>("split");
    QTest::newRow("split none") << int(SplitMode::None);
    QTest::newRow("split prominence") << int(SplitMode::Prominence);
}

void TestFinder::handBuiltFrame()
{
    // The same four peaks either way: B's second maximum (20,5) rises 5 counts above its 75-count
    // saddle, under 10% of its height, so the prominence split keeps B whole.
    QFETCH(int, split);
    const Frame f = handBuilt();
    FinderOptions o;
    o.threshold = 20;
    o.patchSize = 7;
    o.split = SplitMode(split);
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
    if (o.split == SplitMode::None) {
        expectCentroid(peaks[0], kE, 5);
    } else {
        // E touches the frame edge, so its centre is the log-parabola estimate: along both axes
        // the third sample (row 2 / column 29) is at the background, so none: the maximum pixel.
        QCOMPARE(peaks[0].centroidRow, 0.0);
        QCOMPARE(peaks[0].centroidCol, 31.0);
        QCOMPARE(peaks[0].pixels, 3);
        QCOMPARE(peaks[0].sum, 45.0 + 85.0 + 45.0);
    }
    for (const Peak &p : peaks) {
        QCOMPARE(p.componentPeaks, 1);
        QCOMPARE(p.neighbour, false);
        QCOMPARE(p.neighbourDistance, 0.0);
        QCOMPARE(p.saturatedPixels, 0); // the maximum 100 is held by one pixel: no auto level
        QCOMPARE(p.saturation, 0.f);
    }
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

void TestFinder::labellingMatchesOpenCv_data()
{
    QTest::addColumn<int>("rows");
    QTest::addColumn<int>("cols");
    QTest::addColumn<double>("density");
    QTest::newRow("sparse 64x80") << 64 << 80 << 0.05;
    QTest::newRow("half 37x53") << 37 << 53 << 0.5;   // long snaking components, U shapes
    QTest::newRow("dense 50x50") << 50 << 50 << 0.75;
    QTest::newRow("one column") << 40 << 1 << 0.6;
    QTest::newRow("one row") << 1 << 40 << 0.6;
}

// The sparse labelling (labelling.h) against cv::connectedComponents (8-connected, CV_32S): the
// same components pixel for pixel (ours numbered by first pixel in row-major order), the same
// count, edges and wrap-around included (a pixel at the end of a row is no neighbour of the
// next row's first), and nothing written outside the foreground.
void TestFinder::labellingMatchesOpenCv()
{
    QFETCH(int, rows);
    QFETCH(int, cols);
    QFETCH(double, density);
    std::mt19937 rng(17);
    std::vector<int> labels(std::size_t(rows) * cols, 0), parent;
    for (int trial = 0; trial < 20; ++trial) {
        cv::Mat mask(rows, cols, CV_8U);
        std::vector<std::size_t> foreground;
        std::bernoulli_distribution on(density);
        for (int i = 0; i < rows * cols; ++i) {
            mask.data[i] = on(rng) ? 1 : 0;
            if (mask.data[i])
                foreground.push_back(std::size_t(i));
        }
        cv::Mat cvLabels;
        const int cvCount = cv::connectedComponents(mask, cvLabels, 8, CV_32S, cv::CCL_SPAGHETTI);
        const int count = labelForeground(foreground, rows, cols, labels.data(), parent);
        QCOMPARE(count, cvCount);
        // The same partition (a one-to-one map between the two numberings; OpenCV's block scan
        // numbers in its own order), ours numbered by first pixel in row-major order.
        std::vector<int> toCv(std::size_t(count), -1), fromCv(std::size_t(count), -1);
        int nextNew = 1;
        for (int i = 0; i < rows * cols; ++i) {
            const int ours = labels[std::size_t(i)], theirs = cvLabels.ptr<int>()[i];
            QCOMPARE(ours == 0, theirs == 0);
            if (ours == 0)
                continue;
            if (toCv[std::size_t(ours)] < 0) {
                QCOMPARE(ours, nextNew++);
                QCOMPARE(fromCv[std::size_t(theirs)], -1);
                toCv[std::size_t(ours)] = theirs;
                fromCv[std::size_t(theirs)] = ours;
            }
            QCOMPARE(toCv[std::size_t(ours)], theirs);
        }
        QCOMPARE(nextNew, count);
        for (std::size_t idx : foreground)
            labels[idx] = 0;
    }
    // A hand-built case: two diagonal touches join, a row end does not touch the next row start.
    //   row 0: X . . X      (0,0) and (0,3)
    //   row 1: . X . .      (1,1): joins (0,0) diagonally
    //   row 2: X . X .      (2,0), (2,2): both join (1,1)
    //   row 3: . . . X      (3,3): joins (2,2) diagonally
    const int r = 4, c = 4;
    std::vector<int> l(16, 0);
    const std::vector<std::size_t> fg = {0, 3, 5, 8, 10, 15};
    QCOMPARE(labelForeground(fg, r, c, l.data(), parent), 3);
    QCOMPARE(l[0], 1);
    QCOMPARE(l[3], 2);
    QCOMPARE(l[5], 1);
    QCOMPARE(l[8], 1);
    QCOMPARE(l[10], 1);
    QCOMPARE(l[15], 1);
    const std::vector<std::size_t> wrap = {3, 4}; // (0,3) and (1,0): not neighbours
    std::fill(l.begin(), l.end(), 0);
    QCOMPARE(labelForeground(wrap, r, c, l.data(), parent), 3);
    QCOMPARE(l[3], 1);
    QCOMPARE(l[4], 2);
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
    // Split none: one component = one peak, flagged merged when it holds a second maximum >= 50%
    // of the height behind a >= 20% dip. Split prominence: the same frames; the second maxima
    // that stand out become peaks of their own (so nothing is left merged).
    QTest::addColumn<int>("split");
    QTest::addColumn<double>("separation");
    QTest::addColumn<double>("secondAmplitude");
    QTest::addColumn<double>("saturation");
    QTest::addColumn<bool>("merged");
    QTest::addColumn<int>("expectedPeaks");
    const int none = int(SplitMode::None), prominence = int(SplitMode::Prominence);
    QTest::newRow("none: two peaks 6 px apart") << none << 6.0 << 900.0 << 0.0 << true << 1;
    QTest::newRow("none: second one at 40%") << none << 6.0 << 400.0 << 0.0 << false << 1;
    QTest::newRow("none: too close to show a dip") << none << 2.0 << 1000.0 << 0.0 << false << 1;
    QTest::newRow("none: one saturated peak (plateau)") << none << 0.0 << 0.0 << 300.0 << false << 1;
    QTest::newRow("none: two saturated peaks") << none << 9.0 << 1000.0 << 300.0 << true << 1;
    QTest::newRow("prominence: two peaks 6 px apart") << prominence << 6.0 << 900.0 << 0.0 << false << 2;
    // The 40% one rises only 33 counts above the 378-count dip: under 10% of its height and under
    // 4 x the Poisson noise of the difference, so it is found as a shoulder (the curvature test).
    QTest::newRow("prominence: second one at 40%") << prominence << 6.0 << 400.0 << 0.0 << false << 2;
    QTest::newRow("prominence: second one at 40%, 9 px") << prominence << 9.0 << 400.0 << 0.0 << false << 2;
    QTest::newRow("prominence: too close to show a dip") << prominence << 2.0 << 1000.0 << 0.0 << false << 1;
    QTest::newRow("prominence: one saturated peak (plateau)") << prominence << 0.0 << 0.0 << 300.0 << false << 1;
    QTest::newRow("prominence: two saturated peaks") << prominence << 9.0 << 1000.0 << 300.0 << false << 2;
}

void TestFinder::mergedFlag()
{
    QFETCH(int, split);
    QFETCH(double, separation);
    QFETCH(double, secondAmplitude);
    QFETCH(double, saturation);
    QFETCH(bool, merged);
    QFETCH(int, expectedPeaks);
    std::vector<PseudoVoigt> peaks = {gaussian(20, 20, 1000, 2.0)};
    if (secondAmplitude > 0)
        peaks.push_back(gaussian(20, 20 + separation, secondAmplitude, 2.0));
    Frame f = blobs(48, 10, peaks);
    if (saturation > 0)
        for (float &v : f.data)
            v = std::min(v, float(saturation));
    FinderOptions o;
    o.threshold = 30;
    o.split = SplitMode(split);
    const std::vector<Peak> found = findPeaks(f, 0, o); // one component either way
    QCOMPARE(int(found.size()), expectedPeaks);
    for (const Peak &p : found) {
        QCOMPARE(p.merged, merged);
        QCOMPARE(p.componentPeaks, expectedPeaks);
        QCOMPARE(p.neighbour, expectedPeaks > 1);
    }
    if (expectedPeaks == 2) { // two peaks on one row: patch centres exactly `separation` apart
        QCOMPARE(found[0].neighbourDistance, separation);
        QCOMPARE(found[1].neighbourDistance, separation);
        QCOMPARE(found[0].row, 20);
        QCOMPARE(found[1].row, 20);
        QCOMPARE(found[0].col, 20);
        QCOMPARE(found[1].col, 20 + int(separation));
        QVERIFY(!found[0].shoulder);
        QCOMPARE(found[1].shoulder, QByteArray(QTest::currentDataTag()) == "prominence: second one at 40%");
    }
}

void TestFinder::closePair_data()
{
    // Two Gaussian peaks (sigma 1 px) at sub-pixel centres, `separation` px apart along a
    // direction, in one component; noiseless, or with Poisson + read noise (seeded).
    QTest::addColumn<double>("separation");
    QTest::addColumn<double>("angle"); // degrees
    QTest::addColumn<double>("ratio"); // second amplitude / first
    QTest::addColumn<bool>("noise");
    QTest::newRow("3 px, equal, along a row") << 3.0 << 0.0 << 1.0 << false;
    QTest::newRow("3 px, 3:2, along a column") << 3.0 << 90.0 << 0.67 << false;
    QTest::newRow("4 px, 2:1, diagonal") << 4.0 << 45.0 << 0.5 << false;
    // No dip on the pixel grid: found as a shoulder.
    QTest::newRow("3 px, 2:1, diagonal (shoulder)") << 3.0 << 45.0 << 0.5 << false;
    QTest::newRow("3.5 px, 3:1, 70 deg, noisy (shoulder)") << 3.5 << 70.0 << 0.33 << true;
    QTest::newRow("3 px, equal, 30 deg, noisy") << 3.0 << 30.0 << 1.0 << true;
    QTest::newRow("3.5 px, 3:2, 70 deg, noisy") << 3.5 << 70.0 << 0.67 << true;
    QTest::newRow("4.5 px, 3:1, 160 deg, noisy") << 4.5 << 160.0 << 0.33 << true;
    QTest::newRow("5 px, 1:4, 120 deg, noisy") << 5.0 << 120.0 << 0.25 << true;
    // 1:4 at 3 px: no maximum of its own; found from the brighter one's point symmetry.
    QTest::newRow("3 px, 1:4, along a row (shoulder)") << 3.0 << 0.0 << 0.25 << false;
    QTest::newRow("3 px, 1:4, 20 deg, noisy (shoulder)") << 3.0 << 20.0 << 0.25 << true;
    QTest::newRow("3 px, 1:4, 135 deg, noisy (shoulder)") << 3.0 << 135.0 << 0.25 << true;
    QTest::newRow("3.5 px, 1:8, 250 deg, noisy (shoulder)") << 3.5 << 250.0 << 0.125 << true;
}

void TestFinder::closePair()
{
    QFETCH(double, separation);
    QFETCH(double, angle);
    QFETCH(double, ratio);
    QFETCH(bool, noise);
    const double a = angle * M_PI / 180;
    const PseudoVoigt p1 = gaussian(30.3, 29.6, 4000, 1.0);
    const PseudoVoigt p2 = gaussian(30.3 + separation * std::sin(a), 29.6 + separation * std::cos(a),
                                    4000 * ratio, 1.0);
    Frame f = blobs(64, 20, {p1, p2});
    if (noise) {
        std::mt19937_64 rng(7);
        for (float &v : f.data) {
            std::poisson_distribution<int> poisson(v);
            std::normal_distribution<double> read(0, 3);
            v = float(std::max(0.0, std::round(poisson(rng) + read(rng))));
        }
    }
    FinderOptions o; // default split: prominence
    const std::vector<Peak> found = findPeaks(f, 0, o);
    QCOMPARE(int(found.size()), 2);
    for (const PseudoVoigt *t : {&p1, &p2}) {
        double best = HUGE_VAL;
        for (const Peak &p : found)
            best = std::min(best, std::hypot(p.centroidRow - t->row, p.centroidCol - t->col));
        QVERIFY2(best < 0.5, qPrintable(QStringLiteral("centre (%1, %2): nearest found %3 px")
                                            .arg(t->row).arg(t->col).arg(best)));
    }
    const bool shoulder = QByteArray(QTest::currentDataTag()).contains("shoulder");
    QCOMPARE(int(found[0].shoulder) + int(found[1].shoulder), shoulder ? 1 : 0);
    for (const Peak &p : found) {
        QCOMPARE(p.componentPeaks, 2);
        QVERIFY(p.neighbour);
        QCOMPARE(p.neighbourDistance, std::hypot(double(found[0].row - found[1].row),
                                                 double(found[0].col - found[1].col)));
        QVERIFY(!p.merged);
    }
    // The connected-component finder sees one peak.
    o.split = SplitMode::None;
    QCOMPARE(int(findPeaks(f, 0, o).size()), 1);
}

namespace {
/// Poisson counts of `f` plus Gaussian read noise, rounded, clamped at [0, saturation] (seeded).
void addNoise(Frame &f, std::uint64_t seed, double readNoise, float saturation)
{
    std::mt19937_64 rng(seed);
    for (float &v : f.data) {
        std::poisson_distribution<int> poisson(v);
        std::normal_distribution<double> read(0, readNoise);
        v = float(std::clamp(std::round(poisson(rng) + read(rng)), 0.0, double(saturation)));
    }
}

PseudoVoigt shaped(double row, double col, double amplitude, double sigmaU, double sigmaV, double gammaU,
                   double gammaV, double eta, double theta)
{
    PseudoVoigt p = gaussian(row, col, amplitude, sigmaU);
    p.sigmaV = sigmaV;
    p.gammaU = gammaU;
    p.gammaV = gammaV;
    p.eta = eta;
    p.theta = theta;
    return p;
}
} // namespace

void TestFinder::shoulderOnBrightPeak_data()
{
    // A faint peak 3-5 px from a much brighter, anisotropic, rotated pseudo-Voigt (saturated or
    // not), in one component: both found, each centre within 0.5 px of the truth, the faint one
    // flagged shoulder when it has no maximum of its own (the CC finder sees one peak).
    QTest::addColumn<PseudoVoigt>("bright");
    QTest::addColumn<double>("distance");
    QTest::addColumn<double>("angle"); // degrees
    QTest::addColumn<double>("ratio"); // faint / bright amplitude
    QTest::addColumn<double>("saturation");
    QTest::newRow("1:10 at 4 px, Gaussian") << shaped(40.2, 39.7, 8000, 1.6, 1.1, 1, 1, 0, 0.6) << 4.0 << 60.0
                                             << 0.1 << 65535.0;
    QTest::newRow("1:10 at 3.5 px, pseudo-Voigt") << shaped(40.6, 40.1, 6000, 1.2, 1.5, 1.0, 1.3, 0.5, 2.0)
                                                   << 3.5 << 200.0 << 0.1 << 65535.0;
    QTest::newRow("1:20 at 4.5 px, saturated") << shaped(39.8, 40.4, 40000, 1.4, 1.0, 1.2, 0.9, 0.3, 1.1)
                                                << 4.5 << 300.0 << 0.05 << 16383.0;
    QTest::newRow("1:6 at 5 px, Lorentzian, saturated") << shaped(40.3, 39.5, 30000, 1, 1, 1.1, 0.8, 1.0, 0.4)
                                                         << 5.0 << 110.0 << 0.17 << 16383.0;
}

void TestFinder::shoulderOnBrightPeak()
{
    QFETCH(PseudoVoigt, bright);
    QFETCH(double, distance);
    QFETCH(double, angle);
    QFETCH(double, ratio);
    QFETCH(double, saturation);
    const double a = angle * M_PI / 180;
    const PseudoVoigt faint = gaussian(bright.row + distance * std::sin(a), bright.col + distance * std::cos(a),
                                       bright.amplitude * ratio, 1.0);
    Frame f = blobs(80, 20, {bright, faint});
    // A shoulder when the noiseless frame has no local maximum within 1 px of the faint centre.
    bool ownMaximum = false;
    for (int r = int(faint.row) - 1; r <= int(faint.row) + 2; ++r)
        for (int c = int(faint.col) - 1; c <= int(faint.col) + 2; ++c) {
            bool isMax = std::hypot(r - faint.row, c - faint.col) <= 1;
            for (int dr = -1; dr <= 1; ++dr)
                for (int dc = -1; dc <= 1; ++dc)
                    isMax &= f.at(r + dr, c + dc) <= f.at(r, c);
            ownMaximum |= isMax;
        }
    addNoise(f, 5, 3, float(saturation));
    FinderOptions o;
    o.saturation = saturation < 65535 ? saturation : 0;
    const std::vector<Peak> found = findPeaks(f, 0, o);
    QCOMPARE(int(found.size()), 2);
    for (const PseudoVoigt *t : {static_cast<const PseudoVoigt *>(&bright), &faint}) {
        const Peak *best = nullptr;
        for (const Peak &p : found)
            if (!best || std::hypot(p.centroidRow - t->row, p.centroidCol - t->col)
                    < std::hypot(best->centroidRow - t->row, best->centroidCol - t->col))
                best = &p;
        const double d = std::hypot(best->centroidRow - t->row, best->centroidCol - t->col);
        QVERIFY2(d < 0.5, qPrintable(QStringLiteral("(%1, %2): nearest found %3 px").arg(t->row).arg(t->col).arg(d)));
        QCOMPARE(best->shoulder, t == &faint && !ownMaximum);
        QCOMPARE(best->componentPeaks, 2);
        QVERIFY(best->neighbour);
        QVERIFY(!best->merged);
    }
    o.split = SplitMode::None;
    QCOMPARE(int(findPeaks(f, 0, o).size()), 1);
}

void TestFinder::singlePeakNotSplit_data()
{
    // Precision guard: single peaks that are far from round -- elongated 3:1, rotated, Gaussian to
    // Lorentzian, bright to saturated -- in Poisson + read noise, 12 noise draws each: never split,
    // never a shoulder (a mirror taken without the fitted centre, or interpolated linearly, shows
    // residuals of many sigma on these flanks).
    QTest::addColumn<PseudoVoigt>("peak");
    QTest::addColumn<double>("saturation");
    QTest::newRow("Gaussian 0.6 x 2.0, 30 deg") << shaped(40.3, 40.8, 20000, 0.6, 2.0, 1, 1, 0, 0.52) << 65535.0;
    QTest::newRow("Lorentzian 0.6 x 1.8, 100 deg") << shaped(39.6, 40.2, 15000, 1, 1, 0.6, 1.8, 1.0, 1.75) << 65535.0;
    QTest::newRow("pseudo-Voigt 2.0 x 0.7, 70 deg") << shaped(40.5, 39.5, 3000, 2.0, 0.7, 1.9, 0.6, 0.5, 1.22) << 65535.0;
    QTest::newRow("saturated, 1.8 x 0.6, 150 deg") << shaped(40.1, 40.1, 50000, 1.8, 0.6, 1.5, 0.7, 0.4, 2.6) << 16383.0;
    QTest::newRow("faint, 2.0 x 2.0 Lorentzian") << shaped(40.7, 40.4, 400, 1, 1, 2.0, 2.0, 1.0, 0) << 65535.0;
}

void TestFinder::singlePeakNotSplit()
{
    QFETCH(PseudoVoigt, peak);
    QFETCH(double, saturation);
    FinderOptions o;
    o.saturation = saturation < 65535 ? saturation : 0;
    for (std::uint64_t seed = 1; seed <= 12; ++seed) {
        Frame f = blobs(80, 20, {peak});
        addNoise(f, seed, 3, float(saturation));
        // (Noise can leave a separate component in a long Lorentzian tail; only the peak's own
        // component matters here.)
        std::vector<Peak> found;
        for (const Peak &p : findPeaks(f, 0, o))
            if (std::hypot(p.row - peak.row, p.col - peak.col) < 8)
                found.push_back(p);
        QVERIFY2(found.size() == 1, qPrintable(QStringLiteral("seed %1: %2 peaks").arg(seed).arg(found.size())));
        QVERIFY(!found[0].shoulder);
        QCOMPARE(found[0].componentPeaks, 1);
        QVERIFY2(std::hypot(found[0].centroidRow - peak.row, found[0].centroidCol - peak.col) < 0.3,
                 qPrintable(QStringLiteral("seed %1").arg(seed)));
    }
}

namespace {
/// A 24 x 24 frame at level 5 holding `pixels` (threshold 20 absolute puts them in one component).
Frame pixelFrame(const std::vector<Pixel> &pixels)
{
    Frame f(24, 24, 5.f);
    for (const Pixel &p : pixels)
        f.at(p.row, p.col) = p.value;
    return f;
}

/// A horizontal ridge of `value` from (row, c0) to (row, c1) inclusive.
std::vector<Pixel> ridge(int row, int c0, int c1, float value)
{
    std::vector<Pixel> v;
    for (int c = c0; c <= c1; ++c)
        v.push_back({row, c, value});
    return v;
}
} // namespace

void TestFinder::splitFlags_data()
{
    // Constructed components: maxima joined by ridges of known height (the saddle). Default
    // options (prominence 10% of the height and 4 x sqrt(2 sigma^2 + height + saddle height);
    // sigma = 0 on these frames; minimum separation 2.5 px).
    QTest::addColumn<std::vector<Pixel>>("pixels");
    QTest::addColumn<double>("minSeparation");
    QTest::addColumn<std::vector<int>>("expectedRows");
    QTest::addColumn<std::vector<int>>("expectedCols");
    QTest::addColumn<std::vector<double>>("distances");
    QTest::addColumn<std::vector<bool>>("merged");
    auto join = [](std::vector<std::vector<Pixel>> parts) {
        std::vector<Pixel> all;
        for (auto &p : parts)
            all.insert(all.end(), p.begin(), p.end());
        return all;
    };
    // 1000 and 900, 4 px apart, saddle 400: prominence 500 >= 89.5 and >= 4 sqrt(995 + 395).
    QTest::newRow("two maxima 4 px apart")
        << join({ridge(10, 10, 14, 400), {{10, 10, 1000}, {10, 14, 900}}}) << 2.5
        << std::vector<int>{10, 10} << std::vector<int>{10, 14} << std::vector<double>{4, 4}
        << std::vector<bool>{false, false};
    // Three maxima: (10,10), (10,14) on a ridge, (13,10) down a column: distances 3, 4, 3.
    std::vector<Pixel> column;
    for (int r = 11; r <= 13; ++r)
        column.push_back({r, 10, 400});
    QTest::newRow("three maxima")
        << join({ridge(10, 10, 14, 400), column, {{10, 10, 1000}, {10, 14, 900}, {13, 10, 800}}}) << 2.5
        << std::vector<int>{10, 10, 13} << std::vector<int>{10, 14, 10}
        << std::vector<double>{3, 4, 3} << std::vector<bool>{false, false, false};
    // 2 px apart with a deep dip: it would stand out, but lies within 2.5 px: merged.
    QTest::newRow("2 px apart: merged")
        << join({ridge(10, 9, 13, 300), {{10, 10, 1000}, {10, 11, 400}, {10, 12, 900}}}) << 2.5
        << std::vector<int>{10} << std::vector<int>{10} << std::vector<double>{0}
        << std::vector<bool>{true};
    QTest::newRow("2 px apart, separation 1.5: split")
        << join({ridge(10, 9, 13, 300), {{10, 10, 1000}, {10, 11, 400}, {10, 12, 900}}}) << 1.5
        << std::vector<int>{10, 10} << std::vector<int>{10, 12} << std::vector<double>{2, 2}
        << std::vector<bool>{false, false};
    // A shallow dip (prominence 30 < 10% of 975): one peak, not merged.
    QTest::newRow("shallow dip")
        << join({ridge(10, 9, 15, 600), {{10, 10, 1000}, {10, 11, 950}, {10, 12, 950}, {10, 13, 980}}}) << 2.5
        << std::vector<int>{10} << std::vector<int>{10} << std::vector<double>{0}
        << std::vector<bool>{false};
}

void TestFinder::splitFlags()
{
    QFETCH(std::vector<Pixel>, pixels);
    QFETCH(double, minSeparation);
    QFETCH(std::vector<int>, expectedRows);
    QFETCH(std::vector<int>, expectedCols);
    QFETCH(std::vector<double>, distances);
    QFETCH(std::vector<bool>, merged);
    const Frame f = pixelFrame(pixels);
    FinderOptions o;
    o.threshold = 20;
    o.minSeparation = minSeparation;
    const std::vector<Peak> found = findPeaks(f, 0, o);
    QCOMPARE(found.size(), expectedRows.size());
    double totalSum = 0;
    int totalPixels = 0;
    for (std::size_t i = 0; i < found.size(); ++i) {
        QCOMPARE(found[i].row, expectedRows[i]);
        QCOMPARE(found[i].col, expectedCols[i]);
        QCOMPARE(found[i].maxValue, f.at(expectedRows[i], expectedCols[i]));
        QCOMPARE(found[i].neighbourDistance, distances[i]);
        QCOMPARE(found[i].neighbour, found.size() > 1);
        QCOMPARE(found[i].merged, bool(merged[i]));
        QCOMPARE(found[i].componentPeaks, int(found.size()));
        totalSum += found[i].sum;
        totalPixels += found[i].pixels;
    }
    // The component's pixels are shared out, none lost or counted twice.
    QCOMPARE(totalPixels, int(std::count_if(f.data.begin(), f.data.end(), [](float v) { return v > 20; })));
    double expectedSum = 0;
    for (float v : f.data)
        if (v > 20)
            expectedSum += v - 5;
    QCOMPARE(totalSum, expectedSum);
}

void TestFinder::sprawlingComponent()
{
    // A component whose bounding box is far larger than its pixels (a one-pixel diagonal ridge,
    // 80 px long, from the frame's corner) takes the split's label-image path for its neighbours;
    // the same ridge laid along a row (a compact box) takes the position-grid path. Both must
    // find the same three maxima with the same shares of the pixels.
    const int len = 80;
    const std::vector<std::pair<int, float>> tops = {{10, 1000.f}, {60, 900.f}, {len - 1, 800.f}};
    auto build = [&](bool diagonal) {
        Frame f(100, 100, 5.f);
        for (int k = 0; k < len; ++k)
            f.at(diagonal ? k : 50, k) = 400.f;
        for (const auto &[k, v] : tops)
            f.at(diagonal ? k : 50, k) = v;
        return f;
    };
    FinderOptions o;
    o.threshold = 20;
    const std::vector<Peak> diagonal = findPeaks(build(true), 0, o);
    const std::vector<Peak> row = findPeaks(build(false), 0, o);
    QCOMPARE(int(diagonal.size()), 3);
    QCOMPARE(int(row.size()), 3);
    const double sq2 = std::sqrt(2.0);
    const std::vector<double> diagonalDistance = {50 * sq2, 19 * sq2, 19 * sq2};
    const std::vector<double> rowDistance = {50, 19, 19};
    int pixels = 0;
    for (std::size_t i = 0; i < 3; ++i) {
        const int k = tops[i].first;
        QCOMPARE(diagonal[i].row, k);
        QCOMPARE(diagonal[i].col, k);
        QCOMPARE(row[i].row, 50);
        QCOMPARE(row[i].col, k);
        QCOMPARE(diagonal[i].maxValue, tops[i].second);
        QCOMPARE(row[i].maxValue, tops[i].second);
        QCOMPARE(diagonal[i].pixels, row[i].pixels);
        QCOMPARE(diagonal[i].sum, row[i].sum);
        QCOMPARE(diagonal[i].componentPeaks, 3);
        QVERIFY(!diagonal[i].merged && !diagonal[i].shoulder);
        QCOMPARE(diagonal[i].neighbourDistance, diagonalDistance[i]);
        QCOMPARE(row[i].neighbourDistance, rowDistance[i]);
        pixels += diagonal[i].pixels;
    }
    QCOMPARE(pixels, len);
    // Each maximum owns the pixels whose steepest ascent reaches it. On the flat ridge a tie goes
    // to the earlier pixel, so every flat pixel drains back along the ridge: the first maximum
    // owns 0 .. 58, the second 59 .. 77 (59 and 61 .. 77 drain to it), the last 78 and itself.
    QCOMPARE(diagonal[0].pixels, 59);
    QCOMPARE(diagonal[1].pixels, 19);
    QCOMPARE(diagonal[2].pixels, 2);
}

void TestFinder::splitDataset()
{
    // The patch dataset carries the flags: the "three maxima" case plus an isolated blob.
    std::vector<Pixel> pixels = ridge(10, 10, 14, 400);
    for (int r = 11; r <= 13; ++r)
        pixels.push_back({r, 10, 400});
    for (const Pixel &p : std::vector<Pixel>{{10, 10, 1000}, {10, 14, 900}, {13, 10, 800},
                                             {20, 20, 300}, {20, 21, 200}, {21, 20, 200}})
        pixels.push_back(p);
    const Frame f = pixelFrame(pixels);
    FinderOptions o;
    o.threshold = 20;
    o.patchSize = 5;
    std::vector<Peak> peaks;
    const PatchDataset d = findPeaksInFrames({f}, o, {}, &peaks);
    QCOMPARE(d.size(), std::size_t(4));
    const std::vector<std::uint8_t> neighbour{1, 1, 1, 0};
    QCOMPARE(d.extraFlags.at("/flags/neighbour"), neighbour);
    QCOMPARE(d.extraFlags.at("/flags/merged"), std::vector<std::uint8_t>(4, 0));
    QCOMPARE(d.extraFlags.at("/flags/saturated"), std::vector<std::uint8_t>(4, 0));
    QCOMPARE(d.extraFlags.at("/flags/shoulder"), std::vector<std::uint8_t>(4, 0));
    QCOMPARE(d.extraFloat.at("/peaks/neighbour_distance").data, std::vector<float>({3, 4, 3, 0}));
    QCOMPARE(d.extraFloat.at("/peaks/component_peaks").data, std::vector<float>({3, 3, 3, 1}));
    QCOMPARE(d.extraFloat.at("/peaks/saturated_pixels").data, std::vector<float>(4, 0));
    QCOMPARE(d.extraFloat.at("/peaks/saturation").data, std::vector<float>(4, 0));
    // Peaks of one component are not masked in each other's patches: (10,12) = 400 lies in the
    // patches of (10,10) and (10,14).
    QCOMPARE(d.patch(0)[2 * 5 + 4], 400.f);
    QCOMPARE(d.patch(1)[2 * 5 + 0], 400.f);
}

void TestFinder::saturatedPeak_data()
{
    // A bright Gaussian clipped at `level`: a plateau of saturated pixels, whose first pixel in
    // row-major order lies well off the true centre (on its top edge).
    QTest::addColumn<double>("row");
    QTest::addColumn<double>("col");
    QTest::addColumn<double>("sigma");
    QTest::addColumn<double>("saturationOption"); // < 0 automatic
    QTest::addColumn<bool>("noise");
    QTest::newRow("automatic level") << 20.3 << 20.7 << 1.5 << -1.0 << false;
    QTest::newRow("given level") << 20.5 << 19.5 << 1.2 << 1000.0 << false;
    QTest::newRow("automatic, noisy") << 21.8 << 20.1 << 2.0 << -1.0 << true;
    QTest::newRow("given, noisy, elongated") << 19.6 << 21.4 << 1.0 << 1000.0 << true;
}

void TestFinder::saturatedPeak()
{
    QFETCH(double, row);
    QFETCH(double, col);
    QFETCH(double, sigma);
    QFETCH(double, saturationOption);
    QFETCH(bool, noise);
    const float level = 1000;
    PseudoVoigt p = gaussian(row, col, 20000, sigma);
    if (QByteArray(QTest::currentDataTag()).contains("elongated"))
        p.sigmaV = 2.5 * sigma, p.theta = 0.5;
    Frame f = blobs(48, 10, {p});
    std::mt19937_64 rng(11);
    for (float &v : f.data) {
        if (noise) {
            std::poisson_distribution<int> poisson(v);
            v = float(poisson(rng));
        }
        v = std::min(v, level);
    }
    const int saturated = int(std::count(f.data.begin(), f.data.end(), level));
    QVERIFY(saturated >= 5);
    FinderOptions o;
    o.saturation = saturationOption;
    o.patchSize = 11;
    std::vector<float> patches;
    const std::vector<Peak> found = findPeaks(f, 0, o, &patches);
    QCOMPARE(int(found.size()), 1);
    const Peak &q = found[0];
    QVERIFY2(std::hypot(q.row - row, q.col - col) <= 1.0,
             qPrintable(QStringLiteral("patch centre (%1, %2), truth (%3, %4)").arg(q.row).arg(q.col).arg(row).arg(col)));
    QCOMPARE(q.saturatedPixels, saturated);
    QCOMPARE(q.saturation, level);
    QCOMPARE(q.maxValue, level);
    QCOMPARE(patches[5 * 11 + 5], level); // the patch centre is a saturated pixel
    QCOMPARE(q.originRow, q.row - 5);
    // The connected-component finder centres on the first saturated pixel in row-major order.
    o.split = SplitMode::None;
    const std::vector<Peak> cc = findPeaks(f, 0, o);
    QCOMPARE(int(cc.size()), 1);
    const auto first = std::find(f.data.begin(), f.data.end(), level) - f.data.begin();
    QCOMPARE(cc[0].row * 48 + cc[0].col, int(first));
    QCOMPARE(cc[0].saturatedPixels, saturated);
    // With saturation off, nothing is flagged.
    o.split = SplitMode::Prominence;
    o.saturation = 0;
    const std::vector<Peak> off = findPeaks(f, 0, o);
    QCOMPARE(off[0].saturatedPixels, 0);
    QCOMPARE(off[0].saturation, 0.f);
}

void TestFinder::closePairRecall()
{
    // Simulated frames where 40% of the peaks sit 2-5 px from another: of the truth peaks brighter
    // than 10 sigma whose nearest other peak is >= 3 px away, the prominence split finds (centroid
    // within 1.5 px, one-to-one) clearly more than the connected-component finder (measured with
    // seed 303: 98/106 against 54/106; 89/106 with the earlier Hessian shoulder search; the rest
    // are faint shoulders next to a peak 20-500 x brighter, and bright pairs whose tops merge into
    // one saturated plateau).
    FrameSimOptions so;
    so.size = 512;
    so.peaksPerFrame = 40;
    so.closePairFraction = 0.4;
    so.seed = 303;
    const SimulatedFrames sim = simulateFrames(4, so);
    std::vector<double> nearest(sim.truth.size(), HUGE_VAL);
    for (std::size_t i = 0; i < sim.truth.size(); ++i)
        for (std::size_t j = 0; j < sim.truth.size(); ++j)
            if (i != j && sim.truth[i].frame == sim.truth[j].frame)
                nearest[i] = std::min(nearest[i], std::hypot(sim.truth[i].params.row - sim.truth[j].params.row,
                                                             sim.truth[i].params.col - sim.truth[j].params.col));
    double recall[2];
    int counted = 0;
    for (SplitMode mode : {SplitMode::None, SplitMode::Prominence}) {
        FinderOptions o;
        o.split = mode;
        std::vector<Peak> peaks;
        findPeaksInFrames(sim.frames, o, {}, &peaks);
        const PeakScore score = scorePeaks(sim, so, peaks, o);
        int n = 0, matched = 0;
        for (std::size_t i = 0; i < sim.truth.size(); ++i)
            if (score.truth[i].bright && nearest[i] >= 3) {
                ++n;
                matched += score.truth[i].matched >= 0;
            }
        recall[mode == SplitMode::Prominence] = double(matched) / n;
        counted = n;
        qInfo("split %s: %d/%d", mode == SplitMode::None ? "none" : "prominence", matched, n);
    }
    QVERIFY(counted >= 100);
    QVERIFY2(recall[1] >= 0.9, qPrintable(QString::number(recall[1])));
    QVERIFY2(recall[1] >= recall[0] + 0.35, qPrintable(QStringLiteral("%1 vs %2").arg(recall[1]).arg(recall[0])));
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

    // Integer counts (0..65535) take a histogram instead of a sort: the same median and MAD,
    // bit for bit, as sorting every finite pixel (frames up to 512 x 512 use all of them), for odd
    // and even counts (half-integer medians), heavy ties, the full 16-bit range, and for values
    // that are not counts (the sort).
    auto sorted = [](const Frame &f) {
        std::vector<float> v;
        for (float x : f.data)
            if (std::isfinite(x))
                v.push_back(x);
        auto median = [](std::vector<float> w) {
            std::sort(w.begin(), w.end());
            const std::size_t m = w.size() / 2;
            return w.size() % 2 ? double(w[m]) : 0.5 * (double(w[m - 1]) + double(w[m]));
        };
        const double med = median(v);
        for (float &x : v)
            x = std::fabs(x - float(med));
        return std::pair<double, double>(med, 1.4826 * median(v));
    };
    std::mt19937_64 rng(11);
    struct Case {
        const char *name;
        int rows, cols;
        std::function<float()> value;
    };
    std::poisson_distribution<int> poisson(20);
    std::uniform_int_distribution<int> wide(0, 65535), few(3, 6);
    std::uniform_real_distribution<float> real(-5.f, 50.f);
    const std::vector<Case> cases = {
        {"Poisson, odd", 101, 101, [&] { return float(poisson(rng)); }},
        {"Poisson, even", 100, 101, [&] { return float(poisson(rng)); }},
        {"Poisson, even, 512 x 512", 512, 512, [&] { return float(poisson(rng)); }},
        {"full 16-bit range, even", 64, 64, [&] { return float(wide(rng)); }},
        {"four values, even", 10, 10, [&] { return float(few(rng)); }},
        // 7 7 7 NaN 7 7 0 0 0 0 0: five 7s and five 0s, median 3.5, every deviation 3.5.
        {"two values, half-way median", 1, 11, [k = 0]() mutable { return k++ < 6 ? 7.f : 0.f; }},
        {"not counts (the sort)", 64, 63, [&] { return real(rng); }},
    };
    for (const Case &c : cases) {
        Frame g(c.rows, c.cols);
        for (float &x : g.data)
            x = c.value();
        g.data[3] = kNaN; // not counted
        const FrameThreshold got = frameThreshold(g, o);
        const auto [median, sigma] = sorted(g);
        if (c.cols == 11) {
            QCOMPARE(got.background, 3.5);
            QCOMPARE(got.sigma, 1.4826 * 3.5);
        }
        QVERIFY2(got.background == median && got.sigma == sigma,
                 qPrintable(QStringLiteral("%1: median %2 vs %3, sigma %4 vs %5")
                                .arg(c.name).arg(got.background).arg(median).arg(got.sigma).arg(sigma)));
    }
}

void TestFinder::badOptions_data()
{
    QTest::addColumn<QString>("field");
    QTest::addColumn<double>("value");
    const double nan = std::numeric_limits<double>::quiet_NaN();
    QTest::newRow("even patch") << "patch_size" << 10.0;
    QTest::newRow("min pixels 0") << "min_pixels" << 0.0;
    QTest::newRow("max below min") << "max_pixels" << 2.0;
    QTest::newRow("threshold NaN") << "threshold" << nan;
    QTest::newRow("auto sigma 0") << "auto_sigma" << 0.0;
    QTest::newRow("prominence fraction 1") << "prominence_fraction" << 1.0;
    QTest::newRow("prominence fraction < 0") << "prominence_fraction" << -0.1;
    QTest::newRow("prominence sigma < 0") << "prominence_sigma" << -1.0;
    QTest::newRow("gain NaN") << "gain" << nan;
    QTest::newRow("shoulder sigma < 0") << "shoulder_sigma" << -1.0;
    QTest::newRow("min separation < 0") << "min_separation" << -2.0;
    QTest::newRow("saturation Inf") << "saturation" << double(kInf);
}

void TestFinder::badOptions()
{
    QFETCH(QString, field);
    QFETCH(double, value);
    FinderOptions o;
    const std::string name = field.toStdString();
    if (name == "patch_size") o.patchSize = int(value);
    if (name == "min_pixels") o.minPixels = int(value);
    if (name == "max_pixels") o.maxPixels = int(value);
    if (name == "threshold") o.threshold = value;
    if (name == "auto_sigma") o.autoSigma = value;
    if (name == "prominence_fraction") o.prominenceFraction = value;
    if (name == "prominence_sigma") o.prominenceSigma = value;
    if (name == "gain") o.gain = value;
    if (name == "shoulder_sigma") o.shoulderSigma = value;
    if (name == "min_separation") o.minSeparation = value;
    if (name == "saturation") o.saturation = value;
    try {
        o.validate("finder");
        QFAIL("expected InputError");
    } catch (const InputError &e) {
        QVERIFY2(QString::fromUtf8(e.what()).startsWith(QStringLiteral("finder: ") + field + QStringLiteral(": ")), e.what());
    }
    const Frame f(16, 16, 0.f);
    QVERIFY_THROWS_EXCEPTION(InputError, findPeaks(f, 0, o));
    QVERIFY_THROWS_EXCEPTION(InputError, findPeaksInFrames({f}, o));
    FinderOptions().validate(); // the defaults are valid
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
    o.split = SplitMode::None; // the reference lists are connected components
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

void TestFinder::realFramesSplit()
{
    // The prominence split on the same real frames (threshold 100): every component it leaves
    // whole is the CC finder's peak (same pixels, sum, maximum value; same centroid away from the
    // frame edge); every component it splits shares its pixels and sum out exactly.
    const QString dir = QStringLiteral(BRAGGNAC_TEST_DATA "/hexrd-zr/");
    const auto source = openFrameSource((dir + "real_zr_20frames.h5").toStdString());
    FinderOptions o;
    o.threshold = 100;
    o.minPixels = 3;
    o.maxPixels = INT_MAX;
    o.threads = 2;
    o.split = SplitMode::None;
    std::vector<Peak> cc, split;
    findPeaksInSource(*source, 0, 20, o, nullptr, {}, &cc);
    o.split = SplitMode::Prominence;
    findPeaksInSource(*source, 0, 20, o, nullptr, {}, &split);
    // Per frame, the split shares the same components' pixels and sums out (size filters act on
    // whole components, so both finders keep the same components).
    for (int f = 0; f < 20; ++f) {
        double sumCc = 0, sumSplit = 0;
        long pixelsCc = 0, pixelsSplit = 0;
        for (const Peak &p : cc)
            if (p.frame == f)
                sumCc += p.sum, pixelsCc += p.pixels;
        for (const Peak &p : split)
            if (p.frame == f)
                sumSplit += p.sum, pixelsSplit += p.pixels;
        QCOMPARE(pixelsSplit, pixelsCc);
        QVERIFY(std::abs(sumSplit - sumCc) <= 1e-9 * sumCc);
    }
    std::vector<bool> used(split.size());
    int whole = 0;
    for (const Peak &c : cc) {
        const auto same = std::find_if(split.begin(), split.end(), [&](const Peak &p) {
            return !used[std::size_t(&p - split.data())] && p.frame == c.frame && p.componentPeaks == 1
                && p.pixels == c.pixels && p.sum == c.sum && p.maxValue == c.maxValue;
        });
        if (same == split.end())
            continue;
        ++whole;
        used[std::size_t(same - split.begin())] = true;
        const bool edge = c.centroidRow < 2 || c.centroidCol < 2 || c.centroidRow > 2045 || c.centroidCol > 2045;
        if (!edge) {
            QCOMPARE(same->centroidRow, c.centroidRow);
            QCOMPARE(same->centroidCol, c.centroidCol);
        }
    }
    const int splitComponents = int(cc.size()) - whole;
    const int splitPeaks = int(split.size()) - whole;
    QCOMPARE(int(std::count_if(split.begin(), split.end(), [](const Peak &p) { return p.componentPeaks > 1; })),
             splitPeaks);
    QVERIFY(splitPeaks >= 2 * splitComponents);
    qInfo("%zu CC peaks: %d left whole, %d components split into %d peaks (%zu peaks in all)", cc.size(),
          whole, splitComponents, splitPeaks, split.size());
    QVERIFY(whole > int(cc.size()) / 2);
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
