// braggnac fit: pseudo-Voigt labels for a patch file (docs/fitting.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "cli.h"
#include "core/common/error.h"
#include "core/io/patchdataset.h"
#include "core/peaks/fitter.h"

#include <nlohmann/json.hpp>

namespace braggnac::cli {

namespace {

void declareFit(VerbSpec &v)
{
    v.positional("P.h5", "a patch file (HDF5 /patches)").existingFile().input();
    v.option("out", "L.h5", "the labelled patch file to write").required().output(OutputKind::PatchFile);
    v.option("max-iterations", "N", "Levenberg-Marquardt iterations per patch").integer(1, 100000).defaultValue("100");
    v.option("tolerance", "T", "relative convergence tolerance").number(0, 1, true, true).defaultValue("1e-8");
    v.option("neighbours", "MODE", "how a second, partly visible peak is handled")
        .choices({"two-peak", "mask", "ignore"}).defaultValue("two-peak");
    v.flag("unweighted", "skip the Poisson-weighted continuation of one-peak fits (weights 1 / (gain * model + read-noise^2), on by default)");
    v.option("gain", "G", "counts per detected photon (noise model)").number(0, 1e9, true, false).defaultValue("1");
    v.option("read-noise", "R", "read noise in counts (noise model)").number(0, 1e9, false, false).defaultValue("3");
    v.option("saturation", "S", "leave out pixels >= S counts (0 none; default: /peaks/saturation when present)").number(0, 1e30, false, false);
    v.option("max-stderr", "PX", "train only on converged patches whose centre standard error is <= PX (default: 3x the median, clamped to 0.05-0.5 px)").number(0, 1e6, true, false);
    v.flag("no-compress", "write the datasets uncompressed");
}

int runFit(const Args &args)
{
    const std::string input = args.positionalAt(0, "P.h5 (a patch file)");
    const std::string out = args.required("out");
    core::FitOptions o;
    o.maxIterations = int(args.getInt("max-iterations", o.maxIterations));
    o.tolerance = args.getDouble("tolerance", o.tolerance);
    const std::string neighbours = args.get("neighbours", "two-peak");
    o.threads = args.threads();
    o.poissonWeights = !args.flag("unweighted");
    o.gain = args.getDouble("gain", o.gain);
    o.readNoise = args.getDouble("read-noise", o.readNoise);
    if (args.has("saturation"))
        o.saturation = args.getDouble("saturation", 0);
    const double maxStderr = args.has("max-stderr") ? args.getDouble("max-stderr", 0) : 0.0;
    const bool compress = !args.flag("no-compress");
    if (neighbours == "mask")
        o.neighbours = core::NeighbourHandling::Mask;
    else if (neighbours == "ignore")
        o.neighbours = core::NeighbourHandling::Ignore;
    else
        o.neighbours = core::NeighbourHandling::TwoPeak;

    core::PatchDataset data = core::readPatchDataset(input);
    if (data.patchSize < 3 || data.patchSize > 255 || data.patchSize % 2 == 0)
        throw core::InputError(core::fileMessage(
            input, "attribute patch_size: expected an odd size from 3 to 255 (a patch is "
                   "centred on a pixel), got " + std::to_string(data.patchSize)));
    if (data.size() == 0)
        throw core::InputError(core::fileMessage(input, "/patches holds no patches to fit"));

    const auto start = std::chrono::steady_clock::now();
    const std::vector<core::FitResult> fits = core::fitPatches(data, o, makeMonitor(args, "fit"));
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    endProgress();
    const double threshold = core::applyFitLabels(data, fits, maxStderr);
    core::writePatchDataset(out, data, compress);

    const long converged =
        long(std::count_if(fits.begin(), fits.end(), [](const core::FitResult &f) {
            return f.converged;
        }));
    const double rate = elapsed > 0 ? double(fits.size()) / elapsed : 0.0;
    long byStatus[5] = {0, 0, 0, 0, 0};
    for (const core::FitResult &f : fits)
        ++byStatus[int(f.status) % 5];
    const auto &usableFlags = data.extraFlags.at("/fit/usable");
    const long usable = long(std::count(usableFlags.begin(), usableFlags.end(), std::uint8_t(1)));
    if (args.json()) {
        nlohmann::json statuses;
        for (int s = 0; s < 5; ++s)
            statuses[core::fitStatusName(core::FitStatus(s))] = byStatus[s];
        printJson({{"patches", fits.size()},
                   {"converged", converged},
                   {"status", statuses},
                   {"usable", usable},
                   {"stderr_threshold_px", threshold},
                   {"patches_per_s", rate},
                   {"out", out}});
    } else {
        char line[256];
        std::snprintf(line, sizeof line,
                      "fitted %zu patches (%ld converged, %.1f%%) at %.0f patches/s; labels in ",
                      fits.size(), converged, 100.0 * converged / double(fits.size()), rate);
        info(line + out);
        std::snprintf(line, sizeof line,
                      "status: %ld converged, %ld max-iterations, %ld singular, %ld bounds, %ld "
                      "too-faint; %ld usable for training (converged, centre standard error <= "
                      "%.3f px), %ld excluded",
                      byStatus[0], byStatus[1], byStatus[2], byStatus[3], byStatus[4], usable,
                      threshold, long(fits.size()) - usable);
        info(line);
    }
    return 0;
}

const VerbRegistrar registrar(
    "fit",
    "Levenberg-Marquardt pseudo-Voigt fit of every patch: writes /centers (the best estimate "
    "of every patch; label_source=pseudo-voigt), /fit/params [N,10], /fit/status, "
    "/fit/converged, /fit/center_stderr [N,2], /fit/usable (what train uses), /fit/residual "
    "(rms); --json: {\"patches\", \"converged\", \"status\", \"usable\", "
    "\"stderr_threshold_px\", \"patches_per_s\", \"out\"}; --neighbours: how a second, partly visible peak is handled (docs/fitting.md)",
    &declareFit, &runFit);

} // namespace

} // namespace braggnac::cli
