// libFuzzer target "tiff": see braggnac::fuzz::tiffReader in fuzz/fuzzentries.h.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzzentries.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    braggnac::fuzz::tiffReader(data, size);
    return 0;
}
