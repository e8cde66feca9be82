// braggnac-test-libs: braggnac_ui
// The studio's Export stage, driven offscreen: "Export to HLS" of the built-in braggnn and nac
// networks quantised at 8 bits writes a project whose g++ C simulation matches the integer
// reference with 0 mismatches, read from the panel and from the project's own files
// (tb_data/csim_results.log against tb_output_predictions.dat and core's forwardRaw); the
// estimate table is core::estimateHls per layer with the total and the part's capacity.
// Exporting into a non-empty folder writes nothing until confirmed; an output folder holding
// the model, a check dataset of the wrong patch size: errors naming the file, panel usable.
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <QApplication>
#include <QDir>
#include <QFile>
#include <QMessageBox>
#include <QPushButton>
#include <QSignalSpy>
#include <QStandardItemModel>
#include <QTemporaryDir>
#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "core/hls/hlsestimate.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "core/sim/simulator.h"
#include "ui/exportpanel.h"
#include "ui/job.h"
#include "ui/studiocontext.h"

using namespace braggnac;

namespace {

std::vector<std::vector<double>> readRows(const QString &file)
{
    std::vector<std::vector<double>> rows;
    std::ifstream f(file.toStdString());
    std::string line;
    while (std::getline(f, line)) {
        if (line.empty())
            continue;
        std::istringstream is(line);
        std::vector<double> row;
        double v;
        while (is >> v)
            row.push_back(v);
        rows.push_back(row);
    }
    return rows;
}

QStringList entries(const QString &dir)
{
    return QDir(dir).entryList(QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden, QDir::Name);
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

} // namespace

class TestStudioExport : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void exportPassesCheck_data();
    void exportPassesCheck();
    void nonEmptyFolderNeedsConfirmation();
    void badInputKeepsPanelUsable();

private:
    QString path(const QString &name) const { return m_dir.filePath(name); }
    /// `arch` ("braggnn", "nac" or "tiny": stem 4x3x3, dense 8) at 8 bits (calibratedQuantSpec
    /// on 200 patches), saved as a model folder.
    QString quantisedFolder(const std::string &arch);

    QTemporaryDir m_dir;
    std::shared_ptr<const core::PatchDataset> m_data;
};

void TestStudioExport::initTestCase()
{
    QVERIFY(m_dir.isValid());
    core::PatchSimOptions so;
    so.seed = 5;
    so.threads = 1;
    m_data = std::make_shared<const core::PatchDataset>(core::simulatePatches(300, so));
}

QString TestStudioExport::quantisedFolder(const std::string &arch)
{
    const QString folder = path(QString::fromStdString(arch) + QStringLiteral("8.model"));
    if (QFileInfo::exists(folder))
        return folder;
    core::ArchSpec spec;
    if (arch == "tiny") {
        spec.name = "tiny";
        spec.inputSize = 11;
        spec.stem = {4, 3, core::Norm::Batch, core::Activation::ReLU};
        spec.head = {{8, core::Norm::None, core::Activation::ReLU}};
    } else {
        spec = core::builtinArch(arch);
    }
    core::Model m(spec, 2);
    const core::LayerPlan plan = core::LayerPlan::lower(spec);
    m.quantization = core::calibratedQuantSpec(plan, m.namedParameters(), m_data->patches.data(), 200, 8).toJson();
    m.save(folder.toStdString());
    return folder;
}

void TestStudioExport::exportPassesCheck_data()
{
    QTest::addColumn<QString>("arch");
    QTest::addColumn<int>("reuse");
    QTest::addColumn<QString>("part");
    QTest::newRow("braggnn, reuse 1, xcu250") << QStringLiteral("braggnn") << 1 << QStringLiteral("xcu250");
    QTest::newRow("nac, reuse 4, xczu7ev") << QStringLiteral("nac") << 4 << QStringLiteral("xczu7ev");
}

