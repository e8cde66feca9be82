#pragma once
// Command-line plumbing shared by the verbs: one argument parser (CLI11 underneath) driven by
// the options each verb declares, the output checks, progress on stderr, JSON on stdout,
// SIGINT/SIGTERM -> cancellation. Contract: ../shared/spec/cli.md and docs/cli.md (exit 0 ok,
// 1 failed computation or interrupted, 2 bad usage or bad input).
//
// Adding a verb is one new cmd_<verb>.cpp with a VerbRegistrar:
//
//     void declareFoo(VerbSpec &v)
//     {
//         v.positional("DATA", "a labelled patch file").existingFile().input();
//         v.option("out", "MODEL", "the model folder to write").required().output(OutputKind::ModelFolder);
//         v.option("epochs", "E", "training epochs").integer(1, 100000).defaultValue("50");
//         v.flag("no-compress", "write the datasets uncompressed");
//     }
//     int runFoo(const Args &args) { ... args.getInt("epochs", 50) ... }
//     const VerbRegistrar registrar("foo", "what it does", &declareFoo, &runFoo);
//
// Every verb also takes the common options --json, --progress, --quiet, --threads N and
// --seed S, and --force when it declares an output. Before run() is called, every value has
// been checked (type, range, choices, finite numbers; input files exist and are files or
// folders as declared) and every declared output has passed core::checkOutput (its folder
// exists and is writable, it is no input of the run, it is replaceable): a verb's body does no
// parsing of its own and cannot start work towards an output it will not be allowed to write.
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/common/progress.h"
#include "core/nn/trainer.h"

namespace braggnac::cli {

/// Bad usage (unknown flag, missing argument, unparsable number): exit code 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// What a declared output holds, which decides what an existing target may be replaced
/// without --force (docs/cli.md, "Outputs").
enum class OutputKind {
    PatchFile,       // HDF5 patch dataset: an existing HDF5 file with /patches
    SimulatedFrames, // simulate frames: HDF5 with /truth, or a GE/TIFF file with its F.truth.h5
    TruthFile,       // the F.truth.h5 sidecar: HDF5 with /truth
    ModelFolder,     // a folder with model.json
    Custom,          // declared with output(kindName, isPrevious, folder)
};

/// For OutputKind::Custom: true when an existing target is a previous output of that kind.
using PreviousFn = bool (*)(const std::string &path);

/// One declared option or positional argument. Built with the chainable setters below.
struct OptionDecl {
    enum class Type { Text, Integer, Number, Flag };
    enum class Path { Any, ExistingFile, ExistingFolder, Existing };
    std::string name;     // "out" for --out; the metavar for a positional
    std::string metavar;  // "L.h5", "N"
    std::string help;
    bool positional = false;
    bool isRequired = false;
    Type type = Type::Text;
    long long intMin = 0, intMax = 0;
    double numMin = 0, numMax = 0;
    bool minOpen = false, maxOpen = false, hasRange = false;
    bool odd = false;
    std::vector<std::string> choiceList;
    std::string defaultText;
    Path path = Path::Any;
    bool isInput = false;
    bool isOutput = false;
    OutputKind outputKind = OutputKind::PatchFile;
    std::string customKind;            // OutputKind::Custom: "study database", for messages
    PreviousFn customPrevious = nullptr;
    bool customFolder = false;

    OptionDecl &required();
    /// A positional that may be left out (positionals are required by default).
    OptionDecl &optional();
    /// An integer in [lo, hi].
    OptionDecl &integer(long long lo, long long hi);
    /// A finite number in [lo, hi] (open ends with minOpen/maxOpen: (lo, hi]).
    OptionDecl &number(double lo, double hi, bool openLo = false, bool openHi = false);
    /// An integer that must be odd (patch sizes); use after integer().
    OptionDecl &oddOnly();
    OptionDecl &choices(std::vector<std::string> list);
    /// Shown in the usage and --help; the verb's code keeps the default it actually uses.
    OptionDecl &defaultValue(std::string text);
    OptionDecl &existingFile();
    OptionDecl &existingFolder();
    /// An existing file or folder.
    OptionDecl &existing();
    /// Read by the run: outputs are checked against it (device + inode).
    OptionDecl &input();
    OptionDecl &output(OutputKind kind);
    /// An output of another kind: isPrevious recognises a previous one (null: none is, so an
    /// existing target needs --force); folder: the output is a folder.
    OptionDecl &output(const std::string &kindName, PreviousFn isPrevious, bool folder = false);
};

/// The options of one verb, in declaration order (positionals in order too).
class VerbSpec {
public:
    OptionDecl &positional(const std::string &metavar, const std::string &help);
    OptionDecl &option(const std::string &name, const std::string &metavar, const std::string &help);
    OptionDecl &flag(const std::string &name, const std::string &help);

