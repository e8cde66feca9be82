// braggnac-test-libs: braggnac_nn braggnac_cost braggnac_sim
// One trial (core/nn/trial.h): budget stops (epochs, wall time, pruning callback) with the best
// model kept, the exact JSON round trip, diverged training failing with its reason (and the CLI
// saving nothing), data prepared once shared by concurrent trials, per-thread LibTorch threads,
// LibTorch errors as one line, and `braggnac train` / `braggnac trial` writing the same schema.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include <QDir>
#include <QFile>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include "core/common/error.h"
#include "core/common/runtime.h"
#include "core/cost/cost.h"
#include "core/io/patchdataset.h"
#include "core/arch/archspec.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "core/nn/trial.h"
#include "core/sim/simulator.h"
#include "testutil.h"

using namespace braggnac::core;
using braggnac::test::runCli;

namespace {

/// Every key path of an object ("metrics.validation.subsets.neighbour.mean"); arrays contribute
/// the key paths of their elements under "name[]".
void keyPaths(const nlohmann::json &j, const std::string &prefix, std::set<std::string> &out)
{
    if (j.is_object()) {
        for (const auto &[k, v] : j.items()) {
            const std::string p = prefix.empty() ? k : prefix + "." + k;
            out.insert(p);
            keyPaths(v, p, out);
        }
    } else if (j.is_array()) {
        for (const auto &v : j)
            keyPaths(v, prefix + "[]", out);
    }
}

std::set<std::string> keyPaths(const nlohmann::json &j)
{
    std::set<std::string> out;
    keyPaths(j, "", out);
    return out;
}

QString describeDifference(const std::set<std::string> &a, const std::set<std::string> &b)
{
    QStringList only;
    for (const auto &k : a)
        if (!b.count(k))
            only << QStringLiteral("-%1").arg(QString::fromStdString(k));
    for (const auto &k : b)
        if (!a.count(k))
            only << QStringLiteral("+%1").arg(QString::fromStdString(k));
    return only.join(QLatin1Char(' '));
}

nlohmann::json readJsonFile(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return nullptr;
    return nlohmann::json::parse(f.readAll().toStdString());
}

/// The parts of a trial that must not depend on timing.
nlohmann::json deterministicPart(const TrialResult &r)
{
    nlohmann::json j = r.toJson();
    j.erase("seconds");
    j.erase("timings");
    for (auto &h : j["history"])
        h.erase("seconds");
    return j;
}

} // namespace

class TestTrial : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void epochBudgetIsPrefixOfFullRun();
    void wallTimeBudget();
    void pruningKeepsBestOfEpochsRun_data();
    void pruningKeepsBestOfEpochsRun();
    void patienceStops();
    void jsonRoundTripExact();
    void jsonRejectsBadFields_data();
    void jsonRejectsBadFields();
    void divergedTrainingFails();
    void preparedEvaluationEqualsDatasetEvaluation();
    void concurrentTrialsEqualSequential();
    void perThreadTorchThreads();
    void torchErrorIsOneLine();
    void preparedDataMismatchNamed();
    void cliTrainAndTrialShareSchema();
    void cliTrainDivergedSavesNothing();
    void cancelledTrialThrows();
    void cliTrialBadInput_data();
    void cliTrialBadInput();

private:
    TrainOptions quick(int epochs = 2) const
    {
        TrainOptions o;
        o.threads = 1;
        o.device = "cpu";
        o.seed = 11;
        o.epochs = epochs;
        o.batchSize = 64;
        o.dataSource = "simulated";
        return o;
    }

    PatchDataset m_data;     // 800 simulated patches, split 80/10/10 by index, /flags/neighbour
    PreparedData m_prepared; // m_data prepared once on the CPU
    ArchSpec m_tiny;         // a small spec with batch and layer norm, fast to train
    QTemporaryDir m_dir;
    QString m_dataFile;      // m_data written as a patch file (for the CLI)
};

