// braggnac-test-libs: braggnac_nn braggnac_sim braggnac_peaks HDF5::HDF5
// Evaluation: distance statistics on hand-made distances (exact mean and percentiles), a model
// evaluated against labels placed at known distances from its predictions (split, unconverged
// rows, subsets by /flags/neighbour), and the `braggnac evaluate` / `braggnac predict` CLI on
// patch and frame files (JSON values, /predicted bit-exact, /predicted_frame = origin + centre).
#include <cmath>
#include <cstring>

#include <hdf5.h>
#include <nlohmann/json.hpp>

#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include "core/common/error.h"
#include "core/common/runtime.h"
#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "core/arch/archspec.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "core/peaks/finder.h"
#include "core/sim/simulator.h"

using namespace braggnac::core;

namespace {

/// Reads a float dataset [N, ...] with plain HDF5 (the patch reader ignores root extras).
std::vector<float> readFloats(const std::string &path, const char *name, std::vector<hsize_t> *shape = nullptr)
{
    std::vector<float> out;
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return out;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d >= 0) {
        hid_t sp = H5Dget_space(d);
        const int rank = H5Sget_simple_extent_ndims(sp);
        std::vector<hsize_t> dims(rank);
        H5Sget_simple_extent_dims(sp, dims.data(), nullptr);
        hsize_t n = 1;
        for (auto v : dims)
            n *= v;
        out.resize(n);
        H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
        if (shape)
            *shape = dims;
        H5Sclose(sp);
        H5Dclose(d);
    }
    H5Fclose(f);
    return out;
}

nlohmann::json runJson(const QStringList &args, int expectedExit = 0, QString *err = nullptr)
{
    QProcess p;
    p.start(BRAGGNAC_CLI, args);
    if (!p.waitForFinished(120000))
        return nullptr;
    const QString e = QString::fromUtf8(p.readAllStandardError());
    if (err)
        *err = e;
    if (p.exitCode() != expectedExit) {
        qWarning("exit %d: %s", p.exitCode(), qPrintable(e));
        return nullptr;
    }
    const QByteArray out = p.readAllStandardOutput();
    return out.isEmpty() ? nlohmann::json::object() : nlohmann::json::parse(out.toStdString());
}

} // namespace

class TestEvaluate : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void distanceStatistics_data();
    void distanceStatistics();
    void knownDistances_data();
    void knownDistances();
    void rejectsBadInput();
    void cliEvaluate();
    void cliPredictPatches();
    void cliPredictFrames();

private:
    QTemporaryDir m_dir;
    ArchSpec m_spec;
    std::unique_ptr<Model> m_model;
    PatchDataset m_data; // 40 rows, labels at distance 1 (even rows) or 5 (odd rows, neighbour)
    std::string m_modelPath, m_dataPath;
};

void TestEvaluate::initTestCase()
{
    configureNumericRuntime();
    setTorchThreads(1);
    QVERIFY(m_dir.isValid());
    m_spec = ArchSpec::fromJson(nlohmann::json::parse(R"({
        "name": "small", "input_size": 11,
        "stem": {"channels": 4, "kernel": 3, "norm": "none", "act": "relu"},
        "blocks": [{"type": "conv", "layers": [{"channels": 6, "kernel": 3, "norm": "batch", "act": "gelu"}]}],
        "head": [{"width": 8, "norm": "layer", "act": "relu"}]
    })"));
    m_model = std::make_unique<Model>(m_spec, 21);

    PatchSimOptions so;
    so.seed = 3;
    m_data = simulatePatches(40, so);
    const auto pred = m_model->predict(m_data.patches.data(), 40, 512);
    std::vector<std::uint8_t> neighbour(40), converged(40, 1);
    for (std::size_t i = 0; i < 40; ++i) {
        const bool odd = i % 2;
        m_data.centers[2 * i] = pred[2 * i] + (odd ? 3.f : 0.6f);
        m_data.centers[2 * i + 1] = pred[2 * i + 1] - (odd ? 4.f : 0.8f);
        neighbour[i] = odd;
        m_data.split[i] = i < 20 ? 2 : i < 30 ? 1 : 0;
    }
    converged[5] = 0; // an odd test row the fit did not converge on
    m_data.extraFlags["/flags/neighbour"] = neighbour;
    m_data.extraFlags["/fit/converged"] = converged;

    m_modelPath = m_dir.filePath("small.model").toStdString();
    m_dataPath = m_dir.filePath("data.h5").toStdString();
    m_model->save(m_modelPath);
    writePatchDataset(m_dataPath, m_data);
}

