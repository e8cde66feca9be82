// Peak finder. Per frame: robust background statistics on a pixel subsample, one pass that
// lists the foreground pixels, 8-connected labelling over that sparse list (labelling.h: the
// components cv::connectedComponents gives, without its two full-frame passes; the per-component
// statistics -- size, maximum, centroid -- are accumulated over the same list), then per kept
// component one peak (split None) or one per prominent maximum (split Prominence: a best-first
// flood from every local maximum gives it its saddle, steepest ascent gives every pixel its
// maximum, each peak's point symmetry adds shoulders), then the patches.
#include "core/peaks/finder.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>

#include <emmintrin.h>

#include "core/common/error.h"
#include "core/common/parallel.h"
#include "core/io/framesource.h"
#include "core/peaks/labelling.h"

namespace braggnac::core {

namespace {

// Frames with more pixels than this get their median / MAD from a subsample of about
// kSampleTarget pixels: runs of kSampleRun consecutive pixels (one cache line of floats) every
// `stride` pixels, the stride odd so that the runs walk through all columns.
constexpr std::size_t kFullSampleLimit = 512 * 512;
constexpr std::size_t kSampleTarget = 32768;
constexpr std::size_t kSampleRun = 16;

// A second local maximum counts towards "merged" when it is at least this fraction of the
// component's height above background and a dip of kMergeDip (and 4 sigma) separates it.
constexpr double kMergeHeight = 0.5;
constexpr double kMergeDip = 0.2;
constexpr std::size_t kMaxMergeCandidates = 16;

double medianInPlace(std::vector<float> &v)
{
    if (v.empty())
        return 0;
    const std::size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + mid, v.end());
    const double upper = v[mid];
    if (v.size() % 2 == 1)
        return upper;
    const double lower = *std::max_element(v.begin(), v.begin() + mid);
    return 0.5 * (lower + upper);
}

/// Median and median absolute deviation of a sample of integer counts lo..hi (what detectors
/// give), from its histogram: the order statistics medianInPlace picks (rank n / 2, and the
/// largest value below it for an even n), so the same values, without sorting. The deviations
/// |v - median| come out in ascending order from a walk outward from the median.
std::pair<double, double> countsMedianMad(const std::vector<float> &sample, int lo, int hi)
{
    thread_local std::vector<std::uint32_t> hist;
    const std::size_t bins = std::size_t(hi - lo) + 1;
    hist.assign(bins, 0);
    for (const float v : sample)
        ++hist[std::size_t(int(v) - lo)];
    const std::size_t n = sample.size(), mid = n / 2;
    const bool even = n % 2 == 0;
    // The value at rank mid, and (even n) at rank mid - 1, of a sequence of (value, count) steps.
    struct Ranks {
        std::size_t seen = 0, mid;
        bool even;
        double below = 0, at = 0;
        bool done = false;
        void add(double value, std::size_t count)
        {
            if (even && seen <= mid - 1 && mid - 1 < seen + count)
                below = value;
            if (seen <= mid && mid < seen + count) {
                at = value;
                done = true;
            }
            seen += count;
        }
        double result() const { return even ? 0.5 * (below + at) : at; }
    };
    Ranks m{0, mid, even};
    for (std::size_t b = 0; b < bins && !m.done; ++b)
        if (hist[b])
            m.add(double(lo) + double(b), hist[b]);
    const double median = m.result();
    // Deviations: bins at or below the median (left, going down) and above it (right, going up).
    Ranks d{0, mid, even};
    std::ptrdiff_t left = std::ptrdiff_t(std::floor(median)) - lo, right = left + 1;
    while (!d.done) {
        const bool hasLeft = left >= 0, hasRight = right < std::ptrdiff_t(bins);
        const double devLeft = hasLeft ? median - double(lo + left) : HUGE_VAL;
        const double devRight = hasRight ? double(lo + right) - median : HUGE_VAL;
        if (devLeft <= devRight) {
            if (hist[std::size_t(left)])
                d.add(devLeft, hist[std::size_t(left)]);
            --left;
        } else {
            if (hist[std::size_t(right)])
                d.add(devRight, hist[std::size_t(right)]);
            ++right;
        }
    }
    return {median, d.result()};
}

void checkOptions(const FinderOptions &o)
{
    o.validate();
}

struct Component {
    int area = 0;
    float maxValue = -std::numeric_limits<float>::infinity();
    std::size_t maxIndex = 0;
    double sumW = 0, sumWR = 0, sumWC = 0; // weights = value - background
    double sumR = 0, sumC = 0;             // unweighted, the fallback when sumW <= 0
    int saturated = 0;                     // pixels >= the saturation level
    int atMax = 0;                         // pixels equal to maxValue
    std::size_t firstPixel = 0;            // offset into the per-component pixel list
};

/// Per-thread scratch of the prominence split, reused from component to component.
struct SplitScratch {
    std::vector<int> pos;    // frame index -> position (a sprawling component only, see grid)
    std::vector<int> grid;   // bounding box (+1 px) -> position, -1 outside
    std::vector<std::uint64_t> key; // position -> order key (value, then row-major position)
    std::vector<int> up;     // steepest-ascent neighbour (itself at a local maximum)
    std::vector<int> stamp;  // flood membership (the flood's number)
    std::vector<int> heap;   // flood frontier
    std::vector<int> path;   // steepest-ascent path being resolved
    std::vector<int> maxId;  // position -> index of its local maximum (-1: none)
    std::vector<int> basin;  // position -> the peak it goes to
    std::vector<int> maxima; // local maxima (positions) in descending order
    std::vector<float> death;
    std::vector<int> parentMax, owner;
    std::vector<int> rejected; // maxima (indices into `maxima`) that failed the prominence test
    std::vector<int> neighbours;              // 8 per position (n: none)
};

struct PeakStats {
    int centre = 0; // position of the maximum (of the symmetry residual for a shoulder)
    int area = 0, saturated = 0;
    double sumW = 0, sumWR = 0, sumWC = 0, sumR = 0, sumC = 0, satR = 0, satC = 0;
    bool merged = false;
    bool shoulder = false;
    bool fixedCentre = false;  // centre set by the symmetry search (centreRow/Col)
    double centreRow = 0, centreCol = 0;
};

// Components smaller than this are not searched for shoulders.
constexpr int kMinShoulderPixels = 12;

// The symmetry search (partners without a maximum of their own on a brighter peak's flank). A
// single peak of any widths and rotation is point-symmetric about its centre c, I(c + d) = I(c - d),
// so the residual D(x) = I(x) - I(2c - x) is noise except where a second peak sits: there it is
// the second peak's own profile (its mirror image, 2 x the distance away, is a negative bump).
// c is fitted by weighted least squares on D (Gauss-Newton, partner pixels down-weighted); I
// between pixels is the 3 x 3 Lagrange (biquadratic) interpolant of log(I - background), exact
// for a Gaussian of any orientation, linear where the values are near the background. A partner
// is a local maximum of D smoothed by the 3 x 3 binomial kernel, kSymmetryMin..kSymmetryMax px
// (plus the plateau radius) from c, above shoulderSigma x its noise (Poisson + background of both
// pixels; the centre's fitted uncertainty, at least kSymmetryCentreFloor; kSymmetryModel x the
// mirror value for the interpolation's and the shape's error) and above kSymmetryFraction of the
// smoothed value there.
constexpr double kSymmetryMinHeight = 25;   // only peaks higher than this x sigma are searched
constexpr double kSymmetryFitRadius = 2.5;  // px (plus the plateau radius) used to fit c
constexpr double kSymmetryMin = 2.0, kSymmetryMax = 5.5; // partner distance range (px)
constexpr double kSymmetryModel = 0.03;
constexpr double kSymmetryCentreFloor = 0.03; // px
constexpr double kSymmetryFraction = 0.1;
constexpr double kSymmetryMaxPlateau = 4;   // px; larger plateaus are not searched
constexpr double kSymmetryMaxShift = 1.0;   // px the fitted centre may move from its start
constexpr double kSymmetryProbeMax = 9;     // px: weak maxima (probes) searched up to this far
constexpr double kSymmetryMinValue = 10;    // x sigma above the background at a shoulder's pixel

struct SymmetryPartner {
    int row = 0, col = 0;  // the smoothed residual's maximum
    double centreRow = 0, centreCol = 0, z = 0;
};

/// Per-thread buffers of the symmetry search.
struct SymmetryScratch {
    std::vector<float> lin, lg;        // window: value - background; its log (NaN: linear only)
    std::vector<std::uint8_t> good;    // window: inside the frame, finite, not saturated
    struct Cell {
        int k, i, j; // window position k = i x side + j (rows and columns kept: no divisions)
    };
    std::vector<Cell> fit;             // window cells used to fit the centre
    std::vector<double> d, var, mir, gradR, gradC, sm, smVar, smLin;
    std::vector<std::uint8_t> need, cand, ok;
    std::vector<Cell> candList; // the window cells with cand set
};

/// Asks for the cache lines of the frame's (2 half + 1)^2 window around (row, col), clipped to the
/// frame. The split and the shoulder search work from lists, so the frame rows around a peak are
/// cold when the search first reads them, a frame row apart: one request for all of them beats
/// one miss at a time.
void prefetchWindow(const float *data, int rows, int cols, int row, int col, int half)
{
    const int c0 = std::max(0, col - half), c1 = std::min(cols - 1, col + half);
    if (c0 > c1)
        return;
    for (int r = std::max(0, row - half); r <= std::min(rows - 1, row + half); ++r) {
        const float *line = data + std::size_t(r) * cols;
        for (int c = c0; c <= c1; c += 16)
            _mm_prefetch(reinterpret_cast<const char *>(line + c), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char *>(line + c1), _MM_HINT_T0);
    }
}

/// Fits the centre of symmetry of the peak at (row, col) (plateau radius `plateau` px, its
/// centroid (startRow, startCol) when saturated) and lists the partners the residual shows on
/// pixels where inComponent(row, col) holds, most significant first. Returns false when the fit
/// fails (then no partners).
template <typename InComponent>
bool symmetryPartners(const float *data, int rows, int cols, double background, double sigma,
                      double gain, float saturation, double zMin, int row, int col, double startRow,
                      double startCol, double plateau, const InComponent &inComponent,
                      const std::vector<std::pair<int, int>> &probes, double &centreRow,
                      double &centreCol, std::vector<SymmetryPartner> &partners, SymmetryScratch &s)
{
    partners.clear();
    const double fitRadius = kSymmetryFitRadius + plateau;
    const double dMin = kSymmetryMin + plateau, dMax = kSymmetryMax + plateau;
    // Residual pixels lie within `reach` of (row, col); their mirrors within reach + 2 x the
    // centre's shift; the interpolation's nodes one more.
    int reach = int(std::ceil(std::max(fitRadius, dMax + 1))) + 1;
    for (const auto &[r, c] : probes)
        reach = std::max(reach, int(std::ceil(std::hypot(r - startRow, c - startCol))) + 3);
    const int half = reach + int(std::ceil(2 * kSymmetryMaxShift)) + 2;
    const int side = 2 * half + 1;
    const std::size_t cells = std::size_t(side) * side;
    prefetchWindow(data, rows, cols, row, col, half);
    const double logLevel = std::max(1.0, 3 * sigma);
    const double floorVar = std::max(1.0, sigma * sigma);
    auto variance = [&](double v) { return floorVar + gain * std::max(0.0, v); };
    // Window values are read on first use (state 0: not yet, 1: usable, 2: not).
    s.lin.resize(cells);
    s.lg.resize(cells);
    s.good.assign(cells, 0);
    auto load = [&](int i, int j) {
        const std::size_t k = std::size_t(i) * side + j;
        if (s.good[k])
            return s.good[k] == 1;
        const int r = row - half + i, c = col - half + j;
        const bool inside = r >= 0 && c >= 0 && r < rows && c < cols;
        const float x = inside ? data[std::size_t(r) * cols + c] : 0.f;
        const bool ok = inside && std::isfinite(x) && x < saturation;
        const float v = float(double(x) - background);
        s.good[k] = ok ? 1 : 2;
        s.lin[k] = v;
        s.lg[k] = ok && v >= logLevel ? std::log(v) : NAN; // float: the faster log
        return ok;
    };
    // The interpolant at the mirror 2c - x of window position k = (i, j): for a given c every
    // mirror has the same fractional offset, so the Lagrange weights are set once per c.
    struct Weights {
        double w[3][3], wr[3][3], wc[3][3];
        int baseR, baseC; // mirror node (0, 0) of window position (0, 0), in window coordinates + i, j
    } wt{};
    auto setCentre = [&](double cr, double cc) {
        // Window coordinates of 2c: 2 cr - (row - half) - ... ; position (i, j)'s mirror is at
        // (2 (cr - row + half) - i, ...), nearest node n = N - i with N = round(2 (cr - row + half)).
        const double mr = 2 * (cr - row + half), mc = 2 * (cc - col + half);
        const double nr = std::floor(mr + 0.5), nc = std::floor(mc + 0.5);
        const double t = mr - nr, u = mc - nc;
        const double a[3] = {0.5 * t * (t - 1), 1 - t * t, 0.5 * t * (t + 1)};
        const double da[3] = {t - 0.5, -2 * t, t + 0.5};
        const double b[3] = {0.5 * u * (u - 1), 1 - u * u, 0.5 * u * (u + 1)};
        const double db[3] = {u - 0.5, -2 * u, u + 0.5};
        for (int x = 0; x < 3; ++x)
            for (int y = 0; y < 3; ++y) {
                wt.w[x][y] = a[x] * b[y];
                wt.wr[x][y] = da[x] * b[y];
                wt.wc[x][y] = a[x] * db[y];
            }
        wt.baseR = int(nr) - 1;
        wt.baseC = int(nc) - 1;
    };
    auto mirror = [&](int i, int j, double &v, double &gr, double &gc) {
        const int r0 = wt.baseR - i, c0 = wt.baseC - j;
        if (r0 < 0 || c0 < 0 || r0 + 2 >= side || c0 + 2 >= side)
            return false;
        bool logOk = true;
        for (int x = 0; x < 3; ++x)
            for (int y = 0; y < 3; ++y) {
                if (!load(r0 + x, c0 + y))
                    return false;
                logOk &= !std::isnan(s.lg[std::size_t(r0 + x) * side + (c0 + y)]);
            }
        const std::vector<float> &f = logOk ? s.lg : s.lin;
        double val = 0, vr = 0, vc = 0;
        for (int x = 0; x < 3; ++x) {
            const float *rowF = f.data() + std::size_t(r0 + x) * side + c0;
            for (int y = 0; y < 3; ++y) {
                val += wt.w[x][y] * rowF[y];
                vr += wt.wr[x][y] * rowF[y];
                vc += wt.wc[x][y] * rowF[y];
            }
        }
        if (logOk) {
            v = std::exp(float(val));
            gr = v * vr;
            gc = v * vc;
        } else {
            v = val;
            gr = vr;
            gc = vc;
        }
        return true;
    };

    // Where the residual can show a partner: component pixels dMin - 1 .. dMax + 1 px from the
    // start (the kernel's reach around the accepted dMin .. dMax). When no pixel dMin .. dMax
    // away is kSymmetryMinValue sigma high with its 3 x 3 neighbourhood in the component (a
    // shoulder's own pixel is), there is nothing to search: a small or faint component.
    s.need.assign(cells, 0);
    s.cand.assign(cells, 0);
    s.ok.assign(cells, 0);
    s.candList.clear();
    auto setCand = [&](int i, int j, std::uint8_t kind) {
        const std::size_t k = std::size_t(i) * side + j;
        if (!s.cand[k])
            s.candList.push_back({int(k), i, j});
        s.cand[k] = kind;
    };
    {
        const double lo = std::max(0.0, dMin - 1), hi = dMax + 1;
        const double min2 = dMin * dMin, max2 = dMax * dMax;
        bool any = false;
        for (int i = half - reach + 1; i < half + reach; ++i)
            for (int j = half - reach + 1; j < half + reach; ++j) {
                const int r = row - half + i, c = col - half + j;
                const double dist2 = (r - startRow) * (r - startRow) + (c - startCol) * (c - startCol);
                if (dist2 < lo * lo || dist2 > hi * hi || !inComponent(r, c))
                    continue;
                if (!any && dist2 >= min2 && dist2 <= max2
                    && double(data[std::size_t(r) * cols + c]) - background >= kSymmetryMinValue * sigma) {
                    bool interior = true;
                    for (int a = -1; a <= 1 && interior; ++a)
                        for (int b = -1; b <= 1; ++b)
                            if (!inComponent(r + a, c + b)) {
                                interior = false;
                                break;
                            }
                    any = interior;
                }
                setCand(i, j, 1);
            }
        // Probes: local maxima too weak for the prominence test, at any distance up to
        // kSymmetryProbeMax; their 3 x 3 neighbourhoods are searched too (cand 2: the distance
        // limit is kSymmetryProbeMax there).
        for (const auto &[pr, pc] : probes) {
            for (int a = -1; a <= 1; ++a)
                for (int b = -1; b <= 1; ++b) {
                    const int r = pr + a, c = pc + b;
                    const int i = r - row + half, j = c - col + half;
                    if (i < 2 || j < 2 || i >= side - 2 || j >= side - 2 || !inComponent(r, c))
                        continue;
                    setCand(i, j, 2);
                    any = true;
                }
        }
        if (!any)
            return false;
        // The residual is needed at the candidates' 3 x 3 neighbourhoods (the smoothing kernel),
        // within reach of the start (where it is computed): the candidate mask dilated, row by row.
        for (int i = half - reach; i <= half + reach; ++i) {
            std::uint8_t *needRow = s.need.data() + std::size_t(i) * side;
            for (int a = -1; a <= 1; ++a) {
                const std::uint8_t *candRow = s.cand.data() + std::size_t(i + a) * side;
                for (int j = half - reach; j <= half + reach; ++j)
                    needRow[j] |= candRow[j - 1] | candRow[j] | candRow[j + 1];
            }
        }
    }
    // The centre: Gauss-Newton on sum w D^2 over the pixels within fitRadius of the start.
    s.fit.clear();
    {
        const int fr = int(std::ceil(fitRadius));
        const double fr2 = fitRadius * fitRadius;
        for (int i = half - fr; i <= half + fr; ++i)
            for (int j = half - fr; j <= half + fr; ++j) {
                const double dr = row - half + i - startRow, dc = col - half + j - startCol;
                const std::size_t k = std::size_t(i) * side + j;
                if (dr * dr + dc * dc <= fr2 && load(i, j) && s.lin[k] >= 3 * sigma)
                    s.fit.push_back({int(k), i, j});
            }
    }
    double cr = startRow, cc = startCol;
    double a11 = 0, a12 = 0, a22 = 0, chi2 = 0;
    int used = 0;
    for (int iter = 0; iter < 4; ++iter) {
        setCentre(cr, cc);
        double b1 = 0, b2 = 0;
        a11 = a12 = a22 = chi2 = 0;
        used = 0;
        for (const auto &[k, i, j] : s.fit) {
            double m, gr, gc;
            if (!mirror(i, j, m, gr, gc))
                continue;
            const double v = s.lin[std::size_t(k)];
            const double d = v - m;
            const double var = variance(v) + variance(m) + kSymmetryModel * kSymmetryModel * m * m;
            double weight = 1 / var;
            const double z2 = d * d / var;
            if (iter > 0 && z2 > 9)
                weight *= 9 / z2; // partner pixels pull less
            const double j1 = -2 * gr, j2 = -2 * gc;
            a11 += weight * j1 * j1;
            a12 += weight * j1 * j2;
            a22 += weight * j2 * j2;
            b1 += weight * j1 * d;
            b2 += weight * j2 * d;
            chi2 += weight * d * d;
            ++used;
        }
        const double det = a11 * a22 - a12 * a12;
        if (used < 6 || !(det > 0))
            return false;
        double sr = -(a22 * b1 - a12 * b2) / det, sc = -(a11 * b2 - a12 * b1) / det;
        const double step = std::sqrt(sr * sr + sc * sc);
        if (step > 0.5) {
            sr *= 0.5 / step;
            sc *= 0.5 / step;
        }
        cr += sr;
        cc += sc;
        if ((cr - startRow) * (cr - startRow) + (cc - startCol) * (cc - startCol)
            > kSymmetryMaxShift * kSymmetryMaxShift)
            return false;
        if (step < 0.02)
            break;
    }
    centreRow = cr;
    centreCol = cc;
    setCentre(cr, cc);
    // The centre's covariance (scaled by the fit's reduced chi-square when above 1, plus
    // kSymmetryCentreFloor^2 on each axis) enters the residual's noise: D moves by
    // -2 grad I(2c - x) . dc when c does.
    const double det = a11 * a22 - a12 * a12;
    const double scale = std::max(1.0, chi2 / std::max(1, used - 2)) / det;
    const double c11 = a22 * scale + kSymmetryCentreFloor * kSymmetryCentreFloor;
    const double c22 = a11 * scale + kSymmetryCentreFloor * kSymmetryCentreFloor;
    const double c12 = -a12 * scale;

    // (d .. smLin are read only where ok / cand say they were written.)
    for (auto *v : {&s.d, &s.var, &s.mir, &s.gradR, &s.gradC, &s.sm, &s.smVar, &s.smLin})
        v->resize(cells);
    // The residual where needed, within reach of the start; the smoothed residual and its
    // maxima at the candidates within reach - 1 (in row-major order, as partners are listed).
    for (int i = half - reach; i <= half + reach; ++i)
        for (int j = half - reach; j <= half + reach; ++j) {
            const std::size_t k = std::size_t(i) * side + j;
            double m, gr, gc;
            if (!s.need[k] || !load(i, j) || !mirror(i, j, m, gr, gc))
                continue;
            const double v = s.lin[k];
            s.d[k] = v - m;
            s.var[k] = variance(v) + variance(m);
            s.mir[k] = m;
            s.gradR[k] = gr;
            s.gradC[k] = gc;
            s.ok[k] = 1;
        }
    for (int i = half - reach; i <= half + reach; ++i)
        std::fill_n(s.sm.begin() + std::ptrdiff_t(i * side + half - reach), 2 * reach + 1, -HUGE_VAL);
    const auto outsideSmoothing = [&](const SymmetryScratch::Cell &q) {
        return q.i <= half - reach || q.i >= half + reach || q.j <= half - reach || q.j >= half + reach;
    };
    s.candList.erase(std::remove_if(s.candList.begin(), s.candList.end(), outsideSmoothing), s.candList.end());
    const auto rowMajor = [](const SymmetryScratch::Cell &a, const SymmetryScratch::Cell &b) { return a.k < b.k; };
    if (!std::is_sorted(s.candList.begin(), s.candList.end(), rowMajor)) // only probes come out of order
        std::sort(s.candList.begin(), s.candList.end(), rowMajor);
    static const double kB[3] = {0.25, 0.5, 0.25};
    for (const auto &[kk, i, j] : s.candList) {
        const std::size_t k = std::size_t(kk);
        double acc = 0, accVar = 0, accLin = 0, accMir = 0, accGr = 0, accGc = 0;
        bool all = true;
        for (int a = -1; a <= 1 && all; ++a)
            for (int b = -1; b <= 1; ++b) {
                const std::size_t q = std::size_t(i + a) * side + (j + b);
                if (!s.ok[q]) {
                    all = false;
                    break;
                }
                const double wq = kB[a + 1] * kB[b + 1];
                acc += wq * s.d[q];
                accVar += wq * wq * s.var[q];
                accLin += wq * s.lin[q];
                accMir += wq * s.mir[q];
                accGr += wq * s.gradR[q];
                accGc += wq * s.gradC[q];
            }
        if (!all)
            continue;
        s.sm[k] = acc;
        // Pixel noise averages out under the kernel; the centre's error and the model's
        // (kSymmetryModel x the mirror value) do not.
        s.smVar[k] = accVar + kSymmetryModel * kSymmetryModel * accMir * accMir
            + 4 * (accGr * accGr * c11 + 2 * accGr * accGc * c12 + accGc * accGc * c22);
        s.smLin[k] = accLin;
    }
    const double min2 = dMin * dMin, max2 = dMax * dMax;
    for (const auto &[kk, i, j] : s.candList) {
        const std::size_t k = std::size_t(kk);
        const int r = row - half + i, c = col - half + j;
        const double dist2 = (r - cr) * (r - cr) + (c - cc) * (c - cc);
        if (s.sm[k] == -HUGE_VAL || dist2 < min2
            || dist2 > (s.cand[k] == 2 ? kSymmetryProbeMax * kSymmetryProbeMax : max2))
            continue;
        if (s.sm[k] < kSymmetryFraction * s.smLin[k] || s.sm[k] < zMin * std::sqrt(s.smVar[k])
            || s.lin[k] < kSymmetryMinValue * sigma)
            continue;
        bool isMax = true;
        for (int a = -1; a <= 1 && isMax; ++a)
            for (int b = -1; b <= 1; ++b)
                if ((a || b) && s.sm[std::size_t(i + a) * side + (j + b)] > s.sm[k]) {
                    isMax = false;
                    break;
                }
        if (!isMax)
            continue;
        SymmetryPartner p;
        p.row = r;
        p.col = c;
        p.z = s.sm[k] / std::sqrt(s.smVar[k]);
        // Sub-pixel: log-parabola through the smoothed residual along each axis.
        auto offset = [](double minus, double centre, double plus) {
            if (!(minus > 0 && plus > 0 && centre > 0))
                return 0.0;
            const double y0 = std::log(minus), y1 = std::log(centre), y2 = std::log(plus);
            const double den = y0 - 2 * y1 + y2;
            return den < 0 ? std::clamp(0.5 * (y0 - y2) / den, -1.0, 1.0) : 0.0;
        };
        p.centreRow = r + offset(s.sm[k - std::size_t(side)], s.sm[k], s.sm[k + std::size_t(side)]);
        p.centreCol = c + offset(s.sm[k - 1], s.sm[k], s.sm[k + 1]);
        partners.push_back(p);
    }
    std::sort(partners.begin(), partners.end(),
              [](const SymmetryPartner &a, const SymmetryPartner &b) { return a.z > b.z; });
    return true;
}

/// A found peak before its patch: the peak and its component's label.
struct FoundPeak {
    Peak peak;
    std::size_t centre;
    int label;
};

/// Sub-pixel position of a maximum along one axis from three samples: a parabola through the
/// logarithms (exact for a Gaussian) of the values above the background at the maximum and its
/// two neighbours, or, at the frame edge, at the maximum and the next two pixels inward.
/// Returns the offset from the maximum (px), at most 1.5 and never outside the frame; 0 when
/// the samples are not concave or not all above the background.
double logParabolaOffset(const float *data, std::ptrdiff_t stride, int at, int size, double background)
{
    if (size < 3)
        return 0;
    const int base = at == 0 ? 0 : at == size - 1 ? size - 3 : at - 1;
    double y[3];
    for (int k = 0; k < 3; ++k) {
        const double v = double(data[(base + k - at) * stride]) - background;
        if (!(v > 0) || !std::isfinite(v))
            return 0;
        y[k] = std::log(v);
    }
    const double a = 0.5 * (y[0] - 2 * y[1] + y[2]), b = 0.5 * (-3 * y[0] + 4 * y[1] - y[2]);
    if (!(a < 0))
        return 0;
    // Within the frame (pixel centres 0 .. size - 1, edges at -0.5 and size - 0.5).
    return std::clamp(base - b / (2 * a), std::max(-0.5, at - 1.5), std::min(size - 0.5, at + 1.5)) - at;
}

/// The buffers of one findPeaks call: the label image (frame-sized, all zero between frames), the
/// union-find scratch, the foreground lists and the split's scratch (with a frame-sized position
/// map once a sprawling component needed it). They live in a small pool, not per thread, so that
/// the worker threads each findPeaksIn* call starts reuse them instead of allocating and zeroing
/// tens of MB per call (parallelChunks' workers are new threads every call).
struct FrameScratch {
    std::vector<int> labels;
    std::vector<int> parent;
    SplitScratch split;
    // The foreground list (row-major): frame index, value and label of each pixel ...
    std::vector<std::size_t> foreground;
    std::vector<float> values;
    std::vector<int> listLabels;
    // ... and the same grouped by component (row-major within each), with rows and columns.
    std::vector<std::size_t> groupedIndex;
    std::vector<float> groupedValue;
    std::vector<int> groupedRow, groupedCol;
};

class ScratchPool {
    static constexpr std::size_t kKeptForeground = std::size_t(1) << 20; // pixels (36 MB of lists)

public:
    std::unique_ptr<FrameScratch> take()
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (free_.empty())
            return std::make_unique<FrameScratch>();
        std::unique_ptr<FrameScratch> s = std::move(free_.back());
        free_.pop_back();
        return s;
    }
    void give(std::unique_ptr<FrameScratch> s)
    {
        // The list buffers grow with the foreground; after a frame with an unusually large one
        // (a threshold below the background) they are released rather than kept in the pool.
        if (s->foreground.capacity() > kKeptForeground) {
            for (auto *v : {&s->foreground, &s->groupedIndex})
                std::vector<std::size_t>().swap(*v);
            for (auto *v : {&s->values, &s->groupedValue})
                std::vector<float>().swap(*v);
            for (auto *v : {&s->listLabels, &s->groupedRow, &s->groupedCol})
                std::vector<int>().swap(*v);
        }
        std::lock_guard<std::mutex> lock(mutex_);
        // Keeps at most one per hardware thread (a 2048 x 2048 frame: 16 MB of labels each).
        if (free_.size() < std::size_t(std::max(2u, std::thread::hardware_concurrency())))
            free_.push_back(std::move(s));
    }

private:
    std::mutex mutex_;
    std::vector<std::unique_ptr<FrameScratch>> free_;
};

