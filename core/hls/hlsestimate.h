#pragma once
// Analytic FPGA resource and latency estimate of an HLS export (docs/hls.md "Estimates"): an
// estimate from a documented model, not a synthesis result. Torch-free; plain values.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/compress/intref.h"

namespace braggnac::core {

struct HlsPart {
    std::string name;   // "xcu250"
    std::string number; // "xcu250-figd2104-2L-e" (build_prj.tcl)
    std::int64_t dsp = 0, lut = 0, ff = 0, bram18 = 0;
};
/// xcu250, xcu55c, xczu7ev, xc7z020.
const std::vector<HlsPart> &hlsParts();
/// By short name or full part number; throws InputError listing the known parts.
const HlsPart &hlsPart(const std::string &name);

struct LayerEstimate {
    std::string name, kind;
    std::int64_t weights = 0, pruned = 0;   // Conv / Linear: weights, of which zero (skipped)
    std::int64_t multipliers = 0;           // multiplier instances after the reuse factor
    bool dspMultipliers = false;            // operands wider than 10x10 bits: DSPs, else LUTs
    std::int64_t dsp = 0, lut = 0, ff = 0, bram18 = 0;
    std::int64_t cycles = 0;
};

struct HlsEstimate {
    std::vector<LayerEstimate> layers;
    std::int64_t dsp = 0, lut = 0, ff = 0, bram18 = 0, cycles = 0;
    double clockMhz = 0, latencyUs = 0;
    int reuseFactor = 1;
    HlsPart part;

    nlohmann::json toJson() const;
    /// The table printed by the CLI and written into the export's README.
    std::string text() const;
};

/// reuseFactor >= 1, clockMhz > 0 (InputError otherwise).
HlsEstimate estimateHls(const IntegerReference &ref, int reuseFactor, double clockMhz, const HlsPart &part);

} // namespace braggnac::core
