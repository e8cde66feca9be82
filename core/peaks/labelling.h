#pragma once
// 8-connected component labelling over a sparse foreground list (the finder's labelling): one
// pass over the foreground pixels in row-major order that groups them into runs (consecutive
// pixels of a row) and joins each run to the touching runs of the row above with a union-find of
// provisional labels, then a relabel in order of each component's first pixel. The label image
// is written, never read. The components are cv::connectedComponents' (8-connected), pixel for
// pixel (tests/tst_finder checks), without its two passes over the whole frame: the cost scales
// with the foreground, not the frame.
#include <cstddef>
#include <vector>

namespace braggnac::core {

/// Row and column of flat indices (row * cols + col) visited in increasing order, without a
/// division per index: the row is recomputed only when an index leaves the current one.
struct RowCursor {
    explicit RowCursor(int columns) : cols(std::size_t(columns)) {}
    /// Moves to `idx` (not below any earlier one); row, col, rowStart and rowEnd then describe it.
    void to(std::size_t idx)
    {
        if (idx >= rowEnd) {
            row = idx / cols;
            rowStart = row * cols;
            rowEnd = rowStart + cols;
        }
        col = idx - rowStart;
    }
    std::size_t cols;
    std::size_t row = 0, col = 0, rowStart = 0, rowEnd = 0;
};

/// `foreground`: flat indices (row * cols + col) of the foreground pixels, strictly increasing.
/// `labels`: a rows x cols image, not read; on return each foreground pixel holds its
/// component's label 1..count-1, nothing else is written. Returns count = number of
/// components + 1 (0 is the background, as OpenCV counts).
/// `parent` is scratch (reused between calls). `listLabels`, when given, receives the same labels
/// in list order (listLabels[k]: the label of foreground[k]), so that passes over the list need
/// not read them back from the image.
int labelForeground(const std::vector<std::size_t> &foreground, int rows, int cols, int *labels,
                    std::vector<int> &parent, int *listLabels = nullptr);

} // namespace braggnac::core
