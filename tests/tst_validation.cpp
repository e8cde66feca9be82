// braggnac-test-libs: braggnac_core HDF5::HDF5
// Input validation in core (issue 12 item 3, issue 11 item 5): declared dataset sizes checked
// against the data a file really holds before anything is allocated; split codes outside
// {0, 1, 2}; NaN/Inf labels at reader level; an empty split is an error; validate() on the
// simulator, fit and cost options naming the field; Monitor::sub; core's library versions; and
// the memory test (item 7): one frame of a 20 GB HDF5 stack read with < 100 MB read and RSS.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <hdf5.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QTest>

#include "core/arch/archspec.h"
#include "core/common/error.h"
#include "core/common/progress.h"
#include "core/common/versions.h"
#include "core/cost/cost.h"
#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "core/peaks/fitter.h"
#include "core/sim/simulator.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- HDF5 C-API helpers for hostile files -------------------------------------------------------

struct H5 {
    hid_t id = -1;
    explicit H5(hid_t i) : id(i) {}
    ~H5() { close(); }
    void close()
    {
        if (id < 0)
            return;
        switch (H5Iget_type(id)) {
        case H5I_FILE: H5Fclose(id); break;
        case H5I_DATASET: H5Dclose(id); break;
        case H5I_DATASPACE: H5Sclose(id); break;
        case H5I_GENPROP_LST: H5Pclose(id); break;
        default: break;
        }
        id = -1;
    }
    operator hid_t() const { return id; }
};

enum class Layout { ContiguousUnwritten, ChunkedOneChunk, GzipOneChunk, ContiguousSparse };

/// Creates `name` with dims; for the chunked layouts writes only the first chunk (rows
/// [0, chunkRows)) with `value`.
void hostileDataset(hid_t file, const char *name, const std::vector<hsize_t> &dims, Layout layout,
                    hsize_t chunkRows = 64, float value = 1.f)
{
    H5 space(H5Screate_simple(int(dims.size()), dims.data(), nullptr));
    H5 dcpl(H5Pcreate(H5P_DATASET_CREATE));
    std::vector<hsize_t> chunk = dims;
    chunk[0] = chunkRows;
    if (layout == Layout::ContiguousUnwritten || layout == Layout::ContiguousSparse) {
        // Late: nothing allocated. Early with no fill: the whole extent allocated as a hole.
        H5Pset_layout(dcpl, H5D_CONTIGUOUS);
        H5Pset_alloc_time(dcpl, layout == Layout::ContiguousSparse ? H5D_ALLOC_TIME_EARLY
                                                                   : H5D_ALLOC_TIME_LATE);
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    } else {
        H5Pset_chunk(dcpl, int(chunk.size()), chunk.data());
        if (layout == Layout::GzipOneChunk) {
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, 4);
        }
    }
    H5 ds(H5Dcreate2(file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    QVERIFY(ds.id >= 0);
    if (layout == Layout::ContiguousUnwritten || layout == Layout::ContiguousSparse)
        return;
    std::size_t count = 1;
    for (auto c : chunk)
        count *= std::size_t(c);
    std::vector<float> buf(count, value);
    for (std::size_t i = 0; i < count; ++i)
        buf[i] = value + float(i % 7);
    H5 mem(H5Screate_simple(int(chunk.size()), chunk.data(), nullptr));
    H5 fspace(H5Dget_space(ds));
    std::vector<hsize_t> start(dims.size(), 0);
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, chunk.data(), nullptr);
    QVERIFY(H5Dwrite(ds, H5T_NATIVE_FLOAT, mem, fspace, H5P_DEFAULT, buf.data()) >= 0);
}

void writeFloats(hid_t file, const char *name, const std::vector<hsize_t> &dims, hid_t fileType,
                 const std::vector<double> &values)
{
    H5 space(H5Screate_simple(int(dims.size()), dims.data(), nullptr));
    H5 ds(H5Dcreate2(file, name, fileType, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    QVERIFY(ds.id >= 0);
    QVERIFY(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0);
}

/// A small labelled dataset with /split (rows i % 3, or `split` for every row when >= 0).
PatchDataset smallDataset(std::size_t n, int s = 11, int split = -1)
{
    PatchDataset d;
    d.patchSize = s;
    d.labelSource = "simulation";
    for (std::size_t i = 0; i < n; ++i) {
        for (int k = 0; k < s * s; ++k)
            d.patches.push_back(float((i * 31 + std::size_t(k) * 7) % 100));
        d.centers.push_back(float(s / 2) + 0.25f);
        d.centers.push_back(float(s / 2) - 0.25f);
        d.split.push_back(std::uint8_t(split >= 0 ? split : int(i % 3)));
    }
    return d;
}

// ---- /proc readings -----------------------------------------------------------------------------

long long procField(const char *file, const std::string &key)
{
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key, 0) == 0)
            return std::stoll(line.substr(key.size()));
    return -1;
}
long long rssBytes() { return procField("/proc/self/status", "VmRSS:") * 1024; }
long long readChars() { return procField("/proc/self/io", "rchar:"); }
long long readBytes() { return procField("/proc/self/io", "read_bytes:"); }

