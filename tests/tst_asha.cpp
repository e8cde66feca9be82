// braggnac-test-libs: braggnac_search
// ASHA: the promotion rule at each rung (top 1/eta of the values recorded so far, the leader
// while fewer than eta), epochs between rungs, idempotent reports and restore, the fidelity
// each trial reached and its fidelity level, the highest-fidelity selection, and invalid options naming the field.
#include <string>
#include <vector>

#include <QtTest>

#include "core/common/error.h"
#include "core/search/asha.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

class TestAsha : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void rule();
    void betweenRungsAndResume();
    void highestFidelity();
    void badOptions();
};

void TestAsha::rule()
{
    Asha asha; // rungs 2, 6, 18; eta 3
    // Rung 2, values arriving one by one, with the decision each gets.
    const std::vector<std::pair<double, bool>> seq = {
        {5, true},   // n=1: the leader
        {7, false},  // n=2: not the leader
        {3, true},   // n=3: best 1 of 3 -> 3
        {4, false},  // n=4: best 1 -> 3
        {6, false},  // n=5
        {3.5, true}, // n=6: best 2 of {3, 3.5, 4, 5, 6, 7} -> <= 3.5
        {3.6, false} // n=7: best 2 -> 3.5
    };
    for (std::size_t i = 0; i < seq.size(); ++i) {
        const std::string t = "t" + std::to_string(i);
        QCOMPARE(asha.report(t, 1, seq[i].first), true); // epoch 1: not a rung
        QCOMPARE(asha.report(t, 2, seq[i].first), seq[i].second);
        QCOMPARE(asha.rungReached(t), 2);
    }
    QCOMPARE(asha.rungValues(2).size(), seq.size());
    // Rung 6 is a separate competition.
    QVERIFY(asha.report("t0", 6, 9.0));
    QVERIFY(!asha.report("t2", 6, 9.5));
    QCOMPARE(asha.rungReached("t0"), 6);
    QCOMPARE(asha.rungReached("t1"), 2);
    QCOMPARE(asha.rungReached("never"), 0);
    // A non-finite value (a diverged trial) is stopped and recorded as the worst.
    QVERIFY(!asha.report("t9", 2, NAN));
    // Fidelity levels: stopped at rung 2 -> 0; passed rung 2, stopped at 6 -> 1; never stopped
    // (still running, finished, or ended by its own early stopping) -> 3.
    QCOMPARE(asha.level("t1"), 0);
    QCOMPARE(asha.level("t2"), 1);
    QVERIFY(asha.stopped("t2"));
    QCOMPARE(asha.level("t0"), 3);
    QVERIFY(!asha.stopped("t0"));
    QCOMPARE(asha.level("unknown"), 3);
    QVERIFY(asha.report("t0", 18, 1.0)); // passes the last rung too
    QCOMPARE(asha.level("t0"), 3);

    AshaOptions o;
    o.rungs = {1, 2};
    o.reductionFactor = 2;
    Asha two(o);
    QVERIFY(two.report("a", 1, 1.0));
    QVERIFY(two.report("b", 1, 0.5));  // n=2: best 1 of 2 -> 0.5
    QVERIFY(!two.report("c", 1, 0.7)); // n=3: best 1 -> 0.5
    QVERIFY(two.report("d", 1, 0.6));  // n=4: best 2 -> {0.5, 0.6}
}

void TestAsha::betweenRungsAndResume()
{
    Asha asha;
    for (int e = 3; e <= 5; ++e)
        QVERIFY(asha.report("x", e, 100.0)); // between rungs: always continue
    QVERIFY(asha.rungValues(3).empty());
    QVERIFY(asha.report("x", 2, 1.0));
    QVERIFY(!asha.report("y", 2, 2.0));
    QVERIFY(!asha.report("y", 2, 0.1)); // a second report at the same rung keeps the first value
    QCOMPARE(asha.rungValues(2), (std::vector<double>{1.0, 2.0}));
    // Resume: restored records compete with new trials.
    Asha resumed;
    resumed.restore("x", 2, 1.0);
    resumed.restore("y", 2, 2.0);
    resumed.restore("x", 7, 1.0); // not a rung: ignored
    QCOMPARE(resumed.rungReached("x"), 2);
    QVERIFY(resumed.report("z", 2, 0.9)); // n=3: best 1 -> 0.9
    QVERIFY(!resumed.report("w", 2, 1.5));
}

void TestAsha::highestFidelity()
{
    QCOMPARE(Asha::highestFidelity({2, 18, 6, 18, 2}), (std::vector<std::size_t>{1, 3}));
    QCOMPARE(Asha::highestFidelity({6}), (std::vector<std::size_t>{0}));
    QVERIFY(Asha::highestFidelity({}).empty());
}

void TestAsha::badOptions()
{
    AshaOptions o;
    o.rungs = {2, 2};
    QString msg = inputErrorMessage([&] { Asha a(o); });
    QVERIFY2(msg.startsWith(QLatin1String("asha.rungs[1]: rungs must be strictly increasing")), qPrintable(msg));
    o.rungs = {};
    msg = inputErrorMessage([&] { Asha a(o); });
    QVERIFY2(msg.startsWith(QLatin1String("asha.rungs: empty")), qPrintable(msg));
    o.rungs = {0, 3};
    msg = inputErrorMessage([&] { Asha a(o); });
    QVERIFY2(msg.startsWith(QLatin1String("asha.rungs[0]:")), qPrintable(msg));
    o.rungs = {2};
    o.reductionFactor = 1;
    msg = inputErrorMessage([&] { Asha a(o); });
    QVERIFY2(msg.startsWith(QLatin1String("asha.reduction_factor:")), qPrintable(msg));
}

QTEST_GUILESS_MAIN(TestAsha)
#include "tst_asha.moc"
