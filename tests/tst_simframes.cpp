// braggnac-test-libs: braggnac_sim braggnac_io HDF5::HDF5
// Frame simulator: determinism, ground truth, the noiseless model, noise statistics, saturation,
// and the HDF5 / GE2 / TIFF writers with their truth datasets.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <numeric>

#include <nlohmann/json.hpp>

#include <QtTest>

#include "core/common/error.h"
#include "core/io/framesource.h"
#include "core/io/hdf5util.h"
#include "core/io/patchdataset.h"
#include "core/sim/simulator.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;

namespace {

FrameSimOptions smallOptions(std::uint64_t seed = 7)
{
    FrameSimOptions o;
    o.size = 256;
    o.peaksPerFrame = 40;
    o.seed = seed;
    return o;
}

FrameSimOptions noiseless(FrameSimOptions o)
{
    o.poisson = false;
    o.readNoise = 0;
    return o;
}

bool sameFrames(const SimulatedFrames &a, const SimulatedFrames &b)
{
    if (a.frames.size() != b.frames.size())
        return false;
    for (std::size_t i = 0; i < a.frames.size(); ++i)
        if (a.frames[i].data != b.frames[i].data)
            return false;
    return true;
}

bool sameTruth(const SimulatedFrames &a, const SimulatedFrames &b)
{
    if (a.truth.size() != b.truth.size())
        return false;
    for (std::size_t i = 0; i < a.truth.size(); ++i)
        if (a.truth[i].frame != b.truth[i].frame || a.truth[i].closePair != b.truth[i].closePair
            || a.truth[i].params.toArray() != b.truth[i].params.toArray())
            return false;
    return true;
}

double radiusOf(const PseudoVoigt &p, double widths)
{
    return widths * std::max({p.sigmaU, p.sigmaV, p.gammaU, p.gammaV});
}

std::pair<double, double> meanVariance(const std::vector<double> &v)
{
    const double mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
    double var = 0;
    for (double x : v)
        var += (x - mean) * (x - mean);
    return {mean, var / (v.size() - 1)};
}

} // namespace

class TestSimFrames : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void determinism_data();
    void determinism();
    void truth_data();
    void truth();
    void noiselessModel();
    void noiseStatistics_data();
    void noiseStatistics();
    void saturation();
    void progressAndCancel();
    void badOptions();
    void writeFormats_data();
    void writeFormats();
    void writeIsAtomic();
    void cliFrames_data();
    void cliFrames();
    void cliPatches();
    void cliBadUsage_data();
    void cliBadUsage();
};

void TestSimFrames::determinism_data()
{
    QTest::addColumn<int>("seedA");
    QTest::addColumn<int>("seedB");
    QTest::addColumn<int>("threadsA");
    QTest::addColumn<int>("threadsB");
    QTest::addColumn<bool>("identical");
    QTest::newRow("same seed") << 7 << 7 << 2 << 2 << true;
    QTest::newRow("1 vs 2 threads") << 7 << 7 << 1 << 2 << true;
    QTest::newRow("1 vs 3 threads") << 11 << 11 << 1 << 3 << true;
    QTest::newRow("different seed") << 7 << 8 << 2 << 2 << false;
}

void TestSimFrames::determinism()
{
    QFETCH(int, seedA);
    QFETCH(int, seedB);
    QFETCH(int, threadsA);
    QFETCH(int, threadsB);
    QFETCH(bool, identical);
    FrameSimOptions a = smallOptions(seedA), b = smallOptions(seedB);
    a.threads = threadsA;
    b.threads = threadsB;
    const SimulatedFrames sa = simulateFrames(3, a), sb = simulateFrames(3, b);
    QCOMPARE(sameFrames(sa, sb), identical);
    QCOMPARE(sameTruth(sa, sb), identical);
    // Frames of one run differ from each other (per-frame streams, not one stream reused).
    QVERIFY(sa.frames[0].data != sa.frames[1].data);
    QVERIFY(sa.truth[0].params.row != sa.truth[a.peaksPerFrame].params.row);
}

