// braggnac simulate frames|patches: synthetic detector frames with a ground-truth peak list, or
// labelled synthetic patches.
#include <algorithm>
#include <cctype>
#include <chrono>
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

core::SimFormat parseFormat(const std::string &name, const std::string &out)
{
    std::string f = name;
    if (f.empty()) {
        const std::string ext = lowerExtension(out);
        if (ext == "h5" || ext == "hdf5" || ext == "nxs")
            f = "h5";
        else if (ext == "tif" || ext == "tiff")
            f = "tiff";
        else if (ext.size() >= 2 && ext[0] == 'g' && ext[1] == 'e')
            f = "ge2";
        else
            throw UsageError("cannot tell the format of '" + out
                             + "' from its extension; give --format h5|ge2|tiff");
    }
    if (f == "h5" || f == "hdf5")
        return core::SimFormat::HDF5;
    if (f == "ge2" || f == "ge")
        return core::SimFormat::GE2;
    if (f == "tiff" || f == "tif")
        return core::SimFormat::TIFF;
    throw UsageError("--format: expected h5, ge2 or tiff, got '" + f + "'");
}

double seconds(std::chrono::steady_clock::time_point since)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
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
    args.finish(1);
    if (frames < 1 || frames > 100000)
        throw UsageError("--frames: expected 1 to 100000, got " + std::to_string(frames));
    if (size < 8 || size > 16384)
        throw UsageError("--size: expected 8 to 16384, got " + std::to_string(size));
    if (format == core::SimFormat::GE2 && size != 2048)
        throw UsageError("--size: GE frames are 2048 x 2048, got " + std::to_string(size));
    if (peaks < 0 || peaks > 1000000)
        throw UsageError("--peaks: expected 0 to 1000000, got " + std::to_string(peaks));
    if (o.closePairFraction < 0 || o.closePairFraction > 0.5)
        throw UsageError("--close-fraction: expected 0 to 0.5");
    o.size = int(size);
    o.peaksPerFrame = int(peaks);

    checkOutputFolder(out);
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

int simulatePatches(const Args &args)
{
    core::PatchSimOptions o;
    const std::string out = args.required("out");
    const long long n = args.getInt("n", 10000);
    const long long patchSize = args.getInt("patch-size", o.patchSize);
    o.seed = args.seed(1);
    const bool compress = !args.flag("no-compress");
    args.finish(1);
    if (n < 1 || n > 100000000)
        throw UsageError("--n: expected 1 to 100000000, got " + std::to_string(n));
    if (patchSize < 3 || patchSize > 255 || patchSize % 2 == 0)
        throw UsageError("--patch-size: expected an odd size from 3 to 255, got "
                         + std::to_string(patchSize));
    o.patchSize = int(patchSize);

    checkOutputFolder(out);
    const auto start = std::chrono::steady_clock::now();
    const core::PatchDataset data = core::simulatePatches(std::size_t(n), o, makeMonitor(args, "simulate"));
    endProgress();
    core::writePatchDataset(out, data, compress);
    if (args.json())
        printJson({{"patches", data.size()}, {"patch_size", patchSize}, {"out", out},
                   {"seconds", seconds(start)}});
    else
        info("wrote " + std::to_string(data.size()) + " labelled patches (" + std::to_string(patchSize)
             + " x " + std::to_string(patchSize) + ") to " + out);
    return 0;
}

int runSimulate(const Args &args)
{
    const std::string what = args.positionalAt(0, "what to simulate: frames or patches");
    if (what == "frames")
        return simulateFrames(args);
    if (what == "patches")
        return simulatePatches(args);
    throw UsageError("expected 'frames' or 'patches', got '" + what + "'");
}

const VerbRegistrar registrar(
    "simulate",
    "simulate frames --out F [--format h5|ge2|tiff] [--frames 10] [--size 2048] [--peaks 300] "
    "[--seed S] [--close-fraction 0.05] [--background 20] [--read-noise 3] [--saturation 16383] "
    "[--amplitude-min 50] [--amplitude-max 50000] | simulate patches --out P.h5 [--n 10000] "
    "[--patch-size 11] [--seed S] [--no-compress] [--json]",
    "synthetic HEDM-like frames with their ground-truth peaks (/truth/* in the HDF5 file, or a "
    "F.truth.h5 sidecar for ge2/tiff), or labelled synthetic patches (label_source=simulation); "
    "--json: {\"frames\", \"peaks\", \"out\", ...} / {\"patches\", \"out\", ...}",
    &runSimulate);

} // namespace

} // namespace braggnac::cli
