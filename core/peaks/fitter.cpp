#include "core/peaks/fitter.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "core/common/parallel.h"
#include "core/peaks/fitsimd.h"
#include "core/peaks/fitstart.h"

// Per-instruction-set kernels need GCC's target attributes and __builtin_cpu_supports levels.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BRAGGNAC_FIT_X86 1
#endif

namespace braggnac::core {

namespace {

constexpr int kP = PseudoVoigt::kParameterCount;
// The two-peak model adds a second peak with its own shape (docs/fitting.md, "Neighbours"):
// round (amplitude, row, col, sigma, gamma, eta) or, for bright patches, a full pseudo-Voigt
// (amplitude, row, col, sigmaU, sigmaV, gammaU, gammaV, eta, theta).
constexpr int kPRound = kP + 6;
constexpr int kPFull = kP + 9;
constexpr int kP2 = kPFull; // the most parameters (array sizes)
// The round neighbour alone (its 6 parameters) on a fixed main peak and background: the stage
// that starts the pair fit.
constexpr int kPNeighbour = 6;
// Patches with this many usable pixels or fewer are not fitted.
constexpr int kMinPixels = 15;
constexpr double kPi = 3.14159265358979323846;
constexpr double kMinWidth = 0.3;
// A fit is a peak only when it lowers chi^2 below that of a flat patch by at least this many
// residual variances (a 6 sigma detection; pure-noise patches pass in < 0.1%); otherwise it
// fitted noise.
constexpr double kSignificance = 36.0;
// Two-peak stage: tried when the one-peak residual shows structure above this (robust sigmas of
// a 3x3 mean), kept when the second peak lowers chi^2 by more than kTwoPeakDrop residual
// variances (an F statistic of 10 on the round neighbour's 6 extra parameters).
constexpr double kResidualStructure = 3.5;
constexpr double kTwoPeakDrop = 60.0;
// A kept round pair continues with the neighbour's own ellipse and rotation (kPFull); that fit
// replaces the round one when it lowers chi^2 by more than kFullPairDrop residual variances (an
// F statistic of 10 on the 3 more parameters): a round model of an elongated neighbour biases
// the main centre, but where the data cannot tell the ellipse the 3 parameters only add
// variance (docs/fitting.md, "Neighbours").
constexpr double kFullPairDrop = 30.0;
// In a faint patch (one-peak SNR, amplitude / sqrt(amplitude + background + read noise^2),
// below kSameShapeSnr) a round pair the F test rejected is tried once more with the neighbour in
// the one-peak fit's mean shape (its widths and mixing held: amplitude and centre free), kept
// when it lowers chi^2 by more than kSameShapeDrop residual variances (F = 10 on 3 parameters).
// A faint neighbour's tail pulls an unpaired main centre towards it; the 6-parameter round
// neighbour is too loose to be kept there.
constexpr double kSameShapeSnr = 15.0;
constexpr double kSameShapeDrop = 30.0;
constexpr double kTwoPeakApart = 2.5; // px between the two fitted centres
// Statistical stop: the Gauss-Newton decrement, in noise variances, below which a fit is at its
// minimum: what a full Gauss-Newton step would still change is < 1 standard error along the
// least determined direction (a width, eta or theta), far less along the centre's. (0.05, i.e.
// 0.22 standard errors, cost 2.6 more iterations per realistic patch and was 0.001 px worse:
// docs/fitting.md, "Convergence".)
constexpr double kDecrementTol = 1.0;
// Stop before evaluating a step whose predicted chi^2 reduction (the linear model's) is at most
// LmRun::predictedTol noise variances and the Gauss-Newton decrement at the current point (the
// undamped step's) at most kPredictedDecrement times that: the evaluation would only confirm
// the minimum. The tolerance is kDecrementTol for the pair fits and the Poisson-weighted fit
// (after its first step); kProvisionalTol for the one-peak fit that only starts the pair or the
// Poisson-weighted fit (two-peak mode with Poisson weights). docs/fitting.md, "Convergence".
constexpr double kProvisionalTol = 4.0;
constexpr double kPredictedDecrement = 4.0;
// chi^2 changes below this fraction of the flat-patch chi^2 are rounding (the kernels evaluate
// in float: residuals cannot go below ~1e-7 of the signal).
constexpr double kChi2Floor = 1e-11;

// Pixel data of one patch, pixel-major, padded with weight-0 pixels to a multiple of the widest
// vector.
struct Workspace {
    int size = 0;
    int padded = 0;
    fit::DoubleArray row, col, data, weight;
    fit::FloatArray rowF, colF, dataF, weightF; // float copies for the LM kernels
    fit::FloatArray fixedF; // the fixed part of the model (kPNeighbour: main peak + background)
    fit::FloatArray jac[2]; // kP2 columns of `padded`: current and trial Jacobian (weighted)
    fit::FloatArray res[2]; // weighted residuals
    fit::DoubleArray model;  // the one-peak model (modelAt)
    std::vector<std::uint8_t> use;
    std::vector<std::uint8_t> validPixels, fitPixels; // per-patch copies of `use` (reused)
    std::vector<double> resid; // data - model (neighbourStart)
    // 3x3 window sums of the one-peak fit's residual over the valid pixels and the number of
    // valid pixels in each window (residualBoxSums), on a grid padded by one pixel of zeros.
    std::vector<double> padResid, boxSum;
    std::vector<int> padValid, boxCount;
    fit::StartScratch scratch;

    explicit Workspace(int s) : size(s)
    {
        const int n = s * s;
        padded = (n + fit::kPadLanes - 1) / fit::kPadLanes * fit::kPadLanes;
        row = fit::DoubleArray(padded);
        col = fit::DoubleArray(padded);
        data = fit::DoubleArray(padded);
        weight = fit::DoubleArray(padded);
        rowF = fit::FloatArray(padded);
        colF = fit::FloatArray(padded);
        dataF = fit::FloatArray(padded);
        weightF = fit::FloatArray(padded);
        fixedF = fit::FloatArray(padded);
        for (auto &j : jac)
            j = fit::FloatArray(std::size_t(kP2) * padded);
        for (auto &r : res)
            r = fit::FloatArray(padded);
        model = fit::DoubleArray(padded);
        resid.assign(n, 0.0);
        padResid.assign(std::size_t(s + 2) * (s + 2), 0.0);
        padValid.assign(std::size_t(s + 2) * (s + 2), 0);
        boxSum.assign(n, 0.0);
        boxCount.assign(n, 0);
        use.assign(n, 0);
        for (int k = 0; k < padded; ++k) {
            row[k] = k < n ? k / s : s / 2;
            col[k] = k < n ? k % s : s / 2;
            rowF[k] = float(row[k]);
            colF[k] = float(col[k]);
        }
    }

    /// Copies the weights into the kernels' float array (after they changed).
    void syncWeights()
    {
        for (int k = 0; k < size * size; ++k)
            weightF[k] = float(weight[k]);
    }

    /// Pixel weights (1 used, 0 left out) and data from `use`; returns the number used.
    int load(const float *patch)
    {
        int used = 0;
        for (int k = 0; k < size * size; ++k) {
            weight[k] = use[k];
            data[k] = use[k] ? patch[k] : 0.0f;
            weightF[k] = float(weight[k]);
            dataF[k] = float(data[k]);
            used += use[k];
        }
        return used;
    }
};

// Normal equations of one evaluation: chi^2, J^T J (upper triangle), J^T r.
template <int NP>
struct Normal {
    double chi2 = 0;
    double jtj[NP][NP];
    double jtr[NP];
};

// acc[g] = the per-lane products x . ys[g] for G columns at once (independent accumulators hide
// the FMA latency; the pixel loop unrolled, or its control costs more instructions than the
// multiply-adds); the lanes are summed later, N dot products at a time (fit::transposedSums).
template <typename V, int G>
BRAGGNAC_FIT_INLINE void dotProducts(const V *x, const V *const *ys, int nb, V *acc)
{
    for (int g = 0; g < G; ++g)
        acc[g] = V{};
#pragma GCC unroll 4
    for (int k = 0; k < nb; ++k) {
        const V xk = x[k];
        for (int g = 0; g < G; ++g)
            acc[g] += xk * ys[g][k];
    }
}

// One pseudo-Voigt's constants in the kernels' precision (widths as inverse squares and cubes,
// the rotation as cosine and sine, ga = amp (1 - eta), la = 2 amp eta).
template <typename K>
struct PeakConsts {
    K amp, r0, c0, isu2, isv2, igu2, igv2, isu3, isv3, igu3, igv3, eta, ct, st, ga, la;

    static PeakConsts of(double amp, double row, double col, double su, double sv, double gu,
                         double gv, double eta, double theta)
    {
        return {K(amp),
                K(row),
                K(col),
                K(1 / (su * su)),
                K(1 / (sv * sv)),
                K(1 / (gu * gu)),
                K(1 / (gv * gv)),
                K(1 / (su * su * su)),
                K(1 / (sv * sv * sv)),
                K(1 / (gu * gu * gu)),
                K(1 / (gv * gv * gv)),
                K(eta),
                K(std::cos(theta)),
                K(std::sin(theta)),
                K(amp * (1 - eta)),
                K(2 * amp * eta)};
    }
};

// The shape of that peak at a vector of pixels and the terms of its derivatives, weighted by w:
// rotated coordinates u, v (and squares), the Gaussian g, the Lorentzian l, shape = the mix,
// wg = ga g w, wl = la l^2 w, and mu, mv = d model / du, dv.
template <typename V>
struct PeakTerms {
    V u, v, u2, v2, g, l, shape, wg, wl, mu, mv;
};

template <int N, typename K, typename V>
BRAGGNAC_FIT_INLINE PeakTerms<V> peakTerms(const PeakConsts<K> &c, const V &row, const V &col,
                                           const V &w)
{
    PeakTerms<V> t;
    const V dr = row - c.r0, dc = col - c.c0;
    t.u = dr * c.ct + dc * c.st;
    t.v = dc * c.ct - dr * c.st;
    t.u2 = t.u * t.u;
    t.v2 = t.v * t.v;
    t.g = fit::expNonPositiveF<N>((t.u2 * c.isu2 + t.v2 * c.isv2) * K(-0.5));
    t.l = K(1) / (K(1) + t.u2 * c.igu2 + t.v2 * c.igv2);
    t.shape = t.g + c.eta * (t.l - t.g);
    t.wg = c.ga * t.g * w;
    t.wl = c.la * (t.l * t.l) * w;
    t.mu = -(t.wg * c.isu2 + t.wl * c.igu2) * t.u;
    t.mv = -(t.wg * c.isv2 + t.wl * c.igv2) * t.v;
    return t;
}

// A round neighbour's constants (q: amplitude, row, col, sigma, gamma, eta).
template <typename K>
struct RoundConsts {
    K amp, r0, c0, is2, ig2, is3, ig3, eta, ga, la;

