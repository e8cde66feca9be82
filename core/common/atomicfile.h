#pragma once
// Atomic output: write to a temporary beside the target, then replace the target in one step on
// commit(). If the object is destroyed without commit() (an exception, a cancellation), the
// temporary is removed and the target is left untouched. Works for files and for folders (model
// folders).
//
// Temporaries are named ".braggnac-tmp-<pid>-<n>-<host>-<name>" (<host>: 8 hex digits of the
// host name, so a shared file system's other nodes are left alone) in the target's folder. The
// constructor first removes stale temporaries in that folder: those of a process of this host
// that no longer runs (removeStaleTemporaries).
//
// commit(): a file replaces its target with rename(2). A folder (or anything replacing a
// folder) is swapped in with renameat2(RENAME_EXCHANGE), so that at every instant the target
// holds the old or the new content, and the old content is then removed; where the file system
// lacks RENAME_EXCHANGE the old target is first renamed to ".braggnac-old-<pid>-<n>-<host>-<name>",
// which a later start renames back if the process died between the two renames. commit() throws CancelledError
// instead of replacing anything once interruptRequested() (SIGINT/SIGTERM in the CLI).
//
// Test hook: with the environment variable BRAGGNAC_TEST_PAUSE_BEFORE_COMMIT=SECONDS, commit()
// of a target that is not itself inside a temporary folder prints "braggnac: test hook: pausing before commit of TARGET" on stderr and waits up to that
// long (ending early on an interrupt) before its check, so tests can signal a run whose output
// is fully written but not yet committed. Only tests set it.
//
// Thread-safety: one AtomicOutput per thread; distinct objects may be used concurrently.
#include <cstddef>
#include <string>

namespace braggnac::core {

class AtomicOutput {
public:
    enum class Kind { File, Folder };
    /// Throws InputError naming the target when its folder does not exist; Error when a
    /// temporary folder cannot be created.
    explicit AtomicOutput(std::string target, Kind kind = Kind::File);
    ~AtomicOutput();
    AtomicOutput(const AtomicOutput &) = delete;
    AtomicOutput &operator=(const AtomicOutput &) = delete;

    /// Where to write (same folder as the target, unique name). Folders are created empty.
    const std::string &tempPath() const { return m_temp; }
    const std::string &target() const { return m_target; }
    /// Replaces the target by the temporary (see above). Throws CancelledError when
    /// interrupted, Error naming the target on failure (the target is then unchanged).
    void commit();

private:
    std::string m_target;
    std::string m_temp;
    Kind m_kind;
    bool m_committed = false;
};

/// The temporary name for `target` (a path beside it; unique within this process).
std::string temporaryPathFor(const std::string &target);
/// True for a file name made by temporaryPathFor or the fallback's ".braggnac-old-..." (also
/// those of earlier versions, ".<name>.tmp-<pid>-<n>[.old]").
bool isTemporaryName(const std::string &fileName);
/// Removes the temporaries in `folder` whose process (on this host) is gone; a stale
/// ".braggnac-old-..." whose target is missing is renamed back to the target. Returns how many
/// entries were removed or restored. Never throws (unreadable folders are skipped).
std::size_t removeStaleTemporaries(const std::string &folder);

} // namespace braggnac::core
