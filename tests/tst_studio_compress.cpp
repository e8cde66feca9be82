// braggnac-test-libs: braggnac_ui
// The studio's Compress stage, driven offscreen: a tiny model trained here is compressed over a
// bits x rounds grid; the record table has one row per (bits, round) in order, the chart one
// curve per bit width (a click on a point selects its row), and the BOPs of every saved row (the core's choice, and a row rebuilt by
// re-running its bit width) equal core::quantisedCost of the saved folder, its validation
// distance the fixed engine's (evaluateQuantised). Saving over a non-empty folder writes
// nothing until confirmed; bad options and unlabelled data give errors naming the field / file
// and leave the panel usable; a run can be cancelled; the main window registers the stage after
// Search and hands models over (Search -> Compress -> Export).
#include <algorithm>
#include <cmath>
#include <memory>

#include <QApplication>
#include <QChart>
#include <QDir>
#include <QFile>
#include <QMessageBox>
#include <QPushButton>
#include <QSignalSpy>
#include <QSpinBox>
#include <QLineEdit>
#include <QStandardItemModel>
#include <QTemporaryDir>
#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/compress/intref.h"
#include "core/io/patchdataset.h"
#include "core/nn/compress.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "core/sim/simulator.h"
#include "ui/chartview.h"
#include "ui/compresspanel.h"
#include "ui/exportpanel.h"
#include "ui/mainwindow.h"
#include "ui/searchpanel.h"
#include "ui/job.h"
#include "ui/studiocontext.h"
#include "ui/tableexport.h"

using namespace braggnac;

namespace {

/// stem 6x3x3 (ReLU) -> conv 6x3x3 (ReLU) -> dense 12 (ReLU) -> out: trains in about a second.
core::ArchSpec tinySpec()
{
    core::ArchSpec s;
    s.name = "tiny";
    s.inputSize = 11;
    s.stem = {6, 3, core::Norm::None, core::Activation::ReLU};
    core::BlockSpec b;
    b.type = core::BlockType::Conv;
    b.layers = {{6, 3, core::Norm::None, core::Activation::ReLU}};
    s.blocks = {b};
    s.head = {{12, core::Norm::None, core::Activation::ReLU}};
    return s;
}

QMessageBox *visibleBox(QWidget *panel, const QString &name)
{
    for (QMessageBox *box : panel->findChildren<QMessageBox *>(name))
        if (box->isVisible())
            return box;
    return nullptr;
}

void closeBoxes(QWidget *panel)
{
    for (QMessageBox *box : panel->findChildren<QMessageBox *>())
        box->close();
    QCoreApplication::processEvents();
}

QStringList entries(const QString &dir)
{
    return QDir(dir).entryList(QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden, QDir::Name);
}

/// BOPs of a saved quantised model folder, from its own files (core::quantisedCost).
double folderBops(const QString &folder)
{
    const core::Model m = core::Model::load(folder.toStdString());
    const core::LayerPlan plan = core::LayerPlan::lower(m.spec());
    const core::IntegerReference ref(plan, m.namedParameters(), core::modelQuantSpec(m));
    return core::quantisedCost(ref).bops;
}

} // namespace

class TestStudioCompress : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void recordsMatchCoreCost();
    void overwriteAsksFirst();
    void badInputKeepsPanelUsable();
    void cancel();
    void mainWindowWiring();

private:
    QString path(const QString &name) const { return m_dir.filePath(name); }
    void configure(ui::CompressPanel &panel, const QString &bits, int rounds, int epochs);

    QTemporaryDir m_dir;
    std::shared_ptr<const core::PatchDataset> m_data;
    std::shared_ptr<const core::Model> m_model;
};

void TestStudioCompress::initTestCase()
{
    QVERIFY(m_dir.isValid());
    core::PatchSimOptions so;
    so.seed = 3;
    so.threads = 1;
    m_data = std::make_shared<const core::PatchDataset>(core::simulatePatches(800, so));
    core::TrainOptions t;
    t.epochs = 4;
    t.batchSize = 64;
    t.learningRate = 2e-3;
    t.seed = 1;
    t.threads = 1;
    t.device = "cpu";
    core::TrainResult trained = core::trainModel(tinySpec(), *m_data, t);
    QVERIFY(trained.failure.empty());
    m_model = std::make_shared<const core::Model>(std::move(trained.model));
}

void TestStudioCompress::configure(ui::CompressPanel &panel, const QString &bits, int rounds, int epochs)
{
    core::CompressOptions o;
    o.pruneRounds = rounds;
    o.pruneFraction = 0.3;
    o.epochsPerRound = epochs;
    o.train.learningRate = 5e-4;
    o.train.batchSize = 128;
    o.train.seed = 1;
    o.train.threads = 1;
    panel.setOptions(o);
    panel.findChild<QLineEdit *>(QStringLiteral("bitsGrid"))->setText(bits);
}

