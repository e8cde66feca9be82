// braggnac-test-libs: braggnac_fuzzentries
// Fuzz regressions: every file in tests/data/fuzz/<target>/ (the inputs the fuzzers found, and
// small valid and invalid seeds) is replayed through the libFuzzer entry points of fuzz/ (the
// same code scripts/fuzz.sh runs), and must give the outcome tests/data/fuzz/expected.txt
// records: accepted, or refused with an InputError whose message contains the recorded text.
// A crash, a broken invariant (abort) or another exception type fails the test; under
// scripts/sanitize.sh so does any ASan/UBSan report.
#include <cstdint>
#include <exception>
#include <map>
#include <string>
#include <typeinfo>
#include <vector>

#include <QDir>
#include <QFile>
#include <QTest>

#include "fuzz/fuzzentries.h"

using braggnac::fuzz::Outcome;

namespace {

const QString kRoot = QStringLiteral(BRAGGNAC_TEST_DATA "/fuzz");

struct Expectation {
    bool accepted = false;
    QString contains; // for rejected inputs
};

std::map<QString, Expectation> readManifest(QString *error)
{
    std::map<QString, Expectation> out;
    QFile f(kRoot + QStringLiteral("/expected.txt"));
    if (!f.open(QIODevice::ReadOnly)) {
        *error = QStringLiteral("cannot read ") + f.fileName();
        return out;
    }
    int lineNo = 0;
    while (!f.atEnd()) {
        ++lineNo;
        const QString line = QString::fromUtf8(f.readLine()).trimmed();
        if (line.isEmpty() || line.startsWith(QLatin1Char('#')))
            continue;
        const QStringList parts = line.split(QLatin1Char(' '));
        Expectation e;
        if (parts.size() == 2 && parts[1] == QLatin1String("accepted")) {
            e.accepted = true;
        } else if (parts.size() >= 3 && parts[1] == QLatin1String("rejected")) {
            e.contains = parts.mid(2).join(QLatin1Char(' '));
        } else {
            *error = QStringLiteral("expected.txt:%1: cannot parse '%2'").arg(lineNo).arg(line);
            return out;
        }
        if (out.count(parts[0])) {
            *error = QStringLiteral("expected.txt:%1: '%2' listed twice").arg(lineNo).arg(parts[0]);
            return out;
        }
        out[parts[0]] = e;
    }
    return out;
}

QStringList targets()
{
    QStringList out;
    for (const std::string &t : braggnac::fuzz::targetNames())
        out << QString::fromStdString(t);
    return out;
}

} // namespace

class TestFuzzRegress : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void manifestMatchesFiles()
    {
        QString error;
        const auto manifest = readManifest(&error);
        QVERIFY2(error.isEmpty(), qPrintable(error));
        // Every listed file exists, every target has inputs, no folder for an unknown target.
        for (const auto &[name, e] : manifest)
            QVERIFY2(QFile::exists(kRoot + QLatin1Char('/') + name),
                     qPrintable(QStringLiteral("expected.txt lists missing file ") + name));
        for (const QString &t : targets())
            QVERIFY2(!QDir(kRoot + QLatin1Char('/') + t).entryList(QDir::Files).isEmpty(),
                     qPrintable(QStringLiteral("no inputs for target ") + t));
        for (const QString &d : QDir(kRoot).entryList(QDir::Dirs | QDir::NoDotAndDotDot))
            QVERIFY2(targets().contains(d),
                     qPrintable(QStringLiteral("tests/data/fuzz/") + d + QStringLiteral(" is not a fuzz target")));
    }

    void replay_data()
    {
        QTest::addColumn<QString>("target");
        QTest::addColumn<QString>("file");
        for (const QString &t : targets())
            for (const QString &f : QDir(kRoot + QLatin1Char('/') + t).entryList(QDir::Files, QDir::Name))
                QTest::newRow(qPrintable(t + QLatin1Char('/') + f)) << t << f;
    }

    void replay()
    {
        QFETCH(QString, target);
        QFETCH(QString, file);
        QString error;
        const auto manifest = readManifest(&error);
        QVERIFY2(error.isEmpty(), qPrintable(error));
        const QString name = target + QLatin1Char('/') + file;
        const auto it = manifest.find(name);
        QVERIFY2(it != manifest.end(),
                 qPrintable(name + QStringLiteral(" is not in tests/data/fuzz/expected.txt: add its expected outcome")));

        QFile f(kRoot + QLatin1Char('/') + name);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray bytes = f.readAll();
        braggnac::fuzz::Result r;
        try {
            r = braggnac::fuzz::runTarget(target.toStdString(),
                                          reinterpret_cast<const std::uint8_t *>(bytes.constData()),
                                          std::size_t(bytes.size()));
        } catch (const std::exception &e) {
            QFAIL(qPrintable(QStringLiteral("escaped %1 (not an InputError): %2")
                                 .arg(QString::fromLatin1(typeid(e).name()), QString::fromStdString(e.what()))));
        }
        const QString message = QString::fromStdString(r.message);
        if (it->second.accepted) {
            QVERIFY2(r.outcome == Outcome::Accepted, qPrintable(QStringLiteral("refused: ") + message));
        } else {
            QVERIFY2(r.outcome == Outcome::Rejected, "accepted, expected an InputError");
            QVERIFY2(message.contains(it->second.contains),
                     qPrintable(QStringLiteral("message '%1' lacks '%2'").arg(message, it->second.contains)));
        }
    }

    void geFileImage_data()
    {
        QTest::addColumn<QByteArray>("input");
        QTest::addColumn<qulonglong>("length");
        QTest::addColumn<int>("firstByte"); // image[0]
        const qulonglong frame = 2048ull * 2048 * 2;
        QTest::newRow("empty") << QByteArray() << qulonglong(0) << -1;
        QTest::newRow("header only") << QByteArray("\x00\x00\x00", 3) << qulonglong(8192) << 0;
        QTest::newRow("three frames") << QByteArray("\x03\x00\x00\x7f", 4) << qulonglong(8192 + 3 * frame) << 0x7f;
        QTest::newRow("one frame minus 2") << QByteArray("\x05\xfe\xff", 3) << qulonglong(8192 + frame - 2) << 0;
        QTest::newRow("delta below zero") << QByteArray("\x04\x00\x80\x01", 4) << qulonglong(0) << -1;
    }

    void geFileImage()
    {
        // The GE target's input encoding (fuzz/fuzzentries.h) is what makes the seeds tiny.
        QFETCH(QByteArray, input);
        QFETCH(qulonglong, length);
        QFETCH(int, firstByte);
        const auto image = braggnac::fuzz::geFileImage(
            reinterpret_cast<const std::uint8_t *>(input.constData()), std::size_t(input.size()));
        QCOMPARE(qulonglong(image.size()), length);
        if (firstByte >= 0)
            QCOMPARE(int(image[0]), firstByte);
    }

    void unknownTarget()
    {
        const std::uint8_t byte = 0;
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, braggnac::fuzz::runTarget("nope", &byte, 1));
    }
};

QTEST_GUILESS_MAIN(TestFuzzRegress)
#include "tst_fuzzregress.moc"
