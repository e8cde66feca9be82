#include "core/search/space.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/cost/cost.h"

namespace braggnac::core {

using nlohmann::json;

namespace {

// ------------------------------------------------------------------------------------------
// Unsigned big integer (base 2^32), enough for exact space sizes.
class BigCount {
public:
    BigCount(std::uint64_t v = 0)
    {
        while (v) {
            m_limbs.push_back(std::uint32_t(v));
            v >>= 32;
        }
    }
    bool isZero() const { return m_limbs.empty(); }
    BigCount &operator+=(const BigCount &o)
    {
        if (m_limbs.size() < o.m_limbs.size())
            m_limbs.resize(o.m_limbs.size(), 0);
        std::uint64_t carry = 0;
        for (std::size_t i = 0; i < m_limbs.size(); ++i) {
            const std::uint64_t s = std::uint64_t(m_limbs[i]) + (i < o.m_limbs.size() ? o.m_limbs[i] : 0) + carry;
            m_limbs[i] = std::uint32_t(s);
            carry = s >> 32;
        }
        if (carry)
            m_limbs.push_back(std::uint32_t(carry));
        return *this;
    }
    BigCount operator*(const BigCount &o) const
    {
        BigCount r;
        if (isZero() || o.isZero())
            return r;
        r.m_limbs.assign(m_limbs.size() + o.m_limbs.size(), 0);
        for (std::size_t i = 0; i < m_limbs.size(); ++i) {
            std::uint64_t carry = 0;
            for (std::size_t j = 0; j < o.m_limbs.size(); ++j) {
                const std::uint64_t cur = std::uint64_t(m_limbs[i]) * o.m_limbs[j] + r.m_limbs[i + j] + carry;
                r.m_limbs[i + j] = std::uint32_t(cur);
                carry = cur >> 32;
            }
            std::size_t k = i + o.m_limbs.size();
            while (carry) {
                const std::uint64_t cur = std::uint64_t(r.m_limbs[k]) + carry;
                r.m_limbs[k++] = std::uint32_t(cur);
                carry = cur >> 32;
            }
        }
        r.trim();
        return r;
    }
    std::string toString() const
    {
        if (isZero())
            return "0";
        std::vector<std::uint32_t> v = m_limbs;
        std::string digits;
        while (!v.empty()) {
            std::uint64_t rem = 0;
            for (std::size_t i = v.size(); i-- > 0;) {
                const std::uint64_t cur = (rem << 32) | v[i];
                v[i] = std::uint32_t(cur / 1000000000u);
                rem = cur % 1000000000u;
            }
            while (!v.empty() && v.back() == 0)
                v.pop_back();
            for (int d = 0; d < 9; ++d) {
                digits.push_back(char('0' + rem % 10));
                rem /= 10;
                if (v.empty() && rem == 0)
                    break;
            }
        }
        while (digits.size() > 1 && digits.back() == '0')
            digits.pop_back();
        return std::string(digits.rbegin(), digits.rend());
    }
    double toDouble() const
    {
        double d = 0;
        for (std::size_t i = m_limbs.size(); i-- > 0;)
            d = d * 4294967296.0 + m_limbs[i];
        return d;
    }
    bool greaterThan(std::uint64_t v) const
    {
        if (m_limbs.size() > 2)
            return true;
        std::uint64_t x = 0;
        for (std::size_t i = m_limbs.size(); i-- > 0;)
            x = (x << 32) | m_limbs[i];
        return x > v;
    }

private:
    void trim()
    {
        while (!m_limbs.empty() && m_limbs.back() == 0)
            m_limbs.pop_back();
    }
    std::vector<std::uint32_t> m_limbs;
};

// ------------------------------------------------------------------------------------------
// JSON reading.

[[noreturn]] void fail(const std::string &source, const std::string &field, const std::string &what)
{
    throw InputError(source + ": " + field + ": " + what);
}

std::string join(const std::string &a, const std::string &b)
{
    return a.empty() ? b : a + "." + b;
}

void checkKeys(const json &j, const std::set<std::string> &allowed, const std::string &source,
               const std::string &field)
{
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (!allowed.count(it.key())) {
            std::string list;
            for (const auto &a : allowed)
                list += (list.empty() ? "" : ", ") + a;
            fail(source, join(field, it.key()), "unknown key (expected one of: " + list + ")");
        }
    }
}

const json &object(const json &parent, const char *key, const std::string &source,
                   const std::string &field, bool required)
{
    static const json empty = json::object();
    auto it = parent.find(key);
    const std::string f = join(field, key);
    if (it == parent.end() || it->is_null()) {
        if (required)
            fail(source, f, "missing");
        return empty;
    }
    if (!it->is_object())
        fail(source, f, std::string("expected a JSON object, got ") + it->type_name());
    return *it;
}

const json &list(const json &obj, const char *key, const std::string &source, const std::string &field)
{
    const std::string f = join(field, key);
    auto it = obj.find(key);
    if (it == obj.end())
        fail(source, f, "missing (expected a list of allowed values)");
    if (!it->is_array())
        fail(source, f, "expected a list of allowed values, got " + it->dump());
    if (it->empty())
        fail(source, f, "empty list of choices (give at least one allowed value)");
    return *it;
}

int intValue(const json &v, const std::string &source, const std::string &field, int minimum)
{
    const bool integralFloat = v.is_number_float() && std::abs(v.get<double>()) < 1e9
        && v.get<double>() == std::floor(v.get<double>());
    if (!v.is_number_integer() && !integralFloat)
        fail(source, field, "expected an integer, got " + v.dump());
    const double d = v.get<double>();
    if (d < minimum || d > 1000000)
        fail(source, field, "must be an integer in [" + std::to_string(minimum) + ", 1000000] (got "
                                + v.dump() + ")");
    return int(d);
}

std::vector<int> intList(const json &obj, const char *key, const std::string &source,
                         const std::string &field, int minimum, bool odd = false)
{
    const json &l = list(obj, key, source, field);
    std::vector<int> out;
    for (std::size_t i = 0; i < l.size(); ++i) {
        const std::string f = join(field, key) + "[" + std::to_string(i) + "]";
        const int v = intValue(l[i], source, f, minimum);
        if (odd && v % 2 == 0)
            fail(source, f, "kernels must be odd (got " + std::to_string(v) + ")");
        out.push_back(v);
    }
    return out;
}

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

std::vector<Norm> normList(const json &obj, const std::string &source, const std::string &field)
{
    const json &l = list(obj, "norm", source, field);
    std::vector<Norm> out;
    for (std::size_t i = 0; i < l.size(); ++i) {
        const std::string f = join(field, "norm") + "[" + std::to_string(i) + "]";
        if (l[i].is_null()) {
            out.push_back(Norm::None);
            continue;
        }
        if (!l[i].is_string())
            fail(source, f, "expected \"none\", \"batch\" or \"layer\", got " + l[i].dump());
        const std::string s = lower(l[i].get<std::string>());
        if (s == "none")
            out.push_back(Norm::None);
        else if (s == "batch")
            out.push_back(Norm::Batch);
        else if (s == "layer")
            out.push_back(Norm::Layer);
        else
            fail(source, f, "unknown norm '" + s + "' (expected none, batch or layer)");
    }
    return out;
}

std::vector<Activation> actList(const json &obj, const std::string &source, const std::string &field)
{
    const json &l = list(obj, "act", source, field);
    std::vector<Activation> out;
    for (std::size_t i = 0; i < l.size(); ++i) {
        const std::string f = join(field, "act") + "[" + std::to_string(i) + "]";
        if (l[i].is_null()) {
            out.push_back(Activation::None);
            continue;
        }
        if (!l[i].is_string())
            fail(source, f, "expected an activation name, got " + l[i].dump());
        const std::string s = lower(l[i].get<std::string>());
        if (s == "none" || s == "identity")
            out.push_back(Activation::None);
        else if (s == "relu")
            out.push_back(Activation::ReLU);
        else if (s == "leakyrelu")
            out.push_back(Activation::LeakyReLU);
        else if (s == "gelu")
            out.push_back(Activation::GELU);
        else
            fail(source, f, "unknown activation '" + s + "' (expected none, relu, leakyrelu or gelu)");
    }
    return out;
}

ConvLayerChoices convChoices(const json &obj, const char *kernelKey, const std::string &source,
                             const std::string &field)
{
    ConvLayerChoices c;
    c.channels = intList(obj, "channels", source, field, 1);
    c.kernels = intList(obj, kernelKey, source, field, 1, true);
    c.norms = normList(obj, source, field);
    c.acts = actList(obj, source, field);
    return c;
}

json convChoicesJson(const ConvLayerChoices &c)
{
    json n = json::array(), a = json::array();
    for (Norm x : c.norms)
        n.push_back(normName(x));
    for (Activation x : c.acts)
        a.push_back(activationName(x));
    return json{{"channels", c.channels}, {"kernel", c.kernels}, {"norm", n}, {"act", a}};
}

template <class T> bool hasValue(const std::vector<T> &v, const T &x)
{
    return std::find(v.begin(), v.end(), x) != v.end();
}

template <class T>
void checkList(const std::vector<T> &v, const std::string &source, const std::string &field)
{
    if (v.empty())
        fail(source, field, "empty list of choices (give at least one allowed value)");
    for (std::size_t i = 0; i < v.size(); ++i)
        for (std::size_t k = 0; k < i; ++k)
            if (v[i] == v[k])
                fail(source, field + "[" + std::to_string(i) + "]", "duplicate choice (same as ["
                                                                         + std::to_string(k) + "])");
}

template <class T> const T &pick(const std::vector<T> &v, SearchRandom &rng)
{
    return v[rng.below(v.size())];
}

// A value different from `current` when the list has another one; returns false otherwise.
template <class T> bool redraw(T &current, const std::vector<T> &v, SearchRandom &rng)
{
    std::vector<T> others;
    for (const T &x : v)
        if (!(x == current))
            others.push_back(x);
    if (others.empty())
        return false;
    current = pick(others, rng);
    return true;
}

int effectiveKernel(int k, int size, bool force)
{
    if (k <= size)
        return k;
    return force ? 1 : 0; // 0: not allowed
}

// Distinct effective kernels at a map size -> a raw kernel that produces it.
std::map<int, int> effectiveKernels(const std::vector<int> &kernels, int size, bool force)
{
    std::map<int, int> out;
    for (int k : kernels) {
        const int e = effectiveKernel(k, size, force);
        if (e > 0 && !out.count(e))
            out[e] = k;
    }
    return out;
}

std::uint64_t layerCombos(const ConvLayerChoices &c)
{
    return std::uint64_t(c.channels.size()) * c.norms.size() * c.acts.size();
}

} // namespace

