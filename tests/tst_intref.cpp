// braggnac-test-libs: braggnac_compress braggnac_nn torch
// Integer reference inference: a hand-computed tiny network (exact raw integers at every op, both
// rounding modes, saturation), batch-norm folding, thread-count independence, agreement with the
// float LibTorch model at 16 bits for the built-ins and random specs (every layer kind), the
// quantised cost with measured zeros against a hand computation, bad weights naming the tensor.
#include <cmath>
#include <random>

#include <torch/torch.h>

#include <QTemporaryDir>
#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/common/error.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "core/nn/model.h"
#include "core/nn/torch_net.h"
#include "tests/randomspec.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {

FixedFormat fx(int w, int i, Rounding r = Rounding::RoundHalfUp, Overflow o = Overflow::Saturate)
{
    return FixedFormat{w, i, r, o};
}

/// 3x3 input, stem conv 1 -> 2 (k 3) + ReLU, output linear 2 -> 2.
ArchSpec tinySpec()
{
    ArchSpec s;
    s.name = "tiny";
    s.inputSize = 3;
    s.stem = {2, 3, Norm::None, Activation::ReLU};
    return s;
}

NamedTensors tinyWeights(float w10)
{
    NamedTensors w;
    w["features.stem.conv.weight"] = {{2, 1, 3, 3}, {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f,
                                                      -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f}};
    w["features.stem.conv.bias"] = {{2}, {0.5f, 0.0625f}};
    w["head.out.weight"] = {{2, 2}, {0.5f, 0.25f, w10, 1.0f}};
    w["head.out.bias"] = {{2}, {0.125f, -0.25f}};
    return w;
}

QuantSpec tinyQuant(const LayerPlan &plan, Rounding outRounding)
{
    QuantSpec q = QuantSpec::defaults(plan, 8);
    q.input = fx(8, 2); // F = 6
    OpQuant &conv = q.ops.at("features.stem.conv");
    conv.weight = fx(8, 2);
    conv.bias = fx(8, 4);
    conv.output = fx(8, 4);
    q.ops.at("features.stem.act").output = fx(8, 4);
    OpQuant &out = q.ops.at("head.out");
    out.weight = fx(8, 2);
    out.bias = fx(8, 4);
    out.output = fx(10, 4, outRounding);
    return q;
}

/// Pixels 0..8: min-max normalised to k / 8, i.e. raw 8k in <8,2>.
std::vector<float> rampPatch()
{
    return {0, 1, 2, 3, 4, 5, 6, 7, 8};
}

/// n patches of S x S: a Gaussian peak at a random sub-pixel centre on a noisy background.
std::vector<float> peakPatches(std::size_t n, int s, std::uint32_t seed)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> c(s * 0.3f, s * 0.7f), noise(0.0f, 30.0f), sig(0.8f, 2.0f);
    std::vector<float> p(n * std::size_t(s) * std::size_t(s));
    for (std::size_t i = 0; i < n; ++i) {
        const float r0 = c(rng), c0 = c(rng), sg = sig(rng);
        for (int y = 0; y < s; ++y)
            for (int x = 0; x < s; ++x) {
                const float d2 = (y - r0) * (y - r0) + (x - c0) * (x - c0);
                p[(i * std::size_t(s) + std::size_t(y)) * std::size_t(s) + std::size_t(x)] =
                    1000.0f * std::exp(-d2 / (2 * sg * sg)) + noise(rng);
            }
    }
    return p;
}

/// Non-default norm parameters and running statistics (a fresh net has 1, 0, 0, 1).
void perturbNorms(Model &m, std::uint64_t seed)
{
    torch::NoGradGuard g;
    torch::manual_seed(seed);
    for (auto &p : m.impl().net->named_parameters(true))
        if (p.key().find(".norm.") != std::string::npos)
            p.value().copy_(torch::rand_like(p.value()) * 0.5 + 0.75);
    for (auto &b : m.impl().net->named_buffers(true))
        if (b.value().is_floating_point())
            b.value().copy_(torch::rand_like(b.value()) * 0.2 + (b.key().find("var") != std::string::npos ? 0.9 : -0.1));
    m.impl().net->eval();
}

} // namespace

