// Peak finder. Per frame: robust background statistics on a pixel subsample, one pass that
// builds the foreground mask and the list of foreground pixels, OpenCV's 8-connected labelling
// (cv::connectedComponents; the per-component statistics -- size, maximum, centroid -- are
// accumulated here over the sparse foreground list instead of cv::connectedComponentsWithStats'
// full-frame pass), then one patch per kept component.
#include "core/peaks/finder.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "core/common/error.h"
#include "core/common/parallel.h"
#include "core/io/framesource.h"

namespace braggnac::core {

namespace {

// Frames with more pixels than this get their median / MAD from a subsample of about
// kSampleTarget pixels: runs of kSampleRun consecutive pixels (one cache line of floats) every
// `stride` pixels, the stride odd so that the runs walk through all columns.
constexpr std::size_t kFullSampleLimit = 512 * 512;
constexpr std::size_t kSampleTarget = 32768;
constexpr std::size_t kSampleRun = 16;

// A second local maximum counts towards "merged" when it is at least this fraction of the
// component's height above background and a dip of kMergeDip (and 4 sigma) separates it.
constexpr double kMergeHeight = 0.5;
constexpr double kMergeDip = 0.2;
constexpr std::size_t kMaxMergeCandidates = 16;

double medianInPlace(std::vector<float> &v)
{
    if (v.empty())
        return 0;
    const std::size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + mid, v.end());
    const double upper = v[mid];
    if (v.size() % 2 == 1)
        return upper;
    const double lower = *std::max_element(v.begin(), v.begin() + mid);
    return 0.5 * (lower + upper);
}

void checkOptions(const FinderOptions &o)
{
    if (o.patchSize < 1 || o.patchSize % 2 == 0)
        throw InputError("peak finder: patch size must be odd and >= 1, got "
                         + std::to_string(o.patchSize));
    if (o.minPixels < 1 || o.maxPixels < o.minPixels)
        throw InputError("peak finder: pixel limits must satisfy 1 <= min (" + std::to_string(o.minPixels)
                         + ") <= max (" + std::to_string(o.maxPixels) + ")");
    if (!std::isfinite(o.threshold) || !std::isfinite(o.autoSigma))
        throw InputError("peak finder: threshold and auto sigma must be finite numbers");
}

struct Component {
    int area = 0;
    float maxValue = -std::numeric_limits<float>::infinity();
    std::size_t maxIndex = 0;
    double sumW = 0, sumWR = 0, sumWC = 0; // weights = value - background
    double sumR = 0, sumC = 0;             // unweighted, the fallback when sumW <= 0
    std::size_t firstPixel = 0;            // offset into the per-component pixel list
};

/// True when the component holds a second local maximum at least kMergeHeight of the
/// component's height above background that is separated from every higher maximum by a dip:
/// from it, no path through the component reaches a higher pixel without descending by
/// max(kMergeDip x its height, 4 sigma) (4 sigma ~ 3 sigma of the difference of two pixels).
bool isMerged(const float *data, int cols, const std::size_t *pixels, int count, float maxValue,
              double background, double sigma)
{
    const double top = maxValue - background;
    if (count < 3 || !(top > 0))
        return false;
    int r0 = INT_MAX, c0 = INT_MAX, r1 = -1, c1 = -1;
    for (int i = 0; i < count; ++i) {
        const int r = int(pixels[i] / cols), c = int(pixels[i] % cols);
        r0 = std::min(r0, r);
        r1 = std::max(r1, r);
        c0 = std::min(c0, c);
        c1 = std::max(c1, c);
    }
    const int h = r1 - r0 + 1, w = c1 - c0 + 1;
    // Local copy of the component: value inside, -inf outside.
    std::vector<float> local(std::size_t(h) * w, -std::numeric_limits<float>::infinity());
    for (int i = 0; i < count; ++i) {
        const int r = int(pixels[i] / cols), c = int(pixels[i] % cols);
        local[std::size_t(r - r0) * w + (c - c0)] = data[pixels[i]];
    }
    auto at = [&](int r, int c) {
        return r < 0 || c < 0 || r >= h || c >= w ? -std::numeric_limits<float>::infinity()
                                                  : local[std::size_t(r) * w + c];
    };
    std::vector<int> candidates; // local indices of local maxima high enough
    for (int r = 0; r < h; ++r)
        for (int c = 0; c < w; ++c) {
            const float v = at(r, c);
            if (!(v - background >= kMergeHeight * top))
                continue;
            bool isMax = true;
            for (int dr = -1; dr <= 1 && isMax; ++dr)
                for (int dc = -1; dc <= 1; ++dc)
                    if (at(r + dr, c + dc) > v) {
                        isMax = false;
                        break;
                    }
            if (isMax)
                candidates.push_back(r * w + c);
        }
    if (candidates.size() < 2)
        return false;
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](int a, int b) { return local[a] > local[b]; });
    if (candidates.size() > kMaxMergeCandidates)
        candidates.resize(kMaxMergeCandidates);
    std::vector<std::uint8_t> seen(local.size());
    std::vector<int> stack;
    for (std::size_t j = 1; j < candidates.size(); ++j) {
        const float v = local[candidates[j]];
        const double level = v - std::max(kMergeDip * (v - background), 4 * sigma);
        std::fill(seen.begin(), seen.end(), 0);
        stack.assign(1, candidates[j]);
        seen[candidates[j]] = 1;
        bool connected = false;
        while (!stack.empty() && !connected) {
            const int k = stack.back();
            stack.pop_back();
            const int r = k / w, c = k % w;
            for (int dr = -1; dr <= 1 && !connected; ++dr)
                for (int dc = -1; dc <= 1; ++dc) {
                    const float u = at(r + dr, c + dc);
                    const int n = (r + dr) * w + (c + dc);
                    if (!(u >= level) || seen[n])
                        continue;
                    if (u > v || std::find(candidates.begin(), candidates.begin() + j, n)
                                     != candidates.begin() + j) {
                        connected = true;
                        break;
                    }
                    seen[n] = 1;
                    stack.push_back(n);
                }
        }
        if (!connected)
            return true;
    }
    return false;
}

