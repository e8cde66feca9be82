// braggnac import-braggnn: the public BraggNN frames + label files to our patch format.
#include <string>

#include "cli.h"
#include "core/io/patchdataset.h"

namespace braggnac::cli {

namespace {

int runImportBraggNN(const Args &args)
{
    const std::string frames = args.required("frames");
    const std::string labels = args.required("labels");
    const std::string out = args.required("out");
    const long long patchSize = args.getInt("patch-size", 11);
    const bool compress = !args.flag("no-compress");
    args.finish(0);
    if (patchSize < 3 || patchSize > 255 || patchSize % 2 == 0)
        throw UsageError("--patch-size: expected an odd size from 3 to 255, got "
                         + std::to_string(patchSize));
    checkOutputFolder(out); // refuse before reading the frames, not when writing at the end

    core::BraggNNImportStats stats;
    const core::PatchDataset data = core::importBraggNN(frames, labels, int(patchSize), &stats);
    core::writePatchDataset(out, data, compress);

    if (args.json()) {
        printJson({{"patches", stats.kept},
                   {"skipped_border", stats.skippedBorder},
                   {"skipped_filter", stats.skippedFilter}});
    } else {
        info("imported " + std::to_string(stats.kept) + " patches (" + std::to_string(patchSize)
             + " x " + std::to_string(patchSize) + ") to " + out + "; skipped "
             + std::to_string(stats.skippedFilter) + " by the npeaks/deviations filter, "
             + std::to_string(stats.skippedBorder) + " at the frame border");
    }
    return 0;
}

const VerbRegistrar registrar(
    "import-braggnn",
    "import-braggnn --frames F.h5 --labels L.h5 --out P.h5 [--patch-size 11] [--no-compress] [--json]",
    "BraggNN public data (frames /frames + peak_fidx/peak_row/peak_col/npeaks/deviations labels) "
    "to a patch dataset; --json: {\"patches\", \"skipped_border\", \"skipped_filter\"}",
    &runImportBraggNN);

} // namespace

} // namespace braggnac::cli
