// braggnac-test-libs: braggnac_ui
// The studio's Dataset, Train and Evaluate panels, driven through their widgets offscreen:
// simulated and opened datasets (bit-exact against the core), errors that name the file and
// leave the panel usable, a live training chart that grows per epoch and can be cancelled while
// the event loop keeps ticking (measured), and an evaluation that matches core::evaluateModel.
#include <algorithm>
#include <cmath>
#include <memory>

#include <QApplication>
#include <QComboBox>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QImage>
#include <QLineSeries>
#include <QMessageBox>
#include <QPushButton>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTimer>
#include <QtTest>

#include "core/common/runtime.h"
#include "core/cost/cost.h"
#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "core/arch/archspec.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "core/peaks/finder.h"
#include "core/peaks/fitter.h"
#include "core/sim/simulator.h"
#include "ui/datasetpanel.h"
#include "ui/distancehistogram.h"
#include "ui/evaluatepanel.h"
#include "ui/historychart.h"
#include "ui/job.h"
#include "ui/patchgallery.h"
#include "ui/studiocontext.h"
#include "ui/trainpanel.h"

using namespace braggnac;

namespace {

/// Records the longest gap between ticks of a 10 ms timer: how long the event loop stalled.
class StallMeter : public QObject {
public:
    StallMeter()
    {
        m_timer.setInterval(10);
        m_timer.setTimerType(Qt::PreciseTimer);
        QObject::connect(&m_timer, &QTimer::timeout, this, [this] {
            const qint64 now = m_clock.nsecsElapsed();
            const double gap = double(now - m_last) / 1e6;
            if (gap > m_maxGapMs) {
                m_maxGapMs = gap;
                m_maxGapAtMs = double(now) / 1e6;
            }
            m_last = now;
            ++m_ticks;
        });
    }
    void start()
    {
        m_clock.start();
        m_last = m_clock.nsecsElapsed();
        m_maxGapMs = 0;
        m_maxGapAtMs = 0;
        m_ticks = 0;
        m_timer.start();
    }
    void stop() { m_timer.stop(); }
    double maxGapMs() const { return m_maxGapMs; }
    /// When the longest gap ended, in ms after start().
    double maxGapAtMs() const { return m_maxGapAtMs; }
    double elapsedMs() const { return double(m_clock.nsecsElapsed()) / 1e6; }
    int ticks() const { return m_ticks; }

private:
    QTimer m_timer;
    QElapsedTimer m_clock;
    qint64 m_last = 0;
    double m_maxGapMs = 0;
    double m_maxGapAtMs = 0;
    int m_ticks = 0;
};

/// A small, fast network for GUI tests: stem 8x3x3, one conv layer 8x3x3, head 16.
core::ArchSpec smallSpec(int inputSize = 11)
{
    core::ArchSpec s;
    s.name = "tiny";
    s.inputSize = inputSize;
    s.stem = {8, 3, core::Norm::None, core::Activation::ReLU};
    core::BlockSpec b;
    b.type = core::BlockType::Conv;
    b.layers = {{8, 3, core::Norm::None, core::Activation::ReLU}};
    s.blocks = {b};
    s.head = {{16, core::Norm::None, core::Activation::ReLU}};
    return s;
}

core::PatchDataset simulated(std::size_t n, std::uint64_t seed, int patchSize = 11)
{
    core::PatchSimOptions o;
    o.seed = seed;
    o.patchSize = patchSize;
    return core::simulatePatches(n, o);
}

void closeMessageBoxes(QWidget *panel)
{
    for (QMessageBox *box : panel->findChildren<QMessageBox *>())
        box->close();
    QCoreApplication::processEvents();
}

bool visibleBox(QWidget *panel, const QString &name, const QString &mustContain)
{
    for (QMessageBox *box : panel->findChildren<QMessageBox *>(name))
        if (box->isVisible() && box->text().contains(mustContain))
            return true;
    return false;
}

} // namespace

class TestStudioTrain : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();

    void simulateShowsSummaryAndGallery();
    void openFile_data();
    void openFile();
    void saveAsWritesAtomically();
    void simulateCancel();
    void buildFromFramesMatchesCore();
    void trainLiveChartCancelAndStall();
    void trainFinishSaveLoadUse();
    void trainErrors_data();
    void trainErrors();
    void evaluateMatchesCore_data();
    void evaluateMatchesCore();
    void evaluateWrongPatchSize();

private:
    QString path(const QString &name) const { return m_dir.filePath(name); }

    QTemporaryDir m_dir;
    core::PatchDataset m_sim;        // 2000 labelled 11x11 patches, seed 7
    core::PatchDataset m_sim15;      // 300 labelled 15x15 patches
    QString m_simPath, m_sim15Path, m_unlabelledPath, m_specPath, m_badSpecPath;
};

