// HDF5 frame stacks: a 3-D [F, H, W] or 2-D [H, W] numeric dataset, read one frame at a time.
// Chunked datasets whose filters are only deflate/shuffle, whose chunks hold one frame (or part
// of one) and whose type is a little-endian 8/16/32-bit integer or float32 are read as raw chunks
// (H5Dread_chunk, under the HDF5 lock) and decompressed and converted outside the lock
// (chunkdecode.h), so several threads decompress at once. Everything else, and any frame with an
// unallocated chunk or a chunk that does not decode, goes through a hyperslab H5Dread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/common/atomicfile.h"
#include "core/common/error.h"
#include "core/io/chunkdecode.h"
#include "core/io/framereaders.h"
#include "core/io/hdf5check.h"
#include "core/io/hdf5util.h"

namespace braggnac::core {

namespace {

PixelType pixelTypeOf(hid_t type)
{
    hdf5::Lock lock;
    const std::size_t size = H5Tget_size(type);
    if (H5Tget_class(type) == H5T_FLOAT)
        return size > 4 ? PixelType::Float64 : PixelType::Float32;
    const bool s = H5Tget_sign(type) == H5T_SGN_2;
    switch (size) {
    case 1: return s ? PixelType::Int8 : PixelType::UInt8;
    case 2: return s ? PixelType::Int16 : PixelType::UInt16;
    case 4: return s ? PixelType::Int32 : PixelType::UInt32;
    default: return s ? PixelType::Int64 : PixelType::UInt64;
    }
}

class Hdf5Source final : public FrameSource {
public:
    Hdf5Source(const std::string &path, const std::string &dataset)
        : m_path(path), m_dataset(dataset.empty() ? kDefaultHdf5Dataset : dataset)
    {
        if (m_dataset.front() != '/')
            m_dataset = "/" + m_dataset;
        hdf5::Lock lock;
        m_file = hdf5::openFile(path);
        m_ds = hdf5::openDataset(m_file, m_dataset, path);
        hdf5::Handle type = hdf5::typeHandle(H5Dget_type(m_ds));
        const H5T_class_t cls = H5Tget_class(type);
        if (cls != H5T_INTEGER && cls != H5T_FLOAT)
            throw InputError(fileMessage(path, "dataset '" + m_dataset + "' has type "
                                                   + hdf5::typeName(type)
                                                   + "; expected integer or float pixels"));
        // Element type and chunk shape sane before any read (corrupt files, found by fuzzing).
        hdf5::checkLayout(m_ds, path, m_dataset);
        m_type = pixelTypeOf(type);
        m_shape = hdf5::datasetShape(m_ds);
        if (m_shape.size() != 2 && m_shape.size() != 3)
            throw InputError(fileMessage(path, "dataset '" + m_dataset + "' is "
                                                   + std::to_string(m_shape.size()) + "-D "
                                                   + hdf5::shapeText(m_shape)
                                                   + "; expected 3-D [frames, rows, cols] or 2-D [rows, cols]"));
        const std::size_t r = m_shape.size() - 2;
        if (m_shape[r] == 0 || m_shape[r + 1] == 0 || (m_shape.size() == 3 && m_shape[0] == 0))
            throw InputError(fileMessage(path, "dataset '" + m_dataset + "' " + hdf5::shapeText(m_shape)
                                                   + " holds no frames"));
        if (m_shape[r] > (1ull << 20) || m_shape[r + 1] > (1ull << 20)
            || m_shape[r] * m_shape[r + 1] > (1ull << 30) || m_shape[0] > (1ull << 31) - 1)
            throw InputError(fileMessage(path, "dataset '" + m_dataset + "' " + hdf5::shapeText(m_shape)
                                                   + " is larger than supported"));
        tuneChunkCache();
        planDirectReads();
    }
    ~Hdf5Source() override
    {
        hdf5::Lock lock;
        m_ds.reset();
        m_file.reset();
    }

