// braggnac-test-libs: braggnac_cost
// Cost model: the NAC paper's published BOPs (nac-opt convention), the standard convention on a
// tiny hand-computed spec, bit-width and sparsity scaling, the CLI verb.
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include <QDir>
#include <QTemporaryDir>
#include <QtTest>

#include "core/common/error.h"
#include "core/cost/cost.h"
#include "core/arch/archspec.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {
const double kLog2_9 = 3.1699250014423124;  // log2(9)
const double kLog2_18 = 4.169925001442312;  // log2(18)
const double kLog2_2 = 1.0;

/// input 5 -> stem conv 1->2 3x3 + BatchNorm (3x3 map) -> non-local block h=1 -> head 3 (LayerNorm) -> 2.
ArchSpec tinySpec()
{
    ArchSpec s;
    s.name = "tiny";
    s.inputSize = 5;
    s.stem = {2, 3, Norm::Batch, Activation::ReLU};
    BlockSpec attn;
    attn.type = BlockType::ConvAttention;
    attn.attentionChannels = 1;
    s.blocks = {attn};
    s.head = {{3, Norm::Layer, Activation::GELU}};
    return s;
}

const LayerCost &layer(const Cost &c, const std::string &name)
{
    for (const auto &l : c.layers)
        if (l.name == name)
            return l;
    throw std::runtime_error("no layer " + name);
}
} // namespace