void TestStudioTrain::initTestCase()
{
    QVERIFY(m_dir.isValid());
    m_sim = simulated(2000, 7);
    m_simPath = path(QStringLiteral("sim.h5"));
    core::writePatchDataset(m_simPath.toStdString(), m_sim);
    m_sim15 = simulated(300, 5, 15);
    m_sim15Path = path(QStringLiteral("sim15.h5"));
    core::writePatchDataset(m_sim15Path.toStdString(), m_sim15);

    core::PatchDataset unlabelled = simulated(200, 3);
    unlabelled.centers.clear();
    unlabelled.labelSource.clear();
    m_unlabelledPath = path(QStringLiteral("unlabelled.h5"));
    core::writePatchDataset(m_unlabelledPath.toStdString(), unlabelled);

    QFile garbage(path(QStringLiteral("garbage.h5")));
    QVERIFY(garbage.open(QIODevice::WriteOnly));
    garbage.write("this is not an HDF5 file\n");
    garbage.close();

    // An HDF5 file that is valid but has no /patches: a frame stack.
    core::writeHdf5Frames(path(QStringLiteral("frames-only.h5")).toStdString(),
                          {core::Frame(16, 16, 3.f)});

    m_specPath = path(QStringLiteral("tiny.json"));
    smallSpec().save(m_specPath.toStdString());
    m_badSpecPath = path(QStringLiteral("bad-spec.json"));
    QFile bad(m_badSpecPath);
    QVERIFY(bad.open(QIODevice::WriteOnly));
    bad.write("{\"stem\": {\"channels\": 8, \"kernel\": 4}}");
    bad.close();
}

// --- Dataset panel ---------------------------------------------------------------------------

void TestStudioTrain::simulateShowsSummaryAndGallery()
{
    ui::StudioContext context;
    ui::DatasetPanel panel(&context);
    QSignalSpy ready(&panel, &ui::DatasetPanel::datasetReady);
    QSignalSpy errors(&panel, &ui::DatasetPanel::errorOccurred);
    panel.findChild<QSpinBox *>(QStringLiteral("simCount"))->setValue(500);
    panel.findChild<QSpinBox *>(QStringLiteral("simSeed"))->setValue(11);
    QTest::mouseClick(panel.findChild<QPushButton *>(QStringLiteral("simulateButton")), Qt::LeftButton);
    QVERIFY(panel.isBusy() || ready.count() == 1);
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 1, 20000);
    QCOMPARE(errors.count(), 0);

    const core::PatchDataset expected = simulated(500, 11);
    auto data = context.dataset();
    QVERIFY(data);
    QCOMPARE(data->size(), std::size_t(500));
    QVERIFY(data->patches == expected.patches); // bit-exact: the panel runs the core simulator
    QVERIFY(data->centers == expected.centers);
    QVERIFY(context.datasetPath().isEmpty());

    std::size_t train = 0, validation = 0, test = 0;
    for (std::uint8_t v : expected.split)
        (v == 0 ? train : v == 1 ? validation : test) += 1;
    const auto &s = panel.summary();
    QCOMPARE(s.n, std::size_t(500));
    QCOMPARE(s.patchSize, 11);
    QCOMPARE(s.labelSource, QStringLiteral("simulation"));
    QCOMPARE(s.train, train);
    QCOMPARE(s.validation, validation);
    QCOMPARE(s.test, test);
    QCOMPARE(s.train + s.validation + s.test, std::size_t(500));
    QVERIFY(panel.summaryText().contains(QStringLiteral("train %1, validation %2, test %3").arg(train).arg(validation).arg(test)));

    // Gallery: 24 tiles spread over the dataset, each with its label centre.
    ui::PatchGallery *gallery = panel.gallery();
    QCOMPARE(gallery->shownCount(), 24);
    for (int t : {0, 7, 23}) {
        const std::size_t row = gallery->rowOf(t);
        QCOMPARE(row, std::size_t(t) * 500 / 24);
        QPointF c;
        QVERIFY(gallery->centreOf(t, &c));
        QCOMPARE(c.y(), double(expected.centers[2 * row]));
        QCOMPARE(c.x(), double(expected.centers[2 * row + 1]));
    }
    QVERIFY(!panel.isBusy());
}

void TestStudioTrain::openFile_data()
{
    QTest::addColumn<QString>("file");
    QTest::addColumn<bool>("ok");
    QTest::addColumn<QString>("reason"); // part of the core's message
    QTest::newRow("labelled") << m_simPath << true << QString();
    QTest::newRow("unlabelled") << m_unlabelledPath << true << QString();
    QTest::newRow("garbage") << path(QStringLiteral("garbage.h5")) << false << QString();
    QTest::newRow("missing") << path(QStringLiteral("does-not-exist.h5")) << false << QString();
    QTest::newRow("no /patches") << path(QStringLiteral("frames-only.h5")) << false << QStringLiteral("/patches");
}

