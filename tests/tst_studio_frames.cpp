// braggnac-test-libs: braggnac_ui
// BraggNAC Studio's main window, Frames stage and Peaks workflow, driven offscreen: every frame
// format opens bit-exact, the markers are exactly the finder's peaks for each frame, fitted and
// predicted centres land where the core puts them, table <-> view selection both ways (also
// across frames), bad files raise an observable error and leave the window usable, the HDF5
// browser, levels (exact P2/P98) and colormaps, dark subtraction, max over frames, keyboard
// stepping, filters and CSV export.
#include <algorithm>
#include <cmath>
#include <memory>

#include <QAbstractButton>
#include <QApplication>
#include <QFile>
#include <QLabel>
#include <QMessageBox>
#include <QMimeData>
#include <QPainter>
#include <QProgressBar>
#include <QSettings>
#include <QToolButton>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableView>
#include <QTemporaryDir>
#include <QtTest>

#include "core/io/framesource.h"
#include "core/arch/archspec.h"
#include "core/nn/model.h"
#include "core/peaks/finder.h"
#include "core/peaks/fitter.h"
#include "core/sim/simulator.h"
#include "ui/aboutdialog.h"
#include "ui/colormap.h"
#include "ui/framespanel.h"
#include "ui/frameview.h"
#include "ui/hdf5browserdialog.h"
#include "ui/job.h"
#include "ui/levelshistogram.h"
#include "ui/mainwindow.h"
#include "ui/patchinspector.h"
#include "ui/peakspanel.h"
#include "ui/peaktablemodel.h"
#include "ui/studiocontext.h"
#include "ui/tableexport.h"

using namespace braggnac;
using braggnac::ui::MainWindow;

namespace {
constexpr int kSize = 512;
constexpr int kFrames = 3;

core::Frame readFrame(const QString &path, int index, const QString &dataset = {})
{
    return core::openFrameSource(path.toStdString(), dataset.toStdString())->readFrame(index);
}

void closeErrorBoxes(QWidget *w)
{
    for (QMessageBox *box : w->findChildren<QMessageBox *>())
        box->close();
    QCoreApplication::processEvents();
}
} // namespace

class TestStudioFrames : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();

    void opensEveryFormat_data();
    void opensEveryFormat();
    void markersAreTheFindersPeaks_data();
    void markersAreTheFindersPeaks();
    void fitAndModelCentres();
    void tableAndViewSelectEachOther();
    void selectionAcrossFrames();
    void badFileShowsErrorAndStaysUsable_data();
    void badFileShowsErrorAndStaysUsable();
    void hdf5BrowserChoosesDataset();
    void autoLevelsAndColormaps_data();
    void autoLevelsAndColormaps();
    void darkSubtraction();
    void maxOverFrames();
    void keyboardStepping();
    void filtersAndCsv();
    void rangeFindMatchesFinderInSource();
    void cancelFromStatusBar();
    void redrawOfLargeFrameIsFast();
    void zoomedOutViewKeepsSinglePixelPeaks();
    void dropOpensFile();
    void exportsAndAbout();

private:
    bool openAndWait(const QString &path, const QString &dataset = {});
    bool waitIdle(int timeoutMs = 60000);

    QTemporaryDir m_dir;
    QString m_h5, m_tiff, m_ge, m_custom, m_dark;
    core::SimulatedFrames m_sim;
    std::unique_ptr<MainWindow> m_window;
};

void TestStudioFrames::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("BraggNAC-tests"));
    QCoreApplication::setApplicationName(QStringLiteral("tst_studio_frames"));
    QVERIFY(m_dir.isValid());

    core::FrameSimOptions options;
    options.size = kSize;
    options.peaksPerFrame = 40;
    options.seed = 11;
    m_sim = core::simulateFrames(kFrames, options);
    QCOMPARE(int(m_sim.frames.size()), kFrames);
    m_h5 = m_dir.filePath(QStringLiteral("sim.h5"));
    core::writeSimulatedFrames(m_h5.toStdString(), m_sim, core::SimFormat::HDF5);
    m_tiff = m_dir.filePath(QStringLiteral("sim.tif"));
    core::writeTiffFrames(m_tiff.toStdString(), m_sim.frames);
    m_custom = m_dir.filePath(QStringLiteral("custom.h5"));
    core::writeHdf5Frames(m_custom.toStdString(), m_sim.frames, "/scan/frames");

    core::FrameSimOptions big = options;
    big.size = 2048;
    big.peaksPerFrame = 25;
    big.seed = 5;
    m_ge = m_dir.filePath(QStringLiteral("sim.ge2"));
    core::writeGeFrames(m_ge.toStdString(), core::simulateFrames(1, big).frames);

    // A dark file of two frames whose mean is 15 everywhere.
    m_dark = m_dir.filePath(QStringLiteral("dark.tif"));
    core::writeTiffFrames(m_dark.toStdString(), {core::Frame(kSize, kSize, 10.f), core::Frame(kSize, kSize, 20.f)});
}

void TestStudioFrames::init()
{
    QSettings().clear();
    m_window = std::make_unique<MainWindow>();
    m_window->resize(1400, 900);
    m_window->show();
    QVERIFY(QTest::qWaitForWindowExposed(m_window.get()));
}

void TestStudioFrames::cleanup()
{
    if (m_window)
        closeErrorBoxes(m_window.get());
    m_window.reset();
}

bool TestStudioFrames::waitIdle(int timeoutMs)
{
    QElapsedTimer t;
    t.start();
    // Idle for a few consecutive polls: jobs chain (open -> load -> find -> fit).
    int quiet = 0;
    while (t.elapsed() < timeoutMs) {
        QTest::qWait(20);
        quiet = m_window->isBusy() || m_window->peaksPanel()->isBusy() || m_window->framesPanel()->isBusy() ? 0 : quiet + 1;
        if (quiet >= 5)
            return true;
    }
    return false;
}

