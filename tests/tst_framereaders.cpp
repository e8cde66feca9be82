// braggnac-test-libs: braggnac_io TIFF::TIFF HDF5::HDF5
// Frame readers and writers: GE raw, TIFF (written here with libtiff directly) and HDF5 (written
// here with the HDF5 C API), each checked pixel for pixel against known values; bad files must
// throw InputError naming the file (and dataset).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <hdf5.h>
#include <tiffio.h>
#include <unistd.h>

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include "core/common/error.h"
#include "core/io/frame.h"
#include "core/io/framesource.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {

constexpr int kGe = 2048;

/// Known GE pixel: covers both bytes of the uint16.
std::uint16_t gePixel(int frame, int r, int c)
{
    return std::uint16_t((r * 131u + c * 7u + frame * 40009u + (r ^ c)) & 0xffffu);
}

void writeRawGe(const std::string &path, int frames)
{
    std::ofstream os(path, std::ios::binary);
    std::vector<char> header(8192, 0);
    os.write(header.data(), 8192);
    std::vector<unsigned char> buf(std::size_t(kGe) * kGe * 2);
    for (int f = 0; f < frames; ++f) {
        for (int r = 0; r < kGe; ++r)
            for (int c = 0; c < kGe; ++c) {
                const std::uint16_t v = gePixel(f, r, c);
                const std::size_t i = (std::size_t(r) * kGe + c) * 2;
                buf[i] = (unsigned char)(v & 0xff); // little-endian, written byte by byte
                buf[i + 1] = (unsigned char)(v >> 8);
            }
        os.write(reinterpret_cast<const char *>(buf.data()), std::streamsize(buf.size()));
    }
}

std::vector<char> fileBytes(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

/// Sample value of the TIFF/HDF5 test pattern for a given type, as double (exact in range).
double patternValue(int page, int r, int c, int bits, bool isSigned, bool isFloat)
{
    const double base = double((r * 37 + c * 11 + page * 101) % 251);
    if (isFloat)
        return (base - 100.0) * 0.37 + page;
    if (isSigned)
        return base - 125.0 - (bits >= 16 ? 20000.0 * ((r + c) % 2) : 0.0) * (bits >= 32 ? 50000.0 : 1.0);
    if (bits == 8)
        return base;
    if (bits == 16)
        return base * 257.0; // up to 64507
    return base * 16000000.0; // up to 4.016e9, needs 32 bits
}

template <typename T>
void storeAs(unsigned char *dst, double v)
{
    const T t = T(v);
    std::memcpy(dst, &t, sizeof(T));
}

/// Stores v as the given TIFF sample type and returns what a correct reader yields (float(v)).
float storeSample(unsigned char *dst, double v, int bits, bool isSigned, bool isFloat)
{
    if (isFloat) {
        if (bits == 32) {
            storeAs<float>(dst, v);
            return float(v);
        }
        storeAs<double>(dst, v);
        return float(v);
    }
    switch (bits) {
    case 8: isSigned ? storeAs<std::int8_t>(dst, v) : storeAs<std::uint8_t>(dst, v); break;
    case 16: isSigned ? storeAs<std::int16_t>(dst, v) : storeAs<std::uint16_t>(dst, v); break;
    default: isSigned ? storeAs<std::int32_t>(dst, v) : storeAs<std::uint32_t>(dst, v); break;
    }
    return float(v);
}

struct TiffSpec {
    int bits = 16;
    bool isSigned = false;
    bool isFloat = false;
    int compression = COMPRESSION_NONE;
    bool tiled = false;
    int pages = 1;
    int rows = 37, cols = 53;
};

/// Writes a TIFF with libtiff; returns the expected frames.
std::vector<Frame> writeTestTiff(const std::string &path, const TiffSpec &s)
{
    std::vector<Frame> expected;
    TIFF *tif = TIFFOpen(path.c_str(), "w");
    if (!tif)
        return expected;
    const int bps = s.bits / 8;
    for (int p = 0; p < s.pages; ++p) {
        Frame f(s.rows, s.cols);
        std::vector<unsigned char> img(std::size_t(s.rows) * s.cols * bps);
        for (int r = 0; r < s.rows; ++r)
            for (int c = 0; c < s.cols; ++c) {
                double v = patternValue(p, r, c, s.bits, s.isSigned, s.isFloat);
                if (s.isFloat && r == 1 && c == 2)
                    v = std::numeric_limits<double>::quiet_NaN();
                if (s.isFloat && r == 2 && c == 1)
                    v = -std::numeric_limits<double>::infinity();
                f.at(r, c) = storeSample(img.data() + (std::size_t(r) * s.cols + c) * bps, v,
                                         s.bits, s.isSigned, s.isFloat);
            }
        expected.push_back(f);
        TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, std::uint32_t(s.cols));
        TIFFSetField(tif, TIFFTAG_IMAGELENGTH, std::uint32_t(s.rows));
        TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, std::uint16_t(s.bits));
        TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT,
                     s.isFloat ? SAMPLEFORMAT_IEEEFP : s.isSigned ? SAMPLEFORMAT_INT : SAMPLEFORMAT_UINT);
        TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, std::uint16_t(1));
        TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
        TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(tif, TIFFTAG_COMPRESSION, s.compression);
        if (s.pages > 1)
            TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
        if (s.tiled) {
            const std::uint32_t tw = 16, th = 16;
            TIFFSetField(tif, TIFFTAG_TILEWIDTH, tw);
            TIFFSetField(tif, TIFFTAG_TILELENGTH, th);
            std::vector<unsigned char> tile(std::size_t(tw) * th * bps, 0);
            for (std::uint32_t y = 0; y < std::uint32_t(s.rows); y += th)
                for (std::uint32_t x = 0; x < std::uint32_t(s.cols); x += tw) {
                    std::fill(tile.begin(), tile.end(), 0);
                    for (std::uint32_t r = 0; r < th && y + r < std::uint32_t(s.rows); ++r)
                        for (std::uint32_t c = 0; c < tw && x + c < std::uint32_t(s.cols); ++c)
                            std::memcpy(&tile[(r * tw + c) * bps],
                                        &img[((y + r) * std::size_t(s.cols) + x + c) * bps], bps);
                    TIFFWriteTile(tif, tile.data(), x, y, 0, 0);
                }
        } else {
            const std::uint32_t rps = 5; // several strips, the last one partial
            TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rps);
            for (std::uint32_t y = 0, strip = 0; y < std::uint32_t(s.rows); y += rps, ++strip) {
                const std::uint32_t n = std::min<std::uint32_t>(rps, std::uint32_t(s.rows) - y);
                TIFFWriteEncodedStrip(tif, strip, &img[std::size_t(y) * s.cols * bps],
                                      tmsize_t(n) * s.cols * bps);
            }
        }
        TIFFWriteDirectory(tif);
    }
    TIFFClose(tif);
    return expected;
}