void TestStudioExport::exportPassesCheck()
{
    QFETCH(QString, arch);
    QFETCH(int, reuse);
    QFETCH(QString, part);
    const QString folder = quantisedFolder(arch.toStdString());

    ui::StudioContext context;
    context.setDataset(m_data, path(QStringLiteral("patches.h5")));
    ui::ExportPanel panel(&context);
    panel.setModelFolder(folder);
    // Default output: beside the model folder.
    QCOMPARE(panel.outputFolder(), path(arch + QStringLiteral("8-hls")));
    const QString out = path(arch + QStringLiteral("-prj"));
    panel.setOutputFolder(out);
    panel.setReuseFactor(reuse);
    panel.setClockMhz(250);
    panel.setPart(part);
    panel.setCheckPatches(24);
    QSignalSpy finished(&panel, &ui::ExportPanel::exportFinished);
    QSignalSpy errors(&panel, &ui::ExportPanel::errorOccurred);
    QTest::mouseClick(panel.findChild<QPushButton *>(QStringLiteral("exportButton")), Qt::LeftButton);
    QVERIFY(panel.isBusy());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count() + errors.count(), 1, 240000);
    QVERIFY2(errors.isEmpty(), errors.isEmpty() ? "" : qPrintable(errors.first().first().toString()));
    QCOMPARE(finished.first().first().toString(), out);
    QCOMPARE(panel.exportedFolder(), out);

    // The panel's check.
    const ui::ExportPanel::Check &check = panel.lastCheck();
    QVERIFY(check.present);
    QCOMPARE(check.patches, std::size_t(24));
    QCOMPARE(check.outputs, std::size_t(48));
    QCOMPARE(check.mismatches, std::size_t(0));
    QVERIFY(std::isfinite(check.meanDistance) && check.meanDistance > 0);
    QVERIFY(panel.checkText().contains(QStringLiteral("24 patches, 0 mismatching outputs of 48")));
    QVERIFY(!panel.defaultPrecision());

    // The files: the C simulation's outputs equal the integer reference's, value for value.
    const auto csim = readRows(out + QStringLiteral("/tb_data/csim_results.log"));
    const auto expected = readRows(out + QStringLiteral("/tb_data/tb_output_predictions.dat"));
    QCOMPARE(csim.size(), std::size_t(24));
    QCOMPARE(expected.size(), std::size_t(24));
    QCOMPARE(readRows(out + QStringLiteral("/tb_data/tb_input_features.dat")).size(), std::size_t(24));
    const core::Model model = core::Model::load(folder.toStdString());
    const core::LayerPlan plan = core::LayerPlan::lower(model.spec());
    const core::IntegerReference ref(plan, model.namedParameters(),
                                     core::QuantSpec::fromJson(model.quantization, plan, "quantization.json"));
    const std::vector<std::int64_t> raw = ref.forwardRaw(m_data->patches.data(), 24);
    const core::FixedFormat &fo = ref.format(int(plan.ops.size()) - 1);
    std::size_t mismatches = 0;
    for (std::size_t p = 0; p < 24; ++p) {
        QCOMPARE(csim[p].size(), std::size_t(2));
        for (std::size_t k = 0; k < 2; ++k) {
            mismatches += csim[p][k] != expected[p][k];
            mismatches += csim[p][k] != fo.toDouble(raw[2 * p + k]);
        }
    }
    QCOMPARE(mismatches, std::size_t(0));
    QVERIFY(QFile::exists(out + QStringLiteral("/firmware/braggnac_net.cpp")));
    QVERIFY(QFile::exists(out + QStringLiteral("/build_prj.tcl")));

    // The estimate: core's, per layer, then the total and the part's capacity.
    const core::HlsEstimate want = core::estimateHls(ref, reuse, 250, core::hlsPart(part.toStdString()));
    const core::HlsEstimate &got = panel.estimate();
    QCOMPARE(got.dsp, want.dsp);
    QCOMPARE(got.lut, want.lut);
    QCOMPARE(got.ff, want.ff);
    QCOMPARE(got.bram18, want.bram18);
    QCOMPARE(got.cycles, want.cycles);
    QCOMPARE(got.reuseFactor, reuse);
    QCOMPARE(QString::fromStdString(got.part.name), part);
    QStandardItemModel *table = panel.estimateModel();
    QCOMPARE(table->rowCount(), int(want.layers.size()) + 2);
    for (int i = 0; i < int(want.layers.size()); ++i) {
        QCOMPARE(table->index(i, 0).data().toString(), QString::fromStdString(want.layers[std::size_t(i)].name));
        QCOMPARE(table->index(i, 7).data(Qt::EditRole).toLongLong(), qlonglong(want.layers[std::size_t(i)].lut));
        QCOMPARE(table->index(i, 10).data(Qt::EditRole).toLongLong(), qlonglong(want.layers[std::size_t(i)].cycles));
    }
    const int total = int(want.layers.size());
    QCOMPARE(table->index(total, 0).data().toString(), QStringLiteral("total"));
    QCOMPARE(table->index(total, 6).data(Qt::EditRole).toLongLong(), qlonglong(want.dsp));
    QCOMPARE(table->index(total, 10).data(Qt::EditRole).toLongLong(), qlonglong(want.cycles));
    QCOMPARE(table->index(total + 1, 6).data(Qt::EditRole).toLongLong(), qlonglong(want.part.dsp));
    QCOMPARE(table->index(total + 1, 7).data(Qt::EditRole).toLongLong(), qlonglong(want.part.lut));
    QVERIFY(panel.findChild<QPushButton *>(QStringLiteral("openFolderButton"))->isEnabled());
}

