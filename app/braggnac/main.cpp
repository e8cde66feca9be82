// braggnac: the headless twin of BraggNAC Studio. Verbs live in cmd_*.cpp.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"
#include "core/common/error.h"
#include "core/common/runtime.h"

using namespace braggnac;

namespace {
void printUsage(std::ostream &os)
{
    auto list = cli::verbs();
    std::sort(list.begin(), list.end(),
              [](const cli::Verb &a, const cli::Verb &b) { return std::string(a.name) < b.name; });
    os << core::versionString() << ": neural architecture codesign for Bragg-peak localisation\n\n"
       << "usage: braggnac <verb> [arguments] [--json] [--progress] [--threads N] [--seed S]\n\n";
    for (const auto &v : list)
        os << "  braggnac " << v.usage << "\n      " << v.summary << "\n";
    os << "\nExit codes: 0 success, 1 failed computation, 2 bad usage or bad input.\n";
}
} // namespace

int main(int argc, char **argv)
{
    core::configureNumericRuntime();
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        printUsage(args.empty() ? std::cerr : std::cout);
        return args.empty() ? 2 : 0;
    }
    if (args[0] == "--version") {
        std::cout << core::versionString() << "\n";
        return 0;
    }
    const std::string verb = args[0];
    const auto &all = cli::verbs();
    auto it = std::find_if(all.begin(), all.end(), [&](const cli::Verb &v) { return verb == v.name; });
    if (it == all.end()) {
        std::cerr << "braggnac: unknown verb '" << verb << "' (see braggnac --help)\n";
        return 2;
    }
    try {
        cli::Args parsed(verb, std::vector<std::string>(args.begin() + 1, args.end()));
        if (parsed.has("help")) {
            std::cout << "usage: braggnac " << it->usage << "\n" << it->summary << "\n";
            return 0;
        }
        const int rc = it->run(parsed);
        cli::endProgress();
        return rc;
    } catch (const cli::UsageError &e) {
        cli::endProgress();
        std::cerr << "braggnac " << verb << ": " << e.what() << "\nusage: braggnac " << it->usage
                  << "\n";
        return 2;
    } catch (const core::InputError &e) {
        cli::endProgress();
        std::cerr << "braggnac " << verb << ": " << e.what() << "\n";
        return 2;
    } catch (const core::CancelledError &) {
        cli::endProgress();
        std::cerr << "braggnac " << verb << ": cancelled\n";
        return 1;
    } catch (const std::exception &e) {
        cli::endProgress();
        std::cerr << "braggnac " << verb << ": " << e.what() << "\n";
        return 1;
    }
}
