// braggnac-test-libs: braggnac_compress
// Fixed-point CPU engine: every raw output bit-exact with the integer reference (the definition)
// for braggnn, nac, random specs (every layer kind), a pruned network, at 4-12 bits, with
// saturating integer bits, wrap / truncate modes and narrow (wrapping) accumulators, on every
// instruction set this CPU has, on 1 and 2 threads and a patch count that is not a multiple of
// the 16-patch block; formats at the ends of the range (their ops' exact fallbacks); the
// hand-computed tiny network; the whole-network fallback (16 bits) and the count of non-zero
// MACs of a pruned network.
#include <cmath>
#include <random>

#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/common/error.h"
#include "core/compress/fixedengine.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "tests/randomspec.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {

/// Random weights of a plausible scale for every tensor of the plan (conv / linear ~ 1/sqrt(fan
/// in), norms near 1 / 0, running variance near 1), torch-free.
NamedTensors randomWeights(const LayerPlan &plan, std::uint32_t seed)
{
    std::mt19937 rng(seed);
    NamedTensors w;
    for (const PlanTensor &t : plan.tensors()) {
        NamedTensor n;
        n.shape = t.shape;
        n.values.resize(std::size_t(t.numel()));
        const std::string &k = t.key;
        auto ends = [&](const char *s) {
            const std::string e(s);
            return k.size() >= e.size() && k.compare(k.size() - e.size(), e.size(), e) == 0;
        };
        const bool norm = k.find(".norm.") != std::string::npos;
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        if (t.integer) {
            std::fill(n.values.begin(), n.values.end(), 0.0f);
        } else if (norm && ends(".running_var")) {
            for (auto &v : n.values)
                v = 0.9f + 0.2f * (u(rng) + 1.0f) / 2;
        } else if (norm && ends(".weight")) {
            for (auto &v : n.values)
                v = 1.0f + 0.25f * u(rng);
        } else if (norm) {
            for (auto &v : n.values)
                v = 0.1f * u(rng);
        } else {
            std::int64_t fanIn = 1;
            for (std::size_t d = 1; d < t.shape.size(); ++d)
                fanIn *= t.shape[d];
            const float a = ends(".bias") ? 0.1f : 1.5f / std::sqrt(float(fanIn));
            for (auto &v : n.values)
                v = a * u(rng);
        }
        w[k] = std::move(n);
    }
    return w;
}

/// n patches of S x S: a Gaussian peak at a random sub-pixel centre on a noisy background, and
/// a few awkward ones (constant, NaN pixel, huge range).
std::vector<float> peakPatches(std::size_t n, int s, std::uint32_t seed)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> c(s * 0.3f, s * 0.7f), noise(0.0f, 30.0f), sig(0.6f, 2.2f);
    const std::size_t area = std::size_t(s) * std::size_t(s);
    std::vector<float> p(n * area);
    for (std::size_t i = 0; i < n; ++i) {
        const float r0 = c(rng), c0 = c(rng), sg = sig(rng);
        for (int y = 0; y < s; ++y)
            for (int x = 0; x < s; ++x) {
                const float d2 = (y - r0) * (y - r0) + (x - c0) * (x - c0);
                p[i * area + std::size_t(y * s + x)] = 1000.0f * std::exp(-d2 / (2 * sg * sg)) + noise(rng);
            }
    }
    if (n > 3) {
        std::fill(p.begin(), p.begin() + std::ptrdiff_t(area), 7.0f); // constant -> 0
        p[area + 5] = std::numeric_limits<float>::quiet_NaN();
        p[2 * area + 3] = 1e30f;
    }
    return p;
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

