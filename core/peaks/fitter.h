#pragma once
// Levenberg-Marquardt fit of the 2-D pseudo-Voigt (pseudovoigt.h) to patches, with an analytic
// Jacobian, parameter bounds and starting values from image moments. Batched and
// multi-threaded over patches. Patches that do not converge are flagged, never silently
// labelled.
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
    TwoPeak, // Mask, then when a neighbour was found or the residual shows one, fit two peaks of
             // the same shape to every pixel and keep them when an F test prefers them
};

struct FitOptions {
    int maxIterations = 100;
    double tolerance = 1e-8;  // relative change in chi^2 / step size for convergence
    int threads = 0;          // <= 0: all hardware threads
    NeighbourHandling neighbours = NeighbourHandling::TwoPeak;

    /// Throws InputError("<source>: <field>: ...") naming the field: max_iterations 1..100000,
    /// tolerance finite in (0, 1), neighbours one of the NeighbourHandling values.
    /// fitPatches calls it.
    void validate(const std::string &source = "fit options") const;
};

struct FitResult {
    PseudoVoigt params;
    double rms = 0;          // root-mean-square residual (counts)
    int iterations = 0;      // LM iterations (both stages of a two-peak fit)
    bool converged = false;  // criteria met, not degenerate, significant (docs/fitting.md)
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

/// Writes the fit into a dataset: /centers (converged patches: the fitted centre; others: the
/// patch centre), label_source = "pseudo-voigt", /fit/params [N,10], /fit/converged,
/// /fit/residual.
void applyFitLabels(PatchDataset &data, const std::vector<FitResult> &fits);

} // namespace braggnac::core
