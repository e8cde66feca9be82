#include "core/common/outputguard.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common/atomicfile.h"
#include "core/common/error.h"

namespace fs = std::filesystem;

namespace braggnac::core {

namespace {

bool sameInode(const struct stat &a, const struct stat &b)
{
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/// True when the (real) folder `dir` is `path` itself or one of its ancestors.
bool folderHolds(const struct stat &dir, const std::string &path)
{
    std::error_code ec;
    fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
    if (ec)
        return false;
    for (fs::path q = p; !q.empty(); q = q.parent_path()) {
        struct stat st = {};
        if (::stat(q.c_str(), &st) == 0 && sameInode(st, dir))
            return true;
        if (q == q.parent_path())
            break;
    }
    return false;
}

bool folderEmpty(const std::string &path)
{
    std::error_code ec;
    return fs::is_empty(path, ec) && !ec;
}

} // namespace

bool hasHdf5Signature(const std::string &path)
{
    static const char sig[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return false;
    for (std::streamoff offset = 0; offset <= (1 << 20); offset = offset == 0 ? 512 : offset * 2) {
        in.seekg(offset);
        char buf[8] = {};
        if (!in.read(buf, 8))
            return false;
        if (std::memcmp(buf, sig, 8) == 0)
            return true;
    }
    return false;
}

void checkOutput(const OutputRequest &r)
{
    const std::string what = r.kindName.empty() ? std::string("output") : r.kindName;
    if (r.target.empty())
        throw InputError(r.option + ": expected a path, got an empty one");
    const fs::path parentPath = fs::path(r.target).parent_path();
    const std::string parent = parentPath.empty() ? std::string(".") : parentPath.string();

    struct stat pst = {};
    if (::stat(parent.c_str(), &pst) != 0)
        throw InputError(fileMessage(r.target, "output folder '" + parent + "' does not exist"));
    if (!S_ISDIR(pst.st_mode))
        throw InputError(fileMessage(r.target, "'" + parent + "' is not a folder"));

    // Never the input of this run, by device and inode (not by name).
    struct stat tst = {};
    const bool followed = ::stat(r.target.c_str(), &tst) == 0;
    struct stat lst = {};
    const bool exists = ::lstat(r.target.c_str(), &lst) == 0;
    for (const std::string &input : r.inputs) {
        struct stat ist = {};
        if (input.empty() || ::stat(input.c_str(), &ist) != 0)
            continue;
        if (followed && sameInode(ist, tst))
            throw InputError(fileMessage(r.target, r.option + " is the input '" + input
                                                       + "' of this run (the same file); "
                                                         "writing it would destroy the input"));
        if (exists && S_ISDIR(lst.st_mode) && folderHolds(lst, input))
            throw InputError(fileMessage(r.target, r.option + " is a folder that holds the input '"
                                                       + input + "' of this run"));
    }

    // Writable: create (and remove) a probe file where the temporary will go.
    {
        const std::string probe = temporaryPathFor(r.target) + "-probe";
        const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            throw InputError(fileMessage(r.target, "cannot write in folder '" + parent
                                                       + "': " + std::strerror(errno)));
        ::close(fd);
        ::unlink(probe.c_str());
    }
    removeStaleTemporaries(parent);

    if (!exists)
        return;
    const bool isDir = followed && S_ISDIR(tst.st_mode);
    const bool isFile = followed && S_ISREG(tst.st_mode);
    if (followed && !isDir && !isFile)
        throw InputError(fileMessage(r.target, "exists and is neither a file nor a folder; "
                                               "not replaced"));
    const bool previous = followed && r.isPrevious && r.isPrevious(r.target);
    if (previous && isDir == r.folder)
        return;
    if (isDir && !folderEmpty(r.target))
        throw InputError(fileMessage(r.target, "exists and is a folder that is not a " + what
                                                   + " written by braggnac; not replaced, "
                                                     "even with --force (remove it yourself)"));
    if (!r.force)
        throw InputError(fileMessage(r.target, std::string("exists and is not a ") + what
                                                   + " written by braggnac; give --force to "
                                                     "replace it"));
}

} // namespace braggnac::core
