#include "core/peaks/crlb.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/common/error.h"

namespace braggnac::core {

namespace {

constexpr int kP = PseudoVoigt::kParameterCount;

double pixelValue(const PseudoVoigt &p, int r, int c, int points, const PseudoVoigt *neighbour)
{
    PseudoVoigt q = p;
    double v = points == 1 ? q.evaluate(r, c) : q.integrated(r, c, points);
    if (neighbour) {
        PseudoVoigt nb = *neighbour;
        nb.background = 0;
        v += points == 1 ? nb.evaluate(r, c) : nb.integrated(r, c, points);
    }
    return v;
}

} // namespace

double CrlbResult::centreStd() const
{
    return std::hypot(rowStd, colStd);
}

CrlbResult centreCrlb(const PseudoVoigt &truth, int size, const CrlbOptions &o,
                      const PseudoVoigt *neighbour)
{
    if (size < 3 || size > 255)
        throw InputError("crlb: size: must be in 3..255, got " + std::to_string(size));
    if (o.integrationPoints < 1 || o.integrationPoints > 8)
        throw InputError("crlb: integration_points: must be in 1..8, got "
                         + std::to_string(o.integrationPoints));
    if (!(o.gain > 0) || !std::isfinite(o.gain))
        throw InputError("crlb: gain: must be finite and > 0");
    if (!(o.readNoise >= 0) || !std::isfinite(o.readNoise))
        throw InputError("crlb: read_noise: must be finite and >= 0");

    const int n = size * size;
    const auto base = truth.toArray();
    std::vector<double> mu(n), d(std::size_t(kP) * n, 0.0);
    for (int k = 0; k < n; ++k)
        mu[k] = pixelValue(truth, k / size, k % size, o.integrationPoints, neighbour);
    for (int i = 0; i < kP; ++i) {
        if (!o.free[i])
            continue;
        double *di = d.data() + std::size_t(i) * n;
        if (i == 0 || i == 1) {
            // Linear: d/d amplitude = the unit-amplitude shape, d/d background = 1.
            PseudoVoigt unit = truth;
            unit.amplitude = 1;
            unit.background = 0;
            for (int k = 0; k < n; ++k)
                di[k] = i == 1 ? 1.0
                               : (o.integrationPoints == 1
                                      ? unit.evaluate(k / size, k % size)
                                      : unit.integrated(k / size, k % size, o.integrationPoints));
            continue;
        }
        const double h = 1e-4 * std::max(1.0, std::fabs(base[i]));
        auto plus = base, minus = base;
        plus[i] += h;
        minus[i] -= h;
        if (i == 8) { // eta in [0, 1]: one-sided at the ends
            plus[i] = std::min(1.0, base[i] + h);
            minus[i] = std::max(0.0, base[i] - h);
        }
        const PseudoVoigt pp = PseudoVoigt::fromArray(plus), pm = PseudoVoigt::fromArray(minus);
        const double span = plus[i] - minus[i];
        for (int k = 0; k < n; ++k)
            di[k] = (pixelValue(pp, k / size, k % size, o.integrationPoints, nullptr)
                     - pixelValue(pm, k / size, k % size, o.integrationPoints, nullptr))
                / span;
    }
    const double rn2 = o.readNoise * o.readNoise;
    // 1 / standard deviation (not 1 / variance: a far tail's variance can be denormal).
    std::vector<double> invSd(n);
    for (int k = 0; k < n; ++k) {
        const double var = o.gain * std::max(mu[k], 0.0) + rn2;
        invSd[k] = var > 0 ? 1 / std::sqrt(var) : 0;
        if (!std::isfinite(invSd[k]))
            invSd[k] = 0;
    }
    double info[kP][kP] = {};
    for (int i = 0; i < kP; ++i)
        for (int j = 0; j <= i; ++j) {
            if (!o.free[i] || !o.free[j])
                continue;
            const double *di = d.data() + std::size_t(i) * n, *dj = d.data() + std::size_t(j) * n;
            double s = 0;
            for (int k = 0; k < n; ++k)
                s += (di[k] * invSd[k]) * (dj[k] * invSd[k]);
            info[i][j] = info[j][i] = s;
        }
    // Free parameters with information (relative to the largest diagonal after scaling).
    CrlbResult out;
    out.rowStd = out.colStd = HUGE_VAL;
    int idx[kP];
    int m = 0;
    for (int i = 0; i < kP; ++i)
        if (o.free[i] && (info[i][i] > 0 || i == 2 || i == 3))
            idx[m++] = i;
    // Scaled matrix a = D^-1/2 I D^-1/2 (unit diagonal); drop near-zero-information ones.
    double a[kP][kP];
    double sc[kP];
    for (int x = 0; x < m; ++x)
        sc[x] = info[idx[x]][idx[x]] > 0 ? 1 / std::sqrt(info[idx[x]][idx[x]]) : 0;
    for (int x = 0; x < m; ++x)
        for (int y = 0; y < m; ++y)
            a[x][y] = info[idx[x]][idx[y]] * sc[x] * sc[y];
    out.freeParameters = m;
    for (int j = 0; j < m; ++j) {
        double dd = a[j][j];
        for (int k = 0; k < j; ++k)
            dd -= a[j][k] * a[j][k];
        if (!(dd > 1e-12))
            return out;
        dd = std::sqrt(dd);
        a[j][j] = dd;
        for (int i = j + 1; i < m; ++i) {
            double v = a[i][j];
            for (int k = 0; k < j; ++k)
                v -= a[i][k] * a[j][k];
            a[i][j] = v / dd;
        }
    }
    auto inverseDiag = [&](int param) {
        int at = -1;
        for (int x = 0; x < m; ++x)
            if (idx[x] == param)
                at = x;
        if (at < 0)
            return 0.0; // a known parameter: no variance
        double y[kP], z[kP];
        for (int i = 0; i < m; ++i) {
            double v = i == at ? 1.0 : 0.0;
            for (int k = 0; k < i; ++k)
                v -= a[i][k] * y[k];
            y[i] = v / a[i][i];
        }
        for (int i = m - 1; i >= 0; --i) {
            double v = y[i];
            for (int k = i + 1; k < m; ++k)
                v -= a[k][i] * z[k];
            z[i] = v / a[i][i];
        }
        return z[at] * sc[at] * sc[at];
    };
    out.rowStd = std::sqrt(inverseDiag(2));
    out.colStd = std::sqrt(inverseDiag(3));
    out.ok = std::isfinite(out.rowStd) && std::isfinite(out.colStd);
    return out;
}

} // namespace braggnac::core