void TestStudioExport::nonEmptyFolderNeedsConfirmation()
{
    const QString folder = quantisedFolder("tiny");
    ui::StudioContext context;
    context.setDataset(m_data, path(QStringLiteral("patches.h5")));
    ui::ExportPanel panel(&context);
    panel.setModelFolder(folder);
    panel.setCheckPatches(8);
    const QString out = path(QStringLiteral("occupied"));
    QVERIFY(QDir().mkpath(out));
    QFile marker(QDir(out).filePath(QStringLiteral("notes.txt")));
    QVERIFY(marker.open(QIODevice::WriteOnly));
    marker.write("not an HLS project\n");
    marker.close();
    const QStringList before = entries(m_dir.path());
    panel.setOutputFolder(out);
    QSignalSpy finished(&panel, &ui::ExportPanel::exportFinished);

    // Not confirmed: a question and nothing written, neither in the folder nor beside it.
    QTest::mouseClick(panel.findChild<QPushButton *>(QStringLiteral("exportButton")), Qt::LeftButton);
    QVERIFY(!panel.isBusy());
    QMessageBox *box = visibleBox(&panel, QStringLiteral("confirmOverwriteBox"));
    QVERIFY(box);
    QVERIFY(box->text().contains(out));
    box->button(QMessageBox::No)->click();
    QCoreApplication::processEvents();
    QTest::qWait(50);
    QVERIFY(!panel.isBusy());
    QCOMPARE(finished.count(), 0);
    QCOMPARE(entries(out), QStringList{QStringLiteral("notes.txt")});
    QCOMPARE(entries(m_dir.path()), before);
    QVERIFY(!panel.lastCheck().present);

    // Confirmed: the folder becomes the project.
    QVERIFY(!panel.exportTo());
    box = visibleBox(&panel, QStringLiteral("confirmOverwriteBox"));
    QVERIFY(box);
    box->button(QMessageBox::Yes)->click();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 240000);
    QVERIFY(!QFile::exists(QDir(out).filePath(QStringLiteral("notes.txt"))));
    QVERIFY(QFile::exists(QDir(out).filePath(QStringLiteral("firmware/braggnac_net.cpp"))));
    QCOMPARE(panel.lastCheck().mismatches, std::size_t(0));
    QCOMPARE(panel.lastCheck().patches, std::size_t(8));
}

void TestStudioExport::badInputKeepsPanelUsable()
{
    const QString folder = quantisedFolder("tiny");
    ui::StudioContext context;
    ui::ExportPanel panel(&context);
    QSignalSpy errors(&panel, &ui::ExportPanel::errorOccurred);

    // No model.
    QVERIFY(!panel.exportTo(path(QStringLiteral("none-prj"))));
    QCOMPARE(errors.count(), 1);
    QVERIFY(errors.last().first().toString().contains(QStringLiteral("no model")));
    closeBoxes(&panel);

    // An output folder holding the model: refused before anything is written.
    panel.setModelFolder(folder);
    const QStringList before = entries(m_dir.path());
    QVERIFY(!panel.exportTo(m_dir.path(), true));
    QCOMPARE(errors.count(), 2);
    QVERIFY(errors.last().first().toString().contains(QStringLiteral("holds an input of the export")));
    QCOMPARE(entries(m_dir.path()), before);
    closeBoxes(&panel);

    // A check dataset of the wrong patch size: the core's message naming the file.
    core::PatchSimOptions so;
    so.seed = 2;
    so.patchSize = 15;
    so.threads = 1;
    context.setDataset(std::make_shared<const core::PatchDataset>(core::simulatePatches(20, so)),
                       path(QStringLiteral("p15.h5")));
    panel.setCheckPatches(5);
    QVERIFY(panel.exportTo(path(QStringLiteral("p15-prj"))));
    QTRY_COMPARE_WITH_TIMEOUT(errors.count(), 3, 60000);
    QVERIFY2(errors.last().first().toString().startsWith(path(QStringLiteral("p15.h5")) + QStringLiteral(": patches are 15 x 15")),
             qPrintable(errors.last().first().toString()));
    QVERIFY(!QFileInfo::exists(path(QStringLiteral("p15-prj"))));
    QVERIFY(visibleBox(&panel, QStringLiteral("exportErrorBox")));
    closeBoxes(&panel);

    // Still usable: without the check the same export runs.
    QSignalSpy finished(&panel, &ui::ExportPanel::exportFinished);
    panel.setCheckPatches(0);
    QVERIFY(panel.exportTo(path(QStringLiteral("p15-prj"))));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
    QVERIFY(!panel.lastCheck().present);
    QVERIFY(panel.hasEstimate());
    QVERIFY(QFile::exists(path(QStringLiteral("p15-prj/firmware/braggnac_net.cpp"))));
}

QTEST_MAIN(TestStudioExport)
#include "tst_studio_export.moc"
