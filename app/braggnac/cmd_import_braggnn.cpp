// braggnac import-braggnn: the public BraggNN frames + label files to our patch format.
#include <string>

#include "cli.h"
#include "core/io/patchdataset.h"

namespace braggnac::cli {

namespace {

void declareImport(VerbSpec &v)
{
    v.option("frames", "F.h5", "BraggNN frames file (/frames)").required().existingFile().input();
    v.option("labels", "L.h5", "BraggNN label file (peak_fidx, peak_row, peak_col, npeaks, deviations)")
        .required().existingFile().input();
    v.option("out", "P.h5", "the patch file to write").required().output(OutputKind::PatchFile);
    v.option("patch-size", "S", "patch size in pixels").integer(3, 255).oddOnly().defaultValue("11");
    v.flag("no-compress", "write the datasets uncompressed");
}

int runImportBraggNN(const Args &args)
{
    const std::string frames = args.required("frames");
    const std::string labels = args.required("labels");
    const std::string out = args.required("out");
    const long long patchSize = args.getInt("patch-size", 11);
    const bool compress = !args.flag("no-compress");

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
    "BraggNN public data (frames /frames + peak_fidx/peak_row/peak_col/npeaks/deviations labels) "
    "to a patch dataset; --json: {\"patches\", \"skipped_border\", \"skipped_filter\"}",
    &declareImport, &runImportBraggNN);

} // namespace

} // namespace braggnac::cli