bool TestStudioFrames::openAndWait(const QString &path, const QString &dataset)
{
    QSignalSpy shown(m_window->framesPanel(), &ui::FramesPanel::frameShown);
    m_window->openFile(path, dataset);
    if (!shown.wait(60000) && shown.isEmpty())
        return false;
    return waitIdle();
}

void TestStudioFrames::opensEveryFormat_data()
{
    QTest::addColumn<QString>("which");
    QTest::addColumn<QString>("dataset");
    QTest::addColumn<int>("frames");
    QTest::addColumn<int>("size");
    QTest::newRow("hdf5 default dataset") << QStringLiteral("h5") << QString() << kFrames << kSize;
    QTest::newRow("hdf5 chosen dataset") << QStringLiteral("custom") << QStringLiteral("/scan/frames") << kFrames << kSize;
    QTest::newRow("tiff multi-page") << QStringLiteral("tiff") << QString() << kFrames << kSize;
    QTest::newRow("ge2") << QStringLiteral("ge") << QString() << 1 << 2048;
}

void TestStudioFrames::opensEveryFormat()
{
    QFETCH(QString, which);
    QFETCH(QString, dataset);
    QFETCH(int, frames);
    QFETCH(int, size);
    const QString path = which == QLatin1String("h5") ? m_h5 : which == QLatin1String("custom") ? m_custom
                       : which == QLatin1String("tiff") ? m_tiff : m_ge;
    QSignalSpy opened(m_window.get(), &MainWindow::fileOpened);
    QVERIFY(openAndWait(path, dataset));
    QCOMPARE(opened.count(), 1);
    QCOMPARE(m_window->currentFile(), QFileInfo(path).absoluteFilePath());
    QCOMPARE(m_window->framesPanel()->frameCount(), frames);
    QCOMPARE(m_window->framesPanel()->currentIndex(), 0);
    ui::FrameView *view = m_window->frameView();
    QCOMPARE(view->image().size(), QSize(size, size));
    // The view holds exactly what the core reader returns.
    const core::Frame expected = readFrame(path, 0, dataset);
    QVERIFY(view->values());
    QVERIFY(view->values()->data == expected.data);
    QVERIFY(m_window->recentFiles().contains(QFileInfo(path).absoluteFilePath()));

    // Pixel readout in the status bar for the pixel under the cursor.
    const int row = size / 2 + 3, col = size / 3;
    view->setScale(4.0, QPointF(view->width() / 2.0, view->height() / 2.0));
    view->centreOn(row, col);
    QSignalSpy hovered(view, &ui::FrameView::pixelHovered);
    QTest::mouseMove(view, QPoint(3, 3)); // a real move even when the last test ended here
    QTest::mouseMove(view, view->mapFromFrame(row, col).toPoint());
    QTRY_VERIFY(!hovered.isEmpty());
    const QList<QVariant> args = hovered.last();
    QCOMPARE(args.at(0).toInt(), row);
    QCOMPARE(args.at(1).toInt(), col);
    QCOMPARE(args.at(2).toDouble(), double(expected.at(row, col)));
    auto *readout = m_window->findChild<QLabel *>(QStringLiteral("pixelReadout"));
    QVERIFY(readout);
    QVERIFY2(readout->text().contains(QStringLiteral("row %1  col %2").arg(row).arg(col)), qPrintable(readout->text()));
}

void TestStudioFrames::markersAreTheFindersPeaks_data()
{
    QTest::addColumn<QString>("file");
    QTest::addColumn<int>("frame");
    QTest::addColumn<double>("threshold");
    QTest::addColumn<int>("patchSize");
    const QString real = QStringLiteral(BRAGGNAC_TEST_DATA "/hexrd-zr/real_zr_20frames.h5");
    QTest::newRow("simulated frame 0, automatic threshold") << QString() << 0 << -1.0 << 11;
    QTest::newRow("simulated frame 1, automatic threshold") << QString() << 1 << -1.0 << 11;
    QTest::newRow("simulated frame 2, absolute 150, patch 9") << QString() << 2 << 150.0 << 9;
    QTest::newRow("real Zr frame 17, absolute 20") << real << 17 << 20.0 << 11;
}

void TestStudioFrames::markersAreTheFindersPeaks()
{
    QFETCH(QString, file);
    QFETCH(int, frame);
    QFETCH(double, threshold);
    QFETCH(int, patchSize);
    const QString path = file.isEmpty() ? m_h5 : file;
    core::FinderOptions options;
    options.threshold = threshold;
    options.patchSize = patchSize;
    m_window->peaksPanel()->setOptions(options);
    m_window->peaksPanel()->setFitAfterFind(false);
    m_window->peaksPanel()->setAutoFind(true);
    QVERIFY(openAndWait(path));
    if (frame != 0) {
        QSignalSpy shown(m_window->framesPanel(), &ui::FramesPanel::frameShown);
        m_window->framesPanel()->showFrame(frame);
        QVERIFY(shown.wait(30000));
        QVERIFY(waitIdle());
    }
    const std::vector<core::Peak> expected = core::findPeaks(readFrame(path, frame), frame, options);
    QVERIFY2(expected.size() >= 10, "the frame should hold peaks");
    ui::FrameView *view = m_window->frameView();
    QTRY_COMPARE(view->peakMarkerCount(), int(expected.size()));
    // Same peaks, same places, same patch boxes.
    std::vector<std::pair<int, int>> want, got;
    for (const core::Peak &p : expected)
        want.emplace_back(p.row, p.col);
    for (const ui::PeakMarker &m : view->markers()) {
        got.emplace_back(int(m.peakRow), int(m.peakCol));
        QCOMPARE(m.size, patchSize);
        QCOMPARE(m.originRow, int(m.peakRow) - patchSize / 2);
        QCOMPARE(m.originCol, int(m.peakCol) - patchSize / 2);
    }
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    QVERIFY(want == got);
    QCOMPARE(view->fitMarkerCount(), 0);
    // The table keeps every frame searched so far (auto-find ran on frame 0 first).
    const auto &found = m_window->peaksPanel()->peakModel()->results().peaks;
    QCOMPARE(int(std::count_if(found.begin(), found.end(), [frame](const core::Peak &p) { return p.frame == frame; })),
             int(expected.size()));
    QVERIFY(m_window->peaksPanel()->peakModel()->searched(frame));
    // The finder parameters persist.
    QCOMPARE(QSettings().value(QStringLiteral("finder/patchSize")).toInt(), patchSize);
}