/// Everything after the labelling: per-component statistics over the foreground list, size
/// filters, peaks in row-major order of their maxima, merged flags and patches.
template <typename Label>
std::vector<Peak> collectPeaks(const Frame &frame, int frameIndex, const FinderOptions &options,
                               const FrameThreshold &thr, const Label *labels, int labelCount,
                               const std::vector<std::size_t> &foreground, std::vector<float> *patches)
{
    const double background = thr.background;
    const int rows = frame.rows, cols = frame.cols;
    const float *data = frame.data.data();
    std::vector<Peak> peaks;
    // Statistics per component over the foreground list (row-major order, so a strict '>' keeps
    // the first maximum in row-major order on ties).
    std::vector<Component> comps(static_cast<std::size_t>(labelCount));
    for (std::size_t idx : foreground) {
        Component &c = comps[std::size_t(labels[idx])];
        const float v = data[idx];
        const double w = double(v) - background;
        const double r = double(idx / cols), col = double(idx % cols);
        ++c.area;
        if (v > c.maxValue) {
            c.maxValue = v;
            c.maxIndex = idx;
        }
        c.sumW += w;
        c.sumWR += w * r;
        c.sumWC += w * col;
        c.sumR += r;
        c.sumC += col;
    }
    // Pixels grouped by component (counting sort), for the merged test.
    std::size_t offset = 0;
    for (Component &c : comps) {
        c.firstPixel = offset;
        offset += std::size_t(c.area);
    }
    std::vector<std::size_t> grouped(foreground.size());
    {
        std::vector<std::size_t> fill(comps.size());
        for (std::size_t k = 0; k < comps.size(); ++k)
            fill[k] = comps[k].firstPixel;
        for (std::size_t idx : foreground)
            grouped[fill[std::size_t(labels[idx])]++] = idx;
    }

    std::vector<int> kept;
    for (int k = 1; k < labelCount; ++k)
        if (comps[k].area >= options.minPixels && comps[k].area <= options.maxPixels)
            kept.push_back(k);
    std::sort(kept.begin(), kept.end(),
              [&](int a, int b) { return comps[a].maxIndex < comps[b].maxIndex; });

    const int s = options.patchSize, half = s / 2;
    const float fill = float(background);
    peaks.reserve(kept.size());
    if (patches)
        patches->reserve(patches->size() + kept.size() * std::size_t(s) * s);
    for (int k : kept) {
        const Component &c = comps[k];
        Peak p;
        p.frame = frameIndex;
        p.row = int(c.maxIndex / cols);
        p.col = int(c.maxIndex % cols);
        p.maxValue = c.maxValue;
        p.pixels = c.area;
        p.sum = c.sumW;
        if (c.sumW > 0) {
            p.centroidRow = c.sumWR / c.sumW;
            p.centroidCol = c.sumWC / c.sumW;
        } else {
            p.centroidRow = c.sumR / c.area;
            p.centroidCol = c.sumC / c.area;
        }
        p.background = fill;
        p.originRow = p.row - half;
        p.originCol = p.col - half;
        p.border = p.originRow < 0 || p.originCol < 0 || p.originRow + s > rows
            || p.originCol + s > cols;
        p.merged = isMerged(data, cols, grouped.data() + c.firstPixel, c.area, c.maxValue,
                            background, thr.sigma);
        if (patches) {
            for (int r = p.originRow; r < p.originRow + s; ++r) {
                for (int col = p.originCol; col < p.originCol + s; ++col) {
                    float v = fill;
                    if (r >= 0 && col >= 0 && r < rows && col < cols) {
                        const std::size_t idx = std::size_t(r) * cols + col;
                        const int l = labels[idx];
                        if (std::isfinite(data[idx]) && !(options.maskOthers && l != 0 && l != k))
                            v = data[idx];
                    }
                    patches->push_back(v);
                }
            }
        }
        peaks.push_back(p);
    }
    return peaks;
}

} // namespace

