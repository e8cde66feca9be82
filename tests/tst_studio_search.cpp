// braggnac-test-libs: braggnac_ui SQLite::SQLite3
// The studio's Search stage offscreen: the space editor against the core (size, save/load
// round trip, an invalid edit shown at its widget), the live study view while another thread
// writes trials into the study file (the Pareto chart gains points, its front equals core's
// studyFront over the stored trials - the rule of `braggnac study --pareto` -, redraws are
// coalesced, the event loop never stalls more than 100 ms), the table and chart linked both
// ways with the trial inspector, and corrupt / foreign / empty / missing study files reported
// with the file name while the panel stays usable.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include <QApplication>
#include <QCheckBox>
#include <QElapsedTimer>
#include <QFile>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QSignalSpy>
#include <QSortFilterProxyModel>
#include <QTableView>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTimer>
#include <QtTest>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "core/arch/archspec.h"
#include "core/cost/cost.h"
#include "core/search/builtinspaces.h"
#include "core/search/driver.h"
#include "core/search/random.h"
#include "core/search/space.h"
#include "core/search/studystore.h"
#include "ui/archdiagram.h"
#include "ui/paretochart.h"
#include "ui/searchpanel.h"
#include "ui/spaceeditor.h"
#include "ui/studiocontext.h"
#include "ui/studywatcher.h"
#include "ui/trialinspector.h"
#include "ui/trialtablemodel.h"

using namespace braggnac;

namespace {

/// Longest gap between ticks of a 10 ms timer: how long the event loop stalled.
class StallMeter : public QObject {
public:
    StallMeter()
    {
        m_timer.setInterval(10);
        m_timer.setTimerType(Qt::PreciseTimer);
        QObject::connect(&m_timer, &QTimer::timeout, this, [this] {
            const qint64 now = m_clock.nsecsElapsed();
            m_maxGapMs = std::max(m_maxGapMs, double(now - m_last) / 1e6);
            m_last = now;
            ++m_ticks;
        });
    }
    void start()
    {
        m_clock.start();
        m_last = m_clock.nsecsElapsed();
        m_timer.start();
    }
    void stop() { m_timer.stop(); }
    double maxGapMs() const { return m_maxGapMs; }
    int ticks() const { return m_ticks; }

private:
    QTimer m_timer;
    QElapsedTimer m_clock;
    qint64 m_last = 0;
    double m_maxGapMs = 0;
    int m_ticks = 0;
};

core::StudyInfo studyInfo(const core::SearchSpace &space)
{
    core::StudyInfo s;
    s.name = "studio-test";
    s.space = space.toJson();
    s.dataset.path = "synthetic";
    s.dataset.size = 1;
    s.dataset.contentHash = "0000000000000001";
    s.objectives = {{"distance", true}, {"bops", true}};
    core::SearchOptions search;
    search.trials = 60;
    s.options = {{"search", search.toJson()}}; // as braggnac search stores them
    return s;
}

} // namespace

