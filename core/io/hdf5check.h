#pragma once
// Internal to core/io: structural checks of an HDF5 dataset made before H5Dread, for what HDF5
// 1.10 (Debian 12) does not check itself and where a corrupt file makes H5Dread overrun its own
// buffers (found by fuzzing, fuzz/ and docs/robustness.md "Fuzzing"). Never include from a
// public header. Call with an hdf5::Lock held (the functions take it too; it is recursive).
// Errors: InputError "file: dataset 'path' ...: what" naming file and dataset.
#include <string>

#include <hdf5.h>

namespace braggnac::core::hdf5 {

/// The element type is a standard number: integers (and integer enums) of 1, 2, 4 or 8 bytes,
/// floats of 2, 4 or 8 bytes, with precision and offset inside the element and float fields
/// inside the precision. For chunked data: the chunk has the dataset's rank, every chunk
/// dimension is >= 1 and no larger than a fixed (not unlimited) maximum dimension, and a chunk
/// holds less than 4 GiB (HDF5's own limits when it writes a file).
void checkLayout(hid_t dataset, const std::string &fileName, const std::string &path);

/// For chunked data without filters: every chunk that the selection [start, start + count)
/// touches is stored with exactly the chunk's byte size, or not stored (fill value). `start` and
/// `count` have the dataset's rank; nullptr for the whole dataset.
void checkChunksStored(hid_t dataset, const std::string &fileName, const std::string &path,
                       const hsize_t *start = nullptr, const hsize_t *count = nullptr);

} // namespace braggnac::core::hdf5
