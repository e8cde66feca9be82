// TIFF frames through libtiff: single or multi-page, 8/16/32-bit (un)signed integers, 32/64-bit
// float, any compression libtiff decodes, strips or tiles. One frame per page.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <tiffio.h>

#include "core/common/atomicfile.h"
#include "core/common/error.h"
#include "core/io/framereaders.h"

namespace braggnac::core {

namespace {

std::mutex &tiffMutex()
{
    static std::mutex m;
    return m;
}

thread_local std::string t_tiffError;

void tiffErrorHandler(const char *module, const char *fmt, va_list ap)
{
    char buf[1024];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    if (!t_tiffError.empty())
        t_tiffError += "; ";
    if (module && *module)
        t_tiffError += std::string(module) + ": ";
    t_tiffError += buf;
}

void tiffWarningHandler(const char *, const char *, va_list) {}

/// Holds the TIFF mutex; (re)installs our handlers, since other code (OpenCV) may replace them.
class TiffLock {
public:
    TiffLock() : m_guard(tiffMutex())
    {
        TIFFSetErrorHandler(&tiffErrorHandler);
        TIFFSetWarningHandler(&tiffWarningHandler);
        t_tiffError.clear();
    }

private:
    std::lock_guard<std::mutex> m_guard;
};

std::string libtiffText()
{
    return t_tiffError.empty() ? std::string() : " (libtiff: " + t_tiffError + ")";
}

struct PageInfo {
    std::uint32_t width = 0, height = 0;
    std::uint16_t bits = 0, format = SAMPLEFORMAT_UINT, spp = 1;
};

PixelType pixelTypeOf(const PageInfo &p)
{
    if (p.format == SAMPLEFORMAT_IEEEFP)
        return p.bits == 64 ? PixelType::Float64 : PixelType::Float32;
    const bool s = p.format == SAMPLEFORMAT_INT;
    switch (p.bits) {
    case 8: return s ? PixelType::Int8 : PixelType::UInt8;
    case 16: return s ? PixelType::Int16 : PixelType::UInt16;
    case 32: return s ? PixelType::Int32 : PixelType::UInt32;
    default: return s ? PixelType::Int64 : PixelType::UInt64;
    }
}

template <typename T>
void convertRow(const unsigned char *src, float *dst, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, src + i * sizeof(T), sizeof(T));
        dst[i] = float(v);
    }
}

void convert(const PageInfo &p, const unsigned char *src, float *dst, std::size_t n)
{
    if (p.format == SAMPLEFORMAT_IEEEFP) {
        if (p.bits == 32)
            convertRow<float>(src, dst, n);
        else
            convertRow<double>(src, dst, n);
        return;
    }
    const bool s = p.format == SAMPLEFORMAT_INT;
    switch (p.bits) {
    case 8: s ? convertRow<std::int8_t>(src, dst, n) : convertRow<std::uint8_t>(src, dst, n); break;
    case 16: s ? convertRow<std::int16_t>(src, dst, n) : convertRow<std::uint16_t>(src, dst, n); break;
    case 32: s ? convertRow<std::int32_t>(src, dst, n) : convertRow<std::uint32_t>(src, dst, n); break;
    default: s ? convertRow<std::int64_t>(src, dst, n) : convertRow<std::uint64_t>(src, dst, n); break;
    }
}

class TiffSource final : public FrameSource {
public:
    explicit TiffSource(const std::string &path) : m_path(path)
    {
        {
            std::ifstream probe(path, std::ios::binary | std::ios::ate);
            if (!probe)
                throw InputError(fileMessage(path, "cannot open file (missing or unreadable)"));
            m_fileSize = std::uint64_t(std::max<std::streamoff>(std::streamoff(probe.tellg()), 0));
        }
        TiffLock lock;
        m_tif = TIFFOpen(path.c_str(), "r");
        if (!m_tif)
            throw InputError(fileMessage(path, "not a TIFF image" + libtiffText()));
        try {
            int page = 0;
            do {
                const PageInfo p = pageInfo(page);
                if (page == 0) {
                    m_first = p;
                } else if (p.width != m_first.width || p.height != m_first.height) {
                    throw InputError(fileMessage(
                        path, "page " + std::to_string(page) + " is " + std::to_string(p.height)
                                  + " x " + std::to_string(p.width) + " but page 0 is "
                                  + std::to_string(m_first.height) + " x "
                                  + std::to_string(m_first.width)
                                  + "; expected every page to have the same shape"));
                }
                ++page;
            } while (TIFFReadDirectory(m_tif));
            m_pages = page;
        } catch (...) {
            TIFFClose(m_tif);
            throw;
        }
    }
    ~TiffSource() override
    {
        TiffLock lock;
        TIFFClose(m_tif);
    }