// ------------------------------------------------------------------------------------------

SearchSpace::SearchSpace(SpaceDefinition definition, const std::string &source)
    : m_def(std::move(definition)), m_source(source)
{
    validate();
    checkFeasible();
}

SearchSpace SearchSpace::fromJson(const json &j, const std::string &source)
{
    if (!j.is_object())
        fail(source, "(root)", std::string("expected a JSON object, got ") + j.type_name());
    checkKeys(j, {"name", "description", "input_size", "force_one_by_one", "stem", "blocks", "head",
                  "constraints"},
              source, "");
    SpaceDefinition d;
    if (auto it = j.find("name"); it != j.end() && !it->is_null()) {
        if (!it->is_string())
            fail(source, "name", "expected a string, got " + it->dump());
        d.name = it->get<std::string>();
    }
    if (auto it = j.find("description"); it != j.end() && !it->is_null()) {
        if (!it->is_string())
            fail(source, "description", "expected a string, got " + it->dump());
        d.description = it->get<std::string>();
    }
    if (auto it = j.find("input_size"); it != j.end())
        d.inputSize = intValue(*it, source, "input_size", 1);
    if (auto it = j.find("force_one_by_one"); it != j.end()) {
        if (!it->is_boolean())
            fail(source, "force_one_by_one", "expected true or false, got " + it->dump());
        d.forceOneByOne = it->get<bool>();
    }
    const json &stem = object(j, "stem", source, "", true);
    checkKeys(stem, {"channels", "kernel", "norm", "act"}, source, "stem");
    d.stem = convChoices(stem, "kernel", source, "stem");

    const json &blocks = object(j, "blocks", source, "", true);
    checkKeys(blocks, {"slots", "types", "conv", "conv-attention"}, source, "blocks");
    auto slotsIt = blocks.find("slots");
    if (slotsIt == blocks.end())
        fail(source, "blocks.slots", "missing (expected the number of block slots)");
    d.slots = intValue(*slotsIt, source, "blocks.slots", 0);
    if (d.slots > 16)
        fail(source, "blocks.slots", "at most 16 block slots are supported (got " + std::to_string(d.slots) + ")");
    if (d.slots > 0) {
        const json &types = list(blocks, "types", source, "blocks");
        for (std::size_t i = 0; i < types.size(); ++i) {
            const std::string f = "blocks.types[" + std::to_string(i) + "]";
            const std::string t = types[i].is_string() ? lower(types[i].get<std::string>()) : types[i].dump();
            if (t == "conv")
                d.blockTypes.push_back(BlockType::Conv);
            else if (t == "conv-attention")
                d.blockTypes.push_back(BlockType::ConvAttention);
            else if (t == "none")
                d.blockTypes.push_back(BlockType::None);
            else
                fail(source, f, "unknown block type " + t + " (expected conv, conv-attention or none)");
        }
    } else if (blocks.contains("types")) {
        fail(source, "blocks.types", "given with blocks.slots = 0");
    }
    const bool hasConv = hasValue(d.blockTypes, BlockType::Conv);
    const bool hasAttn = hasValue(d.blockTypes, BlockType::ConvAttention);
    if (blocks.contains("conv") && !hasConv)
        fail(source, "blocks.conv", "parameters of a block type that blocks.types does not list");
    if (blocks.contains("conv-attention") && !hasAttn)
        fail(source, "blocks.conv-attention", "parameters of a block type that blocks.types does not list");
    if (hasConv) {
        const json &conv = object(blocks, "conv", source, "blocks", true);
        checkKeys(conv, {"layers", "channels", "kernel", "norm", "act"}, source, "blocks.conv");
        d.convLayerCounts = intList(conv, "layers", source, "blocks.conv", 1);
        d.convLayer = convChoices(conv, "kernel", source, "blocks.conv");
    }
    if (hasAttn) {
        const json &attn = object(blocks, "conv-attention", source, "blocks", true);
        checkKeys(attn, {"attention_channels", "act"}, source, "blocks.conv-attention");
        d.attentionChannels = intList(attn, "attention_channels", source, "blocks.conv-attention", 1);
        d.attentionActs = actList(attn, source, "blocks.conv-attention");
    }

    const json &head = object(j, "head", source, "", true);
    checkKeys(head, {"layers", "width", "norm", "act"}, source, "head");
    d.headLayerCounts = intList(head, "layers", source, "head", 0);
    if (*std::max_element(d.headLayerCounts.begin(), d.headLayerCounts.end()) > 0) {
        d.headLayer.widths = intList(head, "width", source, "head", 1);
        d.headLayer.norms = normList(head, source, "head");
        d.headLayer.acts = actList(head, source, "head");
    }

    const json &cons = object(j, "constraints", source, "", false);
    checkKeys(cons, {"max_params", "max_bops", "bits", "fpga_friendly"}, source, "constraints");
    if (auto it = cons.find("max_params"); it != cons.end() && !it->is_null()) {
        if (!it->is_number() || it->get<double>() < 0 || it->get<double>() > 9e18)
            fail(source, "constraints.max_params", "expected a non-negative number or null, got " + it->dump());
        d.constraints.maxParams = std::int64_t(it->get<double>());
    }
    if (auto it = cons.find("max_bops"); it != cons.end() && !it->is_null()) {
        if (!it->is_number() || !(it->get<double>() >= 0) || !std::isfinite(it->get<double>()))
            fail(source, "constraints.max_bops", "expected a non-negative number or null, got " + it->dump());
        d.constraints.maxBops = it->get<double>();
    }
    if (auto it = cons.find("bits"); it != cons.end())
        d.constraints.bits = intValue(*it, source, "constraints.bits", 1);
    if (auto it = cons.find("fpga_friendly"); it != cons.end()) {
        if (!it->is_boolean())
            fail(source, "constraints.fpga_friendly", "expected true or false, got " + it->dump());
        d.constraints.fpgaFriendly = it->get<bool>();
    }
    return SearchSpace(std::move(d), source);
}

