// braggnac-test-libs: braggnac_search braggnac_hls braggnac_compress braggnac_cost braggnac_arch
// FPGA-aware search objectives (issue 9 item 5): "latency" and "dsp" read the analytic HLS
// estimate from cost.hls (added by SearchCallbacks::extendCost); the HLS settings round-trip
// through the search options; the driver (synthetic trials, torch-free) stores for every trial
// the estimate of its own spec as its second objective and draws the front against it; the CLI
// (`braggnac search --objective dsp ...`) stores the settings in the study's options and each
// trial's value equals an independent estimate of its spec; bad settings are clear errors.
#include <cmath>
#include <string>

#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/common/error.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "core/cost/cost.h"
#include "core/hls/hlsestimate.h"
#include "core/search/builtinspaces.h"
#include "core/search/driver.h"
#include "core/search/executor.h"
#include "core/search/studystore.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;
using nlohmann::json;

namespace {

/// The estimate of a spec alone, as the search documents it (docs/search.md): every tensor at
/// QuantSpec::defaults(plan, bits), every weight 1, norms at their identity.
HlsEstimate specEstimate(const ArchSpec &spec, int bits, int reuse, double mhz, const std::string &part)
{
    const LayerPlan plan = LayerPlan::lower(spec);
    NamedTensors w;
    for (const PlanTensor &t : plan.tensors()) {
        float v = 1.0f;
        const bool norm = t.key.find(".norm.") != std::string::npos;
        if (t.integer || t.key.find("running_mean") != std::string::npos
            || (norm && t.key.size() > 5 && t.key.compare(t.key.size() - 5, 5, ".bias") == 0))
            v = 0.0f;
        w[t.key] = {t.shape, std::vector<float>(std::size_t(t.numel()), v)};
    }
    return estimateHls(IntegerReference(plan, w, QuantSpec::defaults(plan, bits)), reuse, mhz, hlsPart(part));
}

/// Trains nothing: a distance from the spec's parameter count, one epoch.
class SyntheticRunner : public TrialRunner {
public:
    TaskResult run(const TrialTask &task, const std::function<bool(const EpochReport &)> &onEpoch,
                   const CancelToken &cancel) override
    {
        cancel.throwIfCancelled();
        const ArchSpec spec = ArchSpec::fromJson(task.spec);
        const Cost c = computeCost(spec);
        const double d = 0.05 + 2.0 / std::log10(10.0 + double(c.params));
        EpochReport rep;
        rep.epoch = 1;
        rep.value = d;
        onEpoch(rep);
        TaskResult r;
        r.status = TaskStatus::Complete;
        r.metrics = {{"validation", {{"n", 10}, {"mean", d}}}, {"test", {{"n", 10}, {"mean", d}}}};
        r.cost = {{"params", c.params}, {"macs", c.macs}, {"bops", c.bops}};
        r.fidelity = 1;
        return r;
    }
};

} // namespace