void TestSimFrames::truth_data()
{
    QTest::addColumn<int>("frames");
    QTest::addColumn<int>("peaks");
    QTest::addColumn<double>("closeFraction");
    QTest::addColumn<int>("closePerFrame"); // peaks flagged closePair: 2 * round(peaks * fraction)
    QTest::newRow("default fraction") << 2 << 300 << 0.05 << 30;
    QTest::newRow("no close pairs") << 3 << 100 << 0.0 << 0;
    QTest::newRow("many close pairs") << 1 << 200 << 0.25 << 100;
    QTest::newRow("no peaks") << 2 << 0 << 0.05 << 0;
}

void TestSimFrames::truth()
{
    QFETCH(int, frames);
    QFETCH(int, peaks);
    QFETCH(double, closeFraction);
    QFETCH(int, closePerFrame);
    FrameSimOptions o = smallOptions(3);
    o.size = 512;
    o.peaksPerFrame = peaks;
    o.closePairFraction = closeFraction;
    const SimulatedFrames sim = simulateFrames(frames, o);
    QCOMPARE(int(sim.frames.size()), frames);
    QCOMPARE(int(sim.truth.size()), frames * peaks);
    for (int f = 0; f < frames; ++f) {
        std::vector<TruthPeak> mine;
        for (const TruthPeak &t : sim.truth)
            if (t.frame == f)
                mine.push_back(t);
        QCOMPARE(int(mine.size()), peaks);
        QCOMPARE(int(std::count_if(mine.begin(), mine.end(), [](const TruthPeak &t) { return t.closePair; })),
                 closePerFrame);
        int belowGeometricMean = 0;
        for (const TruthPeak &t : mine) {
            const PseudoVoigt &p = t.params;
            QVERIFY(p.row >= 0 && p.row <= o.size - 1 && p.col >= 0 && p.col <= o.size - 1);
            QVERIFY(p.amplitude >= o.amplitudeMin && p.amplitude <= o.amplitudeMax);
            QVERIFY(p.sigmaU >= o.sigmaMin && p.sigmaU <= o.sigmaMax);
            QVERIFY(p.gammaV >= o.gammaMin && p.gammaV <= o.gammaMax);
            QVERIFY(p.eta >= 0 && p.eta <= 1);
            QCOMPARE(p.background, 0.0);
            belowGeometricMean += p.amplitude < std::sqrt(o.amplitudeMin * o.amplitudeMax);
            if (t.closePair) {
                // Every close-pair peak has a close-pair partner 2-5 px away.
                bool partner = false;
                for (const TruthPeak &u : mine) {
                    const double d = std::hypot(u.params.row - p.row, u.params.col - p.col);
                    partner |= &u != &t && u.closePair && d >= 2 - 1e-9 && d <= 5 + 1e-9;
                }
                QVERIFY(partner);
            }
        }
        // Log-uniform amplitudes: half of them below the geometric mean of the range.
        if (peaks >= 200)
            QVERIFY(std::abs(belowGeometricMean - peaks / 2) < peaks / 8);
    }
}

void TestSimFrames::noiselessModel()
{
    // Without noise, frame(peaks) - frame(no peaks) is exactly the sum of the truth peaks, each
    // drawn within renderWidths * its largest width.
    FrameSimOptions o = noiseless(smallOptions(21));
    o.saturation = 0;
    o.peaksPerFrame = 60;
    const SimulatedFrames sim = simulateFrames(2, o);
    FrameSimOptions bgOnly = o;
    bgOnly.peaksPerFrame = 0;
    const SimulatedFrames bg = simulateFrames(2, bgOnly);
    QVERIFY(bg.truth.empty());
    for (int f = 0; f < 2; ++f) {
        const Frame &frame = sim.frames[f];
        const Frame &back = bg.frames[f];
        // A smooth background around the requested mean level.
        double bmin = 1e9, bmax = 0, bsum = 0;
        for (float v : back.data) {
            bmin = std::min<double>(bmin, v);
            bmax = std::max<double>(bmax, v);
            bsum += v;
        }
        QVERIFY(bmin > 0.5 * o.background && bmax < 2.0 * o.background);
        QVERIFY(std::abs(bsum / back.data.size() - o.background) < 0.5 * o.background);
        QVERIFY(bmax - bmin > 0.01 * o.background); // not flat
        Frame expected = back;
        for (const TruthPeak &t : sim.truth) {
            if (t.frame != f)
                continue;
            const double radius = radiusOf(t.params, o.renderWidths);
            for (int r = 0; r < o.size; ++r)
                for (int c = 0; c < o.size; ++c)
                    if (std::hypot(r - t.params.row, c - t.params.col) <= radius)
                        expected.at(r, c) += float(t.params.evaluate(r, c));
        }
        double worst = 0;
        for (std::size_t i = 0; i < frame.data.size(); ++i)
            worst = std::max(worst, std::abs(double(frame.data[i]) - expected.data[i])
                                        / std::max(1.0, double(expected.data[i])));
        QVERIFY2(worst < 1e-5, qPrintable(QString::number(worst)));
        // The pixel nearest the first peak's centre holds background + its model value (and more
        // than the background alone).
        const TruthPeak &t0 = *std::find_if(sim.truth.begin(), sim.truth.end(),
                                            [&](const TruthPeak &t) { return t.frame == f; });
        const int r0 = int(std::lround(t0.params.row)), c0 = int(std::lround(t0.params.col));
        QVERIFY(frame.at(r0, c0) >= back.at(r0, c0) + 0.3 * t0.params.amplitude);
    }
}

