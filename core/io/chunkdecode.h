#pragma once
// Internal to core/io: undoing HDF5's deflate and shuffle filters on a raw chunk read with
// H5Dread_chunk, and converting the stored elements to float as H5Dread would, so that frames
// in gzip HDF5 files decompress outside the process-wide HDF5 lock (in parallel, one chunk per
// calling thread). No HDF5 call here; every function is thread-safe (no shared state but the
// on/off switch, which is atomic).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace braggnac::core::chunkdecode {

/// One stage of a chunk's filter pipeline, in the order it was applied when writing.
struct Filter {
    enum Kind { Deflate, Shuffle } kind = Deflate;
    std::size_t elementSize = 1; // shuffle: bytes per element (its cd_values[0])
};

/// Stored element types decoded here (little-endian, full precision); others are read by H5Dread.
enum class StoredType { UInt8, Int8, UInt16, Int16, UInt32, Int32, Float32 };
std::size_t storedSize(StoredType type);

/// Inflation uses libdeflate when libdeflate.so.0 is installed (loaded at run time), zlib
/// otherwise; both check the stream's adler-32, and deflate output does not depend on the decoder.
/// Undoes `filters` on `raw` (the last filter first); bit i of `filterMask` set means filter i was
/// skipped for this chunk (H5Z_FLAG_OPTIONAL). Writes exactly `chunkBytes` bytes to `out`.
/// Returns false, leaving `out` unspecified, when the data does not decode to exactly that many
/// bytes (corrupt chunk): the caller then lets HDF5 read it and report the error.
bool decodeChunk(const std::uint8_t *raw, std::size_t rawBytes, unsigned filterMask,
                 const std::vector<Filter> &filters, std::size_t chunkBytes,
                 std::vector<std::uint8_t> &out, std::vector<std::uint8_t> &scratch);

/// Converts `count` stored elements starting at `src` (unaligned is fine) to float, bit for bit
/// what H5Dread with H5T_NATIVE_FLOAT gives for these types.
void toFloat(const std::uint8_t *src, StoredType type, std::size_t count, float *dst);

/// Process-wide switch (default on): when off, HDF5 frame sources read every frame through
/// H5Dread (the benchmark's "plain HDF5 read" row and the tests' reference).
void setDirectChunkReads(bool on);
bool directChunkReads();

/// Inflate with zlib even when libdeflate is available (tests: both decoders against H5Dread).
void setZlibOnly(bool on);
/// True when libdeflate.so.0 was found and zlib is not forced.
bool usingLibdeflate();

/// Frames read through raw chunks since the process started (all sources, all threads): lets the
/// tests and the benchmark check which path a file took.
std::uint64_t directFrameCount();
void countDirectFrame();

} // namespace braggnac::core::chunkdecode