struct ScratchLease {
    static ScratchPool &pool()
    {
        static ScratchPool p;
        return p;
    }
    std::unique_ptr<FrameScratch> scratch = pool().take();
    ~ScratchLease() { pool().give(std::move(scratch)); }
};

/// The component's pixels in row-major order (their positions 0 .. n - 1): frame index, value, row
/// and column of each.
struct ComponentPixels {
    const std::size_t *index;
    const float *value;
    const int *row, *col;
    int n;
};

/// An order key per value: a higher value has a higher key (finite floats; -0 and +0 alike).
inline std::uint32_t orderBits(float v)
{
    v += 0.0f; // -0 -> +0
    std::uint32_t u;
    std::memcpy(&u, &v, sizeof u);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

/// Splits one component into its prominent maxima; appends the peaks (frame fields, border and
/// origin left for the caller) to `out` as FoundPeak with `label`.
void splitComponent(const float *data, int rows, int cols, const int *labels, int label,
                    const ComponentPixels &px, double background, double sigma,
                    float saturation, const FinderOptions &o, SplitScratch &s,
                    std::vector<FoundPeak> &out)
{
    const std::size_t *pixels = px.index;
    const int n = px.n;
    const float *values = px.value;
    auto value = [values](int i) { return values[i]; };
    const int *rowIdx = px.row, *colIdx = px.col;
    auto rowOf = [rowIdx](int i) { return rowIdx[i]; };
    auto colOf = [colIdx](int i) { return colIdx[i]; };
    // Strict order: higher value first, then earlier in row-major order (= smaller position), as
    // one 64-bit key per position (value bits above, the complemented position below).
    // key[n] = 0, below every pixel's: the "no neighbour" slot.
    s.key.resize(std::size_t(n) + 1);
    std::uint64_t topKey = 0;
    for (int i = 0; i < n; ++i) {
        s.key[std::size_t(i)] = std::uint64_t(orderBits(values[i])) << 32 | std::uint32_t(~std::uint32_t(i));
        topKey = std::max(topKey, s.key[std::size_t(i)]);
    }
    s.key[std::size_t(n)] = 0;
    const std::uint64_t *key = s.key.data();
    if (o.shoulderSigma > 0 && n >= kMinShoulderPixels) {
        // The shoulder search below reads the frame around the highest pixel (a window of about
        // 12 px each way): its lines are asked for now, to arrive while the maxima and basins are
        // worked out.
        const int top = int(~std::uint32_t(topKey));
        prefetchWindow(data, rows, cols, rowIdx[top], colIdx[top], 14);
    }
    auto higher = [key](int a, int b) { return key[a] > key[b]; };
    // The 8-connected neighbours of every pixel within the component (positions), computed once:
    // eight slots per pixel, n where the neighbour is not in the component (no branches, and
    // the loops below run eight times).
    s.neighbours.resize(std::size_t(n) * 8);
    // Membership from a grid of positions over the component's bounding box (1 px border, -1
    // outside the component): small and hot, where the frame's label image is cold outside the
    // component. A sprawling component (box much larger than its pixels) uses the labels.
    int r0 = INT_MAX, r1 = INT_MIN, c0 = INT_MAX, c1 = INT_MIN;
    for (int i = 0; i < n; ++i) {
        r0 = std::min(r0, rowOf(i));
        r1 = std::max(r1, rowOf(i));
        c0 = std::min(c0, colOf(i));
        c1 = std::max(c1, colOf(i));
    }
    const std::size_t gw = std::size_t(c1 - c0 + 3), gh = std::size_t(r1 - r0 + 3);
    const bool useGrid = gw * gh <= 16 * std::size_t(n) + 1024;
    // Position of the component's pixel at (r, c), or -1 when (r, c) is not one.
    const auto positionAt = [&](int r, int c) {
        if (useGrid)
            return r < r0 || c < c0 || r > r1 || c > c1
                ? -1
                : s.grid[std::size_t(r - r0 + 1) * gw + std::size_t(c - c0 + 1)];
        if (r < 0 || c < 0 || r >= rows || c >= cols)
            return -1;
        const std::size_t idx = std::size_t(r) * cols + c;
        return labels[idx] == label ? s.pos[idx] : -1;
    };
    if (useGrid) {
        s.grid.assign(gw * gh, -1);
        for (int i = 0; i < n; ++i)
            s.grid[std::size_t(rowOf(i) - r0 + 1) * gw + std::size_t(colOf(i) - c0 + 1)] = i;
        const std::ptrdiff_t g = std::ptrdiff_t(gw);
        const std::ptrdiff_t goff[8] = {-g - 1, -g, -g + 1, -1, 1, g - 1, g, g + 1};
        for (int i = 0; i < n; ++i) {
            const int *at = s.grid.data() + std::size_t(rowOf(i) - r0 + 1) * gw + std::size_t(colOf(i) - c0 + 1);
            int *out = s.neighbours.data() + std::size_t(i) * 8;
            for (int k = 0; k < 8; ++k) {
                const int q = at[goff[k]];
                out[k] = q < 0 ? n : q;
            }
        }
    } else {
        if (s.pos.size() < std::size_t(rows) * cols)
            s.pos.resize(std::size_t(rows) * cols);
        for (int i = 0; i < n; ++i)
            s.pos[pixels[i]] = i;
        const std::ptrdiff_t offsets[8] = {-std::ptrdiff_t(cols) - 1, -std::ptrdiff_t(cols),
                                           -std::ptrdiff_t(cols) + 1, -1, 1, std::ptrdiff_t(cols) - 1,
                                           std::ptrdiff_t(cols), std::ptrdiff_t(cols) + 1};
        for (int i = 0; i < n; ++i) {
            const std::size_t idx = pixels[i];
            const int r = rowOf(i), c = colOf(i);
            int *out = s.neighbours.data() + std::size_t(i) * 8;
            std::fill_n(out, 8, n);
            int count = 0;
            if (r > 0 && c > 0 && r < rows - 1 && c < cols - 1) {
                for (std::ptrdiff_t off : offsets) {
                    const std::size_t j = std::size_t(std::ptrdiff_t(idx) + off);
                    if (labels[j] == label)
                        out[count++] = s.pos[j];
                }
            } else {
                for (int dr = -1; dr <= 1; ++dr)
                    for (int dc = -1; dc <= 1; ++dc) {
                        const int rr = r + dr, cc = c + dc;
                        if ((dr == 0 && dc == 0) || rr < 0 || rr >= rows || cc < 0 || cc >= cols)
                            continue;
                        const std::size_t j = std::size_t(rr) * cols + cc;
                        if (labels[j] == label)
                            out[count++] = s.pos[j];
                    }
            }
        }
    }
    auto neighboursOf = [&](int i) { return s.neighbours.data() + std::size_t(i) * 8; };

    s.up.resize(std::size_t(n));
    int maximaCount = 0;
    for (int i = 0; i < n; ++i) {
        // The highest key among the pixel and its neighbours (a maximum, no branches); its low
        // half is the complemented position.
        std::uint64_t best = key[i];
        const int *nb = neighboursOf(i);
        for (int k = 0; k < 8; ++k)
            best = std::max(best, key[nb[k]]);
        const int b = int(~std::uint32_t(best));
        s.up[std::size_t(i)] = b;
        maximaCount += b == i;
    }

    std::vector<PeakStats> peaks;
    s.owner.clear();
    s.rejected.clear();
    bool single = maximaCount == 1;
    if (!single) {
        // The local maxima, highest first, and each one's saddle: a best-first flood from it
        // (highest frontier pixel first) until it reaches a higher pixel; the lowest level it had
        // to pass is the saddle (the minimax path), and the maximum that higher pixel drains to
        // is its parent. Noise bumps stop after a pixel or two; no sort of the whole component.
        s.maxima.clear();
        for (int i = 0; i < n; ++i)
            if (s.up[std::size_t(i)] == i)
                s.maxima.push_back(i);
        std::sort(s.maxima.begin(), s.maxima.end(), higher);
        const std::size_t mcount = s.maxima.size();
        s.maxId.assign(std::size_t(n), -1);
        for (std::size_t m = 0; m < mcount; ++m)
            s.maxId[std::size_t(s.maxima[m])] = int(m);
        s.death.assign(mcount, -std::numeric_limits<float>::infinity());
        s.parentMax.assign(mcount, -1);
        s.stamp.assign(std::size_t(n) + 1, 0); // [n]: the "no neighbour" slot, always stamped
        auto lower = [&](int a, int b) { return higher(b, a); }; // heap order: highest on top
        for (std::size_t m = 1; m < mcount; ++m) {
            const int start = s.maxima[m];
            const int stamp = int(m);
            s.heap.clear();
            s.stamp[std::size_t(start)] = stamp;
            s.stamp[std::size_t(n)] = stamp;
            auto push = [&](int p) {
                const int *nb = neighboursOf(p);
                for (int k = 0; k < 8; ++k) {
                    const int q = nb[k];
                    if (s.stamp[std::size_t(q)] == stamp)
                        continue;
                    s.stamp[std::size_t(q)] = stamp;
                    s.heap.push_back(q);
                    std::push_heap(s.heap.begin(), s.heap.end(), lower);
                }
            };
            push(start);
            float level = value(start);
            int reached = -1;
            while (!s.heap.empty()) {
                std::pop_heap(s.heap.begin(), s.heap.end(), lower);
                const int q = s.heap.back();
                s.heap.pop_back();
                level = std::min(level, value(q));
                if (higher(q, start)) {
                    reached = q;
                    break;
                }
                push(q);
            }
            while (reached >= 0 && s.up[std::size_t(reached)] != reached)
                reached = s.up[std::size_t(reached)];
            s.death[m] = level;
            s.parentMax[m] = reached >= 0 ? s.maxId[std::size_t(reached)] : 0;
        }
        // Keep the maxima that stand out, highest first.
        s.owner.assign(mcount, -1);
        for (std::size_t m = 0; m < mcount; ++m) {
            const int p = s.maxima[m];
            if (m == 0) {
                s.owner[m] = 0;
                peaks.emplace_back().centre = p;
                continue;
            }
            const double v = value(p), saddle = s.death[m], h = v - background;
            const double prominence = v - saddle;
            const double noise = std::sqrt(2 * sigma * sigma
                                           + o.gain * (std::max(0.0, h) + std::max(0.0, saddle - background)));
            const bool stands = prominence >= o.prominenceFraction * h
                && prominence >= o.prominenceSigma * noise && prominence > 0;
            if (!stands) {
                s.owner[m] = s.owner[std::size_t(s.parentMax[m])];
                s.rejected.push_back(m);
                continue;
            }
            int nearest = -1;
            double best = HUGE_VAL;
            for (std::size_t q = 0; q < peaks.size(); ++q) {
                const int c = peaks[q].centre;
                const double d = std::hypot(double(rowOf(p) - rowOf(c)), double(colOf(p) - colOf(c)));
                if (d < best) {
                    best = d;
                    nearest = int(q);
                }
            }
            if (best >= o.minSeparation) {
                s.owner[m] = int(peaks.size());
                peaks.emplace_back().centre = p;
            } else {
                s.owner[m] = nearest;
                peaks[std::size_t(nearest)].merged = true;
            }
        }
        single = peaks.size() == 1;
        if (!single) {
            // Steepest ascent, memoised: every pixel takes the owner of the maximum it drains to.
            s.basin.assign(std::size_t(n), -1);
            for (int i = 0; i < n; ++i) {
                if (s.basin[std::size_t(i)] >= 0)
                    continue;
                s.path.clear();
                int j = i;
                while (s.basin[std::size_t(j)] < 0 && s.up[std::size_t(j)] != j) {
                    s.path.push_back(j);
                    j = s.up[std::size_t(j)];
                }
                const int b = s.basin[std::size_t(j)] >= 0 ? s.basin[std::size_t(j)]
                                                           : s.owner[std::size_t(s.maxId[std::size_t(j)])];
                s.basin[std::size_t(j)] = b;
                for (int q : s.path)
                    s.basin[std::size_t(q)] = b;
            }
        }
    }
    if (single) {
        const bool merged = !peaks.empty() && peaks[0].merged;
        peaks.assign(1, PeakStats());
        peaks[0].merged = merged;
        for (int i = 1; i < n; ++i)
            if (higher(i, peaks[0].centre))
                peaks[0].centre = i;
    }
    const std::size_t maximaPeaks = peaks.size();
    // Partners from the point symmetry of each maximum high enough (see kSymmetryMinHeight).
    if (o.shoulderSigma > 0 && n >= kMinShoulderPixels) {
        thread_local std::vector<SymmetryPartner> partners;
        thread_local SymmetryScratch symmetryScratch;
        thread_local std::vector<std::pair<int, int>> probes;
        const std::size_t searched = peaks.size();
        for (std::size_t k = 0; k < searched; ++k) {
            if (peaks[k].shoulder)
                continue;
            const int top = peaks[k].centre;
            const double height = double(value(top)) - background;
            if (!(height >= kSymmetryMinHeight * sigma))
                continue;
            const int row = rowOf(top), col = colOf(top);
            double startRow = row, startCol = col, plateau = 0;
            if (value(top) >= saturation) {
                // The plateau: the saturated pixels of this peak's basin.
                double sr = 0, sc = 0;
                int count = 0;
                for (int i = 0; i < n; ++i)
                    if (value(i) >= saturation && (maximaPeaks == 1 || s.basin[std::size_t(i)] == int(k))) {
                        sr += rowOf(i);
                        sc += colOf(i);
                        ++count;
                    }
                startRow = sr / count;
                startCol = sc / count;
                plateau = std::sqrt(count / 3.14159265358979);
                if (plateau > kSymmetryMaxPlateau)
                    continue;
            } else {
                const float *at = data + pixels[top];
                startRow += logParabolaOffset(at, cols, row, rows, background);
                startCol += logParabolaOffset(at, 1, col, cols, background);
            }
            double centreRow = 0, centreCol = 0;
            const auto inComponent = [&](int r, int c) { return positionAt(r, c) >= 0; };
            // Probes within kSymmetryProbeMax: this peak's weak maxima (failed the prominence
            // test), and the component's fainter peaks (their centres come from this residual).
            probes.clear();
            for (int m : s.rejected) {
                const int q = s.maxima[std::size_t(m)];
                const double dr = rowOf(q) - startRow, dc = colOf(q) - startCol;
                if (s.owner[std::size_t(m)] == int(k) && dr * dr + dc * dc <= kSymmetryProbeMax * kSymmetryProbeMax)
                    probes.emplace_back(rowOf(q), colOf(q));
            }
            for (std::size_t q = 0; q < searched; ++q) {
                const int c = peaks[q].centre;
                const double dr = rowOf(c) - startRow, dc = colOf(c) - startCol;
                if (q != k && !peaks[q].shoulder && value(c) < value(top)
                    && dr * dr + dc * dc <= kSymmetryProbeMax * kSymmetryProbeMax)
                    probes.emplace_back(rowOf(c), colOf(c));
            }
            if (!symmetryPartners(data, rows, cols, background, sigma, o.gain, saturation, o.shoulderSigma,
                                  int(std::lround(startRow)), int(std::lround(startCol)), startRow,
                                  startCol, plateau, inComponent, probes, centreRow,
                                  centreCol, partners, symmetryScratch))
                continue;
            bool added = false;
            for (const SymmetryPartner &p : partners) {
                const int at = positionAt(p.row, p.col);
                if (at < 0)
                    continue;
                // At a fainter maximum of this component: this peak's residual is that one's
                // profile with this one's flank taken away -- its centre, unless a brighter
                // peak's residual gave it one already.
                int nearest = -1;
                double best = HUGE_VAL;
                for (std::size_t q = 0; q < peaks.size(); ++q) {
                    const double dr = p.row - rowOf(peaks[q].centre), dc = p.col - colOf(peaks[q].centre);
                    if (q != k && dr * dr + dc * dc < best) {
                        best = dr * dr + dc * dc;
                        nearest = int(q);
                    }
                }
                if (nearest >= 0 && best < o.minSeparation * o.minSeparation) {
                    PeakStats &q = peaks[std::size_t(nearest)];
                    const double dr = p.centreRow - rowOf(q.centre), dc = p.centreCol - colOf(q.centre);
                    if (std::size_t(nearest) < maximaPeaks && !q.fixedCentre && value(q.centre) < value(top)
                        && dr * dr + dc * dc <= 1.5 * 1.5) {
                        q.fixedCentre = true;
                        q.centreRow = p.centreRow;
                        q.centreCol = p.centreCol;
                        added = true;
                    }
                    continue;
                }
                // A new shoulder: clear of every peak and (several maxima) in this peak's basin
                // (the flanks of the other maxima are theirs).
                if ((maximaPeaks > 1 && s.basin[std::size_t(at)] != int(k))
                    || std::hypot(p.row - centreRow, p.col - centreCol) < o.minSeparation)
                    continue;
                PeakStats &q = peaks.emplace_back();
                q.centre = at;
                q.shoulder = true;
                q.fixedCentre = true;
                q.centreRow = p.centreRow;
                q.centreCol = p.centreCol;
                added = true;
            }
            if (added && !peaks[k].fixedCentre) {
                peaks[k].fixedCentre = true;
                peaks[k].centreRow = centreRow;
                peaks[k].centreCol = centreCol;
            }
        }
    }
    if (peaks.size() > maximaPeaks) {
        // Shoulders have no basin of their own: every pixel goes to the nearest peak.
        s.basin.resize(std::size_t(n));
        for (int i = 0; i < n; ++i) {
            int best = 0;
            long bestD = LONG_MAX;
            for (std::size_t k = 0; k < peaks.size(); ++k) {
                const long dr = rowOf(i) - rowOf(peaks[k].centre), dc = colOf(i) - colOf(peaks[k].centre);
                if (dr * dr + dc * dc < bestD) {
                    bestD = dr * dr + dc * dc;
                    best = int(k);
                }
            }
            s.basin[std::size_t(i)] = best;
        }
        single = false;
    }
    // A pixel on the frame's border: the bounding box touches it.
    const bool edge = r0 == 0 || c0 == 0 || r1 == rows - 1 || c1 == cols - 1;
    for (int i = 0; i < n; ++i) {
        PeakStats &q = peaks[single ? 0 : std::size_t(s.basin[std::size_t(i)])];
        const float v = value(i);
        const double w = double(v) - background;
        const double r = double(rowOf(i)), c = double(colOf(i));
        ++q.area;
        q.sumW += w;
        q.sumWR += w * r;
        q.sumWC += w * c;
        q.sumR += r;
        q.sumC += c;
        if (v >= saturation) {
            ++q.saturated;
            q.satR += r;
            q.satC += c;
        }
    }
    const std::size_t first = out.size();
    for (std::size_t k = 0; k < peaks.size(); ++k) {
        PeakStats &q = peaks[k];
        // A saturated maximum: centre on the saturated pixel of its basin nearest the centroid of
        // the whole peak when that is not cut (clipping a symmetric peak does not move it), else
        // nearest the centroid of its saturated pixels (its plateau); ties go to the first in
        // row-major order.
        if (!q.shoulder && q.saturated > 0 && value(q.centre) >= saturation) {
            const bool whole = single && !edge && q.sumW > 0;
            const double pr = whole ? q.sumWR / q.sumW : q.satR / q.saturated;
            const double pc = whole ? q.sumWC / q.sumW : q.satC / q.saturated;
            double best = HUGE_VAL;
            for (int i = 0; i < n; ++i) {
                if (value(i) < saturation || (!single && s.basin[std::size_t(i)] != int(k)))
                    continue;
                const double d = std::hypot(double(rowOf(i)) - pr, double(colOf(i)) - pc);
                if (d < best) {
                    best = d;
                    q.centre = i;
                }
            }
        }
        FoundPeak f;
        f.centre = pixels[q.centre];
        f.label = label;
        Peak &p = f.peak;
        p.row = int(f.centre / cols);
        p.col = int(f.centre % cols);
        p.maxValue = value(q.centre);
        p.pixels = q.area;
        p.sum = q.sumW;
        if (!single || edge) {
            // A split peak's basin is cut at its neighbours, an edge peak's at the frame: both
            // bias the basin centroid, so these take a local estimate: the plateau's centroid when
            // saturated, else a log-parabola through the maximum and its neighbours.
            if (q.fixedCentre) {
                p.centroidRow = q.centreRow;
                p.centroidCol = q.centreCol;
            } else if (q.saturated > 0 && p.maxValue >= saturation) {
                p.centroidRow = q.satR / q.saturated;
                p.centroidCol = q.satC / q.saturated;
            } else {
                const float *at = data + f.centre;
                p.centroidRow = p.row + logParabolaOffset(at, cols, p.row, rows, background);
                p.centroidCol = p.col + logParabolaOffset(at, 1, p.col, cols, background);
            }
        } else if (q.sumW > 0) {
            p.centroidRow = q.sumWR / q.sumW;
            p.centroidCol = q.sumWC / q.sumW;
        } else {
            p.centroidRow = q.sumR / q.area;
            p.centroidCol = q.sumC / q.area;
        }
        p.merged = q.merged;
        p.shoulder = q.shoulder;
        p.saturatedPixels = q.saturated;
        p.componentPeaks = int(peaks.size());
        out.push_back(f);
    }
    if (peaks.size() > 1)
        for (std::size_t a = first; a < out.size(); ++a) {
            Peak &p = out[a].peak;
            p.neighbour = true;
            p.neighbourDistance = HUGE_VAL;
            for (std::size_t b = first; b < out.size(); ++b)
                if (b != a)
                    p.neighbourDistance = std::min(
                        p.neighbourDistance,
                        std::hypot(double(p.row - out[b].peak.row), double(p.col - out[b].peak.col)));
        }
}

/// True when the component holds a second local maximum at least kMergeHeight of the
/// component's height above background that is separated from every higher maximum by a dip:
/// from it, no path through the component reaches a higher pixel without descending by
/// max(kMergeDip x its height, 4 sigma) (4 sigma ~ 3 sigma of the difference of two pixels).
bool isMerged(const float *data, int cols, const std::size_t *pixels, int count, float maxValue,
              double background, double sigma)
{
    const double top = maxValue - background;
    if (count < 3 || !(top > 0))
        return false;
    int r0 = INT_MAX, c0 = INT_MAX, r1 = -1, c1 = -1;
    for (int i = 0; i < count; ++i) {
        const int r = int(pixels[i] / cols), c = int(pixels[i] % cols);
        r0 = std::min(r0, r);
        r1 = std::max(r1, r);
        c0 = std::min(c0, c);
        c1 = std::max(c1, c);
    }
    const int h = r1 - r0 + 1, w = c1 - c0 + 1;
    // Local copy of the component: value inside, -inf outside.
    std::vector<float> local(std::size_t(h) * w, -std::numeric_limits<float>::infinity());
    for (int i = 0; i < count; ++i) {
        const int r = int(pixels[i] / cols), c = int(pixels[i] % cols);
        local[std::size_t(r - r0) * w + (c - c0)] = data[pixels[i]];
    }
    auto at = [&](int r, int c) {
        return r < 0 || c < 0 || r >= h || c >= w ? -std::numeric_limits<float>::infinity()
                                                  : local[std::size_t(r) * w + c];
    };
    std::vector<int> candidates; // local indices of local maxima high enough
    for (int r = 0; r < h; ++r)
        for (int c = 0; c < w; ++c) {
            const float v = at(r, c);
            if (!(v - background >= kMergeHeight * top))
                continue;
            bool isMax = true;
            for (int dr = -1; dr <= 1 && isMax; ++dr)
                for (int dc = -1; dc <= 1; ++dc)
                    if (at(r + dr, c + dc) > v) {
                        isMax = false;
                        break;
                    }
            if (isMax)
                candidates.push_back(r * w + c);
        }
    if (candidates.size() < 2)
        return false;
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](int a, int b) { return local[a] > local[b]; });
    if (candidates.size() > kMaxMergeCandidates)
        candidates.resize(kMaxMergeCandidates);
    std::vector<std::uint8_t> seen(local.size());
    std::vector<int> stack;
    for (std::size_t j = 1; j < candidates.size(); ++j) {
        const float v = local[candidates[j]];
        const double level = v - std::max(kMergeDip * (v - background), 4 * sigma);
        std::fill(seen.begin(), seen.end(), 0);
        stack.assign(1, candidates[j]);
        seen[candidates[j]] = 1;
        bool connected = false;
        while (!stack.empty() && !connected) {
            const int k = stack.back();
            stack.pop_back();
            const int r = k / w, c = k % w;
            for (int dr = -1; dr <= 1 && !connected; ++dr)
                for (int dc = -1; dc <= 1; ++dc) {
                    const float u = at(r + dr, c + dc);
                    const int n = (r + dr) * w + (c + dc);
                    if (!(u >= level) || seen[n])
                        continue;
                    if (u > v || std::find(candidates.begin(), candidates.begin() + j, n)
                                     != candidates.begin() + j) {
                        connected = true;
                        break;
                    }
                    seen[n] = 1;
                    stack.push_back(n);
                }
        }
        if (!connected)
            return true;
    }
    return false;
}

