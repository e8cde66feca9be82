#pragma once
// Hierarchical architecture search space (JSON format: docs/search-space.md).
//   stem conv layer -> `slots` block slots, each one of the allowed block types (conv,
//   conv-attention, none) whose own parameters exist only when that type is chosen -> head of
//   dense layers. Every range is a list of allowed values. Constraints: max parameters, max
//   standard BOPs (core/cost computeCost, Standard convention at `bits` bits), and an
//   FPGA-friendly switch that removes conv layer norm (LayerNorm over [C,H,W]), GELU and
//   conv-attention (its softmax) from every list.
// Genomes are ArchSpecs with exactly `slots` blocks (a "none" slot is a BlockSpec of type None),
// so variation can work slot by slot; distinctness is by ArchSpec::canonicalHash().
// A SearchSpace is immutable after construction; its const methods are thread-safe (each caller
// passes its own SearchRandom).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/arch/archspec.h"
#include "core/search/random.h"

namespace braggnac::core {

struct ConvLayerChoices {
    std::vector<int> channels;
    std::vector<int> kernels;
    std::vector<Norm> norms;
    std::vector<Activation> acts;
};

struct DenseLayerChoices {
    std::vector<int> widths;
    std::vector<Norm> norms;
    std::vector<Activation> acts;
};

struct SpaceConstraints {
    std::int64_t maxParams = 0; // 0: no limit
    double maxBops = 0;         // standard BOPs; 0: no limit
    int bits = 32;              // weight and activation bits for the BOPs constraint
    bool fpgaFriendly = false;
};

/// The space as written in its JSON file (lists in file order, before the FPGA filter).
struct SpaceDefinition {
    std::string name;
    std::string description;
    int inputSize = 11;
    bool forceOneByOne = true; // NAC rule: a kernel that would collapse the map becomes 1x1
    ConvLayerChoices stem;
    int slots = 3;
    std::vector<BlockType> blockTypes;
    std::vector<int> convLayerCounts; // layers per conv block
    ConvLayerChoices convLayer;       // every layer of a conv block
    std::vector<int> attentionChannels;
    std::vector<Activation> attentionActs;
    std::vector<int> headLayerCounts; // hidden dense layers
    DenseLayerChoices headLayer;
    SpaceConstraints constraints;
};

/// Number of distinct valid specs (distinct canonical hashes).
struct SpaceSize {
    std::string count;   // decimal, exact when exact is true, else an upper bound
    double approx = 0;   // count as a double
    bool exact = true;
    /// "structure" (no cost constraint: exact dynamic programme), "enumeration" (cost constraints,
    /// every distinct spec enumerated and costed), or "upper-bound" (cost constraints and more
    /// specs than the enumeration limit: count is the unconstrained size, and feasibleFraction an
    /// estimate of the constrained share from `samples` random specs).
    std::string method;
    double feasibleFraction = 1;
    int samples = 0;
    /// {"count": "<decimal>", "approx", "exact", "method", "feasible_fraction", "samples"}
    nlohmann::json toJson() const;
};

class SearchSpace {
public:
    /// Validates the definition; throws InputError("<source>: <field>: <what>") on empty or
    /// duplicate choice lists, bad values, a block type listed without its parameters (or
    /// parameters of an unlisted type), an FPGA filter that empties a list, or a space with no
    /// valid spec: structurally, or within a cost constraint (exact, from cheapestSpec(); the
    /// field named is the constraint). With both max_params and max_bops, a space where each
    /// is reachable alone but no spec meets both is detected by search (the two cheapest specs,
    /// then 2,000 random draws), not proven.
    explicit SearchSpace(SpaceDefinition definition, const std::string &source = "space");

    /// Unknown keys are errors naming the field.
    static SearchSpace fromJson(const nlohmann::json &j, const std::string &source = "space");
    static SearchSpace load(const std::string &path); // InputError naming the file
    /// The definition as JSON (round-trips through fromJson).
    nlohmann::json toJson() const;

    const SpaceDefinition &definition() const { return m_def; }
    /// The definition after the FPGA filter: what sampling, variation and counting use.
    const SpaceDefinition &effective() const { return m_eff; }
    const std::string &source() const { return m_source; }

    /// The spec fits the space's structure (slot count, every value in its list, no collapsing
    /// kernel unless forceOneByOne) and its constraints. `why` gets the first violation, naming
    /// the spec field.
    bool contains(const ArchSpec &spec, std::string *why = nullptr) const;
    bool withinConstraints(const ArchSpec &spec, std::string *why = nullptr) const;

    /// A random valid spec: slot types, then each chosen block's parameters, uniformly from the
    /// lists; redrawn while the cost constraints fail, at most maxDraws times, then Error
    /// naming the constraint.
    ArchSpec sample(SearchRandom &rng, int maxDraws = 1000) const;
    /// Sampling pieces (structure only, no constraint check), also used by variation.
    BlockSpec sampleBlock(SearchRandom &rng, BlockType type) const;
    BlockSpec sampleBlock(SearchRandom &rng) const; // uniform type

    /// Hierarchy-respecting variation (structure only; the caller checks contains() and redraws).
    /// crossover: the stem, each slot's whole block and each head layer come from one parent;
    /// when both parents' blocks in a slot are conv blocks of the same length, layers are taken
    /// one by one from either. mutate: every gene (stem field, slot type, block field, head
    /// length, head field) is redrawn with probability `rate` (<= 0: 1 / number of genes); a
    /// changed slot type re-samples that block's parameters. At least one gene changes.
    ArchSpec crossover(const ArchSpec &a, const ArchSpec &b, SearchRandom &rng) const;
    void mutate(ArchSpec &spec, SearchRandom &rng, double rate = 0) const;

    /// Exact size (see SpaceSize). With cost constraints, enumerates when the structural count
    /// is at most enumerationLimit, else returns the upper bound with a sampled estimate.
    SpaceSize size(std::uint64_t enumerationLimit = 20000, int samples = 2000,
                   std::uint64_t seed = 1) const;
    /// Exact number of distinct specs ignoring cost constraints (dynamic programme over map
    /// sizes), as a decimal string.
    std::string structuralCount() const;
    /// The spec of the space with the fewest parameters (byBops false) or the fewest standard
    /// BOPs at constraints.bits (byBops true), ignoring the cost constraints. Exact: a dynamic
    /// programme over (map size, channels) after each block, every unit costed by computeCost on
    /// a one-unit probe spec (the Standard cost of a layer depends only on its own input shape).
    ArchSpec cheapestSpec(bool byBops) const;
    /// Every distinct spec (one per canonical hash) within the constraints, in a fixed order;
    /// stops after `limit` structural specs (then `complete` is false).
    std::vector<ArchSpec> enumerate(std::uint64_t limit, bool *complete = nullptr) const;

private:
    void validate();
    void checkFeasible();

    SpaceDefinition m_def;
    SpaceDefinition m_eff;
    std::string m_source;
};

} // namespace braggnac::core
