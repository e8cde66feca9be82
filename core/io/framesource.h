#pragma once
// Frame readers: one interface over GE raw, TIFF and HDF5 frame stacks.
// A FrameSource opens the file and reads its header/metadata only; frames are read one at a time.
// Thread-safety: readFrame() is safe to call from several threads (implementations serialise
// access to the file / HDF5 library internally).
// Errors: openFrameSource and readFrame throw InputError naming the file (and dataset) and what
// was wrong (size not header + whole frames, not an image, missing dataset, 1-D dataset, ...).
#include <memory>
#include <string>
#include <vector>

#include "core/common/progress.h"
#include "core/io/frame.h"

namespace braggnac::core {

enum class PixelType { UInt8, Int8, UInt16, Int16, UInt32, Int32, UInt64, Int64, Float32, Float64 };
const char *pixelTypeName(PixelType type);

enum class FrameFormat { GE, TIFF, HDF5 };

class FrameSource {
public:
    virtual ~FrameSource() = default;
    virtual const std::string &path() const = 0;
    virtual FrameFormat format() const = 0;
    /// HDF5 dataset path; empty for GE/TIFF.
    virtual std::string dataset() const { return {}; }
    virtual int frameCount() const = 0;
    virtual int rows() const = 0;
    virtual int cols() const = 0;
    virtual PixelType pixelType() const = 0;
    /// Reads frame `index` (0-based). Throws InputError on a bad index or unreadable data.
    virtual Frame readFrame(int index) const = 0;
    /// Reads frame `index` into `out`, reusing its buffer when it already has the frame's size
    /// (a reader loop avoids allocating and clearing a frame per read). Same errors as readFrame;
    /// `out` is unspecified after an error.
    virtual void readFrameInto(int index, Frame &out) const { out = readFrame(index); }
};

/// Default HDF5 dataset (NeXus).
inline constexpr const char *kDefaultHdf5Dataset = "/entry/data/data";

/// Opens a frame file, choosing the reader by extension (.ge, .ge2..., .tif/.tiff,
/// .h5/.hdf5/.nxs) and, failing that, by content (HDF5 signature, TIFF magic).
/// `dataset` applies to HDF5 only (empty = kDefaultHdf5Dataset).
std::unique_ptr<FrameSource> openFrameSource(const std::string &path,
                                             const std::string &dataset = {});

/// A dark frame from a file: the mean of all its frames (one frame or a stack of darks).
/// Progress per frame; throws InputError when the file holds no frame, CancelledError when
/// cancelled.
Frame readDarkFrame(const std::string &path, const std::string &dataset = {},
                    const Monitor &monitor = {});

/// One dataset of an HDF5 file, for the studio's dataset browser.
struct Hdf5DatasetInfo {
    std::string path;               // "/entry/data/data"
    std::vector<unsigned long long> shape;
    std::string type;               // "uint16", "float32", ...
    bool usableAsFrames = false;    // 2-D or 3-D numeric
};
/// Lists every dataset in an HDF5 file (recursively). Throws InputError if not HDF5.
std::vector<Hdf5DatasetInfo> listHdf5Datasets(const std::string &path);

/// Writers used by the simulator, tests and benchmarks (atomic: temp file then rename).
void writeGeFrames(const std::string &path, const std::vector<Frame> &frames);
/// 16-bit (values rounded and clamped to 0..65535) or 32-bit float pages; Deflate when compress.
void writeTiffFrames(const std::string &path, const std::vector<Frame> &frames,
                     bool float32 = false, bool compress = true);
/// HDF5 [N, H, W] uint16 (or float32) at `dataset`, chunked one frame per chunk, gzip.
void writeHdf5Frames(const std::string &path, const std::vector<Frame> &frames,
                     const std::string &dataset = kDefaultHdf5Dataset, bool float32 = false);

} // namespace braggnac::core