void TestStudioFrames::fitAndModelCentres()
{
    QVERIFY(openAndWait(m_h5));
    auto model = std::make_shared<const core::Model>(core::builtinArch("nac"), 3);
    m_window->context()->setModel(model);
    ui::PeaksPanel *peaks = m_window->peaksPanel();
    peaks->setFitAfterFind(true);
    QVERIFY(peaks->findInCurrentFrame());
    QVERIFY(waitIdle());
    ui::FrameView *view = m_window->frameView();
    const int n = view->peakMarkerCount();
    QVERIFY(n >= 10);
    QCOMPARE(view->fitMarkerCount(), n);
    QCOMPARE(view->predictionMarkerCount(), n);

    // Fitted centres are the fitter's result shifted by the patch origin: converged fits of
    // isolated simulated peaks sit within a fraction of a pixel of the truth.
    const ui::PeakTableModel *table = peaks->peakModel();
    int close = 0, checked = 0;
    for (const ui::PeakMarker &m : view->markers()) {
        const ui::PatchDetails d = peaks->details(m.id);
        const core::FitResult direct = core::fitPseudoVoigt(d.patch.data(), d.size);
        QCOMPARE(m.fitRow, m.originRow + d.fit.params.row);
        QCOMPARE(m.fitCol, m.originCol + d.fit.params.col);
        QVERIFY(std::abs(d.fit.params.row - direct.params.row) < 1e-6);
        QVERIFY(std::abs(d.fit.params.col - direct.params.col) < 1e-6);
        // Model centre = origin + Model::predict on the patch.
        const std::vector<float> p = model->predict(d.patch.data(), 1);
        QCOMPARE(float(m.nnRow - m.originRow), p[0]);
        QCOMPARE(float(m.nnCol - m.originCol), p[1]);
        const core::Peak &peak = table->peak(m.id);
        if (!table->results().fits[std::size_t(m.id)].converged || peak.merged || peak.border)
            continue;
        double best = 1e9;
        for (const core::TruthPeak &t : m_sim.truth)
            if (t.frame == 0)
                best = std::min(best, std::hypot(t.params.row - m.fitRow, t.params.col - m.fitCol));
        ++checked;
        close += best < 0.5;
    }
    QVERIFY(checked >= 5);
    QVERIFY2(close >= checked * 8 / 10, qPrintable(QStringLiteral("%1 of %2 fits near the truth").arg(close).arg(checked)));

    // Distances in the table are fit-to-model distances.
    const int id = view->markers().front().id;
    double fr, fc, nr, nc;
    QVERIFY(table->fitCentre(id, fr, fc));
    QVERIFY(table->predictedCentre(id, nr, nc));
    QCOMPARE(table->fitToModelDistance(id), std::hypot(fr - nr, fc - nc));

    // Removing the model removes the predictions.
    m_window->context()->setModel(nullptr);
    QTRY_COMPARE(view->predictionMarkerCount(), 0);
    QCOMPARE(view->fitMarkerCount(), n);
}

void TestStudioFrames::tableAndViewSelectEachOther()
{
    QVERIFY(openAndWait(m_h5));
    ui::PeaksPanel *peaks = m_window->peaksPanel();
    peaks->setFitAfterFind(true);
    QVERIFY(peaks->findInCurrentFrame());
    QVERIFY(waitIdle());
    ui::FrameView *view = m_window->frameView();
    QTableView *table = m_window->peakTable();
    QVERIFY(view->peakMarkerCount() > 5);
    QSignalSpy selected(m_window.get(), &MainWindow::peakSelected);

    // Table -> view: sort by amplitude (descending) and pick the third row.
    table->sortByColumn(ui::PeakTableModel::Amplitude, Qt::DescendingOrder);
    const QModelIndex proxyIndex = table->model()->index(2, ui::PeakTableModel::Amplitude);
    const int id = peaks->proxy()->mapToSource(proxyIndex).row();
    table->setCurrentIndex(proxyIndex);
    QCOMPARE(selected.count(), 1);
    QCOMPARE(selected.last().at(0).toInt(), id);
    QCOMPARE(view->selectedPeak(), id);
    QCOMPARE(m_window->selectedPeak(), id);
    const core::Peak &peak = peaks->peakModel()->peak(id);
    // The selected marker is on screen (centred when it was not).
    QVERIFY(view->rect().contains(view->mapFromFrame(peak.row, peak.col).toPoint()));
    // The inspector shows this peak's patch: its maximum is the peak's maximum pixel.
    const ui::PatchDetails shown = m_window->patchInspector()->details();
    QCOMPARE(shown.id, id);
    const int half = shown.size / 2;
    QCOMPARE(shown.patch[std::size_t(half) * shown.size + half], peak.maxValue);
    QCOMPARE(int(m_window->patchInspector()->residual().size()), shown.size * shown.size);
    const double residualCentre = shown.patch[std::size_t(half) * shown.size + half] - shown.fit.params.evaluate(half, half);
    QCOMPARE(double(m_window->patchInspector()->residual()[std::size_t(half) * shown.size + half]), double(float(residualCentre)));

    // View -> table: click another marker.
    const ui::PeakMarker *other = nullptr;
    for (const ui::PeakMarker &m : view->markers()) {
        const double dist = std::hypot(m.peakRow - peak.row, m.peakCol - peak.col);
        if (m.id != id && dist > 40) {
            other = &m;
            break;
        }
    }
    QVERIFY(other);
    const int otherId = other->id;
    view->setScale(2.0, QPointF(view->width() / 2.0, view->height() / 2.0));
    view->centreOn(other->peakRow, other->peakCol);
    QTest::mouseClick(view, Qt::LeftButton, Qt::NoModifier, view->mapFromFrame(other->peakRow, other->peakCol).toPoint());
    QCOMPARE(view->selectedPeak(), otherId);
    QCOMPARE(selected.last().at(0).toInt(), otherId);
    const QModelIndex current = table->selectionModel()->currentIndex();
    QVERIFY(current.isValid());
    QCOMPARE(peaks->proxy()->mapToSource(current).row(), otherId);
    QCOMPARE(table->selectionModel()->selectedRows().size(), 1);
    QCOMPARE(m_window->patchInspector()->details().id, otherId);

    // Clicking empty background (no marker) keeps the selection.
    QTest::mouseClick(view, Qt::LeftButton, Qt::NoModifier, QPoint(2, 2));
    QCOMPARE(view->selectedPeak(), otherId);
}

