#include "core/compress/quantspec.h"

#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "core/common/error.h"

namespace braggnac::core {

using nlohmann::json;

namespace {

constexpr const char *kFormat = "braggnac-quantization";
constexpr int kVersion = 1;
constexpr int kMinFraction = -16, kMaxFraction = 40;

[[noreturn]] void fail(const std::string &where, const std::string &what)
{
    throw InputError(where + ": " + what);
}

__int128 floorShift(__int128 v, int shift) // floor(v / 2^shift), shift > 0
{
    return v >> shift; // arithmetic shift on GCC/Clang: floor for negative values
}

/// Internal formats an op kind has, with their default integer bits.
std::vector<std::pair<std::string, int>> internalFormats(const PlanOp &op)
{
    switch (op.kind) {
    case OpKind::LayerNorm: return {{"rstd", 2}};
    case OpKind::Softmax: return {{"exp", 2}, {"reciprocal", 2}};
    case OpKind::Activation:
        if (op.act == Activation::LeakyReLU)
            return {{"slope", 1}};
        return {};
    default: return {};
    }
}

bool hasWeights(OpKind k)
{
    return k == OpKind::Conv || k == OpKind::Linear || k == OpKind::LayerNorm;
}

bool hasAccumulator(OpKind k)
{
    return k == OpKind::Conv || k == OpKind::Linear || k == OpKind::MatMulQK || k == OpKind::MatMulSV;
}

FixedFormat fmt(int bits, int integer)
{
    return FixedFormat{bits, integer, Rounding::RoundHalfUp, Overflow::Saturate};
}

} // namespace

// ---- FixedFormat ------------------------------------------------------------------------------

double FixedFormat::step() const
{
    return std::ldexp(1.0, -fraction());
}

double FixedFormat::toDouble(std::int64_t raw) const
{
    return std::ldexp(double(raw), -fraction());
}

std::int64_t FixedFormat::overflowRaw(__int128 raw) const
{
    if (overflow == Overflow::Saturate) {
        if (raw > maxRaw())
            return maxRaw();
        if (raw < minRaw())
            return minRaw();
        return std::int64_t(raw);
    }
    const unsigned __int128 mask = (unsigned __int128)((std::uint64_t(1) << width) - 1);
    std::uint64_t low = std::uint64_t((unsigned __int128)raw & mask);
    if (low & (std::uint64_t(1) << (width - 1)))
        return std::int64_t(low) - (std::int64_t(1) << width);
    return std::int64_t(low);
}

std::int64_t FixedFormat::quantise(double value) const
{
    if (std::isnan(value))
        return 0;
    constexpr double kClamp = 4611686018427387904.0; // 2^62
    const double x = std::ldexp(value, fraction());   // exact (power of two)
    double f = std::floor(x);
    if (rounding == Rounding::RoundHalfUp && x - f >= 0.5) // x - f is exact
        f += 1;
    f = std::max(-kClamp, std::min(kClamp, f));
    return overflowRaw(__int128(std::int64_t(f)));
}

std::int64_t FixedFormat::requantise(__int128 raw, int fracBits) const
{
    const int shift = fracBits - fraction();
    if (shift > 0) {
        if (shift >= 126)
            raw = raw < 0 ? -1 : 0; // floor of a tiny magnitude (rounding adds at most 1/2)
        else if (rounding == Rounding::RoundHalfUp)
            raw = floorShift(raw + (__int128(1) << (shift - 1)), shift);
        else
            raw = floorShift(raw, shift);
    } else if (shift < 0) {
        const int up = -shift;
        const __int128 limit = __int128(1) << (126 - up);
        if (up >= 126 || raw >= limit || raw <= -limit) {
            // The exact value is beyond any 64-bit format: saturate, or wrap (low bits are 0).
            if (overflow == Overflow::Saturate)
                return raw > 0 ? maxRaw() : (raw < 0 ? minRaw() : 0);
            return up >= width ? 0 : overflowRaw((raw & ((__int128(1) << (width - up)) - 1)) << up);
        }
        raw = raw * (__int128(1) << up);
    }
    return overflowRaw(raw);
}

std::string FixedFormat::hlsType() const
{
    return "ap_fixed<" + std::to_string(width) + "," + std::to_string(integer) + ","
        + (rounding == Rounding::Truncate ? "AP_TRN" : "AP_RND") + ","
        + (overflow == Overflow::Wrap ? "AP_WRAP" : "AP_SAT") + ">";
}

json FixedFormat::toJson() const
{
    return json{{"width", width},
                {"integer", integer},
                {"rounding", rounding == Rounding::Truncate ? "truncate" : "round"},
                {"overflow", overflow == Overflow::Wrap ? "wrap" : "saturate"},
                {"hls", hlsType()}};
}

void FixedFormat::validate(const std::string &where) const
{
    if (width < 2 || width > 32)
        fail(where + ".width", "expected 2..32 bits (got " + std::to_string(width) + ")");
    if (fraction() < kMinFraction || fraction() > kMaxFraction)
        fail(where + ".integer", "width - integer (fraction bits) must be in " + std::to_string(kMinFraction)
                                     + ".." + std::to_string(kMaxFraction) + " (got integer "
                                     + std::to_string(integer) + " for width " + std::to_string(width) + ")");
}

FixedFormat FixedFormat::fromJson(const json &j, const std::string &where)
{
    if (!j.is_object())
        fail(where, "expected an object {width, integer, rounding, overflow}");
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() != "width" && it.key() != "integer" && it.key() != "rounding" && it.key() != "overflow"
            && it.key() != "hls")
            fail(where + "." + it.key(), "unknown key (expected width, integer, rounding, overflow)");
    FixedFormat f;
    auto integerField = [&](const char *key, int &out) {
        if (!j.contains(key) || !j[key].is_number_integer())
            fail(where + "." + key, "expected an integer");
        const auto v = j[key].get<std::int64_t>();
        if (v < -1000 || v > 1000)
            fail(where + "." + key, "out of range (got " + std::to_string(v) + ")");
        out = int(v);
    };
    integerField("width", f.width);
    integerField("integer", f.integer);
    if (j.contains("rounding")) {
        const auto &r = j["rounding"];
        if (r == "truncate" || r == "AP_TRN")
            f.rounding = Rounding::Truncate;
        else if (r == "round" || r == "AP_RND")
            f.rounding = Rounding::RoundHalfUp;
        else
            fail(where + ".rounding", "expected \"truncate\" (AP_TRN) or \"round\" (AP_RND)");
    }
    if (j.contains("overflow")) {
        const auto &o = j["overflow"];
        if (o == "wrap" || o == "AP_WRAP")
            f.overflow = Overflow::Wrap;
        else if (o == "saturate" || o == "AP_SAT")
            f.overflow = Overflow::Saturate;
        else
            fail(where + ".overflow", "expected \"wrap\" (AP_WRAP) or \"saturate\" (AP_SAT)");
    }
    f.validate(where);
    return f;
}

