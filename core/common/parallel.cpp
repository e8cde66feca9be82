#include "core/common/parallel.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace braggnac::core {

int resolveThreads(int requested)
{
    if (requested > 0)
        return requested;
    return std::max(1u, std::thread::hardware_concurrency());
}

void parallelChunks(std::size_t n, int threads, std::size_t grain,
                    const std::function<void(std::size_t, std::size_t, int)> &fn,
                    const std::function<bool()> &stop)
{
    if (n == 0)
        return;
    grain = std::max<std::size_t>(1, grain);
    threads = std::max(1, std::min<int>(resolveThreads(threads), int((n + grain - 1) / grain)));
    std::atomic<std::size_t> next{0};
    std::exception_ptr error;
    std::mutex errorMutex;
    std::atomic_bool failed{false};
    auto work = [&](int worker) {
        for (;;) {
            if (failed.load() || (stop && stop()))
                return;
            const std::size_t begin = next.fetch_add(grain);
            if (begin >= n)
                return;
            try {
                fn(begin, std::min(n, begin + grain), worker);
            } catch (...) {
                std::lock_guard<std::mutex> lock(errorMutex);
                if (!error)
                    error = std::current_exception();
                failed = true;
                return;
            }
        }
    };
    if (threads == 1) {
        work(0);
    } else {
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back(work, t);
        for (auto &th : pool)
            th.join();
    }
    if (error)
        std::rethrow_exception(error);
}

} // namespace braggnac::core