    static RoundConsts of(const double *q)
    {
        return {K(q[0]),
                K(q[1]),
                K(q[2]),
                K(1 / (q[3] * q[3])),
                K(1 / (q[4] * q[4])),
                K(1 / (q[3] * q[3] * q[3])),
                K(1 / (q[4] * q[4] * q[4])),
                K(q[5]),
                K(q[0] * (1 - q[5])),
                K(2 * q[0] * q[5])};
    }
};

// The round neighbour at a vector of pixels: its 6 weighted Jacobian columns into j[0..5][k];
// returns its (unweighted) model.
template <int N, typename K, typename V>
BRAGGNAC_FIT_INLINE V roundNeighbour(const RoundConsts<K> &c, const V &row, const V &col,
                                     const V &w, V *const *j, int k)
{
    const V dr2 = row - c.r0, dc2 = col - c.c0;
    const V rho2 = dr2 * dr2 + dc2 * dc2;
    const V g2 = fit::expNonPositiveF<N>(rho2 * K(-0.5 * c.is2));
    const V l2 = K(1) / (K(1) + rho2 * c.ig2);
    const V shape2 = g2 + c.eta * (l2 - g2);
    const V wg2 = c.ga * g2 * w, wl2 = c.la * (l2 * l2) * w;
    const V q2 = wg2 * c.is2 + wl2 * c.ig2; // -2 d model / d rho2 (weighted)
    j[0][k] = w * shape2;
    j[1][k] = q2 * dr2;
    j[2][k] = q2 * dc2;
    j[3][k] = wg2 * rho2 * c.is3;
    j[4][k] = wl2 * rho2 * c.ig3;
    j[5][k] = (w * c.amp) * (l2 - g2);
    return c.amp * shape2;
}

// Model, weighted residuals and the analytic Jacobian in one pass over the pixels (sharing the
// exponential, the Lorentzian and the rotated coordinates), then J^T J and J^T r. NP = kPRound
// adds a round second peak (parameters 10-15), kPFull a full pseudo-Voigt one (10-18). `slot`
// picks the Jacobian/residual buffers. N: vector lanes.
template <int NP, int N>
BRAGGNAC_FIT_INLINE void evaluate(Workspace &ws, const double *p, int slot, Normal<NP> &out)
{
    // Single precision (N float lanes): the data are float32 and the residuals' noise is far
    // above float rounding; the sums of the normal equations are taken per lane (~8 terms
    // each) and the solve is in double.
    using K = float;
    using V = typename fit::VecOf<K, N>::D;
    const int nb = ws.padded / N;
    const V *rows = ws.rowF.vec<N>(), *cols = ws.colF.vec<N>();
    const V *data = ws.dataF.vec<N>(), *weight = ws.weightF.vec<N>();
    V *jac = ws.jac[slot].vec<N>();
    V *res = ws.res[slot].vec<N>();
    const K bg = K(p[1]);
    const PeakConsts<K> c1 = NP == kPNeighbour
        ? PeakConsts<K>{}
        : PeakConsts<K>::of(p[0], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]);
    V *j[NP];
    for (int i = 0; i < NP; ++i)
        j[i] = jac + i * nb;
    // The full second peak's constants.
    PeakConsts<K> n2{};
    if constexpr (NP == kPFull) {
        const double *q = p + kP;
        n2 = PeakConsts<K>::of(q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8]);
    }
    RoundConsts<K> rn{};
    if constexpr (NP == kPRound)
        rn = RoundConsts<K>::of(p + kP);
    V chi = {};
    if constexpr (NP == kPNeighbour) {
        // The round neighbour (parameters 0-5, the layout of 10-15) on ws.fixedF.
        const V *fixed = ws.fixedF.vec<N>();
        const RoundConsts<K> rc = RoundConsts<K>::of(p);
        for (int k = 0; k < nb; ++k) {
            const V w = weight[k];
            const V model = fixed[k] + roundNeighbour<N>(rc, rows[k], cols[k], w, j, k);
            const V r = w * (data[k] - model);
            res[k] = r;
            chi += r * r;
        }
    } else {
        for (int k = 0; k < nb; ++k) {
            const V w = weight[k];
            const PeakTerms<V> t = peakTerms<N>(c1, rows[k], cols[k], w);
            V model = bg + c1.amp * t.shape;
            if constexpr (NP == kPRound) {
                // The neighbour: round, its own widths and mixing (no rotation).
                model += roundNeighbour<N>(rn, rows[k], cols[k], w, j + kP, k);
            }
            if constexpr (NP == kPFull) {
                // The neighbour: a pseudo-Voigt of its own shape (no background of its own), the
                // same derivatives as the main peak's.
                const PeakTerms<V> t2 = peakTerms<N>(n2, rows[k], cols[k], w);
                model += n2.amp * t2.shape;
                j[10][k] = w * t2.shape;
                j[11][k] = n2.st * t2.mv - n2.ct * t2.mu;
                j[12][k] = -(n2.st * t2.mu + n2.ct * t2.mv);
                j[13][k] = t2.wg * t2.u2 * n2.isu3;
                j[14][k] = t2.wg * t2.v2 * n2.isv3;
                j[15][k] = t2.wl * t2.u2 * n2.igu3;
                j[16][k] = t2.wl * t2.v2 * n2.igv3;
                j[17][k] = (w * n2.amp) * (t2.l - t2.g);
                j[18][k] = t2.v * t2.mu - t2.u * t2.mv;
            }
            const V r = w * (data[k] - model);
            j[0][k] = w * t.shape;
            j[1][k] = w;
            j[2][k] = c1.st * t.mv - c1.ct * t.mu;
            j[3][k] = -(c1.st * t.mu + c1.ct * t.mv);
            j[4][k] = (t.wg * t.u2) * c1.isu3;
            j[5][k] = (t.wg * t.v2) * c1.isv3;
            j[6][k] = (t.wl * t.u2) * c1.igu3;
            j[7][k] = (t.wl * t.v2) * c1.igv3;
            j[8][k] = w * (c1.amp * (t.l - t.g));
            j[9][k] = t.v * t.mu - t.u * t.mv;
            res[k] = r;
            chi += r * r;
        }
    }
    out.chi2 = fit::horizontalSum(chi);
    // J^T J (upper triangle) and J^T r: for each column a, the per-lane dot products with
    // columns a..NP-1 and with r, four at a time; then their lanes summed N vectors at a time.
    const V *cols_[NP + 1];
    for (int i = 0; i < NP; ++i)
        cols_[i] = j[i];
    cols_[NP] = res;
    constexpr int kDots = NP * (NP + 1) / 2 + NP;
    constexpr int kGroups = (kDots + N - 1) / N;
    V acc[kGroups * N];
    int d = 0;
    for (int a = 0; a < NP; ++a) {
        const V *ja = j[a];
        int b = a;
        for (; b + 4 <= NP + 1; b += 4, d += 4)
            dotProducts<V, 4>(ja, cols_ + b, nb, acc + d);
        switch (NP + 1 - b) {
        case 3:
            dotProducts<V, 3>(ja, cols_ + b, nb, acc + d);
            break;
        case 2:
            dotProducts<V, 2>(ja, cols_ + b, nb, acc + d);
            break;
        case 1:
            dotProducts<V, 1>(ja, cols_ + b, nb, acc + d);
            break;
        default:
            break;
        }
        d += NP + 1 - b;
    }
    for (; d < kGroups * N; ++d)
        acc[d] = V{};
    float sums[kGroups * N];
    for (int g = 0; g < kGroups; ++g) {
        const V s = fit::transposedSums<N>(acc + g * N);
        std::memcpy(sums + g * N, &s, sizeof s);
    }
    d = 0;
    for (int a = 0; a < NP; ++a) {
        for (int c = a; c < NP; ++c)
            out.jtj[a][c] = sums[d++];
        out.jtr[a] = sums[d++];
    }
}

struct Bounds {
    double lo[kP2];
    double hi[kP2];
};

// Amplitudes > ampMin, centre inside the patch, widths in [0.3, S], eta in [0, 1]; a second
// peak's centre may lie up to S/2 outside the patch (a partly visible neighbour). The second
// peak's parameters in the round (kPRound) or full (kPFull) layout.
Bounds makeBounds(int size, double ampMin, int parameters = kPRound)
{
    const double inf = HUGE_VAL, w = double(size);
    const double edgeLo = -0.5, edgeHi = size - 0.5, out = 0.5 * size;
    Bounds b{{ampMin, -inf, edgeLo, edgeLo, kMinWidth, kMinWidth, kMinWidth, kMinWidth, 0, -inf,
              ampMin, edgeLo - out, edgeLo - out, kMinWidth, kMinWidth, 0, -inf, -inf, -inf},
             {inf, inf, edgeHi, edgeHi, w, w, w, w, 1, inf, inf, edgeHi + out, edgeHi + out, w, w,
              1, inf, inf, inf}};
    if (parameters == kPFull) {
        for (int i = 13; i <= 16; ++i) {
            b.lo[i] = kMinWidth;
            b.hi[i] = w;
        }
        b.lo[17] = 0;
        b.hi[17] = 1;
        b.lo[18] = -inf;
        b.hi[18] = inf;
    }
    return b;
}

