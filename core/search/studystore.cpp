#include "core/search/studystore.h"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <unordered_map>

#include <sqlite3.h>
#include <unistd.h>

#include "core/common/atomicfile.h"
#include "core/common/error.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace braggnac::core {

namespace {

// 1: the study, trials and epochs; 2: + compress_runs and compress_records (a version-1 file is
// migrated when opened read-write: migrateStore).
constexpr int kSchemaVersion = 2;
constexpr std::int32_t kApplicationId = 0x42524e53; // "BRNS": BraggNAC study
constexpr int kBusyTimeoutMs = 30000;

double nowSeconds()
{
    using namespace std::chrono;
    return duration_cast<duration<double>>(system_clock::now().time_since_epoch()).count();
}

std::uint64_t fnv1a(const void *data, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ull)
{
    const auto *p = static_cast<const unsigned char *>(data);
    for (std::size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

std::string hex16(std::uint64_t h)
{
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

// Objective values: finite numbers as JSON numbers, the rest as "inf" / "-inf" / "nan".
json valueToJson(double v)
{
    if (std::isnan(v))
        return "nan";
    if (std::isinf(v))
        return v > 0 ? "inf" : "-inf";
    return v;
}

double valueFromJson(const json &j, const std::string &source)
{
    if (j.is_number())
        return j.get<double>();
    if (j.is_string()) {
        const auto &s = j.get_ref<const std::string &>();
        if (s == "inf")
            return std::numeric_limits<double>::infinity();
        if (s == "-inf")
            return -std::numeric_limits<double>::infinity();
        if (s == "nan")
            return std::numeric_limits<double>::quiet_NaN();
    }
    if (j.is_null())
        return std::numeric_limits<double>::quiet_NaN();
    throw InputError(source + ": expected a number, \"inf\", \"-inf\" or \"nan\", got " + j.dump());
}

json valuesToJson(const std::vector<double> &values)
{
    json a = json::array();
    for (double v : values)
        a.push_back(valueToJson(v));
    return a;
}

std::vector<double> valuesFromJson(const json &j, const std::string &source)
{
    std::vector<double> out;
    if (j.is_null())
        return out;
    if (!j.is_array())
        throw InputError(source + ": expected an array of objective values");
    out.reserve(j.size());
    for (std::size_t i = 0; i < j.size(); ++i)
        out.push_back(valueFromJson(j[i], source + "[" + std::to_string(i) + "]"));
    return out;
}

// Typed field access for fromJson(): missing -> default, wrong type -> InputError naming it.
template <class T>
T field(const json &j, const char *key, const std::string &source, T def)
{
    auto it = j.find(key);
    if (it == j.end() || it->is_null())
        return def;
    try {
        return it->get<T>();
    } catch (const json::exception &) {
        throw InputError(source + "." + key + ": wrong type (" + it->type_name() + ")");
    }
}

json blob(const json &j, const char *key)
{
    auto it = j.find(key);
    return it == j.end() ? json() : *it;
}

void requireObject(const json &j, const std::string &source)
{
    if (!j.is_object())
        throw InputError(source + ": expected a JSON object, got " + j.type_name());
}

std::string objectivesText(const std::vector<Objective> &objectives)
{
    std::string s;
    for (const auto &o : objectives) {
        if (!s.empty())
            s += ", ";
        s += o.name + (o.minimize ? " (minimize)" : " (maximize)");
    }
    return s.empty() ? "none" : s;
}

std::string datasetText(const DatasetInfo &d)
{
    return "'" + d.path + "' (" + std::to_string(d.size) + " bytes, hash "
        + (d.contentHash.empty() ? "none" : d.contentHash) + ")";
}

// The first 100 bytes of an SQLite file, checked before SQLite touches it, so that garbage
// and truncated files get a precise message (SQLite itself only says "not a database").
void checkSqliteHeader(const std::string &path)
{
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec)
        throw InputError(fileMessage(path, "cannot read: " + ec.message()));
    if (size == 0)
        throw InputError(fileMessage(path, "empty file, not a BraggNAC study store"));
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw InputError(fileMessage(path, "cannot open for reading"));
    unsigned char h[100] = {};
    in.read(reinterpret_cast<char *>(h), sizeof h);
    const auto got = static_cast<std::size_t>(in.gcount());
    static const char magic[] = "SQLite format 3";
    if (got < 16 || std::memcmp(h, magic, 16) != 0)
        throw InputError(fileMessage(path, "not an SQLite database (no SQLite header), so not a "
                                           "BraggNAC study store"));
    if (got < 100)
        throw InputError(fileMessage(path, "truncated SQLite database (" + std::to_string(size)
                                               + " bytes, shorter than its 100-byte header)"));
    auto be32 = [&](int o) {
        return (std::uint32_t(h[o]) << 24) | (std::uint32_t(h[o + 1]) << 16)
            | (std::uint32_t(h[o + 2]) << 8) | std::uint32_t(h[o + 3]);
    };
    std::uint32_t pageSize = (std::uint32_t(h[16]) << 8) | h[17];
    if (pageSize == 1)
        pageSize = 65536;
    if (pageSize < 512 || (pageSize & (pageSize - 1)) != 0)
        throw InputError(fileMessage(path, "corrupt SQLite header (page size "
                                               + std::to_string(pageSize) + ")"));
    // The in-header page count is valid when "version-valid-for" equals the change counter.
    // With a WAL file beside it the main file may legitimately lag (mid-checkpoint), so the
    // size check is only made when there is none.
    const std::uint32_t pages = be32(28);
    const bool countValid = be32(92) == be32(24) && pages > 0;
    std::error_code walEc;
    const bool hasWal = fs::exists(path + "-wal", walEc) && fs::file_size(path + "-wal", walEc) > 0;
    if (countValid && !hasWal && size < std::uint64_t(pages) * pageSize)
        throw InputError(fileMessage(path, "truncated SQLite database (" + std::to_string(size)
                                               + " bytes; its header says "
                                               + std::to_string(pages) + " pages of "
                                               + std::to_string(pageSize) + " bytes)"));
}

const char *kSchemaSql = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE study(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  name TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('search', 'tune', 'compress')),
  created REAL NOT NULL,
  space_json TEXT NOT NULL,
  space_hash TEXT NOT NULL,
  dataset_path TEXT NOT NULL,
  dataset_size INTEGER NOT NULL,
  dataset_hash TEXT NOT NULL,
  options_json TEXT NOT NULL,
  seed INTEGER NOT NULL);
CREATE TABLE objectives(
  idx INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  direction TEXT NOT NULL CHECK (direction IN ('minimize', 'maximize')));
CREATE TABLE trials(
  id INTEGER PRIMARY KEY,
  number INTEGER NOT NULL UNIQUE,
  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'complete', 'failed', 'pruned')),
  spec_hash TEXT NOT NULL,
  hparams_hash TEXT NOT NULL,
  budget INTEGER NOT NULL DEFAULT 0,
  fidelity INTEGER NOT NULL DEFAULT 0,
  generation INTEGER NOT NULL DEFAULT -1,
  values_json TEXT,
  queued_at REAL,
  started_at REAL,
  finished_at REAL,
  seconds REAL,
  host TEXT,
  rank INTEGER NOT NULL DEFAULT -1,
  error TEXT,
  model_path TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  updated_seq INTEGER NOT NULL,
  UNIQUE (spec_hash, hparams_hash));
CREATE INDEX trials_by_state ON trials(state, number);
CREATE INDEX trials_by_seq ON trials(updated_seq);
CREATE TABLE trial_blobs(
  trial_id INTEGER PRIMARY KEY REFERENCES trials(id),
  spec_json TEXT NOT NULL,
  hparams_json TEXT NOT NULL,
  metrics_json TEXT,
  cost_json TEXT,
  history_json TEXT);
CREATE TABLE epochs(
  trial_id INTEGER NOT NULL REFERENCES trials(id),
  epoch INTEGER NOT NULL,
  value REAL,
  metrics_json TEXT,
  PRIMARY KEY (trial_id, epoch)) WITHOUT ROWID;
CREATE INDEX epochs_by_epoch ON epochs(epoch);
)sql";

// Schema version 2: the records of `braggnac compress` runs (created in new files, added to
// version-1 files by migrateStore).
const char *kCompressSchemaSql = R"sql(
CREATE TABLE compress_runs(
  id INTEGER PRIMARY KEY,
  created REAL NOT NULL,
  source_model TEXT NOT NULL,
  source_trial INTEGER NOT NULL DEFAULT -1,
  dataset_path TEXT NOT NULL,
  dataset_size INTEGER NOT NULL,
  dataset_hash TEXT NOT NULL,
  options_json TEXT NOT NULL,
  finished INTEGER NOT NULL DEFAULT 0,
  chosen INTEGER NOT NULL DEFAULT -1,
  model_path TEXT);
