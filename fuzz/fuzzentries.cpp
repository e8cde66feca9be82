#include "fuzz/fuzzentries.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/arch/archspec.h"
#include "core/common/error.h"
#include "core/io/framereaders.h"
#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "core/search/random.h"
#include "core/search/space.h"
#include "core/search/studystore.h"

namespace braggnac::fuzz {

namespace {

/// The input as a file in tmpfs (/dev/shm, else $TMPDIR or /tmp), removed when destroyed. The
/// readers take paths; an anonymous memfd (/proc/self/fd/N) does not work, because HDF5 resolves
/// the path with realpath() and fails on "/memfd:... (deleted)".
class MemFile {
public:
    /// `suffix` ends the file name (".db": SQLite's -wal/-shm/-journal files are removed too).
    MemFile(const std::uint8_t *data, std::size_t size, std::uint64_t length,
            const std::string &suffix = {})
    {
        const char *tmp = std::getenv("TMPDIR");
        std::string dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (tmp && *tmp ? tmp : "/tmp");
        std::string name = dir + "/braggnac-fuzz-XXXXXX" + suffix;
        m_fd = ::mkstemps(name.data(), int(suffix.size()));
        if (m_fd < 0)
            die("mkstemp");
        m_path = name;
        std::size_t done = 0;
        const std::size_t n = std::size_t(std::min<std::uint64_t>(size, length));
        while (done < n) {
            const ssize_t w = ::write(m_fd, data + done, n - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                die("write");
            done += std::size_t(w);
        }
        if (::ftruncate(m_fd, off_t(length)) != 0)
            die("ftruncate");
    }
    MemFile(const std::uint8_t *data, std::size_t size) : MemFile(data, size, size) {}
    ~MemFile()
    {
        ::close(m_fd);
        ::unlink(m_path.c_str());
        for (const char *extra : {"-wal", "-shm", "-journal"})
            ::unlink((m_path + extra).c_str());
    }
    MemFile(const MemFile &) = delete;
    MemFile &operator=(const MemFile &) = delete;
    const std::string &path() const { return m_path; }

private:
    [[noreturn]] static void die(const char *what)
    {
        // The harness itself failed, not the code under test: stop loudly.
        std::fprintf(stderr, "braggnac fuzz harness: %s failed: %s\n", what, std::strerror(errno));
        std::abort();
    }
    int m_fd = -1;
    std::string m_path;
};

[[noreturn]] void broken(const std::string &what)
{
    std::fprintf(stderr, "braggnac fuzz invariant broken: %s\n", what.c_str());
    std::abort();
}

template <class Fn>
Result guarded(Fn fn)
{
    Result r;
    try {
        fn();
    } catch (const core::InputError &e) {
        r.outcome = Outcome::Rejected;
        r.message = e.what();
        if (r.message.empty())
            broken("InputError with an empty message");
    }
    return r;
}

/// Reads the first and the last frame and checks their shape against the source's; returns the
/// first.
core::Frame readFrames(const core::FrameSource &source)
{
    const int n = source.frameCount();
    if (n < 1 || source.rows() < 1 || source.cols() < 1)
        broken("frame source opened with " + std::to_string(n) + " frames of "
               + std::to_string(source.rows()) + " x " + std::to_string(source.cols()));
    core::Frame first;
    for (int index : {0, n - 1}) {
        core::Frame f = source.readFrame(index);
        if (f.rows != source.rows() || f.cols != source.cols()
            || f.data.size() != std::size_t(f.rows) * std::size_t(f.cols))
            broken("frame " + std::to_string(index) + " has shape " + std::to_string(f.rows) + " x "
                   + std::to_string(f.cols) + " (" + std::to_string(f.data.size())
                   + " values), source says " + std::to_string(source.rows()) + " x "
                   + std::to_string(source.cols()));
        if (index == 0)
            first = std::move(f);
        if (n == 1)
            break;
    }
    // Out-of-range indices must be refused with an InputError, not read.
    for (int index : {-1, n}) {
        bool refused = false;
        try {
            (void)source.readFrame(index);
        } catch (const core::InputError &) {
            refused = true;
        }
        if (!refused)
            broken("frame index " + std::to_string(index) + " of " + std::to_string(n) + " was read");
    }
    return first;
}

} // namespace

namespace {

std::uint64_t geFileLength(const std::uint8_t *data, std::size_t size)
{
    const std::uint64_t frameBytes = std::uint64_t(core::kGeSide) * core::kGeSide * 2;
    if (size == 0)
        return 0;
    std::uint64_t length = core::kGeHeaderBytes + std::uint64_t(data[0] & 3u) * frameBytes;
    if ((data[0] & 4u) && size >= 3) {
        const auto delta = std::int16_t(std::uint16_t(data[1] | (data[2] << 8)));
        length = std::uint64_t(std::max<std::int64_t>(0, std::int64_t(length) + delta));
    }
    return length;
}

} // namespace

std::vector<std::uint8_t> geFileImage(const std::uint8_t *data, std::size_t size)
{
    std::vector<std::uint8_t> image(geFileLength(data, size), 0);
    if (size > 3)
        std::copy_n(data + 3, std::min<std::uint64_t>(size - 3, image.size()), image.begin());
    return image;
}

Result geReader(const std::uint8_t *data, std::size_t size)
{
    // Only the first bytes are non-zero: write those and extend the file sparsely.
    const std::uint64_t length = geFileLength(data, size);
    const std::uint8_t *head = size > 3 ? data + 3 : data;
    const std::size_t headSize = size > 3 ? size - 3 : 0;
    MemFile file(head, headSize, length);
    return guarded([&] {
        const auto source = core::openGeSource(file.path());
        if (source->rows() != core::kGeSide || source->cols() != core::kGeSide)
            broken("GE frame is not 2048 x 2048");
        const core::Frame f = readFrames(*source);
        // The header is skipped: pixel 0 is the little-endian uint16 at byte 8192.
        const std::size_t at = core::kGeHeaderBytes;
        const unsigned lo = at < headSize ? head[at] : 0u, hi = at + 1 < headSize ? head[at + 1] : 0u;
        const float expect = float(lo | (hi << 8));
        if (f.data[0] != expect)
            broken("GE pixel 0 is " + std::to_string(f.data[0]) + ", file says " + std::to_string(expect));
    });
}

Result tiffReader(const std::uint8_t *data, std::size_t size)
{
    MemFile file(data, size);
    return guarded([&] {
        const auto source = core::openTiffSource(file.path());
        readFrames(*source);
    });
}

Result hdf5Frames(const std::uint8_t *data, std::size_t size)
{
    MemFile file(data, size);
    return guarded([&] {
        std::vector<core::Hdf5DatasetInfo> infos = core::listHdf5Datasets(file.path());
        int opened = 0;
        std::string firstError;
        for (const core::Hdf5DatasetInfo &info : infos) {
            if (!info.usableAsFrames || opened >= 4)
                continue;
            ++opened;
            try {
                const auto source = core::openHdf5Source(file.path(), info.path);
                if (source->dataset() != info.path)
                    broken("dataset '" + source->dataset() + "' opened for '" + info.path + "'");
                readFrames(*source);
            } catch (const core::InputError &e) {
                if (firstError.empty())
                    firstError = e.what();
            }
        }
        // The default dataset last; the first refusal is the one reported.
        try {
            const auto source = core::openHdf5Source(file.path(), {});
            readFrames(*source);
        } catch (const core::InputError &e) {
            throw core::InputError(firstError.empty() ? std::string(e.what()) : firstError);
        }
        if (!firstError.empty())
            throw core::InputError(firstError);
    });
}

Result patchDataset(const std::uint8_t *data, std::size_t size)
{
    MemFile file(data, size);
    return guarded([&] {
        const core::PatchDataset d = core::readPatchDataset(file.path());
        d.validate(file.path());
        const std::size_t n = d.size();
        const std::vector<std::uint8_t> split = core::effectiveSplit(d, 0.8, 0.1, 1);
        if (split.size() != n)
            broken("effectiveSplit gave " + std::to_string(split.size()) + " codes for "
                   + std::to_string(n) + " patches");
        for (std::uint8_t s : split)
            if (s > 2)
                broken("effectiveSplit gave code " + std::to_string(int(s)));
        std::vector<std::size_t> rows;
        for (std::size_t i = 0; i < std::min<std::size_t>(n, 3); ++i)
            rows.push_back(n - 1 - i);
        const core::PatchDataset sub = d.subset(rows);
        sub.validate("subset");
        if (sub.size() != rows.size())
            broken("subset of " + std::to_string(rows.size()) + " rows has " + std::to_string(sub.size()));
        const std::size_t area = std::size_t(d.patchSize) * std::size_t(d.patchSize);
        for (std::size_t k = 0; k < rows.size(); ++k)
            if (!std::equal(sub.patch(k), sub.patch(k) + area, d.patch(rows[k]),
                            [](float a, float b) { return a == b || (a != a && b != b); }))
                broken("subset row " + std::to_string(k) + " differs from row " + std::to_string(rows[k]));
    });
}

Result archSpec(const std::uint8_t *data, std::size_t size)
{
    const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
    if (j.is_discarded())
        return {Outcome::Rejected, "not JSON"}; // the JSON parser is not ours to fuzz
    return guarded([&] {
        const core::ArchSpec spec = core::ArchSpec::fromJson(j, "fuzz");
        const auto shapes = spec.shapes();
        if (shapes.empty())
            broken("accepted spec has no shapes");
        const int features = spec.flattenFeatures();
        if (features < 1)
            broken("accepted spec flattens to " + std::to_string(features) + " features");
        const std::string once = spec.toJson().dump();
        core::ArchSpec again;
        try {
            again = core::ArchSpec::fromJson(spec.toJson(), "round trip");
        } catch (const core::InputError &e) {
            broken(std::string("toJson of an accepted spec is refused: ") + e.what() + "; json " + once);
        }
        const std::string twice = again.toJson().dump();
        if (once != twice)
            broken("JSON round trip changed the spec:\n" + once + "\n" + twice);
        if (again.flattenFeatures() != features || again.shapes().size() != shapes.size())
            broken("round-tripped spec has different shapes");
    });
}

Result searchSpace(const std::uint8_t *data, std::size_t size)
{
    const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
    if (j.is_discarded())
        return {Outcome::Rejected, "not JSON"};
    return guarded([&] {
        const core::SearchSpace space = core::SearchSpace::fromJson(j, "fuzz");
        const std::string once = space.toJson().dump();
        std::string twice;
        try {
            twice = core::SearchSpace::fromJson(space.toJson(), "round trip").toJson().dump();
        } catch (const core::InputError &e) {
            broken(std::string("toJson of an accepted space is refused: ") + e.what() + "; json " + once);
        }
        if (once != twice)
            broken("search space JSON round trip changed it:\n" + once + "\n" + twice);
        if (space.structuralCount().empty())
            broken("empty structural count");
        core::SearchRandom rng(7);
        std::vector<core::ArchSpec> samples;
        for (int i = 0; i < 3; ++i) {
            try {
                samples.push_back(space.sample(rng, 50));
            } catch (const core::InputError &) {
                throw;
            } catch (const core::Error &) {
                // Documented: no spec within the cost constraints in 50 draws.
                continue;
            }
            std::string why;
            if (!space.contains(samples.back(), &why))
                broken("a sample is not in its space: " + why + "; " + samples.back().toJson().dump());
        }
        if (samples.size() >= 2) {
            core::ArchSpec child = space.crossover(samples[0], samples[1], rng);
            space.mutate(child, rng);
            (void)space.contains(child);
        }
        (void)space.size(500, 20, 1);
    });
}

Result studyStore(const std::uint8_t *data, std::size_t size)
{
    MemFile file(data, size, size, ".db");
    return guarded([&] {
        {
            const core::StudyStore store = core::StudyStore::open(file.path(), core::StudyStore::Mode::ReadOnly);
            const core::StudyInfo info = store.info();
            (void)info.toJson();
            core::ListOptions all;
            all.withEpochs = true;
            const auto trials = store.listTrials(all);
            // The light listing (no blobs) and counts() read the same table. (A trial without
            // its trial_blobs row is left out of the full listing: reported, not checked here.)
            core::ListOptions light;
            light.withBlobs = false;
            const std::size_t listed = store.listTrials(light).size();
            const core::StateCounts counts = store.counts();
            if (counts.total() != int(listed))
                broken("counts() says " + std::to_string(counts.total()) + " trials, listTrials gave "
                       + std::to_string(listed));
            for (const core::TrialRecord &t : trials) {
                (void)t.toJson();
                (void)store.trial(t.id);
            }
            (void)store.trialsSince(0);
            (void)store.changeSeq();
            (void)store.valuesAtEpoch(1);
            (void)store.overrides();
        }
        core::StudyStore rw = core::StudyStore::open(file.path(), core::StudyStore::Mode::ReadWrite);
        rw.recoverAfterCrash();
        if (rw.counts().running != 0)
            broken("trials still running after recoverAfterCrash");
    });
}

void writeStudySeed(const std::string &path)
{
    core::StudyInfo info;
    info.name = "fuzz-seed";
    info.space = nlohmann::json::object({{"name", "tiny"}});
    info.dataset.path = "patches.h5";
    info.dataset.size = 1234;
    info.dataset.contentHash = "0123456789abcdef";
    info.objectives = {{"distance", true}, {"bops", true}};
    info.options = {{"trials", 3}, {"epochs", 2}};
    info.seed = 5;
    core::StudyStore store = core::StudyStore::createOrOpen(path, info);
    for (int k = 0; k < 3; ++k) {
        core::ArchSpec spec = core::builtinArch(k == 1 ? "braggnn" : "nac");
        spec.name = "seed-" + std::to_string(k);
        core::TrialRequest r;
        r.spec = spec.toJson();
        r.specHash = spec.canonicalHash();
        r.hyperParams = {{"lr", 0.001 * (k + 1)}};
        r.budget = 2;
        r.generation = 0;
        store.enqueue(r);
    }
    const auto first = store.claimNext("seedhost", 0);
    store.reportEpoch(first->id, 1, 0.5, {{"loss", 0.25}});
    store.reportEpoch(first->id, 2, 0.25, nullptr);
    core::TrialOutcome o;
    o.values = {0.25, 1.5e8};
    o.metrics = {{"validation", {{"mean", 0.25}}}};
    o.cost = {{"params", 17226}, {"bops", 8.5e7}};
    o.fidelity = 2;
    o.seconds = 3.5;
    store.complete(first->id, o);
    const auto second = store.claimNext("seedhost", 1);
    store.fail(second->id, "rank 1 died");
}

std::vector<std::string> targetNames()
{
    return {"ge", "tiff", "hdf5", "patchdataset", "archspec", "searchspace", "studystore"};
}

Result runTarget(const std::string &name, const std::uint8_t *data, std::size_t size)
{
    if (name == "ge")
        return geReader(data, size);
    if (name == "tiff")
        return tiffReader(data, size);
    if (name == "hdf5")
        return hdf5Frames(data, size);
    if (name == "patchdataset")
        return patchDataset(data, size);
    if (name == "archspec")
        return archSpec(data, size);
    if (name == "searchspace")
        return searchSpace(data, size);
    if (name == "studystore")
        return studyStore(data, size);
    throw std::invalid_argument("unknown fuzz target '" + name + "'");
}

} // namespace braggnac::fuzz
