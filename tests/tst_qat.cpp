// braggnac-test-libs: braggnac_nn braggnac_compress torch
// The fake-quantised LibTorch forward equals the integer reference bit for bit: both built-ins
// and random specs (every layer kind) at 6, 8, 12 and 16 bits with calibrated formats, random
// peak patches and uniform noise patches, both rounding/overflow modes; gradients flow through
// the straight-through estimator.
#include <random>
#include <set>

#include <torch/torch.h>

#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "core/nn/model.h"
#include "core/nn/qat.h"
#include "core/nn/torch_net.h"
#include "tests/randomspec.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {

std::vector<float> patches(std::size_t n, int s, std::uint32_t seed, bool noise)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> c(s * 0.3f, s * 0.7f), bg(0.0f, 30.0f), sig(0.8f, 2.0f), u(0.0f, 1.0f);
    std::vector<float> p(n * std::size_t(s) * std::size_t(s));
    for (std::size_t i = 0; i < n; ++i) {
        const float r0 = c(rng), c0 = c(rng), sg = sig(rng);
        for (int y = 0; y < s; ++y)
            for (int x = 0; x < s; ++x) {
                const float d2 = (y - r0) * (y - r0) + (x - c0) * (x - c0);
                p[(i * std::size_t(s) + std::size_t(y)) * std::size_t(s) + std::size_t(x)] =
                    noise ? u(rng) : 1000.0f * std::exp(-d2 / (2 * sg * sg)) + bg(rng);
            }
    }
    return p;
}

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

ArchSpec specFor(int index)
{
    if (index == 0)
        return builtinArch("braggnn");
    if (index == 1)
        return builtinArch("nac");
    std::mt19937 rng(4242);
    ArchSpec s;
    for (int i = 0; i <= index - 2; ++i)
        s = randomArchSpec(rng, i);
    return s;
}

/// Mismatching raw values between the fake-quantised trace and the integer reference's, over
/// every op of every patch; `distinct` collects the reference's raw values of op `watch`.
std::size_t traceMismatches(const IntegerReference &ref, const FakeQuantForward &fq, const float *raw, std::size_t n,
                            int s, std::size_t *total, std::set<std::int64_t> *distinct = nullptr, int watch = 0)
{
    const torch::Tensor x = normalisePatches(raw, n, s);
    const auto trace = fq.forwardTrace(x);
    std::size_t bad = 0;
    for (std::size_t p = 0; p < n; ++p) {
        const auto expect = ref.traceNormalised(x[int64_t(p)].contiguous().data_ptr<float>());
        for (std::size_t i = 0; i < expect.size(); ++i) {
            const torch::Tensor got = trace[i][int64_t(p)].flatten().contiguous();
            if (std::size_t(got.numel()) != expect[i].size())
                return std::size_t(-1);
            const std::int64_t *g = got.data_ptr<std::int64_t>();
            for (std::size_t k = 0; k < expect[i].size(); ++k) {
                bad += g[k] != expect[i][k];
                if (distinct && int(i) == watch)
                    distinct->insert(expect[i][k]);
            }
            *total += expect[i].size();
        }
    }
    return bad;
}

} // namespace

