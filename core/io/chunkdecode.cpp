#include "core/io/chunkdecode.h"

#include <atomic>
#include <cstring>
#include <limits>
#include <memory>

#include <dlfcn.h>
#include <zlib.h>

namespace braggnac::core::chunkdecode {

namespace {

std::atomic<bool> g_direct{true};
std::atomic<std::uint64_t> g_directFrames{0};
std::atomic<bool> g_zlibOnly{false};

bool inflateZlib(const std::uint8_t *src, std::size_t srcBytes, std::uint8_t *dst, std::size_t want);

/// libdeflate (Debian's libdeflate0, a dependency of libtiff) inflates 2-3x faster than zlib.
/// Looked up at run time with dlopen so that the build needs no extra library; zlib when absent.
struct LibDeflate {
    using Alloc = void *(*)();
    using Free = void (*)(void *);
    using ZlibDecompress = int (*)(void *, const void *, std::size_t, void *, std::size_t, std::size_t *);
    Alloc alloc = nullptr;
    Free free = nullptr;
    ZlibDecompress zlibDecompress = nullptr;
    LibDeflate()
    {
        void *h = dlopen("libdeflate.so.0", RTLD_NOW | RTLD_LOCAL);
        if (!h)
            return;
        alloc = reinterpret_cast<Alloc>(dlsym(h, "libdeflate_alloc_decompressor"));
        free = reinterpret_cast<Free>(dlsym(h, "libdeflate_free_decompressor"));
        zlibDecompress = reinterpret_cast<ZlibDecompress>(dlsym(h, "libdeflate_zlib_decompress"));
        if (!alloc || !free || !zlibDecompress)
            alloc = nullptr; // the handle stays open for the life of the process
    }
    static const LibDeflate &get()
    {
        static const LibDeflate lib;
        return lib;
    }
};

/// One libdeflate decompressor per thread (they are not thread-safe), or null without libdeflate.
void *threadDecompressor()
{
    const LibDeflate &lib = LibDeflate::get();
    if (!lib.alloc || g_zlibOnly.load(std::memory_order_relaxed))
        return nullptr;
    struct Holder {
        void *d = nullptr;
        ~Holder()
        {
            if (d)
                LibDeflate::get().free(d);
        }
    };
    thread_local Holder holder;
    if (!holder.d)
        holder.d = lib.alloc();
    return holder.d;
}

/// zlib stream (what HDF5's deflate filter writes) -> exactly `want` bytes, or false.
bool inflateExact(const std::uint8_t *src, std::size_t srcBytes, std::uint8_t *dst, std::size_t want)
{
    if (void *d = threadDecompressor()) {
        std::size_t got = 0;
        // 0 = LIBDEFLATE_SUCCESS; the adler-32 is checked as zlib does.
        return LibDeflate::get().zlibDecompress(d, src, srcBytes, dst, want, &got) == 0 && got == want;
    }
    return inflateZlib(src, srcBytes, dst, want);
}

/// The same with zlib.
bool inflateZlib(const std::uint8_t *src, std::size_t srcBytes, std::uint8_t *dst, std::size_t want)
{
    if (srcBytes > std::numeric_limits<uInt>::max() || want > std::numeric_limits<uInt>::max())
        return false;
    z_stream z{};
    if (inflateInit(&z) != Z_OK)
        return false;
    z.next_in = const_cast<Bytef *>(src);
    z.avail_in = uInt(srcBytes);
    z.next_out = dst;
    z.avail_out = uInt(want);
    int rc = inflate(&z, Z_FINISH);
    // Z_STREAM_END with every byte of the chunk; anything else (short, or more data than the
    // chunk holds) is a corrupt chunk.
    const bool ok = rc == Z_STREAM_END && z.total_out == want;
    inflateEnd(&z);
    return ok;
}

/// Inverse of HDF5's shuffle filter (H5Zshuffle.c): byte j of element i was stored at
/// j * n + i; the bytes after the last whole element are stored as they are.
void unshuffle(const std::uint8_t *src, std::uint8_t *dst, std::size_t bytes, std::size_t size)
{
    const std::size_t n = size > 0 ? bytes / size : 0;
    if (size <= 1 || n <= 1) {
        std::memcpy(dst, src, bytes);
        return;
    }
    if (size == 2) {
        const std::uint8_t *lo = src, *hi = src + n;
        for (std::size_t i = 0; i < n; ++i) {
            dst[2 * i] = lo[i];
            dst[2 * i + 1] = hi[i];
        }
    } else {
        for (std::size_t j = 0; j < size; ++j) {
            const std::uint8_t *s = src + j * n;
            std::uint8_t *d = dst + j;
            for (std::size_t i = 0; i < n; ++i)
                d[i * size] = s[i];
        }
    }
    const std::size_t tail = bytes - n * size;
    if (tail)
        std::memcpy(dst + n * size, src + n * size, tail);
}

template <typename T>
void convert(const std::uint8_t *src, std::size_t count, float *dst)
{
    for (std::size_t i = 0; i < count; ++i) {
        T v;
        std::memcpy(&v, src + i * sizeof(T), sizeof(T));
        dst[i] = static_cast<float>(v);
    }
}

} // namespace

std::size_t storedSize(StoredType type)
{
    switch (type) {
    case StoredType::UInt8:
    case StoredType::Int8: return 1;
    case StoredType::UInt16:
    case StoredType::Int16: return 2;
    case StoredType::UInt32:
    case StoredType::Int32:
    case StoredType::Float32: return 4;
    }
    return 1;
}

bool decodeChunk(const std::uint8_t *raw, std::size_t rawBytes, unsigned filterMask,
                 const std::vector<Filter> &filters, std::size_t chunkBytes,
                 std::vector<std::uint8_t> &out, std::vector<std::uint8_t> &scratch)
{
    // The data as the pipeline left it, walked back from the last filter to the first.
    const std::uint8_t *cur = raw;
    std::size_t curBytes = rawBytes;
    // Alternate between the two buffers; `cur` never aliases the buffer being written.
    std::vector<std::uint8_t> *bufs[2] = {&out, &scratch};
    int next = 0;
    // Which buffer the final result lands in depends on the number of applied stages: count them
    // so that the last one writes into `out`.
    int applied = 0;
    for (std::size_t i = 0; i < filters.size(); ++i)
        if (!(filterMask & (1u << i)))
            ++applied;
    next = (applied % 2 == 0) ? 1 : 0;
    for (std::size_t k = filters.size(); k-- > 0;) {
        if (filterMask & (1u << k))
            continue;
        std::vector<std::uint8_t> &dst = *bufs[next];
        dst.resize(chunkBytes);
        if (filters[k].kind == Filter::Deflate) {
            if (!inflateExact(cur, curBytes, dst.data(), chunkBytes))
                return false;
        } else {
            if (curBytes != chunkBytes)
                return false;
            unshuffle(cur, dst.data(), chunkBytes, filters[k].elementSize);
        }
        cur = dst.data();
        curBytes = chunkBytes;
        next ^= 1;
    }
    if (curBytes != chunkBytes)
        return false;
    if (cur != out.data()) { // no stage applied: the raw bytes are the data
        out.assign(cur, cur + chunkBytes);
    }
    return true;
}

void toFloat(const std::uint8_t *src, StoredType type, std::size_t count, float *dst)
{
    switch (type) {
    case StoredType::UInt8: convert<std::uint8_t>(src, count, dst); break;
    case StoredType::Int8: convert<std::int8_t>(src, count, dst); break;
    case StoredType::UInt16: convert<std::uint16_t>(src, count, dst); break;
    case StoredType::Int16: convert<std::int16_t>(src, count, dst); break;
    case StoredType::UInt32: convert<std::uint32_t>(src, count, dst); break;
    case StoredType::Int32: convert<std::int32_t>(src, count, dst); break;
    case StoredType::Float32: std::memcpy(dst, src, count * 4); break;
    }
}

void setDirectChunkReads(bool on) { g_direct.store(on, std::memory_order_relaxed); }
bool directChunkReads() { return g_direct.load(std::memory_order_relaxed); }
void setZlibOnly(bool on) { g_zlibOnly.store(on, std::memory_order_relaxed); }
bool usingLibdeflate() { return LibDeflate::get().alloc && !g_zlibOnly.load(std::memory_order_relaxed); }
std::uint64_t directFrameCount() { return g_directFrames.load(std::memory_order_relaxed); }
void countDirectFrame() { g_directFrames.fetch_add(1, std::memory_order_relaxed); }

} // namespace braggnac::core::chunkdecode
