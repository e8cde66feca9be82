#include "core/io/frame.h"

#include <string>

#include "core/common/error.h"

namespace braggnac::core {

namespace {
std::string shapeText(const Frame &f)
{
    return std::to_string(f.rows) + " x " + std::to_string(f.cols);
}
} // namespace

Frame subtractDark(const Frame &frame, const Frame &dark)
{
    Frame out = frame;
    subtractDarkInPlace(out, dark);
    return out;
}

void subtractDarkInPlace(Frame &frame, const Frame &dark)
{
    if (frame.rows != dark.rows || frame.cols != dark.cols)
        throw InputError("dark frame is " + shapeText(dark) + " but the frame is "
                         + shapeText(frame) + "; expected the same shape");
    const std::size_t n = frame.data.size();
    float *f = frame.data.data();
    const float *d = dark.data.data();
    for (std::size_t i = 0; i < n; ++i) {
        const float v = f[i] - d[i];
        // NaN compares false: non-finite results stay non-finite.
        f[i] = v < 0.f ? 0.f : v;
    }
}

void accumulateMax(Frame &acc, const Frame &frame)
{
    if (acc.empty()) {
        acc = frame;
        return;
    }
    if (acc.rows != frame.rows || acc.cols != frame.cols)
        throw InputError("cannot take the maximum of a " + shapeText(frame) + " frame into a "
                         + shapeText(acc) + " accumulator; expected the same shape");
    const std::size_t n = acc.data.size();
    float *a = acc.data.data();
    const float *f = frame.data.data();
    for (std::size_t i = 0; i < n; ++i) {
        // NaN in `frame` is ignored; NaN in `acc` is replaced by the first number seen.
        if (f[i] > a[i] || (a[i] != a[i] && f[i] == f[i]))
            a[i] = f[i];
    }
}

} // namespace braggnac::core
