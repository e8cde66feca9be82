#pragma once
// Peak finding on detector frames (OpenCV): threshold, 8-connected components, size filters,
// one peak per component at its maximum pixel, an S x S patch centred there with other
// components inside the patch masked out (set to the frame's background level, as BraggNN does).
// Background = median of the finite pixels (frames over 512 x 512 px: of a subsample of ~33k
// pixels, runs of 16 every ~2k); NaN/Inf pixels are never foreground. Output order: by frame,
// then by the row-major position of the maximum pixel, whatever the thread count.
#include <cstdint>
#include <vector>

#include "core/common/progress.h"
#include "core/io/frame.h"
#include "core/io/patchdataset.h"

namespace braggnac::core {

class FrameSource;

struct FinderOptions {
    /// Absolute threshold in counts (pixels strictly above are foreground); < 0 = automatic:
    /// background median + autoSigma * robust sigma (MAD) of the frame.
    double threshold = -1;
    double autoSigma = 5.0;
    int minPixels = 3;      // components smaller than this are dropped (hot pixels, noise)
    int maxPixels = 2500;   // larger components are dropped (streaks, rings)
    int patchSize = 11;     // odd
    bool maskOthers = true; // mask other components inside a patch
    int threads = 0;        // <= 0: all hardware threads (parallel over frames)
};

struct Peak {
    int frame = 0;
    int row = 0, col = 0;          // maximum pixel (frame coordinates)
    float maxValue = 0;
    int pixels = 0;                // component size
    double sum = 0;                // sum of (value - background) over the component
    double centroidRow = 0, centroidCol = 0; // intensity-weighted centroid
    float background = 0;          // background level used for this frame
    bool border = false;           // patch crosses the frame edge (padded with the background)
    bool merged = false;           // two local maxima >= 50% of the height, split by a >= 20% dip
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
/// /frame_index, /flags/border, /flags/merged and /peaks/* statistics. Progress per frame;
/// throws CancelledError when cancelled.
PatchDataset findPeaksInSource(const FrameSource &source, int first, int last,
                               const FinderOptions &options, const Frame *dark = nullptr,
                               const Monitor &monitor = {}, std::vector<Peak> *peaksOut = nullptr);

/// The same over frames already in memory (frame index = position in `frames`).
PatchDataset findPeaksInFrames(const std::vector<Frame> &frames, const FinderOptions &options,
                               const Monitor &monitor = {}, std::vector<Peak> *peaksOut = nullptr);

} // namespace braggnac::core
