#include "core/arch/archspec.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/common/atomicfile.h"
#include "core/common/error.h"

namespace braggnac::core {

using nlohmann::json;

const char *normName(Norm n)
{
    switch (n) {
    case Norm::None: return "none";
    case Norm::Batch: return "batch";
    case Norm::Layer: return "layer";
    }
    return "none";
}

const char *activationName(Activation a)
{
    switch (a) {
    case Activation::None: return "none";
    case Activation::ReLU: return "relu";
    case Activation::LeakyReLU: return "leakyrelu";
    case Activation::GELU: return "gelu";
    }
    return "none";
}

const char *blockTypeName(BlockType t)
{
    switch (t) {
    case BlockType::Conv: return "conv";
    case BlockType::ConvAttention: return "conv-attention";
    case BlockType::None: return "none";
    }
    return "none";
}

namespace {

[[noreturn]] void fail(const std::string &source, const std::string &field, const std::string &what)
{
    throw InputError(source + ": " + field + ": " + what);
}

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

void checkKeys(const json &j, const std::set<std::string> &allowed, const std::string &source,
               const std::string &field)
{
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (!allowed.count(it.key())) {
            std::string list;
            for (const auto &a : allowed)
                list += (list.empty() ? "" : ", ") + a;
            fail(source, field.empty() ? it.key() : field + "." + it.key(),
                 "unknown key (expected one of: " + list + ")");
        }
    }
}

const json &requireObject(const json &j, const std::string &source, const std::string &field)
{
    if (!j.is_object())
        fail(source, field, std::string("expected a JSON object, got ") + j.type_name());
    return j;
}

int readPositiveInt(const json &obj, const char *key, const std::string &source,
                    const std::string &field, bool required, int fallback)
{
    const std::string f = field.empty() ? std::string(key) : field + "." + key;
    auto it = obj.find(key);
    if (it == obj.end()) {
        if (required)
            fail(source, f, "missing (expected a positive integer)");
        return fallback;
    }
    // 4.0 is accepted as 4; the range check comes first (casting a huge double is undefined).
    const bool integralFloat = it->is_number_float() && std::abs(it->get<double>()) < 1e15
        && it->get<double>() == std::floor(it->get<double>());
    if (!it->is_number_integer() && !integralFloat)
        fail(source, f, "expected a positive integer, got " + it->dump());
    const long long v = it->is_number_unsigned()
        ? (long long)std::min<std::uint64_t>(it->get<std::uint64_t>(), std::uint64_t(INT64_MAX))
        : it->is_number_integer() ? it->get<long long>() : (long long)it->get<double>();
    if (v <= 0)
        fail(source, f, "must be a positive integer (got " + std::to_string(v) + ")");
    if (v > 1000000)
        fail(source, f, "unreasonably large (got " + std::to_string(v) + ")");
    return int(v);
}

int readKernel(const json &obj, const std::string &source, const std::string &field, int fallback)
{
    const int k = readPositiveInt(obj, "kernel", source, field, false, fallback);
    if (k % 2 == 0)
        fail(source, field + ".kernel", "must be odd (got " + std::to_string(k) + ")");
    return k;
}

std::string readString(const json &obj, const char *key, const std::string &source,
                       const std::string &field, const std::string &fallback)
{
    const std::string f = field.empty() ? std::string(key) : field + "." + key;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null())
        return fallback;
    if (!it->is_string())
        fail(source, f, "expected a string, got " + it->dump());
    return it->get<std::string>();
}

Norm parseNorm(const json &obj, const std::string &source, const std::string &field)
{
    const std::string s = lower(readString(obj, "norm", source, field, "none"));
    if (s == "none" || s == "identity" || s.empty())
        return Norm::None;
    if (s == "batch" || s == "batchnorm" || s == "bn")
        return Norm::Batch;
    if (s == "layer" || s == "layernorm" || s == "ln")
        return Norm::Layer;
    fail(source, field + ".norm", "unknown norm '" + s + "' (expected none, batch or layer)");
}

Activation parseAct(const json &obj, const std::string &source, const std::string &field)
{
    const std::string s = lower(readString(obj, "act", source, field, "none"));
    if (s == "none" || s == "identity" || s.empty())
        return Activation::None;
    if (s == "relu")
        return Activation::ReLU;
    if (s == "leakyrelu" || s == "leaky_relu" || s == "leaky-relu")
        return Activation::LeakyReLU;
    if (s == "gelu")
        return Activation::GELU;
    fail(source, field + ".act",
         "unknown activation '" + s + "' (expected none, relu, leakyrelu or gelu)");
}

