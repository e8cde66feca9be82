#include "core/common/atomicfile.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/common/error.h"
#include "core/common/interrupt.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace fs = std::filesystem;

namespace braggnac::core {

namespace {

const char kPrefix[] = ".braggnac-tmp-";
const char kOldPrefix[] = ".braggnac-old-"; // the fallback's old target, until it is removed

std::string hostTag()
{
    static const std::string tag = [] {
        char host[256] = {};
        if (::gethostname(host, sizeof host - 1) != 0)
            host[0] = '\0';
        std::uint32_t h = 2166136261u; // FNV-1a
        for (const char *p = host; *p; ++p)
            h = (h ^ std::uint8_t(*p)) * 16777619u;
        char buf[9];
        std::snprintf(buf, sizeof buf, "%08x", h);
        return std::string(buf);
    }();
    return tag;
}

std::string parentOf(const std::string &path)
{
    const fs::path parent = fs::path(path).parent_path();
    return parent.empty() ? std::string(".") : parent.string();
}

bool processGone(long pid)
{
    if (pid <= 0)
        return false;
    return ::kill(pid_t(pid), 0) != 0 && errno == ESRCH;
}

int renameExchange(const std::string &a, const std::string &b)
{
#ifdef SYS_renameat2
    return int(::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE));
#else
    errno = ENOSYS;
    return -1;
#endif
}

void pauseForTests(const std::string &target)
{
    const char *env = std::getenv("BRAGGNAC_TEST_PAUSE_BEFORE_COMMIT");
    if (!env || !*env)
        return;
    // Only the outputs themselves, not the files written inside a temporary folder.
    if (isTemporaryName(fs::path(target).parent_path().filename().string()))
        return;
    const double seconds = std::atof(env);
    if (!(seconds > 0))
        return;
    std::fprintf(stderr, "braggnac: test hook: pausing before commit of %s\n", target.c_str());
    std::fflush(stderr);
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end && !interruptRequested())
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

} // namespace

std::string temporaryPathFor(const std::string &target)
{
    static std::atomic<unsigned> counter{0};
    std::string name = fs::path(target).filename().string();
    if (name.empty() || name == "." || name == "..")
        name = "out";
    if (name.size() > 180)
        name.resize(180);
    const std::string tmp = kPrefix + std::to_string(::getpid()) + "-"
        + std::to_string(counter.fetch_add(1)) + "-" + hostTag() + "-" + name;
    const fs::path parent = fs::path(target).parent_path();
    return (parent / tmp).string();
}

bool isTemporaryName(const std::string &fileName)
{
    static const std::regex current(R"(^\.braggnac-(tmp|old)-[0-9]+-[0-9]+-[0-9a-f]{8}-.+$)");
    static const std::regex legacy(R"(^\..+\.tmp-[0-9]+-[0-9]+(\.old)?$)");
    return std::regex_match(fileName, current) || std::regex_match(fileName, legacy);
}

