// braggnac-test-libs: braggnac_search SQLite::SQLite3
// The SQLite study store: schema and version checks and the refusals of foreign, garbage,
// truncated and newer files (naming the file, leaving it byte-identical); resume checks (dataset,
// space, kind, objectives, force); enqueue dedupe; the trial life cycle; JSON round trips; the
// change counter; threads sharing a store; kill -9 of a writer process at random points (no
// completed trial lost or duplicated, running ones requeued); a live reader in another process.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <csignal>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <QTemporaryDir>
#include <QtTest>

#include "core/common/atomicfile.h"
#include "core/common/error.h"
#include "core/search/studystore.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;
using nlohmann::json;

namespace {

StudyInfo makeStudy(const std::string &name = "s1")
{
    StudyInfo s;
    s.name = name;
    s.kind = StudyKind::Search;
    s.space = {{"stem", {{"channels", {8, 16, 32}}}}, {"blocks", 3}};
    s.dataset = {"data/sim.h5", 123456, "00112233aabbccdd"};
    s.objectives = {{"distance", true}, {"bops", true}};
    s.options = {{"trials", 96}, {"workers", 2}, {"asha", true}};
    s.seed = 18446744073709551557ull; // > 2^63: stored as a signed 64-bit integer
    return s;
}

TrialRequest request(int k, json hyper = json::object())
{
    TrialRequest r;
    r.spec = {{"stem", {{"channels", 8 + k % 4}, {"kernel", 3}}}, {"k", k}};
    r.specHash = "spec-" + std::to_string(k);
    r.hyperParams = std::move(hyper);
    r.budget = 2 + k % 3;
    r.generation = k / 10;
    return r;
}

TrialOutcome outcome(int k)
{
    TrialOutcome o;
    o.metrics = {{"validation", {{"mean", 0.1 + k * 1e-3}, {"subsets", {{"snr<10", 0.3}}}}},
                 {"test", {{"mean", 0.11 + k * 1e-3}}}};
    o.values = {0.1 + k * 1e-3, 1e6 * (k + 1)};
    o.cost = {{"params", 1000 + k}, {"bops", 1e6 * (k + 1)}};
    o.history = json::array({{{"epoch", 1}, {"loss", 0.5}}, {{"epoch", 2}, {"loss", 0.25}}});
    o.fidelity = 2;
    o.seconds = 1.5 + k;
    o.modelPath = "s.models/trial-" + std::to_string(k);
    return o;
}

std::string readAll(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void writeAll(const std::string &path, const std::string &bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
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

std::string rawPragma(const std::string &path, const std::string &pragma)
{
    sqlite3 *db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt *st = nullptr;
    sqlite3_prepare_v2(db, ("PRAGMA " + pragma).c_str(), -1, &st, nullptr);
    std::string out;
    if (sqlite3_step(st) == SQLITE_ROW)
        out = reinterpret_cast<const char *>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

// Runs one complete trial (enqueue, claim, two epochs, complete) and returns its id.
std::int64_t runTrial(StudyStore &store, int k, const std::string &host = "h", int rank = 0)
{
    const EnqueueResult e = store.enqueue(request(k));
    if (e.state != TrialState::Queued)
        return -e.id;
    store.claim(e.id, host, rank);
    store.reportEpoch(e.id, 1, 0.5);
    store.reportEpoch(e.id, 2, 0.25 + k * 1e-3);
    store.complete(e.id, outcome(k));
    return e.id;
}

void writeId(int fd, std::int64_t id)
{
    // 8 bytes < PIPE_BUF: the write is atomic, a kill never leaves half an id in the pipe.
    if (::write(fd, &id, sizeof id) != sizeof id)
        _exit(3);
}

// Reads whole ids from fd until EOF.
std::vector<std::int64_t> readIds(int fd)
{
    std::vector<std::int64_t> ids;
    std::int64_t id = 0;
    std::size_t have = 0;
    char *p = reinterpret_cast<char *>(&id);
    while (true) {
        const ssize_t n = ::read(fd, p + have, sizeof id - have);
        if (n <= 0)
            break;
        have += static_cast<std::size_t>(n);
        if (have == sizeof id) {
            ids.push_back(id);
            have = 0;
        }
    }
    return ids;
}

} // namespace

class TestStudyStore : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    std::string file(const std::string &name) const
    {
        return (m_dir.path() + "/").toStdString() + name;
    }

private Q_SLOTS:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void createAndReopen()
    {
        const std::string path = file("create.db");
        const StudyInfo s = makeStudy();
        {
            StudyStore store = StudyStore::createOrOpen(path, s);
            QVERIFY(store.created());
            QCOMPARE(store.schemaVersion(), 2);
            const StudyInfo got = store.info();
            QCOMPARE(got.name, s.name);
            QCOMPARE(got.kind, StudyKind::Search);
            QVERIFY(got.created > 1.7e9);
            QCOMPARE(got.space, s.space);
            QCOMPARE(got.spaceHash, canonicalJsonHash(s.space));
            QCOMPARE(got.dataset.path, s.dataset.path);
            QCOMPARE(got.dataset.size, s.dataset.size);
            QCOMPARE(got.dataset.contentHash, s.dataset.contentHash);
            QVERIFY(got.objectives == s.objectives);
            QCOMPARE(got.options, s.options);
            QCOMPARE(got.seed, s.seed);
            QCOMPARE(store.counts().total(), 0);
            QCOMPARE(store.changeSeq(), std::int64_t(0));
        }
        // The format on disk: WAL, our application id and schema version.
        QCOMPARE(rawPragma(path, "journal_mode"), std::string("wal"));
        QCOMPARE(rawPragma(path, "user_version"), std::string("2"));
        QCOMPARE(rawPragma(path, "application_id"), std::to_string(0x42524e53));
        // No temporary left behind.
        for (const auto &e : QDir(m_dir.path()).entryList(QDir::Files | QDir::Hidden))
            QVERIFY2(!isTemporaryName(e.toStdString()), qPrintable(e));

        StudyStore again = StudyStore::createOrOpen(path, s);
        QVERIFY(!again.created());
        QCOMPARE(again.info().created, StudyStore::open(path).info().created);
        // Resuming keeps the stored options and seed (the driver reads them from info()).
        StudyInfo other = s;
        other.options = {{"trials", 10}};
        other.seed = 7;
        StudyStore third = StudyStore::createOrOpen(path, other);
        QCOMPARE(third.info().options, s.options);
        QCOMPARE(third.info().seed, s.seed);
    }

    void concurrentCreate()
    {
        // Four processes create the same new study at once: exactly one creates it, all use
        // the same file, nothing is lost.
        const std::string path = file("race.db");
        std::vector<pid_t> pids;
        for (int c = 0; c < 4; ++c) {
            const pid_t pid = ::fork();
            QVERIFY(pid >= 0);
            if (pid == 0) {
                try {
                    StudyStore store = StudyStore::createOrOpen(path, makeStudy());
                    store.enqueue(request(c));
                    _exit(store.created() ? 10 : 11);
                } catch (...) {
                    _exit(2);
                }
            }
            pids.push_back(pid);
        }
        int created = 0, opened = 0;
        for (pid_t pid : pids) {
            int status = 0;
            ::waitpid(pid, &status, 0);
            QVERIFY(WIFEXITED(status));
            created += WEXITSTATUS(status) == 10 ? 1 : 0;
            opened += WEXITSTATUS(status) == 11 ? 1 : 0;
        }
        QCOMPARE(created, 1);
        QCOMPARE(opened, 3);
        StudyStore store = StudyStore::open(path);
        QCOMPARE(store.counts().queued, 4);
        for (const auto &e : QDir(m_dir.path()).entryList(QDir::Files | QDir::Hidden))
            QVERIFY2(!isTemporaryName(e.toStdString()), qPrintable(e));
    }

    void refusals_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("expected");
        QTest::newRow("garbage bytes") << "garbage" << "not an SQLite database (no SQLite header)";
        QTest::newRow("empty file") << "empty" << "empty file, not a BraggNAC study store";
        QTest::newRow("shorter than the header") << "short" << "shorter than its 100-byte header";
        QTest::newRow("truncated pages") << "truncated" << "truncated SQLite database";
        QTest::newRow("foreign SQLite file") << "foreign"
                                             << "not a BraggNAC study store (an SQLite database of "
                                                "another application, with tables people, pets)";
        QTest::newRow("empty SQLite database") << "emptydb" << "an empty SQLite database";
        QTest::newRow("newer schema") << "newer" << "schema version 3 is newer than this braggnac reads (2)";
        QTest::newRow("damaged: table dropped") << "damaged" << "damaged study store: table 'epochs' is missing";
    }

    void refusals()
    {
        QFETCH(QString, kind);
        QFETCH(QString, expected);
        const std::string path = file("refuse-" + kind.toStdString() + ".db");
        const std::string k = kind.toStdString();
        if (k == "garbage") {
            std::string bytes(4096, '\0');
            std::mt19937 rng(1);
            for (auto &c : bytes)
                c = static_cast<char>(rng());
            writeAll(path, bytes);
        } else if (k == "empty") {
            writeAll(path, "");
        } else if (k == "short") {
            writeAll(path, std::string("SQLite format 3\0", 16) + "abc");
        } else if (k == "truncated" || k == "newer" || k == "damaged") {
            {
                StudyStore store = StudyStore::createOrOpen(path, makeStudy());
                for (int i = 0; i < 300; ++i)
                    runTrial(store, i);
            }
            QVERIFY(!QFile::exists(QString::fromStdString(path + "-wal")));
            if (k == "truncated") {
                const std::string bytes = readAll(path);
                QVERIFY(bytes.size() > 40000);
                writeAll(path, bytes.substr(0, bytes.size() / 2));
            } else if (k == "newer") {
                rawSql(path, "PRAGMA user_version = 3");
            } else {
                rawSql(path, "DROP TABLE epochs");
            }
        } else if (k == "foreign") {
            rawSql(path, "CREATE TABLE people(name TEXT); CREATE TABLE pets(name TEXT);"
                         "INSERT INTO people VALUES ('ada');");
        } else if (k == "emptydb") {
            rawSql(path, "PRAGMA user_version = 5"); // a valid SQLite file with no tables
        }
        const std::string before = readAll(path);
        for (int mode = 0; mode < 3; ++mode) {
            const QString msg = inputErrorMessage([&] {
                if (mode == 0)
                    StudyStore::open(path);
                else if (mode == 1)
                    StudyStore::open(path, StudyStore::Mode::ReadOnly);
                else
                    StudyStore::createOrOpen(path, makeStudy());
            });
            QVERIFY2(threwInputError(msg), qPrintable(msg));
            QVERIFY2(msg.startsWith(QString::fromStdString(path) + ": "), qPrintable(msg));
            QVERIFY2(msg.contains(expected), qPrintable(msg));
        }
        // Never modified, and no WAL/SHM files created beside a file that is not ours.
        QVERIFY(readAll(path) == before);
        QVERIFY(!QFile::exists(QString::fromStdString(path + "-wal")));
    }

    void missingAndFolder()
    {
        const std::string missing = file("missing.db");
        QString msg = inputErrorMessage([&] { StudyStore::open(missing); });
        QCOMPARE(msg, QString::fromStdString(missing + ": no such study store"));
        QVERIFY(!QFile::exists(QString::fromStdString(missing)));
        msg = inputErrorMessage([&] { StudyStore::open(m_dir.path().toStdString()); });
        QVERIFY2(msg.endsWith("is a folder, not a study store"), qPrintable(msg));
        msg = inputErrorMessage([&] { StudyStore::createOrOpen(file("nodir/x.db"), makeStudy()); });
        QVERIFY2(msg.contains("does not exist"), qPrintable(msg));
        StudyInfo bad = makeStudy();
        bad.objectives.clear();
        msg = inputErrorMessage([&] { StudyStore::createOrOpen(file("noobj.db"), bad); });
        QVERIFY2(msg.contains("at least one objective"), qPrintable(msg));
        QVERIFY(!QFile::exists(QString::fromStdString(file("noobj.db"))));
    }

    void resumeChecks()
    {
        const std::string path = file("resume.db");
        const StudyInfo s = makeStudy();
        { StudyStore::createOrOpen(path, s); }
        const std::string before = readAll(path);

        StudyInfo otherData = s;
        otherData.dataset = {"data/other.h5", 999, "ffffffffffffffff"};
        QString msg = inputErrorMessage([&] { StudyStore::createOrOpen(path, otherData); });
        QCOMPARE(msg, QString::fromStdString(
                          path + ": was made with dataset 'data/sim.h5' (123456 bytes, hash "
                                 "00112233aabbccdd), not 'data/other.h5' (999 bytes, hash "
                                 "ffffffffffffffff): resuming is refused unless forced"));

        StudyInfo otherSpace = s;
        otherSpace.space["blocks"] = 2;
        msg = inputErrorMessage([&] { StudyStore::createOrOpen(path, otherSpace); });
        QVERIFY2(msg.contains("search space hash " + QString::fromStdString(s.spaceHash.empty()
                                                                                ? canonicalJsonHash(s.space)
                                                                                : s.spaceHash)),
                 qPrintable(msg));
        QVERIFY2(msg.endsWith("resuming is refused unless forced"), qPrintable(msg));

        StudyInfo otherKind = s;
        otherKind.kind = StudyKind::Tune;
        msg = inputErrorMessage([&] { StudyStore::createOrOpen(path, otherKind, true); });
        QCOMPARE(msg, QString::fromStdString(path + ": is a search study, not a tune study"));

        StudyInfo otherObjectives = s;
        otherObjectives.objectives[1].minimize = false;
        msg = inputErrorMessage([&] { StudyStore::createOrOpen(path, otherObjectives, true); });
        QCOMPARE(msg, QString::fromStdString(path + ": the study's objectives are distance "
                                                    "(minimize), bops (minimize), not distance "
                                                    "(minimize), bops (maximize)"));
        QVERIFY(readAll(path) == before); // refused resumes wrote nothing

        // The same data under another path (moved file) is the same dataset.
        StudyInfo moved = s;
        moved.dataset.path = "/elsewhere/sim.h5";
        QVERIFY(!StudyStore::createOrOpen(path, moved).created());

        // Forced: accepted, the new dataset recorded, the old one kept in the overrides.
        StudyStore forced = StudyStore::createOrOpen(path, otherData, true);
        QCOMPARE(forced.info().dataset.contentHash, std::string("ffffffffffffffff"));
        const json ov = forced.overrides();
        QCOMPARE(int(ov.size()), 1);
        QCOMPARE(ov[0]["field"].get<std::string>(), std::string("dataset"));
        QCOMPARE(ov[0]["old"]["content_hash"].get<std::string>(), std::string("00112233aabbccdd"));
        QCOMPARE(ov[0]["new"]["size"].get<int>(), 999);
        QVERIFY(!StudyStore::createOrOpen(path, otherData).created()); // now the recorded one
    }

    void describeDatasetHashesContent()
    {
        const std::string a = file("a.bin"), b = file("b.bin");
        writeAll(a, "hello world");
        writeAll(b, "hello world");
        const DatasetInfo da = describeDataset(a), db = describeDataset(b);
        QCOMPARE(da.size, std::int64_t(11));
        QCOMPARE(da.contentHash, db.contentHash);
        // FNV-1a 64 of "hello world", a known value.
        QCOMPARE(QString::fromStdString(da.contentHash), QStringLiteral("779a65e7023cd2e7"));
        writeAll(b, "hello worle");
        QVERIFY(describeDataset(b).contentHash != da.contentHash);
        QVERIFY(threwInputError(inputErrorMessage([&] { describeDataset(file("none.bin")); })));
    }

    void enqueueDedupe()
    {
        StudyStore store = StudyStore::createOrOpen(file("dedupe.db"), makeStudy());
        const EnqueueResult a = store.enqueue(request(1, {{"lr", 0.01}, {"optimizer", "adam"}}));
        QVERIFY(a.inserted);
        QCOMPARE(a.number, 0);
        // Same spec hash, same hyper-parameters written in another key order: the same trial.
        json reordered = json::object();
        reordered["optimizer"] = "adam";
        reordered["lr"] = 0.01;
        const EnqueueResult b = store.enqueue(request(1, reordered));
        QVERIFY(!b.inserted);
        QCOMPARE(b.id, a.id);
        QCOMPARE(b.number, 0);
        // Other hyper-parameters, or another spec: new trials.
        const EnqueueResult c = store.enqueue(request(1, {{"lr", 0.02}, {"optimizer", "adam"}}));
        QVERIFY(c.inserted);
        QCOMPARE(c.number, 1);
        const EnqueueResult d = store.enqueue(request(2));
        QCOMPARE(d.number, 2);
        // A batch with a duplicate inside it and one of an earlier trial.
        const auto batch = store.enqueueAll({request(3), request(4), request(3), request(2)});
        QCOMPARE(int(batch.size()), 4);
        QVERIFY(batch[0].inserted && batch[1].inserted && !batch[2].inserted && !batch[3].inserted);
        QCOMPARE(batch[2].id, batch[0].id);
        QCOMPARE(batch[3].id, d.id);
        QCOMPARE(batch[1].number, 4);
        QCOMPARE(store.counts().queued, 5);
        // A finished trial is never trained again: enqueue returns it with its state.
        store.claim(d.id, "h", 0);
        store.complete(d.id, outcome(2));
        const EnqueueResult e = store.enqueue(request(2));
        QVERIFY(!e.inserted);
        QCOMPARE(e.state, TrialState::Complete);
        QVERIFY(threwInputError(inputErrorMessage([&] {
            TrialRequest r = request(9);
            r.specHash.clear();
            store.enqueue(r);
        })));
    }

    void lifecycle()
    {
        const std::string path = file("life.db");
        StudyStore store = StudyStore::createOrOpen(path, makeStudy());
        std::vector<std::int64_t> ids;
        for (int k = 0; k < 6; ++k)
            ids.push_back(store.enqueue(request(k)).id);

        // claimNext takes the lowest number first.
        auto t0 = store.claimNext("node-a", 3);
        QVERIFY(t0);
        QCOMPARE(t0->id, ids[0]);
        QCOMPARE(t0->state, TrialState::Running);
        QCOMPARE(t0->host, std::string("node-a"));
        QCOMPARE(t0->rank, 3);
        QCOMPARE(t0->attempts, 1);
        QVERIFY(t0->startedAt >= t0->queuedAt && t0->startedAt > 0);
        QCOMPARE(t0->spec, request(0).spec);
        QCOMPARE(t0->budget, 2);
        QCOMPARE(t0->generation, 0);

        const double nan = std::numeric_limits<double>::quiet_NaN();
        store.reportEpoch(ids[0], 1, 0.9, {{"loss", 1.0}});
        store.reportEpoch(ids[0], 2, nan);
        store.reportEpoch(ids[0], 1, 0.8, {{"loss", 0.7}}); // replaces epoch 1
        auto ep = store.epochs(ids[0]);
        QCOMPARE(int(ep.size()), 2);
        QCOMPARE(ep[0].epoch, 1);
        QCOMPARE(ep[0].value, 0.8);
        QCOMPARE(ep[0].metrics, json({{"loss", 0.7}}));
        QVERIFY(std::isnan(ep[1].value));
        QCOMPARE(store.trial(ids[0])->fidelity, 2);

        // Wrong value counts and NaN objectives are refused, naming the trial; nothing changes.
        TrialOutcome bad = outcome(0);
        bad.values = {0.1};
        QString msg = inputErrorMessage([&] { store.complete(ids[0], bad); });
        QCOMPARE(msg, QString::fromStdString(path + ": trial id " + std::to_string(ids[0])
                                             + ": 1 objective values, the study has 2"));
        bad.values = {nan, 1.0};
        msg = inputErrorMessage([&] { store.complete(ids[0], bad); });
        QVERIFY2(msg.contains("objective 0 is NaN"), qPrintable(msg));
        QCOMPARE(store.trial(ids[0])->state, TrialState::Running);

        TrialOutcome ok = outcome(0);
        ok.values = {0.125, std::numeric_limits<double>::infinity()};
        store.complete(ids[0], ok);
        auto done = store.trial(ids[0]);
        QCOMPARE(done->state, TrialState::Complete);
        QCOMPARE(int(done->values.size()), 2);
        QCOMPARE(done->values[0], 0.125);
        QVERIFY(std::isinf(done->values[1]) && done->values[1] > 0);
        QCOMPARE(done->metrics, ok.metrics);
        QCOMPARE(done->cost, ok.cost);
        QCOMPARE(done->history, ok.history);
        QCOMPARE(done->seconds, ok.seconds);
        QCOMPARE(done->modelPath, ok.modelPath);
        QVERIFY(done->finishedAt >= done->startedAt);
        QCOMPARE(int(done->epochs.size()), 2);

        // Completing twice, or completing a queued trial: refused with the state.
        msg = inputErrorMessage([&] { store.complete(ids[0], ok); });
        QCOMPARE(msg, QString::fromStdString(path + ": trial 0 (id " + std::to_string(ids[0])
                                             + ") is complete, cannot complete it (must be running)"));
        msg = inputErrorMessage([&] { store.complete(ids[1], ok); });
        QVERIFY2(msg.contains("trial 1 (id " + QString::number(ids[1]) + ") is queued"), qPrintable(msg));
        msg = inputErrorMessage([&] { store.complete(987654, ok); });
        QCOMPARE(msg, QString::fromStdString(path + ": no trial with id 987654"));

        // Pruned with no values; failed straight from queued; a specific claim.
        store.claim(ids[1], "node-b", 1);
        TrialOutcome part;
        part.fidelity = 2;
        store.prune(ids[1], part, "ASHA rung 2: not in the top third");
        QCOMPARE(store.trial(ids[1])->state, TrialState::Pruned);
        QCOMPARE(store.trial(ids[1])->error, std::string("ASHA rung 2: not in the top third"));
        QVERIFY(store.trial(ids[1])->values.empty());
        store.fail(ids[5], "spec exceeds max BOPs");
        QCOMPARE(store.trial(ids[5])->state, TrialState::Failed);
        QCOMPARE(store.trial(ids[5])->error, std::string("spec exceeds max BOPs"));
        msg = inputErrorMessage([&] { store.claim(ids[5], "h", 0); });
        QVERIFY2(msg.contains("is failed, cannot claim it (must be queued)"), qPrintable(msg));

        // Promotion: a pruned trial back to queued with a larger budget keeps its epochs.
        store.claim(ids[2], "h", 0);
        store.reportEpoch(ids[2], 1, 0.4);
        store.reportEpoch(ids[2], 2, 0.3);
        TrialOutcome rung = outcome(2);
        store.prune(ids[2], rung);
        store.requeue(ids[2], 6);
        auto promoted = store.trial(ids[2]);
        QCOMPARE(promoted->state, TrialState::Queued);
        QCOMPARE(promoted->budget, 6);
        QCOMPARE(int(promoted->epochs.size()), 2);
        QCOMPARE(promoted->values, rung.values); // the last rung's outcome until it is replaced

        // Crash recovery: running trials (claimed, with epochs) go back to queued, cleared.
        store.claim(ids[3], "h", 0);
        store.reportEpoch(ids[3], 1, 0.7);
        store.claim(ids[4], "h", 1);
        QCOMPARE(store.counts().running, 2);
        QCOMPARE(store.recoverAfterCrash(), 2);
        QCOMPARE(store.recoverAfterCrash(), 0);
        const StateCounts c = store.counts();
        QCOMPARE(c.running, 0);
        QCOMPARE(c.queued, 3);
        QCOMPARE(c.complete, 1);
        QCOMPARE(c.pruned, 1);
        QCOMPARE(c.failed, 1);
        auto back = store.trial(ids[3]);
        QCOMPARE(back->state, TrialState::Queued);
        QVERIFY(back->epochs.empty());
        QCOMPARE(back->fidelity, 0);
        QCOMPARE(back->host, std::string());
        QCOMPARE(back->rank, -1);
        QCOMPARE(back->attempts, 1);
        // Claimed again in number order: the promoted trial 2 first.
        QCOMPARE(store.claimNext("h", 0)->id, ids[2]);
        QCOMPARE(store.claimNext("h", 0)->id, ids[3]);
        QCOMPARE(store.trial(ids[3])->attempts, 2);
        QCOMPARE(store.claimNext("h", 0)->id, ids[4]);
        QVERIFY(!store.claimNext("h", 0));

        // valuesAtEpoch: every non-NaN value reported at that epoch, in trial number order.
        const auto at1 = store.valuesAtEpoch(1);
        QCOMPARE(int(at1.size()), 2);
        QCOMPARE(at1[0], 0.8);
        QCOMPARE(at1[1], 0.4);
        QCOMPARE(int(store.valuesAtEpoch(2).size()), 1); // trial 0's epoch 2 was NaN

        // listTrials by state, with and without blobs.
        const auto complete = store.listTrials({TrialState::Complete, true, true});
        QCOMPARE(int(complete.size()), 1);
        QCOMPARE(complete[0].id, ids[0]);
        QCOMPARE(int(complete[0].epochs.size()), 2);
        const auto light = store.listTrials({std::nullopt, false, false});
        QCOMPARE(int(light.size()), 6);
        QVERIFY(light[0].spec.is_null() && light[0].metrics.is_null());
        QCOMPARE(light[0].values[0], 0.125);
        ListOptions noHistory;
        noHistory.withHistory = false;
        const auto nh = store.listTrials(noHistory);
        QCOMPARE(nh[0].metrics, ok.metrics);
        QVERIFY(nh[0].history.is_null());
        QCOMPARE(store.listTrials()[0].history, ok.history);
        for (int i = 0; i < 6; ++i)
            QCOMPARE(light[i].number, i);
        // points(): the same ids, states, fidelities and values, nothing else.
        const auto pts = store.points(std::nullopt);
        QCOMPARE(int(pts.size()), 6);
        for (int i = 0; i < 6; ++i) {
            QCOMPARE(pts[i].id, light[i].id);
            QCOMPARE(pts[i].state, light[i].state);
            QCOMPARE(pts[i].fidelity, light[i].fidelity);
            QCOMPARE(pts[i].values.size(), light[i].values.size());
        }
        const auto donePts = store.points();
        QCOMPARE(int(donePts.size()), 1);
        QCOMPARE(donePts[0].id, ids[0]);
        QCOMPARE(donePts[0].values, (std::vector<double>{0.125, std::numeric_limits<double>::infinity()}));
        QCOMPARE(int(store.points(TrialState::Pruned).size()), 1);
    }

    void valuesExact_data()
    {
        QTest::addColumn<double>("a");
        QTest::addColumn<double>("b");
        QTest::newRow("plain") << 0.1 << 3.0e6;
        QTest::newRow("subnormal and huge") << 5e-324 << 1.7976931348623157e308;
        QTest::newRow("negative zero, tiny") << -0.0 << 1e-300;
        QTest::newRow("infinities") << -std::numeric_limits<double>::infinity()
                                    << std::numeric_limits<double>::infinity();
        QTest::newRow("not representable in 17 digits' naive form") << 0.1 + 0.2 << 1.0 / 3.0;
    }

    void valuesExact()
    {
        // Objective values come back bit-identical through every read path (the light listing
        // parses them without a JSON parser).
        QFETCH(double, a);
        QFETCH(double, b);
        const std::string path = file(std::string("values-") + QTest::currentDataTag() + ".db");
        StudyStore store = StudyStore::createOrOpen(path, makeStudy());
        const auto e = store.enqueue(request(0));
        store.claim(e.id, "h", 0);
        TrialOutcome o = outcome(0);
        o.values = {a, b};
        store.complete(e.id, o);
        for (bool blobs : {true, false}) {
            const auto t = store.listTrials({std::nullopt, blobs, false})[0];
            QCOMPARE(int(t.values.size()), 2);
            QVERIFY(std::memcmp(&t.values[0], &a, sizeof a) == 0);
            QVERIFY(std::memcmp(&t.values[1], &b, sizeof b) == 0);
        }
        const auto back = TrialRecord::fromJson(json::parse(store.trial(e.id)->toJson().dump()));
        QVERIFY(std::memcmp(&back.values[0], &a, sizeof a) == 0);
        QVERIFY(std::memcmp(&back.values[1], &b, sizeof b) == 0);
    }

    void modelPaths()
    {
        StudyStore store = StudyStore::createOrOpen(file("paths.db"), makeStudy());
        QCOMPARE(store.folder(), m_dir.path().toStdString());
        QCOMPARE(store.suggestedModelPath(17), std::string("paths.models/trial-00017"));
        QCOMPARE(store.resolve("paths.models/trial-00017"),
                 m_dir.path().toStdString() + "/paths.models/trial-00017");
        QCOMPARE(store.resolve("/abs/model"), std::string("/abs/model"));
    }

    void jsonRoundTrip()
    {
        StudyStore store = StudyStore::createOrOpen(file("json.db"), makeStudy());
        const std::int64_t id = runTrial(store, 5, "node-x", 2);
        const TrialRecord t = *store.trial(id);
        const json j = t.toJson();
        QCOMPARE(j["state"].get<std::string>(), std::string("complete"));
        QCOMPARE(j["fidelity"].get<int>(), 2);
        QCOMPARE(j["spec"], request(5).spec);
        const TrialRecord back = TrialRecord::fromJson(json::parse(j.dump()));
        QCOMPARE(back.toJson(), j);
        QCOMPARE(back.id, t.id);
        QCOMPARE(back.values, t.values);
        QCOMPARE(back.startedAt, t.startedAt); // doubles survive dump/parse exactly
        QCOMPARE(int(back.epochs.size()), 2);
        QVERIFY(back.epochs[1] == t.epochs[1]);

        // Non-finite values use strings, and come back.
        TrialRecord odd = t;
        odd.values = {-std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
        odd.epochs = {{3, std::numeric_limits<double>::quiet_NaN(), nullptr}};
        const json oj = json::parse(odd.toJson().dump());
        QCOMPARE(oj["values"], json({"-inf", "inf"}));
        QCOMPARE(oj["epochs"][0]["value"], json("nan"));
        const TrialRecord oddBack = TrialRecord::fromJson(oj);
        QVERIFY(std::isinf(oddBack.values[0]) && oddBack.values[0] < 0);
        QVERIFY(oddBack.epochs[0] == odd.epochs[0]);

        const StudyInfo s = store.info();
        const StudyInfo sb = StudyInfo::fromJson(json::parse(s.toJson().dump()));
        QCOMPARE(sb.toJson(), s.toJson());
        QCOMPARE(sb.seed, s.seed);
        QVERIFY(sb.objectives == s.objectives);

        // Bad JSON names the field.
        QString msg = inputErrorMessage([] { TrialRecord::fromJson({{"id", 1}, {"state", "done"}}); });
        QCOMPARE(msg, QStringLiteral("trial.state: unknown trial state 'done' (expected queued, "
                                     "running, complete, failed or pruned)"));
        msg = inputErrorMessage([] { TrialRecord::fromJson({{"fidelity", "two"}}); });
        QCOMPARE(msg, QStringLiteral("trial.fidelity: wrong type (string)"));
        msg = inputErrorMessage([] {
            StudyInfo::fromJson({{"objectives", {{{"name", "d"}, {"direction", "down"}}}}}, "S.json");
        });
        QCOMPARE(msg, QStringLiteral("S.json.objectives[0].direction: 'down' (expected minimize or maximize)"));
    }

    void changeCounter()
    {
        StudyStore store = StudyStore::createOrOpen(file("seq.db"), makeStudy());
        const auto a = store.enqueue(request(0));
        const auto b = store.enqueue(request(1));
        const std::int64_t s0 = store.changeSeq();
        QCOMPARE(s0, std::int64_t(2));
        QVERIFY(store.trialsSince(s0).empty());
        store.claim(b.id, "h", 0);
        auto changed = store.trialsSince(s0);
        QCOMPARE(int(changed.size()), 1);
        QCOMPARE(changed[0].id, b.id);
        QCOMPARE(changed[0].state, TrialState::Running);
        store.reportEpoch(b.id, 1, 0.5);
        store.claim(a.id, "h", 1);
        changed = store.trialsSince(s0);
        QCOMPARE(int(changed.size()), 2);
        QCOMPARE(changed[0].id, b.id); // ordered by their last change
        QCOMPARE(changed[1].id, a.id);
        QVERIFY(changed[0].updateSeq < changed[1].updateSeq);
        QCOMPARE(store.changeSeq(), changed[1].updateSeq);
        // A duplicate enqueue changes nothing.
        const std::int64_t s1 = store.changeSeq();
        store.enqueue(request(0));
        QCOMPARE(store.changeSeq(), s1);
        QCOMPARE(int(store.trialsSince(0, {TrialState::Running, false, false}).size()), 2);
    }

    void readOnlyMode()
    {
        const std::string path = file("ro.db");
        { StudyStore store = StudyStore::createOrOpen(path, makeStudy()); runTrial(store, 0); }
        StudyStore ro = StudyStore::open(path, StudyStore::Mode::ReadOnly);
        QVERIFY(ro.readOnly());
        QCOMPARE(ro.counts().complete, 1);
        bool threw = false;
        try {
            ro.enqueue(request(1));
        } catch (const Error &e) {
            threw = std::string(e.what()) == path + ": study store opened read-only";
        }
        QVERIFY(threw);
    }

    void threads()
    {
        // Four threads share one StudyStore (serialised by its mutex); two more have their own
        // connections to the same file. Every trial is enqueued by three threads: exactly one
        // inserts it, exactly one claims it, it is completed once.
        const std::string path = file("threads.db");
        StudyStore shared = StudyStore::createOrOpen(path, makeStudy());
        constexpr int kTrials = 120;
        for (int k = 0; k < kTrials; ++k)
            shared.enqueue(request(k));
        std::atomic<int> inserted{0}, completed{0};
        std::atomic<bool> failed{false};
        auto work = [&](StudyStore &store, int rank) {
            try {
                for (int k = 0; k < kTrials; ++k)
                    inserted += store.enqueue(request(k + kTrials * (1 + rank % 2))).inserted ? 1 : 0;
                while (auto t = store.claimNext("host", rank)) {
                    store.reportEpoch(t->id, 1, 0.5);
                    const int k = t->spec["k"].get<int>();
                    store.complete(t->id, outcome(k));
                    ++completed;
                }
            } catch (const std::exception &e) {
                qWarning("%s", e.what());
                failed = true;
            }
        };
        std::vector<std::thread> pool;
        for (int r = 0; r < 4; ++r)
            pool.emplace_back([&, r] { work(shared, r); });
        std::vector<StudyStore> own;
        for (int r = 4; r < 6; ++r)
            own.push_back(StudyStore::open(path));
        for (int r = 4; r < 6; ++r)
            pool.emplace_back([&, r] { work(own[r - 4], r); });
        for (auto &t : pool)
            t.join();
        QVERIFY(!failed);
        QCOMPARE(inserted.load(), 2 * kTrials);
        QCOMPARE(completed.load(), 3 * kTrials);
        const auto all = shared.listTrials();
        QCOMPARE(int(all.size()), 3 * kTrials);
        std::set<std::string> hashes;
        for (int i = 0; i < int(all.size()); ++i) {
            QCOMPARE(all[i].number, i);
            QCOMPARE(all[i].state, TrialState::Complete);
            QCOMPARE(all[i].attempts, 1);
            QCOMPARE(all[i].values[1], 1e6 * (all[i].spec["k"].get<int>() + 1));
            hashes.insert(all[i].specHash);
        }
        QCOMPARE(int(hashes.size()), 3 * kTrials);
    }

    void killedWriterLosesNothing()
    {
        // A child process runs trials in a loop and writes each id to a pipe only after
        // complete() returned. It is killed with SIGKILL at random points, several times; each
        // time the parent reopens the store and checks every reported trial is there once and
        // complete, then recovers the running one and lets a new child resume.
        const std::string path = file("crash.db");
        { StudyStore::createOrOpen(path, makeStudy()); }
        std::mt19937 rng(20261201);
        std::set<std::int64_t> reported;
        int totalRecovered = 0;
        constexpr int kRounds = 8;
        for (int round = 0; round < kRounds; ++round) {
            int fds[2];
            QCOMPARE(::pipe(fds), 0);
            const pid_t pid = ::fork();
            QVERIFY(pid >= 0);
            if (pid == 0) {
                ::close(fds[0]);
                try {
                    // Resume as the driver does: the queued (requeued) trials first, then
                    // new specs after the last one enqueued.
                    StudyStore store = StudyStore::open(path);
                    while (auto t = store.claimNext("child", 0)) {
                        store.reportEpoch(t->id, 1, 0.5);
                        store.reportEpoch(t->id, 2, 0.25);
                        store.complete(t->id, outcome(t->spec["k"].get<int>()));
                        writeId(fds[1], t->id);
                    }
                    for (int k = store.counts().total();; ++k) {
                        const std::int64_t id = runTrial(store, k);
                        if (id > 0)
                            writeId(fds[1], id);
                    }
                } catch (...) {
                    _exit(2);
                }
            }
            ::close(fds[1]);
            // Let it run 20-250 ms (the pipe holds 8192 ids, far more than it can do), kill it.
            std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 230));
            ::kill(pid, SIGKILL);
            int status = 0;
            ::waitpid(pid, &status, 0);
            QVERIFY2(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                     "the child stopped before it was killed");
            const std::vector<std::int64_t> ids = readIds(fds[0]);
            ::close(fds[0]);
            for (std::int64_t id : ids)
                QVERIFY2(reported.insert(id).second, "an id was reported twice");

            StudyStore store = StudyStore::open(path);
            const auto all = store.listTrials();
            std::set<std::string> hashes;
            int completeCount = 0;
            for (int i = 0; i < int(all.size()); ++i) {
                QCOMPARE(all[i].number, i);
                hashes.insert(all[i].specHash);
                completeCount += all[i].state == TrialState::Complete ? 1 : 0;
            }
            QCOMPARE(hashes.size(), all.size()); // no genome twice
            for (std::int64_t id : reported) {
                const auto t = store.trial(id);
                QVERIFY(t);
                QCOMPARE(t->state, TrialState::Complete);
                QCOMPARE(t->values, outcome(t->spec["k"].get<int>()).values);
                QCOMPARE(int(t->epochs.size()), 2);
            }
            // At most one trial completed after the last id reached the pipe (killed between
            // its commit and the write), at most one running.
            QVERIFY(completeCount >= int(reported.size()));
            QVERIFY(completeCount <= int(reported.size()) + 1);
            const int running = store.counts().running;
            QVERIFY(running <= 1);
            QCOMPARE(store.recoverAfterCrash(), running);
            totalRecovered += running;
            QCOMPARE(store.counts().running, 0);
            // Account for a completed-but-unreported trial so the next round's check is exact.
            for (const auto &t : all)
                if (t.state == TrialState::Complete)
                    reported.insert(t.id);
        }
        QVERIFY2(reported.size() > 20, "the children completed too few trials to test anything");
        // A child spends most of its time inside a running trial: some kill must land there.
        QVERIFY2(totalRecovered >= 1, "no kill landed while a trial was running");
        qInfo("%d rounds, %zu complete trials, %d running trials requeued", kRounds,
              reported.size(), totalRecovered);
    }

