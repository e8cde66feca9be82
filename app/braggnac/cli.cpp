#include "cli.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>
#include <mutex>
#include <new>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "core/common/error.h"
#include "core/common/interrupt.h"
#include "core/common/outputguard.h"
#include "core/io/framesource.h"

namespace fs = std::filesystem;

namespace braggnac::cli {

namespace {
bool g_progressDrawn = false;
std::mutex g_progressMutex;

std::string numberText(double v)
{
    std::ostringstream s;
    s << v;
    return s.str();
}

bool parseInteger(const std::string &text, long long &out)
{
    if (text.empty() || std::isspace((unsigned char)text[0]))
        return false;
    errno = 0;
    char *end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (errno != 0 || end != text.c_str() + text.size())
        return false;
    out = v;
    return true;
}

bool parseNumber(const std::string &text, double &out)
{
    if (text.empty() || std::isspace((unsigned char)text[0]))
        return false;
    errno = 0;
    char *end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size())
        return false;
    out = v;
    return true;
}

bool parseSeed(const std::string &text, std::uint64_t &out)
{
    if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
    errno = 0;
    const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
    if (errno == ERANGE)
        return false;
    out = v;
    return true;
}

std::string displayName(const OptionDecl &d)
{
    return d.positional ? d.metavar : "--" + d.name;
}

/// "" when `value` is acceptable for `d`, otherwise what was expected.
std::string validateValue(const OptionDecl &d, const std::string &value)
{
    const std::string got = ", got '" + value + "'";
    if (!d.choiceList.empty()
        && std::find(d.choiceList.begin(), d.choiceList.end(), value) == d.choiceList.end()) {
        std::string list;
        for (std::size_t i = 0; i < d.choiceList.size(); ++i)
            list += (i == 0 ? "" : i + 1 == d.choiceList.size() ? " or " : ", ") + d.choiceList[i];
        return "expected " + list + got;
    }
    if (d.name == "seed" && !d.positional) {
        std::uint64_t s = 0;
        if (!parseSeed(value, s))
            return "expected an integer from 0 to 18446744073709551615" + got;
        return {};
    }
    if (d.type == OptionDecl::Type::Integer) {
        long long v = 0;
        const std::string range = d.hasRange ? " from " + std::to_string(d.intMin) + " to " + std::to_string(d.intMax) : "";
        const std::string kind = d.odd ? "an odd integer" : "an integer";
        if (!parseInteger(value, v))
            return "expected " + kind + range + got;
        if (d.hasRange && (v < d.intMin || v > d.intMax))
            return "expected " + kind + range + got;
        if (d.odd && v % 2 == 0)
            return "expected " + kind + range + got;
    } else if (d.type == OptionDecl::Type::Number) {
        double v = 0;
        std::string range;
        if (d.hasRange) {
            const bool lowInf = std::isinf(d.numMin), highInf = std::isinf(d.numMax);
            if (lowInf && !highInf)
                range = std::string(d.maxOpen ? " < " : " <= ") + numberText(d.numMax);
            else if (!lowInf && highInf)
                range = std::string(d.minOpen ? " > " : " >= ") + numberText(d.numMin);
            else if (!lowInf && !highInf)
                range = std::string(" in ") + (d.minOpen ? "(" : "[") + numberText(d.numMin) + ", "
                    + numberText(d.numMax) + (d.maxOpen ? ")" : "]");
        }
        if (!parseNumber(value, v))
            return "expected a number" + range + got;
        if (!std::isfinite(v))
            return "expected a finite number" + range + got;
        if (d.hasRange) {
            const bool low = d.minOpen ? v <= d.numMin : v < d.numMin;
            const bool high = d.maxOpen ? v >= d.numMax : v > d.numMax;
            if (low || high)
                return "expected a number" + range + got;
        }
    }
    return {};
}

void checkPath(const OptionDecl &d, const std::string &value)
{
    if (d.path == OptionDecl::Path::Any)
        return;
    struct stat st = {};
    if (::stat(value.c_str(), &st) != 0) {
        const int err = errno;
        if (err == ENOENT || err == ENOTDIR)
            throw core::InputError(core::fileMessage(
                value, d.path == OptionDecl::Path::ExistingFolder ? "no such folder" : "no such file"));
        throw core::InputError(core::fileMessage(value, std::string("cannot read: ") + std::strerror(err)));
    }
    if (d.path == OptionDecl::Path::ExistingFile && S_ISDIR(st.st_mode))
        throw core::InputError(core::fileMessage(value, "is a folder, not a file (" + displayName(d) + ")"));
    if (d.path == OptionDecl::Path::ExistingFolder && !S_ISDIR(st.st_mode))
        throw core::InputError(core::fileMessage(value, "is not a folder (" + displayName(d) + ")"));
    if (d.path == OptionDecl::Path::ExistingFile && !S_ISREG(st.st_mode))
        throw core::InputError(core::fileMessage(value, "is not a regular file (" + displayName(d) + ")"));
    if (::access(value.c_str(), R_OK) != 0)
        throw core::InputError(core::fileMessage(value, std::string("cannot read: ") + std::strerror(errno)));
}

bool hdf5Holds(const std::string &path, const std::string &prefix)
{
    if (!core::hasHdf5Signature(path))
        return false;
    try {
        const auto list = core::listHdf5Datasets(path);
        return std::any_of(list.begin(), list.end(), [&](const core::Hdf5DatasetInfo &d) {
            return d.path == prefix || d.path.rfind(prefix + "/", 0) == 0;
        });
    } catch (const std::exception &) {
        return false;
    }
}

bool isPreviousOutput(OutputKind kind, const std::string &path)
{
    switch (kind) {
    case OutputKind::PatchFile:
        return hdf5Holds(path, "/patches");
    case OutputKind::TruthFile:
        return hdf5Holds(path, "/truth");
    case OutputKind::SimulatedFrames:
        if (core::hasHdf5Signature(path))
            return hdf5Holds(path, "/truth");
        return hdf5Holds(path + ".truth.h5", "/truth");
    case OutputKind::ModelFolder: {
        std::error_code ec;
        return fs::is_directory(path, ec) && fs::is_regular_file(fs::path(path) / "model.json", ec);
    }
    case OutputKind::Custom:
        return false;
    }
    return false;
}

const char *kindName(OutputKind kind)
{
    switch (kind) {
    case OutputKind::PatchFile:
        return "patch file";
    case OutputKind::SimulatedFrames:
        return "frame file";
    case OutputKind::TruthFile:
        return "ground-truth file";
    case OutputKind::ModelFolder:
        return "model folder";
    case OutputKind::Custom:
        return "output";
    }
    return "output";
}

void checkOne(const std::string &target, OutputKind kind, const std::string &option,
              const std::vector<std::string> &inputs, bool force)
{
    core::OutputRequest r;
    r.target = target;
    r.option = option;
    r.inputs = inputs;
    r.folder = kind == OutputKind::ModelFolder;
    r.kindName = kindName(kind);
    r.isPrevious = [kind](const std::string &p) { return isPreviousOutput(kind, p); };
    r.force = force;
    core::checkOutput(r);
}

void checkCustom(const std::string &target, const std::string &kind, PreviousFn previous, bool folder,
                 const std::string &option, const std::vector<std::string> &inputs, bool force)
{
    core::OutputRequest r;
    r.target = target;
    r.option = option;
    r.inputs = inputs;
    r.folder = folder;
    r.kindName = kind;
    if (previous)
        r.isPrevious = [previous](const std::string &p) { return previous(p); };
    r.force = force;
    core::checkOutput(r);
}

void addCommonOptions(VerbSpec &spec)
{
    spec.flag("json", "print one JSON object on stdout (and nothing else there)");
    spec.flag("progress", "draw a progress bar on stderr even when it is not a terminal");
    spec.flag("quiet", "no progress bar, even on a terminal");
    spec.option("threads", "N", "worker threads (0: all cores)").integer(0, 4096);
    spec.option("seed", "S", "random seed (same seed, same inputs, same machine: same output)")
        .integer(0, std::numeric_limits<long long>::max());
    if (spec.hasOutput())
        spec.flag("force", "replace an existing output that braggnac did not write (never an "
                           "input of the run, never a non-empty folder)");
}

std::string metavarText(const OptionDecl &d)
{
    if (!d.choiceList.empty()) {
        std::string s;
        for (std::size_t i = 0; i < d.choiceList.size(); ++i)
            s += (i ? "|" : "") + d.choiceList[i];
        return s;
    }
    return d.metavar;
}

[[noreturn]] void usageFail(const std::string &message)
{
    throw UsageError(message);
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Declarations

OptionDecl &OptionDecl::required()
{
    isRequired = true;
    return *this;
}

OptionDecl &OptionDecl::optional()
{
    isRequired = false;
    return *this;
}

OptionDecl &OptionDecl::integer(long long lo, long long hi)
{
    type = Type::Integer;
    intMin = lo;
    intMax = hi;
    hasRange = true;
    return *this;
}

OptionDecl &OptionDecl::number(double lo, double hi, bool openLo, bool openHi)
{
    type = Type::Number;
    numMin = lo;
    numMax = hi;
    minOpen = openLo;
    maxOpen = openHi;
    hasRange = true;
    return *this;
}

OptionDecl &OptionDecl::oddOnly()
{
    odd = true;
    return *this;
}

OptionDecl &OptionDecl::choices(std::vector<std::string> list)
{
    choiceList = std::move(list);
    return *this;
}

OptionDecl &OptionDecl::defaultValue(std::string text)
{
    defaultText = std::move(text);
    return *this;
}

OptionDecl &OptionDecl::existingFile()
{
    path = Path::ExistingFile;
    return *this;
}

OptionDecl &OptionDecl::existingFolder()
{
    path = Path::ExistingFolder;
    return *this;
}

OptionDecl &OptionDecl::existing()
{
    path = Path::Existing;
    return *this;
}

OptionDecl &OptionDecl::input()
{
    isInput = true;
    return *this;
}

OptionDecl &OptionDecl::output(OutputKind kind)
{
    isOutput = true;
    outputKind = kind;
    return *this;
}

OptionDecl &OptionDecl::output(const std::string &kindName, PreviousFn isPrevious, bool folder)
{
    isOutput = true;
    outputKind = OutputKind::Custom;
    customKind = kindName;
    customPrevious = isPrevious;
    customFolder = folder;
    return *this;
}

OptionDecl &VerbSpec::positional(const std::string &metavar, const std::string &help)
{
    OptionDecl d;
    d.name = metavar;
    d.metavar = metavar;
    d.help = help;
    d.positional = true;
    d.isRequired = true;
    m_decls.push_back(std::move(d));
    return m_decls.back();
}

OptionDecl &VerbSpec::option(const std::string &name, const std::string &metavar, const std::string &help)
{
    OptionDecl d;
    d.name = name;
    d.metavar = metavar;
    d.help = help;
    m_decls.push_back(std::move(d));
    return m_decls.back();
}

OptionDecl &VerbSpec::flag(const std::string &name, const std::string &help)
{
    OptionDecl d;
    d.name = name;
    d.help = help;
    d.type = OptionDecl::Type::Flag;
    m_decls.push_back(std::move(d));
    return m_decls.back();
}

const OptionDecl *VerbSpec::find(const std::string &name) const
{
    for (const auto &d : m_decls)
        if (!d.positional && d.name == name)
            return &d;
    return nullptr;
}

bool VerbSpec::hasOutput() const
{
    return std::any_of(m_decls.begin(), m_decls.end(), [](const OptionDecl &d) { return d.isOutput; });
}

// ---------------------------------------------------------------------------------------------
// Args

const std::set<std::string> &booleanFlags()
{
    static const std::set<std::string> flags = {"json", "progress", "pareto", "csv", "force", "best",
                                                "help", "no-mask", "no-compress", "quiet", "asha",
                                                "structured"};
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
                if (i + 1 >= argv.size() || argv[i + 1].compare(0, 2, "--") == 0) {
                    // Reported when the verb reads it, or as unknown by finish() otherwise.
                    m_missingValue.insert(name);
                    m_options[name] = value;
                    continue;
                }
                value = argv[++i];
            }
            m_options[name] = value;
        } else {
            m_positional.push_back(a);
        }
    }
}