BRAGGNAC_FIT_INLINE double wrapTheta(double t)
{
    // The model is invariant under theta -> theta + pi.
    return t - kPi * std::nearbyint(t / kPi);
}

// The damped, scaled normal equations M = S A S + lambda I, S = diag(1/sqrt(scale)), factored
// as L D L^T (no square roots: a column of the factorisation waits on one division), with the
// forward half of the solve done: L y = S g. Rows in `fixed` are decoupled (their y = 0).
template <int NP>
struct DampedFactor {
    double l[NP][NP]; // L below the diagonal (unit diagonal)
    double dinv[NP];          // 1 / D
    const double *s = nullptr; // S's diagonal (the caller's, which outlives the factor)
    double y[NP];             // L^-1 S g

    // sinv: the diagonal of S. False when M is not positive definite.
    BRAGGNAC_FIT_INLINE bool factor(const Normal<NP> &nrm, const double *sinv, double lambda,
                                    const bool *fixed)
    {
        double w[NP][NP]; // M below the diagonal, then L D
        double g[NP];
        double diag[NP];
        double sf[NP]; // S with the fixed rows zeroed (branch-free below)
        s = sinv;
        for (int i = 0; i < NP; ++i)
            sf[i] = fixed[i] ? 0.0 : s[i];
#pragma GCC unroll 16
        for (int i = 0; i < NP; ++i) {
            for (int j = 0; j < i; ++j)
                w[i][j] = nrm.jtj[j][i] * sf[i] * sf[j];
            diag[i] = fixed[i] ? 1 : nrm.jtj[i][i] * s[i] * s[i] + lambda;
            g[i] = nrm.jtr[i] * sf[i];
        }
        // Column j: D_j = M_jj - sum_k (L D)_jk L_jk, (L D)_ij = M_ij - sum_k (L D)_ik L_jk.
#pragma GCC unroll 16
        for (int j = 0; j < NP; ++j) {
            double d = diag[j];
            for (int k = 0; k < j; ++k)
                d -= w[j][k] * l[j][k];
            if (!(d > 1e-300))
                return false;
            dinv[j] = 1 / d;
            for (int i = j + 1; i < NP; ++i) {
                double v = w[i][j];
                for (int k = 0; k < j; ++k)
                    v -= w[i][k] * l[j][k];
                w[i][j] = v;
                l[i][j] = v * dinv[j];
            }
        }
#pragma GCC unroll 16
        for (int i = 0; i < NP; ++i) {
            double v = g[i];
            for (int k = 0; k < i; ++k)
                v -= l[i][k] * y[k];
            y[i] = v;
        }
        return true;
    }

    // x = S M^-1 S g (the step).
    BRAGGNAC_FIT_INLINE void solve(double *x) const
    {
#pragma GCC unroll 16
        for (int i = NP - 1; i >= 0; --i) {
            // The newest x last: each x waits on one product, not on a chain of them.
            double v = y[i] * dinv[i];
            for (int k = NP - 1; k > i; --k)
                v -= l[k][i] * x[k];
            x[i] = v;
        }
        for (int i = 0; i < NP; ++i)
            x[i] *= s[i];
    }

    // g^T S M^-1 S g = y^T D^-1 y (no back substitution needed).
    BRAGGNAC_FIT_INLINE double decrement() const
    {
        double dec = 0;
        for (int i = 0; i < NP; ++i)
            dec += y[i] * y[i] * dinv[i];
        return dec;
    }
};

// Solves (S A S + lambda I) y = S g, x = S y (fixed rows: x = 0; sinv: the diagonal of S).
// False when the matrix is not positive definite.
template <int NP>
BRAGGNAC_FIT_INLINE bool solveDamped(const Normal<NP> &nrm, const double *sinv, double lambda,
                                     const bool *fixed, double *x)
{
    DampedFactor<NP> f;
    if (!f.factor(nrm, sinv, lambda, fixed))
        return false;
    f.solve(x);
    return true;
}

struct LmRun {
    // In:
    const Bounds *bounds = nullptr;
    double chi2Floor = 0;
    int maxIterations = 100;
    double tol = 1e-8;
    int used = 0; // pixels in the fit (for the noise variance chi^2 / (used - parameters))
    double predictedTol = 0; // noise variances; 0: every step is evaluated
    int evaluatedSteps = 0;  // steps evaluated before predictedTol applies
    // Out:
    double chi2 = 0;
    int iterations = 0;
    bool criteriaMet = false;
    int residual = 0; // which of ws.res holds the final weighted residuals
    double jtj[kP2][kP2]; // J^T J (upper triangle) of that final evaluation
};

// The active set: parameters at a bound whose gradient (J^T r) points outwards are held.
template <int NP>
inline void heldAtBounds(const double *p, const Bounds &bounds, const double *jtr, bool *held)
{
    for (int i = 0; i < NP; ++i)
        held[i] = (p[i] <= bounds.lo[i] && jtr[i] <= 0) || (p[i] >= bounds.hi[i] && jtr[i] >= 0);
}

// The Gauss-Newton decrement g^T (J^T J)^-1 g at an evaluation (the chi^2 reduction an undamped
// step would bring; rows in `held` left out), or HUGE_VAL when the matrix is not positive
// definite.
template <int NP>
BRAGGNAC_FIT_INLINE double gaussNewtonDecrement(const Normal<NP> &nrm, const double *sinv,
                                                const bool *held)
{
    DampedFactor<NP> f;
    if (!f.factor(nrm, sinv, 1e-9, held))
        return HUGE_VAL;
    return f.decrement();
}

// Levenberg-Marquardt with Marquardt scaling (running maximum of diag(J^T J)), Nielsen's damping
// update, and bounds by projection plus an active set (a parameter at a bound whose gradient
// points outwards is held for that step). Converged when an accepted step changes chi^2 by at
// most tol * chi^2 (relative) and its scaled length is at most sqrt(tol) of the scaled
// parameter vector (MINPACK's xtol test); or, statistically, when an accepted step lowered chi^2
// by less than one noise variance s^2 = chi^2 / (used - NP) and the Gauss-Newton decrement at
// the new point (the chi^2 reduction a full Gauss-Newton step would still bring) is at most
// kDecrementTol s^2: the minimum is then within ~sqrt(kDecrementTol) standard errors; or when no
// step can lower chi^2 and the gradient is orthogonal to the residual (cosine <= sqrt(tol)).
template <int NP, int N>
BRAGGNAC_FIT_INLINE void levenbergMarquardt(Workspace &ws, double *p, LmRun &run)
{
    const Bounds &bounds = *run.bounds;
    const double tol = run.tol;
    const double xtol = std::sqrt(tol);
    int cur = 0;
    Normal<NP> nrm[2];
    evaluate<NP, N>(ws, p, cur, nrm[cur]);
    double scale[NP];
    double dmax = 0;
    for (int i = 0; i < NP; ++i)
        dmax = std::max(dmax, nrm[cur].jtj[i][i]);
    for (int i = 0; i < NP; ++i)
        scale[i] = std::max(nrm[cur].jtj[i][i], 1e-14 * dmax + 1e-300);
    double sinv[NP]; // 1 / sqrt(scale), the solves' S
    for (int i = 0; i < NP; ++i)
        sinv[i] = 1 / std::sqrt(scale[i]);
    double lambda = 1e-3, nu = 2;
    run.iterations = 0;
    run.criteriaMet = false;
    for (int it = 0; it < run.maxIterations; ++it) {
        run.iterations = it + 1;
        const Normal<NP> &n = nrm[cur];
        bool fixed[NP];
        heldAtBounds<NP>(p, bounds, n.jtr, fixed);
        double step[NP];
        double trial[NP];
        if (!solveDamped<NP>(n, sinv, lambda, fixed, step)) {
            lambda *= nu;
            nu *= 2;
            if (lambda > 1e16)
                break;
            continue;
        }
        // The reduction the linear model predicts for a step.
        // (The upper triangle read in two branch-free parts, same order of summation.)
        auto predicted = [&n](const double *x) {
            double r = 0;
            for (int i = 0; i < NP; ++i) {
                double hs = 0;
                for (int j = 0; j < i; ++j)
                    hs += n.jtj[j][i] * x[j];
                for (int j = i; j < NP; ++j)
                    hs += n.jtj[i][j] * x[j];
                r += x[i] * (2 * n.jtr[i] - hs);
            }
            return r;
        };
        // Of the step as solved (a step cut by a bound can predict less without being small):
        // (A + lambda diag(scale)) x = g makes 2 x.g - x^T A x = x.g + lambda x^T diag(scale) x,
        // no product with A needed (fixed rows have x = 0).
        double pred = 0;
        for (int i = 0; i < NP; ++i)
            pred += step[i] * (n.jtr[i] + lambda * scale[i] * step[i]);
        if (run.predictedTol > 0 && it >= run.evaluatedSteps && run.used > NP) {
            // A small damped step can also be a short one along a curved valley: the stop
            // also needs the Gauss-Newton decrement (undamped) to be small.
            const double limit = run.predictedTol * n.chi2 / (run.used - NP);
            if (pred <= limit
                && gaussNewtonDecrement<NP>(n, sinv, fixed) <= kPredictedDecrement * limit) {
                run.iterations = it; // steps evaluated
                run.criteriaMet = true;
                break;
            }
        }
        bool clamped = false;
        for (int i = 0; i < NP; ++i) {
            trial[i] = std::clamp(p[i] + step[i], bounds.lo[i], bounds.hi[i]);
            clamped = clamped || trial[i] != p[i] + step[i];
            step[i] = trial[i] - p[i];
        }
        if (clamped)
            pred = predicted(step);
        if constexpr (NP >= kP)
            trial[9] = wrapTheta(trial[9]);
        if constexpr (NP == kPFull)
            trial[kP + 8] = wrapTheta(trial[kP + 8]);
        const int nxt = 1 - cur;
        evaluate<NP, N>(ws, trial, nxt, nrm[nxt]);
        const double chi2 = nrm[nxt].chi2;
        if (std::isfinite(chi2) && chi2 < n.chi2) {
            // Gain ratio: actual / predicted (linear model) reduction.
            const double rho = pred > 0 ? (n.chi2 - chi2) / pred : 0;
            const double f = 2 * rho - 1;
            lambda *= std::max(1.0 / 3, 1 - f * f * f);
            lambda = std::max(lambda, 1e-12);
            nu = 2;
            double stepNorm = 0, xNorm = 0;
            for (int i = 0; i < NP; ++i) {
                const double d = std::sqrt(scale[i]);
                stepNorm += d * step[i] * d * step[i];
                xNorm += d * trial[i] * d * trial[i];
            }
            const bool chiSmall = n.chi2 - chi2 <= tol * chi2 + run.chi2Floor;
            const bool stepSmall = std::sqrt(stepNorm) <= xtol * (std::sqrt(xNorm) + xtol);
            std::copy(trial, trial + NP, p);
            cur = nxt;
            for (int i = 0; i < NP; ++i) {
                scale[i] = std::max(scale[i], nrm[cur].jtj[i][i]);
                sinv[i] = 1 / std::sqrt(scale[i]);
            }
            if (chiSmall && stepSmall) {
                run.criteriaMet = true;
                break;
            }
            const double s2 = chi2 / std::max(1, run.used - NP);
            if (run.used > NP && n.chi2 - chi2 <= s2) {
                const Normal<NP> &c = nrm[cur];
                bool held[NP];
                heldAtBounds<NP>(p, bounds, c.jtr, held);
                if (gaussNewtonDecrement<NP>(c, sinv, held) <= kDecrementTol * s2) {
                    run.criteriaMet = true;
                    break;
                }
            }
        } else {
            lambda *= nu;
            nu *= 2;
            if (lambda > 1e16) {
                // No step lowers chi^2 any more: a minimum if the gradient vanishes.
                const Normal<NP> &c = nrm[cur];
                double cosMax = 0;
                for (int i = 0; i < NP; ++i)
                    if (!fixed[i] && c.jtj[i][i] > 0 && c.chi2 > 0)
                        cosMax = std::max(cosMax,
                                          std::fabs(c.jtr[i]) / std::sqrt(c.jtj[i][i] * c.chi2));
                run.criteriaMet = cosMax <= xtol || c.chi2 <= run.chi2Floor;
                break;
            }
        }
    }
    run.chi2 = nrm[cur].chi2;
    run.residual = cur;
    for (int i = 0; i < NP; ++i)
        for (int j = i; j < NP; ++j)
            run.jtj[i][j] = nrm[cur].jtj[i][j];
}