SearchSpace SearchSpace::load(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw InputError(fileMessage(path, "cannot open search space"));
    std::stringstream ss;
    ss << in.rdbuf();
    json j;
    try {
        j = json::parse(ss.str());
    } catch (const json::parse_error &e) {
        std::string what = e.what();
        if (auto p = what.find("parse error"); p != std::string::npos)
            what = what.substr(p);
        throw InputError(fileMessage(path, "malformed JSON: " + what));
    }
    return fromJson(j, path);
}

json SearchSpace::toJson() const
{
    const SpaceDefinition &d = m_def;
    json j;
    j["name"] = d.name;
    if (!d.description.empty())
        j["description"] = d.description;
    j["input_size"] = d.inputSize;
    j["force_one_by_one"] = d.forceOneByOne;
    j["stem"] = convChoicesJson(d.stem);
    json blocks;
    blocks["slots"] = d.slots;
    if (d.slots > 0) {
        json types = json::array();
        for (BlockType t : d.blockTypes)
            types.push_back(blockTypeName(t));
        blocks["types"] = types;
    }
    if (hasValue(d.blockTypes, BlockType::Conv)) {
        json c = convChoicesJson(d.convLayer);
        c["layers"] = d.convLayerCounts;
        blocks["conv"] = c;
    }
    if (hasValue(d.blockTypes, BlockType::ConvAttention)) {
        json a = json::array();
        for (Activation x : d.attentionActs)
            a.push_back(activationName(x));
        blocks["conv-attention"] = json{{"attention_channels", d.attentionChannels}, {"act", a}};
    }
    j["blocks"] = blocks;
    json head;
    head["layers"] = d.headLayerCounts;
    if (!d.headLayer.widths.empty()) {
        json n = json::array(), a = json::array();
        for (Norm x : d.headLayer.norms)
            n.push_back(normName(x));
        for (Activation x : d.headLayer.acts)
            a.push_back(activationName(x));
        head["width"] = d.headLayer.widths;
        head["norm"] = n;
        head["act"] = a;
    }
    j["head"] = head;
    json cons;
    cons["max_params"] = d.constraints.maxParams > 0 ? json(d.constraints.maxParams) : json(nullptr);
    cons["max_bops"] = d.constraints.maxBops > 0 ? json(d.constraints.maxBops) : json(nullptr);
    cons["bits"] = d.constraints.bits;
    cons["fpga_friendly"] = d.constraints.fpgaFriendly;
    j["constraints"] = cons;
    return j;
}

void SearchSpace::validate()
{
    const SpaceDefinition &d = m_def;
    const std::string &src = m_source;
    if (d.inputSize < 1)
        fail(src, "input_size", "must be a positive integer (got " + std::to_string(d.inputSize) + ")");
    auto checkConv = [&](const ConvLayerChoices &c, const std::string &field) {
        checkList(c.channels, src, field + ".channels");
        checkList(c.kernels, src, field + ".kernel");
        checkList(c.norms, src, field + ".norm");
        checkList(c.acts, src, field + ".act");
        for (std::size_t i = 0; i < c.channels.size(); ++i)
            if (c.channels[i] < 1)
                fail(src, field + ".channels[" + std::to_string(i) + "]", "must be positive");
        for (std::size_t i = 0; i < c.kernels.size(); ++i)
            if (c.kernels[i] < 1 || c.kernels[i] % 2 == 0)
                fail(src, field + ".kernel[" + std::to_string(i) + "]", "must be a positive odd integer");
    };
    checkConv(d.stem, "stem");
    if (d.slots < 0)
        fail(src, "blocks.slots", "must not be negative");
    if (d.slots > 16)
        fail(src, "blocks.slots", "at most 16 block slots are supported");
    if (d.slots > 0)
        checkList(d.blockTypes, src, "blocks.types");
    if (hasValue(d.blockTypes, BlockType::Conv)) {
        checkList(d.convLayerCounts, src, "blocks.conv.layers");
        for (int c : d.convLayerCounts)
            if (c < 1 || c > 64)
                fail(src, "blocks.conv.layers", "layer counts must be in [1, 64]");
        checkConv(d.convLayer, "blocks.conv");
    }
    if (hasValue(d.blockTypes, BlockType::ConvAttention)) {
        checkList(d.attentionChannels, src, "blocks.conv-attention.attention_channels");
        checkList(d.attentionActs, src, "blocks.conv-attention.act");
        for (int c : d.attentionChannels)
            if (c < 1)
                fail(src, "blocks.conv-attention.attention_channels", "must be positive");
    }
    checkList(d.headLayerCounts, src, "head.layers");
    for (int c : d.headLayerCounts)
        if (c < 0 || c > 64)
            fail(src, "head.layers", "hidden layer counts must be in [0, 64]");
    if (*std::max_element(d.headLayerCounts.begin(), d.headLayerCounts.end()) > 0) {
        checkList(d.headLayer.widths, src, "head.width");
        checkList(d.headLayer.norms, src, "head.norm");
        checkList(d.headLayer.acts, src, "head.act");
        for (int w : d.headLayer.widths)
            if (w < 1)
                fail(src, "head.width", "must be positive");
    }
    if (d.constraints.maxParams < 0)
        fail(src, "constraints.max_params", "must not be negative");
    if (!(d.constraints.maxBops >= 0))
        fail(src, "constraints.max_bops", "must not be negative");
    if (d.constraints.bits < 1 || d.constraints.bits > 64)
        fail(src, "constraints.bits", "must be in [1, 64]");

    // The FPGA filter.
    m_eff = m_def;
    if (d.constraints.fpgaFriendly) {
        auto filter = [&](auto &v, auto bad, const std::string &field) {
            v.erase(std::remove(v.begin(), v.end(), bad), v.end());
            if (v.empty())
                fail(src, "constraints.fpga_friendly", "removes every choice of " + field);
        };
        filter(m_eff.stem.norms, Norm::Layer, "stem.norm");
        filter(m_eff.stem.acts, Activation::GELU, "stem.act");
        if (d.slots > 0)
            filter(m_eff.blockTypes, BlockType::ConvAttention, "blocks.types");
        m_eff.attentionChannels.clear();
        m_eff.attentionActs.clear();
        if (hasValue(m_eff.blockTypes, BlockType::Conv)) {
            filter(m_eff.convLayer.norms, Norm::Layer, "blocks.conv.norm");
            filter(m_eff.convLayer.acts, Activation::GELU, "blocks.conv.act");
        }
        if (!m_eff.headLayer.acts.empty())
            filter(m_eff.headLayer.acts, Activation::GELU, "head.act");
    }

    if (structuralCount() == "0") {
        // Name the first stage that cannot be built.
        if (effectiveKernels(m_eff.stem.kernels, m_eff.inputSize, m_eff.forceOneByOne).empty())
            fail(src, "stem.kernel", "every kernel collapses the " + std::to_string(m_eff.inputSize)
                                         + "x" + std::to_string(m_eff.inputSize)
                                         + " input (and force_one_by_one is false): no valid spec");
        fail(src, hasValue(m_eff.blockTypes, BlockType::Conv) ? "blocks.conv.kernel" : "blocks.types",
             "no sequence of blocks fits the map (kernels collapse it and force_one_by_one is false, "
             "or no slot may be empty): no valid spec");
    }
}

