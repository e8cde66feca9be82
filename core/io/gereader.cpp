// GE raw frames: 8192-byte header, then 2048 x 2048 little-endian uint16 frames, row-major.
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common/atomicfile.h"
#include "core/common/error.h"
#include "core/io/framereaders.h"

namespace braggnac::core {

namespace {

constexpr std::uint64_t kFrameBytes = std::uint64_t(kGeSide) * kGeSide * 2;

class GeSource final : public FrameSource {
public:
    explicit GeSource(const std::string &path) : m_path(path)
    {
        m_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (m_fd < 0)
            throw InputError(fileMessage(path, std::string("cannot open: ") + std::strerror(errno)));
        struct stat st {};
        if (::fstat(m_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            ::close(m_fd);
            throw InputError(fileMessage(path, "not a regular file"));
        }
        const std::uint64_t size = std::uint64_t(st.st_size);
        const std::string expected = "expected " + std::to_string(kGeHeaderBytes)
            + "-byte header + N frames of 2048 x 2048 uint16 (" + std::to_string(kFrameBytes)
            + " bytes each)";
        if (size < kGeHeaderBytes + kFrameBytes) {
            ::close(m_fd);
            throw InputError(fileMessage(path, "GE file of " + std::to_string(size)
                                                   + " bytes holds no whole frame; " + expected));
        }
        const std::uint64_t payload = size - kGeHeaderBytes;
        if (payload % kFrameBytes != 0) {
            ::close(m_fd);
            const std::uint64_t whole = payload / kFrameBytes;
            throw InputError(fileMessage(
                path, "GE file size " + std::to_string(size) + " bytes is not header + whole frames ("
                          + std::to_string(whole) + " frames = "
                          + std::to_string(kGeHeaderBytes + whole * kFrameBytes) + " bytes, "
                          + std::to_string(payload % kFrameBytes) + " bytes left over); "
                          + expected));
        }
        m_frames = int(payload / kFrameBytes);
    }
    ~GeSource() override
    {
        if (m_fd >= 0)
            ::close(m_fd);
    }

    const std::string &path() const override { return m_path; }
    FrameFormat format() const override { return FrameFormat::GE; }
    int frameCount() const override { return m_frames; }
    int rows() const override { return kGeSide; }
    int cols() const override { return kGeSide; }
    PixelType pixelType() const override { return PixelType::UInt16; }

    Frame readFrame(int index) const override
    {
        if (index < 0 || index >= m_frames)
            throw InputError(fileMessage(m_path, "frame " + std::to_string(index)
                                                     + " out of range (file has "
                                                     + std::to_string(m_frames) + " frames)"));
        std::vector<std::uint16_t> raw(std::size_t(kGeSide) * kGeSide);
        auto *dst = reinterpret_cast<char *>(raw.data());
        std::uint64_t done = 0;
        const std::uint64_t offset = kGeHeaderBytes + std::uint64_t(index) * kFrameBytes;
        while (done < kFrameBytes) {
            const ssize_t got = ::pread(m_fd, dst + done, std::size_t(kFrameBytes - done),
                                        off_t(offset + done));
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                throw InputError(fileMessage(
                    m_path, "cannot read frame " + std::to_string(index) + " at byte offset "
                                + std::to_string(offset + done) + ": "
                                + (got < 0 ? std::strerror(errno) : "unexpected end of file")));
            done += std::uint64_t(got);
        }
        Frame f(kGeSide, kGeSide);
        const auto *bytes = reinterpret_cast<const unsigned char *>(raw.data());
        float *out = f.data.data();
        const std::size_t n = raw.size();
        for (std::size_t i = 0; i < n; ++i)
            out[i] = float(std::uint16_t(bytes[2 * i] | (bytes[2 * i + 1] << 8)));
        return f;
    }

private:
    std::string m_path;
    int m_fd = -1;
    int m_frames = 0;
};

} // namespace

std::unique_ptr<FrameSource> openGeSource(const std::string &path)
{
    return std::make_unique<GeSource>(path);
}

void writeGeFrames(const std::string &path, const std::vector<Frame> &frames)
{
    if (frames.empty())
        throw InputError(fileMessage(path, "no frames to write (a GE file needs at least one)"));
    for (std::size_t i = 0; i < frames.size(); ++i)
        if (frames[i].rows != kGeSide || frames[i].cols != kGeSide
            || frames[i].data.size() != std::size_t(kGeSide) * kGeSide)
            throw InputError(fileMessage(path, "frame " + std::to_string(i) + " is "
                                                   + std::to_string(frames[i].rows) + " x "
                                                   + std::to_string(frames[i].cols)
                                                   + "; GE frames must be 2048 x 2048"));
    AtomicOutput out(path);
    {
        std::ofstream os(out.tempPath(), std::ios::binary | std::ios::trunc);
        if (!os)
            throw Error(fileMessage(out.tempPath(), "cannot create file"));
        const std::vector<char> header(kGeHeaderBytes, 0);
        os.write(header.data(), std::streamsize(header.size()));
        std::vector<unsigned char> buf(static_cast<std::size_t>(kFrameBytes));
        for (const Frame &f : frames) {
            const float *src = f.data.data();
            for (std::size_t i = 0; i < f.data.size(); ++i) {
                const std::uint16_t v = toUInt16Pixel(src[i]);
                buf[2 * i] = (unsigned char)(v & 0xff);
                buf[2 * i + 1] = (unsigned char)(v >> 8);
            }
            os.write(reinterpret_cast<const char *>(buf.data()), std::streamsize(buf.size()));
        }
        os.flush();
        if (!os)
            throw Error(fileMessage(path, "write failed (disk full?)"));
    }
    out.commit();
}

} // namespace braggnac::core