/// The frame's saturation level: the option's, or (automatic) the largest foreground value when
/// at least kAutoSaturationPixels pixels hold it; +inf when none.
constexpr int kAutoSaturationPixels = 3;

/// The saturation level of a frame: options.saturation when > 0; none (+inf) when 0; automatic
/// (< 0): the frame's maximum over the foreground when at least kAutoSaturationPixels pixels
/// hold it. The automatic level comes from the components' maxima and their counts (the
/// statistics pass), not a pass of its own.
float saturationLevel(const std::vector<Component> &comps, const FinderOptions &options)
{
    if (options.saturation > 0)
        return float(options.saturation);
    if (options.saturation == 0)
        return std::numeric_limits<float>::infinity();
    float top = -std::numeric_limits<float>::infinity();
    int count = 0;
    for (std::size_t k = 1; k < comps.size(); ++k) {
        const Component &c = comps[k];
        if (c.area == 0)
            continue;
        if (c.maxValue > top) {
            top = c.maxValue;
            count = c.atMax;
        } else if (c.maxValue == top) {
            count += c.atMax;
        }
    }
    return count >= kAutoSaturationPixels ? top : std::numeric_limits<float>::infinity();
}

/// Everything after the labelling: per-component statistics over the foreground list, size
/// filters, peaks (one per component or split), in row-major order of their centres, flags and
/// patches.
std::vector<Peak> collectPeaks(const Frame &frame, int frameIndex, const FinderOptions &options,
                               const FrameThreshold &thr, int labelCount, FrameScratch &scratch,
                               std::vector<float> *patches)
{
    const int *labels = scratch.labels.data();
    const std::vector<std::size_t> &foreground = scratch.foreground;
    const float *fgValue = scratch.values.data();
    const int *fgLabel = scratch.listLabels.data();
    const double background = thr.background;
    const int rows = frame.rows, cols = frame.cols;
    const float *data = frame.data.data();
    // Statistics per component over the foreground list (row-major order, so a strict '>' keeps
    // the first maximum in row-major order on ties).
    std::vector<Component> comps(static_cast<std::size_t>(labelCount));
    const float fixedSaturation = options.saturation > 0 ? float(options.saturation)
                                                         : std::numeric_limits<float>::infinity();
    RowCursor at(cols); // the list is sorted
    for (std::size_t k = 0; k < foreground.size(); ++k) {
        const std::size_t idx = foreground[k];
        at.to(idx);
        Component &c = comps[std::size_t(fgLabel[k])];
        const float v = fgValue[k];
        const double w = double(v) - background;
        const double r = double(at.row), col = double(at.col);
        ++c.area;
        if (v > c.maxValue) {
            c.maxValue = v;
            c.maxIndex = idx;
            c.atMax = 1;
        } else if (v == c.maxValue) {
            ++c.atMax;
        }
        c.sumW += w;
        c.sumWR += w * r;
        c.sumWC += w * col;
        c.sumR += r;
        c.sumC += col;
        c.saturated += v >= fixedSaturation;
    }
    const float saturation = saturationLevel(comps, options);
    // An automatic level is the frame's maximum: a component's saturated pixels are those at
    // its own maximum when that is the level.
    if (options.saturation <= 0)
        for (Component &c : comps)
            c.saturated = c.area > 0 && c.maxValue >= saturation ? c.atMax : 0;
    // Pixels grouped by component (counting sort; row-major within each component).
    std::size_t offset = 0;
    for (Component &c : comps) {
        c.firstPixel = offset;
        offset += std::size_t(c.area);
    }
    std::vector<std::size_t> &grouped = scratch.groupedIndex;
    grouped.resize(foreground.size());
    const bool split = options.split == SplitMode::Prominence;
    if (split) {
        scratch.groupedValue.resize(foreground.size());
        scratch.groupedRow.resize(foreground.size());
        scratch.groupedCol.resize(foreground.size());
    }
    {
        std::vector<std::size_t> fill(comps.size());
        for (std::size_t k = 0; k < comps.size(); ++k)
            fill[k] = comps[k].firstPixel;
        RowCursor at(cols);
        for (std::size_t k = 0; k < foreground.size(); ++k) {
            const std::size_t to = fill[std::size_t(fgLabel[k])]++;
            grouped[to] = foreground[k];
            if (split) {
                at.to(foreground[k]);
                scratch.groupedValue[to] = fgValue[k];
                scratch.groupedRow[to] = int(at.row);
                scratch.groupedCol[to] = int(at.col);
            }
        }
    }

    std::vector<FoundPeak> found;
    for (int k = 1; k < labelCount; ++k) {
        const Component &c = comps[std::size_t(k)];
        if (c.area < options.minPixels || c.area > options.maxPixels)
            continue;
        if (split) {
            const ComponentPixels px{grouped.data() + c.firstPixel, scratch.groupedValue.data() + c.firstPixel,
                                     scratch.groupedRow.data() + c.firstPixel,
                                     scratch.groupedCol.data() + c.firstPixel, c.area};
            splitComponent(data, rows, cols, labels, k, px, background, thr.sigma, saturation, options,
                           scratch.split, found);
            continue;
        }
        FoundPeak f;
        f.centre = c.maxIndex;
        f.label = k;
        Peak &p = f.peak;
        p.row = int(c.maxIndex / cols);
        p.col = int(c.maxIndex % cols);
        p.maxValue = c.maxValue;
        p.pixels = c.area;
        p.sum = c.sumW;
        if (c.sumW > 0) {
            p.centroidRow = c.sumWR / c.sumW;
            p.centroidCol = c.sumWC / c.sumW;
        } else {
            p.centroidRow = c.sumR / c.area;
            p.centroidCol = c.sumC / c.area;
        }
        p.merged = isMerged(data, cols, grouped.data() + c.firstPixel, c.area, c.maxValue,
                            background, thr.sigma);
        p.saturatedPixels = c.saturated;
        found.push_back(f);
    }
    std::sort(found.begin(), found.end(),
              [](const FoundPeak &a, const FoundPeak &b) { return a.centre < b.centre; });

    const int s = options.patchSize, half = s / 2;
    const float fill = float(background);
    std::vector<Peak> peaks;
    peaks.reserve(found.size());
    if (patches)
        patches->reserve(patches->size() + found.size() * std::size_t(s) * s);
    for (FoundPeak &f : found) {
        Peak &p = f.peak;
        p.frame = frameIndex;
        p.background = fill;
        p.saturation = std::isfinite(saturation) ? saturation : 0.f;
        p.originRow = p.row - half;
        p.originCol = p.col - half;
        p.border = p.originRow < 0 || p.originCol < 0 || p.originRow + s > rows
            || p.originCol + s > cols;
        if (patches) {
            // Outside the frame, non-finite, or (maskOthers) another component's pixel: fill.
            const std::size_t at = patches->size();
            patches->resize(at + std::size_t(s) * s, fill);
            float *out = patches->data() + at;
            const int c0 = std::max(p.originCol, 0), c1 = std::min(p.originCol + s, cols);
            for (int r = std::max(p.originRow, 0); r < std::min(p.originRow + s, rows); ++r) {
                const std::size_t base = std::size_t(r) * cols;
                float *o = out + std::size_t(r - p.originRow) * s - p.originCol;
                for (int col = c0; col < c1; ++col) {
                    const float v = data[base + col];
                    const int l = labels[base + col];
                    if (std::isfinite(v) && !(options.maskOthers && l != 0 && l != f.label))
                        o[col] = v;
                }
            }
        }
        peaks.push_back(p);
    }
    return peaks;
}

} // namespace

