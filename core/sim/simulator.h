#pragma once
// Synthetic HEDM-like data with ground truth, seeded and deterministic (same seed, same output
// on any thread count).
#include <cstdint>
#include <string>
#include <vector>

#include "core/common/progress.h"
#include "core/io/frame.h"
#include "core/io/patchdataset.h"
#include "core/peaks/pseudovoigt.h"

namespace braggnac::core {

struct FrameSimOptions {
    int size = 2048;                 // frames are size x size
    int peaksPerFrame = 300;
    double amplitudeMin = 50;        // amplitudes log-uniform over three decades
    double amplitudeMax = 50000;
    double sigmaMin = 0.6, sigmaMax = 2.0;   // Gaussian widths (px)
    double gammaMin = 0.6, gammaMax = 2.0;   // Lorentzian widths (px)
    double closePairFraction = 0.05; // fraction of peaks placed 2-5 px from another
    double background = 20;          // mean smooth background (counts)
    double readNoise = 3;            // Gaussian read noise (counts)
    bool poisson = true;
    double saturation = 16383;       // counts (14-bit detector); <= 0 disables
    std::uint64_t seed = 1;
    int threads = 0;                 // <= 0: all hardware threads (frames in parallel)
    double renderWidths = 8;         // each peak is drawn within renderWidths * its largest width

    /// Throws InputError("<source>: <field>: ...") naming the field (snake_case: size,
    /// peaks_per_frame, amplitude_min, ...) on a non-finite or out-of-range value: size 1..65536,
    /// peaks_per_frame 0..1e6, 0 < min <= max for amplitudes and widths, close_pair_fraction in
    /// [0, 1], background, read_noise >= 0, saturation >= 0 (0 disables), render_widths > 0.
    /// simulateFrames calls it.
    void validate(const std::string &source = "simulate frames") const;
};
// The smooth background of frame f depends only on (seed, f, size, background): simulating with
// peaksPerFrame = 0 gives it alone. With poisson = false and readNoise = 0 frames hold the exact
// noiseless model (background + peaks, clamped at saturation), not rounded to integer counts.

struct TruthPeak {
    int frame = 0;
    PseudoVoigt params;   // row/col in frame coordinates, background = 0
    bool closePair = false;
};

struct SimulatedFrames {
    std::vector<Frame> frames;
    std::vector<TruthPeak> truth;
};

SimulatedFrames simulateFrames(int count, const FrameSimOptions &options,
                               const Monitor &monitor = {});

/// Writes frames and truth: HDF5 (/entry/data/data + /truth/frame_index, /truth/center [M,2],
/// /truth/amplitude, /truth/params [M,10]) or, for GE2/TIFF, the frames plus a sidecar
/// `<path>.truth.h5` holding /truth/*. Atomic.
enum class SimFormat { HDF5, GE2, TIFF };
void writeSimulatedFrames(const std::string &path, const SimulatedFrames &sim, SimFormat format);

struct PatchSimOptions {
    int patchSize = 11;
    double amplitudeMin = 100, amplitudeMax = 20000; // log-uniform
    double sigmaMin = 0.6, sigmaMax = 2.0;
    double gammaMin = 0.6, gammaMax = 2.0;
    double centreJitter = 1.0;      // true centre uniform within +-jitter px of the patch centre
    double neighbourFraction = 0.2; // fraction with a second, partly visible peak
    double background = 20;
    double readNoise = 3;
    bool poisson = true;
    double neighbourDistanceMin = 3, neighbourDistanceMax = 7; // neighbour's centre distance (px)
    bool pixelIntegrated = false;   // pixel values are the model integrated over the pixel
    std::uint64_t seed = 1;
    int threads = 0;                // <= 0: all hardware threads (output does not depend on it)

    /// The two regimes of the patch benchmarks (docs/fitting.md, "Simulated regimes"). easy():
    /// the defaults above (amplitudes 100-20,000, widths 0.6-2.0 px, centres within 1 px, 20 %
    /// with a neighbour 3-7 px away, point-sampled). realistic(): like detector data, amplitudes
    /// 30-20,000 (about a quarter of patches below SNR 10, SNR = amplitude / sqrt(amplitude +
    /// background + read_noise^2)), background 10-30, centres within 1.5 px, widths 0.6-2.2 px,
    /// 15 % with a neighbour 4.5-7 px away, pixel-integrated.
    static PatchSimOptions easy();
    static PatchSimOptions realistic();

    /// Throws InputError("<source>: <field>: ...") naming the field on a non-finite or
    /// out-of-range value: patch_size odd in 3..255, 0 < min <= max for amplitudes and widths,
    /// centre_jitter in [0, patch_size / 2], neighbour_fraction in [0, 1], background,
    /// read_noise >= 0, 0 < neighbour_distance_min <= neighbour_distance_max. simulatePatches
    /// calls it.
    void validate(const std::string &source = "simulate patches") const;
};

/// Labelled synthetic patches: /centers = true centre, label_source = "simulation",
/// /truth/params [N,10], /truth/amplitude, /flags/neighbour; split by index 80/10/10.
PatchDataset simulatePatches(std::size_t n, const PatchSimOptions &options,
                             const Monitor &monitor = {});

} // namespace braggnac::core
