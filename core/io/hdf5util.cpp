#include "core/io/hdf5util.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <unistd.h>

#include "core/common/error.h"
#include "core/io/hdf5check.h"

namespace braggnac::core::hdf5 {

std::recursive_mutex &mutex()
{
    static std::recursive_mutex m;
    return m;
}

Lock::Lock() : m_guard(mutex())
{
    // Per thread in thread-safe builds, global otherwise: set it every time, it is cheap.
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

void Handle::reset()
{
    if (m_id >= 0 && m_closer) {
        Lock lock;
        m_closer(m_id);
    }
    m_id = H5I_INVALID_HID;
}

bool hasHdf5Signature(const std::string &path)
{
    // The superblock may sit at 0, 512, 1024, 2048, ... (user block); check the usual offsets.
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return false;
    for (std::streamoff off = 0; off <= 8192; off = off == 0 ? 512 : off * 2) {
        in.clear();
        in.seekg(off);
        unsigned char buf[8];
        if (!in.read(reinterpret_cast<char *>(buf), 8))
            return false;
        if (std::memcmp(buf, sig, 8) == 0)
            return true;
    }
    return false;
}

Handle openFile(const std::string &path)
{
    Lock lock;
    {
        std::ifstream probe(path, std::ios::binary);
        if (!probe)
            throw InputError(fileMessage(path, "cannot open file (missing or unreadable)"));
    }
    if (H5Fis_hdf5(path.c_str()) <= 0)
        throw InputError(fileMessage(path, "not an HDF5 file"));
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        throw InputError(fileMessage(path, "cannot open HDF5 file (corrupt or locked)"));
    return fileHandle(f);
}

Handle createFile(const std::string &path)
{
    Lock lock;
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        throw Error(fileMessage(path, "cannot create HDF5 file"));
    return fileHandle(f);
}

bool linkExists(hid_t file, const std::string &path)
{
    Lock lock;
    if (path.empty() || path == "/")
        return true;
    // Check each prefix: H5Lexists fails (not returns false) when a parent is missing.
    std::size_t pos = 0;
    while (true) {
        pos = path.find('/', pos + 1);
        const std::string prefix = path.substr(0, pos);
        if (!prefix.empty() && prefix != "/") {
            if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0)
                return false;
        }
        if (pos == std::string::npos)
            return true;
    }
}

bool isDataset(hid_t file, const std::string &path)
{
    Lock lock;
    if (!linkExists(file, path))
        return false;
    hid_t obj = H5Oopen(file, path.c_str(), H5P_DEFAULT);
    if (obj < 0)
        return false;
    const bool ds = H5Iget_type(obj) == H5I_DATASET;
    H5Oclose(obj);
    return ds;
}

namespace {
struct VisitState {
    std::vector<std::string> *out;
    std::size_t limit;
};
} // namespace

std::vector<std::string> listDatasetPaths(hid_t file, std::size_t limit)
{
    Lock lock;
    std::vector<std::string> out;
    if (limit == 0)
        return out;
    VisitState state{&out, limit};
    // A captureless generic lambda converts to whichever H5L_iterate_t this HDF5 version has.
    H5L_iterate_t cb = [](hid_t group, const char *name, const auto *info, void *data) -> herr_t {
        auto *st = static_cast<VisitState *>(data);
        if (info->type != H5L_TYPE_HARD)
            return 0;
        hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
        if (obj < 0)
            return 0;
        if (H5Iget_type(obj) == H5I_DATASET)
            st->out->push_back(std::string("/") + name);
        H5Oclose(obj);
        return st->out->size() >= st->limit ? 1 : 0;
    };
    H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, cb, &state);
    return out;
}

Handle openDataset(hid_t file, const std::string &path, const std::string &fileName)
{
    Lock lock;
    if (!isDataset(file, path)) {
        std::string msg = "no dataset '" + path + "'";
        const auto names = listDatasetPaths(file, 11);
        if (names.empty()) {
            msg += " (the file holds no datasets)";
        } else {
            msg += " (datasets: ";
            for (std::size_t i = 0; i < names.size() && i < 10; ++i)
                msg += (i ? ", " : "") + names[i];
            msg += names.size() > 10 ? ", ...)" : ")";
        }
        throw InputError(fileMessage(fileName, msg));
    }
    hid_t d = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
    if (d < 0)
        throw InputError(fileMessage(fileName, "cannot open dataset '" + path + "'"));
    return datasetHandle(d);
}

