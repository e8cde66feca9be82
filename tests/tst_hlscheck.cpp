// braggnac-test-libs: braggnac_hls braggnac_nn braggnac_sim
// The HLS export check (core/hls/hlscheck.h): on a small quantised network it finds 0 mismatches
// and the numbers `braggnac export-hls --check --json` prints (patches, outputs, mismatches, mean
// distance), and that distance is the integer reference's own; the JSON round trip; a changed bias
// is reported as mismatches of output 0 exactly where the C simulation's log differs; a broken
// build names the exit status and the compiler's message; a dataset of the wrong size, or an
// export whose testbench holds another number of patches, is refused.
// Cancellation: cancelling while g++ compiles the C simulation (in-process, and SIGINT to the CLI)
// ends it with CancelledError / status 1, leaves no process of the build running (checked in
// /proc by an environment marker every child inherits), no results file, no binary, and the same
// folder checks cleanly afterwards.
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/common/error.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "core/hls/hlscheck.h"
#include "core/hls/hlsexport.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "core/sim/simulator.h"
#include "tests/hlstestutil.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;
namespace fs = std::filesystem;

namespace {

const char *kMarkerName = "BRAGGNAC_HLSCHECK_MARKER";


struct Proc {
    long pid = 0;
    std::string comm;
    char state = 0;
};

/// Processes (zombies excluded) whose initial environment holds `marker` (NAME=VALUE).
std::vector<Proc> markedProcesses(const std::string &marker)
{
    std::vector<Proc> out;
    std::error_code ec;
    for (const fs::directory_entry &e : fs::directory_iterator("/proc", ec)) {
        const std::string name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        const std::string env = readText(e.path() / "environ");
        bool found = false;
        for (std::size_t at = 0; at < env.size();) {
            const std::size_t end = env.find('\0', at);
            if (env.compare(at, (end == std::string::npos ? env.size() : end) - at, marker) == 0)
                found = true;
            if (end == std::string::npos)
                break;
            at = end + 1;
        }
        if (!found)
            continue;
        const std::string stat = readText(e.path() / "stat");
        const std::size_t open = stat.find('('), close = stat.rfind(')');
        if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size())
            continue;
        Proc p;
        p.pid = std::stol(name);
        p.comm = stat.substr(open + 1, close - open - 1);
        p.state = stat[close + 2];
        if (p.state != 'Z' && p.state != 'X')
            out.push_back(p);
    }
    return out;
}

/// Waits (at most 120 s) until a marked compiler process (cc1plus) runs; false if none came.
bool waitForCompiler(const std::string &marker)
{
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < until) {
        for (const Proc &p : markedProcesses(marker))
            if (p.comm == "cc1plus")
                return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

/// The values of tb_data/csim_results.log as raw integers of `fo`.
std::vector<std::int64_t> readResults(const std::string &path, const FixedFormat &fo)
{
    std::ifstream f(path);
    std::vector<std::int64_t> raw;
    double v;
    while (f >> v)
        raw.push_back(std::llround(std::ldexp(v, fo.fraction())));
    return raw;
}

} // namespace

