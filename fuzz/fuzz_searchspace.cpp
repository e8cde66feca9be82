// libFuzzer target "searchspace": see braggnac::fuzz::searchSpace in fuzz/fuzzentries.h.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzzentries.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    braggnac::fuzz::searchSpace(data, size);
    return 0;
}