// The one-peak model at every (padded) pixel into ws.model; returns the weighted chi^2.
template <int N>
BRAGGNAC_FIT_INLINE double modelAt(Workspace &ws, const double *p)
{
    using V = typename fit::Vec<N>::D;
    const int nb = ws.padded / N;
    const V *rows = ws.row.vec<N>(), *cols = ws.col.vec<N>();
    const V *data = ws.data.vec<N>(), *weight = ws.weight.vec<N>();
    V *model = ws.model.vec<N>();
    const double amp = p[0], bg = p[1], r0 = p[2], c0 = p[3];
    const double isu2 = 1 / (p[4] * p[4]), isv2 = 1 / (p[5] * p[5]);
    const double igu2 = 1 / (p[6] * p[6]), igv2 = 1 / (p[7] * p[7]);
    const double eta = p[8];
    const double ct = std::cos(p[9]), st = std::sin(p[9]);
    V chi = {};
    for (int k = 0; k < nb; ++k) {
        const V dr = rows[k] - r0, dc = cols[k] - c0;
        const V u = dr * ct + dc * st;
        const V v = dc * ct - dr * st;
        const V u2 = u * u, v2 = v * v;
        const V g = fit::expNonPositive<N>((u2 * isu2 + v2 * isv2) * -0.5);
        const V l = 1.0 / (1.0 + u2 * igu2 + v2 * igv2);
        const V m = bg + amp * (g + eta * (l - g));
        model[k] = m;
        const V r = weight[k] * (data[k] - m);
        chi += r * r;
    }
    return fit::horizontalSum(chi);
}

// The pixel sums of the centre's sandwich covariance (centreStderr): with J x_r and J x_c at
// every pixel (the weighted Jacobian of slot `slot`, columns idx[0..m)), var = gain max(model,
// 0) + rn^2 and the data - model residual d, out = {sum w^2 var (J x_r)^2, sum w^2 var (J x_c)^2,
// sum d^2 / var} over the pixels with weight > 0. N: double lanes.
template <int N>
BRAGGNAC_FIT_INLINE void sandwichAt(const Workspace &ws, int slot, const int *idx, int m,
                                    const double *xr, const double *xc, double gain, double rn2,
                                    double *out)
{
    using V = typename fit::Vec<N>::D;
    typedef float F __attribute__((vector_size(N * sizeof(float))));
    const int nb = ws.padded / N;
    const float *J = ws.jac[slot].data();
    const float *res = ws.res[slot].data();
    const double *wt = ws.weight.data(), *data = ws.data.data();
    V vr = {}, vc = {}, chi = {};
    for (int b = 0; b < nb; ++b) {
        V jr = {}, jc = {};
        for (int i = 0; i < m; ++i) {
            F f;
            std::memcpy(&f, J + std::size_t(idx[i]) * ws.padded + b * N, sizeof f);
            const V ji = __builtin_convertvector(f, V);
            jr += ji * xr[i];
            jc += ji * xc[i];
        }
        F rf;
        std::memcpy(&rf, res + b * N, sizeof rf);
        V w, d;
        std::memcpy(&w, wt + b * N, sizeof w);
        std::memcpy(&d, data + b * N, sizeof d);
        const auto used = w > 0;
        const V diff = __builtin_convertvector(rf, V) / (used ? w : V{} + 1); // data - model
        const V model = d - diff;
        const V var = gain * (model > 0 ? model : V{}) + rn2;
        const V safeVar = var > 0 ? var : V{} + 1;
        const V g = w * w * safeVar;
        chi += used ? diff * diff / safeVar : V{};
        vr += used ? g * jr * jr : V{};
        vc += used ? g * jc * jc : V{};
    }
    out[0] = fit::horizontalSum(vr);
    out[1] = fit::horizontalSum(vc);
    out[2] = fit::horizontalSum(chi);
}

// The kernels, compiled once per instruction set with its natural vector width (LM in float: 16
// lanes for AVX-512, 8 for AVX2+FMA, 4 for the SSE2 baseline; the model pass in double: 8, 4, 2)
// and picked at run time.
struct Kernels {
    void (*onePeak)(Workspace &, double *, LmRun &);
    void (*twoPeaks)(Workspace &, double *, LmRun &);     // round neighbour (kPRound)
    void (*twoPeaksFull)(Workspace &, double *, LmRun &); // full neighbour (kPFull)
    void (*neighbour)(Workspace &, double *, LmRun &);    // the neighbour alone (kPNeighbour)
    double (*model)(Workspace &, const double *); // modelAt
    void (*sandwich)(const Workspace &, int, const int *, int, const double *, const double *,
                     double, double, double *); // sandwichAt

    const char *name;
};

#define BRAGGNAC_FIT_KERNELS(suffix, attr, flanes, dlanes)                                      \
    attr void onePeak##suffix(Workspace &ws, double *p, LmRun &run)                             \
    {                                                                                           \
        levenbergMarquardt<kP, flanes>(ws, p, run);                                             \
    }                                                                                           \
    attr void twoPeaks##suffix(Workspace &ws, double *p, LmRun &run)                            \
    {                                                                                           \
        levenbergMarquardt<kPRound, flanes>(ws, p, run);                                        \
    }                                                                                           \
    attr void twoPeaksFull##suffix(Workspace &ws, double *p, LmRun &run)                        \
    {                                                                                           \
        levenbergMarquardt<kPFull, flanes>(ws, p, run);                                         \
    }                                                                                           \
    attr void neighbour##suffix(Workspace &ws, double *p, LmRun &run)                           \
    {                                                                                           \
        levenbergMarquardt<kPNeighbour, flanes>(ws, p, run);                                    \
    }                                                                                           \
    attr double model##suffix(Workspace &ws, const double *p) { return modelAt<dlanes>(ws, p); } \
    attr void sandwich##suffix(const Workspace &ws, int slot, const int *idx, int m,            \
                               const double *xr, const double *xc, double gain, double rn2,     \
                               double *out)                                                     \
    {                                                                                           \
        sandwichAt<dlanes>(ws, slot, idx, m, xr, xc, gain, rn2, out);                           \
    }

BRAGGNAC_FIT_KERNELS(Base, , 4, 2)
#ifdef BRAGGNAC_FIT_X86
BRAGGNAC_FIT_KERNELS(Avx2, __attribute__((target("arch=x86-64-v3"))), 8, 4)
BRAGGNAC_FIT_KERNELS(Avx512, __attribute__((target("arch=x86-64-v4"))), 16, 8)
#endif

// The widest instruction set the CPU has; BRAGGNAC_FIT_ISA=avx2|sse2 narrows it (for
// benchmarks).
const Kernels &kernels()
{
    static const Kernels k = [] {
        const Kernels base{&onePeakBase, &twoPeaksBase,  &twoPeaksFullBase, &neighbourBase,
                           &modelBase,   &sandwichBase, "sse2"};
#ifdef BRAGGNAC_FIT_X86
        const Kernels avx2{&onePeakAvx2, &twoPeaksAvx2,  &twoPeaksFullAvx2, &neighbourAvx2,
                           &modelAvx2,   &sandwichAvx2, "avx2"};
        const Kernels avx512{&onePeakAvx512, &twoPeaksAvx512,  &twoPeaksFullAvx512,
                             &neighbourAvx512, &modelAvx512,   &sandwichAvx512,
                             "avx512"};
        const char *env = std::getenv("BRAGGNAC_FIT_ISA");
        const std::string want = env ? env : "avx512";
        __builtin_cpu_init();
        const bool v4 = __builtin_cpu_supports("x86-64-v4");
        const bool v3 = __builtin_cpu_supports("x86-64-v3");
        if (v4 && want == "avx512")
            return avx512;
        if (v3 && want != "base" && want != "sse2")
            return avx2;
#endif
        return base;
    }();
    return k;
}