// ---- option setters by field name (the names the messages must use) -----------------------------

void setFrameField(FrameSimOptions &o, const QString &f, double v)
{
    if (f == "size") o.size = int(v);
    else if (f == "peaks_per_frame") o.peaksPerFrame = int(v);
    else if (f == "amplitude_min") o.amplitudeMin = v;
    else if (f == "amplitude_max") o.amplitudeMax = v;
    else if (f == "sigma_min") o.sigmaMin = v;
    else if (f == "sigma_max") o.sigmaMax = v;
    else if (f == "gamma_min") o.gammaMin = v;
    else if (f == "gamma_max") o.gammaMax = v;
    else if (f == "close_pair_fraction") o.closePairFraction = v;
    else if (f == "background") o.background = v;
    else if (f == "read_noise") o.readNoise = v;
    else if (f == "saturation") o.saturation = v;
    else if (f == "render_widths") o.renderWidths = v;
    else QFAIL(qPrintable("unknown field " + f));
}

void setPatchField(PatchSimOptions &o, const QString &f, double v)
{
    if (f == "patch_size") o.patchSize = int(v);
    else if (f == "amplitude_min") o.amplitudeMin = v;
    else if (f == "amplitude_max") o.amplitudeMax = v;
    else if (f == "sigma_min") o.sigmaMin = v;
    else if (f == "sigma_max") o.sigmaMax = v;
    else if (f == "gamma_min") o.gammaMin = v;
    else if (f == "gamma_max") o.gammaMax = v;
    else if (f == "centre_jitter") o.centreJitter = v;
    else if (f == "neighbour_fraction") o.neighbourFraction = v;
    else if (f == "background") o.background = v;
    else if (f == "read_noise") o.readNoise = v;
    else QFAIL(qPrintable("unknown field " + f));
}

} // namespace