// ------------------------------------------------------------------------------------------
// Membership and constraints.

bool SearchSpace::withinConstraints(const ArchSpec &spec, std::string *why) const
{
    const SpaceConstraints &c = m_eff.constraints;
    if (c.maxParams <= 0 && c.maxBops <= 0)
        return true;
    CostOptions o;
    o.weightBits = o.activationBits = c.bits;
    const Cost cost = computeCost(spec, o);
    if (c.maxParams > 0 && cost.params > c.maxParams) {
        if (why)
            *why = "constraints.max_params: " + std::to_string(cost.params) + " parameters > "
                + std::to_string(c.maxParams);
        return false;
    }
    if (c.maxBops > 0 && cost.bops > c.maxBops) {
        if (why) {
            std::ostringstream os;
            os << "constraints.max_bops: " << cost.bops << " BOPs > " << c.maxBops;
            *why = os.str();
        }
        return false;
    }
    return true;
}

bool SearchSpace::contains(const ArchSpec &spec, std::string *why) const
{
    const SpaceDefinition &d = m_eff;
    auto no = [&](const std::string &field, const std::string &what) {
        if (why)
            *why = field + ": " + what;
        return false;
    };
    if (spec.inputSize != d.inputSize)
        return no("input_size", "is " + std::to_string(spec.inputSize) + ", the space's is "
                                    + std::to_string(d.inputSize));
    auto convOk = [&](const ConvLayerSpec &l, const ConvLayerChoices &c, const std::string &f) {
        if (!hasValue(c.channels, l.channels))
            return no(f + ".channels", std::to_string(l.channels) + " is not an allowed value");
        if (!hasValue(c.kernels, l.kernel))
            return no(f + ".kernel", std::to_string(l.kernel) + " is not an allowed value");
        if (!hasValue(c.norms, l.norm))
            return no(f + ".norm", std::string(normName(l.norm)) + " is not an allowed value");
        if (!hasValue(c.acts, l.act))
            return no(f + ".act", std::string(activationName(l.act)) + " is not an allowed value");
        return true;
    };
    if (!convOk(spec.stem, d.stem, "stem"))
        return false;
    if (int(spec.blocks.size()) != d.slots)
        return no("blocks", std::to_string(spec.blocks.size()) + " blocks, the space has "
                                + std::to_string(d.slots) + " slots");
    for (std::size_t i = 0; i < spec.blocks.size(); ++i) {
        const BlockSpec &b = spec.blocks[i];
        const std::string f = "blocks[" + std::to_string(i) + "]";
        if (!hasValue(d.blockTypes, b.type))
            return no(f + ".type", std::string(blockTypeName(b.type)) + " is not an allowed type");
        if (b.type == BlockType::Conv) {
            if (!hasValue(d.convLayerCounts, int(b.layers.size())))
                return no(f + ".layers", std::to_string(b.layers.size()) + " layers is not an allowed count");
            for (std::size_t k = 0; k < b.layers.size(); ++k)
                if (!convOk(b.layers[k], d.convLayer, f + ".layers[" + std::to_string(k) + "]"))
                    return false;
        } else if (b.type == BlockType::ConvAttention) {
            if (!hasValue(d.attentionChannels, b.attentionChannels))
                return no(f + ".attention_channels", std::to_string(b.attentionChannels) + " is not an allowed value");
            if (!hasValue(d.attentionActs, b.act))
                return no(f + ".act", std::string(activationName(b.act)) + " is not an allowed value");
        }
    }
    if (!hasValue(d.headLayerCounts, int(spec.head.size())))
        return no("head", std::to_string(spec.head.size()) + " hidden layers is not an allowed count");
    for (std::size_t k = 0; k < spec.head.size(); ++k) {
        const auto &h = spec.head[k];
        const std::string f = "head[" + std::to_string(k) + "]";
        if (!hasValue(d.headLayer.widths, h.width))
            return no(f + ".width", std::to_string(h.width) + " is not an allowed value");
        if (!hasValue(d.headLayer.norms, h.norm))
            return no(f + ".norm", std::string(normName(h.norm)) + " is not an allowed value");
        if (!hasValue(d.headLayer.acts, h.act))
            return no(f + ".act", std::string(activationName(h.act)) + " is not an allowed value");
    }
    // The spec must build as written (its own force_one_by_one), and within the space's rule.
    ArchSpec copy = spec;
    copy.forceOneByOne = spec.forceOneByOne && d.forceOneByOne;
    try {
        copy.shapes();
    } catch (const InputError &e) {
        std::string msg = e.what();
        if (msg.rfind("spec: ", 0) == 0)
            msg = msg.substr(6);
        if (why)
            *why = msg;
        return false;
    }
    return withinConstraints(copy, why);
}

// ------------------------------------------------------------------------------------------
// Sampling and variation.