void TestTrial::initTestCase()
{
    configureNumericRuntime();
    QVERIFY(m_dir.isValid());
    PatchSimOptions so;
    so.seed = 21;
    m_data = simulatePatches(800, so);
    QCOMPARE(m_data.size(), std::size_t(800));
    QVERIFY(m_data.extraFlags.count("/flags/neighbour"));
    m_tiny = ArchSpec::fromJson(nlohmann::json::parse(R"({
        "name": "tiny", "input_size": 11,
        "stem": {"channels": 4, "kernel": 3, "norm": "none", "act": "relu"},
        "blocks": [{"type": "conv", "layers": [{"channels": 8, "kernel": 3, "norm": "batch", "act": "relu"}]}],
        "head": [{"width": 16, "norm": "layer", "act": "relu"}]
    })"));
    m_prepared = prepareData(m_data, {"cpu", "simulated"});
    QCOMPARE(m_prepared.trainRows(), std::size_t(640));
    QCOMPARE(m_prepared.validationRows(), std::size_t(80));
    QCOMPARE(m_prepared.testRows(), std::size_t(80));
    QCOMPARE(m_prepared.device(), std::string("cpu"));
    m_dataFile = m_dir.filePath(QStringLiteral("sim.h5"));
    writePatchDataset(m_dataFile.toStdString(), m_data);
}

void TestTrial::epochBudgetIsPrefixOfFullRun()
{
    const TrialResult full = runTrial(m_tiny, quick(4), {}, m_prepared);
    QVERIFY(!full.failed());
    QCOMPARE(full.epochs, 4);
    QCOMPARE(full.stopReason, StopReason::Completed);

    TrialBudget budget;
    budget.maxEpochs = 2;
    const TrialResult cut = runTrial(m_tiny, quick(4), budget, m_prepared);
    QCOMPARE(cut.epochs, 2);
    QCOMPARE(int(cut.history.size()), 2);
    QCOMPARE(cut.stopReason, StopReason::MaxEpochs);
    // The schedule follows the recipe's 4 epochs: the cut run is the full run's exact prefix.
    for (int e = 0; e < 2; ++e) {
        QCOMPARE(cut.history[e].trainLoss, full.history[e].trainLoss);
        QCOMPARE(cut.history[e].validationMean, full.history[e].validationMean);
        QCOMPARE(cut.history[e].learningRate, full.history[e].learningRate);
    }
    QVERIFY(cut.history[1].learningRate > full.history[3].learningRate);
    QCOMPARE(cut.toJson()["stop_reason"].get<std::string>(), std::string("max_epochs"));
}

void TestTrial::wallTimeBudget()
{
    TrialBudget budget;
    budget.maxSeconds = 1e-9; // passed after the first epoch, whatever the machine
    const TrialResult r = runTrial(m_tiny, quick(3), budget, m_prepared);
    QCOMPARE(r.stopReason, StopReason::WallTime);
    QCOMPARE(r.epochs, 1);
    QVERIFY(r.epochs < 3);
    QVERIFY(!r.failed());
    QVERIFY(r.validation.present());
    QCOMPARE(r.toJson()["stop_reason"].get<std::string>(), std::string("wall_time"));
}

void TestTrial::pruningKeepsBestOfEpochsRun_data()
{
    QTest::addColumn<int>("k");
    QTest::newRow("prune at 1") << 1;
    QTest::newRow("prune at 3") << 3;
}

