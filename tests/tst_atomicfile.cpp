// braggnac-test-libs: braggnac_common
// Atomic outputs and the output checks (core/common/atomicfile.h, outputguard.h): input
// detection by device + inode, refusal without force, the model-folder exchange that keeps old
// or new at every instant (a child replacing in a loop, then SIGKILLed), stale temporaries.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <QTemporaryDir>
#include <QtTest>

#include "core/common/atomicfile.h"
#include "core/common/error.h"
#include "core/common/interrupt.h"
#include "core/common/outputguard.h"
#include "testutil.h"

namespace fs = std::filesystem;
using namespace braggnac;
using braggnac::test::inputErrorMessage;
using braggnac::test::threwInputError;

namespace {

void writeText(const std::string &path, const std::string &text)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

std::string readText(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

int countTemporaries(const std::string &folder)
{
    int n = 0;
    for (const auto &e : fs::directory_iterator(folder))
        if (core::isTemporaryName(e.path().filename().string()))
            ++n;
    return n;
}

/// A model folder of version v: model.json and a payload that must agree with it.
void writeModel(const std::string &folder, int v)
{
    core::AtomicOutput out(folder, core::AtomicOutput::Kind::Folder);
    writeText(out.tempPath() + "/weights.pt", std::string(4096, char('a' + v % 26)) + std::to_string(v));
    writeText(out.tempPath() + "/model.json", std::to_string(v));
    out.commit();
}

/// True when folder holds one complete model (model.json agrees with the payload).
bool consistentModel(const std::string &folder, int *version = nullptr)
{
    const std::string index = readText(folder + "/model.json");
    if (index.empty())
        return false;
    const int v = std::atoi(index.c_str());
    if (version)
        *version = v;
    return readText(folder + "/weights.pt") == std::string(4096, char('a' + v % 26)) + std::to_string(v);
}

/// The pid of a process that has ended (a child reaped at once).
pid_t deadPid()
{
    const pid_t pid = ::fork();
    if (pid == 0)
        ::_exit(0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return pid;
}

/// temporaryPathFor(target) with its pid replaced by `pid`, and its "tmp" by `kind`.
std::string fakeTemporary(const std::string &target, pid_t pid, const std::string &kind = "tmp")
{
    const fs::path t(core::temporaryPathFor(target));
    std::string name = t.filename().string(); // .braggnac-tmp-<pid>-<n>-<host>-<name>
    const std::string prefix = ".braggnac-tmp-" + std::to_string(::getpid()) + "-";
    if (name.rfind(prefix, 0) != 0)
        return {};
    name = ".braggnac-" + kind + "-" + std::to_string(pid) + "-" + name.substr(prefix.size());
    return (t.parent_path() / name).string();
}

core::OutputRequest request(const std::string &target, std::vector<std::string> inputs, bool force = false)
{
    core::OutputRequest r;
    r.target = target;
    r.inputs = std::move(inputs);
    r.kindName = "text file";
    r.isPrevious = [](const std::string &p) { return readText(p).rfind("previous output", 0) == 0; };
    r.force = force;
    return r;
}

} // namespace

class TestAtomicFile : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;
    std::string m_root;

    std::string path(const std::string &name) const { return m_root + "/" + name; }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_root = m_dir.path().toStdString();
    }

    void temporaryNames()
    {
        const std::string t = core::temporaryPathFor(path("out.h5"));
        const std::string name = fs::path(t).filename().string();
        QVERIFY2(name.rfind(".braggnac-tmp-" + std::to_string(::getpid()) + "-", 0) == 0, name.c_str());
        QVERIFY(name.size() > 6 && name.compare(name.size() - 7, 7, "-out.h5") == 0);
        QCOMPARE(fs::path(t).parent_path().string(), m_root);
        QVERIFY(core::isTemporaryName(name));
        QVERIFY(core::isTemporaryName(".fit.h5.tmp-1234-0"));     // earlier versions
        QVERIFY(core::isTemporaryName(".m.model.tmp-99-3.old"));
        QVERIFY(!core::isTemporaryName("out.h5"));
        QVERIFY(!core::isTemporaryName(".braggnac-tmp-x"));
        QVERIFY(core::temporaryPathFor(path("out.h5")) != t); // unique within the process
    }

    void fileCommitAndAbandon()
    {
        const std::string target = path("commit.txt");
        writeText(target, "old");
        {
            core::AtomicOutput out(target);
            writeText(out.tempPath(), "new");
            QCOMPARE(readText(target), std::string("old"));
            out.commit();
        }
        QCOMPARE(readText(target), std::string("new"));
        {
            core::AtomicOutput out(target);
            writeText(out.tempPath(), "abandoned");
        } // no commit: an error or a cancellation
        QCOMPARE(readText(target), std::string("new"));
        QCOMPARE(countTemporaries(m_root), 0);
        QVERIFY(!threwInputError(inputErrorMessage([&] { core::AtomicOutput ok(target); })));
        const QString missing = inputErrorMessage([&] { core::AtomicOutput bad(path("nodir/x.h5")); });
        QVERIFY2(missing.contains(QStringLiteral("nodir/x.h5")) && missing.contains(QStringLiteral("does not exist")),
                 qPrintable(missing));
    }

