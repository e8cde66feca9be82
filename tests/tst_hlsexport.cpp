// braggnac-test-libs: braggnac_hls braggnac_nn braggnac_sim
// HLS export: an FPGA-friendly network (conv + batch norm + ReLU / LeakyReLU + dense) quantised at
// 8 bits with calibratedQuantSpec is exported and its g++ C simulation matches the integer
// reference bit for bit (through the CLI's --check and through the core API); a changed weight in
// the export makes the check fail; the built-in nac at 8 bits (GELU, layer norm) passes the check;
// the built-in braggnn at 8 bits (attention) passes the check; the project layout (files, pragmas,
// types); pruned weights not stored; --force, an unsupported layer (a 32-bit layer norm) named,
// the default precision.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include <QTemporaryDir>
#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/common/error.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "core/hls/hlsexport.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "core/sim/simulator.h"
#include "tests/hlstestutil.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;
namespace fs = std::filesystem;

namespace {


QStringList qargs(std::initializer_list<std::string> l)
{
    QStringList out;
    for (const auto &s : l)
        out << QString::fromStdString(s);
    return out;
}

} // namespace

class TestHlsExport : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;
    std::string m_model, m_data;
    PatchDataset m_patches;

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        const std::string root = m_dir.path().toStdString();
        PatchSimOptions so;
        so.seed = 5;
        so.threads = 1;
        m_patches = simulatePatches(300, so);
        m_data = root + "/patches.h5";
        writePatchDataset(m_data, m_patches);

        const ArchSpec spec = friendlySpec();
        Model m(spec, 3);
        const LayerPlan plan = LayerPlan::lower(spec);
        QuantSpec q = calibratedQuantSpec(plan, m.namedParameters(), m_patches.patches.data(), 200, 8);
        // One narrow accumulator (wraps) and one truncating output: both paths are exercised.
        q.ops.at("features.b0_l0.conv").accumulator = 18;
        q.ops.at("head.h0.linear").output.rounding = Rounding::Truncate;
        m.quantization = q.toJson();
        m_model = root + "/friendly.model";
        m.save(m_model);
    }

    void checkPassesThroughCli()
    {
        const std::string out = m_dir.path().toStdString() + "/prj";
        const CliResult r = runCli(qargs({"export-hls", m_model, "--out", out, "--check", m_data, "--n", "150",
                                          "--reuse-factor", "2", "--json"}),
                                   300000);
        QVERIFY2(r.finished && r.exitCode == 0, r.err.constData());
        const auto j = nlohmann::json::parse(r.out.toStdString());
        QCOMPARE(j["check"]["n"].get<int>(), 150);
        QCOMPARE(j["check"]["outputs"].get<int>(), 300);
        QCOMPARE(j["check"]["mismatches"].get<int>(), 0);
        QVERIFY(j["check"]["mean_distance"].is_number());
        QVERIFY(j["check"]["mean_distance"].get<double>() > 0.0);
        QCOMPARE(j["estimate"]["reuse_factor"].get<int>(), 2);
        QCOMPARE(j["estimate"]["part"].get<std::string>(), std::string("xcu250"));
        QVERIFY(j["estimate"]["latency_cycles"].get<long long>() > 0);
        // The testbench's own comparison agrees.
        QVERIFY(readText(out + "/tb_data/csim_results.log").size() > 0);
        QVERIFY(fs::exists(out + "/braggnac_net_csim"));
    }

    void layoutGolden()
    {
        const std::string out = m_dir.path().toStdString() + "/prj";
        QVERIFY(fs::exists(out)); // from checkPassesThroughCli
        std::vector<std::string> files;
        for (const auto &e : fs::recursive_directory_iterator(out))
            if (e.is_regular_file() && e.path().filename() != "braggnac_net_csim")
                files.push_back(fs::relative(e.path(), out).string());
        std::sort(files.begin(), files.end());
        const std::vector<std::string> expected = {
            "README.md", "braggnac_net_test.cpp", "build_csim.sh", "build_prj.tcl", "csim_build.log",
            "firmware/ap_types/ap_fixed.h", "firmware/braggnac_net.cpp", "firmware/braggnac_net.h",
            "firmware/defines.h", "firmware/nnet_utils/nnet_layers.h", "firmware/parameters.h",
            "firmware/weights/w0.h", "firmware/weights/w3.h", "firmware/weights/w7.h", "firmware/weights/w9.h",
            "tb_data/csim_results.log", "tb_data/tb_input_features.dat", "tb_data/tb_output_predictions.dat"};
        QCOMPARE(files, expected);
        const std::string top = readText(out + "/firmware/braggnac_net.cpp");
        QVERIFY(top.find("#pragma HLS ARRAY_PARTITION variable=input complete dim=0") != std::string::npos);
        QVERIFY(top.find("nnet::conv2d<input_t, layer0_t, config0>(input, layer0_out, w0, w0_off, w0_start, b0);") != std::string::npos);
        QVERIFY(top.find("nnet::leaky_relu<layer3_t, layer5_t, config5>(layer3_out, layer5_out, slope5);") != std::string::npos);
        QVERIFY(top.find("nnet::dense<layer8_t, layer9_t, config9>(layer8_out, output,") != std::string::npos);
        const std::string tmpl = readText(out + "/firmware/nnet_utils/nnet_layers.h");
        QVERIFY(tmpl.find("#pragma HLS PIPELINE II = CONFIG_T::reuse_factor") != std::string::npos);
        const std::string params = readText(out + "/firmware/parameters.h");
        QVERIFY(params.find("static const unsigned reuse_factor = 2;") != std::string::npos);
        const std::string defs = readText(out + "/firmware/defines.h");
        // Types straight from the quantisation spec.
        const Model m = Model::load(m_model);
        const LayerPlan plan = LayerPlan::lower(m.spec());
        const QuantSpec q = QuantSpec::fromJson(m.quantization, plan, "q");
        QVERIFY(defs.find("typedef " + q.input.hlsType() + " input_t;") != std::string::npos);
        QVERIFY(defs.find("typedef " + q.op("features.stem.conv").weight.hlsType() + " layer0_weight_t;") != std::string::npos);
        QVERIFY(defs.find("typedef " + q.op("head.h0.linear").output.hlsType() + " layer7_t;") != std::string::npos);
        QVERIFY(q.op("head.h0.linear").output.hlsType().find("AP_TRN") != std::string::npos);
        const int fp3 = q.op("features.stem.act").output.fraction() + q.op("features.b0_l0.conv").weight.fraction();
        QVERIFY(defs.find("typedef ap_fixed<18," + std::to_string(18 - fp3)) != std::string::npos);
        QVERIFY(defs.find(",AP_WRAP> layer3_accum_t;") != std::string::npos);
        const std::string tcl = readText(out + "/build_prj.tcl");
        QVERIFY(tcl.find("set_part {xcu250-figd2104-2L-e}") != std::string::npos);
        QVERIFY(tcl.find("create_clock -period 5 -name default") != std::string::npos);
        QVERIFY(tcl.find("csim_design") != std::string::npos && tcl.find("cosim_design") != std::string::npos);
        const std::string readme = readText(out + "/README.md");
        QVERIFY(readme.find("ESTIMATE (analytic model") != std::string::npos);
        const std::string tb = readText(out + "/tb_data/tb_input_features.dat");
        QCOMPARE(std::count(tb.begin(), tb.end(), '\n'), std::ptrdiff_t(150));
    }

    void prunedWeightsSkippedAndCheckCanFail()
    {
        // Zero half the stem's weights: the export stores only the rest, the C simulation still
        // matches; then one changed weight literal makes it differ from the integer reference.
        Model m = Model::load(m_model);
        const LayerPlan plan = LayerPlan::lower(m.spec());
        const QuantSpec q = QuantSpec::fromJson(m.quantization, plan, "q");
        NamedTensors w = m.namedParameters();
        auto &sw = w["features.stem.conv.weight"].values;
        for (std::size_t k = 0; k < sw.size(); k += 2)
            sw[k] = 0.0f;
        const IntegerReference ref(plan, w, q);
        std::int64_t zeros = 0;
        for (auto v : ref.weightsRaw("features.stem.conv"))
            zeros += v == 0;
        QVERIFY(zeros >= 27);
        const std::string out = m_dir.path().toStdString() + "/pruned";
        const std::size_t n = 40;
        const HlsEstimate est = exportHls(ref, HlsOptions{}, out, false, m_patches.patches.data(), n);
        QCOMPARE(est.layers[0].pruned, zeros);
        QCOMPARE(est.layers[0].multipliers, 54 - zeros); // reuse factor 1: one per kept weight
        const std::string w0 = readText(out + "/firmware/weights/w0.h");
        QVERIFY(w0.find("static const layer0_weight_t w0[" + std::to_string(54 - zeros) + "]") != std::string::npos);
        const FixedFormat &fo = ref.format(int(plan.ops.size()) - 1);
        const auto expect = ref.forwardRaw(m_patches.patches.data(), n);
        QCOMPARE(runCsim(out, fo), expect);

        // Tamper: the first bias of the output layer one LSB up.
        const std::string w9path = out + "/firmware/weights/w9.h";
        std::string w9 = readText(w9path);
        const std::size_t at = w9.find("b9[2] = {");
        QVERIFY(at != std::string::npos);
        const auto b = ref.biasRaw("head.out");
        const std::size_t lit = at + std::string("b9[2] = {\n    ").size();
        const std::size_t end = w9.find(',', lit);
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g", std::ldexp(double(b[0] + 64), -q.op("head.out").bias.fraction()));
        w9.replace(lit, end - lit, buf);
        std::ofstream(w9path) << w9;
        QVERIFY(runCsim(out, fo) != expect);
    }

    void forceAndUnsupported()
    {
        const std::string out = m_dir.path().toStdString() + "/existing";
        fs::create_directories(out);
        std::ofstream(out + "/keep.txt") << "x";
        CliResult r = runCli(qargs({"export-hls", m_model, "--out", out}));
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("existing") && r.err.contains("not empty"), r.err.constData());
        QVERIFY(fs::exists(out + "/keep.txt"));
        r = runCli(qargs({"export-hls", m_model, "--out", out, "--force"}));
        QCOMPARE(r.exitCode, 0);
        QVERIFY(!fs::exists(out + "/keep.txt"));
        QVERIFY(fs::exists(out + "/firmware/defines.h"));
        // Never over an input of the run, even with --force.
        r = runCli(qargs({"export-hls", m_model, "--out", m_dir.path().toStdString(), "--force"}));
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("holds an input of the run"), r.err.constData());
        QVERIFY(fs::exists(m_model + "/model.json"));

        // A layer norm over 32-bit formats cannot run in the template's 64-bit integers: refused,
        // naming the op, nothing written.
        ArchSpec wide = friendlySpec();
        wide.head = {{16, Norm::Layer, Activation::ReLU}};
        Model wm(wide, 1);
        const LayerPlan plan = LayerPlan::lower(wide);
        wm.quantization = calibratedQuantSpec(plan, wm.namedParameters(), m_patches.patches.data(), 50, 32).toJson();
        const std::string wideModel = m_dir.path().toStdString() + "/wide.model";
        wm.save(wideModel);
        r = runCli(qargs({"export-hls", wideModel, "--out", m_dir.path().toStdString() + "/wideprj"}));
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("unsupported layer: head.h0.norm (layernorm)"), r.err.constData());
        QVERIFY(!fs::exists(m_dir.path().toStdString() + "/wideprj"));
    }

    void braggnnAt8BitsPassesCheck()
    {
        // The built-in braggnn (conv-attention block: theta/phi/g 1x1 convs, scores, softmax
        // tables and reciprocal, weighted sum, residual add) quantised at 8 bits.
        const ArchSpec bnn = ArchSpec::load(std::string(BRAGGNAC_TEST_DATA) + "/../../resources/arch/braggnn.json");
        Model m(bnn, 2);
        const LayerPlan plan = LayerPlan::lower(bnn);
        m.quantization = calibratedQuantSpec(plan, m.namedParameters(), m_patches.patches.data(), 200, 8).toJson();
        const std::string folder = m_dir.path().toStdString() + "/bnn8.model";
        m.save(folder);
        const std::string out = m_dir.path().toStdString() + "/bnnprj";
        const CliResult r = runCli(qargs({"export-hls", folder, "--out", out, "--check", m_data, "--n", "60", "--json"}), 300000);
        QVERIFY2(r.finished && r.exitCode == 0, r.err.constData());
        const auto j = nlohmann::json::parse(r.out.toStdString());
        QCOMPARE(j["check"]["n"].get<int>(), 60);
        QCOMPARE(j["check"]["mismatches"].get<int>(), 0);
        const std::string top = readText(out + "/firmware/braggnac_net.cpp");
        QVERIFY(top.find("nnet::softmax<") != std::string::npos);
        QVERIFY(top.find("nnet::matmul_qk<") != std::string::npos);
        QVERIFY(top.find("nnet::matmul_sv<") != std::string::npos);
        QVERIFY(top.find("nnet::add<") != std::string::npos);
    }

    void nacAt8BitsPassesCheck()
    {
        // The built-in nac (GELU tables, layer norms, LeakyReLU, batch norms) quantised at 8 bits.
        const ArchSpec nac = ArchSpec::load(std::string(BRAGGNAC_TEST_DATA) + "/../../resources/arch/nac.json");
        Model m(nac, 2);
        const LayerPlan plan = LayerPlan::lower(nac);
        m.quantization = calibratedQuantSpec(plan, m.namedParameters(), m_patches.patches.data(), 200, 8).toJson();
        const std::string folder = m_dir.path().toStdString() + "/nac8.model";
        m.save(folder);
        const std::string out = m_dir.path().toStdString() + "/nacprj";
        const CliResult r = runCli(qargs({"export-hls", folder, "--out", out, "--check", m_data, "--n", "100", "--json"}), 300000);
        QVERIFY2(r.finished && r.exitCode == 0, r.err.constData());
        const auto j = nlohmann::json::parse(r.out.toStdString());
        QCOMPARE(j["check"]["n"].get<int>(), 100);
        QCOMPARE(j["check"]["mismatches"].get<int>(), 0);
        int lnLayers = 0;
        for (const auto &l : j["estimate"]["layers"])
            lnLayers += l["kind"].get<std::string>() == "layernorm";
        QCOMPARE(lnLayers, 4);
        const std::string top = readText(out + "/firmware/braggnac_net.cpp");
        QVERIFY(top.find("nnet::layer_norm<") != std::string::npos);
        QVERIFY(top.find("nnet::gelu<") != std::string::npos);
    }

    void neverQuantisedDefaultsTo16_6()
    {
        const std::string folder = m_dir.path().toStdString() + "/float.model";
        Model(friendlySpec(), 4).save(folder);
        const std::string out = m_dir.path().toStdString() + "/floatprj";
        const CliResult r = runCli(qargs({"export-hls", folder, "--out", out, "--check", m_data, "--n", "30", "--json"}), 300000);
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const auto j = nlohmann::json::parse(r.out.toStdString());
        QCOMPARE(j["default_precision"].get<bool>(), true);
        QCOMPARE(j["check"]["mismatches"].get<int>(), 0);
        QVERIFY(r.err.contains("never quantised"));
        const std::string defs = readText(out + "/firmware/defines.h");
        QVERIFY(defs.find("typedef ap_fixed<16,6,AP_RND,AP_SAT> input_t;") != std::string::npos);
        QVERIFY(readText(out + "/README.md").find("never quantised") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TestHlsExport)
#include "tst_hlsexport.moc"