void TestEvaluate::distanceStatistics_data()
{
    QTest::addColumn<QVector<float>>("d");
    QTest::addColumn<double>("mean");
    QTest::addColumn<double>("p50");
    QTest::addColumn<double>("p75");
    QTest::addColumn<double>("p95");
    QTest::addColumn<double>("max");
    QTest::newRow("four") << QVector<float>{4, 1, 3, 2} << 2.5 << 2.5 << 3.25 << 3.85 << 4.0;
    QTest::newRow("ten") << QVector<float>{9, 8, 7, 6, 5, 4, 3, 2, 1, 0} << 4.5 << 4.5 << 6.75 << 8.55 << 9.0;
    QTest::newRow("single") << QVector<float>{0.5f} << 0.5 << 0.5 << 0.5 << 0.5 << 0.5;
    QTest::newRow("ties") << QVector<float>{1, 1, 1, 5} << 2.0 << 1.0 << 2.0 << 4.4 << 5.0;
    QTest::newRow("empty") << QVector<float>{} << 0.0 << 0.0 << 0.0 << 0.0 << 0.0;
}

void TestEvaluate::distanceStatistics()
{
    QFETCH(QVector<float>, d);
    QFETCH(double, mean);
    QFETCH(double, p50);
    QFETCH(double, p75);
    QFETCH(double, p95);
    QFETCH(double, max);
    const DistanceStats s = distanceStats(std::vector<float>(d.begin(), d.end()));
    QCOMPARE(s.n, std::size_t(d.size()));
    const double eps = 1e-12;
    QVERIFY2(std::abs(s.mean - mean) < eps, qPrintable(QString::number(s.mean)));
    QVERIFY2(std::abs(s.p50 - p50) < eps, qPrintable(QString::number(s.p50)));
    QVERIFY2(std::abs(s.p75 - p75) < eps, qPrintable(QString::number(s.p75)));
    QVERIFY2(std::abs(s.p95 - p95) < 1e-6, qPrintable(QString::number(s.p95, 'g', 12)));
    QVERIFY2(std::abs(s.max - max) < eps, qPrintable(QString::number(s.max)));
    const auto j = s.toJson();
    QCOMPARE(j["n"].get<std::size_t>(), s.n);
    QCOMPARE(j["p75"].get<double>(), s.p75);
}

void TestEvaluate::knownDistances_data()
{
    QTest::addColumn<int>("split");
    QTest::addColumn<int>("ones");
    QTest::addColumn<int>("fives");
    // test: rows 0..19 without unconverged row 5; validation 20..29; train 30..39; all but row 5.
    QTest::newRow("test") << 2 << 10 << 9;
    QTest::newRow("validation") << 1 << 5 << 5;
    QTest::newRow("train") << 0 << 5 << 5;
    QTest::newRow("all") << -1 << 20 << 19;
}

void TestEvaluate::knownDistances()
{
    QFETCH(int, split);
    QFETCH(int, ones);
    QFETCH(int, fives);
    const Evaluation ev = evaluateModel(*m_model, m_data, split);
    const std::size_t n = std::size_t(ones + fives);
    QCOMPARE(ev.overall.n, n);
    QCOMPARE(ev.indices.size(), n);
    QCOMPARE(ev.predictions.size(), 2 * n);
    for (std::size_t i : ev.indices)
        QVERIFY(i != 5);
    const double tol = 1e-4;
    QVERIFY(std::abs(ev.overall.mean - (ones * 1.0 + fives * 5.0) / n) < tol);
    QVERIFY(std::abs(ev.overall.max - 5.0) < tol);
    // Sorted distances: `ones` times 1 then `fives` times 5 (numpy-style interpolation).
    auto pct = [&](double q) {
        const double pos = q * (n - 1);
        const auto lo = std::size_t(pos);
        const double a = lo < std::size_t(ones) ? 1.0 : 5.0;
        const double b = lo + 1 < std::size_t(ones) ? 1.0 : 5.0;
        return a + (pos - lo) * (b - a);
    };
    QVERIFY2(std::abs(ev.overall.p50 - pct(0.5)) < tol, qPrintable(QString::number(ev.overall.p50)));
    QVERIFY(std::abs(ev.overall.p75 - pct(0.75)) < tol);
    QVERIFY(std::abs(ev.overall.p95 - pct(0.95)) < tol);

    // Subsets by /flags/neighbour: the odd rows (distance 5) and the even rows (distance 1).
    QCOMPARE(ev.subsets.size(), std::size_t(2));
    for (const auto &[name, s] : ev.subsets) {
        if (name == "neighbour") {
            QCOMPARE(s.n, std::size_t(fives));
            QVERIFY(std::abs(s.mean - 5.0) < tol);
        } else {
            QCOMPARE(name, std::string("no-neighbour"));
            QCOMPARE(s.n, std::size_t(ones));
            QVERIFY(std::abs(s.mean - 1.0) < tol && std::abs(s.p95 - 1.0) < tol);
        }
    }
}