void TestStudioFrames::selectionAcrossFrames()
{
    QVERIFY(openAndWait(m_h5));
    ui::PeaksPanel *peaks = m_window->peaksPanel();
    peaks->setFitAfterFind(false);
    QVERIFY(peaks->findInRange(0, kFrames));
    QVERIFY(waitIdle());
    const ui::PeakTableModel *model = peaks->peakModel();
    int id = -1;
    for (int i = 0; i < model->peakCount(); ++i)
        if (model->peak(i).frame == 2) {
            id = i;
            break;
        }
    QVERIFY(id >= 0);
    QSignalSpy shown(m_window->framesPanel(), &ui::FramesPanel::frameShown);
    m_window->selectPeak(id);
    QVERIFY(shown.wait(30000));
    QCOMPARE(shown.last().at(0).toInt(), 2);
    QTRY_COMPARE(m_window->frameView()->selectedPeak(), id);
    // Markers now show frame 2's peaks only.
    const int inFrame2 = int(std::count_if(model->results().peaks.begin(), model->results().peaks.end(),
                                           [](const core::Peak &p) { return p.frame == 2; }));
    QCOMPARE(m_window->frameView()->peakMarkerCount(), inFrame2);
}

void TestStudioFrames::badFileShowsErrorAndStaysUsable_data()
{
    QTest::addColumn<QString>("name");
    QTest::addColumn<QByteArray>("content");
    QTest::newRow("ge2 not header + whole frames") << QStringLiteral("short.ge2") << QByteArray(8192 + 1000, '\1');
    QTest::newRow("h5 that is not HDF5") << QStringLiteral("text.h5") << QByteArray("not an hdf5 file\n");
    QTest::newRow("tif that is not TIFF") << QStringLiteral("noise.tif") << QByteArray(4096, '\x7f');
    QTest::newRow("missing file") << QStringLiteral("missing.h5") << QByteArray();
}

void TestStudioFrames::badFileShowsErrorAndStaysUsable()
{
    QFETCH(QString, name);
    QFETCH(QByteArray, content);
    QVERIFY(openAndWait(m_h5));
    const auto before = m_window->context()->frames();
    const QString bad = m_dir.filePath(name);
    if (!content.isEmpty()) {
        QFile f(bad);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(content);
    }
    QSignalSpy errors(m_window.get(), &MainWindow::errorShown);
    m_window->openFile(bad);
    QTRY_COMPARE(errors.count(), 1);
    const QString message = errors.first().at(0).toString();
    QVERIFY2(message.contains(name), qPrintable(message));
    QVERIFY2(!message.contains(QLatin1Char('\n')), "one-line message");
    // A non-blocking box shows it; the file that was open stays open.
    QTRY_VERIFY(!m_window->findChildren<QMessageBox *>().isEmpty());
    QCOMPARE(m_window->findChildren<QMessageBox *>().first()->text(), message);
    QCOMPARE(m_window->context()->frames(), before);
    closeErrorBoxes(m_window.get());
    if (!content.isEmpty())
        QFile::remove(bad);
    // And a good file opens afterwards.
    QSignalSpy opened(m_window.get(), &MainWindow::fileOpened);
    QVERIFY(openAndWait(m_tiff));
    QCOMPARE(opened.count(), 1);
    QCOMPARE(m_window->currentFile(), QFileInfo(m_tiff).absoluteFilePath());
    QVERIFY(m_window->frameView()->values()->data == readFrame(m_tiff, 0).data);
    QCOMPARE(errors.count(), 1);
}

void TestStudioFrames::hdf5BrowserChoosesDataset()
{
    // custom.h5 has no /entry/data/data: opening it asks which dataset holds the frames.
    QSignalSpy opened(m_window.get(), &MainWindow::fileOpened);
    m_window->openFile(m_custom);
    ui::Hdf5BrowserDialog *dialog = nullptr;
    QTRY_VERIFY((dialog = m_window->findChild<ui::Hdf5BrowserDialog *>()) != nullptr);
    QTRY_VERIFY(dialog->isVisible());
    QCOMPARE(dialog->usableCount(), 1);
    QCOMPARE(dialog->selectedDataset(), QStringLiteral("/scan/frames"));
    const auto &list = dialog->datasets();
    const auto it = std::find_if(list.begin(), list.end(), [](const core::Hdf5DatasetInfo &d) { return d.path == "/scan/frames"; });
    QVERIFY(it != list.end());
    QCOMPARE(int(it->shape.size()), 3);
    QCOMPARE(int(it->shape[0]), kFrames);
    dialog->accept();
    QVERIFY(opened.wait(30000));
    QVERIFY(waitIdle());
    QCOMPARE(m_window->context()->frames()->dataset(), std::string("/scan/frames"));
    QVERIFY(m_window->frameView()->values()->data == readFrame(m_custom, 0, QStringLiteral("/scan/frames")).data);
}

