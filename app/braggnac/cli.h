#pragma once
// Command-line plumbing shared by the verbs: argument parsing, progress on stderr, JSON on
// stdout, SIGINT -> cancellation. Contract: ../shared/spec/cli.md (exit 0 ok, 1 failed
// computation, 2 bad usage or bad input).
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/common/progress.h"

namespace braggnac::cli {

/// Bad usage (unknown flag, missing argument, unparsable number): exit code 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Args {
public:
    /// Parses argv after the verb. "--name value", "--name=value"; names in booleanFlags() take
    /// no value.
    Args(std::string verb, const std::vector<std::string> &argv);

    const std::string &verb() const { return m_verb; }
    const std::vector<std::string> &positional() const { return m_positional; }
    /// The i-th positional argument; throws UsageError naming `what` when absent.
    std::string positionalAt(std::size_t i, const std::string &what) const;

    bool has(const std::string &name) const;
    bool flag(const std::string &name) const { return has(name); }
    std::string get(const std::string &name, const std::string &fallback = {}) const;
    /// Throws UsageError("--name is required") when absent.
    std::string required(const std::string &name) const;
    long long getInt(const std::string &name, long long fallback) const;
    double getDouble(const std::string &name, double fallback) const;

    // Conventions of every verb.
    bool json() const { return has("json"); }
    int threads() const { return int(getInt("threads", 0)); }
    std::uint64_t seed(std::uint64_t fallback = 1) const { return std::uint64_t(getInt("seed", (long long)fallback)); }

    /// Throws UsageError for any option (or extra positional) no verb code asked for.
    void finish(std::size_t maxPositional) const;

private:
    std::string m_verb;
    std::vector<std::string> m_positional;
    std::map<std::string, std::string> m_options;
    mutable std::set<std::string> m_used;
};

/// Flags that take no value (--json, --progress, --pareto, --csv, --force, ...).
const std::set<std::string> &booleanFlags();

/// A Monitor that draws a progress bar on stderr when stderr is a terminal or --progress was
/// given, and whose token is cancelled by SIGINT (Ctrl-C).
core::Monitor makeMonitor(const Args &args, const std::string &label);
/// Ends the progress line, if one was drawn.
void endProgress();

/// Prints one JSON object on stdout (the only thing a --json run prints there).
void printJson(const nlohmann::json &j);
/// Human output (stderr).
void info(const std::string &line);

/// Throws core::InputError naming `path` when its folder does not exist, so a verb can refuse
/// before a long computation rather than fail when writing at the end.
void checkOutputFolder(const std::string &path);

using VerbFn = int (*)(const Args &args);
struct Verb {
    const char *name;
    const char *usage;   // one line: "simulate frames --out F [--format h5|ge2|tiff] ..."
    const char *summary; // what it does
    VerbFn run;
};
/// Registered by static VerbRegistrar objects in the cmd_*.cpp files.
std::vector<Verb> &verbs();
struct VerbRegistrar {
    VerbRegistrar(const char *name, const char *usage, const char *summary, VerbFn fn);
};

} // namespace braggnac::cli
