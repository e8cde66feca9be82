// braggnac-test-libs: braggnac_io HDF5::HDF5
// Patch datasets (spec/formats.md): round trip of every field and extension, files written the
// way h5py writes them, length checks, the effective split, the BraggNN importer and its CLI verb.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <hdf5.h>

#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>

#include "core/common/error.h"
#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {

/// A dataset with every field set to known, row-dependent values.
PatchDataset makeFull(std::size_t n, int s)
{
    PatchDataset d;
    d.patchSize = s;
    d.labelSource = "pseudo-voigt";
    for (std::size_t i = 0; i < n; ++i) {
        for (int k = 0; k < s * s; ++k)
            d.patches.push_back(float(i * 1000 + std::size_t(k)) + 0.25f);
        d.centers.push_back(float(s / 2) + 0.125f * float(i));
        d.centers.push_back(float(s / 2) - 0.0625f * float(i));
        d.split.push_back(std::uint8_t(i % 3));
        d.frameIndex.push_back(std::int32_t(i / 2));
        d.origin.push_back(std::int32_t(10 * i));
        d.origin.push_back(std::int32_t(-3 + int(i)));
    }
    PatchDataset::FloatArray params;
    params.shape = {n, 10};
    for (std::size_t i = 0; i < n * 10; ++i)
        params.data.push_back(float(i) * 0.5f - 7.f);
    d.extraFloat["/fit/params"] = params;
    PatchDataset::FloatArray residual;
    residual.shape = {n};
    for (std::size_t i = 0; i < n; ++i)
        residual.data.push_back(i == 1 ? std::nanf("") : float(i) * 1e-3f);
    d.extraFloat["/fit/residual"] = residual;
    PatchDataset::FloatArray truth;
    truth.shape = {n, 2};
    for (std::size_t i = 0; i < 2 * n; ++i)
        truth.data.push_back(float(i) + 0.75f);
    d.extraFloat["/truth/center"] = truth;
    PatchDataset::FloatArray peaks;
    peaks.shape = {n};
    for (std::size_t i = 0; i < n; ++i)
        peaks.data.push_back(float(100 + i));
    d.extraFloat["/peaks/intensity"] = peaks;
    std::vector<std::uint8_t> conv, border;
    for (std::size_t i = 0; i < n; ++i) {
        conv.push_back(std::uint8_t(i % 2));
        border.push_back(std::uint8_t(i == 0));
    }
    d.extraFlags["/fit/converged"] = conv;
    d.extraFlags["/flags/border"] = border;
    return d;
}

bool bitEqual(const std::vector<float> &a, const std::vector<float> &b)
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i] != b[i] && !(std::isnan(a[i]) && std::isnan(b[i])))
            return false;
    return true;
}

void compareDatasets(const PatchDataset &a, const PatchDataset &b)
{
    QCOMPARE(a.patchSize, b.patchSize);
    QCOMPARE(QString::fromStdString(a.labelSource), QString::fromStdString(b.labelSource));
    QVERIFY(bitEqual(a.patches, b.patches));
    QVERIFY(bitEqual(a.centers, b.centers));
    QVERIFY(a.split == b.split);
    QVERIFY(a.frameIndex == b.frameIndex);
    QVERIFY(a.origin == b.origin);
    QCOMPARE(a.extraFloat.size(), b.extraFloat.size());
    for (const auto &[name, arr] : a.extraFloat) {
        QVERIFY2(b.extraFloat.count(name), name.c_str());
        QVERIFY2(arr.shape == b.extraFloat.at(name).shape, name.c_str());
        QVERIFY2(bitEqual(arr.data, b.extraFloat.at(name).data), name.c_str());
    }
    QVERIFY(a.extraFlags == b.extraFlags);
}