void TestStudioFrames::autoLevelsAndColormaps_data()
{
    QTest::addColumn<QString>("colormap");
    QTest::addColumn<QString>("scaling");
    QTest::addColumn<uint>("lowColour");
    QTest::addColumn<uint>("highColour");
    QTest::newRow("grey linear") << QStringLiteral("grey") << QStringLiteral("linear") << 0xff000000u << 0xffffffffu;
    QTest::newRow("viridis sqrt") << QStringLiteral("viridis") << QStringLiteral("sqrt") << 0xff440154u << 0xfffde725u;
    QTest::newRow("inverted grey log") << QStringLiteral("inverted-grey") << QStringLiteral("log") << 0xffffffffu << 0xff000000u;
}

void TestStudioFrames::autoLevelsAndColormaps()
{
    QFETCH(QString, colormap);
    QFETCH(QString, scaling);
    QFETCH(uint, lowColour);
    QFETCH(uint, highColour);
    QVERIFY(openAndWait(m_h5));
    ui::FramesPanel *panel = m_window->framesPanel();
    panel->setAutoLevels(true);
    panel->setColormap(ui::Colormap::fromKey(colormap));
    panel->setScaling(ui::scalingFromKey(scaling));
    // Exact percentiles of the frame's pixels.
    std::vector<float> v = readFrame(m_h5, 0).data;
    std::sort(v.begin(), v.end());
    const double p2 = v[std::size_t(std::floor(0.02 * (v.size() - 1)))];
    const double p98 = v[std::size_t(std::floor(0.98 * (v.size() - 1)))];
    QCOMPARE(panel->lowLevel(), p2);
    QCOMPARE(panel->highLevel(), p98);
    QCOMPARE(panel->stats().min, double(v.front()));
    QCOMPARE(panel->stats().max, double(v.back()));
    QTRY_VERIFY(m_window->frameView()->image().pixel(0, 0) != 0); // rendered
    QTest::qWait(50);
    // Pixels at or below P2 get the first colour, at or above P98 the last; a middle value gets
    // the colour of its scaled level.
    const core::Frame frame = readFrame(m_h5, 0);
    const QImage image = m_window->frameView()->image();
    const ui::Colormap map(ui::Colormap::fromKey(colormap));
    int lowSeen = 0, highSeen = 0, midSeen = 0;
    for (int r = 0; r < frame.rows; r += 3)
        for (int c = 0; c < frame.cols; c += 3) {
            const float x = frame.at(r, c);
            if (x <= p2) {
                QCOMPARE(uint(image.pixel(c, r)), lowColour);
                ++lowSeen;
            } else if (x >= p98) {
                QCOMPARE(uint(image.pixel(c, r)), highColour);
                ++highSeen;
            } else if (midSeen < 50) {
                const double t = (x - p2) / (p98 - p2);
                const QColor got(image.pixel(c, r));
                const QColor want(map.color(ui::applyScaling(t, ui::scalingFromKey(scaling))));
                QVERIFY(std::abs(got.red() - want.red()) + std::abs(got.green() - want.green()) + std::abs(got.blue() - want.blue()) <= 12);
                ++midSeen;
            }
        }
    QVERIFY(lowSeen > 0 && highSeen > 0 && midSeen > 0);

    // Manual levels switch auto off and re-render.
    panel->setLevels(100, 200);
    QVERIFY(!panel->autoLevels());
    QTRY_COMPARE(uint(m_window->frameView()->image().pixel(0, 0)), frame.at(0, 0) <= 100 ? lowColour : frame.at(0, 0) >= 200 ? highColour : uint(m_window->frameView()->image().pixel(0, 0)));
}

void TestStudioFrames::darkSubtraction()
{
    QVERIFY(openAndWait(m_h5));
    ui::FramesPanel *panel = m_window->framesPanel();
    QSignalSpy shown(panel, &ui::FramesPanel::frameShown);
    panel->loadDark(m_dark);
    QVERIFY(shown.wait(30000));
    QVERIFY(waitIdle());
    QVERIFY(panel->subtractingDark());
    const core::Frame raw = readFrame(m_h5, 0);
    const auto &values = m_window->frameView()->values()->data;
    QCOMPARE(values.size(), raw.data.size());
    for (std::size_t k = 0; k < raw.data.size(); ++k)
        QCOMPARE(values[k], std::max(0.f, raw.data[k] - 15.f));
    // Peak finding uses the dark-subtracted frame, like the CLI with --dark.
    core::FinderOptions options;
    m_window->peaksPanel()->setOptions(options);
    QVERIFY(m_window->peaksPanel()->findInCurrentFrame());
    QVERIFY(waitIdle());
    core::Frame subtracted = raw;
    for (float &x : subtracted.data)
        x = std::max(0.f, x - 15.f);
    QCOMPARE(m_window->frameView()->peakMarkerCount(), int(core::findPeaks(subtracted, 0, options).size()));
    // Turning subtraction off shows the raw frame again.
    panel->setSubtractDark(false);
    QVERIFY(shown.wait(30000));
    QVERIFY(m_window->frameView()->values()->data == raw.data);
    // A dark frame of another size is refused with the file named.
    const QString wrong = m_dir.filePath(QStringLiteral("dark-small.tif"));
    core::writeTiffFrames(wrong.toStdString(), {core::Frame(64, 64, 1.f)});
    QSignalSpy errors(m_window.get(), &MainWindow::errorShown);
    panel->loadDark(wrong);
    QTRY_COMPARE(errors.count(), 1);
    QVERIFY(errors.first().at(0).toString().contains(QStringLiteral("dark-small.tif")));
}

