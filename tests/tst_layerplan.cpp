// braggnac-test-libs: braggnac_nn braggnac_cost torch
// The layer plan: parameters, MACs and cost (both conventions, several bits and sparsities) equal
// the numbers the pre-plan code produced (golden values captured from it), shapes agree with
// ArchSpec::shapes(), and the LibTorch module's state_dict keys and shapes equal the plan's for
// the built-ins and 50 random specs; the generated TorchScript (one statement per plan op)
// computes exactly what the module computes; per-op cost with real bits and zero fractions.
#include <random>

#include <torch/script.h>
#include <torch/torch.h>

#include <QTemporaryDir>
#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/common/error.h"
#include "core/cost/cost.h"
#include "core/nn/model.h"
#include "core/nn/torch_net.h"
#include "tests/randomspec.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {

std::vector<ArchSpec> testSpecs()
{
    std::vector<ArchSpec> specs = {builtinArch("braggnn"), builtinArch("nac")};
    std::mt19937 rng(20261201);
    for (int i = 0; i < 50; ++i)
        specs.push_back(randomArchSpec(rng, i));
    return specs;
}

QString shapeText(const std::vector<std::int64_t> &s)
{
    QStringList parts;
    for (auto d : s)
        parts << QString::number(d);
    return "[" + parts.join(",") + "]";
}

} // namespace

