#pragma once
// Internal to the fitter (fitter.cpp): starting values from image moments, and the pixels of a
// neighbouring peak to leave out of the fit. See docs/fitting.md.
#include <array>
#include <cstdint>
#include <vector>

namespace braggnac::core::fit {

struct StartValues {
    std::array<double, 10> params{}; // PseudoVoigt::toArray() order
    double noise = 0;                // robust noise estimate of the border pixels (counts)
    int neighbourPixels = 0;         // pixels given weight 0 because they belong to a neighbour
    bool usable = false;             // false: no pixel rises above the background
};

/// Reusable buffers (one per thread) so that estimating a start allocates nothing.
struct StartScratch {
    std::vector<double> values, smooth;
    std::vector<int> up, basin, unpad, next;
};

/// `weight` (size*size) holds 1 for usable pixels and 0 for masked/non-finite ones on entry;
/// when `maskNeighbours`, pixels in the basin of a second significant local maximum are set
/// to 0 on return.
StartValues estimateStart(const float *patch, int size, std::uint8_t *weight, bool maskNeighbours,
                          StartScratch &scratch);

} // namespace braggnac::core::fit
