#pragma once
// Internal to core/io (and other core .cpp files that touch HDF5): the process-wide HDF5 lock,
// RAII handles and small typed helpers. Never include from a public header.
// Contract: every HDF5 call happens while an hdf5::Lock is held (the lock is recursive, so
// helpers may be nested). The Lock also switches off HDF5's automatic error printing for the
// calling thread; failures come back as InputError/Error naming the file and dataset.
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include <hdf5.h>

namespace braggnac::core::hdf5 {

/// The one mutex around the HDF5 library in this process.
std::recursive_mutex &mutex();

class Lock {
public:
    Lock();
    Lock(const Lock &) = delete;
    Lock &operator=(const Lock &) = delete;

private:
    std::lock_guard<std::recursive_mutex> m_guard;
};

/// Owns one hid_t and closes it with the matching H5?close when destroyed.
class Handle {
public:
    using Closer = herr_t (*)(hid_t);
    Handle() = default;
    Handle(hid_t id, Closer closer) : m_id(id), m_closer(closer) {}
    ~Handle() { reset(); }
    Handle(Handle &&o) noexcept : m_id(o.m_id), m_closer(o.m_closer) { o.m_id = H5I_INVALID_HID; }
    Handle &operator=(Handle &&o) noexcept
    {
        if (this != &o) {
            reset();
            m_id = o.m_id;
            m_closer = o.m_closer;
            o.m_id = H5I_INVALID_HID;
        }
        return *this;
    }
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;

    hid_t id() const { return m_id; }
    operator hid_t() const { return m_id; }
    bool valid() const { return m_id >= 0; }
    void reset();

private:
    hid_t m_id = H5I_INVALID_HID;
    Closer m_closer = nullptr;
};

inline Handle fileHandle(hid_t id) { return Handle(id, &H5Fclose); }
inline Handle groupHandle(hid_t id) { return Handle(id, &H5Gclose); }
inline Handle datasetHandle(hid_t id) { return Handle(id, &H5Dclose); }
inline Handle spaceHandle(hid_t id) { return Handle(id, &H5Sclose); }
inline Handle typeHandle(hid_t id) { return Handle(id, &H5Tclose); }
inline Handle plistHandle(hid_t id) { return Handle(id, &H5Pclose); }
inline Handle attrHandle(hid_t id) { return Handle(id, &H5Aclose); }

/// True when the file starts with the HDF5 signature (no HDF5 call; no lock needed).
bool hasHdf5Signature(const std::string &path);

/// Opens read-only. Throws InputError "path: not an HDF5 file" / "cannot open".
Handle openFile(const std::string &path);
/// Creates (truncating) a file for writing. Throws Error.
Handle createFile(const std::string &path);

/// True when every link of `path` exists (no error when a parent group is missing).
bool linkExists(hid_t file, const std::string &path);
/// True when `path` exists and is a dataset.
bool isDataset(hid_t file, const std::string &path);

/// Opens a dataset; throws InputError "file: no dataset 'path' (datasets: ...)" when missing.
Handle openDataset(hid_t file, const std::string &path, const std::string &fileName);

std::vector<unsigned long long> datasetShape(hid_t dataset);
/// "[N, S, S]": a shape as error messages print it (no HDF5 call).
std::string shapeText(const std::vector<unsigned long long> &shape);
/// "uint8", "int16", "float32", ..., or "string", "compound", "enum", "other".
std::string typeName(hid_t type);
/// Integer or float class (enums of integers count as integers: h5py bools).
bool isNumeric(hid_t type);

/// Every dataset path in the file (recursive, hard links only), at most `limit`.
std::vector<std::string> listDatasetPaths(hid_t file, std::size_t limit = std::size_t(-1));

/// Refuses a dataset whose declared extent claims more data than the file really holds, before
/// anything is allocated for it (the rule, docs/robustness.md "Input validation"):
///   stored  = H5Dget_storage_size, capped at the file's size (not for external/virtual data);
///   no filters: declared bytes (elements x file type size) <= stored;
///   filters deflate/shuffle/fletcher32/nbit only: declared <= kDeflateExpansion x stored;
///   other filters: declared <= kOtherExpansion x stored;
///   declared <= kFillAllowance always passes (small datasets never written read as fill value);
///   and the memory to allocate (elements x memElementSize) must not exceed physical memory.
/// Throws InputError "file: dataset declares [..] type (size) but ..." naming file and dataset.
void checkDeclaredSize(hid_t dataset, const std::string &fileName, const std::string &path,
                       std::size_t memElementSize);
inline constexpr double kDeflateExpansion = 1100;      // deflate's ceiling is 1032:1
inline constexpr double kOtherExpansion = 65536;       // LZ4 / zstd / scale-offset plugins
inline constexpr double kFillAllowance = 1024 * 1024;  // bytes

/// "968.0 GiB": a byte count as error messages print it.
std::string bytesText(double bytes);

/// Reads a whole numeric dataset converted to T (float, double, int32, int64, uint8, ...).
/// Throws InputError naming file and dataset when it is not numeric or when its declared size is
/// larger than the data the file holds (checkDeclaredSize, before any allocation).
template <typename T>
std::vector<T> readAll(hid_t dataset, const std::string &fileName, const std::string &path);

/// Writes `data` as a new dataset of HDF5 type `fileType` (memory type deduced from T) with the
/// given shape; intermediate groups are created. Chunked + gzip(level) when level > 0 and the
/// dataset is not empty. `chunk` empty = automatic (first dim up to chunkRows).
template <typename T>
void writeDataset(hid_t file, const std::string &path, const std::vector<unsigned long long> &shape,
                  const T *data, hid_t fileType, int gzipLevel, std::size_t chunkRows = 4096);

/// Root/object attributes.
bool hasAttribute(hid_t object, const std::string &name);
/// Reads a scalar numeric attribute; throws InputError when not numeric.
long long readIntAttribute(hid_t object, const std::string &name, const std::string &fileName);
/// Reads a string attribute (fixed or variable length).
std::string readStringAttribute(hid_t object, const std::string &name, const std::string &fileName);
void writeIntAttribute(hid_t object, const std::string &name, long long value);
/// Variable-length UTF-8 string (what h5py writes for a Python str).
void writeStringAttribute(hid_t object, const std::string &name, const std::string &value);

/// Native memory type for T.
template <typename T> hid_t nativeType();

} // namespace braggnac::core::hdf5