Args::Args(std::string verb, const VerbSpec *spec, std::vector<std::string> positional,
           std::map<std::string, std::string> options)
    : m_verb(std::move(verb)), m_spec(spec), m_positional(std::move(positional)),
      m_options(std::move(options))
{
}

void Args::checkDeclared(const std::string &name) const
{
    if (m_spec && !m_spec->find(name))
        throw std::logic_error("braggnac " + m_verb + ": internal error: option --" + name
                               + " is read but not declared");
}

std::string Args::positionalAt(std::size_t i, const std::string &what) const
{
    if (i >= m_positional.size())
        throw UsageError("missing argument: " + what);
    return m_positional[i];
}

bool Args::has(const std::string &name) const
{
    checkDeclared(name);
    m_used.insert(name);
    return m_options.count(name) > 0;
}

std::string Args::get(const std::string &name, const std::string &fallback) const
{
    checkDeclared(name);
    m_used.insert(name);
    if (m_missingValue.count(name))
        throw UsageError("--" + name + " needs a value");
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
    long long x = 0;
    if (!parseInteger(v, x))
        throw UsageError("--" + name + ": expected an integer, got '" + v + "'");
    return x;
}

double Args::getDouble(const std::string &name, double fallback) const
{
    if (!has(name))
        return fallback;
    const std::string v = get(name);
    double x = 0;
    if (!parseNumber(v, x) || !std::isfinite(x))
        throw UsageError("--" + name + ": expected a finite number, got '" + v + "'");
    return x;
}