/// Bit-exact frame comparison (NaN equals NaN).
bool sameFrame(const Frame &a, const Frame &b, QString *why)
{
    if (a.rows != b.rows || a.cols != b.cols) {
        *why = QStringLiteral("shape %1x%2 vs %3x%4").arg(a.rows).arg(a.cols).arg(b.rows).arg(b.cols);
        return false;
    }
    for (int r = 0; r < a.rows; ++r)
        for (int c = 0; c < a.cols; ++c) {
            const float x = a.at(r, c), y = b.at(r, c);
            if (std::memcmp(&x, &y, sizeof x) != 0 && !(std::isnan(x) && std::isnan(y))) {
                *why = QStringLiteral("pixel (%1,%2): %3 vs %4").arg(r).arg(c).arg(double(x)).arg(double(y));
                return false;
            }
        }
    return true;
}

#define COMPARE_FRAMES(a, b)                                                                   \
    do {                                                                                       \
        QString why_;                                                                          \
        if (!sameFrame((a), (b), &why_))                                                       \
            QFAIL(qPrintable(why_));                                                           \
    } while (false)

/// Runs fn with stderr redirected to a file; returns what was printed on stderr.
template <typename Fn>
std::string captureStderr(const std::string &file, Fn fn)
{
    std::fflush(stderr);
    const int saved = ::dup(2);
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 2);
    ::close(fd);
    try {
        fn();
    } catch (...) {
        std::fflush(stderr);
        ::dup2(saved, 2);
        ::close(saved);
        throw;
    }
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    const auto bytes = fileBytes(file);
    return std::string(bytes.begin(), bytes.end());
}

/// Writes a dataset with the HDF5 C API; values given as double, stored as `type`.
void writeH5(const std::string &file, const std::string &path, hid_t type,
             const std::vector<hsize_t> &dims, const std::vector<double> &values, bool append = false)
{
    hid_t f = append ? H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)
                     : H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
    hid_t ds = H5Dcreate2(f, path.c_str(), type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    H5Dclose(ds);
    H5Sclose(space);
    H5Pclose(lcpl);
    H5Fclose(f);
}

} // namespace