FrameThreshold frameThreshold(const Frame &frame, const FinderOptions &options)
{
    FrameThreshold t;
    const std::size_t n = frame.data.size();
    const bool full = n <= kFullSampleLimit;
    const std::size_t run = full ? n : kSampleRun;
    const std::size_t stride = full ? n : ((n / kSampleTarget) * kSampleRun) | 1;
    std::vector<float> sample;
    sample.reserve(full ? n : (n / stride + 1) * run);
    const float *d = frame.data.data();
    for (std::size_t start = 0; start < n; start += stride)
        for (std::size_t i = start; i < std::min(n, start + run); ++i)
            if (std::isfinite(d[i]))
                sample.push_back(d[i]);
    if (!sample.empty()) {
        t.background = medianInPlace(sample);
        for (float &v : sample)
            v = std::fabs(v - float(t.background));
        t.sigma = 1.4826 * medianInPlace(sample);
    }
    t.threshold = options.threshold >= 0 ? options.threshold
                                         : t.background + options.autoSigma * t.sigma;
    return t;
}

std::vector<Peak> findPeaks(const Frame &frame, int frameIndex, const FinderOptions &options,
                            std::vector<float> *patches)
{
    checkOptions(options);
    std::vector<Peak> peaks;
    if (frame.empty() || frame.rows <= 0 || frame.cols <= 0)
        return peaks;
    if (frame.data.size() != std::size_t(frame.rows) * frame.cols)
        throw InputError("peak finder: frame " + std::to_string(frameIndex) + " holds "
                         + std::to_string(frame.data.size()) + " values, expected rows x cols = "
                         + std::to_string(std::size_t(frame.rows) * frame.cols));
    const FrameThreshold thr = frameThreshold(frame, options);
    const float threshold = float(thr.threshold);
    const std::size_t n = frame.data.size();
    const float *data = frame.data.data();

    // Foreground: finite and strictly above the threshold (NaN and +-Inf never are). The mask
    // and label buffers are reused by each thread from frame to frame.
    thread_local cv::Mat mask, labels16, labels32;
    mask.create(frame.rows, frame.cols, CV_8U);
    std::uint8_t *m = mask.ptr<std::uint8_t>();
    for (std::size_t i = 0; i < n; ++i) {
        const float v = data[i];
        m[i] = std::uint8_t((v > threshold) & (v <= FLT_MAX));
    }
    std::vector<std::size_t> foreground;
    {
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            std::uint64_t word;
            std::memcpy(&word, m + i, 8);
            if (word == 0)
                continue;
            for (std::size_t k = i; k < i + 8; ++k)
                if (m[k])
                    foreground.push_back(k);
        }
        for (; i < n; ++i)
            if (m[i])
                foreground.push_back(i);
    }
    if (foreground.empty())
        return peaks;

    // Fewer foreground pixels than 16-bit labels can count: CV_16U labels halve the memory
    // traffic (and OpenCV runs its sequential labelling for them, no nested thread pool).
    if (foreground.size() < 65535) {
        const int count = cv::connectedComponents(mask, labels16, 8, CV_16U);
        return collectPeaks(frame, frameIndex, options, thr, labels16.ptr<std::uint16_t>(), count,
                            foreground, patches);
    }
    const int count = cv::connectedComponents(mask, labels32, 8, CV_32S);
    return collectPeaks(frame, frameIndex, options, thr, labels32.ptr<int>(), count, foreground,
                        patches);
}

