#pragma once
// Progress reporting and cooperative cancellation for every long core operation.
// Thread-safety: CancelToken copies share one flag and may be used from any thread; a Monitor's
// progress callback is called from the worker thread(s) that run the operation (never the GUI
// thread by itself), possibly concurrently, so callbacks must be thread-safe and cheap.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace braggnac::core {

class CancelToken {
public:
    CancelToken() : m_flag(std::make_shared<std::atomic_bool>(false)) {}
    void cancel() const { m_flag->store(true); }
    bool isCancelled() const { return m_flag->load(std::memory_order_relaxed); }
    /// Throws CancelledError when cancelled.
    void throwIfCancelled() const;

private:
    std::shared_ptr<std::atomic_bool> m_flag;
};

/// fraction in [0, 1]; message is a short human-readable phase ("frame 3/20").
using ProgressFn = std::function<void(double fraction, const std::string &message)>;

/// What a long operation receives: where to report progress and when to stop.
struct Monitor {
    ProgressFn progress;
    CancelToken cancel;

    void report(double fraction, const std::string &message = {}) const
    {
        if (progress)
            progress(fraction, message);
    }
    /// Throws CancelledError when cancelled.
    void check() const { cancel.throwIfCancelled(); }
    bool cancelled() const { return cancel.isCancelled(); }
    /// A monitor for one phase of this operation: its fraction f (clamped to [0, 1]) is reported
    /// here as from + (to - from) * f, its messages prefixed "phase: " when phase is given (an
    /// empty message becomes "phase"); it shares this monitor's cancel token. It holds a copy of the
    /// progress callback, so it may outlive this Monitor.
    Monitor sub(double from, double to, const std::string &phase = {}) const;
};

} // namespace braggnac::core
