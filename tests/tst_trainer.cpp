// braggnac-test-libs: braggnac_nn braggnac_sim
// The LibTorch trainer: learning beats the trivial predictor, seeded runs repeat bit for bit,
// cancellation stops within a batch, every optimizer/schedule follows its learning-rate formula,
// shift augmentation moves patch and label together, early stopping, unconverged fits left out,
// bad input named, and the `braggnac train` CLI writing a model folder.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include "core/common/error.h"
#include "core/common/runtime.h"
#include "core/io/patchdataset.h"
#include "core/arch/archspec.h"
#include "core/nn/augmentation.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "core/sim/simulator.h"

using namespace braggnac::core;

class TestTrainer : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void trainingBeatsTrivialPredictor();
    void sameSeedSameHistory();
    void cancellationStopsWithinABatch();
    void learningRateSchedules_data();
    void learningRateSchedules();
    void shiftAugmentation_data();
    void shiftAugmentation();
    void earlyStopping();
    void unconvergedRowsExcluded();
    void badInput_data();
    void badInput();
    void cliTrain();

private:
    PatchDataset rows(std::size_t n) const
    {
        std::vector<std::size_t> idx(n);
        for (std::size_t i = 0; i < n; ++i)
            idx[i] = i;
        return m_data.subset(idx);
    }
    TrainOptions quick() const
    {
        TrainOptions o;
        o.threads = 1;
        o.device = "cpu";
        o.seed = 5;
        o.epochs = 2;
        o.batchSize = 64;
        return o;
    }

    PatchDataset m_data; // 3000 simulated patches, split 80/10/10 by index
    ArchSpec m_tiny;     // a small spec with batch and layer norm, fast to train
};

void TestTrainer::initTestCase()
{
    configureNumericRuntime();
    qputenv("OPENBLAS_NUM_THREADS", "1");
    PatchSimOptions so;
    so.seed = 7;
    m_data = simulatePatches(3000, so);
    QCOMPARE(m_data.size(), std::size_t(3000));
    m_tiny = ArchSpec::fromJson(nlohmann::json::parse(R"({
        "name": "tiny", "input_size": 11,
        "stem": {"channels": 4, "kernel": 3, "norm": "none", "act": "relu"},
        "blocks": [{"type": "conv", "layers": [{"channels": 8, "kernel": 3, "norm": "batch", "act": "relu"}]}],
        "head": [{"width": 16, "norm": "layer", "act": "relu"}]
    })"));
}

void TestTrainer::trainingBeatsTrivialPredictor()
{
    TrainOptions o = quick();
    o.epochs = 14;
    o.batchSize = 32;
    o.seed = 3;
    const TrainResult r = trainModel(builtinArch("nac"), m_data, o);
    QCOMPARE(int(r.history.size()), 14);

    // The trivial predictor: always the patch centre (5, 5).
    double trivial = 0;
    int nVal = 0;
    for (std::size_t i = 0; i < m_data.size(); ++i)
        if (m_data.split[i] == 1) {
            trivial += std::hypot(m_data.centers[2 * i] - 5.0, m_data.centers[2 * i + 1] - 5.0);
            ++nVal;
        }
    trivial /= nVal;
    QCOMPARE(nVal, 300);
    QVERIFY2(trivial > 0.6, qPrintable(QString::number(trivial)));

    double best = 1e9;
    int bestEpoch = 0;
    for (const auto &h : r.history)
        if (h.validationMean < best) {
            best = h.validationMean;
            bestEpoch = h.epoch;
        }
    QCOMPARE(r.bestEpoch, bestEpoch);
    qInfo("nac, 14 epochs on 2400 patches: validation mean %.4f px (trivial predictor %.4f px)",
          best, trivial);
    QVERIFY2(best < 0.2 && best < 0.3 * trivial,
             qPrintable(QStringLiteral("validation %1 px vs trivial %2 px").arg(best).arg(trivial)));
    QVERIFY(r.history.back().trainLoss < r.history.front().trainLoss);

    // The returned model is the best epoch's: evaluating it on the validation split gives the
    // recorded distance (the model is back on the CPU, outputs unchanged).
    const Evaluation ev = evaluateModel(r.model, m_data, 1);
    QCOMPARE(ev.overall.n, std::size_t(300));
    QVERIFY2(std::abs(ev.overall.mean - best) < 1e-4,
             qPrintable(QStringLiteral("%1 vs %2").arg(ev.overall.mean).arg(best)));
    QCOMPARE(r.model.metrics["best_epoch"].get<int>(), bestEpoch);
    QCOMPARE(r.model.recipe["optimizer"].get<std::string>(), std::string("rmsprop"));
    QCOMPARE(r.model.recipe["data"]["train"].get<int>(), 2400);
}

