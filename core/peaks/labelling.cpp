#include "core/peaks/labelling.h"

#include <algorithm>

namespace braggnac::core {

namespace {

/// A run of consecutive foreground pixels in one row: columns [c0, c1], the run's pixels are
/// foreground[first .. first + (c1 - c0)].
struct Run {
    std::size_t c0, c1;
    std::size_t first;
    int label;
};

} // namespace

int labelForeground(const std::vector<std::size_t> &foreground, int rows, int cols, int *labels,
                    std::vector<int> &parent, int *listLabels)
{
    (void)rows;
    parent.assign(1, 0);
    // Union-find with the smaller label as the root: a set's root is then its first provisional
    // label, created at the component's first run (first pixel) in row-major order.
    auto find = [&parent](int x) {
        while (parent[std::size_t(x)] != x) {
            const int up = parent[std::size_t(parent[std::size_t(x)])];
            parent[std::size_t(x)] = up;
            x = up;
        }
        return x;
    };
    auto unite = [&](int a, int b) {
        a = find(a);
        b = find(b);
        if (a < b)
            parent[std::size_t(b)] = a;
        else if (b < a)
            parent[std::size_t(a)] = b;
    };
    // Runs from the sorted list, each joined to the overlapping runs of the row above (8-connected:
    // columns overlapping or touching diagonally). The label image is only written, never read:
    // the rows above are compared as runs, so no cold cache lines of background are touched.
    thread_local std::vector<Run> runs;
    runs.clear();
    std::size_t prevBegin = 0, prevEnd = 0; // runs of the previous row (if it is row - 1)
    std::size_t curBegin = 0;
    RowCursor at(cols);
    bool started = false;
    for (std::size_t k = 0; k < foreground.size();) {
        const std::size_t idx = foreground[k];
        const std::size_t lastRow = at.row;
        at.to(idx);
        if (!started || at.row != lastRow) {
            // The finished row's runs become "previous" only for the next row down.
            if (started && at.row == lastRow + 1) {
                prevBegin = curBegin;
                prevEnd = runs.size();
            } else {
                prevBegin = prevEnd = runs.size();
            }
            curBegin = runs.size();
            started = true;
        }
        // Extend the run while the next pixel is the next column of the same row.
        std::size_t end = k + 1;
        while (end < foreground.size() && foreground[end] == foreground[end - 1] + 1
               && foreground[end] < at.rowEnd)
            ++end;
        Run r{at.col, foreground[end - 1] - at.rowStart, k, 0};
        // Runs above that touch [c0 - 1, c1 + 1]. prevBegin only skips runs ending left of this
        // one (they cannot touch the runs further right either); a run above that touches this
        // one stays for the next run of the row.
        while (prevBegin < prevEnd && runs[prevBegin].c1 + 1 < r.c0)
            ++prevBegin;
        for (std::size_t p = prevBegin; p < prevEnd && runs[p].c0 <= r.c1 + 1; ++p) {
            if (r.label == 0)
                r.label = runs[p].label;
            else
                unite(r.label, runs[p].label);
        }
        if (r.label == 0) {
            r.label = int(parent.size());
            parent.push_back(r.label);
        }
        runs.push_back(r);
        k = end;
    }
    // Final labels: consecutive, in order of the roots (= of the components' first pixels).
    // parent[i] <= i (unions hang the larger root under the smaller, compression only shortens),
    // so one ascending pass resolves every label: a root gets the next number, a member its
    // (already resolved) parent's.
    int next = 1;
    for (std::size_t i = 1; i < parent.size(); ++i) {
        const std::size_t up = std::size_t(parent[i]);
        parent[i] = up == i ? next++ : parent[up];
    }
    for (const Run &r : runs) {
        const int l = parent[std::size_t(r.label)];
        const std::size_t n = r.c1 - r.c0 + 1;
        for (std::size_t q = 0; q < n; ++q)
            labels[foreground[r.first + q]] = l;
        if (listLabels)
            std::fill_n(listLabels + r.first, n, l);
    }
    return next;
}

} // namespace braggnac::core
