#pragma once
// Process-wide interruption by SIGINT and SIGTERM, for the command-line programs.
//
// installInterruptHandlers() makes the first SIGINT or SIGTERM set interruptRequested() and
// cancel interruptToken(): long operations given that token stop at their next check, and
// AtomicOutput::commit() refuses to replace its target once the flag is set (it throws
// CancelledError and its temporary is removed), so a run interrupted at any phase, writing
// included, leaves the old output in place. A second signal unlinks this process's registered
// temporary files (registerTemporary) and ends the process at once with status 1; temporary
// folders left that way are removed as stale at the next start (removeStaleTemporaries).
// Programs that never call installInterruptHandlers() (the studio) are not affected.
// Thread-safety: every function may be called from any thread; the flag is lock-free.
#include "core/common/progress.h"

namespace braggnac::core {

/// Installs the SIGINT and SIGTERM handlers (idempotent).
void installInterruptHandlers();
/// True once SIGINT or SIGTERM arrived (or requestInterrupt() was called).
bool interruptRequested();
/// The token the signal handlers cancel; copies share its flag.
const CancelToken &interruptToken();
/// Sets the flag as a signal would (for tests and for embedding programs).
void requestInterrupt();

/// Registers a temporary file path the second-signal handler unlinks; the string must stay
/// alive until unregisterTemporary(path). At most 64 at once (further ones are not registered).
void registerTemporary(const char *path);
void unregisterTemporary(const char *path);

} // namespace braggnac::core