void TestEvaluate::rejectsBadInput()
{
    PatchDataset unl = m_data;
    unl.centers.clear();
    try {
        evaluateModel(*m_model, unl, 2);
        QFAIL("expected InputError");
    } catch (const InputError &e) {
        QVERIFY2(QString(e.what()).contains("/centers"), e.what());
    }
    PatchSimOptions so;
    so.patchSize = 15;
    const PatchDataset big = simulatePatches(10, so);
    try {
        evaluateModel(*m_model, big, -1);
        QFAIL("expected InputError");
    } catch (const InputError &e) {
        QVERIFY2(QString(e.what()).contains("/patches") && QString(e.what()).contains("15"), e.what());
    }
}

void TestEvaluate::cliEvaluate()
{
    const QString model = QString::fromStdString(m_modelPath), data = QString::fromStdString(m_dataPath);
    auto j = runJson({"evaluate", model, data, "--split", "test", "--json", "--threads", "1"});
    QVERIFY(!j.is_null());
    QCOMPARE(j["n"].get<int>(), 19);
    QVERIFY(std::abs(j["mean"].get<double>() - 55.0 / 19.0) < 1e-4);
    QVERIFY(std::abs(j["p50"].get<double>() - 1.0) < 1e-4);
    QVERIFY(std::abs(j["p75"].get<double>() - 5.0) < 1e-4);
    QVERIFY(j.contains("p95") && j.contains("max"));
    QCOMPARE(j["subsets"]["neighbour"]["n"].get<int>(), 9);
    QVERIFY(std::abs(j["subsets"]["no-neighbour"]["mean"].get<double>() - 1.0) < 1e-4);
    // The same numbers as the library.
    const Evaluation ev = evaluateModel(*m_model, m_data, 2);
    QCOMPARE(j["mean"].get<double>(), ev.overall.mean);

    j = runJson({"evaluate", model, data, "--split", "all", "--json", "--threads", "1"});
    QVERIFY(!j.is_null());
    QCOMPARE(j["n"].get<int>(), 39);

    QString err;
    QVERIFY(!runJson({"evaluate", model, data, "--split", "bogus", "--json"}, 2, &err).is_null());
    QVERIFY2(err.contains("--split"), qPrintable(err));
    const QString missing = m_dir.filePath("missing.model");
    QVERIFY(!runJson({"evaluate", missing, data, "--json"}, 2, &err).is_null());
    QVERIFY2(err.contains(missing), qPrintable(err));
    // Unlabelled data: the message names the file and the dataset.
    PatchDataset unl = m_data;
    unl.centers.clear();
    unl.labelSource.clear();
    const std::string unlPath = m_dir.filePath("unlabelled.h5").toStdString();
    writePatchDataset(unlPath, unl);
    QVERIFY(!runJson({"evaluate", model, QString::fromStdString(unlPath), "--json"}, 2, &err).is_null());
    QVERIFY2(err.contains(QString::fromStdString(unlPath)) && err.contains("/centers"), qPrintable(err));
    QCOMPARE(err.trimmed().count('\n'), 0);
}

