#include "core/peaks/pseudovoigt.h"

#include <algorithm>
#include <cmath>

namespace braggnac::core {

std::array<double, PseudoVoigt::kParameterCount> PseudoVoigt::toArray() const
{
    return {amplitude, background, row, col, sigmaU, sigmaV, gammaU, gammaV, eta, theta};
}

PseudoVoigt PseudoVoigt::fromArray(const std::array<double, kParameterCount> &p)
{
    PseudoVoigt v;
    v.amplitude = p[0];
    v.background = p[1];
    v.row = p[2];
    v.col = p[3];
    v.sigmaU = p[4];
    v.sigmaV = p[5];
    v.gammaU = p[6];
    v.gammaV = p[7];
    v.eta = p[8];
    v.theta = p[9];
    return v;
}

const std::array<const char *, PseudoVoigt::kParameterCount> &PseudoVoigt::names()
{
    static const std::array<const char *, kParameterCount> n = {
        "amplitude", "background", "row", "col", "sigma_u", "sigma_v",
        "gamma_u", "gamma_v", "eta", "theta"};
    return n;
}

double PseudoVoigt::evaluate(double r, double c) const
{
    const double ct = std::cos(theta), st = std::sin(theta);
    const double dr = r - row, dc = c - col;
    const double u = dr * ct + dc * st;
    const double v = -dr * st + dc * ct;
    const double g = std::exp(-0.5 * (u * u / (sigmaU * sigmaU) + v * v / (sigmaV * sigmaV)));
    const double l = 1.0 / (1.0 + u * u / (gammaU * gammaU) + v * v / (gammaV * gammaV));
    return background + amplitude * ((1.0 - eta) * g + eta * l);
}

void PseudoVoigt::render(float *out, int rows, int cols, double originRow, double originCol,
                         bool accumulate, double radius) const
{
    int r0 = 0, r1 = rows, c0 = 0, c1 = cols;
    if (radius > 0) {
        r0 = std::max(0, int(std::floor(row - radius - originRow)));
        r1 = std::min(rows, int(std::ceil(row + radius - originRow)) + 1);
        c0 = std::max(0, int(std::floor(col - radius - originCol)));
        c1 = std::min(cols, int(std::ceil(col + radius - originCol)) + 1);
        if (!accumulate)
            std::fill(out, out + std::size_t(rows) * cols, float(background));
    }
    for (int r = r0; r < r1; ++r) {
        for (int c = c0; c < c1; ++c) {
            const double val = evaluate(originRow + r, originCol + c);
            float &o = out[std::size_t(r) * cols + c];
            o = accumulate ? float(o + val) : float(val);
        }
    }
}

} // namespace braggnac::core
