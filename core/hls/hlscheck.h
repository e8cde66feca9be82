#pragma once
// The HLS export check (issue 9 "--check DATA --n N", docs/hls.md "The check"): the export's g++
// C simulation (runCsim) compared output by output with the integer reference
// (core/compress/intref.h), and the distance of the C simulation's outputs to the labels. The one
// implementation behind `braggnac export-hls --check` and the studio's Export stage. Torch-free.
//
// Contract:
//  - hlsCheckPatchCount validates a check dataset against the network before anything is written:
//    InputError "<dataName>: patches are A x A, the model takes B" or "<dataName>: no patches".
//  - checkHlsExport runs `dir`/build_csim.sh (the export must have been written by exportHls with
//    the first n patches of `data` as its testbench data; InputError naming
//    tb_data/tb_input_features.dat when it is missing or holds another number of patches) and compares its outputs with
//    ref.forwardRaw on those patches. It is cancellable while the C simulation builds and runs
//    (monitor.cancel: the build's process group is ended, CancelledError thrown, no result); a
//    failed build throws Error with the exit status and the tail of <dir>/csim_build.log.
//    Mismatches are a result (HlsCheck::mismatches), never an exception.
//  - Thread-safety: free functions over plain values; distinct export folders may be checked
//    concurrently. The monitor's callback is called from the calling thread.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/common/progress.h"

namespace braggnac::core {

class IntegerReference;
struct PatchDataset;

/// One output where the C simulation and the integer reference differ.
struct HlsMismatch {
    std::size_t patch = 0, output = 0; // patch index, output index within the patch
    double expected = 0;               // the integer reference's value (output format, real units)
    std::optional<double> got;         // the C simulation's value; absent when it wrote too few
    bool operator==(const HlsMismatch &o) const
    {
        return patch == o.patch && output == o.output && expected == o.expected && got == o.got;
    }
};

/// The outcome of one check.
struct HlsCheck {
    static constexpr std::size_t kListedMismatches = 10; // firstMismatches holds at most this many

    std::size_t patches = 0;     // patches simulated ("n" in JSON)
    std::size_t outputs = 0;     // outputs compared: patches * outputs per patch
    std::size_t csimOutputs = 0; // values the C simulation wrote
    std::size_t mismatches = 0;  // differing outputs, plus missing and surplus values
    std::vector<HlsMismatch> firstMismatches;
    std::optional<double> meanDistance; // px, C simulation outputs vs labels; absent when unlabelled
    std::string csimResults;            // <dir>/tb_data/csim_results.log
    std::string buildLog;               // <dir>/csim_build.log (the build's stdout and stderr)
    double csimSeconds = 0;             // wall time of build_csim.sh (build + run)
    double referenceSeconds = 0;        // wall time of the integer reference's inference

    bool passed() const { return mismatches == 0; }
    /// {"n","outputs","csim_outputs","mismatches","first_mismatches":[{"patch","output","expected","got"}],
    ///  "mean_distance" (null when unlabelled),"csim_results","build_log","seconds":{"csim","reference"}}
    nlohmann::json toJson() const;
    /// Inverse of toJson; InputError naming `context` and the field on a malformed object.
    static HlsCheck fromJson(const nlohmann::json &j, const std::string &context = "HLS check");
};

/// The number of patches a check on `data` uses: min(nWanted, data.size()). Errors: see above.
std::size_t hlsCheckPatchCount(const PatchDataset &data, int inputSize, std::size_t nWanted, const std::string &dataName);

/// Runs the C simulation of the export in `dir` and compares it with `ref` on the first `n`
/// patches of `data` (n <= data.size(); 0: hlsCheckPatchCount's error). `apTypes`: as runCsim.
/// Progress: "C simulation: ..." while it builds and runs, "comparing" after.
HlsCheck checkHlsExport(const std::string &dir, const IntegerReference &ref, const PatchDataset &data, std::size_t n,
                        const Monitor &monitor = {}, const std::string &dataName = "the check data",
                        const std::string &apTypes = {});

} // namespace braggnac::core
