// braggnac-test-libs: braggnac_search braggnac_cost braggnac_arch
// The search driver (core/search/driver.h) with the local executor, torch-free: the trial runner
// here "trains" analytically (a closed-form distance of the spec that improves with epochs), so
// the orchestration is tested exactly: every trial stored once, ASHA's pruning and fidelities,
// the front among the highest fidelity, failures stored with their reason, cancel + resume and
// crash recovery without losing or repeating a finished trial, exhaustion of a tiny space.
#include <atomic>
#include <cmath>
#include <map>
#include <set>
#include <string>

#include <QTemporaryDir>
#include <QtTest>

#include <nlohmann/json.hpp>

#include "core/arch/archspec.h"
#include "core/common/error.h"
#include "core/cost/cost.h"
#include "core/search/builtinspaces.h"
#include "core/search/driver.h"
#include "core/search/executor.h"
#include "core/search/studystore.h"

using namespace braggnac::core;
using nlohmann::json;

namespace {

// Distance after `epoch` epochs: a fixed function of the spec (smaller for more parameters,
// with a spec-hash-dependent offset) times (1 + 2 / epoch).
double syntheticDistance(const ArchSpec &spec, int epoch)
{
    const Cost c = computeCost(spec);
    const std::string h = spec.canonicalHash();
    const double jitter = double(std::stoul(h.substr(0, 6), nullptr, 16) % 1000) / 1000.0;
    return (0.05 + 2.0 / std::log10(10.0 + double(c.params)) + 0.2 * jitter) * (1.0 + 2.0 / epoch);
}

class SyntheticRunner : public TrialRunner {
public:
    // Specs whose stem has `failChannels` channels fail (0: none fail).
    explicit SyntheticRunner(int failChannels = 0) : m_fail(failChannels) {}

    TaskResult run(const TrialTask &task, const std::function<bool(const EpochReport &)> &onEpoch,
                   const CancelToken &cancel) override
    {
        ++m_runs;
        const ArchSpec spec = ArchSpec::fromJson(task.spec);
        TaskResult r;
        if (m_fail && spec.stem.channels == m_fail) {
            r.status = TaskStatus::Failed;
            r.reason = "synthetic failure: stem with " + std::to_string(m_fail) + " channels";
            return r;
        }
        double best = 1e9;
        int epochs = 0;
        bool stopped = false;
        json history = json::array();
        for (int e = 1; e <= task.epochs; ++e) {
            cancel.throwIfCancelled();
            const double d = syntheticDistance(spec, e);
            best = std::min(best, d);
            epochs = e;
            history.push_back({{"epoch", e}, {"validation_mean", d}});
            EpochReport rep;
            rep.epoch = e;
            rep.value = d;
            if (!onEpoch(rep)) {
                stopped = true;
                break;
            }
        }
        const Cost c = computeCost(spec);
        r.status = stopped ? TaskStatus::Pruned : TaskStatus::Complete;
        r.metrics = {{"validation", {{"n", 100}, {"mean", best}}}, {"test", {{"n", 100}, {"mean", best * 1.01}}}};
        r.cost = {{"params", c.params}, {"macs", c.macs}, {"bops", c.bops}};
        r.history = history;
        r.fidelity = epochs;
        return r;
    }
    int runs() const { return m_runs.load(); }

private:
    int m_fail;
    std::atomic<int> m_runs{0};
};

StudyInfo studyInfo(const SearchSpace &space)
{
    StudyInfo s;
    s.name = "driver-test";
    s.space = space.toJson();
    s.dataset.path = "synthetic";
    s.dataset.size = 1;
    s.dataset.contentHash = "0000000000000001";
    s.objectives = {{"distance", true}, {"bops", true}};
    return s;
}

void checkDistinct(const std::vector<TrialRecord> &trials)
{
    std::set<std::string> hashes;
    std::set<int> numbers;
    for (const auto &t : trials) {
        QVERIFY2(hashes.insert(t.specHash).second, qPrintable("spec trained twice: " + QString::fromStdString(t.specHash)));
        QVERIFY(numbers.insert(t.number).second);
    }
}

} // namespace

class TestSearchDriver : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    std::string path(const char *name) const { return m_dir.filePath(name).toStdString(); }

