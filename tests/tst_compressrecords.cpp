// braggnac-test-libs: braggnac_search SQLite::SQLite3
// Compress records in the study store (schema version 2, docs/study-store.md): the run / record
// life cycle and its refusals, exact round trip of every field (NaN distances as NULL), a
// version-1 file (no compress tables) read-only (no runs, file untouched) and migrated when
// opened read-write (trials kept); and through the CLI: `compress --study` stores exactly the
// records it prints, `study --compress` lists them (JSON and CSV), a model folder saved by a
// study (S.models/trial-N) stores its records in that study with the trial number, bad input
// exits 2 naming the file and writes nothing.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include "core/common/error.h"
#include "core/search/studystore.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

StudyInfo makeStudy()
{
    StudyInfo s;
    s.name = "records";
    s.kind = StudyKind::Search;
    s.space = {{"blocks", 3}};
    s.dataset = {"data/sim.h5", 4242, "0123456789abcdef"};
    s.objectives = {{"distance", true}, {"bops", true}};
    s.options = {{"trials", 4}};
    s.seed = 5;
    return s;
}

CompressRecordRow row(int bits, int round, double sparsity, double bops, std::int64_t params, double val, double test)
{
    CompressRecordRow r;
    r.bits = bits;
    r.round = round;
    r.sparsity = sparsity;
    r.bops = bops;
    r.params = params;
    r.validation = val;
    r.test = test;
    return r;
}