class TestFrameReaders : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    std::string m_ge;
    std::string file(const char *name) const { return m_dir.filePath(QString::fromUtf8(name)).toStdString(); }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_ge = file("two.ge2");
        writeRawGe(m_ge, 2);
    }

    // ---------------------------------------------------------------- GE
    void geKnownPixels()
    {
        auto src = openFrameSource(m_ge);
        QCOMPARE(src->format(), FrameFormat::GE);
        QCOMPARE(src->frameCount(), 2);
        QCOMPARE(src->rows(), 2048);
        QCOMPARE(src->cols(), 2048);
        QCOMPARE(src->pixelType(), PixelType::UInt16);
        for (int f = 0; f < 2; ++f) {
            const Frame fr = src->readFrame(f);
            QCOMPARE(fr.rows, 2048);
            int bad = 0;
            for (int r = 0; r < kGe; ++r)
                for (int c = 0; c < kGe; ++c)
                    bad += fr.at(r, c) != float(gePixel(f, r, c));
            QCOMPARE(bad, 0);
        }
        // A pixel with a high byte, spelled out: frame 1, row 2047, col 2047.
        QCOMPARE(src->readFrame(1).at(2047, 2047), float(gePixel(1, 2047, 2047)));
        QVERIFY(gePixel(1, 2047, 2047) > 255);
    }

    void geWriterIsBitExact()
    {
        auto src = openFrameSource(m_ge);
        std::vector<Frame> frames{src->readFrame(0), src->readFrame(1)};
        const std::string out = file("copy.ge3");
        writeGeFrames(out, frames);
        QVERIFY(fileBytes(out) == fileBytes(m_ge));
    }

    void geWriterRoundsAndClamps()
    {
        Frame f(kGe, kGe, 0.f);
        f.at(0, 0) = -5.f;
        f.at(0, 1) = 70000.f;
        f.at(0, 2) = 2.6f;
        f.at(0, 3) = std::nanf("");
        f.at(0, 4) = 65535.f;
        const std::string out = file("clamp.ge");
        writeGeFrames(out, {f});
        const Frame back = openFrameSource(out)->readFrame(0);
        QCOMPARE(back.at(0, 0), 0.f);
        QCOMPARE(back.at(0, 1), 65535.f);
        QCOMPARE(back.at(0, 2), 3.f);
        QCOMPARE(back.at(0, 3), 0.f);
        QCOMPARE(back.at(0, 4), 65535.f);
        // GE frames are 2048 x 2048 by definition.
        QVERIFY(inputErrorMessage([&] { writeGeFrames(file("small.ge"), {Frame(10, 10)}); }).contains("2048"));
        QVERIFY(!QFile::exists(QString::fromStdString(file("small.ge"))));
    }

    void geBadSize_data()
    {
        QTest::addColumn<qint64>("size");
        QTest::addColumn<QString>("mustMention");
        const qint64 frame = qint64(kGe) * kGe * 2;
        QTest::newRow("truncated") << 8192 + 2 * frame - 100 << QString::number(8192 + 2 * frame - 100);
        QTest::newRow("oversize") << 8192 + frame + 10 << QString::number(8192 + frame + 10);
        QTest::newRow("header only") << qint64(8192) << QStringLiteral("no whole frame");
        QTest::newRow("shorter than header") << qint64(100) << QStringLiteral("100 bytes");
        QTest::newRow("empty") << qint64(0) << QStringLiteral("0 bytes");
    }
    void geBadSize()
    {
        QFETCH(qint64, size);
        QFETCH(QString, mustMention);
        const std::string path = file("bad.ge2");
        QFile f(QString::fromStdString(path));
        QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
        QVERIFY(f.resize(size)); // sparse: cheap
        f.close();
        const QString msg = inputErrorMessage([&] { openFrameSource(path); });
        QVERIFY2(msg.contains(QStringLiteral("bad.ge2")), qPrintable(msg));
        QVERIFY2(msg.contains(mustMention), qPrintable(msg));
        QVERIFY2(!msg.contains(QStringLiteral("WRONG")) && msg != QStringLiteral("NO EXCEPTION"), qPrintable(msg));
    }

    void geFrameOutOfRange()
    {
        auto src = openFrameSource(m_ge);
        QVERIFY(inputErrorMessage([&] { src->readFrame(2); }).contains(QStringLiteral("two.ge2")));
        QVERIFY(inputErrorMessage([&] { src->readFrame(-1); }).contains(QStringLiteral("out of range")));
    }

    // ---------------------------------------------------------------- TIFF
    void tiffReader_data()
    {
        QTest::addColumn<int>("bits");
        QTest::addColumn<bool>("isSigned");
        QTest::addColumn<bool>("isFloat");
        QTest::addColumn<int>("compression");
        QTest::addColumn<bool>("tiled");
        QTest::addColumn<int>("pages");
        QTest::newRow("uint8 raw strips") << 8 << false << false << int(COMPRESSION_NONE) << false << 1;
        QTest::newRow("int8 deflate strips") << 8 << true << false << int(COMPRESSION_ADOBE_DEFLATE) << false << 1;
        QTest::newRow("uint16 lzw strips") << 16 << false << false << int(COMPRESSION_LZW) << false << 1;
        QTest::newRow("uint16 packbits tiles") << 16 << false << false << int(COMPRESSION_PACKBITS) << true << 1;
        QTest::newRow("int16 raw tiles") << 16 << true << false << int(COMPRESSION_NONE) << true << 1;
        QTest::newRow("uint32 deflate strips") << 32 << false << false << int(COMPRESSION_ADOBE_DEFLATE) << false << 1;
        QTest::newRow("int32 lzw tiles") << 32 << true << false << int(COMPRESSION_LZW) << true << 1;
        QTest::newRow("float32 deflate strips") << 32 << false << true << int(COMPRESSION_ADOBE_DEFLATE) << false << 1;
        QTest::newRow("float32 raw tiles") << 32 << false << true << int(COMPRESSION_NONE) << true << 1;
        QTest::newRow("float64 raw strips") << 64 << false << true << int(COMPRESSION_NONE) << false << 1;
        QTest::newRow("uint16 3 pages deflate") << 16 << false << false << int(COMPRESSION_ADOBE_DEFLATE) << false << 3;
        QTest::newRow("float32 2 pages lzw tiles") << 32 << false << true << int(COMPRESSION_LZW) << true << 2;
    }
    void tiffReader()
    {
        QFETCH(int, bits);
        QFETCH(bool, isSigned);
        QFETCH(bool, isFloat);
        QFETCH(int, compression);
        QFETCH(bool, tiled);
        QFETCH(int, pages);
        TiffSpec s;
        s.bits = bits;
        s.isSigned = isSigned;
        s.isFloat = isFloat;
        s.compression = compression;
        s.tiled = tiled;
        s.pages = pages;
        const std::string path = file("pattern.tif");
        const auto expected = writeTestTiff(path, s);
        QCOMPARE(int(expected.size()), pages);
        auto src = openFrameSource(path);
        QCOMPARE(src->format(), FrameFormat::TIFF);
        QCOMPARE(src->frameCount(), pages);
        QCOMPARE(src->rows(), s.rows);
        QCOMPARE(src->cols(), s.cols);
        const PixelType want = isFloat ? (bits == 64 ? PixelType::Float64 : PixelType::Float32)
            : bits == 8  ? (isSigned ? PixelType::Int8 : PixelType::UInt8)
            : bits == 16 ? (isSigned ? PixelType::Int16 : PixelType::UInt16)
                         : (isSigned ? PixelType::Int32 : PixelType::UInt32);
        QCOMPARE(src->pixelType(), want);
        // Read pages out of order: the reader must seek, not assume sequential access.
        for (int p = pages - 1; p >= 0; --p)
            COMPARE_FRAMES(src->readFrame(p), expected[std::size_t(p)]);
        if (isFloat) {
            QVERIFY(std::isnan(src->readFrame(0).at(1, 2)));
            QVERIFY(std::isinf(src->readFrame(0).at(2, 1)));
        }
        if (isSigned)
            QVERIFY(src->readFrame(0).at(0, 0) < 0.f);
        if (bits == 32 && !isSigned && !isFloat)
            QVERIFY(*std::max_element(expected[0].data.begin(), expected[0].data.end()) > 3.0e9f);
    }

    void tiffWriterRoundTrip_data()
    {
        QTest::addColumn<bool>("float32");
        QTest::addColumn<bool>("compress");
        QTest::addColumn<int>("pages");
        QTest::newRow("uint16 deflate 1 page") << false << true << 1;
        QTest::newRow("uint16 raw 3 pages") << false << false << 3;
        QTest::newRow("float32 deflate 2 pages") << true << true << 2;
        QTest::newRow("float32 raw 1 page") << true << false << 1;
    }
    void tiffWriterRoundTrip()
    {
        QFETCH(bool, float32);
        QFETCH(bool, compress);
        QFETCH(int, pages);
        std::vector<Frame> frames;
        for (int p = 0; p < pages; ++p) {
            Frame f(300, 41); // several strips of the writer's size
            for (int r = 0; r < f.rows; ++r)
                for (int c = 0; c < f.cols; ++c)
                    f.at(r, c) = float((r * 41 + c + p * 7) % 1000) + (float32 ? 0.25f : 0.f);
            frames.push_back(f);
        }
        frames[0].at(0, 0) = float32 ? std::nanf("") : -3.f;
        frames[0].at(0, 1) = 70000.5f;
        frames[0].at(0, 2) = 12.5f;
        const std::string path = file(float32 ? "w32.tif" : "w16.tiff");
        writeTiffFrames(path, frames, float32, compress);
        auto src = openFrameSource(path);
        QCOMPARE(src->frameCount(), pages);
        QCOMPARE(src->pixelType(), float32 ? PixelType::Float32 : PixelType::UInt16);
        std::vector<Frame> expected = frames;
        if (!float32) {
            expected[0].at(0, 0) = 0.f;      // clamped
            expected[0].at(0, 1) = 65535.f;  // clamped
            expected[0].at(0, 2) = 13.f;     // rounded (half away from zero)
        }
        for (int p = 0; p < pages; ++p)
            COMPARE_FRAMES(src->readFrame(p), expected[std::size_t(p)]);
        if (compress) {
            // Deflate must actually shrink this very regular image.
            QVERIFY(QFile(QString::fromStdString(path)).size()
                    < qint64(pages) * 300 * 41 * (float32 ? 4 : 2) / 2);
        }
    }

    void tiffBadFiles_data()
    {
        QTest::addColumn<QString>("name");
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("mustMention");
        QTest::newRow("random bytes") << "noise.tif" << "random" << "not a TIFF image";
        QTest::newRow("empty file") << "empty.tiff" << "empty" << "not a TIFF image";
        QTest::newRow("rgb image") << "rgb.tif" << "rgb" << "samples per pixel";
        QTest::newRow("pages differ in shape") << "mixed.tif" << "mixed" << "page 1";
    }
    void tiffBadFiles()
    {
        QFETCH(QString, name);
        QFETCH(QString, kind);
        QFETCH(QString, mustMention);
        const std::string path = file(name.toUtf8().constData());
        if (kind == QStringLiteral("random")) {
            std::ofstream os(path, std::ios::binary);
            std::uint32_t x = 12345;
            for (int i = 0; i < 4096; ++i) {
                x = x * 1664525u + 1013904223u;
                os.put(char(x >> 24));
            }
        } else if (kind == QStringLiteral("empty")) {
            std::ofstream os(path, std::ios::binary);
        } else if (kind == QStringLiteral("rgb")) {
            TIFF *tif = TIFFOpen(path.c_str(), "w");
            TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, 4u);
            TIFFSetField(tif, TIFFTAG_IMAGELENGTH, 4u);
            TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, std::uint16_t(8));
            TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, std::uint16_t(3));
            TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
            TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
            TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 4u);
            std::vector<unsigned char> px(48, 7);
            TIFFWriteEncodedStrip(tif, 0, px.data(), 48);
            TIFFWriteDirectory(tif);
            TIFFClose(tif);
        } else {
            TiffSpec a;
            a.pages = 1;
            writeTestTiff(path, a);
            // Append a page of another shape.
            TIFF *tif = TIFFOpen(path.c_str(), "a");
            TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, 8u);
            TIFFSetField(tif, TIFFTAG_IMAGELENGTH, 8u);
            TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, std::uint16_t(16));
            TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, std::uint16_t(1));
            TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
            TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 8u);
            std::vector<std::uint16_t> px(64, 1);
            TIFFWriteEncodedStrip(tif, 0, px.data(), 128);
            TIFFWriteDirectory(tif);
            TIFFClose(tif);
        }
        QString msg;
        // libtiff's complaints must end up in the exception, not on stderr.
        const std::string err = captureStderr(file("stderr.txt"), [&] {
            msg = inputErrorMessage([&] { openFrameSource(path)->readFrame(0); });
        });
        QVERIFY2(err.empty(), err.c_str());
        QVERIFY2(msg.contains(name), qPrintable(msg));
        QVERIFY2(msg.contains(mustMention), qPrintable(msg));
    }

    void unknownFormat()
    {
        const std::string path = file("mystery.bin");
        std::ofstream(path, std::ios::binary) << "definitely not an image";
        const QString msg = inputErrorMessage([&] { openFrameSource(path); });
        QVERIFY2(msg.contains(QStringLiteral("mystery.bin")) && msg.contains(QStringLiteral("unknown frame format")), qPrintable(msg));
        QVERIFY(inputErrorMessage([&] { openFrameSource(file("missing.h5")); }).contains(QStringLiteral("missing.h5")));
    }

    void contentSniffing()
    {
        // No telling extension: HDF5 and TIFF recognised by their signatures.
        const std::string h5 = file("frames_h5.dat");
        writeH5(h5, "/entry/data/data", H5T_STD_U16LE, {1, 2, 3}, {1, 2, 3, 4, 5, 6});
        auto a = openFrameSource(h5);
        QCOMPARE(a->format(), FrameFormat::HDF5);
        QCOMPARE(a->readFrame(0).at(1, 2), 6.f);
        const std::string tif = file("frames_tif.img");
        TiffSpec s;
        const auto expected = writeTestTiff(tif, s);
        auto b = openFrameSource(tif);
        QCOMPARE(b->format(), FrameFormat::TIFF);
        COMPARE_FRAMES(b->readFrame(0), expected[0]);
    }

    // ---------------------------------------------------------------- HDF5
    void hdf5Reader_data()
    {
        QTest::addColumn<QString>("dataset");   // where it is written
        QTest::addColumn<QString>("requested"); // what is asked for ("" = default)
        QTest::addColumn<QString>("type");
        QTest::addColumn<int>("frames");        // 0 = 2-D dataset
        QTest::newRow("uint8 2-D") << "/data" << "/data" << "uint8" << 0;
        QTest::newRow("uint16 3-D default path") << "/entry/data/data" << "" << "uint16" << 3;
        QTest::newRow("int32 3-D custom path") << "/a/b/c" << "a/b/c" << "int32" << 2;
        QTest::newRow("float32 3-D with NaN") << "/x" << "/x" << "float32" << 2;
        QTest::newRow("float64 2-D") << "/deep/path/frames" << "/deep/path/frames" << "float64" << 0;
    }
    void hdf5Reader()
    {
        QFETCH(QString, dataset);
        QFETCH(QString, requested);
        QFETCH(QString, type);
        QFETCH(int, frames);
        const int rows = 19, cols = 23, nf = std::max(frames, 1);
        hid_t h5type = type == QStringLiteral("uint8") ? H5T_STD_U8LE
            : type == QStringLiteral("uint16")          ? H5T_STD_U16BE // big-endian on disk
            : type == QStringLiteral("int32")           ? H5T_STD_I32LE
            : type == QStringLiteral("float32")         ? H5T_IEEE_F32LE
                                                        : H5T_IEEE_F64LE;
        const bool isFloat = type.startsWith(QStringLiteral("float"));
        const int bits = type == QStringLiteral("uint8") ? 8 : type == QStringLiteral("uint16") ? 16 : 32;
        std::vector<double> values;
        for (int f = 0; f < nf; ++f)
            for (int r = 0; r < rows; ++r)
                for (int c = 0; c < cols; ++c)
                    values.push_back(patternValue(f, r, c, bits, type == QStringLiteral("int32"), isFloat));
        if (type == QStringLiteral("float32"))
            values[std::size_t(rows * cols) + 5] = std::numeric_limits<double>::quiet_NaN(); // frame 1
        std::vector<hsize_t> dims = frames ? std::vector<hsize_t>{hsize_t(frames), hsize_t(rows), hsize_t(cols)}
                                           : std::vector<hsize_t>{hsize_t(rows), hsize_t(cols)};
        const std::string path = file("stack.h5");
        writeH5(path, dataset.toStdString(), h5type, dims, values);
        writeH5(path, "/other/thing", H5T_STD_U8LE, {4}, {1, 2, 3, 4}, true);

        auto src = openFrameSource(path, requested.toStdString());
        QCOMPARE(src->format(), FrameFormat::HDF5);
        QCOMPARE(QString::fromStdString(src->dataset()), dataset);
        QCOMPARE(src->frameCount(), nf);
        QCOMPARE(src->rows(), rows);
        QCOMPARE(src->cols(), cols);
        QCOMPARE(QString::fromLatin1(pixelTypeName(src->pixelType())), type);
        for (int f = nf - 1; f >= 0; --f) {
            const Frame fr = src->readFrame(f);
            for (int r = 0; r < rows; ++r)
                for (int c = 0; c < cols; ++c) {
                    const double v = values[std::size_t(f) * rows * cols + std::size_t(r) * cols + c];
                    const float want = type == QStringLiteral("float32") ? float(float(v)) : float(v);
                    const float got = fr.at(r, c);
                    if (std::isnan(want)) {
                        QVERIFY(std::isnan(got));
                        continue;
                    }
                    if (got != want)
                        QFAIL(qPrintable(QStringLiteral("frame %1 pixel (%2,%3): %4, expected %5")
                                             .arg(f).arg(r).arg(c).arg(double(got)).arg(double(want))));
                }
        }
        QVERIFY(inputErrorMessage([&] { src->readFrame(nf); }).contains(QStringLiteral("out of range")));
    }

    void hdf5BadFiles_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("requested");
        QTest::addColumn<QStringList>("mustMention");
        QTest::newRow("dataset missing") << "ok" << "/entry/data/nope"
                                         << QStringList{"/entry/data/nope", "/some/frames"};
        QTest::newRow("default dataset missing") << "ok" << ""
                                                 << QStringList{"/entry/data/data", "/some/frames"};
        QTest::newRow("1-D dataset") << "ok" << "/line" << QStringList{"/line", "1-D"};
        QTest::newRow("4-D dataset") << "ok" << "/hyper" << QStringList{"/hyper", "4-D"};
        QTest::newRow("string dataset") << "ok" << "/text" << QStringList{"/text", "string"};
        QTest::newRow("group, not dataset") << "ok" << "/some" << QStringList{"/some"};
        QTest::newRow("not HDF5") << "junk" << "" << QStringList{"not an HDF5 file"};
    }
    void hdf5BadFiles()
    {
        QFETCH(QString, kind);
        QFETCH(QString, requested);
        QFETCH(QStringList, mustMention);
        const std::string path = file("bad.h5");
        if (kind == QStringLiteral("junk")) {
            std::ofstream(path, std::ios::binary) << std::string(2000, 'x');
        } else {
            writeH5(path, "/some/frames", H5T_STD_U16LE, {2, 3, 3}, std::vector<double>(18, 1.0));
            writeH5(path, "/line", H5T_STD_U16LE, {5}, {1, 2, 3, 4, 5}, true);
            writeH5(path, "/hyper", H5T_IEEE_F32LE, {1, 2, 2, 2}, std::vector<double>(8, 0.5), true);
            hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, 4);
            hid_t sp = H5Screate_simple(2, std::vector<hsize_t>{2, 2}.data(), nullptr);
            hid_t d = H5Dcreate2(f, "/text", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            const char txt[16] = "abcdefghijklmno";
            H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, txt);
            H5Dclose(d);
            H5Sclose(sp);
            H5Tclose(t);
            H5Fclose(f);
        }
        QString msg;
        const std::string err = captureStderr(file("stderr.txt"), [&] {
            msg = inputErrorMessage([&] { openFrameSource(path, requested.toStdString()); });
        });
        QVERIFY2(err.empty(), err.c_str()); // HDF5's error stack printing is off
        QVERIFY2(msg.contains(QStringLiteral("bad.h5")), qPrintable(msg));
        for (const QString &m : mustMention)
            QVERIFY2(msg.contains(m), qPrintable(msg));
    }

    void hdf5WriterRoundTrip_data()
    {
        QTest::addColumn<bool>("float32");
        QTest::newRow("uint16") << false;
        QTest::newRow("float32") << true;
    }
    void hdf5WriterRoundTrip()
    {
        QFETCH(bool, float32);
        std::vector<Frame> frames;
        for (int p = 0; p < 3; ++p) {
            Frame f(31, 17);
            for (int r = 0; r < f.rows; ++r)
                for (int c = 0; c < f.cols; ++c)
                    f.at(r, c) = float(r * 17 + c + p * 1000) + (float32 ? 0.5f : 0.f);
            frames.push_back(f);
        }
        frames[1].at(3, 3) = float32 ? std::nanf("") : 1e6f;
        const std::string path = file("w.h5");
        writeHdf5Frames(path, frames, "/my/frames", float32);
        auto src = openFrameSource(path, "/my/frames");
        QCOMPARE(src->frameCount(), 3);
        QCOMPARE(src->pixelType(), float32 ? PixelType::Float32 : PixelType::UInt16);
        std::vector<Frame> expected = frames;
        if (!float32)
            expected[1].at(3, 3) = 65535.f;
        for (int p = 0; p < 3; ++p)
            COMPARE_FRAMES(src->readFrame(p), expected[std::size_t(p)]);
        // Chunk = one frame, gzip.
        hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t d = H5Dopen2(f, "/my/frames", H5P_DEFAULT);
        hid_t dcpl = H5Dget_create_plist(d);
        hsize_t chunk[3] = {0, 0, 0};
        QCOMPARE(H5Pget_chunk(dcpl, 3, chunk), 3);
        QCOMPARE(chunk[0], hsize_t(1));
        QCOMPARE(chunk[1], hsize_t(31));
        QCOMPARE(chunk[2], hsize_t(17));
        QCOMPARE(H5Pget_nfilters(dcpl), 1);
        unsigned flags = 0, cd[4];
        std::size_t ncd = 4;
        QCOMPARE(H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, 0, nullptr, nullptr), H5Z_FILTER_DEFLATE);
        H5Pclose(dcpl);
        H5Dclose(d);
        H5Fclose(f);
        // No temporary file left beside the output.
        QCOMPARE(QDir(m_dir.path()).entryList(QStringList{QStringLiteral(".w.h5*")}, QDir::Hidden | QDir::Files).size(), 0);
    }

    void listDatasets()
    {
        const std::string path = file("list.h5");
        writeH5(path, "/entry/data/data", H5T_STD_U16LE, {2, 4, 5}, std::vector<double>(40, 3.0));
        writeH5(path, "/entry/dark", H5T_IEEE_F32LE, {4, 5}, std::vector<double>(20, 1.0), true);
        writeH5(path, "/meta/omega", H5T_IEEE_F64LE, {2}, {1.0, 2.0}, true);
        const auto list = listHdf5Datasets(path);
        QCOMPARE(int(list.size()), 3);
        QCOMPARE(QString::fromStdString(list[0].path), QStringLiteral("/entry/dark"));
        QCOMPARE(QString::fromStdString(list[0].type), QStringLiteral("float32"));
        QVERIFY(list[0].usableAsFrames);
        QCOMPARE(QString::fromStdString(list[1].path), QStringLiteral("/entry/data/data"));
        QVERIFY((list[1].shape == std::vector<unsigned long long>{2, 4, 5}));
        QCOMPARE(QString::fromStdString(list[1].type), QStringLiteral("uint16"));
        QVERIFY(list[1].usableAsFrames);
        QCOMPARE(QString::fromStdString(list[2].path), QStringLiteral("/meta/omega"));
        QCOMPARE(QString::fromStdString(list[2].type), QStringLiteral("float64"));
        QVERIFY(!list[2].usableAsFrames);
        QVERIFY(inputErrorMessage([&] { listHdf5Datasets(file("two.ge2")); }).contains(QStringLiteral("not an HDF5 file")));
    }

    // ---------------------------------------------------------------- threads
    void concurrentReads()
    {
        // Several threads reading frames of GE, TIFF and HDF5 sources at once get the same pixels
        // as a sequential read.
        std::vector<Frame> frames;
        for (int p = 0; p < 4; ++p) {
            Frame f(64, 48);
            for (int r = 0; r < f.rows; ++r)
                for (int c = 0; c < f.cols; ++c)
                    f.at(r, c) = float((r * 48 + c) * (p + 1) % 60000);
            frames.push_back(f);
        }
        writeTiffFrames(file("mt.tif"), frames);
        writeHdf5Frames(file("mt.h5"), frames);
        std::vector<std::unique_ptr<FrameSource>> sources;
        sources.push_back(openFrameSource(file("mt.tif")));
        sources.push_back(openFrameSource(file("mt.h5")));
        sources.push_back(openFrameSource(m_ge));
        std::vector<std::vector<Frame>> sequential(sources.size());
        for (std::size_t s = 0; s < sources.size(); ++s)
            for (int i = 0; i < sources[s]->frameCount(); ++i)
                sequential[s].push_back(sources[s]->readFrame(i));
        std::atomic<int> mismatches{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&, t] {
                for (int k = 0; k < 12; ++k) {
                    const std::size_t s = std::size_t((t + k) % 3);
                    const int i = (t * 7 + k) % sources[s]->frameCount();
                    if (sources[s]->readFrame(i).data != sequential[s][std::size_t(i)].data)
                        ++mismatches;
                }
            });
        for (auto &th : threads)
            th.join();
        QCOMPARE(mismatches.load(), 0);
        for (int p = 0; p < 4; ++p)
            QVERIFY(sequential[0][std::size_t(p)].data == frames[std::size_t(p)].data);
    }

    // ---------------------------------------------------------------- dark, max
    void darkSubtraction()
    {
        Frame f(2, 3), d(2, 3);
        f.data = {10.f, 5.f, 0.f, std::nanf(""), 100.f, 7.5f};
        d.data = {3.f, 6.f, 1.f, 2.f, std::nanf(""), 7.5f};
        const Frame out = subtractDark(f, d);
        QCOMPARE(out.at(0, 0), 7.f);
        QCOMPARE(out.at(0, 1), 0.f); // clipped
        QCOMPARE(out.at(0, 2), 0.f); // clipped
        QVERIFY(std::isnan(out.at(1, 0)));
        QVERIFY(std::isnan(out.at(1, 1)));
        QCOMPARE(out.at(1, 2), 0.f);
        const QString msg = inputErrorMessage([&] { subtractDark(f, Frame(3, 2)); });
        QVERIFY2(msg.contains(QStringLiteral("3 x 2")) && msg.contains(QStringLiteral("2 x 3")), qPrintable(msg));
    }

    void maxAccumulation()
    {
        Frame acc;
        Frame a(1, 3), b(1, 3);
        a.data = {1.f, std::nanf(""), 5.f};
        b.data = {4.f, 2.f, std::nanf("")};
        accumulateMax(acc, a);
        QVERIFY(acc.data[0] == 1.f && std::isnan(acc.data[1]) && acc.data[2] == 5.f);
        accumulateMax(acc, b);
        QCOMPARE(acc.data[0], 4.f);
        QCOMPARE(acc.data[1], 2.f);
        QCOMPARE(acc.data[2], 5.f);
        QVERIFY(inputErrorMessage([&] { accumulateMax(acc, Frame(2, 2)); }).contains(QStringLiteral("same shape")));
    }
};

QTEST_GUILESS_MAIN(TestFrameReaders)
#include "tst_framereaders.moc"