void TestStudioTrain::openFile()
{
    QFETCH(QString, file);
    QFETCH(bool, ok);
    QFETCH(QString, reason);
    ui::StudioContext context;
    ui::DatasetPanel panel(&context);
    QSignalSpy ready(&panel, &ui::DatasetPanel::datasetReady);
    QSignalSpy errors(&panel, &ui::DatasetPanel::errorOccurred);
    QSignalSpy contextChanged(&context, &ui::StudioContext::datasetChanged);

    QVERIFY(panel.openFile(file));
    QTRY_COMPARE_WITH_TIMEOUT(ready.count() + errors.count(), 1, 20000);
    QVERIFY(!panel.isBusy());
    if (ok) {
        QCOMPARE(errors.count(), 0);
        QCOMPARE(context.datasetPath(), file);
        const core::PatchDataset direct = core::readPatchDataset(file.toStdString());
        QVERIFY(context.dataset()->patches == direct.patches);
        QCOMPARE(panel.summary().n, direct.size());
        QCOMPARE(panel.summary().labelSource.isEmpty(), !direct.labelled());
        QCOMPARE(panel.summaryText().contains(QStringLiteral("unlabelled")), !direct.labelled());
        return;
    }
    // The message names the file (and the core's reason), is shown in a non-modal box, and the
    // context is untouched.
    const QString message = errors.at(0).at(0).toString();
    QVERIFY2(message.contains(file), qPrintable(message));
    if (!reason.isEmpty())
        QVERIFY2(message.contains(reason), qPrintable(message));
    QCOMPARE(contextChanged.count(), 0);
    QVERIFY(!context.dataset());
    QVERIFY(visibleBox(&panel, QStringLiteral("datasetError"), file));
    QVERIFY(panel.statusText().contains(file));
    closeMessageBoxes(&panel);

    // Still usable: the buttons are enabled and the next open works.
    QVERIFY(panel.findChild<QPushButton *>(QStringLiteral("openButton"))->isEnabled());
    QVERIFY(panel.findChild<QPushButton *>(QStringLiteral("simulateButton"))->isEnabled());
    QVERIFY(panel.openFile(m_simPath));
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 1, 20000);
    QCOMPARE(context.dataset()->size(), m_sim.size());
}

void TestStudioTrain::saveAsWritesAtomically()
{
    ui::StudioContext context;
    ui::DatasetPanel panel(&context);
    context.setDataset(std::make_shared<core::PatchDataset>(m_sim));
    QVERIFY(panel.findChild<QPushButton *>(QStringLiteral("saveButton"))->isEnabled());
    QTemporaryDir out;
    const QString target = out.filePath(QStringLiteral("copy.h5"));
    QSignalSpy saved(&panel, &ui::DatasetPanel::saved);
    QSignalSpy errors(&panel, &ui::DatasetPanel::errorOccurred);
    QVERIFY(panel.saveAs(target));
    QTRY_COMPARE_WITH_TIMEOUT(saved.count(), 1, 20000);
    QCOMPARE(errors.count(), 0);
    QCOMPARE(context.datasetPath(), target);
    const core::PatchDataset back = core::readPatchDataset(target.toStdString());
    QVERIFY(back.patches == m_sim.patches);
    QVERIFY(back.centers == m_sim.centers);
    QVERIFY(back.split == m_sim.split);
    QCOMPARE(QDir(out.path()).entryList(QDir::Files | QDir::Hidden), QStringList{QStringLiteral("copy.h5")});

    // Into a folder that does not exist: error naming the file, nothing written.
    const QString bad = out.filePath(QStringLiteral("no-such-dir/copy.h5"));
    QVERIFY(panel.saveAs(bad));
    QTRY_COMPARE_WITH_TIMEOUT(errors.count(), 1, 20000);
    QVERIFY2(errors.at(0).at(0).toString().contains(bad), qPrintable(errors.at(0).at(0).toString()));
    QVERIFY(!QFile::exists(bad));
    QCOMPARE(context.datasetPath(), target);
    closeMessageBoxes(&panel);
}