void TestSimFrames::noiseStatistics_data()
{
    QTest::addColumn<double>("background");
    QTest::addColumn<bool>("poisson");
    QTest::addColumn<double>("readNoise");
    QTest::addColumn<double>("variance"); // pixel variance around the noiseless model at `background`
    QTest::newRow("poisson small lambda (Knuth)") << 4.0 << true << 0.0 << 4.0;
    QTest::newRow("poisson lambda 20 (PTRS)") << 20.0 << true << 0.0 << 20.0;
    QTest::newRow("poisson lambda 1000 (PTRS)") << 1000.0 << true << 0.0 << 1000.0;
    QTest::newRow("read noise only") << 50.0 << false << 5.0 << 25.0 + 1.0 / 12;
    QTest::newRow("poisson + read noise") << 20.0 << true << 3.0 << 29.0 + 1.0 / 12;
}

void TestSimFrames::noiseStatistics()
{
    QFETCH(double, background);
    QFETCH(bool, poisson);
    QFETCH(double, readNoise);
    QFETCH(double, variance);
    FrameSimOptions o = smallOptions(5);
    o.peaksPerFrame = 0;
    o.background = background;
    o.poisson = poisson;
    o.readNoise = readNoise;
    o.saturation = 0;
    const SimulatedFrames noisy = simulateFrames(1, o);
    const SimulatedFrames clean = simulateFrames(1, noiseless(o));
    // Poisson variance = the expected count (the smooth background varies around its mean
    // level); rounding to integer counts adds 1/12 when read noise is on.
    if (poisson) {
        const auto &c = clean.frames[0].data;
        variance += std::accumulate(c.begin(), c.end(), 0.0) / c.size() - background;
    }
    std::vector<double> residual;
    for (std::size_t i = 0; i < noisy.frames[0].data.size(); ++i) {
        const float v = noisy.frames[0].data[i];
        QCOMPARE(v, std::nearbyint(v)); // integer counts
        residual.push_back(double(v) - clean.frames[0].data[i]);
    }
    const auto [mean, var] = meanVariance(residual);
    // 65536 pixels: the variance is known to ~0.6% (1 sigma); allow 3%.
    QVERIFY2(std::abs(mean) < 0.02 * std::sqrt(variance) + 0.01, qPrintable(QString::number(mean)));
    QVERIFY2(std::abs(var / variance - 1) < 0.03, qPrintable(QString::number(var)));
}

void TestSimFrames::saturation()
{
    FrameSimOptions o = noiseless(smallOptions(9));
    o.saturation = 0;
    const Frame unclamped = simulateFrames(1, o).frames[0];
    o.saturation = 1000;
    const Frame clamped = simulateFrames(1, o).frames[0];
    int atCeiling = 0, above = 0;
    for (std::size_t i = 0; i < clamped.data.size(); ++i) {
        QCOMPARE(clamped.data[i], std::min(unclamped.data[i], 1000.f));
        atCeiling += clamped.data[i] == 1000.f;
        above += unclamped.data[i] >= 1000.f;
    }
    QVERIFY(above > 0);
    QCOMPARE(atCeiling, above);
    // With noise: integer counts in [0, saturation].
    FrameSimOptions noisy = smallOptions(9);
    noisy.saturation = 1000;
    const Frame n = simulateFrames(1, noisy).frames[0];
    QCOMPARE(*std::max_element(n.data.begin(), n.data.end()), 1000.f);
    QVERIFY(*std::min_element(n.data.begin(), n.data.end()) >= 0.f);
}