std::size_t removeStaleTemporaries(const std::string &folder)
{
    static const std::regex current(R"(^\.braggnac-(tmp|old)-([0-9]+)-[0-9]+-([0-9a-f]{8})-(.+)$)");
    static const std::regex legacy(R"(^\.(.+)\.tmp-([0-9]+)-[0-9]+(\.old)?$)");
    std::size_t count = 0;
    std::error_code ec;
    std::vector<fs::path> entries; // collected first: the loop below renames and removes
    fs::directory_iterator it(folder.empty() ? fs::path(".") : fs::path(folder), ec), end;
    if (ec)
        return 0;
    for (; it != end; it.increment(ec)) {
        if (ec)
            break;
        const std::string name = it->path().filename().string();
        if (name.size() > 1 && name[0] == '.' && name.find(".tmp-") != std::string::npos)
            entries.push_back(it->path());
        else if (name.rfind(".braggnac-", 0) == 0)
            entries.push_back(it->path());
    }
    for (const fs::path &entry : entries) {
        const std::string name = entry.filename().string();
        std::smatch m;
        long pid = 0;
        bool old = false;
        std::string targetName;
        if (std::regex_match(name, m, current)) {
            if (m[3].str() != hostTag())
                continue; // another node of a shared file system
            pid = std::atol(m[2].str().c_str());
            targetName = m[4].str();
            old = m[1].str() == "old";
        } else if (std::regex_match(name, m, legacy)) {
            pid = std::atol(m[2].str().c_str());
            targetName = m[1].str();
            old = m[3].matched;
        } else {
            continue;
        }
        if (pid == ::getpid() || !processGone(pid))
            continue;
        std::error_code rec;
        const fs::path target = entry.parent_path() / targetName;
        if (old && targetName.size() < 180 && !fs::exists(fs::symlink_status(target, rec))) {
            // The fallback replace died between its two renames: put the old output back.
            fs::rename(entry, target, rec);
            if (!rec) {
                ++count;
                continue;
            }
        }
        if (fs::remove_all(entry, rec) > 0 && !rec)
            ++count;
    }
    return count;
}

AtomicOutput::AtomicOutput(std::string target, Kind kind)
    : m_target(std::move(target)), m_temp(temporaryPathFor(m_target)), m_kind(kind)
{
    const std::string parent = parentOf(m_target);
    if (!fs::is_directory(parent))
        throw InputError(fileMessage(m_target, "output folder '" + parent + "' does not exist"));
    removeStaleTemporaries(parent);
    if (m_kind == Kind::Folder) {
        if (::mkdir(m_temp.c_str(), 0777) != 0)
            throw Error(fileMessage(m_target, "cannot create a folder in '" + parent
                                                  + "': " + std::strerror(errno)));
    } else {
        registerTemporary(m_temp.c_str());
    }
}

AtomicOutput::~AtomicOutput()
{
    if (m_kind == Kind::File)
        unregisterTemporary(m_temp.c_str());
    if (!m_committed) {
        std::error_code ec;
        fs::remove_all(m_temp, ec);
    }
}

void AtomicOutput::commit()
{
    if (m_committed)
        return;
    pauseForTests(m_target);
    if (interruptRequested())
        throw CancelledError();
    struct stat st = {};
    const bool exists = ::lstat(m_target.c_str(), &st) == 0;
    const bool swap = exists && (m_kind == Kind::Folder || S_ISDIR(st.st_mode));
    if (!swap) {
        if (::rename(m_temp.c_str(), m_target.c_str()) != 0)
            throw Error(fileMessage(m_target, std::string("cannot write: ") + std::strerror(errno)));
        m_committed = true;
        return;
    }
    if (renameExchange(m_temp, m_target) == 0) {
        // The target now holds the new content and m_temp the old one.
        m_committed = true;
        std::error_code ec;
        fs::remove_all(m_temp, ec);
        return;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP && errno != ENOTSUP)
        throw Error(fileMessage(m_target, std::string("cannot replace: ") + std::strerror(errno)));
    // No RENAME_EXCHANGE here: two renames, recoverable by removeStaleTemporaries().
    const fs::path tempPath(m_temp);
    const std::string old = (tempPath.parent_path()
                             / (kOldPrefix + tempPath.filename().string().substr(sizeof kPrefix - 1)))
                                .string();
    if (::rename(m_target.c_str(), old.c_str()) != 0)
        throw Error(fileMessage(m_target, std::string("cannot replace: ") + std::strerror(errno)));
    if (::rename(m_temp.c_str(), m_target.c_str()) != 0) {
        const int err = errno;
        ::rename(old.c_str(), m_target.c_str());
        throw Error(fileMessage(m_target, std::string("cannot write: ") + std::strerror(err)));
    }
    m_committed = true;
    std::error_code ec;
    fs::remove_all(old, ec);
}

} // namespace braggnac::core
