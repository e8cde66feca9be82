// braggnac-test-libs: braggnac_common
// Nothing lost (issue 12): every way a verb could write over its own input or over the user's
// files exits 2 and leaves them byte-identical; outputs are checked before the work starts; and
// SIGTERM / SIGINT / SIGKILL in the write phase of fit and train (reached with the test hook
// BRAGGNAC_TEST_PAUSE_BEFORE_COMMIT) leave the old output intact and no stray temporaries.
#include <csignal>
#include <filesystem>

#include <unistd.h>

#include <QCryptographicHash>
#include <QDir>
#include <QDirIterator>
#include <QElapsedTimer>
#include <QFile>
#include <QProcess>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>

#include "core/common/atomicfile.h"
#include "testutil.h"

using braggnac::test::CliResult;
using braggnac::test::runCli;

namespace {

/// A digest of a file, or of every file under a folder (names and contents).
QByteArray digest(const QString &path)
{
    QCryptographicHash h(QCryptographicHash::Sha256);
    const QFileInfo info(path);
    if (info.isDir()) {
        QStringList files;
        QDirIterator it(path, QDir::Files | QDir::Hidden | QDir::NoDotAndDotDot, QDirIterator::Subdirectories);
        while (it.hasNext())
            files << it.next();
        files.sort();
        for (const QString &f : files) {
            h.addData(f.mid(path.size()).toUtf8());
            QFile file(f);
            if (file.open(QIODevice::ReadOnly))
                h.addData(file.readAll());
        }
    } else {
        QFile file(path);
        if (!file.open(QIODevice::ReadOnly))
            return "MISSING";
        h.addData(file.readAll());
    }
    return h.result().toHex();
}

QStringList temporaries(const QString &folder)
{
    QStringList out;
    for (const QString &name : QDir(folder).entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot))
        if (braggnac::core::isTemporaryName(name.toStdString()))
            out << name;
    return out;
}

bool ok(const CliResult &r)
{
    return r.finished && r.exitStatus == QProcess::NormalExit && r.exitCode == 0;
}

} // namespace

class TestCliSafety : public QObject {
    Q_OBJECT
    QTemporaryDir m_tmp;
    QString m_dir;