PseudoVoigt toPseudoVoigt(const double *p)
{
    std::array<double, kP> a;
    std::copy(p, p + kP, a.begin());
    return PseudoVoigt::fromArray(a);
}

double flatChi2Of(const float *patch, const std::vector<std::uint8_t> &use)
{
    double sum = 0;
    int used = 0;
    for (std::size_t k = 0; k < use.size(); ++k)
        if (use[k]) {
            sum += patch[k];
            ++used;
        }
    const double mean = sum / std::max(1, used);
    double chi2 = 0;
    for (std::size_t k = 0; k < use.size(); ++k)
        if (use[k])
            chi2 += (patch[k] - mean) * (patch[k] - mean);
    return chi2;
}

// chi^2 of the best flat (weighted mean) model with the workspace's weights.
double flatChi2Weighted(const Workspace &ws)
{
    double sw = 0, swd = 0;
    for (int k = 0; k < ws.size * ws.size; ++k) {
        const double w2 = ws.weight[k] * ws.weight[k];
        sw += w2;
        swd += w2 * ws.data[k];
    }
    const double mean = sw > 0 ? swd / sw : 0;
    double chi2 = 0;
    for (int k = 0; k < ws.size * ws.size; ++k) {
        const double d = ws.weight[k] * (ws.data[k] - mean);
        chi2 += d * d;
    }
    return chi2;
}

// Standard errors of the centre (parameters 2, 3) from the weighted Jacobian and residuals the
// last LM evaluation left in `slot`: the sandwich A^-1 (J^T diag(w^2 var) J) A^-1 with
// A = J^T J over the free parameters (those not on a bound), var = gain max(model, 0) + rn^2,
// scaled by chi^2 / dof of the residuals in units of var. False when A is singular.
bool centreStderr(const Workspace &ws, const LmRun &lm, int np, const double *p, const Bounds &b,
                  const FitOptions &o, double &seRow, double &seCol, int ir = 2, int ic = 3,
                  bool sums = true)
{
    int idx[kP2];
    int m = 0;
    for (int i = 0; i < np; ++i) {
        const double span = 1e-9 * (1 + std::fabs(p[i]));
        const bool held = p[i] <= b.lo[i] + span || p[i] >= b.hi[i] - span;
        if (!held || i == ir || i == ic)
            idx[m++] = i;
    }
    double a[kP2][kP2] = {};
    for (int x = 0; x < m; ++x)
        for (int y = 0; y <= x; ++y)
            a[x][y] = lm.jtj[idx[y]][idx[x]]; // idx ascending: the upper triangle
    // Scaled to a unit diagonal, then Cholesky (lower) in place. A parameter the data do not
    // determine (no information, e.g. theta of a round peak, the Gaussian widths of a pure
    // Lorentzian: a pivot ~0) is taken as known: dropped from the inverse. Not the centre.
    double sc[kP2];
    bool dropped[kP2] = {};
    for (int x = 0; x < m; ++x)
        sc[x] = a[x][x] > 0 ? 1 / std::sqrt(a[x][x]) : 0;
    for (int x = 0; x < m; ++x)
        for (int y = 0; y <= x; ++y)
            a[x][y] *= sc[x] * sc[y];
    for (int j = 0; j < m; ++j) {
        double d = a[j][j];
        for (int k = 0; k < j; ++k)
            d -= a[j][k] * a[j][k];
        if (!(sc[j] > 0) || !(d > 1e-9)) {
            if (idx[j] == ir || idx[j] == ic)
                return false;
            dropped[j] = true;
            for (int k = 0; k < j; ++k)
                a[j][k] = 0;
            a[j][j] = 1;
            for (int i = j + 1; i < m; ++i)
                a[i][j] = 0;
            continue;
        }
        d = std::sqrt(d);
        a[j][j] = d;
        for (int i = j + 1; i < m; ++i) {
            double v = a[i][j];
            for (int k = 0; k < j; ++k)
                v -= a[i][k] * a[j][k];
            a[i][j] = v / d;
        }
    }
    auto solve = [&](int unit, double *x) {
        double y[kP2];
        for (int i = 0; i < m; ++i) {
            double v = idx[i] == unit && !dropped[i] ? sc[i] : 0.0;
            for (int k = 0; k < i; ++k)
                v -= a[i][k] * y[k];
            y[i] = v / a[i][i];
        }
        for (int i = m - 1; i >= 0; --i) {
            double v = y[i];
            for (int k = i + 1; k < m; ++k)
                v -= a[k][i] * x[k];
            x[i] = v / a[i][i];
        }
        for (int i = 0; i < m; ++i)
            x[i] = dropped[i] ? 0 : x[i] * sc[i];
    };
    const int used = lm.used; // every pixel in the fit has a weight > 0
    if (used <= m)
        return false;
    if (!sums) { // A is regular: the caller computes the pixel sums later if it needs them
        seRow = seCol = std::nan("");
        return true;
    }
    double xr[kP2], xc[kP2];
    solve(ir, xr);
    solve(ic, xc);
    double s[3];
    kernels().sandwich(ws, lm.residual, idx, m, xr, xc, o.gain, o.readNoise * o.readNoise, s);
    const double vr = s[0], vc = s[1], chi2 = s[2];
    const double scale = chi2 / double(used - m);
    seRow = std::sqrt(vr * scale);
    seCol = std::sqrt(vc * scale);
    return std::isfinite(seRow) && std::isfinite(seCol);
}

// Intensity centroid of the pixels above `bg` (the estimate when there is no fit).
void centroidEstimate(const float *patch, int s, const std::vector<std::uint8_t> &use, double bg,
                      PseudoVoigt &out)
{
    double sw = 0, sr = 0, sc = 0;
    for (int k = 0; k < s * s; ++k)
        if (use[k] && patch[k] > bg) {
            const double w = patch[k] - bg;
            sw += w;
            sr += w * (k / s);
            sc += w * (k % s);
        }
    out.row = sw > 0 ? sr / sw : s / 2;
    out.col = sw > 0 ? sc / sw : s / 2;
}

// The residual of the one-peak fit in `ws.model` over the valid pixels (ws.resid), its 3x3
// window sums (ws.boxSum) and the valid pixels in each window (ws.boxCount).
void residualBoxSums(Workspace &ws, const float *patch)
{
    const int s = ws.size, wp = s + 2;
    double *pr = ws.padResid.data();
    int *pv = ws.padValid.data();
    for (int r = 0; r < s; ++r)
        for (int c = 0; c < s; ++c) {
            const int k = r * s + c, kp = (r + 1) * wp + c + 1;
            const bool valid = ws.validPixels[k];
            ws.resid[k] = valid ? patch[k] - ws.model[k] : 0.0;
            pr[kp] = ws.resid[k];
            pv[kp] = valid;
        }
    // Summed in the window's row-major order (the zeros of invalid pixels and of the padding
    // change nothing).
    const int offsets[9] = {-wp - 1, -wp, -wp + 1, -1, 0, 1, wp - 1, wp, wp + 1};
    for (int r = 0; r < s; ++r)
        for (int c = 0; c < s; ++c) {
            const int kp = (r + 1) * wp + c + 1;
            double sum = 0;
            int cnt = 0;
            for (int o : offsets) {
                sum += pr[kp + o];
                cnt += pv[kp + o];
            }
            ws.boxSum[r * s + c] = sum;
            ws.boxCount[r * s + c] = cnt;
        }
}

// Structure left by a one-peak fit over every valid pixel (those a neighbour's basin mask left
// out included; `ws.model` holds the fit, modelAt): the largest sum of residuals over a 3x3
// window at least 2 px from the fitted centre, divided by sqrt(pixels in the window) (so that
// noise gives unit variance), in units of the residuals' robust sigma (1.4826 MAD). A
// neighbour's tail leaves a coherent positive blob (docs/fitting.md). Leaves the window sums
// in the workspace (residualBoxSums) for neighbourStart.
double residualStructure(Workspace &ws, const float *patch, const double *p)
{
    const int s = ws.size;
    residualBoxSums(ws, patch);
    static const double kSqrt[10] = {0,         1,         std::sqrt(2.0), std::sqrt(3.0),
                                     2,         std::sqrt(5.0), std::sqrt(6.0), std::sqrt(7.0),
                                     std::sqrt(8.0), 3};
    double best = 0;
    for (int r = 0; r < s; ++r)
        for (int c = 0; c < s; ++c) {
            const double dr = r - p[2], dc = c - p[3];
            const int k = r * s + c;
            if (dr * dr + dc * dc < 4.0 || ws.boxCount[k] == 0)
                continue;
            best = std::max(best, ws.boxSum[k] / kSqrt[ws.boxCount[k]]);
        }
    std::vector<double> &v = ws.scratch.values;
    v.clear();
    for (int k = 0; k < s * s; ++k)
        if (ws.validPixels[k])
            v.push_back(std::fabs(ws.resid[k]));
    if (v.empty())
        return 0;
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    const double sigma = 1.4826 * v[v.size() / 2];
    return sigma > 0 ? best / sigma : 0;
}