class TestStudioSearch : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase()
    {
        QCoreApplication::setOrganizationName(QStringLiteral("braggnac-tests"));
        QCoreApplication::setApplicationName(QStringLiteral("tst_studio_search"));
        QVERIFY(m_dir.isValid());
    }

    void editorSizeEqualsCore()
    {
        ui::SpaceEditor editor;
        const core::SearchSpace nac = core::resolveSpace("nac");
        editor.setSpace(nac);
        QVERIFY(editor.space().has_value());
        editor.waitForSize();
        QVERIFY(editor.lastSize().has_value());
        const core::SpaceSize expected = nac.size();
        QCOMPARE(editor.lastSize()->count, expected.count);
        QCOMPARE(editor.lastSize()->exact, expected.exact);
        QVERIFY(editor.sizeText().contains(QString::fromStdString(expected.count)));
        // The preview: random valid specs with their exact cost.
        QCOMPARE(editor.previewTable()->rowCount(), 6);
        for (int r = 0; r < 6; ++r)
            QVERIFY(editor.previewTable()->item(r, 1)->text().toLongLong() > 0);

        // A constraint changes the count the way the core counts it.
        auto *maxParams = qobject_cast<QLineEdit *>(editor.fieldWidget(QStringLiteral("constraints.max_params")));
        QVERIFY(maxParams);
        maxParams->setText(QStringLiteral("20000"));
        Q_EMIT maxParams->textEdited(maxParams->text());
        QVERIFY(editor.space().has_value());
        editor.waitForSize();
        nlohmann::json j = nac.toJson();
        j["constraints"]["max_params"] = 20000;
        const core::SpaceSize constrained = core::SearchSpace::fromJson(j).size();
        QCOMPARE(editor.lastSize()->count, constrained.count);
        QCOMPARE(editor.lastSize()->method, constrained.method);
    }

    void savedSpaceLoadsUnchanged_data()
    {
        QTest::addColumn<QString>("name");
        for (const auto &n : core::builtinSpaceNames())
            QTest::newRow(n.c_str()) << QString::fromStdString(n);
    }
    void savedSpaceLoadsUnchanged()
    {
        QFETCH(QString, name);
        const core::SearchSpace original = core::resolveSpace(name.toStdString());
        ui::SpaceEditor editor;
        editor.setSpace(original);
        QVERIFY2(editor.space().has_value(), qPrintable(editor.errorMessage()));
        const QString path = m_dir.filePath(name + QStringLiteral("-saved.json"));
        QString error;
        QVERIFY2(editor.saveFile(path, &error), qPrintable(error));
        const core::SearchSpace loaded = core::SearchSpace::load(path.toStdString());
        QCOMPARE(loaded.toJson().dump(), original.toJson().dump());
        QCOMPARE(loaded.size().count, original.size().count);
        // The widgets show what the file holds: loading it again gives the same JSON.
        ui::SpaceEditor again;
        QVERIFY(again.loadFile(path));
        QVERIFY(again.space().has_value());
        QCOMPARE(again.space()->toJson().dump(), original.toJson().dump());
    }

    void invalidEditShownAtWidget_data()
    {
        QTest::addColumn<QString>("field");   // the widget edited
        QTest::addColumn<QString>("text");    // new text ("" for toggles: uncheck all)
        QTest::addColumn<QString>("expected"); // part of the core's message
        QTest::newRow("even kernel") << "blocks.conv.kernel" << "1, 4" << "odd";
        QTest::newRow("empty channels") << "stem.channels" << "" << "empty list";
        QTest::newRow("not a number") << "head.width" << "4, eight" << "eight";
        QTest::newRow("duplicate") << "blocks.conv-attention.attention_channels" << "2, 2" << "duplicate";
        QTest::newRow("no activation") << "head.act" << "" << "empty list";
        QTest::newRow("max params unreachable") << "constraints.max_params" << "10" << "at most 10 parameters";
    }
    void invalidEditShownAtWidget()
    {
        QFETCH(QString, field);
        QFETCH(QString, text);
        QFETCH(QString, expected);
        ui::SpaceEditor editor;
        editor.resize(1200, 800);
        editor.show();
        editor.setSpace(core::resolveSpace("nac"));
        QVERIFY(editor.space().has_value());
        QWidget *w = editor.fieldWidget(field);
        QVERIFY2(w, qPrintable(field));
        QString before;
        if (auto *edit = qobject_cast<QLineEdit *>(w)) {
            before = edit->text();
            edit->setText(text);
            Q_EMIT edit->textEdited(text);
        } else {
            for (QCheckBox *c : w->findChildren<QCheckBox *>())
                c->setChecked(false);
        }
        QVERIFY(!editor.space().has_value());
        QCOMPARE(editor.errorField(), field);
        QLabel *label = editor.fieldErrorLabel(field);
        QVERIFY(label);
        QVERIFY(label->isVisible());
        QVERIFY2(label->text().contains(expected, Qt::CaseInsensitive), qPrintable(label->text()));
        QVERIFY(w->property("invalid").toBool());
        // No other field is marked.
        for (const QString &f : {QStringLiteral("stem.kernel"), QStringLiteral("blocks.conv.channels")})
            if (f != field)
                QVERIFY(!editor.fieldErrorLabel(f)->isVisible());
        QString error;
        QVERIFY(!editor.saveFile(m_dir.filePath(QStringLiteral("invalid.json")), &error));
        QVERIFY(!QFile::exists(m_dir.filePath(QStringLiteral("invalid.json"))));
        // Undo the edit: valid again, the message gone.
        editor.setSpace(core::resolveSpace("nac"));
        QVERIFY(editor.space().has_value());
        QVERIFY(!label->isVisible());
        QVERIFY(!w->property("invalid").toBool());
    }

    void spaceFileWithErrorsShownAtField()
    {
        nlohmann::json j = core::resolveSpace("nac").toJson();
        j["stem"]["kernel"] = {3, 2};
        const QString path = m_dir.filePath(QStringLiteral("bad-space.json"));
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray::fromStdString(j.dump()));
        f.close();
        ui::SpaceEditor editor;
        editor.show();
        QVERIFY(editor.loadFile(path));
        QVERIFY(!editor.space().has_value());
        QCOMPARE(editor.errorField(), QStringLiteral("stem.kernel"));
        QVERIFY(editor.fieldErrorLabel(QStringLiteral("stem.kernel"))->text().contains(QStringLiteral("odd")));

        // Not JSON at all: a message naming the file, the editor keeps what it showed.
        const QString garbage = m_dir.filePath(QStringLiteral("garbage.json"));
        QFile g(garbage);
        QVERIFY(g.open(QIODevice::WriteOnly));
        g.write("{ not json");
        g.close();
        editor.setSpace(core::resolveSpace("nac"));
        QSignalSpy errors(&editor, &ui::SpaceEditor::errorOccurred);
        QVERIFY(!editor.loadFile(garbage));
        QCOMPARE(errors.count(), 1);
        QVERIFY(errors.at(0).at(0).toString().contains(garbage));
        QVERIFY(editor.space().has_value());
    }

    void badStudyFiles_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::newRow("corrupt") << "corrupt";
        QTest::newRow("foreign sqlite") << "foreign";
        QTest::newRow("empty file") << "empty";
        QTest::newRow("missing") << "missing";
    }
    void badStudyFiles()
    {
        QFETCH(QString, kind);
        const QString path = m_dir.filePath(QStringLiteral("bad-%1.db").arg(kind));
        if (kind == QLatin1String("corrupt")) {
            QFile f(path);
            QVERIFY(f.open(QIODevice::WriteOnly));
            QByteArray bytes(8192, '\0');
            for (int i = 0; i < bytes.size(); ++i)
                bytes[i] = char((i * 7919) & 0xff);
            f.write(bytes);
        } else if (kind == QLatin1String("foreign")) {
            sqlite3 *db = nullptr;
            QCOMPARE(sqlite3_open(path.toUtf8().constData(), &db), SQLITE_OK);
            QCOMPARE(sqlite3_exec(db, "CREATE TABLE photos(id INTEGER, name TEXT); INSERT INTO photos VALUES(1,'a');",
                                  nullptr, nullptr, nullptr),
                     SQLITE_OK);
            sqlite3_close(db);
        } else if (kind == QLatin1String("empty")) {
            QFile f(path);
            QVERIFY(f.open(QIODevice::WriteOnly));
        }
        const QByteArray before = QFile::exists(path) ? [&] {
            QFile f(path);
            f.open(QIODevice::ReadOnly);
            return f.readAll();
        }() : QByteArray();

        ui::StudioContext context;
        ui::SearchPanel panel(&context);
        QSignalSpy errors(&panel, &ui::SearchPanel::errorOccurred);
        panel.attachStudy(path);
        QTRY_COMPARE_WITH_TIMEOUT(errors.count(), 1, 10000);
        const QString message = errors.at(0).at(0).toString();
        QVERIFY2(message.contains(path), qPrintable(message));
        QVERIFY(panel.studyMessage()->text().contains(path));
        QVERIFY(!panel.watcher()->isAttached());
        if (QFile::exists(path)) { // left untouched
            QFile f(path);
            QVERIFY(f.open(QIODevice::ReadOnly));
            QCOMPARE(f.readAll(), before);
        }
        if (kind == QLatin1String("missing"))
            QVERIFY(!QFile::exists(path)); // attaching read-only never creates a study
        // The panel stays usable: a real study attaches afterwards.
        const QString good = m_dir.filePath(QStringLiteral("good-%1.db").arg(kind));
        {
            auto store = core::StudyStore::createOrOpen(good.toStdString(), studyInfo(core::resolveSpace("nac")));
            Q_UNUSED(store);
        }
        QSignalSpy attached(&panel, &ui::SearchPanel::studyAttached);
        panel.attachStudy(good);
        QTRY_COMPARE_WITH_TIMEOUT(attached.count(), 1, 10000);
        QCOMPARE(errors.count(), 1);
        panel.flush();
        QVERIFY(panel.progressLabel()->text().contains(QStringLiteral("no trials yet")));
    }

    void liveStudyFollowsWriter()
    {
        const core::SearchSpace space = core::resolveSpace("nac");
        const QString path = m_dir.filePath(QStringLiteral("live.db"));
        const std::string spath = path.toStdString();
        { auto s = core::StudyStore::createOrOpen(spath, studyInfo(space)); }

        ui::StudioContext context;
        ui::SearchPanel panel(&context);
        panel.resize(1400, 900);
        panel.show();
        QSignalSpy attached(&panel, &ui::SearchPanel::studyAttached);
        panel.attachStudy(path);
        QTRY_COMPARE_WITH_TIMEOUT(attached.count(), 1, 10000);
        panel.flush();
        QTest::qWait(100); // first layout and paint of the charts happen before the measurement

        // The writer: 60 trials, 1 in 6 pruned after 3 epochs, 1 in 10 failed, ~25 ms apart.
        constexpr int kTrials = 60;
        std::atomic<bool> done{false};
        std::atomic<int> written{0};
        std::string writerError;
        std::thread writer([&]() {
            try {
                auto store = core::StudyStore::open(spath);
                core::SearchRandom rng(7);
                int made = 0;
                while (made < kTrials) {
                    const core::ArchSpec spec = space.sample(rng);
                    core::TrialRequest req;
                    req.spec = spec.toJson();
                    req.specHash = spec.canonicalHash();
                    req.generation = made / 20;
                    const auto e = store.enqueue(req);
                    if (!e.inserted)
                        continue;
                    const auto t = store.claim(e.id, "writer", 0);
                    const core::Cost cost = core::computeCost(spec);
                    core::TrialOutcome out;
                    out.metrics = {{"validation", {{"mean", 0.2 + 0.5 * rng.uniform()}}}};
                    out.cost = {{"params", cost.params}, {"macs", cost.macs}, {"bops", cost.bops}};
                    out.values = {out.metrics["validation"]["mean"].get<double>(), cost.bops};
                    if (made % 10 == 9) {
                        store.fail(t.id, "diverged");
                    } else if (made % 6 == 5) {
                        store.reportEpoch(t.id, 3, out.values[0]);
                        out.fidelity = 3;
                        store.prune(t.id, out, "asha");
                    } else {
                        for (int ep = 1; ep <= 5; ++ep)
                            store.reportEpoch(t.id, ep, out.values[0] + 0.01 * (5 - ep));
                        out.fidelity = 5;
                        out.history = nlohmann::json::array();
                        for (int ep = 1; ep <= 5; ++ep)
                            out.history.push_back({{"epoch", ep}, {"loss", 1.0 / ep}, {"validation_mean", out.values[0] + 0.01 * (5 - ep)}});
                        store.complete(t.id, out);
                    }
                    ++made;
                    written = made;
                    std::this_thread::sleep_for(std::chrono::milliseconds(25));
                }
            } catch (const std::exception &e) {
                writerError = e.what();
            }
            done = true;
        });

        StallMeter meter;
        meter.start();
        std::vector<int> pointCounts;
        QElapsedTimer clock;
        clock.start();
        while (clock.elapsed() < 30000) {
            QTest::qWait(20);
            const int n = panel.paretoChart()->pointCount();
            if (pointCounts.empty() || pointCounts.back() != n)
                pointCounts.push_back(n);
            if (done && panel.watcher()->counts().total() == kTrials && panel.trialModel()->rowCount() == kTrials &&
                !panel.watcher()->trials().empty())
                break;
        }
        meter.stop();
        writer.join();
        QVERIFY2(writerError.empty(), writerError.c_str());
        QCOMPARE(panel.watcher()->counts().total(), kTrials);
        panel.flush();
        QVERIFY2(panel.progressLabel()->text().contains(QStringLiteral("60</b> / 60 finished")),
                 qPrintable(panel.progressLabel()->text()));

        // The chart grew while the writer wrote (several distinct sizes), not once at the end.
        QVERIFY2(pointCounts.size() >= 4, qPrintable(QString::number(pointCounts.size())));
        QVERIFY(std::is_sorted(pointCounts.begin(), pointCounts.end()));

        const auto store = core::StudyStore::open(spath, core::StudyStore::Mode::ReadOnly);
        const auto all = store.listTrials();
        const auto counts = store.counts();
        QCOMPARE(counts.failed, 6);
        QCOMPARE(counts.complete + counts.pruned + counts.failed, kTrials);
        QCOMPARE(panel.paretoChart()->pointCount(), counts.complete + counts.pruned);
        QCOMPARE(panel.trialModel()->rowCount(), kTrials);

        // The front is the core's rule over the stored trials (highest fidelity: complete ones).
        std::vector<std::int64_t> expected;
        for (const auto &t : core::studyFront(all))
            expected.push_back(t.id);
        QVERIFY(!expected.empty());
        QCOMPARE(panel.frontIds(), expected);
        QCOMPARE(panel.paretoChart()->frontIds(), expected);
        for (std::int64_t id : expected)
            QCOMPARE(store.trial(id)->state, core::TrialState::Complete);

        // Redraws were coalesced: far fewer than one per trial write.
        QVERIFY2(panel.refreshCount() < kTrials, qPrintable(QString::number(panel.refreshCount())));
        QVERIFY2(panel.paretoChart()->redrawCount() < kTrials, qPrintable(QString::number(panel.paretoChart()->redrawCount())));
        // The event loop never stalled.
        qInfo("longest event-loop gap while trials streamed in: %.1f ms over %d ticks", meter.maxGapMs(), meter.ticks());
        QVERIFY2(meter.maxGapMs() < 100.0, qPrintable(QString::number(meter.maxGapMs())));

        // Hypervolume over time: one point per finished trial, ending at the core's
        // hypervolume of the final front.
        QCOMPARE(int(panel.hypervolumeSeries()->count()), kTrials);
        const double hv = core::studyHypervolume(core::studyFront(all), core::SearchOptions{});
        QVERIFY(hv > 0);
        QCOMPARE(panel.hypervolumeSeries()->at(panel.hypervolumeSeries()->count() - 1).y(), hv);

        // Chart -> table -> inspector.
        const std::int64_t pick = expected.front();
        panel.selectTrial(pick);
        const QModelIndex current = panel.trialTable()->currentIndex();
        QVERIFY(current.isValid());
        QCOMPARE(panel.trialProxy()->data(current, ui::TrialTableModel::IdRole).toLongLong(), qlonglong(pick));
        QCOMPARE(panel.paretoChart()->selected(), pick);
        QTRY_COMPARE_WITH_TIMEOUT(panel.inspector()->trialId(), pick, 5000);
        const core::ArchSpec spec = core::ArchSpec::fromJson(store.trial(pick)->spec);
        QCOMPARE(panel.inspector()->layerTable()->rowCount(), int(core::computeCost(spec).layers.size()) + 1);
        QCOMPARE(panel.inspector()->layerTable()->item(panel.inspector()->layerTable()->rowCount() - 1, 2)->text(),
                 QString::number(core::computeCost(spec).params));
        QVERIFY(panel.inspector()->diagram()->boxTexts().first().startsWith(QStringLiteral("input")));
        QVERIFY(panel.inspector()->diagram()->boxTexts().last().startsWith(QStringLiteral("output")));

        // Table -> chart: select another row through the view.
        const int otherRow = panel.trialProxy()->rowCount() - 1;
        panel.trialTable()->selectionModel()->setCurrentIndex(panel.trialProxy()->index(otherRow, 0),
                                                              QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
        const qlonglong otherId = panel.trialProxy()->data(panel.trialProxy()->index(otherRow, 0), ui::TrialTableModel::IdRole).toLongLong();
        QCOMPARE(panel.paretoChart()->selected(), std::int64_t(otherId));

        // The filter: "failed" keeps exactly the failed trials.
        panel.trialProxy()->setFilterFixedString(QStringLiteral("failed"));
        QCOMPARE(panel.trialProxy()->rowCount(), 6);
        panel.trialProxy()->setFilterFixedString(QString());

        // A click on the chart at a front point selects that trial.
        const auto &t = panel.watcher()->trials().at(pick);
        auto *chart = panel.paretoChart();
        const QPointF scene = chart->chart()->mapToScene(chart->chart()->mapToPosition(QPointF(t.values[1], t.values[0]),
                                                                                      chart->chart()->series().first()));
        const QPoint widgetPos = chart->mapFromScene(scene);
        panel.selectTrial(otherId);
        QSignalSpy clicked(chart, &ui::ParetoChart::trialClicked);
        QTest::mouseClick(chart->viewport(), Qt::LeftButton, {}, widgetPos);
        QCOMPARE(clicked.count(), 1);
        QCOMPARE(clicked.at(0).at(0).value<std::int64_t>(), pick);
    }

private:
    QTemporaryDir m_dir;
};

QTEST_MAIN(TestStudioSearch)
#include "tst_studio_search.moc"
