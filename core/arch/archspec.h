#pragma once
// Architecture spec: the JSON genome of one peak-localisation network (no torch here).
//   stem conv -> block slots (conv | conv-attention | none) -> flatten -> MLP head -> 2 outputs
// Every conv layer is conv (valid padding, stride 1) -> norm -> activation. LayerNorm in a conv
// layer normalises over [C, H, W] with an elementwise affine (as in the NAC code). The
// conv-attention block is a non-local block: 1x1 theta/phi/g to h channels, softmax over
// positions of theta^T phi, times g, 1x1 back to C, residual add, then the optional activation.
// JSON format: see docs/archspec.md.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace braggnac::core {

enum class Norm { None, Batch, Layer };
enum class Activation { None, ReLU, LeakyReLU, GELU };
const char *normName(Norm n);
const char *activationName(Activation a);

struct ConvLayerSpec {
    int channels = 0; // output channels
    int kernel = 3;   // odd, square
    Norm norm = Norm::None;
    Activation act = Activation::None;
};

enum class BlockType { Conv, ConvAttention, None };
const char *blockTypeName(BlockType t);

struct BlockSpec {
    BlockType type = BlockType::None;
    std::vector<ConvLayerSpec> layers;              // Conv: one or more conv layers (NAC: two)
    int attentionChannels = 0;                      // ConvAttention: h
    Activation act = Activation::None;              // ConvAttention: after the residual add
};

struct DenseLayerSpec {
    int width = 0;
    Norm norm = Norm::None; // Layer or Batch (BatchNorm1d)
    Activation act = Activation::None;
};

struct ArchSpec {
    std::string name;
    int inputSize = 11;          // patch size S
    ConvLayerSpec stem;          // input has one channel
    std::vector<BlockSpec> blocks;
    std::vector<DenseLayerSpec> head; // hidden layers; a final linear to 2 outputs is implicit
    /// NAC rule: a kernel that would shrink the map below 1x1 is forced to 1x1 instead of being
    /// an error (default off: such a spec is rejected naming the field).
    bool forceOneByOne = false;

    nlohmann::json toJson() const;
    /// Throws InputError("<source>: <field>: <what>") on unknown types, bad values, collapse.
    static ArchSpec fromJson(const nlohmann::json &j, const std::string &source = "spec");
    static ArchSpec load(const std::string &path);
    void save(const std::string &path) const; // atomic

    /// Map size (H = W) after the stem and after every conv layer, validated; throws InputError
    /// naming the field (e.g. "blocks[2].layers[1].kernel") when the map collapses.
    struct Shape {
        std::string field;   // "stem", "blocks[0].layers[1]", "blocks[1]", "head[0]", "output"
        int channels = 0;    // or features for dense layers
        int size = 0;        // spatial size (0 for dense)
        int kernel = 0;      // effective kernel (after forceOneByOne)
    };
    std::vector<Shape> shapes() const;
    int flattenFeatures() const; // C * H * W entering the head

    /// The network this spec builds, as one canonical string ("braggnac-arch-v1|in:11|conv:...",
    /// docs/search-space.md): the input size, the flat sequence of feature units (the stem,
    /// every conv layer with its *effective* kernel, every conv-attention block) and the head. The name, "none" blocks, the block boundaries between
    /// consecutive conv layers (the model is one flat sequence) and forceOneByOne (once the
    /// effective kernels are written) do not appear: a 3x3 kernel forced to 1x1 and a 1x1 kernel
    /// give the same string. Throws InputError like shapes() on an invalid spec.
    std::string canonicalString() const;
    /// 64-bit FNV-1a of canonicalString() as 16 lowercase hex digits: stable across processes,
    /// platforms and library versions (the string's format is fixed). Throws like shapes().
    std::string canonicalHash() const;
};

/// Equal iff both build the same network (equal canonicalString()); an invalid spec (shapes()
/// throws) equals only an invalid spec with the same fields, the name excepted.
bool operator==(const ArchSpec &a, const ArchSpec &b);
inline bool operator!=(const ArchSpec &a, const ArchSpec &b) { return !(a == b); }

/// "braggnn" (45,394 parameters) and "nac" (NAC trial 164, 17,226 parameters).
ArchSpec builtinArch(const std::string &name);
std::vector<std::string> builtinArchNames();
/// A built-in name, or a path to a spec JSON file.
ArchSpec resolveArch(const std::string &nameOrPath);

} // namespace braggnac::core