ConvLayerSpec parseConvLayer(const json &j, const std::string &source, const std::string &field)
{
    requireObject(j, source, field);
    checkKeys(j, {"channels", "kernel", "norm", "act"}, source, field);
    ConvLayerSpec l;
    l.channels = readPositiveInt(j, "channels", source, field, true, 0);
    l.kernel = readKernel(j, source, field, 3);
    l.norm = parseNorm(j, source, field);
    l.act = parseAct(j, source, field);
    return l;
}

json convLayerJson(const ConvLayerSpec &l)
{
    return json{{"channels", l.channels}, {"kernel", l.kernel}, {"norm", normName(l.norm)},
                {"act", activationName(l.act)}};
}

} // namespace

json ArchSpec::toJson() const
{
    json j;
    j["name"] = name;
    j["input_size"] = inputSize;
    j["force_one_by_one"] = forceOneByOne;
    j["stem"] = convLayerJson(stem);
    json blocksJ = json::array();
    for (const auto &b : blocks) {
        json bj;
        bj["type"] = blockTypeName(b.type);
        if (b.type == BlockType::Conv) {
            json layers = json::array();
            for (const auto &l : b.layers)
                layers.push_back(convLayerJson(l));
            bj["layers"] = layers;
        } else if (b.type == BlockType::ConvAttention) {
            bj["attention_channels"] = b.attentionChannels;
            bj["act"] = activationName(b.act);
        }
        blocksJ.push_back(bj);
    }
    j["blocks"] = blocksJ;
    json headJ = json::array();
    for (const auto &d : head)
        headJ.push_back(json{{"width", d.width}, {"norm", normName(d.norm)}, {"act", activationName(d.act)}});
    j["head"] = headJ;
    return j;
}

ArchSpec ArchSpec::fromJson(const json &j, const std::string &source)
{
    requireObject(j, source, "(root)");
    checkKeys(j, {"name", "input_size", "force_one_by_one", "stem", "blocks", "head", "description"},
              source, "");
    ArchSpec s;
    s.name = readString(j, "name", source, "", "");
    s.inputSize = readPositiveInt(j, "input_size", source, "", false, 11);
    if (auto it = j.find("force_one_by_one"); it != j.end()) {
        if (!it->is_boolean())
            fail(source, "force_one_by_one", "expected true or false, got " + it->dump());
        s.forceOneByOne = it->get<bool>();
    }
    auto stemIt = j.find("stem");
    if (stemIt == j.end())
        fail(source, "stem", "missing (expected {\"channels\": C, \"kernel\": k, ...})");
    s.stem = parseConvLayer(*stemIt, source, "stem");

    if (auto it = j.find("blocks"); it != j.end() && !it->is_null()) {
        if (!it->is_array())
            fail(source, "blocks", std::string("expected an array, got ") + it->type_name());
        for (std::size_t i = 0; i < it->size(); ++i) {
            const std::string f = "blocks[" + std::to_string(i) + "]";
            const json &bj = requireObject((*it)[i], source, f);
            BlockSpec b;
            const std::string type = lower(readString(bj, "type", source, f, ""));
            if (type.empty())
                fail(source, f + ".type", "missing (expected conv, conv-attention or none)");
            if (type == "conv") {
                checkKeys(bj, {"type", "layers"}, source, f);
                b.type = BlockType::Conv;
                auto lit = bj.find("layers");
                if (lit == bj.end() || !lit->is_array() || lit->empty())
                    fail(source, f + ".layers", "expected a non-empty array of conv layers");
                for (std::size_t k = 0; k < lit->size(); ++k)
                    b.layers.push_back(parseConvLayer((*lit)[k], source,
                                                      f + ".layers[" + std::to_string(k) + "]"));
            } else if (type == "conv-attention" || type == "conv_attention" || type == "attention") {
                checkKeys(bj, {"type", "attention_channels", "act"}, source, f);
                b.type = BlockType::ConvAttention;
                b.attentionChannels = readPositiveInt(bj, "attention_channels", source, f, true, 0);
                b.act = parseAct(bj, source, f);
            } else if (type == "none") {
                checkKeys(bj, {"type"}, source, f);
                b.type = BlockType::None;
            } else {
                fail(source, f + ".type",
                     "unknown block type '" + type + "' (expected conv, conv-attention or none)");
            }
            s.blocks.push_back(std::move(b));
        }
    }
    if (auto it = j.find("head"); it != j.end() && !it->is_null()) {
        if (!it->is_array())
            fail(source, "head", std::string("expected an array, got ") + it->type_name());
        for (std::size_t i = 0; i < it->size(); ++i) {
            const std::string f = "head[" + std::to_string(i) + "]";
            const json &dj = requireObject((*it)[i], source, f);
            checkKeys(dj, {"width", "norm", "act"}, source, f);
            DenseLayerSpec d;
            d.width = readPositiveInt(dj, "width", source, f, true, 0);
            d.norm = parseNorm(dj, source, f);
            d.act = parseAct(dj, source, f);
            s.head.push_back(d);
        }
    }
    // Shape check (throws "spec: field: what"); re-throw with this source.
    try {
        s.shapes();
    } catch (const InputError &e) {
        std::string msg = e.what();
        const std::string prefix = "spec: ";
        if (msg.compare(0, prefix.size(), prefix) == 0)
            msg = msg.substr(prefix.size());
        throw InputError(source + ": " + msg);
    }
    return s;
}

