#include "core/peaks/pseudovoigt.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

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

void gaussLegendreUnit(int points, double *nodes, double *weights)
{
    // Nodes and weights on [-1, 1] for n = 1..8 (positive half; symmetric).
    static const double x[9][4] = {
        {}, {0}, {0.5773502691896257}, {0, 0.7745966692414834},
        {0.3399810435848563, 0.8611363115940526}, {0, 0.5384693101056831, 0.9061798459386640},
        {0.2386191860831969, 0.6612093864662645, 0.9324695142031521},
        {0, 0.4058451513773972, 0.7415311855993945, 0.9491079123427585},
        {0.1834346424956498, 0.5255324099163290, 0.7966664774136267, 0.9602898564975363}};
    static const double w[9][4] = {
        {}, {2}, {1}, {0.8888888888888888, 0.5555555555555556},
        {0.6521451548625461, 0.3478548451374538},
        {0.5688888888888889, 0.4786286704993665, 0.2369268850561891},
        {0.4679139345726910, 0.3607615730481386, 0.1713244923791704},
        {0.4179591836734694, 0.3818300505051189, 0.2797053914892766, 0.1294849661688697},
        {0.3626837833783620, 0.3137066458778873, 0.2223810344533745, 0.1012285362903763}};
    if (points < 1 || points > 8)
        throw std::invalid_argument("Gauss-Legendre points must be in 1..8, got "
                                    + std::to_string(points));
    const bool odd = points % 2 == 1;
    int k = 0;
    const int half = (points + 1) / 2;
    for (int i = 0; i < half; ++i) {
        const double xi = x[points][i], wi = w[points][i];
        if (odd && i == 0) {
            nodes[k] = 0;
            weights[k++] = wi / 2;
            continue;
        }
        nodes[k] = 0.5 * xi;
        weights[k++] = wi / 2;
        nodes[k] = -0.5 * xi;
        weights[k++] = wi / 2;
    }
}

double PseudoVoigt::integrated(double r, double c, int points) const
{
    double nodes[8], weights[8];
    gaussLegendreUnit(points, nodes, weights);
    double sum = 0;
    for (int i = 0; i < points; ++i)
        for (int j = 0; j < points; ++j)
            sum += weights[i] * weights[j] * evaluate(r + nodes[i], c + nodes[j]);
    return sum;
}

void PseudoVoigt::renderIntegrated(float *out, int rows, int cols, double originRow,
                                   double originCol, bool accumulate, int points) const
{
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) {
            const double val = integrated(originRow + r, originCol + c, points);
            float &o = out[std::size_t(r) * cols + c];
            o = accumulate ? float(o + val) : float(val);
        }
}

} // namespace braggnac::core
