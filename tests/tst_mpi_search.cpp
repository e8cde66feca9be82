// braggnac-test-libs: braggnac_search braggnac_arch
// `mpirun braggnac search` over OpenMPI with real (tiny) training: 3 ranks (rank 0 drives, 2
// train) complete N trials, each stored once and trained once; a run in which rank 2 dies by
// SIGKILL at the first epoch of its second trial (test hook BRAGGNAC_TEST_MPI_KILL) still
// completes N trials, the killed one requeued and trained again by the surviving rank (exactly
// one trial with two attempts, none failed); -np 1 exits 2 naming the problem, writing nothing.
// Skipped with a message when mpirun is not installed.
#include <set>
#include <string>

#include <QFile>
#include <QProcess>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>

#include <nlohmann/json.hpp>

#include "core/search/studystore.h"
#include "testutil.h"

using namespace braggnac;
using braggnac::test::runCli;
using nlohmann::json;

class TestMpiSearch : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    QString m_data;
    QString m_mpirun;
    QString file(const char *name) const { return m_dir.filePath(QString::fromLatin1(name)); }

    struct Run {
        int exitCode = -1;
        QByteArray out, err;
    };

    // recovery: mpirun --enable-recovery (a dead rank does not end the job; mpirun then exits 0
    // whatever the ranks return, so those runs are judged by the study and the --json output)
    Run mpirun(int ranks, const QString &db, int trials, bool recovery, const QStringList &env = {}) const
    {
        QStringList a{"--allow-run-as-root", "--oversubscribe", "-np", QString::number(ranks)};
        if (recovery)
            a << "--enable-recovery";
        QProcessEnvironment pe = QProcessEnvironment::systemEnvironment();
        for (const QString &kv : env) {
            const int eq = kv.indexOf('=');
            pe.insert(kv.left(eq), kv.mid(eq + 1));
            a << "-x" << kv.left(eq);
        }
        a << QStringLiteral(BRAGGNAC_CLI) << "search" << m_data << "--study" << db << "--trials"
          << QString::number(trials) << "--epochs" << "2" << "--population" << "4" << "--batch" << "128"
          << "--seed" << "5" << "--json";
        QProcess p;
        p.setProcessEnvironment(pe);
        p.start(m_mpirun, a);
        Run r;
        if (!p.waitForFinished(240000)) {
            p.kill();
            p.waitForFinished(5000);
            r.err = "mpirun timed out";
            return r;
        }
        r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
        r.out = p.readAllStandardOutput();
        r.err = p.readAllStandardError();
        return r;
    }

    static std::vector<core::TrialRecord> trialsOf(const QString &db)
    {
        const core::StudyStore s = core::StudyStore::open(db.toStdString(), core::StudyStore::Mode::ReadOnly);
        return s.listTrials();
    }

private Q_SLOTS:
    void initTestCase()
    {
        m_mpirun = QStandardPaths::findExecutable("mpirun");
        if (m_mpirun.isEmpty())
            QSKIP("mpirun not installed (Debian: openmpi-bin)");
        QVERIFY(m_dir.isValid());
        m_data = file("p.h5");
        const auto r = runCli({"simulate", "patches", "--out", m_data, "--n", "400", "--seed", "2"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
    }

    void threeRanksCompleteEveryTrialOnce()
    {
        const QString db = file("three.db");
        const Run r = mpirun(3, db, 6, false);
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const json summary = json::parse(r.out.toStdString());
        QCOMPARE(summary["counts"]["complete"].get<int>() + summary["counts"]["pruned"].get<int>(), 6);
        const auto trials = trialsOf(db);
        QCOMPARE(int(trials.size()), 6);
        std::set<std::string> specs;
        for (const auto &t : trials) {
            QVERIFY(t.state == core::TrialState::Complete || t.state == core::TrialState::Pruned);
            QCOMPARE(t.attempts, 1);
            QCOMPARE(t.fidelity, 2);
            QVERIFY2(specs.insert(t.specHash).second, "a spec was trained twice");
            // the worker rank that trained it, not rank 0 which claimed it for that worker
            QVERIFY2(t.rank == 1 || t.rank == 2, std::to_string(t.rank).c_str());
            QVERIFY(!t.host.empty());
        }
    }

    void killedRankOnlyRequeuesItsTrial()
    {
        const QString db = file("kill.db");
        const Run r = mpirun(3, db, 6, true, {"BRAGGNAC_TEST_MPI_KILL=2:2", "BRAGGNAC_MPI_TIMEOUT=6"});
        QVERIFY2(r.exitCode == 0, (r.err + r.out).constData());
        const json summary = json::parse(r.out.toStdString());
        QCOMPARE(summary["counts"]["complete"].get<int>() + summary["counts"]["pruned"].get<int>(), 6);
        QCOMPARE(summary["counts"]["failed"].get<int>(), 0);
        const auto trials = trialsOf(db);
        QCOMPARE(int(trials.size()), 6);
        int twice = 0;
        std::set<std::string> specs;
        for (const auto &t : trials) {
            QVERIFY2(t.state == core::TrialState::Complete || t.state == core::TrialState::Pruned,
                     t.error.c_str());
            QVERIFY(t.attempts == 1 || t.attempts == 2);
            twice += t.attempts == 2 ? 1 : 0;
            QVERIFY(specs.insert(t.specHash).second);
            if (t.attempts == 2)
                QCOMPARE(t.rank, 1); // retrained by the surviving rank after rank 2 died
        }
        QCOMPARE(twice, 1); // the trial rank 2 was training when it died, and only that one
    }

    void oneRankIsAnError()
    {
        const QString db = file("one.db");
        const Run r = mpirun(1, db, 2, false);
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("-np 1") && r.err.contains("no worker rank"), r.err.constData());
        QVERIFY(!QFile::exists(db));
    }
};

QTEST_GUILESS_MAIN(TestMpiSearch)
#include "tst_mpi_search.moc"
