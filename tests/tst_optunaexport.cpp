// braggnac-test-libs: braggnac_search
// The Optuna export: spec flattening and distribution JSON; refusals (existing output, a value
// outside a given distribution: nothing written); then Debian's python3-optuna loads exported
// studies (2-objective search with complete, pruned, failed, running and queued trials and NaN
// epoch values; 1-objective tune with caller-supplied distributions) and every trial's number,
// state, values, params, distributions, intermediate values, user attributes and datetimes, and
// Optuna's own best trials, are compared exactly with the store; the shipped NAC space's lists
// as distributions. Skipped (with a message) only when /usr/bin/python3 or its optuna module is
// absent.
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include "core/common/error.h"
#include "core/arch/archspec.h"
#include "core/search/optunaexport.h"
#include "core/search/random.h"
#include "core/search/space.h"
#include "core/search/studystore.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;
using nlohmann::json;

namespace {

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Loads the study with Optuna and prints everything we compare, as JSON (non-finite numbers as
// the strings "inf", "-inf", "nan").
const char *kLoadScript =
    "import json, math, sys\n"
    "import optuna\n"
    "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
    "path, name = sys.argv[1], sys.argv[2]\n"
    "study = optuna.load_study(study_name=name, storage=\"sqlite:///\" + path)\n"
    "def num(v):\n"
    "    if v is None:\n"
    "        return None\n"
    "    if isinstance(v, float) and math.isnan(v):\n"
    "        return \"nan\"\n"
    "    if isinstance(v, float) and math.isinf(v):\n"
    "        return \"inf\" if v > 0 else \"-inf\"\n"
    "    return v\n"
    "def ts(d):\n"
    "    return None if d is None else d.timestamp()\n"
    "out = {\"directions\": [d.name for d in study.directions],\n"
    "       \"user_attrs\": study.user_attrs, \"system_attrs\": study.system_attrs, \"trials\": []}\n"
    "for t in study.get_trials(deepcopy=False):\n"
    "    out[\"trials\"].append({\n"
    "        \"number\": t.number, \"state\": t.state.name,\n"
    "        \"values\": None if t.values is None else [num(v) for v in t.values],\n"
    "        \"params\": t.params,\n"
    "        \"distributions\": {k: json.loads(optuna.distributions.distribution_to_json(d))\n"
    "                          for k, d in t.distributions.items()},\n"
    "        \"intermediate\": {str(k): num(v) for k, v in t.intermediate_values.items()},\n"
    "        \"user_attrs\": t.user_attrs,\n"
    "        \"start\": ts(t.datetime_start), \"complete\": ts(t.datetime_complete)})\n"
    "if len(study.directions) > 1:\n"
    "    out[\"best\"] = sorted(t.number for t in study.best_trials)\n"
    "else:\n"
    "    out[\"best\"] = [study.best_trial.number]\n"
    "    out[\"best_value\"] = num(study.best_value)\n"
    "if len(sys.argv) > 3 and sys.argv[3] == \"continue\":\n"
    "    # Optuna itself continues the study with TPE: the stored distributions must be compatible.\n"
    "    study.sampler = optuna.samplers.TPESampler(seed=1)\n"
    "    def objective(trial):\n"
    "        lr = trial.suggest_float(\"lr\", 1e-4, 1e-1, log=True)\n"
    "        opt = trial.suggest_categorical(\"optimizer\", [\"adam\", \"sgd\"])\n"
    "        return lr * (2 if opt == \"sgd\" else 1)\n"
    "    study.optimize(objective, n_trials=3)\n"
    "    out[\"after_continue\"] = len(study.trials)\n"
    "print(json.dumps(out))\n";

bool pythonWithOptuna()
{
    if (!QFile::exists(QStringLiteral("/usr/bin/python3")))
        return false;
    QProcess p;
    p.start(QStringLiteral("/usr/bin/python3"), {QStringLiteral("-c"), QStringLiteral("import optuna")});
    return p.waitForFinished(60000) && p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
}

json loadWithOptuna(const std::string &path, const std::string &name, bool cont = false)
{
    QProcess p;
    QStringList args{QStringLiteral("-c"), QString::fromUtf8(kLoadScript),
                     QString::fromStdString(path), QString::fromStdString(name)};
    if (cont)
        args << QStringLiteral("continue");
    p.start(QStringLiteral("/usr/bin/python3"), args);
    if (!p.waitForFinished(120000) || p.exitCode() != 0) {
        qWarning("python failed: %s", p.readAllStandardError().constData());
        return json();
    }
    return json::parse(p.readAllStandardOutput().toStdString(), nullptr, false);
}

json numJson(double v)
{
    if (std::isnan(v))
        return "nan";
    if (std::isinf(v))
        return v > 0 ? "inf" : "-inf";
    return v;
}

json conv(int channels, int kernel, const char *norm, const char *act)
{
    return {{"channels", channels}, {"kernel", kernel}, {"norm", norm}, {"act", act}};
}

// A small hierarchical spec: block types decide which parameters exist.
json spec(int k)
{
    static const char *acts[] = {"relu", "gelu", "leakyrelu", "none"};
    json blocks = json::array();
    for (int b = 0; b < 2; ++b) {
        const int type = (k + b) % 3;
        if (type == 0)
            blocks.push_back({{"type", "conv"},
                              {"layers", {conv(4 << (k % 3), 1 + 2 * (k % 2), "batch", acts[k % 4]),
                                          conv(8, 3, "none", "relu")}}});
        else if (type == 1)
            blocks.push_back({{"type", "conv-attention"}, {"attention_channels", 2 << (k % 4)},
                              {"act", acts[(k + 1) % 4]}});
        else
            blocks.push_back({{"type", "none"}});
    }
    return {{"name", "trial-" + std::to_string(k)},
            {"input_size", 11},
            {"stem", conv(8 << (k % 4), 3, "none", "none")},
            {"blocks", blocks},
            {"head", {{{"width", 16 << (k % 2)}, {"norm", "none"}, {"act", "relu"}}}}};
}

TrialRequest req(int k, json hyper = json::object())
{
    TrialRequest r;
    r.spec = spec(k);
    r.specHash = canonicalJsonHash(r.spec);
    r.hyperParams = std::move(hyper);
    r.generation = k / 4;
    r.budget = 6;
    return r;
}

StudyInfo searchStudy()
{
    StudyInfo s;
    s.name = "nac-search";
    s.space = {{"space", "test"}};
    s.dataset = {"sim.h5", 10, "0123456789abcdef"};
    s.objectives = {{"distance", true}, {"bops", true}};
    s.seed = 3;
    return s;
}

TrialOutcome outcomeOf(double distance, double bops)
{
    TrialOutcome o;
    o.values = {distance, bops};
    o.metrics = {{"validation", {{"mean", distance}}}};
    o.cost = {{"bops", bops}};
    o.fidelity = 6;
    o.seconds = 12.5;
    o.modelPath = "m.models/x";
    return o;
}

} // namespace

class TestOptunaExport : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    bool m_python = false;
    std::string file(const std::string &name) const { return (m_dir.path() + "/").toStdString() + name; }