    const std::string &path() const override { return m_path; }
    FrameFormat format() const override { return FrameFormat::TIFF; }
    int frameCount() const override { return m_pages; }
    int rows() const override { return int(m_first.height); }
    int cols() const override { return int(m_first.width); }
    PixelType pixelType() const override { return pixelTypeOf(m_first); }

    Frame readFrame(int index) const override
    {
        if (index < 0 || index >= m_pages)
            throw InputError(fileMessage(m_path, "page " + std::to_string(index)
                                                     + " out of range (file has "
                                                     + std::to_string(m_pages) + " pages)"));
        TiffLock lock;
        if (!TIFFSetDirectory(m_tif, tdir_t(index)))
            throw InputError(fileMessage(m_path, "cannot read page " + std::to_string(index)
                                                     + libtiffText()));
        const PageInfo p = pageInfo(index);
        Frame f(int(p.height), int(p.width));
        const std::size_t bytesPerSample = p.bits / 8;
        if (TIFFIsTiled(m_tif)) {
            std::uint32_t tw = 0, th = 0;
            TIFFGetField(m_tif, TIFFTAG_TILEWIDTH, &tw);
            TIFFGetField(m_tif, TIFFTAG_TILELENGTH, &th);
            const tmsize_t tileSize = TIFFTileSize(m_tif);
            if (tw == 0 || th == 0 || tileSize <= 0)
                throw InputError(fileMessage(m_path, "page " + std::to_string(index)
                                                         + " has invalid tiles" + libtiffText()));
            std::vector<unsigned char> buf(static_cast<std::size_t>(tileSize));
            for (std::uint32_t y = 0; y < p.height; y += th) {
                for (std::uint32_t x = 0; x < p.width; x += tw) {
                    if (TIFFReadTile(m_tif, buf.data(), x, y, 0, 0) < 0)
                        throw InputError(fileMessage(
                            m_path, "cannot decode tile at row " + std::to_string(y) + ", col "
                                        + std::to_string(x) + " of page " + std::to_string(index)
                                        + libtiffText()));
                    const std::uint32_t h = std::min(th, p.height - y);
                    const std::uint32_t w = std::min(tw, p.width - x);
                    for (std::uint32_t r = 0; r < h; ++r)
                        convert(p, buf.data() + std::size_t(r) * tw * bytesPerSample,
                                &f.at(int(y + r), int(x)), w);
                }
            }
        } else {
            std::uint32_t rps = p.height;
            TIFFGetFieldDefaulted(m_tif, TIFFTAG_ROWSPERSTRIP, &rps);
            if (rps == 0 || rps > p.height)
                rps = p.height;
            const tmsize_t stripSize = TIFFStripSize(m_tif);
            const std::size_t rowBytes = std::size_t(p.width) * bytesPerSample;
            std::vector<unsigned char> buf(std::max<std::size_t>(std::size_t(std::max<tmsize_t>(stripSize, 0)), rowBytes * rps));
            const tstrip_t strips = TIFFNumberOfStrips(m_tif);
            for (tstrip_t s = 0; s < strips; ++s) {
                const std::uint32_t y0 = s * rps;
                if (y0 >= p.height)
                    break;
                const std::uint32_t h = std::min(rps, p.height - y0);
                const tmsize_t got = TIFFReadEncodedStrip(m_tif, s, buf.data(), tmsize_t(h * rowBytes));
                if (got < tmsize_t(h * rowBytes))
                    throw InputError(fileMessage(
                        m_path, "cannot decode strip " + std::to_string(s) + " of page "
                                    + std::to_string(index) + libtiffText()));
                for (std::uint32_t r = 0; r < h; ++r)
                    convert(p, buf.data() + r * rowBytes, &f.at(int(y0 + r), 0), p.width);
            }
        }
        return f;
    }

private:
    PageInfo pageInfo(int page) const
    {
        PageInfo p;
        TIFFGetField(m_tif, TIFFTAG_IMAGEWIDTH, &p.width);
        TIFFGetField(m_tif, TIFFTAG_IMAGELENGTH, &p.height);
        TIFFGetFieldDefaulted(m_tif, TIFFTAG_BITSPERSAMPLE, &p.bits);
        TIFFGetFieldDefaulted(m_tif, TIFFTAG_SAMPLEFORMAT, &p.format);
        TIFFGetFieldDefaulted(m_tif, TIFFTAG_SAMPLESPERPIXEL, &p.spp);
        const std::string where = "page " + std::to_string(page);
        if (p.width == 0 || p.height == 0)
            throw InputError(fileMessage(m_path, where + " has no image data (width or height 0)"));
        // One frame is allocated whole: refuse headers whose size cannot be real (1 Gpixel).
        if (p.width > (1u << 20) || p.height > (1u << 20)
            || std::uint64_t(p.width) * p.height > (std::uint64_t(1) << 30))
            throw InputError(fileMessage(m_path, where + " is " + std::to_string(p.height) + " x "
                                                     + std::to_string(p.width)
                                                     + "; larger than supported"));
        if (p.spp != 1)
            throw InputError(fileMessage(m_path, where + " has " + std::to_string(p.spp)
                                                     + " samples per pixel; expected a greyscale "
                                                       "(1-sample) image"));
        if (p.format == SAMPLEFORMAT_IEEEFP) {
            if (p.bits != 32 && p.bits != 64)
                throw InputError(fileMessage(m_path, where + " has " + std::to_string(p.bits)
                                                         + "-bit floats; expected 32 or 64"));
        } else if (p.format == SAMPLEFORMAT_UINT || p.format == SAMPLEFORMAT_INT) {
            if (p.bits != 8 && p.bits != 16 && p.bits != 32 && p.bits != 64)
                throw InputError(fileMessage(m_path, where + " has " + std::to_string(p.bits)
                                                         + "-bit samples; expected 8, 16, 32 or 64"));
        } else {
            throw InputError(fileMessage(m_path, where + " has sample format "
                                                     + std::to_string(p.format)
                                                     + "; expected integer or float"));
        }
        checkStoredBytes(p, where);
        return p;
    }