    QString at(const QString &name) const { return m_dir + QLatin1Char('/') + name; }
    CliResult run(QStringList args, int timeoutMs = 120000)
    {
        for (QString &a : args)
            a.replace(QLatin1String("@"), m_dir + QLatin1Char('/'));
        return runCli(args, timeoutMs);
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_tmp.isValid());
        m_dir = m_tmp.path();
        CliResult r = run({"simulate", "frames", "--out", "@frames.h5", "--frames", "2", "--size", "128", "--peaks", "20", "--seed", "1"});
        QVERIFY2(ok(r), r.err.constData());
        r = run({"simulate", "frames", "--out", "@dark.h5", "--frames", "1", "--size", "128", "--peaks", "0", "--seed", "2"});
        QVERIFY2(ok(r), r.err.constData());
        r = run({"peaks", "@frames.h5", "--out", "@patches.h5"});
        QVERIFY2(ok(r), r.err.constData());
        r = run({"simulate", "patches", "--out", "@sim.h5", "--n", "400", "--seed", "3"});
        QVERIFY2(ok(r), r.err.constData());
        r = run({"train", "@sim.h5", "--arch", "nac", "--out", "@m.model", "--epochs", "1", "--threads", "1"});
        QVERIFY2(ok(r), r.err.constData());
        QVERIFY(QFile::copy(at("sim.h5"), at("labels.h5")));
        QVERIFY(QFile::link(at("patches.h5"), at("sym.h5")));
        std::error_code ec;
        std::filesystem::create_hard_link(at("patches.h5").toStdString(), at("hard.h5").toStdString(), ec);
        QVERIFY(!ec);
        QDir(m_dir).mkdir(QStringLiteral("userdir"));
        QFile f(at("userdir/notes.txt"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("a scientist's notes");
        f.close();
        QFile u(at("user.txt"));
        QVERIFY(u.open(QIODevice::WriteOnly));
        u.write("not written by braggnac");
        u.close();
        QVERIFY(QFile::copy(at("user.txt"), at("user.h5")));
    }

    void dataLoss_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("victim");
        QTest::addColumn<QString>("expect");
        QTest::newRow("train d.h5 --out d.h5")
            << QStringList{"train", "@sim.h5", "--arch", "nac", "--out", "@sim.h5", "--epochs", "1"} << "sim.h5" << "is the input";
        QTest::newRow("peaks X --out X") << QStringList{"peaks", "@frames.h5", "--out", "@frames.h5"} << "frames.h5" << "is the input";
        QTest::newRow("peaks F --dark D --out D")
            << QStringList{"peaks", "@frames.h5", "--dark", "@dark.h5", "--out", "@dark.h5"} << "dark.h5" << "is the input";
        QTest::newRow("fit P --out P") << QStringList{"fit", "@patches.h5", "--out", "@patches.h5"} << "patches.h5" << "is the input";
        QTest::newRow("fit P --out hard link of P") << QStringList{"fit", "@patches.h5", "--out", "@hard.h5"} << "patches.h5" << "is the input";
        QTest::newRow("fit P --out symlink to P") << QStringList{"fit", "@patches.h5", "--out", "@sym.h5"} << "patches.h5" << "is the input";
        QTest::newRow("fit P --out ./P (other spelling)")
            << QStringList{"fit", "@patches.h5", "--out", "@./patches.h5"} << "patches.h5" << "is the input";
        QTest::newRow("fit P --out P --force") << QStringList{"fit", "@patches.h5", "--out", "@patches.h5", "--force"} << "patches.h5" << "is the input";
        QTest::newRow("predict M P --out P")
            << QStringList{"predict", "@m.model", "@patches.h5", "--out", "@patches.h5"} << "patches.h5" << "is the input";
        QTest::newRow("predict M P --out M")
            << QStringList{"predict", "@m.model", "@patches.h5", "--out", "@m.model"} << "m.model" << "is the input";
        QTest::newRow("import-braggnn --labels L --out L")
            << QStringList{"import-braggnn", "--frames", "@frames.h5", "--labels", "@labels.h5", "--out", "@labels.h5"} << "labels.h5" << "is the input";
        QTest::newRow("train --out folder of user files")
            << QStringList{"train", "@sim.h5", "--arch", "nac", "--out", "@userdir", "--epochs", "1"} << "userdir" << "not a model folder";
        QTest::newRow("train --out folder of user files --force")
            << QStringList{"train", "@sim.h5", "--arch", "nac", "--out", "@userdir", "--epochs", "1", "--force"} << "userdir" << "even with --force";
        QTest::newRow("train --out the input's folder --force")
            << QStringList{"train", "@sim.h5", "--arch", "nac", "--out", "@.", "--epochs", "1", "--force"} << "sim.h5" << "holds the input";
        QTest::newRow("train --out user file")
            << QStringList{"train", "@sim.h5", "--arch", "nac", "--out", "@user.txt", "--epochs", "1"} << "user.txt" << "give --force";
        QTest::newRow("fit --out user file") << QStringList{"fit", "@patches.h5", "--out", "@user.txt"} << "user.txt" << "give --force";
        QTest::newRow("fit --out model folder")
            << QStringList{"fit", "@patches.h5", "--out", "@m.model", "--force"} << "m.model" << "not a patch file";
        QTest::newRow("simulate frames --out user file")
            << QStringList{"simulate", "frames", "--out", "@user.h5", "--frames", "1", "--size", "64"} << "user.h5" << "give --force";
        QTest::newRow("simulate patches --out model folder")
            << QStringList{"simulate", "patches", "--out", "@m.model", "--n", "10"} << "m.model" << "not a patch file";
    }
    void dataLoss()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, victim);
        QFETCH(QString, expect);
        const QByteArray before = digest(at(victim));
        const QStringList entriesBefore = QDir(m_dir).entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot);
        const CliResult r = run(args);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 2);
        const QString err = QString::fromUtf8(r.err).trimmed();
        QCOMPARE(err.count(QLatin1Char('\n')), 0); // one line
        QVERIFY2(err.contains(expect), qPrintable(err));
        QVERIFY2(!err.contains(QLatin1String(".braggnac-tmp")), qPrintable(err)); // names the target, not a temporary
        QVERIFY2(!err.contains(QLatin1String("epoch")), qPrintable(err));         // refused before any work
        QCOMPARE(digest(at(victim)), before);
        QCOMPARE(QDir(m_dir).entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot), entriesBefore);
        QVERIFY(r.out.isEmpty());
    }

    void forceReplacesUserFile()
    {
        QVERIFY(QFile::copy(at("user.txt"), at("user2.txt")));
        const CliResult r = run({"fit", "@patches.h5", "--out", "@user2.txt", "--force", "--json"});
        QVERIFY2(ok(r), r.err.constData());
        QVERIFY(digest(at("user2.txt")) != digest(at("user.txt")));
        // Now it is a patch file of ours: replaced again without --force.
        const CliResult again = run({"fit", "@patches.h5", "--out", "@user2.txt", "--json"});
        QVERIFY2(ok(again), again.err.constData());
        QVERIFY(temporaries(m_dir).isEmpty());
    }

    void outputCheckedBeforeWork_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("expect");
        QTest::newRow("train, missing folder")
            << QStringList{"train", "@sim.h5", "--arch", "nac", "--out", "@nodir/m.model", "--epochs", "1"} << "@nodir/m.model: output folder '@nodir' does not exist";
        QTest::newRow("fit, missing folder") << QStringList{"fit", "@patches.h5", "--out", "@nodir/l.h5"} << "@nodir/l.h5: output folder '@nodir' does not exist";
        QTest::newRow("peaks, parent is a file") << QStringList{"peaks", "@frames.h5", "--out", "@user.txt/p.h5"} << "is not a folder";
        QTest::newRow("simulate tiff, sidecar is the user's")
            << QStringList{"simulate", "frames", "--out", "@user.h5.tiff", "--frames", "1", "--size", "64"} << "@user.h5.tiff";
    }
    void outputCheckedBeforeWork()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, expect);
        expect.replace(QLatin1String("@"), m_dir + QLatin1Char('/'));
        if (QTest::currentDataTag() == QLatin1String("simulate tiff, sidecar is the user's")) {
            QFile::remove(at("user.h5.tiff.truth.h5"));
            QVERIFY(QFile::copy(at("user.txt"), at("user.h5.tiff.truth.h5")));
            expect = at("user.h5.tiff.truth.h5");
        }
        const CliResult r = run(args);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 2);
        const QString err = QString::fromUtf8(r.err).trimmed();
        QVERIFY2(err.contains(expect), qPrintable(err));
        QVERIFY2(!err.contains(QLatin1String("epoch")), qPrintable(err));
        QVERIFY(!QFile::exists(at("user.h5.tiff"))); // nothing written
        QVERIFY(temporaries(m_dir).isEmpty());
    }

    void unwritableFolder()
    {
        // Root writes anywhere; run the CLI as nobody then (setpriv, util-linux).
        QTemporaryDir tmp;
        QVERIFY(tmp.isValid());
        const QString dir = tmp.path();
        QVERIFY(QFile::setPermissions(dir, QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner
                                               | QFileDevice::ReadOther | QFileDevice::ExeOther | QFileDevice::ReadGroup
                                               | QFileDevice::ExeGroup));
        QVERIFY(QFile::copy(at("patches.h5"), dir + "/patches.h5"));
        QVERIFY(QFile::setPermissions(dir + "/patches.h5", QFileDevice::ReadOwner | QFileDevice::ReadGroup | QFileDevice::ReadOther));
        QDir(dir).mkdir(QStringLiteral("ro"));
        QVERIFY(QFile::setPermissions(dir + "/ro", QFileDevice::ReadOwner | QFileDevice::ExeOwner | QFileDevice::ReadGroup
                                                      | QFileDevice::ExeGroup | QFileDevice::ReadOther | QFileDevice::ExeOther));
        QStringList args{QStringLiteral(BRAGGNAC_CLI), "fit", dir + "/patches.h5", "--out", dir + "/ro/l.h5"};
        QString program = args.takeFirst();
        if (::geteuid() == 0) {
            if (QStandardPaths::findExecutable(QStringLiteral("setpriv")).isEmpty())
                QSKIP("running as root without setpriv: cannot make a folder unwritable");
            args = QStringList{"--reuid=65534", "--regid=65534", "--clear-groups", program} + args;
            program = QStandardPaths::findExecutable(QStringLiteral("setpriv"));
        }
        QProcess p;
        p.start(program, args);
        QVERIFY(p.waitForFinished(60000));
        const QString err = QString::fromUtf8(p.readAllStandardError()).trimmed();
        if (err.contains(QLatin1String("error while loading shared libraries"))
            || (err.contains(QLatin1String("Permission denied")) && !err.contains(QLatin1String("cannot write"))))
            QSKIP(qPrintable("the CLI cannot run as nobody here: " + err));
        QCOMPARE(p.exitCode(), 2);
        QVERIFY2(err.startsWith(QLatin1String("braggnac fit: ") + dir + "/ro/l.h5: cannot write in folder '" + dir + "/ro': Permission denied"),
                 qPrintable(err));
        QVERIFY(QDir(dir + "/ro").isEmpty());
    }

    void killInWritePhase_data()
    {
        QTest::addColumn<QString>("verb");
        QTest::addColumn<int>("signal");
        for (const char *verb : {"fit", "train"}) {
            QTest::newRow(qPrintable(QString::fromLatin1(verb) + " SIGTERM")) << verb << int(SIGTERM);
            QTest::newRow(qPrintable(QString::fromLatin1(verb) + " SIGINT")) << verb << int(SIGINT);
            QTest::newRow(qPrintable(QString::fromLatin1(verb) + " SIGKILL")) << verb << int(SIGKILL);
        }
    }
    void killInWritePhase()
    {
        QFETCH(QString, verb);
        QFETCH(int, signal);
        const QString sub = at("kill-" + QString::fromLatin1(QTest::currentDataTag()).replace(QLatin1Char(' '), QLatin1Char('-')));
        QVERIFY(QDir().mkpath(sub));
        const QString out = sub + (verb == QLatin1String("fit") ? "/labelled.h5" : "/out.model");
        const QStringList args = verb == QLatin1String("fit")
            ? QStringList{"fit", at("patches.h5"), "--out", out, "--threads", "1"}
            : QStringList{"train", at("sim.h5"), "--arch", "nac", "--out", out, "--epochs", "1", "--threads", "1", "--seed", "9"};
        // The old output, from an earlier run.
        const CliResult first = runCli(args);
        QVERIFY2(ok(first), first.err.constData());
        const QByteArray before = digest(out);

        QProcess p;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("BRAGGNAC_TEST_PAUSE_BEFORE_COMMIT"), QStringLiteral("60"));
        p.setProcessEnvironment(env);
        p.start(QStringLiteral(BRAGGNAC_CLI), args);
        QVERIFY(p.waitForStarted());
        QByteArray err;
        const QByteArray marker = "test hook: pausing before commit of " + out.toUtf8();
        QElapsedTimer t;
        t.start();
        while (!err.contains(marker) && t.elapsed() < 120000 && p.state() == QProcess::Running) {
            p.waitForReadyRead(200);
            err += p.readAllStandardError();
        }
        QVERIFY2(err.contains(marker), err.constData());
        // Fully written, not committed: the temporary is there now.
        QCOMPARE(temporaries(sub).size(), 1);
        QCOMPARE(::kill(pid_t(p.processId()), signal), 0);
        QVERIFY(p.waitForFinished(60000));
        err += p.readAllStandardError();
        QCOMPARE(digest(out), before); // the old output, intact
        if (signal == SIGKILL) {
            QCOMPARE(p.exitStatus(), QProcess::CrashExit);
            // The next run removes the dead run's temporary and replaces the output.
            QCOMPARE(temporaries(sub).size(), 1);
            const CliResult next = runCli(args);
            QVERIFY2(ok(next), next.err.constData());
            QVERIFY(temporaries(sub).isEmpty());
            return;
        }
        QCOMPARE(p.exitStatus(), QProcess::NormalExit);
        QCOMPARE(p.exitCode(), 1);
        QVERIFY2(err.contains("interrupted; nothing written"), err.constData());
        QVERIFY2(temporaries(sub).isEmpty(), qPrintable(temporaries(sub).join(QLatin1Char(' '))));
        QVERIFY(p.readAllStandardOutput().isEmpty());
    }

    void sigtermWhileTraining()
    {
        // Another phase: SIGTERM during the epochs (a long run), exit 1, nothing written.
        const QString out = at("long.model");
        QProcess p;
        p.start(QStringLiteral(BRAGGNAC_CLI), {"train", at("sim.h5"), "--arch", "nac", "--out", out, "--epochs", "100000", "--threads", "1"});
        QVERIFY(p.waitForStarted());
        QByteArray err;
        QElapsedTimer t;
        t.start();
        while (!err.contains("epoch 2/") && t.elapsed() < 120000 && p.state() == QProcess::Running) {
            p.waitForReadyRead(200);
            err += p.readAllStandardError();
        }
        QVERIFY2(err.contains("epoch 2/"), err.constData());
        QCOMPARE(::kill(pid_t(p.processId()), SIGTERM), 0);
        QVERIFY(p.waitForFinished(60000));
        err += p.readAllStandardError();
        QCOMPARE(p.exitStatus(), QProcess::NormalExit);
        QCOMPARE(p.exitCode(), 1);
        QVERIFY(!QFile::exists(out));
        QVERIFY(temporaries(m_dir).isEmpty());
    }
};

QTEST_GUILESS_MAIN(TestCliSafety)
#include "tst_cli_safety.moc"