class TestLatencyObjective : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { qputenv("XDG_RUNTIME_DIR", QDir::tempPath().toUtf8()); }

    void valuesReadTheEstimate()
    {
        const json metrics = {{"validation", {{"mean", 0.25}}}};
        const json cost = {{"bops", 1e6}, {"hls", {{"latency_us", 3.5}, {"dsp", 120}}}};
        QCOMPARE(objectiveValues({"distance", "latency"}, metrics, cost), (std::vector<double>{0.25, 3.5}));
        QCOMPARE(objectiveValues({"dsp", "distance"}, metrics, cost), (std::vector<double>{120, 0.25}));
        QCOMPARE(inputErrorMessage([&] { objectiveValues({"distance", "latency"}, metrics, json{{"bops", 1}}); }),
                 QString("trial result: cost.hls.latency_us: missing (needed for the objective 'latency')"));
        QCOMPARE(inputErrorMessage([&] { objectiveValues({"dsp"}, metrics, json{{"hls", {{"dsp", "many"}}}}); }),
                 QString("trial result: cost.hls.dsp: missing (needed for the objective 'dsp')"));
    }

    void optionsRoundTrip()
    {
        SearchOptions o;
        o.objectives = {"distance", "latency"};
        o.hlsBits = 8;
        o.hlsReuse = 4;
        o.hlsClockMhz = 250;
        o.hlsPart = "xczu7ev";
        const json j = o.toJson();
        QCOMPARE(j.at("hls").dump(), std::string(R"({"bits":8,"clock_mhz":250.0,"part":"xczu7ev","reuse_factor":4})"));
        const SearchOptions back = SearchOptions::fromJson(j);
        QCOMPARE(back.objectives, o.objectives);
        QCOMPARE(back.hlsBits, 8);
        QCOMPARE(back.hlsReuse, 4);
        QCOMPARE(back.hlsClockMhz, 250.0);
        QCOMPARE(back.hlsPart, std::string("xczu7ev"));
        // A study stored before these settings existed reads the defaults.
        json old = j;
        old.erase("hls");
        QCOMPARE(SearchOptions::fromJson(old).hlsBits, 16);
        json bad = j;
        bad["hls"]["bits"] = 40;
        QCOMPARE(inputErrorMessage([&] { SearchOptions::fromJson(bad, "s.db"); }),
                 QString("s.db: hls.bits: expected 2..32 (got 40)"));
        bad = j;
        bad["hls"]["reuse_factor"] = 0;
        QCOMPARE(inputErrorMessage([&] { SearchOptions::fromJson(bad, "s.db"); }),
                 QString("s.db: hls.reuse_factor: must be at least 1 (got 0)"));
        SearchOptions u;
        u.objectives = {"distance", "latncy"};
        QCOMPARE(inputErrorMessage([&] { u.validate("search"); }),
                 QString("search: objectives: unknown objective 'latncy' (known: distance, bops, params, macs, latency, dsp)"));
    }

    void driverStoresTheEstimate()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const SearchSpace space = resolveSpace("nac");
        StudyInfo info;
        info.name = "latency";
        info.space = space.toJson();
        info.dataset.path = "synthetic";
        info.dataset.size = 1;
        info.dataset.contentHash = "0000000000000002";
        info.objectives = {{"distance", true}, {"latency", true}};
        StudyStore store = StudyStore::createOrOpen((dir.path() + "/l.db").toStdString(), info);
        SyntheticRunner runner;
        LocalExecutor executor(runner, 1);
        SearchOptions o;
        o.trials = 10;
        o.epochs = 1;
        o.population = 4;
        o.objectives = {"distance", "latency"};
        o.hlsBits = 8;
        o.hlsClockMhz = 300;
        int calls = 0;
        SearchCallbacks cb;
        cb.extendCost = [&](const ArchSpec &spec, json &cost) {
            ++calls;
            const HlsEstimate e = specEstimate(spec, o.hlsBits, o.hlsReuse, o.hlsClockMhz, o.hlsPart);
            cost["hls"] = {{"latency_us", e.latencyUs}, {"dsp", e.dsp}};
        };
        const SearchSummary s = runSearch(space, store, executor, o, {}, cb);
        QCOMPARE(s.counts.complete, 10);
        QCOMPARE(calls, 10);
        const auto trials = store.listTrials();
        for (const auto &t : trials) {
            QCOMPARE(t.values.size(), std::size_t(2));
            const HlsEstimate e = specEstimate(ArchSpec::fromJson(t.spec), 8, 1, 300, "xcu250");
            QCOMPARE(t.values[1], e.latencyUs);
            QCOMPARE(t.cost.at("hls").at("latency_us").template get<double>(), e.latencyUs);
            QVERIFY(e.latencyUs > 0);
        }
        // The front is drawn against the estimated latency: no trial dominates a front member.
        QVERIFY(!s.front.empty());
        for (const auto &f : s.front)
            for (const auto &t : trials)
                QVERIFY(!(t.values[0] <= f.values[0] && t.values[1] <= f.values[1]
                          && (t.values[0] < f.values[0] || t.values[1] < f.values[1])));
    }

    void cliSearchWithDsp()
    {
        try {
            cliSearchWithDspBody();
        } catch (const std::exception &e) {
            QFAIL(e.what());
        }
    }

private:
    void cliSearchWithDspBody()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString data = dir.path() + "/d.h5", db = dir.path() + "/s.db";
        QCOMPARE(runCli({"simulate", "patches", "--out", data, "--n", "200", "--seed", "4", "--quiet"}).exitCode, 0);
        const auto r = runCli({"search", data, "--objective", "dsp", "--hls-bits", "8", "--reuse-factor", "2",
                               "--clock-mhz", "250", "--part", "xczu7ev", "--study", db, "--trials", "3",
                               "--population", "2", "--epochs", "1", "--workers", "1", "--threads", "1", "--quiet"});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const auto st = runCli({"study", db, "--json"});
        QCOMPARE(st.exitCode, 0);
        const json j = json::parse(st.out.toStdString());
        int complete = 0;
        for (const auto &t : j.at("trials")) {
            if (t.at("state") != "complete")
                continue;
            ++complete;
            const HlsEstimate e = specEstimate(ArchSpec::fromJson(t.at("spec")), 8, 2, 250, "xczu7ev");
            QCOMPARE(t.at("values")[1].get<double>(), double(e.dsp));
            QCOMPARE(t.at("cost").at("hls").at("dsp").get<std::int64_t>(), e.dsp);
            QCOMPARE(t.at("cost").at("hls").at("part").get<std::string>(), std::string("xczu7ev"));
        }
        QCOMPARE(complete, 3);
        const json &so = j.at("study").at("options").at("search");
        QCOMPARE(so.at("objectives").dump(), std::string(R"(["distance","dsp"])"));
        QCOMPARE(so.at("hls").dump(), std::string(R"({"bits":8,"clock_mhz":250.0,"part":"xczu7ev","reuse_factor":2})"));
        const auto front = runCli({"study", db, "--pareto"});
        QCOMPARE(front.exitCode, 0);
        QVERIFY2((front.out + front.err).contains(" dsp "), (front.out + front.err).constData());

        const auto both = runCli({"search", data, "--objective", "latency", "--objectives", "distance,bops", "--study",
                                  dir.path() + "/t.db", "--trials", "1"});
        QCOMPARE(both.exitCode, 2);
        QVERIFY2(both.err.contains("give one of them"), both.err.constData());
        const auto part = runCli({"search", data, "--objective", "latency", "--part", "xc9999", "--study",
                                  dir.path() + "/u.db", "--trials", "1"});
        QCOMPARE(part.exitCode, 2);
        QVERIFY2(part.err.contains("xcu250"), part.err.constData());
    }
};

QTEST_GUILESS_MAIN(TestLatencyObjective)
#include "tst_latencyobjective.moc"