    void folderExchange()
    {
        const std::string model = path("ex.model");
        writeModel(model, 1);
        int v = 0;
        QVERIFY(consistentModel(model, &v));
        QCOMPARE(v, 1);
        writeModel(model, 2);
        QVERIFY(consistentModel(model, &v));
        QCOMPARE(v, 2);
        QCOMPARE(countTemporaries(m_root), 0); // the old folder was removed
        // A folder replacing a file (what --force allows) goes through the same exchange.
        const std::string file = path("was-a-file");
        writeText(file, "x");
        writeModel(file, 3);
        QVERIFY(consistentModel(file, &v));
        QCOMPARE(v, 3);
        QCOMPARE(countTemporaries(m_root), 0);
    }

    void folderAlwaysOldOrNew()
    {
        // A child replaces the model folder in a loop; the parent checks, as often as it can,
        // that the target holds one complete model; then the child is SIGKILLed mid-loop.
        const std::string dir = path("loop");
        fs::create_directory(dir);
        const std::string model = dir + "/m.model";
        writeModel(model, 0);
        const pid_t child = ::fork();
        QVERIFY(child >= 0);
        if (child == 0) {
            for (int i = 1;; ++i)
                writeModel(model, i);
        }
        int checks = 0, missing = 0, torn = 0, lastVersion = 0;
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
        while (std::chrono::steady_clock::now() < end) {
            struct stat st = {};
            if (::stat(model.c_str(), &st) != 0) {
                ++missing;
                continue;
            }
            // Open model.json and the payload through one directory handle, so both come from
            // the same folder generation.
            const int fd = ::open(model.c_str(), O_RDONLY | O_DIRECTORY);
            if (fd < 0) {
                ++missing;
                continue;
            }
            const std::string base = "/proc/self/fd/" + std::to_string(fd);
            int v = 0;
            if (consistentModel(base, &v)) {
                lastVersion = std::max(lastVersion, v);
            } else {
                // Only a torn target if this generation is still the target (not one the child
                // replaced and is removing while we read it).
                struct stat now = {}, mine = {};
                if (::fstat(fd, &mine) == 0 && ::stat(model.c_str(), &now) == 0
                    && now.st_ino == mine.st_ino && now.st_dev == mine.st_dev && !consistentModel(base))
                    ++torn;
            }
            ::close(fd);
            ++checks;
        }
        ::kill(child, SIGKILL);
        int status = 0;
        ::waitpid(child, &status, 0);
        QVERIFY(WIFSIGNALED(status));
        qInfo("checks %d, versions seen up to %d", checks, lastVersion);
        QVERIFY(checks > 100);
        QVERIFY(lastVersion > 1); // the child did replace it, many times
        QCOMPARE(missing, 0);
        QCOMPARE(torn, 0);
        // After the kill: a complete model at the target; its leftovers go at the next start.
        int v = 0;
        QVERIFY(consistentModel(model, &v));
        core::removeStaleTemporaries(dir);
        QCOMPARE(countTemporaries(dir), 0);
        QVERIFY(consistentModel(model, &v));
    }

    void staleTemporaries()
    {
        const std::string dir = path("stale");
        fs::create_directory(dir);
        const pid_t dead = deadPid();
        const std::string staleFile = fakeTemporary(dir + "/fit.h5", dead);
        const std::string staleFolder = fakeTemporary(dir + "/m.model", dead);
        const std::string liveFile = fakeTemporary(dir + "/live.h5", ::getppid()); // a running process
        QVERIFY(!staleFile.empty() && !staleFolder.empty() && !liveFile.empty());
        writeText(staleFile, "tens of MB");
        fs::create_directory(staleFolder);
        writeText(staleFolder + "/weights.pt", "w");
        writeText(liveFile, "in use");
        const std::string legacy = dir + "/.fit.h5.tmp-" + std::to_string(dead) + "-0";
        writeText(legacy, "left by an earlier version");
        const std::string otherHost = dir + "/.braggnac-tmp-" + std::to_string(dead) + "-0-00000000-x.h5";
        writeText(otherHost, "another node of a shared file system");
        writeText(dir + "/user.h5", "not ours");

        // The fallback's old folder whose target is gone: renamed back, not deleted.
        const std::string oldModel = fakeTemporary(dir + "/kept.model", dead, "old");
        fs::create_directory(oldModel);
        writeText(oldModel + "/model.json", "7");
        writeText(oldModel + "/weights.pt", std::string(4096, char('a' + 7)) + "7");

        // The next start (any AtomicOutput in this folder) cleans up.
        {
            core::AtomicOutput out(dir + "/next.h5");
            writeText(out.tempPath(), "n");
            out.commit();
        }
        QVERIFY(!fs::exists(staleFile));
        QVERIFY(!fs::exists(staleFolder));
        QVERIFY(!fs::exists(legacy));
        QVERIFY(!fs::exists(oldModel));
        QVERIFY(fs::exists(liveFile));  // its process still runs
        QVERIFY(fs::exists(otherHost)); // not this host's
        QVERIFY(fs::exists(dir + "/user.h5"));
        int v = 0;
        QVERIFY(consistentModel(dir + "/kept.model", &v));
        QCOMPARE(v, 7);
        QCOMPARE(core::removeStaleTemporaries(dir), std::size_t(0));
    }