void rawSql(const std::string &path, const std::string &sql)
{
    sqlite3 *db = nullptr;
    QCOMPARE(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char *err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    const std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    QVERIFY2(rc == SQLITE_OK, msg.c_str());
}

std::string rawScalar(const std::string &path, const std::string &sql)
{
    sqlite3 *db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt *st = nullptr;
    sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
    std::string out;
    if (st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        out = reinterpret_cast<const char *>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

std::string readAll(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

json parseJson(const QByteArray &out)
{
    json j = json::parse(out.toStdString(), nullptr, false);
    if (j.is_discarded())
        qWarning("not JSON: %s", out.constData());
    return j;
}

QString q(const std::string &s) { return QString::fromStdString(s); }

} // namespace

class TestCompressRecords : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    std::string file(const std::string &name) const { return m_dir.filePath(q(name)).toStdString(); }

private Q_SLOTS:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void lifeCycleAndRoundTrip()
    {
        const std::string path = file("life.db");
        const double nan = std::numeric_limits<double>::quiet_NaN();
        std::vector<CompressRecordRow> rows = {row(6, 0, 0.0, 1.1842e7, 16548, 1.983, 2.077),
                                               row(6, 1, 0.2, 1.1066e7, 14366, 1.408, nan),
                                               row(8, 0, 0.0, 1.9150e7, 16996, 0.1234567890123, 0.98765432109876)};
        std::int64_t first = 0, second = 0;
        {
            StudyStore store = StudyStore::createOrOpen(path, makeStudy());
            QCOMPARE(StudyStore::schemaVersion(), 2);
            QVERIFY(store.compressRuns().empty());
            CompressRunInfo run;
            run.sourceModel = "nac.model";
            run.sourceTrial = 7;
            run.dataset = {"sim.h5", 99, "fedcba9876543210"};
            run.options = {{"bits", {6, 8}}, {"prune_rounds", 1}};
            first = store.beginCompressRun(run);
            for (const auto &r : rows)
                store.addCompressRecord(first, r);

            // Refusals: a second record for the same (bits, round), an unknown run, a chosen
            // index out of range; the run is still open after them.
            QString msg = inputErrorMessage([&] { store.addCompressRecord(first, rows[1]); });
            QVERIFY2(msg.contains("already has a record for 6 bits, round 1"), qPrintable(msg));
            QVERIFY(msg.contains(q(path)));
            msg = inputErrorMessage([&] { store.addCompressRecord(first + 100, rows[0]); });
            QVERIFY2(msg.contains("compress run " + QString::number(first + 100) + " does not exist"), qPrintable(msg));
            msg = inputErrorMessage([&] { store.finishCompressRun(first, 3, "x"); });
            QVERIFY2(msg.contains("chosen record 3 out of range (it has 3 records)"), qPrintable(msg));
            msg = inputErrorMessage([&] { store.finishCompressRun(first, -1, "x"); });
            QVERIFY(msg.contains("out of range"));

            store.finishCompressRun(first, 1, "out/nac6.model");
            msg = inputErrorMessage([&] { store.addCompressRecord(first, row(4, 0, 0, 1, 1, 1, 1)); });
            QVERIFY2(msg.contains("is finished: no more records"), qPrintable(msg));
            msg = inputErrorMessage([&] { store.finishCompressRun(first, 0, "y"); });
            QVERIFY(msg.contains("is already finished"));

            // A second run that is never finished (a killed compress) keeps its records.
            CompressRunInfo other;
            other.sourceModel = "/abs/braggnn.model";
            other.dataset = run.dataset;
            second = store.beginCompressRun(other);
            store.addCompressRecord(second, row(6, 0, 0.0, 5.0, 3, 0.5, 0.25)); // same bits/round as run 1: fine
            QCOMPARE(second, first + 1);
        }
        // Reopened read-only (another process, as the plot tool does): everything exact.
        const StudyStore store = StudyStore::open(path, StudyStore::Mode::ReadOnly);
        const auto runs = store.compressRuns();
        QCOMPARE(runs.size(), std::size_t(2));
        const CompressRun &a = runs[0];
        QCOMPARE(a.info.id, first);
        QCOMPARE(a.info.sourceModel, std::string("nac.model"));
        QCOMPARE(a.info.sourceTrial, 7);
        QCOMPARE(a.info.dataset.path, std::string("sim.h5"));
        QCOMPARE(a.info.dataset.size, std::int64_t(99));
        QCOMPARE(a.info.dataset.contentHash, std::string("fedcba9876543210"));
        QCOMPARE(a.info.options, json({{"bits", {6, 8}}, {"prune_rounds", 1}}));
        QVERIFY(a.info.created > 1.7e9);
        QVERIFY(a.info.finished);
        QCOMPARE(a.info.chosen, 1);
        QCOMPARE(a.info.modelPath, std::string("out/nac6.model"));
        QCOMPARE(a.records.size(), rows.size());
        rows[1].modelPath = "out/nac6.model"; // the chosen record carries the saved folder
        for (std::size_t i = 0; i < rows.size(); ++i)
            QVERIFY2(a.records[i] == rows[i], qPrintable(QString::number(i)));
        QVERIFY(std::isnan(a.records[1].test));
        QCOMPARE(a.records[2].validation, 0.1234567890123); // bit-exact REAL round trip
        QCOMPARE(a.records[0].modelPath, std::string());
        const CompressRun &b = runs[1];
        QVERIFY(!b.info.finished);
        QCOMPARE(b.info.chosen, -1);
        QCOMPARE(b.info.sourceTrial, -1);
        QCOMPARE(b.records.size(), std::size_t(1));
        QCOMPARE(b.records[0].bops, 5.0);
        // Writes through a read-only store are refused.
        bool threw = false;
        try {
            StudyStore::open(path, StudyStore::Mode::ReadOnly).beginCompressRun({});
        } catch (const Error &) {
            threw = true;
        }
        QVERIFY(threw);
    }

    void versionOneFileMigrates()
    {
        const std::string path = file("v1.db");
        {
            StudyStore store = StudyStore::createOrOpen(path, makeStudy());
            TrialRequest r;
            r.spec = {{"k", 1}};
            r.specHash = "spec-1";
            store.enqueue(r);
        }
        // What a version-1 build wrote: no compress tables, user_version 1.
        rawSql(path, "DROP TABLE compress_records; DROP TABLE compress_runs; PRAGMA user_version = 1; "
                     "UPDATE meta SET value = '1' WHERE key = 'schema_version'; PRAGMA wal_checkpoint(TRUNCATE);");
        QCOMPARE(rawScalar(path, "PRAGMA user_version"), std::string("1"));
        const std::string before = readAll(path);
        {
            const StudyStore ro = StudyStore::open(path, StudyStore::Mode::ReadOnly);
            QVERIFY(ro.compressRuns().empty());
            QCOMPARE(ro.counts().queued, 1);
        }
        QCOMPARE(readAll(path) == before, true); // read-only: not migrated, not touched
        {
            StudyStore rw = StudyStore::open(path, StudyStore::Mode::ReadWrite);
            QCOMPARE(rw.counts().queued, 1); // trials kept
            QVERIFY(rw.compressRuns().empty());
            const std::int64_t id = rw.beginCompressRun({});
            rw.addCompressRecord(id, row(7, 2, 0.36, 7.0e6, 9000, 0.2, 0.21));
            rw.finishCompressRun(id, 0, "");
        }
        QCOMPARE(rawScalar(path, "PRAGMA user_version"), std::string("2"));
        QCOMPARE(rawScalar(path, "SELECT value FROM meta WHERE key = 'schema_version'"), std::string("2"));
        QCOMPARE(rawScalar(path, "SELECT COUNT(*) FROM compress_records"), std::string("1"));
        const auto runs = StudyStore::open(path, StudyStore::Mode::ReadOnly).compressRuns();
        QCOMPARE(runs.size(), std::size_t(1));
        QCOMPARE(runs[0].records[0].bits, 7);
        QCOMPARE(runs[0].info.modelPath, std::string());
        QCOMPARE(runs[0].records[0].modelPath, std::string());

        // A version-2 file missing a compress table is a damaged store (named).
        rawSql(path, "DROP TABLE compress_records");
        const QString msg = inputErrorMessage([&] { StudyStore::open(path, StudyStore::Mode::ReadOnly); });
        QVERIFY2(msg.contains("damaged study store: table 'compress_records' is missing"), qPrintable(msg));
    }

    void cliStoresAndListsRecords()
    {
        const std::string data = file("p.h5"), model = file("nac.model");
        CliResult r = runCli({"simulate", "patches", "--out", q(data), "--n", "600", "--seed", "3", "--quiet"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        r = runCli({"train", q(data), "--arch", "nac", "--out", q(model), "--epochs", "2", "--threads", "1", "--quiet"});
        QVERIFY2(r.exitCode == 0, r.err.constData());

        // A new study file: created as a compress study; the records printed are the ones stored.
        const std::string study = file("c.db"), out = file("nac6.model");
        r = runCli({"compress", q(model), q(data), "--out", q(out), "--bits-grid", "6,8", "--prune-rounds", "1",
                    "--study", q(study), "--threads", "1", "--json", "--quiet"},
                   300000);
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const json printed = parseJson(r.out);
        QCOMPARE(printed.at("records").size(), std::size_t(4));
        QCOMPARE(printed.at("compress_run").get<int>(), 1);
        QCOMPARE(printed.at("study").get<std::string>(), study);
        {
            const StudyStore s = StudyStore::open(study, StudyStore::Mode::ReadOnly);
            QCOMPARE(s.info().kind, StudyKind::Compress);
            QCOMPARE(std::string(studyKindName(s.info().kind)), std::string("compress"));
        }

        r = runCli({"study", q(study), "--compress", "--json"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const json listed = parseJson(r.out);
        QCOMPARE(listed.at("compress_runs").size(), std::size_t(1));
        const json &run = listed["compress_runs"][0];
        QCOMPARE(run.at("finished").get<bool>(), true);
        QCOMPARE(run.at("chosen").get<int>(), printed["chosen"]["index"].get<int>());
        QCOMPARE(fs::path(run.at("model").get<std::string>()).lexically_normal(), fs::path(out).lexically_normal());
        QCOMPARE(fs::path(run.at("source_model").get<std::string>()).lexically_normal(),
                 fs::path(model).lexically_normal());
        QVERIFY(run.at("source_trial").is_null());
        QCOMPARE(run.at("options").at("bits"), json({6, 8}));
        QCOMPARE(run.at("records").size(), std::size_t(4));
        for (std::size_t i = 0; i < 4; ++i) {
            const json &a = printed["records"][i], &b = run["records"][i];
            for (const char *k : {"bits", "round", "params"})
                QCOMPARE(b.at(k).get<std::int64_t>(), a.at(k).get<std::int64_t>());
            for (const char *k : {"sparsity", "bops", "validation", "test"})
                QCOMPARE(b.at(k).get<double>(), a.at(k).get<double>()); // exact
            QCOMPARE(b.at("model").is_null(), int(i) != run["chosen"].get<int>());
        }
        QCOMPARE(run["records"][1]["round"].get<int>(), 1);
        QCOMPARE(run["records"][1]["sparsity"].get<double>(), printed["records"][1]["sparsity"].get<double>());
        QVERIFY(run["records"][1]["sparsity"].get<double>() > 0.19 && run["records"][1]["sparsity"].get<double>() < 0.21);

        // CSV: a header and one line per record.
        r = runCli({"study", q(study), "--compress", "--csv"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QList<QByteArray> lines = r.out.trimmed().split('\n');
        QCOMPARE(lines.size(), 5);
        QCOMPARE(lines[0], QByteArray("run,source_model,source_trial,finished,chosen,bits,round,sparsity,bops,params,"
                                      "validation,test,model"));
        QVERIFY(lines[1].startsWith("1,"));
        QVERIFY(lines[1].contains(",6,0,0,"));

        // A model folder saved by a study driver (c.models/trial-00003 beside c.db): its records
        // go to that study without --study, with the trial number.
        const fs::path fromStudy = fs::path(file("c.models")) / "trial-00003";
        fs::create_directories(fromStudy.parent_path());
        fs::copy(model, fromStudy, fs::copy_options::recursive);
        r = runCli({"compress", q(fromStudy.string()), q(data), "--out", q(file("t3.model")), "--bits", "8", "--threads",
                    "1", "--calibration-margin", "0", "--json", "--quiet"},
                   300000);
        QVERIFY2(r.exitCode == 0, r.err.constData());
        QCOMPARE(parseJson(r.out).at("compress_run").get<int>(), 2);
        r = runCli({"study", q(study), "--compress", "--json"});
        const json two = parseJson(r.out);
        QCOMPARE(two.at("compress_runs").size(), std::size_t(2));
        QCOMPARE(two["compress_runs"][1].at("source_trial").get<int>(), 3);
        QCOMPARE(two["compress_runs"][1].at("options").at("margin").get<int>(), 0);
        QCOMPARE(two["compress_runs"][0].at("options").at("margin").get<int>(), 1);
        QCOMPARE(two["compress_runs"][1].at("records").size(), std::size_t(1));
        QCOMPARE(two["compress_runs"][1]["records"][0].at("bits").get<int>(), 8);

        // Bad input: exit 2, the file named, nothing written.
        const std::string garbage = file("garbage.db");
        {
            std::ofstream g(garbage, std::ios::binary);
            g << std::string(3000, 'x');
        }
        const std::string garbageBefore = readAll(garbage);
        r = runCli({"compress", q(model), q(data), "--out", q(file("bad1.model")), "--study", q(garbage), "--quiet"});
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains(garbage.c_str()), r.err.constData());
        QVERIFY(!fs::exists(file("bad1.model")));
        QCOMPARE(readAll(garbage) == garbageBefore, true);
        r = runCli({"compress", q(model), q(data), "--out", q(file("bad2.model")), "--study", q(m_dir.path().toStdString()),
                    "--quiet"});
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("is a folder, not a study file"), r.err.constData());
        QVERIFY(!fs::exists(file("bad2.model")));
        r = runCli({"study", q(study), "--compress", "--pareto"});
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("--compress"), r.err.constData());

        // The offscreen plot of these records (braggnac-plot, built beside the CLI).
        const fs::path plot = fs::path(BRAGGNAC_CLI).parent_path().parent_path() / "braggnac-plot" / "braggnac-plot";
        if (!fs::exists(plot))
            QSKIP("braggnac-plot not built (Qt6 Charts missing): the plot checks need it");
        const std::string png = file("records.png");
        QProcess p;
        p.start(q(plot.string()), {"compress", q(study), "--out", q(png), "--ref", q("nac=" + model), "--goal-bops",
                                   "1e6", "--goal-distance", "0.5", "--width", "900", "--height", "600"});
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitCode(), 2); // "compress" needs --study before the path
        QVERIFY(p.readAllStandardError().contains("unknown option"));
        p.start(q(plot.string()), {"compress", "--study", q(study), "--out", q(png), "--ref", q("nac=" + model),
                                   "--goal-bops", "1e6", "--goal-distance", "0.5", "--width", "900", "--height", "600"});
        QVERIFY(p.waitForFinished(60000));
        QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
        const json drawn = parseJson(p.readAllStandardOutput());
        QCOMPARE(drawn.at("width").get<int>(), 900);
        QCOMPARE(drawn.at("height").get<int>(), 600);
        // Run 1: 6 and 8 bits x rounds 0-1; run 2 (trial 3, margin 0): its own series.
        std::map<std::string, int> series;
        for (const auto &e : drawn.at("series"))
            series[e.at("name").get<std::string>()] = e.at("points").get<int>();
        QCOMPARE(series.at("6 bits (rounds 0-1)"), 2);
        QCOMPARE(series.at("8 bits (rounds 0-1)"), 2);
        QCOMPARE(series.at("8 bits, margin 0 (rounds 0-0)"), 1);
        QCOMPARE(series.count("goal: 1/1000 of the first reference's BOPs"), std::size_t(1));
        QCOMPARE(series.count("goal: 1.05x the first reference's distance"), std::size_t(1));
        int refs = 0;
        for (const auto &[name, n] : series)
            refs += name.rfind("nac (float32: ", 0) == 0 && n == 1;
        QCOMPARE(refs, 1);
        QVERIFY(series.at("front of all records") >= 1 && series.at("front of all records") <= 5);
        // The x axis spans whole decades around the records, the goal and the float reference.
        const double xmin = drawn["x_range"][0].get<double>(), xmax = drawn["x_range"][1].get<double>();
        QCOMPARE(xmin, 1e6);
        QVERIFY(xmax >= 1e8 && xmax <= 1e9);
        // A PNG of that size on disk.
        const std::string bytes = readAll(png);
        QVERIFY(bytes.size() > 10000);
        QCOMPARE(bytes.substr(1, 3), std::string("PNG"));
        auto be32 = [&](std::size_t at) {
            return (std::uint32_t(std::uint8_t(bytes[at])) << 24) | (std::uint32_t(std::uint8_t(bytes[at + 1])) << 16)
                | (std::uint32_t(std::uint8_t(bytes[at + 2])) << 8) | std::uint32_t(std::uint8_t(bytes[at + 3]));
        };
        QCOMPARE(be32(16), std::uint32_t(900));
        QCOMPARE(be32(20), std::uint32_t(600));
        // A later run's record replaces an earlier one with the same bits and round.
        const std::string dup = file("dup.db");
        {
            StudyStore st = StudyStore::createOrOpen(dup, makeStudy());
            const std::int64_t a = st.beginCompressRun({});
            st.addCompressRecord(a, row(8, 0, 0.0, 2e7, 100, 2.0, 2.0));
            st.addCompressRecord(a, row(8, 1, 0.2, 1e7, 90, 5.0, 5.0));
            st.finishCompressRun(a, 0, "");
            const std::int64_t b = st.beginCompressRun({});
            st.addCompressRecord(b, row(8, 1, 0.2, 1.5e7, 90, 1.0, 1.0));
        }
        p.start(q(plot.string()), {"compress", "--study", q(dup), "--out", q(file("dup.png"))});
        QVERIFY(p.waitForFinished(60000));
        QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
        const json dupDrawn = parseJson(p.readAllStandardOutput());
        QCOMPARE(dupDrawn.at("series")[0].at("name").get<std::string>(), std::string("8 bits (rounds 0-1)"));
        QCOMPARE(dupDrawn.at("series")[0].at("points").get<int>(), 2);
        QCOMPARE(dupDrawn.at("y_range")[1].get<double>(), 2.0 * 1.05); // 5.0 was replaced by 1.0
        QCOMPARE(dupDrawn.at("x_range")[0].get<double>(), 1e7);
        QCOMPARE(dupDrawn.at("x_range")[1].get<double>(), 1e8);

        // The front chart of a study without trials: exit 2 naming the file, nothing written.
        p.start(q(plot.string()), {"front", "--study", q(study), "--out", q(file("front.png"))});
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitCode(), 2);
        QVERIFY(p.readAllStandardError().contains("no finished trial with values yet"));
        QVERIFY(!fs::exists(file("front.png")));
    }
};

QTEST_GUILESS_MAIN(TestCompressRecords)
#include "tst_compressrecords.moc"