std::uint64_t Args::seed(std::uint64_t fallback) const
{
    if (!has("seed"))
        return fallback;
    const std::string v = get("seed");
    std::uint64_t s = 0;
    if (!parseSeed(v, s))
        throw UsageError("--seed: expected an integer from 0 to 18446744073709551615, got '" + v + "'");
    return s;
}

void Args::finish(std::size_t maxPositional) const
{
    if (m_spec)
        return;
    for (const char *common : {"json", "progress", "threads", "seed", "quiet"})
        m_used.insert(common);
    for (const auto &kv : m_options)
        if (!m_used.count(kv.first))
            throw UsageError("unknown option --" + kv.first);
    if (m_positional.size() > maxPositional)
        throw UsageError("unexpected argument '" + m_positional[maxPositional] + "'");
    if (has("threads") && getInt("threads", 0) < 0)
        throw UsageError("--threads: expected an integer from 0 to 4096, got '" + get("threads") + "'");
    (void)seed();
}

std::vector<std::string> Args::inputs() const
{
    std::vector<std::string> out;
    if (!m_spec)
        return out;
    std::size_t pos = 0;
    for (const auto &d : m_spec->decls()) {
        if (d.positional) {
            if (d.isInput && pos < m_positional.size())
                out.push_back(m_positional[pos]);
            ++pos;
        } else if (d.isInput) {
            auto it = m_options.find(d.name);
            if (it != m_options.end())
                out.push_back(it->second);
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Progress, output

core::Monitor makeMonitor(const Args &args, const std::string &label)
{
    core::installInterruptHandlers();
    core::Monitor m;
    m.cancel = core::interruptToken();
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

void checkOutputPath(const Args &args, const std::string &path, OutputKind kind, const std::string &option)
{
    checkOne(path, kind, option, args.inputs(), args.force());
}

void checkOutputPath(const Args &args, const std::string &path, const std::string &kindName,
                     PreviousFn isPrevious, bool folder, const std::string &option)
{
    checkCustom(path, kindName, isPrevious, folder, option, args.inputs(), args.force());
}

void checkOutputFolder(const std::string &path)
{
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty() && !fs::is_directory(parent))
        throw core::InputError(core::fileMessage(path, "output folder '" + parent.string()
                                                           + "' does not exist"));
}

std::pair<int, int> frameRange(const std::string &text, int count, const std::string &path)
{
    if (text.empty())
        return {0, count};
    auto index = [&](const std::string &part) {
        try {
            std::size_t pos = 0;
            const long long v = std::stoll(part, &pos);
            if (pos == part.size() && v >= 0 && v <= 1000000000)
                return int(v);
        } catch (const std::exception &) {
        }
        throw UsageError("--frames: expected A:B with frame numbers >= 0 (frames A to B-1), got '" + text + "'");
    };
    int first = 0, last = count;
    const auto colon = text.find(':');
    if (colon == std::string::npos) {
        first = index(text);
        last = first + 1;
    } else {
        const std::string a = text.substr(0, colon), b = text.substr(colon + 1);
        first = a.empty() ? 0 : index(a);
        last = b.empty() ? count : index(b);
    }
    if (first >= last || last > count)
        throw core::InputError(core::fileMessage(
            path, "--frames " + text + " selects no frames of the " + std::to_string(count)
                      + " in the file (frames A to B-1 with 0 <= A < B <= " + std::to_string(count) + ")"));
    return {first, last};
}

bool isHdf5File(const std::string &path)
{
    return core::hasHdf5Signature(path);
}

// ---------------------------------------------------------------------------------------------
// Registry, usage, parsing

std::vector<Verb> &verbs()
{
    static std::vector<Verb> v;
    return v;
}

VerbRegistrar::VerbRegistrar(const char *name, const char *summary, DeclareFn declare, VerbFn fn)
{
    Verb v;
    v.name = name;
    v.summary = summary;
    v.declare = declare;
    v.run = fn;
    verbs().push_back(v);
}

VerbRegistrar::VerbRegistrar(const char *name, const char *usage, const char *summary, VerbFn fn)
{
    Verb v;
    v.name = name;
    v.usage = usage;
    v.summary = summary;
    v.run = fn;
    verbs().push_back(v);
}

namespace {
VerbSpec specOf(const Verb &verb)
{
    VerbSpec spec;
    verb.declare(spec);
    addCommonOptions(spec);
    return spec;
}
} // namespace

void declareRecipeOptions(VerbSpec &v)
{
    const double inf = std::numeric_limits<double>::infinity();
    v.option("epochs", "E", "training epochs").integer(1, 1000000).defaultValue("50");
    v.option("batch", "B", "batch size").integer(1, 1 << 20).defaultValue("256");
    v.option("device", "DEV", "auto, cpu, cuda or cuda:N").defaultValue("auto");
    v.option("optimizer", "OPT", "optimiser").choices({"rmsprop", "adam", "sgd"}).defaultValue("rmsprop");
    v.option("lr", "LR", "learning rate").number(0, inf, true).defaultValue("1.5e-3");
    v.option("schedule", "S", "learning-rate schedule").choices({"cosine", "step", "exponential", "none"}).defaultValue("cosine");
    v.option("weight-decay", "W", "weight decay").number(0, inf).defaultValue("2.2e-9");
    v.option("momentum", "M", "SGD momentum").number(0, 1, false, true).defaultValue("0.9");
    v.option("rmsprop-momentum", "M", "RMSprop momentum").number(0, 1, false, true).defaultValue("0");
    v.option("step-size", "N", "epochs per step of the step schedule").integer(1, 1000000).defaultValue("10");
    v.option("gamma", "G", "decay factor of the step and exponential schedules").number(0, 1, true).defaultValue("0.5");
    v.option("patience", "N", "early-stopping patience in epochs (0: none)").integer(0, 1000000).defaultValue("0");
    v.option("shift", "PX", "random shift augmentation (px)").integer(0, 1000).defaultValue("0");
}

void checkStudyPath(const std::string &studyPath)
{
    if (std::filesystem::is_directory(studyPath))
        throw core::InputError(core::fileMessage(studyPath, "is a folder, not a study file"));
    const std::filesystem::path parent = std::filesystem::path(studyPath).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent))
        throw core::InputError(core::fileMessage(studyPath, "its folder '" + parent.string() + "' does not exist"));
}

core::TrainOptions recipeFromArgs(const Args &args, const std::string &dataSource)
{
    core::TrainOptions o;
    o.epochs = int(args.getInt("epochs", o.epochs));
    o.batchSize = int(args.getInt("batch", o.batchSize));
    o.device = args.get("device", o.device);
    o.learningRate = args.getDouble("lr", o.learningRate);
    o.optimizer = args.get("optimizer", o.optimizer);
    o.schedule = args.get("schedule", o.schedule);
    o.weightDecay = args.getDouble("weight-decay", o.weightDecay);
    o.momentum = args.getDouble("momentum", o.momentum);
    o.rmspropMomentum = args.getDouble("rmsprop-momentum", o.rmspropMomentum);
    o.stepSize = int(args.getInt("step-size", o.stepSize));
    o.gamma = args.getDouble("gamma", o.gamma);
    o.patience = int(args.getInt("patience", o.patience));
    o.shift = int(args.getInt("shift", o.shift));
    o.threads = args.threads();
    o.seed = args.seed(1);
    o.dataSource = dataSource;
    return o;
}

std::string usageLine(const Verb &verb)
{
    if (!verb.declare)
        return verb.usage;
    const VerbSpec spec = specOf(verb);
    std::string s = verb.name;
    for (const auto &d : spec.decls()) {
        if (d.positional) {
            s += d.isRequired ? " " + d.metavar : " [" + d.metavar + "]";
        } else if (d.type == OptionDecl::Type::Flag) {
            s += " [--" + d.name + "]";
        } else if (d.isRequired) {
            s += " --" + d.name + " " + metavarText(d);
        } else {
            const std::string value = !d.choiceList.empty() ? metavarText(d)
                : !d.defaultText.empty()                   ? d.defaultText
                                                           : d.metavar;
            s += " [--" + d.name + " " + value + "]";
        }
    }
    return s;
}

std::string helpText(const Verb &verb)
{
    std::ostringstream os;
    os << "usage: braggnac " << usageLine(verb) << "\n\n" << verb.summary << "\n";
    if (!verb.declare)
        return os.str();
    const VerbSpec spec = specOf(verb);
    os << "\n";
    for (const auto &d : spec.decls()) {
        std::string left = d.positional ? d.metavar
            : d.type == OptionDecl::Type::Flag ? "--" + d.name
                                               : "--" + d.name + " " + metavarText(d);
        std::string right = d.help;
        std::vector<std::string> notes;
        if (d.isRequired && !d.positional)
            notes.push_back("required");
        if (d.type == OptionDecl::Type::Integer && d.hasRange && d.name != "seed")
            notes.push_back((d.odd ? "odd, " : "") + std::to_string(d.intMin) + " to " + std::to_string(d.intMax));
        if (d.type == OptionDecl::Type::Number && d.hasRange) {
            const std::string v = validateValue(d, "x"); // "expected a number <range>, got 'x'"
            const auto a = v.find("a number"), b = v.find(", got");
            if (a != std::string::npos && b != std::string::npos && b > a + 8)
                notes.push_back("finite," + v.substr(a + 8, b - a - 8));
        }
        if (!d.defaultText.empty())
            notes.push_back("default " + d.defaultText);
        if (d.isOutput)
            notes.push_back("checked before the work starts");
        if (!notes.empty()) {
            right += " (";
            for (std::size_t i = 0; i < notes.size(); ++i)
                right += (i ? "; " : "") + notes[i];
            right += ")";
        }
        os << "  " << left;
        if (left.size() < 28)
            os << std::string(28 - left.size(), ' ');
        else
            os << "\n  " << std::string(28, ' ');
        os << right << "\n";
    }
    return os.str();
}

namespace {

int reportUsage(const Verb &verb, const std::string &message)
{
    endProgress();
    std::cerr << "braggnac " << verb.name << ": " << message << "\nusage: braggnac " << usageLine(verb)
              << "   (braggnac " << verb.name << " --help for details)\n";
    return 2;
}

struct Parsed {
    bool help = false;
    std::vector<std::string> positional;
    std::map<std::string, std::string> options;
};

/// Parses argv for a declared verb (throws UsageError / core::InputError).
Parsed parseDeclared(const VerbSpec &spec, const std::vector<std::string> &argv)
{
    CLI::App app;
    app.allow_extras(true);
    app.set_help_flag("-h,--help");
    app.positionals_at_end(false);
    const auto &decls = spec.decls();
    std::deque<std::string> values(decls.size());
    std::deque<bool> flags(decls.size(), false);
    std::vector<CLI::Option *> opts(decls.size(), nullptr);
    int pos = 0;
    for (std::size_t i = 0; i < decls.size(); ++i) {
        const OptionDecl &d = decls[i];
        if (d.positional) {
            opts[i] = app.add_option("pos" + std::to_string(pos++), values[i]);
        } else if (d.type == OptionDecl::Type::Flag) {
            opts[i] = app.add_flag("--" + d.name, flags[i]);
        } else {
            opts[i] = app.add_option("--" + d.name, values[i]);
            opts[i]->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        }
    }

    // Debian's CLI11 (2.1) gives an option its value even when the next argument is another
    // option ("--out --json" would write a file named --json): refuse that here. A value that
    // really starts with "--" can be given as --out=--name.
    for (std::size_t i = 0; i < argv.size(); ++i) {
        const std::string &a = argv[i];
        if (a == "--")
            break;
        if (a.size() <= 2 || a.compare(0, 2, "--") != 0 || a.find('=') != std::string::npos)
            continue;
        const OptionDecl *d = spec.find(a.substr(2));
        if (!d || d->type == OptionDecl::Type::Flag)
            continue;
        const bool nextIsOption = i + 1 < argv.size()
            && (argv[i + 1].compare(0, 2, "--") == 0 || argv[i + 1] == "-h");
        if (nextIsOption) {
            // An unknown option anywhere still comes first (it explains the rest).
            for (const std::string &b : argv)
                if (b.size() > 2 && b.compare(0, 2, "--") == 0) {
                    const std::string name = b.substr(2, b.find('=') == std::string::npos ? std::string::npos : b.find('=') - 2);
                    if (!spec.find(name) && name != "help")
                        usageFail("unknown option --" + name);
                }
            usageFail(a + " needs a value (got the option '" + argv[i + 1] + "')");
        }
    }
    std::vector<std::string> reversed(argv.rbegin(), argv.rend());
    std::string parseError;
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp &) {
        Parsed p;
        p.help = true;
        return p;
    } catch (const CLI::ArgumentMismatch &e) {
        std::string what = e.what();
        const auto colon = what.find(':');
        parseError = what.rfind("--", 0) == 0 && colon != std::string::npos
            ? what.substr(0, colon) + " needs a value"
            : what;
    } catch (const CLI::ParseError &e) {
        parseError = e.what();
    }
    // Unknown options and extra arguments first: they explain most other errors.
    for (const std::string &r : app.remaining()) {
        if (r.size() > 1 && r[0] == '-') {
            const auto eq = r.find('=');
            usageFail("unknown option " + (eq == std::string::npos ? r : r.substr(0, eq)));
        }
        usageFail("unexpected argument '" + r + "'");
    }
    if (!parseError.empty())
        usageFail(parseError);

    Parsed result;
    std::vector<std::string> &positional = result.positional;
    std::map<std::string, std::string> &options = result.options;
    for (std::size_t i = 0; i < decls.size(); ++i) {
        const OptionDecl &d = decls[i];
        const bool given = opts[i]->count() > 0;
        if (d.type == OptionDecl::Type::Flag) {
            if (given && flags[i])
                options[d.name] = "";
            continue;
        }
        if (!given) {
            if (d.isRequired)
                usageFail(d.positional ? "missing argument " + d.metavar + " (" + d.help + ")"
                                       : "--" + d.name + " is required");
            continue;
        }
        const std::string &value = values[i];
        if (value.empty())
            usageFail(displayName(d) + ": expected a value, got an empty one");
        const std::string err = validateValue(d, value);
        if (!err.empty())
            usageFail(displayName(d) + ": " + err);
        if (d.positional)
            positional.push_back(value);
        else
            options[d.name] = value;
    }
    // Input files after every usage check: a bad flag is reported before a missing file.
    std::size_t p = 0;
    for (const OptionDecl &d : decls) {
        if (d.positional) {
            if (p < positional.size())
                checkPath(d, positional[p]);
            ++p;
        } else if (auto it = options.find(d.name); it != options.end()) {
            checkPath(d, it->second);
        }
    }
    return result;
}

} // namespace