void TestSimFrames::progressAndCancel()
{
    FrameSimOptions o = smallOptions();
    o.size = 64;
    std::vector<double> fractions;
    std::mutex m;
    Monitor monitor;
    monitor.progress = [&](double f, const std::string &) {
        std::lock_guard<std::mutex> lock(m);
        fractions.push_back(f);
    };
    simulateFrames(5, o, monitor);
    QCOMPARE(int(fractions.size()), 5);
    QCOMPARE(*std::max_element(fractions.begin(), fractions.end()), 1.0);

    Monitor cancelled;
    cancelled.cancel.cancel();
    QVERIFY_THROWS_EXCEPTION(CancelledError, simulateFrames(5, o, cancelled));
}

void TestSimFrames::badOptions()
{
    FrameSimOptions o = smallOptions();
    o.size = 0;
    QVERIFY_THROWS_EXCEPTION(InputError, simulateFrames(1, o));
    o = smallOptions();
    o.amplitudeMin = 0;
    QVERIFY_THROWS_EXCEPTION(InputError, simulateFrames(1, o));
    o = smallOptions();
    o.sigmaMax = 0.1;
    QVERIFY_THROWS_EXCEPTION(InputError, simulateFrames(1, o));
}

void TestSimFrames::writeFormats_data()
{
    QTest::addColumn<int>("format");
    QTest::addColumn<QString>("name");
    QTest::addColumn<QString>("truthFile");
    QTest::addColumn<int>("size");
    QTest::newRow("hdf5") << int(SimFormat::HDF5) << "sim.h5" << "sim.h5" << 300;
    QTest::newRow("ge2") << int(SimFormat::GE2) << "sim.ge2" << "sim.ge2.truth.h5" << 2048;
    QTest::newRow("tiff") << int(SimFormat::TIFF) << "sim.tif" << "sim.tif.truth.h5" << 300;
}

void TestSimFrames::writeFormats()
{
    QFETCH(int, format);
    QFETCH(QString, name);
    QFETCH(QString, truthFile);
    QFETCH(int, size);
    QTemporaryDir dir;
    FrameSimOptions o = smallOptions(13);
    o.size = size;
    o.peaksPerFrame = 25;
    o.closePairFraction = 0.2;
    const int frames = size == 2048 ? 1 : 2;
    const SimulatedFrames sim = simulateFrames(frames, o);
    const std::string path = dir.filePath(name).toStdString();
    writeSimulatedFrames(path, sim, SimFormat(format));

    auto source = openFrameSource(path);
    QCOMPARE(source->frameCount(), frames);
    QCOMPARE(source->rows(), size);
    for (int f = 0; f < frames; ++f) {
        const Frame back = source->readFrame(f);
        std::size_t mismatches = 0;
        for (std::size_t i = 0; i < back.data.size(); ++i)
            mismatches += back.data[i] != sim.frames[f].data[i];
        QCOMPARE(mismatches, std::size_t(0)); // integer counts: exact
    }
    if (format == int(SimFormat::HDF5))
        QCOMPARE(source->pixelType(), PixelType::UInt16);

    const std::string truthPath = dir.filePath(truthFile).toStdString();
    hdf5::Lock lock;
    hdf5::Handle file = hdf5::openFile(truthPath);
    auto read = [&](const char *ds, auto tag) {
        hdf5::Handle d = hdf5::openDataset(file, ds, truthPath);
        return std::make_pair(hdf5::datasetShape(d),
                              hdf5::readAll<decltype(tag)>(d, truthPath, ds));
    };
    const std::size_t m = sim.truth.size();
    const auto [fiShape, frameIndex] = read("/truth/frame_index", std::int32_t{});
    const auto [cShape, center] = read("/truth/center", float{});
    const auto [aShape, amplitude] = read("/truth/amplitude", float{});
    const auto [pShape, params] = read("/truth/params", float{});
    const auto [cpShape, closePair] = read("/truth/close_pair", std::uint8_t{});
    QCOMPARE(fiShape, std::vector<unsigned long long>({m}));
    QCOMPARE(cShape, std::vector<unsigned long long>({m, 2}));
    QCOMPARE(aShape, std::vector<unsigned long long>({m}));
    QCOMPARE(pShape, std::vector<unsigned long long>({m, 10}));
    QCOMPARE(cpShape, std::vector<unsigned long long>({m}));
    {
        hdf5::Handle d = hdf5::openDataset(file, "/truth/params", truthPath);
        QCOMPARE(hdf5::typeName(hdf5::typeHandle(H5Dget_type(d))), std::string("float32"));
        QCOMPARE(hdf5::readStringAttribute(d, "columns", truthPath),
                 std::string("amplitude,background,row,col,sigma_u,sigma_v,gamma_u,gamma_v,eta,theta"));
    }
    for (std::size_t i = 0; i < m; ++i) {
        const TruthPeak &t = sim.truth[i];
        QCOMPARE(frameIndex[i], t.frame);
        QCOMPARE(center[2 * i], float(t.params.row));
        QCOMPARE(center[2 * i + 1], float(t.params.col));
        QCOMPARE(amplitude[i], float(t.params.amplitude));
        QCOMPARE(params[10 * i + 9], float(t.params.theta));
        QCOMPARE(params[10 * i + 4], float(t.params.sigmaU));
        QCOMPARE(int(closePair[i]), t.closePair ? 1 : 0);
    }
    // Nothing but the outputs in the folder (no temporary left behind).
    int files = 0;
    for (const auto &e : std::filesystem::directory_iterator(dir.path().toStdString())) {
        ++files;
        const std::string n = e.path().filename().string();
        QVERIFY2(n == name.toStdString() || n == truthFile.toStdString(), n.c_str());
    }
    QCOMPARE(files, name == truthFile ? 1 : 2);
}