void TestStudioTrain::simulateCancel()
{
    ui::StudioContext context;
    auto previous = std::make_shared<core::PatchDataset>(m_sim);
    context.setDataset(previous, m_simPath);
    ui::DatasetPanel panel(&context);
    QSignalSpy cancelled(panel.job(), &ui::Job::cancelled);
    QSignalSpy progressed(panel.job(), &ui::Job::progressUpdated);
    QSignalSpy ready(&panel, &ui::DatasetPanel::datasetReady);
    auto *cancel = panel.findChild<QPushButton *>(QStringLiteral("cancelButton"));
    QVERIFY(!cancel->isEnabled());
    QVERIFY(panel.simulate(1000000, 1));
    QVERIFY(cancel->isEnabled());
    QVERIFY(!panel.findChild<QPushButton *>(QStringLiteral("simulateButton"))->isEnabled());
    QTRY_VERIFY_WITH_TIMEOUT(progressed.count() >= 1, 20000);
    QTest::mouseClick(cancel, Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(cancelled.count(), 1, 20000);
    QCOMPARE(ready.count(), 0);
    QCOMPARE(context.dataset(), std::shared_ptr<const core::PatchDataset>(previous));
    QCOMPARE(context.datasetPath(), m_simPath);
    QVERIFY(!cancel->isEnabled());
    QVERIFY(panel.statusText().contains(QStringLiteral("Cancelled")));
    // Usable again.
    QVERIFY(panel.simulate(100, 2));
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 1, 20000);
    QCOMPARE(context.dataset()->size(), std::size_t(100));
}

void TestStudioTrain::buildFromFramesMatchesCore()
{
    // Four small simulated frames; the panel's find -> fit must give what the core gives.
    core::FrameSimOptions fo;
    fo.size = 192;
    fo.peaksPerFrame = 25;
    fo.seed = 4;
    const core::SimulatedFrames sim = core::simulateFrames(4, fo);
    const QString framesPath = path(QStringLiteral("frames.h5"));
    core::writeHdf5Frames(framesPath.toStdString(), sim.frames);
    std::shared_ptr<const core::FrameSource> source = core::openFrameSource(framesPath.toStdString());

    ui::StudioContext context;
    ui::DatasetPanel panel(&context);
    QVERIFY(!panel.findChild<QPushButton *>(QStringLiteral("buildButton"))->isEnabled());
    QSignalSpy errors(&panel, &ui::DatasetPanel::errorOccurred);
    QVERIFY(!panel.buildFromFrames()); // no frames yet
    QCOMPARE(errors.count(), 1);
    closeMessageBoxes(&panel);

    context.setFrames(source);
    QVERIFY(panel.findChild<QPushButton *>(QStringLiteral("buildButton"))->isEnabled());
    QCOMPARE(panel.findChild<QSpinBox *>(QStringLiteral("lastFrame"))->value(), 4);
    panel.setFrameRange(1, 3);
    panel.findChild<QSpinBox *>(QStringLiteral("threads"))->setValue(2);

    core::FinderOptions finder;
    finder.threads = 2;
    core::PatchDataset direct = core::findPeaksInSource(*source, 1, 3, finder);
    core::FitOptions fit;
    fit.threads = 2;
    const auto fits = core::fitPatches(direct, fit);
    core::applyFitLabels(direct, fits);
    const std::size_t converged = std::size_t(std::count_if(fits.begin(), fits.end(),
                                                            [](const core::FitResult &f) { return f.converged; }));
    QVERIFY(direct.size() > 10);

    const QString out = path(QStringLiteral("built.h5"));
    QSignalSpy ready(&panel, &ui::DatasetPanel::datasetReady);
    QVERIFY(panel.buildFromFrames(out));
    QTRY_COMPARE_WITH_TIMEOUT(ready.count() + errors.count(), 2, 30000);
    QCOMPARE(errors.count(), 1);
    QCOMPARE(panel.summary().found, direct.size());
    QCOMPARE(panel.summary().converged, converged);
    QCOMPARE(panel.summary().fitted, direct.size());
    QCOMPARE(panel.summary().labelSource, QStringLiteral("pseudo-voigt"));
    QVERIFY(panel.statusText().contains(QStringLiteral("Found %1 peaks; %2 fits converged").arg(direct.size()).arg(converged)));
    QCOMPARE(context.datasetPath(), out);
    const core::PatchDataset written = core::readPatchDataset(out.toStdString());
    QVERIFY(written.patches == direct.patches);
    QVERIFY(written.centers == direct.centers);
    QVERIFY(written.frameIndex == direct.frameIndex);
    QVERIFY(context.dataset()->centers == direct.centers);
}

// --- Train panel -----------------------------------------------------------------------------

