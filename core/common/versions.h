#pragma once
// The versions of the libraries core runs on, for the studio's About box and `--version`-style
// reports. Run-time versions where the library reports one (HDF5, libtiff, SQLite, OpenCV,
// LibTorch), the compile-time version for header-only nlohmann-json.
// Linking: versions.cpp asks nn for LibTorch's version (torchVersion() in core/nn/model.h), so a
// caller links braggnac_core (every module), not braggnac_common alone.
// Thread-safety: safe to call from any thread (takes the HDF5 lock for H5get_libversion).
#include <string>
#include <vector>

namespace braggnac::core {

struct LibraryVersion {
    std::string name;    // "LibTorch", "HDF5", "OpenCV", "libtiff", "SQLite", "nlohmann-json"
    std::string version; // "1.13.1 (cpu)", "1.10.8", "4.6.0", "4.5.0", "3.40.1", "3.11.2"
};

/// In that order: LibTorch (with the default device), HDF5, OpenCV, libtiff, SQLite,
/// nlohmann-json. Never empty strings: "unknown" where a library reports nothing.
std::vector<LibraryVersion> libraryVersions();

} // namespace braggnac::core
