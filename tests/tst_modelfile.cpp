// braggnac-test-libs: braggnac_nn braggnac_sim torch
// Model folders: save, load in a FRESH PROCESS (this executable re-run in child mode) and compare
// predictions bit-exactly; missing / mismatched files give InputError naming the file; the
// TorchScript export loads in Python (when /usr/bin/python3 with torch is present) and matches.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include <QCoreApplication>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include "core/common/error.h"
#include "core/arch/archspec.h"
#include "core/nn/model.h"
#include "core/nn/torch_net.h"
#include "core/sim/simulator.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;
namespace fs = std::filesystem;

namespace {

const char *kChildEnv = "TST_MODELFILE_CHILD"; // "<model folder>|<patches.bin>|<out.bin>"

std::vector<float> readFloats(const std::string &path)
{
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    const auto size = std::size_t(in.tellg());
    std::vector<float> v(size / sizeof(float));
    in.seekg(0);
    in.read(reinterpret_cast<char *>(v.data()), std::streamsize(v.size() * sizeof(float)));
    return v;
}

void writeFloats(const std::string &path, const std::vector<float> &v)
{
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char *>(v.data()), std::streamsize(v.size() * sizeof(float)));
}

/// Child mode: load the model folder, predict the patches, write the raw floats.
int childMain(const std::string &spec)
{
    const auto a = spec.find('|'), b = spec.rfind('|');
    const std::string folder = spec.substr(0, a), patches = spec.substr(a + 1, b - a - 1),
                      out = spec.substr(b + 1);
    try {
        const Model m = Model::load(folder);
        const auto p = readFloats(patches);
        const int s = m.spec().inputSize;
        writeFloats(out, m.predict(p.data(), p.size() / std::size_t(s * s)));
        return 0;
    } catch (const InputError &e) {
        std::cerr << e.what() << "\n";
        return 2;
    } catch (const std::exception &e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}

/// Non-default norm parameters and running statistics, so that saving/loading and the
/// TorchScript export are checked on every tensor (a fresh net has weight 1, bias 0, mean 0, var 1).
void perturbNorms(Model &m, std::uint64_t seed)
{
    torch::NoGradGuard noGrad;
    torch::manual_seed(seed);
    for (auto &p : m.impl().net->named_parameters(true))
        if (p.key().find(".norm.") != std::string::npos)
            p.value().copy_(torch::rand_like(p.value()) + 0.5);
    for (auto &b : m.impl().net->named_buffers(true)) {
        if (b.key().find("running_mean") != std::string::npos)
            b.value().copy_(torch::rand_like(b.value()) - 0.5);
        else if (b.key().find("running_var") != std::string::npos)
            b.value().copy_(torch::rand_like(b.value()) + 0.5);
    }
}

/// Per-patch min-max normalisation, written independently of the library (same float formula).
std::vector<float> normalised(const std::vector<float> &p, int s)
{
    std::vector<float> out(p.size());
    const std::size_t area = std::size_t(s) * s;
    for (std::size_t i = 0; i < p.size() / area; ++i) {
        float mn = p[i * area], mx = p[i * area];
        for (std::size_t k = 0; k < area; ++k) {
            mn = std::min(mn, p[i * area + k]);
            mx = std::max(mx, p[i * area + k]);
        }
        for (std::size_t k = 0; k < area; ++k)
            out[i * area + k] = mx > mn ? (p[i * area + k] - mn) / (mx - mn) : 0.0f;
    }
    return out;
}

} // namespace