namespace {

ConvLayerSpec sampleConv(const ConvLayerChoices &c, SearchRandom &rng)
{
    ConvLayerSpec l;
    l.channels = pick(c.channels, rng);
    l.kernel = pick(c.kernels, rng);
    l.norm = pick(c.norms, rng);
    l.act = pick(c.acts, rng);
    return l;
}

DenseLayerSpec sampleDense(const DenseLayerChoices &c, SearchRandom &rng)
{
    DenseLayerSpec l;
    l.width = pick(c.widths, rng);
    l.norm = pick(c.norms, rng);
    l.act = pick(c.acts, rng);
    return l;
}

} // namespace

BlockSpec SearchSpace::sampleBlock(SearchRandom &rng, BlockType type) const
{
    BlockSpec b;
    b.type = type;
    if (type == BlockType::Conv) {
        const int n = pick(m_eff.convLayerCounts, rng);
        for (int k = 0; k < n; ++k)
            b.layers.push_back(sampleConv(m_eff.convLayer, rng));
    } else if (type == BlockType::ConvAttention) {
        b.attentionChannels = pick(m_eff.attentionChannels, rng);
        b.act = pick(m_eff.attentionActs, rng);
    }
    return b;
}

BlockSpec SearchSpace::sampleBlock(SearchRandom &rng) const
{
    return sampleBlock(rng, pick(m_eff.blockTypes, rng));
}

ArchSpec SearchSpace::sample(SearchRandom &rng, int maxDraws) const
{
    std::string lastWhy;
    for (int draw = 0; draw < std::max(1, maxDraws); ++draw) {
        ArchSpec s;
        s.inputSize = m_eff.inputSize;
        s.forceOneByOne = m_eff.forceOneByOne;
        s.stem = sampleConv(m_eff.stem, rng);
        for (int i = 0; i < m_eff.slots; ++i)
            s.blocks.push_back(sampleBlock(rng));
        const int n = pick(m_eff.headLayerCounts, rng);
        for (int k = 0; k < n; ++k)
            s.head.push_back(sampleDense(m_eff.headLayer, rng));
        if (contains(s, &lastWhy))
            return s;
    }
    throw Error(m_source + ": no valid spec found in " + std::to_string(maxDraws)
                + " random draws (last: " + lastWhy + ")");
}

ArchSpec SearchSpace::crossover(const ArchSpec &a, const ArchSpec &b, SearchRandom &rng) const
{
    ArchSpec c = a;
    c.name.clear();
    c.inputSize = m_eff.inputSize;
    c.forceOneByOne = m_eff.forceOneByOne;
    if (rng.chance(0.5))
        c.stem = b.stem;
    const std::size_t slots = std::min(a.blocks.size(), b.blocks.size());
    for (std::size_t i = 0; i < slots; ++i) {
        const BlockSpec &ba = a.blocks[i], &bb = b.blocks[i];
        if (ba.type == BlockType::Conv && bb.type == BlockType::Conv && ba.layers.size() == bb.layers.size()
            && rng.chance(0.5)) {
            for (std::size_t k = 0; k < ba.layers.size(); ++k)
                c.blocks[i].layers[k] = rng.chance(0.5) ? ba.layers[k] : bb.layers[k];
        } else {
            c.blocks[i] = rng.chance(0.5) ? ba : bb;
        }
    }
    if (a.head.size() == b.head.size()) {
        for (std::size_t k = 0; k < a.head.size(); ++k)
            c.head[k] = rng.chance(0.5) ? a.head[k] : b.head[k];
    } else if (rng.chance(0.5)) {
        c.head = b.head;
    }
    return c;
}

void SearchSpace::mutate(ArchSpec &spec, SearchRandom &rng, double rate) const
{
    const SpaceDefinition &d = m_eff;
    // Each gene redraws itself to another allowed value; false when it has no other value (or
    // no longer exists after an earlier structural change in this pass).
    std::vector<std::function<bool()>> genes;
    auto convGenes = [&](std::function<ConvLayerSpec *()> layer, const ConvLayerChoices &c) {
        genes.push_back([=, &rng] { auto *l = layer(); return l && redraw(l->channels, c.channels, rng); });
        genes.push_back([=, &rng] { auto *l = layer(); return l && redraw(l->kernel, c.kernels, rng); });
        genes.push_back([=, &rng] { auto *l = layer(); return l && redraw(l->norm, c.norms, rng); });
        genes.push_back([=, &rng] { auto *l = layer(); return l && redraw(l->act, c.acts, rng); });
    };
    convGenes([&spec] { return &spec.stem; }, d.stem);
    for (std::size_t i = 0; i < spec.blocks.size(); ++i) {
        const BlockType original = spec.blocks[i].type;
        genes.push_back([&, i] {
            BlockType t = spec.blocks[i].type;
            if (!redraw(t, d.blockTypes, rng))
                return false;
            spec.blocks[i] = sampleBlock(rng, t);
            return true;
        });
        if (original == BlockType::Conv) {
            genes.push_back([&, i] {
                BlockSpec &b = spec.blocks[i];
                if (b.type != BlockType::Conv)
                    return false;
                int n = int(b.layers.size());
                if (!redraw(n, d.convLayerCounts, rng))
                    return false;
                while (int(b.layers.size()) > n)
                    b.layers.pop_back();
                while (int(b.layers.size()) < n)
                    b.layers.push_back(sampleConv(d.convLayer, rng));
                return true;
            });
            for (std::size_t k = 0; k < spec.blocks[i].layers.size(); ++k)
                convGenes(
                    [&spec, i, k]() -> ConvLayerSpec * {
                        BlockSpec &b = spec.blocks[i];
                        return b.type == BlockType::Conv && k < b.layers.size() ? &b.layers[k] : nullptr;
                    },
                    d.convLayer);
        } else if (original == BlockType::ConvAttention) {
            genes.push_back([&, i] {
                BlockSpec &b = spec.blocks[i];
                return b.type == BlockType::ConvAttention && redraw(b.attentionChannels, d.attentionChannels, rng);
            });
            genes.push_back([&, i] {
                BlockSpec &b = spec.blocks[i];
                return b.type == BlockType::ConvAttention && redraw(b.act, d.attentionActs, rng);
            });
        }
    }
    genes.push_back([&] {
        int n = int(spec.head.size());
        if (!redraw(n, d.headLayerCounts, rng))
            return false;
        while (int(spec.head.size()) > n)
            spec.head.pop_back();
        while (int(spec.head.size()) < n)
            spec.head.push_back(sampleDense(d.headLayer, rng));
        return true;
    });
    for (std::size_t k = 0; k < spec.head.size(); ++k) {
        auto layer = [&spec, k]() -> DenseLayerSpec * { return k < spec.head.size() ? &spec.head[k] : nullptr; };
        genes.push_back([=, &rng, &d] { auto *l = layer(); return l && redraw(l->width, d.headLayer.widths, rng); });
        genes.push_back([=, &rng, &d] { auto *l = layer(); return l && redraw(l->norm, d.headLayer.norms, rng); });
        genes.push_back([=, &rng, &d] { auto *l = layer(); return l && redraw(l->act, d.headLayer.acts, rng); });
    }
    if (rate <= 0)
        rate = 1.0 / double(genes.size());
    bool changed = false;
    for (auto &g : genes)
        if (rng.chance(rate))
            changed = g() || changed;
    // At least one change: try genes in a random order until one has another value.
    for (std::size_t tries = 0; !changed && tries < genes.size() * 4; ++tries)
        changed = genes[rng.below(genes.size())]();
    spec.name.clear();
    spec.forceOneByOne = d.forceOneByOne;
}

