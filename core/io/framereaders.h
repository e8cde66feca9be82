#pragma once
// Internal to core/io: the concrete frame readers behind openFrameSource().
// Each throws InputError naming the file (and dataset) when the file cannot be read as frames.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "core/io/framesource.h"

namespace braggnac::core {

inline constexpr int kGeHeaderBytes = 8192;
inline constexpr int kGeSide = 2048;

std::unique_ptr<FrameSource> openGeSource(const std::string &path);
std::unique_ptr<FrameSource> openTiffSource(const std::string &path);
std::unique_ptr<FrameSource> openHdf5Source(const std::string &path, const std::string &dataset);

/// What the uint16 writers store for a float pixel: rounded half away from zero, clamped to
/// 0..65535; NaN and negatives become 0.
inline std::uint16_t toUInt16Pixel(float v)
{
    if (!(v > 0.f))
        return 0;
    if (v >= 65535.f)
        return 65535;
    return std::uint16_t(std::lround(v));
}

/// TIFF magic "II*\0" or "MM\0*" (classic) / "II+\0" "MM\0+" (BigTIFF).
bool hasTiffMagic(const std::string &path);

} // namespace braggnac::core