class TestModelFile : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    std::vector<float> m_patches; // 64 simulated 11x11 patches
    std::string m_patchFile;

    struct ChildResult {
        int exitCode = -1;
        QString err;
        std::vector<float> out;
    };
    ChildResult runChild(const std::string &folder)
    {
        const std::string out = m_dir.filePath("child-out.bin").toStdString();
        fs::remove(out);
        QProcess p;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(kChildEnv, QString::fromStdString(folder + "|" + m_patchFile + "|" + out));
        p.setProcessEnvironment(env);
        p.start(QCoreApplication::applicationFilePath(), {});
        ChildResult r;
        if (!p.waitForFinished(120000))
            return r;
        r.exitCode = p.exitCode();
        r.err = QString::fromUtf8(p.readAllStandardError()).trimmed();
        if (r.exitCode == 0)
            r.out = readFloats(out);
        return r;
    }

    std::string saveModel(const std::string &arch, std::uint64_t seed, const std::string &name)
    {
        Model m(builtinArch(arch), seed);
        m.recipe = {{"epochs", 3}, {"optimizer", "adam"}};
        m.metrics = {{"mean", 0.25}};
        const std::string folder = m_dir.filePath(QString::fromStdString(name)).toStdString();
        m.save(folder);
        return folder;
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        PatchSimOptions o;
        o.seed = 42;
        o.threads = 1;
        const PatchDataset d = simulatePatches(64, o);
        QCOMPARE(d.patchSize, 11);
        m_patches = d.patches;
        m_patchFile = m_dir.filePath("patches.bin").toStdString();
        writeFloats(m_patchFile, m_patches);
    }

    void freshProcessBitExact_data()
    {
        QTest::addColumn<QString>("arch");
        QTest::addColumn<bool>("quantized");
        QTest::newRow("braggnn") << "braggnn" << false;
        QTest::newRow("nac quantized") << "nac" << true;
    }
    void freshProcessBitExact()
    {
        QFETCH(QString, arch);
        QFETCH(bool, quantized);
        Model m(builtinArch(arch.toStdString()), 11);
        perturbNorms(m, 12);
        m.recipe = {{"epochs", 7}};
        m.metrics = {{"mean", 0.31}, {"p95", 0.9}};
        if (quantized)
            m.quantization = {{"weight_bits", 7}, {"act_bits", 7}, {"sparsity", 0.8}};
        const std::vector<float> expected = m.predict(m_patches.data(), 64);
        const std::string folder = m_dir.filePath("fresh-" + arch).toStdString();
        m.save(folder);
        for (const char *f : {"spec.json", "weights.pt", "recipe.json", "metrics.json", "model.json"})
            QVERIFY2(fs::exists(fs::path(folder) / f), f);
        QCOMPARE(fs::exists(fs::path(folder) / "quantization.json"), quantized);
        // No temporary left beside the folder.
        for (const auto &e : fs::directory_iterator(m_dir.path().toStdString()))
            QVERIFY2(e.path().filename().string().find(".tmp-") == std::string::npos, e.path().c_str());

        const ChildResult r = runChild(folder);
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        QCOMPARE(r.out.size(), expected.size());
        QVERIFY(std::memcmp(r.out.data(), expected.data(), expected.size() * sizeof(float)) == 0);

        // In-process load: same outputs, JSON side files restored.
        const Model back = Model::load(folder);
        QVERIFY(back.predict(m_patches.data(), 64) == expected);
        QCOMPARE(back.recipe["epochs"].get<int>(), 7);
        QCOMPARE(back.metrics["p95"].get<double>(), 0.9);
        QCOMPARE(back.quantization.is_null(), !quantized);
        QCOMPARE(back.parameterCount(), m.parameterCount());
        std::ifstream idx(fs::path(folder) / "model.json");
        const auto index = nlohmann::json::parse(idx);
        QCOMPARE(QString::fromStdString(index["format"].get<std::string>()), QString("braggnac-model"));
        QCOMPARE(index["parameters"].get<std::int64_t>(), m.parameterCount());
    }

    void saveReplacesAtomically()
    {
        const std::string folder = saveModel("nac", 1, "replace");
        const auto first = Model::load(folder).predict(m_patches.data(), 8);
        Model other(builtinArch("nac"), 2);
        other.save(folder); // replaces the existing folder
        const auto second = Model::load(folder).predict(m_patches.data(), 8);
        QVERIFY(first != second);
        QVERIFY(second == other.predict(m_patches.data(), 8));
        // A folder whose parent does not exist: InputError, nothing written.
        const std::string bad = m_dir.filePath("no/such/parent/model").toStdString();
        QVERIFY_THROWS_EXCEPTION(InputError, other.save(bad));
        QVERIFY(!fs::exists(m_dir.filePath("no").toStdString()));
    }

    void brokenFolders_data()
    {
        QTest::addColumn<QString>("damage");
        QTest::addColumn<QString>("mentions");
        QTest::newRow("missing weights.pt") << "rm weights.pt" << "weights.pt: missing";
        QTest::newRow("missing spec.json") << "rm spec.json" << "spec.json: missing";
        QTest::newRow("missing model.json") << "rm model.json" << "model.json: missing";
        QTest::newRow("spec edited: head width") << "width" << "weights.pt: tensor 'head.h0.linear.weight' has shape [8, 576], spec.json needs [9, 576]";
        QTest::newRow("spec edited: extra layer") << "extra" << "weights.pt: tensor 'head.h3.linear.weight' missing";
        QTest::newRow("truncated weights.pt") << "truncate" << "weights.pt: cannot read";
        QTest::newRow("malformed spec.json") << "garble" << "spec.json: malformed JSON";
    }
    void brokenFolders()
    {
        QFETCH(QString, damage);
        QFETCH(QString, mentions);
        static int counter = 0;
        const std::string folder = saveModel("nac", 3, "broken-" + std::to_string(++counter));
        const fs::path dir(folder);
        if (damage.startsWith("rm ")) {
            fs::remove(dir / damage.mid(3).toStdString());
        } else if (damage == "width" || damage == "extra") {
            std::ifstream in(dir / "spec.json");
            auto j = nlohmann::json::parse(in);
            in.close();
            if (damage == "width")
                j["head"][0]["width"] = 9;
            else
                j["head"].push_back({{"width", 3}, {"norm", "none"}, {"act", "relu"}});
            std::ofstream(dir / "spec.json") << j.dump(2);
        } else if (damage == "truncate") {
            fs::resize_file(dir / "weights.pt", fs::file_size(dir / "weights.pt") / 2);
        } else if (damage == "garble") {
            std::ofstream(dir / "spec.json") << "{\"stem\": ";
        }
        const QString msg = inputErrorMessage([&] { Model::load(folder); });
        QVERIFY2(threwInputError(msg), qPrintable(msg));
        QVERIFY2(msg.contains(mentions), qPrintable(msg));
        QVERIFY2(msg.contains(QString::fromStdString(folder)), qPrintable(msg));
        QVERIFY2(!msg.contains('\n'), qPrintable(msg));
        // The same failure in a fresh process: exit code 2 (InputError) with the message.
        const ChildResult r = runChild(folder);
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains(mentions), qPrintable(r.err));
    }

    void cloneIsDeep()
    {
        // The trainer snapshots the best epoch with clonePeakNet: parameters and buffers copied.
        Model m(builtinArch("nac"), 21);
        perturbNorms(m, 22);
        const auto before = m.predict(m_patches.data(), 16);
        PeakNet copy = clonePeakNet(m.impl().net);
        {
            torch::NoGradGuard noGrad;
            for (auto &p : m.impl().net->parameters())
                p.add_(0.1);
            for (auto &b : m.impl().net->buffers())
                if (b.is_floating_point())
                    b.mul_(1.5);
        }
        QVERIFY(m.predict(m_patches.data(), 16) != before);
        m.impl().net = copy;
        QVERIFY(m.predict(m_patches.data(), 16) == before);
    }

    void torchScriptInPython_data()
    {
        QTest::addColumn<QString>("arch");
        QTest::newRow("braggnn") << "braggnn";
        QTest::newRow("nac") << "nac";
    }
    void torchScriptInPython()
    {
        QFETCH(QString, arch);
        Model m(builtinArch(arch.toStdString()), 5);
        perturbNorms(m, 6);
        const std::string pt = m_dir.filePath(arch + ".ts.pt").toStdString();
        m.exportTorchScript(pt);
        QVERIFY(fs::file_size(pt) > 1000);
        if (!QFile::exists("/usr/bin/python3"))
            QSKIP("no /usr/bin/python3: TorchScript load in Python not checked");
        QProcess probe;
        probe.start("/usr/bin/python3", {"-c", "import torch"});
        probe.waitForFinished(120000);
        if (probe.exitCode() != 0)
            QSKIP("/usr/bin/python3 has no torch: TorchScript load in Python not checked");

        const std::string in = m_dir.filePath(arch + ".in.bin").toStdString();
        const std::string out = m_dir.filePath(arch + ".out.bin").toStdString();
        writeFloats(in, normalised(m_patches, 11));
        const QString script = QString(
            "import numpy as np, torch\n"
            "m = torch.jit.load('%1')\n"
            "x = torch.from_numpy(np.fromfile('%2', dtype=np.float32).reshape(-1, 1, 11, 11))\n"
            "with torch.no_grad():\n"
            "    y = m(x) * 11.0\n"
            "y.numpy().astype(np.float32).tofile('%3')\n")
                                   .arg(QString::fromStdString(pt), QString::fromStdString(in),
                                        QString::fromStdString(out));
        QProcess py;
        py.start("/usr/bin/python3", {"-c", script});
        QVERIFY(py.waitForFinished(180000));
        QVERIFY2(py.exitCode() == 0, py.readAllStandardError().constData());
        const auto got = readFloats(out);
        const auto expected = m.predict(m_patches.data(), 64);
        QCOMPARE(got.size(), expected.size());
        float maxDiff = 0;
        for (std::size_t i = 0; i < got.size(); ++i)
            maxDiff = std::max(maxDiff, std::abs(got[i] - expected[i]));
        qInfo("TorchScript in Python vs C++ predict: max |diff| = %g px", double(maxDiff));
        QVERIFY2(maxDiff < 1e-5f, qPrintable(QString::number(maxDiff)));
    }
};

int main(int argc, char **argv)
{
    if (const char *child = std::getenv(kChildEnv))
        return childMain(child);
    QCoreApplication app(argc, argv);
    TestModelFile t;
    return QTest::qExec(&t, argc, argv);
}

#include "tst_modelfile.moc"