CREATE TABLE compress_records(
  run_id INTEGER NOT NULL REFERENCES compress_runs(id),
  idx INTEGER NOT NULL,
  bits INTEGER NOT NULL,
  round INTEGER NOT NULL,
  sparsity REAL NOT NULL,
  bops REAL NOT NULL,
  params INTEGER NOT NULL,
  validation REAL,
  test REAL,
  model_path TEXT,
  PRIMARY KEY (run_id, idx),
  UNIQUE (run_id, bits, round)) WITHOUT ROWID;
)sql";

const char *kTrialColumns =
    "id, number, state, spec_hash, hparams_hash, budget, fidelity, generation, values_json, "
    "queued_at, started_at, finished_at, seconds, host, rank, error, model_path, attempts, "
    "updated_seq";
// The large JSON columns live in trial_blobs, so that the light listing (states, values,
// fidelity: fronts and progress) scans a compact table (~0.2 kB a row instead of ~4 kB).
const char *kBlobColumns = ", spec_json, hparams_json, metrics_json, cost_json, history_json";
const char *kBlobColumnsNoHistory = ", spec_json, hparams_json, metrics_json, cost_json, NULL";
const char *kBlobJoin = " JOIN trial_blobs ON trial_blobs.trial_id = trials.id ";
constexpr int kBlobFirst = 19;

} // namespace

// ---------------------------------------------------------------------------------------------

const char *studyKindName(StudyKind k)
{
    switch (k) {
    case StudyKind::Search: return "search";
    case StudyKind::Tune: return "tune";
    case StudyKind::Compress: return "compress";
    }
    return "search";
}

StudyKind studyKindFromName(const std::string &s, const std::string &source)
{
    if (s == "search")
        return StudyKind::Search;
    if (s == "tune")
        return StudyKind::Tune;
    if (s == "compress")
        return StudyKind::Compress;
    throw InputError(source + ": unknown study kind '" + s + "' (expected search, tune or compress)");
}

const char *trialStateName(TrialState s)
{
    switch (s) {
    case TrialState::Queued: return "queued";
    case TrialState::Running: return "running";
    case TrialState::Complete: return "complete";
    case TrialState::Failed: return "failed";
    case TrialState::Pruned: return "pruned";
    }
    return "?";
}

TrialState trialStateFromName(const std::string &s, const std::string &source)
{
    for (auto st : {TrialState::Queued, TrialState::Running, TrialState::Complete,
                    TrialState::Failed, TrialState::Pruned})
        if (s == trialStateName(st))
            return st;
    throw InputError(source + ": unknown trial state '" + s
                     + "' (expected queued, running, complete, failed or pruned)");
}

bool isFinished(TrialState s)
{
    return s == TrialState::Complete || s == TrialState::Failed || s == TrialState::Pruned;
}

std::string canonicalJsonHash(const json &j)
{
    const std::string s = j.dump();
    return hex16(fnv1a(s.data(), s.size()));
}

json DatasetInfo::toJson() const
{
    return {{"path", path}, {"size", size}, {"content_hash", contentHash}};
}

DatasetInfo DatasetInfo::fromJson(const json &j, const std::string &source)
{
    requireObject(j, source);
    DatasetInfo d;
    d.path = field<std::string>(j, "path", source, "");
    d.size = field<std::int64_t>(j, "size", source, 0);
    d.contentHash = field<std::string>(j, "content_hash", source, "");
    return d;
}

DatasetInfo describeDataset(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in || fs::is_directory(path))
        throw InputError(fileMessage(path, "cannot read the dataset"));
    DatasetInfo d;
    d.path = path;
    std::vector<char> buf(1 << 20);
    std::uint64_t h = 0xcbf29ce484222325ull;
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const auto n = static_cast<std::size_t>(in.gcount());
        h = fnv1a(buf.data(), n, h);
        d.size += static_cast<std::int64_t>(n);
    }
    d.contentHash = hex16(h);
    return d;
}

json StudyInfo::toJson() const
{
    json objs = json::array();
    for (const auto &o : objectives)
        objs.push_back({{"name", o.name}, {"direction", o.minimize ? "minimize" : "maximize"}});
    return {{"name", name},       {"kind", studyKindName(kind)}, {"created", created},
            {"space", space},     {"space_hash", spaceHash},     {"dataset", dataset.toJson()},
            {"objectives", objs}, {"options", options},          {"seed", seed}};
}

StudyInfo StudyInfo::fromJson(const json &j, const std::string &source)
{
    requireObject(j, source);
    StudyInfo s;
    s.name = field<std::string>(j, "name", source, "");
    s.kind = studyKindFromName(field<std::string>(j, "kind", source, "search"), source + ".kind");
    s.created = field<double>(j, "created", source, 0.0);
    s.space = blob(j, "space");
    s.spaceHash = field<std::string>(j, "space_hash", source, "");
    if (j.contains("dataset"))
        s.dataset = DatasetInfo::fromJson(j.at("dataset"), source + ".dataset");
    const json objs = blob(j, "objectives");
    if (!objs.is_null() && !objs.is_array())
        throw InputError(source + ".objectives: expected an array");
    for (std::size_t i = 0; i < objs.size(); ++i) {
        const std::string src = source + ".objectives[" + std::to_string(i) + "]";
        requireObject(objs[i], src);
        Objective o;
        o.name = field<std::string>(objs[i], "name", src, "");
        const std::string dir = field<std::string>(objs[i], "direction", src, "minimize");
        if (dir != "minimize" && dir != "maximize")
            throw InputError(src + ".direction: '" + dir + "' (expected minimize or maximize)");
        o.minimize = dir == "minimize";
        s.objectives.push_back(o);
    }
    s.options = blob(j, "options");
    s.seed = field<std::uint64_t>(j, "seed", source, 0);
    return s;
}

bool EpochValue::operator==(const EpochValue &o) const
{
    const bool sameValue = (std::isnan(value) && std::isnan(o.value)) || value == o.value;
    return epoch == o.epoch && sameValue && metrics == o.metrics;
}

bool CompressRecordRow::operator==(const CompressRecordRow &o) const
{
    auto same = [](double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; };
    return bits == o.bits && round == o.round && same(sparsity, o.sparsity) && same(bops, o.bops)
        && params == o.params && same(validation, o.validation) && same(test, o.test)
        && modelPath == o.modelPath;
}

json TrialRecord::toJson() const
{
    json eps = json::array();
    for (const auto &e : epochs)
        eps.push_back({{"epoch", e.epoch}, {"value", valueToJson(e.value)}, {"metrics", e.metrics}});
    return {{"id", id},
            {"number", number},
            {"state", trialStateName(state)},
            {"spec", spec},
            {"spec_hash", specHash},
            {"hyperparameters", hyperParams},
            {"hyper_hash", hyperHash},
            {"budget", budget},
            {"fidelity", fidelity},
            {"generation", generation},
            {"metrics", metrics},
            {"values", valuesToJson(values)},
            {"cost", cost},
            {"history", history},
            {"queued_at", queuedAt},
            {"started_at", startedAt},
            {"finished_at", finishedAt},
            {"seconds", seconds},
            {"host", host},
            {"rank", rank},
            {"error", error},
            {"model_path", modelPath},
            {"attempts", attempts},
            {"update_seq", updateSeq},
            {"epochs", eps}};
}

TrialRecord TrialRecord::fromJson(const json &j, const std::string &source)
{
    requireObject(j, source);
    TrialRecord t;
    t.id = field<std::int64_t>(j, "id", source, 0);
    t.number = field<int>(j, "number", source, 0);
    t.state = trialStateFromName(field<std::string>(j, "state", source, "queued"), source + ".state");
    t.spec = blob(j, "spec");
    t.specHash = field<std::string>(j, "spec_hash", source, "");
    t.hyperParams = j.contains("hyperparameters") ? j.at("hyperparameters") : json::object();
    t.hyperHash = field<std::string>(j, "hyper_hash", source, "");
    t.budget = field<int>(j, "budget", source, 0);
    t.fidelity = field<int>(j, "fidelity", source, 0);
    t.generation = field<int>(j, "generation", source, -1);
    t.metrics = blob(j, "metrics");
    t.values = valuesFromJson(blob(j, "values"), source + ".values");
    t.cost = blob(j, "cost");
    t.history = blob(j, "history");
    t.queuedAt = field<double>(j, "queued_at", source, 0.0);
    t.startedAt = field<double>(j, "started_at", source, 0.0);
    t.finishedAt = field<double>(j, "finished_at", source, 0.0);
    t.seconds = field<double>(j, "seconds", source, 0.0);
    t.host = field<std::string>(j, "host", source, "");
    t.rank = field<int>(j, "rank", source, -1);
    t.error = field<std::string>(j, "error", source, "");
    t.modelPath = field<std::string>(j, "model_path", source, "");
    t.attempts = field<int>(j, "attempts", source, 0);
    t.updateSeq = field<std::int64_t>(j, "update_seq", source, 0);
    const json eps = blob(j, "epochs");
    if (!eps.is_null() && !eps.is_array())
        throw InputError(source + ".epochs: expected an array");
    for (std::size_t i = 0; i < eps.size(); ++i) {
        const std::string src = source + ".epochs[" + std::to_string(i) + "]";
        requireObject(eps[i], src);
        EpochValue e;
        e.epoch = field<int>(eps[i], "epoch", src, 0);
        e.value = valueFromJson(blob(eps[i], "value"), src + ".value");
        e.metrics = blob(eps[i], "metrics");
        t.epochs.push_back(std::move(e));
    }
    return t;
}

