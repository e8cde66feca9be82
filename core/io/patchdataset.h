#pragma once
// Patch datasets in the HDF5 schema of spec/formats.md:
//   /patches float32 [N,S,S] raw counts; /centers float32 [N,2] (row, col) patch coordinates;
//   optional /split uint8 [N] (0 train, 1 validation, 2 test), /frame_index int32 [N],
//   /origin int32 [N,2]; root attributes patch_size (int), label_source (string).
// Our own extensions (documented in docs/formats.md) live in groups and are read back too:
//   /fit/params float32 [N,10], /fit/converged uint8 [N], /fit/residual float32 [N],
//   /flags/border, /flags/merged, /flags/neighbour uint8 [N], /peaks/... finder statistics.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace braggnac::core {

enum class Split : std::uint8_t { Train = 0, Validation = 1, Test = 2 };

struct PatchDataset {
    int patchSize = 11;
    std::string labelSource;              // "" when unlabelled, "simulation", "pseudo-voigt"...
    std::vector<float> patches;           // N * S * S
    std::vector<float> centers;           // N * 2, or empty (unlabelled)
    std::vector<std::uint8_t> split;      // N, or empty
    std::vector<std::int32_t> frameIndex; // N, or empty
    std::vector<std::int32_t> origin;     // N * 2, or empty
    /// Extra float datasets by HDF5 path (e.g. "/fit/params"): shape (first dim N) and data.
    struct FloatArray {
        std::vector<unsigned long long> shape;
        std::vector<float> data;
    };
    std::map<std::string, FloatArray> extraFloat;
    /// Extra uint8 [N] datasets by HDF5 path (e.g. "/flags/neighbour", "/fit/converged").
    std::map<std::string, std::vector<std::uint8_t>> extraFlags;

    std::size_t size() const { return patchSize > 0 ? patches.size() / (std::size_t(patchSize) * patchSize) : 0; }
    bool labelled() const { return !centers.empty(); }
    const float *patch(std::size_t i) const { return patches.data() + i * patchSize * patchSize; }
    /// Throws InputError(context: ...) when array lengths disagree with size().
    void validate(const std::string &context) const;
    /// A dataset holding only the rows in `indices` (all arrays, extras included).
    PatchDataset subset(const std::vector<std::size_t> &indices) const;
};

/// Reads a patch file. Throws InputError naming the file and dataset when a required dataset is
/// missing, has the wrong rank/type, or lengths disagree.
PatchDataset readPatchDataset(const std::string &path);
/// Writes atomically (temporary file, then rename); gzip level 4 when compress.
void writePatchDataset(const std::string &path, const PatchDataset &data, bool compress = true);

/// The split to use: /split when present, else by frame (or by index without /frame_index) so
/// that no frame contributes to two splits. Fractions are train / validation (rest is test).
/// Deterministic for a given seed.
std::vector<std::uint8_t> effectiveSplit(const PatchDataset &data, double trainFraction = 0.8,
                                         double validationFraction = 0.1, unsigned seed = 0);

/// Counts of one importBraggNN run: labels kept, dropped by the npeaks/deviations filter (or a
/// non-finite position), dropped because the S x S patch would cross the frame border.
struct BraggNNImportStats {
    std::size_t kept = 0;
    std::size_t skippedFilter = 0;
    std::size_t skippedBorder = 0;
};

/// Imports the public BraggNN data (frames file /frames [F,H,W], label file with peak_fidx,
/// peak_row, peak_col, npeaks, deviations): S x S patches centred at the rounded label position,
/// keeping npeaks == 1 && 0 <= deviations < 1 (formats.md). Peaks too close to the border are
/// skipped. label_source = "braggnn".
/// `stats`, when given, receives the counts.
PatchDataset importBraggNN(const std::string &framesPath, const std::string &labelsPath,
                           int patchSize = 11, BraggNNImportStats *stats = nullptr);

} // namespace braggnac::core
