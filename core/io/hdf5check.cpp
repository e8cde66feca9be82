#include "core/io/hdf5check.h"

#include <vector>

#include "core/common/error.h"
#include "core/io/hdf5util.h"

namespace braggnac::core::hdf5 {

namespace {

[[noreturn]] void refuse(const std::string &fileName, const std::string &path, const std::string &what)
{
    throw InputError(fileMessage(fileName, "dataset '" + path + "' " + what + " (corrupt file?)"));
}

void checkType(hid_t type, const std::string &fileName, const std::string &path)
{
    H5T_class_t cls = H5Tget_class(type);
    Handle base;
    hid_t t = type;
    if (cls == H5T_ENUM) {
        base = typeHandle(H5Tget_super(type));
        if (!base.valid())
            refuse(fileName, path, "has an enum type without a base type");
        t = base;
        cls = H5Tget_class(t);
    }
    if (cls != H5T_INTEGER && cls != H5T_FLOAT)
        return; // not a number: the callers refuse it with their own message
    const std::size_t size = H5Tget_size(t);
    const bool sizeOk = cls == H5T_INTEGER ? (size == 1 || size == 2 || size == 4 || size == 8)
                                           : (size == 2 || size == 4 || size == 8);
    if (!sizeOk)
        refuse(fileName, path, std::string("has ") + (cls == H5T_INTEGER ? "integer" : "float")
                                   + " elements of " + std::to_string(size)
                                   + " bytes; expected 1, 2, 4 or 8");
    const std::size_t bits = 8 * size;
    const std::size_t precision = H5Tget_precision(t);
    const int offset = H5Tget_offset(t);
    if (precision == 0 || offset < 0 || std::size_t(offset) + precision > bits)
        refuse(fileName, path, "has a " + std::to_string(size) + "-byte number type with precision "
                                   + std::to_string(precision) + " at bit offset "
                                   + std::to_string(offset));
    if (cls == H5T_FLOAT) {
        std::size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
        if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0 || esize == 0 || msize == 0
            || spos >= precision || epos + esize > precision || mpos + msize > precision)
            refuse(fileName, path, "has a float type whose sign/exponent/mantissa fields do not fit its "
                                       + std::to_string(precision) + " bits");
    }
}

} // namespace

void checkLayout(hid_t dataset, const std::string &fileName, const std::string &path)
{
    Lock lock;
    Handle type = typeHandle(H5Dget_type(dataset));
    if (!type.valid())
        refuse(fileName, path, "has an unreadable type");
    checkType(type, fileName, path);

    Handle dcpl = plistHandle(H5Dget_create_plist(dataset));
    if (!dcpl.valid())
        refuse(fileName, path, "has unreadable storage properties");
    if (H5Pget_layout(dcpl) != H5D_CHUNKED)
        return;
    Handle space = spaceHandle(H5Dget_space(dataset));
    const int rank = space.valid() ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank < 0 || rank > H5S_MAX_RANK)
        refuse(fileName, path, "has an unreadable shape");
    const std::size_t r = std::size_t(rank) + 1;
    std::vector<hsize_t> dims(r), maxdims(r);
    H5Sget_simple_extent_dims(space, dims.data(), maxdims.data());
    std::vector<hsize_t> chunk(H5S_MAX_RANK + 1, 0);
    const int chunkRank = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk.data());
    if (chunkRank != rank)
        refuse(fileName, path, "is " + std::to_string(rank) + "-D but its chunks are "
                                   + std::to_string(chunkRank) + "-D");
    long double bytes = (long double)H5Tget_size(type);
    for (int i = 0; i < rank; ++i) {
        if (chunk[std::size_t(i)] == 0
            || (maxdims[std::size_t(i)] != H5S_UNLIMITED && chunk[std::size_t(i)] > maxdims[std::size_t(i)]))
            refuse(fileName, path, "has chunk dimension " + std::to_string(i) + " of "
                                       + std::to_string(chunk[std::size_t(i)])
                                       + " for a fixed dimension of "
                                       + std::to_string(maxdims[std::size_t(i)]));
        bytes *= (long double)chunk[std::size_t(i)];
    }
    if (bytes >= 4294967296.0L)
        refuse(fileName, path, "has chunks of 4 GiB or more");
}

void checkChunksStored(hid_t dataset, const std::string &fileName, const std::string &path,
                       const hsize_t *start, const hsize_t *count)
{
    Lock lock;
    Handle dcpl = plistHandle(H5Dget_create_plist(dataset));
    if (!dcpl.valid() || H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_nfilters(dcpl) != 0)
        return;
    Handle space = spaceHandle(H5Dget_space(dataset));
    Handle type = typeHandle(H5Dget_type(dataset));
    const int rank = H5Sget_simple_extent_ndims(space);
    if (rank <= 0 || rank > H5S_MAX_RANK)
        return;
    const std::size_t r = std::size_t(rank);
    std::vector<hsize_t> dims(r), chunk(r);
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    if (H5Pget_chunk(dcpl, rank, chunk.data()) != rank)
        refuse(fileName, path, "has unreadable chunk dimensions");
    hsize_t chunkBytes = H5Tget_size(type);
    std::vector<hsize_t> first(r), last(r);
    for (int i = 0; i < rank; ++i) {
        const std::size_t k = std::size_t(i);
        if (chunk[k] == 0)
            refuse(fileName, path, "has a chunk dimension of 0");
        chunkBytes *= chunk[k];
        const hsize_t lo = start ? start[k] : 0;
        const hsize_t n = count ? count[k] : dims[k];
        if (n == 0 || dims[k] == 0)
            return; // nothing selected
        first[k] = lo / chunk[k];
        last[k] = (lo + n - 1) / chunk[k];
    }
    // Every chunk in the selection's box, in row-major order.
    std::vector<hsize_t> at = first, offset(r);
    while (true) {
        for (int i = 0; i < rank; ++i)
            offset[std::size_t(i)] = at[std::size_t(i)] * chunk[std::size_t(i)];
        unsigned mask = 0;
        haddr_t addr = HADDR_UNDEF;
        hsize_t size = 0;
        if (H5Dget_chunk_info_by_coord(dataset, offset.data(), &mask, &addr, &size) < 0)
            refuse(fileName, path, "has an unreadable chunk index");
        if (addr != HADDR_UNDEF && size != chunkBytes)
            refuse(fileName, path, "stores a chunk of " + std::to_string(size) + " bytes; its "
                                       + "unfiltered chunks hold " + std::to_string(chunkBytes));
        int i = rank - 1;
        while (i >= 0 && at[std::size_t(i)] == last[std::size_t(i)]) {
            at[std::size_t(i)] = first[std::size_t(i)];
            --i;
        }
        if (i < 0)
            break;
        ++at[std::size_t(i)];
    }
}

} // namespace braggnac::core::hdf5