class TestLayerPlan : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { torch::set_num_threads(1); }

    void costEqualsPrePlanCode_data()
    {
        QTest::addColumn<QString>("arch");
        QTest::addColumn<int>("convention");
        QTest::addColumn<int>("weightBits");
        QTest::addColumn<int>("actBits");
        QTest::addColumn<double>("sparsity");
        QTest::addColumn<qint64>("params");
        QTest::addColumn<qint64>("macs");
        QTest::addColumn<double>("bops");
        // Captured from the cost model as it was before the layer plan (commit d0e549b).
        QTest::newRow("braggnn standard w32 a32 s0.0") << "braggnn" << 0 << 32 << 32 << 0.0 << qint64(45394) << qint64(2112945) << 2314301607.8275571;
        QTest::newRow("braggnn standard w32 a32 s0.8") << "braggnn" << 0 << 32 << 32 << 0.8 << qint64(45394) << qint64(2112945) << 932737191.82755649;
        QTest::newRow("braggnn standard w8 a9 s0.0") << "braggnn" << 0 << 8 << 9 << 0.0 << qint64(45394) << qint64(2112945) << 207614970.82755667;
        QTest::newRow("braggnn standard w8 a9 s0.8") << "braggnn" << 0 << 8 << 9 << 0.8 << qint64(45394) << qint64(2112945) << 110473722.8275567;
        QTest::newRow("braggnn standard w4 a5 s0.0") << "braggnn" << 0 << 4 << 5 << 0.0 << qint64(45394) << qint64(2112945) << 79111674.8275567;
        QTest::newRow("braggnn standard w4 a5 s0.8") << "braggnn" << 0 << 4 << 5 << 0.8 << qint64(45394) << qint64(2112945) << 52127994.827556692;
        QTest::newRow("braggnn nac-opt w32 a32 s0.0") << "braggnn" << 1 << 32 << 32 << 0.0 << qint64(45394) << qint64(2112945) << 1106144385.5261674;
        QTest::newRow("braggnn nac-opt w32 a32 s0.8") << "braggnn" << 1 << 32 << 32 << 0.8 << qint64(45394) << qint64(2112945) << 933850241.52616739;
        QTest::newRow("braggnn nac-opt w8 a9 s0.0") << "braggnn" << 1 << 8 << 9 << 0.0 << qint64(45394) << qint64(2112945) << 112210184.52616745;
        QTest::newRow("braggnn nac-opt w8 a9 s0.8") << "braggnn" << 1 << 8 << 9 << 0.8 << qint64(45394) << qint64(2112945) << 100095752.52616747;
        QTest::newRow("braggnn nac-opt w4 a5 s0.0") << "braggnn" << 1 << 4 << 5 << 0.0 << qint64(45394) << qint64(2112945) << 44455116.52616746;
        QTest::newRow("braggnn nac-opt w4 a5 s0.8") << "braggnn" << 1 << 4 << 5 << 0.8 << qint64(45394) << qint64(2112945) << 41089996.52616746;
        QTest::newRow("nac standard w32 a32 s0.0") << "nac" << 0 << 32 << 32 << 0.0 << qint64(17226) << qint64(224652) << 245716847.03361169;
        QTest::newRow("nac standard w32 a32 s0.8") << "nac" << 0 << 32 << 32 << 0.8 << qint64(17226) << qint64(224652) << 69903419.833611637;
        QTest::newRow("nac standard w8 a9 s0.0") << "nac" << 0 << 8 << 9 << 0.0 << qint64(17226) << qint64(224652) << 21342899.033611659;
        QTest::newRow("nac standard w8 a9 s0.8") << "nac" << 0 << 8 << 9 << 0.8 << qint64(17226) << qint64(224652) << 8981017.4336116575;
        QTest::newRow("nac standard w4 a5 s0.0") << "nac" << 0 << 4 << 5 << 0.0 << qint64(17226) << qint64(224652) << 7842419.0336116562;
        QTest::newRow("nac standard w4 a5 s0.8") << "nac" << 0 << 4 << 5 << 0.8 << qint64(17226) << qint64(224652) << 4408563.0336116562;
        QTest::newRow("nac nac-opt w32 a32 s0.0") << "nac" << 1 << 32 << 32 << 0.0 << qint64(17226) << qint64(224652) << 85207871.968216002;
        QTest::newRow("nac nac-opt w32 a32 s0.8") << "nac" << 1 << 32 << 32 << 0.8 << qint64(17226) << qint64(224652) << 21618291.168216001;
        QTest::newRow("nac nac-opt w8 a9 s0.0") << "nac" << 1 << 8 << 9 << 0.0 << qint64(17226) << qint64(224652) << 7661495.9682160001;
        QTest::newRow("nac nac-opt w8 a9 s0.8") << "nac" << 1 << 8 << 9 << 0.8 << qint64(17226) << qint64(224652) << 3190353.5682160007;
        QTest::newRow("nac nac-opt w4 a5 s0.0") << "nac" << 1 << 4 << 5 << 0.0 << qint64(17226) << qint64(224652) << 3004055.9682160006;
        QTest::newRow("nac nac-opt w4 a5 s0.8") << "nac" << 1 << 4 << 5 << 0.8 << qint64(17226) << qint64(224652) << 1762071.9682160006;
    }
    void costEqualsPrePlanCode()
    {
        QFETCH(QString, arch);
        QFETCH(int, convention);
        QFETCH(int, weightBits);
        QFETCH(int, actBits);
        QFETCH(double, sparsity);
        QFETCH(qint64, params);
        QFETCH(qint64, macs);
        QFETCH(double, bops);
        CostOptions o;
        o.weightBits = weightBits;
        o.activationBits = actBits;
        o.sparsity = sparsity;
        o.convention = convention ? CostConvention::NacOpt : CostConvention::Standard;
        const ArchSpec spec = builtinArch(arch.toStdString());
        const Cost c = computeCost(spec, o);
        QCOMPARE(qint64(c.params), params);
        QCOMPARE(qint64(c.macs), macs);
        QCOMPARE(c.bops, bops); // same operations in the same order: bit-identical double
        const LayerPlan plan = LayerPlan::lower(spec);
        QCOMPARE(qint64(plan.params()), params);
        QCOMPARE(qint64(plan.macs()), macs);
        // The plan-based overload with no per-op entries is the same computation.
        QCOMPARE(computeCost(plan, o, {}).bops, bops);
    }

    void builtinStructure()
    {
        const LayerPlan p = LayerPlan::lower(builtinArch("braggnn"));
        QStringList names;
        for (const auto &op : p.ops)
            names << QString::fromStdString(op.name);
        QCOMPARE(names.join(" "),
                 QStringLiteral("features.stem.conv features.b0.theta features.b0.phi features.b0.g "
                                "features.b0.qk features.b0.softmax features.b0.sv features.b0.out "
                                "features.b0.add features.b0.act features.b1_l0.conv features.b1_l0.act "
                                "features.b1_l1.conv features.b1_l1.act flatten head.h0.linear head.h0.act "
                                "head.h1.linear head.h1.act head.h2.linear head.h2.act head.h3.linear "
                                "head.h3.act head.out"));
        const PlanOp &qk = p.ops[std::size_t(p.find("features.b0.qk"))];
        QCOMPARE(qk.inputs, (std::vector<int>{p.find("features.b0.theta"), p.find("features.b0.phi")}));
        QCOMPARE(qk.outShape, (std::vector<std::int64_t>{81, 81}));
        QCOMPARE(qk.macs, qint64(81 * 81 * 32));
        const PlanOp &add = p.ops[std::size_t(p.find("features.b0.add"))];
        QCOMPARE(add.inputs, (std::vector<int>{p.find("features.b0.out"), p.find("features.stem.conv")}));
        const PlanOp &sv = p.ops[std::size_t(p.find("features.b0.sv"))];
        QCOMPARE(sv.outShape, (std::vector<std::int64_t>{32, 9, 9}));
        QCOMPARE(p.ops[std::size_t(p.find("flatten"))].outShape, (std::vector<std::int64_t>{200}));
        QCOMPARE(p.output().outShape, (std::vector<std::int64_t>{2}));
        QCOMPARE(p.ops[std::size_t(p.find("features.b1_l0.act"))].act, Activation::LeakyReLU);

        const LayerPlan n = LayerPlan::lower(builtinArch("nac"));
        const PlanOp &bn = n.ops[std::size_t(n.find("features.b0_l1.norm"))];
        QCOMPARE(bn.kind, OpKind::BatchNorm);
        QCOMPARE(bn.params, qint64(64));
        QCOMPARE(int(bn.tensors.size()), 5);
        QCOMPARE(bn.tensors[4].key, std::string("features.b0_l1.norm.num_batches_tracked"));
        QVERIFY(bn.tensors[4].buffer && bn.tensors[4].integer);
        const PlanOp &ln = n.ops[std::size_t(n.find("features.b1_l1.norm"))];
        QCOMPARE(ln.kind, OpKind::LayerNorm);
        QCOMPARE(ln.outShape, (std::vector<std::int64_t>{32, 7, 7}));
        QCOMPARE(ln.params, qint64(2 * 32 * 7 * 7));
    }

    void shapesAgreeWithSpec()
    {
        for (const ArchSpec &spec : testSpecs()) {
            const LayerPlan p = LayerPlan::lower(spec);
            const auto shapes = spec.shapes();
            // Every conv layer / dense layer of the spec is one Conv / Linear op with its field.
            std::size_t si = 0;
            for (const auto &op : p.ops) {
                if (op.kind != OpKind::Conv && op.kind != OpKind::Linear)
                    continue;
                if (op.label != op.field) // attention 1x1 convs: one Shape for the whole block
                    continue;
                while (si < shapes.size() && shapes[si].field != op.field)
                    ++si;
                QVERIFY2(si < shapes.size(), (spec.name + " " + op.field).c_str());
                QCOMPARE(op.outShape[0], std::int64_t(shapes[si].channels));
                if (op.kind == OpKind::Conv) {
                    QCOMPARE(op.outShape[1], std::int64_t(shapes[si].size));
                    QCOMPARE(op.kernel, shapes[si].kernel);
                }
            }
            QCOMPARE(p.ops[std::size_t(p.find("flatten"))].outShape[0], std::int64_t(spec.flattenFeatures()));
            // Inputs refer to earlier ops, shapes chain.
            for (std::size_t i = 0; i < p.ops.size(); ++i) {
                const auto &op = p.ops[i];
                for (int in : op.inputs)
                    QVERIFY(in < int(i));
                const auto &prev = op.inputs[0] < 0 ? std::vector<std::int64_t>{1, spec.inputSize, spec.inputSize}
                                                     : p.ops[std::size_t(op.inputs[0])].outShape;
                QCOMPARE(op.inShape, prev);
            }
        }
    }

    void torchNamesAndShapesEqualPlan()
    {
        int checked = 0;
        for (const ArchSpec &spec : testSpecs()) {
            const LayerPlan plan = LayerPlan::lower(spec);
            Model m(spec, 7);
            auto &net = m.impl().net;
            std::vector<PlanTensor> params, buffers;
            for (const auto &t : plan.tensors())
                (t.buffer ? buffers : params).push_back(t);
            const auto np = net->named_parameters(true);
            const auto nb = net->named_buffers(true);
            QCOMPARE(int(np.size()), int(params.size()));
            QCOMPARE(int(nb.size()), int(buffers.size()));
            for (std::size_t i = 0; i < params.size(); ++i) {
                QCOMPARE(QString::fromStdString(np[i].key()), QString::fromStdString(params[i].key));
                QCOMPARE(shapeText(np[i].value().sizes().vec()), shapeText(params[i].shape));
            }
            for (std::size_t i = 0; i < buffers.size(); ++i) {
                QCOMPARE(QString::fromStdString(nb[i].key()), QString::fromStdString(buffers[i].key));
                QCOMPARE(shapeText(nb[i].value().sizes().vec()), shapeText(buffers[i].shape));
                QCOMPARE(nb[i].value().scalar_type() == torch::kLong, buffers[i].integer);
            }
            QCOMPARE(qint64(m.parameterCount()), qint64(plan.params()));
            QCOMPARE(qint64(computeCost(spec).params), qint64(plan.params()));
            // The torch-free accessor: every float tensor, with the plan's shapes.
            const NamedTensors named = m.namedParameters();
            for (const auto &t : plan.tensors()) {
                if (t.integer) {
                    QVERIFY(!named.count(t.key));
                    continue;
                }
                QVERIFY2(named.count(t.key), t.key.c_str());
                QCOMPARE(named.at(t.key).shape, t.shape);
                QCOMPARE(std::int64_t(named.at(t.key).values.size()), t.numel());
            }
            ++checked;
        }
        QCOMPARE(checked, 52);
    }

    void torchScriptMatchesModule()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        auto specs = testSpecs();
        specs.resize(22); // built-ins and 20 random specs: each script compiles in ~0.1 s
        torch::manual_seed(3);
        for (const ArchSpec &spec : specs) {
            Model m(spec, 11);
            {
                // Non-default norm parameters and statistics so every tensor matters.
                torch::NoGradGuard g;
                for (auto &p : m.impl().net->named_parameters(true))
                    if (p.key().find(".norm.") != std::string::npos)
                        p.value().copy_(torch::rand_like(p.value()) + 0.5);
                for (auto &b : m.impl().net->named_buffers(true))
                    if (b.value().is_floating_point())
                        b.value().copy_(torch::rand_like(b.value()) + 0.5);
            }
            m.impl().net->eval();
            const std::string path = (dir.path() + "/" + QString::fromStdString(spec.name) + ".pt").toStdString();
            m.exportTorchScript(path);
            auto script = torch::jit::load(path);
            torch::InferenceMode im;
            const auto x = torch::rand({5, 1, spec.inputSize, spec.inputSize});
            const auto a = m.impl().net->forward(x);
            const auto b = script.forward({x}).toTensor();
            QVERIFY2(torch::equal(a, b), spec.name.c_str());
        }
    }

    void costWithPerOpPrecision()
    {
        // Hand-computed: stem conv 1->2, k 1 on 3x3, then linear 18 -> 2 (output).
        ArchSpec s;
        s.name = "tiny";
        s.inputSize = 3;
        s.stem = {2, 1, Norm::None, Activation::ReLU};
        const LayerPlan p = LayerPlan::lower(s);
        QCOMPARE(p.ops.size(), std::size_t(4)); // conv, act, flatten, out
        std::map<std::string, OpPrecision> bits;
        bits["features.stem.conv"] = {4, 8, 0.5};
        bits["head.out"] = {6, 5, 0.25};
        const Cost c = computeCost(p, {}, bits);
        // conv: MACs = 2 * 9 * 1 * 1 = 18; BOPs = 18 * [(1 - 0.5) * 8 * 4 + 8 + 4 + log2(1)] = 18 * 28
        // out:  MACs = 18 * 2 = 36;        BOPs = 36 * [(0.75) * 5 * 6 + 5 + 6 + log2(18)]
        const double expect = 18.0 * 28 + 36.0 * (0.75 * 30 + 11 + std::log2(18.0));
        QCOMPARE(c.macs, qint64(54));
        QVERIFY(std::abs(c.bops - expect) < 1e-9);
        QCOMPARE(c.layers[0].bops, 18.0 * 28);
        // Unlisted ops fall back to the options' bits.
        const Cost d = computeCost(p, {}, {{"head.out", {6, 5, 0.25}}});
        QVERIFY(std::abs(d.layers[0].bops - 18.0 * (32 * 32 + 64)) < 1e-9);
        const QString msg = inputErrorMessage([&] { computeCost(p, {}, {{"head.h9.linear", {}}}); });
        QCOMPARE(msg, QStringLiteral("cost: layer 'head.h9.linear': not an operation of the plan of 'tiny'"));
        QVERIFY(threwInputError(inputErrorMessage([&] { computeCost(p, {}, {{"head.out", {6, 5, 1.5}}}); })));
    }

    void badSpecNamesField()
    {
        ArchSpec s = builtinArch("nac");
        s.forceOneByOne = false;
        s.blocks[2].layers[1].kernel = 9;
        const QString msg = inputErrorMessage([&] { LayerPlan::lower(s); });
        QVERIFY2(msg.startsWith("spec: blocks[2].layers[1].kernel: "), qPrintable(msg));
    }
};

QTEST_GUILESS_MAIN(TestLayerPlan)
#include "tst_layerplan.moc"