// Start for a second peak: the maximum of the 3x3-smoothed residual of the one-peak fit, at least
// 2 px from the fitted centre, with the one-peak fit's mean widths. Reads the window sums and
// residuals residualStructure left in the workspace (the same fit, the same valid pixels).
bool neighbourStart(const Workspace &ws, const float *patch, const PseudoVoigt &fit1, double *q)
{
    const int s = ws.size;
    double best = 0;
    int at = -1;
    for (int r = 0; r < s; ++r)
        for (int c = 0; c < s; ++c) {
            if (std::hypot(r - fit1.row, c - fit1.col) < 2.0)
                continue;
            const int k = r * s + c;
            const int cnt = ws.boxCount[k];
            if (cnt && ws.boxSum[k] / cnt > best) {
                best = ws.boxSum[k] / cnt;
                at = k;
            }
        }
    if (at < 0)
        return false;
    q[10] = std::max(best, patch[at] - ws.model[at]);
    q[11] = at / s;
    q[12] = at % s;
    // Its shape: the main peak's mean widths and mixing (kept off the eta bounds, where the
    // active set could hold it).
    q[13] = std::sqrt(fit1.sigmaU * fit1.sigmaV);
    q[14] = std::sqrt(fit1.gammaU * fit1.gammaV);
    q[15] = std::clamp(fit1.eta, 0.1, 0.9);
    return true;
}

// Start of the full neighbour from the round pair q: the neighbour's ellipse from the second
// moments of the data less the pair's main peak (its positive part within 2.5 px of the
// neighbour's centre, over the valid pixels), its axes around the round widths (their geometric
// mean kept, the ratio at most 1.6), its rotation the moments' principal axis. Starting round
// would leave the rotation with no gradient (a round peak does not change when turned).
void neighbourShapeStart(Workspace &ws, double (*model)(Workspace &, const double *),
                         const double *q, double *qf)
{
    const int s = ws.size;
    model(ws, q); // the main peak and the background
    const double r0 = q[11], c0 = q[12];
    double m = 0, mrr = 0, mcc = 0, mrc = 0;
    for (int k = 0; k < s * s; ++k) {
        if (!ws.use[k])
            continue;
        const double dr = ws.row[k] - r0, dc = ws.col[k] - c0;
        const double w = ws.data[k] - ws.model[k];
        if (w <= 0 || dr * dr + dc * dc > 2.5 * 2.5)
            continue;
        m += w;
        mrr += w * dr * dr;
        mcc += w * dc * dc;
        mrc += w * dr * dc;
    }
    double ratio = 1, theta = 0;
    if (m > 0) {
        mrr /= m;
        mcc /= m;
        mrc /= m;
        const double half = 0.5 * (mrr + mcc);
        const double dev = std::hypot(0.5 * (mrr - mcc), mrc);
        if (half - dev > 0) {
            ratio = std::min(1.6, std::sqrt((half + dev) / (half - dev)));
            theta = 0.5 * std::atan2(2 * mrc, mrr - mcc);
        }
    }
    const double k = std::sqrt(ratio);
    qf[13] = q[13] * k;
    qf[14] = q[13] / k;
    qf[15] = q[14] * k;
    qf[16] = q[14] / k;
    qf[17] = q[15];
    qf[18] = theta;
}

// The result of one LM run: canonical parameters, rms and the convergence verdict
// (docs/fitting.md): criteria met, not degenerate, significant, finite.
FitResult assess(double *p, const LmRun &lm, int used, double flatChi2, int parameters,
                 const Bounds &bounds, int size)
{
    FitResult result;
    result.iterations = lm.iterations;
    bool finite = std::isfinite(lm.chi2);
    for (int i = 0; i < kP; ++i)
        finite = finite && std::isfinite(p[i]);
    if (!finite) {
        result.status = FitStatus::Singular; // the caller supplies the estimate
        result.params.row = result.params.col = size / 2;
        result.params.amplitude = 0;
        result.params.background = std::isfinite(p[1]) ? p[1] : 0.0;
        return result;
    }
    // Canonical form: theta in [-pi/4, pi/4); theta +- pi/2 with the U and V widths swapped is
    // the same peak.
    if (p[9] >= kPi / 4 || p[9] < -kPi / 4) {
        p[9] = wrapTheta(p[9] - kPi / 2);
        std::swap(p[4], p[5]);
        std::swap(p[6], p[7]);
    }
    result.params = toPseudoVoigt(p);
    result.rms = std::sqrt(lm.chi2 / used);

    // Degenerate solutions: no amplitude; the centre on the patch edge (or, from the second
    // peak of a two-peak fit, whose bounds are wider, outside the patch); a component that
    // matters (the Gaussian when eta < 0.9, the Lorentzian when eta > 0.1) collapsed to a point
    // (both widths on the lower bound: it fits one pixel) or flattened (a width on the upper
    // bound: it fits the background). One width on the lower bound is a line-shaped component,
    // an extreme but legitimate shape that leaves the centre well defined.
    const double eps = 1e-6;
    auto atLo = [&](int i) { return p[i] <= bounds.lo[i] + eps; };
    auto atHi = [&](int i) { return p[i] >= bounds.hi[i] - eps; };
    bool degenerate = p[0] <= bounds.lo[0] * (1 + eps) || atLo(2) || atHi(2) || atLo(3)
        || atHi(3) || p[2] < bounds.lo[2] || p[2] > bounds.hi[2] || p[3] < bounds.lo[3]
        || p[3] > bounds.hi[3];
    if (p[8] < 0.9)
        degenerate = degenerate || (atLo(4) && atLo(5)) || atHi(4) || atHi(5);
    if (p[8] > 0.1)
        degenerate = degenerate || (atLo(6) && atLo(7)) || atHi(6) || atHi(7);
    const double noiseVar = lm.chi2 / std::max(1, used - parameters);
    const bool significant = flatChi2 - lm.chi2 >= kSignificance * noiseVar;
    if (!significant)
        result.status = FitStatus::TooFaint;
    else if (degenerate)
        result.status = FitStatus::Bounds;
    else if (!lm.criteriaMet)
        result.status = lm.iterations >= lm.maxIterations ? FitStatus::MaxIterations
                                                          : FitStatus::Singular;
    else
        result.status = FitStatus::Converged;
    result.converged = result.status == FitStatus::Converged;
    return result;
}

// Weights 1 / sqrt(variance of the one-peak model in ws.model) for the used pixels (Poisson
// weighting).
void poissonReweight(Workspace &ws, const FitOptions &o)
{
    const double rn2 = o.readNoise * o.readNoise;
    for (int k = 0; k < ws.size * ws.size; ++k) { // branch-free: vectorises
        const double var = o.gain * std::max(ws.model[k], 0.0) + rn2;
        const double w = 1 / std::sqrt(std::max(var, 1e-6));
        ws.weight[k] = ws.use[k] ? w : ws.weight[k];
    }
    ws.syncWeights();
}

// The run that continues `from` with Poisson weights from the model in ws.model
// (poissonReweight): the statistical stop after its first step, the chi^2 floor of the weighted
// flat patch (returned in flatW).
LmRun poissonContinuation(Workspace &ws, const FitOptions &o, const LmRun &from, double &flatW)
{
    poissonReweight(ws, o);
    LmRun run = from;
    run.predictedTol = kDecrementTol;
    run.evaluatedSteps = 1;
    flatW = flatChi2Weighted(ws);
    run.chi2Floor = kChi2Floor * flatW;
    return run;
}

// The final evaluation of the finished `run` at p again, with unit weights over ws.use (the same
// Jacobian and residuals, no iterations): for a fit whose weighted continuation did not stay.
LmRun evaluatedAgain(Workspace &ws, const float *patch, void (*lm)(Workspace &, double *, LmRun &),
                     double *p, const LmRun &run)
{
    ws.load(patch);
    LmRun again = run;
    again.maxIterations = 0;
    lm(ws, p, again);
    return again;
}

// Marks `result` with its centre standard error (from the LM run that just ended) or +inf.
// With sums = false only the covariance's regularity is decided (the status) and the standard
// error is left pending (NaN; returns true): for a fit that a later one will most likely
// replace, the pixel sums are computed only if it stays (fitOne).
bool attachStderr(FitResult &result, Workspace &ws, const LmRun &lm, int np,
                  const double *p, const Bounds &bounds, const FitOptions &options, int ir = 2,
                  int ic = 3, bool sums = true)
{
    double sr = HUGE_VAL, sc = HUGE_VAL;
    if (result.status == FitStatus::TooFaint
        || !centreStderr(ws, lm, np, p, bounds, options, sr, sc, ir, ic, sums)) {
        sr = sc = HUGE_VAL;
        if (result.status == FitStatus::Converged) {
            result.status = FitStatus::Singular;
            result.converged = false;
        }
    }
    result.rowStderr = sr;
    result.colStderr = sc;
    return std::isnan(sr);
}

bool betterThan(const FitResult &a, double chiA, const FitResult &b, double chiB)
{
    if (a.converged != b.converged)
        return a.converged;
    return chiA < chiB;
}