class TestIntRef : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { torch::set_num_threads(1); }

    void handComputed_data()
    {
        QTest::addColumn<int>("rounding");
        QTest::addColumn<float>("w10");
        QTest::addColumn<qint64>("out0");
        QTest::addColumn<qint64>("out1");
        // conv: ch0 = (8 << 8) + 16 * 8 * 36 = 6656 (F 12) -> (6656 + 128) >> 8 = 26 (1.625)
        //       ch1 = (1 << 8) - 32 * 8 * 36 = -8960 -> -35 (-2.1875); ReLU -> [26, 0] (F 4)
        // out0 = (2 << 6) + 26 * 32 = 960 (F 10) -> 960 / 16 = 60 (exact, F 6)
        // out1 = (-4 << 6) + 26 * w10raw: w10 = -0.75 (-48): -1504 -> -94 (exact)
        //                                 w10 = -47/64 (-47): -1478 = -92.375 steps -> RND -92, TRN -93
        QTest::newRow("exact RND") << 1 << -0.75f << qint64(60) << qint64(-94);
        QTest::newRow("exact TRN") << 0 << -0.75f << qint64(60) << qint64(-94);
        QTest::newRow("inexact RND") << 1 << float(-47.0 / 64) << qint64(60) << qint64(-92);
        QTest::newRow("inexact TRN") << 0 << float(-47.0 / 64) << qint64(60) << qint64(-93);
    }
    void handComputed()
    {
        QFETCH(int, rounding);
        QFETCH(float, w10);
        QFETCH(qint64, out0);
        QFETCH(qint64, out1);
        const LayerPlan plan = LayerPlan::lower(tinySpec());
        const IntegerReference ref(plan, tinyWeights(w10), tinyQuant(plan, Rounding(rounding)));
        const auto patch = rampPatch();
        const auto t = ref.trace(patch.data());
        QCOMPARE(t.size(), std::size_t(4));
        QCOMPARE(t[0], (std::vector<std::int64_t>{26, -35}));
        QCOMPARE(t[1], (std::vector<std::int64_t>{26, 0}));
        QCOMPARE(t[2], (std::vector<std::int64_t>{26, 0}));
        QCOMPARE(t[3], (std::vector<std::int64_t>{out0, out1}));
        const auto raw = ref.forwardRaw(patch.data(), 1);
        QCOMPARE(raw, (std::vector<std::int64_t>{out0, out1}));
        const auto px = ref.predict(patch.data(), 1);
        QCOMPARE(px[0], double(out0) / 64.0 * 3.0);
        QCOMPARE(px[1], double(out1) / 64.0 * 3.0);
        QCOMPARE(ref.weightsRaw("head.out"), (std::vector<std::int64_t>{32, 16, std::int64_t(std::lround(w10 * 64)), 64}));
    }

    void saturationAndWrap()
    {
        // The same network with the conv output at <5,4> (step 1/2, max 7.5): ch0 = 1.625 -> 1.5
        // (RND of 3.25 steps = 3); scaled weights push it past the maximum.
        const LayerPlan plan = LayerPlan::lower(tinySpec());
        NamedTensors w = tinyWeights(-0.75f);
        for (int k = 0; k < 9; ++k)
            w["features.stem.conv.weight"].values[std::size_t(k)] = 1.75f; // ch0 = 0.5 + 1.75 * 4.5 = 8.375
        const auto patch = rampPatch();
        {
            QuantSpec q = tinyQuant(plan, Rounding::RoundHalfUp);
            q.ops.at("features.stem.conv").output = fx(5, 4, Rounding::RoundHalfUp, Overflow::Saturate);
            const auto t = IntegerReference(plan, w, q).trace(patch.data());
            QCOMPARE(t[0][0], std::int64_t(15)); // saturated at 7.5
            QCOMPARE(t[0][1], std::int64_t(-4)); // -2.1875 = -4.375 steps: RND floor(-3.875) = -4
        }
        {
            QuantSpec q = tinyQuant(plan, Rounding::RoundHalfUp);
            q.ops.at("features.stem.conv").output = fx(5, 4, Rounding::Truncate, Overflow::Wrap);
            const auto t = IntegerReference(plan, w, q).trace(patch.data());
            QCOMPARE(t[0][0], std::int64_t(16 - 32)); // 8.375 -> 16 steps (TRN) -> wraps to -16
            QCOMPARE(t[0][1], std::int64_t(-5));      // TRN floor(-4.375) = -5
        }
        {
            // A 16-bit wrapping accumulator: ch0's exact sum 8.375 at F 12 is 34304, which wraps
            // to 34304 - 65536 = -31232 (-7.625 = -122 steps of 1/16 at <8,4>); ReLU gives 0.
            QuantSpec q = tinyQuant(plan, Rounding::RoundHalfUp);
            q.ops.at("features.stem.conv").accumulator = 16;
            const auto t = IntegerReference(plan, w, q).trace(patch.data());
            QCOMPARE(t[0][0], std::int64_t(-122));
            QCOMPARE(t[1][0], std::int64_t(0));
        }
    }

    void batchNormFolding()
    {
        // stem conv 1 -> 1 (k 1) on 1x1 + BatchNorm: y = (w x + b - m) g / sqrt(v + eps) + beta.
        ArchSpec s;
        s.name = "bn";
        s.inputSize = 3;
        s.stem = {1, 3, Norm::Batch, Activation::None};
        const LayerPlan plan = LayerPlan::lower(s);
        NamedTensors w;
        w["features.stem.conv.weight"] = {{1, 1, 3, 3}, std::vector<float>(9, 0.125f)};
        w["features.stem.conv.bias"] = {{1}, {0.25f}};
        w["features.stem.norm.weight"] = {{1}, {2.0f}};
        w["features.stem.norm.bias"] = {{1}, {-0.5f}};
        w["features.stem.norm.running_mean"] = {{1}, {0.75f}};
        w["features.stem.norm.running_var"] = {{1}, {4.0f - 1e-5f}};
        w["head.out.weight"] = {{2, 1}, {1.0f, -1.0f}};
        w["head.out.bias"] = {{2}, {0.0f, 0.0f}};
        const auto folded = foldBatchNorm(plan, w);
        const double scale = 2.0 / std::sqrt(double(4.0f - 1e-5f) + 1e-5);
        QCOMPARE(folded.at("features.stem.conv").first[0], 0.125 * scale);
        QCOMPARE(folded.at("features.stem.conv").second[0], (0.25 - 0.75) * scale - 0.5);
        QuantSpec q = QuantSpec::defaults(plan, 16);
        const IntegerReference ref(plan, w, q);
        const auto patch = rampPatch();
        const auto t = ref.trace(patch.data());
        // x = sum(k/8) = 4.5; conv+bn = 4.5 * 0.125 * scale + (-0.5 * scale - 0.5) ~= 0.0625
        const double expect = 4.5 * 0.125 * scale + (0.25 - 0.75) * scale - 0.5;
        const FixedFormat &f = q.op("features.stem.conv").output;
        QVERIFY(std::abs(f.toDouble(t[0][0]) - expect) <= 2 * f.step()); // weight, bias, output rounding
        QCOMPARE(t[1], t[0]); // the BatchNorm op passes the folded result through
    }

    void threadsAgree()
    {
        const LayerPlan plan = LayerPlan::lower(builtinArch("braggnn"));
        Model m(builtinArch("braggnn"), 5);
        const IntegerReference ref(plan, m.namedParameters(), QuantSpec::defaults(plan, 8));
        const auto p = peakPatches(200, 11, 9);
        QCOMPARE(ref.forwardRaw(p.data(), 200, 2), ref.forwardRaw(p.data(), 200, 1));
    }

    void agreesWithFloat_data()
    {
        QTest::addColumn<int>("index"); // 0 braggnn, 1 nac, >= 2 random specs
        QTest::newRow("braggnn") << 0;
        QTest::newRow("nac") << 1;
        for (int i = 0; i < 12; ++i)
            QTest::newRow(qPrintable(QString("random%1").arg(i))) << 2 + i;
    }
    void agreesWithFloat()
    {
        QFETCH(int, index);
        ArchSpec spec;
        if (index == 0)
            spec = builtinArch("braggnn");
        else if (index == 1)
            spec = builtinArch("nac");
        else {
            std::mt19937 rng(777);
            for (int i = 0; i <= index - 2; ++i)
                spec = randomArchSpec(rng, i);
        }
        Model m(spec, 100 + std::uint64_t(index));
        perturbNorms(m, 5);
        const LayerPlan plan = LayerPlan::lower(spec);
        const int s = spec.inputSize;
        const auto calibration = peakPatches(256, s, 1000 + std::uint32_t(index));
        const NamedTensors weights = m.namedParameters();
        const QuantSpec q = calibratedQuantSpec(plan, weights, calibration.data(), 256, 16);
        const IntegerReference ref(plan, weights, q);
        const std::size_t n = 64;
        const auto p = peakPatches(n, s, 3 + std::uint32_t(index));
        const auto fl = m.predict(p.data(), n);
        const auto fixed = ref.predict(p.data(), n, 2);
        // Every op rounds at 16 bits with calibrated integer bits: measured worst differences are
        // 0.0002-0.018 px over these networks (the output step itself is 0.0001-0.0013 px); a
        // wrong operation gives differences of a pixel or more.
        const double step = q.op("head.out").output.step() * s;
        double worst = 0, sum = 0;
        for (std::size_t i = 0; i < 2 * n; ++i) {
            const double d = std::abs(fixed[i] - double(fl[i]));
            worst = std::max(worst, d);
            sum += d;
        }
        qInfo("%s: mean |fixed - float| = %.3g px, worst %.3g px, output step %.3g px", spec.name.c_str(),
              sum / double(2 * n), worst, step);
        QVERIFY2(worst < 0.03, qPrintable(QString("worst %1 px").arg(worst)));
        QVERIFY2(sum / double(2 * n) < 0.004, qPrintable(QString("mean %1 px").arg(sum / double(2 * n))));
    }

    void calibration()
    {
        const LayerPlan plan = LayerPlan::lower(tinySpec());
        const auto patch = rampPatch();
        const auto ranges = observedRanges(plan, tinyWeights(-0.75f), patch.data(), 1);
        QCOMPARE(ranges.size(), plan.ops.size() + 1);
        QCOMPARE(ranges[0], 2.1875); // conv: [1.625, -2.1875]
        QCOMPARE(ranges[1], 1.625);  // ReLU
        QCOMPARE(ranges.back(), 1.0); // normalised input
        const QuantSpec q = calibratedQuantSpec(plan, tinyWeights(-0.75f), patch.data(), 1, 12, 1);
        QCOMPARE(q.input.integer, 2);                              // floor(log2 1) + 2
        QCOMPARE(q.op("features.stem.conv").output.integer, 4);    // floor(log2 2.1875) + 2 + 1
        QCOMPARE(q.op("features.stem.act").output.integer, 3);     // floor(log2 1.625) + 2 + 1
        QCOMPARE(q.op("features.stem.conv").weight.integer, 1);    // max |w| 0.5: -1 + 2
        QCOMPARE(q.op("head.out").weight.integer, 2);              // max |w| 1
        QCOMPARE(q.op("head.out").output.width, 12);
    }

    void modelFolderRoundTrip()
    {
        // A quantised model saved as a model folder (quantization.json beside the weights) loads
        // back to the same integer reference: every raw output identical.
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const ArchSpec spec = builtinArch("nac");
        Model m(spec, 8);
        perturbNorms(m, 3);
        const LayerPlan plan = LayerPlan::lower(spec);
        const auto calib = peakPatches(128, 11, 2);
        QuantSpec q = calibratedQuantSpec(plan, m.namedParameters(), calib.data(), 128, 8);
        q.ops.at("head.out").output.overflow = Overflow::Wrap;
        q.ops.at("features.b1_l1.norm").output.rounding = Rounding::Truncate;
        m.quantization = q.toJson();
        const std::string folder = (dir.path() + "/nac.model").toStdString();
        m.save(folder);
        const Model back = Model::load(folder);
        const QuantSpec q2 = QuantSpec::fromJson(back.quantization, plan, folder + "/quantization.json");
        QCOMPARE(q2.toJson().dump(), q.toJson().dump());
        const auto p = peakPatches(100, 11, 4);
        const IntegerReference a(plan, m.namedParameters(), q), b(plan, back.namedParameters(), q2);
        QCOMPARE(b.forwardRaw(p.data(), 100), a.forwardRaw(p.data(), 100));
        QCOMPARE(b.weightsRaw("features.b0_l1.conv"), a.weightsRaw("features.b0_l1.conv"));
    }

    void quantisedCostCountsZeros()
    {
        const LayerPlan plan = LayerPlan::lower(tinySpec());
        NamedTensors w = tinyWeights(-0.75f);
        auto &cw = w["features.stem.conv.weight"].values;
        cw[9] = cw[10] = 0.0f;
        cw[11] = 0.001f; // quantises to 0 at <8,2> (step 1/64): a zero the FPGA sees too
        w["head.out.weight"].values[1] = 0.0f;
        const IntegerReference ref(plan, w, tinyQuant(plan, Rounding::RoundHalfUp));
        const Cost c = quantisedCost(ref);
        // conv: 18 MACs, a = input 8 bits, w = 8 bits, zeros 3 / 18, fan-in 9.
        const double conv = 18.0 * ((1 - 3.0 / 18) * 64 + 16 + std::log2(9.0));
        // out: 4 MACs, a = ReLU output 8 bits, w = 8 bits, zeros 1 / 4, fan-in 2.
        const double out = 4.0 * ((1 - 0.25) * 64 + 16 + 1);
        QCOMPARE(c.layers.size(), std::size_t(2));
        QVERIFY(std::abs(c.layers[0].bops - conv) < 1e-9);
        QVERIFY(std::abs(c.layers[1].bops - out) < 1e-9);
        QVERIFY(std::abs(c.bops - conv - out) < 1e-9);
    }

    void badWeights()
    {
        const LayerPlan plan = LayerPlan::lower(tinySpec());
        NamedTensors w = tinyWeights(-0.75f);
        w.erase("head.out.bias");
        QCOMPARE(inputErrorMessage([&] { IntegerReference(plan, w, tinyQuant(plan, Rounding::Truncate)); }),
                 QStringLiteral("weights: tensor 'head.out.bias' missing"));
        w = tinyWeights(-0.75f);
        w["head.out.weight"].shape = {4, 1};
        QCOMPARE(inputErrorMessage([&] { IntegerReference(plan, w, tinyQuant(plan, Rounding::Truncate)); }),
                 QStringLiteral("weights: tensor 'head.out.weight' has the wrong shape for the layer plan"));
    }
};

QTEST_GUILESS_MAIN(TestIntRef)
#include "tst_intref.moc"