int runVerb(const Verb &verb, const std::vector<std::string> &argv)
{
    core::installInterruptHandlers();
    try {
        std::unique_ptr<Args> args;
        VerbSpec spec;
        if (verb.declare) {
            spec = specOf(verb);
            Parsed parsed = parseDeclared(spec, argv);
            if (parsed.help) {
                std::cout << helpText(verb);
                return 0;
            }
            args = std::make_unique<Args>(verb.name, &spec, std::move(parsed.positional),
                                          std::move(parsed.options));
            // Outputs: checked before any work (folder, writable, not an input, replaceable).
            for (const auto &d : spec.decls())
                if (d.isOutput && args->has(d.name)) {
                    if (d.outputKind == OutputKind::Custom)
                        checkCustom(args->get(d.name), d.customKind, d.customPrevious, d.customFolder,
                                    "--" + d.name, args->inputs(), args->force());
                    else
                        checkOne(args->get(d.name), d.outputKind, "--" + d.name, args->inputs(), args->force());
                }
        } else {
            if (std::find(argv.begin(), argv.end(), "--help") != argv.end()) {
                std::cout << helpText(verb);
                return 0;
            }
            args = std::make_unique<Args>(verb.name, argv);
        }
        const int rc = verb.run(*args);
        endProgress();
        return rc;
    } catch (const UsageError &e) {
        return reportUsage(verb, e.what());
    } catch (const core::CancelledError &) {
        endProgress();
        std::cerr << "braggnac " << verb.name
                  << (core::interruptRequested() ? ": interrupted; nothing written (an existing output is unchanged)\n"
                                                 : ": cancelled; nothing written\n");
        return 1;
    } catch (const core::InputError &e) {
        endProgress();
        std::cerr << "braggnac " << verb.name << ": " << e.what() << "\n";
        return 2;
    } catch (const std::bad_alloc &) {
        endProgress();
        std::cerr << "braggnac " << verb.name << ": out of memory\n";
        return 1;
    } catch (const std::exception &e) {
        endProgress();
        std::cerr << "braggnac " << verb.name << ": " << e.what() << "\n";
        return 1;
    }
}

} // namespace braggnac::cli