/// Zero `fraction` of every conv / linear weight tensor (smallest magnitudes first) and the
/// whole first output channel of the stem, as magnitude and structured pruning leave them.
void prune(const LayerPlan &plan, NamedTensors &w, double fraction)
{
    for (const PlanOp &op : plan.ops) {
        if (op.kind != OpKind::Conv && op.kind != OpKind::Linear)
            continue;
        auto &v = w.at(op.tensor("weight")->key).values;
        std::vector<float> mags(v.size());
        for (std::size_t i = 0; i < v.size(); ++i)
            mags[i] = std::abs(v[i]);
        std::vector<float> sorted = mags;
        std::sort(sorted.begin(), sorted.end());
        const float cut = sorted[std::size_t(double(sorted.size() - 1) * fraction)];
        for (std::size_t i = 0; i < v.size(); ++i)
            if (mags[i] <= cut)
                v[i] = 0.0f;
    }
    auto &stem = w.at("features.stem.conv.weight").values;
    const std::size_t per = stem.size() / std::size_t(plan.ops[0].outShape[0]);
    std::fill(stem.begin(), stem.begin() + std::ptrdiff_t(per), 0.0f);
}

std::vector<FixedEngine::Isa> isas()
{
    std::vector<FixedEngine::Isa> v;
    for (auto i : {FixedEngine::Isa::Portable, FixedEngine::Isa::Avx2, FixedEngine::Isa::Avx512Vnni})
        if (FixedEngine::supported(i))
            v.push_back(i);
    return v;
}

/// How many op outputs of the reference trace sit at their format's min or max (saturation).
std::size_t saturatedValues(const IntegerReference &ref, const float *patches, std::size_t n, int area)
{
    std::size_t count = 0;
    for (std::size_t p = 0; p < n; ++p) {
        const auto t = ref.trace(patches + p * std::size_t(area));
        for (std::size_t i = 0; i + 1 < t.size(); ++i) {
            const FixedFormat &f = ref.format(int(i));
            for (auto v : t[i])
                count += v == f.maxRaw() || v == f.minRaw();
        }
    }
    return count;
}

enum Variant { Calibrated = 0, Saturating = 1, WrapTruncate = 2, NarrowAccumulator = 3, Pruned = 4 };

} // namespace