void TestTrial::pruningKeepsBestOfEpochsRun()
{
    QFETCH(int, k);
    TrialCallbacks callbacks;
    int calls = 0;
    callbacks.onEpoch = [&](const EpochStats &e) {
        ++calls;
        return e.epoch >= k ? EpochDecision::Stop : EpochDecision::Continue;
    };
    TrainOptions o = quick(6);
    o.learningRate = 4e-3; // noisy enough that the last epoch is not always the best
    const TrialResult r = runTrial(m_tiny, o, {}, m_prepared, {}, callbacks);
    QCOMPARE(r.epochs, k);
    QCOMPARE(calls, k);
    QCOMPARE(r.stopReason, StopReason::Pruned);
    QVERIFY(r.model);

    int best = 0;
    for (int e = 0; e < k; ++e)
        if (best == 0 || r.history[e].validationMean < r.history[best - 1].validationMean)
            best = e + 1;
    QCOMPARE(r.bestEpoch, best);

    // Re-evaluating the returned model on the dataset gives the trial's numbers exactly, and the
    // best epoch's validation distance (the loop's own reduction, to float rounding).
    const Evaluation again = evaluateModel(*r.model, m_data, 1);
    QCOMPARE(again.overall.n, std::size_t(80));
    QCOMPARE(again.overall.mean, r.validation.overall.mean);
    QCOMPARE(again.overall.p95, r.validation.overall.p95);
    QVERIFY2(std::abs(again.overall.mean - r.history[best - 1].validationMean) < 1e-5,
             qPrintable(QStringLiteral("%1 vs %2").arg(again.overall.mean).arg(r.history[best - 1].validationMean)));
    const Evaluation test = evaluateModel(*r.model, m_data, 2);
    QCOMPARE(test.overall.mean, r.test.overall.mean);
    QCOMPARE(r.test.subsets.size(), std::size_t(2));
}

void TestTrial::patienceStops()
{
    TrainOptions o = quick(8);
    o.patience = 1;
    o.learningRate = 3e-2; // large: validation stops improving quickly
    o.schedule = "none";
    const TrialResult r = runTrial(m_tiny, o, {}, m_prepared);
    if (r.stopReason == StopReason::Patience) {
        QVERIFY(r.epochs < 8);
        // Stopped right after the first epoch that did not improve on the best.
        QVERIFY(r.history.back().validationMean >= r.history[r.bestEpoch - 1].validationMean);
        QCOMPARE(r.epochs, r.bestEpoch + 1);
    } else {
        QCOMPARE(r.stopReason, StopReason::Completed);
        for (int e = 1; e < r.epochs; ++e)
            QVERIFY(r.history[e].validationMean < r.history[e - 1].validationMean);
    }
}

void TestTrial::jsonRoundTripExact()
{
    TrialBudget budget;
    budget.maxEpochs = 2;
    budget.maxSeconds = 1234.5;
    const TrialResult r = runTrial(m_tiny, quick(3), budget, m_data);
    QVERIFY(r.seconds.prepare > 0);
    const nlohmann::json j = r.toJson();
    const TrialResult back = TrialResult::fromJson(j);
    QCOMPARE(QString::fromStdString(back.toJson().dump()), QString::fromStdString(j.dump()));
    QVERIFY(!back.model);
    QCOMPARE(back.epochs, 2);
    QCOMPARE(back.bestEpoch, r.bestEpoch);
    QCOMPARE(back.validation.overall.mean, r.validation.overall.mean);
    QCOMPARE(back.test.subsets.at("no-neighbour").p75, r.test.subsets.at("no-neighbour").p75);
    QCOMPARE(back.history[1].trainLoss, r.history[1].trainLoss);
    QCOMPARE(back.cost.bops, r.cost.bops);
    QCOMPARE(back.cost.layers.size(), r.cost.layers.size());
    QCOMPARE(back.seconds.total(), r.seconds.total());
    QVERIFY(back.spec == m_tiny);
    QCOMPARE(back.recipe.seed, std::uint64_t(11));
    QCOMPARE(back.budget.maxSeconds, 1234.5);

    // The cost is the standard convention's.
    const Cost c = computeCost(m_tiny);
    QCOMPARE(r.cost.params, c.params);
    QCOMPARE(r.cost.bops, c.bops);
    QCOMPARE(j["cost"]["convention"].get<std::string>(), std::string("standard"));

    // The model carries the same metrics (metrics.json) without spec and recipe.
    QVERIFY(r.model);
    nlohmann::json expected = j;
    expected.erase("spec");
    expected.erase("recipe");
    expected.erase("metrics");
    expected["validation"] = j["metrics"]["validation"];
    expected["test"] = j["metrics"]["test"];
    QCOMPARE(QString::fromStdString(r.model->metrics.dump()), QString::fromStdString(expected.dump()));
    QCOMPARE(r.model->recipe["data"]["file"].get<std::string>(), std::string("simulated"));
    QCOMPARE(r.model->recipe["data"]["validation"].get<int>(), 80);
    QCOMPARE(r.model->recipe["arch"].get<std::string>(), std::string("tiny"));

    // A failed trial (non-finite numbers written as null) round-trips too.
    TrialResult failed = back;
    failed.failure = "training diverged at epoch 2: loss nan";
    failed.stopReason = StopReason::Diverged;
    failed.history[1].trainLoss = std::numeric_limits<double>::quiet_NaN();
    failed.validation = {};
    failed.test = {};
    const nlohmann::json fj = failed.toJson();
    QVERIFY(fj["history"][1]["loss"].is_null());
    QCOMPARE(fj["status"].get<std::string>(), std::string("failed"));
    QVERIFY(!fj["metrics"].contains("validation"));
    const TrialResult fback = TrialResult::fromJson(fj);
    QVERIFY(std::isnan(fback.history[1].trainLoss));
    QCOMPARE(fback.failure, failed.failure);
    QCOMPARE(QString::fromStdString(fback.toJson().dump()), QString::fromStdString(fj.dump()));
}