    // Builds the 2-objective study of the load test; returns the store path.
    std::string buildSearch(const std::string &name)
    {
        const std::string path = file(name);
        StudyStore store = StudyStore::createOrOpen(path, searchStudy());
        std::vector<std::int64_t> ids;
        for (int k = 0; k < 10; ++k)
            ids.push_back(store.enqueue(req(k)).id);
        auto run = [&](int k, std::vector<double> epochs) {
            store.claim(ids[k], "node", k % 2);
            for (std::size_t e = 0; e < epochs.size(); ++e)
                store.reportEpoch(ids[k], int(e) + 1, epochs[e]);
        };
        // Complete: a front of 0, 1, 3 (2 is dominated by 1; 4 has infinite BOPs).
        run(0, {0.5, 0.3, 0.2});
        store.complete(ids[0], outcomeOf(0.2, 4e6));
        run(1, {0.4, 0.1});
        store.complete(ids[1], outcomeOf(0.1, 8e6));
        run(2, {0.4, kNaN, 0.3});
        store.complete(ids[2], outcomeOf(0.3, 9e6));
        run(3, {0.9});
        store.complete(ids[3], outcomeOf(0.9, 1e6));
        run(4, {0.05});
        store.complete(ids[4], outcomeOf(0.05, kInf));
        // Pruned with values at the rung reached, pruned without, failed, running, 2 queued.
        run(5, {0.7, 0.6});
        TrialOutcome rung = outcomeOf(0.6, 2e6);
        rung.fidelity = 2;
        store.prune(ids[5], rung, "ASHA rung 2");
        run(6, {0.8});
        TrialOutcome none;
        none.fidelity = 1;
        store.prune(ids[6], none);
        run(7, {kNaN});
        store.fail(ids[7], "NaN loss at epoch 1");
        run(8, {0.45});
        return path;
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_python = pythonWithOptuna();
        if (!m_python)
            qWarning("/usr/bin/python3 with optuna not found: the loading tests are skipped");
    }