void TestTrainer::sameSeedSameHistory()
{
    const PatchDataset d = rows(1000);
    TrainOptions o = quick();
    o.epochs = 3;
    o.shift = 1;
    o.seed = 11;
    const TrainResult a = trainModel(m_tiny, d, o);
    const TrainResult b = trainModel(m_tiny, d, o);
    QCOMPARE(a.history.size(), b.history.size());
    for (std::size_t e = 0; e < a.history.size(); ++e) {
        QCOMPARE(a.history[e].trainLoss, b.history[e].trainLoss); // exact, not fuzzy
        QCOMPARE(a.history[e].validationMean, b.history[e].validationMean);
        QCOMPARE(a.history[e].learningRate, b.history[e].learningRate);
    }
    const auto pa = a.model.predict(d.patches.data(), d.size());
    const auto pb = b.model.predict(d.patches.data(), d.size());
    QVERIFY(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)) == 0);

    o.seed = 12;
    const TrainResult c = trainModel(m_tiny, d, o);
    QVERIFY(c.history[0].trainLoss != a.history[0].trainLoss);
}

void TestTrainer::cancellationStopsWithinABatch()
{
    TrainOptions o = quick();
    o.batchSize = 16; // 150 batches per epoch
    o.epochs = 3;
    Monitor m;
    int reports = 0, reportsAfterCancel = 0;
    bool epochDone = false;
    m.progress = [&](double, const std::string &) {
        if (m.cancel.isCancelled())
            ++reportsAfterCancel;
        if (++reports == 5)
            m.cancel.cancel();
    };
    bool cancelled = false;
    try {
        trainModel(m_tiny, m_data, o, m, [&](const EpochStats &) { epochDone = true; });
    } catch (const CancelledError &) {
        cancelled = true;
    }
    QVERIFY(cancelled);
    QCOMPARE(reports, 5);            // one progress report per batch: no batch ran after
    QCOMPARE(reportsAfterCancel, 0); // the one during which the token was cancelled
    QVERIFY(!epochDone);
}

void TestTrainer::learningRateSchedules_data()
{
    QTest::addColumn<QString>("optimizer");
    QTest::addColumn<QString>("schedule");
    QTest::addColumn<double>("lr");
    QTest::addColumn<int>("epochs");
    QTest::addColumn<int>("stepSize");
    QTest::addColumn<double>("gamma");
    QTest::newRow("rmsprop-cosine") << "rmsprop" << "cosine" << 1.5e-3 << 5 << 10 << 0.5;
    QTest::newRow("adam-step") << "adam" << "step" << 2e-3 << 6 << 2 << 0.5;
    QTest::newRow("sgd-exponential") << "sgd" << "exponential" << 0.05 << 4 << 10 << 0.7;
    QTest::newRow("sgd-cosine") << "sgd" << "cosine" << 0.05 << 3 << 10 << 0.5;
    QTest::newRow("rmsprop-none") << "rmsprop" << "none" << 1e-3 << 3 << 10 << 0.5;
    QTest::newRow("adam-exponential") << "adam" << "exponential" << 1e-3 << 4 << 10 << 0.9;
}

void TestTrainer::learningRateSchedules()
{
    QFETCH(QString, optimizer);
    QFETCH(QString, schedule);
    QFETCH(double, lr);
    QFETCH(int, epochs);
    QFETCH(int, stepSize);
    QFETCH(double, gamma);
    const PatchDataset d = rows(600);
    TrainOptions o = quick();
    o.optimizer = optimizer.toStdString();
    o.schedule = schedule.toStdString();
    o.learningRate = lr;
    o.epochs = epochs;
    o.stepSize = stepSize;
    o.gamma = gamma;
    o.batchSize = 32;
    const TrainResult r = trainModel(m_tiny, d, o);
    QCOMPARE(int(r.history.size()), epochs);
    const double pi = std::acos(-1.0);
    for (int k = 0; k < epochs; ++k) {
        double want = lr;
        if (schedule == "cosine")
            want = lr * (1 + std::cos(pi * k / epochs)) / 2;
        else if (schedule == "step")
            want = lr * std::pow(gamma, k / stepSize);
        else if (schedule == "exponential")
            want = lr * std::pow(gamma, k);
        QVERIFY2(std::abs(r.history[k].learningRate - want) <= 1e-12 * lr,
                 qPrintable(QStringLiteral("epoch %1: lr %2, expected %3")
                                .arg(k).arg(r.history[k].learningRate).arg(want)));
        QVERIFY(std::isfinite(r.history[k].trainLoss));
    }
    // Every optimizer actually learns with its schedule.
    QVERIFY2(r.history.back().trainLoss < r.history.front().trainLoss,
             qPrintable(QStringLiteral("loss %1 -> %2").arg(r.history.front().trainLoss).arg(r.history.back().trainLoss)));
    QCOMPARE(r.model.recipe["optimizer"].get<std::string>(), optimizer.toStdString());
    QCOMPARE(r.model.recipe["schedule"].get<std::string>(), schedule.toStdString());
}

