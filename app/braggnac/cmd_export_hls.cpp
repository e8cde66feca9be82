// braggnac export-hls: a Vitis-HLS project (hls4ml layout) of a (quantised) model, with an
// optional bit-exact C simulation check against the integer reference and an analytic estimate.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/common/error.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "core/hls/hlscheck.h"
#include "core/hls/hlsexport.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"

namespace braggnac::cli {

namespace {

void declareExportHls(VerbSpec &v)
{
    v.positional("MODEL", "a model folder (quantised, or exported at ap_fixed<16,6>)").existingFolder().input();
    v.option("out", "DIR", "the HLS project folder to write").required();
    v.option("check", "DATA", "patch file: run the C simulation on N patches and compare with the integer reference").existingFile().input();
    v.option("n", "N", "patches for --check").integer(1, 1000000).defaultValue("100");
    v.option("reuse-factor", "R", "multiplications per multiplier").integer(1, 4096).defaultValue("1");
    v.option("clock-mhz", "C", "target clock").number(1, 2000).defaultValue("200");
    v.option("part", "P", "FPGA part").choices({"xcu250", "xcu55c", "xczu7ev", "xc7z020"}).defaultValue("xcu250");
    v.option("io-type", "T", "interface").choices({"io_parallel"}).defaultValue("io_parallel");
    v.flag("force", "replace an existing non-empty --out folder (written to a temporary folder, then renamed)");
}

int runExportHls(const Args &args)
{
    const std::string modelPath = args.positionalAt(0, "MODEL (a model folder)");
    const std::string out = args.required("out");
    core::HlsOptions opt;
    opt.reuseFactor = int(args.getInt("reuse-factor", 1));
    opt.clockMhz = args.getDouble("clock-mhz", 200.0);
    opt.part = args.get("part", "xcu250");
    opt.ioType = args.get("io-type", "io_parallel");
    const std::string checkPath = args.get("check");
    const std::size_t nWanted = std::size_t(args.getInt("n", 100));
    args.finish(1);
    // --out is replaced as a whole (with --force): never a folder holding an input of the run.
    {
        namespace fs = std::filesystem;
        const std::string o = fs::weakly_canonical(fs::absolute(out)).string() + "/";
        for (const std::string &in : {modelPath, checkPath})
            if (!in.empty() && (fs::weakly_canonical(fs::absolute(in)).string() + "/").rfind(o, 0) == 0)
                throw core::InputError(core::fileMessage(out, "holds an input of the run (" + in + "); choose another --out"));
    }

    const core::Model model = core::Model::load(modelPath);
    const core::LayerPlan plan = core::LayerPlan::lower(model.spec());
    core::checkHlsSupported(plan);
    core::QuantSpec spec;
    if (model.quantization.is_null()) {
        opt.defaultPrecision = true;
        spec = core::defaultHlsQuantSpec(plan);
    } else {
        spec = core::QuantSpec::fromJson(model.quantization, plan, modelPath + "/quantization.json");
    }
    const core::IntegerReference ref(plan, model.namedParameters(), spec);

    core::PatchDataset data;
    std::size_t n = 0;
    if (!checkPath.empty()) {
        data = core::readPatchDataset(checkPath);
        n = core::hlsCheckPatchCount(data, plan.spec.inputSize, nWanted, checkPath); // before anything is written
    }
    const core::HlsEstimate est = core::exportHls(ref, opt, out, args.force(), n ? data.patches.data() : nullptr, n);
    if (opt.defaultPrecision)
        info("note: " + modelPath + " was never quantised: exported at ap_fixed<16,6> (AP_RND, AP_SAT)");

    nlohmann::json j;
    j["out"] = out;
    j["default_precision"] = opt.defaultPrecision;
    j["estimate"] = est.toJson();
    int rc = 0;
    if (n > 0) {
        // core/hls/hlscheck.h: the C simulation (Ctrl-C ends it) against the integer reference.
        core::HlsCheck check;
        try {
            check = core::checkHlsExport(out, ref, data, n, makeMonitor(args, "export-hls"), checkPath);
        } catch (const core::CancelledError &) {
            // The project is already complete in `out` (written and renamed before the check);
            // the generic "nothing written" would be wrong here.
            endProgress();
            std::cerr << "braggnac export-hls: interrupted during the C-simulation check; the project in " << out
                      << " is written but unchecked (run export-hls --check again, or build_csim.sh there)\n";
            return 1;
        }
        endProgress();
        j["check"] = check.toJson();
        if (!check.passed())
            rc = 1;
    }
    if (args.json()) {
        printJson(j);
    } else {
        info("wrote " + out);
        std::fputs(est.text().c_str(), stderr);
        if (j.contains("check")) {
            const auto &c = j["check"];
            char buf[200];
            std::snprintf(buf, sizeof buf, "C simulation vs integer reference: %zu patches, %zu mismatching outputs",
                          c["n"].get<std::size_t>(), c["mismatches"].get<std::size_t>());
            std::string line = buf;
            if (!c["mean_distance"].is_null()) {
                std::snprintf(buf, sizeof buf, "; mean distance to the labels %.4f px", c["mean_distance"].get<double>());
                line += buf;
            }
            info(line);
        }
    }
    return rc;
}

const VerbRegistrar registrar(
    "export-hls",
    "Vitis-HLS project (hls4ml layout, build_prj.tcl, build_csim.sh) with an analytic resource/latency estimate; "
    "--check DATA: g++ C simulation compared bit for bit with the integer reference; --json: "
    "{\"check\":{\"n\",\"mismatches\",\"mean_distance\"},\"estimate\":{...}}",
    &declareExportHls, &runExportHls);

} // namespace

} // namespace braggnac::cli