void TestStudioTrain::trainLiveChartCancelAndStall()
{
    // The whole flow through the GUI: simulate patches in the Dataset panel, train in the Train panel.
    ui::StudioContext context;
    ui::DatasetPanel datasetPanel(&context);
    QSignalSpy ready(&datasetPanel, &ui::DatasetPanel::datasetReady);
    QVERIFY(datasetPanel.simulate(2000, 7));
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 1, 20000);
    QVERIFY(context.dataset()->patches == m_sim.patches);
    ui::TrainPanel panel(&context);
    panel.resize(1100, 800);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    QVERIFY(panel.setArchitecture(m_specPath));
    QCOMPARE(panel.parameterCount(), core::computeCost(smallSpec()).params);
    core::TrainOptions o;
    o.epochs = 5000; // far more than will run: the test cancels
    o.batchSize = 64;
    o.threads = 1;   // one core for training, one for the GUI (and the rest of the machine)
    o.seed = 3;
    o.device = "cpu";
    panel.setOptions(o);

    auto *train = panel.findChild<QPushButton *>(QStringLiteral("trainButton"));
    auto *cancel = panel.findChild<QPushButton *>(QStringLiteral("cancelButton"));
    QVERIFY(train->isEnabled());
    QVERIFY(!cancel->isEnabled());
    QSignalSpy cancelled(panel.job(), &ui::Job::cancelled);
    QSignalSpy finished(panel.job(), &ui::Job::finished);
    QSignalSpy failed(panel.job(), &ui::Job::failed);
    QSignalSpy errors(&panel, &ui::TrainPanel::errorOccurred);

    // The series point count, sampled by the event loop itself while training runs.
    QList<int> seen;
    QTimer sampler;
    sampler.setInterval(15);
    connect(&sampler, &QTimer::timeout, &sampler, [&] {
        const int n = panel.chart()->lossPointCount();
        if (seen.isEmpty() || seen.last() != n)
            seen.append(n);
    });

    StallMeter meter;
    meter.start();
    sampler.start();
    QTest::mouseClick(train, Qt::LeftButton);
    QVERIFY(panel.isTraining());
    QVERIFY(cancel->isEnabled());
    QVERIFY(!train->isEnabled());
    QTRY_VERIFY_WITH_TIMEOUT(panel.chart()->lossPointCount() >= 6, 60000);
    // Keep training for a while longer: the chart keeps growing, the event loop keeps ticking.
    const int before = panel.chart()->lossPointCount();
    QTest::qWait(800);
    QTRY_VERIFY_WITH_TIMEOUT(panel.chart()->lossPointCount() > before + 2, 60000);
    QVERIFY(panel.isTraining());
    QTest::mouseClick(cancel, Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(cancelled.count(), 1, 20000);
    meter.stop();
    sampler.stop();

    QCOMPARE(finished.count(), 0);
    QCOMPARE(failed.count(), 0);
    QCOMPARE(errors.count(), 0);
    // The chart grew epoch by epoch (several distinct, increasing counts were observed), and
    // chart, validation curve and table agree on the epochs received.
    QVERIFY2(seen.size() >= 3, qPrintable(QStringLiteral("observed counts: %1").arg(seen.size())));
    QVERIFY(std::is_sorted(seen.begin(), seen.end()));
    const int epochs = panel.chart()->lossPointCount();
    QVERIFY(epochs >= 6);
    QVERIFY(epochs < o.epochs);
    QCOMPARE(panel.chart()->validationPointCount(), epochs);
    QCOMPARE(panel.epochsShown(), epochs);
    QCOMPARE(panel.historyTable()->item(epochs - 1, 0)->text(), QString::number(epochs));
    for (int i = 0; i < epochs; ++i)
        QCOMPARE(panel.chart()->lossSeries()->at(i).x(), double(i + 1));

    // Usable again: no model was kept, the buttons are back.
    QVERIFY(!panel.isBusy());
    QVERIFY(!panel.trainedModel());
    QVERIFY(!context.model());
    QVERIFY(train->isEnabled());
    QVERIFY(!cancel->isEnabled());
    QVERIFY(panel.statusText().contains(QStringLiteral("cancelled")));

    // The event loop never stalled: every 10 ms tick came within 100 ms of the previous one.
    qInfo("event loop: %d ticks in %.0f ms, max gap %.1f ms (ending at %.0f ms), %d epochs before cancel",
          meter.ticks(), meter.elapsedMs(), meter.maxGapMs(), meter.maxGapAtMs(), epochs);
    QVERIFY(meter.ticks() > 30);
    QVERIFY2(meter.maxGapMs() < 100.0, qPrintable(QStringLiteral("max gap %1 ms").arg(meter.maxGapMs())));

    // Closing the panel while it trains cancels and joins the training thread promptly.
    auto *second = new ui::TrainPanel(&context);
    QVERIFY(second->setArchitecture(m_specPath));
    second->setOptions(o);
    QVERIFY(second->startTraining());
    QTRY_VERIFY_WITH_TIMEOUT(second->epochsShown() >= 1, 60000);
    QElapsedTimer closing;
    closing.start();
    delete second;
    QVERIFY2(closing.elapsed() < 5000, qPrintable(QStringLiteral("%1 ms").arg(closing.elapsed())));
    QVERIFY(!context.model());
}

