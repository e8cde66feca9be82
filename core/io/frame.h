#pragma once
// One detector frame as float32 intensities, row-major. Pixel (0,0) is the centre of the
// top-left pixel. Integer types up to 16 bits convert exactly; wider types are rounded to float.
#include <cstddef>
#include <vector>

namespace braggnac::core {

struct Frame {
    int rows = 0;
    int cols = 0;
    std::vector<float> data; // rows * cols

    Frame() = default;
    Frame(int r, int c, float fill = 0.f) : rows(r), cols(c), data(std::size_t(r) * c, fill) {}
    bool empty() const { return data.empty(); }
    float &at(int r, int c) { return data[std::size_t(r) * cols + c]; }
    float at(int r, int c) const { return data[std::size_t(r) * cols + c]; }
    const float *row(int r) const { return data.data() + std::size_t(r) * cols; }
};

/// frame - dark, clipped at 0. Non-finite pixels stay non-finite (masked by the finder).
/// Throws InputError when the shapes differ.
Frame subtractDark(const Frame &frame, const Frame &dark);
/// The same in place (no frame allocated: the finder's and predict's read loops).
void subtractDarkInPlace(Frame &frame, const Frame &dark);

/// Element-wise maximum over frames (for the "max over frames" view).
void accumulateMax(Frame &acc, const Frame &frame);

} // namespace braggnac::core