void TestSimFrames::writeIsAtomic()
{
    QTemporaryDir dir;
    FrameSimOptions o = smallOptions();
    o.size = 64;
    const SimulatedFrames sim = simulateFrames(1, o);
    // GE frames must be 2048 x 2048: the write fails and leaves neither file nor sidecar.
    const std::string ge = dir.filePath("bad.ge2").toStdString();
    QVERIFY_THROWS_EXCEPTION(InputError, writeSimulatedFrames(ge, sim, SimFormat::GE2));
    QVERIFY(std::filesystem::is_empty(dir.path().toStdString()));
    // Missing output folder: InputError naming the path.
    const std::string missing = dir.filePath("no/such/dir/x.h5").toStdString();
    try {
        writeSimulatedFrames(missing, sim, SimFormat::HDF5);
        QFAIL("expected InputError");
    } catch (const InputError &e) {
        QVERIFY(std::string(e.what()).find("no/such/dir") != std::string::npos);
    }
    QVERIFY(std::filesystem::is_empty(dir.path().toStdString()));
}

void TestSimFrames::cliFrames_data()
{
    QTest::addColumn<QString>("name");
    QTest::addColumn<QStringList>("extra");
    QTest::addColumn<QString>("truthFile");
    QTest::addColumn<int>("size");
    QTest::addColumn<int>("frames");
    QTest::newRow("hdf5 by extension") << "f.h5" << QStringList{} << "f.h5" << 128 << 3;
    QTest::newRow("tiff by extension") << "f.tiff" << QStringList{} << "f.tiff.truth.h5" << 96 << 2;
    QTest::newRow("ge2 by extension") << "f.ge2" << QStringList{} << "f.ge2.truth.h5" << 2048 << 1;
    QTest::newRow("hdf5 by --format") << "f.dat" << QStringList{"--format", "h5"} << "f.dat" << 64 << 2;
}

