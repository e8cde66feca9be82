#pragma once
// Atomic output: write to a temporary file beside the target, then rename over it on commit().
// If the object is destroyed without commit() (an exception, a cancellation), the temporary file
// is removed and the target is left untouched. Works for files and for folders (model folders).
#include <string>

namespace braggnac::core {

class AtomicOutput {
public:
    enum class Kind { File, Folder };
    explicit AtomicOutput(std::string target, Kind kind = Kind::File);
    ~AtomicOutput();
    AtomicOutput(const AtomicOutput &) = delete;
    AtomicOutput &operator=(const AtomicOutput &) = delete;

    /// Where to write (same directory as the target, unique name). Folders are created empty.
    const std::string &tempPath() const { return m_temp; }
    const std::string &target() const { return m_target; }
    /// Renames the temporary over the target (replacing an existing one). Throws Error on failure.
    void commit();

private:
    std::string m_target;
    std::string m_temp;
    Kind m_kind;
    bool m_committed = false;
};

} // namespace braggnac::core