// ---- QuantSpec --------------------------------------------------------------------------------

bool opHasFormats(const LayerPlan &plan, std::size_t index)
{
    const OpKind k = plan.ops[index].kind;
    return k != OpKind::BatchNorm && k != OpKind::Flatten;
}

int exactAccumulatorBits(int aBits, int bBits, std::int64_t fanIn)
{
    int log = 0;
    while ((std::int64_t(1) << log) < fanIn + 1)
        ++log;
    return aBits + bBits + log;
}

QuantSpec QuantSpec::defaults(const LayerPlan &plan, int bits)
{
    if (bits < 2 || bits > 32)
        throw InputError("quantisation: bits: expected 2..32 (got " + std::to_string(bits) + ")");
    QuantSpec q;
    q.arch = plan.spec.name;
    q.input = fmt(bits, 2);
    for (std::size_t i = 0; i < plan.ops.size(); ++i) {
        if (!opHasFormats(plan, i))
            continue;
        const PlanOp &op = plan.ops[i];
        OpQuant o;
        o.kind = op.kind;
        o.weight = fmt(bits, op.kind == OpKind::LayerNorm ? 4 : 3);
        o.bias = fmt(bits, op.kind == OpKind::LayerNorm ? 4 : 6);
        switch (op.kind) {
        case OpKind::MatMulQK: o.output = fmt(bits, 8); break;
        case OpKind::Softmax: o.output = fmt(bits, 2); break;
        default: o.output = fmt(bits, 6); break;
        }
        for (const auto &[name, integer] : internalFormats(op))
            o.internal[name] = fmt(name == "reciprocal" ? std::min(32, 2 * bits) : bits, integer);
        q.ops[op.name] = o;
    }
    return q;
}

const OpQuant &QuantSpec::op(const std::string &name) const
{
    auto it = ops.find(name);
    if (it == ops.end())
        throw Error("quantisation spec: no formats for layer '" + name + "'");
    return it->second;
}

json QuantSpec::toJson() const
{
    json j;
    j["format"] = kFormat;
    j["version"] = kVersion;
    j["arch"] = arch;
    j["input"] = input.toJson();
    json layers = json::object();
    for (const auto &[name, o] : ops) {
        json l;
        l["output"] = o.output.toJson();
        if (hasWeights(o.kind)) {
            l["weight"] = o.weight.toJson();
            l["bias"] = o.bias.toJson();
        }
        if (hasAccumulator(o.kind))
            l["accumulator"] = o.accumulator;
        for (const auto &[key, f] : o.internal)
            l[key] = f.toJson();
        layers[name] = l;
    }
    j["layers"] = layers;
    return j;
}