void FinderOptions::validate(const std::string &source) const
{
    auto fail = [&](const char *field, const std::string &what) {
        throw InputError(source + ": " + field + ": " + what);
    };
    auto num = [](double v) {
        std::ostringstream os;
        os << v;
        return os.str();
    };
    if (patchSize < 1 || patchSize % 2 == 0)
        fail("patch_size", "expected an odd integer >= 1, got " + std::to_string(patchSize));
    if (minPixels < 1)
        fail("min_pixels", "expected an integer >= 1, got " + std::to_string(minPixels));
    if (maxPixels < minPixels)
        fail("max_pixels", "expected an integer >= min_pixels (" + std::to_string(minPixels)
                               + "), got " + std::to_string(maxPixels));
    if (!std::isfinite(threshold))
        fail("threshold", "expected a finite number (< 0 = automatic), got " + num(threshold));
    if (!(autoSigma > 0) || !std::isfinite(autoSigma))
        fail("auto_sigma", "expected a positive number, got " + num(autoSigma));
    if (split != SplitMode::None && split != SplitMode::Prominence)
        fail("split", "expected none or prominence");
    if (!(prominenceFraction >= 0 && prominenceFraction < 1))
        fail("prominence_fraction", "expected a number in [0, 1), got " + num(prominenceFraction));
    if (!(prominenceSigma >= 0) || !std::isfinite(prominenceSigma))
        fail("prominence_sigma", "expected a number >= 0, got " + num(prominenceSigma));
    if (!(gain >= 0) || !std::isfinite(gain))
        fail("gain", "expected a number >= 0, got " + num(gain));
    if (!(shoulderSigma >= 0) || !std::isfinite(shoulderSigma))
        fail("shoulder_sigma", "expected a number >= 0 (0 = no shoulder search), got " + num(shoulderSigma));
    if (!(minSeparation >= 0) || !std::isfinite(minSeparation))
        fail("min_separation", "expected a number >= 0 (px), got " + num(minSeparation));
    if (std::isnan(saturation) || std::isinf(saturation))
        fail("saturation", "expected a finite number (0 = none, < 0 = automatic), got " + num(saturation));
}

