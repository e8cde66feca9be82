#include "core/common/runtime.h"

#include <dlfcn.h>
#include <malloc.h>

namespace braggnac::core {

void configureNumericRuntime()
{
    static bool done = false;
    if (done)
        return;
    done = true;
    // OpenBLAS's own thread pool fights LibTorch's OpenMP threads: pin it to one thread.
    using SetThreads = void (*)(int);
    for (const char *sym : {"openblas_set_num_threads", "goto_set_num_threads"}) {
        if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, sym))) {
            fn(1);
            break;
        }
    }
    // Keep activation-sized buffers in the heap instead of mmap/munmap on every call.
    mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
}

std::string versionString()
{
    return std::string("BraggNAC ") + BRAGGNAC_VERSION;
}

} // namespace braggnac::core
