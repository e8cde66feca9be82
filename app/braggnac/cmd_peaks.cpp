// braggnac peaks: find Bragg peaks in detector frames and write unlabelled patches.
#include <algorithm>
#include <chrono>
#include <limits>
#include <string>

#include "cli.h"
#include "core/common/error.h"
#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "core/peaks/finder.h"

namespace braggnac::cli {

namespace {

void declarePeaks(VerbSpec &v)
{
    v.positional("FRAMES", "a frame file (GE, TIFF or HDF5)").existingFile().input();
    v.option("out", "P.h5", "the patch file to write").required().output(OutputKind::PatchFile);
    v.option("dataset", "PATH", "HDF5 dataset of the frames (HDF5 input only)").defaultValue("/entry/data/data");
    v.option("dark", "D", "dark frame file (a stack is averaged)").existingFile().input();
    v.option("dark-dataset", "PATH", "HDF5 dataset of the dark (HDF5 dark only)");
    v.option("threshold", "T", "absolute threshold in counts (absent: median + auto-sigma x robust sigma)")
        .number(0, std::numeric_limits<double>::infinity());
    v.option("auto-sigma", "K", "automatic threshold in robust sigmas above the median")
        .number(0, 1e6, true).defaultValue("5");
    v.option("min-pixels", "N", "smallest peak (pixels above threshold)").integer(1, 100000000).defaultValue("3");
    v.option("max-pixels", "N", "largest peak").integer(1, 100000000).defaultValue("2500");
    v.option("patch-size", "S", "patch size in pixels").integer(1, 255).oddOnly().defaultValue("11");
    v.option("frames", "A:B", "frames A to B-1 (also A:, :B, or one frame A; default: all)");
    v.option("split", "MODE", "prominence: one peak per prominent local maximum; none: one per connected component (BraggNN's pipeline)")
        .choices({"prominence", "none"})
        .defaultValue("prominence");
    v.option("min-separation", "PX", "smallest distance between two split peaks").number(0, 1000).defaultValue("2.5");
    v.option("prominence-fraction", "F", "a split maximum stands at least F x its height above its saddle").number(0, 1).defaultValue("0.1");
    v.option("prominence-sigma", "K", "... and at least K x the noise of that difference").number(0, 1e6).defaultValue("4");
    v.option("gain", "G", "counts per photon for the noise model (0: background noise only)").number(0, 1e9).defaultValue("1");
    v.option("shoulder-sigma", "K", "shoulder search threshold in noise sigmas (0: no shoulder search)").number(0, 1e6).defaultValue("4");
    v.option("saturation", "V", "detector saturation in counts (0: none; absent: automatic)").number(0, 1e30);
    v.flag("no-mask", "keep other peaks' pixels in a patch (default: masked)");
    v.flag("no-compress", "write the datasets uncompressed");
}

int runPeaks(const Args &args)
{
    const std::string input = args.positionalAt(0, "FRAMES (a frame file)");
    const std::string out = args.required("out");
    const std::string dataset = args.get("dataset");
    const std::string darkPath = args.get("dark");
    const std::string darkDataset = args.get("dark-dataset");
    const std::string range = args.get("frames");
    core::FinderOptions o;
    o.threshold = args.getDouble("threshold", o.threshold);
    o.autoSigma = args.getDouble("auto-sigma", o.autoSigma);
    o.minPixels = int(args.getInt("min-pixels", o.minPixels));
    o.maxPixels = int(args.getInt("max-pixels", o.maxPixels));
    o.patchSize = int(args.getInt("patch-size", o.patchSize));
    o.maskOthers = !args.flag("no-mask");
    o.split = args.get("split", "prominence") == "none" ? core::SplitMode::None : core::SplitMode::Prominence;
    o.minSeparation = args.getDouble("min-separation", o.minSeparation);
    o.prominenceFraction = args.getDouble("prominence-fraction", o.prominenceFraction);
    o.prominenceSigma = args.getDouble("prominence-sigma", o.prominenceSigma);
    o.gain = args.getDouble("gain", o.gain);
    o.shoulderSigma = args.getDouble("shoulder-sigma", o.shoulderSigma);
    o.saturation = args.getDouble("saturation", o.saturation);
    o.threads = args.threads();
    const bool compress = !args.flag("no-compress");
    o.validate("peaks");
    if (o.maxPixels < o.minPixels)
        throw UsageError("--min-pixels/--max-pixels: expected min <= max, got "
                         + std::to_string(o.minPixels) + " > " + std::to_string(o.maxPixels));
    if (args.has("dataset") && !isHdf5File(input))
        throw core::InputError(core::fileMessage(input, "--dataset applies to HDF5 frame files only; this is not HDF5"));
    if (args.has("dark-dataset") && darkPath.empty())
        throw UsageError("--dark-dataset needs --dark");
    if (args.has("dark-dataset") && !isHdf5File(darkPath))
        throw core::InputError(core::fileMessage(darkPath, "--dark-dataset applies to HDF5 dark files only; this is not HDF5"));

    const auto source = core::openFrameSource(input, dataset);
    const auto [first, last] = frameRange(range, source->frameCount(), input);
    core::Frame dark;
    if (!darkPath.empty()) {
        dark = core::readDarkFrame(darkPath, darkDataset);
        if (dark.rows != source->rows() || dark.cols != source->cols())
            throw core::InputError(core::fileMessage(
                darkPath, "dark frame is " + std::to_string(dark.rows) + " x " + std::to_string(dark.cols)
                              + " but the frames of " + input + " are " + std::to_string(source->rows())
                              + " x " + std::to_string(source->cols())));
    }

    const auto start = std::chrono::steady_clock::now();
    const core::PatchDataset data = core::findPeaksInSource(
        *source, first, last, o, darkPath.empty() ? nullptr : &dark, makeMonitor(args, "peaks"));
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    endProgress();
    core::writePatchDataset(out, data, compress);

    const int frames = last - first;
    const auto countFlag = [&](const char *name) {
        const auto it = data.extraFlags.find(name);
        return it == data.extraFlags.end() ? 0L : long(std::count(it->second.begin(), it->second.end(), 1));
    };
    const double fps = elapsed > 0 ? frames / elapsed : 0.0;
    if (args.json()) {
        printJson({{"frames", frames},
                   {"peaks", data.size()},
                   {"frames_per_s", fps},
                   {"border", countFlag("/flags/border")},
                   {"merged", countFlag("/flags/merged")},
                   {"neighbour", countFlag("/flags/neighbour")},
                   {"shoulder", countFlag("/flags/shoulder")},
                   {"saturated", countFlag("/flags/saturated")},
                   {"out", out}});
    } else {
        info("found " + std::to_string(data.size()) + " peaks in " + std::to_string(frames)
             + " frames (" + std::to_string(int(fps + 0.5)) + " frames/s; "
             + std::to_string(countFlag("/flags/border")) + " at the border, "
             + std::to_string(countFlag("/flags/merged")) + " merged); patches in " + out);
    }
    return 0;
}

const VerbRegistrar registrar(
    "peaks",
    "find peaks (threshold -- absolute, or median + auto-sigma x robust sigma -- then 8-connected "
    "components) in frames A to B-1 and write one unlabelled patch per peak with /origin, "
    "/frame_index, /flags/border, /flags/merged, /peaks/*; a multi-frame dark is averaged; "
    "--json: {\"frames\", \"peaks\", \"frames_per_s\", ...}",
    &declarePeaks, &runPeaks);

} // namespace

} // namespace braggnac::cli