class TestHlsCheck : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;
    std::string m_root, m_model, m_data;
    PatchDataset m_patches;
    std::unique_ptr<IntegerReference> m_ref;
    const std::size_t m_n = 30;

    std::string exportFresh(const std::string &name)
    {
        const std::string out = m_root + "/" + name;
        exportHls(*m_ref, HlsOptions{}, out, false, m_patches.patches.data(), m_n);
        return out;
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_root = m_dir.path().toStdString();
        PatchSimOptions so;
        so.seed = 11;
        so.threads = 1;
        m_patches = simulatePatches(120, so);
        m_data = m_root + "/patches.h5";
        writePatchDataset(m_data, m_patches);
        const ArchSpec spec = friendlySpec();
        Model m(spec, 4);
        const LayerPlan plan = LayerPlan::lower(spec);
        const QuantSpec q = calibratedQuantSpec(plan, m.namedParameters(), m_patches.patches.data(), 100, 8);
        m.quantization = q.toJson();
        m_model = m_root + "/friendly.model";
        m.save(m_model);
        m_ref = std::make_unique<IntegerReference>(plan, m.namedParameters(), q);
    }

    void zeroMismatchesAndTheCliNumbers()
    {
        const CliResult r = runCli({QString::fromStdString("export-hls"), QString::fromStdString(m_model),
                                    QStringLiteral("--out"), QString::fromStdString(m_root + "/cli"), QStringLiteral("--check"),
                                    QString::fromStdString(m_data), QStringLiteral("--n"), QString::number(m_n),
                                    QStringLiteral("--json")},
                                   300000);
        QVERIFY2(r.finished && r.exitCode == 0, r.err.constData());
        const nlohmann::json cli = nlohmann::json::parse(r.out.toStdString())["check"];

        const std::string out = exportFresh("core");
        const HlsCheck c = checkHlsExport(out, *m_ref, m_patches, m_n, {}, m_data);
        QCOMPARE(c.patches, m_n);
        QCOMPARE(c.outputs, 2 * m_n);
        QCOMPARE(c.csimOutputs, 2 * m_n);
        QCOMPARE(c.mismatches, std::size_t(0));
        QVERIFY(c.passed());
        QVERIFY(c.firstMismatches.empty());
        QCOMPARE(c.csimResults, out + "/tb_data/csim_results.log");
        QCOMPARE(c.buildLog, out + "/csim_build.log");
        QVERIFY(fs::exists(c.csimResults) && fs::exists(c.buildLog));
        QVERIFY(c.csimSeconds > 0);

        // Bit-exact: the distance is the integer reference's own distance to the labels.
        const std::vector<double> pred = m_ref->predict(m_patches.patches.data(), m_n);
        double sum = 0;
        for (std::size_t p = 0; p < m_n; ++p)
            sum += std::hypot(pred[2 * p] - m_patches.centers[2 * p], pred[2 * p + 1] - m_patches.centers[2 * p + 1]);
        QVERIFY(c.meanDistance.has_value());
        QVERIFY(std::abs(*c.meanDistance - sum / double(m_n)) < 1e-12);

        // The CLI's numbers are these.
        QCOMPARE(cli["n"].get<std::size_t>(), c.patches);
        QCOMPARE(cli["outputs"].get<std::size_t>(), c.outputs);
        QCOMPARE(cli["mismatches"].get<std::size_t>(), c.mismatches);
        QCOMPARE(cli["mean_distance"].get<double>(), *c.meanDistance);
        QCOMPARE(HlsCheck::fromJson(cli).outputs, c.outputs);

        // JSON round trip.
        const HlsCheck back = HlsCheck::fromJson(nlohmann::json::parse(c.toJson().dump()));
        QCOMPARE(back.patches, c.patches);
        QCOMPARE(back.outputs, c.outputs);
        QCOMPARE(back.csimOutputs, c.csimOutputs);
        QCOMPARE(back.mismatches, c.mismatches);
        QVERIFY(back.meanDistance == c.meanDistance);
        QVERIFY(back.firstMismatches == c.firstMismatches);
        QCOMPARE(back.csimResults, c.csimResults);
        QCOMPARE(back.buildLog, c.buildLog);
        QCOMPARE(back.csimSeconds, c.csimSeconds);
        QCOMPARE(back.referenceSeconds, c.referenceSeconds);
    }

    void jsonErrors()
    {
        HlsCheck c;
        c.patches = 3;
        c.outputs = 6;
        c.csimOutputs = 5;
        c.mismatches = 1;
        c.firstMismatches = {{2, 1, 0.25, std::nullopt}};
        const HlsCheck back = HlsCheck::fromJson(c.toJson());
        QVERIFY(back.firstMismatches == c.firstMismatches);
        QVERIFY(!back.meanDistance);
        QVERIFY(c.toJson()["mean_distance"].is_null());
        nlohmann::json j = c.toJson();
        j.erase("mismatches");
        QCOMPARE(inputErrorMessage([&] { HlsCheck::fromJson(j, "check.json"); }),
                 QStringLiteral("check.json: missing field 'mismatches'"));
        j = c.toJson();
        j["first_mismatches"][0]["got"] = "x";
        QCOMPARE(inputErrorMessage([&] { HlsCheck::fromJson(j, "check.json"); }),
                 QStringLiteral("check.json: first_mismatches[0]: field 'got' is neither a number nor null"));
    }

    void wrongDataRefused()
    {
        PatchSimOptions so;
        so.patchSize = 9;
        so.threads = 1;
        const PatchDataset nine = simulatePatches(4, so);
        QCOMPARE(inputErrorMessage([&] { hlsCheckPatchCount(nine, 11, 10, "nine.h5"); }),
                 QStringLiteral("nine.h5: patches are 9 x 9, the model takes 11"));
        QCOMPARE(inputErrorMessage([&] { hlsCheckPatchCount(PatchDataset{}, 11, 10, "empty.h5"); }),
                 QStringLiteral("empty.h5: no patches"));
        QCOMPARE(hlsCheckPatchCount(m_patches, 11, 1000, "p.h5"), m_patches.size());
        QCOMPARE(hlsCheckPatchCount(m_patches, 11, 7, "p.h5"), std::size_t(7));
        // An export whose testbench holds other patches than the check's.
        const std::string out = exportFresh("other-n");
        QCOMPARE(inputErrorMessage([&] { checkHlsExport(out, *m_ref, m_patches, m_n - 1); }),
                 QString::fromStdString(out + "/tb_data/tb_input_features.dat: holds " + std::to_string(m_n)
                                        + " patches, the check is on " + std::to_string(m_n - 1)
                                        + "; export with the check's patches"));
        QVERIFY(!fs::exists(out + "/csim_build.log")); // nothing was run
    }

    void changedBiasListed()
    {
        const std::string out = exportFresh("tampered");
        const LayerPlan &plan = m_ref->plan();
        const int last = int(plan.ops.size()) - 1;
        const std::string wpath = out + "/firmware/weights/w" + std::to_string(last) + ".h";
        std::string w = readText(wpath);
        const std::string decl = "b" + std::to_string(last) + "[2] = {";
        const std::size_t at = w.find(decl);
        QVERIFY2(at != std::string::npos, wpath.c_str());
        const std::size_t lit = w.find_first_not_of(" \n", at + decl.size());
        const std::size_t end = w.find(',', lit);
        // The first output's bias moved by 4 output LSBs (up, or down where that would overflow).
        const std::vector<std::int64_t> b = m_ref->biasRaw(plan.ops[last].name);
        const FixedFormat &bf = m_ref->spec().op(plan.ops[last].name).bias;
        const FixedFormat &fo = m_ref->format(last);
        const std::int64_t step = 4 * (std::int64_t(1) << std::max(0, bf.fraction() - fo.fraction()));
        const int direction = b[0] + step <= bf.maxRaw() ? 1 : -1;
        QVERIFY(b[0] - step >= bf.minRaw() || direction == 1);
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g", std::ldexp(double(b[0] + direction * step), -bf.fraction()));
        w.replace(lit, end - lit, buf);
        std::ofstream(wpath) << w;

        const HlsCheck c = checkHlsExport(out, *m_ref, m_patches, m_n);
        const std::vector<std::int64_t> expect = m_ref->forwardRaw(m_patches.patches.data(), m_n);
        const std::vector<std::int64_t> got = readResults(c.csimResults, fo);
        QCOMPARE(got.size(), expect.size());
        std::vector<std::size_t> differing;
        for (std::size_t k = 0; k < expect.size(); ++k)
            if (got[k] != expect[k])
                differing.push_back(k);
        QVERIFY(!differing.empty());
        QCOMPARE(c.mismatches, differing.size());
        QVERIFY(!c.passed());
        QCOMPARE(c.firstMismatches.size(), std::min(differing.size(), HlsCheck::kListedMismatches));
        for (std::size_t i = 0; i < c.firstMismatches.size(); ++i) {
            const HlsMismatch &m = c.firstMismatches[i];
            QCOMPARE(m.patch * 2 + m.output, differing[i]);
            QCOMPARE(m.output, std::size_t(0)); // only the first output's bias changed
            QCOMPARE(m.expected, fo.toDouble(expect[differing[i]]));
            QVERIFY(m.got.has_value());
            QCOMPARE(*m.got, fo.toDouble(got[differing[i]]));
            QVERIFY(direction > 0 ? *m.got > m.expected : *m.got < m.expected);
        }
    }

    void brokenBuildNamesStatus()
    {
        const std::string out = exportFresh("broken");
        std::ofstream(out + "/firmware/braggnac_net.cpp", std::ios::app) << "\n#error braggnac_test_broken_build\n";
        try {
            checkHlsExport(out, *m_ref, m_patches, m_n);
            QFAIL("a broken build passed");
        } catch (const CancelledError &) {
            QFAIL("a broken build reported as cancelled");
        } catch (const InputError &e) {
            QFAIL(e.what());
        } catch (const Error &e) {
            const std::string what = e.what();
            QVERIFY2(what.find("ended with exit status 1") != std::string::npos, what.c_str());
            QVERIFY2(what.find(out + "/csim_build.log") != std::string::npos, what.c_str());
            QVERIFY2(what.find("braggnac_test_broken_build") != std::string::npos, what.c_str());
        }
        QVERIFY(!fs::exists(out + "/tb_data/csim_results.log"));
        QCOMPARE(inputErrorMessage([&] { runCsim(m_root, m_ref->format(0)); }),
                 QString::fromStdString(m_root + "/build_csim.sh: missing: not an HLS export folder (braggnac export-hls)"));
    }

    void cancelWhileCompiling()
    {
        const std::string out = exportFresh("cancelled");
        const std::string marker = std::string(kMarkerName) + "=core-" + std::to_string(::getpid());
        QVERIFY(::setenv(kMarkerName, marker.substr(std::strlen(kMarkerName) + 1).c_str(), 1) == 0);
        Monitor monitor;
        std::atomic<int> outcome{0}; // 1 cancelled, 2 returned, 3 other error
        std::string phase;
        monitor.progress = [&phase](double, const std::string &msg) {
            if (phase.empty())
                phase = msg;
        };
        std::thread worker([&] {
            try {
                checkHlsExport(out, *m_ref, m_patches, m_n, monitor);
                outcome = 2;
            } catch (const CancelledError &) {
                outcome = 1;
            } catch (const std::exception &) {
                outcome = 3;
            }
        });
        const bool compiling = waitForCompiler(marker);
        const auto t0 = std::chrono::steady_clock::now();
        monitor.cancel.cancel();
        worker.join();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        ::unsetenv(kMarkerName);
        QVERIFY2(compiling, "no g++ compiler process of the C simulation was seen");
        qInfo("cancel -> return: %.3f s", seconds);
        QCOMPARE(outcome.load(), 1);
        QCOMPARE(phase, "C simulation: building and running " + out + "/build_csim.sh (g++)");
        const std::vector<Proc> left = markedProcesses(marker);
        for (const Proc &p : left)
            qWarning("left running: %ld %s %c", p.pid, p.comm.c_str(), p.state);
        QVERIFY(left.empty());
        QVERIFY(!fs::exists(out + "/tb_data/csim_results.log"));
        QVERIFY(!fs::exists(out + "/braggnac_net_csim")); // cut short before linking

        // The folder is intact: a new check passes.
        const HlsCheck again = checkHlsExport(out, *m_ref, m_patches, m_n);
        QCOMPARE(again.mismatches, std::size_t(0));
        QCOMPARE(again.csimOutputs, 2 * m_n);

        // An already cancelled monitor starts nothing.
        Monitor done;
        done.cancel.cancel();
        const auto stamp = fs::last_write_time(out + "/csim_build.log");
        bool cancelled = false;
        try {
            checkHlsExport(out, *m_ref, m_patches, m_n, done);
        } catch (const CancelledError &) {
            cancelled = true;
        }
        QVERIFY(cancelled);
        QVERIFY(fs::last_write_time(out + "/csim_build.log") == stamp);
        QVERIFY(fs::exists(out + "/tb_data/csim_results.log")); // the finished check's results stay
    }

    void cliInterruptEndsTheSimulation()
    {
        const std::string out = m_root + "/cli-interrupted";
        const std::string value = "cli-" + std::to_string(::getpid());
        QProcess p;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QString::fromLatin1(kMarkerName), QString::fromStdString(value));
        p.setProcessEnvironment(env);
        p.start(QStringLiteral(BRAGGNAC_CLI),
                {QStringLiteral("export-hls"), QString::fromStdString(m_model), QStringLiteral("--out"),
                 QString::fromStdString(out), QStringLiteral("--check"), QString::fromStdString(m_data),
                 QStringLiteral("--n"), QString::number(m_n)});
        QVERIFY(p.waitForStarted());
        const std::string marker = std::string(kMarkerName) + "=" + value;
        const bool compiling = waitForCompiler(marker);
        ::kill(pid_t(p.processId()), SIGINT);
        QVERIFY(p.waitForFinished(120000));
        QVERIFY2(compiling, "no g++ compiler process of the C simulation was seen");
        QCOMPARE(p.exitStatus(), QProcess::NormalExit);
        QCOMPARE(p.exitCode(), 1);
        const QString err = QString::fromUtf8(p.readAllStandardError());
        QVERIFY2(err.contains(QStringLiteral("interrupted")), qPrintable(err));
        QVERIFY2(!err.contains(QStringLiteral("mismatching outputs")), qPrintable(err));
        QVERIFY(markedProcesses(marker).empty());
        QVERIFY(!fs::exists(out + "/tb_data/csim_results.log"));
    }
};

QTEST_GUILESS_MAIN(TestHlsCheck)
#include "tst_hlscheck.moc"
