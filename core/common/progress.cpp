#include "core/common/progress.h"

#include "core/common/error.h"

namespace braggnac::core {

void CancelToken::throwIfCancelled() const
{
    if (isCancelled())
        throw CancelledError();
}

} // namespace braggnac::core
