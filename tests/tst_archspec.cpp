// braggnac-test-libs: braggnac_nn braggnac_cost
// Architecture specs: built-in parameter counts (from the built LibTorch module and from the cost
// model), JSON round trip, the shipped resources/arch files, bad specs, forceOneByOne.
#include <cmath>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include <QTemporaryDir>
#include <QtTest>

#include "core/common/error.h"
#include "core/cost/cost.h"
#include "core/arch/archspec.h"
#include "core/nn/model.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {
std::string resourceArch(const std::string &name)
{
    return std::string(BRAGGNAC_TEST_DATA) + "/../../resources/arch/" + name + ".json";
}

std::vector<float> gaussianPatches(int n, int s)
{
    std::vector<float> p(std::size_t(n) * s * s);
    for (int i = 0; i < n; ++i) {
        const double r0 = s / 2 + 0.37 * ((i % 5) - 2), c0 = s / 2 - 0.29 * ((i % 3) - 1);
        for (int r = 0; r < s; ++r)
            for (int c = 0; c < s; ++c)
                p[std::size_t(i) * s * s + r * s + c] =
                    float(10 + 500 * std::exp(-((r - r0) * (r - r0) + (c - c0) * (c - c0)) / 3.0));
    }
    return p;
}
} // namespace

class TestArchSpec : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void builtinParameterCounts_data()
    {
        QTest::addColumn<QString>("name");
        QTest::addColumn<qint64>("params");
        QTest::addColumn<int>("flatten");
        QTest::newRow("braggnn") << "braggnn" << qint64(45394) << 200;
        QTest::newRow("nac") << "nac" << qint64(17226) << 576;
    }
    void builtinParameterCounts()
    {
        QFETCH(QString, name);
        QFETCH(qint64, params);
        QFETCH(int, flatten);
        const ArchSpec spec = builtinArch(name.toStdString());
        QCOMPARE(spec.flattenFeatures(), flatten);
        const Model model(spec, 1);
        QCOMPARE(qint64(model.parameterCount()), params);
        QCOMPARE(qint64(computeCost(spec).params), params);
        CostOptions nac;
        nac.convention = CostConvention::NacOpt;
        QCOMPARE(qint64(computeCost(spec, nac).params), params);
    }

    void builtinShapes()
    {
        // NAC trial 164: 11 -stem-> 9 -1x1,1x1-> 9 -1x1-> 9 -3x3-> 7 -3x3-> 5 -3x3-> 3.
        const auto shapes = builtinArch("nac").shapes();
        QStringList got;
        for (const auto &s : shapes)
            got << QString("%1:%2x%3").arg(QString::fromStdString(s.field)).arg(s.channels).arg(s.size);
        QCOMPARE(got.join(' '),
                 QString("stem:32x9 blocks[0].layers[0]:4x9 blocks[0].layers[1]:32x9 "
                         "blocks[1].layers[0]:4x9 blocks[1].layers[1]:32x7 blocks[2].layers[0]:8x5 "
                         "blocks[2].layers[1]:64x3 head[0]:8x0 head[1]:4x0 head[2]:4x0 output:2x0"));
    }

    void jsonRoundTrip_data()
    {
        QTest::addColumn<QString>("name");
        QTest::newRow("braggnn") << "braggnn";
        QTest::newRow("nac") << "nac";
        QTest::newRow("custom") << "custom";
    }
    void jsonRoundTrip()
    {
        QFETCH(QString, name);
        ArchSpec spec;
        if (name == "custom") {
            spec.name = "custom";
            spec.inputSize = 15;
            spec.stem = {8, 5, Norm::Batch, Activation::GELU};
            BlockSpec none;
            BlockSpec attn;
            attn.type = BlockType::ConvAttention;
            attn.attentionChannels = 3;
            attn.act = Activation::ReLU;
            BlockSpec conv;
            conv.type = BlockType::Conv;
            conv.layers = {{6, 3, Norm::Layer, Activation::LeakyReLU}};
            spec.blocks = {none, attn, conv};
            spec.head = {{5, Norm::Batch, Activation::GELU}};
            spec.forceOneByOne = true;
        } else {
            spec = builtinArch(name.toStdString());
        }
        const nlohmann::json j = spec.toJson();
        const ArchSpec back = ArchSpec::fromJson(j);
        QCOMPARE(QString::fromStdString(back.toJson().dump()), QString::fromStdString(j.dump()));
        QCOMPARE(back.blocks.size(), spec.blocks.size());
        QCOMPARE(back.forceOneByOne, spec.forceOneByOne);

        QTemporaryDir dir;
        const std::string path = dir.filePath("spec.json").toStdString();
        spec.save(path);
        const ArchSpec loaded = ArchSpec::load(path);
        QCOMPARE(QString::fromStdString(loaded.toJson().dump()), QString::fromStdString(j.dump()));
        QCOMPARE(Model(loaded, 3).parameterCount(), Model(spec, 4).parameterCount());
        QCOMPARE(Model(loaded, 3).parameterCount(), computeCost(spec).params);
    }

    void shippedResources_data()
    {
        QTest::addColumn<QString>("name");
        QTest::newRow("braggnn") << "braggnn";
        QTest::newRow("nac") << "nac";
    }
    void shippedResources()
    {
        QFETCH(QString, name);
        std::ifstream in(resourceArch(name.toStdString()));
        QVERIFY2(bool(in), resourceArch(name.toStdString()).c_str());
        const nlohmann::json file = nlohmann::json::parse(in);
        QCOMPARE(QString::fromStdString(file.dump()),
                 QString::fromStdString(builtinArch(name.toStdString()).toJson().dump()));
        // resolveArch accepts both the name and the file.
        QCOMPARE(Model(resolveArch(resourceArch(name.toStdString())), 0).parameterCount(),
                 Model(resolveArch(name.toStdString()), 0).parameterCount());
    }

    void badSpecs_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("field");
        QTest::addColumn<QString>("what");
        const QString stem = R"("stem": {"channels": 4, "kernel": 3})";
        QTest::newRow("unknown block type")
            << QString(R"({%1, "blocks": [{"type": "transformer"}]})").arg(stem) << "blocks[0].type"
            << "unknown block type 'transformer'";
        QTest::newRow("zero channels") << QString(R"({"stem": {"channels": 0, "kernel": 3}})")
                                       << "stem.channels" << "positive integer";
        QTest::newRow("negative channels")
            << QString(R"({%1, "blocks": [{"type": "none"}, {"type": "conv", "layers": [{"channels": -8}]}]})").arg(stem)
            << "blocks[1].layers[0].channels" << "got -8";
        QTest::newRow("zero attention channels")
            << QString(R"({%1, "blocks": [{"type": "conv-attention", "attention_channels": 0}]})").arg(stem)
            << "blocks[0].attention_channels" << "positive integer";
        QTest::newRow("zero head width") << QString(R"({%1, "head": [{"width": 0}]})").arg(stem)
                                         << "head[0].width" << "positive integer";
        QTest::newRow("collapsing kernel")
            << QString(R"({"input_size": 11, %1, "blocks": [{"type": "conv", "layers": [{"channels": 4, "kernel": 5}, {"channels": 4, "kernel": 7}]}]})").arg(stem)
            << "blocks[0].layers[1].kernel" << "collapses the 5x5 map";
        QTest::newRow("collapsing stem") << QString(R"({"input_size": 3, "stem": {"channels": 4, "kernel": 5}})")
                                         << "stem.kernel" << "collapses the 3x3 map";
        QTest::newRow("even kernel") << QString(R"({"stem": {"channels": 4, "kernel": 2}})")
                                     << "stem.kernel" << "must be odd";
        QTest::newRow("unknown norm")
            << QString(R"({%1, "head": [{"width": 4, "norm": "group"}]})").arg(stem) << "head[0].norm"
            << "unknown norm 'group'";
        QTest::newRow("unknown activation")
            << QString(R"({"stem": {"channels": 4, "kernel": 3, "act": "swish"}})") << "stem.act"
            << "unknown activation 'swish'";
        QTest::newRow("unknown key") << QString(R"({"stem": {"channels": 4, "kernal": 3}})")
                                     << "stem.kernal" << "unknown key";
        QTest::newRow("missing stem") << QString(R"({"blocks": []})") << "stem" << "missing";
        QTest::newRow("malformed JSON") << QString(R"({"stem": {"channels": 4,)") << "" << "malformed JSON";
    }
    void badSpecs()
    {
        QFETCH(QString, text);
        QFETCH(QString, field);
        QFETCH(QString, what);
        QTemporaryDir dir;
        const QString path = dir.filePath("bad.json");
        {
            std::ofstream out(path.toStdString());
            out << text.toStdString();
        }
        const QString msg = inputErrorMessage([&] { ArchSpec::load(path.toStdString()); });
        QVERIFY2(threwInputError(msg), qPrintable(msg));
        const QString prefix = field.isEmpty() ? path + ": " : path + ": " + field + ": ";
        QVERIFY2(msg.startsWith(prefix), qPrintable(msg));
        QVERIFY2(msg.contains(what), qPrintable(msg));
        QVERIFY2(!msg.contains('\n'), qPrintable(msg));
    }

    void forceOneByOne()
    {
        // 11 -5x5-> 7 -5x5-> 3 -5x5-> collapse; with forceOneByOne the third kernel becomes 1x1.
        nlohmann::json j = {{"input_size", 11},
                            {"stem", {{"channels", 4}, {"kernel", 5}}},
                            {"blocks", {{{"type", "conv"},
                                         {"layers", {{{"channels", 6}, {"kernel", 5}},
                                                     {{"channels", 3}, {"kernel", 5}}}}}}}};
        const QString msg = inputErrorMessage([&] { ArchSpec::fromJson(j, "mem.json"); });
        QVERIFY2(threwInputError(msg), qPrintable(msg));
        QVERIFY2(msg.startsWith("mem.json: blocks[0].layers[1].kernel: "), qPrintable(msg));
        j["force_one_by_one"] = true;
        const ArchSpec spec = ArchSpec::fromJson(j, "mem.json");
        const auto shapes = spec.shapes();
        QCOMPARE(shapes[2].kernel, 1);
        QCOMPARE(shapes[2].size, 3);
        QCOMPARE(spec.flattenFeatures(), 3 * 3 * 3);
        // stem 1*4*25+4, conv 4*6*25+6, forced 1x1 6*3+3, output 27*2+2.
        const std::int64_t expected = 104 + 606 + 21 + 56;
        const Model model(spec, 0);
        QCOMPARE(model.parameterCount(), expected);
        QCOMPARE(computeCost(spec).params, expected);
        const auto patches = gaussianPatches(3, 11);
        const auto out = model.predict(patches.data(), 3);
        QCOMPARE(out.size(), std::size_t(6));
        for (float v : out)
            QVERIFY(std::isfinite(v));
    }

    void seededInitialisation()
    {
        const ArchSpec spec = builtinArch("nac");
        const auto patches = gaussianPatches(16, 11);
        const auto a = Model(spec, 7).predict(patches.data(), 16);
        const auto b = Model(spec, 7).predict(patches.data(), 16);
        const auto c = Model(spec, 8).predict(patches.data(), 16);
        QCOMPARE(a.size(), std::size_t(32));
        QVERIFY(a == b);  // bit-identical for the same seed
        QVERIFY(a != c);  // a different seed gives different weights
        // Batching changes only the floating-point summation order.
        const auto d = Model(spec, 7).predict(patches.data(), 16, 5);
        for (std::size_t i = 0; i < a.size(); ++i)
            QVERIFY2(std::abs(a[i] - d[i]) < 1e-4f, qPrintable(QString::number(a[i] - d[i])));
    }

    void unknownBuiltin()
    {
        QString msg = inputErrorMessage([] { builtinArch("resnet"); });
        QVERIFY2(threwInputError(msg), qPrintable(msg));
        QVERIFY(msg.contains("resnet"));
        msg = inputErrorMessage([] { resolveArch("/nonexistent/spec.json"); });
        QVERIFY2(threwInputError(msg), qPrintable(msg));
        QVERIFY(msg.startsWith("/nonexistent/spec.json: "));
    }
};

QTEST_GUILESS_MAIN(TestArchSpec)
#include "tst_archspec.moc"