void TestEvaluate::cliPredictPatches()
{
    const std::string out = m_dir.filePath("predicted.h5").toStdString();
    auto j = runJson({"predict", QString::fromStdString(m_modelPath), QString::fromStdString(m_dataPath),
                      "--out", QString::fromStdString(out), "--json", "--threads", "1"});
    QVERIFY(!j.is_null());
    QCOMPARE(j["input"].get<std::string>(), std::string("patches"));
    QCOMPARE(j["patches"].get<int>(), 40);

    std::vector<hsize_t> shape;
    const auto predicted = readFloats(out, "/predicted", &shape);
    QCOMPARE(shape, (std::vector<hsize_t>{40, 2}));
    const auto want = m_model->predict(m_data.patches.data(), 40, 512);
    QVERIFY(std::memcmp(predicted.data(), want.data(), want.size() * sizeof(float)) == 0);
    // A copy of the patch dataset: patches, labels, split and flags preserved.
    const PatchDataset back = readPatchDataset(out);
    QCOMPARE(back.patches, m_data.patches);
    QCOMPARE(back.centers, m_data.centers);
    QCOMPARE(back.split, m_data.split);
    QCOMPARE(back.extraFlags.at("/flags/neighbour"), m_data.extraFlags.at("/flags/neighbour"));

    // Patch size that does not match the model: exit 2 naming the file and /patches.
    PatchSimOptions so;
    so.patchSize = 9;
    const std::string small = m_dir.filePath("p9.h5").toStdString();
    writePatchDataset(small, simulatePatches(5, so));
    QString err;
    QVERIFY(!runJson({"predict", QString::fromStdString(m_modelPath), QString::fromStdString(small),
                      "--out", m_dir.filePath("x.h5")}, 2, &err).is_null());
    QVERIFY2(err.contains(QString::fromStdString(small)) && err.contains("/patches"), qPrintable(err));
    QVERIFY(!QFile::exists(m_dir.filePath("x.h5")));
}

void TestEvaluate::cliPredictFrames()
{
    FrameSimOptions fo;
    fo.size = 256;
    fo.peaksPerFrame = 25;
    fo.seed = 9;
    const SimulatedFrames sim = simulateFrames(2, fo);
    const std::string frames = m_dir.filePath("frames.h5").toStdString();
    writeSimulatedFrames(frames, sim, SimFormat::HDF5);
    const std::string out = m_dir.filePath("frame-predicted.h5").toStdString();
    auto j = runJson({"predict", QString::fromStdString(m_modelPath), QString::fromStdString(frames),
                      "--out", QString::fromStdString(out), "--json", "--threads", "1"});
    QVERIFY(!j.is_null());
    QCOMPARE(j["input"].get<std::string>(), std::string("frames"));
    QCOMPARE(j["frames"].get<int>(), 2);

    // The finder's peaks, each predicted; frame coordinates = origin + patch coordinates.
    FinderOptions finder;
    finder.patchSize = 11;
    finder.threads = 1;
    const auto source = openFrameSource(frames);
    const PatchDataset found = findPeaksInSource(*source, 0, 2, finder);
    QVERIFY(found.size() > 20);
    QCOMPARE(j["patches"].get<std::size_t>(), found.size());

    const PatchDataset back = readPatchDataset(out);
    QCOMPARE(back.size(), found.size());
    QCOMPARE(back.origin, found.origin);
    QCOMPARE(back.patches, found.patches);
    std::vector<hsize_t> shape;
    const auto predicted = readFloats(out, "/predicted", &shape);
    const auto inFrame = readFloats(out, "/predicted_frame");
    QCOMPARE(shape, (std::vector<hsize_t>{found.size(), 2}));
    const auto want = m_model->predict(found.patches.data(), found.size(), 512);
    QVERIFY(std::memcmp(predicted.data(), want.data(), want.size() * sizeof(float)) == 0);
    QCOMPARE(inFrame.size(), want.size());
    for (std::size_t k = 0; k < want.size(); ++k)
        QCOMPARE(inFrame[k], want[k] + float(found.origin[k]));

    // A frame range outside the file is bad input naming the file.
    QString err;
    QVERIFY(!runJson({"predict", QString::fromStdString(m_modelPath), QString::fromStdString(frames),
                      "--out", m_dir.filePath("y.h5"), "--frames", "1:5"}, 2, &err).is_null());
    QVERIFY2(err.contains(QString::fromStdString(frames)), qPrintable(err));
}

QTEST_GUILESS_MAIN(TestEvaluate)
#include "tst_evaluate.moc"
