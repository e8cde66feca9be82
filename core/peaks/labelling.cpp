#include "core/peaks/labelling.h"

namespace braggnac::core {

int labelForeground(const std::vector<std::size_t> &foreground, int rows, int cols, int *labels,
                    std::vector<int> &parent)
{
    (void)rows;
    parent.assign(1, 0);
    // Union-find with the smaller label as the root: a set's root is then its first provisional
    // label, created at the component's first pixel in row-major order.
    auto find = [&parent](int x) {
        while (parent[std::size_t(x)] != x) {
            const int up = parent[std::size_t(parent[std::size_t(x)])];
            parent[std::size_t(x)] = up;
            x = up;
        }
        return x;
    };
    const std::size_t stride = std::size_t(cols);
    // The row of the current pixel is tracked, not divided out per pixel (the list is sorted).
    std::size_t rowStart = 0, rowEnd = stride;
    for (const std::size_t idx : foreground) {
        if (idx >= rowEnd) {
            rowStart = idx - idx % stride;
            rowEnd = rowStart + stride;
        }
        const std::size_t c = idx - rowStart;
        int l = 0;
        auto join = [&](int other) {
            if (other == 0 || other == l)
                return;
            if (l == 0) {
                l = other;
                return;
            }
            const int a = find(l), b = find(other);
            if (a < b)
                parent[std::size_t(b)] = a;
            else if (b < a)
                parent[std::size_t(a)] = b;
        };
        // The neighbours already scanned: west, north-west, north, north-east.
        if (c > 0)
            join(labels[idx - 1]);
        if (idx >= stride) {
            const std::size_t up = idx - stride;
            if (c > 0)
                join(labels[up - 1]);
            join(labels[up]);
            if (c + 1 < stride)
                join(labels[up + 1]);
        }
        if (l == 0) {
            l = int(parent.size());
            parent.push_back(l);
        }
        labels[idx] = l;
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
    for (const std::size_t idx : foreground)
        labels[idx] = parent[std::size_t(labels[idx])];
    return next;
}

} // namespace braggnac::core