// ---- tiny HDF5 C-API writer for "foreign" files
struct H5File {
    hid_t id;
    explicit H5File(const std::string &path, bool create = true)
        : id(create ? H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)
                    : H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT))
    {
    }
    ~H5File() { H5Fclose(id); }

    void dataset(const std::string &path, hid_t fileType, hid_t memType,
                 const std::vector<hsize_t> &dims, const void *data) const
    {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
        hid_t ds = H5Dcreate2(id, path.c_str(), fileType, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(ds, memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
        H5Dclose(ds);
        H5Sclose(space);
        H5Pclose(lcpl);
    }
    void doubles(const std::string &path, hid_t fileType, const std::vector<hsize_t> &dims,
                 const std::vector<double> &v) const
    {
        dataset(path, fileType, H5T_NATIVE_DOUBLE, dims, v.data());
    }
    void remove(const std::string &path) const { H5Ldelete(id, path.c_str(), H5P_DEFAULT); }
};

// ---- BraggNN fixture: frames [3, 40, 50], pixel = f*10000 + r*100 + c (exact in float32)
constexpr int kF = 3, kH = 40, kW = 50;
float framePixel(int f, int r, int c) { return float(f * 10000 + r * 100 + c); }

struct Label {
    std::uint32_t fidx;
    float row, col;
    std::uint16_t npeaks;
    float deviation;
};

void writeBraggNN(const std::string &framesPath, const std::string &labelsPath,
                  const std::vector<Label> &labels, bool withDeviations = true)
{
    {
        std::vector<float> frames;
        for (int f = 0; f < kF; ++f)
            for (int r = 0; r < kH; ++r)
                for (int c = 0; c < kW; ++c)
                    frames.push_back(framePixel(f, r, c));
        H5File file(framesPath);
        file.dataset("/frames", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {kF, kH, kW}, frames.data());
    }
    std::vector<std::uint32_t> fidx;
    std::vector<float> row, col, dev;
    std::vector<std::uint16_t> np;
    for (const Label &l : labels) {
        fidx.push_back(l.fidx);
        row.push_back(l.row);
        col.push_back(l.col);
        np.push_back(l.npeaks);
        dev.push_back(l.deviation);
    }
    const hsize_t m = labels.size();
    H5File file(labelsPath);
    file.dataset("/peak_fidx", H5T_STD_U32LE, H5T_NATIVE_UINT32, {m}, fidx.data());
    file.dataset("/peak_row", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {m}, row.data());
    file.dataset("/peak_col", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {m}, col.data());
    file.dataset("/npeaks", H5T_STD_U16LE, H5T_NATIVE_UINT16, {m}, np.data());
    if (withDeviations)
        file.dataset("/deviations", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {m}, dev.data());
}

const std::vector<Label> &fixtureLabels()
{
    static const std::vector<Label> labels = {
        {0, 20.3f, 25.7f, 1, 0.1f},  // kept: centre (20,26), origin (15,21)
        {1, 10.5f, 10.5f, 1, 0.0f},  // kept: 10.5 rounds half to even -> (10,10), origin (5,5)
        {2, 30.2f, 40.4f, 2, 0.2f},  // filtered: two peaks
        {0, 15.0f, 15.0f, 1, 1.0f},  // filtered: deviation not < 1
        {1, 15.0f, 15.0f, 1, -0.5f}, // filtered: negative deviation
        {2, 3.0f, 20.0f, 1, 0.3f},   // border: rows -2..8
        {0, 20.0f, 45.6f, 1, 0.3f},  // border: cols 41..51 > 49
        {2, 34.49f, 44.5f, 1, 0.9f}, // kept: centre (34,44), origin (29,39), last row 39 = H-1
        {0, 5.0f, 5.0f, 1, 0.5f},    // kept: origin (0,0), touching the corner
        {1, 11.5f, 12.5f, 1, 0.25f}, // kept: 11.5 -> 12 and 12.5 -> 12 (half to even)
    };
    return labels;
}

} // namespace

