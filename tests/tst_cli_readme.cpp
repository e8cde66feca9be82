// braggnac-test-libs: braggnac_common
// The README's "The command line" example block, run as written (bash, set -e) in a temporary
// folder where build/app/braggnac/braggnac is the CLI built with the tests: every line exits 0,
// writes what it says, and each --json line prints one JSON object.
#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include "testutil.h"

class TestCliReadme : public QObject {
    Q_OBJECT

    static QStringList exampleBlock()
    {
        QFile f(QStringLiteral(BRAGGNAC_TEST_DATA "/../../README.md"));
        if (!f.open(QIODevice::ReadOnly | QIODevice::Text))
            return {};
        const QStringList lines = QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'));
        const int section = lines.indexOf(QStringLiteral("## The command line"));
        if (section < 0)
            return {};
        QStringList block;
        for (int i = section + 1; i < lines.size(); ++i) {
            const QString &l = lines[i];
            if (l.startsWith(QLatin1String("## ")))
                break;
            if (l.startsWith(QLatin1String("    ")))
                block << l.mid(4);
            else if (!block.isEmpty() && !l.trimmed().isEmpty())
                break; // the first indented block only
        }
        return block;
    }

private Q_SLOTS:
    void blockCoversTheVerbs()
    {
        const QStringList block = exampleBlock();
        QVERIFY2(block.size() >= 8, "README: no example block under '## The command line'");
        QCOMPARE(block.first(), QStringLiteral("B=build/app/braggnac/braggnac"));
        const QString all = block.join(QLatin1Char('\n'));
        for (const char *verb : {"simulate frames", "peaks", "fit", "simulate patches", "train", "evaluate", "predict", "cost"})
            QVERIFY2(all.contains(QStringLiteral("$B ") + QLatin1String(verb)), verb);
    }

    void runsAsWritten()
    {
        const QStringList block = exampleBlock();
        QVERIFY(!block.isEmpty());
        QTemporaryDir tmp;
        QVERIFY(tmp.isValid());
        const QString dir = tmp.path();
        QVERIFY(QDir(dir).mkpath(QStringLiteral("build/app/braggnac")));
        QVERIFY(QFile::link(QStringLiteral(BRAGGNAC_CLI), dir + "/build/app/braggnac/braggnac"));
        QFile script(dir + "/readme.sh");
        QVERIFY(script.open(QIODevice::WriteOnly));
        script.write("set -euo pipefail\n");
        script.write(block.join(QLatin1Char('\n')).toUtf8());
        script.write("\n");
        script.close();

        QProcess p;
        p.setWorkingDirectory(dir);
        p.start(QStringLiteral("bash"), {dir + "/readme.sh"});
        QVERIFY(p.waitForFinished(600000));
        const QByteArray out = p.readAllStandardOutput(), err = p.readAllStandardError();
        QVERIFY2(p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0, err.constData());

        for (const char *file : {"frames.h5", "patches.h5", "labelled.h5", "sim.h5", "nac.model/model.json",
                                 "nac.model/weights.pt", "predicted.h5", "search.db", "best.model/model.json",
                                 "tune.db", "nac8.model/quantization.json", "nac8-hls/build_csim.sh"})
            QVERIFY2(QFile::exists(dir + "/" + file), file);
        // One JSON object per --json line, in order.
        int jsonLines = 0;
        for (const QString &l : block)
            if (l.contains(QRegularExpression(QStringLiteral("\\s--json(\\s|$)"))))
                ++jsonLines;
        const QList<QByteArray> printed = out.trimmed().split('\n');
        QCOMPARE(printed.size(), jsonLines);
        for (const QByteArray &line : printed) {
            QJsonParseError e;
            const QJsonDocument d = QJsonDocument::fromJson(line, &e);
            QVERIFY2(e.error == QJsonParseError::NoError && d.isObject(), line.constData());
        }
        bool sawCost = false, sawCheck = false;
        for (const QByteArray &line : printed) {
            const QJsonObject o = QJsonDocument::fromJson(line).object();
            if (o.value(QStringLiteral("convention")).toString() == QLatin1String("nac-opt")) {
                QCOMPARE(o.value(QStringLiteral("params")).toInteger(), 45394); // braggnn, docs/cost.md
                sawCost = true;
            }
            if (o.contains(QStringLiteral("check"))) { // export-hls --check: the C simulation
                const QJsonObject check = o.value(QStringLiteral("check")).toObject();
                QCOMPARE(check.value(QStringLiteral("n")).toInteger(), 20);
                QCOMPARE(check.value(QStringLiteral("mismatches")).toInteger(), 0);
                sawCheck = true;
            }
        }
        QVERIFY(sawCost);
        QVERIFY(sawCheck);
    }
};

QTEST_GUILESS_MAIN(TestCliReadme)
#include "tst_cli_readme.moc"