    void inputDetection_data()
    {
        QTest::addColumn<QString>("output");
        QTest::addColumn<QString>("expect");
        QTest::newRow("same name") << "in.txt" << "is the input";
        QTest::newRow("other spelling") << "./sub/../in.txt" << "is the input";
        QTest::newRow("hard link") << "hard.txt" << "is the input";
        QTest::newRow("symlink to the input") << "sym.txt" << "is the input";
        QTest::newRow("folder holding the input") << "." << "holds the input";
        QTest::newRow("not ours") << "user.txt" << "give --force";
        QTest::newRow("missing folder") << "nodir/x.txt" << "does not exist";
        QTest::newRow("parent is a file") << "user.txt/x.txt" << "is not a folder";
        QTest::newRow("non-empty folder") << "sub" << "even with --force";
    }
    void inputDetection()
    {
        QFETCH(QString, output);
        QFETCH(QString, expect);
        const std::string dir = path("inputs");
        if (!fs::exists(dir)) {
            fs::create_directory(dir);
            fs::create_directory(dir + "/sub");
            writeText(dir + "/sub/keep", "k");
            writeText(dir + "/in.txt", "the input");
            fs::create_hard_link(dir + "/in.txt", dir + "/hard.txt");
            fs::create_symlink("in.txt", dir + "/sym.txt");
            writeText(dir + "/user.txt", "the user's");
            writeText(dir + "/prev.txt", "previous output");
        }
        const std::string target = dir + "/" + output.toStdString();
        const QString msg = inputErrorMessage([&] { core::checkOutput(request(target, {dir + "/in.txt"})); });
        QVERIFY2(threwInputError(msg), qPrintable(msg));
        QVERIFY2(msg.contains(QString::fromStdString(target)), qPrintable(msg)); // names the target
        QVERIFY2(msg.contains(expect), qPrintable(msg));
        if (expect == QLatin1String("is the input") || expect.contains(QLatin1String("holds"))) {
            // Never, not even with force.
            const QString forced = inputErrorMessage([&] { core::checkOutput(request(target, {dir + "/in.txt"}, true)); });
            QVERIFY2(forced.contains(expect), qPrintable(forced));
        }
        QCOMPARE(readText(dir + "/in.txt"), std::string("the input"));
        QCOMPARE(countTemporaries(dir), 0); // the writability probe is gone
    }

    void replaceable()
    {
        const std::string dir = path("inputs");
        QVERIFY(fs::exists(dir + "/prev.txt"));
        const std::string in = dir + "/in.txt";
        // A previous output of the same kind, a new name, and --force over the user's file.
        core::checkOutput(request(dir + "/prev.txt", {in}));
        core::checkOutput(request(dir + "/new.txt", {in}));
        core::checkOutput(request(dir + "/user.txt", {in}, true));
        fs::create_directory(dir + "/empty");
        QVERIFY(threwInputError(inputErrorMessage([&] { core::checkOutput(request(dir + "/empty", {in})); })));
        core::checkOutput(request(dir + "/empty", {in}, true));
        // An input that does not exist (a built-in name such as "nac") is ignored.
        core::checkOutput(request(dir + "/new.txt", {"nac"}));
    }

    void interruptedCommitKeepsTarget()
    {
        // In a child: the flag is process-wide and stays set.
        const std::string target = path("interrupted.txt");
        writeText(target, "old");
        const pid_t child = ::fork();
        QVERIFY(child >= 0);
        if (child == 0) {
            int code = 10;
            try {
                core::AtomicOutput out(target);
                writeText(out.tempPath(), "new");
                core::requestInterrupt();
                out.commit();
                code = 11; // committed despite the interrupt
            } catch (const core::CancelledError &) {
                code = 0;
            } catch (...) {
                code = 12;
            }
            ::_exit(code);
        }
        int status = 0;
        ::waitpid(child, &status, 0);
        QVERIFY(WIFEXITED(status));
        QCOMPARE(WEXITSTATUS(status), 0);
        QCOMPARE(readText(target), std::string("old"));
        QCOMPARE(countTemporaries(m_root), 0);
    }

    void hdf5Signature()
    {
        const std::string h5 = path("sig.h5");
        writeText(h5, std::string("\x89HDF\r\n\x1a\n", 8) + std::string(100, '\0'));
        QVERIFY(core::hasHdf5Signature(h5));
        const std::string at512 = path("sig512.h5");
        writeText(at512, std::string(512, 'u') + std::string("\x89HDF\r\n\x1a\n", 8));
        QVERIFY(core::hasHdf5Signature(at512));
        writeText(path("text.h5"), "not hdf5 at all");
        QVERIFY(!core::hasHdf5Signature(path("text.h5")));
        QVERIFY(!core::hasHdf5Signature(path("absent.h5")));
    }
};

QTEST_GUILESS_MAIN(TestAtomicFile)
#include "tst_atomicfile.moc"
