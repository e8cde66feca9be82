// braggnac-test-libs: braggnac_io HDF5::HDF5
// Direct chunk reads of HDF5 frames (core/io/chunkdecode.h, hdf5reader.cpp): files written here
// with the HDF5 C API (deflate 1/6/9, shuffle+deflate, chunks of one frame or part of one with
// partial edge chunks, uint8/uint16/int16/int32/uint32/float32, unallocated chunks with a fill
// value, fletcher32 and scale-offset for the fallback) must read bit for bit as H5Dread gives
// them and as the values written, and take the path expected (counted frames).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <hdf5.h>

#include <QTemporaryDir>
#include <QTest>

#include "core/common/error.h"
#include "core/io/chunkdecode.h"
#include "core/io/frame.h"
#include "core/io/framesource.h"

using namespace braggnac::core;

namespace {

enum Filters { Deflate1, Deflate6, Deflate9, ShuffleDeflate, Fletcher32Deflate, ScaleOffset, None };

struct Spec {
    hid_t fileType;          // H5T_STD_U16LE, ...
    int frames, rows, cols;  // dataset [frames, rows, cols] (frames 0: a 2-D dataset)
    int chunkRows, chunkCols;
    Filters filters;
    bool holes;              // frame 1 never written; frame 2 only its first chunk
    double fill;             // fill value (holes)
};

/// The value written at (frame, y, x): spans the type's range, negatives for signed types, values
/// above 2^24 for 32-bit integers (float rounding), NaN/inf/-0/denormals for float32.
double valueAt(hid_t type, int f, int y, int x)
{
    const std::uint64_t h = (std::uint64_t(f) * 1000003u + std::uint64_t(y) * 7919u + std::uint64_t(x) * 104729u) * 2654435761u;
    const std::uint64_t v = (h >> 7) ^ (h >> 29);
    if (H5Tequal(type, H5T_IEEE_F32LE) > 0) {
        switch (v % 16) {
        case 0: return std::numeric_limits<float>::quiet_NaN();
        case 1: return std::numeric_limits<float>::infinity();
        case 2: return -0.0;
        case 3: return double(std::numeric_limits<float>::denorm_min()) * double(v % 100);
        default: return double(float(double(v % 2000001) / 7.0 - 100000.0));
        }
    }
    const std::size_t size = H5Tget_size(type);
    const bool s = H5Tget_sign(type) == H5T_SGN_2;
    // Mostly small (compressible, like detector counts), some across the whole range.
    const std::uint64_t small = size == 1 ? 200 : 600;
    const std::uint64_t range = (v % 8 == 0) ? (std::uint64_t(1) << (8 * size)) : small;
    const double u = double(v % range);
    return s ? u - (v % 8 == 0 ? double(std::uint64_t(1) << (8 * size - 1)) : double(small / 2)) : u;
}

/// The float H5Dread gives for a written value of `type` (written from double, stored exactly).
float asFloat(hid_t type, double v)
{
    if (H5Tequal(type, H5T_IEEE_F32LE) > 0)
        return float(v);
    const bool s = H5Tget_sign(type) == H5T_SGN_2;
    return s ? float(std::int64_t(v)) : float(std::uint64_t(v));
}

void writeFile(const std::string &path, const Spec &sp)
{
    hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    QVERIFY(file >= 0);
    const bool three = sp.frames > 0;
    const int rank = three ? 3 : 2;
    const hsize_t dims3[3] = {hsize_t(sp.frames), hsize_t(sp.rows), hsize_t(sp.cols)};
    const hsize_t dims2[2] = {hsize_t(sp.rows), hsize_t(sp.cols)};
    const hsize_t chunk3[3] = {1, hsize_t(sp.chunkRows), hsize_t(sp.chunkCols)};
    const hsize_t chunk2[2] = {hsize_t(sp.chunkRows), hsize_t(sp.chunkCols)};
    hid_t space = H5Screate_simple(rank, three ? dims3 : dims2, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, three ? chunk3 : chunk2);
    H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &sp.fill);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_INCR);
    switch (sp.filters) {
    case Deflate1: H5Pset_deflate(dcpl, 1); break;
    case Deflate6: H5Pset_deflate(dcpl, 6); break;
    case Deflate9: H5Pset_deflate(dcpl, 9); break;
    case ShuffleDeflate: H5Pset_shuffle(dcpl); H5Pset_deflate(dcpl, 4); break;
    case Fletcher32Deflate: H5Pset_deflate(dcpl, 4); H5Pset_fletcher32(dcpl); break;
    case ScaleOffset: H5Pset_scaleoffset(dcpl, H5Z_SO_INT, H5Z_SO_INT_MINBITS_DEFAULT); break;
    case None: break;
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(file, "/entry/data/data", sp.fileType, space, lcpl, dcpl, H5P_DEFAULT);
    QVERIFY(ds >= 0);
    const int n = three ? sp.frames : 1;
    for (int f = 0; f < n; ++f) {
        if (sp.holes && f == 1)
            continue;
        const int h = (sp.holes && f == 2) ? std::min(sp.rows, sp.chunkRows) : sp.rows;
        const int w = (sp.holes && f == 2) ? std::min(sp.cols, sp.chunkCols) : sp.cols;
        std::vector<double> buf(std::size_t(h) * std::size_t(w));
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x)
                buf[std::size_t(y) * std::size_t(w) + std::size_t(x)] = valueAt(sp.fileType, f, y, x);
        const hsize_t start3[3] = {hsize_t(f), 0, 0}, count3[3] = {1, hsize_t(h), hsize_t(w)};
        const hsize_t start2[2] = {0, 0}, count2[2] = {hsize_t(h), hsize_t(w)};
        hid_t fspace = H5Dget_space(ds);
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, three ? start3 : start2, nullptr,
                            three ? count3 : count2, nullptr);
        hid_t mspace = H5Screate_simple(rank, three ? count3 : count2, nullptr);
        QVERIFY(H5Dwrite(ds, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, buf.data()) >= 0);
        H5Sclose(mspace);
        H5Sclose(fspace);
    }
    H5Dclose(ds);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);
}