ArchSpec ArchSpec::load(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw InputError(fileMessage(path, "cannot open architecture spec"));
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

void ArchSpec::save(const std::string &path) const
{
    AtomicOutput out(path);
    {
        std::ofstream f(out.tempPath(), std::ios::binary);
        if (!f)
            throw Error(fileMessage(path, "cannot write"));
        f << toJson().dump(2) << "\n";
        if (!f)
            throw Error(fileMessage(path, "write failed"));
    }
    out.commit();
}

std::vector<ArchSpec::Shape> ArchSpec::shapes() const
{
    const std::string source = "spec";
    if (inputSize <= 0)
        fail(source, "input_size", "must be a positive integer (got " + std::to_string(inputSize) + ")");
    std::vector<Shape> out;
    int size = inputSize;
    int channels = 1;
    auto convStep = [&](const ConvLayerSpec &l, const std::string &field) {
        if (l.channels <= 0)
            fail(source, field + ".channels",
                 "must be a positive integer (got " + std::to_string(l.channels) + ")");
        if (l.kernel <= 0 || l.kernel % 2 == 0)
            fail(source, field + ".kernel",
                 "must be a positive odd integer (got " + std::to_string(l.kernel) + ")");
        int k = l.kernel;
        if (k > size) {
            if (forceOneByOne)
                k = 1;
            else
                fail(source, field + ".kernel",
                     "kernel " + std::to_string(k) + " collapses the " + std::to_string(size) + "x"
                         + std::to_string(size) + " map (needs kernel <= " + std::to_string(size)
                         + ", or force_one_by_one)");
        }
        size = size - k + 1;
        channels = l.channels;
        out.push_back(Shape{field, channels, size, k});
    };
    convStep(stem, "stem");
    for (std::size_t i = 0; i < blocks.size(); ++i) {
        const BlockSpec &b = blocks[i];
        const std::string f = "blocks[" + std::to_string(i) + "]";
        if (b.type == BlockType::Conv) {
            if (b.layers.empty())
                fail(source, f + ".layers", "expected at least one conv layer");
            for (std::size_t k = 0; k < b.layers.size(); ++k)
                convStep(b.layers[k], f + ".layers[" + std::to_string(k) + "]");
        } else if (b.type == BlockType::ConvAttention) {
            if (b.attentionChannels <= 0)
                fail(source, f + ".attention_channels",
                     "must be a positive integer (got " + std::to_string(b.attentionChannels) + ")");
            out.push_back(Shape{f, channels, size, 1});
        }
    }
    // channels and size are at most 10^6 each: the product can overflow an int.
    const long long flat = (long long)channels * size * size;
    if (flat > INT32_MAX)
        fail(source, out.back().field,
             "the flattened map is " + std::to_string(channels) + " x " + std::to_string(size) + " x "
                 + std::to_string(size) + " = " + std::to_string(flat)
                 + " features; larger than supported (at most " + std::to_string(INT32_MAX) + ")");
    int features = int(flat);
    for (std::size_t i = 0; i < head.size(); ++i) {
        const std::string f = "head[" + std::to_string(i) + "]";
        if (head[i].width <= 0)
            fail(source, f + ".width",
                 "must be a positive integer (got " + std::to_string(head[i].width) + ")");
        features = head[i].width;
        out.push_back(Shape{f, features, 0, 0});
    }
    out.push_back(Shape{"output", 2, 0, 0});
    return out;
}

int ArchSpec::flattenFeatures() const
{
    const auto s = shapes();
    int channels = 0, size = 0;
    for (const auto &sh : s) {
        if (sh.size > 0) {
            channels = sh.channels;
            size = sh.size;
        }
    }
    return channels * size * size;
}

std::string ArchSpec::canonicalString() const
{
    const auto sh = shapes();
    std::string out = "braggnac-arch-v1|in:" + std::to_string(inputSize);
    std::size_t si = 0;
    auto conv = [&](const ConvLayerSpec &l) {
        out += "|conv:" + std::to_string(l.channels) + "," + std::to_string(sh[si++].kernel) + ","
            + normName(l.norm) + "," + activationName(l.act);
    };
    conv(stem);
    for (const auto &b : blocks) {
        if (b.type == BlockType::Conv) {
            for (const auto &l : b.layers)
                conv(l);
        } else if (b.type == BlockType::ConvAttention) {
            ++si;
            out += "|attn:" + std::to_string(b.attentionChannels) + "," + activationName(b.act);
        }
    }
    for (const auto &d : head)
        out += "|dense:" + std::to_string(d.width) + "," + normName(d.norm) + "," + activationName(d.act);
    return out;
}

std::string ArchSpec::canonicalHash() const
{
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : canonicalString()) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    static const char digits[] = "0123456789abcdef";
    std::string hex(16, '0');
    for (int i = 15; i >= 0; --i, h >>= 4)
        hex[std::size_t(i)] = digits[h & 0xf];
    return hex;
}