void TestTrial::jsonRejectsBadFields_data()
{
    QTest::addColumn<QString>("path");
    QTest::addColumn<QString>("value");
    QTest::addColumn<QString>("expected");
    QTest::newRow("status") << "/status" << "\"maybe\"" << "trial: status";
    QTest::newRow("stop reason") << "/stop_reason" << "\"bored\"" << "trial: stop_reason";
    QTest::newRow("epochs type") << "/epochs" << "\"two\"" << "trial: epochs";
    QTest::newRow("epochs vs history") << "/epochs" << "5" << "trial: epochs: 5 but history has 2";
    QTest::newRow("history entry") << "/history/1/lr" << "\"x\"" << "trial.history[1]: lr";
    QTest::newRow("validation n") << "/metrics/validation/n" << "-1.5" << "trial.metrics.validation: n";
    QTest::newRow("recipe optimizer") << "/recipe/optimizer" << "\"lbfgs\"" << "trial.recipe: optimizer";
    QTest::newRow("cost layers") << "/cost/layers" << "3" << "trial.cost: layers";
}

void TestTrial::jsonRejectsBadFields()
{
    QFETCH(QString, path);
    QFETCH(QString, value);
    QFETCH(QString, expected);
    TrialBudget budget;
    budget.maxEpochs = 2;
    static const nlohmann::json good = runTrial(m_tiny, quick(2), budget, m_prepared).toJson();
    nlohmann::json bad = good;
    bad[nlohmann::json::json_pointer(path.toStdString())] = nlohmann::json::parse(value.toStdString());
    const QString message = braggnac::test::inputErrorMessage([&] { TrialResult::fromJson(bad); });
    QVERIFY2(message.startsWith(expected), qPrintable(message));
}