    void flatten()
    {
        const auto leaves = flattenJson(spec(0));
        std::vector<std::string> names;
        for (const auto &p : leaves)
            names.push_back(p.first);
        const std::vector<std::string> expected = {
            "blocks[0].layers[0].act", "blocks[0].layers[0].channels", "blocks[0].layers[0].kernel",
            "blocks[0].layers[0].norm", "blocks[0].layers[1].act", "blocks[0].layers[1].channels",
            "blocks[0].layers[1].kernel", "blocks[0].layers[1].norm", "blocks[0].type",
            "blocks[1].act", "blocks[1].attention_channels", "blocks[1].type", "head[0].act",
            "head[0].norm", "head[0].width", "input_size", "name", "stem.act", "stem.channels",
            "stem.kernel", "stem.norm"};
        QCOMPARE(names, expected);
        QCOMPARE(leaves[2].second, json(1));
        QCOMPARE(leaves[8].second, json("conv"));
        QVERIFY(flattenJson(json::object()).empty());
        QVERIFY(flattenJson({{"a", json::array()}}).empty());

        // optunaParams: the spec's name is no parameter; hyper-parameters follow, a colliding
        // name gets the "hparams." prefix.
        TrialRecord t;
        t.spec = {{"name", "x"}, {"lr", 1}, {"stem", {{"channels", 8}}}};
        t.hyperParams = {{"lr", 0.01}, {"optimizer", "adam"}};
        const auto ps = optunaParams(t);
        QCOMPARE(int(ps.size()), 4);
        QCOMPARE(ps[0].first, std::string("lr"));
        QCOMPARE(ps[1].first, std::string("stem.channels"));
        QCOMPARE(ps[2].first, std::string("hparams.lr"));
        QCOMPARE(ps[2].second, json(0.01));
        QCOMPARE(ps[3].first, std::string("optimizer"));
    }

    void distributionJson()
    {
        // As optuna.distributions.distribution_to_json writes them (see /tmp dumps in the doc).
        QCOMPARE(OptunaDistribution::floating(1e-3, 1.0, true).toJson(),
                 json::parse(R"({"name": "FloatDistribution", "attributes": {"step": null, "low": 0.001, "high": 1.0, "log": true}})"));
        QCOMPARE(OptunaDistribution::integer(1, 9, false, 2).toJson(),
                 json::parse(R"({"name": "IntDistribution", "attributes": {"log": false, "step": 2, "low": 1, "high": 9}})"));
        QCOMPARE(OptunaDistribution::categorical({"a", "b", 3}).toJson(),
                 json::parse(R"({"name": "CategoricalDistribution", "attributes": {"choices": ["a", "b", 3]}})"));
        const auto c = OptunaDistribution::categorical({"relu", 3, true});
        QCOMPARE(c.internalValue(3, "x"), 1.0);
        QCOMPARE(c.internalValue(true, "x"), 2.0);
        QCOMPARE(inputErrorMessage([&] { c.internalValue("gelu", "trial 4: parameter 'act'"); }),
                 QStringLiteral("trial 4: parameter 'act': value \"gelu\" is not one of the choices [\"relu\",3,true]"));
        const auto i = OptunaDistribution::integer(1, 9, false, 2);
        QCOMPARE(i.internalValue(7, "x"), 7.0);
        QVERIFY(threwInputError(inputErrorMessage([&] { i.internalValue(4, "x"); })));
        QVERIFY(threwInputError(inputErrorMessage([&] { i.internalValue(11, "x"); })));
    }