// ---------------------------------------------------------------------------------------------
// The connection and small RAII helpers over the SQLite C API.

struct StudyStore::Impl {
    std::string path;
    sqlite3 *db = nullptr;
    bool created = false;
    bool readOnly = false;
    int objectiveCount = 0;
    int schema = 0; // the file's schema version after open (and migration)
    mutable std::mutex mutex;

    ~Impl()
    {
        if (db)
            sqlite3_close_v2(db);
    }

    [[noreturn]] void raise(int rc, const std::string &what) const
    {
        const std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
        const int primary = rc & 0xff;
        if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
            throw InputError(fileMessage(path, "corrupt study store (" + msg + ") while " + what));
        if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
            throw Error(fileMessage(path, "study store is locked by another process for more than "
                                              + std::to_string(kBusyTimeoutMs / 1000)
                                              + " s while " + what));
        throw Error(fileMessage(path, what + ": " + msg));
    }

    void exec(const char *sql, const char *what) const
    {
        char *err = nullptr;
        const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
        sqlite3_free(err);
        if (rc != SQLITE_OK)
            raise(rc, what);
    }

    void requireWritable() const
    {
        if (readOnly)
            throw Error(fileMessage(path, "study store opened read-only"));
    }
};

namespace {

class Stmt {
public:
    Stmt(const StudyStore::Impl &impl, const std::string &sql) : m_impl(impl)
    {
        const int rc = sqlite3_prepare_v2(impl.db, sql.c_str(), -1, &m_stmt, nullptr);
        // Our SQL is fixed, so SQLITE_ERROR here ("no such column", "unsupported file format")
        // means the file's schema is not the one we write: a damaged store, bad input (fuzzing).
        if ((rc & 0xff) == SQLITE_ERROR)
            throw InputError(fileMessage(impl.path, std::string("damaged study store (")
                                                        + sqlite3_errmsg(impl.db)
                                                        + ") while preparing a query"));
        if (rc != SQLITE_OK)
            impl.raise(rc, "preparing a query");
    }
    ~Stmt() { sqlite3_finalize(m_stmt); }
    Stmt(const Stmt &) = delete;
    Stmt &operator=(const Stmt &) = delete;

    Stmt &bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(m_stmt, i, v)); }
    Stmt &bind(int i, int v) { return check(sqlite3_bind_int64(m_stmt, i, v)); }
    Stmt &bind(int i, double v) { return check(sqlite3_bind_double(m_stmt, i, v)); }
    Stmt &bind(int i, const std::string &v)
    {
        return check(sqlite3_bind_text(m_stmt, i, v.data(), static_cast<int>(v.size()),
                                       SQLITE_TRANSIENT));
    }
    Stmt &bind(int i, const char *v) { return bind(i, std::string(v)); }
    Stmt &bindNull(int i) { return check(sqlite3_bind_null(m_stmt, i)); }
    Stmt &bindTime(int i, double t) { return t > 0 ? bind(i, t) : bindNull(i); }
    Stmt &bindJson(int i, const json &j) { return j.is_null() ? bindNull(i) : bind(i, j.dump()); }

    /// true: a row is available; false: done.
    bool step()
    {
        const int rc = sqlite3_step(m_stmt);
        if (rc == SQLITE_ROW)
            return true;
        if (rc == SQLITE_DONE)
            return false;
        m_impl.raise(rc, "running a query");
    }
    void run()
    {
        while (step()) {
        }
    }
    void reset()
    {
        sqlite3_reset(m_stmt);
        sqlite3_clear_bindings(m_stmt);
    }

    bool isNull(int c) const { return sqlite3_column_type(m_stmt, c) == SQLITE_NULL; }
    std::int64_t i64(int c) const { return sqlite3_column_int64(m_stmt, c); }
    int i32(int c) const { return static_cast<int>(sqlite3_column_int64(m_stmt, c)); }
    double real(int c) const
    {
        return isNull(c) ? std::numeric_limits<double>::quiet_NaN() : sqlite3_column_double(m_stmt, c);
    }
    double time(int c) const { return isNull(c) ? 0.0 : sqlite3_column_double(m_stmt, c); }
    std::string text(int c) const
    {
        const auto *p = reinterpret_cast<const char *>(sqlite3_column_text(m_stmt, c));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, c)))
                 : std::string();
    }
    json jsonAt(int c, const char *what) const
    {
        if (isNull(c))
            return json();
        const auto *p = reinterpret_cast<const char *>(sqlite3_column_text(m_stmt, c));
        const auto n = static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, c));
        json j = json::parse(p, p + n, nullptr, false);
        if (j.is_discarded())
            throw InputError(fileMessage(m_impl.path, std::string("corrupt study store: column ")
                                                          + what + " is not JSON"));
        return j;
    }

private:
    Stmt &check(int rc)
    {
        if (rc != SQLITE_OK)
            m_impl.raise(rc, "binding a query parameter");
        return *this;
    }
    const StudyStore::Impl &m_impl;
    sqlite3_stmt *m_stmt = nullptr;
};