void TestTrial::divergedTrainingFails()
{
    TrainOptions o = quick(3);
    o.learningRate = 1e30;
    const TrialResult r = runTrial(m_tiny, o, {}, m_prepared);
    QVERIFY(r.failed());
    QCOMPARE(r.stopReason, StopReason::Diverged);
    const QString failure = QString::fromStdString(r.failure);
    QVERIFY2(QRegularExpression(QStringLiteral(
                 "^training diverged at epoch [1-3]: (loss|validation distance) (nan|inf|-inf)$"))
                 .match(failure)
                 .hasMatch(),
             qPrintable(failure));
    QVERIFY(failure.contains(QStringLiteral("epoch %1:").arg(r.epochs)));
    QVERIFY(!r.validation.present());
    QVERIFY(!r.test.present());
    const nlohmann::json j = r.toJson();
    QCOMPARE(j["status"].get<std::string>(), std::string("failed"));
    QCOMPARE(j["failure"].get<std::string>(), r.failure);
    QCOMPARE(j["stop_reason"].get<std::string>(), std::string("diverged"));
    QVERIFY(j["metrics"].empty());
    QVERIFY(r.model); // kept for a caller that asks to keep diverged runs
    QCOMPARE(r.model->metrics["status"].get<std::string>(), std::string("failed"));
}

void TestTrial::preparedEvaluationEqualsDatasetEvaluation()
{
    const TrainResult t = trainModel(m_tiny, m_data, quick(1));
    for (int split : {1, 2}) {
        const Evaluation a = evaluateModel(t.model, m_data, split);
        const Evaluation b = evaluateModel(t.model, m_prepared, split);
        QCOMPARE(b.indices, a.indices);
        QCOMPARE(b.predictions, a.predictions); // bit for bit
        QCOMPARE(b.distances, a.distances);
        QCOMPARE(b.overall.mean, a.overall.mean);
        QCOMPARE(b.subsets.size(), a.subsets.size());
        for (std::size_t i = 0; i < a.subsets.size(); ++i) {
            QCOMPARE(b.subsets[i].first, a.subsets[i].first);
            QCOMPARE(b.subsets[i].second.mean, a.subsets[i].second.mean);
        }
    }
    const QString message = braggnac::test::inputErrorMessage([&] { evaluateModel(t.model, m_prepared, 0); });
    QVERIFY2(message.startsWith(QStringLiteral("split:")), qPrintable(message));
}

void TestTrial::concurrentTrialsEqualSequential()
{
    ArchSpec other = m_tiny;
    other.name = "tiny-wide";
    other.stem.channels = 6;
    TrainOptions oa = quick(2), ob = quick(2);
    ob.seed = 12;
    ob.optimizer = "adam";
    ob.learningRate = 2e-3;

    const TrialResult seqA = runTrial(m_tiny, oa, {}, m_prepared);
    const TrialResult seqB = runTrial(other, ob, {}, m_prepared);

    TrialResult parA, parB;
    std::string errA, errB;
    auto run = [this](const ArchSpec &spec, const TrainOptions &o, TrialResult &out, std::string &err) {
        try {
            out = runTrial(spec, o, {}, m_prepared);
        } catch (const std::exception &e) {
            err = e.what();
        }
    };
    std::thread ta(run, std::cref(m_tiny), std::cref(oa), std::ref(parA), std::ref(errA));
    std::thread tb(run, std::cref(other), std::cref(ob), std::ref(parB), std::ref(errB));
    ta.join();
    tb.join();
    QVERIFY2(errA.empty(), errA.c_str());
    QVERIFY2(errB.empty(), errB.c_str());
    QCOMPARE(QString::fromStdString(deterministicPart(parA).dump()),
             QString::fromStdString(deterministicPart(seqA).dump()));
    QCOMPARE(QString::fromStdString(deterministicPart(parB).dump()),
             QString::fromStdString(deterministicPart(seqB).dump()));
    QVERIFY(seqA.history[1].trainLoss != seqB.history[1].trainLoss);
}

