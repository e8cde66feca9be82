// simulateFrames / writeSimulatedFrames: synthetic HEDM-like frames with ground truth.
//
// Randomness: every frame draws from three streams (simrandom.h) seeded from (seed, frame,
// stream) -- background, peaks, noise -- so a frame does not depend on the thread that made it,
// and the background does not depend on the number of peaks.
#include "core/sim/simulator.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/common/atomicfile.h"
#include "core/common/error.h"
#include "core/common/parallel.h"
#include "core/io/framesource.h"
#include "core/io/hdf5util.h"
#include "core/sim/optioncheck.h"
#include "core/sim/simrandom.h"

namespace braggnac::core {

namespace {

enum Stream : std::uint64_t { BackgroundStream = 1, PeakStream = 2, NoiseStream = 3 };

using sim::kPi;
using Rng = sim::Random;

std::uint64_t streamSeed(std::uint64_t seed, int frame, Stream stream)
{
    return sim::streamSeed(seed, std::uint64_t(frame), stream);
}

/// Smooth background: mean level times a gentle quadratic tilt, plus three broad Gaussian bumps
/// (separable, so the frame costs two small exp tables).
void fillBackground(Frame &frame, int index, const FrameSimOptions &o)
{
    const int n = frame.rows;
    if (o.background <= 0) {
        std::fill(frame.data.begin(), frame.data.end(), 0.f);
        return;
    }
    Rng rng(streamSeed(o.seed, index, BackgroundStream));
    double coef[5];
    for (double &c : coef)
        c = rng.uniform(-0.05, 0.05);
    struct Bump {
        std::vector<double> rowFactor, colFactor;
        double amplitude;
    };
    Bump bumps[3];
    for (Bump &b : bumps) {
        const double cr = rng.uniform(0, n), cc = rng.uniform(0, n);
        const double s = rng.uniform(n / 16.0, n / 6.0);
        b.amplitude = rng.uniform(0, 0.3) * o.background;
        b.rowFactor.resize(n);
        b.colFactor.resize(n);
        for (int i = 0; i < n; ++i) {
            b.rowFactor[i] = std::exp(-0.5 * (i - cr) * (i - cr) / (s * s));
            b.colFactor[i] = std::exp(-0.5 * (i - cc) * (i - cc) / (s * s));
        }
    }
    const double scale = n > 1 ? 2.0 / (n - 1) : 0.0;
    for (int r = 0; r < n; ++r) {
        const double y = r * scale - 1;
        float *out = frame.data.data() + std::size_t(r) * n;
        for (int c = 0; c < n; ++c) {
            const double x = c * scale - 1;
            const double tilt = coef[0] * x + coef[1] * y + coef[2] * x * y + coef[3] * x * x
                + coef[4] * y * y;
            double v = o.background * (1 + tilt);
            for (const Bump &b : bumps)
                v += b.amplitude * b.rowFactor[r] * b.colFactor[c];
            out[c] = float(v);
        }
    }
}

PseudoVoigt randomShape(Rng &rng, const FrameSimOptions &o)
{
    PseudoVoigt p;
    p.amplitude = o.amplitudeMin * std::exp(rng.uniform() * std::log(o.amplitudeMax / o.amplitudeMin));
    p.background = 0;
    p.sigmaU = rng.uniform(o.sigmaMin, o.sigmaMax);
    p.sigmaV = rng.uniform(o.sigmaMin, o.sigmaMax);
    p.gammaU = rng.uniform(o.gammaMin, o.gammaMax);
    p.gammaV = rng.uniform(o.gammaMin, o.gammaMax);
    p.eta = rng.uniform();
    p.theta = rng.uniform(0, kPi);
    return p;
}

/// Independent peaks first, then the close partners: each placed 2-5 px from a distinct
/// independent peak (both flagged closePair).
std::vector<TruthPeak> randomPeaks(int index, const FrameSimOptions &o)
{
    Rng rng(streamSeed(o.seed, index, PeakStream));
    const int n = std::max(0, o.peaksPerFrame);
    const double maxPos = o.size - 1;
    int nClose = int(std::lround(n * std::clamp(o.closePairFraction, 0.0, 1.0)));
    nClose = std::min(nClose, n / 2);
    const int nIndependent = n - nClose;
    std::vector<TruthPeak> peaks(static_cast<std::size_t>(n));
    for (int i = 0; i < nIndependent; ++i) {
        TruthPeak &t = peaks[i];
        t.frame = index;
        t.params = randomShape(rng, o);
        t.params.row = rng.uniform(0, maxPos);
        t.params.col = rng.uniform(0, maxPos);
    }
    for (int k = 0; k < nClose; ++k) {
        TruthPeak &partner = peaks[k];
        TruthPeak &t = peaks[nIndependent + k];
        t.frame = index;
        t.params = randomShape(rng, o);
        const double d = rng.uniform(2, 5);
        const double angle = rng.uniform(0, 2 * kPi);
        double dr = d * std::sin(angle), dc = d * std::cos(angle);
        // Mirror the offset when it would leave the frame.
        if (partner.params.row + dr < 0 || partner.params.row + dr > maxPos)
            dr = -dr;
        if (partner.params.col + dc < 0 || partner.params.col + dc > maxPos)
            dc = -dc;
        t.params.row = std::clamp(partner.params.row + dr, 0.0, maxPos);
        t.params.col = std::clamp(partner.params.col + dc, 0.0, maxPos);
        t.closePair = partner.closePair = true;
    }
    return peaks;
}

/// Adds the peak within a disc of renderWidths * its largest width.
void renderPeak(Frame &frame, const PseudoVoigt &p, double renderWidths)
{
    const double radius = renderWidths * std::max({p.sigmaU, p.sigmaV, p.gammaU, p.gammaV});
    const int r0 = std::max(0, int(std::ceil(p.row - radius)));
    const int r1 = std::min(frame.rows - 1, int(std::floor(p.row + radius)));
    const int c0 = std::max(0, int(std::ceil(p.col - radius)));
    const int c1 = std::min(frame.cols - 1, int(std::floor(p.col + radius)));
    const double r2 = radius * radius;
    for (int r = r0; r <= r1; ++r) {
        float *out = frame.data.data() + std::size_t(r) * frame.cols;
        const double dr = r - p.row;
        for (int c = c0; c <= c1; ++c) {
            const double dc = c - p.col;
            if (dr * dr + dc * dc <= r2)
                out[c] = float(out[c] + p.evaluate(r, c));
        }
    }
}

void addNoiseAndClamp(Frame &frame, int index, const FrameSimOptions &o)
{
    const bool noisy = o.poisson || o.readNoise > 0;
    const double sat = o.saturation > 0 ? o.saturation : HUGE_VAL;
    if (!noisy) {
        for (float &v : frame.data)
            v = float(std::min<double>(v, sat));
        return;
    }
    Rng rng(streamSeed(o.seed, index, NoiseStream));
    for (float &v : frame.data) {
        double x = o.poisson ? rng.poisson(v) : double(v);
        if (o.readNoise > 0)
            x += o.readNoise * rng.normal();
        v = float(std::clamp(std::nearbyint(x), 0.0, sat));
    }
}

} // namespace

void FrameSimOptions::validate(const std::string &source) const
{
    sim::OptionCheck c{source};
    c.integer("size", size, 1, 65536);
    c.integer("peaks_per_frame", peaksPerFrame, 0, 1000000);
    c.range("amplitude_min", amplitudeMin, "amplitude_max", amplitudeMax);
    c.range("sigma_min", sigmaMin, "sigma_max", sigmaMax);
    c.range("gamma_min", gammaMin, "gamma_max", gammaMax);
    c.fraction("close_pair_fraction", closePairFraction);
    c.atLeastZero("background", background);
    c.atLeastZero("read_noise", readNoise);
    c.atLeastZero("saturation", saturation, " (0 disables it)");
    c.positive("render_widths", renderWidths);
}

SimulatedFrames simulateFrames(int count, const FrameSimOptions &options, const Monitor &monitor)
{
    options.validate();
    if (count < 0)
        throw InputError("simulate frames: count: must be >= 0, got " + std::to_string(count));
    sim::OptionCheck{"simulate frames"}.fitsMemory(
        "count", (long double)count * options.size * options.size * sizeof(float),
        std::to_string(count) + " frames of " + std::to_string(options.size) + " x "
            + std::to_string(options.size));
    SimulatedFrames sim;
    sim.frames.resize(std::size_t(count));
    std::vector<std::vector<TruthPeak>> truth(static_cast<std::size_t>(count));
    std::atomic<int> done{0};
    parallelChunks(
        std::size_t(count), options.threads, 1,
        [&](std::size_t begin, std::size_t end, int) {
            for (std::size_t f = begin; f < end; ++f) {
                const int index = int(f);
                Frame frame(options.size, options.size);
                fillBackground(frame, index, options);
                truth[f] = randomPeaks(index, options);
                for (const TruthPeak &t : truth[f])
                    renderPeak(frame, t.params, options.renderWidths);
                addNoiseAndClamp(frame, index, options);
                sim.frames[f] = std::move(frame);
                const int n = ++done;
                monitor.report(double(n) / count,
                               "frame " + std::to_string(n) + "/" + std::to_string(count));
            }
        },
        [&] { return monitor.cancelled(); });
    monitor.check();
    for (auto &t : truth)
        sim.truth.insert(sim.truth.end(), t.begin(), t.end());
    return sim;
}

namespace {

void writeTruth(hid_t file, const std::vector<TruthPeak> &truth)
{
    const std::size_t m = truth.size();
    std::vector<std::int32_t> frameIndex(m);
    std::vector<float> center(m * 2), amplitude(m), params(m * PseudoVoigt::kParameterCount);
    std::vector<std::uint8_t> closePair(m);
    for (std::size_t i = 0; i < m; ++i) {
        const TruthPeak &t = truth[i];
        frameIndex[i] = t.frame;
        center[2 * i] = float(t.params.row);
        center[2 * i + 1] = float(t.params.col);
        amplitude[i] = float(t.params.amplitude);
        const auto p = t.params.toArray();
        for (int k = 0; k < PseudoVoigt::kParameterCount; ++k)
            params[i * PseudoVoigt::kParameterCount + k] = float(p[k]);
        closePair[i] = t.closePair ? 1 : 0;
    }
    const unsigned long long n = m;
    hdf5::writeDataset(file, "/truth/frame_index", {n}, frameIndex.data(), H5T_STD_I32LE, 4);
    hdf5::writeDataset(file, "/truth/center", {n, 2}, center.data(), H5T_IEEE_F32LE, 4);
    hdf5::writeDataset(file, "/truth/amplitude", {n}, amplitude.data(), H5T_IEEE_F32LE, 4);
    hdf5::writeDataset(file, "/truth/params", {n, (unsigned long long)PseudoVoigt::kParameterCount},
                       params.data(), H5T_IEEE_F32LE, 4);
    hdf5::writeDataset(file, "/truth/close_pair", {n}, closePair.data(), H5T_STD_U8LE, 4);
    std::string columns;
    for (const char *name : PseudoVoigt::names())
        columns += (columns.empty() ? "" : ",") + std::string(name);
    hdf5::Handle ds = hdf5::openDataset(file, "/truth/params", "");
    hdf5::writeStringAttribute(ds, "columns", columns);
}

} // namespace

void writeSimulatedFrames(const std::string &path, const SimulatedFrames &sim, SimFormat format)
{
    if (format == SimFormat::HDF5) {
        AtomicOutput out(path);
        writeHdf5Frames(out.tempPath(), sim.frames);
        {
            hdf5::Lock lock;
            hdf5::Handle file = hdf5::fileHandle(H5Fopen(out.tempPath().c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
            if (!file.valid())
                throw Error(fileMessage(path, "cannot reopen the written frames to add /truth"));
            writeTruth(file, sim.truth);
        }
        out.commit();
        return;
    }
    AtomicOutput frames(path);
    AtomicOutput sidecar(path + ".truth.h5");
    if (format == SimFormat::GE2)
        writeGeFrames(frames.tempPath(), sim.frames);
    else
        writeTiffFrames(frames.tempPath(), sim.frames);
    {
        hdf5::Lock lock;
        hdf5::Handle file = hdf5::createFile(sidecar.tempPath());
        writeTruth(file, sim.truth);
    }
    frames.commit();
    sidecar.commit();
}

} // namespace braggnac::core