class TestPatchDataset : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    std::string file(const QString &name) const { return m_dir.filePath(name).toStdString(); }
    QStringList dirEntries() const
    {
        return QDir(m_dir.path()).entryList(QDir::Files | QDir::Hidden | QDir::NoDotAndDotDot);
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        writeBraggNN(file(QStringLiteral("bn_frames.h5")), file(QStringLiteral("bn_labels.h5")),
                     fixtureLabels());
        writeBraggNN(file(QStringLiteral("frames_nodev.h5")), file(QStringLiteral("labels_nodev.h5")),
                     fixtureLabels(), false);
    }

    void roundTrip_data()
    {
        QTest::addColumn<bool>("compress");
        QTest::addColumn<int>("n");
        QTest::newRow("gzip") << true << 7;
        QTest::newRow("plain") << false << 7;
        QTest::newRow("empty") << true << 0;
    }
    void roundTrip()
    {
        QFETCH(bool, compress);
        QFETCH(int, n);
        const PatchDataset d = makeFull(std::size_t(n), 5);
        const std::string path = file(QStringLiteral("rt.h5"));
        writePatchDataset(path, d, compress);
        const PatchDataset back = readPatchDataset(path);
        QCOMPARE(back.size(), std::size_t(n));
        compareDatasets(d, back);

        // The file itself follows the schema: types, shapes, attributes, compression.
        hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
        const std::map<std::string, std::pair<hid_t, std::vector<hsize_t>>> want = {
            {"/patches", {H5T_IEEE_F32LE, {hsize_t(n), 5, 5}}},
            {"/centers", {H5T_IEEE_F32LE, {hsize_t(n), 2}}},
            {"/split", {H5T_STD_U8LE, {hsize_t(n)}}},
            {"/frame_index", {H5T_STD_I32LE, {hsize_t(n)}}},
            {"/origin", {H5T_STD_I32LE, {hsize_t(n), 2}}},
            {"/fit/params", {H5T_IEEE_F32LE, {hsize_t(n), 10}}},
            {"/fit/converged", {H5T_STD_U8LE, {hsize_t(n)}}},
        };
        for (const auto &[name, spec] : want) {
            if (n == 0 && name != "/patches")
                continue; // an empty dataset holds only /patches [0, S, S]
            hid_t ds = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
            QVERIFY2(ds >= 0, name.c_str());
            hid_t t = H5Dget_type(ds);
            QVERIFY2(H5Tequal(t, spec.first) > 0, name.c_str());
            hid_t sp = H5Dget_space(ds);
            std::vector<hsize_t> dims(std::size_t(H5Sget_simple_extent_ndims(sp)));
            H5Sget_simple_extent_dims(sp, dims.data(), nullptr);
            QVERIFY2(dims == spec.second, name.c_str());
            if (name == "/patches") {
                hid_t dcpl = H5Dget_create_plist(ds);
                bool deflate = false;
                for (int k = 0; k < H5Pget_nfilters(dcpl); ++k) {
                    unsigned flags = 0;
                    std::size_t ncd = 0;
                    deflate |= H5Pget_filter2(dcpl, unsigned(k), &flags, &ncd, nullptr, 0, nullptr, nullptr) == H5Z_FILTER_DEFLATE;
                }
                QCOMPARE(deflate, compress && n > 0);
                H5Pclose(dcpl);
            }
            H5Sclose(sp);
            H5Tclose(t);
            H5Dclose(ds);
        }
        hid_t a = H5Aopen(f, "patch_size", H5P_DEFAULT);
        long long ps = 0;
        H5Aread(a, H5T_NATIVE_LLONG, &ps);
        H5Aclose(a);
        QCOMPARE(ps, 5LL);
        hid_t ls = H5Aopen(f, "label_source", H5P_DEFAULT);
        hid_t lt = H5Aget_type(ls);
        QCOMPARE(H5Tget_class(lt), H5T_STRING);
        H5Tclose(lt);
        H5Aclose(ls);
        H5Fclose(f);
        QCOMPARE(dirEntries().filter(QStringLiteral(".rt.h5")).size(), 0); // no temp left
    }

    void unlabelledRoundTrip()
    {
        // Finder output: no /centers, no label_source.
        PatchDataset d;
        d.patchSize = 3;
        d.patches.assign(2 * 9, 1.5f);
        d.frameIndex = {4, 9};
        d.origin = {1, 2, 3, 4};
        const std::string path = file(QStringLiteral("unlabelled.h5"));
        writePatchDataset(path, d);
        const PatchDataset back = readPatchDataset(path);
        QVERIFY(!back.labelled());
        QVERIFY(back.labelSource.empty());
        QCOMPARE(back.size(), std::size_t(2));
        compareDatasets(d, back);
    }

    void readsH5pyStyleFile()
    {
        // What a Python script with h5py would write: float64 patches (numpy's default), int64
        // patch_size, a variable-length str label_source, a bool flag (HDF5 enum), and datasets we
        // do not know, which must be ignored.
        const std::string path = file(QStringLiteral("h5py.h5"));
        const std::size_t n = 4;
        const int s = 3;
        std::vector<double> patches, centers;
        for (std::size_t i = 0; i < n * s * s; ++i)
            patches.push_back(double(i) * 0.5);
        for (std::size_t i = 0; i < n; ++i) {
            centers.push_back(1.0 + 0.1 * double(i));
            centers.push_back(0.9 - 0.05 * double(i));
        }
        {
            H5File f(path);
            f.doubles("/patches", H5T_IEEE_F64LE, {n, s, s}, patches);
            f.doubles("/centers", H5T_IEEE_F32LE, {n, 2}, centers);
            f.doubles("/something_else", H5T_IEEE_F64LE, {3}, {1, 2, 3});
            f.doubles("/foreign/group/data", H5T_STD_I16LE, {7, 7}, std::vector<double>(49, 2.0));
            f.doubles("/truth/per_frame_count", H5T_STD_I32LE, {2}, {5, 6}); // not per-patch
            f.doubles("/peaks/snr", H5T_IEEE_F64LE, {n}, {1.5, 2.5, 3.5, 4.5});
            // h5py bool: enum {FALSE=0, TRUE=1} over int8
            hid_t b = H5Tenum_create(H5T_NATIVE_INT8);
            std::int8_t v0 = 0, v1 = 1;
            H5Tenum_insert(b, "FALSE", &v0);
            H5Tenum_insert(b, "TRUE", &v1);
            const std::int8_t flags[4] = {1, 0, 0, 1};
            f.dataset("/flags/merged", b, b, {n}, flags);
            H5Tclose(b);
            // A string dataset in one of our groups: not numeric, ignored.
            hid_t st = H5Tcopy(H5T_C_S1);
            H5Tset_size(st, 4);
            const char txt[4 * 4] = {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p'};
            f.dataset("/fit/notes", st, st, {n}, txt);
            H5Tclose(st);
            // Attributes: int64 patch_size, variable-length UTF-8 label_source.
            hid_t scalar = H5Screate(H5S_SCALAR);
            hid_t a = H5Acreate2(f.id, "patch_size", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
            const long long ps = s;
            H5Awrite(a, H5T_NATIVE_LLONG, &ps);
            H5Aclose(a);
            hid_t vs = H5Tcopy(H5T_C_S1);
            H5Tset_size(vs, H5T_VARIABLE);
            H5Tset_cset(vs, H5T_CSET_UTF8);
            a = H5Acreate2(f.id, "label_source", vs, scalar, H5P_DEFAULT, H5P_DEFAULT);
            const char *src = "simulation";
            H5Awrite(a, vs, &src);
            H5Aclose(a);
            H5Tclose(vs);
            hid_t other = H5Acreate2(f.id, "creator", H5T_STD_I32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
            const int one = 1;
            H5Awrite(other, H5T_NATIVE_INT, &one);
            H5Aclose(other);
            H5Sclose(scalar);
        }
        const PatchDataset d = readPatchDataset(path);
        QCOMPARE(d.size(), n);
        QCOMPARE(d.patchSize, s);
        QCOMPARE(QString::fromStdString(d.labelSource), QStringLiteral("simulation"));
        for (std::size_t i = 0; i < patches.size(); ++i)
            QCOMPARE(d.patches[i], float(patches[i]));
        for (std::size_t i = 0; i < centers.size(); ++i)
            QCOMPARE(d.centers[i], float(centers[i]));
        QVERIFY(d.split.empty());
        QVERIFY(d.frameIndex.empty());
        QVERIFY(d.origin.empty());
        QCOMPARE(int(d.extraFloat.size()), 1);
        QVERIFY((d.extraFloat.at("/peaks/snr").data == std::vector<float>{1.5f, 2.5f, 3.5f, 4.5f}));
        QCOMPARE(int(d.extraFlags.size()), 1);
        QVERIFY((d.extraFlags.at("/flags/merged") == std::vector<std::uint8_t>{1, 0, 0, 1}));
    }

    void lengthsDisagree_data()
    {
        QTest::addColumn<QString>("dataset");
        QTest::addColumn<int>("rows");
        QTest::newRow("centers short") << "/centers" << 5;
        QTest::newRow("split long") << "/split" << 7;
        QTest::newRow("frame_index short") << "/frame_index" << 2;
        QTest::newRow("origin long") << "/origin" << 9;
    }
    void lengthsDisagree()
    {
        QFETCH(QString, dataset);
        QFETCH(int, rows);
        const std::string path = file(QStringLiteral("bad_%1.h5").arg(dataset.mid(1)));
        writePatchDataset(path, makeFull(6, 3));
        {
            H5File f(path, false);
            const std::string name = dataset.toStdString();
            f.remove(name);
            const bool two = dataset == QStringLiteral("/centers") || dataset == QStringLiteral("/origin");
            std::vector<hsize_t> dims{hsize_t(rows)};
            if (two)
                dims.push_back(2);
            const hid_t type = dataset == QStringLiteral("/split") ? H5T_STD_U8LE
                : dataset == QStringLiteral("/centers")             ? H5T_IEEE_F32LE
                                                                    : H5T_STD_I32LE;
            f.doubles(name, type, dims, std::vector<double>(std::size_t(rows) * (two ? 2 : 1), 1.0));
        }
        const QString msg = inputErrorMessage([&] { readPatchDataset(path); });
        QVERIFY2(msg.contains(QString::fromStdString(path)), qPrintable(msg));
        QVERIFY2(msg.contains(dataset + QStringLiteral(" has %1 rows").arg(rows)), qPrintable(msg));
        QVERIFY2(msg.contains(QStringLiteral("/patches has 6 rows")), qPrintable(msg));
    }

    void badFiles_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("mustMention");
        QTest::newRow("no /patches") << "nopatches" << "'/patches'";
        QTest::newRow("2-D /patches") << "flat" << "expected 3-D [N, S, S]";
        QTest::newRow("non-square patches") << "rect" << "expected 3-D [N, S, S]";
        QTest::newRow("patch_size disagrees") << "attr" << "patch_size is 7";
        QTest::newRow("centers [N,3]") << "centers3" << "/centers";
        QTest::newRow("split value 5") << "split5" << "/split[1] is 5";
        QTest::newRow("split value -1 (int8)") << "splitneg" << "/split[1] is -1; expected 0 (train)";
        QTest::newRow("nan label") << "nanlabel" << "/centers[1] is (nan, 1); expected a finite";
        QTest::newRow("not HDF5") << "junk" << "not an HDF5 file";
    }
    void badFiles()
    {
        QFETCH(QString, kind);
        QFETCH(QString, mustMention);
        const std::string path = file(QStringLiteral("bad_%1.h5").arg(kind));
        if (kind == QStringLiteral("junk")) {
            QFile q(QString::fromStdString(path));
            QVERIFY(q.open(QIODevice::WriteOnly));
            q.write(QByteArray(1000, 'z'));
        } else {
            H5File f(path);
            if (kind == QStringLiteral("nopatches"))
                f.doubles("/centers", H5T_IEEE_F32LE, {2, 2}, {1, 1, 1, 1});
            else if (kind == QStringLiteral("flat"))
                f.doubles("/patches", H5T_IEEE_F32LE, {2, 9}, std::vector<double>(18, 1.0));
            else if (kind == QStringLiteral("rect"))
                f.doubles("/patches", H5T_IEEE_F32LE, {2, 3, 4}, std::vector<double>(24, 1.0));
            else
                f.doubles("/patches", H5T_IEEE_F32LE, {2, 3, 3}, std::vector<double>(18, 1.0));
            if (kind == QStringLiteral("attr")) {
                hid_t sp = H5Screate(H5S_SCALAR);
                hid_t a = H5Acreate2(f.id, "patch_size", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
                const int seven = 7;
                H5Awrite(a, H5T_NATIVE_INT, &seven);
                H5Aclose(a);
                H5Sclose(sp);
            }
            if (kind == QStringLiteral("centers3"))
                f.doubles("/centers", H5T_IEEE_F32LE, {2, 3}, std::vector<double>(6, 1.0));
            if (kind == QStringLiteral("split5"))
                f.doubles("/split", H5T_STD_U8LE, {2}, {0, 5});
            if (kind == QStringLiteral("splitneg"))
                f.doubles("/split", H5T_STD_I8LE, {2}, {0, -1});
            if (kind == QStringLiteral("nanlabel"))
                f.doubles("/centers", H5T_IEEE_F32LE, {2, 2}, {1, 1, std::nan(""), 1});
        }
        const QString msg = inputErrorMessage([&] { readPatchDataset(path); });
        QVERIFY2(msg.contains(QStringLiteral("bad_%1.h5").arg(kind)), qPrintable(msg));
        QVERIFY2(msg.contains(mustMention), qPrintable(msg));
    }

    void validateAndWriteRejectInconsistent()
    {
        PatchDataset d = makeFull(4, 3);
        d.extraFloat["/fit/params"].shape = {3, 10};
        d.extraFloat["/fit/params"].data.resize(30);
        const std::string path = file(QStringLiteral("never.h5"));
        const QString msg = inputErrorMessage([&] { writePatchDataset(path, d); });
        QVERIFY2(msg.contains(QStringLiteral("/fit/params has 3 rows")) && msg.contains(QStringLiteral("/patches has 4 rows")), qPrintable(msg));
        QVERIFY(!QFile::exists(QString::fromStdString(path)));
        d = makeFull(4, 3);
        d.extraFlags["/flags/neighbour"] = {1, 0};
        QVERIFY(inputErrorMessage([&] { d.validate("ctx"); }).contains(QStringLiteral("ctx: /flags/neighbour has 2 rows")));
        d = makeFull(4, 3);
        d.patches.pop_back();
        QVERIFY(inputErrorMessage([&] { d.validate("ctx"); }).contains(QStringLiteral("not a whole number")));
    }

    void subsetPicksRows()
    {
        const PatchDataset d = makeFull(6, 3);
        const PatchDataset s = d.subset({4, 1, 4});
        QCOMPARE(s.size(), std::size_t(3));
        s.validate("subset");
        QCOMPARE(s.patch(0)[0], d.patch(4)[0]);
        QCOMPARE(s.patch(1)[8], d.patch(1)[8]);
        QCOMPARE(s.centers[2], d.centers[2]);
        QCOMPARE(s.frameIndex[0], d.frameIndex[4]);
        QCOMPARE(s.origin[3], d.origin[3]);
        QCOMPARE(s.split[1], d.split[1]);
        QVERIFY((s.extraFloat.at("/fit/params").shape == std::vector<unsigned long long>{3, 10}));
        QCOMPARE(s.extraFloat.at("/fit/params").data[10], d.extraFloat.at("/fit/params").data[10]);
        QCOMPARE(s.extraFloat.at("/fit/params").data[0], d.extraFloat.at("/fit/params").data[40]);
        QCOMPARE(s.extraFlags.at("/fit/converged")[1], d.extraFlags.at("/fit/converged")[1]);
        QCOMPARE(QString::fromStdString(s.labelSource), QStringLiteral("pseudo-voigt"));
    }

    // ---------------------------------------------------------------- splits
    void splitByFrame_data()
    {
        QTest::addColumn<unsigned>("seed");
        QTest::newRow("seed 0") << 0u;
        QTest::newRow("seed 1") << 1u;
        QTest::newRow("seed 12345") << 12345u;
    }
    void splitByFrame()
    {
        QFETCH(unsigned, seed);
        // 60 frames with 5..24 patches each, in frame order (as the finder writes them).
        PatchDataset d;
        d.patchSize = 1;
        for (int f = 0; f < 60; ++f)
            for (int k = 0; k < 5 + (f * 7) % 20; ++k) {
                d.patches.push_back(float(f));
                d.frameIndex.push_back(100 + f);
            }
        const std::size_t n = d.size();
        const auto split = effectiveSplit(d, 0.8, 0.1, seed);
        QCOMPARE(split.size(), n);
        std::map<std::int32_t, std::set<std::uint8_t>> perFrame;
        std::size_t count[3] = {0, 0, 0};
        for (std::size_t i = 0; i < n; ++i) {
            QVERIFY(split[i] <= 2);
            perFrame[d.frameIndex[i]].insert(split[i]);
            ++count[split[i]];
        }
        for (const auto &[frame, splits] : perFrame)
            QVERIFY2(splits.size() == 1, qPrintable(QStringLiteral("frame %1 in two splits").arg(frame)));
        QVERIFY2(std::abs(double(count[0]) / n - 0.8) < 0.06, qPrintable(QString::number(double(count[0]) / n)));
        QVERIFY2(std::abs(double(count[1]) / n - 0.1) < 0.05, qPrintable(QString::number(double(count[1]) / n)));
        QVERIFY2(std::abs(double(count[2]) / n - 0.1) < 0.05, qPrintable(QString::number(double(count[2]) / n)));
        QVERIFY(effectiveSplit(d, 0.8, 0.1, seed) == split); // deterministic
        QVERIFY(effectiveSplit(d, 0.8, 0.1, seed + 1) != split); // and seed-dependent
        // Frames are shuffled: the test frames are not simply the last ones.
        std::int32_t maxTrain = -1, minTest = 1 << 30;
        for (std::size_t i = 0; i < n; ++i) {
            if (split[i] == 0)
                maxTrain = std::max(maxTrain, d.frameIndex[i]);
            if (split[i] == 2)
                minTest = std::min(minTest, d.frameIndex[i]);
        }
        QVERIFY(maxTrain > minTest);
    }

    void splitFewFramesStillHasValidation()
    {
        // 3 frames of very different size: each split still gets a frame.
        PatchDataset d;
        d.patchSize = 1;
        const int counts[3] = {50, 3, 4};
        for (int f = 0; f < 3; ++f)
            for (int k = 0; k < counts[f]; ++k) {
                d.patches.push_back(0.f);
                d.frameIndex.push_back(f);
            }
        for (unsigned seed = 0; seed < 10; ++seed) {
            const auto split = effectiveSplit(d, 0.8, 0.1, seed);
            std::set<std::uint8_t> used(split.begin(), split.end());
            QCOMPARE(int(used.size()), 3);
        }
    }

    void splitByIndex()
    {
        PatchDataset d;
        d.patchSize = 1;
        d.patches.assign(1000, 0.f);
        const auto split = effectiveSplit(d, 0.7, 0.2, 3);
        QCOMPARE(std::count(split.begin(), split.end(), 0), 700L);
        QCOMPARE(std::count(split.begin(), split.end(), 1), 200L);
        QCOMPARE(std::count(split.begin(), split.end(), 2), 100L);
        QVERIFY(effectiveSplit(d, 0.7, 0.2, 3) == split);
        // Shuffled, not the first 700 in order.
        QVERIFY(std::count(split.begin(), split.begin() + 700, 0) < 650);
        // An existing /split wins.
        d.split.assign(1000, 2);
        QVERIFY(effectiveSplit(d, 0.7, 0.2, 3) == d.split);
        // Bad fractions are bad input.
        d.split.clear();
        QVERIFY(inputErrorMessage([&] { effectiveSplit(d, 0.9, 0.2, 0); }).contains(QStringLiteral("fractions")));
    }

    // ---------------------------------------------------------------- BraggNN import
    void importBraggNNKnownLabels()
    {
        BraggNNImportStats stats;
        const PatchDataset d = importBraggNN(file(QStringLiteral("bn_frames.h5")),
                                             file(QStringLiteral("bn_labels.h5")), 11, &stats);
        QCOMPARE(stats.kept, std::size_t(5));
        QCOMPARE(stats.skippedFilter, std::size_t(3));
        QCOMPARE(stats.skippedBorder, std::size_t(2));
        QCOMPARE(d.size(), std::size_t(5));
        QCOMPARE(d.patchSize, 11);
        QCOMPARE(QString::fromStdString(d.labelSource), QStringLiteral("braggnn"));
        d.validate("import");
        const auto &labels = fixtureLabels();
        const std::size_t keptRows[5] = {0, 1, 7, 8, 9}; // label order is kept
        const int origins[5][2] = {{15, 21}, {5, 5}, {29, 39}, {0, 0}, {7, 7}};
        for (std::size_t k = 0; k < 5; ++k) {
            const Label &l = labels[keptRows[k]];
            QCOMPARE(d.frameIndex[k], std::int32_t(l.fidx));
            QCOMPARE(d.origin[2 * k], origins[k][0]);
            QCOMPARE(d.origin[2 * k + 1], origins[k][1]);
            // Centre in patch coordinates: label minus the patch's top-left pixel, exact.
            QCOMPARE(d.centers[2 * k], float(double(l.row) - origins[k][0]));
            QCOMPARE(d.centers[2 * k + 1], float(double(l.col) - origins[k][1]));
            // Pixels: straight from the frame.
            for (int r = 0; r < 11; ++r)
                for (int c = 0; c < 11; ++c)
                    QCOMPARE(d.patch(k)[r * 11 + c],
                             framePixel(int(l.fidx), origins[k][0] + r, origins[k][1] + c));
        }
        // The first label's centre, spelled out: (20.3 - 15, 25.7 - 21).
        QCOMPARE(d.centers[0], float(double(20.3f) - 15.0));
        QVERIFY(std::abs(d.centers[0] - 5.3f) < 1e-5f && std::abs(d.centers[1] - 4.7f) < 1e-5f);
    }

    void importBraggNNBadInput_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QStringList>("mustMention");
        QTest::newRow("frame index out of range") << "fidx" << QStringList{"labels_fidx.h5", "/peak_fidx[0]", "3 frames"};
        QTest::newRow("no /deviations") << "nodev" << QStringList{"labels_nodev.h5", "/deviations"};
        QTest::newRow("no /frames") << "noframes" << QStringList{"frames_noframes.h5", "/frames"};
    }
    void importBraggNNBadInput()
    {
        QFETCH(QString, kind);
        QFETCH(QStringList, mustMention);
        const std::string frames = file(QStringLiteral("frames_%1.h5").arg(kind));
        const std::string labels = file(QStringLiteral("labels_%1.h5").arg(kind));
        if (kind == QStringLiteral("fidx"))
            writeBraggNN(frames, labels, {{3, 20.f, 20.f, 1, 0.1f}});
        else if (kind == QStringLiteral("nodev"))
            writeBraggNN(frames, labels, fixtureLabels(), false);
        else {
            writeBraggNN(frames, labels, fixtureLabels());
            H5File f(frames, false);
            f.remove("/frames");
            f.doubles("/data", H5T_IEEE_F32LE, {1, 2, 2}, {1, 2, 3, 4});
        }
        const QString msg = inputErrorMessage([&] { importBraggNN(frames, labels); });
        for (const QString &m : mustMention)
            QVERIFY2(msg.contains(m), qPrintable(msg));
    }

    void cliImport()
    {
        const QString out = m_dir.filePath(QStringLiteral("cli_out.h5"));
        const CliResult r = runCli(
            {QStringLiteral("import-braggnn"), QStringLiteral("--frames"), m_dir.filePath(QStringLiteral("bn_frames.h5")),
             QStringLiteral("--labels"), m_dir.filePath(QStringLiteral("bn_labels.h5")), QStringLiteral("--out"), out,
             QStringLiteral("--json")},
            60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitCode, 0);
        const QJsonObject j = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(j.value(QStringLiteral("patches")).toInt(), 5);
        QCOMPARE(j.value(QStringLiteral("skipped_border")).toInt(), 2);
        QCOMPARE(j.value(QStringLiteral("skipped_filter")).toInt(), 3);
        const PatchDataset d = readPatchDataset(out.toStdString());
        compareDatasets(d, importBraggNN(file(QStringLiteral("bn_frames.h5")), file(QStringLiteral("bn_labels.h5"))));
    }

    void cliImportBadInput_data()
    {
        QTest::addColumn<QStringList>("extra");
        QTest::addColumn<int>("exitCode");
        QTest::addColumn<QString>("mustMention");
        QTest::newRow("labels without /deviations") << QStringList{} << 2 << "/deviations";
        QTest::newRow("even patch size") << QStringList{QStringLiteral("--patch-size"), QStringLiteral("10")} << 2 << "--patch-size";
        QTest::newRow("unknown flag") << QStringList{QStringLiteral("--bogus"), QStringLiteral("1")} << 2 << "bogus";
    }
    void cliImportBadInput()
    {
        QFETCH(QStringList, extra);
        QFETCH(int, exitCode);
        QFETCH(QString, mustMention);
        const QString out = m_dir.filePath(QStringLiteral("cli_bad_out.h5"));
        QFile::remove(out);
        const QStringList before = dirEntries();
        const CliResult r = runCli(
            QStringList{QStringLiteral("import-braggnn"), QStringLiteral("--frames"), m_dir.filePath(QStringLiteral("frames_nodev.h5")),
                        QStringLiteral("--labels"), m_dir.filePath(QStringLiteral("labels_nodev.h5")),
                        QStringLiteral("--out"), out, QStringLiteral("--json")}
                + extra,
            60000);
        QVERIFY(r.finished);
        QCOMPARE(r.exitStatus, QProcess::NormalExit);
        QCOMPARE(r.exitCode, exitCode);
        const QString err = QString::fromUtf8(r.err);
        QVERIFY2(err.contains(mustMention), qPrintable(err));
        QVERIFY(r.out.isEmpty());
        QVERIFY(!QFile::exists(out));
        QCOMPARE(dirEntries(), before); // no temporary left behind either
    }
};

QTEST_GUILESS_MAIN(TestPatchDataset)
#include "tst_patchdataset.moc"
