// braggnac-test-libs: braggnac_search braggnac_arch
// `braggnac search` and `braggnac study` end to end with real (tiny) LibTorch training: a search
// runs to N trials and `study --pareto --json` gives its front; SIGKILL of a running search and
// the same command again lose and repeat no finished trial; SIGINT ends with exit 1 and every
// finished trial kept; --best --out copies the model; bad input exits 2 naming the file.
#include <csignal>
#include <set>
#include <string>

#include <QElapsedTimer>
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
        return 0; // not created yet
    }
}

} // namespace

class TestCliSearch : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    QString m_data;
    QString file(const char *name) const { return m_dir.filePath(QString::fromLatin1(name)); }
    QStringList searchArgs(const QString &db, int trials) const
    {
        return {"search", m_data, "--study", db, "--trials", QString::number(trials), "--epochs", "2",
                "--population", "4", "--workers", "2", "--batch", "128", "--seed", "5"};
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_data = file("patches.h5");
        const auto r = runCli({"simulate", "patches", "--out", m_data, "--n", "600", "--seed", "2"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
    }

    void searchThenParetoFront()
    {
        const QString db = file("s.db");
        auto r = runCli(searchArgs(db, 6) << "--json");
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const json summary = json::parse(r.out.toStdString());
        QCOMPARE(summary["counts"]["complete"].get<int>() + summary["counts"]["failed"].get<int>(), 6);
        r = runCli({"study", db, "--pareto", "--json"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const json front = json::parse(r.out.toStdString());
        QVERIFY(!front["trials"].empty());
        QCOMPARE(front["trials"].size(), summary["front"].size());
        std::set<int> fromSearch, fromStudy;
        for (const auto &t : summary["front"])
            fromSearch.insert(t["number"].get<int>());
        for (const auto &t : front["trials"]) {
            fromStudy.insert(t["number"].get<int>());
            QCOMPARE(t["values"].size(), std::size_t(2));
            QCOMPARE(t["values"][1].get<double>(), t["cost"]["bops"].get<double>());
            QCOMPARE(t["values"][0].get<double>(), t["metrics"]["validation"]["mean"].get<double>());
        }
        QVERIFY(fromSearch == fromStudy);
        // --best --out writes that trial's model folder; --csv prints one row per trial
        r = runCli({"study", db, "--best", "--out", file("best.model")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        QVERIFY(QFile::exists(file("best.model") + "/model.json"));
        r = runCli({"study", db, "--csv"});
        QCOMPARE(r.out.count('\n'), 7);
        // the same command again: nothing left to do, nothing retrained
        r = runCli(searchArgs(db, 6) << "--json");
        QVERIFY2(r.exitCode == 0, r.err.constData());
        QCOMPARE(json::parse(r.out.toStdString())["counts"]["complete"].get<int>(),
                 summary["counts"]["complete"].get<int>());
    }

    void killedSearchResumesWithoutLossOrDuplicates()
    {
        const QString db = file("kill.db");
        const std::string dbPath = db.toStdString();
        QProcess p;
        p.start(QStringLiteral(BRAGGNAC_CLI), searchArgs(db, 8));
        QVERIFY(p.waitForStarted());
        QElapsedTimer t;
        t.start();
        while (finishedTrials(dbPath) < 2 && t.elapsed() < 120000 && p.state() == QProcess::Running)
            QThread::msleep(50);
        QVERIFY2(p.state() == QProcess::Running, "the search ended before it could be killed");
        QVERIFY(finishedTrials(dbPath) >= 2);
        ::kill(pid_t(p.processId()), SIGKILL);
        QVERIFY(p.waitForFinished(10000));

        std::set<std::string> before;
        {
            const core::StudyStore s = core::StudyStore::open(dbPath, core::StudyStore::Mode::ReadOnly);
            for (const auto &tr : s.listTrials())
                if (core::isFinished(tr.state))
                    before.insert(std::to_string(tr.id) + "/" + tr.specHash);
        }
        QVERIFY(before.size() >= 2);
        const auto r = runCli(searchArgs(db, 8) << "--json");
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const json summary = json::parse(r.out.toStdString());
        const core::StudyStore s = core::StudyStore::open(dbPath, core::StudyStore::Mode::ReadOnly);
        const auto trials = s.listTrials();
        std::set<std::string> hashes, after;
        int finished = 0;
        for (const auto &tr : trials) {
            QVERIFY2(hashes.insert(tr.specHash).second, "a spec was trained twice");
            if (core::isFinished(tr.state)) {
                ++finished;
                after.insert(std::to_string(tr.id) + "/" + tr.specHash);
            }
            QVERIFY(tr.state != core::TrialState::Running);
        }
        QCOMPARE(finished, 8);
        for (const auto &b : before)
            QVERIFY2(after.count(b), "a finished trial was lost");
        // the trials that were running at the kill were requeued and then trained
        QVERIFY(summary["recovered"].get<int>() >= 0);
    }

    void sigintStopsCleanlyWithExitOne()
    {
        const QString db = file("int.db");
        QProcess p;
        p.start(QStringLiteral(BRAGGNAC_CLI), searchArgs(db, 50));
        QVERIFY(p.waitForStarted());
        QElapsedTimer t;
        t.start();
        while (finishedTrials(db.toStdString()) < 1 && t.elapsed() < 120000 && p.state() == QProcess::Running)
            QThread::msleep(50);
        ::kill(pid_t(p.processId()), SIGINT);
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitStatus(), QProcess::NormalExit);
        QCOMPARE(p.exitCode(), 1);
        QVERIFY(QString::fromUtf8(p.readAllStandardError()).contains("run the same command to resume"));
        const core::StudyStore s = core::StudyStore::open(db.toStdString(), core::StudyStore::Mode::ReadOnly);
        const core::StateCounts c = s.counts();
        QCOMPARE(c.running, 0);
        QVERIFY(c.complete >= 1);
    }

    void badInputExitsTwoNamingTheFile()
    {
        // a file that is not a study
        auto r = runCli(searchArgs(m_data, 2));
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("patches.h5"), r.err.constData());
        // an unknown space
        r = runCli(QStringList(searchArgs(file("x.db"), 2)) << "--space" << file("nope.json"));
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("nope.json"), r.err.constData());
        QVERIFY(!QFile::exists(file("x.db")));
        // a study of another dataset is refused unless --force
        const QString other = file("other.h5");
        QCOMPARE(runCli({"simulate", "patches", "--out", other, "--n", "300", "--seed", "3"}).exitCode, 0);
        QStringList a = searchArgs(file("s.db"), 6);
        a[1] = other;
        r = runCli(a);
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("s.db"), r.err.constData());
        // study on a missing file
        r = runCli({"study", file("missing.db"), "--json"});
        QCOMPARE(r.exitCode, 2);
        QVERIFY(r.err.contains("missing.db"));
    }
};

QTEST_GUILESS_MAIN(TestCliSearch)
#include "tst_cli_search.moc"
