#pragma once
// The noise limit of a peak's centre: the Cramer-Rao lower bound for an S x S patch of one
// pseudo-Voigt peak (pseudovoigt.h) under Poisson + Gaussian read noise, from the true
// parameters. docs/fitting.md, "The noise limit".
//
//   mu_k        = the model in pixel k (integrated over the pixel, or point-sampled)
//   var_k       = gain * mu_k + readNoise^2                       (counts^2)
//   I_ij        = sum_k (d mu_k / d theta_i)(d mu_k / d theta_j) / var_k
//   CRLB(row)   = (I^-1)_row,row over the free parameters
// I is the Fisher information of a Gaussian likelihood with that variance, ignoring the
// information in the variance itself (exact for pure Poisson counts, readNoise = 0, gain = 1;
// the usual approximation otherwise). Derivatives: amplitude and background analytic, the
// others by central differences of the (integrated) model. Parameters that carry no information
// (e.g. theta of a round peak, the Lorentzian widths when eta = 0) are dropped from the inverse.
// Pure functions; thread-safe.
#include <array>

#include "core/peaks/pseudovoigt.h"

namespace braggnac::core {

struct CrlbOptions {
    double readNoise = 3;       // counts
    double gain = 1;            // counts per photon
    int integrationPoints = 6;  // Gauss-Legendre nodes per axis (1..8); 1 = point-sampled
    /// Which parameters (PseudoVoigt::toArray() order) are estimated; the others are known.
    std::array<bool, PseudoVoigt::kParameterCount> free{true, true, true, true, true,
                                                        true, true, true, true, true};
};

struct CrlbResult {
    double rowStd = 0, colStd = 0;  // sqrt of the bounds on the variances (px)
    int freeParameters = 0;         // parameters in the inverted information matrix
    bool ok = false;                // false: the information matrix is singular (stds = inf)
    double centreStd() const;       // sqrt(rowStd^2 + colStd^2): bound on the rms distance
};

/// The bound for `truth` (patch coordinates, (0,0) the top-left pixel's centre) in a size x size
/// patch; `neighbour` (optional) adds a second peak with known parameters to the mean. Throws
/// InputError for size outside 3..255, integrationPoints outside 1..8, gain <= 0, readNoise < 0.
CrlbResult centreCrlb(const PseudoVoigt &truth, int size, const CrlbOptions &options = {},
                      const PseudoVoigt *neighbour = nullptr);

} // namespace braggnac::core