void TestTrial::perThreadTorchThreads()
{
    ScopedTorchThreads mainThreads(2);
    QCOMPARE(ScopedTorchThreads::current(), 2);
    int inside = 0, afterScope = 0, mainSeenFromWorkerTime = 0;
    std::thread worker([&] {
        {
            ScopedTorchThreads one(1);
            inside = ScopedTorchThreads::current();
        }
        afterScope = ScopedTorchThreads::current();
    });
    worker.join();
    mainSeenFromWorkerTime = ScopedTorchThreads::current();
    QCOMPARE(inside, 1);
    QVERIFY(afterScope >= 1);
    QCOMPARE(mainSeenFromWorkerTime, 2); // the worker's setting did not leak into this thread
    {
        ScopedTorchThreads three(3);
        QCOMPARE(ScopedTorchThreads::current(), 3);
    }
    QCOMPARE(ScopedTorchThreads::current(), 2); // restored
}

void TestTrial::torchErrorIsOneLine()
{
    // A head layer of 2e9 units needs terabytes: LibTorch's allocator throws a c10::Error with a
    // C++ backtrace; the trial reports its first line only.
    ArchSpec huge = m_tiny;
    huge.head[0].width = 2000000000;
    try {
        runTrial(huge, quick(1), {}, m_prepared);
        QFAIL("no exception");
    } catch (const InputError &e) {
        QFAIL(e.what());
    } catch (const Error &e) {
        const QString message = QString::fromStdString(e.what());
        QVERIFY2(!message.contains(QLatin1Char('\n')), qPrintable(message));
        QVERIFY2(message.startsWith(QStringLiteral("train: ")), qPrintable(message));
        QVERIFY2(message.contains(QStringLiteral("memory")), qPrintable(message));
    }
}

void TestTrial::preparedDataMismatchNamed()
{
    ArchSpec big = m_tiny;
    big.inputSize = 15;
    QString message = braggnac::test::inputErrorMessage([&] { runTrial(big, quick(1), {}, m_prepared); });
    QVERIFY2(message.startsWith(QStringLiteral("simulated: /patches: patch size 11")), qPrintable(message));
    TrainOptions o = quick(1);
    o.shift = 11;
    message = braggnac::test::inputErrorMessage([&] { runTrial(m_tiny, o, {}, m_prepared); });
    QVERIFY2(message.contains(QStringLiteral("shift")), qPrintable(message));
    message = braggnac::test::inputErrorMessage([&] { runTrial(m_tiny, quick(1), {}, PreparedData()); });
    QVERIFY2(message.contains(QStringLiteral("empty")), qPrintable(message));
    PatchDataset unlabelled = m_data;
    unlabelled.centers.clear();
    message = braggnac::test::inputErrorMessage([&] { prepareData(unlabelled, {"cpu", "u.h5"}); });
    QVERIFY2(message.startsWith(QStringLiteral("u.h5: /centers")), qPrintable(message));
}

