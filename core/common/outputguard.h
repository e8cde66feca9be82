#pragma once
// The checks every output of a run passes BEFORE the work starts, so that nothing the user
// owns is lost and a run never fails only at the end (docs/cli.md, "Outputs").
//
// checkOutput() throws InputError (CLI exit 2) naming the target, when:
// - its folder does not exist, is not a folder, or a file cannot be created there (the reason
//   is the system's: "Permission denied", "Read-only file system", ...);
// - it is one of the run's inputs, compared by device and inode (a hard link, a symlink, another
//   spelling of the same path), or it is a folder that holds one of the inputs: never allowed,
//   not even with force;
// - it exists and is not a previous output of the same kind (isPrevious returns false) and
//   force is false; with force, files of any kind and empty folders may be replaced, but a
//   non-empty folder that is not a previous output never is (remove it yourself), nor anything
//   that is neither a file nor a folder.
// It also removes stale temporaries in the target's folder (atomicfile.h).
// Thread-safety: reentrant; it reads the file system only.
#include <functional>
#include <string>
#include <vector>

namespace braggnac::core {

struct OutputRequest {
    std::string target;              // the output path as the user gave it
    std::string option = "--out";    // how the user named it, for messages
    std::vector<std::string> inputs; // every file or folder the run reads (absent ones ignored)
    bool folder = false;             // the output is a folder (a model folder)
    std::string kindName;            // "patch file", "model folder": for messages
    /// True when the existing target is a previous output of this kind (then it is replaced
    /// without force). Called only when the target exists.
    std::function<bool(const std::string &path)> isPrevious;
    bool force = false;
};

void checkOutput(const OutputRequest &request);

/// True when path is an HDF5 file (by its signature at offset 0, 512, 1024, ...).
bool hasHdf5Signature(const std::string &path);

} // namespace braggnac::core