void TestStudioCompress::recordsMatchCoreCost()
{
    ui::StudioContext context;
    context.setDataset(m_data, QStringLiteral("sim.h5"));
    context.setModel(m_model);
    ui::CompressPanel panel(&context);
    configure(panel, QStringLiteral("4,8"), 2, 1);
    QSignalSpy finished(&panel, &ui::CompressPanel::compressFinished);
    QSignalSpy errors(&panel, &ui::CompressPanel::errorOccurred);
    QSignalSpy saved(&panel, &ui::CompressPanel::modelSaved);
    QTest::mouseClick(panel.findChild<QPushButton *>(QStringLiteral("compressButton")), Qt::LeftButton);
    QVERIFY(panel.isBusy());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count() + errors.count(), 1, 120000);
    QVERIFY2(errors.isEmpty(), errors.isEmpty() ? "" : qPrintable(errors.first().first().toString()));

    // bits x rounds rows, in the core's order, and one curve per bit width.
    QStandardItemModel *table = panel.recordModel();
    QCOMPARE(table->rowCount(), 6);
    const int expected[6][2] = {{4, 0}, {4, 1}, {4, 2}, {8, 0}, {8, 1}, {8, 2}};
    for (int row = 0; row < 6; ++row) {
        QCOMPARE(table->index(row, ui::CompressPanel::ColBits).data(Qt::EditRole).toInt(), expected[row][0]);
        QCOMPARE(table->index(row, ui::CompressPanel::ColRound).data(Qt::EditRole).toInt(), expected[row][1]);
        const double sparsity = table->index(row, ui::CompressPanel::ColSparsity).data(Qt::EditRole).toDouble();
        const double want = 1.0 - std::pow(0.7, expected[row][1]); // 30 % of the remaining per round
        QVERIFY2(std::abs(sparsity - want) < 0.01, qPrintable(QStringLiteral("row %1 sparsity %2").arg(row).arg(sparsity)));
        QCOMPARE(table->index(row, ui::CompressPanel::ColBops).data(Qt::EditRole).toDouble(),
                 panel.records()[std::size_t(row)].bops);
    }
    QCOMPARE(panel.curvePointCount(4), 3);
    QCOMPARE(panel.curvePointCount(8), 3);
    // Pruning removes BOPs within a bit width; 4 bits cost less than 8 at the same round.
    for (int row : {1, 2, 4, 5})
        QVERIFY(panel.records()[std::size_t(row)].bops < panel.records()[std::size_t(row - 1)].bops);
    QVERIFY(panel.records()[0].bops < panel.records()[3].bops);
    const int chosen = panel.chosenRecord();
    QVERIFY(chosen >= 0 && chosen < 6);
    QCOMPARE(panel.selectedRecord(), chosen);
    QCOMPARE(table->index(chosen, ui::CompressPanel::ColChosen).data(Qt::DisplayRole).toString(), QStringLiteral("chosen"));

    // CSV of the table: header + 6 rows, full precision BOPs.
    const QString csv = ui::tableToCsv(*table, Qt::EditRole);
    QCOMPARE(csv.count(QLatin1Char('\n')), 7);

    // The core's choice saved: its BOPs are the saved folder's quantisedCost, its validation
    // distance the fixed engine's on the saved folder.
    const QString chosenFolder = path(QStringLiteral("chosen.model"));
    QVERIFY(panel.saveSelected(chosenFolder));
    QTRY_COMPARE_WITH_TIMEOUT(saved.count() + errors.count(), 1, 60000);
    QVERIFY(errors.isEmpty());
    QCOMPARE(saved.first().first().toString(), chosenFolder);
    const core::CompressRecord c = panel.records()[std::size_t(chosen)];
    QCOMPARE(folderBops(chosenFolder), c.bops);
    QCOMPARE(table->index(chosen, ui::CompressPanel::ColBops).data(Qt::EditRole).toDouble(), folderBops(chosenFolder));
    {
        const core::Model m = core::Model::load(chosenFolder.toStdString());
        const core::Evaluation ev = core::evaluateQuantised(m, *m_data, 1);
        QVERIFY(std::abs(ev.overall.mean - c.validation) < 1e-9);
        int convs = 0;
        for (const auto &[name, op] : core::modelQuantSpec(m).ops)
            if (op.kind == core::OpKind::Conv) {
                QCOMPARE(op.weight.width, c.bits);
                ++convs;
            }
        QCOMPARE(convs, 2);
    }

    // Another row (not the core's choice) rebuilt by the panel: same BOPs as its record.
    // Chosen by clicking its point on the chart.
    const int other = chosen == 2 ? 4 : 2;
    panel.resize(1400, 900);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    {
        const core::CompressRecord &r = panel.records()[std::size_t(other)];
        QChart *chart = panel.chart()->chart();
        const QPointF scene = chart->mapToScene(chart->mapToPosition(QPointF(r.bops, r.validation)));
        const QPoint at = panel.chart()->mapFromScene(scene);
        QTest::mouseClick(panel.chart()->viewport(), Qt::LeftButton, {}, at);
    }
    QTRY_COMPARE(panel.selectedRecord(), other);
    const QString otherFolder = path(QStringLiteral("other.model"));
    QVERIFY(panel.saveSelected(otherFolder));
    QTRY_COMPARE_WITH_TIMEOUT(saved.count() + errors.count(), 2, 60000);
    QVERIFY2(errors.isEmpty(), errors.isEmpty() ? "" : qPrintable(errors.first().first().toString()));
    const core::CompressRecord o = panel.records()[std::size_t(other)];
    QCOMPARE(folderBops(otherFolder), o.bops);
    QVERIFY(folderBops(otherFolder) != c.bops);
    {
        const core::Model m = core::Model::load(otherFolder.toStdString());
        QVERIFY(std::abs(core::evaluateQuantised(m, *m_data, 1).overall.mean - o.validation) < 1e-9);
        QCOMPARE(m.recipe["pruning"]["rounds"].get<int>(), o.round);
    }
}