// ------------------------------------------------------------------------------------------
// Counting.

std::string SearchSpace::structuralCount() const
{
    const SpaceDefinition &d = m_eff;
    const int S = d.slots;
    const bool hasConv = S > 0 && hasValue(d.blockTypes, BlockType::Conv);
    const bool hasAttn = S > 0 && hasValue(d.blockTypes, BlockType::ConvAttention);
    const bool hasNone = S == 0 || hasValue(d.blockTypes, BlockType::None);
    const int maxc = hasConv ? *std::max_element(d.convLayerCounts.begin(), d.convLayerCounts.end()) : 0;
    const int maxRun = S * maxc;

    // runBlocks[r]: bitmask of block counts m whose conv blocks can give exactly r layers.
    std::vector<std::uint32_t> runBlocks(std::size_t(maxRun) + 1, 0);
    {
        std::vector<std::set<int>> reach(std::size_t(S) + 1);
        reach[0].insert(0);
        for (int m = 1; m <= S; ++m)
            for (int x : reach[std::size_t(m) - 1])
                for (int c : d.convLayerCounts)
                    if (x + c <= maxRun)
                        reach[std::size_t(m)].insert(x + c);
        for (int m = 1; m <= S; ++m)
            for (int r : reach[std::size_t(m)])
                runBlocks[std::size_t(r)] |= 1u << m;
    }
    const std::uint32_t fullMask = (S >= 31) ? 0xffffffffu : ((1u << (S + 1)) - 1);
    const std::uint32_t allowedTotals = hasNone ? fullMask : (1u << S);
    // Block counts reachable once the open run of r conv layers is closed.
    auto closeRun = [&](std::uint32_t before, int r) -> std::uint32_t {
        if (r == 0)
            return before;
        std::uint32_t out = 0;
        for (int b = 0; b <= S; ++b)
            if (before & (1u << b))
                for (int m = 1; b + m <= S; ++m)
                    if (runBlocks[std::size_t(r)] & (1u << m))
                        out |= 1u << (b + m);
        return out;
    };

    using State = std::tuple<int, std::uint32_t, int>; // map size, block counts before run, run
    std::map<State, BigCount> states;
    const std::uint64_t stemCombos = layerCombos(d.stem);
    for (const auto &[e, raw] : effectiveKernels(d.stem.kernels, d.inputSize, d.forceOneByOne)) {
        (void)raw;
        states[State{d.inputSize - e + 1, 1u, 0}] += BigCount(stemCombos);
    }
    const std::uint64_t convCombos = hasConv ? layerCombos(d.convLayer) : 0;
    const std::uint64_t attnCombos = hasAttn ? std::uint64_t(d.attentionChannels.size()) * d.attentionActs.size() : 0;
    BigCount total;
    for (int step = 0; step <= maxRun + S + 1 && !states.empty(); ++step) {
        std::map<State, BigCount> next;
        for (const auto &[st, cnt] : states) {
            const auto [size, before, run] = st;
            const std::uint32_t closed = closeRun(before, run);
            if (closed & allowedTotals)
                total += cnt;
            if (hasAttn) {
                const std::uint32_t after = (closed << 1) & fullMask;
                if (after)
                    next[State{size, after, 0}] += cnt * BigCount(attnCombos);
            }
            if (hasConv && run + 1 <= maxRun) {
                // Prune runs that can no longer be closed within the slots.
                int minBefore = 0;
                while (minBefore <= S && !(before & (1u << minBefore)))
                    ++minBefore;
                const int minBlocks = (run + 1 + maxc - 1) / maxc;
                if (minBefore + minBlocks <= S)
                    for (const auto &[e, raw] : effectiveKernels(d.convLayer.kernels, size, d.forceOneByOne)) {
                        (void)raw;
                        next[State{size - e + 1, before, run + 1}] += cnt * BigCount(convCombos);
                    }
            }
        }
        states = std::move(next);
    }
    BigCount head;
    const std::uint64_t denseCombos = std::uint64_t(d.headLayer.widths.size()) * d.headLayer.norms.size()
        * d.headLayer.acts.size();
    for (int n : d.headLayerCounts) {
        BigCount p(1);
        for (int k = 0; k < n; ++k)
            p = p * BigCount(denseCombos);
        head += p;
    }
    return (total * head).toString();
}

std::vector<ArchSpec> SearchSpace::enumerate(std::uint64_t limit, bool *complete) const
{
    const SpaceDefinition &d = m_eff;
    std::vector<ArchSpec> out;
    std::unordered_set<std::string> seenKeys;
    std::uint64_t visited = 0;
    bool stopped = false;
    ArchSpec spec;
    spec.inputSize = d.inputSize;
    spec.forceOneByOne = d.forceOneByOne;
    const bool hasNone = d.slots == 0 || hasValue(d.blockTypes, BlockType::None);

    std::function<void()> emitHeads = [&] {
        // All head lengths and layer choices.
        std::function<void(std::size_t, int)> rec = [&](std::size_t k, int n) {
            if (stopped)
                return;
            if (int(k) == n) {
                if (++visited > limit) {
                    stopped = true;
                    return;
                }
                std::string key = spec.canonicalString();
                if (seenKeys.insert(key).second && withinConstraints(spec))
                    out.push_back(spec);
                return;
            }
            for (int w : d.headLayer.widths)
                for (Norm nm : d.headLayer.norms)
                    for (Activation a : d.headLayer.acts) {
                        spec.head[k] = DenseLayerSpec{w, nm, a};
                        rec(k + 1, n);
                    }
        };
        for (int n : d.headLayerCounts) {
            spec.head.assign(std::size_t(n), DenseLayerSpec{});
            rec(0, n);
        }
    };

    // Convolution layers with every distinct effective kernel at the current size.
    std::function<void(std::size_t, int)> slotRec;
    std::function<void(std::size_t, std::size_t, std::size_t, int)> layerRec =
        [&](std::size_t slot, std::size_t k, std::size_t n, int size) {
            if (stopped)
                return;
            if (k == n) {
                slotRec(slot + 1, size);
                return;
            }
            for (const auto &[e, raw] : effectiveKernels(d.convLayer.kernels, size, d.forceOneByOne))
                for (int c : d.convLayer.channels)
                    for (Norm nm : d.convLayer.norms)
                        for (Activation a : d.convLayer.acts) {
                            spec.blocks[slot].layers[k] = ConvLayerSpec{c, raw, nm, a};
                            layerRec(slot, k + 1, n, size - e + 1);
                        }
        };
    slotRec = [&](std::size_t slot, int size) {
        if (stopped)
            return;
        if (slot == std::size_t(d.slots)) {
            emitHeads();
            return;
        }
        for (BlockType t : d.blockTypes) {
            BlockSpec &b = spec.blocks[slot];
            b = BlockSpec{};
            b.type = t;
            if (t == BlockType::Conv) {
                for (int n : d.convLayerCounts) {
                    spec.blocks[slot] = BlockSpec{};
                    spec.blocks[slot].type = BlockType::Conv;
                    spec.blocks[slot].layers.assign(std::size_t(n), ConvLayerSpec{});
                    layerRec(slot, 0, std::size_t(n), size);
                }
            } else if (t == BlockType::ConvAttention) {
                for (int h : d.attentionChannels)
                    for (Activation a : d.attentionActs) {
                        spec.blocks[slot] = BlockSpec{};
                        spec.blocks[slot].type = t;
                        spec.blocks[slot].attentionChannels = h;
                        spec.blocks[slot].act = a;
                        slotRec(slot + 1, size);
                    }
            } else if (hasNone) {
                // Canonical placement: once a slot is empty, every later slot is empty too.
                for (std::size_t r = slot; r < std::size_t(d.slots); ++r) {
                    spec.blocks[r] = BlockSpec{};
                    spec.blocks[r].type = BlockType::None;
                }
                emitHeads();
            }
        }
    };
    spec.blocks.assign(std::size_t(d.slots), BlockSpec{});
    for (const auto &[e, raw] : effectiveKernels(d.stem.kernels, d.inputSize, d.forceOneByOne))
        for (int c : d.stem.channels)
            for (Norm nm : d.stem.norms)
                for (Activation a : d.stem.acts) {
                    spec.stem = ConvLayerSpec{c, raw, nm, a};
                    slotRec(0, d.inputSize - e + 1);
                }
    if (complete)
        *complete = !stopped;
    return out;
}

