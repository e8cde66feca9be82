// libFuzzer target "hdf5": see braggnac::fuzz::hdf5Frames in fuzz/fuzzentries.h.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzzentries.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    braggnac::fuzz::hdf5Frames(data, size);
    return 0;
}
