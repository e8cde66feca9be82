#include "core/common/atomicfile.h"

#include <atomic>
#include <filesystem>
#include <system_error>

#include <unistd.h>

#include "core/common/error.h"

namespace fs = std::filesystem;

namespace braggnac::core {

namespace {
std::string uniqueTempName(const std::string &target)
{
    static std::atomic<unsigned> counter{0};
    fs::path t(target);
    std::string name = "." + t.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-"
        + std::to_string(counter.fetch_add(1));
    return (t.parent_path() / name).string();
}
} // namespace

AtomicOutput::AtomicOutput(std::string target, Kind kind)
    : m_target(std::move(target)), m_temp(uniqueTempName(m_target)), m_kind(kind)
{
    fs::path parent = fs::path(m_target).parent_path();
    if (!parent.empty() && !fs::is_directory(parent))
        throw InputError(fileMessage(m_target, "output directory '" + parent.string()
                                                   + "' does not exist"));
    if (m_kind == Kind::Folder) {
        std::error_code ec;
        fs::create_directory(m_temp, ec);
        if (ec)
            throw Error(fileMessage(m_temp, "cannot create folder: " + ec.message()));
    }
}

AtomicOutput::~AtomicOutput()
{
    if (!m_committed) {
        std::error_code ec;
        fs::remove_all(m_temp, ec);
    }
}

void AtomicOutput::commit()
{
    std::error_code ec;
    if (m_kind == Kind::Folder && fs::exists(m_target)) {
        // A folder cannot be renamed over a non-empty folder: move the old one aside first.
        const std::string old = uniqueTempName(m_target) + ".old";
        fs::rename(m_target, old, ec);
        if (ec)
            throw Error(fileMessage(m_target, "cannot replace existing folder: " + ec.message()));
        fs::rename(m_temp, m_target, ec);
        if (ec) {
            fs::rename(old, m_target);
            throw Error(fileMessage(m_target, "cannot write: " + ec.message()));
        }
        fs::remove_all(old, ec);
    } else {
        fs::rename(m_temp, m_target, ec);
        if (ec)
            throw Error(fileMessage(m_target, "cannot write: " + ec.message()));
    }
    m_committed = true;
}

} // namespace braggnac::core
