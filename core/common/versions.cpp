#include "core/common/versions.h"

#include <hdf5.h>
#include <nlohmann/json.hpp>
#include <opencv2/core/utility.hpp>
#include <sqlite3.h>
#include <tiffio.h>

#include "core/io/hdf5util.h"
#include "core/nn/model.h"

namespace braggnac::core {

namespace {

std::string orUnknown(std::string s)
{
    while (!s.empty() && (s.back() == ' ' || s.back() == '\n'))
        s.pop_back();
    return s.empty() ? std::string("unknown") : s;
}

/// "LIBTIFF, Version 4.5.0\nCopyright ..." -> "4.5.0".
std::string tiffVersion()
{
    const char *raw = TIFFGetVersion();
    std::string s = raw ? raw : "";
    s = s.substr(0, s.find('\n'));
    const auto pos = s.find("Version");
    if (pos != std::string::npos)
        s = s.substr(pos + 7);
    const auto first = s.find_first_not_of(' ');
    return orUnknown(first == std::string::npos ? std::string() : s.substr(first));
}

} // namespace

std::vector<LibraryVersion> libraryVersions()
{
    unsigned major = 0, minor = 0, release = 0;
    {
        hdf5::Lock lock;
        H5get_libversion(&major, &minor, &release);
    }
    const std::string json = std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "."
                             + std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "."
                             + std::to_string(NLOHMANN_JSON_VERSION_PATCH);
    return {
        {"LibTorch", orUnknown(torchVersion()) + " (" + defaultDevice() + ")"},
        {"HDF5", std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release)},
        {"OpenCV", orUnknown(cv::getVersionString())},
        {"libtiff", tiffVersion()},
        {"SQLite", orUnknown(sqlite3_libversion() ? sqlite3_libversion() : "")},
        {"nlohmann-json", json},
    };
}

} // namespace braggnac::core