namespace {

/// Gives frame `index`: a reference to a frame in memory, or one read (and dark-subtracted) into
/// `scratch`.
using FrameGetter = std::function<const Frame &(int index, Frame &scratch)>;

PatchDataset runFinder(int first, int last, const FrameGetter &get,
                       const FinderOptions &options, const Monitor &monitor,
                       std::vector<Peak> *peaksOut)
{
    const std::size_t frames = std::size_t(last - first);
    std::vector<std::vector<Peak>> peaks(frames);
    std::vector<std::vector<float>> patches(frames);
    std::atomic<std::size_t> done{0};
    parallelChunks(
        frames, options.threads, 1,
        [&](std::size_t begin, std::size_t end, int) {
            Frame scratch;
            for (std::size_t i = begin; i < end; ++i) {
                const int index = first + int(i);
                peaks[i] = findPeaks(get(index, scratch), index, options, &patches[i]);
                const std::size_t n = ++done;
                monitor.report(double(n) / frames, "frame " + std::to_string(n) + "/"
                                                      + std::to_string(frames));
            }
        },
        [&] { return monitor.cancelled(); });
    monitor.check();

    std::size_t total = 0;
    for (const auto &p : peaks)
        total += p.size();
    const std::size_t s2 = std::size_t(options.patchSize) * options.patchSize;
    PatchDataset out;
    out.patchSize = options.patchSize;
    out.patches.reserve(total * s2);
    out.frameIndex.reserve(total);
    out.origin.reserve(total * 2);
    auto &border = out.extraFlags["/flags/border"];
    auto &merged = out.extraFlags["/flags/merged"];
    auto &maxValue = out.extraFloat["/peaks/max_value"];
    auto &pixels = out.extraFloat["/peaks/pixels"];
    auto &sum = out.extraFloat["/peaks/sum"];
    auto &bg = out.extraFloat["/peaks/background"];
    auto &centroid = out.extraFloat["/peaks/centroid"];
    maxValue.shape = pixels.shape = sum.shape = bg.shape = {total};
    centroid.shape = {total, 2};
    for (std::size_t i = 0; i < frames; ++i) {
        out.patches.insert(out.patches.end(), patches[i].begin(), patches[i].end());
        std::vector<float>().swap(patches[i]);
        for (const Peak &p : peaks[i]) {
            out.frameIndex.push_back(p.frame);
            out.origin.push_back(p.originRow);
            out.origin.push_back(p.originCol);
            border.push_back(p.border ? 1 : 0);
            merged.push_back(p.merged ? 1 : 0);
            maxValue.data.push_back(p.maxValue);
            pixels.data.push_back(float(p.pixels));
            sum.data.push_back(float(p.sum));
            bg.data.push_back(p.background);
            centroid.data.push_back(float(p.centroidRow));
            centroid.data.push_back(float(p.centroidCol));
        }
    }
    if (peaksOut) {
        peaksOut->clear();
        peaksOut->reserve(total);
        for (auto &p : peaks)
            peaksOut->insert(peaksOut->end(), p.begin(), p.end());
    }
    return out;
}

} // namespace

PatchDataset findPeaksInSource(const FrameSource &source, int first, int last,
                               const FinderOptions &options, const Frame *dark,
                               const Monitor &monitor, std::vector<Peak> *peaksOut)
{
    checkOptions(options);
    const int count = source.frameCount();
    if (first < 0 || last < first || last > count)
        throw InputError(fileMessage(source.path(), "frame range " + std::to_string(first) + ":"
                                                        + std::to_string(last)
                                                        + " is outside the file's 0:"
                                                        + std::to_string(count)));
    if (dark && (dark->rows != source.rows() || dark->cols != source.cols()))
        throw InputError(fileMessage(source.path(),
                                     "frames are " + std::to_string(source.rows()) + " x "
                                         + std::to_string(source.cols()) + " but the dark frame is "
                                         + std::to_string(dark->rows) + " x "
                                         + std::to_string(dark->cols)));
    const FrameGetter read = [&](int index, Frame &scratch) -> const Frame & {
        scratch = source.readFrame(index);
        if (dark)
            scratch = subtractDark(scratch, *dark);
        return scratch;
    };
    return runFinder(first, last, read, options, monitor, peaksOut);
}

PatchDataset findPeaksInFrames(const std::vector<Frame> &frames, const FinderOptions &options,
                               const Monitor &monitor, std::vector<Peak> *peaksOut)
{
    checkOptions(options);
    const FrameGetter get = [&](int index, Frame &) -> const Frame & { return frames[std::size_t(index)]; };
    return runFinder(0, int(frames.size()), get, options, monitor, peaksOut);
}

} // namespace braggnac::core