    const std::string &path() const override { return m_path; }
    FrameFormat format() const override { return FrameFormat::HDF5; }
    std::string dataset() const override { return m_dataset; }
    int frameCount() const override { return m_shape.size() == 3 ? int(m_shape[0]) : 1; }
    int rows() const override { return int(m_shape[m_shape.size() - 2]); }
    int cols() const override { return int(m_shape[m_shape.size() - 1]); }
    PixelType pixelType() const override { return m_type; }

    Frame readFrame(int index) const override
    {
        Frame f;
        readFrameInto(index, f);
        return f;
    }

    void readFrameInto(int index, Frame &f) const override
    {
        if (index < 0 || index >= frameCount())
            throw InputError(fileMessage(m_path, "dataset '" + m_dataset + "': frame "
                                                     + std::to_string(index)
                                                     + " out of range (it has "
                                                     + std::to_string(frameCount()) + " frames)"));
        const std::size_t n = std::size_t(rows()) * std::size_t(cols());
        f.rows = rows();
        f.cols = cols();
        if (f.data.size() != n)
            f.data.assign(n, 0.f);
        // The raw-chunk path writes every pixel (all chunks must be stored); on a false return
        // the H5Dread below overwrites the whole frame.
        if (m_direct && chunkdecode::directChunkReads() && readDirect(index, f))
            return;
        hdf5::Lock lock;
        hdf5::Handle fspace = hdf5::spaceHandle(H5Dget_space(m_ds));
        const hsize_t h = hsize_t(rows()), w = hsize_t(cols());
        hdf5::Handle mspace;
        if (m_shape.size() == 3) {
            const hsize_t start[3] = {hsize_t(index), 0, 0};
            const hsize_t count[3] = {1, h, w};
            hdf5::checkChunksStored(m_ds, m_path, m_dataset, start, count);
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr);
            mspace = hdf5::spaceHandle(H5Screate_simple(3, count, nullptr));
        } else {
            const hsize_t count[2] = {h, w};
            hdf5::checkChunksStored(m_ds, m_path, m_dataset);
            mspace = hdf5::spaceHandle(H5Screate_simple(2, count, nullptr));
        }
        if (H5Dread(m_ds, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, f.data.data()) < 0)
            throw InputError(fileMessage(m_path, "dataset '" + m_dataset + "': cannot read frame "
                                                     + std::to_string(index)
                                                     + " (corrupt or truncated data?)"));
    }

private:
    /// Decides whether frames can be read as raw chunks and decoded here (see the file comment).
    void planDirectReads()
    {
        hdf5::Lock lock;
        hdf5::Handle dcpl = hdf5::plistHandle(H5Dget_create_plist(m_ds));
        if (!dcpl.valid() || H5Pget_layout(dcpl) != H5D_CHUNKED)
            return;
        const int rank = int(m_shape.size());
        hsize_t chunk[3] = {1, 1, 1};
        if (H5Pget_chunk(dcpl, rank, chunk) != rank)
            return;
        if (rank == 3 && chunk[0] != 1)
            return; // chunks spanning frames: HDF5's chunk cache serves them
        const int nfilters = H5Pget_nfilters(dcpl);
        if (nfilters <= 0 || nfilters > 32)
            return; // unfiltered chunks cost nothing to decode
        hdf5::Handle type = hdf5::typeHandle(H5Dget_type(m_ds));
        if (!type.valid() || H5Tget_order(type) != H5T_ORDER_LE || H5Tget_offset(type) != 0
            || H5Tget_precision(type) != 8 * H5Tget_size(type))
            return;
        const std::size_t size = H5Tget_size(type);
        if (H5Tget_class(type) == H5T_FLOAT) {
            if (H5Tequal(type, H5T_IEEE_F32LE) <= 0)
                return;
            m_stored = chunkdecode::StoredType::Float32;
        } else if (H5Tget_class(type) == H5T_INTEGER) {
            const bool s = H5Tget_sign(type) == H5T_SGN_2;
            if (size == 1)
                m_stored = s ? chunkdecode::StoredType::Int8 : chunkdecode::StoredType::UInt8;
            else if (size == 2)
                m_stored = s ? chunkdecode::StoredType::Int16 : chunkdecode::StoredType::UInt16;
            else if (size == 4)
                m_stored = s ? chunkdecode::StoredType::Int32 : chunkdecode::StoredType::UInt32;
            else
                return;
        } else {
            return;
        }
        std::vector<chunkdecode::Filter> filters;
        for (int i = 0; i < nfilters; ++i) {
            unsigned flags = 0;
            std::size_t nelmts = 8;
            unsigned cd[8] = {};
            unsigned config = 0;
            const H5Z_filter_t id = H5Pget_filter2(dcpl, unsigned(i), &flags, &nelmts, cd, 0,
                                                   nullptr, &config);
            chunkdecode::Filter f;
            if (id == H5Z_FILTER_DEFLATE) {
                f.kind = chunkdecode::Filter::Deflate;
            } else if (id == H5Z_FILTER_SHUFFLE) {
                f.kind = chunkdecode::Filter::Shuffle;
                // H5Pset_shuffle stores the element size when the dataset is created.
                f.elementSize = nelmts >= 1 && cd[0] > 0 ? cd[0] : size;
            } else {
                return; // fletcher32, scale-offset, n-bit, szip, plugins: H5Dread
            }
            filters.push_back(f);
        }
        m_filters = std::move(filters);
        const int r = rank - 2;
        m_chunkRows = chunk[r];
        m_chunkCols = chunk[r + 1];
        m_direct = true;
    }

