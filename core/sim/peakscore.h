#pragma once
// Scores peak-finder output against simulated ground truth (tests, benchmarks, the studio).
// Definitions (per frame; sigma = the frame's robust background sigma, frameThreshold()):
//   support  : the disc a truth peak was drawn in, radius renderWidths * its largest width.
//   isolated : the support lies inside the frame and stays 2 px clear of every other truth
//              peak's support (centre distance > R1 + R2 + 2, so no pixels of the two touch).
//   bright   : the minPixels-th brightest noiseless model pixel is > brightSigma * sigma.
//   match    : one-to-one, closest pairs first: a found peak's intensity-weighted centroid
//              within matchRadius px of a true centre.
//   recall   : matched / all isolated bright truth peaks.
//   precision: matched / found peaks brighter than brightSigma * sigma (max - background) whose
//              maximum pixel lies in an isolated peak's support or in no support at all (found
//              peaks inside overlapping supports are ambiguous and left out).
#include <vector>

#include "core/peaks/finder.h"
#include "core/sim/simulator.h"

namespace braggnac::core {

struct PeakScoreOptions {
    double matchRadius = 1.5;
    double brightSigma = 10;
};

struct TruthScore {
    bool isolated = false;
    bool bright = false;
    double snr = 0;      // brightest noiseless model pixel / sigma
    int matched = -1;    // index into the found peaks, or -1
};

struct FoundScore {
    bool bright = false;
    bool counted = false; // in the precision denominator
    int matched = -1;     // index into sim.truth, or -1
};

struct PeakScore {
    std::vector<TruthScore> truth; // parallel to sim.truth
    std::vector<FoundScore> found; // parallel to the found peaks
    int isolatedBright = 0, isolatedBrightMatched = 0;
    int precisionCounted = 0, precisionMatched = 0;
    double recall() const { return isolatedBright ? double(isolatedBrightMatched) / isolatedBright : 0; }
    double precision() const { return precisionCounted ? double(precisionMatched) / precisionCounted : 0; }
};

/// `found` holds the peaks of every frame of `sim` (Peak::frame indexes sim.frames); `simOptions`
/// must be the options that made `sim` (renderWidths), `finder` the ones that found the peaks
/// (minPixels and the background statistics).
PeakScore scorePeaks(const SimulatedFrames &sim, const FrameSimOptions &simOptions,
                     const std::vector<Peak> &found, const FinderOptions &finder,
                     const PeakScoreOptions &options = {});

} // namespace braggnac::core