void TestStudioFrames::maxOverFrames()
{
    QVERIFY(openAndWait(m_h5));
    ui::FramesPanel *panel = m_window->framesPanel();
    m_window->peaksPanel()->setFitAfterFind(false);
    QVERIFY(m_window->peaksPanel()->findInRange(0, kFrames));
    QVERIFY(waitIdle());
    QSignalSpy maxShown(panel, &ui::FramesPanel::maxShown);
    panel->setMaxView(true);
    QVERIFY(maxShown.wait(30000));
    core::Frame expected = readFrame(m_h5, 0);
    for (int i = 1; i < kFrames; ++i) {
        const core::Frame f = readFrame(m_h5, i);
        for (std::size_t k = 0; k < f.data.size(); ++k)
            expected.data[k] = std::max(expected.data[k], f.data[k]);
    }
    QVERIFY(m_window->frameView()->values()->data == expected.data);
    // The max view shows the peaks of every frame searched.
    QCOMPARE(m_window->frameView()->peakMarkerCount(), m_window->peaksPanel()->peakModel()->peakCount());
    // Stepping leaves the max view.
    QSignalSpy shown(panel, &ui::FramesPanel::frameShown);
    panel->showFrame(1);
    QVERIFY(shown.wait(30000));
    QVERIFY(!panel->maxView());
    QVERIFY(m_window->frameView()->values()->data == readFrame(m_h5, 1).data);
}

void TestStudioFrames::keyboardStepping()
{
    QVERIFY(openAndWait(m_h5));
    ui::FrameView *view = m_window->frameView();
    ui::FramesPanel *panel = m_window->framesPanel();
    view->setFocus();
    QSignalSpy shown(panel, &ui::FramesPanel::frameShown);
    QTest::keyClick(view, Qt::Key_Right);
    QVERIFY(shown.wait(30000));
    QCOMPARE(panel->currentIndex(), 1);
    QTest::keyClick(view, Qt::Key_End);
    QTRY_COMPARE(panel->currentIndex(), kFrames - 1);
    QTest::keyClick(m_window.get(), Qt::Key_PageUp);
    QTRY_COMPARE(panel->currentIndex(), kFrames - 2);
    QTest::keyClick(view, Qt::Key_Home);
    QTRY_COMPARE(panel->currentIndex(), 0);
    QVERIFY(waitIdle());
    QVERIFY(view->values()->data == readFrame(m_h5, 0).data);
    // Rapid steps coalesce to the last request and never go past the end.
    for (int i = 0; i < 10; ++i)
        panel->step(+1);
    QTRY_COMPARE(panel->currentIndex(), kFrames - 1);
    QVERIFY(waitIdle());
    QVERIFY(view->values()->data == readFrame(m_h5, kFrames - 1).data);
    // Fit to window (F) and zoom about the cursor.
    QTest::keyClick(view, Qt::Key_F);
    const double fitted = view->scale();
    QCOMPARE(fitted, std::min(double(view->width()) / kSize, double(view->height()) / kSize));
    const QPointF anchor(view->width() / 3.0, view->height() / 3.0);
    const QPointF under = view->mapToFrame(anchor);
    view->setScale(fitted * 4, anchor);
    const QPointF after = view->mapToFrame(anchor);
    QVERIFY(std::abs(after.x() - under.x()) < 1e-9 && std::abs(after.y() - under.y()) < 1e-9);
}

void TestStudioFrames::filtersAndCsv()
{
    QVERIFY(openAndWait(m_h5));
    ui::PeaksPanel *peaks = m_window->peaksPanel();
    peaks->setFitAfterFind(true);
    QVERIFY(peaks->findInCurrentFrame());
    QVERIFY(waitIdle());
    const ui::PeakTableModel *model = peaks->peakModel();
    ui::PeakFilterProxy *proxy = peaks->proxy();
    const int n = model->peakCount();
    QCOMPARE(proxy->rowCount(), n);
    int converged = 0, bright = 0;
    for (int i = 0; i < n; ++i) {
        converged += model->results().fits[std::size_t(i)].converged;
        const double amplitude = model->results().fits[std::size_t(i)].converged
            ? model->results().fits[std::size_t(i)].params.amplitude
            : model->peak(i).maxValue - model->peak(i).background;
        bright += amplitude >= 500;
    }
    proxy->setConvergedOnly(true);
    QCOMPARE(proxy->rowCount(), converged);
    proxy->setConvergedOnly(false);
    proxy->setMinAmplitude(500);
    QCOMPARE(proxy->rowCount(), bright);
    QVERIFY(bright > 0 && bright < n);
    // Without a model there is no fit-model distance, so that filter keeps nothing.
    proxy->setMinDistance(0.1);
    QCOMPARE(proxy->rowCount(), 0);
    proxy->setMinDistance(0);

    // CSV of what is shown, full precision.
    const QString csv = m_dir.filePath(QStringLiteral("peaks.csv"));
    ui::exportTableCsv(*proxy, csv, Qt::EditRole);
    QFile f(csv);
    QVERIFY(f.open(QIODevice::ReadOnly | QIODevice::Text));
    const QStringList lines = QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), bright + 1);
    const QStringList header = lines.first().split(QLatin1Char(','));
    const int fitRowColumn = int(header.indexOf(QStringLiteral("Fit row")));
    QVERIFY(fitRowColumn >= 0);
    const QModelIndex first = proxy->index(0, ui::PeakTableModel::Id);
    const int id = proxy->data(first, Qt::EditRole).toInt();
    double fr, fc;
    QVERIFY(model->fitCentre(id, fr, fc));
    QCOMPARE(lines.at(1).split(QLatin1Char(',')).at(fitRowColumn).toDouble(), fr);
}

