// HDF5 frame stacks: a 3-D [F, H, W] or 2-D [H, W] numeric dataset, read one frame at a time
// through a hyperslab, converted to float by H5Dread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/common/atomicfile.h"
#include "core/common/error.h"
#include "core/io/framereaders.h"
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
        if (index < 0 || index >= frameCount())
            throw InputError(fileMessage(m_path, "dataset '" + m_dataset + "': frame "
                                                     + std::to_string(index)
                                                     + " out of range (it has "
                                                     + std::to_string(frameCount()) + " frames)"));
        Frame f(rows(), cols());
        hdf5::Lock lock;
        hdf5::Handle fspace = hdf5::spaceHandle(H5Dget_space(m_ds));
        const hsize_t h = hsize_t(rows()), w = hsize_t(cols());
        hdf5::Handle mspace;
        if (m_shape.size() == 3) {
            const hsize_t start[3] = {hsize_t(index), 0, 0};
            const hsize_t count[3] = {1, h, w};
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr);
            mspace = hdf5::spaceHandle(H5Screate_simple(3, count, nullptr));
        } else {
            const hsize_t count[2] = {h, w};
            mspace = hdf5::spaceHandle(H5Screate_simple(2, count, nullptr));
        }
        if (H5Dread(m_ds, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, f.data.data()) < 0)
            throw InputError(fileMessage(m_path, "dataset '" + m_dataset + "': cannot read frame "
                                                     + std::to_string(index)
                                                     + " (corrupt or truncated data?)"));
        return f;
    }

private:
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