void TestStudioCompress::overwriteAsksFirst()
{
    ui::StudioContext context;
    context.setDataset(m_data, QStringLiteral("sim.h5"));
    context.setModel(m_model);
    ui::CompressPanel panel(&context);
    configure(panel, QStringLiteral("6"), 0, 0);
    QSignalSpy finished(&panel, &ui::CompressPanel::compressFinished);
    QSignalSpy saved(&panel, &ui::CompressPanel::modelSaved);
    QVERIFY(panel.startCompress());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
    QCOMPARE(panel.recordModel()->rowCount(), 1);

    const QString folder = path(QStringLiteral("occupied"));
    QVERIFY(QDir().mkpath(folder));
    QFile marker(QDir(folder).filePath(QStringLiteral("keep.txt")));
    QVERIFY(marker.open(QIODevice::WriteOnly));
    marker.write("mine\n");
    marker.close();

    // Not confirmed: a question, no job, nothing written.
    QVERIFY(!panel.saveSelected(folder));
    QVERIFY(!panel.isBusy());
    QMessageBox *box = visibleBox(&panel, QStringLiteral("confirmOverwriteBox"));
    QVERIFY(box);
    QVERIFY(box->text().contains(folder));
    box->button(QMessageBox::No)->click();
    QCoreApplication::processEvents();
    QVERIFY(!panel.isBusy());
    QTest::qWait(50);
    QCOMPARE(saved.count(), 0);
    QCOMPARE(entries(folder), QStringList{QStringLiteral("keep.txt")});

    // Confirmed: replaced by the model folder.
    QVERIFY(!panel.saveSelected(folder));
    box = visibleBox(&panel, QStringLiteral("confirmOverwriteBox"));
    QVERIFY(box);
    box->button(QMessageBox::Yes)->click();
    QTRY_COMPARE_WITH_TIMEOUT(saved.count(), 1, 60000);
    QVERIFY(!QFile::exists(QDir(folder).filePath(QStringLiteral("keep.txt"))));
    QVERIFY(QFile::exists(QDir(folder).filePath(QStringLiteral("quantization.json"))));
    QCOMPARE(folderBops(folder), panel.records()[0].bops);
}