private Q_SLOTS:
    void everyTrialOnceAndTheFront()
    {
        const SearchSpace space = resolveSpace("nac");
        StudyStore store = StudyStore::createOrOpen(path("full.db"), studyInfo(space));
        SyntheticRunner runner;
        LocalExecutor executor(runner, 2);
        SearchOptions o;
        o.trials = 30;
        o.epochs = 5;
        o.population = 8;
        const SearchSummary s = runSearch(space, store, executor, o);
        QCOMPARE(s.counts.complete, 30);
        QCOMPARE(s.counts.queued + s.counts.running + s.counts.failed + s.counts.pruned, 0);
        QCOMPARE(runner.runs(), 30);
        QVERIFY(!s.interrupted && !s.exhausted);
        const auto trials = store.listTrials();
        checkDistinct(trials);
        // generation 0 starts with nac and braggnn (fitted to the slots)
        QCOMPARE(trials[0].spec["stem"]["channels"].get<int>(), builtinArch("nac").stem.channels);
        QCOMPARE(trials[1].cost["params"].get<long long>(), 45394LL);
        int maxGeneration = 0;
        for (const auto &t : trials) {
            QCOMPARE(t.fidelity, 5);
            const ArchSpec spec = ArchSpec::fromJson(t.spec);
            QCOMPARE(t.values.size(), std::size_t(2));
            QCOMPARE(t.values[0], syntheticDistance(spec, 5));
            QCOMPARE(t.values[1], computeCost(spec).bops);
            maxGeneration = std::max(maxGeneration, t.generation);
            if (t.number >= 2) // everything after the two references lies in the space
                QVERIFY(space.contains(spec));
        }
        QVERIFY(maxGeneration >= 2); // 30 trials with a population of 8: several generations bred
        // The front: non-dominated among all, sorted by distance, equal to a brute-force check.
        QVERIFY(!s.front.empty());
        for (const auto &f : s.front)
            for (const auto &t : trials)
                QVERIFY(!(t.values[0] <= f.values[0] && t.values[1] <= f.values[1]
                          && (t.values[0] < f.values[0] || t.values[1] < f.values[1])));
        for (std::size_t i = 1; i < s.front.size(); ++i)
            QVERIFY(s.front[i - 1].values[0] <= s.front[i].values[0]);
        QVERIFY(s.hypervolume > 0);
        QCOMPARE(int(s.front.size()), int(studyFront(trials).size()));
        // Store writes are timed: per new trial at least one claimNext (empty), its enqueue and
        // claim, five epoch reports and its complete(); claimNext calls that found nothing to
        // start while a generation waited come on top.
        QVERIFY2(s.storeWrites.count >= 30 * (3 + 5 + 1), qPrintable(QString::number(s.storeWrites.count)));
        QVERIFY(s.storeWrites.medianMs > 0);
        QVERIFY(s.storeWrites.medianMs <= s.storeWrites.p99Ms);
        QVERIFY(s.storeWrites.p99Ms <= s.storeWrites.maxMs);
        QVERIFY(s.storeWrites.totalMs >= s.storeWrites.maxMs);
        QVERIFY(s.storeWrites.totalMs >= s.storeWrites.medianMs * s.storeWrites.count / 2);
    }

    void ashaPrunesAndTheFrontIsAtTopFidelity()
    {
        const SearchSpace space = resolveSpace("nac");
        StudyStore store = StudyStore::createOrOpen(path("asha.db"), studyInfo(space));
        SyntheticRunner runner;
        LocalExecutor executor(runner, 2);
        SearchOptions o;
        o.trials = 36;
        o.epochs = 9;
        o.population = 12;
        o.asha = true;
        o.ashaOptions.rungs = {1, 3};
        const SearchSummary s = runSearch(space, store, executor, o);
        QCOMPARE(s.counts.complete + s.counts.pruned, 36);
        QVERIFY(s.counts.pruned > 0);
        QVERIFY(s.counts.complete > 0);
        const auto trials = store.listTrials({std::nullopt, true, true});
        checkDistinct(trials);
        for (const auto &t : trials) {
            if (t.state == TrialState::Pruned)
                QVERIFY2(t.fidelity == 1 || t.fidelity == 3, qPrintable(QString::number(t.fidelity)));
            else
                QCOMPARE(t.fidelity, 9);
            QCOMPARE(int(t.epochs.size()), t.fidelity); // every epoch reported to the store
        }
        for (const auto &f : s.front) {
            QCOMPARE(f.fidelity, 9);
            QCOMPARE(int(f.state), int(TrialState::Complete));
        }
    }

    // The front rule on constructed trials: complete trials are full fidelity whatever their
    // epoch count (a recipe's patience), pruned ones only count while nothing is complete.
    void frontRule()
    {
        auto rec = [](int number, TrialState state, int fidelity, double d, double b) {
            TrialRecord t;
            t.id = number + 1;
            t.number = number;
            t.state = state;
            t.fidelity = fidelity;
            t.values = {d, b};
            return t;
        };
        std::vector<TrialRecord> trials = {rec(0, TrialState::Pruned, 6, 0.5, 0.5),
                                           rec(1, TrialState::Complete, 3, 1.0, 3.0),
                                           rec(2, TrialState::Complete, 9, 2.0, 2.0),
                                           rec(3, TrialState::Complete, 9, 2.5, 2.5),
                                           rec(4, TrialState::Failed, 9, 0.1, 0.1),
                                           rec(5, TrialState::Complete, 9, 3.0, 1.0)};
        std::vector<int> numbers;
        for (const auto &t : studyFront(trials))
            numbers.push_back(t.number);
        QCOMPARE(numbers, (std::vector<int>{1, 2, 5}));
        trials = {rec(0, TrialState::Pruned, 2, 0.5, 0.5), rec(1, TrialState::Pruned, 6, 1.0, 1.0),
                  rec(2, TrialState::Pruned, 6, 0.9, 2.0)};
        numbers.clear();
        for (const auto &t : studyFront(trials))
            numbers.push_back(t.number);
        QCOMPARE(numbers, (std::vector<int>{2, 1}));
        SearchOptions o;
        // hypervolume over (distance, log10 bops) against (1.0, 10.0): one point (0.5, 1e8)
        QCOMPARE(studyHypervolume({rec(0, TrialState::Complete, 1, 0.5, 1e8)}, o), 0.5 * 2.0);
    }

    void failuresAreStoredAndTheSearchGoesOn()
    {
        const SearchSpace space = resolveSpace("nac");
        StudyStore store = StudyStore::createOrOpen(path("fail.db"), studyInfo(space));
        SyntheticRunner runner(16); // every spec with a 16-channel stem fails
        LocalExecutor executor(runner, 2);
        SearchOptions o;
        o.trials = 24;
        o.epochs = 2;
        o.population = 8;
        o.seedBuiltins = false;
        const SearchSummary s = runSearch(space, store, executor, o);
        QCOMPARE(s.counts.complete + s.counts.failed, 24);
        QVERIFY(s.counts.failed > 0);
        for (const auto &t : store.listTrials()) {
            const bool sixteen = t.spec["stem"]["channels"].get<int>() == 16;
            QCOMPARE(t.state == TrialState::Failed, sixteen);
            if (sixteen)
                QCOMPARE(QString::fromStdString(t.error), QStringLiteral("synthetic failure: stem with 16 channels"));
        }
    }

    void cancelThenResumeLosesAndRepeatsNothing()
    {
        const SearchSpace space = resolveSpace("nac");
        const std::string db = path("resume.db");
        SearchOptions o;
        o.trials = 20;
        o.epochs = 4;
        o.population = 6;
        std::map<int, std::vector<double>> firstRun;
        {
            StudyStore store = StudyStore::createOrOpen(db, studyInfo(space));
            SyntheticRunner runner;
            LocalExecutor executor(runner, 2);
            CancelToken cancel;
            SearchCallbacks cb;
            int finished = 0;
            cb.onTrialFinished = [&](const TrialRecord &) {
                if (++finished == 7)
                    cancel.cancel();
            };
            const SearchSummary s = runSearch(space, store, executor, o, cancel, cb);
            QVERIFY(s.interrupted);
            QCOMPARE(s.counts.running, 0); // running trials went back to the queue
            QVERIFY(s.counts.complete >= 7 && s.counts.complete < 20);
            for (const auto &t : store.listTrials())
                if (t.state == TrialState::Complete)
                    firstRun[t.number] = t.values;
        }
        // A crash as well: a trial claimed by a process that died.
        {
            StudyStore store = StudyStore::open(db);
            SearchRandom rng(99);
            for (;;) {
                TrialRequest r;
                const ArchSpec spec = space.sample(rng);
                r.spec = spec.toJson();
                r.specHash = spec.canonicalHash();
                r.budget = o.epochs;
                r.generation = 0;
                const EnqueueResult e = store.enqueue(r);
                if (!e.inserted)
                    continue;
                store.claim(e.id, "dead-host", 7);
                break;
            }
        }
        StudyStore store = StudyStore::createOrOpen(db, studyInfo(space));
        SyntheticRunner runner;
        LocalExecutor executor(runner, 2);
        const SearchSummary s = runSearch(space, store, executor, o);
        QVERIFY(!s.interrupted);
        QCOMPARE(s.recovered, 1);
        QCOMPARE(s.counts.complete, 20);
        QCOMPARE(s.counts.queued + s.counts.running, 0);
        const auto trials = store.listTrials();
        checkDistinct(trials);
        for (const auto &[number, values] : firstRun) {
            const auto t = store.trialByNumber(number);
            QVERIFY(t);
            QCOMPARE(t->values, values); // finished trials were not trained again
        }
        QCOMPARE(runner.runs(), 20 - int(firstRun.size()));
    }

    void exhaustsATinySpace()
    {
        const json tiny = json::parse(R"({"name": "tiny", "input_size": 11, "force_one_by_one": true,
            "stem": {"channels": [8, 16], "kernel": [3], "norm": ["none"], "act": ["none"]},
            "blocks": {"slots": 1, "types": ["none"]},
            "head": {"layers": [1], "width": [4, 8], "norm": ["none"], "act": ["none"]}})");
        const SearchSpace space = SearchSpace::fromJson(tiny, "tiny");
        QCOMPARE(QString::fromStdString(space.size().count), QStringLiteral("4"));
        StudyStore store = StudyStore::createOrOpen(path("tiny.db"), studyInfo(space));
        SyntheticRunner runner;
        LocalExecutor executor(runner, 2);
        SearchOptions o;
        o.trials = 10;
        o.epochs = 2;
        o.population = 2;
        o.seedBuiltins = false;
        const SearchSummary s = runSearch(space, store, executor, o);
        QVERIFY(s.exhausted);
        QCOMPARE(s.counts.complete, 4);
        checkDistinct(store.listTrials());
    }

    void badOptionsNameTheField_data()
    {
        QTest::addColumn<QString>("field");
        QTest::newRow("trials") << "trials";
        QTest::newRow("objective") << "objectives";
        QTest::newRow("duplicate objective") << "objectives";
        QTest::newRow("rungs beyond budget") << "asha.rungs";
        QTest::newRow("population") << "population";
    }
    void badOptionsNameTheField()
    {
        QFETCH(QString, field);
        SearchOptions o;
        const QString row = QString::fromLatin1(QTest::currentDataTag());
        if (row == "trials")
            o.trials = 0;
        else if (row == "objective")
            o.objectives = {"distance", "latency-ish"};
        else if (row == "duplicate objective")
            o.objectives = {"bops", "bops"};
        else if (row == "rungs beyond budget") {
            o.asha = true;
            o.epochs = 6;
            o.ashaOptions.rungs = {2, 6};
        } else
            o.population = 1;
        try {
            o.validate("search");
            QFAIL("no error");
        } catch (const InputError &e) {
            QVERIFY2(QString::fromStdString(e.what()).startsWith("search: " + field + ":"), e.what());
        }
    }

    void messagesRoundTrip()
    {
        TaskResult r;
        r.id = 12;
        r.status = TaskStatus::Pruned;
        r.reason = "asha";
        r.metrics = {{"validation", {{"mean", 0.25}}}};
        r.cost = {{"bops", 1e8}};
        r.fidelity = 3;
        r.seconds = 1.5;
        r.host = "node7";
        r.rank = 4;
        const TaskResult back = TaskResult::fromJson(json::parse(r.toJson().dump()));
        QCOMPARE(back.toJson().dump(), r.toJson().dump());
        TrialTask t;
        t.id = 3;
        t.number = 2;
        t.spec = builtinArch("nac").toJson();
        t.epochs = 7;
        t.modelPath = "/tmp/x";
        QCOMPARE(TrialTask::fromJson(json::parse(t.toJson().dump())).toJson().dump(), t.toJson().dump());
        EpochReport e;
        e.id = 3;
        e.epoch = 2;
        e.value = std::nan("");
        QVERIFY(std::isnan(EpochReport::fromJson(json::parse(e.toJson().dump())).value));
    }
};

QTEST_GUILESS_MAIN(TestSearchDriver)
#include "tst_searchdriver.moc"