FitResult fitOne(Workspace &ws, const float *patch, const FitOptions &options,
                 const std::uint8_t *mask, double saturation)
{
    const int s = ws.size;
    const int n = s * s;
    FitResult result;
    PseudoVoigt &out = result.params;
    out.row = out.col = s / 2;
    out.amplitude = 0;

    int valid = 0;
    double lo = HUGE_VAL, hi = -HUGE_VAL;
    for (int k = 0; k < n; ++k) {
        const bool ok = std::isfinite(patch[k]) && !(mask && mask[k])
            && !(saturation > 0 && patch[k] >= saturation);
        ws.use[k] = ok;
        if (ok) {
            ++valid;
            lo = std::min(lo, double(patch[k]));
            hi = std::max(hi, double(patch[k]));
        }
    }
    if (valid == 0)
        return result;
    out.background = lo;
    if (valid <= kMinPixels || !(hi > lo)) {
        centroidEstimate(patch, s, ws.use, lo, out); // too few pixels, or a constant patch
        return result;
    }
    ws.validPixels = ws.use;

    const fit::StartValues start =
        fit::estimateStart(patch, s, ws.use.data(),
                           options.neighbours != NeighbourHandling::Ignore, ws.scratch);
    double p[kP2];
    std::copy(start.params.begin(), start.params.end(), p);
    const int used = ws.load(patch);
    const double flatChi2 = flatChi2Of(patch, ws.use);
    if (!start.usable || !(flatChi2 > 0)) {
        out.background = start.params[1];
        centroidEstimate(patch, s, ws.use, start.params[1], out);
        return result;
    }

    const Bounds bounds = makeBounds(s, 1e-9 * (hi - lo));
    for (int i = 0; i < kP; ++i)
        p[i] = std::clamp(p[i], bounds.lo[i], bounds.hi[i]);
    p[9] = wrapTheta(p[9]);
    double p0[kP2];
    std::copy(p, p + kP2, p0);
    const Kernels &kernel = kernels();
    LmRun lm;
    lm.bounds = &bounds;
    lm.chi2Floor = kChi2Floor * flatChi2;
    lm.maxIterations = std::max(1, options.maxIterations);
    lm.tol = options.tolerance > 0 ? options.tolerance : 1e-8;
    lm.used = used;
    // A one-peak fit that the Poisson-weighted fit (or a pair) continues need not be as tight.
    if (options.neighbours == NeighbourHandling::TwoPeak && options.poissonWeights)
        lm.predictedTol = kProvisionalTol;
    kernel.onePeak(ws, p, lm);
    // chi^2 and the first np parameters finite.
    auto finiteFit = [](const double *q, const LmRun &run, int np = kP) {
        bool f = std::isfinite(run.chi2);
        for (int i = 0; i < np; ++i)
            f = f && std::isfinite(q[i]);
        return f;
    };
    bool finite = finiteFit(p, lm);
    double one[kP2];
    std::copy(p, p + kP2, one);
    result = assess(one, lm, used, flatChi2, kP, bounds, s);
    // With Poisson weights the weighted continuation (or a pair) nearly always replaces this
    // fit, so its standard error's pixel sums wait until it is known to stay (the end). The
    // factorisation decides `singular` at once, as before; only sums that came out non-finite
    // after a regular factorisation (not seen) would now mark the fit singular later, after
    // the decisions that read `converged`.
    const bool deferSums = options.poissonWeights && options.deferStderrSums;
    bool stderrPending = false;
    if (finite)
        stderrPending = attachStderr(result, ws, lm, kP, p, bounds, options, 2, 3, !deferSums);
    int iterations = lm.iterations;

    // A second start when the first stalled or went degenerate (not when it ran out of
    // iterations: a second run of that length would double the cost of the slowest patches for
    // no measured gain): a round, unrotated, nearly Gaussian peak of the start's size at the
    // start's centre; the better of the two is kept.
    if (!result.converged && result.status != FitStatus::TooFaint
        && result.status != FitStatus::MaxIterations) {
        double q[kP2];
        std::copy(p0, p0 + kP2, q);
        const double w = std::clamp(0.5 * (p0[4] + p0[5]), 0.7, 0.25 * s);
        q[4] = q[5] = q[6] = q[7] = w;
        q[8] = 0.05;
        q[9] = 0;
        LmRun lmB = lm;
        kernel.onePeak(ws, q, lmB);
        iterations += lmB.iterations;
        if (finiteFit(q, lmB)) {
            double qq[kP2];
            std::copy(q, q + kP2, qq);
            FitResult b = assess(qq, lmB, used, flatChi2, kP, bounds, s);
            const bool bPending =
                attachStderr(b, ws, lmB, kP, q, bounds, options, 2, 3, !deferSums);
            if (!finite || betterThan(b, lmB.chi2, result, lm.chi2)) {
                result = b;
                stderrPending = bPending;
                lm = lmB;
                std::copy(q, q + kP2, p);
                finite = true;
            }
        }
    }
    if (!finite) {
        // Nothing finite came out: the start (moments) is the estimate.
        result.params = toPseudoVoigt(p0);
        result.status = FitStatus::Singular;
        result.iterations = iterations;
        return result;
    }
    result.iterations = iterations;

    // A second peak, tried when the unweighted one-peak fit leaves structure over the valid
    // pixels (a masked neighbour included; a basin masked around a noise maximum no longer
    // triggers it): fit both over every valid pixel, keep the pair when it explains the patch
    // significantly better than one peak (F test on the extra parameters).
    bool tryTwo = false;
    bool modelOfP = false; // ws.model holds the one-peak model of p (it does not depend on weights)
    if (options.neighbours == NeighbourHandling::TwoPeak) {
        kernel.model(ws, p);
        modelOfP = true;
        tryTwo = residualStructure(ws, patch, p) > kResidualStructure;
    }
    if (tryTwo) {
        ws.fitPixels = ws.use;
        ws.use = ws.validPixels;
        const int used2 = ws.load(patch);
        const double chi1 = kernel.model(ws, p);
        double q[kP2];
        std::copy(p, p + kP, q);
        if (neighbourStart(ws, patch, toPseudoVoigt(p), q)) {
            // `bounds` has the round neighbour's layout (makeBounds' default).
            for (int i = kP; i < kPRound; ++i)
                q[i] = std::clamp(q[i], bounds.lo[i], bounds.hi[i]);
            // The same-shape pair's neighbour (below): this start's shape, the neighbour-alone
            // stage's amplitude and centre.
            double sameStart[kPRound - kP];
            std::copy(q + kP, q + kPRound, sameStart);
            const double flat2 = flatChi2Of(patch, ws.use);
            LmRun lm2 = lm;
            lm2.chi2Floor = kChi2Floor * flat2;
            lm2.used = used2;
            lm2.predictedTol = kDecrementTol;
            // First the neighbour alone on the one-peak fit (ws.model, over these pixels), then
            // both.
            {
                for (int k = 0; k < ws.padded; ++k)
                    ws.fixedF[k] = float(ws.model[k]);
                Bounds nbBounds;
                std::copy(bounds.lo + kP, bounds.lo + kPRound, nbBounds.lo);
                std::copy(bounds.hi + kP, bounds.hi + kPRound, nbBounds.hi);
                double qn[kP2] = {};
                std::copy(q + kP, q + kPRound, qn);
                LmRun lmN = lm2;
                lmN.bounds = &nbBounds;
                kernel.neighbour(ws, qn, lmN);
                result.iterations += lmN.iterations;
                if (finiteFit(qn, lmN, kPNeighbour))
                    std::copy(qn, qn + kPNeighbour, q + kP);
            }
            std::copy(q + kP, q + kP + 3, sameStart);
            kernel.twoPeaks(ws, q, lm2);
            result.iterations += lm2.iterations;
            // Residual variances by which a fit of np parameters lowered chi^2 from `from` (the F
            // statistic times the parameters it added).
            auto dropOf = [&](double from, const LmRun &run, int np) {
                return (from - run.chi2) / (run.chi2 / std::max(1, used2 - np));
            };
            // Two peaks closer than 2.5 px would split one peak (a bright one, whose core and
            // wings the model does not quite match, into a narrow and a broad part) or leave the
            // main one ill-defined: kept only when apart, the second one real and the F test
            // passes.
            auto apartOf = [](const double *v) { return std::hypot(v[11] - v[2], v[12] - v[3]); };
            auto aPair = [&](const double *v, const LmRun &run, int np, const Bounds &b) {
                return finiteFit(v, run, np) && v[10] > b.lo[10] * (1 + 1e-6)
                    && apartOf(v) >= kTwoPeakApart;
            };
            // The verdict on a kept pair v (np parameters; `free` of them not held): the main
            // peak is the one nearer the patch centre; when that is the second peak, it is
            // reported with its own shape (a round one with theta 0). When the F test prefers
            // two peaks the one-peak fit is known to be biased, so the verdict is the two-peak
            // fit's even when that one did not converge.
            auto keptPair = [&](const double *v, const LmRun &run, int np, int free,
                                const Bounds &b, double flat) {
                const double mid = s / 2;
                const bool swapped = std::hypot(v[11] - mid, v[12] - mid)
                    < std::hypot(v[2] - mid, v[3] - mid);
                double qs[kP2];
                std::copy(v, v + kP2, qs);
                if (swapped) {
                    const double roundMain[kP] = {v[10], v[1],  v[11], v[12], v[13],
                                                  v[13], v[14], v[14], v[15], 0.0};
                    const double fullMain[kP] = {v[10], v[1],  v[11], v[12], v[13],
                                                 v[14], v[15], v[16], v[17], v[18]};
                    const double *main = np == kPFull ? fullMain : roundMain;
                    std::copy(main, main + kP, qs);
                }
                FitResult two = assess(qs, run, used2, flat, free, b, s);
                // The main peak's centre standard error (the Jacobian is in the fit's order).
                if (swapped)
                    attachStderr(two, ws, run, np, v, b, options, 11, 12);
                else
                    attachStderr(two, ws, run, np, v, b, options);
                two.iterations = result.iterations;
                two.peaks = 2;
                return two;
            };
            if (aPair(q, lm2, kPRound, bounds) && dropOf(chi1, lm2, kPRound) > kTwoPeakDrop) {
                // The neighbour's ellipse and rotation: the round pair continues as a full one
                // (equal axes, no rotation to start), kept when it stays a pair and the F test
                // on its 3 more parameters passes.
                const Bounds fullBounds = makeBounds(s, bounds.lo[0], kPFull);
                double qf[kP2];
                std::copy(q, q + kP + 3, qf); // main peak, amplitude and centre
                neighbourShapeStart(ws, kernel.model, q, qf);
                for (int i = 13; i <= 16; ++i)
                    qf[i] = std::clamp(qf[i], fullBounds.lo[i], fullBounds.hi[i]);
                LmRun lmF = lm2;
                lmF.bounds = &fullBounds;
                kernel.twoPeaksFull(ws, qf, lmF);
                result.iterations += lmF.iterations;
                if (aPair(qf, lmF, kPFull, fullBounds)
                    && dropOf(lm2.chi2, lmF, kPFull) > kFullPairDrop) {
                    // With the neighbour's shape in the model its variance is known too: the
                    // pair continues with Poisson weights (from the full pair's model) when
                    // those are on, kept when it stays a pair.
                    if (options.poissonWeights) {
                        const float *r = ws.res[lmF.residual].data();
                        for (int k = 0; k < s * s; ++k) // unit weights: model = data - residual
                            ws.model[k] = ws.use[k] ? ws.data[k] - r[k] : 0.0;
                        double flatW = 0;
                        LmRun lmW = poissonContinuation(ws, options, lmF, flatW);
                        double qw[kP2];
                        std::copy(qf, qf + kP2, qw);
                        kernel.twoPeaksFull(ws, qw, lmW);
                        result.iterations += lmW.iterations;
                        if (aPair(qw, lmW, kPFull, fullBounds)) {
                            FitResult two = keptPair(qw, lmW, kPFull, kPFull, fullBounds, flatW);
                            two.rms = std::sqrt(lmF.chi2 / used2); // unweighted, as elsewhere
                            return two;
                        }
                        lmF = evaluatedAgain(ws, patch, kernel.twoPeaksFull, qf, lmF);
                    }
                    return keptPair(qf, lmF, kPFull, kPFull, fullBounds, flat2);
                }
                return keptPair(q, lm2, kPRound, kPRound, bounds, flat2);
            }
            const double rn2 = options.readNoise * options.readNoise;
            if (p[0] / std::sqrt(p[0] + std::max(p[1], 0.0) + rn2) < kSameShapeSnr) {
                // The same-shape pair: the neighbour-alone stage's amplitude and centre, the
                // shape neighbourStart gave it (the one-peak fit's mean), held by equal bounds.
                double qc[kP2];
                std::copy(p, p + kP, qc);
                std::copy(sameStart, sameStart + (kPRound - kP), qc + kP);
                Bounds sameBounds = bounds;
                for (int i = kP; i < kPRound; ++i)
                    qc[i] = std::clamp(qc[i], bounds.lo[i], bounds.hi[i]);
                for (int i = 13; i < kPRound; ++i)
                    sameBounds.lo[i] = sameBounds.hi[i] = qc[i];
                LmRun lmS = lm2; // the pair's settings (a run reads no results of the last)
                lmS.bounds = &sameBounds;
                kernel.twoPeaks(ws, qc, lmS);
                result.iterations += lmS.iterations;
                if (aPair(qc, lmS, kPRound, sameBounds) && dropOf(chi1, lmS, kP + 3) > kSameShapeDrop)
                    return keptPair(qc, lmS, kPRound, kP + 3, sameBounds, flat2);
            }
        }
        ws.use = ws.fitPixels;
        ws.load(patch);
    }

    // Not after a pair was kept (returned above); after a rejected two-peak attempt it refines
    // the one-peak answer like any other.
    if (options.poissonWeights && result.status != FitStatus::TooFaint) {
        // Continue from the unweighted fit with weights 1 / sqrt(variance of its model), then
        // judge that fit.
        if (!modelOfP)
            kernel.model(ws, p);
        double flatW = 0;
        LmRun lmW = poissonContinuation(ws, options, lm, flatW);
        double q[kP2];
        std::copy(p, p + kP2, q);
        kernel.onePeak(ws, q, lmW);
        result.iterations += lmW.iterations;
        if (finiteFit(q, lmW)) {
            double qq[kP2];
            std::copy(q, q + kP2, qq);
            FitResult wfit = assess(qq, lmW, used, flatW, kP, bounds, s);
            attachStderr(wfit, ws, lmW, kP, q, bounds, options);
            if (wfit.converged || !result.converged) {
                wfit.iterations = result.iterations;
                wfit.rms = std::sqrt(lm.chi2 / used);
                result = wfit;
                stderrPending = false;
                std::copy(q, q + kP, p);
            }
        }
    }
    if (stderrPending) {
        // The unweighted one-peak fit stays: its final evaluation again, then its pixel sums.
        const LmRun again = evaluatedAgain(ws, patch, kernel.onePeak, p, lm);
        attachStderr(result, ws, again, kP, p, bounds, options);
    }
    return result;
}