void TestTrainer::shiftAugmentation_data()
{
    QTest::addColumn<int>("dy");
    QTest::addColumn<int>("dx");
    QTest::newRow("down2-left1") << 2 << -1;
    QTest::newRow("up3") << -3 << 0;
    QTest::newRow("right4") << 0 << 4;
    QTest::newRow("diag1") << 1 << 1;
    QTest::newRow("none") << 0 << 0;
}

void TestTrainer::shiftAugmentation()
{
    QFETCH(int, dy);
    QFETCH(int, dx);
    const int s = 11, area = s * s;
    // Two patches with unique pixel values; the second gets the opposite shift.
    std::vector<float> in(2 * area), centres = {4.25f, 6.5f, 5.0f, 5.0f};
    for (int k = 0; k < 2 * area; ++k)
        in[k] = float(k);
    std::vector<float> out = in, c = centres;
    const int dys[2] = {dy, -dy}, dxs[2] = {dx, -dx};
    shiftPatches(out.data(), c.data(), 2, s, dys, dxs);
    for (int p = 0; p < 2; ++p) {
        for (int r = 0; r < s; ++r)
            for (int col = 0; col < s; ++col) {
                const int sr = std::clamp(r - dys[p], 0, s - 1);
                const int sc = std::clamp(col - dxs[p], 0, s - 1);
                QCOMPARE(out[p * area + r * s + col], in[p * area + sr * s + sc]);
            }
        QCOMPARE(c[2 * p], centres[2 * p] + float(dys[p]));
        QCOMPARE(c[2 * p + 1], centres[2 * p + 1] + float(dxs[p]));
    }
    // A bright pixel moves with the label.
    std::vector<float> peak(area, 1.f);
    peak[5 * s + 5] = 100.f;
    float pc[2] = {5.f, 5.f};
    shiftPatches(peak.data(), pc, 1, s, &dy, &dx);
    QCOMPARE(peak[(5 + dy) * s + (5 + dx)], 100.f);
    QCOMPARE(pc[0], 5.f + dy);
    QCOMPARE(pc[1], 5.f + dx);
}

void TestTrainer::earlyStopping()
{
    // Plain SGD with a far too large (but not diverging) learning rate: the validation distance
    // stops improving and training stops `patience` epochs after the best one.
    const PatchDataset d = rows(600);
    TrainOptions o = quick();
    o.optimizer = "sgd";
    o.learningRate = 1.5;
    o.schedule = "none";
    o.epochs = 12;
    o.patience = 2;
    std::vector<int> seen;
    const TrainResult r = trainModel(m_tiny, d, o, {}, [&](const EpochStats &e) { seen.push_back(e.epoch); });
    QVERIFY(r.stoppedEarly);
    QVERIFY(int(r.history.size()) < o.epochs);
    QCOMPARE(int(r.history.size()), r.bestEpoch + o.patience);
    QCOMPARE(int(seen.size()), int(r.history.size()));
    QVERIFY(r.model.metrics["stopped_early"].get<bool>());

    // Without patience the same run goes the distance.
    o.patience = 0;
    o.epochs = 4;
    const TrainResult full = trainModel(m_tiny, d, o);
    QVERIFY(!full.stoppedEarly);
    QCOMPARE(int(full.history.size()), 4);
}

void TestTrainer::unconvergedRowsExcluded()
{
    PatchDataset d = rows(1000);
    std::vector<std::uint8_t> conv(d.size(), 1);
    std::size_t excluded = 0, train = 0, test = 0;
    for (std::size_t i = 0; i < d.size(); ++i) {
        if (i % 3 == 0) {
            conv[i] = 0;
            ++excluded;
        } else if (d.split[i] == 0) {
            ++train;
        } else if (d.split[i] == 2) {
            ++test;
        }
    }
    d.extraFlags["/fit/converged"] = conv;
    TrainOptions o = quick();
    o.epochs = 1;
    const TrainResult r = trainModel(m_tiny, d, o);
    QCOMPARE(r.model.recipe["data"]["excluded_unconverged"].get<std::size_t>(), excluded);
    QCOMPARE(r.model.recipe["data"]["train"].get<std::size_t>(), train);
    const Evaluation ev = evaluateModel(r.model, d, 2);
    QCOMPARE(ev.indices.size(), test);
    for (std::size_t i : ev.indices)
        QVERIFY(i % 3 != 0 && d.split[i] == 2);
}