json SpaceSize::toJson() const
{
    return json{{"count", count},       {"approx", approx},
                {"exact", exact},       {"method", method},
                {"feasible_fraction", feasibleFraction}, {"samples", samples}};
}

SpaceSize SearchSpace::size(std::uint64_t enumerationLimit, int samples, std::uint64_t seed) const
{
    SpaceSize r;
    r.count = structuralCount();
    r.approx = std::stod(r.count);
    const SpaceConstraints &c = m_eff.constraints;
    if (c.maxParams <= 0 && c.maxBops <= 0) {
        r.method = "structure";
        return r;
    }
    // Structural count as an integer when it fits (else above any limit).
    bool small = r.count.size() < 19 && std::stoull(r.count) <= enumerationLimit;
    if (small) {
        bool complete = false;
        const auto all = enumerate(enumerationLimit, &complete);
        if (complete) {
            r.count = std::to_string(all.size());
            r.approx = double(all.size());
            r.method = "enumeration";
            r.feasibleFraction = std::stod(structuralCount()) > 0 ? r.approx / std::stod(structuralCount()) : 0;
            return r;
        }
    }
    r.exact = false;
    r.method = "upper-bound";
    SearchRandom rng(seed);
    int ok = 0, drawn = 0;
    for (int i = 0; i < samples; ++i) {
        // Structural draw (constraints ignored), then the constraint check.
        ArchSpec s;
        s.inputSize = m_eff.inputSize;
        s.forceOneByOne = m_eff.forceOneByOne;
        s.stem = sampleConv(m_eff.stem, rng);
        for (int k = 0; k < m_eff.slots; ++k)
            s.blocks.push_back(sampleBlock(rng));
        const int n = pick(m_eff.headLayerCounts, rng);
        for (int k = 0; k < n; ++k)
            s.head.push_back(sampleDense(m_eff.headLayer, rng));
        ArchSpec copy = s;
        try {
            copy.shapes();
        } catch (const InputError &) {
            continue;
        }
        ++drawn;
        if (withinConstraints(copy))
            ++ok;
    }
    r.samples = drawn;
    r.feasibleFraction = drawn > 0 ? double(ok) / drawn : 0;
    return r;
}

namespace {

// Sum of a cost table's entries whose name starts with prefix.
std::pair<std::int64_t, double> costOf(const Cost &c, const std::string &prefix)
{
    std::int64_t params = 0;
    double bops = 0;
    for (const auto &l : c.layers)
        if (l.name.compare(0, prefix.size(), prefix) == 0) {
            params += l.params;
            bops += l.bops;
        }
    return {params, bops};
}

} // namespace