class TestValidation : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    std::string file(const QString &name) const { return m_dir.filePath(name).toStdString(); }
    std::string m_model; // an untrained nac model folder (the CLI verbs that need one)

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_model = file(QStringLiteral("nac.model"));
        Model(builtinArch("nac"), 1).save(m_model);
    }

    // ---- item 1: declared sizes against the real data -------------------------------------------

    void declaredSizeRefused_data()
    {
        QTest::addColumn<int>("layout");
        QTest::addColumn<QString>("mustMention");
        QTest::newRow("contiguous, never written")
            << int(Layout::ContiguousUnwritten) << "stores only 0 bytes of it uncompressed";
        QTest::newRow("chunked, one chunk written")
            << int(Layout::ChunkedOneChunk)
            << "but the file stores only 30.2 KiB of it uncompressed; expected every declared value to be stored";
        QTest::newRow("gzip, one chunk written")
            << int(Layout::GzipOneChunk)
            << "of compressed data for it, and its filters expand at most 1100:1 (truncated, sparse or corrupt file)";
        QTest::newRow("contiguous, sparse file of twice the machine's memory")
            << int(Layout::ContiguousSparse) << ", more than this machine's ";
    }
    void declaredSizeRefused()
    {
        QFETCH(int, layout);
        QFETCH(QString, mustMention);
        const std::string path = file(QStringLiteral("claims_%1.h5").arg(layout));
        // 2e9 patches (901.5 GiB) is less data than the file stores for every layout but the
        // sparse one, which really is that big: it declares twice this machine's memory instead.
        const bool sparse = Layout(layout) == Layout::ContiguousSparse;
        const long double memory = (long double)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
        const hsize_t n = sparse ? hsize_t(2 * memory / (11 * 11 * 4)) : 2000000000ull;
        {
            H5 f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
            hostileDataset(f, "/patches", {n, 11, 11}, Layout(layout));
        }
        const qint64 size = QFileInfo(QString::fromStdString(path)).size();
        if (sparse)
            QVERIFY2(size >= qint64(n * 11 * 11 * 4), qPrintable(QString::number(size)));
        else
            QVERIFY2(size < 10 * 1024 * 1024, qPrintable(QString::number(size)));
        const QString msg = inputErrorMessage([&] { readPatchDataset(path); });
        QVERIFY2(threwInputError(msg), qPrintable(msg)); // never std::bad_alloc
        QVERIFY2(msg.startsWith(QString::fromStdString(path) + ": "), qPrintable(msg));
        QVERIFY2(msg.contains(QStringLiteral("/patches declares [%1, 11, 11] float32 (").arg(n)), qPrintable(msg));
        if (!sparse)
            QVERIFY2(msg.contains("/patches declares [2000000000, 11, 11] float32 (901.5 GiB)"), qPrintable(msg));
        QVERIFY2(msg.contains(mustMention), qPrintable(msg));
        QFile::remove(QString::fromStdString(path));
    }

    void optionalDatasetLengthCheckedBeforeReading()
    {
        // /centers claims 2e9 rows (one chunk written) beside 10 real patches.
        const std::string path = file(QStringLiteral("centers2e9.h5"));
        writePatchDataset(path, smallDataset(10), false);
        {
            H5 f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
            H5Ldelete(f, "/centers", H5P_DEFAULT);
            hostileDataset(f, "/centers", {2000000000ull, 2}, Layout::ChunkedOneChunk);
        }
        const QString msg = inputErrorMessage([&] { readPatchDataset(path); });
        QVERIFY2(msg == QString::fromStdString(path)
                            + ": /centers has 2000000000 rows but /patches has 10 rows; expected the same length",
                 qPrintable(msg));
    }

    void truncatedFileRefused()
    {
        // 3000 uncompressed patches (1.4 MiB), then the file cut to 600 kB.
        const std::string path = file(QStringLiteral("truncated.h5"));
        writePatchDataset(path, smallDataset(3000), false);
        QVERIFY(::truncate(path.c_str(), 600000) == 0);
        const QString msg = inputErrorMessage([&] { readPatchDataset(path); });
        QVERIFY2(threwInputError(msg), qPrintable(msg));
        QVERIFY2(msg.startsWith(QString::fromStdString(path) + ": "), qPrintable(msg));
    }

    void legitimateFilesStillRead_data()
    {
        QTest::addColumn<bool>("compress");
        QTest::addColumn<bool>("zeros");
        QTest::newRow("uncompressed") << false << false;
        QTest::newRow("gzip") << true << false;
        QTest::newRow("gzip, all zeros (~1000:1)") << true << true;
    }
    void legitimateFilesStillRead()
    {
        QFETCH(bool, compress);
        QFETCH(bool, zeros);
        // 20000 patches = 9.2 MiB of float32: above the 1 MiB fill allowance, so the rule applies.
        PatchDataset d = smallDataset(20000);
        if (zeros)
            std::fill(d.patches.begin(), d.patches.end(), 0.f);
        const std::string path = file(QStringLiteral("legit_%1_%2.h5").arg(compress).arg(zeros));
        writePatchDataset(path, d, compress);
        const PatchDataset back = readPatchDataset(path);
        QCOMPARE(back.size(), std::size_t(20000));
        QVERIFY(back.patches == d.patches);
        QVERIFY(back.split == d.split);
    }

    void hostileFileThroughCli_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::newRow("fit") << QStringList{"fit", "IN", "--out", "OUT"};
        QTest::newRow("train") << QStringList{"train", "IN", "--arch", "nac", "--epochs", "1", "--out", "OUT"};
        QTest::newRow("evaluate") << QStringList{"evaluate", "MODEL", "IN"};
        QTest::newRow("predict") << QStringList{"predict", "MODEL", "IN", "--out", "OUT"};
    }
    void hostileFileThroughCli()
    {
        QFETCH(QStringList, args);
        const std::string in = file(QStringLiteral("cli_claims2e9.h5"));
        if (!QFile::exists(QString::fromStdString(in))) {
            H5 f(H5Fcreate(in.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
            hostileDataset(f, "/patches", {2000000000ull, 11, 11}, Layout::GzipOneChunk);
        }
        const QString out = m_dir.filePath(QStringLiteral("cli_out_%1").arg(args.front()));
        for (QString &a : args)
            a = a == "IN" ? QString::fromStdString(in) : a == "OUT" ? out : a == "MODEL" ? QString::fromStdString(m_model) : a;
        const CliResult r = runCli(args);
        QVERIFY2(r.finished, r.err.constData());
        QCOMPARE(r.exitCode, 2);
        const QString err = QString::fromUtf8(r.err);
        QVERIFY2(err.contains(QString::fromStdString(in)) && err.contains("/patches declares"), qPrintable(err));
        QVERIFY2(!err.contains("bad_alloc"), qPrintable(err));
        QVERIFY(!QFileInfo::exists(out));
    }

    // ---- item 2: split codes, NaN/Inf labels, empty splits --------------------------------------

    void splitCodesRefused_data()
    {
        QTest::addColumn<int>("fileType"); // 0 int8, 1 int16, 2 uint8, 3 float32, 4 int64
        QTest::addColumn<double>("bad");
        QTest::addColumn<QString>("shown");
        QTest::newRow("int8 -1 (was read as train)") << 0 << -1.0 << "-1";
        QTest::newRow("int16 3") << 1 << 3.0 << "3";
        QTest::newRow("uint8 255") << 2 << 255.0 << "255";
        QTest::newRow("float 0.5 (was truncated to train)") << 3 << 0.5 << "0.5";
        QTest::newRow("float nan") << 3 << kNaN << "nan";
        QTest::newRow("int64 256 (was clamped)") << 4 << 256.0 << "256";
    }
    void splitCodesRefused()
    {
        QFETCH(int, fileType);
        QFETCH(double, bad);
        QFETCH(QString, shown);
        const hid_t types[] = {H5T_STD_I8LE, H5T_STD_I16LE, H5T_STD_U8LE, H5T_IEEE_F32LE, H5T_STD_I64LE};
        const std::string path = file(QStringLiteral("split_%1.h5").arg(QTest::currentDataTag()).replace(' ', '_'));
        writePatchDataset(path, smallDataset(6), false);
        {
            H5 f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
            H5Ldelete(f, "/split", H5P_DEFAULT);
            writeFloats(f, "/split", {6}, types[fileType], {0, 1, 2, 0, bad, 1});
        }
        const QString msg = inputErrorMessage([&] { readPatchDataset(path); });
        QCOMPARE(msg, QString::fromStdString(path) + ": /split[4] is " + shown
                          + "; expected 0 (train), 1 (validation) or 2 (test)");
    }

    void splitCodesOfAnyIntegerTypeRead()
    {
        const std::string path = file(QStringLiteral("split_int64_ok.h5"));
        writePatchDataset(path, smallDataset(6), false);
        {
            H5 f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
            H5Ldelete(f, "/split", H5P_DEFAULT);
            writeFloats(f, "/split", {6}, H5T_STD_I64LE, {2, 1, 0, 0, 1, 2});
        }
        QVERIFY((readPatchDataset(path).split == std::vector<std::uint8_t>{2, 1, 0, 0, 1, 2}));
    }

    void nonFiniteLabelsRefused_data()
    {
        QTest::addColumn<int>("row");
        QTest::addColumn<int>("col");
        QTest::addColumn<double>("bad");
        QTest::addColumn<QString>("shown");
        QTest::newRow("nan row") << 3 << 0 << kNaN << "(nan, 4.75)";
        QTest::newRow("inf col") << 0 << 1 << kInf << "(5.25, inf)";
        QTest::newRow("-inf row") << 5 << 0 << -kInf << "(-inf, 4.75)";
    }
    void nonFiniteLabelsRefused()
    {
        QFETCH(int, row);
        QFETCH(int, col);
        QFETCH(double, bad);
        QFETCH(QString, shown);
        const QString expected = "/centers[" + QString::number(row) + "] is " + shown
                                 + "; expected a finite (row, col) label";
        // Reader level (fit, train, evaluate, predict all read through it).
        const std::string path = file(QStringLiteral("labels_%1.h5").arg(row));
        const PatchDataset good = smallDataset(6);
        writePatchDataset(path, good, false);
        {
            H5 f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
            H5Ldelete(f, "/centers", H5P_DEFAULT);
            std::vector<double> c(good.centers.begin(), good.centers.end());
            c[std::size_t(2 * row + col)] = bad;
            writeFloats(f, "/centers", {6, 2}, H5T_IEEE_F32LE, c);
        }
        QCOMPARE(inputErrorMessage([&] { readPatchDataset(path); }), QString::fromStdString(path) + ": " + expected);
        // In memory (the studio's datasets): validate, the writer, training and evaluation.
        PatchDataset d = good;
        d.centers[std::size_t(2 * row + col)] = float(bad);
        QCOMPARE(inputErrorMessage([&] { d.validate("ctx"); }), "ctx: " + expected);
        const std::string never = file(QStringLiteral("never_%1.h5").arg(row));
        QVERIFY(inputErrorMessage([&] { writePatchDataset(never, d); }).contains(expected));
        QVERIFY(!QFile::exists(QString::fromStdString(never)));
        const Model model = Model::load(m_model);
        QVERIFY(inputErrorMessage([&] { evaluateModel(model, d, -1); }).contains(expected));
        TrainOptions to;
        to.epochs = 1;
        to.dataSource = "mem.h5";
        QCOMPARE(inputErrorMessage([&] { trainModel(builtinArch("nac"), d, to); }), "mem.h5: " + expected);
    }

    void nonFiniteLabelsThroughCli()
    {
        const std::string path = file(QStringLiteral("cli_nan_labels.h5"));
        PatchDataset d = smallDataset(30);
        writePatchDataset(path, d, false);
        {
            H5 f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
            H5Ldelete(f, "/centers", H5P_DEFAULT);
            std::vector<double> c(d.centers.begin(), d.centers.end());
            c[2 * 17] = kNaN;
            writeFloats(f, "/centers", {30, 2}, H5T_IEEE_F32LE, c);
        }
        const CliResult r = runCli({"evaluate", QString::fromStdString(m_model), QString::fromStdString(path), "--json"});
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(QString::fromUtf8(r.err).contains(QString::fromStdString(path) + ": /centers[17] is (nan, 4.75)"),
                 r.err.constData());
        QVERIFY(r.out.trimmed().isEmpty());
    }

    void emptySplitIsAnError_data()
    {
        QTest::addColumn<int>("split");
        QTest::addColumn<bool>("unconverged");
        QTest::addColumn<QString>("mustMention");
        QTest::newRow("no test rows") << 2 << false << "split: the test split holds no patches to evaluate (12 patches)";
        QTest::newRow("no validation rows") << 1 << false << "split: the validation split holds no patches";
        QTest::newRow("all unconverged") << -1 << true << "split: the dataset holds no patches to evaluate (12 patches, rows with /fit/converged = 0 left out)";
    }
    void emptySplitIsAnError()
    {
        QFETCH(int, split);
        QFETCH(bool, unconverged);
        QFETCH(QString, mustMention);
        PatchDataset d = smallDataset(12, 11, 0); // every row train
        if (unconverged)
            d.extraFlags["/fit/converged"] = std::vector<std::uint8_t>(12, 0);
        const Model model = Model::load(m_model);
        const QString msg = inputErrorMessage([&] { evaluateModel(model, d, split); });
        QVERIFY2(msg.startsWith(mustMention), qPrintable(msg));
        // The non-empty split still evaluates every row.
        QCOMPARE(evaluateModel(model, smallDataset(12, 11, 0), 0).overall.n, std::size_t(12));
    }

    void emptySplitThroughCli()
    {
        const std::string path = file(QStringLiteral("cli_no_test.h5"));
        writePatchDataset(path, smallDataset(12, 11, 0), false);
        const CliResult r = runCli({"evaluate", QString::fromStdString(m_model), QString::fromStdString(path),
                                    "--split", "test", "--json"});
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(QString::fromUtf8(r.err).contains(QString::fromStdString(path) + ": split: the test split holds no patches"),
                 r.err.constData());
        QVERIFY(r.out.trimmed().isEmpty()); // no "mean 0, n 0" score
    }

    // ---- item 3: simulator options -------------------------------------------------------------

    void frameSimOptions_data()
    {
        QTest::addColumn<QString>("field");
        QTest::addColumn<double>("value");
        QTest::addColumn<QString>("message");
        QTest::newRow("background nan") << "background" << kNaN << "background: must be finite and >= 0, got nan";
        QTest::newRow("background -1") << "background" << -1.0 << "background: must be finite and >= 0, got -1";
        QTest::newRow("amplitude_max inf") << "amplitude_max" << kInf << "amplitude_max: must be finite and > 0, got inf";
        QTest::newRow("amplitude order") << "amplitude_max" << 10.0 << "amplitude_max: must be >= amplitude_min (50), got 10";
        QTest::newRow("amplitude_min 0") << "amplitude_min" << 0.0 << "amplitude_min: must be finite and > 0, got 0";
        QTest::newRow("saturation -1") << "saturation" << -1.0 << "saturation: must be finite and >= 0 (0 disables it), got -1";
        QTest::newRow("saturation nan") << "saturation" << kNaN << "saturation: must be finite and >= 0 (0 disables it), got nan";
        QTest::newRow("size 0") << "size" << 0.0 << "size: must be an integer in 1..65536, got 0";
        QTest::newRow("peaks -1") << "peaks_per_frame" << -1.0 << "peaks_per_frame: must be an integer in 0..1000000, got -1";
        QTest::newRow("sigma_min nan") << "sigma_min" << kNaN << "sigma_min: must be finite and > 0, got nan";
        QTest::newRow("gamma_max < min") << "gamma_max" << 0.5 << "gamma_max: must be >= gamma_min (0.6), got 0.5";
        QTest::newRow("close pairs 1.5") << "close_pair_fraction" << 1.5 << "close_pair_fraction: must be in [0, 1], got 1.5";
        QTest::newRow("read noise inf") << "read_noise" << kInf << "read_noise: must be finite and >= 0, got inf";
        QTest::newRow("render widths 0") << "render_widths" << 0.0 << "render_widths: must be finite and > 0, got 0";
    }
    void frameSimOptions()
    {
        QFETCH(QString, field);
        QFETCH(double, value);
        QFETCH(QString, message);
        FrameSimOptions o;
        o.size = 64;
        o.peaksPerFrame = 3;
        setFrameField(o, field, value);
        QCOMPARE(inputErrorMessage([&] { o.validate(); }), "simulate frames: " + message);
        QCOMPARE(inputErrorMessage([&] { o.validate("studio"); }), "studio: " + message);
        QCOMPARE(inputErrorMessage([&] { simulateFrames(1, o); }), "simulate frames: " + message);
    }

    void patchSimOptions_data()
    {
        QTest::addColumn<QString>("field");
        QTest::addColumn<double>("value");
        QTest::addColumn<QString>("message");
        QTest::newRow("background nan") << "background" << kNaN << "background: must be finite and >= 0, got nan";
        QTest::newRow("amplitude_max inf") << "amplitude_max" << kInf << "amplitude_max: must be finite and > 0, got inf";
        QTest::newRow("amplitude order") << "amplitude_max" << 99.0 << "amplitude_max: must be >= amplitude_min (100), got 99";
        QTest::newRow("patch size 10") << "patch_size" << 10.0 << "patch_size: must be an odd integer in 3..255, got 10";
        QTest::newRow("patch size 257") << "patch_size" << 257.0 << "patch_size: must be an odd integer in 3..255, got 257";
        QTest::newRow("jitter 6") << "centre_jitter" << 6.0 << "centre_jitter: must be in [0, patch_size / 2 = 5], got 6";
        QTest::newRow("jitter nan") << "centre_jitter" << kNaN << "centre_jitter: must be in [0, patch_size / 2 = 5], got nan";
        QTest::newRow("neighbours nan") << "neighbour_fraction" << kNaN << "neighbour_fraction: must be in [0, 1], got nan";
        QTest::newRow("sigma_max inf") << "sigma_max" << kInf << "sigma_max: must be finite and > 0, got inf";
        QTest::newRow("gamma_min -1") << "gamma_min" << -1.0 << "gamma_min: must be finite and > 0, got -1";
        QTest::newRow("read noise -0.5") << "read_noise" << -0.5 << "read_noise: must be finite and >= 0, got -0.5";
    }
    void patchSimOptions()
    {
        QFETCH(QString, field);
        QFETCH(double, value);
        QFETCH(QString, message);
        PatchSimOptions o;
        setPatchField(o, field, value);
        QCOMPARE(inputErrorMessage([&] { o.validate(); }), "simulate patches: " + message);
        QCOMPARE(inputErrorMessage([&] { simulatePatches(4, o); }), "simulate patches: " + message);
    }

    void defaultOptionsValid()
    {
        FrameSimOptions f;
        f.validate();
        f.saturation = 0; // documented: disables the clamp
        f.validate();
        PatchSimOptions p;
        p.validate();
        FitOptions fit;
        fit.validate();
        CostOptions cost;
        cost.validate();
        cost.sparsity = 0.999;
        cost.weightBits = 1;
        cost.activationBits = 64;
        cost.validate();
    }

    void simulatorRefusesMoreThanMemory()
    {
        // Refused before allocating (a std::bad_alloc would name nothing).
        QString msg = inputErrorMessage([] { simulatePatches(100000000000ull, PatchSimOptions{}); });
        QVERIFY2(msg.startsWith("simulate patches: count: 100000000000 patches need ")
                     && msg.contains(" GiB, more than this machine's "),
                 qPrintable(msg));
        FrameSimOptions f;
        msg = inputErrorMessage([&] { simulateFrames(100000, f); });
        QVERIFY2(msg.startsWith("simulate frames: count: 100000 frames of 2048 x 2048 need 1562") // 1562.5 GiB
                     && msg.contains(" GiB of memory"),
                 qPrintable(msg));
    }

    void simulatorCli_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("field");
        QTest::newRow("frames --background nan") << QStringList{"simulate", "frames", "--frames", "1", "--size", "64", "--background", "nan"} << "background";
        QTest::newRow("frames --amplitude-max inf") << QStringList{"simulate", "frames", "--frames", "1", "--size", "64", "--amplitude-max", "inf"} << "amplitude";
        QTest::newRow("frames --saturation -1") << QStringList{"simulate", "frames", "--frames", "1", "--size", "64", "--saturation", "-1"} << "saturation";
    }
    void simulatorCli()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, field);
        const QString out = m_dir.filePath(QStringLiteral("sim_%1.h5").arg(QString(QTest::currentDataTag()).section(' ', 0, 0)));
        const CliResult r = runCli(args << "--out" << out);
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(QString::fromUtf8(r.err).contains(field), r.err.constData());
        QVERIFY(!QFileInfo::exists(out));
    }

    // ---- item 4: fit and cost options ----------------------------------------------------------

    void fitOptions_data()
    {
        QTest::addColumn<int>("maxIterations");
        QTest::addColumn<double>("tolerance");
        QTest::addColumn<int>("neighbours");
        QTest::addColumn<QString>("message");
        QTest::newRow("iterations 0") << 0 << 1e-8 << 2 << "max_iterations: must be an integer in 1..100000, got 0";
        QTest::newRow("tolerance nan") << 100 << kNaN << 2 << "tolerance: must be finite and in (0, 1), got nan";
        QTest::newRow("tolerance 0") << 100 << 0.0 << 2 << "tolerance: must be finite and in (0, 1), got 0";
        QTest::newRow("tolerance inf") << 100 << kInf << 2 << "tolerance: must be finite and in (0, 1), got inf";
        QTest::newRow("neighbours 7") << 100 << 1e-8 << 7 << "neighbours: must be ignore, mask or two-peak, got the value 7";
    }
    void fitOptions()
    {
        QFETCH(int, maxIterations);
        QFETCH(double, tolerance);
        QFETCH(int, neighbours);
        QFETCH(QString, message);
        FitOptions o;
        o.maxIterations = maxIterations;
        o.tolerance = tolerance;
        o.neighbours = NeighbourHandling(neighbours);
        QCOMPARE(inputErrorMessage([&] { o.validate(); }), "fit options: " + message);
        QCOMPARE(inputErrorMessage([&] { fitPatches(smallDataset(2), o); }), "fit options: " + message);
    }

    void costOptions_data()
    {
        QTest::addColumn<int>("weightBits");
        QTest::addColumn<int>("activationBits");
        QTest::addColumn<double>("sparsity");
        QTest::addColumn<QString>("message");
        QTest::newRow("weight bits 0") << 0 << 8 << 0.0 << "weight_bits: must be an integer in 1..64, got 0";
        QTest::newRow("activation bits 65") << 8 << 65 << 0.0 << "activation_bits: must be an integer in 1..64, got 65";
        QTest::newRow("sparsity 1") << 8 << 8 << 1.0 << "sparsity: must be a fraction in [0, 1), got 1";
        QTest::newRow("sparsity nan") << 8 << 8 << kNaN << "sparsity: must be a fraction in [0, 1), got nan";
        QTest::newRow("sparsity -0.1") << 8 << 8 << -0.1 << "sparsity: must be a fraction in [0, 1), got -0.1";
    }
    void costOptions()
    {
        QFETCH(int, weightBits);
        QFETCH(int, activationBits);
        QFETCH(double, sparsity);
        QFETCH(QString, message);
        CostOptions o;
        o.weightBits = weightBits;
        o.activationBits = activationBits;
        o.sparsity = sparsity;
        QCOMPARE(inputErrorMessage([&] { o.validate(); }), "cost options: " + message);
        QCOMPARE(inputErrorMessage([&] { computeCost(builtinArch("nac"), o); }), "cost options: " + message);
    }

    // ---- item 5: Monitor::sub and library versions ---------------------------------------------

    void monitorSub()
    {
        std::vector<std::pair<double, std::string>> seen;
        Monitor top;
        top.progress = [&](double f, const std::string &m) { seen.emplace_back(f, m); };
        const Monitor fit = top.sub(0.4, 0.9, "fit");
        fit.report(0.5, "chunk 2/4");
        fit.report(2.0);   // clamped to the end of the phase
        fit.report(-1.0);  // and to its start
        const Monitor inner = fit.sub(0.5, 1.0); // nested, no phase of its own
        inner.report(0.5, "x");
        top.sub(0, 1).report(0.25, "plain");
        QCOMPARE(int(seen.size()), 5);
        QCOMPARE(seen[0].first, 0.65);
        QCOMPARE(seen[0].second, std::string("fit: chunk 2/4"));
        QCOMPARE(seen[1].first, 0.9);
        QCOMPARE(seen[1].second, std::string("fit"));
        QCOMPARE(seen[2].first, 0.4);
        QCOMPARE(seen[3].first, 0.4 + 0.5 * (0.75));
        QCOMPARE(seen[3].second, std::string("fit: x"));
        QCOMPARE(seen[4].first, 0.25);
        QCOMPARE(seen[4].second, std::string("plain"));
        // One cancel token for the whole tree; a parent without progress gives none.
        QVERIFY(!inner.cancelled());
        top.cancel.cancel();
        QVERIFY(inner.cancelled());
        QVERIFY_EXCEPTION_THROWN(inner.check(), CancelledError);
        QVERIFY(!Monitor{}.sub(0, 1, "x").progress);
        // The sub monitor keeps working after its parent is gone.
        Monitor child;
        {
            Monitor parent;
            parent.progress = [&](double f, const std::string &m) { seen.emplace_back(f, m); };
            child = parent.sub(0.5, 1.0, "p");
        }
        child.report(1.0, "done");
        QCOMPARE(seen.back().first, 1.0);
        QCOMPARE(seen.back().second, std::string("p: done"));
    }

    void libraryVersions()
    {
        const auto v = braggnac::core::libraryVersions();
        QStringList names;
        for (const auto &l : v) {
            names << QString::fromStdString(l.name);
            QVERIFY2(!l.version.empty() && l.version != "unknown", l.name.c_str());
        }
        QCOMPARE(names, (QStringList{"LibTorch", "HDF5", "OpenCV", "libtiff", "SQLite", "nlohmann-json"}));
        QVERIFY(v[0].version.rfind(torchVersion() + " (", 0) == 0);
        unsigned major = 0, minor = 0, release = 0;
        H5get_libversion(&major, &minor, &release);
        QCOMPARE(v[1].version, std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release));
        QCOMPARE(v[5].version, std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." + std::to_string(NLOHMANN_JSON_VERSION_MINOR)
                                   + "." + std::to_string(NLOHMANN_JSON_VERSION_PATCH));
        QVERIFY2(QString::fromStdString(v[3].version).contains(QRegularExpression("^[0-9]+\\.[0-9]+")), v[3].version.c_str());
    }

    // ---- item 7: memory ------------------------------------------------------------------------

    void hugeStackReadsOneFrame_data()
    {
        QTest::addColumn<bool>("contiguous");
        QTest::newRow("contiguous, 20 GB sparse file") << true;
        QTest::newRow("chunked, 3 of 2500 chunks written") << false;
    }
    void hugeStackReadsOneFrame()
    {
        QFETCH(bool, contiguous);
        // 2500 frames of 2048 x 2048 uint16 = 20.97 GB declared.
        constexpr hsize_t F = 2500, H = 2048, W = 2048;
        const std::string path = file(contiguous ? "huge_contiguous.h5" : "huge_chunked.h5");
        const std::vector<int> written{0, 1234, 2499};
        auto pixel = [](int f, hsize_t r, hsize_t c) { return std::uint16_t((f * 7 + r * 3 + c) % 65521); };
        {
            H5 f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
            const hsize_t dims[3] = {F, H, W};
            H5 space(H5Screate_simple(3, dims, nullptr));
            H5 dcpl(H5Pcreate(H5P_DATASET_CREATE));
            H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
            if (contiguous) {
                H5Pset_layout(dcpl, H5D_CONTIGUOUS);
                H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY); // the whole 20 GB extent, sparse
            } else {
                const hsize_t chunk[3] = {1, H, W};
                H5Pset_chunk(dcpl, 3, chunk);
            }
            H5 lcpl(H5Pcreate(H5P_LINK_CREATE));
            H5Pset_create_intermediate_group(lcpl, 1);
            H5 ds(H5Dcreate2(f, kDefaultHdf5Dataset, H5T_STD_U16LE, space, lcpl, dcpl, H5P_DEFAULT));
            QVERIFY(ds.id >= 0);
            std::vector<std::uint16_t> frame(H * W);
            const hsize_t one[3] = {1, H, W};
            H5 mem(H5Screate_simple(3, one, nullptr));
            for (int k : written) {
                for (hsize_t r = 0; r < H; ++r)
                    for (hsize_t c = 0; c < W; ++c)
                        frame[r * W + c] = pixel(k, r, c);
                H5 fspace(H5Dget_space(ds));
                const hsize_t start[3] = {hsize_t(k), 0, 0};
                H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, one, nullptr);
                QVERIFY(H5Dwrite(ds, H5T_NATIVE_UINT16, mem, fspace, H5P_DEFAULT, frame.data()) >= 0);
            }
        }
        const qint64 apparent = QFileInfo(QString::fromStdString(path)).size();
        if (contiguous)
            QVERIFY2(apparent > 20'000'000'000LL, qPrintable(QString::number(apparent)));
        else
            QVERIFY2(apparent < 40'000'000LL, qPrintable(QString::number(apparent)));

        // Drop what writing the fixture cost before measuring.
        const long long rss0 = rssBytes(), rchar0 = readChars(), bytes0 = readBytes();
        QVERIFY(rss0 > 0 && rchar0 >= 0);
        const auto source = openFrameSource(path);
        QCOMPARE(source->frameCount(), int(F));
        QCOMPARE(source->rows(), int(H));
        QCOMPARE(source->cols(), int(W));
        const Frame frame = source->readFrame(1234);
        const Frame blank = source->readFrame(77); // never written: HDF5's fill value, zeros
        const long long rss1 = rssBytes(), rchar1 = readChars(), bytes1 = readBytes();
        for (hsize_t r = 0; r < H; r += 97)
            for (hsize_t c = 0; c < W; c += 89)
                QCOMPARE(frame.at(int(r), int(c)), float(pixel(1234, r, c)));
        QCOMPARE(frame.at(int(H - 1), int(W - 1)), float(pixel(1234, H - 1, W - 1)));
        if (!contiguous) // a sparse contiguous file's holes read as zeros too, but via the OS
            QCOMPARE(*std::max_element(blank.data.begin(), blank.data.end()), 0.f);
        const long long limit = 100LL * 1024 * 1024;
        qInfo("%s: read %lld bytes (rchar), %lld from storage, RSS +%lld bytes for 2 frames of %lld bytes",
              QTest::currentDataTag(), rchar1 - rchar0, bytes1 - bytes0, rss1 - rss0, (long long)(H * W * 4));
        QVERIFY2(rchar1 - rchar0 < limit, qPrintable(QString::number(rchar1 - rchar0)));
        QVERIFY2(rss1 - rss0 < limit, qPrintable(QString::number(rss1 - rss0)));
        QFile::remove(QString::fromStdString(path));
    }
};

QTEST_MAIN(TestValidation)
#include "tst_validation.moc"