    // The bytes a page claims (width x height x sample size) against the bytes its strips or
    // tiles store, before the frame is allocated: uncompressed data must all be there, and no
    // codec libtiff reads expands data by more than about 2,730:1 (LZW; deflate at most
    // 1,032:1), so a page claiming more than 4,096 x its stored bytes (+ 1 MiB) is corrupt.
    // Stored bytes beyond the end of the file mean a truncated file.
    void checkStoredBytes(const PageInfo &p, const std::string &where) const
    {
        const bool tiled = TIFFIsTiled(m_tif) != 0;
        const std::uint64_t pieces = tiled ? std::uint64_t(TIFFNumberOfTiles(m_tif))
                                           : std::uint64_t(TIFFNumberOfStrips(m_tif));
        std::uint64_t *counts = nullptr;
        if (!TIFFGetField(m_tif, tiled ? TIFFTAG_TILEBYTECOUNTS : TIFFTAG_STRIPBYTECOUNTS, &counts)
            || !counts || pieces == 0)
            throw InputError(fileMessage(m_path, where + " has no " + (tiled ? "tile" : "strip")
                                                     + " byte counts" + libtiffText()));
        std::uint64_t stored = 0;
        for (std::uint64_t i = 0; i < pieces; ++i)
            stored = counts[i] > m_fileSize ? m_fileSize + 1 : std::min(stored + counts[i], m_fileSize + 1);
        const std::uint64_t need = std::uint64_t(p.width) * p.height * (p.bits / 8);
        std::uint16_t compression = COMPRESSION_NONE;
        TIFFGetFieldDefaulted(m_tif, TIFFTAG_COMPRESSION, &compression);
        std::string what;
        if (stored > m_fileSize)
            what = "stores more bytes than the file holds (" + std::to_string(m_fileSize) + ")";
        else if (compression == COMPRESSION_NONE && stored < need)
            what = "stores " + std::to_string(stored) + " bytes, uncompressed";
        else if (need > 4096 * stored + (std::uint64_t(1) << 20))
            what = "stores " + std::to_string(stored) + " compressed bytes, more than 4096:1 below that";
        if (!what.empty())
            throw InputError(fileMessage(m_path, where + " claims " + std::to_string(p.height) + " x "
                                                     + std::to_string(p.width) + " pixels of "
                                                     + std::to_string(p.bits) + " bits ("
                                                     + std::to_string(need) + " bytes) but " + what
                                                     + "; the file is truncated or corrupt"));
    }

