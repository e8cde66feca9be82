// braggnac predict: peak centres from a trained model, for a patch file (a copy of it with
// /predicted [N,2]) or a frame file (peak finder, then /predicted and /predicted_frame [N,2]).
#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>
#include <string>
#include <thread>

#include "cli.h"
#include "core/common/error.h"
#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "core/arch/layerplan.h"
#include "core/compress/fixedengine.h"
#include "core/nn/compress.h"
#include "core/nn/model.h"
#include "core/peaks/finder.h"

namespace braggnac::cli {

namespace {

/// True when `path` is an HDF5 file holding /patches (a patch dataset); false for frame files.
bool isPatchFile(const std::string &path, const std::string &dataset)
{
    if (!dataset.empty())
        return false;
    std::vector<core::Hdf5DatasetInfo> list;
    try {
        list = core::listHdf5Datasets(path);
    } catch (const core::InputError &) {
        return false; // not HDF5 (GE, TIFF) or unreadable: the frame reader reports it
    }
    return std::any_of(list.begin(), list.end(),
                       [](const core::Hdf5DatasetInfo &d) { return d.path == "/patches"; });
}

void declarePredict(VerbSpec &v)
{
    v.positional("MODEL", "a model folder").existingFolder().input();
    v.positional("INPUT", "a patch file or a frame file").existingFile().input();
    v.option("out", "OUT.h5", "the patch file to write (with /predicted)").required().output(OutputKind::PatchFile);
    v.option("dataset", "PATH", "HDF5 dataset of the frames (HDF5 frame input only)");
    v.option("dark", "D", "dark frame file, for frame input").existingFile().input();
    v.option("threshold", "T", "absolute peak threshold in counts, for frame input (absent: automatic)")
        .number(0, std::numeric_limits<double>::infinity());
    v.option("frames", "A:B", "frames A to B-1, for frame input (default: all)");
    v.option("batch", "B", "inference batch size").integer(1, 1 << 20).defaultValue("512");
    v.option("engine", "E", "torch: LibTorch float inference; fixed: the fixed-point SIMD engine of a quantised "
                            "model folder (quantization.json, braggnac compress), bit-exact with its integer reference")
        .choices({"torch", "fixed"}).defaultValue("torch");
}

int runPredict(const Args &args)
{
    const std::string modelPath = args.positionalAt(0, "MODEL (a model folder)");
    const std::string input = args.positionalAt(1, "INPUT (a patch file or a frame file)");
    const std::string out = args.required("out");
    const std::string dataset = args.get("dataset");
    const std::string darkPath = args.get("dark");
    const double threshold = args.getDouble("threshold", -1);
    const std::string frames = args.get("frames");
    const int batch = int(args.getInt("batch", 512));
    const std::string engine = args.get("engine", "torch");
    if (args.has("dataset") && !isHdf5File(input))
        throw core::InputError(core::fileMessage(input, "--dataset applies to HDF5 frame files only; this is not HDF5"));

    core::setTorchThreads(args.threads());
    const core::Model model = core::Model::load(modelPath);
    const int size = model.spec().inputSize;
    std::unique_ptr<core::FixedEngine> fixed;
    if (engine == "fixed") {
        if (!core::hasQuantSpec(model))
            throw core::InputError(core::fileMessage(modelPath, "quantization.json: missing or not a quantisation "
                                                                "spec: --engine fixed needs a quantised model folder "
                                                                "(braggnac compress)"));
        fixed = std::make_unique<core::FixedEngine>(
            core::LayerPlan::lower(model.spec()), model.namedParameters(),
            core::modelQuantSpec(model, modelPath + "/quantization.json"));
    }
    const core::Monitor monitor = makeMonitor(args, "predict");
    const auto t0 = std::chrono::steady_clock::now();

    core::PatchDataset data;
    nlohmann::json summary;
    const bool patchFile = isPatchFile(input, dataset);
    if (patchFile) {
        if (!darkPath.empty() || !frames.empty() || args.has("threshold"))
            throw UsageError("--dark, --frames and --threshold apply to frame files only; "
                             + input + " is a patch file");
        data = core::readPatchDataset(input);
        if (data.patchSize != size)
            throw core::InputError(core::fileMessage(
                input, "/patches: patch size " + std::to_string(data.patchSize)
                           + " does not match the model's input size " + std::to_string(size)));
    } else {
        const auto source = core::openFrameSource(input, dataset);
        const auto [first, last] = frameRange(frames, source->frameCount(), input);
        std::unique_ptr<core::Frame> dark;
        if (!darkPath.empty())
            dark = std::make_unique<core::Frame>(core::readDarkFrame(darkPath));
        core::FinderOptions fo;
        fo.threshold = threshold;
        fo.patchSize = size;
        fo.threads = args.threads();
        data = core::findPeaksInSource(*source, first, last, fo, dark.get(), monitor);
        summary["frames"] = last - first;
    }

    const std::size_t n = data.size();
    std::vector<float> predicted;
    if (n > 0 && fixed) {
        const std::vector<double> p = fixed->predict(data.patches.data(), n,
                                                      args.threads() > 0 ? args.threads() : int(std::max(1u, std::thread::hardware_concurrency())));
        predicted.assign(p.begin(), p.end());
    } else if (n > 0) {
        predicted = model.predict(data.patches.data(), n, batch);
    }
    data.extraFloat.erase("/predicted");
    data.extraFloat.erase("/predicted_frame");
    data.extraFloat["/predicted"] = {{n, 2}, predicted};
    if (!patchFile || data.origin.size() == 2 * n) {
        std::vector<float> inFrame(2 * n);
        for (std::size_t i = 0; i < 2 * n; ++i)
            inFrame[i] = predicted[i] + float(data.origin[i]);
        data.extraFloat["/predicted_frame"] = {{n, 2}, std::move(inFrame)};
    }
    core::writePatchDataset(out, data);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    summary["input"] = patchFile ? "patches" : "frames";
    summary["patches"] = n;
    summary["seconds"] = seconds;
    summary["engine"] = engine;
    if (fixed)
        summary["fixed_engine"] = {{"isa", core::FixedEngine::isaName(fixed->isa())}, {"vectorised", fixed->vectorised()},
                                   {"fallback", fixed->fallbackReason()}};
    if (args.json())
        printJson(summary);
    else
        info("predicted " + std::to_string(n) + " centres"
             + (patchFile ? std::string() : " for the peaks of " + std::to_string(summary["frames"].get<int>()) + " frames")
             + "; written to " + out);
    return 0;
}

const VerbRegistrar registrar(
    "predict",
    "centres for a patch file (a copy with /predicted [N,2]) or for every peak the finder sees in "
    "a frame file (patches + /predicted + /predicted_frame [N,2] frame coordinates); --json: "
    "{\"input\", \"patches\", \"frames\", \"seconds\"}",
    &declarePredict, &runPredict);

} // namespace

} // namespace braggnac::cli