    void refusals()
    {
        const std::string store = buildSearch("refuse.db");
        StudyStore s = StudyStore::open(store, StudyStore::Mode::ReadOnly);
        const std::string out = file("refuse-optuna.db");
        {
            std::ofstream f(out);
            f << "keep me";
        }
        QString msg = inputErrorMessage([&] { exportToOptuna(s, out); });
        QCOMPARE(msg, QString::fromStdString(out + ": already exists (not overwritten unless asked)"));
        std::ifstream in(out);
        std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        QCOMPARE(content, std::string("keep me"));

        msg = inputErrorMessage([&] { exportToOptuna(s, store, {"", true, {}, {"name"}}); });
        QCOMPARE(msg, QString::fromStdString(store + ": is the study store itself"));

        // A given distribution that does not hold a trial's value: refused, nothing written.
        OptunaExportOptions opt;
        opt.distributions["stem.channels"] = OptunaDistribution::categorical({8, 16, 32});
        const std::string out2 = file("refuse-2.db");
        msg = inputErrorMessage([&] { exportToOptuna(s, out2, opt); });
        QCOMPARE(msg, QStringLiteral("trial 3: parameter 'stem.channels': value 64 is not one of the choices [8,16,32]"));
        QVERIFY(!QFile::exists(QString::fromStdString(out2)));
        for (const auto &e : QDir(m_dir.path()).entryList(QDir::Files | QDir::Hidden))
            QVERIFY2(!e.contains(QLatin1String("refuse-2")), qPrintable(e)); // no temporary left

        opt.distributions["stem.channels"] = OptunaDistribution::floating(0, 1, true);
        msg = inputErrorMessage([&] { exportToOptuna(s, out2, opt); });
        QCOMPARE(msg, QStringLiteral("Optuna distribution 'stem.channels': a log distribution needs low > 0"));
    }

    void spaceDistributions()
    {
        // The shipped NAC space: its lists become the distributions, and every spec it samples
        // lies in them (the export refuses a value outside a given distribution).
        const SearchSpace space = SearchSpace::load(std::string(BRAGGNAC_TEST_DATA)
                                                    + "/../../resources/spaces/nac.json");
        const auto dists = optunaDistributions(space.definition());
        QCOMPARE(dists.at("stem.channels").choices, json({8, 16, 32, 64}));
        QCOMPARE(dists.at("blocks[2].type").choices, json({"conv", "conv-attention", "none"}));
        QCOMPARE(dists.at("blocks[0].layers[1].kernel").choices, json({1, 3}));
        QCOMPARE(dists.at("blocks[1].layers[0].norm").choices, json({"none", "batch", "layer"}));
        QCOMPARE(dists.at("blocks[2].attention_channels").choices, json({1, 2, 4, 8, 16, 32}));
        QCOMPARE(dists.at("head[2].width").choices, json({4, 8, 16, 32, 64}));
        QCOMPARE(dists.at("head[0].act").choices, json({"none", "relu", "leakyrelu", "gelu"}));
        QVERIFY(!dists.count("blocks[3].type"));
        QVERIFY(!dists.count("head[3].width"));

        StudyInfo info = searchStudy();
        info.space = space.toJson();
        const std::string path = file("space.db");
        StudyStore store = StudyStore::createOrOpen(path, info);
        SearchRandom rng(11);
        for (int k = 0; k < 30; ++k) {
            const ArchSpec a = space.sample(rng);
            TrialRequest r;
            r.spec = a.toJson();
            r.specHash = a.canonicalHash();
            const auto e = store.enqueue(r);
            if (!e.inserted)
                continue;
            store.claim(e.id, "h", 0);
            store.complete(e.id, outcomeOf(0.1 + k * 0.01, 1e6 * (30 - k)));
        }
        OptunaExportOptions opt;
        opt.distributions = dists;
        const std::string out = file("space-optuna.db");
        const OptunaExportSummary sum = exportToOptuna(store, out, opt);
        QVERIFY(sum.trials >= 25);
        if (!m_python)
            QSKIP("/usr/bin/python3 with optuna (Debian python3-optuna) is not installed");
        const json o = loadWithOptuna(out, info.name);
        QVERIFY2(o.is_object(), "Optuna could not load the export");
        const auto trials = store.listTrials();
        for (std::size_t i = 0; i < trials.size(); ++i) {
            const json &p = o["trials"][i];
            for (const auto &[name, v] : optunaParams(trials[i])) {
                QCOMPARE(p["params"][name], v);
                if (dists.count(name))
                    QCOMPARE(p["distributions"][name], dists.at(name).toJson());
            }
        }
        QCOMPARE(o["trials"][0]["distributions"]["stem.channels"]["attributes"]["choices"],
                 json({8, 16, 32, 64}));
    }

