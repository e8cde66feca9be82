#pragma once
// Simple data parallelism over an index range with std::thread.
#include <cstddef>
#include <functional>

namespace braggnac::core {

/// Number of worker threads to use for `requested` (<= 0 means all hardware threads).
int resolveThreads(int requested);

/// Calls fn(begin, end, worker) on `threads` workers over contiguous chunks of [0, n), chunk by
/// chunk (dynamic scheduling, `grain` items per chunk). Stops handing out chunks once `stop`
/// returns true. The first exception thrown by fn is rethrown on the calling thread after all
/// workers joined. With threads == 1 runs inline.
void parallelChunks(std::size_t n, int threads, std::size_t grain,
                    const std::function<void(std::size_t begin, std::size_t end, int worker)> &fn,
                    const std::function<bool()> &stop = {});

} // namespace braggnac::core
