// Import of the public BraggNN data: frames file /frames [F, H, W] + label file with peak_fidx,
// peak_row, peak_col, npeaks, deviations (spec/formats.md, "BraggNN label files").
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/common/error.h"
#include "core/io/framesource.h"
#include "core/io/hdf5util.h"
#include "core/io/patchdataset.h"

namespace braggnac::core {

namespace {

template <typename T>
std::vector<T> readLabel(hid_t file, const std::string &fileName, const std::string &name)
{
    hdf5::Lock lock;
    hdf5::Handle ds = hdf5::openDataset(file, name, fileName);
    return hdf5::readAll<T>(ds, fileName, name);
}

} // namespace

PatchDataset importBraggNN(const std::string &framesPath, const std::string &labelsPath,
                           int patchSize, BraggNNImportStats *stats)
{
    if (patchSize < 1 || patchSize % 2 == 0)
        throw InputError("BraggNN import: patch size " + std::to_string(patchSize)
                         + " must be odd and positive");
    std::vector<std::int64_t> fidx;
    std::vector<double> prow, pcol, deviations;
    std::vector<std::int64_t> npeaks;
    {
        hdf5::Lock lock;
        hdf5::Handle file = hdf5::openFile(labelsPath);
        fidx = readLabel<std::int64_t>(file, labelsPath, "/peak_fidx");
        prow = readLabel<double>(file, labelsPath, "/peak_row");
        pcol = readLabel<double>(file, labelsPath, "/peak_col");
        npeaks = readLabel<std::int64_t>(file, labelsPath, "/npeaks");
        deviations = readLabel<double>(file, labelsPath, "/deviations");
    }
    const std::size_t m = fidx.size();
    auto checkLength = [&](const char *name, std::size_t len) {
        if (len != m)
            throw InputError(fileMessage(labelsPath, std::string(name) + " has " + std::to_string(len)
                                                         + " entries but /peak_fidx has "
                                                         + std::to_string(m)
                                                         + "; expected the same length"));
    };
    checkLength("/peak_row", prow.size());
    checkLength("/peak_col", pcol.size());
    checkLength("/npeaks", npeaks.size());
    checkLength("/deviations", deviations.size());

    auto source = openFrameSource(framesPath, "/frames");
    const int frames = source->frameCount(), rows = source->rows(), cols = source->cols();
    const int half = patchSize / 2;

    BraggNNImportStats st;
    // First pass: which labels are kept, and where their patches start.
    std::vector<std::size_t> kept;
    std::vector<std::int32_t> origin;
    for (std::size_t i = 0; i < m; ++i) {
        const double d = deviations[i];
        if (npeaks[i] != 1 || !(d >= 0.0 && d < 1.0) || !std::isfinite(prow[i]) || !std::isfinite(pcol[i])) {
            ++st.skippedFilter;
            continue;
        }
        if (fidx[i] < 0 || fidx[i] >= frames)
            throw InputError(fileMessage(labelsPath, "/peak_fidx[" + std::to_string(i) + "] is "
                                                         + std::to_string(fidx[i]) + " but " + framesPath
                                                         + " /frames has " + std::to_string(frames)
                                                         + " frames"));
        // Round half to even, as numpy's round() in the BraggNN scripts.
        const double r = std::nearbyint(prow[i]), c = std::nearbyint(pcol[i]);
        const double r0 = r - half, c0 = c - half;
        if (r0 < 0 || c0 < 0 || r0 + patchSize > rows || c0 + patchSize > cols) {
            ++st.skippedBorder;
            continue;
        }
        kept.push_back(i);
        origin.push_back(std::int32_t(r0));
        origin.push_back(std::int32_t(c0));
    }
    st.kept = kept.size();

    PatchDataset out;
    out.patchSize = patchSize;
    out.labelSource = "braggnn";
    const std::size_t area = std::size_t(patchSize) * patchSize;
    out.patches.resize(kept.size() * area);
    out.centers.resize(kept.size() * 2);
    out.frameIndex.resize(kept.size());
    out.origin = origin;

    // Second pass, frame by frame (each needed frame read once), keeping the label order.
    std::vector<std::size_t> order(kept.size());
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return fidx[kept[a]] < fidx[kept[b]]; });
    std::int64_t current = -1;
    Frame frame;
    for (std::size_t k : order) {
        const std::size_t i = kept[k];
        if (fidx[i] != current) {
            frame = source->readFrame(int(fidx[i]));
            current = fidx[i];
        }
        const int r0 = origin[2 * k], c0 = origin[2 * k + 1];
        float *dst = out.patches.data() + k * area;
        for (int r = 0; r < patchSize; ++r)
            std::copy_n(frame.row(r0 + r) + c0, patchSize, dst + std::size_t(r) * patchSize);
        out.centers[2 * k] = float(prow[i] - r0);
        out.centers[2 * k + 1] = float(pcol[i] - c0);
        out.frameIndex[k] = std::int32_t(fidx[i]);
    }
    if (stats)
        *stats = st;
    return out;
}

} // namespace braggnac::core