ArchSpec SearchSpace::cheapestSpec(bool byBops) const
{
    const SpaceDefinition &d = m_eff;
    CostOptions o;
    o.weightBits = o.activationBits = d.constraints.bits;
    auto metric = [&](const std::pair<std::int64_t, double> &c) { return byBops ? c.second : double(c.first); };
    // One-unit probes: a 1x1 stem of C channels on an s x s input produces exactly (C, s).
    auto probe = [&](int size, int channels) {
        ArchSpec p;
        p.inputSize = size;
        p.forceOneByOne = d.forceOneByOne;
        p.stem = ConvLayerSpec{channels, 1, Norm::None, Activation::None};
        return p;
    };
    std::map<std::tuple<int, int, int, int, int, int>, double> convMemo;
    auto convCost = [&](int size, int cin, const ConvLayerSpec &l) {
        const auto key = std::make_tuple(size, cin, l.channels, l.kernel, int(l.norm), int(l.act));
        if (auto it = convMemo.find(key); it != convMemo.end())
            return it->second;
        ArchSpec p = probe(size, cin);
        BlockSpec b;
        b.type = BlockType::Conv;
        b.layers = {l};
        p.blocks = {b};
        return convMemo[key] = metric(costOf(computeCost(p, o), "blocks["));
    };
    auto attnCost = [&](int size, int cin, int h, Activation a) {
        ArchSpec p = probe(size, cin);
        BlockSpec b;
        b.type = BlockType::ConvAttention;
        b.attentionChannels = h;
        b.act = a;
        p.blocks = {b};
        return metric(costOf(computeCost(p, o), "blocks["));
    };
    std::map<std::tuple<int, int, int, int>, double> denseMemo;
    auto denseCost = [&](int fin, const DenseLayerSpec &l) {
        const auto key = std::make_tuple(fin, l.width, int(l.norm), int(l.act));
        if (auto it = denseMemo.find(key); it != denseMemo.end())
            return it->second;
        ArchSpec p = probe(1, fin);
        p.head = {l};
        return denseMemo[key] = metric(costOf(computeCost(p, o), "head["));
    };
    auto outputCost = [&](int fin) { return metric(costOf(computeCost(probe(1, fin), o), "output")); };

    // Cheapest head for a flattened size: DP over the hidden layers.
    struct HeadBest {
        double value;
        std::vector<DenseLayerSpec> layers;
    };
    std::map<int, HeadBest> headMemo;
    auto headBest = [&](int features) -> const HeadBest & {
        if (auto it = headMemo.find(features); it != headMemo.end())
            return it->second;
        HeadBest best{std::numeric_limits<double>::infinity(), {}};
        const int maxLayers = *std::max_element(d.headLayerCounts.begin(), d.headLayerCounts.end());
        std::map<int, HeadBest> level{{features, HeadBest{0, {}}}}; // features -> best path
        for (int n = 0; n <= maxLayers; ++n) {
            if (hasValue(d.headLayerCounts, n))
                for (const auto &[f, hb] : level) {
                    const double v = hb.value + outputCost(f);
                    if (v < best.value)
                        best = HeadBest{v, hb.layers};
                }
            if (n == maxLayers)
                break;
            std::map<int, HeadBest> next;
            for (const auto &[f, hb] : level)
                for (int w : d.headLayer.widths)
                    for (Norm nm : d.headLayer.norms)
                        for (Activation a : d.headLayer.acts) {
                            const DenseLayerSpec l{w, nm, a};
                            const double v = hb.value + denseCost(f, l);
                            auto it = next.find(w);
                            if (it == next.end() || v < it->second.value) {
                                HeadBest nb{v, hb.layers};
                                nb.layers.push_back(l);
                                next[w] = std::move(nb);
                            }
                        }
            level = std::move(next);
        }
        return headMemo[features] = best;
    };

    // Blocks: DP over (map size, channels), one level per non-none block.
    struct Best {
        double value;
        ArchSpec spec; // stem and the blocks so far
    };
    using Key = std::pair<int, int>; // size, channels
    std::map<Key, Best> level;
    for (const auto &[e, raw] : effectiveKernels(d.stem.kernels, d.inputSize, d.forceOneByOne))
        for (int c : d.stem.channels)
            for (Norm nm : d.stem.norms)
                for (Activation a : d.stem.acts) {
                    ArchSpec s;
                    s.inputSize = d.inputSize;
                    s.forceOneByOne = d.forceOneByOne;
                    s.stem = ConvLayerSpec{c, raw, nm, a};
                    const double v = metric(costOf(computeCost(s, o), "stem"));
                    const Key k{d.inputSize - e + 1, c};
                    auto it = level.find(k);
                    if (it == level.end() || v < it->second.value)
                        level[k] = Best{v, s};
                }
    const bool hasNone = d.slots == 0 || hasValue(d.blockTypes, BlockType::None);
    double bestValue = std::numeric_limits<double>::infinity();
    ArchSpec best;
    auto finish = [&](const std::map<Key, Best> &states, int blocksUsed) {
        if (!(blocksUsed == d.slots || hasNone))
            return;
        for (const auto &[k, b] : states) {
            const HeadBest &h = headBest(k.first * k.first * k.second);
            if (b.value + h.value < bestValue) {
                bestValue = b.value + h.value;
                best = b.spec;
                best.head = h.layers;
                while (int(best.blocks.size()) < d.slots)
                    best.blocks.push_back(BlockSpec{});
            }
        }
    };
    finish(level, 0);
    for (int j = 1; j <= d.slots; ++j) {
        std::map<Key, Best> next;
        auto offer = [&](const Key &k, double v, const ArchSpec &prev, const BlockSpec &b) {
            auto it = next.find(k);
            if (it == next.end() || v < it->second.value) {
                ArchSpec s = prev;
                s.blocks.push_back(b);
                next[k] = Best{v, std::move(s)};
            }
        };
        for (const auto &[k, b] : level) {
            const auto [size, channels] = k;
            if (hasValue(d.blockTypes, BlockType::ConvAttention))
                for (int h : d.attentionChannels)
                    for (Activation a : d.attentionActs) {
                        BlockSpec blk;
                        blk.type = BlockType::ConvAttention;
                        blk.attentionChannels = h;
                        blk.act = a;
                        offer(k, b.value + attnCost(size, channels, h, a), b.spec, blk);
                    }
            if (hasValue(d.blockTypes, BlockType::Conv)) {
                // Inner DP over the block's layers: (size, channels) -> cheapest layer list.
                struct Inner {
                    double value;
                    std::vector<ConvLayerSpec> layers;
                };
                std::map<Key, Inner> inner{{k, Inner{b.value, {}}}};
                const int maxLayers = *std::max_element(d.convLayerCounts.begin(), d.convLayerCounts.end());
                for (int n = 1; n <= maxLayers; ++n) {
                    std::map<Key, Inner> innerNext;
                    for (const auto &[ik, in] : inner)
                        for (const auto &[e, raw] : effectiveKernels(d.convLayer.kernels, ik.first, d.forceOneByOne))
                            for (int c : d.convLayer.channels)
                                for (Norm nm : d.convLayer.norms)
                                    for (Activation a : d.convLayer.acts) {
                                        const ConvLayerSpec l{c, raw, nm, a};
                                        const double v = in.value + convCost(ik.first, ik.second, l);
                                        const Key nk{ik.first - e + 1, c};
                                        auto it = innerNext.find(nk);
                                        if (it == innerNext.end() || v < it->second.value) {
                                            Inner ni{v, in.layers};
                                            ni.layers.push_back(l);
                                            innerNext[nk] = std::move(ni);
                                        }
                                    }
                    inner = std::move(innerNext);
                    if (hasValue(d.convLayerCounts, n))
                        for (const auto &[ik, in] : inner) {
                            BlockSpec blk;
                            blk.type = BlockType::Conv;
                            blk.layers = in.layers;
                            offer(ik, in.value, b.spec, blk);
                        }
                }
            }
        }
        level = std::move(next);
        finish(level, j);
    }
    if (!std::isfinite(bestValue))
        throw Error(m_source + ": no valid spec"); // unreachable: validate() counted the space
    return best;
}

void SearchSpace::checkFeasible()
{
    const SpaceDefinition &d = m_eff;
    const SpaceConstraints &c = d.constraints;
    if (c.maxParams <= 0 && c.maxBops <= 0)
        return;
    CostOptions o;
    o.weightBits = o.activationBits = c.bits;
    auto fits = [&](const Cost &cost) {
        return (c.maxParams <= 0 || cost.params <= c.maxParams) && (c.maxBops <= 0 || cost.bops <= c.maxBops);
    };
    std::vector<Cost> cheapest;
    if (c.maxParams > 0) {
        const Cost cost = computeCost(cheapestSpec(false), o);
        if (cost.params > c.maxParams)
            fail(m_source, "constraints.max_params",
                 "no spec of the space has at most " + std::to_string(c.maxParams)
                     + " parameters (the smallest has " + std::to_string(cost.params) + "): no valid spec");
        cheapest.push_back(cost);
    }
    if (c.maxBops > 0) {
        const Cost cost = computeCost(cheapestSpec(true), o);
        if (cost.bops > c.maxBops) {
            std::ostringstream os;
            os << "no spec of the space has at most " << c.maxBops << " BOPs at " << c.bits
               << " bits (the cheapest has " << cost.bops << "): no valid spec";
            fail(m_source, "constraints.max_bops", os.str());
        }
        cheapest.push_back(cost);
    }
    for (const Cost &cost : cheapest)
        if (fits(cost))
            return;
    // Both limits, each reachable alone: look for a spec meeting both.
    SearchRandom rng(0x5eed);
    for (int i = 0; i < 2000; ++i) {
        ArchSpec s;
        s.inputSize = d.inputSize;
        s.forceOneByOne = d.forceOneByOne;
        s.stem = sampleConv(d.stem, rng);
        for (int k = 0; k < d.slots; ++k)
            s.blocks.push_back(sampleBlock(rng));
        const int n = pick(d.headLayerCounts, rng);
        for (int k = 0; k < n; ++k)
            s.head.push_back(sampleDense(d.headLayer, rng));
        try {
            s.shapes();
        } catch (const InputError &) {
            continue;
        }
        if (fits(computeCost(s, o)))
            return;
    }
    std::ostringstream os;
    os << "no spec found with at most " << c.maxBops << " BOPs and at most " << c.maxParams
       << " parameters together (the fewest-parameter spec has " << cheapest[0].bops
       << " BOPs, the fewest-BOPs spec " << cheapest[1].params << " parameters): no valid spec";
    fail(m_source, "constraints.max_bops", os.str());
}

} // namespace braggnac::core
