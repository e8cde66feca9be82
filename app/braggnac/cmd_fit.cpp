// braggnac fit: pseudo-Voigt labels for a patch file (docs/fitting.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli.h"
#include "core/common/error.h"
#include "core/io/patchdataset.h"
#include "core/peaks/fitter.h"

namespace braggnac::cli {

namespace {

int runFit(const Args &args)
{
    const std::string input = args.positionalAt(0, "P.h5 (a patch file)");
    const std::string out = args.required("out");
    core::FitOptions o;
    const long long maxIterations = args.getInt("max-iterations", o.maxIterations);
    o.tolerance = args.getDouble("tolerance", o.tolerance);
    const std::string neighbours = args.get("neighbours", "two-peak");
    o.threads = args.threads();
    const bool compress = !args.flag("no-compress");
    args.finish(1);
    if (maxIterations < 1 || maxIterations > 100000)
        throw UsageError("--max-iterations: expected 1 to 100000, got "
                         + std::to_string(maxIterations));
    o.maxIterations = int(maxIterations);
    if (neighbours == "two-peak")
        o.neighbours = core::NeighbourHandling::TwoPeak;
    else if (neighbours == "mask")
        o.neighbours = core::NeighbourHandling::Mask;
    else if (neighbours == "ignore")
        o.neighbours = core::NeighbourHandling::Ignore;
    else
        throw UsageError("--neighbours: expected two-peak, mask or ignore, got '" + neighbours
                         + "'");
    if (!(o.tolerance > 0 && o.tolerance < 1))
        throw UsageError("--tolerance: expected a number in (0, 1)");
    if (o.threads < 0)
        throw UsageError("--threads: expected a number >= 0");

    // Fail before the fit, not after it, when the output cannot be written.
    const std::filesystem::path parent = std::filesystem::path(out).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent))
        throw core::InputError(core::fileMessage(
            out, "output directory '" + parent.string() + "' does not exist"));

    core::PatchDataset data = core::readPatchDataset(input);
    if (data.patchSize < 3 || data.patchSize > 255)
        throw core::InputError(core::fileMessage(
            input, "attribute patch_size: expected 3 to 255 for fitting, got "
                       + std::to_string(data.patchSize)));
    if (data.size() == 0)
        throw core::InputError(core::fileMessage(input, "/patches holds no patches to fit"));

    const auto start = std::chrono::steady_clock::now();
    const std::vector<core::FitResult> fits = core::fitPatches(data, o, makeMonitor(args, "fit"));
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    endProgress();
    core::applyFitLabels(data, fits);
    core::writePatchDataset(out, data, compress);

    const long converged =
        long(std::count_if(fits.begin(), fits.end(), [](const core::FitResult &f) {
            return f.converged;
        }));
    const double rate = elapsed > 0 ? double(fits.size()) / elapsed : 0.0;
    if (args.json()) {
        printJson({{"patches", fits.size()},
                   {"converged", converged},
                   {"patches_per_s", rate},
                   {"out", out}});
    } else {
        char line[256];
        std::snprintf(line, sizeof line,
                      "fitted %zu patches (%ld converged, %.1f%%) at %.0f patches/s; labels in ",
                      fits.size(), converged, 100.0 * converged / double(fits.size()), rate);
        info(line + out);
    }
    return 0;
}

const VerbRegistrar registrar(
    "fit",
    "fit P.h5 --out L.h5 [--max-iterations 100] [--tolerance 1e-8] [--neighbours two-peak|mask|ignore] "
    "[--no-compress] [--threads N] [--json]",
    "Levenberg-Marquardt pseudo-Voigt fit of every patch: writes /centers (fitted centre of "
    "converged patches, the patch centre otherwise; label_source=pseudo-voigt), /fit/params "
    "[N,10], /fit/converged, /fit/residual (rms); --json: {\"patches\", \"converged\", "
    "\"patches_per_s\", \"out\"}; --neighbours: how a second, partly visible peak is handled (docs/fitting.md)",
    &runFit);

} // namespace

} // namespace braggnac::cli