void TestTrainer::badInput_data()
{
    QTest::addColumn<QString>("what");
    QTest::addColumn<QString>("expected");
    QTest::newRow("patch-size") << "patch-size" << "/patches";
    QTest::newRow("unlabelled") << "unlabelled" << "/centers";
    QTest::newRow("optimizer") << "optimizer" << "optimizer";
    QTest::newRow("schedule") << "schedule" << "schedule";
    QTest::newRow("batch") << "batch" << "batch_size";
    QTest::newRow("shift") << "shift" << "shift";
    QTest::newRow("cuda") << "cuda" << "cuda";
}

void TestTrainer::badInput()
{
    QFETCH(QString, what);
    QFETCH(QString, expected);
    PatchDataset d = rows(200);
    TrainOptions o = quick();
    o.dataSource = "mydata.h5";
    if (what == "patch-size") {
        PatchSimOptions so;
        so.patchSize = 9;
        d = simulatePatches(100, so);
    } else if (what == "unlabelled") {
        d.centers.clear();
        d.labelSource.clear();
    } else if (what == "optimizer") {
        o.optimizer = "adagrad";
    } else if (what == "schedule") {
        o.schedule = "linear";
    } else if (what == "batch") {
        o.batchSize = 0;
    } else if (what == "shift") {
        o.shift = 11;
    } else if (what == "cuda") {
        if (cudaAvailable())
            QSKIP("this LibTorch sees a CUDA device");
        o.device = "cuda";
    }
    try {
        trainModel(m_tiny, d, o);
        QFAIL("expected InputError");
    } catch (const InputError &e) {
        const QString msg = QString::fromStdString(e.what());
        QVERIFY2(msg.contains(expected), qPrintable(msg));
        QVERIFY2(!msg.contains('\n'), qPrintable(msg));
        if (what == "patch-size" || what == "unlabelled")
            QVERIFY2(msg.contains("mydata.h5"), qPrintable(msg));
    }
}

void TestTrainer::cliTrain()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string data = dir.filePath("data.h5").toStdString();
    const std::string spec = dir.filePath("tiny.json").toStdString();
    const std::string model = dir.filePath("tiny.model").toStdString();
    const PatchDataset d = rows(1000);
    writePatchDataset(data, d);
    m_tiny.save(spec);
    std::size_t nTest = 0;
    for (auto s : d.split)
        nTest += s == 2;

    QProcess p;
    p.start(BRAGGNAC_CLI, {"train", QString::fromStdString(data), "--arch", QString::fromStdString(spec),
                           "--out", QString::fromStdString(model), "--epochs", "2", "--batch", "64",
                           "--threads", "1", "--seed", "4", "--json"});
    QVERIFY(p.waitForFinished(120000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const auto j = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    QCOMPARE(j["epochs"].get<int>(), 2);
    QVERIFY(j["best_epoch"].get<int>() >= 1 && j["best_epoch"].get<int>() <= 2);
    QCOMPARE(j["test"]["n"].get<std::size_t>(), nTest);
    QVERIFY(j["seconds"].get<double>() > 0);

    // The model folder holds the recipe, the history and the test evaluation, and the loaded
    // model reproduces the reported test mean.
    const Model loaded = Model::load(model);
    QCOMPARE(loaded.metrics["history"].size(), std::size_t(2));
    QCOMPARE(loaded.recipe["optimizer"].get<std::string>(), std::string("rmsprop"));
    QCOMPARE(loaded.recipe["seed"].get<int>(), 4);
    QCOMPARE(loaded.recipe["data"]["file"].get<std::string>(), data);
    const Evaluation ev = evaluateModel(loaded, d, 2);
    QCOMPARE(ev.overall.mean, j["test"]["mean"].get<double>());
    QCOMPARE(loaded.metrics["test"]["mean"].get<double>(), ev.overall.mean);

    // Unlabelled data: exit 2, one line naming the file and the dataset; no model written.
    PatchDataset unl = d;
    unl.centers.clear();
    unl.labelSource.clear();
    const std::string bad = dir.filePath("unlabelled.h5").toStdString();
    writePatchDataset(bad, unl);
    const QString out2 = dir.filePath("never.model");
    p.start(BRAGGNAC_CLI, {"train", QString::fromStdString(bad), "--arch", "nac", "--out", out2,
                           "--threads", "1"});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 2);
    const QString err = QString::fromUtf8(p.readAllStandardError()).trimmed();
    QVERIFY2(err.contains(QString::fromStdString(bad)) && err.contains("/centers"), qPrintable(err));
    QVERIFY2(!err.contains('\n'), qPrintable(err));
    QVERIFY(!QFile::exists(out2));

    // Unknown optimizer: exit 2 naming the field.
    p.start(BRAGGNAC_CLI, {"train", QString::fromStdString(data), "--arch", "nac", "--out", out2,
                           "--optimizer", "adagrad"});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 2);
    QVERIFY(QString::fromUtf8(p.readAllStandardError()).contains("optimizer"));
}

QTEST_GUILESS_MAIN(TestTrainer)
#include "tst_trainer.moc"