    void liveReaderInAnotherProcess()
    {
        // A child process writes 40 trials slowly; this process watches read-only with
        // trialsSince() and must see them appear (running, then complete) while they are written.
        const std::string path = file("live.db");
        { StudyStore::createOrOpen(path, makeStudy()); }
        constexpr int kTrials = 40;
        // SQLite connections must not cross fork(): the reader is opened after it.
        const pid_t pid = ::fork();
        QVERIFY(pid >= 0);
        if (pid == 0) {
            try {
                StudyStore store = StudyStore::open(path);
                for (int k = 0; k < kTrials; ++k) {
                    const auto e = store.enqueue(request(k));
                    store.claim(e.id, "writer", 1);
                    ::usleep(15000);
                    store.reportEpoch(e.id, 1, 0.5);
                    store.complete(e.id, outcome(k));
                }
            } catch (...) {
                _exit(2);
            }
            _exit(0);
        }
        StudyStore reader = StudyStore::open(path, StudyStore::Mode::ReadOnly);
        std::int64_t seq = 0;
        std::map<std::int64_t, TrialRecord> seen;
        int refreshes = 0, sawRunning = 0;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        auto completeCount = [&] {
            return std::count_if(seen.begin(), seen.end(), [](const auto &p) {
                return p.second.state == TrialState::Complete;
            });
        };
        while (completeCount() < kTrials && std::chrono::steady_clock::now() < deadline) {
            const auto changed = reader.trialsSince(seq);
            if (!changed.empty())
                ++refreshes;
            for (const auto &t : changed) {
                QVERIFY(t.updateSeq > seq);
                sawRunning += t.state == TrialState::Running ? 1 : 0;
                seen[t.id] = t;
            }
            if (!changed.empty())
                seq = changed.back().updateSeq;
            ::usleep(2000);
        }
        int status = 0;
        ::waitpid(pid, &status, 0);
        QVERIFY(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        QCOMPARE(int(seen.size()), kTrials);
        QCOMPARE(int(completeCount()), kTrials);
        for (const auto &[id, t] : seen)
            QCOMPARE(t.values, outcome(t.spec["k"].get<int>()).values);
        // Each trial stays running for 15 ms while the reader polls every 2 ms; a quarter leaves
        // room for a loaded machine. Seeing running trials at all proves the reads were live.
        QVERIFY2(refreshes >= kTrials / 4, qPrintable(QStringLiteral("only %1 refreshes").arg(refreshes)));
        QVERIFY2(sawRunning >= kTrials / 4, qPrintable(QStringLiteral("saw %1 running").arg(sawRunning)));
        QVERIFY(reader.trialsSince(seq).empty());
    }
};

QTEST_GUILESS_MAIN(TestStudyStore)
#include "tst_studystore.moc"
