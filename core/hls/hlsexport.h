#pragma once
// HLS export (issue 9, docs/hls.md "The export"): writes a Vitis-HLS project in hls4ml's layout
// for a quantised network, whose arithmetic is the integer reference's (core/compress/intref.h)
// bit for bit, and checks that with a g++ C simulation. Torch-free.
//
// Contract:
//  - exportHls writes into a temporary folder beside `out`, then renames it to `out`: nothing
//    half-written. An existing non-empty `out` is replaced only with force; else InputError
//    naming it. Every op of a lowered plan is exported (conv, dense, folded batch norm, ReLU,
//    LeakyReLU, GELU and layer norm with their tables, the attention block with its exponential
//    and reciprocal tables, residual add, flatten). InputError "unsupported layer: <op>
//    (<kind>): ..." only where the formats do not fit the templates' integer arithmetic (a GELU
//    table input wider than 16 bits, softmax or layer-norm intermediates beyond 62 bits, an
//    accumulator beyond 127 bits, an activation "none" op), and for bad options (reuse factor < 1,
//    clock <= 0, unknown part, io type other than io_parallel).
//  - The C simulation (runCsim) runs the export's build_csim.sh with /bin/sh (posix_spawn) in
//    its own process group, stdout and stderr to <dir>/csim_build.log, and polls the monitor:
//    on cancel the group gets SIGTERM, then SIGKILL after 1 s, no child is left running, a
//    partial tb_data/csim_results.log is removed and CancelledError is thrown. A failed build or
//    run without results throws Error naming the exit status (or signal) with the log's tail.
//    The comparison with the integer reference is core/hls/hlscheck.h.
//  - Thread-safety: free functions over plain values; distinct output folders may be exported
//    concurrently.
#include <cstdint>
#include <string>
#include <vector>

#include "core/common/progress.h"
#include "core/compress/intref.h"
#include "core/hls/hlsestimate.h"

namespace braggnac::core {

struct HlsOptions {
    std::string name = "braggnac_net"; // top function / project name (a C identifier)
    int reuseFactor = 1;               // >= 1: multiplications shared per multiplier
    double clockMhz = 200.0;           // > 0
    std::string part = "xcu250";       // a name of hlsParts() (or its full part number)
    std::string ioType = "io_parallel";
    bool defaultPrecision = false;     // the model was never quantised: ap_fixed<16,6> chosen
};

/// The QuantSpec used for a model that was never quantised: every format ap_fixed<16,6>
/// (round half up, saturate), accumulators exact.
QuantSpec defaultHlsQuantSpec(const LayerPlan &plan);

/// Throws InputError "unsupported layer: ..." for the first op the HLS templates cannot do.
void checkHlsSupported(const LayerPlan &plan);

/// Writes the project to `out` (see above) and returns its estimate. `tbPatches` (n * S * S raw
/// counts, may be empty) become tb_data/tb_input_features.dat (the raw fixed-point inputs,
/// normalised exactly as the integer reference does) and tb_output_predictions.dat (the integer
/// reference's outputs).
HlsEstimate exportHls(const IntegerReference &ref, const HlsOptions &options, const std::string &out, bool force,
                      const float *tbPatches = nullptr, std::size_t n = 0);

/// Runs `dir`/build_csim.sh and returns the raw outputs it wrote to tb_data/csim_results.log
/// (n * outputs values, in the output op's format). `apTypes`: a folder with Xilinx's
/// ap_fixed.h (AP_TYPES), or empty for the export's own header.
/// `monitor`: cancellation while it builds and runs (see above); called from the calling thread.
std::vector<std::int64_t> runCsim(const std::string &dir, const FixedFormat &outputFormat,
                                  const std::string &apTypes = {}, const Monitor &monitor = {});

} // namespace braggnac::core
