// braggnac-test-libs: braggnac_io
// The bad-input matrix (issue 12): every verb against a missing value, an unknown flag, a bad
// number, negative threads, a bad seed, a non-finite number, a missing input file, a truncated
// HDF5 file, a wrong dataset path and a folder given as a file. Each exits 2 with one line naming
// the flag or the file (plus one usage line for bad usage), writes nothing, and leaves every
// input byte-identical. Also: --help per verb, the misreads of issue 12 at the CLI level.
#include <QCryptographicHash>
#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include "core/io/patchdataset.h"
#include "testutil.h"

using braggnac::test::CliResult;
using braggnac::test::runCli;

namespace {

struct VerbCase {
    QString name;      // row prefix
    QStringList base;  // a valid command ("@" = the fixture folder, "@out/" = the output folder)
    int input = -1;    // index in base of the input file (-1: none)
    QString number;    // an option taking a finite number
    QString wrongData; // what replaces the input for "wrong dataset path" (or extra args "+...")
};

QList<VerbCase> verbCases()
{
    return {
        {"simulate-frames", {"simulate", "frames", "--out", "@out/f.h5", "--frames", "1", "--size", "32", "--peaks", "3"}, -1, "--background", {}},
        {"simulate-patches", {"simulate", "patches", "--out", "@out/p.h5", "--n", "20"}, -1, "--n", {}},
        {"peaks", {"peaks", "@frames.h5", "--out", "@out/p.h5"}, 1, "--threshold", "+--dataset /no/such/dataset"},
        {"fit", {"fit", "@patches.h5", "--out", "@out/l.h5"}, 1, "--tolerance", "@frames.h5"},
        {"import-braggnn", {"import-braggnn", "--frames", "@frames.h5", "--labels", "@sim.h5", "--out", "@out/i.h5"}, 4, "--patch-size", "@frames.h5"},
        {"train", {"train", "@sim.h5", "--arch", "nac", "--out", "@out/m.model", "--epochs", "1"}, 1, "--lr", "@frames.h5"},
        {"evaluate", {"evaluate", "@m.model", "@sim.h5"}, 2, "--threads", "@frames.h5"},
        {"predict", {"predict", "@m.model", "@patches.h5", "--out", "@out/pr.h5"}, 2, "--threshold", "+--dataset /no/such/dataset"},
        {"cost", {"cost", "@m.model"}, 1, "--sparsity", "@spec-bad-field.json"},
    };
}

QByteArray folderDigest(const QString &dir)
{
    QCryptographicHash h(QCryptographicHash::Sha256);
    QStringList files;
    QDirIterator it(dir, QDir::Files | QDir::Hidden | QDir::NoDotAndDotDot, QDirIterator::Subdirectories);
    while (it.hasNext())
        files << it.next();
    files.sort();
    for (const QString &f : files) {
        h.addData(f.toUtf8());
        QFile file(f);
        if (file.open(QIODevice::ReadOnly))
            h.addData(file.readAll());
    }
    return h.result().toHex();
}

void writeFile(const QString &path, const QByteArray &data)
{
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
    f.write(data);
}

} // namespace

class TestCliArgs : public QObject {
    Q_OBJECT
    QTemporaryDir m_tmp;
    QString m_dir;

