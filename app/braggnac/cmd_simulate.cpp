// braggnac simulate frames|patches: synthetic detector frames with a ground-truth peak list, or
// labelled synthetic patches.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <limits>
#include <string>

#include "cli.h"
#include "core/io/patchdataset.h"
#include "core/sim/simulator.h"

namespace braggnac::cli {

namespace {

std::string lowerExtension(const std::string &path)
{
    const auto slash = path.find_last_of('/');
    const auto dot = path.find_last_of('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash))
        return {};
    std::string ext = path.substr(dot + 1);
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return ext;
}

std::string formatOfExtension(const std::string &out)
{
    const std::string ext = lowerExtension(out);
    if (ext == "h5" || ext == "hdf5" || ext == "nxs")
        return "h5";
    if (ext == "tif" || ext == "tiff")
        return "tiff";
    if (ext.size() >= 2 && ext[0] == 'g' && ext[1] == 'e')
        return "ge2";
    return {};
}

/// The format follows the extension; --format, when given, must agree with a known extension.
core::SimFormat parseFormat(const std::string &given, const std::string &out)
{
    const std::string byExtension = formatOfExtension(out);
    std::string f = given == "hdf5" ? "h5" : given == "ge" ? "ge2" : given == "tif" ? "tiff" : given;
    if (f.empty()) {
        if (byExtension.empty())
            throw UsageError("cannot tell the format of '" + out
                             + "' from its extension (.h5, .ge2, .tiff); give --format h5|ge2|tiff");
        f = byExtension;
    } else if (!byExtension.empty() && byExtension != f) {
        throw UsageError("--format " + given + " disagrees with the extension of '" + out
                         + "' (which says " + byExtension + "); rename the output or drop --format");
    }
    if (f == "ge2")
        return core::SimFormat::GE2;
    if (f == "tiff")
        return core::SimFormat::TIFF;
    return core::SimFormat::HDF5;
}

double seconds(std::chrono::steady_clock::time_point since)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

void declareFrames(VerbSpec &v)
{
    v.option("out", "F", "the frame file to write (.h5, .ge2 or .tiff)").required().output(OutputKind::SimulatedFrames);
    v.option("format", "FORMAT", "file format (must agree with the extension)")
        .choices({"h5", "hdf5", "ge2", "ge", "tiff", "tif"});
    v.option("frames", "N", "number of frames").integer(1, 100000).defaultValue("10");
    v.option("size", "PX", "frame size (frames are PX x PX; GE: 2048)").integer(8, 16384).defaultValue("2048");
    v.option("peaks", "P", "peaks per frame").integer(0, 1000000).defaultValue("300");
    v.option("close-fraction", "F", "fraction of peaks placed 2-5 px from another").number(0, 0.5).defaultValue("0.05");
    v.option("background", "B", "mean smooth background (counts)").number(0, 1e9).defaultValue("20");
    v.option("read-noise", "R", "Gaussian read noise (counts)").number(0, 1e9).defaultValue("3");
    v.option("saturation", "S", "saturation level in counts (0: none)").number(0, 1e12).defaultValue("16383");
    v.option("amplitude-min", "A", "smallest peak amplitude (counts)").number(0, 1e12, true).defaultValue("50");
    v.option("amplitude-max", "A", "largest peak amplitude (counts)").number(0, 1e12, true).defaultValue("50000");
}

int simulateFrames(const Args &args)
{
    core::FrameSimOptions o;
    const std::string out = args.required("out");
    const core::SimFormat format = parseFormat(args.get("format"), out);
    const long long frames = args.getInt("frames", 10);
    const long long size = args.getInt("size", 2048);
    const long long peaks = args.getInt("peaks", o.peaksPerFrame);
    o.amplitudeMin = args.getDouble("amplitude-min", o.amplitudeMin);
    o.amplitudeMax = args.getDouble("amplitude-max", o.amplitudeMax);
    o.closePairFraction = args.getDouble("close-fraction", o.closePairFraction);
    o.background = args.getDouble("background", o.background);
    o.readNoise = args.getDouble("read-noise", o.readNoise);
    o.saturation = args.getDouble("saturation", o.saturation);
    o.seed = args.seed(1);
    o.threads = args.threads();
    if (format == core::SimFormat::GE2 && size != 2048)
        throw UsageError("--size: GE frames are 2048 x 2048, got " + std::to_string(size));
    if (o.amplitudeMax < o.amplitudeMin)
        throw UsageError("--amplitude-min/--amplitude-max: expected min <= max");
    o.size = int(size);
    o.peaksPerFrame = int(peaks);
    if (format != core::SimFormat::HDF5)
        checkOutputPath(args, out + ".truth.h5", OutputKind::TruthFile, "--out (its F.truth.h5 sidecar)");

    const auto start = std::chrono::steady_clock::now();
    const core::SimulatedFrames sim = core::simulateFrames(int(frames), o, makeMonitor(args, "simulate"));
    endProgress();
    core::writeSimulatedFrames(out, sim, format);
    const std::string truth = format == core::SimFormat::HDF5 ? out : out + ".truth.h5";
    const auto closePairs = std::count_if(sim.truth.begin(), sim.truth.end(),
                                          [](const core::TruthPeak &t) { return t.closePair; });
    if (args.json()) {
        printJson({{"frames", frames},
                   {"peaks", sim.truth.size()},
                   {"close_pair_peaks", closePairs},
                   {"size", size},
                   {"out", out},
                   {"truth", truth},
                   {"seconds", seconds(start)}});
    } else {
        info("wrote " + std::to_string(frames) + " frames (" + std::to_string(size) + " x "
             + std::to_string(size) + ", " + std::to_string(sim.truth.size()) + " peaks) to " + out
             + "; truth in " + truth);
    }
    return 0;
}

void declarePatches(VerbSpec &v)
{
    v.option("out", "P.h5", "the patch file to write").required().output(OutputKind::PatchFile);
    v.option("n", "N", "number of patches").integer(1, 100000000).defaultValue("10000");
    v.option("patch-size", "S", "patch size in pixels").integer(3, 255).oddOnly().defaultValue("11");
    v.option("regime", "R", "easy: today's clean patches; realistic: like detector data (faint peaks down to "
             "~30 counts on backgrounds up to 30, centres up to 1.5 px off, widths 0.6-2.2 px, pixel-integrated, "
             "15 % with a neighbour; docs/fitting.md)")
        .choices({"easy", "realistic"})
        .defaultValue("easy");
    v.flag("no-compress", "write the datasets uncompressed");
}

int simulatePatches(const Args &args)
{
    core::PatchSimOptions o = args.get("regime", "easy") == "realistic" ? core::PatchSimOptions::realistic()
                                                                        : core::PatchSimOptions::easy();
    const std::string out = args.required("out");
    const long long n = args.getInt("n", 10000);
    const long long patchSize = args.getInt("patch-size", o.patchSize);
    o.seed = args.seed(1);
    const bool compress = !args.flag("no-compress");
    o.patchSize = int(patchSize);

    const auto start = std::chrono::steady_clock::now();
    const core::PatchDataset data = core::simulatePatches(std::size_t(n), o, makeMonitor(args, "simulate"));
    endProgress();
    core::writePatchDataset(out, data, compress);
    if (args.json())
        printJson({{"patches", data.size()}, {"patch_size", patchSize}, {"regime", args.get("regime", "easy")}, {"out", out},
                   {"seconds", seconds(start)}});
    else
        info("wrote " + std::to_string(data.size()) + " labelled patches (" + std::to_string(patchSize)
             + " x " + std::to_string(patchSize) + ") to " + out);
    return 0;
}

const VerbRegistrar framesRegistrar(
    "simulate frames",
    "synthetic HEDM-like frames with their ground-truth peaks (/truth/* in the HDF5 file, or a "
    "F.truth.h5 sidecar for ge2/tiff); the format follows the extension; --json: {\"frames\", "
    "\"peaks\", \"out\", \"truth\", ...}",
    &declareFrames, &simulateFrames);

const VerbRegistrar patchesRegistrar(
    "simulate patches",
    "labelled synthetic patches (label_source=simulation); --json: {\"patches\", \"out\", ...}",
    &declarePatches, &simulatePatches);

} // namespace

} // namespace braggnac::cli
