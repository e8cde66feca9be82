#include "cli.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>

#include <unistd.h>

#include "core/common/error.h"

namespace braggnac::cli {

namespace {
core::CancelToken &sigintToken()
{
    static core::CancelToken token;
    return token;
}
extern "C" void onSigint(int)
{
    sigintToken().cancel();
}
bool g_progressDrawn = false;
std::mutex g_progressMutex;
} // namespace

const std::set<std::string> &booleanFlags()
{
    static const std::set<std::string> flags = {"json", "progress", "pareto", "csv", "force",
                                                "help", "no-mask", "no-compress", "quiet"};
    return flags;
}

Args::Args(std::string verb, const std::vector<std::string> &argv) : m_verb(std::move(verb))
{
    for (std::size_t i = 0; i < argv.size(); ++i) {
        const std::string &a = argv[i];
        if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
            std::string name = a.substr(2), value;
            const auto eq = name.find('=');
            if (eq != std::string::npos) {
                value = name.substr(eq + 1);
                name = name.substr(0, eq);
            } else if (!booleanFlags().count(name)) {
                if (i + 1 >= argv.size())
                    throw UsageError("--" + name + " needs a value");
                value = argv[++i];
            }
            m_options[name] = value;
        } else {
            m_positional.push_back(a);
        }
    }
}

std::string Args::positionalAt(std::size_t i, const std::string &what) const
{
    if (i >= m_positional.size())
        throw UsageError("missing argument: " + what);
    return m_positional[i];
}

bool Args::has(const std::string &name) const
{
    m_used.insert(name);
    return m_options.count(name) > 0;
}

std::string Args::get(const std::string &name, const std::string &fallback) const
{
    m_used.insert(name);
    auto it = m_options.find(name);
    return it == m_options.end() ? fallback : it->second;
}

std::string Args::required(const std::string &name) const
{
    if (!has(name) || get(name).empty())
        throw UsageError("--" + name + " is required");
    return get(name);
}

long long Args::getInt(const std::string &name, long long fallback) const
{
    if (!has(name))
        return fallback;
    const std::string v = get(name);
    try {
        std::size_t pos = 0;
        long long x = std::stoll(v, &pos);
        if (pos != v.size())
            throw std::invalid_argument(v);
        return x;
    } catch (const std::exception &) {
        throw UsageError("--" + name + ": expected an integer, got '" + v + "'");
    }
}

double Args::getDouble(const std::string &name, double fallback) const
{
    if (!has(name))
        return fallback;
    const std::string v = get(name);
    try {
        std::size_t pos = 0;
        double x = std::stod(v, &pos);
        if (pos != v.size())
            throw std::invalid_argument(v);
        return x;
    } catch (const std::exception &) {
        throw UsageError("--" + name + ": expected a number, got '" + v + "'");
    }
}

void Args::finish(std::size_t maxPositional) const
{
    // Conventions accepted by every verb.
    for (const char *common : {"json", "progress", "threads", "seed", "quiet"})
        m_used.insert(common);
    for (const auto &kv : m_options)
        if (!m_used.count(kv.first))
            throw UsageError("unknown option --" + kv.first + " for '" + m_verb + "'");
    if (m_positional.size() > maxPositional)
        throw UsageError("unexpected argument '" + m_positional[maxPositional] + "' for '"
                         + m_verb + "'");
}

core::Monitor makeMonitor(const Args &args, const std::string &label)
{
    std::signal(SIGINT, onSigint);
    core::Monitor m;
    m.cancel = sigintToken();
    const bool draw = args.has("progress") || (::isatty(STDERR_FILENO) && !args.has("quiet"));
    if (draw) {
        auto last = std::make_shared<std::chrono::steady_clock::time_point>();
        m.progress = [label, last](double f, const std::string &msg) {
            std::lock_guard<std::mutex> lock(g_progressMutex);
            const auto now = std::chrono::steady_clock::now();
            if (f < 1.0 && now - *last < std::chrono::milliseconds(100))
                return;
            *last = now;
            const int width = 30;
            const int filled = std::clamp(int(f * width + 0.5), 0, width);
            std::fprintf(stderr, "\r%s [%s%s] %3d%% %s\033[K", label.c_str(),
                         std::string(filled, '#').c_str(), std::string(width - filled, ' ').c_str(),
                         int(f * 100 + 0.5), msg.c_str());
            std::fflush(stderr);
            g_progressDrawn = true;
        };
    }
    return m;
}

void endProgress()
{
    std::lock_guard<std::mutex> lock(g_progressMutex);
    if (g_progressDrawn) {
        std::fputc('\n', stderr);
        g_progressDrawn = false;
    }
}

void printJson(const nlohmann::json &j)
{
    std::cout << j.dump() << std::endl;
}

void info(const std::string &line)
{
    std::cerr << line << '\n';
}

void checkOutputFolder(const std::string &path)
{
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent))
        throw core::InputError(core::fileMessage(path, "output folder '" + parent.string()
                                                           + "' does not exist"));
}

std::vector<Verb> &verbs()
{
    static std::vector<Verb> v;
    return v;
}

VerbRegistrar::VerbRegistrar(const char *name, const char *usage, const char *summary, VerbFn fn)
{
    verbs().push_back({name, usage, summary, fn});
}

} // namespace braggnac::cli
