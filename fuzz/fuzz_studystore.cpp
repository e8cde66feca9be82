// libFuzzer target "studystore": see braggnac::fuzz::studyStore in fuzz/fuzzentries.h.
// With BRAGGNAC_FUZZ_WRITE_SEED=PATH it writes a small valid study at PATH and exits (the seed
// scripts/fuzz.sh starts from).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "fuzz/fuzzentries.h"

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    if (const char *path = std::getenv("BRAGGNAC_FUZZ_WRITE_SEED")) {
        try {
            braggnac::fuzz::writeStudySeed(path);
        } catch (const std::exception &e) {
            std::fprintf(stderr, "cannot write the study seed %s: %s\n", path, e.what());
            std::exit(1);
        }
        std::exit(0);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    braggnac::fuzz::studyStore(data, size);
    return 0;
}