void TestStudioTrain::trainFinishSaveLoadUse()
{
    ui::StudioContext context;
    context.setDataset(std::make_shared<core::PatchDataset>(m_sim), m_simPath);
    ui::TrainPanel panel(&context);
    QVERIFY(panel.setArchitecture(m_specPath));
    core::TrainOptions o;
    o.epochs = 3;
    o.batchSize = 128;
    o.threads = 1;
    o.seed = 5;
    o.device = "cpu";
    panel.setOptions(o);
    QSignalSpy done(&panel, &ui::TrainPanel::trainingFinished);
    QSignalSpy errors(&panel, &ui::TrainPanel::errorOccurred);
    QVERIFY(panel.startTraining());
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 60000);
    QCOMPARE(errors.count(), 0);
    QCOMPARE(panel.epochsShown(), 3);
    QCOMPARE(panel.chart()->lossPointCount(), 3);
    auto model = panel.trainedModel();
    QVERIFY(model);
    QCOMPARE(model->parameterCount(), panel.parameterCount());

    // The test-split evaluation shown is the core's.
    const core::Evaluation direct = core::evaluateModel(*model, m_sim, 2);
    QVERIFY(panel.testEvaluationText().contains(QStringLiteral("n = %1").arg(direct.overall.n)));
    QVERIFY2(panel.testEvaluationText().contains(QStringLiteral("mean %1 px").arg(direct.overall.mean, 0, 'f', 4)),
             qPrintable(panel.testEvaluationText()));
    QCOMPARE(model->metrics.at("test").at("n").get<std::size_t>(), direct.overall.n);

    // Use this model.
    QVERIFY(!context.model());
    auto *use = panel.findChild<QPushButton *>(QStringLiteral("useModelButton"));
    QVERIFY(use->isEnabled());
    QTest::mouseClick(use, Qt::LeftButton);
    QCOMPARE(context.model(), model);

    // Save, then load in the panel: the loaded model predicts bit-identically.
    const QString folder = path(QStringLiteral("tiny.model"));
    QSignalSpy saved(&panel, &ui::TrainPanel::modelSaved);
    QVERIFY(panel.saveModel(folder));
    QTRY_COMPARE_WITH_TIMEOUT(saved.count(), 1, 20000);
    QVERIFY(QFile::exists(folder + QStringLiteral("/spec.json")));
    QCOMPARE(context.modelPath(), folder);

    ui::StudioContext other;
    ui::TrainPanel loader(&other);
    QSignalSpy loaded(&loader, &ui::TrainPanel::modelLoaded);
    QVERIFY(loader.loadModel(folder));
    QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 1, 20000);
    QVERIFY(other.model());
    QCOMPARE(other.modelPath(), folder);
    const std::size_t n = 64;
    const auto a = model->predict(m_sim.patch(0), n);
    const auto b = other.model()->predict(m_sim.patch(0), n);
    QVERIFY(a == b);
    // The loader shows the stored training history and test result.
    QCOMPARE(loader.epochsShown(), 3);
    QCOMPARE(loader.chart()->lossPointCount(), 3);
    QCOMPARE(loader.chart()->lossSeries()->at(2).y(), panel.chart()->lossSeries()->at(2).y());
    QVERIFY2(loader.testEvaluationText().contains(QStringLiteral("n = %1").arg(direct.overall.n)),
             qPrintable(loader.testEvaluationText()));

    // Loading a folder that is not a model: error naming it, panel usable.
    QSignalSpy loadErrors(&loader, &ui::TrainPanel::errorOccurred);
    const QString notModel = m_dir.path();
    QVERIFY(loader.loadModel(notModel));
    QTRY_COMPARE_WITH_TIMEOUT(loadErrors.count(), 1, 20000);
    QVERIFY2(loadErrors.at(0).at(0).toString().contains(notModel), qPrintable(loadErrors.at(0).at(0).toString()));
    QCOMPARE(other.modelPath(), folder);
    QVERIFY(loader.findChild<QPushButton *>(QStringLiteral("loadModelButton"))->isEnabled());
    closeMessageBoxes(&loader);
}

void TestStudioTrain::trainErrors_data()
{
    QTest::addColumn<QString>("dataset");
    QTest::addColumn<QString>("arch");
    QTest::addColumn<QString>("expectFile");
    QTest::addColumn<QString>("expectReason");
    QTest::newRow("unlabelled") << m_unlabelledPath << m_specPath << m_unlabelledPath << QStringLiteral("unlabelled");
    QTest::newRow("wrong patch size") << m_sim15Path << m_specPath << m_sim15Path << QStringLiteral("patch size 15");
    QTest::newRow("bad spec file") << m_simPath << m_badSpecPath << m_badSpecPath << QStringLiteral("kernel");
    QTest::newRow("missing spec file") << m_simPath << path(QStringLiteral("nope.json")) << path(QStringLiteral("nope.json")) << QString();
}

