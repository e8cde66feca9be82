// braggnac-test-libs: braggnac_ui
// The studio's Export stage, Cancel during the C simulation (offscreen): clicked while g++
// compiles the check's C simulation, it ends the build (no process of it left running, found in
// /proc by an environment marker every child inherits), emits exportCancelled, shows no check
// (not even an earlier export's), reports no results file and leaves the panel usable: the
// next export into the same folder passes the check with 0 mismatches.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <QApplication>
#include <QPushButton>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "core/sim/simulator.h"
#include "ui/exportpanel.h"
#include "ui/studiocontext.h"

using namespace braggnac;
namespace fs = std::filesystem;

namespace {

std::string readText(const fs::path &p)
{
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

/// Names (comm) of the processes, zombies excluded, whose initial environment holds `marker`.
std::vector<std::string> markedProcesses(const std::string &marker)
{
    std::vector<std::string> out;
    std::error_code ec;
    for (const fs::directory_entry &e : fs::directory_iterator("/proc", ec)) {
        const std::string name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        const std::string env = readText(e.path() / "environ");
        bool found = false;
        for (std::size_t at = 0; at < env.size() && !found;) {
            std::size_t end = env.find('\0', at);
            if (end == std::string::npos)
                end = env.size();
            found = env.compare(at, end - at, marker) == 0;
            at = end + 1;
        }
        if (!found)
            continue;
        const std::string stat = readText(e.path() / "stat");
        const std::size_t open = stat.find('('), close = stat.rfind(')');
        if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size())
            continue;
        if (stat[close + 2] != 'Z' && stat[close + 2] != 'X')
            out.push_back(stat.substr(open + 1, close - open - 1));
    }
    return out;
}

} // namespace

class TestStudioExportCancel : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void cancelStopsTheCSimulation();
};

void TestStudioExportCancel::cancelStopsTheCSimulation()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    core::PatchSimOptions so;
    so.seed = 7;
    so.threads = 1;
    auto data = std::make_shared<const core::PatchDataset>(core::simulatePatches(60, so));
    core::ArchSpec spec;
    spec.name = "tiny";
    spec.inputSize = 11;
    spec.stem = {4, 3, core::Norm::Batch, core::Activation::ReLU};
    spec.head = {{8, core::Norm::None, core::Activation::ReLU}};
    core::Model m(spec, 2);
    const core::LayerPlan plan = core::LayerPlan::lower(spec);
    m.quantization = core::calibratedQuantSpec(plan, m.namedParameters(), data->patches.data(), 60, 8).toJson();
    const QString folder = dir.filePath(QStringLiteral("tiny8.model"));
    m.save(folder.toStdString());

    ui::StudioContext context;
    context.setDataset(data, dir.filePath(QStringLiteral("patches.h5")));
    ui::ExportPanel panel(&context);
    panel.setModelFolder(folder);
    const QString out = dir.filePath(QStringLiteral("prj"));
    panel.setOutputFolder(out);
    panel.setCheckPatches(20);
    QSignalSpy finished(&panel, &ui::ExportPanel::exportFinished);
    QSignalSpy cancelled(&panel, &ui::ExportPanel::exportCancelled);
    QSignalSpy errors(&panel, &ui::ExportPanel::errorOccurred);

    // A first export with its check, so that a stale check could be shown after the cancel.
    QVERIFY(panel.exportTo(out, true));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count() + errors.count(), 1, 240000);
    QVERIFY2(errors.isEmpty(), errors.isEmpty() ? "" : qPrintable(errors.first().first().toString()));
    QVERIFY(panel.lastCheck().present);

    const std::string value = "studio-" + std::to_string(::getpid());
    const std::string marker = std::string("BRAGGNAC_EXPORTCANCEL_MARKER=") + value;
    QVERIFY(::setenv("BRAGGNAC_EXPORTCANCEL_MARKER", value.c_str(), 1) == 0);
    QVERIFY(panel.exportTo(out, true));
    bool compiling = false;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!compiling && std::chrono::steady_clock::now() < until && panel.isBusy()) {
        QCoreApplication::processEvents();
        for (const std::string &comm : markedProcesses(marker))
            compiling = compiling || comm == "cc1plus";
        if (!compiling)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::unsetenv("BRAGGNAC_EXPORTCANCEL_MARKER");
    QVERIFY2(compiling, "no g++ compiler process of the C simulation was seen");
    QTest::mouseClick(panel.findChild<QPushButton *>(QStringLiteral("cancelButton")), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(cancelled.count(), 1, 30000);
    QCOMPARE(finished.count(), 1);
    QVERIFY(errors.isEmpty());
    QVERIFY(!panel.isBusy());
    const std::vector<std::string> left = markedProcesses(marker);
    for (const std::string &comm : left)
        qWarning("left running: %s", comm.c_str());
    QVERIFY(left.empty());
    QVERIFY(!panel.lastCheck().present);
    QVERIFY(!panel.checkText().contains(QStringLiteral("mismatching")));
    QCOMPARE(panel.statusText(), QStringLiteral("Export cancelled"));
    QVERIFY(!fs::exists(out.toStdString() + "/tb_data/csim_results.log"));
    QVERIFY(!fs::exists(out.toStdString() + "/braggnac_net_csim"));

    // Usable: the same folder exports and checks again.
    QVERIFY(panel.exportTo(out, true));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count() + errors.count(), 2, 240000);
    QVERIFY(errors.isEmpty());
    QVERIFY(panel.lastCheck().present);
    QCOMPARE(panel.lastCheck().mismatches, std::size_t(0));
    QCOMPARE(panel.lastCheck().outputs, std::size_t(40));
    QVERIFY(panel.lastCheck().firstMismatches.empty());
}

QTEST_MAIN(TestStudioExportCancel)
#include "tst_studio_exportcancel.moc"
