#pragma once
// Process-wide numeric runtime settings. Call once at start-up from every executable that runs
// numeric work: pins OpenBLAS to one thread (looked up with dlsym; a no-op if absent) and raises
// glibc's mmap/trim thresholds so large temporary buffers are not returned to the OS on every
// call (see docs/benchmarks.md for why). Torch's own thread count is set by nn::setTorchThreads.
#include <string>

namespace braggnac::core {

void configureNumericRuntime();

/// "BraggNAC 0.1.0"
std::string versionString();

} // namespace braggnac::core