void checkSize(int size)
{
    if (size < 3 || size > 255)
        throw InputError("fit: patch size must be in [3, 255], got " + std::to_string(size));
}

} // namespace

FitResult fitPseudoVoigt(const float *patch, int size, const FitOptions &options,
                         const std::uint8_t *mask)
{
    checkSize(size);
    Workspace ws(size);
    return fitOne(ws, patch, options, mask, options.saturation > 0 ? options.saturation : 0.0);
}

const char *fitKernelIsa()
{
    return kernels().name;
}

void FitOptions::validate(const std::string &source) const
{
    auto fail = [&](const char *field, const std::string &what) {
        throw InputError(source + ": " + field + ": " + what);
    };
    if (maxIterations < 1 || maxIterations > 100000)
        fail("max_iterations", "must be an integer in 1..100000, got " + std::to_string(maxIterations));
    if (!(tolerance > 0 && tolerance < 1)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", tolerance);
        fail("tolerance", std::string("must be finite and in (0, 1), got ") + buf);
    }
    const int n = int(neighbours);
    if (n != int(NeighbourHandling::Ignore) && n != int(NeighbourHandling::Mask)
        && n != int(NeighbourHandling::TwoPeak))
        fail("neighbours", "must be ignore, mask or two-peak, got the value " + std::to_string(n));
    auto num = [](double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", v);
        return std::string(buf);
    };
    if (!(gain > 0 && std::isfinite(gain)))
        fail("gain", "must be finite and > 0, got " + num(gain));
    if (!(readNoise >= 0 && std::isfinite(readNoise)))
        fail("read_noise", "must be finite and >= 0, got " + num(readNoise));
    if (!std::isfinite(saturation))
        fail("saturation", "must be finite (< 0 automatic, 0 none), got " + num(saturation));
}

std::vector<FitResult> fitPatches(const PatchDataset &data, const FitOptions &options,
                                  const Monitor &monitor)
{
    options.validate();
    checkSize(data.patchSize);
    const std::size_t n = data.size();
    std::vector<FitResult> results(n);
    const std::vector<float> *perPatchSaturation = nullptr;
    if (auto it = data.extraFloat.find("/peaks/saturation");
        it != data.extraFloat.end() && it->second.data.size() == n)
        perPatchSaturation = &it->second.data;
    std::atomic<std::size_t> done{0};
    const std::size_t grain = 256;
    parallelChunks(
        n, options.threads, grain,
        [&](std::size_t begin, std::size_t end, int) {
            Workspace ws(data.patchSize);
            for (std::size_t i = begin; i < end; ++i) {
                double sat = options.saturation > 0 ? options.saturation : 0.0;
                if (options.saturation < 0 && perPatchSaturation)
                    sat = (*perPatchSaturation)[i];
                results[i] = fitOne(ws, data.patch(i), options, nullptr, sat);
            }
            const std::size_t total = done.fetch_add(end - begin) + (end - begin);
            monitor.report(double(total) / double(n),
                           std::to_string(total) + "/" + std::to_string(n) + " patches");
        },
        [&] { return monitor.cancelled(); });
    monitor.check();
    return results;
}

const char *fitStatusName(FitStatus s)
{
    switch (s) {
    case FitStatus::Converged:
        return "converged";
    case FitStatus::MaxIterations:
        return "max-iterations";
    case FitStatus::Singular:
        return "singular";
    case FitStatus::Bounds:
        return "bounds";
    case FitStatus::TooFaint:
        return "too-faint";
    }
    return "unknown";
}

double FitResult::centerStderr() const
{
    return std::hypot(rowStderr, colStderr);
}

double defaultStderrThreshold(const std::vector<FitResult> &fits)
{
    std::vector<double> se;
    for (const FitResult &f : fits)
        if (f.converged && std::isfinite(f.centerStderr()))
            se.push_back(f.centerStderr());
    if (se.empty())
        return 0.5;
    std::nth_element(se.begin(), se.begin() + se.size() / 2, se.end());
    return std::clamp(3.0 * se[se.size() / 2], 0.05, 0.5);
}

double applyFitLabels(PatchDataset &data, const std::vector<FitResult> &fits, double maxStderr)
{
    const std::size_t n = data.size();
    if (fits.size() != n)
        throw Error("applyFitLabels: " + std::to_string(fits.size()) + " fits for "
                    + std::to_string(n) + " patches");
    const double threshold = maxStderr > 0 ? maxStderr : defaultStderrThreshold(fits);
    std::vector<float> params(n * kP), residual(n), stderrs(n * 2);
    std::vector<std::uint8_t> converged(n), status(n), usable(n);
    data.centers.assign(n * 2, 0.0f);
    for (std::size_t i = 0; i < n; ++i) {
        const FitResult &f = fits[i];
        const auto a = f.params.toArray();
        for (int j = 0; j < kP; ++j)
            params[i * kP + j] = float(a[j]);
        residual[i] = float(f.rms);
        converged[i] = f.converged ? 1 : 0;
        status[i] = std::uint8_t(f.status);
        stderrs[2 * i] = float(f.rowStderr);
        stderrs[2 * i + 1] = float(f.colStderr);
        usable[i] = f.converged && f.centerStderr() <= threshold ? 1 : 0;
        data.centers[2 * i] = float(f.params.row);
        data.centers[2 * i + 1] = float(f.params.col);
    }
    data.labelSource = "pseudo-voigt";
    const auto nn = static_cast<unsigned long long>(n);
    data.extraFloat["/fit/params"] = {{nn, static_cast<unsigned long long>(kP)}, std::move(params)};
    data.extraFloat["/fit/residual"] = {{nn}, std::move(residual)};
    data.extraFloat["/fit/center_stderr"] = {{nn, 2ull}, std::move(stderrs)};
    data.extraFlags["/fit/converged"] = std::move(converged);
    data.extraFlags["/fit/status"] = std::move(status);
    data.extraFlags["/fit/usable"] = std::move(usable);
    return threshold;
}

} // namespace braggnac::core