void TestStudioFrames::rangeFindMatchesFinderInSource()
{
    QVERIFY(openAndWait(m_h5));
    ui::PeaksPanel *peaks = m_window->peaksPanel();
    peaks->setFitAfterFind(false);
    QVERIFY(peaks->findInRange(1, 3));
    QVERIFY(waitIdle());
    const auto source = core::openFrameSource(m_h5.toStdString());
    std::vector<core::Peak> expected;
    const core::PatchDataset data = core::findPeaksInSource(*source, 1, 3, peaks->options(), nullptr, {}, &expected);
    const ui::PeakTableModel *model = peaks->peakModel();
    QCOMPARE(model->peakCount(), int(expected.size()));
    QVERIFY(model->results().patches.patches == data.patches);
    QVERIFY(model->searched(1) && model->searched(2) && !model->searched(0));
    // Finding in frame 1 again replaces frame 1's peaks only.
    QSignalSpy shown(m_window->framesPanel(), &ui::FramesPanel::frameShown);
    m_window->framesPanel()->showFrame(1);
    QVERIFY(shown.wait(30000));
    QVERIFY(peaks->findInCurrentFrame());
    QVERIFY(waitIdle());
    QCOMPARE(model->peakCount(), int(expected.size()));
    // The dataset handed to the Dataset stage: one labelled patch per peak, fits applied.
    QVERIFY(peaks->fitPeaks());
    QVERIFY(waitIdle());
    QVERIFY(peaks->sendToDataset());
    QVERIFY(waitIdle());
    const auto dataset = m_window->context()->dataset();
    QVERIFY(dataset);
    QCOMPARE(int(dataset->size()), model->peakCount());
    QCOMPARE(dataset->labelSource, std::string("pseudo-voigt"));
    QCOMPARE(int(dataset->frameIndex.size()), model->peakCount());
}