std::vector<unsigned long long> datasetShape(hid_t dataset)
{
    Lock lock;
    Handle space = spaceHandle(H5Dget_space(dataset));
    const int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(std::max(rank, 0));
    if (rank > 0)
        H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    return std::vector<unsigned long long>(dims.begin(), dims.end());
}

std::string shapeText(const std::vector<unsigned long long> &shape)
{
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

std::string typeName(hid_t type)
{
    Lock lock;
    const H5T_class_t cls = H5Tget_class(type);
    const std::size_t size = H5Tget_size(type);
    switch (cls) {
    case H5T_INTEGER: {
        const bool isSigned = H5Tget_sign(type) == H5T_SGN_2;
        return std::string(isSigned ? "int" : "uint") + std::to_string(size * 8);
    }
    case H5T_FLOAT:
        return "float" + std::to_string(size * 8);
    case H5T_STRING:
        return "string";
    case H5T_COMPOUND:
        return "compound";
    case H5T_ENUM: {
        Handle base = typeHandle(H5Tget_super(type));
        if (base.valid() && H5Tget_class(base) == H5T_INTEGER && size == 1)
            return "bool";
        return "enum";
    }
    default:
        return "other";
    }
}

bool isNumeric(hid_t type)
{
    Lock lock;
    const H5T_class_t cls = H5Tget_class(type);
    if (cls == H5T_INTEGER || cls == H5T_FLOAT)
        return true;
    if (cls == H5T_ENUM) {
        Handle base = typeHandle(H5Tget_super(type));
        return base.valid() && H5Tget_class(base) == H5T_INTEGER;
    }
    return false;
}

template <> hid_t nativeType<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t nativeType<double>() { return H5T_NATIVE_DOUBLE; }
template <> hid_t nativeType<std::int8_t>() { return H5T_NATIVE_INT8; }
template <> hid_t nativeType<std::uint8_t>() { return H5T_NATIVE_UINT8; }
template <> hid_t nativeType<std::int16_t>() { return H5T_NATIVE_INT16; }
template <> hid_t nativeType<std::uint16_t>() { return H5T_NATIVE_UINT16; }
template <> hid_t nativeType<std::int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t nativeType<std::uint32_t>() { return H5T_NATIVE_UINT32; }
template <> hid_t nativeType<std::int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t nativeType<std::uint64_t>() { return H5T_NATIVE_UINT64; }

std::string bytesText(double bytes)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (bytes >= 1024 && u < 6) {
        bytes /= 1024;
        ++u;
    }
    char buf[64];
    if (u == 0)
        std::snprintf(buf, sizeof buf, "%.0f bytes", bytes);
    else
        std::snprintf(buf, sizeof buf, "%.1f %s", bytes, units[u]);
    return buf;
}

