// braggnac-test-libs: braggnac_compress
// Quantisation spec: ap_fixed quantisation and overflow edge cases (AP_TRN / AP_RND, AP_WRAP /
// AP_SAT, negative and larger-than-width integer bits), requantisation of wide raw values, the
// JSON round trip for the built-ins at several widths, and bad input naming the field.
#include <nlohmann/json.hpp>

#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/common/error.h"
#include "core/compress/quantspec.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

Q_DECLARE_METATYPE(std::string)

class TestQuantSpec : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void quantise_data()
    {
        QTest::addColumn<int>("width");
        QTest::addColumn<int>("integer");
        QTest::addColumn<int>("rounding"); // 0 truncate, 1 round
        QTest::addColumn<int>("overflow"); // 0 wrap, 1 saturate
        QTest::addColumn<double>("value");
        QTest::addColumn<qint64>("raw");
        // <8,4>: step 1/16, raw range [-128, 127].
        QTest::newRow("tie up RND") << 8 << 4 << 1 << 1 << 1.03125 << qint64(17);    // 16.5 -> 17
        QTest::newRow("tie up TRN") << 8 << 4 << 0 << 1 << 1.03125 << qint64(16);    // floor
        QTest::newRow("neg tie RND") << 8 << 4 << 1 << 1 << -1.03125 << qint64(-16); // -16.5 -> -16 (ties to +inf)
        QTest::newRow("neg tie TRN") << 8 << 4 << 0 << 1 << -1.03125 << qint64(-17); // toward -inf
        QTest::newRow("below half RND") << 8 << 4 << 1 << 1 << 1.0312 << qint64(16);
        QTest::newRow("neg TRN") << 8 << 4 << 0 << 1 << -0.01 << qint64(-1);
        QTest::newRow("max exact") << 8 << 4 << 1 << 1 << 7.9375 << qint64(127);
        QTest::newRow("SAT high") << 8 << 4 << 1 << 1 << 100.0 << qint64(127);
        QTest::newRow("SAT low") << 8 << 4 << 1 << 1 << -100.0 << qint64(-128);
        QTest::newRow("WRAP high") << 8 << 4 << 1 << 0 << 100.0 << qint64(64);  // 1600 mod 256
        QTest::newRow("WRAP low") << 8 << 4 << 1 << 0 << -100.0 << qint64(-64); // -1600 mod 256
        QTest::newRow("WRAP 8.0") << 8 << 4 << 0 << 0 << 8.0 << qint64(-128);   // 128 -> -128
        QTest::newRow("RND to max+1 SAT") << 8 << 4 << 1 << 1 << 7.97 << qint64(127);
        QTest::newRow("RND to max+1 WRAP") << 8 << 4 << 1 << 0 << 7.97 << qint64(-128);
        // <4,-2>: F = 6, values in [-8/64, 7/64].
        QTest::newRow("negative I") << 4 << -2 << 1 << 1 << 0.05 << qint64(3);
        QTest::newRow("negative I SAT") << 4 << -2 << 1 << 1 << 0.5 << qint64(7);
        // <4,6>: F = -2, step 4.
        QTest::newRow("I > W RND") << 4 << 6 << 1 << 1 << 10.0 << qint64(3);
        QTest::newRow("I > W TRN") << 4 << 6 << 0 << 1 << 10.0 << qint64(2);
        QTest::newRow("I > W SAT") << 4 << 6 << 0 << 1 << 1000.0 << qint64(7);
        // <2,1>: the narrowest format: {-2, -1, 0, 1} * 1/2.
        QTest::newRow("2 bits") << 2 << 1 << 1 << 1 << 0.3 << qint64(1);
        QTest::newRow("2 bits SAT") << 2 << 1 << 1 << 1 << -3.0 << qint64(-2);
        // <32,16>
        QTest::newRow("32 bits") << 32 << 16 << 1 << 1 << -12345.678 << qint64(-809086353); // -809086353.4
        QTest::newRow("32 bits SAT") << 32 << 16 << 1 << 1 << 1e9 << qint64(2147483647);
        QTest::newRow("NaN") << 8 << 4 << 1 << 1 << std::nan("") << qint64(0);
    }
    void quantise()
    {
        QFETCH(int, width);
        QFETCH(int, integer);
        QFETCH(int, rounding);
        QFETCH(int, overflow);
        QFETCH(double, value);
        QFETCH(qint64, raw);
        const FixedFormat f{width, integer, rounding ? Rounding::RoundHalfUp : Rounding::Truncate,
                            overflow ? Overflow::Saturate : Overflow::Wrap};
        QCOMPARE(qint64(f.quantise(value)), raw);
    }

    void requantise()
    {
        const FixedFormat rnd{8, 4, Rounding::RoundHalfUp, Overflow::Saturate};
        const FixedFormat trn{8, 4, Rounding::Truncate, Overflow::Wrap};
        // 0x28 with 8 fraction bits = 0.15625 = 2.5 steps of 1/16.
        QCOMPARE(rnd.requantise(40, 8), std::int64_t(3));
        QCOMPARE(trn.requantise(40, 8), std::int64_t(2));
        QCOMPARE(rnd.requantise(-40, 8), std::int64_t(-2));
        QCOMPARE(trn.requantise(-40, 8), std::int64_t(-3));
        // Left shifts (fewer fraction bits in): exact, then overflow.
        QCOMPARE(rnd.requantise(5, 2), std::int64_t(20));
        QCOMPARE(rnd.requantise(100, 2), std::int64_t(127));
        QCOMPARE(trn.requantise(100, 2), std::int64_t(400 - 512));
        // Wide accumulators (beyond 64 bits).
        const __int128 big = __int128(1) << 100;
        QCOMPARE(rnd.requantise(big, 97), std::int64_t(127));  // 8.0 saturates
        QCOMPARE(trn.requantise(big, 97), std::int64_t(-128)); // 8.0 wraps to -8
        QCOMPARE(rnd.requantise(big + (__int128(1) << 95), 100), std::int64_t(17)); // 1.03125 tie
        QCOMPARE(rnd.requantise(-big, 60), std::int64_t(-128));
        QCOMPARE(trn.requantise(3, -100), std::int64_t(0)); // low bits of a huge value are 0
        // Exhaustive at a small width: requantise == quantise of the exact value.
        for (int w = 2; w <= 6; ++w)
            for (int i = -2; i <= w + 2; ++i)
                for (int r = 0; r < 2; ++r)
                    for (int o = 0; o < 2; ++o) {
                        const FixedFormat f{w, i, Rounding(r), Overflow(o)};
                        for (std::int64_t v = -300; v <= 300; ++v)
                            QCOMPARE(f.requantise(v, 5), f.quantise(double(v) / 32.0));
                    }
    }

    void hlsType()
    {
        QCOMPARE(FixedFormat({16, 6, Rounding::RoundHalfUp, Overflow::Saturate}).hlsType(),
                 std::string("ap_fixed<16,6,AP_RND,AP_SAT>"));
        QCOMPARE(FixedFormat({7, -1, Rounding::Truncate, Overflow::Wrap}).hlsType(),
                 std::string("ap_fixed<7,-1,AP_TRN,AP_WRAP>"));
    }

    void roundTrip_data()
    {
        QTest::addColumn<QString>("arch");
        QTest::addColumn<int>("bits");
        for (const char *a : {"braggnn", "nac"})
            for (int b : {4, 8, 16, 32})
                QTest::newRow(qPrintable(QString("%1 %2").arg(a).arg(b))) << QString(a) << b;
    }
    void roundTrip()
    {
        QFETCH(QString, arch);
        QFETCH(int, bits);
        const LayerPlan plan = LayerPlan::lower(builtinArch(arch.toStdString()));
        QuantSpec q = QuantSpec::defaults(plan, bits);
        // Non-default values everywhere they can be.
        int k = 0;
        for (auto &[name, o] : q.ops) {
            o.output.integer = 1 + k % 5;
            o.output.rounding = Rounding(k % 2);
            o.output.overflow = Overflow((k / 2) % 2);
            o.weight.integer = -1 + k % 3;
            const bool accumulates = o.kind == OpKind::Conv || o.kind == OpKind::Linear
                || o.kind == OpKind::MatMulQK || o.kind == OpKind::MatMulSV;
            o.accumulator = accumulates && k % 3 == 0 ? 40 : 0;
            ++k;
        }
        const bool wide = bits > 16; // GELU / softmax tables need <= 16-bit inputs
        if (wide) {
            const QString msg = inputErrorMessage([&] { q.checkSupported(plan, "q"); });
            QVERIFY2(msg.endsWith("must be at most 16 bits wide"), qPrintable(msg));
            return;
        }
        const nlohmann::json j = q.toJson();
        const QuantSpec back = QuantSpec::fromJson(nlohmann::json::parse(j.dump()), plan, "quantization.json");
        QCOMPARE(back.toJson().dump(), j.dump());
        QCOMPARE(back.ops.size(), q.ops.size());
        for (const auto &[name, o] : q.ops) {
            const OpQuant &b = back.op(name);
            QVERIFY(b.output == o.output);
            QCOMPARE(b.accumulator, o.accumulator);
            QCOMPARE(b.internal.size(), o.internal.size());
            if (o.kind == OpKind::Conv || o.kind == OpKind::Linear)
                QVERIFY(b.weight == o.weight && b.bias == o.bias);
        }
        QVERIFY(back.input == q.input);
    }

    void defaultsCoverEveryOp()
    {
        const LayerPlan plan = LayerPlan::lower(builtinArch("nac"));
        const QuantSpec q = QuantSpec::defaults(plan, 8);
        std::size_t withFormats = 0;
        for (std::size_t i = 0; i < plan.ops.size(); ++i)
            if (opHasFormats(plan, i)) {
                ++withFormats;
                QCOMPARE(q.op(plan.ops[i].name).output.width, 8);
            }
        QCOMPARE(q.ops.size(), withFormats);
        QVERIFY(!q.ops.count("features.b0_l1.norm")); // batch norm: folded
        QCOMPARE(q.op("features.b1_l1.norm").internal.count("rstd"), std::size_t(1));
        QCOMPARE(q.op("features.b0_l1.act").internal.count("slope"), std::size_t(1));
        QCOMPARE(exactAccumulatorBits(8, 8, 9), 20); // 16 + ceil(log2(10))
    }

    void badInput_data()
    {
        QTest::addColumn<QString>("patch"); // JSON merged into layers / top level
        QTest::addColumn<QString>("message");
        QTest::newRow("width 1") << R"({"layers": {"features.stem.conv": {"output": {"width": 1, "integer": 1}}}})"
                                 << "q.json: layers.features.stem.conv.output.width: expected 2..32 bits (got 1)";
        QTest::newRow("width 33") << R"({"input": {"width": 33, "integer": 1}})"
                                  << "q.json: input.width: expected 2..32 bits (got 33)";
        QTest::newRow("fraction") << R"({"layers": {"head.out": {"weight": {"width": 8, "integer": -40}}}})"
                                  << "q.json: layers.head.out.weight.integer: width - integer (fraction bits) must be in -16..40 (got integer -40 for width 8)";
        QTest::newRow("rounding") << R"({"layers": {"head.out": {"bias": {"width": 8, "integer": 2, "rounding": "even"}}}})"
                                  << "q.json: layers.head.out.bias.rounding: expected \"truncate\" (AP_TRN) or \"round\" (AP_RND)";
        QTest::newRow("unknown layer") << R"({"layers": {"features.b7.conv": {}}})"
                                       << "q.json: layers.features.b7.conv: not a layer of 'nac' (names as in the layer plan, e.g. features.stem.conv)";
        QTest::newRow("batch norm") << R"({"layers": {"features.b0_l1.norm": {}}})"
                                    << "q.json: layers.features.b0_l1.norm: batch norm is folded into features.b0_l1.conv for inference: give the formats there";
        QTest::newRow("weight on act") << R"({"layers": {"features.b0_l0.act": {"weight": {"width": 8, "integer": 2}}}})"
                                       << "q.json: layers.features.b0_l0.act.weight: not a format of a activation layer";
        QTest::newRow("accumulator") << R"({"layers": {"head.out": {"accumulator": 70}}})"
                                     << "q.json: layers.head.out.accumulator: expected 0 (exact) or 2..64 bits (got 70)";
        QTest::newRow("gelu input too wide") << R"({"layers": {"features.b1_l0.conv": {"output": {"width": 20, "integer": 6}}}})"
                                             << "q.json: layers.features.b1_l0.act: GELU is a table over its input format: the input (ap_fixed<20,6,AP_RND,AP_SAT>) must be at most 16 bits wide";
        QTest::newRow("format") << R"({"format": "other"})" << "q.json: format: expected \"braggnac-quantization\"";
        QTest::newRow("unknown key") << R"({"scales": 1})" << "q.json: scales: unknown key (expected format, version, arch, input, layers)";
    }
    void badInput()
    {
        QFETCH(QString, patch);
        QFETCH(QString, message);
        const LayerPlan plan = LayerPlan::lower(builtinArch("nac"));
        nlohmann::json j = QuantSpec::defaults(plan, 8).toJson();
        j.merge_patch(nlohmann::json::parse(patch.toStdString()));
        const QString msg = inputErrorMessage([&] { QuantSpec::fromJson(j, plan, "q.json"); });
        QCOMPARE(msg, message);
    }

    void badBits()
    {
        const LayerPlan plan = LayerPlan::lower(builtinArch("nac"));
        QCOMPARE(inputErrorMessage([&] { QuantSpec::defaults(plan, 1); }),
                 QStringLiteral("quantisation: bits: expected 2..32 (got 1)"));
        QCOMPARE(inputErrorMessage([&] { QuantSpec::defaults(plan, 33); }),
                 QStringLiteral("quantisation: bits: expected 2..32 (got 33)"));
    }
};

QTEST_GUILESS_MAIN(TestQuantSpec)
#include "tst_quantspec.moc"