void TestStudioTrain::trainErrors()
{
    QFETCH(QString, dataset);
    QFETCH(QString, arch);
    QFETCH(QString, expectFile);
    QFETCH(QString, expectReason);
    ui::StudioContext context;
    context.setDataset(std::make_shared<core::PatchDataset>(core::readPatchDataset(dataset.toStdString())), dataset);
    ui::TrainPanel panel(&context);
    QSignalSpy errors(&panel, &ui::TrainPanel::errorOccurred);
    const bool archOk = panel.setArchitecture(arch);
    if (archOk) {
        core::TrainOptions o;
        o.epochs = 1;
        o.threads = 1;
        panel.setOptions(o);
        panel.startTraining();
    }
    QTRY_COMPARE_WITH_TIMEOUT(errors.count(), 1, 20000);
    const QString message = errors.at(0).at(0).toString();
    QVERIFY2(message.contains(expectFile), qPrintable(message));
    QVERIFY2(message.contains(expectReason), qPrintable(message));
    QVERIFY(visibleBox(&panel, QStringLiteral("trainError"), expectFile));
    QVERIFY(!panel.isBusy());
    QVERIFY(!panel.trainedModel());
    closeMessageBoxes(&panel);

    // Usable afterwards: a good architecture and dataset train.
    context.setDataset(std::make_shared<core::PatchDataset>(m_sim), m_simPath);
    QVERIFY(panel.setArchitecture(m_specPath));
    core::TrainOptions o;
    o.epochs = 1;
    o.threads = 1;
    o.batchSize = 256;
    panel.setOptions(o);
    QSignalSpy done(&panel, &ui::TrainPanel::trainingFinished);
    QVERIFY(panel.findChild<QPushButton *>(QStringLiteral("trainButton"))->isEnabled());
    QVERIFY(panel.startTraining());
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 60000);
    QCOMPARE(errors.count(), 1);
}

// --- Evaluate panel --------------------------------------------------------------------------

void TestStudioTrain::evaluateMatchesCore_data()
{
    QTest::addColumn<int>("split");
    QTest::newRow("test") << 2;
    QTest::newRow("validation") << 1;
    QTest::newRow("all") << -1;
}

void TestStudioTrain::evaluateMatchesCore()
{
    QFETCH(int, split);
    auto model = std::make_shared<core::Model>(smallSpec(), 9);
    ui::StudioContext context;
    context.setDataset(std::make_shared<core::PatchDataset>(m_sim), m_simPath);
    context.setModel(model, QStringLiteral("in-memory"));
    ui::EvaluatePanel panel(&context);
    panel.setSplit(split);
    QCOMPARE(panel.split(), split);
    QSignalSpy evaluated(&panel, &ui::EvaluatePanel::evaluated);
    QSignalSpy errors(&panel, &ui::EvaluatePanel::errorOccurred);
    QTest::mouseClick(panel.findChild<QPushButton *>(QStringLiteral("evaluateButton")), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(evaluated.count(), 1, 20000);
    QCOMPARE(errors.count(), 0);

    const core::Evaluation direct = core::evaluateModel(*model, m_sim, split);
    QVERIFY(direct.overall.n > 0);
    QCOMPARE(direct.overall.n, split < 0 ? m_sim.size() : std::size_t(std::count(m_sim.split.begin(), m_sim.split.end(), std::uint8_t(split))));
    auto shown = panel.evaluation();
    QVERIFY(shown);
    QCOMPARE(shown->overall.n, direct.overall.n);
    QCOMPARE(shown->overall.mean, direct.overall.mean);
    QCOMPARE(shown->overall.p95, direct.overall.p95);

    // The table: overall row then one row per flag subset (the simulator flags neighbours).
    QTableWidget *table = panel.table();
    QCOMPARE(table->rowCount(), int(1 + direct.subsets.size()));
    QVERIFY(direct.subsets.size() >= 2);
    QCOMPARE(table->item(0, 1)->text(), QString::number(direct.overall.n));
    QCOMPARE(table->item(0, 2)->text(), QString::number(direct.overall.mean, 'f', 4));
    QCOMPARE(table->item(0, 4)->text(), QString::number(direct.overall.p75, 'f', 4));
    for (std::size_t i = 0; i < direct.subsets.size(); ++i) {
        QCOMPARE(table->item(int(i + 1), 0)->text(), QString::fromStdString(direct.subsets[i].first));
        QCOMPARE(table->item(int(i + 1), 1)->text(), QString::number(direct.subsets[i].second.n));
        QCOMPARE(table->item(int(i + 1), 2)->text(), QString::number(direct.subsets[i].second.mean, 'f', 4));
    }

    // The histogram counts every distance once.
    ui::DistanceHistogram *hist = panel.histogram();
    QCOMPARE(hist->total(), int(direct.overall.n));
    int sum = 0;
    for (int c : hist->counts())
        sum += c;
    QCOMPARE(sum, int(direct.overall.n));
    const float maxD = *std::max_element(direct.distances.begin(), direct.distances.end());
    QVERIFY(std::abs(hist->binWidth() * double(hist->counts().size()) - double(maxD)) < 1e-5);
    QVERIFY(hist->counts().back() >= 1); // the largest distance lands in the last bin

    // CSV round trip at full precision.
    const QString csvPath = path(QStringLiteral("eval-%1.csv").arg(split + 1));
    QString error;
    QVERIFY2(panel.exportCsv(csvPath, &error), qPrintable(error));
    QFile csv(csvPath);
    QVERIFY(csv.open(QIODevice::ReadOnly | QIODevice::Text));
    const QStringList lines = QString::fromUtf8(csv.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), int(2 + direct.subsets.size()));
    QCOMPARE(lines[0], QStringLiteral("subset,n,mean,p50,p75,p95,max"));
    const QStringList first = lines[1].split(QLatin1Char(','));
    QCOMPARE(first.size(), 7);
    QCOMPARE(first[1].toULongLong(), qulonglong(direct.overall.n));
    QCOMPARE(first[2].toDouble(), direct.overall.mean);
    QCOMPARE(first[6].toDouble(), direct.overall.max);

    // Chart exports: a real PNG and an SVG document, written atomically.
    if (split == 2) {
        panel.resize(900, 700);
        const QString png = path(QStringLiteral("hist.png"));
        const QString svg = path(QStringLiteral("hist.svg"));
        QVERIFY2(hist->exportPng(png, &error, QSize(640, 400)), qPrintable(error));
        QVERIFY2(hist->exportSvg(svg, &error, QSize(640, 400)), qPrintable(error));
        QImage image(png);
        QCOMPARE(image.size(), QSize(640, 400));
        QFile svgFile(svg);
        QVERIFY(svgFile.open(QIODevice::ReadOnly));
        const QByteArray svgText = svgFile.readAll();
        QVERIFY(svgText.contains("<svg"));
        QVERIFY(svgText.contains("</svg>"));
        QVERIFY(!hist->exportPng(path(QStringLiteral("missing-dir/h.png")), &error));
        QVERIFY(error.contains(QStringLiteral("missing-dir/h.png")));
        QVERIFY(!QFile::exists(path(QStringLiteral("missing-dir/h.png"))));
    }
}

