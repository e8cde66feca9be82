// braggnac-test-libs: braggnac_nn braggnac_compress torch HDF5::HDF5
// Compression (core/nn/compress.h, the compress verb): pruned weights stay exactly 0 through
// float and QAT fine-tuning; compressModel's records (bits x rounds, sparsity of the iterative
// rounds, integer-reference distances) and its choice; the compressed model round-trips through
// its folder bit-exactly and its fixed-engine evaluation equals the recorded integer-reference
// distance and the fake-quantised forward (0 mismatches); bad input to `compress` exits 2
// naming the flag or file.
#include <cmath>

#include <hdf5.h>

#include <torch/torch.h>

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/compress/intref.h"
#include "core/compress/prune.h"
#include "core/io/patchdataset.h"
#include "core/nn/compress.h"
#include "core/nn/model.h"
#include "core/nn/qat.h"
#include "core/nn/torch_net.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {

/// A float dataset read with plain HDF5 (the patch reader ignores root extras such as /predicted).
std::vector<float> readFloats(const std::string &path, const char *name)
{
    std::vector<float> out;
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return out;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d >= 0) {
        hid_t sp = H5Dget_space(d);
        out.resize(std::size_t(H5Sget_simple_extent_npoints(sp)));
        H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
        H5Sclose(sp);
        H5Dclose(d);
    }
    H5Fclose(f);
    return out;
}

} // namespace