void TestStudioCompress::badInputKeepsPanelUsable()
{
    ui::StudioContext context;
    context.setModel(m_model);
    ui::CompressPanel panel(&context);
    QSignalSpy errors(&panel, &ui::CompressPanel::errorOccurred);

    // No dataset.
    QVERIFY(!panel.startCompress());
    QCOMPARE(errors.count(), 1);
    QVERIFY(errors.last().first().toString().contains(QStringLiteral("no dataset")));
    closeBoxes(&panel);

    // Unlabelled dataset: named, with the missing field.
    auto unlabelled = std::make_shared<core::PatchDataset>(*m_data);
    unlabelled->centers.clear();
    unlabelled->labelSource.clear();
    context.setDataset(unlabelled, QStringLiteral("unlabelled.h5"));
    QVERIFY(!panel.startCompress());
    QCOMPARE(errors.count(), 2);
    QVERIFY(errors.last().first().toString().startsWith(QStringLiteral("unlabelled.h5: /centers")));
    QVERIFY(visibleBox(&panel, QStringLiteral("compressErrorBox")));
    closeBoxes(&panel);

    // A bad bits grid names the field.
    context.setDataset(m_data, QStringLiteral("sim.h5"));
    configure(panel, QStringLiteral("4,x"), 0, 0);
    QVERIFY(!panel.startCompress());
    QCOMPARE(errors.count(), 3);
    QVERIFY(errors.last().first().toString().contains(QStringLiteral("bits grid: 'x'")));
    configure(panel, QStringLiteral("20"), 0, 0);
    QVERIFY(!panel.startCompress());
    QVERIFY(errors.last().first().toString().contains(QStringLiteral("20 bits")));
    closeBoxes(&panel);

    // A model folder that does not exist: the job fails naming it; the panel stays usable.
    panel.setModelFolder(path(QStringLiteral("missing.model")));
    configure(panel, QStringLiteral("8"), 0, 0);
    QVERIFY(panel.startCompress());
    QTRY_COMPARE_WITH_TIMEOUT(errors.count(), 5, 30000);
    QVERIFY(errors.last().first().toString().contains(path(QStringLiteral("missing.model"))));
    QVERIFY(!panel.isBusy());
    closeBoxes(&panel);

    // A trial source (the main window passes the Search inspector's folder).
    const QString trialFolder = path(QStringLiteral("trial-7.model"));
    panel.setTrialSource([trialFolder]() { return trialFolder; });
    QVERIFY(panel.useSelectedTrial());
    QCOMPARE(panel.modelFolder(), trialFolder);

    // Back to the studio model: it runs.
    panel.useStudioModel();
    QSignalSpy finished(&panel, &ui::CompressPanel::compressFinished);
    QVERIFY(panel.startCompress());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
    QCOMPARE(panel.recordModel()->rowCount(), 1);
}

void TestStudioCompress::cancel()
{
    ui::StudioContext context;
    context.setDataset(m_data, QStringLiteral("sim.h5"));
    context.setModel(m_model);
    ui::CompressPanel panel(&context);
    configure(panel, QStringLiteral("8,6"), 3, 400); // minutes if not cancelled
    QSignalSpy cancelled(&panel, &ui::CompressPanel::compressCancelled);
    QSignalSpy progressed(panel.job(), &ui::Job::progressUpdated);
    QVERIFY(panel.startCompress());
    QTRY_VERIFY_WITH_TIMEOUT(progressed.count() >= 2, 30000);
    panel.cancel();
    QTRY_COMPARE_WITH_TIMEOUT(cancelled.count(), 1, 30000);
    QVERIFY(!panel.isBusy());
    QVERIFY(panel.statusText().contains(QStringLiteral("cancelled")));
    QVERIFY(panel.findChild<QPushButton *>(QStringLiteral("compressButton"))->isEnabled());
    QVERIFY(!panel.findChild<QPushButton *>(QStringLiteral("saveSelectedButton"))->isEnabled());
}

void TestStudioCompress::mainWindowWiring()
{
    // The stages are registered after Search, and the hand-overs: Search's "Use this model" ->
    // the model folder to compress; a saved compressed model -> the model folder to export.
    ui::MainWindow window;
    const QStringList keys = window.stageKeys();
    QVERIFY(keys.indexOf(QStringLiteral("search")) >= 0);
    QCOMPARE(keys.indexOf(QStringLiteral("compress")), keys.indexOf(QStringLiteral("search")) + 1);
    QCOMPARE(keys.indexOf(QStringLiteral("export")), keys.indexOf(QStringLiteral("compress")) + 1);
    auto *search = window.findChild<ui::SearchPanel *>();
    auto *compress = window.findChild<ui::CompressPanel *>();
    auto *exporter = window.findChild<ui::ExportPanel *>();
    QVERIFY(search && compress && exporter);
    window.setStage(QStringLiteral("compress"));
    QCOMPARE(window.currentStage(), QStringLiteral("compress"));
    const QString trial = path(QStringLiteral("study.models/trial-3"));
    Q_EMIT search->useModelRequested(trial);
    QCOMPARE(compress->modelFolder(), trial);
    // "Selected Search trial" reads the Search inspector: none selected yet.
    QSignalSpy errors(compress, &ui::CompressPanel::errorOccurred);
    auto *fromSearch = compress->findChild<QPushButton *>(QStringLiteral("selectedTrialButton"));
    QVERIFY(fromSearch && !fromSearch->isHidden());
    fromSearch->click();
    QCOMPARE(errors.count(), 1);
    QVERIFY(errors.first().first().toString().contains(QStringLiteral("no Search trial")));
    QCOMPARE(compress->modelFolder(), trial);
    closeBoxes(compress);
    const QString saved = path(QStringLiteral("nac8.model"));
    Q_EMIT compress->modelSaved(saved);
    QCOMPARE(exporter->modelFolder(), saved);
    QCOMPARE(exporter->outputFolder(), path(QStringLiteral("nac8-hls")));
}

QTEST_MAIN(TestStudioCompress)
#include "tst_studio_compress.moc"