namespace {

/// The storage half of checkDeclaredSize: declared bytes against the bytes the file holds.
void checkStored(hid_t dataset, const std::string &fileName, const std::string &path,
                 const std::string &what, long double declared)
{
    if (declared <= kFillAllowance)
        return;
    Handle dcpl = plistHandle(H5Dget_create_plist(dataset));
    if (!dcpl.valid())
        throw InputError(fileMessage(fileName, "cannot read the storage properties of " + path));
    const H5D_layout_t layout = H5Pget_layout(dcpl);
    if (layout == H5D_VIRTUAL || H5Pget_external_count(dcpl) > 0)
        return; // data in other files: only the memory bound applies
    long double stored = (long double)H5Dget_storage_size(dataset);
    {
        Handle file = fileHandle(H5Iget_file_id(dataset));
        hsize_t fileSize = 0;
        if (file.valid() && H5Fget_filesize(file, &fileSize) >= 0)
            stored = std::min(stored, (long double)fileSize);
    }
    bool deflateOnly = true;
    const int nfilters = H5Pget_nfilters(dcpl);
    for (int i = 0; i < nfilters; ++i) {
        unsigned flags = 0;
        std::size_t nelmts = 0;
        unsigned config = 0;
        const H5Z_filter_t id = H5Pget_filter2(dcpl, unsigned(i), &flags, &nelmts, nullptr, 0,
                                               nullptr, &config);
        if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_FLETCHER32
            && id != H5Z_FILTER_NBIT)
            deflateOnly = false;
    }
    const long double expansion = nfilters <= 0 ? 1 : deflateOnly ? kDeflateExpansion : kOtherExpansion;
    if (declared <= expansion * stored)
        return;
    std::string why;
    if (nfilters <= 0)
        why = "but the file stores only " + bytesText(double(stored))
              + " of it uncompressed; expected every declared value to be stored";
    else
        why = "but the file stores only " + bytesText(double(stored))
              + " of compressed data for it, and its filters expand at most "
              + std::to_string(int(expansion)) + ":1";
    throw InputError(fileMessage(fileName, what + " " + why + " (truncated, sparse or corrupt file)"));
}

} // namespace

void checkDeclaredSize(hid_t dataset, const std::string &fileName, const std::string &path,
                       std::size_t memElementSize)
{
    Lock lock;
    const auto shape = datasetShape(dataset);
    // long double: exact enough for a comparison, and no overflow for any rank-32 extent.
    long double elements = 1;
    for (auto d : shape)
        elements *= (long double)d;
    if (elements == 0)
        return;
    Handle ftype = typeHandle(H5Dget_type(dataset));
    const std::size_t fileElement = ftype.valid() ? H5Tget_size(ftype) : 0;
    const long double declared = elements * (long double)fileElement;
    const std::string what = path + " declares " + shapeText(shape) + " "
                             + (ftype.valid() ? typeName(ftype) : std::string("values")) + " ("
                             + bytesText(double(declared)) + ")";

    checkStored(dataset, fileName, path, what, declared);
    const long double memory = elements * (long double)memElementSize;
    const long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && pageSize > 0 && memory > (long double)pages * (long double)pageSize)
        throw InputError(fileMessage(fileName, what + ": reading it needs " + bytesText(double(memory))
                                                   + ", more than this machine's "
                                                   + bytesText(double(pages) * double(pageSize))
                                                   + " of memory"));
}

