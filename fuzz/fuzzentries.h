#pragma once
// Fuzz entry points: one function per input format, shared by the libFuzzer targets
// (fuzz/fuzz_<target>.cpp, built with BRAGGNAC_BUILD_FUZZ) and by the regression test
// tests/tst_fuzzregress.cpp, which replays tests/data/fuzz/<target>/* through the same code.
//
// Contract of every entry: it feeds the bytes to the reader exactly as a file would arrive
// (the readers take paths, so the bytes go into a temporary file in tmpfs, /dev/shm, removed
// afterwards), then exercises what a caller does next (every frame's pixels, the
// dataset's validation and split, the spec's shapes and JSON round trip).
//   - core::InputError (a clear "file: what was wrong" message) is the expected way to refuse
//     bad input: the entry returns Outcome::Rejected and stores the message.
//   - Any other exception escapes (a bug: bad input must be an InputError), and a crash, leak,
//     sanitizer report, or broken invariant (abort()) is a bug too.
// Thread-safety: the entries may be called from one thread at a time (libFuzzer's model).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace braggnac::fuzz {

enum class Outcome { Accepted, Rejected };

struct Result {
    Outcome outcome = Outcome::Accepted;
    std::string message; // the InputError's message when Rejected
};

/// GE raw frames. The file is made from the input: byte 0 picks the file length (bits 0-1:
/// 0..3 whole frames after the 8192-byte header; bit 2: add the signed 16-bit delta in bytes
/// 1-2), bytes 3.. are the file's first bytes; the rest of the file is zeros (sparse), so a
/// small input describes a multi-megabyte file.
Result geReader(const std::uint8_t *data, std::size_t size);
/// The file image of a GE input as geReader builds it (for seeds and tests).
std::vector<std::uint8_t> geFileImage(const std::uint8_t *data, std::size_t size);

/// TIFF frames (libtiff): the input is the file.
Result tiffReader(const std::uint8_t *data, std::size_t size);

/// HDF5 frames: the input is the file. Lists the datasets, opens the default dataset and up to
/// four usable ones as frame sources and reads their first and last frames.
Result hdf5Frames(const std::uint8_t *data, std::size_t size);

/// Patch dataset (core/io/patchdataset.h): the input is the HDF5 file; then validate(),
/// effectiveSplit() and a subset of the first rows.
Result patchDataset(const std::uint8_t *data, std::size_t size);

/// Architecture spec JSON (ArchSpec::fromJson); a spec accepted must survive
/// toJson -> fromJson -> toJson unchanged and give consistent shapes().
Result archSpec(const std::uint8_t *data, std::size_t size);

/// Search-space JSON (core/search/space.h SearchSpace::fromJson): a space accepted must
/// survive toJson -> fromJson -> toJson, its samples must lie in it, and crossover, mutate,
/// structuralCount and a bounded size() must not fail.
Result searchSpace(const std::uint8_t *data, std::size_t size);

/// Study store (core/search/studystore.h): the input is the SQLite file. Opened read-only and
/// read through every reader (info, trials with blobs and epochs, counts, changes, values at an
/// epoch), then opened read-write for recoverAfterCrash().
Result studyStore(const std::uint8_t *data, std::size_t size);
/// Writes a small valid study (3 trials: complete with epochs, failed, queued) at `path`, for
/// seeds (fuzz_studystore with BRAGGNAC_FUZZ_WRITE_SEED=path) and tests.
void writeStudySeed(const std::string &path);

/// The target names, in the order above ("ge", "tiff", "hdf5", "patchdataset", "archspec",
/// "searchspace", "studystore").
std::vector<std::string> targetNames();
/// Runs the named target; throws std::invalid_argument for an unknown name.
Result runTarget(const std::string &name, const std::uint8_t *data, std::size_t size);

} // namespace braggnac::fuzz
