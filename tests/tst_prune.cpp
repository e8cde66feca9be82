// braggnac-test-libs: braggnac_compress
// Pruning masks (core/compress/prune.h): the global L1 selection on a hand-made weight set picks
// exactly the expected weights; iterative rounds keep the expected counts (0.2 x 3 -> 0.8^3) with
// nested masks and a global magnitude order; structured pruning removes whole output channels
// (never the output layer, never a layer's last channel); masks round-trip through JSON and bad
// JSON names the field; BOPs with per-layer bits and pruned (real) zeros match a hand computation.
#include <cmath>
#include <random>

#include <nlohmann/json.hpp>

#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/compress/intref.h"
#include "core/compress/prune.h"
#include "core/compress/quantspec.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {

/// 3x3 input, stem conv 1 -> 2 (k 3) + ReLU, output linear 2 -> 2: 18 + 4 prunable weights.
ArchSpec tinySpec()
{
    ArchSpec s;
    s.name = "tiny";
    s.inputSize = 3;
    s.stem = {2, 3, Norm::None, Activation::ReLU};
    return s;
}

NamedTensors handWeights()
{
    NamedTensors w;
    w["features.stem.conv.weight"] = {{2, 1, 3, 3}, {0.9f, -0.05f, 0.8f, 0.7f, 0.6f, 0.5f, 0.45f, 0.35f, 0.25f,
                                                      -0.01f, 0.95f, 0.85f, -0.75f, 0.65f, 0.55f, 0.42f, 0.33f, 0.22f}};
    w["features.stem.conv.bias"] = {{2}, {0.5f, 0.0625f}};
    w["head.out.weight"] = {{2, 2}, {0.03f, -0.5f, 0.02f, 1.0f}};
    w["head.out.bias"] = {{2}, {0.125f, -0.25f}};
    return w;
}

/// Random weights for every float tensor of the plan (distinct magnitudes almost surely).
NamedTensors randomWeights(const LayerPlan &plan, std::uint32_t seed)
{
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 0.3f);
    NamedTensors w;
    for (const PlanTensor &t : plan.tensors()) {
        if (t.integer)
            continue;
        NamedTensor n{t.shape, std::vector<float>(std::size_t(t.numel()))};
        for (auto &v : n.values)
            v = t.key.find("running_var") != std::string::npos ? 1.0f : d(rng);
        w[t.key] = std::move(n);
    }
    return w;
}

std::vector<std::int64_t> prunedIndices(const PruneMasks &m, const std::string &key)
{
    std::vector<std::int64_t> out;
    const auto &k = m.keep.at(key);
    for (std::size_t i = 0; i < k.size(); ++i)
        if (!k[i])
            out.push_back(std::int64_t(i));
    return out;
}

} // namespace