class TestFixedEngine : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void bitExact_data()
    {
        QTest::addColumn<int>("spec");    // 0 braggnn, 1 nac, >= 2 random specs
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("variant"); // Variant
        for (int bits : {4, 6, 8, 12})
            for (int v : {Calibrated, Saturating, WrapTruncate, NarrowAccumulator, Pruned}) {
                QTest::newRow(qPrintable(QString("nac %1 bits v%2").arg(bits).arg(v))) << 1 << bits << v;
            }
        for (int bits : {6, 8})
            for (int v : {Calibrated, Saturating, Pruned})
                QTest::newRow(qPrintable(QString("braggnn %1 bits v%2").arg(bits).arg(v))) << 0 << bits << v;
        for (int i = 0; i < 14; ++i)
            QTest::newRow(qPrintable(QString("random%1").arg(i))) << 2 + i << (4 + 2 * (i % 4)) << (i % 5);
    }
    void bitExact()
    {
        QFETCH(int, spec);
        QFETCH(int, bits);
        QFETCH(int, variant);
        const ArchSpec as = specFor(spec);
        const LayerPlan plan = LayerPlan::lower(as);
        const int s = as.inputSize;
        NamedTensors w = randomWeights(plan, 17 + std::uint32_t(spec));
        if (variant == Pruned)
            prune(plan, w, 0.8);
        const auto calib = peakPatches(64, s, 100 + std::uint32_t(spec));
        QuantSpec q = calibratedQuantSpec(plan, w, calib.data(), 64, bits, variant == Saturating ? -3 : 1);
        if (variant == WrapTruncate || variant == NarrowAccumulator) {
            int k = 0;
            for (auto &[name, o] : q.ops) {
                if (variant == WrapTruncate) {
                    o.output.rounding = Rounding::Truncate;
                    if (k % 2 == 0) {
                        o.output.overflow = Overflow::Wrap;
                        o.output.integer -= 2; // values that wrap
                    }
                    o.bias.rounding = Rounding::Truncate;
                } else if (o.kind == OpKind::Conv || o.kind == OpKind::Linear || o.kind == OpKind::MatMulQK
                           || o.kind == OpKind::MatMulSV) {
                    o.accumulator = k % 2 == 0 ? bits + 6 : 32; // wraps
                }
                ++k;
            }
            q.input.overflow = Overflow::Wrap;
        }
        const IntegerReference ref(plan, w, q);
        const std::size_t n = spec == 0 ? 37 : 100; // not a multiple of 16; braggnn's reference is slow
        const auto p = peakPatches(n, s, 7 + std::uint32_t(spec) + std::uint32_t(bits));
        const auto want = ref.forwardRaw(p.data(), n, 1);
        if (variant == Saturating || variant == WrapTruncate)
            QVERIFY(saturatedValues(ref, p.data(), std::min<std::size_t>(n, 8), s * s) > 0);
        for (FixedEngine::Isa isa : isas()) {
            const FixedEngine engine(plan, w, q, isa);
            QCOMPARE(engine.isa(), isa);
            if (bits <= 8)
                QVERIFY2(engine.vectorised(), engine.fallbackReason().c_str());
            for (int threads : {1, 2}) {
                const auto got = engine.forwardRaw(p.data(), n, threads);
                QCOMPARE(got.size(), want.size());
                std::size_t bad = 0;
                for (std::size_t i = 0; i < want.size(); ++i)
                    bad += got[i] != want[i];
                QVERIFY2(bad == 0, qPrintable(QString("%1 of %2 raw outputs differ (%3, %4 threads)")
                                                  .arg(bad).arg(want.size()).arg(FixedEngine::isaName(isa)).arg(threads)));
            }
            QCOMPARE(engine.predict(p.data(), n, 2), ref.predict(p.data(), n, 1));
        }
    }

    void edgeFormats()
    {
        // Formats at the ends of the allowed range send single ops to their exact fallbacks:
        // an input with 32 fraction bits that wraps (quantised in double, as the reference), a
        // LeakyReLU slope with 28 fraction bits (x << 28 overflows int32: lane by lane), a
        // residual Add of 40 and fewer fraction bits (lane by lane), layer norms whose beta
        // alignment overflows int64 in every lane (the 128-bit path); conv / dense sums wrap at
        // 32 bits. Still bit-exact.
        for (const char *name : {"braggnn", "nac"}) {
            const LayerPlan plan = LayerPlan::lower(builtinArch(name));
            const NamedTensors w = randomWeights(plan, 31);
            const auto calib = peakPatches(32, 11, 9);
            QuantSpec q = calibratedQuantSpec(plan, w, calib.data(), 32, 8);
            q.input = {12, -20, Rounding::RoundHalfUp, Overflow::Wrap};
            for (const PlanOp &op : plan.ops)
                if (op.kind == OpKind::Conv || op.kind == OpKind::Linear)
                    q.ops.at(op.name).accumulator = 32; // biases aligned to 2^-37 and finer wrap, as the reference's
            int leaky = 0, adds = 0;
            for (const PlanOp &op : plan.ops) {
                if (op.kind == OpKind::Activation && op.act == Activation::LeakyReLU) {
                    q.ops.at(op.name).internal.at("slope") = {8, -20};
                    ++leaky;
                }
                if (op.kind == OpKind::LayerNorm) {
                    q.ops.at(op.name).weight = {8, -30};
                    q.ops.at(op.name).bias = {8, 24, Rounding::Truncate};
                }
                adds += op.kind == OpKind::Add;
            }
            if (std::string(name) == "braggnn")
                q.ops.at("features.stem.conv").output = {8, -32};
            const IntegerReference ref(plan, w, q);
            const auto p = peakPatches(std::string(name) == "braggnn" ? 20 : 50, 11, 12);
            const std::size_t n = p.size() / 121;
            const auto want = ref.forwardRaw(p.data(), n, 1);
            for (FixedEngine::Isa isa : isas()) {
                const FixedEngine e(plan, w, q, isa);
                QVERIFY2(e.vectorised(), e.fallbackReason().c_str());
                QCOMPARE(e.forwardRaw(p.data(), n, 2), want);
                int laneAct = 0, laneAdd = 0;
                for (const auto &d : e.describe()) {
                    laneAct += d.find("lane by lane with the integer reference's arithmetic (activation)") != std::string::npos;
                    laneAdd += d.find("lane by lane with the integer reference's arithmetic (add)") != std::string::npos;
                }
                QCOMPARE(laneAct, leaky);
                QCOMPARE(laneAdd, adds);
            }
        }
    }

    void layerKinds()
    {
        // braggnn runs its attention softmax / matmuls lane by lane, its convs and dense layers
        // as int16-pair dots; nac's LayerNorms in int64 over 16 lanes, its GELUs as int32-lane
        // tables.
        auto countOf = [](const FixedEngine &e, const char *what) {
            int n = 0;
            for (const auto &d : e.describe())
                n += d.find(what) != std::string::npos;
            return n;
        };
        for (const char *name : {"braggnn", "nac"}) {
            const LayerPlan plan = LayerPlan::lower(builtinArch(name));
            const NamedTensors w = randomWeights(plan, 3);
            const auto calib = peakPatches(32, 11, 5);
            const FixedEngine e(plan, w, calibratedQuantSpec(plan, w, calib.data(), 32, 8));
            QVERIFY(e.vectorised());
            int convLinear = 0, lane = 0, norm = 0, elt = 0;
            for (const PlanOp &op : plan.ops) {
                convLinear += op.kind == OpKind::Conv || op.kind == OpKind::Linear;
                lane += op.kind == OpKind::Softmax || op.kind == OpKind::MatMulQK || op.kind == OpKind::MatMulSV;
                norm += op.kind == OpKind::LayerNorm;
                elt += op.kind == OpKind::Activation || op.kind == OpKind::Add;
            }
            QCOMPARE(countOf(e, "int16-pair dot"), convLinear);
            QCOMPARE(countOf(e, "lane by lane"), lane);
            QCOMPARE(countOf(e, "16 lanes in int64 (layernorm"), norm);
            QCOMPARE(countOf(e, "int32-lane elementwise"), elt);
            QCOMPARE(int(e.describe().size()), int(plan.ops.size()));
        }
    }

    void handComputed()
    {
        // The tiny network of tst_intref (3x3 input, conv 1 -> 2 + ReLU, linear 2 -> 2): raw
        // outputs 60 and -92 (round-half-up) / -93 (truncate) by hand.
        ArchSpec as;
        as.name = "tiny";
        as.inputSize = 3;
        as.stem = {2, 3, Norm::None, Activation::ReLU};
        const LayerPlan plan = LayerPlan::lower(as);
        NamedTensors w;
        w["features.stem.conv.weight"] = {{2, 1, 3, 3}, {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f,
                                                          -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f, -0.5f}};
        w["features.stem.conv.bias"] = {{2}, {0.5f, 0.0625f}};
        w["head.out.weight"] = {{2, 2}, {0.5f, 0.25f, float(-47.0 / 64), 1.0f}};
        w["head.out.bias"] = {{2}, {0.125f, -0.25f}};
        for (Rounding r : {Rounding::RoundHalfUp, Rounding::Truncate}) {
            QuantSpec q = QuantSpec::defaults(plan, 8);
            q.input = {8, 2};
            OpQuant &conv = q.ops.at("features.stem.conv");
            conv.weight = {8, 2};
            conv.bias = {8, 4};
            conv.output = {8, 4};
            q.ops.at("features.stem.act").output = {8, 4};
            OpQuant &out = q.ops.at("head.out");
            out.weight = {8, 2};
            out.bias = {8, 4};
            out.output = {10, 4, r};
            const std::vector<float> patch = {0, 1, 2, 3, 4, 5, 6, 7, 8};
            for (FixedEngine::Isa isa : isas()) {
                const FixedEngine e(plan, w, q, isa);
                QVERIFY(e.vectorised());
                QCOMPARE(e.forwardRaw(patch.data(), 1), (std::vector<std::int64_t>{60, r == Rounding::Truncate ? -93 : -92}));
            }
        }
    }

    void wideFormatsFallBack()
    {
        // 16-bit formats: an exact conv sum can exceed 31 bits, so the engine runs the integer
        // reference itself, says why, and is still exact.
        const LayerPlan plan = LayerPlan::lower(builtinArch("nac"));
        const NamedTensors w = randomWeights(plan, 9);
        const auto calib = peakPatches(32, 11, 6);
        const QuantSpec q = calibratedQuantSpec(plan, w, calib.data(), 32, 16);
        const FixedEngine e(plan, w, q);
        QVERIFY(!e.vectorised());
        QVERIFY2(e.fallbackReason().find("31 bits") != std::string::npos, e.fallbackReason().c_str());
        QCOMPARE(e.nonZeroMacs(), std::int64_t(0));
        const auto p = peakPatches(20, 11, 8);
        QCOMPARE(e.forwardRaw(p.data(), 20, 2), e.reference().forwardRaw(p.data(), 20, 1));
        QuantSpec wide = QuantSpec::defaults(plan, 8);
        wide.ops.at("features.stem.conv").output.width = 20;
        const FixedEngine e2(plan, w, wide);
        QVERIFY(!e2.vectorised());
        QCOMPARE(QString::fromStdString(e2.fallbackReason()),
                 QString("features.stem.conv: output format ap_fixed<20,6,AP_RND,AP_SAT> is wider than 16 bits"));
    }

    void prunedMacs()
    {
        // Pruned weights are skipped: the engine's MAC count is the number of non-zero quantised
        // weights times output positions, well below the dense count.
        const LayerPlan plan = LayerPlan::lower(builtinArch("nac"));
        NamedTensors w = randomWeights(plan, 21);
        prune(plan, w, 0.8);
        const auto calib = peakPatches(32, 11, 6);
        const FixedEngine e(plan, w, calibratedQuantSpec(plan, w, calib.data(), 32, 7));
        QVERIFY(e.vectorised());
        std::int64_t expect = 0, dense = 0;
        for (const PlanOp &op : plan.ops) {
            if (op.kind != OpKind::Conv && op.kind != OpKind::Linear)
                continue;
            const auto &raw = e.reference().weightsRaw(op.name);
            const std::int64_t positions = op.kind == OpKind::Conv ? op.outShape[1] * op.outShape[2] : 1;
            expect += std::int64_t(raw.size() - std::size_t(std::count(raw.begin(), raw.end(), 0))) * positions;
            dense += std::int64_t(raw.size()) * positions;
        }
        QCOMPARE(e.nonZeroMacs(), expect);
        QVERIFY(expect < dense / 4);
    }

    void unsupportedIsa()
    {
        const LayerPlan plan = LayerPlan::lower(builtinArch("nac"));
        const NamedTensors w = randomWeights(plan, 1);
        const QuantSpec q = QuantSpec::defaults(plan, 8);
        for (auto isa : {FixedEngine::Isa::Avx2, FixedEngine::Isa::Avx512Vnni})
            if (!FixedEngine::supported(isa)) {
                bool threw = false;
                try {
                    FixedEngine(plan, w, q, isa);
                } catch (const Error &) {
                    threw = true;
                }
                QVERIFY(threw);
            }
        QCOMPARE(FixedEngine(plan, w, q).isa() == FixedEngine::Isa::Auto, false);
    }
};

QTEST_GUILESS_MAIN(TestFixedEngine)
#include "tst_fixedengine.moc"