bool operator==(const ArchSpec &a, const ArchSpec &b)
{
    std::string ca, cb;
    bool va = true, vb = true;
    try {
        ca = a.canonicalString();
    } catch (const InputError &) {
        va = false;
    }
    try {
        cb = b.canonicalString();
    } catch (const InputError &) {
        vb = false;
    }
    if (va && vb)
        return ca == cb;
    if (va != vb)
        return false;
    json ja = a.toJson(), jb = b.toJson();
    ja.erase("name");
    jb.erase("name");
    return ja == jb;
}

ArchSpec builtinArch(const std::string &name)
{
    const std::string n = lower(name);
    ArchSpec s;
    s.inputSize = 11;
    if (n == "braggnn") {
        // BraggNN (Liu et al., IUCrJ 2022): conv 1->64 3x3, non-local block (64 -> 32 -> 64),
        // LeakyReLU, conv 64->32 3x3 LeakyReLU, conv 32->8 3x3 LeakyReLU, FC 200-64-32-16-8-2.
        s.name = "braggnn";
        s.stem = {64, 3, Norm::None, Activation::None};
        BlockSpec attn;
        attn.type = BlockType::ConvAttention;
        attn.attentionChannels = 32;
        attn.act = Activation::LeakyReLU;
        BlockSpec conv;
        conv.type = BlockType::Conv;
        conv.layers = {{32, 3, Norm::None, Activation::LeakyReLU}, {8, 3, Norm::None, Activation::LeakyReLU}};
        s.blocks = {attn, conv};
        for (int w : {64, 32, 16, 8})
            s.head.push_back({w, Norm::None, Activation::LeakyReLU});
        return s;
    }
    if (n == "nac") {
        // NAC (arXiv 2312.05978) trial 164.
        s.name = "nac";
        s.stem = {32, 3, Norm::None, Activation::None};
        BlockSpec b1, b2, b3;
        b1.type = b2.type = b3.type = BlockType::Conv;
        b1.layers = {{4, 1, Norm::None, Activation::ReLU}, {32, 1, Norm::Batch, Activation::LeakyReLU}};
        b2.layers = {{4, 1, Norm::Batch, Activation::GELU}, {32, 3, Norm::Layer, Activation::GELU}};
        b3.layers = {{8, 3, Norm::Layer, Activation::GELU}, {64, 3, Norm::None, Activation::None}};
        s.blocks = {b1, b2, b3};
        s.head = {{8, Norm::Layer, Activation::ReLU},
                  {4, Norm::None, Activation::GELU},
                  {4, Norm::Layer, Activation::GELU}};
        return s;
    }
    std::string list;
    for (const auto &b : builtinArchNames())
        list += (list.empty() ? "" : ", ") + b;
    throw InputError("--arch: unknown built-in architecture '" + name + "' (expected " + list
                     + " or a spec JSON file)");
}

std::vector<std::string> builtinArchNames()
{
    return {"braggnn", "nac"};
}

ArchSpec resolveArch(const std::string &nameOrPath)
{
    const auto names = builtinArchNames();
    if (std::find(names.begin(), names.end(), lower(nameOrPath)) != names.end())
        return builtinArch(nameOrPath);
    if (std::filesystem::exists(nameOrPath))
        return ArchSpec::load(nameOrPath);
    std::string list;
    for (const auto &b : names)
        list += (list.empty() ? "" : ", ") + b;
    throw InputError(nameOrPath + ": no such file and not a built-in architecture (" + list + ")");
}

} // namespace braggnac::core
