#include "core/common/progress.h"

#include "core/common/error.h"

namespace braggnac::core {

void CancelToken::throwIfCancelled() const
{
    if (isCancelled())
        throw CancelledError();
}

Monitor Monitor::sub(double from, double to, const std::string &phase) const
{
    Monitor m;
    m.cancel = cancel;
    if (progress)
        m.progress = [parent = progress, from, to, phase](double f, const std::string &msg) {
            const double c = f >= 0 ? (f <= 1 ? f : 1.0) : 0.0; // NaN reports `from`
            parent(from + (to - from) * c,
                   phase.empty() ? msg : msg.empty() ? phase : phase + ": " + msg);
        };
    return m;
}

} // namespace braggnac::core
