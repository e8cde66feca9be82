#pragma once
// Peak finding on detector frames (OpenCV): threshold, 8-connected components, size filters,
// then, per component, either one peak at its maximum pixel (split = None: the connected-
// component finder of BraggNN's pipeline) or one peak per prominent local maximum (split =
// Prominence, the default): every local maximum whose prominence (height above the highest
// saddle to a higher maximum) is at least `prominenceFraction` of its height above the
// background and `prominenceSigma` x the noise of that difference, and that lies at least
// `minSeparation` px from every higher kept maximum; the component's pixels are shared among
// the kept maxima by steepest ascent (drainage basins), which gives each peak its pixels, sum
// and centroid. Shoulders -- fainter peaks on a brighter one's flank without a prominent maximum
// of their own -- are added from the brighter peak's point symmetry (see shoulderSigma).
// Centres (Peak::centroidRow/Col): the intensity-weighted centroid for a whole component inside
// the frame; for split or edge peaks, whose pixels are cut, a local estimate: a peak that has
// shoulders, its centre of symmetry; a shoulder, the maximum of the symmetry residual; otherwise
// a log-parabola through the maximum and its neighbours (the plateau centroid when saturated).
// Each peak gets an S x S patch centred on its maximum pixel -- on a saturated peak, on the
// saturated pixel nearest its centroid (its plateau's when cut) -- with other components
// inside the patch masked out (set to the frame's background level, as BraggNN does); peaks
// split from the same component are not masked in each other's patches (they are flagged
// `neighbour` instead, with the distance between their patch centres).
// Background = median of the finite pixels (frames over 512 x 512 px: of a subsample of ~33k
// pixels, runs of 16 every ~2k); NaN/Inf pixels are never foreground. Output order: by frame,
// then by the row-major position of the patch centre, whatever the thread count.
// All functions are reentrant (thread_local scratch only); options are validated on entry.
#include <cstdint>
#include <string>
#include <vector>

#include "core/common/progress.h"
#include "core/io/frame.h"
#include "core/io/patchdataset.h"

namespace braggnac::core {

class FrameSource;

enum class SplitMode {
    None,       // one peak per connected component (BraggNN's pipeline)
    Prominence, // one peak per prominent local maximum (see the header comment)
};

struct FinderOptions {
    /// Absolute threshold in counts (pixels strictly above are foreground); < 0 = automatic:
    /// background median + autoSigma * robust sigma (MAD) of the frame.
    double threshold = -1;
    double autoSigma = 5.0;
    int minPixels = 3;      // components smaller than this are dropped (hot pixels, noise)
    int maxPixels = 2500;   // larger components are dropped (streaks, rings), in both modes
    int patchSize = 11;     // odd
    bool maskOthers = true; // mask other components inside a patch
    int threads = 0;        // <= 0: all hardware threads (parallel over frames)
    SplitMode split = SplitMode::Prominence;
    /// Prominence mode: a secondary maximum is a peak when (its value - saddle) >=
    /// prominenceFraction x (its value - background) and >= prominenceSigma x
    /// sqrt(2 sigma^2 + gain (value - background) + gain (saddle - background)), sigma = the
    /// frame's robust background sigma (the noise of the difference of the two pixels, Poisson
    /// with `gain` counts per photon plus the background noise; gain 0 = background noise only).
    double prominenceFraction = 0.1;
    double prominenceSigma = 4;
    double gain = 1;
    /// Prominence mode: shoulders. A single peak of any widths and orientation is point-symmetric
    /// about its centre c, so around every peak higher than 25 sigma (components of >= 12 px,
    /// plateaus up to 4 px in radius) the finder fits c (least squares on the residual
    /// D(x) = I(x) - I(2c - x), I between pixels interpolated in the log domain) and takes as a
    /// shoulder every local maximum of D smoothed by a 3 x 3 binomial kernel, 2-5.5 px (plus the
    /// plateau radius) from c -- up to 9 px at a local maximum that failed the prominence test --
    /// in the peak's basin, that stands above shoulderSigma x its noise (Poisson + background of
    /// both pixels, the fitted centre's uncertainty, 3 % of the mirrored value for the model) and
    /// above 10 % of the smoothed value there, whose pixel is >= 10 sigma above the background,
    /// and that lies minSeparation px from every other peak.
    /// The component's pixels then go to the nearest peak. 0 = no shoulder search.
    double shoulderSigma = 4;
    /// Prominence mode: maxima closer than this (px, between maximum pixels) to a higher kept
    /// one are not split off; if they would otherwise have been kept, that peak is flagged merged.
    double minSeparation = 2.5;
    /// Saturation level (counts): pixels >= it are saturated. 0 = none; < 0 = automatic per
    /// frame: the largest finite foreground value when at least 3 pixels hold exactly it.
    double saturation = -1;