template <typename T>
std::vector<T> readAll(hid_t dataset, const std::string &fileName, const std::string &path)
{
    Lock lock;
    Handle ftype = typeHandle(H5Dget_type(dataset));
    if (!isNumeric(ftype))
        throw InputError(fileMessage(fileName, "dataset '" + path + "' has type "
                                                   + typeName(ftype) + ", expected a number type"));
    checkDeclaredSize(dataset, fileName, path, sizeof(T));
    // Type and chunk layout sane, unfiltered chunks whole (corrupt files; hdf5check.h).
    checkLayout(dataset, fileName, path);
    checkChunksStored(dataset, fileName, path);
    std::size_t n = 1;
    for (auto d : datasetShape(dataset))
        n *= std::size_t(d);
    std::vector<T> out(n);
    if (n == 0)
        return out;
    hid_t mem = nativeType<T>();
    if (H5Tget_class(ftype) == H5T_ENUM) {
        // h5py bools and other integer enums: HDF5 has no enum -> number conversion, so read the
        // values in the native enum type and decode its base integer.
        Handle nat = typeHandle(H5Tget_native_type(ftype, H5T_DIR_ASCEND));
        Handle base = typeHandle(H5Tget_super(nat));
        const std::size_t sz = H5Tget_size(nat);
        const bool isSigned = H5Tget_sign(base) == H5T_SGN_2;
        if (sz > sizeof(long long))
            throw InputError(fileMessage(fileName, "dataset '" + path + "' has an unsupported enum type"));
        std::vector<unsigned char> bytes(n * sz);
        if (H5Dread(dataset, nat, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) < 0)
            throw InputError(fileMessage(fileName, "cannot read dataset '" + path + "'"));
        for (std::size_t i = 0; i < n; ++i) {
            unsigned long long u = 0;
            std::memcpy(&u, bytes.data() + i * sz, sz); // little-endian host
            long long v = (long long)u;
            if (isSigned && sz < sizeof(long long)) {
                const unsigned shift = unsigned(8 * (sizeof(long long) - sz));
                v = (long long)(u << shift) >> shift;
            }
            out[i] = T(v);
        }
        return out;
    }
    if (H5Dread(dataset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
        throw InputError(fileMessage(fileName, "cannot read dataset '" + path + "' (corrupt data?)"));
    return out;
}

template <typename T>
void writeDataset(hid_t file, const std::string &path, const std::vector<unsigned long long> &shape,
                  const T *data, hid_t fileType, int gzipLevel, std::size_t chunkRows)
{
    Lock lock;
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    std::size_t n = 1;
    for (auto d : dims)
        n *= std::size_t(d);
    Handle space = spaceHandle(H5Screate_simple(int(dims.size()), dims.data(), nullptr));
    Handle lcpl = plistHandle(H5Pcreate(H5P_LINK_CREATE));
    H5Pset_create_intermediate_group(lcpl, 1);
    Handle dcpl = plistHandle(H5Pcreate(H5P_DATASET_CREATE));
    if (gzipLevel > 0 && n > 0 && !dims.empty()) {
        std::vector<hsize_t> chunk = dims;
        std::size_t rowElems = n / std::size_t(dims[0]);
        std::size_t rows = std::max<std::size_t>(1, std::min<std::size_t>(chunkRows, (1u << 20) / std::max<std::size_t>(rowElems, 1)));
        chunk[0] = std::min<hsize_t>(dims[0], rows);
        H5Pset_chunk(dcpl, int(chunk.size()), chunk.data());
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, unsigned(gzipLevel));
    }
    Handle ds = datasetHandle(H5Dcreate2(file, path.c_str(), fileType, space, lcpl, dcpl, H5P_DEFAULT));
    if (!ds.valid())
        throw Error("cannot create dataset '" + path + "'");
    if (n > 0 && H5Dwrite(ds, nativeType<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        throw Error("cannot write dataset '" + path + "'");
}

bool hasAttribute(hid_t object, const std::string &name)
{
    Lock lock;
    return H5Aexists(object, name.c_str()) > 0;
}

long long readIntAttribute(hid_t object, const std::string &name, const std::string &fileName)
{
    Lock lock;
    Handle attr = attrHandle(H5Aopen(object, name.c_str(), H5P_DEFAULT));
    if (!attr.valid())
        throw InputError(fileMessage(fileName, "cannot open attribute '" + name + "'"));
    Handle type = typeHandle(H5Aget_type(attr));
    const H5T_class_t cls = H5Tget_class(type);
    Handle space = spaceHandle(H5Aget_space(attr));
    if ((cls != H5T_INTEGER && cls != H5T_FLOAT) || H5Sget_simple_extent_npoints(space) != 1)
        throw InputError(fileMessage(fileName, "attribute '" + name + "' is "
                                                   + typeName(type) + ", expected one integer"));
    if (cls == H5T_FLOAT) {
        double v = 0;
        H5Aread(attr, H5T_NATIVE_DOUBLE, &v);
        return (long long)v;
    }
    long long v = 0;
    if (H5Aread(attr, H5T_NATIVE_LLONG, &v) < 0)
        throw InputError(fileMessage(fileName, "cannot read attribute '" + name + "'"));
    return v;
}

std::string readStringAttribute(hid_t object, const std::string &name, const std::string &fileName)
{
    Lock lock;
    Handle attr = attrHandle(H5Aopen(object, name.c_str(), H5P_DEFAULT));
    if (!attr.valid())
        throw InputError(fileMessage(fileName, "cannot open attribute '" + name + "'"));
    Handle type = typeHandle(H5Aget_type(attr));
    if (H5Tget_class(type) != H5T_STRING)
        throw InputError(fileMessage(fileName, "attribute '" + name + "' is " + typeName(type)
                                                   + ", expected a string"));
    Handle space = spaceHandle(H5Aget_space(attr));
    if (H5Sget_simple_extent_npoints(space) < 1)
        return {};
    if (H5Tis_variable_str(type) > 0) {
        Handle mem = typeHandle(H5Tcopy(H5T_C_S1));
        H5Tset_size(mem, H5T_VARIABLE);
        H5Tset_cset(mem, H5Tget_cset(type));
        const hssize_t count = H5Sget_simple_extent_npoints(space);
        std::vector<char *> values(std::size_t(count), nullptr);
        if (H5Aread(attr, mem, values.data()) < 0)
            throw InputError(fileMessage(fileName, "cannot read attribute '" + name + "'"));
        std::string s = values[0] ? values[0] : "";
        H5Dvlen_reclaim(mem, space, H5P_DEFAULT, values.data());
        return s;
    }
    const std::size_t size = H5Tget_size(type);
    const hssize_t count = H5Sget_simple_extent_npoints(space);
    std::vector<char> buf(size * std::size_t(count) + 1, '\0');
    Handle mem = typeHandle(H5Tcopy(type));
    if (H5Aread(attr, mem, buf.data()) < 0)
        throw InputError(fileMessage(fileName, "cannot read attribute '" + name + "'"));
    std::string s(buf.data(), size);
    const auto end = s.find('\0');
    if (end != std::string::npos)
        s.resize(end);
    while (!s.empty() && s.back() == ' ') // H5T_STR_SPACEPAD
        s.pop_back();
    return s;
}

void writeIntAttribute(hid_t object, const std::string &name, long long value)
{
    Lock lock;
    if (H5Aexists(object, name.c_str()) > 0)
        H5Adelete(object, name.c_str());
    Handle space = spaceHandle(H5Screate(H5S_SCALAR));
    const std::int64_t v = value;
    const bool fits32 = value >= INT32_MIN && value <= INT32_MAX;
    Handle attr = attrHandle(H5Acreate2(object, name.c_str(),
                                        fits32 ? H5T_STD_I32LE : H5T_STD_I64LE, space,
                                        H5P_DEFAULT, H5P_DEFAULT));
    if (!attr.valid() || H5Awrite(attr, H5T_NATIVE_INT64, &v) < 0)
        throw Error("cannot write attribute '" + name + "'");
}

void writeStringAttribute(hid_t object, const std::string &name, const std::string &value)
{
    Lock lock;
    if (H5Aexists(object, name.c_str()) > 0)
        H5Adelete(object, name.c_str());
    Handle type = typeHandle(H5Tcopy(H5T_C_S1));
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    Handle space = spaceHandle(H5Screate(H5S_SCALAR));
    Handle attr = attrHandle(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
    const char *p = value.c_str();
    if (!attr.valid() || H5Awrite(attr, type, &p) < 0)
        throw Error("cannot write attribute '" + name + "'");
}

#define BRAGGNAC_HDF5_INSTANTIATE(T)                                                              \
    template std::vector<T> readAll<T>(hid_t, const std::string &, const std::string &);          \
    template void writeDataset<T>(hid_t, const std::string &,                                    \
                                  const std::vector<unsigned long long> &, const T *, hid_t, int, \
                                  std::size_t);
BRAGGNAC_HDF5_INSTANTIATE(float)
BRAGGNAC_HDF5_INSTANTIATE(double)
BRAGGNAC_HDF5_INSTANTIATE(std::int8_t)
BRAGGNAC_HDF5_INSTANTIATE(std::uint8_t)
BRAGGNAC_HDF5_INSTANTIATE(std::int16_t)
BRAGGNAC_HDF5_INSTANTIATE(std::uint16_t)
BRAGGNAC_HDF5_INSTANTIATE(std::int32_t)
BRAGGNAC_HDF5_INSTANTIATE(std::uint32_t)
BRAGGNAC_HDF5_INSTANTIATE(std::int64_t)
BRAGGNAC_HDF5_INSTANTIATE(std::uint64_t)
#undef BRAGGNAC_HDF5_INSTANTIATE

} // namespace braggnac::core::hdf5
