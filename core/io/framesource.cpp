#include "core/io/framesource.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/common/error.h"
#include "core/io/framereaders.h"
#include "core/io/hdf5util.h"

namespace braggnac::core {

const char *pixelTypeName(PixelType type)
{
    switch (type) {
    case PixelType::UInt8: return "uint8";
    case PixelType::Int8: return "int8";
    case PixelType::UInt16: return "uint16";
    case PixelType::Int16: return "int16";
    case PixelType::UInt32: return "uint32";
    case PixelType::Int32: return "int32";
    case PixelType::UInt64: return "uint64";
    case PixelType::Int64: return "int64";
    case PixelType::Float32: return "float32";
    case PixelType::Float64: return "float64";
    }
    return "unknown";
}

namespace {
std::string lowerExtension(const std::string &path)
{
    std::string ext = std::filesystem::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return ext;
}

bool isGeExtension(const std::string &ext)
{
    // .ge, .ge1, .ge2, ... .ge5 and any .geN
    if (ext.size() < 3 || ext.compare(0, 3, ".ge") != 0)
        return false;
    return std::all_of(ext.begin() + 3, ext.end(), [](unsigned char c) { return std::isdigit(c); });
}
} // namespace

std::unique_ptr<FrameSource> openFrameSource(const std::string &path, const std::string &dataset)
{
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw InputError(fileMessage(path, "no such file"));
    if (std::filesystem::is_directory(path, ec))
        throw InputError(fileMessage(path, "is a folder; expected a frame file"));
    const std::string ext = lowerExtension(path);
    if (isGeExtension(ext))
        return openGeSource(path);
    if (ext == ".tif" || ext == ".tiff")
        return openTiffSource(path);
    if (ext == ".h5" || ext == ".hdf5" || ext == ".hdf" || ext == ".nxs" || ext == ".nx5"
        || ext == ".he5")
        return openHdf5Source(path, dataset);
    if (hdf5::hasHdf5Signature(path))
        return openHdf5Source(path, dataset);
    if (hasTiffMagic(path))
        return openTiffSource(path);
    throw InputError(fileMessage(path, "unknown frame format (extension '" + ext
                                           + "'); expected GE (.ge*), TIFF (.tif) or HDF5 (.h5)"));
}

Frame readDarkFrame(const std::string &path, const std::string &dataset, const Monitor &monitor)
{
    const auto source = openFrameSource(path, dataset);
    const int n = source->frameCount();
    if (n < 1)
        throw InputError(fileMessage(path, "dark file holds no frames"));
    Frame mean;
    std::vector<double> sum;
    for (int i = 0; i < n; ++i) {
        monitor.check();
        const Frame f = source->readFrame(i);
        if (i == 0) {
            sum.assign(f.data.begin(), f.data.end());
            mean = Frame(f.rows, f.cols);
        } else {
            for (std::size_t k = 0; k < sum.size(); ++k)
                sum[k] += f.data[k];
        }
        monitor.report(double(i + 1) / n,
                       "dark frame " + std::to_string(i + 1) + "/" + std::to_string(n));
    }
    for (std::size_t k = 0; k < sum.size(); ++k)
        mean.data[k] = float(sum[k] / n);
    return mean;
}

} // namespace braggnac::core
