#pragma once
// Levenberg-Marquardt fit of the 2-D pseudo-Voigt (pseudovoigt.h) to patches, with an analytic
// Jacobian (single-precision kernels), parameter bounds and starting values from image moments;
// a second peak with its own shape for a neighbour (NeighbourHandling::TwoPeak: round, with its
// own ellipse and rotation where an F test asks for it, or in a faint patch in the main peak's
// shape). Batched and multi-threaded over patches. Patches that do not converge are flagged, never silently
// labelled.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/common/progress.h"
#include "core/io/patchdataset.h"
#include "core/peaks/pseudovoigt.h"

namespace braggnac::core {

/// What to do about a second, partly visible peak in a patch (docs/fitting.md).
enum class NeighbourHandling {
    Ignore,  // fit one peak to every pixel
    Mask,    // leave out the pixels in the basin of a second significant local maximum
    TwoPeak, // Mask, then when the residual shows a neighbour, fit the main peak and a second
             // one of its own shape (round, then with its own ellipse when an F test prefers
             // that; in a faint patch, when the round pair is rejected, in the main peak's shape)
             // to every pixel and keep them when an F test prefers them
};

struct FitOptions {
    int maxIterations = 100;
    double tolerance = 1e-8;  // relative change in chi^2 / step size for convergence (a fit
                              // also stops on the statistical rules, docs/fitting.md
                              // "Convergence")
    int threads = 0;          // <= 0: all hardware threads
    NeighbourHandling neighbours = NeighbourHandling::TwoPeak;
    /// Noise model of a pixel, variance = gain * max(model, 0) + readNoise^2 (counts^2): used
    /// for the centre's standard error and, with poissonWeights, as least-squares weights.
    double gain = 1;          // counts per detected photon
    double readNoise = 3;     // counts
    /// Continue the one-peak fit with weights 1 / sqrt(variance of the unweighted fit's model),
    /// and a kept pair whose neighbour has its own ellipse with those of the pair's model (not a
    /// round or same-shape pair: there unit weights did better, docs/fitting.md).
    bool poissonWeights = true;
    /// The same results either way: with poissonWeights the unweighted fit's standard-error
    /// pixel sums wait until that fit is known to stay (the weighted one nearly always replaces
    /// it); false computes them at once (tst_fitter compares the two).
    bool deferStderrSums = true;
    /// Pixels >= saturation are left out of the fit. < 0: automatic (fitPatches reads each
    /// patch's level from /peaks/saturation when the file has it; fitPseudoVoigt: none);
    /// 0: none.
    double saturation = -1;

    /// Throws InputError("<source>: <field>: ...") naming the field: max_iterations 1..100000,
    /// tolerance finite in (0, 1), neighbours one of the NeighbourHandling values, gain > 0,
    /// read_noise >= 0, saturation finite. fitPatches calls it.
    void validate(const std::string &source = "fit options") const;
};

/// Why a fit ended (docs/fitting.md, "Status"). Every status comes with a best estimate.
enum class FitStatus : std::uint8_t {
    Converged = 0,     // criteria met, not degenerate, significant
    MaxIterations = 1, // the iteration limit came first; the estimate is the last accepted step
    Singular = 2,      // no step could lower chi^2 before the criteria were met, non-finite
                       // values, or a singular covariance
    Bounds = 3,        // degenerate: centre on the patch edge, amplitude or a width on a bound
    TooFaint = 4,      // no significant peak (or nothing to fit): estimate = intensity centroid
};
const char *fitStatusName(FitStatus s); // "converged", "max-iterations", ... "too-faint"

struct FitResult {
    PseudoVoigt params;      // the best estimate, for every status (never the bare patch centre
                             // unless the data put it there)
    double rms = 0;          // root-mean-square residual (counts)
    int iterations = 0;      // LM iterations (all stages)
    FitStatus status = FitStatus::TooFaint;
    bool converged = false;  // status == Converged
    int peaks = 1;           // 2 when the two-peak model (a neighbour) was kept
    /// Standard errors of the centre (px): sandwich covariance of the least-squares estimate
    /// under the noise model of FitOptions, scaled by the weighted residual chi^2 per degree of
    /// freedom. +inf when it cannot be computed (singular covariance, too faint).
    double rowStderr = HUGE_VAL, colStderr = HUGE_VAL;
    double centerStderr() const; // sqrt(rowStderr^2 + colStderr^2)
};

/// Fits one S x S patch (row-major, raw counts). `mask` (optional, S*S, nonzero = ignore);
/// non-finite pixels are ignored too. Never returns NaN. Throws InputError unless 3 <= S <= 255.
/// Thread-safe; results do not depend on the thread count.
FitResult fitPseudoVoigt(const float *patch, int size, const FitOptions &options = {},
                         const std::uint8_t *mask = nullptr);

/// Fits every patch; progress by chunks; throws CancelledError when cancelled.
std::vector<FitResult> fitPatches(const PatchDataset &data, const FitOptions &options = {},
                                  const Monitor &monitor = {});

/// The instruction set the fitting kernels run with on this CPU: "avx512", "avx2" or "sse2"
/// (the environment variable BRAGGNAC_FIT_ISA=avx2|sse2 narrows the choice, for benchmarks).
const char *fitKernelIsa();

/// The default standard-error threshold for training labels, chosen from the data: 3x the median
/// centre standard error of the converged fits, clamped to [0.05, 0.5] px (docs/fitting.md);
/// 0.5 when nothing converged.
double defaultStderrThreshold(const std::vector<FitResult> &fits);

/// Writes the fit into a dataset: /centers (every patch: the best estimate),
/// label_source = "pseudo-voigt", /fit/params [N,10], /fit/status (FitStatus), /fit/converged,
/// /fit/center_stderr [N,2] (row, col; px; inf = unknown), /fit/residual, /fit/usable (status
/// converged and centre standard error <= the threshold). The trainer trains on /fit/usable
/// rows. maxStderr <= 0: the threshold is defaultStderrThreshold(fits). Returns the threshold.
double applyFitLabels(PatchDataset &data, const std::vector<FitResult> &fits,
                      double maxStderr = 0);

} // namespace braggnac::core
