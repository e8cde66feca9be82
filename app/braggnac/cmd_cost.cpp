// braggnac cost: parameters, MACs and BOPs of an architecture or a model folder (docs/cost.md).
#include <algorithm>
#include <cstdio>
#include <utility>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "cli.h"
#include "core/common/error.h"
#include "core/cost/cost.h"
#include "core/arch/archspec.h"
#include "core/arch/layerplan.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "core/nn/compress.h"
#include "core/nn/model.h"

namespace fs = std::filesystem;

namespace braggnac::cli {

namespace {

/// Bits and sparsity stored in a model folder's quantization.json, when present.
void readQuantization(const std::string &folder, core::CostOptions &o)
{
    const fs::path path = fs::path(folder) / "quantization.json";
    if (!fs::exists(path))
        return;
    std::ifstream in(path);
    nlohmann::json q;
    try {
        q = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error &) {
        throw core::InputError(core::fileMessage(path.string(), "malformed JSON"));
    }
    if (q.is_null())
        return;
    if (!q.is_object())
        throw core::InputError(core::fileMessage(path.string(), "expected a JSON object"));
    auto readInt = [&](const char *key, int &target) {
        if (auto it = q.find(key); it != q.end()) {
            if (!it->is_number_integer())
                throw core::InputError(core::fileMessage(path.string(), std::string(key) + ": expected an integer"));
            // Clamp before narrowing: 2^32 + 8 must not pass as 8.
            target = int(std::clamp<long long>(it->get<long long>(), -1, 1000));
        }
    };
    int bits = 0;
    readInt("bits", bits); // a single width for weights and activations
    if (bits > 0)
        o.weightBits = o.activationBits = bits;
    readInt("weight_bits", o.weightBits);
    readInt("act_bits", o.activationBits);
    if (auto it = q.find("sparsity"); it != q.end()) {
        if (!it->is_number())
            throw core::InputError(core::fileMessage(path.string(), "sparsity: expected a number"));
        o.sparsity = it->get<double>();
    }
    // Name the file when its values are out of range (the flags' checks would blame the flags).
    for (const auto &[key, value] : {std::pair<const char *, int>{"weight bits", o.weightBits},
                                     std::pair<const char *, int>{"activation bits", o.activationBits}})
        if (value < 1 || value > 64)
            throw core::InputError(core::fileMessage(path.string(), std::string(key) + ": expected 1 to 64, got "
                                                                   + std::to_string(value)));
    if (!(o.sparsity >= 0 && o.sparsity < 1))
        throw core::InputError(core::fileMessage(path.string(), "sparsity: expected a fraction in [0, 1), got "
                                                               + std::to_string(o.sparsity)));
}

std::string thousands(long long v)
{
    std::string s = std::to_string(v < 0 ? -v : v);
    for (int i = int(s.size()) - 3; i > 0; i -= 3)
        s.insert(std::size_t(i), ",");
    return (v < 0 ? "-" : "") + s;
}

void declareCost(VerbSpec &v)
{
    v.positional("MODEL|SPEC.json", "a model folder or an architecture spec (or give --arch)").optional();
    v.option("arch", "NAME", "a built-in architecture (braggnn, nac) or SPEC.json");
    v.option("convention", "C", "BOPs convention").choices({"standard", "nac-opt", "nac"}).defaultValue("standard");
    v.option("weight-bits", "B", "weight bits").integer(1, 64).defaultValue("32");
    v.option("act-bits", "B", "activation bits").integer(1, 64).defaultValue("32");
    v.option("sparsity", "S", "fraction of zero weights").number(0, 1, false, true).defaultValue("0");
}

int runCost(const Args &args)
{
    core::CostOptions o;
    const std::string arch = args.get("arch");
    const std::string convention = args.get("convention", "standard");
    const bool hasW = args.has("weight-bits"), hasA = args.has("act-bits"), hasS = args.has("sparsity");
    const long long wbits = args.getInt("weight-bits", 32);
    const long long abits = args.getInt("act-bits", 32);
    const double sparsity = args.getDouble("sparsity", 0);
    std::string input;
    if (!arch.empty() && !args.positional().empty())
        throw UsageError("give MODEL|SPEC.json or --arch NAME, not both");
    if (arch.empty())
        input = args.positionalAt(0, "MODEL (a model folder), SPEC.json, or --arch NAME");
    args.finish(arch.empty() ? 1 : 0);

    if (convention == "standard")
        o.convention = core::CostConvention::Standard;
    else if (convention == "nac-opt" || convention == "nac")
        o.convention = core::CostConvention::NacOpt;
    else
        throw UsageError("--convention: expected standard or nac-opt, got '" + convention + "'");

    core::ArchSpec spec;
    std::string source;
    if (!arch.empty()) {
        spec = core::resolveArch(arch);
        source = arch;
    } else if (fs::is_directory(input)) {
        if (!fs::exists(fs::path(input) / "spec.json"))
            throw core::InputError(core::fileMessage(input, "spec.json: missing (not a model folder)"));
        spec = core::ArchSpec::load((fs::path(input) / "spec.json").string());
        const fs::path qpath = fs::path(input) / "quantization.json";
        if (fs::exists(qpath)) {
            std::ifstream qin(qpath);
            const nlohmann::json qj = nlohmann::json::parse(qin, nullptr, false);
            if (qj.is_object() && qj.value("format", std::string()) == "braggnac-quantization") {
                // A quantised model folder (braggnac compress): per-layer bits from its QuantSpec
                // and the real zeros of its quantised weights (quantisedCost, standard convention).
                for (const char *flag : {"weight-bits", "act-bits", "sparsity"})
                    if (args.has(flag))
                        throw UsageError(std::string("--") + flag + ": " + input
                                         + " is quantised: its own per-layer bits and zeros are used (quantization.json)");
                if (o.convention != core::CostConvention::Standard)
                    throw UsageError("--convention: " + input + " is quantised: only the standard convention "
                                     "has per-layer bits and real zeros");
                const core::Model model = core::Model::load(input);
                const core::LayerPlan plan = core::LayerPlan::lower(model.spec());
                const core::IntegerReference ref(plan, model.namedParameters(),
                                                 core::modelQuantSpec(model, qpath.string()));
                const core::Cost cost = core::quantisedCost(ref);
                if (args.json()) {
                    nlohmann::json j = cost.toJson();
                    j["arch"] = model.spec().name;
                    j["source"] = input;
                    j["convention"] = "standard";
                    j["quantised"] = true;
                    printJson(j);
                    return 0;
                }
                std::fprintf(stderr, "%s (%s): convention standard, quantised (per-layer bits and zeros of "
                                     "quantization.json and the weights)\n",
                             model.spec().name.c_str(), input.c_str());
                std::fprintf(stderr, "%-26s %-10s %10s %14s %16s\n", "layer", "kind", "params", "MACs", "BOPs");
                for (const auto &l : cost.layers)
                    std::fprintf(stderr, "%-26s %-10s %10s %14s %16.6e\n", l.name.c_str(), l.kind.c_str(),
                                 thousands(l.params).c_str(), thousands(l.macs).c_str(), l.bops);
                std::fprintf(stderr, "%-26s %-10s %10s %14s %16.6e\n", "total", "", thousands(cost.params).c_str(),
                             thousands(cost.macs).c_str(), cost.bops);
                return 0;
            }
        }
        readQuantization(input, o);
        source = input;
    } else {
        spec = core::resolveArch(input);
        source = input;
    }
    if (hasW)
        o.weightBits = int(wbits);
    if (hasA)
        o.activationBits = int(abits);
    if (hasS)
        o.sparsity = sparsity;
    if (o.weightBits < 1 || o.weightBits > 64)
        throw UsageError("--weight-bits: expected 1 to 64, got " + std::to_string(o.weightBits));
    if (o.activationBits < 1 || o.activationBits > 64)
        throw UsageError("--act-bits: expected 1 to 64, got " + std::to_string(o.activationBits));
    if (!(o.sparsity >= 0 && o.sparsity < 1))
        throw UsageError("--sparsity: expected a fraction in [0, 1)");

    const core::Cost cost = core::computeCost(spec, o);
    if (args.json()) {
        nlohmann::json j = cost.toJson();
        j["arch"] = spec.name;
        j["source"] = source;
        j["convention"] = o.convention == core::CostConvention::NacOpt ? "nac-opt" : "standard";
        j["weight_bits"] = o.weightBits;
        j["act_bits"] = o.activationBits;
        j["sparsity"] = o.sparsity;
        printJson(j);
        return 0;
    }
    std::fprintf(stderr, "%s (%s): convention %s, weights %d bits, activations %d bits, sparsity %g\n",
                spec.name.empty() ? "spec" : spec.name.c_str(), source.c_str(),
                o.convention == core::CostConvention::NacOpt ? "nac-opt" : "standard", o.weightBits,
                o.activationBits, o.sparsity);
    std::fprintf(stderr, "%-26s %-10s %10s %14s %16s\n", "layer", "kind", "params", "MACs", "BOPs");
    for (const auto &l : cost.layers)
        std::fprintf(stderr, "%-26s %-10s %10s %14s %16.6e\n", l.name.c_str(), l.kind.c_str(),
                    thousands(l.params).c_str(), thousands(l.macs).c_str(), l.bops);
    std::fprintf(stderr, "%-26s %-10s %10s %14s %16.6e\n", "total", "", thousands(cost.params).c_str(),
                thousands(cost.macs).c_str(), cost.bops);
    return 0;
}

const VerbRegistrar registrar(
    "cost",
    "parameters, MACs and bit operations per layer and total (docs/cost.md); a model folder uses its "
    "own bits and sparsity (quantization.json); --json: {\"params\", \"macs\", \"bops\", \"layers\"}",
    &declareCost, &runCost);

} // namespace

} // namespace braggnac::cli