void TestTrial::cliTrainAndTrialShareSchema()
{
    const QString model = m_dir.filePath(QStringLiteral("cli.model"));
    const auto train = runCli({QStringLiteral("train"), m_dataFile, QStringLiteral("--arch"),
                               QStringLiteral("nac"), QStringLiteral("--out"), model,
                               QStringLiteral("--epochs"), QStringLiteral("1"),
                               QStringLiteral("--threads"), QStringLiteral("1"),
                               QStringLiteral("--json")});
    QVERIFY2(train.finished && train.exitCode == 0, train.err.constData());
    const nlohmann::json cliMetrics = readJsonFile(model + QStringLiteral("/metrics.json"));
    const nlohmann::json cliRecipe = readJsonFile(model + QStringLiteral("/recipe.json"));
    QVERIFY(cliMetrics.is_object());
    QCOMPARE(cliMetrics["status"].get<std::string>(), std::string("complete"));
    QCOMPARE(cliMetrics["validation"]["n"].get<int>(), 80);
    QCOMPARE(cliMetrics["test"]["n"].get<int>(), 80);
    QCOMPARE(cliRecipe["data"]["file"].get<std::string>(), m_dataFile.toStdString());

    // The core call the studio's Train panel makes (runTrial on its dataset, Model::save).
    TrainOptions o; // the CLI's defaults: seed 1, 1 epoch, 1 thread
    o.epochs = 1;
    o.seed = 1;
    o.threads = 1;
    o.dataSource = m_dataFile.toStdString();
    const TrialResult r = runTrial(builtinArch("nac"), o, {}, m_data);
    const std::set<std::string> cliKeys = keyPaths(cliMetrics), coreKeys = keyPaths(r.model->metrics);
    QVERIFY2(cliKeys == coreKeys, qPrintable(describeDifference(cliKeys, coreKeys)));
    const std::set<std::string> cliRecipeKeys = keyPaths(cliRecipe), coreRecipeKeys = keyPaths(r.model->recipe);
    QVERIFY2(cliRecipeKeys == coreRecipeKeys, qPrintable(describeDifference(cliRecipeKeys, coreRecipeKeys)));
    // Same seed, data and threads: the same numbers, too.
    QCOMPARE(cliMetrics["test"]["mean"].get<double>(), r.test.overall.mean);
    QVERIFY(cliMetrics["test"]["subsets"].contains("neighbour"));

    // braggnac trial: the bridge for external optimisers.
    const QString trialModel = m_dir.filePath(QStringLiteral("trial.model"));
    const auto trial = runCli({QStringLiteral("trial"), m_dataFile, QStringLiteral("--arch"),
                               QStringLiteral("nac"), QStringLiteral("--epochs"), QStringLiteral("1"),
                               QStringLiteral("--threads"), QStringLiteral("1"),
                               QStringLiteral("--out"), trialModel, QStringLiteral("--json")});
    QVERIFY2(trial.finished && trial.exitCode == 0, trial.err.constData());
    const nlohmann::json tj = nlohmann::json::parse(trial.out.toStdString());
    for (const char *key : {"spec", "metrics", "cost", "epochs", "seconds", "history"})
        QVERIFY2(tj.contains(key), key);
    QCOMPARE(tj["epochs"].get<int>(), 1);
    QCOMPARE(tj["history"].size(), std::size_t(1));
    QCOMPARE(tj["cost"]["params"].get<std::int64_t>(), computeCost(builtinArch("nac")).params);
    QCOMPARE(tj["metrics"]["validation"]["n"].get<int>(), 80);
    QCOMPARE(tj["metrics"]["test"]["mean"].get<double>(), r.test.overall.mean);
    QVERIFY(ArchSpec::fromJson(tj["spec"]) == builtinArch("nac"));
    const TrialResult parsed = TrialResult::fromJson(tj);
    QCOMPARE(parsed.epochs, 1);
    const nlohmann::json trialMetrics = readJsonFile(trialModel + QStringLiteral("/metrics.json"));
    QVERIFY(keyPaths(trialMetrics) == cliKeys);
}

void TestTrial::cliTrainDivergedSavesNothing()
{
    const QString model = m_dir.filePath(QStringLiteral("diverged.model"));
    const QStringList args = {QStringLiteral("train"), m_dataFile, QStringLiteral("--arch"),
                              QStringLiteral("nac"), QStringLiteral("--out"), model,
                              QStringLiteral("--epochs"), QStringLiteral("2"),
                              QStringLiteral("--lr"), QStringLiteral("1e30"),
                              QStringLiteral("--threads"), QStringLiteral("1")};
    const auto r = runCli(args);
    QVERIFY(r.finished);
    QCOMPARE(r.exitCode, 1);
    QVERIFY2(r.err.contains("training diverged at epoch"), r.err.constData());
    QCOMPARE(r.err.count('\n'), 1); // one line
    QVERIFY(!QFileInfo::exists(model));
    const QStringList leftovers = QDir(m_dir.path()).entryList({QStringLiteral("*diverged*")},
                                                              QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot);
    QVERIFY2(leftovers.isEmpty(), qPrintable(leftovers.join(QLatin1Char(' '))));

    // Asked to keep it: saved, marked failed, still exit 1.
    const auto kept = runCli(QStringList(args) << QStringLiteral("--keep-diverged"));
    QVERIFY(kept.finished);
    QCOMPARE(kept.exitCode, 1);
    const nlohmann::json metrics = readJsonFile(model + QStringLiteral("/metrics.json"));
    QVERIFY(metrics.is_object());
    QCOMPARE(metrics["status"].get<std::string>(), std::string("failed"));
    QVERIFY(metrics["failure"].get<std::string>().rfind("training diverged at epoch", 0) == 0);

    // braggnac trial reports the failed trial as JSON and exits 1.
    const auto trial = runCli({QStringLiteral("trial"), m_dataFile, QStringLiteral("--arch"),
                               QStringLiteral("nac"), QStringLiteral("--epochs"), QStringLiteral("2"),
                               QStringLiteral("--lr"), QStringLiteral("1e30"),
                               QStringLiteral("--threads"), QStringLiteral("1"), QStringLiteral("--json")});
    QVERIFY(trial.finished);
    QCOMPARE(trial.exitCode, 1);
    const nlohmann::json tj = nlohmann::json::parse(trial.out.toStdString());
    QCOMPARE(tj["status"].get<std::string>(), std::string("failed"));
    QCOMPARE(tj["stop_reason"].get<std::string>(), std::string("diverged"));
}

