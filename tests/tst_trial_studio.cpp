// braggnac-test-libs: braggnac_ui
// The studio's Train panel and `braggnac train` share one train -> evaluate -> save path
// (core::runTrial): the model folders they write have the same recipe.json and metrics.json keys
// and, for the same seed, data and threads, the same numbers; a diverged training shows its
// reason in the panel, keeps no model and leaves the panel usable.
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include <QApplication>
#include <QDir>
#include <QFile>
#include <QMessageBox>
#include <QPushButton>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

#include "core/arch/archspec.h"
#include "core/common/runtime.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "core/sim/simulator.h"
#include "testutil.h"
#include "ui/studiocontext.h"
#include "ui/trainpanel.h"

using namespace braggnac;

namespace {

void keyPaths(const nlohmann::json &j, const std::string &prefix, std::set<std::string> &out)
{
    if (j.is_object()) {
        for (const auto &[k, v] : j.items()) {
            const std::string p = prefix.empty() ? k : prefix + "." + k;
            out.insert(p);
            keyPaths(v, p, out);
        }
    } else if (j.is_array()) {
        for (const auto &v : j)
            keyPaths(v, prefix + "[]", out);
    }
}

std::set<std::string> keyPaths(const nlohmann::json &j)
{
    std::set<std::string> out;
    keyPaths(j, "", out);
    return out;
}

QString difference(const std::set<std::string> &a, const std::set<std::string> &b)
{
    QStringList d;
    for (const auto &k : a)
        if (!b.count(k))
            d << QStringLiteral("-%1").arg(QString::fromStdString(k));
    for (const auto &k : b)
        if (!a.count(k))
            d << QStringLiteral("+%1").arg(QString::fromStdString(k));
    return d.join(QLatin1Char(' '));
}

nlohmann::json readJson(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return nullptr;
    return nlohmann::json::parse(f.readAll().toStdString());
}

void closeMessageBoxes(QWidget *panel)
{
    for (QMessageBox *box : panel->findChildren<QMessageBox *>())
        box->close();
    QCoreApplication::processEvents();
}

} // namespace

class TestTrialStudio : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void panelAndCliWriteTheSameSchema();
    void panelShowsDivergedTraining();

private:
    core::TrainOptions options() const
    {
        core::TrainOptions o;
        o.epochs = 2;
        o.batchSize = 64;
        o.threads = 1;
        o.seed = 3;
        o.device = "cpu";
        return o;
    }

    QTemporaryDir m_dir;
    core::PatchDataset m_data;
    QString m_dataPath, m_specPath;
};

void TestTrialStudio::initTestCase()
{
    QVERIFY(m_dir.isValid());
    core::PatchSimOptions so;
    so.seed = 8;
    m_data = core::simulatePatches(600, so);
    m_dataPath = m_dir.filePath(QStringLiteral("sim.h5"));
    core::writePatchDataset(m_dataPath.toStdString(), m_data);
    core::ArchSpec tiny = core::ArchSpec::fromJson(nlohmann::json::parse(R"({
        "name": "tiny", "input_size": 11,
        "stem": {"channels": 4, "kernel": 3, "norm": "none", "act": "relu"},
        "blocks": [{"type": "conv", "layers": [{"channels": 8, "kernel": 3, "norm": "batch", "act": "relu"}]}],
        "head": [{"width": 16, "norm": "layer", "act": "relu"}]
    })"));
    m_specPath = m_dir.filePath(QStringLiteral("tiny.json"));
    tiny.save(m_specPath.toStdString());
}