class TestCompress : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;
    QString m_data, m_data9, m_model;

    QString path(const QString &name) const { return m_dir.path() + "/" + name; }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_data = path("p.h5");
        m_data9 = path("p9.h5");
        auto r = runCli({"simulate", "patches", "--out", m_data, "--n", "240", "--seed", "3", "--quiet"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        r = runCli({"simulate", "patches", "--out", m_data9, "--n", "40", "--patch-size", "9", "--quiet"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        m_model = path("nac.model");
        Model(builtinArch("nac"), 5).save(m_model.toStdString());
    }

    void masksHoldThroughTraining_data()
    {
        QTest::addColumn<bool>("quantised");
        QTest::addColumn<bool>("structured");
        QTest::newRow("float, global L1") << false << false;
        QTest::newRow("QAT 6 bits, global L1") << true << false;
        QTest::newRow("QAT 8 bits, structured") << true << true;
    }
    void masksHoldThroughTraining()
    {
        QFETCH(bool, quantised);
        QFETCH(bool, structured);
        const PatchDataset data = readPatchDataset(m_data.toStdString());
        Model m = Model::load(m_model.toStdString());
        const LayerPlan plan = LayerPlan::lower(m.spec());
        const NamedTensors before = m.namedParameters();
        const PruneMasks masks = structured ? pruneStructured(plan, before, PruneMasks::full(plan), 0.4)
                                            : pruneGlobalL1(plan, before, PruneMasks::full(plan), 0.6);
        QVERIFY(masks.sparsity() > 0.2);
        const QuantSpec spec = calibratedQuantSpec(plan, before, data.patches.data(), 64, structured ? 8 : 6);
        TrainOptions o;
        o.learningRate = 1e-2; // large steps: a weight the masks let through would move off 0
        o.batchSize = 64;
        o.threads = 2;
        fineTune(m, data, quantised ? &spec : nullptr, masks, 1, o);
        const NamedTensors after = m.namedParameters();
        std::int64_t moved = 0, zeros = 0;
        for (const auto &[key, keep] : masks.keep) {
            const auto &a = after.at(key).values, &b = before.at(key).values;
            for (std::size_t i = 0; i < keep.size(); ++i) {
                if (!keep[i]) {
                    QCOMPARE(a[i], 0.0f); // exactly 0 (not -0 either: bit pattern)
                    QVERIFY(!std::signbit(a[i]) || a[i] == 0.0f);
                    ++zeros;
                } else {
                    moved += a[i] != b[i];
                }
            }
        }
        QCOMPARE(zeros, masks.total() - masks.kept());
        QVERIFY2(moved > masks.kept() / 2, "training did not move the kept weights");
    }

    void compressRecordsAndRoundTrip()
    {
        const PatchDataset data = readPatchDataset(m_data.toStdString());
        const Model start = Model::load(m_model.toStdString());
        CompressOptions o;
        o.bits = {6, 8};
        o.pruneRounds = 2;
        o.pruneFraction = 0.3;
        o.epochsPerRound = 1;
        o.train.batchSize = 64;
        o.train.threads = 2;
        o.calibrationPatches = 128;
        int seen = 0;
        const CompressResult r = compressModel(start, data, o, {}, [&](const CompressRecord &) { ++seen; });
        QCOMPARE(seen, 6);
        QCOMPARE(r.records.size(), std::size_t(6));
        const LayerPlan plan = LayerPlan::lower(start.spec());
        const std::int64_t total = PruneMasks::full(plan).total();
        for (std::size_t i = 0; i < r.records.size(); ++i) {
            const CompressRecord &rec = r.records[i];
            QCOMPARE(rec.bits, i < 3 ? 6 : 8);
            QCOMPARE(rec.round, int(i % 3));
            QCOMPARE(rec.sparsity, double(total - keptAfterRounds(total, 0.3, rec.round)) / double(total));
            QVERIFY(std::isfinite(rec.validation) && std::isfinite(rec.test));
            if (rec.round > 0) // fewer non-zero weights, fewer BOPs, at the same bits
                QVERIFY(rec.bops < r.records[i - 1].bops && rec.params < r.records[i - 1].params);
        }
        // No target: the best validation distance is chosen.
        for (const auto &rec : r.records)
            QVERIFY(r.records[std::size_t(r.chosen)].validation <= rec.validation);

        // Round trip through the folder: weights bit-exact, spec and masks identical.
        const std::string folder = path("c.model").toStdString();
        r.model->save(folder);
        const Model back = Model::load(folder);
        const NamedTensors a = r.model->namedParameters(), b = back.namedParameters();
        QCOMPARE(a.size(), b.size());
        for (const auto &[key, t] : a)
            QVERIFY2(std::memcmp(t.values.data(), b.at(key).values.data(), t.values.size() * sizeof(float)) == 0,
                     key.c_str());
        QVERIFY(hasQuantSpec(back));
        const QuantSpec q = modelQuantSpec(back);
        QCOMPARE(q.toJson().dump(), r.model->quantization.dump());
        const PruneMasks masks = modelMasks(back);
        QCOMPARE(masks.sparsity(), r.records[std::size_t(r.chosen)].sparsity);
        for (const auto &[key, keep] : masks.keep)
            for (std::size_t i = 0; i < keep.size(); ++i)
                if (!keep[i])
                    QCOMPARE(b.at(key).values[i], 0.0f);

        // Its evaluation with the fixed engine equals the recorded integer-reference distance.
        const Evaluation val = evaluateQuantised(back, data, 1, 2), test = evaluateQuantised(back, data, 2, 1);
        QCOMPARE(val.overall.mean, r.records[std::size_t(r.chosen)].validation);
        QCOMPARE(test.overall.mean, r.records[std::size_t(r.chosen)].test);
        QCOMPARE(val.overall.mean, back.metrics.at("validation").at("mean").get<double>());
        QCOMPARE(test.overall.mean, back.metrics.at("test").at("mean").get<double>());
        QCOMPARE(back.metrics.at("engine").get<std::string>(), std::string("fixed"));

        // The fake-quantised forward (what QAT trained) agrees bit for bit: 0 mismatches.
        const int s = data.patchSize;
        std::vector<float> raw;
        for (std::size_t i : val.indices)
            raw.insert(raw.end(), data.patch(i), data.patch(i) + s * s);
        const IntegerReference ref(plan, b, q);
        const auto intRaw = ref.forwardRaw(raw.data(), val.indices.size());
        const FakeQuantForward fq(back.impl().net, q);
        const torch::Tensor fqRaw = fq.forwardRaw(normalisePatches(raw.data(), val.indices.size(), s)).contiguous();
        QCOMPARE(std::size_t(fqRaw.numel()), intRaw.size());
        std::int64_t mismatches = 0;
        for (std::size_t i = 0; i < intRaw.size(); ++i)
            mismatches += fqRaw.data_ptr<std::int64_t>()[i] != intRaw[i];
        QCOMPARE(mismatches, std::int64_t(0));

        // A target distance: the smallest BOPs within it.
        double target = 0;
        for (const auto &rec : r.records)
            target = std::max(target, rec.validation);
        o.targetDistance = target; // every record is within: the smallest BOPs overall
        o.bits = {6};
        o.pruneRounds = 1;
        const CompressResult t = compressModel(start, data, o);
        QCOMPARE(t.records.size(), std::size_t(2));
        if (t.records[0].validation <= target && t.records[1].validation <= target)
            QCOMPARE(t.chosen, t.records[1].bops < t.records[0].bops ? 1 : 0);
    }

    void cliCompress()
    {
        const QString out = path("cli.model");
        const auto r = runCli({"compress", m_model, m_data, "--out", out, "--bits", "7", "--prune-rounds", "1",
                               "--prune-fraction", "0.5", "--structured", "--json", "--threads", "2", "--batch", "64",
                               "--calibration-patches", "64"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const auto j = nlohmann::json::parse(r.out.toStdString());
        QCOMPARE(j.at("records").size(), std::size_t(2));
        QCOMPARE(j.at("records")[0].at("bits").get<int>(), 7);
        QVERIFY(j.at("records")[1].at("sparsity").get<double>() > 0.2);
        QVERIFY(r.err.contains("bits round  sparsity"));
        QVERIFY(QFile::exists(out + "/quantization.json"));
        const Model back = Model::load(out.toStdString());
        QCOMPARE(back.recipe.at("pruning").at("mode").get<std::string>(), std::string("structured"));
        QCOMPARE(modelQuantSpec(back).op("head.out").weight.width, 7);

        // cost of the quantised folder: per-layer bits and real zeros (the chosen record's BOPs).
        const auto c = runCli({"cost", out, "--json"});
        QVERIFY2(c.exitCode == 0, c.err.constData());
        const auto cj = nlohmann::json::parse(c.out.toStdString());
        QCOMPARE(cj.at("bops").get<double>(), j.at("chosen").at("bops").get<double>());
        QVERIFY(cj.at("quantised").get<bool>());
        QCOMPARE(runCli({"cost", out, "--weight-bits", "4"}).exitCode, 2);

        // predict --engine fixed: the integer reference's centres, bit for bit.
        const QString pred = path("pred.h5");
        const auto p = runCli({"predict", out, m_data, "--out", pred, "--engine", "fixed", "--threads", "2"});
        QVERIFY2(p.exitCode == 0, p.err.constData());
        const PatchDataset data = readPatchDataset(m_data.toStdString());
        const IntegerReference ref(LayerPlan::lower(back.spec()), back.namedParameters(), modelQuantSpec(back));
        const std::vector<double> expect = ref.predict(data.patches.data(), data.size(), 1);
        const std::vector<float> got = readFloats(pred.toStdString(), "/predicted");
        QCOMPARE(got.size(), expect.size());
        for (std::size_t i = 0; i < got.size(); ++i)
            QCOMPARE(got[i], float(expect[i]));
        const auto bad = runCli({"predict", m_model, m_data, "--out", path("pred2.h5"), "--engine", "fixed"});
        QCOMPARE(bad.exitCode, 2);
        QVERIFY(bad.err.contains("--engine fixed needs a quantised model folder"));
    }

    void cliBadInput_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("bits 1") << QStringList{"--bits", "1"} << "--bits: expected 2..32 bits (got 1)";
        QTest::newRow("bits 33") << QStringList{"--bits", "33"} << "--bits: expected 2..32 bits (got 33)";
        QTest::newRow("bits 20") << QStringList{"--bits", "20"} << "at most 16 bits";
        QTest::newRow("grid") << QStringList{"--bits-grid", "4,x"} << "--bits-grid: 'x' is not an integer";
        QTest::newRow("grid range") << QStringList{"--bits-grid", "4,40"} << "--bits-grid: expected 2..32 bits (got 40)";
        QTest::newRow("fraction 1") << QStringList{"--prune-fraction", "1"} << "--prune-fraction: expected a number in (0, 1)";
        QTest::newRow("fraction 0") << QStringList{"--prune-fraction", "0"} << "--prune-fraction: expected a number in (0, 1)";
        QTest::newRow("patch size") << QStringList{"DATA9"} << "/patches: patch size 9 does not match the model's input size 11";
        QTest::newRow("no weights") << QStringList{"NOWEIGHTS"} << "weights.pt";
    }
    void cliBadInput()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        QString model = m_model, data = m_data;
        if (args == QStringList{"DATA9"}) {
            data = m_data9;
            args.clear();
        } else if (args == QStringList{"NOWEIGHTS"}) {
            model = path("noweights.model");
            if (!QDir(model).exists()) {
                QDir().mkpath(model);
                for (const QString &f : QDir(m_model).entryList(QDir::Files))
                    if (f != "weights.pt")
                        QFile::copy(m_model + "/" + f, model + "/" + f);
            }
            args.clear();
        }
        const QString out = path("bad.model");
        const auto r = runCli(QStringList{"compress", model, data, "--out", out} + args);
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains(message.toUtf8()), r.err.constData());
        if (message.startsWith("/patches"))
            QVERIFY2(r.err.contains(m_data9.toUtf8()), r.err.constData());
        if (message == "weights.pt")
            QVERIFY2(r.err.contains("noweights.model"), r.err.constData());
        QVERIFY(!QDir(out).exists());
    }
};

QTEST_GUILESS_MAIN(TestCompress)
#include "tst_compress.moc"