    /// Reads frame `index` as raw chunks and decodes them outside the lock. False when some chunk
    /// is unallocated (fill value) or does not decode: the caller then reads it with H5Dread.
    bool readDirect(int index, Frame &f) const
    {
        const hsize_t h = hsize_t(rows()), w = hsize_t(cols());
        const hsize_t nr = (h + m_chunkRows - 1) / m_chunkRows, nc = (w + m_chunkCols - 1) / m_chunkCols;
        const std::size_t elem = chunkdecode::storedSize(m_stored);
        const std::size_t chunkBytes = std::size_t(m_chunkRows * m_chunkCols) * elem;
        struct Raw {
            std::vector<std::uint8_t> bytes;
            unsigned mask = 0;
        };
        // Buffers reused from read to read on this thread (no allocation and clearing of
        // frame-sized buffers per frame).
        thread_local std::vector<Raw> raws;
        raws.resize(std::size_t(nr * nc));
        {
            hdf5::Lock lock;
            const bool three = m_shape.size() == 3;
            for (hsize_t a = 0; a < nr; ++a)
                for (hsize_t b = 0; b < nc; ++b) {
                    hsize_t offset[3];
                    if (three) {
                        offset[0] = hsize_t(index);
                        offset[1] = a * m_chunkRows;
                        offset[2] = b * m_chunkCols;
                    } else {
                        offset[0] = a * m_chunkRows;
                        offset[1] = b * m_chunkCols;
                    }
                    unsigned mask = 0;
                    haddr_t addr = HADDR_UNDEF;
                    hsize_t stored = 0;
                    // Deflate expands incompressible data by well under 1/64 (zlib's
                    // compressBound): a larger stored size is a corrupt index, left to H5Dread.
                    if (H5Dget_chunk_info_by_coord(m_ds, offset, &mask, &addr, &stored) < 0
                        || addr == HADDR_UNDEF || stored == 0
                        || stored > hsize_t(chunkBytes) + hsize_t(chunkBytes / 64) + 4096)
                        return false;
                    Raw &raw = raws[std::size_t(a * nc + b)];
                    raw.bytes.resize(std::size_t(stored));
                    if (H5Dread_chunk(m_ds, H5P_DEFAULT, offset, &raw.mask, raw.bytes.data()) < 0)
                        return false;
                }
        }
        thread_local std::vector<std::uint8_t> out, scratch;
        for (hsize_t a = 0; a < nr; ++a)
            for (hsize_t b = 0; b < nc; ++b) {
                const Raw &raw = raws[std::size_t(a * nc + b)];
                if (!chunkdecode::decodeChunk(raw.bytes.data(), raw.bytes.size(), raw.mask, m_filters,
                                              chunkBytes, out, scratch))
                    return false;
                // Edge chunks are stored whole: copy only the part inside the frame.
                const hsize_t r0 = a * m_chunkRows, c0 = b * m_chunkCols;
                const hsize_t rn = std::min(m_chunkRows, h - r0), cn = std::min(m_chunkCols, w - c0);
                for (hsize_t y = 0; y < rn; ++y)
                    chunkdecode::toFloat(out.data() + std::size_t(y * m_chunkCols) * elem, m_stored,
                                         std::size_t(cn), f.data.data() + std::size_t((r0 + y) * w + c0));
            }
        chunkdecode::countDirectFrame();
        return true;
    }

