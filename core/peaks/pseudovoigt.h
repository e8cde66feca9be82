#pragma once
// The 2-D pseudo-Voigt peak model shared by the simulator and the fitter.
//   u =  (r - row) cos(theta) + (c - col) sin(theta)
//   v = -(r - row) sin(theta) + (c - col) cos(theta)
//   G = exp(-0.5 (u^2 / sigmaU^2 + v^2 / sigmaV^2))
//   L = 1 / (1 + u^2 / gammaU^2 + v^2 / gammaV^2)
//   I(r, c) = background + amplitude ((1 - eta) G + eta L)
// Coordinates in pixels, (0,0) the centre of the top-left pixel; theta in radians.
#include <array>

namespace braggnac::core {

struct PseudoVoigt {
    double amplitude = 0;
    double background = 0;
    double row = 0;
    double col = 0;
    double sigmaU = 1;  // Gaussian widths (std-dev) along the rotated axes
    double sigmaV = 1;
    double gammaU = 1;  // Lorentzian half widths along the rotated axes
    double gammaV = 1;
    double eta = 0.5;   // mixing, 0 = Gaussian, 1 = Lorentzian
    double theta = 0;   // rotation (radians)

    static constexpr int kParameterCount = 10;
    std::array<double, kParameterCount> toArray() const;
    static PseudoVoigt fromArray(const std::array<double, kParameterCount> &p);
    /// Parameter names in toArray() order, for files and tables.
    static const std::array<const char *, kParameterCount> &names();

    double evaluate(double r, double c) const;
    /// The model averaged over the pixel centred on (r, c) (the unit square around it), as a
    /// detector integrates it: Gauss-Legendre with `points` x `points` nodes (1..8; 1 = the
    /// point value). Relative error < 1e-4 for widths >= 0.5 px with 6 points.
    double integrated(double r, double c, int points = 6) const;
    /// Adds (or writes when `accumulate` is false) the model over a rows x cols grid whose
    /// top-left pixel has frame coordinates (originRow, originCol); only pixels within `radius`
    /// of the centre when radius > 0.
    void render(float *out, int rows, int cols, double originRow = 0, double originCol = 0,
                bool accumulate = false, double radius = 0) const;
    /// render() with pixel-integrated values (integrated(), `points` nodes per axis).
    void renderIntegrated(float *out, int rows, int cols, double originRow = 0,
                          double originCol = 0, bool accumulate = false, int points = 6) const;
};

/// Gauss-Legendre nodes (in [-0.5, 0.5]) and weights (summing to 1) for `points` in 1..8;
/// throws std::invalid_argument otherwise.
void gaussLegendreUnit(int points, double *nodes, double *weights);

} // namespace braggnac::core