class TestQat : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { torch::set_num_threads(1); }

    void bitExact_data()
    {
        QTest::addColumn<int>("index");
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("mode"); // 0 RND/SAT, 1 TRN/WRAP on the activations
        for (int bits : {6, 8, 12, 16}) {
            QTest::newRow(qPrintable(QString("braggnn %1").arg(bits))) << 0 << bits << 0;
            QTest::newRow(qPrintable(QString("nac %1").arg(bits))) << 1 << bits << 0;
        }
        QTest::newRow("nac 8 trn/wrap") << 1 << 8 << 1;
        QTest::newRow("braggnn 8 trn/wrap") << 0 << 8 << 1;
        for (int i = 0; i < 10; ++i)
            QTest::newRow(qPrintable(QString("random%1 %2").arg(i).arg(i % 2 ? 8 : 12))) << 2 + i << (i % 2 ? 8 : 12) << int(i % 3 == 2);
    }
    void bitExact()
    {
        QFETCH(int, index);
        QFETCH(int, bits);
        QFETCH(int, mode);
        const ArchSpec spec = specFor(index);
        Model m(spec, 50 + std::uint64_t(index));
        perturbNorms(m, 9);
        const LayerPlan plan = LayerPlan::lower(spec);
        const int s = spec.inputSize;
        const auto calib = patches(128, s, 7, false);
        const NamedTensors weights = m.namedParameters();
        QuantSpec q = calibratedQuantSpec(plan, weights, calib.data(), 128, bits, mode ? 0 : 1);
        if (mode)
            for (auto &[name, o] : q.ops) {
                o.output.rounding = Rounding::Truncate;
                o.output.overflow = Overflow::Wrap;
                o.bias.rounding = Rounding::Truncate;
            }
        const IntegerReference ref(plan, weights, q);
        const FakeQuantForward fq(m.impl().net, q);
        std::size_t mismatches = 0, total = 0, outputs = 0;
        std::set<std::int64_t> distinct;
        for (bool noise : {false, true}) {
            const std::size_t n = 48;
            const auto p = patches(n, s, 100 + std::uint32_t(index) + (noise ? 1 : 0), noise);
            // Final outputs through the batched entry points ...
            const auto expect = ref.forwardRaw(p.data(), n, 2);
            const torch::Tensor got = fq.forwardRaw(normalisePatches(p.data(), n, s)).contiguous();
            for (std::size_t k = 0; k < 2 * n; ++k)
                outputs += got.data_ptr<std::int64_t>()[k] != expect[k];
            // ... and every op's raw output, layer by layer.
            mismatches += traceMismatches(ref, fq, p.data(), n, s, &total, &distinct, 0);
        }
        QCOMPARE(outputs, std::size_t(0));
        QVERIFY2(mismatches == 0, qPrintable(QString("%1 of %2 raw values differ").arg(mismatches).arg(total)));
        QVERIFY2(distinct.size() >= 20, qPrintable(QString("only %1 distinct stem outputs").arg(distinct.size())));
    }

    void detectsAOneModeDifference_data()
    {
        QTest::addColumn<QString>("layer");
        QTest::newRow("layer norm output") << "features.b1_l1.norm";
        QTest::newRow("gelu output") << "features.b2_l0.act";
        QTest::newRow("first conv output") << "features.stem.conv";
    }
    void detectsAOneModeDifference()
    {
        // The comparison is sensitive: flipping one op's rounding in the reference only makes
        // the two disagree.
        QFETCH(QString, layer);
        const ArchSpec spec = builtinArch("nac");
        Model m(spec, 21);
        perturbNorms(m, 22);
        const LayerPlan plan = LayerPlan::lower(spec);
        const auto calib = patches(128, 11, 7, false);
        const NamedTensors weights = m.namedParameters();
        const QuantSpec q = calibratedQuantSpec(plan, weights, calib.data(), 128, 8);
        QuantSpec flipped = q;
        flipped.ops.at(layer.toStdString()).output.rounding = Rounding::Truncate;
        const IntegerReference ref(plan, weights, flipped);
        const FakeQuantForward fq(m.impl().net, q);
        const auto p = patches(24, 11, 5, false);
        std::size_t total = 0;
        const std::size_t mismatches = traceMismatches(ref, fq, p.data(), 24, 11, &total);
        QVERIFY2(mismatches > 0 && mismatches != std::size_t(-1), "a rounding change went unnoticed");
    }

    void straightThroughGradients()
    {
        const ArchSpec spec = builtinArch("nac");
        Model m(spec, 3);
        perturbNorms(m, 4);
        const LayerPlan plan = LayerPlan::lower(spec);
        const auto calib = patches(64, 11, 1, false);
        const QuantSpec q = calibratedQuantSpec(plan, m.namedParameters(), calib.data(), 64, 8);
        const FakeQuantForward fq(m.impl().net, q);
        const auto p = patches(32, 11, 2, false);
        const torch::Tensor y = fq.forward(normalisePatches(p.data(), 32, 11));
        QCOMPARE(y.scalar_type(), torch::kDouble);
        y.pow(2).sum().backward();
        int nonzero = 0, count = 0;
        for (const auto &prm : m.impl().net->named_parameters(true)) {
            ++count;
            QVERIFY2(prm.value().grad().defined(), prm.key().c_str());
            QVERIFY(torch::isfinite(prm.value().grad()).all().item<bool>());
            nonzero += prm.value().grad().abs().sum().item<double>() > 0;
        }
        QCOMPARE(nonzero, count); // every parameter (incl. folded batch norm gamma/beta) gets a gradient
    }
};

QTEST_GUILESS_MAIN(TestQat)
#include "tst_qat.moc"
