// braggnac-test-libs: braggnac_search braggnac_arch
// `braggnac tune` end to end with real (tiny) LibTorch training: N trials stored once each with
// hyper-parameters inside the space; every pruned trial stopped before the budget, and at the
// epoch it stopped its best value was worse than the median of the complete trials' values at
// that epoch (the median rule, checked from the stored per-epoch values); running again with a
// larger --trials continues without re-running a finished trial; SIGINT exits 1 with the
// finished trials kept; bad input (unknown parameter, a search study) exits 2 naming the field.
#include <algorithm>
#include <cmath>
#include <csignal>
#include <map>
#include <set>
#include <string>

#include <QElapsedTimer>
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QThread>
#include <QtTest>

#include <nlohmann/json.hpp>

#include "core/search/studystore.h"
#include "testutil.h"

using namespace braggnac;
using braggnac::test::runCli;
using nlohmann::json;

namespace {

int finishedTrials(const std::string &db)
{
    try {
        const core::StudyStore s = core::StudyStore::open(db, core::StudyStore::Mode::ReadOnly);
        const core::StateCounts c = s.counts();
        return c.complete + c.pruned + c.failed;
    } catch (const std::exception &) {
        return 0;
    }
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size();
    return m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
}

} // namespace

class TestTune : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    QString m_data;
    QString file(const char *name) const { return m_dir.filePath(QString::fromLatin1(name)); }
    QStringList tuneArgs(const QString &db, int trials, int workers = 1) const
    {
        // learning rates down to 1e-6 make slow trials that the median pruner stops
        return {"tune",  m_data,   "--arch", "nac", "--study", db, "--trials", QString::number(trials),
                "--epochs", "4", "--workers", QString::number(workers), "--space", file("space.json"),
                "--seed", "3"};
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_data = file("p.h5");
        const auto r = runCli({"simulate", "patches", "--out", m_data, "--n", "400", "--seed", "2"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        QFile f(file("space.json"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(R"({"params": [
            {"name": "optimizer", "type": "categorical", "choices": ["adam", "sgd"]},
            {"name": "learning_rate", "type": "float", "low": 1e-6, "high": 1e-2, "log": true},
            {"name": "momentum", "type": "float", "low": 0.5, "high": 0.99},
            {"name": "batch_size", "type": "categorical", "choices": ["64", "128"]}]})");
    }

    void tunesStoresPrunesAndResumes()
    {
        const QString db = file("t.db");
        auto r = runCli(tuneArgs(db, 12) << "--json");
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const json s1 = json::parse(r.out.toStdString());
        QCOMPARE(s1["trained"].get<int>(), 12);

        std::map<std::int64_t, double> finishedAt;
        {
            const core::StudyStore s = core::StudyStore::open(db.toStdString(), core::StudyStore::Mode::ReadOnly);
            QCOMPARE(s.info().kind, core::StudyKind::Tune);
            core::ListOptions lo;
            lo.withEpochs = true;
            const auto trials = s.listTrials(lo);
            QCOMPARE(int(trials.size()), 12);
            std::set<std::string> hyper;
            std::map<int, std::vector<double>> completeAt; // epoch -> complete trials' values
            int pruned = 0;
            for (const auto &t : trials) {
                QVERIFY(core::isFinished(t.state));
                QVERIFY2(hyper.insert(t.hyperHash).second, "the same hyper-parameters were trained twice");
                const json &h = t.hyperParams;
                QCOMPARE(int(h.size()), 4);
                const std::string opt = h["optimizer"].get<std::string>();
                QVERIFY(opt == "adam" || opt == "sgd");
                const double lr = h["learning_rate"].get<double>();
                QVERIFY(lr >= 1e-6 && lr <= 1e-2);
                const double mom = h["momentum"].get<double>();
                QVERIFY(mom >= 0.5 && mom <= 0.99);
                const std::string b = h["batch_size"].get<std::string>();
                QVERIFY(b == "64" || b == "128");
                QCOMPARE(int(t.epochs.size()), t.fidelity);
                if (t.state == core::TrialState::Complete) {
                    QCOMPARE(int(t.values.size()), 1);
                    QCOMPARE(t.values[0], t.metrics["validation"]["mean"].get<double>());
                }
                finishedAt[t.id] = t.finishedAt;
            }
            // the median rule, replayed in finishing order (one worker: trials finish in order)
            for (const auto &t : trials) {
                if (t.state == core::TrialState::Pruned) {
                    ++pruned;
                    QVERIFY2(t.fidelity < 4, "a pruned trial trained its whole budget");
                    QVERIFY(t.fidelity >= 1);
                    double best = HUGE_VAL;
                    for (const auto &e : t.epochs)
                        best = std::min(best, e.value);
                    const auto &at = completeAt[t.fidelity];
                    QVERIFY2(at.size() >= 5, "pruned before 5 complete trials reached that epoch");
                    QVERIFY2(best > median(at), "pruned although not worse than the median");
                } else if (t.state == core::TrialState::Complete) {
                    for (const auto &e : t.epochs)
                        completeAt[e.epoch].push_back(e.value);
                }
            }
            QVERIFY2(pruned >= 1, "no trial was pruned (learning rates down to 1e-6 should give some)");
        }

        // resume to 15: three more trials, the first twelve untouched
        r = runCli(tuneArgs(db, 15) << "--json");
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const json s2 = json::parse(r.out.toStdString());
        QCOMPARE(s2["trained"].get<int>(), 3);
        QCOMPARE(s2["recovered"].get<int>(), 0);
        const core::StudyStore s = core::StudyStore::open(db.toStdString(), core::StudyStore::Mode::ReadOnly);
        const auto trials = s.listTrials();
        QCOMPARE(int(trials.size()), 15);
        for (const auto &t : trials) {
            QVERIFY(core::isFinished(t.state));
            QCOMPARE(t.attempts, 1);
            if (finishedAt.count(t.id))
                QCOMPARE(t.finishedAt, finishedAt[t.id]);
        }
        const double best = s2["best_value"].get<double>();
        for (const auto &t : trials)
            if (t.state == core::TrialState::Complete)
                QVERIFY(t.values[0] >= best);
    }

    void sigintStopsCleanlyAndResumes()
    {
        const QString db = file("int.db");
        QProcess p;
        p.start(QStringLiteral(BRAGGNAC_CLI), tuneArgs(db, 200, 2));
        QVERIFY(p.waitForStarted());
        QElapsedTimer t;
        t.start();
        while (finishedTrials(db.toStdString()) < 2 && t.elapsed() < 120000 && p.state() == QProcess::Running)
            QThread::msleep(50);
        ::kill(pid_t(p.processId()), SIGINT);
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitStatus(), QProcess::NormalExit);
        QCOMPARE(p.exitCode(), 1);
        int kept = 0;
        {
            const core::StudyStore s = core::StudyStore::open(db.toStdString(), core::StudyStore::Mode::ReadOnly);
            const core::StateCounts c = s.counts();
            QCOMPARE(c.running, 0);
            kept = c.complete + c.pruned + c.failed;
            QVERIFY(kept >= 2);
        }
        const auto r = runCli(tuneArgs(db, kept + 2) << "--json");
        QVERIFY2(r.exitCode == 0, r.err.constData());
        QCOMPARE(json::parse(r.out.toStdString())["trained"].get<int>(), 2);
    }

    void badInputExitsTwo()
    {
        QFile f(file("bad.json"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(R"({"params": [{"name": "dropout", "type": "float", "low": 0, "high": 0.5}]})");
        f.close();
        QStringList a = tuneArgs(file("bad.db"), 2);
        a[a.indexOf("--space") + 1] = file("bad.json");
        auto r = runCli(a);
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("params[0].name") && r.err.contains("dropout"), r.err.constData());
        QVERIFY(!QFile::exists(file("bad.db")));

        // a search study is not a tune study
        r = runCli({"search", m_data, "--study", file("search.db"), "--trials", "1", "--epochs", "1",
                    "--population", "2", "--workers", "1"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        r = runCli(tuneArgs(file("search.db"), 2));
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("search.db"), r.err.constData());
    }
};

QTEST_GUILESS_MAIN(TestTune)
#include "tst_tune.moc"