    std::string m_path;
    TIFF *m_tif = nullptr;
    std::uint64_t m_fileSize = 0;
    PageInfo m_first;
    int m_pages = 0;
};

} // namespace

std::unique_ptr<FrameSource> openTiffSource(const std::string &path)
{
    return std::make_unique<TiffSource>(path);
}

bool hasTiffMagic(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    unsigned char b[4] = {0, 0, 0, 0};
    if (!in.read(reinterpret_cast<char *>(b), 4))
        return false;
    const bool ii = b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && b[3] == 0;
    const bool mm = b[0] == 'M' && b[1] == 'M' && b[2] == 0 && (b[3] == 42 || b[3] == 43);
    return ii || mm;
}

void writeTiffFrames(const std::string &path, const std::vector<Frame> &frames, bool float32,
                     bool compress)
{
    if (frames.empty())
        throw InputError(fileMessage(path, "no frames to write"));
    for (std::size_t i = 0; i < frames.size(); ++i)
        if (frames[i].rows != frames[0].rows || frames[i].cols != frames[0].cols
            || frames[i].empty())
            throw InputError(fileMessage(path, "frame " + std::to_string(i)
                                                   + " differs in shape from frame 0 (or is empty)"));
    AtomicOutput out(path);
    const std::uint32_t w = std::uint32_t(frames[0].cols), h = std::uint32_t(frames[0].rows);
    const std::size_t bps = float32 ? 4 : 2;
    const double totalBytes = double(w) * h * bps * double(frames.size());
    {
        TiffLock lock;
        TIFF *tif = TIFFOpen(out.tempPath().c_str(), totalBytes > 3.5e9 ? "w8" : "w");
        if (!tif)
            throw Error(fileMessage(out.tempPath(), "cannot create TIFF file" + libtiffText()));
        const std::size_t rowBytes = std::size_t(w) * bps;
        const std::uint32_t rps = std::max<std::uint32_t>(1, std::min<std::uint32_t>(h, std::uint32_t((256 * 1024) / rowBytes)));
        std::vector<unsigned char> strip(rowBytes * rps);
        bool ok = true;
        for (std::size_t page = 0; page < frames.size() && ok; ++page) {
            const Frame &f = frames[page];
            TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, w);
            TIFFSetField(tif, TIFFTAG_IMAGELENGTH, h);
            TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, std::uint16_t(bps * 8));
            TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, float32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT);
            TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, std::uint16_t(1));
            TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
            TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
            TIFFSetField(tif, TIFFTAG_COMPRESSION, compress ? COMPRESSION_ADOBE_DEFLATE : COMPRESSION_NONE);
            if (compress)
                TIFFSetField(tif, TIFFTAG_PREDICTOR, float32 ? PREDICTOR_FLOATINGPOINT : PREDICTOR_HORIZONTAL);
            TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rps);
            if (frames.size() > 1) {
                TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
                TIFFSetField(tif, TIFFTAG_PAGENUMBER, std::uint16_t(page), std::uint16_t(frames.size()));
            }
            for (std::uint32_t y0 = 0, s = 0; y0 < h && ok; y0 += rps, ++s) {
                const std::uint32_t rows = std::min(rps, h - y0);
                const float *src = f.row(int(y0));
                const std::size_t n = std::size_t(rows) * w;
                if (float32) {
                    std::memcpy(strip.data(), src, n * 4);
                } else {
                    for (std::size_t i = 0; i < n; ++i) {
                        const std::uint16_t u = toUInt16Pixel(src[i]);
                        std::memcpy(strip.data() + 2 * i, &u, 2);
                    }
                }
                ok = TIFFWriteEncodedStrip(tif, s, strip.data(), tmsize_t(n * bps)) >= 0;
            }
            ok = ok && TIFFWriteDirectory(tif);
        }
        TIFFClose(tif);
        if (!ok)
            throw Error(fileMessage(path, "cannot write TIFF" + libtiffText()));
    }
    out.commit();
}

} // namespace braggnac::core
