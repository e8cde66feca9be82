// braggnac: the headless twin of BraggNAC Studio. Verbs live in cmd_*.cpp; parsing in cli.cpp.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"
#include "core/common/interrupt.h"
#include "core/common/runtime.h"
#include "core/search/mpiexecutor.h"

using namespace braggnac;

namespace {
std::vector<cli::Verb> sortedVerbs()
{
    auto list = cli::verbs();
    std::sort(list.begin(), list.end(), [](const cli::Verb &a, const cli::Verb &b) { return a.name < b.name; });
    return list;
}

void printUsage(std::ostream &os)
{
    os << core::versionString() << ": neural architecture codesign for Bragg-peak localisation\n\n"
       << "usage: braggnac <verb> [arguments] [--json] [--progress] [--threads N] [--seed S]\n"
       << "       braggnac <verb> --help\n\n";
    for (const auto &v : sortedVerbs())
        os << "  braggnac " << cli::usageLine(v) << "\n      " << v.summary << "\n";
    os << "\nExit codes: 0 success, 1 failed computation or interrupted (SIGINT, SIGTERM), 2 bad "
          "usage or bad input.\n";
}
} // namespace

int main(int argc, char **argv)
{
    core::installInterruptHandlers();
    core::configureNumericRuntime();
    // Under mpirun (OMPI_COMM_WORLD_SIZE set): MPI_Init here, MPI_Finalize when main returns;
    // `search` picks the MPI executor (rank 0) or the worker loop (ranks >= 1). Otherwise nothing.
    const core::MpiSession mpi(&argc, &argv);
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        printUsage(args.empty() ? std::cerr : std::cout);
        return args.empty() ? 2 : 0;
    }
    if (args[0] == "--version") {
        std::cout << core::versionString() << "\n";
        return 0;
    }
    const auto all = sortedVerbs();
    // A verb with a sub-verb ("simulate frames") is matched on its two words.
    if (args.size() >= 2) {
        const std::string two = args[0] + " " + args[1];
        for (const auto &v : all)
            if (v.name == two)
                return cli::runVerb(v, std::vector<std::string>(args.begin() + 2, args.end()));
    }
    for (const auto &v : all)
        if (v.name == args[0])
            return cli::runVerb(v, std::vector<std::string>(args.begin() + 1, args.end()));
    std::vector<const cli::Verb *> subs;
    for (const auto &v : all)
        if (v.name.rfind(args[0] + " ", 0) == 0)
            subs.push_back(&v);
    if (!subs.empty()) {
        const bool help = args.size() >= 2 && (args[1] == "--help" || args[1] == "-h");
        std::ostream &os = help ? std::cout : std::cerr;
        if (!help) {
            std::string names;
            for (std::size_t i = 0; i < subs.size(); ++i)
                names += std::string(i ? " or " : "") + subs[i]->name.substr(args[0].size() + 1);
            os << "braggnac " << args[0] << ": expected " << names
               << (args.size() >= 2 ? ", got '" + args[1] + "'" : std::string()) << "\n";
        }
        for (const auto *v : subs)
            os << "usage: braggnac " << cli::usageLine(*v) << "\n";
        return help ? 0 : 2;
    }
    std::cerr << "braggnac: unknown verb '" << args[0] << "' (see braggnac --help)\n";
    return 2;
}