FrameThreshold frameThreshold(const Frame &frame, const FinderOptions &options)
{
    FrameThreshold t;
    const std::size_t n = frame.data.size();
    const bool full = n <= kFullSampleLimit;
    const std::size_t run = full ? n : kSampleRun;
    const std::size_t stride = full ? n : ((n / kSampleTarget) * kSampleRun) | 1;
    std::vector<float> sample;
    sample.reserve(full ? n : (n / stride + 1) * run);
    const float *d = frame.data.data();
    // Integer counts in 0..65535 (what detectors write) take the histogram; others the sort.
    bool counts = true;
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (std::size_t start = 0; start < n; start += stride)
        for (std::size_t i = start; i < std::min(n, start + run); ++i)
            if (std::isfinite(d[i])) {
                const float v = d[i];
                sample.push_back(v);
                counts &= v >= 0.f && v <= 65535.f && v == std::floor(v);
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
    if (!sample.empty() && counts) {
        const auto [median, mad] = countsMedianMad(sample, int(lo), int(hi));
        t.background = median;
        t.sigma = 1.4826 * mad;
    } else if (!sample.empty()) {
        t.background = medianInPlace(sample);
        for (float &v : sample)
            v = std::fabs(v - float(t.background));
        t.sigma = 1.4826 * medianInPlace(sample);
    }
    t.threshold = options.threshold >= 0 ? options.threshold
                                         : t.background + options.autoSigma * t.sigma;
    return t;
}

std::vector<Peak> findPeaks(const Frame &frame, int frameIndex, const FinderOptions &options,
                            std::vector<float> *patches)
{
    checkOptions(options);
    std::vector<Peak> peaks;
    if (frame.empty() || frame.rows <= 0 || frame.cols <= 0)
        return peaks;
    if (frame.data.size() != std::size_t(frame.rows) * frame.cols)
        throw InputError("peak finder: frame " + std::to_string(frameIndex) + " holds "
                         + std::to_string(frame.data.size()) + " values, expected rows x cols = "
                         + std::to_string(std::size_t(frame.rows) * frame.cols));
    const FrameThreshold thr = frameThreshold(frame, options);
    const float threshold = float(thr.threshold);
    const std::size_t n = frame.data.size();
    const float *data = frame.data.data();

    // Foreground: finite and strictly above the threshold (NaN and +-Inf never are), listed in
    // row-major order in one pass (no mask image: labelling.h works on this list).
    ScratchLease lease;
    FrameScratch &scratch = *lease.scratch;
    std::vector<std::size_t> &foreground = scratch.foreground;
    std::vector<float> &values = scratch.values;
    foreground.clear();
    values.clear();
    {
        std::size_t i = 0;
        // SSE2 (the x86-64 baseline): 16 pixels per step, a bit per pixel; NaN compares false.
        const __m128 thr4 = _mm_set1_ps(threshold), max4 = _mm_set1_ps(FLT_MAX);
        for (; i + 16 <= n; i += 16) {
            __m128 v[4], above[4];
            for (int k = 0; k < 4; ++k) {
                v[k] = _mm_loadu_ps(data + i + 4 * k);
                above[k] = _mm_cmpgt_ps(v[k], thr4);
            }
            const __m128 any = _mm_or_ps(_mm_or_ps(above[0], above[1]), _mm_or_ps(above[2], above[3]));
            if (_mm_movemask_ps(any) == 0)
                continue;
            unsigned bits = 0;
            for (int k = 0; k < 4; ++k) {
                const __m128 finite = _mm_cmple_ps(v[k], max4);
                bits |= unsigned(_mm_movemask_ps(_mm_and_ps(above[k], finite))) << (4 * k);
            }
            while (bits) {
                const std::size_t at = i + std::size_t(__builtin_ctz(bits));
                foreground.push_back(at);
                values.push_back(data[at]);
                bits &= bits - 1;
            }
        }
        for (; i < n; ++i)
            if (data[i] > threshold && data[i] <= FLT_MAX) {
                foreground.push_back(i);
                values.push_back(data[i]);
            }
    }
    if (foreground.empty())
        return peaks;

    // The label image is all zero between frames: only the foreground pixels are labelled, and
    // only they are cleared afterwards (also when collectPeaks throws).
    std::vector<int> &labels = scratch.labels;
    if (labels.size() != n)
        labels.assign(n, 0);
    struct Clear {
        std::vector<int> &labels;
        const std::vector<std::size_t> &foreground;
        ~Clear()
        {
            for (const std::size_t idx : foreground)
                labels[idx] = 0;
        }
    } clear{labels, foreground};
    scratch.listLabels.resize(foreground.size());
    const int count = labelForeground(foreground, frame.rows, frame.cols, labels.data(), scratch.parent,
                                      scratch.listLabels.data());
    return collectPeaks(frame, frameIndex, options, thr, count, scratch, patches);
}

namespace {

/// Gives frame `index`: a reference to a frame in memory, or one read (and dark-subtracted) into
/// `scratch`.
using FrameGetter = std::function<const Frame &(int index, Frame &scratch)>;

PatchDataset runFinder(int first, int last, const FrameGetter &get,
                       const FinderOptions &options, const Monitor &monitor,
                       std::vector<Peak> *peaksOut)
{
    const std::size_t frames = std::size_t(last - first);
    std::vector<std::vector<Peak>> peaks(frames);
    std::vector<std::vector<float>> patches(frames);
    std::atomic<std::size_t> done{0};
    // One frame buffer per worker for the whole run: a buffer per chunk (= per frame) would be
    // allocated and cleared (16 MB for 2048 x 2048) for every frame read.
    std::vector<Frame> scratch(std::size_t(std::max(1, resolveThreads(options.threads))));
    parallelChunks(
        frames, options.threads, 1,
        [&](std::size_t begin, std::size_t end, int worker) {
            for (std::size_t i = begin; i < end; ++i) {
                const int index = first + int(i);
                peaks[i] = findPeaks(get(index, scratch[std::size_t(worker)]), index, options, &patches[i]);
                const std::size_t n = ++done;
                monitor.report(double(n) / frames, "frame " + std::to_string(n) + "/"
                                                      + std::to_string(frames));
            }
        },
        [&] { return monitor.cancelled(); });
    monitor.check();

    std::size_t total = 0;
    for (const auto &p : peaks)
        total += p.size();
    const std::size_t s2 = std::size_t(options.patchSize) * options.patchSize;
    PatchDataset out;
    out.patchSize = options.patchSize;
    out.patches.reserve(total * s2);
    out.frameIndex.reserve(total);
    out.origin.reserve(total * 2);
    auto &border = out.extraFlags["/flags/border"];
    auto &merged = out.extraFlags["/flags/merged"];
    auto &neighbour = out.extraFlags["/flags/neighbour"];
    auto &shoulder = out.extraFlags["/flags/shoulder"];
    auto &saturated = out.extraFlags["/flags/saturated"];
    auto &maxValue = out.extraFloat["/peaks/max_value"];
    auto &pixels = out.extraFloat["/peaks/pixels"];
    auto &sum = out.extraFloat["/peaks/sum"];
    auto &bg = out.extraFloat["/peaks/background"];
    auto &centroid = out.extraFloat["/peaks/centroid"];
    auto &neighbourDistance = out.extraFloat["/peaks/neighbour_distance"];
    auto &componentPeaks = out.extraFloat["/peaks/component_peaks"];
    auto &saturatedPixels = out.extraFloat["/peaks/saturated_pixels"];
    auto &saturation = out.extraFloat["/peaks/saturation"];
    maxValue.shape = pixels.shape = sum.shape = bg.shape = {total};
    neighbourDistance.shape = componentPeaks.shape = saturatedPixels.shape = saturation.shape = {total};
    centroid.shape = {total, 2};
    for (std::size_t i = 0; i < frames; ++i) {
        out.patches.insert(out.patches.end(), patches[i].begin(), patches[i].end());
        std::vector<float>().swap(patches[i]);
        for (const Peak &p : peaks[i]) {
            out.frameIndex.push_back(p.frame);
            out.origin.push_back(p.originRow);
            out.origin.push_back(p.originCol);
            border.push_back(p.border ? 1 : 0);
            merged.push_back(p.merged ? 1 : 0);
            neighbour.push_back(p.neighbour ? 1 : 0);
            shoulder.push_back(p.shoulder ? 1 : 0);
            saturated.push_back(p.saturatedPixels > 0 ? 1 : 0);
            neighbourDistance.data.push_back(float(p.neighbourDistance));
            componentPeaks.data.push_back(float(p.componentPeaks));
            saturatedPixels.data.push_back(float(p.saturatedPixels));
            saturation.data.push_back(p.saturation);
            maxValue.data.push_back(p.maxValue);
            pixels.data.push_back(float(p.pixels));
            sum.data.push_back(float(p.sum));
            bg.data.push_back(p.background);
            centroid.data.push_back(float(p.centroidRow));
            centroid.data.push_back(float(p.centroidCol));
        }
    }
    if (peaksOut) {
        peaksOut->clear();
        peaksOut->reserve(total);
        for (auto &p : peaks)
            peaksOut->insert(peaksOut->end(), p.begin(), p.end());
    }
    return out;
}

} // namespace

PatchDataset findPeaksInSource(const FrameSource &source, int first, int last,
                               const FinderOptions &options, const Frame *dark,
                               const Monitor &monitor, std::vector<Peak> *peaksOut)
{
    checkOptions(options);
    const int count = source.frameCount();
    if (first < 0 || last < first || last > count)
        throw InputError(fileMessage(source.path(), "frame range " + std::to_string(first) + ":"
                                                        + std::to_string(last)
                                                        + " is outside the file's 0:"
                                                        + std::to_string(count)));
    if (dark && (dark->rows != source.rows() || dark->cols != source.cols()))
        throw InputError(fileMessage(source.path(),
                                     "frames are " + std::to_string(source.rows()) + " x "
                                         + std::to_string(source.cols()) + " but the dark frame is "
                                         + std::to_string(dark->rows) + " x "
                                         + std::to_string(dark->cols)));
    const FrameGetter read = [&](int index, Frame &scratch) -> const Frame & {
        source.readFrameInto(index, scratch);
        if (dark)
            subtractDarkInPlace(scratch, *dark);
        return scratch;
    };
    return runFinder(first, last, read, options, monitor, peaksOut);
}

PatchDataset findPeaksInFrames(const std::vector<Frame> &frames, const FinderOptions &options,
                               const Monitor &monitor, std::vector<Peak> *peaksOut)
{
    checkOptions(options);
    const FrameGetter get = [&](int index, Frame &) -> const Frame & { return frames[std::size_t(index)]; };
    return runFinder(0, int(frames.size()), get, options, monitor, peaksOut);
}

} // namespace braggnac::core