    const std::deque<OptionDecl> &decls() const { return m_decls; }
    std::deque<OptionDecl> &decls() { return m_decls; }
    const OptionDecl *find(const std::string &name) const;
    bool hasOutput() const;

private:
    std::deque<OptionDecl> m_decls;
};

class Args {
public:
    /// Legacy verbs (registered without a VerbSpec): parses argv after the verb. "--name value",
    /// "--name=value"; names in booleanFlags() take no value; a value may not start with "--"
    /// (then get() throws "--name needs a value", or finish() "unknown option --name").
    Args(std::string verb, const std::vector<std::string> &argv);
    /// Declared verbs: the values the parser accepted.
    Args(std::string verb, const VerbSpec *spec, std::vector<std::string> positional,
         std::map<std::string, std::string> options);

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
    bool force() const { return has("force"); }
    int threads() const { return int(getInt("threads", 0)); }
    std::uint64_t seed(std::uint64_t fallback = 1) const;

    /// Declared verbs: a no-op (the parser already refused anything undeclared). Legacy verbs:
    /// throws UsageError for any option (or extra positional) the verb code did not ask for.
    void finish(std::size_t maxPositional) const;

    /// The values of the options declared input() (and given), for extra output checks.
    std::vector<std::string> inputs() const;

private:
    void checkDeclared(const std::string &name) const;

    std::string m_verb;
    const VerbSpec *m_spec = nullptr;
    std::vector<std::string> m_positional;
    std::map<std::string, std::string> m_options;
    std::set<std::string> m_missingValue; // legacy verbs: "--name" given without a value
    mutable std::set<std::string> m_used;
};

/// Legacy verbs: flags that take no value (--json, --progress, --pareto, --csv, --force, ...).
const std::set<std::string> &booleanFlags();

/// A Monitor that draws a progress bar on stderr when stderr is a terminal or --progress was
/// given, and whose token is cancelled by SIGINT and SIGTERM.
core::Monitor makeMonitor(const Args &args, const std::string &label);
/// Ends the progress line, if one was drawn.
void endProgress();

/// Prints one JSON object on stdout (the only thing a --json run prints there).
void printJson(const nlohmann::json &j);
/// Human output (stderr).
void info(const std::string &line);

/// Checks one more output of the run (beside the declared ones: e.g. a sidecar file) against
/// the run's inputs and --force; throws core::InputError naming `path` (see outputguard.h).
void checkOutputPath(const Args &args, const std::string &path, OutputKind kind,
                     const std::string &option = "--out");
void checkOutputPath(const Args &args, const std::string &path, const std::string &kindName,
                     PreviousFn isPrevious, bool folder, const std::string &option = "--out");
/// Legacy verbs: throws core::InputError naming `path` when its folder does not exist.
void checkOutputFolder(const std::string &path);

/// A study file given to search/tune: not a folder, and its folder exists (the store itself
/// refuses files that are not studies). Throws core::InputError naming the path.
void checkStudyPath(const std::string &path);

/// --frames of peaks and predict: "A:B" (frames A..B-1), "A:" (A to the end), ":B", or "A" (one
/// frame); empty = all `count` frames. A malformed text is a UsageError (exit 2); a range that
/// selects no frame of the file is an InputError naming `path` and the file's frame count.
std::pair<int, int> frameRange(const std::string &text, int count, const std::string &path);

/// True when `path` is an HDF5 file (by signature); verbs use it to refuse HDF5-only options
/// (--dataset) for GE and TIFF inputs.
bool isHdf5File(const std::string &path);

using VerbFn = int (*)(const Args &args);
using DeclareFn = void (*)(VerbSpec &spec);
struct Verb {
    std::string name;    // "fit", or "simulate frames" (a verb with a sub-verb)
    std::string usage;   // one line: "fit P.h5 --out L.h5 [--max-iterations 100] ..."
    std::string summary; // what it does
    VerbFn run = nullptr;
    DeclareFn declare = nullptr; // null: a legacy verb (parsed by Args' own tokenizer)
};
/// Registered by static VerbRegistrar objects in the cmd_*.cpp files.
std::vector<Verb> &verbs();
struct VerbRegistrar {
    /// A declared verb: usage and --help are generated from its VerbSpec.
    VerbRegistrar(const char *name, const char *summary, DeclareFn declare, VerbFn fn);
    /// A legacy verb with a hand-written usage line (parsed less strictly; migrate to the
    /// declared form).
    VerbRegistrar(const char *name, const char *usage, const char *summary, VerbFn fn);
};

/// The training-recipe options of `train` (--epochs, --batch, --device, --optimizer, --lr,
/// --schedule, --weight-decay, --momentum, --rmsprop-momentum, --step-size, --gamma, --patience,
/// --shift), for every verb that trains ("[recipe flags as train]").
void declareRecipeOptions(VerbSpec &spec);
/// The training recipe those options give (defaults: core::TrainOptions's), with --threads,
/// --seed (default 1) and dataSource set. Not validated here (callers validate with their name).
core::TrainOptions recipeFromArgs(const Args &args, const std::string &dataSource);

/// The usage line of a declared verb (without "usage: braggnac ").
std::string usageLine(const Verb &verb);
/// The --help text of a verb.
std::string helpText(const Verb &verb);
/// Parses argv (after the verb's words) and runs the verb: returns the exit code. Prints errors
/// (one line, then one usage line for bad usage) on stderr.
int runVerb(const Verb &verb, const std::vector<std::string> &argv);

} // namespace braggnac::cli