    QStringList expand(QStringList args) const
    {
        for (QString &a : args)
            a.replace(QLatin1String("@"), m_dir + QLatin1Char('/'));
        return args;
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_tmp.isValid());
        m_dir = m_tmp.path();
        const auto mk = [&](const QStringList &args) {
            const CliResult r = runCli(expand(args));
            QVERIFY2(r.finished && r.exitCode == 0, r.err.constData());
        };
        mk({"simulate", "frames", "--out", "@frames.h5", "--frames", "2", "--size", "96", "--peaks", "15", "--seed", "4"});
        mk({"simulate", "frames", "--out", "@frames.tiff", "--frames", "1", "--size", "64", "--peaks", "5"});
        mk({"peaks", "@frames.h5", "--out", "@patches.h5"});
        mk({"simulate", "patches", "--out", "@sim.h5", "--n", "300", "--seed", "5"});
        mk({"train", "@sim.h5", "--arch", "nac", "--out", "@m.model", "--epochs", "1", "--threads", "1"});
        QDir(m_dir).mkdir(QStringLiteral("out"));
        QDir(m_dir).mkdir(QStringLiteral("adir"));
        // Truncated copies (the HDF5 superblock survives, the data does not) of each input.
        for (const char *name : {"frames.h5", "patches.h5", "sim.h5"}) {
            QFile f(m_dir + "/" + name);
            QVERIFY(f.open(QIODevice::ReadOnly));
            const QByteArray all = f.readAll();
            writeFile(m_dir + "/truncated-" + name, all.left(qMin<qsizetype>(4096, all.size() / 3)));
        }
        QFile spec(m_dir + "/m.model/spec.json");
        QVERIFY(spec.open(QIODevice::ReadOnly));
        const QByteArray specText = spec.readAll();
        writeFile(m_dir + "/truncated-spec.json", specText.left(specText.size() / 2));
        writeFile(m_dir + "/spec-bad-field.json", QByteArray(specText).replace("\"name\"", "\"nmae\""));
    }

    void matrix_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("expect");
        QTest::addColumn<bool>("usage");
        for (const VerbCase &v : verbCases()) {
            auto row = [&](const QString &what, const QStringList &args, const QString &expect, bool usage) {
                QTest::newRow(qPrintable(v.name + ": " + what)) << args << expect << usage;
            };
            const int verbWords = v.base.value(0) == QLatin1String("simulate") ? 2 : 1;
            QStringList middle = v.base;
            middle.insert(verbWords, QStringLiteral("--bogus"));
            // The full set for every verb; variants of the same parser path on the first rows only.
            const bool all = v.name == QLatin1String("fit") || v.name == QLatin1String("simulate-frames");
            row("missing value at the end", v.base + QStringList{"--threads"}, "--threads needs a value", true);
            row("unknown flag at the end", v.base + QStringList{"--bogus"}, "unknown option --bogus", true);
            row("bad number", v.base + QStringList{"--threads", "abc"}, "--threads: expected an integer", true);
            row("negative threads", v.base + QStringList{"--threads", "-5"}, "--threads: expected an integer from 0", true);
            row("bad seed", v.base + QStringList{"--seed", "abc"}, "--seed: expected an integer", true);
            row("nan", v.base + QStringList{v.number, "nan"}, v.number + ": expected", true);
            if (all) {
                row("value swallowing a flag", v.base + QStringList{"--threads", "--json"}, "--threads needs a value", true);
                row("unknown flag first", middle, "unknown option --bogus", true);
                row("unknown flag with a value", v.base + QStringList{"--bogus=3"}, "unknown option --bogus", true);
                row("negative seed", v.base + QStringList{"--seed", "-1"}, "--seed: expected an integer", true);
                row("inf", v.base + QStringList{v.number, "inf"}, v.number + ": expected", true);
                row("extra argument", v.base + QStringList{"stray"}, "unexpected argument 'stray'", true);
            }
            if (v.input < 0)
                continue;
            QStringList a = v.base;
            a[v.input] = "@nope.h5";
            row("missing input file", a, "@nope.h5: no such file", false);
            a[v.input] = "@adir";
            row("folder given as a file", a, "@adir", false);
            const QString in = v.base[v.input];
            if (in.endsWith(QLatin1String(".h5"))) {
                a[v.input] = "@truncated-" + in.mid(1);
                row("truncated HDF5", a, "@truncated-" + in.mid(1), false);
            } else if (v.name == QLatin1String("cost")) {
                a[v.input] = "@truncated-spec.json";
                row("truncated spec", a, "@truncated-spec.json", false);
            }
            if (v.wrongData.startsWith(QLatin1Char('+'))) {
                row("wrong dataset path", v.base + v.wrongData.mid(1).split(QLatin1Char(' ')), "/no/such/dataset", false);
            } else if (!v.wrongData.isEmpty()) {
                a = v.base;
                a[v.input] = v.wrongData;
                row("wrong dataset path", a, v.wrongData, false);
            }
        }
        // The misreads of issue 12 at the CLI level.
        QTest::newRow("simulate: --format disagrees with the extension")
            << QStringList{"simulate", "frames", "--format", "tiff", "--out", "@out/x.h5", "--frames", "1", "--size", "32"}
            << "--format tiff disagrees with the extension" << true;
        QTest::newRow("simulate: --background nan")
            << QStringList{"simulate", "frames", "--out", "@out/x.h5", "--background", "nan"} << "--background: expected a finite number" << true;
        QTest::newRow("simulate: --amplitude-max inf")
            << QStringList{"simulate", "frames", "--out", "@out/x.h5", "--amplitude-max", "inf"} << "--amplitude-max: expected a finite number" << true;
        QTest::newRow("simulate: --saturation -1")
            << QStringList{"simulate", "frames", "--out", "@out/x.h5", "--saturation", "-1"} << "--saturation: expected a number in [0" << true;
        QTest::newRow("simulate: unknown sub-verb")
            << QStringList{"simulate", "cats", "--out", "@out/x.h5"} << "expected frames or patches, got 'cats'" << false;
        QTest::newRow("peaks: --dataset for a TIFF")
            << QStringList{"peaks", "@frames.tiff", "--dataset", "/entry/data/data", "--out", "@out/p.h5"}
            << "@frames.tiff: --dataset applies to HDF5 frame files only" << false;
        QTest::newRow("predict: --dataset for a TIFF")
            << QStringList{"predict", "@m.model", "@frames.tiff", "--dataset", "/x", "--out", "@out/p.h5"}
            << "@frames.tiff: --dataset applies to HDF5 frame files only" << false;
        QTest::newRow("peaks: negative threshold")
            << QStringList{"peaks", "@frames.h5", "--threshold", "-3", "--out", "@out/p.h5"} << "--threshold: expected a number >= 0, got '-3'" << true;
        QTest::newRow("peaks: even patch size")
            << QStringList{"peaks", "@frames.h5", "--patch-size", "10", "--out", "@out/p.h5"} << "--patch-size: expected an odd integer" << true;
        QTest::newRow("simulate patches: even patch size")
            << QStringList{"simulate", "patches", "--patch-size", "10", "--out", "@out/p.h5"} << "--patch-size: expected an odd integer" << true;
        QTest::newRow("fit: --neighbours bogus")
            << QStringList{"fit", "@patches.h5", "--neighbours", "bogus", "--out", "@out/l.h5"} << "--neighbours: expected two-peak, mask or ignore" << true;
        QTest::newRow("fit: --bogus before --out (issue 12)")
            << QStringList{"fit", "@patches.h5", "--bogus", "--out", "@out/x"} << "unknown option --bogus" << true;
        QTest::newRow("fit: --out missing")
            << QStringList{"fit", "@patches.h5"} << "--out is required" << true;
        QTest::newRow("train: --arch missing")
            << QStringList{"train", "@sim.h5", "--out", "@out/m.model"} << "--arch is required" << true;
        QTest::newRow("train: --optimizer bogus")
            << QStringList{"train", "@sim.h5", "--arch", "nac", "--out", "@out/m.model", "--optimizer", "bogus"} << "--optimizer: expected rmsprop, adam or sgd" << true;
        QTest::newRow("evaluate: missing DATA")
            << QStringList{"evaluate", "@m.model"} << "missing argument DATA" << true;
        QTest::newRow("evaluate: --split bogus")
            << QStringList{"evaluate", "@m.model", "@sim.h5", "--split", "bogus"} << "--split: expected test, validation, train or all" << true;
        QTest::newRow("cost: --arch and a positional")
            << QStringList{"cost", "@m.model", "--arch", "nac"} << "not both" << true;
        QTest::newRow("cost: --weight-bits 0")
            << QStringList{"cost", "--arch", "nac", "--weight-bits", "0"} << "--weight-bits: expected an integer from 1 to 64" << true;
    }
    void matrix()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, expect);
        QFETCH(bool, usage);
        expect.replace(QLatin1String("@"), m_dir + QLatin1Char('/'));
        const QByteArray before = folderDigest(m_dir);
        const CliResult r = runCli(expand(args), 60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitStatus, QProcess::NormalExit);
        const QString err = QString::fromUtf8(r.err);
        QVERIFY2(r.exitCode == 2, qPrintable(QString::number(r.exitCode) + ": " + err));
        const QStringList lines = err.trimmed().split(QLatin1Char('\n'));
        const QString verb = args.value(0) == QLatin1String("simulate") && args.value(1) != QLatin1String("cats")
            ? args.value(0) + " " + args.value(1)
            : args.value(0);
        QVERIFY2(lines.value(0).startsWith("braggnac " + verb + ": "), qPrintable(err));
        QVERIFY2(lines.value(0).contains(expect), qPrintable(err));
        if (usage) {
            QCOMPARE(lines.size(), 2);
            QVERIFY2(lines.value(1).startsWith("usage: braggnac " + verb + " "), qPrintable(err));
        } else if (args.value(1) != QLatin1String("cats")) {
            QCOMPARE(lines.size(), 1);
        }
        QVERIFY(r.out.isEmpty());
        QVERIFY2(QDir(m_dir + "/out").entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot).isEmpty(),
                 "something was written");
        QCOMPARE(folderDigest(m_dir), before); // inputs untouched
    }

    void help_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("expect");
        QTest::newRow("fit") << QStringList{"fit", "--help"} << "usage: braggnac fit P.h5 --out L.h5 [--max-iterations 100]";
        QTest::newRow("train") << QStringList{"train", "--help"} << "usage: braggnac train DATA --arch braggnn|nac|SPEC.json --out MODEL [--epochs 50]";
        QTest::newRow("simulate frames") << QStringList{"simulate", "frames", "--help"} << "usage: braggnac simulate frames --out F";
        QTest::newRow("simulate") << QStringList{"simulate", "--help"} << "usage: braggnac simulate patches --out P.h5";
        QTest::newRow("help with other arguments") << QStringList{"peaks", "x.h5", "--help", "--threads", "-5"} << "usage: braggnac peaks FRAMES --out P.h5";
        QTest::newRow("top level") << QStringList{"--help"} << "braggnac evaluate MODEL DATA [--split test|validation|train|all]";
    }
    void help()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, expect);
        const CliResult r = runCli(args, 60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 0);
        QVERIFY2(QString::fromUtf8(r.out).contains(expect), r.out.constData());
        QVERIFY(r.err.isEmpty());
    }

    void evenPatchSizeRefusedByEveryVerb()
    {
        // 10 x 10 patches have no centre pixel: fit refuses them like train, evaluate, predict.
        braggnac::core::PatchDataset d;
        d.patchSize = 10;
        d.patches.assign(3 * 100, 1.0f);
        d.centers.assign(3 * 2, 5.0f);
        d.split = {0, 1, 2};
        const QString even = m_dir + "/even.h5";
        braggnac::core::writePatchDataset(even.toStdString(), d);
        const QByteArray before = folderDigest(m_dir);
        for (const QStringList &args : {QStringList{"fit", even, "--out", m_dir + "/out/l.h5"},
                                        QStringList{"train", even, "--arch", "nac", "--out", m_dir + "/out/m.model", "--epochs", "1"},
                                        QStringList{"evaluate", m_dir + "/m.model", even},
                                        QStringList{"predict", m_dir + "/m.model", even, "--out", m_dir + "/out/p.h5"}}) {
            const CliResult r = runCli(args, 60000);
            QVERIFY(r.finished);
            QVERIFY2(r.exitCode == 2, qPrintable(args.join(' ') + ": " + QString::fromUtf8(r.err)));
            QVERIFY2(QString::fromUtf8(r.err).contains(even), r.err.constData());
            QCOMPARE(QString::fromUtf8(r.err).trimmed().count(QLatin1Char('\n')), 0);
        }
        QVERIFY(QDir(m_dir + "/out").entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot).isEmpty());
        QCOMPARE(folderDigest(m_dir), before);
        QVERIFY(QFile::remove(even));
    }

    void valueMayStartWithDashes()
    {
        // "--out=--name" is the explicit form for a value that starts with "--".
        const QString out = m_dir + "/--odd.h5";
        const CliResult r = runCli({"simulate", "patches", "--n", "10", QStringLiteral("--out=") + out}, 60000);
        QVERIFY2(r.finished && r.exitCode == 0, r.err.constData());
        QVERIFY(QFile::exists(out));
        QVERIFY(QFile::remove(out));
    }
};

QTEST_GUILESS_MAIN(TestCliArgs)
#include "tst_cli_args.moc"