class TestCost : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void nacOptPublishedFigures_data()
    {
        QTest::addColumn<QString>("arch");
        QTest::addColumn<QString>("printed");
        QTest::addColumn<double>("exact");
        // Exact values of the NAC code's rules (computed independently, by hand / Python):
        // braggnn 1,106,144,385.526..., nac 85,207,871.968...
        QTest::newRow("braggnn") << "braggnn" << "1.106144e+09" << 1106144385.5261674;
        QTest::newRow("nac") << "nac" << "8.520787e+07" << 85207871.968216;
    }
    void nacOptPublishedFigures()
    {
        QFETCH(QString, arch);
        QFETCH(QString, printed);
        QFETCH(double, exact);
        CostOptions o;
        o.convention = CostConvention::NacOpt;
        const Cost c = computeCost(builtinArch(arch.toStdString()), o);
        QCOMPARE(QString::number(c.bops, 'e', 6), printed);
        QVERIFY2(std::abs(c.bops - exact) < 1e-3, qPrintable(QString::number(c.bops, 'f', 6)));
        QCOMPARE(std::llround(std::floor(c.bops)), std::llround(std::floor(exact)));
        // The stem is not counted by the NAC rules.
        QCOMPARE(layer(c, "stem").bops, 0.0);
        double sum = 0;
        for (const auto &l : c.layers)
            sum += l.bops;
        QVERIFY(std::abs(sum - c.bops) < 1e-6 * c.bops);
    }

    void nacOptRules()
    {
        // One 3x3 conv block 32->8: out * in * k^4 * (b^2 + 2b + log2(in k^4)), no positions.
        CostOptions o;
        o.convention = CostConvention::NacOpt;
        const Cost c = computeCost(builtinArch("nac"), o);
        const double expect = 8.0 * 32 * 81 * (1024 + 64 + std::log2(32.0 * 81));
        QVERIFY(std::abs(layer(c, "blocks[2].layers[0]").bops - expect) < 1e-6);
        QCOMPARE(layer(c, "blocks[0].layers[1].norm").bops, 64.0); // 2C per BatchNorm
        QCOMPARE(layer(c, "blocks[1].layers[1].norm").bops, 0.0);  // LayerNorm not counted
        // Attention softmax term includes the code's batch of 256: 256 * 81^2 * 1.5 * 31 + ...
        CostOptions b = o;
        const Cost bragg = computeCost(builtinArch("braggnn"), b);
        const double softmax = 256.0 * 6561 * 1.5 * 31 + 256.0 * 81 * 80 + 256.0 * 6561;
        QCOMPARE(layer(bragg, "blocks[0].softmax").bops, softmax);
    }

    void standardTinyHandComputed()
    {
        const ArchSpec s = tinySpec();
        CostOptions o;
        o.weightBits = 8;
        o.activationBits = 8;
        const Cost c = computeCost(s, o);
        // stem conv: 2 out ch * 3x3 positions * 1 in * 3x3 kernel = 162 MACs, fan-in 9.
        QCOMPARE(layer(c, "stem").macs, qint64(162));
        QCOMPARE(layer(c, "stem").params, qint64(20));
        QVERIFY(std::abs(layer(c, "stem").bops - 162 * (64 + 8 + 8 + kLog2_9)) < 1e-9);
        // BatchNorm over 2x3x3 elements: 18 MACs of 8x8 bits, fan-in 1.
        QCOMPARE(layer(c, "stem.norm").macs, qint64(18));
        QCOMPARE(layer(c, "stem.norm").params, qint64(4));
        QCOMPARE(layer(c, "stem.norm").bops, 18.0 * (64 + 16));
        // Non-local block, C=2, h=1, HW=9: theta/phi/g 1x1 2->1: 9*2 MACs each, fan-in 2.
        QCOMPARE(layer(c, "blocks[0].theta").macs, qint64(18));
        QCOMPARE(layer(c, "blocks[0].theta").bops, 18.0 * (80 + kLog2_2));
        // Q K^T: 9x9 scores, 1 MAC each (fan-in h=1): activation x activation.
        QCOMPARE(layer(c, "blocks[0].qk").macs, qint64(81));
        QCOMPARE(layer(c, "blocks[0].qk").bops, 81.0 * (64 + 16 + 0));
        QCOMPARE(layer(c, "blocks[0].softmax").bops, 81.0 * (64 + 16 + kLog2_9));
        // softmax . V: 9x1 outputs, 9 MACs each.
        QCOMPARE(layer(c, "blocks[0].sv").macs, qint64(81));
        QVERIFY(std::abs(layer(c, "blocks[0].sv").bops - 81.0 * (80 + kLog2_9)) < 1e-9);
        // out 1x1 1->2: 18 MACs, fan-in 1; residual add 18 elements x 8 bits.
        QCOMPARE(layer(c, "blocks[0].out").bops, 18.0 * 80);
        QCOMPARE(layer(c, "blocks[0].add").bops, 18.0 * 8);
        // head: linear 18 -> 3, LayerNorm(3): 2n stats (fan-in 3) + n normalise + n affine.
        QCOMPARE(layer(c, "head[0]").macs, qint64(54));
        QVERIFY(std::abs(layer(c, "head[0]").bops - 54 * (80 + kLog2_18)) < 1e-9);
        QCOMPARE(layer(c, "head[0].norm").params, qint64(6));
        QCOMPARE(layer(c, "head[0].norm").macs, qint64(12));
        QVERIFY(std::abs(layer(c, "head[0].norm").bops - (6 * (80 + std::log2(3.0)) + 3 * 80 + 3 * 80)) < 1e-9);
        QCOMPARE(layer(c, "output").macs, qint64(6));
        QVERIFY(std::abs(layer(c, "output").bops - 6 * (80 + std::log2(3.0))) < 1e-9);

        const double total = 162 * (80 + kLog2_9) + 18 * 80 + 3 * 18 * (80 + 1) + 81 * 80
            + 81 * (80 + kLog2_9) + 81 * (80 + kLog2_9) + 18 * 80 + 18 * 8 + 54 * (80 + kLog2_18)
            + 6 * (80 + std::log2(3.0)) + 3 * 80 + 3 * 80 + 6 * (80 + std::log2(3.0));
        QVERIFY2(std::abs(c.bops - total) < 1e-6, qPrintable(QString::number(c.bops - total)));
        QCOMPARE(c.macs, qint64(162 + 18 + 3 * 18 + 81 + 81 + 81 + 18 + 54 + 12 + 6));
        // params: conv 20 + BN 4 + 3 * (2+1) + (1*2+2) + linear 18*3+3 + LN 6 + 3*2+2.
        QCOMPARE(c.params, qint64(20 + 4 + 9 + 4 + 57 + 6 + 8));
    }

    void bitsAndSparsityScaling_data()
    {
        QTest::addColumn<int>("wbits");
        QTest::addColumn<int>("abits");
        QTest::addColumn<double>("sparsity");
        QTest::newRow("32/32 dense") << 32 << 32 << 0.0;
        QTest::newRow("8/8 half") << 8 << 8 << 0.5;
        QTest::newRow("4/7 90%") << 4 << 7 << 0.9;
    }
    void bitsAndSparsityScaling()
    {
        QFETCH(int, wbits);
        QFETCH(int, abits);
        QFETCH(double, sparsity);
        // Conv + linear only: BOPs = sum MACs [(1-s) ba bw + ba + bw + log2 fan-in], so
        // BOPs(ba, bw, s) - BOPs(ba, bw, 0) = -s ba bw MACs, and the log2 part is bit-independent.
        ArchSpec s = builtinArch("braggnn");
        s.blocks.erase(s.blocks.begin()); // no attention
        CostOptions dense;
        dense.weightBits = wbits;
        dense.activationBits = abits;
        CostOptions sparse = dense;
        sparse.sparsity = sparsity;
        const Cost a = computeCost(s, dense), b = computeCost(s, sparse);
        QCOMPARE(a.macs, b.macs);
        QCOMPARE(a.params, b.params);
        const double expectDiff = sparsity * wbits * abits * double(a.macs);
        QVERIFY(std::abs((a.bops - b.bops) - expectDiff) < 1e-6 * a.bops);
        double log2Part = 0;
        for (const auto &l : a.layers)
            log2Part += l.bops - double(l.macs) * (abits * wbits + abits + wbits);
        CostOptions one;
        one.weightBits = one.activationBits = 1;
        const Cost u = computeCost(s, one);
        QVERIFY(std::abs(u.bops - 3.0 * u.macs - log2Part) < 1e-6 * u.bops);
        // NAC convention scales the same way for conv/linear layers.
        CostOptions nacA = dense, nacB = sparse;
        nacA.convention = nacB.convention = CostConvention::NacOpt;
        const double nacDiff = computeCost(s, nacA).bops - computeCost(s, nacB).bops;
        QVERIFY(nacDiff > 0 || sparsity == 0);
    }

    void invalidOptions()
    {
        CostOptions o;
        o.sparsity = 1.0;
        QVERIFY_THROWS_EXCEPTION(InputError, computeCost(builtinArch("nac"), o));
        o.sparsity = 0;
        o.weightBits = 0;
        QVERIFY_THROWS_EXCEPTION(InputError, computeCost(builtinArch("nac"), o));
    }

    void cliCost_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<double>("bops");
        QTest::addColumn<qint64>("params");
        QTest::newRow("nac-opt braggnn") << QStringList{"--arch", "braggnn", "--convention", "nac-opt"}
                                         << 1106144385.5261674 << qint64(45394);
        QTest::newRow("nac-opt nac") << QStringList{"--arch", "nac", "--convention", "nac-opt"}
                                     << 85207871.968216 << qint64(17226);
    }
    void cliCost()
    {
        QFETCH(QStringList, args);
        QFETCH(double, bops);
        QFETCH(qint64, params);
        const CliResult r = runCli(QStringList{"cost"} + args + QStringList{"--json"}, 60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 0);
        const auto j = nlohmann::json::parse(r.out.toStdString());
        QCOMPARE(qint64(j["params"].get<std::int64_t>()), params);
        QVERIFY(std::abs(j["bops"].get<double>() - bops) < 1e-3);
        QVERIFY(j["layers"].is_array() && !j["layers"].empty());
    }

    void cliSpecFileAndErrors()
    {
        QTemporaryDir dir;
        const QString spec = dir.filePath("tiny.json");
        tinySpec().save(spec.toStdString());
        CliResult r = runCli({"cost", spec, "--weight-bits", "8", "--act-bits", "8", "--json"}, 60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 0);
        const auto j = nlohmann::json::parse(r.out.toStdString());
        CostOptions o;
        o.weightBits = o.activationBits = 8;
        QVERIFY(std::abs(j["bops"].get<double>() - computeCost(tinySpec(), o).bops) < 1e-6);

        // Human output (cli.md: tables for people go to stderr, stdout stays empty).
        r = runCli({"cost", "--arch", "nac"}, 60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.isEmpty());
        const QString table = QString::fromUtf8(r.err);
        QVERIFY(table.contains("blocks[2].layers[1]"));
        QVERIFY(table.contains("17226") || table.contains("17,226"));

        // Bad input: exit 2 with a one-line message naming the file.
        const QString bad = dir.filePath("bad.json");
        {
            std::ofstream out(bad.toStdString());
            out << R"({"stem": {"channels": -1}})";
        }
        r = runCli({"cost", bad, "--json"}, 60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 2);
        QVERIFY(QString::fromUtf8(r.err).contains(bad + ": stem.channels"));
        r = runCli({"cost", "--arch", "nac", "--convention", "bogus"}, 60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 2);
    }

    void cliModelFolderUsesItsBits()
    {
        // cli.md: "a model folder uses its own bits and sparsity" (quantization.json); flags win.
        QTemporaryDir dir;
        const QString folder = dir.filePath("tiny.model");
        QVERIFY(QDir().mkpath(folder));
        tinySpec().save((folder + "/spec.json").toStdString());
        auto writeQuantization = [&](const std::string &text) {
            std::ofstream out((folder + "/quantization.json").toStdString());
            out << text;
        };
        writeQuantization(R"({"weight_bits": 7, "act_bits": 6, "sparsity": 0.8})");
        CliResult r = runCli({"cost", folder, "--json"}, 60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 0);
        auto j = nlohmann::json::parse(r.out.toStdString());
        CostOptions o;
        o.weightBits = 7;
        o.activationBits = 6;
        o.sparsity = 0.8;
        QCOMPARE(j["weight_bits"].get<int>(), 7);
        QCOMPARE(j["act_bits"].get<int>(), 6);
        QCOMPARE(j["sparsity"].get<double>(), 0.8);
        QVERIFY(std::abs(j["bops"].get<double>() - computeCost(tinySpec(), o).bops) < 1e-6);

        r = runCli({"cost", folder, "--weight-bits", "4", "--json"}, 60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 0);
        j = nlohmann::json::parse(r.out.toStdString());
        o.weightBits = 4;
        QCOMPARE(j["weight_bits"].get<int>(), 4);
        QCOMPARE(j["act_bits"].get<int>(), 6);
        QVERIFY(std::abs(j["bops"].get<double>() - computeCost(tinySpec(), o).bops) < 1e-6);

        // Out-of-range values are bad input naming the file, not a complaint about a flag.
        writeQuantization(R"({"bits": 99})");
        r = runCli({"cost", folder, "--json"}, 60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 2);
        const QString err = QString::fromUtf8(r.err);
        QVERIFY2(err.contains("quantization.json") && err.contains("99"), qPrintable(err));
        QVERIFY(r.out.isEmpty());
    }
};

QTEST_GUILESS_MAIN(TestCost)
#include "tst_cost.moc"