void TestTrialStudio::panelAndCliWriteTheSameSchema()
{
    ui::StudioContext context;
    context.setDataset(std::make_shared<core::PatchDataset>(m_data), m_dataPath);
    ui::TrainPanel panel(&context);
    QVERIFY(panel.setArchitecture(m_specPath));
    panel.setOptions(options());
    QSignalSpy done(&panel, &ui::TrainPanel::trainingFinished);
    QSignalSpy errors(&panel, &ui::TrainPanel::errorOccurred);
    QVERIFY(panel.startTraining());
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 60000);
    QCOMPARE(errors.count(), 0);
    const QString studioFolder = m_dir.filePath(QStringLiteral("studio.model"));
    QSignalSpy saved(&panel, &ui::TrainPanel::modelSaved);
    QVERIFY(panel.saveModel(studioFolder));
    QTRY_COMPARE_WITH_TIMEOUT(saved.count(), 1, 20000);

    const QString cliFolder = m_dir.filePath(QStringLiteral("cli.model"));
    const auto r = test::runCli({QStringLiteral("train"), m_dataPath, QStringLiteral("--arch"), m_specPath,
                                 QStringLiteral("--out"), cliFolder, QStringLiteral("--epochs"), QStringLiteral("2"),
                                 QStringLiteral("--batch"), QStringLiteral("64"), QStringLiteral("--threads"),
                                 QStringLiteral("1"), QStringLiteral("--seed"), QStringLiteral("3"),
                                 QStringLiteral("--device"), QStringLiteral("cpu")});
    QVERIFY2(r.finished && r.exitCode == 0, r.err.constData());

    for (const QString file : {QStringLiteral("metrics.json"), QStringLiteral("recipe.json")}) {
        const nlohmann::json studio = readJson(studioFolder + QLatin1Char('/') + file);
        const nlohmann::json cli = readJson(cliFolder + QLatin1Char('/') + file);
        QVERIFY2(studio.is_object() && cli.is_object(), qPrintable(file));
        const auto a = keyPaths(cli), b = keyPaths(studio);
        QVERIFY2(a == b, qPrintable(file + QStringLiteral(": ") + difference(a, b)));
    }
    const nlohmann::json studio = readJson(studioFolder + QStringLiteral("/metrics.json"));
    const nlohmann::json cli = readJson(cliFolder + QStringLiteral("/metrics.json"));
    // Same seed, data, threads: the same training and evaluation.
    QCOMPARE(studio["history"].size(), std::size_t(2));
    for (int e = 0; e < 2; ++e) {
        QCOMPARE(studio["history"][e]["loss"].get<double>(), cli["history"][e]["loss"].get<double>());
        QCOMPARE(studio["history"][e]["validation_mean"].get<double>(),
                 cli["history"][e]["validation_mean"].get<double>());
    }
    QCOMPARE(studio["test"].dump(), cli["test"].dump());
    QCOMPARE(studio["validation"].dump(), cli["validation"].dump());
    QVERIFY(studio["test"]["subsets"].contains("neighbour"));
    const nlohmann::json recipe = readJson(studioFolder + QStringLiteral("/recipe.json"));
    QCOMPARE(recipe["data"]["file"].get<std::string>(), m_dataPath.toStdString());
}

void TestTrialStudio::panelShowsDivergedTraining()
{
    ui::StudioContext context;
    context.setDataset(std::make_shared<core::PatchDataset>(m_data), m_dataPath);
    ui::TrainPanel panel(&context);
    QVERIFY(panel.setArchitecture(m_specPath));
    core::TrainOptions o = options();
    o.learningRate = 1e30;
    panel.setOptions(o);
    QSignalSpy done(&panel, &ui::TrainPanel::trainingFinished);
    QSignalSpy errors(&panel, &ui::TrainPanel::errorOccurred);
    QVERIFY(panel.startTraining());
    QTRY_COMPARE_WITH_TIMEOUT(errors.count(), 1, 60000);
    QCOMPARE(done.count(), 0);
    const QString message = errors.at(0).at(0).toString();
    QVERIFY2(message.startsWith(m_dataPath + QStringLiteral(": training diverged at epoch ")), qPrintable(message));
    QVERIFY2(panel.statusText().contains(QStringLiteral("training diverged")), qPrintable(panel.statusText()));
    QVERIFY(!panel.trainedModel());
    QVERIFY(!panel.findChild<QPushButton *>(QStringLiteral("saveModelButton"))->isEnabled());
    closeMessageBoxes(&panel);
    // Usable afterwards: a sane learning rate trains.
    panel.setOptions(options());
    QVERIFY(panel.startTraining());
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 60000);
    QVERIFY(panel.trainedModel());
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
    core::configureNumericRuntime();
    TestTrialStudio test;
    return QTest::qExec(&test, argc, argv);
}

#include "tst_trial_studio.moc"