    void searchLoadsInOptuna()
    {
        if (!m_python)
            QSKIP("/usr/bin/python3 with optuna (Debian python3-optuna) is not installed");
        const std::string storePath = buildSearch("search.db");
        StudyStore store = StudyStore::open(storePath, StudyStore::Mode::ReadOnly);
        const std::string out = file("search-optuna.db");
        const OptunaExportSummary sum = exportToOptuna(store, out);
        QCOMPARE(sum.trials, 10);
        const json o = loadWithOptuna(out, "nac-search");
        QVERIFY2(o.is_object(), "Optuna could not load the export");

        QCOMPARE(o["directions"], json({"MINIMIZE", "MINIMIZE"}));
        QCOMPARE(o["system_attrs"]["study:metric_names"], json({"distance", "bops"}));
        QCOMPARE(o["user_attrs"]["braggnac"]["dataset"]["content_hash"], json("0123456789abcdef"));
        QCOMPARE(o["user_attrs"]["braggnac"]["objectives"][1]["name"], json("bops"));

        const auto trials = store.listTrials({std::nullopt, true, true});
        const json &ot = o["trials"];
        QCOMPARE(int(ot.size()), int(trials.size()));
        const std::map<TrialState, std::string> states = {
            {TrialState::Queued, "WAITING"}, {TrialState::Running, "RUNNING"},
            {TrialState::Complete, "COMPLETE"}, {TrialState::Failed, "FAIL"},
            {TrialState::Pruned, "PRUNED"}};
        // The categorical choices are the observed values, sorted.
        std::map<std::string, std::set<json>> observed;
        for (const auto &t : trials)
            for (const auto &[name, v] : optunaParams(t))
                observed[name].insert(v);
        QVERIFY(!observed.count("name"));
        QCOMPARE(observed["stem.channels"], (std::set<json>{8, 16, 32, 64}));
        QCOMPARE(sum.params.size(), observed.size());

        for (std::size_t i = 0; i < trials.size(); ++i) {
            const TrialRecord &t = trials[i];
            const json &p = ot[i];
            QCOMPARE(p["number"].get<int>(), t.number);
            QCOMPARE(p["state"].get<std::string>(), states.at(t.state));
            // Values: complete and the pruned trial with values have both objectives.
            json values;
            if (t.state == TrialState::Complete || (t.state == TrialState::Pruned && !t.values.empty())) {
                values = json::array();
                for (double v : t.values)
                    values.push_back(numJson(v));
            }
            QCOMPARE(p["values"], values);
            // Params: every spec leaf but the name, with its value and sorted observed choices.
            const auto ps = optunaParams(t);
            QCOMPARE(p["params"].size(), ps.size());
            for (const auto &[name, v] : ps) {
                QVERIFY2(p["params"].contains(name), name.c_str());
                QCOMPARE(p["params"][name], v);
                const std::set<json> &choices = observed[name];
                QCOMPARE(p["distributions"][name]["name"], json("CategoricalDistribution"));
                QCOMPARE(p["distributions"][name]["attributes"]["choices"],
                         json(std::vector<json>(choices.begin(), choices.end())));
            }
            // Intermediate values, NaN included.
            json inter = json::object();
            for (const auto &e : t.epochs)
                inter[std::to_string(e.epoch)] = numJson(e.value);
            QCOMPARE(p["intermediate"], inter);
            // User attributes.
            QCOMPARE(p["user_attrs"]["spec"], t.spec);
            QCOMPARE(p["user_attrs"]["braggnac_id"], json(t.id));
            QCOMPARE(p["user_attrs"]["fidelity"], json(t.fidelity));
            QCOMPARE(p["user_attrs"].value("cost", json()), t.cost);
            if (t.state == TrialState::Failed)
                QCOMPARE(p["user_attrs"]["fail_reason"], json("NaN loss at epoch 1"));
            if (t.state == TrialState::Complete)
                QCOMPARE(p["user_attrs"]["model_path"], json(store.resolve("m.models/x")));
            // Datetimes (Optuna keeps microseconds, naive local time).
            if (t.state == TrialState::Queued) {
                QVERIFY(p["start"].is_null());
            } else {
                QVERIFY(std::abs(p["start"].get<double>() - t.startedAt) < 1e-6);
            }
            if (isFinished(t.state))
                QVERIFY(std::abs(p["complete"].get<double>() - t.finishedAt) < 1e-6);
            else
                QVERIFY(p["complete"].is_null());
        }
        // Optuna's own Pareto front over the complete trials: 0, 1, 3 and 4 (distance 0.05 with
        // infinite BOPs is not dominated); 2 is dominated by 1.
        QCOMPARE(o["best"], json({0, 1, 3, 4}));
        QCOMPARE(ot[9]["state"], json("WAITING"));
        QCOMPARE(ot[8]["state"], json("RUNNING"));
        QCOMPARE(ot[6]["values"], json()); // pruned without values, 2 objectives: none

        // Exporting again over the file needs overwrite, and gives the same trials.
        QVERIFY(threwInputError(inputErrorMessage([&] { exportToOptuna(store, out); })));
        OptunaExportOptions again;
        again.overwrite = true;
        again.studyName = "renamed";
        exportToOptuna(store, out, again);
        const json o2 = loadWithOptuna(out, "renamed");
        QCOMPARE(o2["trials"], ot);
    }

