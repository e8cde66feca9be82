#include "ui/screenshottour.h"

#include <cmath>
#include <cstdio>

#include <QApplication>
#include <QAction>
#include <QComboBox>
#include <QDir>
#include <QPixmap>
#include <QTabWidget>

#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "ui/aboutdialog.h"
#include "ui/compresspanel.h"
#include "ui/evaluatepanel.h"
#include "ui/exportpanel.h"
#include "ui/framespanel.h"
#include "ui/frameview.h"
#include "ui/mainwindow.h"
#include "ui/peakspanel.h"
#include "ui/peaktablemodel.h"
#include "ui/job.h"
#include "ui/paretochart.h"
#include "ui/searchjob.h"
#include "ui/searchpanel.h"
#include "ui/spaceeditor.h"
#include "ui/studywatcher.h"
#include "ui/trialinspector.h"
#include "ui/studiocontext.h"
#include "ui/trainpanel.h"

namespace braggnac::ui {

ScreenshotTour::ScreenshotTour(MainWindow *window, QString dir)
    : QObject(window), m_window(window), m_dir(std::move(dir))
{
    m_timer.setInterval(100);
    connect(&m_timer, &QTimer::timeout, this, &ScreenshotTour::tick);
    buildSteps();
}

void ScreenshotTour::start()
{
    QDir().mkpath(m_dir);
    m_index = 0;
    m_acted = false;
    m_timer.start();
}

int ScreenshotTour::pickPeak() const
{
    // A bright, converged, predicted peak away from the border, preferring one with neighbours.
    const PeakTableModel *model = m_window->peaksPanel()->peakModel();
    const int frame = m_window->framesPanel()->currentIndex();
    int best = -1;
    double bestScore = -1;
    for (int i = 0; i < model->peakCount(); ++i) {
        const core::Peak &p = model->peak(i);
        if (p.frame != frame || p.border || p.merged || p.maxValue >= 16000 || !model->hasFit(i)
            || !model->results().fits[std::size_t(i)].converged || !model->hasPrediction(i))
            continue;
        int neighbours = 0;
        for (int j = 0; j < model->peakCount(); ++j) {
            const core::Peak &q = model->peak(j);
            if (j != i && q.frame == frame && std::abs(q.row - p.row) < 60 && std::abs(q.col - p.col) < 90)
                ++neighbours;
        }
        const double score = std::min(neighbours, 4) * 10.0 + std::log10(std::max(1.0, model->amplitude(i)));
        if (score > bestScore) {
            bestScore = score;
            best = i;
        }
    }
    return best;
}

void ScreenshotTour::buildSteps()
{
    MainWindow *w = m_window;
    const auto idle = [w]() { return !w->isBusy(); };
    m_steps.push_back({QStringLiteral("window"), [w]() {
                           w->resize(1560, 960);
                           w->move(10, 10);
                           w->show();
                           w->raise();
                       },
                       [] { return true; }, {}});
    m_steps.push_back({QStringLiteral("open demo"), [w]() { w->openDemo(); },
                       [w, idle]() { return idle() && !w->currentFile().isEmpty() && w->framesPanel()->currentIndex() == 0; },
                       {}, 300000});
    m_steps.push_back({QStringLiteral("find and fit"), [w]() {
                           w->peaksPanel()->setFitAfterFind(true);
                           w->peaksPanel()->findInRange(0, w->framesPanel()->frameCount());
                       },
                       [w, idle]() { return idle() && w->peaksPanel()->peakModel()->peakCount() > 0; }, {}, 300000});
    m_steps.push_back({QStringLiteral("use as dataset"), [w]() {
                           w->peaksPanel()->sendToDataset();
                           w->setStage(QStringLiteral("dataset"));
                       },
                       [w, idle]() { return idle() && w->context()->dataset() != nullptr; },
                       QStringLiteral("studio-dataset.png")});
    m_steps.push_back({QStringLiteral("train"), [w]() {
                           w->setStage(QStringLiteral("train"));
                           TrainPanel *train = w->trainPanel();
                           train->setArchitecture(QStringLiteral("nac"));
                           core::TrainOptions options;
                           QString error;
                           train->readOptions(options, &error);
                           options.epochs = 40;
                           options.batchSize = 64;
                           options.learningRate = 2e-3;
                           options.seed = 1;
                           train->setOptions(options);
                           train->startTraining();
                       },
                       [w, idle]() { return idle() && w->trainPanel()->trainedModel() != nullptr; },
                       QStringLiteral("studio-train.png"), 600000});
    m_steps.push_back({QStringLiteral("evaluate"), [w]() {
                           w->trainPanel()->useTrainedModel();
                           w->setStage(QStringLiteral("evaluate"));
                           w->evaluatePanel()->evaluate();
                       },
                       [w, idle]() {
                           return idle() && w->context()->model() != nullptr
                               && w->peaksPanel()->peakModel()->predictedCount() == w->peaksPanel()->peakModel()->peakCount();
                       },
                       QStringLiteral("studio-evaluate.png")});
    m_steps.push_back({QStringLiteral("frames overview"), [this, w]() {
                           w->setStage(QStringLiteral("frames"));
                           auto *tabs = w->findChild<QTabWidget *>(QStringLiteral("sideTabs"));
                           tabs->setCurrentIndex(0);
                           w->framesPanel()->setScaling(Scaling::Log);
                           w->framesPanel()->setColormap(Colormap::Name::Viridis);
                           const FrameStats &stats = w->framesPanel()->stats();
                           w->framesPanel()->setLevels(stats.p2, stats.p2 + 0.25 * (stats.max - stats.p2));
                           w->frameView()->fitToWindow();
                           w->selectPeak(pickPeak());
                           w->frameView()->fitToWindow();
                       },
                       [idle]() { return idle(); }, QStringLiteral("studio-frames.png")});
    m_steps.push_back({QStringLiteral("peak close-up"), [this, w]() {
                           auto *tabs = w->findChild<QTabWidget *>(QStringLiteral("sideTabs"));
                           tabs->setCurrentIndex(1);
                           w->framesPanel()->setColormap(Colormap::Name::Grey);
                           w->framesPanel()->setScaling(Scaling::Sqrt);
                           const int id = pickPeak();
                           if (id >= 0) {
                               const core::Peak &p = w->peaksPanel()->peakModel()->peak(id);
                               w->framesPanel()->setLevels(w->framesPanel()->stats().p2, 1.1 * p.maxValue);
                           }
                           FrameView *view = w->frameView();
                           view->setScale(7.0, QPointF(view->width() / 2.0, view->height() / 2.0));
                           w->selectPeak(id);
                           if (id >= 0) {
                               const core::Peak &p = w->peaksPanel()->peakModel()->peak(id);
                               view->centreOn(p.row, p.col);
                           }
                       },
                       [idle]() { return idle(); }, QStringLiteral("studio-peaks.png")});
    m_steps.push_back({QStringLiteral("max over frames"), [w]() {
                           auto *tabs = w->findChild<QTabWidget *>(QStringLiteral("sideTabs"));
                           tabs->setCurrentIndex(0);
                           w->framesPanel()->setColormap(Colormap::Name::InvertedGrey);
                           w->framesPanel()->setScaling(Scaling::Log);
                           w->framesPanel()->setAutoLevels(true);
                           w->framesPanel()->setMaxView(true);
                       },
                       [w, idle]() { return idle() && w->framesPanel()->maxView() && w->framesPanel()->maxFrame(); }, {}});
    m_steps.push_back({QStringLiteral("max over frames, 1:1"), [w]() {
                           FrameView *view = w->frameView();
                           view->setScale(1.0, QPointF(view->width() / 2.0, view->height() / 2.0));
                           view->centreOn(1024, 1024);
                       },
                       [idle]() { return idle(); }, QStringLiteral("studio-max.png")});
    // The Search stage: the space editor, then (when scripts/screenshots.sh made a study with
    // `braggnac search` and names it in BRAGGNAC_TOUR_STUDY) the live study view and the
    // inspector of the front's most accurate trial.
    m_steps.push_back({QStringLiteral("search space"), [w]() {
                           w->setStage(QStringLiteral("search"));
                           if (auto *panel = w->findChild<SearchPanel *>())
                               panel->tabs()->setCurrentIndex(0);
                       },
                       [w]() {
                           auto *panel = w->findChild<SearchPanel *>();
                           return panel && !panel->spaceEditor()->isComputing();
                       },
                       QStringLiteral("studio-search-space.png")});
    // The live search: File -> Open demo search (simulated patches, a small search run by the
    // studio), coloured by generation, shot while it runs; then stopped.
    m_steps.push_back({QStringLiteral("search live"), [w]() {
                           auto *panel = w->findChild<SearchPanel *>();
                           panel->colourBox()->setCurrentIndex(1); // generation
                           if (QAction *demo = w->findChild<QAction *>(QStringLiteral("actionDemoSearch")))
                               demo->trigger();
                       },
                       [w]() {
                           auto *panel = w->findChild<SearchPanel *>();
                           panel->flush();
                           const bool running = panel->searchJob()->isRunning();
                           const bool shoot = (running && panel->paretoChart()->pointCount() >= 7
                                               && panel->searchJob()->status().busy > 0)
                               || (!running && !panel->demoJob()->isRunning() && panel->paretoChart()->pointCount() > 0);
                           if (!shoot || panel->frontIds().empty())
                               return false;
                           // The inspector shows the front's most accurate trial.
                           if (panel->inspector()->trialId() != panel->frontIds().front()) {
                               panel->selectTrial(panel->frontIds().front());
                               return false;
                           }
                           return true;
                       },
                       QStringLiteral("studio-search-live.png"), 240000});
    m_steps.push_back({QStringLiteral("search live stop"), [w]() {
                           auto *panel = w->findChild<SearchPanel *>();
                           panel->stopSearch();
                       },
                       [w]() {
                           auto *panel = w->findChild<SearchPanel *>();
                           if (panel->searchJob()->isRunning())
                               return false;
                           panel->colourBox()->setCurrentIndex(0);
                           return true;
                       },
                       {}, 60000});
    const QString study = qEnvironmentVariable("BRAGGNAC_TOUR_STUDY");
    if (!study.isEmpty()) {
        m_steps.push_back({QStringLiteral("search study"), [w, study]() {
                               auto *panel = w->findChild<SearchPanel *>();
                               panel->tabs()->setCurrentIndex(1);
                               panel->attachStudy(study);
                           },
                           [w]() {
                               auto *panel = w->findChild<SearchPanel *>();
                               if (!panel->watcher()->isAttached() || panel->frontIds().empty())
                                   return false;
                               panel->flush();
                               return true;
                           },
                           {}, 60000});
        m_steps.push_back({QStringLiteral("search select"), [w]() {
                               auto *panel = w->findChild<SearchPanel *>();
                               panel->selectTrial(panel->frontIds().front());
                           },
                           [w]() {
                               auto *panel = w->findChild<SearchPanel *>();
                               panel->flush();
                               return panel->inspector()->trialId() == panel->frontIds().front();
                           },
                           QStringLiteral("studio-search-study.png"), 30000});
        m_steps.push_back({QStringLiteral("trial inspector"), [w]() {
                               auto *panel = w->findChild<SearchPanel *>();
                               panel->inspector()->setMinimumHeight(560);
                           },
                           [] { return true; }, QStringLiteral("studio-search-inspector.png")});
    }
    // Compress the trained model (bits x rounds, the chosen record saved), then export it to HLS
    // with the C-simulation check on the dataset's first patches.
    m_steps.push_back({QStringLiteral("compress"), [w]() {
                           w->setStage(QStringLiteral("compress"));
                           auto *panel = w->findChild<CompressPanel *>();
                           panel->useStudioModel();
                           core::CompressOptions o;
                           o.bits = {4, 6, 8};
                           o.pruneRounds = 3;
                           o.pruneFraction = 0.3;
                           o.epochsPerRound = 1;
                           o.train.learningRate = 5e-4;
                           o.train.batchSize = 128;
                           o.train.seed = 1;
                           o.train.threads = 0;
                           panel->setOptions(o);
                           panel->startCompress();
                       },
                       [w, idle]() { return idle() && w->findChild<CompressPanel *>()->chosenRecord() >= 0; },
                       QStringLiteral("studio-compress.png"), 900000});
    m_steps.push_back({QStringLiteral("compress save"), [this, w]() {
                           w->findChild<CompressPanel *>()->saveSelected(QDir(m_dir).filePath(QStringLiteral("tour-compressed.model")), true);
                       },
                       [this, w, idle]() {
                           return idle() && w->findChild<ExportPanel *>()->modelFolder()
                               == QDir(m_dir).filePath(QStringLiteral("tour-compressed.model"));
                       },
                       {}, 300000});
    m_steps.push_back({QStringLiteral("export"), [this, w]() {
                           w->setStage(QStringLiteral("export"));
                           auto *panel = w->findChild<ExportPanel *>();
                           panel->setCheckPatches(100);
                           panel->exportTo(QDir(m_dir).filePath(QStringLiteral("tour-hls")), true);
                       },
                       [w, idle]() { return idle() && w->findChild<ExportPanel *>()->hasEstimate(); },
                       QStringLiteral("studio-export.png"), 600000});
    m_steps.push_back({QStringLiteral("about"), [w]() { w->showAbout(); },
                       [w]() { return w->findChild<AboutDialog *>() != nullptr; }, QStringLiteral("studio-about.png")});
}

void ScreenshotTour::fail(const QString &why)
{
    std::fprintf(stderr, "screenshot tour: %s\n", why.toLocal8Bit().constData());
    m_timer.stop();
    QApplication::exit(1);
}

void ScreenshotTour::tick()
{
    if (m_index >= m_steps.size()) {
        m_timer.stop();
        std::fprintf(stderr, "screenshot tour: done\n");
        m_window->close();
        QApplication::exit(0);
        return;
    }
    Step &step = m_steps[m_index];
    if (!m_acted) {
        std::fprintf(stderr, "screenshot tour: %s\n", step.name.toLocal8Bit().constData());
        m_acted = true;
        m_stable = 0;
        m_elapsed.start();
        step.action();
        return;
    }
    if (m_elapsed.elapsed() > step.timeoutMs) {
        fail(QStringLiteral("step '%1' timed out after %2 s").arg(step.name).arg(step.timeoutMs / 1000));
        return;
    }
    if (!step.ready()) {
        m_stable = 0;
        return;
    }
    if (++m_stable < 4) // let the window settle (layouts, coalesced repaints)
        return;
    if (!step.shot.isEmpty()) {
        QWidget *target = m_window;
        if (step.shot.contains(QLatin1String("search-inspector")))
            if (auto *panel = m_window->findChild<SearchPanel *>())
                target = panel->inspector();
        if (auto *about = m_window->findChild<AboutDialog *>(); about && step.shot.contains(QLatin1String("about")))
            target = about;
        const QString path = QDir(m_dir).filePath(step.shot);
        if (!target->grab().save(path)) {
            fail(QStringLiteral("could not save %1").arg(path));
            return;
        }
        std::fprintf(stderr, "screenshot tour: saved %s\n", path.toLocal8Bit().constData());
        if (target != m_window)
            target->close();
    }
    ++m_index;
    m_acted = false;
}

} // namespace braggnac::ui
