#include "core/io/patchdataset.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <type_traits>

#include "core/common/atomicfile.h"
#include "core/common/error.h"
#include "core/io/hdf5util.h"

namespace braggnac::core {

namespace {

const char *const kExtraGroups[] = {"/fit", "/flags", "/truth", "/peaks"};
const std::set<std::string> kStandardPaths = {"/patches", "/centers", "/split", "/frame_index", "/origin"};

std::string rowsText(std::size_t n)
{
    return std::to_string(n) + (n == 1 ? " row" : " rows");
}

void checkRows(const std::string &context, const std::string &name, std::size_t values,
               std::size_t perRow, std::size_t n)
{
    if (values % perRow != 0 || values / perRow != n)
        throw InputError(fileMessage(context, name + " has " + rowsText(values / perRow)
                                                  + (values % perRow ? " (+ a partial row)" : "")
                                                  + " but /patches has " + rowsText(n)
                                                  + "; expected the same length"));
}

std::string numberText(double v)
{
    if (std::isnan(v))
        return "nan";
    if (std::isinf(v))
        return v > 0 ? "inf" : "-inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

std::string normalisePath(const std::string &p)
{
    return !p.empty() && p.front() == '/' ? p : "/" + p;
}

/// Uniform integer in [0, bound) from a 64-bit generator (portable, unlike std distributions).
std::uint64_t below(std::mt19937_64 &rng, std::uint64_t bound)
{
    return std::uint64_t((static_cast<unsigned __int128>(rng()) * bound) >> 64);
}

template <typename T>
void shuffle(std::vector<T> &v, std::mt19937_64 &rng)
{
    for (std::size_t i = v.size(); i > 1; --i)
        std::swap(v[i - 1], v[std::size_t(below(rng, i))]);
}

} // namespace

void PatchDataset::validate(const std::string &context) const
{
    if (patchSize <= 0)
        throw InputError(fileMessage(context, "patch_size is " + std::to_string(patchSize)
                                                  + "; expected a positive size"));
    const std::size_t area = std::size_t(patchSize) * patchSize;
    if (patches.size() % area != 0)
        throw InputError(fileMessage(context, "/patches holds " + std::to_string(patches.size())
                                                  + " values, not a whole number of "
                                                  + std::to_string(patchSize) + " x "
                                                  + std::to_string(patchSize) + " patches"));
    const std::size_t n = size();
    if (!centers.empty()) {
        checkRows(context, "/centers", centers.size(), 2, n);
        for (std::size_t i = 0; i < n; ++i)
            if (!std::isfinite(centers[2 * i]) || !std::isfinite(centers[2 * i + 1]))
                throw InputError(fileMessage(context, "/centers[" + std::to_string(i) + "] is ("
                                                          + numberText(centers[2 * i]) + ", "
                                                          + numberText(centers[2 * i + 1])
                                                          + "); expected a finite (row, col) label"));
    }
    if (!split.empty()) {
        checkRows(context, "/split", split.size(), 1, n);
        for (std::size_t i = 0; i < split.size(); ++i)
            if (split[i] > 2)
                throw InputError(fileMessage(context, "/split[" + std::to_string(i) + "] is "
                                                          + std::to_string(int(split[i]))
                                                          + "; expected 0 (train), 1 (validation) or 2 (test)"));
    }
    if (!frameIndex.empty())
        checkRows(context, "/frame_index", frameIndex.size(), 1, n);
    if (!origin.empty())
        checkRows(context, "/origin", origin.size(), 2, n);
    for (const auto &[name, arr] : extraFloat) {
        std::size_t count = arr.shape.empty() ? 0 : 1;
        for (auto d : arr.shape)
            count *= std::size_t(d);
        if (arr.shape.empty() || count != arr.data.size())
            throw InputError(fileMessage(context, name + " has shape " + hdf5::shapeText(arr.shape)
                                                      + " but " + std::to_string(arr.data.size())
                                                      + " values"));
        if (arr.shape[0] != n)
            throw InputError(fileMessage(context, name + " has " + rowsText(std::size_t(arr.shape[0]))
                                                      + " but /patches has " + rowsText(n)
                                                      + "; expected the same length"));
    }
    for (const auto &[name, flags] : extraFlags)
        checkRows(context, name, flags.size(), 1, n);
}

PatchDataset PatchDataset::subset(const std::vector<std::size_t> &indices) const
{
    const std::size_t n = size();
    const std::size_t area = std::size_t(patchSize) * patchSize;
    PatchDataset out;
    out.patchSize = patchSize;
    out.labelSource = labelSource;
    auto pick = [&](const auto &src, std::size_t perRow, auto &dst) {
        if (src.empty())
            return;
        dst.resize(indices.size() * perRow);
        for (std::size_t k = 0; k < indices.size(); ++k)
            std::copy_n(src.begin() + std::ptrdiff_t(indices[k] * perRow), perRow,
                        dst.begin() + std::ptrdiff_t(k * perRow));
    };
    for (std::size_t i : indices)
        if (i >= n)
            throw Error("patch subset: index " + std::to_string(i) + " out of range (dataset has "
                        + std::to_string(n) + " patches)");
    pick(patches, area, out.patches);
    pick(centers, 2, out.centers);
    pick(split, 1, out.split);
    pick(frameIndex, 1, out.frameIndex);
    pick(origin, 2, out.origin);
    for (const auto &[name, arr] : extraFloat) {
        FloatArray a;
        a.shape = arr.shape;
        const std::size_t perRow = n ? arr.data.size() / n : 0;
        if (!a.shape.empty())
            a.shape[0] = indices.size();
        if (perRow > 0)
            pick(arr.data, perRow, a.data);
        out.extraFloat[name] = std::move(a);
    }
    for (const auto &[name, flags] : extraFlags)
        pick(flags, 1, out.extraFlags[name]);
    return out;
}

PatchDataset readPatchDataset(const std::string &path)
{
    hdf5::Lock lock;
    hdf5::Handle file = hdf5::openFile(path);
    PatchDataset out;

    hdf5::Handle patches = hdf5::openDataset(file, "/patches", path);
    const auto pshape = hdf5::datasetShape(patches);
    if (pshape.size() != 3 || pshape[1] != pshape[2] || pshape[1] == 0)
        throw InputError(fileMessage(path, "/patches is " + hdf5::shapeText(pshape)
                                               + "; expected 3-D [N, S, S]"));
    out.patchSize = int(pshape[1]);
    out.patches = hdf5::readAll<float>(patches, path, "/patches");
    const std::size_t n = std::size_t(pshape[0]);

    hdf5::Handle root = hdf5::groupHandle(H5Gopen2(file, "/", H5P_DEFAULT));
    if (hdf5::hasAttribute(root, "patch_size")) {
        const long long s = hdf5::readIntAttribute(root, "patch_size", path);
        if (s != out.patchSize)
            throw InputError(fileMessage(path, "attribute patch_size is " + std::to_string(s)
                                                   + " but /patches is " + hdf5::shapeText(pshape)
                                                   + "; expected them to agree"));
    }
    if (hdf5::hasAttribute(root, "label_source"))
        out.labelSource = hdf5::readStringAttribute(root, "label_source", path);

    auto readOptional = [&](const std::string &name, std::size_t cols, auto &dst) {
        if (!hdf5::linkExists(file, name))
            return;
        hdf5::Handle ds = hdf5::openDataset(file, name, path);
        const auto shape = hdf5::datasetShape(ds);
        const bool ok = cols == 1 ? (shape.size() == 1 || (shape.size() == 2 && shape[1] == 1))
                                  : (shape.size() == 2 && shape[1] == cols);
        if (!ok)
            throw InputError(fileMessage(path, name + " is " + hdf5::shapeText(shape) + "; expected "
                                                   + (cols == 1 ? "[N]" : "[N, " + std::to_string(cols) + "]")));
        if (shape[0] != n) // before reading: a claimed length is never allocated
            throw InputError(fileMessage(path, name + " has " + rowsText(std::size_t(shape[0]))
                                                   + " but /patches has " + rowsText(n)
                                                   + "; expected the same length"));
        using T = typename std::decay_t<decltype(dst)>::value_type;
        if constexpr (std::is_same_v<T, std::uint8_t>) {
            // Split codes: read in double so that -1, 256 or 0.5 in any file type are seen as
            // they are, not clamped or truncated into a valid code by HDF5's conversion.
            const std::vector<double> codes = hdf5::readAll<double>(ds, path, name);
            dst.resize(codes.size());
            for (std::size_t i = 0; i < codes.size(); ++i) {
                const double c = codes[i];
                if (!(c == 0 || c == 1 || c == 2))
                    throw InputError(fileMessage(path, name + "[" + std::to_string(i) + "] is "
                                                           + numberText(c)
                                                           + "; expected 0 (train), 1 (validation) or 2 (test)"));
                dst[i] = std::uint8_t(c);
            }
        } else {
            dst = hdf5::readAll<T>(ds, path, name);
        }
    };
    readOptional("/centers", 2, out.centers);
    readOptional("/split", 1, out.split);
    readOptional("/frame_index", 1, out.frameIndex);
    readOptional("/origin", 2, out.origin);

    for (const char *group : kExtraGroups) {
        if (!hdf5::linkExists(file, group))
            continue;
        hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
        if (g < 0)
            continue; // a dataset of that name, not a group: unknown, ignored
        hdf5::Handle gh = hdf5::groupHandle(g);
        for (const std::string &rel : hdf5::listDatasetPaths(gh)) {
            const std::string name = std::string(group) + rel;
            hdf5::Handle ds = hdf5::datasetHandle(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
            if (!ds.valid())
                continue;
            hdf5::Handle type = hdf5::typeHandle(H5Dget_type(ds));
            const auto shape = hdf5::datasetShape(ds);
            // Only per-patch numeric arrays are ours; anything else is ignored.
            if (!hdf5::isNumeric(type) || shape.empty() || shape[0] != n)
                continue;
            const std::string tname = hdf5::typeName(type);
            if ((tname == "uint8" || tname == "bool") && shape.size() == 1)
                out.extraFlags[name] = hdf5::readAll<std::uint8_t>(ds, path, name);
            else
                out.extraFloat[name] = {shape, hdf5::readAll<float>(ds, path, name)};
        }
    }
    out.validate(path);
    return out;
}

void writePatchDataset(const std::string &path, const PatchDataset &data, bool compress)
{
    data.validate(path);
    for (const auto &[name, arr] : data.extraFloat)
        if (kStandardPaths.count(normalisePath(name)))
            throw Error(fileMessage(path, "extra dataset '" + name + "' clashes with a standard dataset"));
    std::set<std::string> floatPaths;
    for (const auto &[name, arr] : data.extraFloat)
        floatPaths.insert(normalisePath(name));
    for (const auto &[name, flags] : data.extraFlags)
        if (kStandardPaths.count(normalisePath(name)) || floatPaths.count(normalisePath(name)))
            throw Error(fileMessage(path, "extra dataset '" + name + "' clashes with another dataset"));
    const unsigned long long n = data.size();
    const unsigned long long s = (unsigned long long)data.patchSize;
    const int level = compress ? 4 : 0;
    AtomicOutput out(path);
    {
        hdf5::Lock lock;
        hdf5::Handle file = hdf5::createFile(out.tempPath());
        try {
            hdf5::writeDataset<float>(file, "/patches", {n, s, s}, data.patches.data(),
                                      H5T_IEEE_F32LE, level, 1024);
            if (!data.centers.empty())
                hdf5::writeDataset<float>(file, "/centers", {n, 2}, data.centers.data(),
                                          H5T_IEEE_F32LE, level);
            if (!data.split.empty())
                hdf5::writeDataset<std::uint8_t>(file, "/split", {n}, data.split.data(),
                                                 H5T_STD_U8LE, level);
            if (!data.frameIndex.empty())
                hdf5::writeDataset<std::int32_t>(file, "/frame_index", {n}, data.frameIndex.data(),
                                                 H5T_STD_I32LE, level);
            if (!data.origin.empty())
                hdf5::writeDataset<std::int32_t>(file, "/origin", {n, 2}, data.origin.data(),
                                                 H5T_STD_I32LE, level);
            for (const auto &[name, arr] : data.extraFloat)
                hdf5::writeDataset<float>(file, normalisePath(name), arr.shape, arr.data.data(),
                                          H5T_IEEE_F32LE, level);
            for (const auto &[name, flags] : data.extraFlags)
                hdf5::writeDataset<std::uint8_t>(file, normalisePath(name), {n}, flags.data(),
                                                 H5T_STD_U8LE, level);
            hdf5::Handle root = hdf5::groupHandle(H5Gopen2(file, "/", H5P_DEFAULT));
            hdf5::writeIntAttribute(root, "patch_size", data.patchSize);
            if (!data.labelSource.empty())
                hdf5::writeStringAttribute(root, "label_source", data.labelSource);
        } catch (const InputError &) {
            throw;
        } catch (const Error &e) {
            throw Error(fileMessage(path, e.what()));
        }
        if (H5Fflush(file, H5F_SCOPE_LOCAL) < 0)
            throw Error(fileMessage(path, "cannot flush HDF5 file (disk full?)"));
    }
    out.commit();
}

std::vector<std::uint8_t> effectiveSplit(const PatchDataset &data, double trainFraction,
                                         double validationFraction, unsigned seed)
{
    const std::size_t n = data.size();
    if (data.split.size() == n && n > 0)
        return data.split;
    if (!(trainFraction >= 0 && validationFraction >= 0
          && trainFraction + validationFraction <= 1.0 + 1e-9))
        throw InputError("split fractions train " + std::to_string(trainFraction) + " + validation "
                         + std::to_string(validationFraction) + " must be >= 0 and sum to at most 1");
    std::vector<std::uint8_t> out(n, 0);
    if (n == 0)
        return out;
    const double testFraction = std::max(0.0, 1.0 - trainFraction - validationFraction);
    std::mt19937_64 rng(seed);

    std::map<std::int32_t, std::size_t> counts;
    if (data.frameIndex.size() == n)
        for (auto f : data.frameIndex)
            ++counts[f];
    if (counts.size() >= 3) {
        // By frame: shuffle the frames, then give each frame to the split in which the middle of
        // its patch range falls, so fractions are by patches and no frame is in two splits.
        std::vector<std::int32_t> frames;
        for (const auto &kv : counts)
            frames.push_back(kv.first);
        shuffle(frames, rng);
        std::vector<std::uint8_t> frameSplit(frames.size());
        std::size_t cum = 0;
        for (std::size_t i = 0; i < frames.size(); ++i) {
            const std::size_t c = counts[frames[i]];
            const double mid = (double(cum) + 0.5 * double(c)) / double(n);
            frameSplit[i] = mid < trainFraction ? 0 : mid < trainFraction + validationFraction ? 1 : 2;
            cum += c;
        }
        // Requested but empty splits get one frame from the split with the most frames.
        for (std::uint8_t k : {std::uint8_t(1), std::uint8_t(2)}) {
            const double want = k == 1 ? validationFraction : testFraction;
            if (want <= 1e-12 || std::count(frameSplit.begin(), frameSplit.end(), k) > 0)
                continue;
            std::size_t per[3] = {0, 0, 0};
            for (auto s : frameSplit)
                ++per[s];
            const std::uint8_t donor = std::uint8_t(std::max_element(per, per + 3) - per);
            if (per[donor] < 2)
                continue;
            for (std::size_t i = frameSplit.size(); i-- > 0;)
                if (frameSplit[i] == donor) {
                    frameSplit[i] = k;
                    break;
                }
        }
        std::map<std::int32_t, std::uint8_t> byFrame;
        for (std::size_t i = 0; i < frames.size(); ++i)
            byFrame[frames[i]] = frameSplit[i];
        for (std::size_t i = 0; i < n; ++i)
            out[i] = byFrame[data.frameIndex[i]];
        return out;
    }
    // By index (no /frame_index, or fewer than 3 frames: they cannot make three disjoint splits).
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i)
        order[i] = i;
    shuffle(order, rng);
    const std::size_t nTrain = std::min<std::size_t>(n, std::size_t(std::llround(trainFraction * double(n))));
    const std::size_t nVal = std::min<std::size_t>(n - nTrain, std::size_t(std::llround(validationFraction * double(n))));
    for (std::size_t k = 0; k < n; ++k)
        out[order[k]] = k < nTrain ? 0 : k < nTrain + nVal ? 1 : 2;
    return out;
}

} // namespace braggnac::core