    /// A chunk spanning several frames would be decompressed again for every frame with the
    /// default 1 MiB cache: let the cache hold one whole chunk (up to 256 MiB).
    void tuneChunkCache()
    {
        hdf5::Handle dcpl = hdf5::plistHandle(H5Dget_create_plist(m_ds));
        if (H5Pget_layout(dcpl) != H5D_CHUNKED || m_shape.size() != 3)
            return;
        hsize_t chunk[3] = {1, 1, 1};
        if (H5Pget_chunk(dcpl, 3, chunk) != 3 || chunk[0] <= 1)
            return;
        hdf5::Handle type = hdf5::typeHandle(H5Dget_type(m_ds));
        const double bytes = double(chunk[0]) * double(chunk[1]) * double(chunk[2]) * double(H5Tget_size(type));
        if (bytes <= 1024.0 * 1024.0 || bytes > 256.0 * 1024 * 1024)
            return;
        // Reopen the dataset with a bigger cache.
        hdf5::Handle dapl = hdf5::plistHandle(H5Pcreate(H5P_DATASET_ACCESS));
        H5Pset_chunk_cache(dapl, 521, std::size_t(bytes * 1.05), 1.0);
        hid_t d = H5Dopen2(m_file, m_dataset.c_str(), dapl);
        if (d >= 0)
            m_ds = hdf5::datasetHandle(d);
    }

    std::string m_path;
    std::string m_dataset;
    hdf5::Handle m_file;
    hdf5::Handle m_ds;
    std::vector<unsigned long long> m_shape;
    PixelType m_type = PixelType::Float32;
    // Direct chunk reads (planDirectReads): fixed after construction, so readFrame may use them
    // from several threads without the lock.
    bool m_direct = false;
    chunkdecode::StoredType m_stored = chunkdecode::StoredType::UInt16;
    std::vector<chunkdecode::Filter> m_filters;
    hsize_t m_chunkRows = 1, m_chunkCols = 1;
};

} // namespace

std::unique_ptr<FrameSource> openHdf5Source(const std::string &path, const std::string &dataset)
{
    return std::make_unique<Hdf5Source>(path, dataset);
}

