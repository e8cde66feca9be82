#include "core/common/interrupt.h"

#include <atomic>
#include <csignal>

#include <signal.h>
#include <unistd.h>

namespace braggnac::core {

namespace {
constexpr int kSlots = 64;
std::atomic<const char *> g_temporaries[kSlots];
volatile std::sig_atomic_t g_interrupted = 0;
std::atomic<bool> g_installed{false};

CancelToken &token()
{
    static CancelToken t;
    return t;
}

extern "C" void onInterrupt(int)
{
    if (g_interrupted) {
        // Second signal: the user does not want to wait for the run to unwind.
        for (auto &slot : g_temporaries) {
            const char *p = slot.load();
            if (p)
                ::unlink(p);
        }
        ::_exit(1);
    }
    g_interrupted = 1;
    token().cancel();
}

} // namespace

void installInterruptHandlers()
{
    (void)token(); // construct before any signal can arrive
    if (g_installed.exchange(true))
        return;
    struct sigaction sa = {};
    sa.sa_handler = onInterrupt;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

bool interruptRequested()
{
    return g_interrupted != 0;
}

const CancelToken &interruptToken()
{
    return token();
}

void requestInterrupt()
{
    g_interrupted = 1;
    token().cancel();
}

void registerTemporary(const char *path)
{
    for (auto &slot : g_temporaries) {
        const char *expected = nullptr;
        if (slot.compare_exchange_strong(expected, path))
            return;
    }
}

void unregisterTemporary(const char *path)
{
    for (auto &slot : g_temporaries) {
        const char *expected = path;
        if (slot.compare_exchange_strong(expected, nullptr))
            return;
    }
}

} // namespace braggnac::core