QuantSpec QuantSpec::fromJson(const json &j, const LayerPlan &plan, const std::string &source)
{
    if (!j.is_object())
        fail(source, "expected a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
        static const std::set<std::string> keys = {"format", "version", "arch", "input", "layers"};
        if (!keys.count(it.key()))
            fail(source + ": " + it.key(), "unknown key (expected format, version, arch, input, layers)");
    }
    if (j.value("format", std::string()) != kFormat)
        fail(source + ": format", std::string("expected \"") + kFormat + "\"");
    if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() > kVersion)
        fail(source + ": version", "expected an integer <= " + std::to_string(kVersion));
    QuantSpec q = defaults(plan, 16);
    if (j.contains("arch") && j["arch"].is_string())
        q.arch = j["arch"].get<std::string>();
    if (j.contains("input"))
        q.input = FixedFormat::fromJson(j["input"], source + ": input");
    if (j.contains("layers")) {
        const json &layers = j["layers"];
        if (!layers.is_object())
            fail(source + ": layers", "expected an object keyed by layer name");
        for (auto it = layers.begin(); it != layers.end(); ++it) {
            const std::string where = source + ": layers." + it.key();
            const int index = plan.find(it.key());
            if (index < 0)
                fail(where, "not a layer of '" + plan.spec.name + "' (names as in the layer plan, e.g. "
                                + plan.ops.front().name + ")");
            const PlanOp &op = plan.ops[std::size_t(index)];
            if (op.kind == OpKind::BatchNorm)
                fail(where, "batch norm is folded into " + plan.ops[std::size_t(op.inputs[0])].name
                                + " for inference: give the formats there");
            if (op.kind == OpKind::Flatten)
                fail(where, "flatten has no formats of its own");
            const json &l = it.value();
            if (!l.is_object())
                fail(where, "expected an object");
            OpQuant &o = q.ops[op.name];
            const auto internal = internalFormats(op);
            for (auto f = l.begin(); f != l.end(); ++f) {
                const std::string &key = f.key();
                const std::string fw = where + "." + key;
                if (key == "output")
                    o.output = FixedFormat::fromJson(f.value(), fw);
                else if ((key == "weight" || key == "bias") && hasWeights(op.kind))
                    (key == "weight" ? o.weight : o.bias) = FixedFormat::fromJson(f.value(), fw);
                else if (key == "accumulator" && hasAccumulator(op.kind)) {
                    if (!f.value().is_number_integer())
                        fail(fw, "expected an integer (0 = exact, or 2..64 bits)");
                    const auto v = f.value().get<std::int64_t>();
                    if (v != 0 && (v < 2 || v > 64))
                        fail(fw, "expected 0 (exact) or 2..64 bits (got " + std::to_string(v) + ")");
                    o.accumulator = int(v);
                } else {
                    bool found = false;
                    for (const auto &in : internal)
                        found = found || in.first == key;
                    if (!found)
                        fail(fw, std::string("not a format of a ") + opKindName(op.kind) + " layer");
                    o.internal[key] = FixedFormat::fromJson(f.value(), fw);
                }
            }
        }
    }
    q.checkSupported(plan, source);
    return q;
}

void QuantSpec::checkSupported(const LayerPlan &plan, const std::string &source) const
{
    input.validate(source + ": input");
    auto outputOf = [&](int index) -> const FixedFormat & {
        while (index >= 0 && !opHasFormats(plan, std::size_t(index)))
            index = plan.ops[std::size_t(index)].inputs[0];
        return index < 0 ? input : op(plan.ops[std::size_t(index)].name).output;
    };
    for (std::size_t i = 0; i < plan.ops.size(); ++i) {
        if (!opHasFormats(plan, i))
            continue;
        const PlanOp &p = plan.ops[i];
        const std::string where = source + ": layers." + p.name;
        auto it = ops.find(p.name);
        if (it == ops.end())
            fail(where, "missing");
        const OpQuant &o = it->second;
        o.output.validate(where + ".output");
        if (hasWeights(p.kind)) {
            o.weight.validate(where + ".weight");
            o.bias.validate(where + ".bias");
        }
        for (const auto &in : internalFormats(p)) {
            auto f = o.internal.find(in.first);
            if (f == o.internal.end())
                fail(where + "." + in.first, "missing");
            f->second.validate(where + "." + in.first);
        }
        if (p.kind == OpKind::Activation && p.act == Activation::GELU && outputOf(p.inputs[0]).width > 16)
            fail(where, "GELU is a table over its input format: the input (" + outputOf(p.inputs[0]).hlsType()
                            + ") must be at most 16 bits wide");
        if (p.kind == OpKind::Softmax && outputOf(p.inputs[0]).width > 16)
            fail(where, "the softmax exponential is a table over its input format: the input ("
                            + outputOf(p.inputs[0]).hlsType() + ") must be at most 16 bits wide");
        if (p.kind == OpKind::Activation && p.act == Activation::LeakyReLU && o.internal.at("slope").fraction() < 0)
            fail(where + ".slope", "the slope constant needs a format with fraction bits >= 0 (width >= integer)");
    }
}

} // namespace braggnac::core