class TestPrune : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void prunableAreConvAndLinearWeights()
    {
        const LayerPlan plan = LayerPlan::lower(builtinArch("nac"));
        const auto keys = prunableWeights(plan);
        std::int64_t total = 0;
        for (const auto &k : keys) {
            QVERIFY2(k.size() > 7 && k.compare(k.size() - 7, 7, ".weight") == 0, k.c_str());
            QVERIFY2(k.find(".norm.") == std::string::npos, k.c_str());
            total += plan.ops[std::size_t(plan.find(k.substr(0, k.size() - 7)))].tensor("weight")->numel();
        }
        QCOMPARE(keys.front(), std::string("features.stem.conv.weight"));
        QCOMPARE(keys.back(), std::string("head.out.weight"));
        QCOMPARE(PruneMasks::full(plan).total(), total);
        QCOMPARE(PruneMasks::full(plan).kept(), total);
    }

    void globalL1HandMade()
    {
        const LayerPlan plan = LayerPlan::lower(tinySpec());
        const NamedTensors w = handWeights();
        // 0.25 of 22 = 5.5 -> 6 weights: |w| 0.01, 0.02, 0.03, 0.05, 0.22, 0.25.
        const PruneMasks m = pruneGlobalL1(plan, w, PruneMasks::full(plan), 0.25);
        QCOMPARE(prunedIndices(m, "features.stem.conv.weight"), (std::vector<std::int64_t>{1, 8, 9, 17}));
        QCOMPARE(prunedIndices(m, "head.out.weight"), (std::vector<std::int64_t>{0, 2}));
        QCOMPARE(m.kept(), std::int64_t(16));
        QCOMPARE(m.sparsity(), 6.0 / 22.0);
        // A second round: 0.2 of the 16 remaining = 3.2 -> 3 more: 0.33, 0.35, 0.42 (biases untouched).
        const PruneMasks m2 = pruneGlobalL1(plan, w, m, 0.2);
        QCOMPARE(prunedIndices(m2, "features.stem.conv.weight"), (std::vector<std::int64_t>{1, 7, 8, 9, 15, 16, 17}));
        QCOMPARE(prunedIndices(m2, "head.out.weight"), (std::vector<std::int64_t>{0, 2}));
        NamedTensors applied = w;
        applyMasks(applied, m2);
        QCOMPARE(applied["features.stem.conv.weight"].values[7], 0.0f);
        QCOMPARE(applied["features.stem.conv.weight"].values[0], 0.9f);
        QCOMPARE(applied["head.out.weight"].values[2], 0.0f);
        QCOMPARE(applied["head.out.bias"].values, w.at("head.out.bias").values);
    }

    void iterativeCounts_data()
    {
        QTest::addColumn<QString>("arch");
        QTest::addColumn<double>("fraction");
        QTest::addColumn<int>("rounds");
        QTest::newRow("nac 0.2 x 3") << "nac" << 0.2 << 3;
        QTest::newRow("braggnn 0.2 x 5") << "braggnn" << 0.2 << 5;
        QTest::newRow("nac 0.5 x 2") << "nac" << 0.5 << 2;
    }
    void iterativeCounts()
    {
        QFETCH(QString, arch);
        QFETCH(double, fraction);
        QFETCH(int, rounds);
        const LayerPlan plan = LayerPlan::lower(builtinArch(arch.toStdString()));
        const NamedTensors w = randomWeights(plan, 7);
        PruneMasks m = PruneMasks::full(plan);
        const std::int64_t total = m.total();
        std::int64_t expected = total;
        for (int r = 0; r < rounds; ++r) {
            const PruneMasks next = pruneGlobalL1(plan, w, m, fraction);
            expected -= std::llround(fraction * double(expected));
            QCOMPARE(next.kept(), expected);
            for (const auto &[key, keep] : m.keep) // nested: pruned stays pruned
                for (std::size_t i = 0; i < keep.size(); ++i)
                    QVERIFY(keep[i] || !next.keep.at(key)[i]);
            m = next;
        }
        QCOMPARE(m.kept(), keptAfterRounds(total, fraction, rounds));
        QVERIFY(std::abs(double(m.kept()) - std::pow(1 - fraction, rounds) * double(total)) <= rounds);
        // Global magnitude order: every pruned |w| <= every kept |w|.
        float maxPruned = 0, minKept = 1e30f;
        for (const auto &[key, keep] : m.keep)
            for (std::size_t i = 0; i < keep.size(); ++i) {
                const float a = std::fabs(w.at(key).values[i]);
                if (keep[i])
                    minKept = std::min(minKept, a);
                else
                    maxPruned = std::max(maxPruned, a);
            }
        QVERIFY(maxPruned <= minKept);
    }

    void structuredWholeChannels()
    {
        const LayerPlan tiny = LayerPlan::lower(tinySpec());
        NamedTensors w = handWeights();
        // Stem rows: mean |w| 4.60 / 9 = 0.511 (row 0) and 4.73 / 9 = 0.526 (row 1): row 0 goes; head.out never.
        PruneMasks m = pruneStructured(tiny, w, PruneMasks::full(tiny), 0.5);
        QCOMPARE(prunedIndices(m, "features.stem.conv.weight"),
                 (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
        QVERIFY(prunedIndices(m, "head.out.weight").empty());
        // The last channel of a layer stays.
        QCOMPARE(pruneStructured(tiny, w, m, 0.5).kept(), m.kept());

        const LayerPlan plan = LayerPlan::lower(builtinArch("nac"));
        const NamedTensors rw = randomWeights(plan, 11);
        std::int64_t channels = 0;
        for (const PlanOp &op : plan.ops)
            if ((op.kind == OpKind::Conv || op.kind == OpKind::Linear) && &op != &plan.output())
                channels += op.tensor("weight")->shape[0];
        const PruneMasks s = pruneStructured(plan, rw, PruneMasks::full(plan), 0.3);
        std::int64_t removed = 0;
        for (const PlanOp &op : plan.ops) {
            if (op.kind != OpKind::Conv && op.kind != OpKind::Linear)
                continue;
            const PlanTensor *t = op.tensor("weight");
            const auto &keep = s.keep.at(t->key);
            const std::size_t rows = std::size_t(t->shape[0]), per = keep.size() / rows;
            std::size_t keptRows = 0;
            for (std::size_t r = 0; r < rows; ++r) {
                const auto first = keep[r * per];
                for (std::size_t i = r * per; i < (r + 1) * per; ++i)
                    QCOMPARE(keep[i], first); // whole rows only
                keptRows += first;
            }
            QVERIFY(keptRows >= 1);
            if (&op == &plan.output())
                QCOMPARE(keptRows, rows);
            removed += std::int64_t(rows - keptRows);
        }
        QCOMPARE(removed, std::llround(0.3 * double(channels)));
    }

    void masksJson()
    {
        const LayerPlan plan = LayerPlan::lower(builtinArch("nac"));
        const PruneMasks m = pruneGlobalL1(plan, randomWeights(plan, 3), PruneMasks::full(plan), 0.4);
        const PruneMasks back = PruneMasks::fromJson(nlohmann::json::parse(m.toJson().dump()), plan, "r.json");
        QVERIFY(back.keep == m.keep);
        nlohmann::json bad = m.toJson();
        bad["features.b7.conv.weight"] = bad["features.stem.conv.weight"];
        QVERIFY(inputErrorMessage([&] { PruneMasks::fromJson(bad, plan, "r.json"); })
                    .startsWith("r.json: features.b7.conv.weight: not a prunable weight of 'nac'"));
        bad = m.toJson();
        bad["head.out.weight"]["pruned"] = {0, 999};
        QVERIFY(inputErrorMessage([&] { PruneMasks::fromJson(bad, plan, "r.json"); })
                    .startsWith("r.json: head.out.weight.pruned: index 999 out of range"));
        bad = m.toJson();
        bad["head.out.weight"]["size"] = 3;
        QVERIFY(inputErrorMessage([&] { PruneMasks::fromJson(bad, plan, "r.json"); })
                    .startsWith("r.json: head.out.weight.size: 3"));
        QVERIFY(inputErrorMessage([&] { pruneGlobalL1(plan, randomWeights(plan, 3), m, 1.0); })
                    .startsWith("prune fraction: expected a number in (0, 1)"));
        QVERIFY(threwInputError(inputErrorMessage([&] { pruneStructured(plan, {}, m, 0.5); })));
    }

    void bopsWithPerLayerBitsAndPrunedZeros()
    {
        const LayerPlan plan = LayerPlan::lower(tinySpec());
        NamedTensors w;
        w["features.stem.conv.weight"] = {{2, 1, 3, 3}, {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f,
                                                          -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f}};
        w["features.stem.conv.bias"] = {{2}, {0.5f, 0.0625f}};
        w["head.out.weight"] = {{2, 2}, {0.5f, 0.25f, -0.75f, 1.0f}};
        w["head.out.bias"] = {{2}, {0.125f, -0.25f}};
        // 4 of 22 by |w|: the 0.25s, ties in plan order -> stem weights 0..3.
        const PruneMasks m = pruneGlobalL1(plan, w, PruneMasks::full(plan), 4.0 / 22.0);
        QCOMPARE(prunedIndices(m, "features.stem.conv.weight"), (std::vector<std::int64_t>{0, 1, 2, 3}));
        applyMasks(w, m);
        QuantSpec q = QuantSpec::defaults(plan, 8);
        q.input = FixedFormat{8, 2};
        q.ops.at("features.stem.conv").weight = FixedFormat{6, 2};
        q.ops.at("features.stem.conv").output = FixedFormat{8, 4};
        q.ops.at("features.stem.act").output = FixedFormat{5, 3};
        q.ops.at("head.out").weight = FixedFormat{4, 2};
        const IntegerReference ref(plan, w, q);
        const Cost c = quantisedCost(ref);
        // conv: 18 MACs, a = input 8 bits, w = 6 bits, zeros 4 / 18, fan-in 9.
        const double conv = 18.0 * ((1 - 4.0 / 18) * 48 + 14 + std::log2(9.0));
        // out: 4 MACs, a = ReLU output 5 bits, w = 4 bits, no zeros, fan-in 2.
        const double out = 4.0 * (20 + 9 + 1);
        QCOMPARE(c.layers.size(), std::size_t(2));
        QVERIFY(std::abs(c.layers[0].bops - conv) < 1e-9);
        QVERIFY(std::abs(c.layers[1].bops - out) < 1e-9);
        QVERIFY(std::abs(c.bops - conv - out) < 1e-9);
    }
};

QTEST_GUILESS_MAIN(TestPrune)
#include "tst_prune.moc"