void TestStudioTrain::evaluateWrongPatchSize()
{
    auto model = std::make_shared<core::Model>(smallSpec(), 9);
    ui::StudioContext context;
    context.setDataset(std::make_shared<core::PatchDataset>(m_sim15), m_sim15Path);
    context.setModel(model);
    ui::EvaluatePanel panel(&context);
    QSignalSpy errors(&panel, &ui::EvaluatePanel::errorOccurred);
    QSignalSpy evaluated(&panel, &ui::EvaluatePanel::evaluated);
    QVERIFY(panel.evaluate());
    QTRY_COMPARE_WITH_TIMEOUT(errors.count(), 1, 20000);
    const QString message = errors.at(0).at(0).toString();
    QVERIFY2(message.contains(m_sim15Path), qPrintable(message));
    QVERIFY2(message.contains(QStringLiteral("patch size 15")), qPrintable(message));
    QVERIFY(visibleBox(&panel, QStringLiteral("evaluateError"), m_sim15Path));
    QVERIFY(!panel.evaluation());
    closeMessageBoxes(&panel);

    // Usable afterwards: a matching dataset evaluates.
    QVERIFY(panel.findChild<QPushButton *>(QStringLiteral("evaluateButton"))->isEnabled());
    context.setDataset(std::make_shared<core::PatchDataset>(m_sim), m_simPath);
    QVERIFY(panel.evaluate());
    QTRY_COMPARE_WITH_TIMEOUT(evaluated.count(), 1, 20000);
    QCOMPARE(panel.evaluation()->overall.n, core::evaluateModel(*model, m_sim, 2).overall.n);
}

int main(int argc, char **argv)
{
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM"))
        qputenv("QT_QPA_PLATFORM", "offscreen");
    if (qEnvironmentVariableIsEmpty("XDG_RUNTIME_DIR")) {
        const QString xdg = QDir::temp().filePath(QStringLiteral("braggnac-xdg"));
        QDir().mkpath(xdg);
        QFile::setPermissions(xdg, QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner);
        qputenv("XDG_RUNTIME_DIR", xdg.toLocal8Bit());
    }
    QApplication app(argc, argv);
    braggnac::core::configureNumericRuntime();
    TestStudioTrain test;
    return QTest::qExec(&test, argc, argv);
}

#include "tst_studio_train.moc"