    /// Throws InputError("<source>: <field>: ...") naming the first bad field (patch_size,
    /// min_pixels, max_pixels, threshold, auto_sigma, prominence_fraction, prominence_sigma,
    /// gain, shoulder_sigma, min_separation, saturation).
    void validate(const std::string &source = "peak finder") const;
};

struct Peak {
    int frame = 0;
    int row = 0, col = 0;          // patch centre: the maximum pixel (saturated: see the header)
    float maxValue = 0;            // value at (row, col): the peak's maximum
    int pixels = 0;                // its pixels (the component, or its basin when split)
    double sum = 0;                // sum of (value - background) over those pixels
    double centroidRow = 0, centroidCol = 0; // intensity-weighted centroid of those pixels
    float background = 0;          // background level used for this frame
    bool border = false;           // patch crosses the frame edge (padded with the background)
    /// None: two local maxima >= 50% of the height, split by a >= 20% dip. Prominence: a second
    /// maximum passed the prominence test but lay within minSeparation of this peak's maximum.
    bool merged = false;
    bool neighbour = false;        // split from the same component as another peak
    bool shoulder = false;         // found as a shoulder: (row, col) is the symmetry residual's maximum
    double neighbourDistance = 0;  // px between this patch centre and the nearest such peak's
    int componentPeaks = 1;        // peaks found in its component
    int saturatedPixels = 0;       // its pixels >= the saturation level
    float saturation = 0;          // the frame's saturation level (0 = none)
    int originRow = 0, originCol = 0; // top-left pixel of the patch
};

struct FrameThreshold {
    double background = 0; // median
    double sigma = 0;      // robust sigma (1.4826 MAD)
    double threshold = 0;  // used threshold
};

/// Background statistics and the threshold `options` gives for `frame` (finite pixels only).
FrameThreshold frameThreshold(const Frame &frame, const FinderOptions &options);

/// Finds peaks in one frame. When `patches` is non-null, appends one S*S patch per peak (raw
/// counts, NaN/Inf replaced by the background, masked pixels set to the background).
std::vector<Peak> findPeaks(const Frame &frame, int frameIndex, const FinderOptions &options,
                            std::vector<float> *patches = nullptr);

/// Runs the finder over frames [first, last) of a source (dark subtracted when given),
/// multi-threaded over frames, and returns an unlabelled patch dataset with /origin,
/// /frame_index, /flags/border, /flags/merged, /flags/neighbour, /flags/shoulder, /flags/saturated
/// and /peaks/*
/// (max_value, pixels, sum, background, centroid [N,2], neighbour_distance, component_peaks,
/// saturated_pixels, saturation). Progress per frame;
/// throws CancelledError when cancelled.
PatchDataset findPeaksInSource(const FrameSource &source, int first, int last,
                               const FinderOptions &options, const Frame *dark = nullptr,
                               const Monitor &monitor = {}, std::vector<Peak> *peaksOut = nullptr);

/// The same over frames already in memory (frame index = position in `frames`).
PatchDataset findPeaksInFrames(const std::vector<Frame> &frames, const FinderOptions &options,
                               const Monitor &monitor = {}, std::vector<Peak> *peaksOut = nullptr);

} // namespace braggnac::core