void TestTrial::cancelledTrialThrows()
{
    Monitor monitor;
    TrialCallbacks callbacks;
    int epochs = 0;
    callbacks.onEpoch = [&](const EpochStats &) {
        ++epochs;
        monitor.cancel.cancel(); // as the studio's Cancel button, between epochs
        return EpochDecision::Continue;
    };
    bool cancelled = false;
    try {
        runTrial(m_tiny, quick(4), {}, m_prepared, monitor, callbacks);
    } catch (const CancelledError &) {
        cancelled = true;
    }
    QVERIFY(cancelled);
    QCOMPARE(epochs, 1); // stopped before the second epoch's first batch
}

void TestTrial::cliTrialBadInput_data()
{
    QTest::addColumn<QStringList>("extra");
    QTest::addColumn<QString>("expected");
    QTest::newRow("unknown arch") << QStringList{QStringLiteral("--arch"), QStringLiteral("nosuch")} << "nosuch";
    QTest::newRow("negative max-epochs")
        << QStringList{QStringLiteral("--arch"), QStringLiteral("nac"), QStringLiteral("--max-epochs"), QStringLiteral("-1")}
        << "--max-epochs";
    QTest::newRow("nan max-seconds")
        << QStringList{QStringLiteral("--arch"), QStringLiteral("nac"), QStringLiteral("--max-seconds"), QStringLiteral("nan")}
        << "--max-seconds";
    QTest::newRow("spec size mismatch")
        << QStringList{QStringLiteral("--arch"), QStringLiteral("SPEC15")} << "patch size 11";
}

void TestTrial::cliTrialBadInput()
{
    QFETCH(QStringList, extra);
    QFETCH(QString, expected);
    ArchSpec big = m_tiny;
    big.inputSize = 15;
    const QString spec15 = m_dir.filePath(QStringLiteral("spec15.json"));
    big.save(spec15.toStdString());
    extra.replaceInStrings(QStringLiteral("SPEC15"), spec15);
    const QString out = m_dir.filePath(QStringLiteral("bad-trial.model"));
    const auto r = runCli(QStringList{QStringLiteral("trial"), m_dataFile} + extra
                          + QStringList{QStringLiteral("--epochs"), QStringLiteral("1"), QStringLiteral("--out"), out,
                                        QStringLiteral("--json")});
    QVERIFY(r.finished);
    QCOMPARE(r.exitCode, 2);
    QVERIFY2(r.err.contains(expected.toUtf8()), r.err.constData());
    QVERIFY(r.out.isEmpty());
    QVERIFY(!QFileInfo::exists(out));
}

QTEST_GUILESS_MAIN(TestTrial)
#include "tst_trial.moc"