void TestSimFrames::cliFrames()
{
    QFETCH(QString, name);
    QFETCH(QStringList, extra);
    QFETCH(QString, truthFile);
    QFETCH(int, size);
    QFETCH(int, frames);
    QTemporaryDir dir;
    const QString out = dir.filePath(name);
    const CliResult r = runCli(QStringList{"simulate", "frames", "--out", out, "--frames", QString::number(frames),
                                           "--size", QString::number(size), "--peaks", "12", "--seed", "77",
                                           "--close-fraction", "0.25", "--json"} + extra);
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const nlohmann::json j = nlohmann::json::parse(r.out.toStdString());
    QCOMPARE(j["frames"].get<int>(), frames);
    QCOMPARE(j["peaks"].get<int>(), 12 * frames);
    QCOMPARE(j["close_pair_peaks"].get<int>(), 6 * frames);
    QCOMPARE(QString::fromStdString(j["out"].get<std::string>()), out);
    QCOMPARE(QString::fromStdString(j["truth"].get<std::string>()), dir.filePath(truthFile));
    // The same frames as the library with the same options.
    FrameSimOptions o;
    o.size = size;
    o.peaksPerFrame = 12;
    o.seed = 77;
    o.closePairFraction = 0.25;
    const SimulatedFrames sim = simulateFrames(frames, o);
    const auto source = openFrameSource(out.toStdString());
    QCOMPARE(source->frameCount(), frames);
    for (int f = 0; f < frames; ++f)
        QVERIFY(source->readFrame(f).data == sim.frames[f].data);
    QVERIFY(listHdf5Datasets(dir.filePath(truthFile).toStdString()).size() >= 5);
}

void TestSimFrames::cliPatches()
{
    QTemporaryDir dir;
    const QString out = dir.filePath(QStringLiteral("p.h5"));
    const CliResult r = runCli({"simulate", "patches", "--out", out, "--n", "300", "--patch-size", "9",
                                "--seed", "5", "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const nlohmann::json j = nlohmann::json::parse(r.out.toStdString());
    QCOMPARE(j["patches"].get<int>(), 300);
    const PatchDataset d = readPatchDataset(out.toStdString());
    QCOMPARE(int(d.size()), 300);
    QCOMPARE(d.patchSize, 9);
    QCOMPARE(d.labelSource, std::string("simulation"));
    PatchSimOptions o;
    o.patchSize = 9;
    o.seed = 5;
    const PatchDataset expected = simulatePatches(300, o);
    QVERIFY(d.patches == expected.patches);
    QVERIFY(d.centers == expected.centers);
}

void TestSimFrames::cliBadUsage_data()
{
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("mentions");
    QTest::newRow("no subcommand") << QStringList{"simulate", "--out", "@OUT@"} << "frames or patches";
    QTest::newRow("unknown subcommand") << QStringList{"simulate", "peaks", "--out", "@OUT@"} << "peaks";
    QTest::newRow("unknown format") << QStringList{"simulate", "frames", "--out", "@OUT@", "--format", "png"} << "--format";
    QTest::newRow("no format from extension") << QStringList{"simulate", "frames", "--out", "@DIR@/x.dat"} << "x.dat";
    QTest::newRow("ge2 needs 2048") << QStringList{"simulate", "frames", "--out", "@DIR@/x.ge2", "--size", "512"} << "2048";
    QTest::newRow("zero frames") << QStringList{"simulate", "frames", "--out", "@OUT@", "--frames", "0"} << "--frames";
    QTest::newRow("missing folder") << QStringList{"simulate", "frames", "--out", "@DIR@/no/x.h5", "--size", "64"} << "no/x.h5";
    QTest::newRow("unknown option") << QStringList{"simulate", "frames", "--out", "@OUT@", "--peaks-per-frame", "3"} << "--peaks-per-frame";
    QTest::newRow("zero patches") << QStringList{"simulate", "patches", "--out", "@OUT@", "--n", "0"} << "--n";
    QTest::newRow("even patch size") << QStringList{"simulate", "patches", "--out", "@OUT@", "--patch-size", "8"} << "--patch-size";
}

void TestSimFrames::cliBadUsage()
{
    QFETCH(QStringList, args);
    QFETCH(QString, mentions);
    QTemporaryDir dir;
    for (QString &a : args)
        a.replace(QStringLiteral("@OUT@"), dir.filePath(QStringLiteral("out.h5"))).replace(QStringLiteral("@DIR@"), dir.path());
    const CliResult r = runCli(args);
    QCOMPARE(r.exitCode, 2);
    const QString first = QString::fromUtf8(r.err).section(QLatin1Char('\n'), 0, 0);
    QVERIFY2(first.contains(mentions), qPrintable(first));
    QVERIFY(r.out.isEmpty());
    QVERIFY(QDir(dir.path()).entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot).isEmpty());
}

QTEST_GUILESS_MAIN(TestSimFrames)
#include "tst_simframes.moc"
