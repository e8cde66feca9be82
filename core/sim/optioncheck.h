#pragma once
// Internal to core/sim: the field checks behind FrameSimOptions::validate and
// PatchSimOptions::validate. Every failure throws InputError("<source>: <field>: must be ...,
// got <value>") naming the option field (never a CLI flag).
#include <cmath>
#include <cstdio>
#include <string>

#include <unistd.h>

#include "core/common/error.h"

namespace braggnac::core::sim {

inline std::string numberText(double v)
{
    if (std::isnan(v))
        return "nan";
    if (std::isinf(v))
        return v > 0 ? "inf" : "-inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

struct OptionCheck {
    std::string source;

    [[noreturn]] void fail(const std::string &field, const std::string &what) const
    {
        throw InputError(source + ": " + field + ": " + what);
    }
    void integer(const char *field, long long v, long long lo, long long hi) const
    {
        if (v < lo || v > hi)
            fail(field, "must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi)
                            + ", got " + std::to_string(v));
    }
    void positive(const char *field, double v) const
    {
        if (!std::isfinite(v) || !(v > 0))
            fail(field, "must be finite and > 0, got " + numberText(v));
    }
    void atLeastZero(const char *field, double v, const char *note = "") const
    {
        if (!std::isfinite(v) || !(v >= 0))
            fail(field, std::string("must be finite and >= 0") + note + ", got " + numberText(v));
    }
    void fraction(const char *field, double v) const
    {
        if (!(v >= 0 && v <= 1))
            fail(field, "must be in [0, 1], got " + numberText(v));
    }
    /// Refuses a request whose output (`bytes`) is larger than the machine's physical memory,
    /// before allocating it (a bad_alloc names nothing).
    void fitsMemory(const char *field, long double bytes, const std::string &what) const
    {
        const long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
        const long double limit = (long double)pages * (long double)pageSize;
        if (pages > 0 && pageSize > 0 && bytes > limit)
            fail(field, what + " need " + numberText(double(bytes / (1024.0L * 1024 * 1024)))
                            + " GiB, more than this machine's "
                            + numberText(double(limit / (1024.0L * 1024 * 1024))) + " GiB of memory");
    }
    /// 0 < min <= max, both finite.
    void range(const char *minField, double lo, const char *maxField, double hi) const
    {
        positive(minField, lo);
        positive(maxField, hi);
        if (hi < lo)
            fail(maxField, "must be >= " + std::string(minField) + " (" + numberText(lo) + "), got "
                               + numberText(hi));
    }
};

} // namespace braggnac::core::sim