void TestStudioFrames::cancelFromStatusBar()
{
    QVERIFY(openAndWait(m_h5));
    // The demo simulates 4 frames of 2048 x 2048: long enough to cancel from the status bar.
    QSettings().setValue(QStringLiteral("demo/size"), 2048);
    QSettings().setValue(QStringLiteral("demo/frames"), 4);
    m_window->openDemo();
    auto *cancel = m_window->findChild<QToolButton *>(QStringLiteral("jobCancel"));
    auto *progress = m_window->findChild<QProgressBar *>(QStringLiteral("jobProgress"));
    QVERIFY(cancel && progress);
    QTRY_VERIFY(cancel->isVisible());
    QVERIFY(progress->isVisible());
    QVERIFY(m_window->isBusy());
    QElapsedTimer clock;
    clock.start();
    QTest::mouseClick(cancel, Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(!m_window->isBusy(), 20000);
    qInfo("demo simulation stopped %lld ms after cancel", clock.elapsed());
    QTRY_VERIFY(!cancel->isVisible());
    // Cancelled, not failed: no error, the open file is untouched, and the window works.
    QCOMPARE(m_window->currentFile(), QFileInfo(m_h5).absoluteFilePath());
    QVERIFY(m_window->findChildren<QMessageBox *>().isEmpty());
    QVERIFY(m_window->demoPath().isEmpty());
    QVERIFY(openAndWait(m_tiff));
    QCOMPARE(m_window->currentFile(), QFileInfo(m_tiff).absoluteFilePath());
}

// A 2048 x 2048 frame: a repaint (zoomed out, 1:1, zoomed in, with markers) draws only the
// visible part; a levels change re-renders the QImage once. Medians reported, generous bounds.
void TestStudioFrames::redrawOfLargeFrameIsFast()
{
    core::FinderOptions options;
    m_window->peaksPanel()->setOptions(options);
    m_window->peaksPanel()->setAutoFind(true);
    QVERIFY(openAndWait(m_ge));
    ui::FrameView *view = m_window->frameView();
    QCOMPARE(view->image().size(), QSize(2048, 2048));
    QVERIFY(view->peakMarkerCount() > 0);
    const auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    QImage target(view->size(), QImage::Format_RGB32);
    for (double scale : {0.0, 1.0, 8.0}) {
        if (scale == 0)
            view->fitToWindow();
        else
            view->setScale(scale, QPointF(view->width() / 2.0, view->height() / 2.0));
        std::vector<double> ms;
        for (int i = 0; i < 15; ++i) {
            QElapsedTimer t;
            t.start();
            QPainter p(&target);
            view->render(p, target.rect());
            p.end();
            ms.push_back(t.nsecsElapsed() / 1e6);
        }
        qInfo("repaint %dx%d view of a 2048^2 frame at scale %.3f: median %.2f ms", view->width(), view->height(),
              view->scale(), median(ms));
        QVERIFY2(median(ms) < 100, "a repaint must stay interactive");
    }
    ui::FramesPanel *panel = m_window->framesPanel();
    const core::Frame &frame = *view->values();
    const std::vector<core::Frame> pyramid = ui::FrameView::maxPyramid(frame);
    std::vector<double> ms;
    for (int i = 0; i < 7; ++i) {
        QElapsedTimer t;
        t.start();
        const QImage image = panel->colormap().render(frame.data.data(), frame.rows, frame.cols, 10 + i, 500, ui::Scaling::Log);
        for (const core::Frame &level : pyramid)
            panel->colormap().render(level.data.data(), level.rows, level.cols, 10 + i, 500, ui::Scaling::Log);
        ms.push_back(t.nsecsElapsed() / 1e6);
        QCOMPARE(image.size(), QSize(2048, 2048));
    }
    qInfo("levels change: re-render of a 2048^2 frame and its %d max-pooled levels: median %.2f ms",
          int(pyramid.size()), median(ms));
    QVERIFY2(median(ms) < 500, "a levels change must not freeze the window");
}

// Sparse frames (HEXRD frame caches are mostly 0): zoomed out, a single bright pixel must stay
// visible; nearest-neighbour sampling of the full image would drop about 15 of every 16.
void TestStudioFrames::zoomedOutViewKeepsSinglePixelPeaks()
{
    core::Frame frame(2048, 2048, 0.f);
    std::vector<std::pair<int, int>> spikes;
    for (int i = 0; i < 12; ++i) {
        spikes.emplace_back(101 + 163 * i, 1987 - 157 * i);
        frame.at(spikes.back().first, spikes.back().second) = 5000.f;
    }
    const QString path = m_dir.filePath(QStringLiteral("spikes.tif"));
    core::writeTiffFrames(path.toStdString(), {frame});
    QVERIFY(openAndWait(path));
    ui::FrameView *view = m_window->frameView();
    QCOMPARE(view->imageLevels(), 6); // 2048 + max-pooled 1024, 512, 256, 128, 64
    m_window->framesPanel()->setColormap(ui::Colormap::Name::Grey);
    m_window->framesPanel()->setLevels(0, 1000);
    QTest::qWait(50);
    for (double scale : {0.04, 0.11, 0.2, 0.3, 0.45}) {
        view->setScale(scale, QPointF(view->width() / 2.0, view->height() / 2.0));
        view->centreOn(1024, 1024);
        QVERIFY(view->levelForScale(view->scale()) > 0);
        QImage shot(view->size(), QImage::Format_RGB32);
        QPainter p(&shot);
        view->render(p, shot.rect());
        p.end();
        int seen = 0, inside = 0;
        for (const auto &[r, c] : spikes) {
            const QPoint at = view->mapFromFrame(r, c).toPoint();
            if (!shot.rect().adjusted(2, 2, -2, -2).contains(at))
                continue;
            ++inside;
            int best = 0;
            for (int dy = -1; dy <= 1; ++dy)
                for (int dx = -1; dx <= 1; ++dx)
                    best = std::max(best, qGray(shot.pixel(at + QPoint(dx, dy))));
            seen += best == 255;
        }
        QVERIFY(inside >= 3);
        QVERIFY2(seen == inside, qPrintable(QStringLiteral("scale %1: %2 of %3 single-pixel peaks visible").arg(scale).arg(seen).arg(inside)));
    }
    // At 1:1 and above the full-resolution image is drawn.
    QCOMPARE(view->levelForScale(1.0), 0);
    QCOMPARE(view->levelForScale(4.0), 0);
    // The pyramid is a max-pool.
    const std::vector<core::Frame> levels = ui::FrameView::maxPyramid(frame);
    QCOMPARE(int(levels.size()), 5);
    QCOMPARE(levels[0].rows, 1024);
    QCOMPARE(levels[2].cols, 256);
    QCOMPARE(levels[4].cols, 64);
    for (const auto &[r, c] : spikes)
        QCOMPARE(levels[2].at(r / 8, c / 8), 5000.f);
    double sum = 0;
    for (float v : levels[2].data)
        sum += v;
    QCOMPARE(sum, 5000.0 * spikes.size());
}

void TestStudioFrames::dropOpensFile()
{
    QMimeData mime;
    mime.setUrls({QUrl::fromLocalFile(m_tiff)});
    QSignalSpy opened(m_window.get(), &MainWindow::fileOpened);
    const QPoint at = m_window->frameView()->mapTo(m_window.get(), m_window->frameView()->rect().center());
    QDragEnterEvent enter(at, Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QCoreApplication::sendEvent(m_window.get(), &enter);
    QVERIFY(enter.isAccepted());
    QDropEvent drop(QPointF(at), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QCoreApplication::sendEvent(m_window.get(), &drop);
    QVERIFY(opened.wait(30000));
    QCOMPARE(opened.first().at(0).toString(), QFileInfo(m_tiff).absoluteFilePath());
}

void TestStudioFrames::exportsAndAbout()
{
    QVERIFY(openAndWait(m_h5));
    m_window->peaksPanel()->setFitAfterFind(true);
    QVERIFY(m_window->peaksPanel()->findInCurrentFrame());
    QVERIFY(waitIdle());
    ui::FrameView *view = m_window->frameView();
    const QString png = m_dir.filePath(QStringLiteral("view.png"));
    const QString svg = m_dir.filePath(QStringLiteral("view.svg"));
    view->exportImage(png);
    view->exportImage(svg);
    const QImage image(png);
    QCOMPARE(image.size(), view->size() * view->devicePixelRatio());
    // The exported PNG is what the view paints: same pixels as a render into an image.
    QImage painted(view->size(), QImage::Format_RGB32);
    QPainter p(&painted);
    view->render(p, painted.rect());
    p.end();
    QCOMPARE(image.convertToFormat(QImage::Format_RGB32), painted);
    QFile file(svg);
    QVERIFY(file.open(QIODevice::ReadOnly));
    const QByteArray text = file.readAll();
    QVERIFY(text.contains("<svg") && text.contains("<image"));
    // One rectangle per patch box at least (overlays are vector graphics).
    QVERIFY(text.count("<path") + text.count("<rect") + text.count("<polyline") >= view->peakMarkerCount());
    // The patch inspector exports too; a failed export names the file.
    m_window->selectPeak(view->markers().front().id);
    const QString patch = m_dir.filePath(QStringLiteral("patch.png"));
    m_window->patchInspector()->exportImage(patch);
    QVERIFY(!QImage(patch).isNull());
    const QString bad = m_dir.filePath(QStringLiteral("no-such-folder/view.png"));
    try {
        view->exportImage(bad);
        QFAIL("exporting into a missing folder must fail");
    } catch (const std::exception &e) {
        QVERIFY(QString::fromStdString(e.what()).contains(bad));
    }
    // Help -> About lists the libraries with their versions.
    const auto versions = ui::AboutDialog::libraryVersions();
    QStringList names;
    for (const auto &v : versions) {
        names << v.first;
        QVERIFY2(!v.second.trimmed().isEmpty(), qPrintable(v.first));
    }
    QCOMPARE(names, (QStringList{QStringLiteral("Qt"), QStringLiteral("LibTorch"), QStringLiteral("HDF5"),
                                 QStringLiteral("OpenCV"), QStringLiteral("libtiff"), QStringLiteral("SQLite"),
                                 QStringLiteral("nlohmann-json")}));
    QCOMPARE(versions.front().second, QString::fromLatin1(qVersion()));
    QVERIFY(versions.at(1).second.startsWith(QString::fromStdString(core::torchVersion())));
}

QTEST_MAIN(TestStudioFrames)
#include "tst_studio_frames.moc"
