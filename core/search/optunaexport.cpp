#include "core/search/optunaexport.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <set>
#include <unordered_map>

#include <sqlite3.h>

#include "core/common/atomicfile.h"
#include "core/common/error.h"
#include "core/search/space.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace braggnac::core {

namespace {

// The tables exactly as Optuna 3.1 (SQLAlchemy 1.4) creates them in SQLite.
const char *kOptunaSchema = R"sql(
CREATE TABLE studies (
	study_id INTEGER NOT NULL,
	study_name VARCHAR(512) NOT NULL,
	PRIMARY KEY (study_id)
);
CREATE UNIQUE INDEX ix_studies_study_name ON studies (study_name);
CREATE TABLE version_info (
	version_info_id INTEGER NOT NULL,
	schema_version INTEGER,
	library_version VARCHAR(256),
	PRIMARY KEY (version_info_id),
	CHECK (version_info_id=1)
);
CREATE TABLE study_directions (
	study_direction_id INTEGER NOT NULL,
	direction VARCHAR(8) NOT NULL,
	study_id INTEGER NOT NULL,
	objective INTEGER NOT NULL,
	PRIMARY KEY (study_direction_id),
	UNIQUE (study_id, objective),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE study_user_attributes (
	study_user_attribute_id INTEGER NOT NULL,
	study_id INTEGER,
	"key" VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (study_user_attribute_id),
	UNIQUE (study_id, "key"),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE study_system_attributes (
	study_system_attribute_id INTEGER NOT NULL,
	study_id INTEGER,
	"key" VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (study_system_attribute_id),
	UNIQUE (study_id, "key"),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE trials (
	trial_id INTEGER NOT NULL,
	number INTEGER,
	study_id INTEGER,
	state VARCHAR(8) NOT NULL,
	datetime_start DATETIME,
	datetime_complete DATETIME,
	PRIMARY KEY (trial_id),
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE trial_user_attributes (
	trial_user_attribute_id INTEGER NOT NULL,
	trial_id INTEGER,
	"key" VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (trial_user_attribute_id),
	UNIQUE (trial_id, "key"),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_system_attributes (
	trial_system_attribute_id INTEGER NOT NULL,
	trial_id INTEGER,
	"key" VARCHAR(512),
	value_json TEXT,
	PRIMARY KEY (trial_system_attribute_id),
	UNIQUE (trial_id, "key"),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_params (
	param_id INTEGER NOT NULL,
	trial_id INTEGER,
	param_name VARCHAR(512),
	param_value FLOAT,
	distribution_json TEXT,
	PRIMARY KEY (param_id),
	UNIQUE (trial_id, param_name),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_values (
	trial_value_id INTEGER NOT NULL,
	trial_id INTEGER NOT NULL,
	objective INTEGER NOT NULL,
	value FLOAT,
	value_type VARCHAR(7) NOT NULL,
	PRIMARY KEY (trial_value_id),
	UNIQUE (trial_id, objective),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_intermediate_values (
	trial_intermediate_value_id INTEGER NOT NULL,
	trial_id INTEGER NOT NULL,
	step INTEGER NOT NULL,
	intermediate_value FLOAT,
	intermediate_value_type VARCHAR(7) NOT NULL,
	PRIMARY KEY (trial_intermediate_value_id),
	UNIQUE (trial_id, step),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_heartbeats (
	trial_heartbeat_id INTEGER NOT NULL,
	trial_id INTEGER NOT NULL,
	heartbeat DATETIME NOT NULL,
	PRIMARY KEY (trial_heartbeat_id),
	UNIQUE (trial_id),
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL,
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO version_info (version_info_id, schema_version, library_version) VALUES (1, 12, '3.1.0');
INSERT INTO alembic_version (version_num) VALUES ('v3.0.0.d');
)sql";

// Optuna stores naive local datetimes (datetime.now()) as "YYYY-MM-DD HH:MM:SS.ffffff".
std::string optunaDatetime(double unixSeconds)
{
    double whole = std::floor(unixSeconds);
    long micros = std::lround((unixSeconds - whole) * 1e6);
    if (micros >= 1000000) {
        whole += 1;
        micros -= 1000000;
    }
    const std::time_t t = static_cast<std::time_t>(whole);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06ld", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
    return buf;
}

const char *optunaState(TrialState s)
{
    switch (s) {
    case TrialState::Queued: return "WAITING";
    case TrialState::Running: return "RUNNING";
    case TrialState::Complete: return "COMPLETE";
    case TrialState::Failed: return "FAIL";
    case TrialState::Pruned: return "PRUNED";
    }
    return "FAIL";
}

class Db {
public:
    explicit Db(const std::string &path) : m_path(path)
    {
        if (sqlite3_open_v2(path.c_str(), &m_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            nullptr) != SQLITE_OK)
            fail("cannot create");
    }
    ~Db() { sqlite3_close_v2(m_db); }
    [[noreturn]] void fail(const std::string &what) const
    {
        throw Error(fileMessage(m_path, what + ": " + (m_db ? sqlite3_errmsg(m_db) : "out of memory")));
    }
    void exec(const char *sql)
    {
        if (sqlite3_exec(m_db, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
            fail("writing the Optuna storage");
    }
    sqlite3 *handle() const { return m_db; }

private:
    std::string m_path;
    sqlite3 *m_db = nullptr;
};

// A prepared INSERT, reused for every row.
class Insert {
public:
    Insert(Db &db, const char *sql) : m_db(db)
    {
        if (sqlite3_prepare_v2(db.handle(), sql, -1, &m_stmt, nullptr) != SQLITE_OK)
            db.fail("preparing the Optuna storage");
    }
    ~Insert() { sqlite3_finalize(m_stmt); }
    template <class... Args>
    std::int64_t operator()(const Args &...args)
    {
        int i = 0;
        (bindOne(++i, args), ...);
        if (sqlite3_step(m_stmt) != SQLITE_DONE)
            m_db.fail("writing the Optuna storage");
        sqlite3_reset(m_stmt);
        sqlite3_clear_bindings(m_stmt);
        return sqlite3_last_insert_rowid(m_db.handle());
    }

private:
    void bindOne(int i, std::int64_t v) { sqlite3_bind_int64(m_stmt, i, v); }
    void bindOne(int i, int v) { sqlite3_bind_int64(m_stmt, i, v); }
    void bindOne(int i, double v)
    {
        if (std::isfinite(v))
            sqlite3_bind_double(m_stmt, i, v);
        else
            sqlite3_bind_null(m_stmt, i);
    }
    void bindOne(int i, const std::string &v)
    {
        sqlite3_bind_text(m_stmt, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    }
    void bindOne(int i, const char *v) { bindOne(i, std::string(v)); }
    void bindOne(int i, std::nullptr_t) { sqlite3_bind_null(m_stmt, i); }
    Db &m_db;
    sqlite3_stmt *m_stmt = nullptr;
};

const char *valueType(double v, bool allowNan)
{
    if (std::isnan(v))
        return allowNan ? "NAN" : nullptr;
    if (std::isinf(v))
        return v > 0 ? "INF_POS" : "INF_NEG";
    return "FINITE";
}

bool isPrimitive(const json &j)
{
    return j.is_null() || j.is_boolean() || j.is_number() || j.is_string();
}

void flattenInto(const json &j, const std::string &path,
                 std::vector<std::pair<std::string, json>> &out)
{
    if (j.is_object()) {
        for (auto it = j.begin(); it != j.end(); ++it)
            flattenInto(*it, path.empty() ? it.key() : path + "." + it.key(), out);
    } else if (j.is_array()) {
        for (std::size_t i = 0; i < j.size(); ++i)
            flattenInto(j[i], path + "[" + std::to_string(i) + "]", out);
    } else {
        out.emplace_back(path, j);
    }
}

std::string numberText(double v)
{
    return json(v).dump();
}

} // namespace

OptunaDistribution OptunaDistribution::categorical(json choices)
{
    OptunaDistribution d;
    d.kind = Kind::Categorical;
    d.choices = std::move(choices);
    return d;
}

OptunaDistribution OptunaDistribution::floating(double low, double high, bool log, double step)
{
    OptunaDistribution d;
    d.kind = Kind::Float;
    d.low = low;
    d.high = high;
    d.log = log;
    d.step = step;
    return d;
}

OptunaDistribution OptunaDistribution::integer(long long low, long long high, bool log, long long step)
{
    OptunaDistribution d;
    d.kind = Kind::Int;
    d.low = static_cast<double>(low);
    d.high = static_cast<double>(high);
    d.log = log;
    d.step = static_cast<double>(step);
    return d;
}

json OptunaDistribution::toJson() const
{
    switch (kind) {
    case Kind::Categorical:
        return {{"name", "CategoricalDistribution"}, {"attributes", {{"choices", choices}}}};
    case Kind::Float:
        return {{"name", "FloatDistribution"},
                {"attributes",
                 {{"step", step > 0 ? json(step) : json()}, {"low", low}, {"high", high}, {"log", log}}}};
    case Kind::Int:
        return {{"name", "IntDistribution"},
                {"attributes",
                 {{"log", log},
                  {"step", static_cast<long long>(step)},
                  {"low", static_cast<long long>(low)},
                  {"high", static_cast<long long>(high)}}}};
    }
    return {};
}

double OptunaDistribution::internalValue(const json &v, const std::string &what) const
{
    if (kind == Kind::Categorical) {
        for (std::size_t i = 0; i < choices.size(); ++i)
            if (choices[i] == v && choices[i].is_boolean() == v.is_boolean())
                return static_cast<double>(i);
        throw InputError(what + ": value " + v.dump() + " is not one of the choices "
                         + choices.dump());
    }
    if (!v.is_number() || v.is_boolean())
        throw InputError(what + ": value " + v.dump() + " is not a number");
    const double x = v.get<double>();
    if (!(x >= low && x <= high))
        throw InputError(what + ": value " + v.dump() + " is outside [" + numberText(low) + ", "
                         + numberText(high) + "]");
    if (kind == Kind::Int) {
        if (x != std::floor(x))
            throw InputError(what + ": value " + v.dump() + " is not an integer");
        const auto k = static_cast<long long>(x - low);
        if (step >= 1 && k % static_cast<long long>(step) != 0)
            throw InputError(what + ": value " + v.dump() + " is not on the step grid");
    }
    return x;
}

std::vector<std::pair<std::string, json>> flattenJson(const json &j, const std::string &prefix)
{
    std::vector<std::pair<std::string, json>> out;
    flattenInto(j, prefix, out);
    return out;
}

std::vector<std::pair<std::string, json>> optunaParams(const TrialRecord &trial,
                                                       const OptunaExportOptions &options)
{
    std::vector<std::pair<std::string, json>> out;
    if (trial.spec.is_object()) {
        for (auto it = trial.spec.begin(); it != trial.spec.end(); ++it) {
            if (std::find(options.skipSpecKeys.begin(), options.skipSpecKeys.end(), it.key())
                != options.skipSpecKeys.end())
                continue;
            flattenInto(*it, it.key(), out);
        }
    } else if (!trial.spec.is_null()) {
        flattenInto(trial.spec, "spec", out);
    }
    std::set<std::string> specNames;
    for (const auto &p : out)
        specNames.insert(p.first);
    for (auto &p : flattenJson(trial.hyperParams)) {
        if (specNames.count(p.first))
            p.first = "hparams." + p.first;
        out.push_back(std::move(p));
    }
    return out;
}

std::map<std::string, OptunaDistribution> optunaDistributions(const SpaceDefinition &space)
{
    std::map<std::string, OptunaDistribution> m;
    auto put = [&](const std::string &name, json choices) {
        if (!choices.empty())
            m[name] = OptunaDistribution::categorical(std::move(choices));
    };
    auto names = [](const auto &values, auto nameOf) {
        json a = json::array();
        for (const auto &v : values)
            a.push_back(nameOf(v));
        return a;
    };
    auto conv = [&](const std::string &prefix, const ConvLayerChoices &c) {
        put(prefix + ".channels", json(c.channels));
        put(prefix + ".kernel", json(c.kernels));
        put(prefix + ".norm", names(c.norms, normName));
        put(prefix + ".act", names(c.acts, activationName));
    };
    conv("stem", space.stem);
    const int maxLayers = space.convLayerCounts.empty()
        ? 0 : *std::max_element(space.convLayerCounts.begin(), space.convLayerCounts.end());
    for (int i = 0; i < space.slots; ++i) {
        const std::string block = "blocks[" + std::to_string(i) + "]";
        put(block + ".type", names(space.blockTypes, blockTypeName));
        for (int j = 0; j < maxLayers; ++j)
            conv(block + ".layers[" + std::to_string(j) + "]", space.convLayer);
        put(block + ".attention_channels", json(space.attentionChannels));
        put(block + ".act", names(space.attentionActs, activationName));
    }
    const int maxHead = space.headLayerCounts.empty()
        ? 0 : *std::max_element(space.headLayerCounts.begin(), space.headLayerCounts.end());
    for (int k = 0; k < maxHead; ++k) {
        const std::string head = "head[" + std::to_string(k) + "]";
        put(head + ".width", json(space.headLayer.widths));
        put(head + ".norm", names(space.headLayer.norms, normName));
        put(head + ".act", names(space.headLayer.acts, activationName));
    }
    return m;
}

OptunaExportSummary exportToOptuna(const StudyStore &store, const std::string &outPath,
                                   const OptunaExportOptions &options)
{
    std::error_code ec;
    if (fs::exists(outPath, ec)) {
        if (fs::equivalent(outPath, store.path(), ec))
            throw InputError(fileMessage(outPath, "is the study store itself"));
        if (!options.overwrite)
            throw InputError(fileMessage(outPath, "already exists (not overwritten unless asked)"));
        if (fs::is_directory(outPath, ec))
            throw InputError(fileMessage(outPath, "is a folder"));
    }
    for (const auto &[name, d] : options.distributions) {
        const std::string what = "Optuna distribution '" + name + "'";
        if (d.kind == OptunaDistribution::Kind::Categorical) {
            if (!d.choices.is_array() || d.choices.empty())
                throw InputError(what + ": choices must be a non-empty array");
            for (const auto &c : d.choices)
                if (!isPrimitive(c))
                    throw InputError(what + ": choice " + c.dump() + " is not a number, string, bool or null");
        } else {
            if (!(d.low <= d.high))
                throw InputError(what + ": low > high");
            if (d.log && d.low <= 0)
                throw InputError(what + ": a log distribution needs low > 0");
            if (d.log && ((d.kind == OptunaDistribution::Kind::Float && d.step > 0)
                          || (d.kind == OptunaDistribution::Kind::Int && d.step != 1)))
                throw InputError(what + ": a log distribution cannot have a step");
            if (d.kind == OptunaDistribution::Kind::Int && d.step < 1)
                throw InputError(what + ": an integer distribution needs step >= 1");
        }
    }

    const StudyInfo info = store.info();
    const std::vector<TrialRecord> trials = store.listTrials({std::nullopt, true, true});
    const int nObj = static_cast<int>(info.objectives.size());

    // Parameters per trial, and the distribution of every parameter.
    std::vector<std::vector<std::pair<std::string, json>>> params(trials.size());
    std::map<std::string, std::set<json>> observed;
    for (std::size_t i = 0; i < trials.size(); ++i) {
        params[i] = optunaParams(trials[i], options);
        for (const auto &[name, v] : params[i])
            if (!options.distributions.count(name))
                observed[name].insert(v);
    }
    std::map<std::string, OptunaDistribution> dists = options.distributions;
    for (auto &[name, values] : observed)
        dists[name] = OptunaDistribution::categorical(json(std::vector<json>(values.begin(), values.end())));
    std::map<std::string, std::string> distJson;
    for (const auto &[name, d] : dists)
        distJson[name] = d.toJson().dump();

    AtomicOutput out(outPath);
    OptunaExportSummary summary;
    {
        Db db(out.tempPath());
        db.exec("PRAGMA journal_mode = OFF"); // a fresh temporary file: all or nothing by rename
        db.exec("PRAGMA synchronous = OFF");
        db.exec("BEGIN");
        db.exec(kOptunaSchema);
        const std::string studyName = options.studyName.empty() ? info.name : options.studyName;
        Insert study(db, "INSERT INTO studies (study_id, study_name) VALUES (1, ?)");
        study(studyName);
        Insert dir(db, "INSERT INTO study_directions (direction, study_id, objective) VALUES (?, 1, ?)");
        json names = json::array();
        for (int k = 0; k < nObj; ++k) {
            dir(info.objectives[k].minimize ? "MINIMIZE" : "MAXIMIZE", k);
            names.push_back(info.objectives[k].name);
        }
        Insert sattr(db, "INSERT INTO study_user_attributes (study_id, \"key\", value_json) VALUES (1, ?, ?)");
        json about = info.toJson();
        about["store"] = fs::absolute(store.path()).string();
        sattr("braggnac", about.dump());
        Insert ssys(db, "INSERT INTO study_system_attributes (study_id, \"key\", value_json) VALUES (1, ?, ?)");
        ssys("study:metric_names", names.dump()); // read by Optuna >= 3.2, ignored by 3.1

        Insert trial(db, "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, "
                         "datetime_complete) VALUES (?, ?, 1, ?, ?, ?)");
        Insert param(db, "INSERT INTO trial_params (trial_id, param_name, param_value, "
                         "distribution_json) VALUES (?, ?, ?, ?)");
        Insert value(db, "INSERT INTO trial_values (trial_id, objective, value, value_type) "
                         "VALUES (?, ?, ?, ?)");
        Insert inter(db, "INSERT INTO trial_intermediate_values (trial_id, step, "
                         "intermediate_value, intermediate_value_type) VALUES (?, ?, ?, ?)");
        Insert uattr(db, "INSERT INTO trial_user_attributes (trial_id, \"key\", value_json) "
                         "VALUES (?, ?, ?)");
        for (std::size_t i = 0; i < trials.size(); ++i) {
            const TrialRecord &t = trials[i];
            const std::int64_t tid = static_cast<std::int64_t>(i) + 1;
            // Optuna requires a start for every trial but a waiting one and a completion time
            // for every finished one.
            const double start = t.startedAt > 0 ? t.startedAt : t.queuedAt;
            const double end = t.finishedAt > 0 ? t.finishedAt : start;
            const bool finished = isFinished(t.state);
            const std::string startText = optunaDatetime(start), endText = optunaDatetime(end);
            if (t.state == TrialState::Queued)
                trial(tid, t.number, optunaState(t.state), nullptr, nullptr);
            else if (finished)
                trial(tid, t.number, optunaState(t.state), startText, endText);
            else
                trial(tid, t.number, optunaState(t.state), startText, nullptr);

            for (const auto &[name, v] : params[i]) {
                const std::string what = "trial " + std::to_string(t.number) + ": parameter '" + name + "'";
                param(tid, name, dists.at(name).internalValue(v, what), distJson.at(name));
            }
            // Values: complete trials all objectives; pruned ones the values at the fidelity
            // reached when stored, else (one objective) the last non-NaN epoch value as Optuna
            // itself does.
            std::vector<double> vals;
            if (t.state == TrialState::Complete)
                vals = t.values;
            else if (t.state == TrialState::Pruned) {
                if (static_cast<int>(t.values.size()) == nObj)
                    vals = t.values;
                else if (nObj == 1 && !t.epochs.empty() && !std::isnan(t.epochs.back().value))
                    vals = {t.epochs.back().value};
            }
            for (std::size_t k = 0; k < vals.size(); ++k) {
                const char *type = valueType(vals[k], false);
                if (!type)
                    throw InputError(fileMessage(store.path(), "trial " + std::to_string(t.number)
                                                                   + ": objective value is NaN"));
                value(tid, static_cast<int>(k), vals[k], type);
            }
            for (const auto &e : t.epochs)
                inter(tid, e.epoch, e.value, valueType(e.value, true));

            uattr(tid, "braggnac_id", json(t.id).dump());
            uattr(tid, "spec", t.spec.dump());
            uattr(tid, "spec_hash", json(t.specHash).dump());
            if (!t.hyperParams.empty())
                uattr(tid, "hyperparameters", t.hyperParams.dump());
            uattr(tid, "fidelity", json(t.fidelity).dump());
            uattr(tid, "budget", json(t.budget).dump());
            if (t.generation >= 0)
                uattr(tid, "generation", json(t.generation).dump());
            if (!t.metrics.is_null())
                uattr(tid, "metrics", t.metrics.dump());
            if (!t.cost.is_null())
                uattr(tid, "cost", t.cost.dump());
            if (!t.host.empty()) {
                uattr(tid, "host", json(t.host).dump());
                uattr(tid, "rank", json(t.rank).dump());
            }
            if (t.seconds > 0)
                uattr(tid, "seconds", json(t.seconds).dump());
            if (!t.error.empty())
                uattr(tid, t.state == TrialState::Failed ? "fail_reason" : "prune_reason",
                      json(t.error).dump());
            if (!t.modelPath.empty())
                uattr(tid, "model_path", json(fs::absolute(store.resolve(t.modelPath)).string()).dump());
        }
        db.exec("COMMIT");
        summary.trials = static_cast<int>(trials.size());
    }
    out.commit();
    std::set<std::string> written;
    for (const auto &ps : params)
        for (const auto &q : ps)
            written.insert(q.first);
    summary.params.assign(written.begin(), written.end());
    return summary;
}

} // namespace braggnac::core