    void tuneLoadsInOptunaAndContinues()
    {
        if (!m_python)
            QSKIP("/usr/bin/python3 with optuna (Debian python3-optuna) is not installed");
        StudyInfo s = searchStudy();
        s.name = "tune-nac";
        s.kind = StudyKind::Tune;
        s.objectives = {{"distance", true}};
        const std::string path = file("tune.db");
        StudyStore store = StudyStore::createOrOpen(path, s);
        const double lrs[] = {0.01, 0.003, 0.0005, 0.02};
        const char *opts[] = {"adam", "sgd", "adam", "adam"};
        std::vector<std::int64_t> ids;
        for (int k = 0; k < 4; ++k) {
            TrialRequest r;
            r.spec = spec(1);
            r.specHash = canonicalJsonHash(r.spec);
            r.hyperParams = {{"lr", lrs[k]}, {"optimizer", opts[k]}};
            ids.push_back(store.enqueue(r).id);
            store.claim(ids[k], "h", 0);
            store.reportEpoch(ids[k], 1, 0.5 - 0.1 * k);
            store.reportEpoch(ids[k], 2, 0.4 - 0.1 * k);
        }
        TrialOutcome o;
        o.fidelity = 2;
        for (int k : {0, 1, 3}) {
            o.values = {0.4 - 0.1 * k + 0.01};
            store.complete(ids[k], o);
        }
        store.prune(ids[2], TrialOutcome{}, "median pruner");

        OptunaExportOptions opt;
        opt.distributions["lr"] = OptunaDistribution::floating(1e-4, 1e-1, true);
        opt.distributions["optimizer"] = OptunaDistribution::categorical({"adam", "sgd"});
        const std::string out = file("tune-optuna.db");
        exportToOptuna(store, out, opt);
        const json r = loadWithOptuna(out, "tune-nac", true);
        QVERIFY2(r.is_object(), "Optuna could not load and continue the export");
        QCOMPARE(r["directions"], json({"MINIMIZE"}));
        const json &t = r["trials"];
        QCOMPARE(t[0]["params"]["lr"], json(0.01));
        QCOMPARE(t[1]["params"]["optimizer"], json("sgd"));
        QCOMPARE(t[0]["distributions"]["lr"], opt.distributions["lr"].toJson());
        // The spec is fixed in a tune study: every spec parameter has one choice.
        QCOMPARE(t[0]["distributions"]["stem.channels"]["attributes"]["choices"], json({16}));
        // A pruned single-objective trial takes its last epoch value, as Optuna does itself.
        QCOMPARE(t[2]["state"], json("PRUNED"));
        QCOMPARE(t[2]["values"], json({0.4 - 0.2}));
        QCOMPARE(t[2]["user_attrs"]["prune_reason"], json("median pruner"));
        QCOMPARE(t[3]["values"], json({0.4 - 0.1 * 3 + 0.01}));
        QCOMPARE(r["best"], json({3}));
        QCOMPARE(r["best_value"], json(0.4 - 0.1 * 3 + 0.01));
        // Optuna continued the study with TPE over the same distributions: 3 more trials.
        QCOMPARE(r["after_continue"], json(7));
    }
};

QTEST_GUILESS_MAIN(TestOptunaExport)
#include "tst_optunaexport.moc"