/// What frame f must read as: the written values, the fill value where nothing was written.
std::vector<float> expectedFrame(const Spec &sp, int f)
{
    std::vector<float> e(std::size_t(sp.rows) * std::size_t(sp.cols), asFloat(sp.fileType, sp.fill));
    if (sp.holes && f == 1)
        return e;
    const int h = (sp.holes && f == 2) ? std::min(sp.rows, sp.chunkRows) : sp.rows;
    const int w = (sp.holes && f == 2) ? std::min(sp.cols, sp.chunkCols) : sp.cols;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            e[std::size_t(y) * std::size_t(sp.cols) + std::size_t(x)] = asFloat(sp.fileType, valueAt(sp.fileType, f, y, x));
    return e;
}

bool sameBits(const std::vector<float> &a, const std::vector<float> &b)
{
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// Index of the first differing pixel (for failure messages), -1 when identical.
long firstDiff(const std::vector<float> &a, const std::vector<float> &b)
{
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
        if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0)
            return long(i);
    return a.size() == b.size() ? -1 : long(std::min(a.size(), b.size()));
}

} // namespace

class TestHdf5Chunks : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { QVERIFY(m_dir.isValid()); }
    void cleanup()
    {
        chunkdecode::setDirectChunkReads(true);
        chunkdecode::setZlibOnly(false);
    }
    // libdeflate0 is installed (scripts/setup-debian.sh): the fast decoder is the one tested first.
    void libdeflateFound() { QVERIFY(chunkdecode::usingLibdeflate()); }

    void identicalToH5Dread_data()
    {
        QTest::addColumn<int>("type");      // index into types()
        QTest::addColumn<int>("frames");
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        QTest::addColumn<int>("chunkRows");
        QTest::addColumn<int>("chunkCols");
        QTest::addColumn<int>("filters");
        QTest::addColumn<bool>("holes");
        QTest::addColumn<int>("directFrames"); // frames expected to take the raw-chunk path
        // type: 0 u16, 1 i32, 2 f32, 3 u8, 4 i16, 5 u32
        QTest::newRow("u16 deflate1 whole") << 0 << 3 << 64 << 80 << 64 << 80 << int(Deflate1) << false << 3;
        QTest::newRow("u16 deflate6 whole") << 0 << 3 << 64 << 80 << 64 << 80 << int(Deflate6) << false << 3;
        QTest::newRow("u16 deflate9 whole") << 0 << 3 << 64 << 80 << 64 << 80 << int(Deflate9) << false << 3;
        QTest::newRow("u16 shuffle+deflate whole") << 0 << 3 << 64 << 80 << 64 << 80 << int(ShuffleDeflate) << false << 3;
        QTest::newRow("u16 deflate6 partial edges") << 0 << 3 << 37 << 53 << 16 << 20 << int(Deflate6) << false << 3;
        QTest::newRow("u16 shuffle+deflate partial edges") << 0 << 3 << 37 << 53 << 16 << 20 << int(ShuffleDeflate) << false << 3;
        QTest::newRow("i32 deflate6 whole") << 1 << 3 << 40 << 48 << 40 << 48 << int(Deflate6) << false << 3;
        QTest::newRow("i32 shuffle+deflate partial") << 1 << 3 << 37 << 53 << 10 << 53 << int(ShuffleDeflate) << false << 3;
        QTest::newRow("f32 deflate9 whole") << 2 << 3 << 40 << 48 << 40 << 48 << int(Deflate9) << false << 3;
        QTest::newRow("f32 shuffle+deflate partial") << 2 << 3 << 37 << 53 << 16 << 16 << int(ShuffleDeflate) << false << 3;
        QTest::newRow("u8 shuffle+deflate whole") << 3 << 3 << 40 << 48 << 40 << 48 << int(ShuffleDeflate) << false << 3;
        QTest::newRow("i16 deflate1 partial") << 4 << 3 << 37 << 53 << 20 << 30 << int(Deflate1) << false << 3;
        QTest::newRow("u32 shuffle+deflate whole") << 5 << 3 << 40 << 48 << 40 << 48 << int(ShuffleDeflate) << false << 3;
        QTest::newRow("2-D u16 shuffle+deflate partial") << 0 << 0 << 37 << 53 << 16 << 20 << int(ShuffleDeflate) << false << 1;
        // Unallocated chunks read as the fill value: frame 1 (nothing written) falls back; frame 2
        // (one chunk's block written) falls back when its other chunks are unallocated, and is
        // read directly when its one chunk is the whole frame (HDF5 stored the fill in it).
        QTest::newRow("u16 holes whole") << 0 << 4 << 40 << 48 << 40 << 48 << int(Deflate6) << true << 3;
        QTest::newRow("f32 holes partial") << 2 << 4 << 37 << 53 << 16 << 20 << int(ShuffleDeflate) << true << 2;
        // Filters not decoded here: every frame through H5Dread.
        QTest::newRow("u16 fletcher32 fallback") << 0 << 3 << 40 << 48 << 40 << 48 << int(Fletcher32Deflate) << false << 0;
        QTest::newRow("i32 scaleoffset fallback") << 1 << 3 << 37 << 53 << 16 << 20 << int(ScaleOffset) << false << 0;
        QTest::newRow("u16 unfiltered chunks") << 0 << 3 << 40 << 48 << 16 << 20 << int(None) << false << 0;
    }
    void identicalToH5Dread()
    {
        QFETCH(int, type);
        QFETCH(int, frames);
        QFETCH(int, rows);
        QFETCH(int, cols);
        QFETCH(int, chunkRows);
        QFETCH(int, chunkCols);
        QFETCH(int, filters);
        QFETCH(bool, holes);
        QFETCH(int, directFrames);
        const hid_t types[] = {H5T_STD_U16LE, H5T_STD_I32LE, H5T_IEEE_F32LE, H5T_STD_U8LE, H5T_STD_I16LE, H5T_STD_U32LE};
        const Spec sp{types[type], frames, rows, cols, chunkRows, chunkCols, Filters(filters), holes, 7.0};
        const std::string path = m_dir.filePath(QString("f%1.h5").arg(m_count++)).toStdString();
        writeFile(path, sp);
        const auto src = openFrameSource(path);
        const int n = src->frameCount();
        QCOMPARE(n, frames > 0 ? frames : 1);
        std::vector<std::vector<float>> direct, plain;
        const std::uint64_t before = chunkdecode::directFrameCount();
        for (int i = 0; i < n; ++i)
            direct.push_back(src->readFrame(i).data);
        QCOMPARE(int(chunkdecode::directFrameCount() - before), directFrames);
        // zlib instead of libdeflate: the same frames.
        chunkdecode::setZlibOnly(true);
        QVERIFY(!chunkdecode::usingLibdeflate());
        for (int i = 0; i < n; ++i)
            QVERIFY2(sameBits(src->readFrame(i).data, direct[std::size_t(i)]), qPrintable(QString("zlib frame %1").arg(i)));
        chunkdecode::setZlibOnly(false);
        QCOMPARE(int(chunkdecode::directFrameCount() - before), 2 * directFrames);
        // readFrameInto reusing one buffer (first of another size, then holding another frame,
        // poisoned with NaN between reads), in reverse order: every pixel is written.
        auto reusedReads = [&](const char *what) {
            Frame reused(3, 5, 1.f);
            for (int i = n - 1; i >= 0; --i) {
                src->readFrameInto(i, reused);
                QCOMPARE(reused.rows, src->rows());
                QCOMPARE(reused.cols, src->cols());
                QVERIFY2(sameBits(reused.data, direct[std::size_t(i)]),
                         qPrintable(QString("%1 readFrameInto frame %2, pixel %3").arg(what).arg(i)
                                        .arg(firstDiff(reused.data, direct[std::size_t(i)]))));
                std::fill(reused.data.begin(), reused.data.end(), std::numeric_limits<float>::quiet_NaN());
            }
        };
        reusedReads("direct");
        QCOMPARE(int(chunkdecode::directFrameCount() - before), 3 * directFrames);
        chunkdecode::setDirectChunkReads(false);
        for (int i = 0; i < n; ++i)
            plain.push_back(src->readFrame(i).data);
        QCOMPARE(int(chunkdecode::directFrameCount() - before), 3 * directFrames);
        reusedReads("H5Dread");
        chunkdecode::setDirectChunkReads(true);
        for (int i = 0; i < n; ++i) {
            const std::vector<float> e = expectedFrame(sp, i);
            QVERIFY2(sameBits(plain[std::size_t(i)], e),
                     qPrintable(QString("H5Dread frame %1 differs from the values written at pixel %2")
                                    .arg(i).arg(firstDiff(plain[std::size_t(i)], e))));
            QVERIFY2(sameBits(direct[std::size_t(i)], plain[std::size_t(i)]),
                     qPrintable(QString("direct frame %1 differs from H5Dread at pixel %2")
                                    .arg(i).arg(firstDiff(direct[std::size_t(i)], plain[std::size_t(i)]))));
        }
    }

    // Two threads reading interleaved frames of one source get what one thread gets.
    void parallelReadsIdentical()
    {
        const Spec sp{H5T_STD_U16LE, 16, 96, 96, 96, 96, ShuffleDeflate, false, 0.0};
        const std::string path = m_dir.filePath("par.h5").toStdString();
        writeFile(path, sp);
        const auto src = openFrameSource(path);
        std::vector<std::vector<float>> got(16);
        const std::uint64_t before = chunkdecode::directFrameCount();
        auto worker = [&](int first) {
            for (int i = first; i < 16; i += 2)
                got[std::size_t(i)] = src->readFrame(i).data;
        };
        std::thread a(worker, 0), b(worker, 1);
        a.join();
        b.join();
        QCOMPARE(int(chunkdecode::directFrameCount() - before), 16);
        for (int i = 0; i < 16; ++i)
            QVERIFY2(sameBits(got[std::size_t(i)], expectedFrame(sp, i)), qPrintable(QString::number(i)));
    }

    // A chunk whose compressed bytes were damaged does not decode: the reader falls back to
    // H5Dread, which reports the file and frame as it always did; the other frames still read.
    void corruptChunkFallsBackToTheError_data()
    {
        QTest::addColumn<bool>("zlib");
        QTest::newRow("libdeflate") << false;
        QTest::newRow("zlib") << true;
    }
    void corruptChunkFallsBackToTheError()
    {
        QFETCH(bool, zlib);
        chunkdecode::setZlibOnly(zlib);
        const Spec sp{H5T_STD_U16LE, 3, 64, 64, 64, 64, Deflate6, false, 0.0};
        const std::string path = m_dir.filePath(QString("bad%1.h5").arg(m_count++)).toStdString();
        writeFile(path, sp);
        haddr_t addr = HADDR_UNDEF;
        hsize_t size = 0;
        {
            hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
            hid_t d = H5Dopen2(f, "/entry/data/data", H5P_DEFAULT);
            const hsize_t off[3] = {1, 0, 0};
            unsigned mask = 0;
            QVERIFY(H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size) >= 0);
            H5Dclose(d);
            H5Fclose(f);
        }
        QVERIFY(addr != HADDR_UNDEF && size > 16);
        {
            std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
            io.seekp(std::streamoff(addr + size / 2));
            const char junk[8] = {'\x55', '\x7f', '\x01', '\xee', '\x10', '\x00', '\xff', '\x42'};
            io.write(junk, sizeof junk);
        }
        const auto src = openFrameSource(path);
        QVERIFY(sameBits(src->readFrame(0).data, expectedFrame(sp, 0)));
        QVERIFY(sameBits(src->readFrame(2).data, expectedFrame(sp, 2)));
        bool threw = false;
        try {
            src->readFrame(1);
        } catch (const InputError &e) {
            threw = true;
            const std::string m = e.what();
            QVERIFY2(m.find(path) != std::string::npos && m.find("frame 1") != std::string::npos, e.what());
        }
        QVERIFY(threw);
    }

    // The real Zr frames (tests/data/hexrd-zr: a beamline's gzip HDF5, one chunk per frame): all
    // 20 frames take the raw-chunk path and read exactly as H5Dread reads them.
    void realZrFramesIdentical()
    {
        const auto src = openFrameSource(BRAGGNAC_TEST_DATA "/hexrd-zr/real_zr_20frames.h5");
        QCOMPARE(src->frameCount(), 20);
        const std::uint64_t before = chunkdecode::directFrameCount();
        std::vector<std::vector<float>> direct;
        for (int i = 0; i < 20; ++i)
            direct.push_back(src->readFrame(i).data);
        QCOMPARE(int(chunkdecode::directFrameCount() - before), 20);
        chunkdecode::setDirectChunkReads(false);
        for (int i = 0; i < 20; ++i) {
            const std::vector<float> plain = src->readFrame(i).data;
            QVERIFY2(sameBits(direct[std::size_t(i)], plain),
                     qPrintable(QString("frame %1 pixel %2").arg(i).arg(firstDiff(direct[std::size_t(i)], plain))));
        }
        QCOMPARE(int(chunkdecode::directFrameCount() - before), 20);
        // The brightest pixel the reader tests know (tst_realframes).
        QCOMPARE(direct[0][std::size_t(719) * 2048 + 1507], 14552.f);
    }

    // The decoder alone: shuffle's trailing bytes (chunk bytes not a multiple of the element
    // size never happen in HDF5, but an element size of 1 and a skipped filter do).
    void decodeChunkMaskAndSizes()
    {
        std::vector<std::uint8_t> data(24);
        for (std::size_t i = 0; i < data.size(); ++i)
            data[i] = std::uint8_t(i * 37 + 1);
        // Shuffled by hand for element size 4: byte j of element i at j * 6 + i.
        std::vector<std::uint8_t> shuffled(24);
        for (std::size_t i = 0; i < 6; ++i)
            for (std::size_t j = 0; j < 4; ++j)
                shuffled[j * 6 + i] = data[i * 4 + j];
        std::vector<std::uint8_t> out, scratch;
        const std::vector<chunkdecode::Filter> pipe = {{chunkdecode::Filter::Shuffle, 4}, {chunkdecode::Filter::Deflate, 1}};
        // Deflate skipped for this chunk (bit 1), shuffle applied.
        QVERIFY(chunkdecode::decodeChunk(shuffled.data(), shuffled.size(), 2u, pipe, 24, out, scratch));
        QVERIFY(out == data);
        // Both skipped: the raw bytes are the data.
        QVERIFY(chunkdecode::decodeChunk(data.data(), data.size(), 3u, pipe, 24, out, scratch));
        QVERIFY(out == data);
        // Wrong size: refused.
        QVERIFY(!chunkdecode::decodeChunk(data.data(), data.size(), 3u, pipe, 20, out, scratch));
        // Deflate applied to garbage: refused.
        QVERIFY(!chunkdecode::decodeChunk(data.data(), data.size(), 2u | 0u, {{chunkdecode::Filter::Deflate, 1}}, 24, out, scratch));
    }

private:
    QTemporaryDir m_dir;
    int m_count = 0;
};

QTEST_GUILESS_MAIN(TestHdf5Chunks)
#include "tst_hdf5chunks.moc"