std::vector<Hdf5DatasetInfo> listHdf5Datasets(const std::string &path)
{
    hdf5::Lock lock;
    hdf5::Handle file = hdf5::openFile(path);
    std::vector<Hdf5DatasetInfo> out;
    for (const std::string &name : hdf5::listDatasetPaths(file)) {
        hid_t d = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
        if (d < 0)
            continue;
        hdf5::Handle ds = hdf5::datasetHandle(d);
        hdf5::Handle type = hdf5::typeHandle(H5Dget_type(ds));
        Hdf5DatasetInfo info;
        info.path = name;
        info.shape = hdf5::datasetShape(ds);
        info.type = hdf5::typeName(type);
        const H5T_class_t cls = H5Tget_class(type);
        info.usableAsFrames = (cls == H5T_INTEGER || cls == H5T_FLOAT)
            && (info.shape.size() == 2 || info.shape.size() == 3)
            && std::all_of(info.shape.begin(), info.shape.end(), [](unsigned long long v) { return v > 0; });
        out.push_back(std::move(info));
    }
    return out;
}

void writeHdf5Frames(const std::string &path, const std::vector<Frame> &frames,
                     const std::string &dataset, bool float32)
{
    if (frames.empty())
        throw InputError(fileMessage(path, "no frames to write"));
    for (std::size_t i = 0; i < frames.size(); ++i)
        if (frames[i].rows != frames[0].rows || frames[i].cols != frames[0].cols || frames[i].empty())
            throw InputError(fileMessage(path, "frame " + std::to_string(i)
                                                   + " differs in shape from frame 0 (or is empty)"));
    const std::string dsPath = dataset.empty() ? std::string(kDefaultHdf5Dataset)
                                               : (dataset.front() == '/' ? dataset : "/" + dataset);
    AtomicOutput out(path);
    {
        hdf5::Lock lock;
        hdf5::Handle file = hdf5::createFile(out.tempPath());
        const hsize_t h = hsize_t(frames[0].rows), w = hsize_t(frames[0].cols);
        const hsize_t dims[3] = {hsize_t(frames.size()), h, w};
        const hsize_t chunk[3] = {1, h, w};
        hdf5::Handle space = hdf5::spaceHandle(H5Screate_simple(3, dims, nullptr));
        hdf5::Handle lcpl = hdf5::plistHandle(H5Pcreate(H5P_LINK_CREATE));
        H5Pset_create_intermediate_group(lcpl, 1);
        hdf5::Handle dcpl = hdf5::plistHandle(H5Pcreate(H5P_DATASET_CREATE));
        H5Pset_chunk(dcpl, 3, chunk);
        H5Pset_deflate(dcpl, 4);
        hdf5::Handle ds = hdf5::datasetHandle(
            H5Dcreate2(file, dsPath.c_str(), float32 ? H5T_IEEE_F32LE : H5T_STD_U16LE, space,
                       lcpl, dcpl, H5P_DEFAULT));
        if (!ds.valid())
            throw Error(fileMessage(path, "cannot create dataset '" + dsPath + "'"));
        hdf5::Handle mspace = hdf5::spaceHandle(H5Screate_simple(3, chunk, nullptr));
        std::vector<std::uint16_t> buf(float32 ? 0 : std::size_t(h * w));
        for (std::size_t i = 0; i < frames.size(); ++i) {
            hdf5::Handle fspace = hdf5::spaceHandle(H5Dget_space(ds));
            const hsize_t start[3] = {hsize_t(i), 0, 0};
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, chunk, nullptr);
            herr_t rc;
            if (float32) {
                rc = H5Dwrite(ds, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, frames[i].data.data());
            } else {
                const float *src = frames[i].data.data();
                for (std::size_t k = 0; k < buf.size(); ++k)
                    buf[k] = toUInt16Pixel(src[k]);
                rc = H5Dwrite(ds, H5T_NATIVE_UINT16, mspace, fspace, H5P_DEFAULT, buf.data());
            }
            if (rc < 0)
                throw Error(fileMessage(path, "cannot write frame " + std::to_string(i) + " to '"
                                                  + dsPath + "' (disk full?)"));
        }
        ds.reset();
        if (H5Fflush(file, H5F_SCOPE_LOCAL) < 0)
            throw Error(fileMessage(path, "cannot flush HDF5 file (disk full?)"));
    }
    out.commit();
}

} // namespace braggnac::core