// BEGIN IMMEDIATE takes the write lock up front (the busy timeout applies to it), so a write
// transaction never has to upgrade a read lock and cannot deadlock with another writer.
class WriteTx {
public:
    explicit WriteTx(const StudyStore::Impl &impl) : m_impl(impl)
    {
        impl.requireWritable();
        impl.exec("BEGIN IMMEDIATE", "starting a write transaction");
    }
    ~WriteTx()
    {
        if (!m_done)
            sqlite3_exec(m_impl.db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    void commit()
    {
        m_impl.exec("COMMIT", "committing");
        m_done = true;
    }

private:
    const StudyStore::Impl &m_impl;
    bool m_done = false;
};

// A consistent snapshot for multi-statement reads.
class ReadTx {
public:
    explicit ReadTx(const StudyStore::Impl &impl) : m_impl(impl)
    {
        impl.exec("BEGIN", "starting a read transaction");
    }
    ~ReadTx() { sqlite3_exec(m_impl.db, "COMMIT", nullptr, nullptr, nullptr); }

private:
    const StudyStore::Impl &m_impl;
};

std::int64_t nextSeq(const StudyStore::Impl &impl)
{
    Stmt s(impl, "SELECT COALESCE(MAX(updated_seq), 0) + 1 FROM trials");
    s.step();
    return s.i64(0);
}

// The values column as written by valuesToJson ([0.25,1e6,"inf"]) without a JSON parser (the
// light listing of 100k trials spends most of its time here otherwise). False: not in that form.
bool parseValuesFast(const std::string &text, std::vector<double> &out)
{
    out.clear();
    const char *p = text.c_str();
    if (*p++ != '[')
        return false;
    if (*p == ']')
        return p[1] == '\0';
    while (true) {
        if (*p == '"') {
            const char *q = std::strchr(p + 1, '"');
            if (!q)
                return false;
            const std::string word(p + 1, q);
            if (word == "inf")
                out.push_back(std::numeric_limits<double>::infinity());
            else if (word == "-inf")
                out.push_back(-std::numeric_limits<double>::infinity());
            else if (word == "nan")
                out.push_back(std::numeric_limits<double>::quiet_NaN());
            else
                return false;
            p = q + 1;
        } else {
            double v = 0; // from_chars: locale-independent (Qt sets LC_NUMERIC from the user)
            const auto r = std::from_chars(p, text.c_str() + text.size(), v);
            if (r.ec != std::errc() || r.ptr == p)
                return false;
            out.push_back(v);
            p = r.ptr;
        }
        if (*p == ']')
            return p[1] == '\0';
        if (*p++ != ',')
            return false;
    }
}

TrialRecord readTrialRow(const Stmt &s, bool withBlobs, const std::string &path)
{
    TrialRecord t;
    t.id = s.i64(0);
    t.number = s.i32(1);
    t.state = trialStateFromName(s.text(2), fileMessage(path, "trials.state"));
    t.specHash = s.text(3);
    t.hyperHash = s.text(4);
    t.budget = s.i32(5);
    t.fidelity = s.i32(6);
    t.generation = s.i32(7);
    if (!s.isNull(8) && !parseValuesFast(s.text(8), t.values))
        t.values = valuesFromJson(s.jsonAt(8, "values_json"), fileMessage(path, "trials.values_json"));
    t.queuedAt = s.time(9);
    t.startedAt = s.time(10);
    t.finishedAt = s.time(11);
    t.seconds = s.time(12);
    t.host = s.text(13);
    t.rank = s.i32(14);
    t.error = s.text(15);
    t.modelPath = s.text(16);
    t.attempts = s.i32(17);
    t.updateSeq = s.i64(18);
    if (withBlobs) {
        t.spec = s.jsonAt(kBlobFirst, "spec_json");
        t.hyperParams = s.jsonAt(kBlobFirst + 1, "hparams_json");
        t.metrics = s.jsonAt(kBlobFirst + 2, "metrics_json");
        t.cost = s.jsonAt(kBlobFirst + 3, "cost_json");
        t.history = s.jsonAt(kBlobFirst + 4, "history_json");
    }
    return t;
}

std::string selectTrials(bool withBlobs, const std::string &tail, bool withHistory = true)
{
    return std::string("SELECT ") + kTrialColumns
        + (withBlobs ? (withHistory ? kBlobColumns : kBlobColumnsNoHistory) : "") + " FROM trials "
        + (withBlobs ? kBlobJoin : "") + tail;
}

std::vector<EpochValue> readEpochs(const StudyStore::Impl &impl, std::int64_t id)
{
    Stmt s(impl, "SELECT epoch, value, metrics_json FROM epochs WHERE trial_id = ? ORDER BY epoch");
    s.bind(1, id);
    std::vector<EpochValue> out;
    while (s.step())
        out.push_back({s.i32(0), s.real(1), s.jsonAt(2, "epochs.metrics_json")});
    return out;
}

void fillEpochs(const StudyStore::Impl &impl, std::vector<TrialRecord> &trials)
{
    if (trials.empty())
        return;
    std::unordered_map<std::int64_t, std::size_t> index;
    index.reserve(trials.size());
    for (std::size_t i = 0; i < trials.size(); ++i)
        index.emplace(trials[i].id, i);
    Stmt s(impl, "SELECT trial_id, epoch, value, metrics_json FROM epochs ORDER BY trial_id, epoch");
    while (s.step()) {
        auto it = index.find(s.i64(0));
        if (it != index.end())
            trials[it->second].epochs.push_back({s.i32(1), s.real(2), s.jsonAt(3, "epochs.metrics_json")});
    }
}

struct TrialStateRow {
    bool found = false;
    TrialState state = TrialState::Queued;
    int number = 0;
};

TrialStateRow stateOf(const StudyStore::Impl &impl, std::int64_t id)
{
    Stmt s(impl, "SELECT state, number FROM trials WHERE id = ?");
    s.bind(1, id);
    TrialStateRow r;
    if (s.step()) {
        r.found = true;
        r.state = trialStateFromName(s.text(0), fileMessage(impl.path, "trials.state"));
        r.number = s.i32(1);
    }
    return r;
}

TrialStateRow requireState(const StudyStore::Impl &impl, std::int64_t id,
                           std::initializer_list<TrialState> allowed, const char *action)
{
    const TrialStateRow r = stateOf(impl, id);
    if (!r.found)
        throw InputError(fileMessage(impl.path, "no trial with id " + std::to_string(id)));
    for (TrialState a : allowed)
        if (r.state == a)
            return r;
    std::string names;
    for (TrialState a : allowed)
        names += std::string(names.empty() ? "" : " or ") + trialStateName(a);
    throw InputError(fileMessage(impl.path, "trial " + std::to_string(r.number) + " (id "
                                                + std::to_string(id) + ") is "
                                                + trialStateName(r.state) + ", cannot " + action
                                                + " (must be " + names + ")"));
}

void checkValues(const StudyStore::Impl &impl, std::int64_t id, const std::vector<double> &values,
                 bool allowEmpty)
{
    if (values.empty() && allowEmpty)
        return;
    if (static_cast<int>(values.size()) != impl.objectiveCount)
        throw InputError(fileMessage(impl.path, "trial id " + std::to_string(id) + ": "
                                                    + std::to_string(values.size())
                                                    + " objective values, the study has "
                                                    + std::to_string(impl.objectiveCount)));
    for (std::size_t i = 0; i < values.size(); ++i)
        if (std::isnan(values[i]))
            throw InputError(fileMessage(impl.path, "trial id " + std::to_string(id)
                                                        + ": objective " + std::to_string(i)
                                                        + " is NaN (record a failed trial instead)"));
}

StudyInfo readStudy(const StudyStore::Impl &impl)
{
    StudyInfo info;
    Stmt s(impl, "SELECT name, kind, created, space_json, space_hash, dataset_path, dataset_size, "
                 "dataset_hash, options_json, seed FROM study WHERE id = 1");
    if (!s.step())
        throw InputError(fileMessage(impl.path, "damaged study store: the study row is missing"));
    info.name = s.text(0);
    info.kind = studyKindFromName(s.text(1), fileMessage(impl.path, "study.kind"));
    info.created = s.time(2);
    info.space = s.jsonAt(3, "space_json");
    info.spaceHash = s.text(4);
    info.dataset.path = s.text(5);
    info.dataset.size = s.i64(6);
    info.dataset.contentHash = s.text(7);
    info.options = s.jsonAt(8, "options_json");
    info.seed = static_cast<std::uint64_t>(s.i64(9));
    Stmt o(impl, "SELECT name, direction FROM objectives ORDER BY idx");
    while (o.step())
        info.objectives.push_back({o.text(0), o.text(1) == "minimize"});
    return info;
}

// Waiting for another writer's lock: SQLite's own busy_timeout sleeps 1, 2, 5, 10, ... 100 ms,
// which makes a short wait cost tens of ms. Transactions here last ~0.1 ms, so poll finely
// first: 100 x 0.1 ms, then 1000 x 1 ms, then 10 ms steps, about kBusyTimeoutMs in all.
int busyWait(void *, int count)
{
    constexpr int kFine = 100, kMedium = 1000;
    constexpr int kCoarse = (kBusyTimeoutMs - kFine / 10 - kMedium) / 10;
    if (count < kFine)
        ::usleep(100);
    else if (count < kFine + kMedium)
        ::usleep(1000);
    else if (count < kFine + kMedium + kCoarse)
        ::usleep(10000);
    else
        return 0;
    return 1;
}

std::unique_ptr<StudyStore::Impl> connect(const std::string &path, bool readOnly, bool create)
{
    auto impl = std::make_unique<StudyStore::Impl>();
    impl->path = path;
    impl->readOnly = readOnly;
    int flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
    if (create)
        flags |= SQLITE_OPEN_CREATE;
    const int rc = sqlite3_open_v2(path.c_str(), &impl->db, flags, nullptr);
    if (rc != SQLITE_OK) {
        const std::string msg = impl->db ? sqlite3_errmsg(impl->db) : sqlite3_errstr(rc);
        throw InputError(fileMessage(path, "cannot open as a study store: " + msg));
    }
    sqlite3_extended_result_codes(impl->db, 1);
    sqlite3_busy_handler(impl->db, busyWait, nullptr);
    return impl;
}

// Checks that an existing file is one of our stores, only reading it.
void validateStore(StudyStore::Impl &impl)
{
    Stmt app(impl, "PRAGMA application_id");
    app.step();
    const auto appId = static_cast<std::int32_t>(app.i64(0));
    Stmt ver(impl, "PRAGMA user_version");
    ver.step();
    const int version = ver.i32(0);
    std::vector<std::string> tables;
    Stmt t(impl, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    while (t.step())
        tables.push_back(t.text(0));
    if (appId != kApplicationId) {
        if (tables.empty())
            throw InputError(fileMessage(impl.path, "an empty SQLite database, not a BraggNAC "
                                                    "study store"));
        std::string list;
        for (std::size_t i = 0; i < tables.size() && i < 6; ++i)
            list += (i ? ", " : "") + tables[i];
        if (tables.size() > 6)
            list += ", ...";
        throw InputError(fileMessage(impl.path, "not a BraggNAC study store (an SQLite database "
                                                "of another application, with tables "
                                                + list + "); it was not modified"));
    }
    if (version > kSchemaVersion)
        throw InputError(fileMessage(impl.path, "study store schema version "
                                                    + std::to_string(version)
                                                    + " is newer than this braggnac reads ("
                                                    + std::to_string(kSchemaVersion)
                                                    + "): use a newer braggnac"));
    if (version < 1)
        throw InputError(fileMessage(impl.path, "study store schema version "
                                                    + std::to_string(version) + " is unknown"));
    std::vector<const char *> needed{"meta", "study", "objectives", "trials", "trial_blobs", "epochs"};
    if (version >= 2) {
        needed.push_back("compress_runs");
        needed.push_back("compress_records");
    }
    for (const char *need : needed)
        if (std::find(tables.begin(), tables.end(), need) == tables.end())
            throw InputError(fileMessage(impl.path, std::string("damaged study store: table '")
                                                        + need + "' is missing"));
    impl.schema = version;
}

// Brings a store opened read-write to kSchemaVersion, in one transaction (so a crash leaves the
// old version intact; another process migrating at the same time waits on the lock and then
// finds the new version).
void migrateStore(StudyStore::Impl &impl)
{
    if (impl.readOnly || impl.schema >= kSchemaVersion)
        return;
    impl.exec("BEGIN IMMEDIATE", "migrating the study store");
    try {
        int version = 0;
        {
            Stmt ver(impl, "PRAGMA user_version");
            ver.step();
            version = ver.i32(0);
        }
        if (version < 2)
            impl.exec(kCompressSchemaSql, "migrating the study store to schema version 2");
        if (version < kSchemaVersion) {
            impl.exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str(),
                      "setting user_version");
            Stmt m(impl, "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)");
            m.bind(1, std::to_string(kSchemaVersion)).run();
        }
        impl.exec("COMMIT", "migrating the study store");
    } catch (...) {
        sqlite3_exec(impl.db, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
    impl.schema = kSchemaVersion;
}

void configure(StudyStore::Impl &impl)
{
    if (!impl.readOnly) {
        Stmt wal(impl, "PRAGMA journal_mode = WAL");
        wal.step();
        if (wal.text(0) != "wal")
            throw Error(fileMessage(impl.path, "cannot switch the study store to WAL mode (the "
                                               "file system may not support shared memory)"));
        impl.exec("PRAGMA synchronous = NORMAL", "setting synchronous=NORMAL");
    }
    impl.exec("PRAGMA foreign_keys = ON", "enabling foreign keys");
    Stmt n(impl, "SELECT COUNT(*) FROM objectives");
    n.step();
    impl.objectiveCount = n.i32(0);
}

void validateNewStudy(const std::string &path, const StudyInfo &s)
{
    if (s.name.empty())
        throw InputError(fileMessage(path, "study name is empty"));
    if (s.objectives.empty())
        throw InputError(fileMessage(path, "a study needs at least one objective"));
    for (std::size_t i = 0; i < s.objectives.size(); ++i) {
        if (s.objectives[i].name.empty())
            throw InputError(fileMessage(path, "objective " + std::to_string(i) + " has no name"));
        for (std::size_t k = 0; k < i; ++k)
            if (s.objectives[k].name == s.objectives[i].name)
                throw InputError(fileMessage(path, "objective '" + s.objectives[i].name
                                                       + "' is listed twice"));
    }
}

// Writes a complete, closed store at temp (rollback journal; the final file gets WAL on open).
void writeNewStore(const std::string &temp, const StudyInfo &s)
{
    auto impl = connect(temp, false, true);
    impl->exec(("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str(),
               "setting application_id");
    impl->exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str(),
               "setting user_version");
    impl->exec("BEGIN IMMEDIATE", "creating the study store");
    impl->exec(kSchemaSql, "creating the tables");
    impl->exec(kCompressSchemaSql, "creating the compress tables");
    {
        Stmt m(*impl, "INSERT INTO meta(key, value) VALUES ('application', 'braggnac-study'), "
                      "('schema_version', ?), ('overrides', '[]')");
        m.bind(1, std::to_string(kSchemaVersion)).run();
    }
    {
        Stmt st(*impl, "INSERT INTO study(id, name, kind, created, space_json, space_hash, "
                       "dataset_path, dataset_size, dataset_hash, options_json, seed) "
                       "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        st.bind(1, s.name)
            .bind(2, studyKindName(s.kind))
            .bind(3, s.created > 0 ? s.created : nowSeconds())
            .bind(4, s.space.dump())
            .bind(5, s.spaceHash.empty() ? canonicalJsonHash(s.space) : s.spaceHash)
            .bind(6, s.dataset.path)
            .bind(7, s.dataset.size)
            .bind(8, s.dataset.contentHash)
            .bind(9, s.options.dump())
            .bind(10, static_cast<std::int64_t>(s.seed))
            .run();
    }
    for (std::size_t i = 0; i < s.objectives.size(); ++i) {
        Stmt o(*impl, "INSERT INTO objectives(idx, name, direction) VALUES (?, ?, ?)");
        o.bind(1, static_cast<int>(i))
            .bind(2, s.objectives[i].name)
            .bind(3, s.objectives[i].minimize ? "minimize" : "maximize")
            .run();
    }
    impl->exec("COMMIT", "creating the study store");
}

} // namespace

// ---------------------------------------------------------------------------------------------

StudyStore::StudyStore(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
StudyStore::StudyStore(StudyStore &&) noexcept = default;
StudyStore &StudyStore::operator=(StudyStore &&) noexcept = default;
StudyStore::~StudyStore() = default;

int StudyStore::schemaVersion()
{
    return kSchemaVersion;
}

StudyStore StudyStore::open(const std::string &path, Mode mode)
{
    std::error_code ec;
    if (!fs::exists(path, ec))
        throw InputError(fileMessage(path, "no such study store"));
    if (fs::is_directory(path, ec))
        throw InputError(fileMessage(path, "is a folder, not a study store"));
    checkSqliteHeader(path);
    auto impl = connect(path, mode == Mode::ReadOnly, false);
    validateStore(*impl);
    configure(*impl);
    migrateStore(*impl);
    return StudyStore(std::move(impl));
}

StudyStore StudyStore::createOrOpen(const std::string &path, const StudyInfo &study, bool force)
{
    validateNewStudy(path, study);
    std::error_code ec;
    bool created = false;
    if (!fs::exists(path, ec)) {
        const fs::path parent = fs::path(path).parent_path();
        if (!parent.empty() && !fs::is_directory(parent, ec))
            throw InputError(fileMessage(path, "folder '" + parent.string() + "' does not exist"));
        const std::string temp = temporaryPathFor(path); // stale ones are cleaned by AtomicOutput
        try {
            writeNewStore(temp, study);
        } catch (...) {
            fs::remove(temp, ec);
            fs::remove(temp + "-journal", ec);
            throw;
        }
        // link() never replaces: when another process created the study meanwhile, use theirs.
        // File systems without hard links get rename() after a last existence check.
        if (::link(temp.c_str(), path.c_str()) == 0) {
            created = true;
        } else if (errno == EPERM || errno == ENOTSUP || errno == EOPNOTSUPP || errno == EMLINK) {
            if (!fs::exists(path, ec) && ::rename(temp.c_str(), path.c_str()) == 0)
                created = true;
        } else if (errno != EEXIST) {
            const std::string why = std::strerror(errno);
            fs::remove(temp, ec);
            throw Error(fileMessage(path, "cannot create the study store: " + why));
        }
        fs::remove(temp, ec);
    }
    StudyStore store = open(path, Mode::ReadWrite);
    store.m_impl->created = created;
    if (created)
        return store;

    // Resume: the study must be the same one.
    Impl &impl = *store.m_impl;
    const StudyInfo old = readStudy(impl);
    if (old.kind != study.kind)
        throw InputError(fileMessage(path, std::string("is a ") + studyKindName(old.kind)
                                               + " study, not a " + studyKindName(study.kind)
                                               + " study"));
    if (old.objectives != study.objectives)
        throw InputError(fileMessage(path, "the study's objectives are "
                                               + objectivesText(old.objectives) + ", not "
                                               + objectivesText(study.objectives)));
    const std::string newSpaceHash =
        study.spaceHash.empty() ? canonicalJsonHash(study.space) : study.spaceHash;
    const bool datasetDiffers = old.dataset.size != study.dataset.size
        || old.dataset.contentHash != study.dataset.contentHash;
    const bool spaceDiffers = old.spaceHash != newSpaceHash;
    if ((datasetDiffers || spaceDiffers) && !force) {
        std::string what;
        if (datasetDiffers)
            what = "was made with dataset " + datasetText(old.dataset) + ", not "
                + datasetText(study.dataset);
        if (spaceDiffers)
            what += std::string(what.empty() ? "was made with" : "; and with")
                + " search space hash " + old.spaceHash + ", not " + newSpaceHash;
        throw InputError(fileMessage(path, what + ": resuming is refused unless forced"));
    }
    if (datasetDiffers || spaceDiffers) {
        std::lock_guard lock(impl.mutex);
        WriteTx tx(impl);
        json overrides;
        {
            Stmt m(impl, "SELECT value FROM meta WHERE key = 'overrides'");
            overrides = m.step() ? m.jsonAt(0, "meta.overrides") : json::array();
        }
        const double t = nowSeconds();
        if (datasetDiffers) {
            overrides.push_back({{"time", t}, {"field", "dataset"}, {"old", old.dataset.toJson()},
                                 {"new", study.dataset.toJson()}});
            Stmt u(impl, "UPDATE study SET dataset_path = ?, dataset_size = ?, dataset_hash = ?");
            u.bind(1, study.dataset.path).bind(2, study.dataset.size).bind(3, study.dataset.contentHash).run();
        }
        if (spaceDiffers) {
            overrides.push_back({{"time", t}, {"field", "space"},
                                 {"old", {{"hash", old.spaceHash}, {"space", old.space}}},
                                 {"new", {{"hash", newSpaceHash}, {"space", study.space}}}});
            Stmt u(impl, "UPDATE study SET space_json = ?, space_hash = ?");
            u.bind(1, study.space.dump()).bind(2, newSpaceHash).run();
        }
        Stmt m(impl, "INSERT OR REPLACE INTO meta(key, value) VALUES ('overrides', ?)");
        m.bind(1, overrides.dump()).run();
        tx.commit();
    }
    return store;
}

const std::string &StudyStore::path() const
{
    return m_impl->path;
}

std::string StudyStore::folder() const
{
    const fs::path parent = fs::path(m_impl->path).parent_path();
    return parent.empty() ? std::string(".") : parent.string();
}

std::string StudyStore::resolve(const std::string &relative) const
{
    if (relative.empty() || fs::path(relative).is_absolute())
        return relative;
    return (fs::path(folder()) / relative).string();
}

std::string StudyStore::suggestedModelPath(int number) const
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "trial-%05d", number);
    return fs::path(m_impl->path).stem().string() + ".models/" + buf;
}

bool StudyStore::created() const
{
    return m_impl->created;
}

bool StudyStore::readOnly() const
{
    return m_impl->readOnly;
}

StudyInfo StudyStore::info() const
{
    std::lock_guard lock(m_impl->mutex);
    ReadTx tx(*m_impl);
    return readStudy(*m_impl);
}

json StudyStore::overrides() const
{
    std::lock_guard lock(m_impl->mutex);
    Stmt m(*m_impl, "SELECT value FROM meta WHERE key = 'overrides'");
    return m.step() ? m.jsonAt(0, "meta.overrides") : json::array();
}

namespace {

EnqueueResult enqueueOne(const StudyStore::Impl &impl, const TrialRequest &r, std::int64_t seq,
                         double now)
{
    if (r.specHash.empty())
        throw InputError(fileMessage(impl.path, "enqueue: the spec hash is empty"));
    const json hyper = r.hyperParams.is_null() ? json::object() : r.hyperParams;
    if (!hyper.is_object())
        throw InputError(fileMessage(impl.path, "enqueue: hyper-parameters must be a JSON object"));
    const std::string hyperHash = canonicalJsonHash(hyper);
    {
        Stmt s(impl, "SELECT id, number, state FROM trials WHERE spec_hash = ? AND hparams_hash = ?");
        s.bind(1, r.specHash).bind(2, hyperHash);
        if (s.step())
            return {s.i64(0), s.i32(1), false, trialStateFromName(s.text(2), "trials.state")};
    }
    int number = 0;
    {
        Stmt s(impl, "SELECT COALESCE(MAX(number) + 1, 0) FROM trials");
        s.step();
        number = s.i32(0);
    }
    Stmt ins(impl, "INSERT INTO trials(number, state, spec_hash, hparams_hash, budget, generation, "
                   "queued_at, updated_seq) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?)");
    ins.bind(1, number)
        .bind(2, r.specHash)
        .bind(3, hyperHash)
        .bind(4, r.budget)
        .bind(5, r.generation)
        .bind(6, now)
        .bind(7, seq)
        .run();
    const std::int64_t id = sqlite3_last_insert_rowid(impl.db);
    Stmt blob(impl, "INSERT INTO trial_blobs(trial_id, spec_json, hparams_json) VALUES (?, ?, ?)");
    blob.bind(1, id).bind(2, r.spec.dump()).bind(3, hyper.dump()).run();
    return {id, number, true, TrialState::Queued};
}

TrialRecord readTrial(const StudyStore::Impl &impl, const std::string &where, std::int64_t key)
{
    Stmt s(impl, selectTrials(true, where));
    s.bind(1, key);
    if (!s.step())
        throw InputError(fileMessage(impl.path, "no such trial"));
    TrialRecord t = readTrialRow(s, true, impl.path);
    t.epochs = readEpochs(impl, t.id);
    return t;
}

TrialRecord claimLocked(const StudyStore::Impl &impl, std::int64_t id, const std::string &host,
                        int rank)
{
    Stmt u(impl, "UPDATE trials SET state = 'running', host = ?, rank = ?, started_at = ?, "
                 "finished_at = NULL, attempts = attempts + 1, error = NULL, updated_seq = ? "
                 "WHERE id = ?");
    u.bind(1, host).bind(2, rank).bind(3, nowSeconds()).bind(4, nextSeq(impl)).bind(5, id).run();
    return readTrial(impl, "WHERE id = ?", id);
}

void clearRun(const StudyStore::Impl &impl, std::int64_t id)
{
    Stmt d(impl, "DELETE FROM epochs WHERE trial_id = ?");
    d.bind(1, id).run();
    Stmt u(impl, "UPDATE trials SET fidelity = 0, values_json = NULL, seconds = NULL, "
                 "model_path = NULL WHERE id = ?");
    u.bind(1, id).run();
    Stmt b(impl, "UPDATE trial_blobs SET metrics_json = NULL, cost_json = NULL, "
                 "history_json = NULL WHERE trial_id = ?");
    b.bind(1, id).run();
}

void finish(const StudyStore::Impl &impl, std::int64_t id, const char *state,
            const TrialOutcome &o, const std::string &reason)
{
    Stmt u(impl, "UPDATE trials SET state = ?, values_json = ?, fidelity = MAX(fidelity, ?), "
                 "seconds = ?, finished_at = ?, model_path = ?, error = ?, updated_seq = ? "
                 "WHERE id = ?");
    u.bind(1, state);
    if (o.values.empty())
        u.bindNull(2);
    else
        u.bind(2, valuesToJson(o.values).dump());
    u.bind(3, o.fidelity).bind(4, o.seconds).bind(5, nowSeconds());
    if (o.modelPath.empty())
        u.bindNull(6);
    else
        u.bind(6, o.modelPath);
    if (reason.empty())
        u.bindNull(7);
    else
        u.bind(7, reason);
    u.bind(8, nextSeq(impl)).bind(9, id).run();
    Stmt b(impl, "UPDATE trial_blobs SET metrics_json = ?, cost_json = ?, history_json = ? "
                 "WHERE trial_id = ?");
    b.bindJson(1, o.metrics).bindJson(2, o.cost).bindJson(3, o.history).bind(4, id).run();
    if (o.rank >= 0) {
        Stmt h(impl, "UPDATE trials SET host = ?, rank = ? WHERE id = ?");
        h.bind(1, o.host).bind(2, o.rank).bind(3, id).run();
    }
}

} // namespace

EnqueueResult StudyStore::enqueue(const TrialRequest &request)
{
    std::lock_guard lock(m_impl->mutex);
    WriteTx tx(*m_impl);
    const EnqueueResult r = enqueueOne(*m_impl, request, nextSeq(*m_impl), nowSeconds());
    tx.commit();
    return r;
}

std::vector<EnqueueResult> StudyStore::enqueueAll(const std::vector<TrialRequest> &requests)
{
    std::lock_guard lock(m_impl->mutex);
    WriteTx tx(*m_impl);
    const std::int64_t seq = nextSeq(*m_impl);
    const double now = nowSeconds();
    std::vector<EnqueueResult> out;
    out.reserve(requests.size());
    for (const auto &r : requests)
        out.push_back(enqueueOne(*m_impl, r, seq, now));
    tx.commit();
    return out;
}

std::optional<TrialRecord> StudyStore::claimNext(const std::string &host, int rank)
{
    std::lock_guard lock(m_impl->mutex);
    WriteTx tx(*m_impl);
    std::int64_t id = 0;
    {
        Stmt s(*m_impl, "SELECT id FROM trials WHERE state = 'queued' ORDER BY number LIMIT 1");
        if (!s.step())
            return std::nullopt;
        id = s.i64(0);
    }
    TrialRecord t = claimLocked(*m_impl, id, host, rank);
    tx.commit();
    return t;
}

TrialRecord StudyStore::claim(std::int64_t id, const std::string &host, int rank)
{
    std::lock_guard lock(m_impl->mutex);
    WriteTx tx(*m_impl);
    requireState(*m_impl, id, {TrialState::Queued}, "claim it");
    TrialRecord t = claimLocked(*m_impl, id, host, rank);
    tx.commit();
    return t;
}

void StudyStore::reportEpoch(std::int64_t id, int epoch, double value, const json &metrics)
{
    std::lock_guard lock(m_impl->mutex);
    WriteTx tx(*m_impl);
    requireState(*m_impl, id, {TrialState::Running}, "report an epoch");
    if (epoch < 1)
        throw InputError(fileMessage(m_impl->path, "trial id " + std::to_string(id) + ": epoch "
                                                       + std::to_string(epoch) + " (must be >= 1)"));
    {
        Stmt s(*m_impl, "INSERT OR REPLACE INTO epochs(trial_id, epoch, value, metrics_json) "
                        "VALUES (?, ?, ?, ?)");
        s.bind(1, id).bind(2, epoch);
        if (std::isnan(value))
            s.bindNull(3);
        else
            s.bind(3, value);
        s.bindJson(4, metrics).run();
    }
    Stmt u(*m_impl, "UPDATE trials SET fidelity = MAX(fidelity, ?), updated_seq = ? WHERE id = ?");
    u.bind(1, epoch).bind(2, nextSeq(*m_impl)).bind(3, id).run();
    tx.commit();
}

void StudyStore::complete(std::int64_t id, const TrialOutcome &outcome)
{
    std::lock_guard lock(m_impl->mutex);
    WriteTx tx(*m_impl);
    requireState(*m_impl, id, {TrialState::Running}, "complete it");
    checkValues(*m_impl, id, outcome.values, false);
    finish(*m_impl, id, "complete", outcome, {});
    tx.commit();
}

void StudyStore::prune(std::int64_t id, const TrialOutcome &outcome, const std::string &reason)
{
    std::lock_guard lock(m_impl->mutex);
    WriteTx tx(*m_impl);
    requireState(*m_impl, id, {TrialState::Running}, "prune it");
    checkValues(*m_impl, id, outcome.values, true);
    finish(*m_impl, id, "pruned", outcome, reason);
    tx.commit();
}

void StudyStore::fail(std::int64_t id, const std::string &reason, const std::string &host, int rank)
{
    std::lock_guard lock(m_impl->mutex);
    WriteTx tx(*m_impl);
    requireState(*m_impl, id, {TrialState::Queued, TrialState::Running}, "fail it");
    Stmt u(*m_impl, "UPDATE trials SET state = 'failed', error = ?, finished_at = ?, "
                    "updated_seq = ? WHERE id = ?");
    u.bind(1, reason.empty() ? std::string("failed") : reason)
        .bind(2, nowSeconds())
        .bind(3, nextSeq(*m_impl))
        .bind(4, id)
        .run();
    if (rank >= 0) {
        Stmt h(*m_impl, "UPDATE trials SET host = ?, rank = ? WHERE id = ?");
        h.bind(1, host).bind(2, rank).bind(3, id).run();
    }
    tx.commit();
}

void StudyStore::requeue(std::int64_t id, int budget)
{
    std::lock_guard lock(m_impl->mutex);
    WriteTx tx(*m_impl);
    const TrialStateRow r = requireState(
        *m_impl, id, {TrialState::Running, TrialState::Complete, TrialState::Failed, TrialState::Pruned},
        "requeue it");
    if (r.state == TrialState::Running || r.state == TrialState::Failed)
        clearRun(*m_impl, id);
    Stmt u(*m_impl, "UPDATE trials SET state = 'queued', budget = CASE WHEN ? > 0 THEN ? ELSE "
                    "budget END, host = NULL, rank = -1, started_at = NULL, finished_at = NULL, "
                    "error = NULL, queued_at = ?, updated_seq = ? WHERE id = ?");
    u.bind(1, budget).bind(2, budget).bind(3, nowSeconds()).bind(4, nextSeq(*m_impl)).bind(5, id).run();
    tx.commit();
}

int StudyStore::recoverAfterCrash()
{
    std::lock_guard lock(m_impl->mutex);
    WriteTx tx(*m_impl);
    std::vector<std::int64_t> ids;
    {
        Stmt s(*m_impl, "SELECT id FROM trials WHERE state = 'running'");
        while (s.step())
            ids.push_back(s.i64(0));
    }
    if (ids.empty())
        return 0;
    const std::int64_t seq = nextSeq(*m_impl);
    const double now = nowSeconds();
    for (std::int64_t id : ids) {
        clearRun(*m_impl, id);
        Stmt u(*m_impl, "UPDATE trials SET state = 'queued', host = NULL, rank = -1, "
                        "started_at = NULL, queued_at = ?, updated_seq = ? WHERE id = ?");
        u.bind(1, now).bind(2, seq).bind(3, id).run();
    }
    tx.commit();
    return static_cast<int>(ids.size());
}

std::optional<TrialRecord> StudyStore::trial(std::int64_t id) const
{
    std::lock_guard lock(m_impl->mutex);
    ReadTx tx(*m_impl);
    Stmt s(*m_impl, selectTrials(true, "WHERE id = ?"));
    s.bind(1, id);
    if (!s.step())
        return std::nullopt;
    TrialRecord t = readTrialRow(s, true, m_impl->path);
    t.epochs = readEpochs(*m_impl, t.id);
    return t;
}

std::optional<TrialRecord> StudyStore::trialByNumber(int number) const
{
    std::lock_guard lock(m_impl->mutex);
    ReadTx tx(*m_impl);
    Stmt s(*m_impl, selectTrials(true, "WHERE number = ?"));
    s.bind(1, number);
    if (!s.step())
        return std::nullopt;
    TrialRecord t = readTrialRow(s, true, m_impl->path);
    t.epochs = readEpochs(*m_impl, t.id);
    return t;
}

std::vector<TrialRecord> StudyStore::listTrials(const ListOptions &options) const
{
    std::lock_guard lock(m_impl->mutex);
    ReadTx tx(*m_impl);
    Stmt s(*m_impl, selectTrials(options.withBlobs,
                                 options.state ? "WHERE state = ? ORDER BY number" : "ORDER BY number",
                                 options.withHistory));
    if (options.state)
        s.bind(1, trialStateName(*options.state));
    std::vector<TrialRecord> out;
    while (s.step())
        out.push_back(readTrialRow(s, options.withBlobs, m_impl->path));
    if (options.withEpochs)
        fillEpochs(*m_impl, out);
    return out;
}

std::vector<TrialPoint> StudyStore::points(std::optional<TrialState> state) const
{
    std::lock_guard lock(m_impl->mutex);
    Stmt s(*m_impl, state ? "SELECT id, number, state, fidelity, values_json FROM trials "
                            "WHERE state = ? ORDER BY number"
                          : "SELECT id, number, state, fidelity, values_json FROM trials "
                            "ORDER BY number");
    if (state)
        s.bind(1, trialStateName(*state));
    std::vector<TrialPoint> out;
    while (s.step()) {
        TrialPoint p;
        p.id = s.i64(0);
        p.number = s.i32(1);
        p.state = state ? *state : trialStateFromName(s.text(2), fileMessage(m_impl->path, "trials.state"));
        p.fidelity = s.i32(3);
        if (!s.isNull(4) && !parseValuesFast(s.text(4), p.values))
            p.values = valuesFromJson(s.jsonAt(4, "values_json"), fileMessage(m_impl->path, "trials.values_json"));
        out.push_back(std::move(p));
    }
    return out;
}

std::vector<TrialRecord> StudyStore::trialsSince(std::int64_t seq, const ListOptions &options) const
{
    std::lock_guard lock(m_impl->mutex);
    ReadTx tx(*m_impl);
    Stmt s(*m_impl, selectTrials(options.withBlobs,
                                 options.state ? "WHERE updated_seq > ? AND state = ? ORDER BY updated_seq, number"
                                               : "WHERE updated_seq > ? ORDER BY updated_seq, number",
                                 options.withHistory));
    s.bind(1, seq);
    if (options.state)
        s.bind(2, trialStateName(*options.state));
    std::vector<TrialRecord> out;
    while (s.step())
        out.push_back(readTrialRow(s, options.withBlobs, m_impl->path));
    if (options.withEpochs)
        for (auto &t : out)
            t.epochs = readEpochs(*m_impl, t.id);
    return out;
}

std::int64_t StudyStore::changeSeq() const
{
    std::lock_guard lock(m_impl->mutex);
    Stmt s(*m_impl, "SELECT COALESCE(MAX(updated_seq), 0) FROM trials");
    s.step();
    return s.i64(0);
}

StateCounts StudyStore::counts() const
{
    std::lock_guard lock(m_impl->mutex);
    Stmt s(*m_impl, "SELECT state, COUNT(*) FROM trials GROUP BY state");
    StateCounts c;
    while (s.step()) {
        const int n = s.i32(1);
        switch (trialStateFromName(s.text(0), fileMessage(m_impl->path, "trials.state"))) {
        case TrialState::Queued: c.queued = n; break;
        case TrialState::Running: c.running = n; break;
        case TrialState::Complete: c.complete = n; break;
        case TrialState::Failed: c.failed = n; break;
        case TrialState::Pruned: c.pruned = n; break;
        }
    }
    return c;
}

std::vector<EpochValue> StudyStore::epochs(std::int64_t id) const
{
    std::lock_guard lock(m_impl->mutex);
    return readEpochs(*m_impl, id);
}

std::vector<double> StudyStore::valuesAtEpoch(int epoch) const
{
    std::lock_guard lock(m_impl->mutex);
    Stmt s(*m_impl, "SELECT e.value FROM epochs e JOIN trials t ON t.id = e.trial_id "
                    "WHERE e.epoch = ? AND e.value IS NOT NULL ORDER BY t.number");
    s.bind(1, epoch);
    std::vector<double> out;
    while (s.step())
        out.push_back(s.real(0));
    return out;
}

// --- compress records -------------------------------------------------------------------------

namespace {

void requireCompressTables(const StudyStore::Impl &impl)
{
    if (impl.schema < 2)
        throw Error(fileMessage(impl.path, "study store schema version " + std::to_string(impl.schema)
                                               + " has no compress records (open it read-write once to "
                                                 "migrate it)"));
}

// A finite value as a REAL, NaN / inf as NULL (an empty split's distance).
Stmt &bindFinite(Stmt &s, int i, double v)
{
    return std::isfinite(v) ? s.bind(i, v) : s.bindNull(i);
}

// The record count of compress run `run`, which must exist and not be finished (`finishedText`
// completes the error "compress run N<finishedText>"). Inside the caller's write transaction.
int openRunRecordCount(const StudyStore::Impl &impl, std::int64_t run, const char *finishedText)
{
    Stmt q(impl, "SELECT finished, (SELECT COUNT(*) FROM compress_records WHERE run_id = ?1) "
                 "FROM compress_runs WHERE id = ?1");
    q.bind(1, run);
    if (!q.step())
        throw InputError(fileMessage(impl.path, "compress run " + std::to_string(run) + " does not exist"));
    if (q.i32(0) != 0)
        throw InputError(fileMessage(impl.path, "compress run " + std::to_string(run) + finishedText));
    return q.i32(1);
}

} // namespace

std::int64_t StudyStore::beginCompressRun(const CompressRunInfo &run)
{
    std::lock_guard lock(m_impl->mutex);
    Impl &impl = *m_impl;
    requireCompressTables(impl);
    WriteTx tx(impl);
    Stmt s(impl, "INSERT INTO compress_runs(created, source_model, source_trial, dataset_path, "
                 "dataset_size, dataset_hash, options_json) VALUES (?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, run.created > 0 ? run.created : nowSeconds())
        .bind(2, run.sourceModel)
        .bind(3, run.sourceTrial)
        .bind(4, run.dataset.path)
        .bind(5, run.dataset.size)
        .bind(6, run.dataset.contentHash)
        .bind(7, run.options.is_null() ? std::string("null") : run.options.dump())
        .run();
    const std::int64_t id = sqlite3_last_insert_rowid(impl.db);
    tx.commit();
    return id;
}

void StudyStore::addCompressRecord(std::int64_t run, const CompressRecordRow &r)
{
    std::lock_guard lock(m_impl->mutex);
    Impl &impl = *m_impl;
    requireCompressTables(impl);
    WriteTx tx(impl);
    const int count = openRunRecordCount(impl, run, " is finished: no more records");
    {
        Stmt q(impl, "SELECT COUNT(*) FROM compress_records WHERE run_id = ? AND bits = ? AND round = ?");
        q.bind(1, run).bind(2, r.bits).bind(3, r.round);
        q.step();
        if (q.i32(0) != 0)
            throw InputError(fileMessage(impl.path, "compress run " + std::to_string(run) + " already has a record for "
                                                        + std::to_string(r.bits) + " bits, round "
                                                        + std::to_string(r.round)));
    }
    Stmt s(impl, "INSERT INTO compress_records(run_id, idx, bits, round, sparsity, bops, params, "
                 "validation, test, model_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, run).bind(2, count).bind(3, r.bits).bind(4, r.round).bind(5, r.sparsity).bind(6, r.bops)
        .bind(7, r.params);
    bindFinite(s, 8, r.validation);
    bindFinite(s, 9, r.test);
    if (r.modelPath.empty())
        s.bindNull(10);
    else
        s.bind(10, r.modelPath);
    s.run();
    tx.commit();
}

void StudyStore::finishCompressRun(std::int64_t run, int chosen, const std::string &modelPath)
{
    std::lock_guard lock(m_impl->mutex);
    Impl &impl = *m_impl;
    requireCompressTables(impl);
    WriteTx tx(impl);
    const int count = openRunRecordCount(impl, run, " is already finished");
    if (chosen < 0 || chosen >= count)
        throw InputError(fileMessage(impl.path, "compress run " + std::to_string(run) + ": chosen record "
                                                    + std::to_string(chosen) + " out of range (it has "
                                                    + std::to_string(count) + " records)"));
    {
        Stmt u(impl, "UPDATE compress_runs SET finished = 1, chosen = ?, model_path = ? WHERE id = ?");
        u.bind(1, chosen);
        if (modelPath.empty())
            u.bindNull(2);
        else
            u.bind(2, modelPath);
        u.bind(3, run).run();
    }
    if (!modelPath.empty()) {
        Stmt u(impl, "UPDATE compress_records SET model_path = ? WHERE run_id = ? AND idx = ?");
        u.bind(1, modelPath).bind(2, run).bind(3, chosen).run();
    }
    tx.commit();
}

std::vector<CompressRun> StudyStore::compressRuns() const
{
    std::lock_guard lock(m_impl->mutex);
    const Impl &impl = *m_impl;
    std::vector<CompressRun> runs;
    if (impl.schema < 2)
        return runs; // a version-1 file opened read-only: no compress tables yet
    ReadTx tx(impl);
    {
        Stmt s(impl, "SELECT id, created, source_model, source_trial, dataset_path, dataset_size, dataset_hash, "
                     "options_json, finished, chosen, model_path FROM compress_runs ORDER BY id");
        while (s.step()) {
            CompressRun r;
            r.info.id = s.i64(0);
            r.info.created = s.time(1);
            r.info.sourceModel = s.text(2);
            r.info.sourceTrial = s.i32(3);
            r.info.dataset.path = s.text(4);
            r.info.dataset.size = s.i64(5);
            r.info.dataset.contentHash = s.text(6);
            r.info.options = s.jsonAt(7, "compress_runs.options_json");
            r.info.finished = s.i32(8) != 0;
            r.info.chosen = s.i32(9);
            r.info.modelPath = s.text(10);
            runs.push_back(std::move(r));
        }
    }
    Stmt s(impl, "SELECT run_id, bits, round, sparsity, bops, params, validation, test, model_path "
                 "FROM compress_records ORDER BY run_id, idx");
    std::size_t k = 0;
    while (s.step()) {
        const std::int64_t run = s.i64(0);
        while (k < runs.size() && runs[k].info.id < run)
            ++k;
        if (k == runs.size() || runs[k].info.id != run)
            throw InputError(fileMessage(impl.path, "damaged study store: a compress record of run "
                                                        + std::to_string(run) + ", which does not exist"));
        CompressRecordRow r;
        r.bits = s.i32(1);
        r.round = s.i32(2);
        r.sparsity = s.real(3);
        r.bops = s.real(4);
        r.params = s.i64(5);
        r.validation = s.real(6);
        r.test = s.real(7);
        r.modelPath = s.text(8);
        runs[k].records.push_back(std::move(r));
    }
    return runs;
}

} // namespace braggnac::core
