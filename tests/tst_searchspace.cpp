// braggnac-test-libs: braggnac_search braggnac_cost braggnac_arch
// Search spaces and ArchSpec identity: canonical hash rules (forced kernels, none blocks, flat
// conv runs, name), the exact size of nac.json against an independent recursion, exact sizes of
// small spaces against brute-force enumeration of every raw genome, bad space files naming the
// field, sampling within constraints, and hierarchy-respecting variation (property test over
// thousands of random parents from nac.json with a max-BOPs constraint).
#include <cstdint>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include <QTemporaryDir>
#include <QtTest>

#include "core/arch/archspec.h"
#include "core/common/error.h"
#include "core/cost/cost.h"
#include "core/search/nsga2.h"
#include "core/search/space.h"
#include "tests/testutil.h"

using namespace braggnac::core;
using namespace braggnac::test;
using nlohmann::json;

// canonicalHash() of nacLikeSpec(), recorded once: it must never change.
#define PINNED_HASH "86e5df5538a10239"

namespace {

std::string resourceSpace(const std::string &name)
{
    return std::string(BRAGGNAC_TEST_DATA) + "/../../resources/spaces/" + name + ".json";
}

std::string u128String(unsigned __int128 v)
{
    if (v == 0)
        return "0";
    std::string s;
    while (v) {
        s.push_back(char('0' + int(v % 10)));
        v /= 10;
    }
    return std::string(s.rbegin(), s.rend());
}

// The NAC space counted by a plain recursion that relies on its fixed two-layer conv blocks:
// a distinct network is a sequence of at most three non-none blocks (none slots carry no
// network, wherever they are), each conv layer has 6 x 3 x 4 = 72 (channels, norm, act)
// choices per *effective* kernel: {1, 3} while the map is >= 3 wide, {1} below (3 is forced).
unsigned __int128 nacBlocks(int slotsLeft, int size)
{
    unsigned __int128 n = 1; // the sequence ends here
    if (slotsLeft == 0)
        return n;
    n += 24 * nacBlocks(slotsLeft - 1, size); // conv-attention: 6 widths x 4 activations
    auto kernels = [](int s) { return s >= 3 ? std::vector<int>{1, 3} : std::vector<int>{1}; };
    for (int k1 : kernels(size))
        for (int k2 : kernels(size - k1 + 1))
            n += 72 * 72 * nacBlocks(slotsLeft - 1, size - k1 + 1 - k2 + 1);
    return n;
}

json smallSpaceJson(bool force, bool withNone, bool variableLayers, bool withConv = true, bool noOneByOne = false)
{
    json j = {
        {"name", "small"},
        {"input_size", 5},
        {"force_one_by_one", force},
        {"stem", {{"channels", {1}}, {"kernel", {1, 3}}, {"norm", {"none"}}, {"act", {"none"}}}},
        {"blocks",
         {{"slots", withConv ? 2 : 3},
          {"types", withNone ? json{"conv", "conv-attention", "none"} : json{"conv", "conv-attention"}},
          {"conv",
           {{"layers", variableLayers ? json{1, 2} : json{2}},
            {"channels", {2, 3}},
            {"kernel", {1, 3, 5}},
            {"norm", {"none", "batch"}},
            {"act", {"relu"}}}},
          {"conv-attention", {{"attention_channels", {1, 2}}, {"act", {"none"}}}}}},
        {"head", {{"layers", {0, 1}}, {"width", {2, 3}}, {"norm", {"none"}}, {"act", {"none"}}}},
    };
    if (noOneByOne) // forced 1x1 kernels are then networks no raw kernel writes directly
        j["blocks"]["conv"]["kernel"] = {3, 5};
    if (!withConv) {
        j["blocks"].erase("conv");
        j["blocks"]["types"] = withNone ? json{"conv-attention", "none"} : json{"conv-attention"};
        j["blocks"]["conv-attention"]["act"] = {"none", "relu", "gelu"};
    }
    return j;
}

// Every raw genome of a space definition (every slot choice, every raw kernel), no dedupe.
void forEachGenome(const SpaceDefinition &d, const std::function<void(const ArchSpec &)> &fn)
{
    std::vector<ConvLayerSpec> convLayers;
    for (int c : d.convLayer.channels)
        for (int k : d.convLayer.kernels)
            for (Norm n : d.convLayer.norms)
                for (Activation a : d.convLayer.acts)
                    convLayers.push_back({c, k, n, a});
    std::vector<BlockSpec> blocks;
    for (BlockType t : d.blockTypes) {
        if (t == BlockType::None) {
            blocks.push_back(BlockSpec{});
        } else if (t == BlockType::ConvAttention) {
            for (int h : d.attentionChannels)
                for (Activation a : d.attentionActs) {
                    BlockSpec b;
                    b.type = t;
                    b.attentionChannels = h;
                    b.act = a;
                    blocks.push_back(b);
                }
        } else {
            for (int n : d.convLayerCounts) {
                std::vector<std::size_t> idx(std::size_t(n), 0);
                while (true) {
                    BlockSpec b;
                    b.type = BlockType::Conv;
                    for (std::size_t i : idx)
                        b.layers.push_back(convLayers[i]);
                    blocks.push_back(b);
                    std::size_t p = 0;
                    while (p < idx.size() && ++idx[p] == convLayers.size())
                        idx[p++] = 0;
                    if (p == idx.size())
                        break;
                }
            }
        }
    }
    std::vector<std::vector<DenseLayerSpec>> heads;
    for (int n : d.headLayerCounts) {
        std::vector<DenseLayerSpec> layers;
        for (int w : d.headLayer.widths)
            for (Norm nm : d.headLayer.norms)
                for (Activation a : d.headLayer.acts)
                    layers.push_back({w, nm, a});
        std::vector<std::size_t> idx(std::size_t(n), 0);
        while (true) {
            std::vector<DenseLayerSpec> h;
            for (std::size_t i : idx)
                h.push_back(layers[i]);
            heads.push_back(h);
            std::size_t p = 0;
            while (p < idx.size() && ++idx[p] == layers.size())
                idx[p++] = 0;
            if (p == idx.size())
                break;
        }
    }
    ArchSpec s;
    s.inputSize = d.inputSize;
    s.forceOneByOne = d.forceOneByOne;
    for (int c : d.stem.channels)
        for (int k : d.stem.kernels)
            for (Norm n : d.stem.norms)
                for (Activation a : d.stem.acts) {
                    s.stem = {c, k, n, a};
                    std::vector<std::size_t> idx(std::size_t(d.slots), 0);
                    while (true) {
                        s.blocks.clear();
                        for (std::size_t i : idx)
                            s.blocks.push_back(blocks[i]);
                        for (const auto &h : heads) {
                            s.head = h;
                            fn(s);
                        }
                        std::size_t p = 0;
                        while (p < idx.size() && ++idx[p] == blocks.size())
                            idx[p++] = 0;
                        if (p == idx.size())
                            break;
                    }
                }
}

ArchSpec nacLikeSpec()
{
    ArchSpec s;
    s.inputSize = 11;
    s.forceOneByOne = true;
    s.stem = {16, 3, Norm::None, Activation::None};
    BlockSpec c;
    c.type = BlockType::Conv;
    c.layers = {{8, 3, Norm::Batch, Activation::ReLU}, {8, 3, Norm::None, Activation::GELU}};
    BlockSpec last = c;
    last.layers = {{4, 3, Norm::None, Activation::ReLU}, {4, 1, Norm::None, Activation::None}};
    s.blocks = {c, c, last}; // 11 -> 9 -> 7 -> 5 -> 3 -> 1, then the 3x3 is forced to 1x1
    s.head = {{16, Norm::None, Activation::ReLU}, {8, Norm::None, Activation::ReLU}, {4, Norm::Layer, Activation::None}};
    return s;
}

} // namespace

class TestSearchSpace : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void canonicalHash();
    void nacSize();
    void smallSpaceExact_data();
    void smallSpaceExact();
    void constrainedSizeByEnumeration();
    void cheapest();
    void badSpace_data();
    void badSpace();
    void fpgaFriendly();
    void jsonRoundTrip();
    void sampleWithinConstraints();
    void crossoverTakesWholeBlocks();
    void variationProperty();
};

void TestSearchSpace::canonicalHash()
{
    ArchSpec a = nacLikeSpec();
    // Pinned: the format and the hash must not change between versions or platforms.
    QCOMPARE(QString::fromStdString(a.canonicalString()),
             QStringLiteral("braggnac-arch-v1|in:11|conv:16,3,none,none|conv:8,3,batch,relu|conv:8,3,none,gelu"
                            "|conv:8,3,batch,relu|conv:8,3,none,gelu|conv:4,1,none,relu|conv:4,1,none,none"
                            "|dense:16,none,relu|dense:8,none,relu|dense:4,layer,none"));
    QCOMPARE(QString::fromStdString(a.canonicalHash()), QStringLiteral("%1").arg(QLatin1String(PINNED_HASH)));
    // FNV-1a 64 of that string, computed independently here.
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : a.canonicalString())
        h = (h ^ c) * 0x100000001b3ULL;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    QCOMPARE(QString::fromStdString(a.canonicalHash()), QString::fromLatin1(hex));

    // The 3x3 of the last block meets a 1x1 map and is forced to 1x1: same network as 1.
    ArchSpec b = a;
    b.blocks[2].layers[0].kernel = 1;
    QCOMPARE(b.canonicalHash(), a.canonicalHash());
    QVERIFY(a == b);
    // ... also without force_one_by_one once the kernel is written as 1.
    b.forceOneByOne = false;
    QVERIFY(a == b);
    // Name excluded; none slots anywhere give the same network.
    ArchSpec n1 = a, n2 = a;
    n1.blocks[2] = BlockSpec{};
    n2.blocks = {BlockSpec{}, a.blocks[0], a.blocks[1]};
    n2.name = "other";
    QCOMPARE(n2.canonicalHash(), n1.canonicalHash());
    QVERIFY(n1 != a);
    // Two 2-layer conv blocks are the same flat network as one 4-layer block.
    b = a;
    b.blocks[0].layers.insert(b.blocks[0].layers.end(), a.blocks[1].layers.begin(), a.blocks[1].layers.end());
    b.blocks[1] = BlockSpec{};
    QVERIFY(a == b);
    // Invalid specs (a collapsing kernel without force_one_by_one) compare by their fields.
    ArchSpec bad = a;
    bad.forceOneByOne = false;
    ArchSpec bad2 = bad;
    QVERIFY(bad == bad2);
    QVERIFY(bad != a);
    bad2.name = "renamed";
    QVERIFY(bad == bad2);
    // A changed channel count, kernel that is not forced, norm or input size differs.
    b = a;
    b.blocks[0].layers[0].channels = 4;
    QVERIFY(a != b);
    b = a;
    b.blocks[0].layers[0].kernel = 1;
    QVERIFY(a != b);
    b = a;
    b.head[2].norm = Norm::Batch;
    QVERIFY(a != b);
    b = a;
    b.inputSize = 13;
    QVERIFY(a != b);
    QVERIFY(builtinArch("nac") != builtinArch("braggnn"));
    QVERIFY(builtinArch("nac") == builtinArch("nac"));
}

void TestSearchSpace::nacSize()
{
    const SearchSpace space = SearchSpace::load(resourceSpace("nac"));
    const unsigned __int128 expected = (unsigned __int128)4 * nacBlocks(3, 9) * (60 * 60 * 60);
    const std::string count = space.structuralCount();
    qInfo("nac.json: %s distinct specs", count.c_str());
    QCOMPARE(QString::fromStdString(count), QString::fromStdString(u128String(expected)));
    const SpaceSize sz = space.size();
    QVERIFY(sz.exact);
    QCOMPARE(QString::fromStdString(sz.method), QStringLiteral("structure"));
    QCOMPARE(QString::fromStdString(sz.count), QString::fromStdString(count));
    QCOMPARE(QString::fromStdString(sz.toJson().dump()),
             QStringLiteral(R"({"approx":6.888090949487712e+18,"count":"6888090949487712000","exact":true,)"
                            R"("feasible_fraction":1.0,"method":"structure","samples":0})"));
    // The built-in nac (trial 164) is in its own space; braggnn's four-layer head is not.
    ArchProblem problem(space);
    QVERIFY(space.contains(problem.fitToSlots(builtinArch("nac"))));
    std::string why;
    QVERIFY(!space.contains(problem.fitToSlots(builtinArch("braggnn")), &why));
    QVERIFY2(why.rfind("head:", 0) == 0, why.c_str());
    // A spec relying on a forced kernel is in the space only if it says force_one_by_one itself
    // (the trainer builds it as written).
    ArchSpec forced = nacLikeSpec();
    QVERIFY(space.contains(forced));
    forced.forceOneByOne = false;
    QVERIFY(!space.contains(forced, &why));
    QVERIFY2(why.find("blocks[2].layers[0].kernel: kernel 3 collapses the 1x1 map") == 0, why.c_str());

    const SearchSpace wide = SearchSpace::load(resourceSpace("wide"));
    qInfo("wide.json: %s distinct specs", wide.structuralCount().c_str());
    QVERIFY(wide.structuralCount().size() > count.size());
}

void TestSearchSpace::smallSpaceExact_data()
{
    QTest::addColumn<bool>("force");
    QTest::addColumn<bool>("withNone");
    QTest::addColumn<bool>("variableLayers");
    QTest::addColumn<bool>("aliases"); // distinct genomes that build the same network exist
    QTest::addColumn<bool>("withConv");
    QTest::addColumn<bool>("noOneByOne");
    QTest::newRow("force, none, 2 layers") << true << true << false << true << true << false;
    QTest::newRow("force, none, 1-2 layers") << true << true << true << true << true << false;
    QTest::newRow("no force, none, 1-2 layers") << false << true << true << true << true << false;
    QTest::newRow("force, no none, 1-2 layers") << true << false << true << true << true << false;
    QTest::newRow("no force, no none, 2 layers") << false << false << false << false << true << false;
    QTest::newRow("attention and none, 3 slots") << true << true << false << true << false << false;
    QTest::newRow("attention only, 3 slots") << true << false << false << false << false << false;
    QTest::newRow("force, none, 1-2 layers, kernels 3/5") << true << true << true << true << true << true;
    QTest::newRow("no force, none, 1-2 layers, kernels 3/5") << false << true << true << true << true << true;
}

void TestSearchSpace::smallSpaceExact()
{
    QFETCH(bool, force);
    QFETCH(bool, withNone);
    QFETCH(bool, variableLayers);
    QFETCH(bool, aliases);
    QFETCH(bool, withConv);
    QFETCH(bool, noOneByOne);
    const SearchSpace space =
        SearchSpace::fromJson(smallSpaceJson(force, withNone, variableLayers, withConv, noOneByOne), "small");
    std::unordered_set<std::string> distinct;
    std::size_t raw = 0, valid = 0;
    forEachGenome(space.effective(), [&](const ArchSpec &s) {
        ++raw;
        if (!space.contains(s))
            return;
        ++valid;
        distinct.insert(s.canonicalString());
    });
    qInfo("%zu raw genomes, %zu valid, %zu distinct networks", raw, valid, distinct.size());
    QVERIFY(valid < raw || force);
    // None slots, forced kernels and conv runs make distinct genomes build one network.
    QCOMPARE(distinct.size() < valid, aliases);
    QCOMPARE(QString::fromStdString(space.structuralCount()), QString::number(distinct.size()));
    bool complete = false;
    const auto all = space.enumerate(100000000, &complete);
    QVERIFY(complete);
    QCOMPARE(all.size(), distinct.size());
    std::unordered_set<std::string> enumerated;
    for (const auto &s : all) {
        QVERIFY(space.contains(s));
        enumerated.insert(s.canonicalString());
    }
    QCOMPARE(enumerated, distinct);
}

void TestSearchSpace::constrainedSizeByEnumeration()
{
    json j = smallSpaceJson(true, true, true);
    const SearchSpace unconstrained = SearchSpace::fromJson(j, "small");
    // The median parameter count of the distinct specs as the limit.
    std::vector<std::int64_t> params;
    for (const auto &s : unconstrained.enumerate(100000000))
        params.push_back(computeCost(s).params);
    std::sort(params.begin(), params.end());
    const std::int64_t limit = params[params.size() / 2];
    const auto expected = std::count_if(params.begin(), params.end(), [&](std::int64_t p) { return p <= limit; });
    j["constraints"] = {{"max_params", limit}};
    const SearchSpace space = SearchSpace::fromJson(j, "small");
    const SpaceSize sz = space.size(100000);
    QCOMPARE(QString::fromStdString(sz.method), QStringLiteral("enumeration"));
    QVERIFY(sz.exact);
    QCOMPARE(QString::fromStdString(sz.count), QString::number(expected));
    // Above the enumeration limit: an upper bound with a sampled feasible fraction.
    const SpaceSize bound = space.size(10, 500);
    QVERIFY(!bound.exact);
    QCOMPARE(QString::fromStdString(bound.method), QStringLiteral("upper-bound"));
    QCOMPARE(QString::fromStdString(bound.count), QString::fromStdString(space.structuralCount()));
    QVERIFY(bound.feasibleFraction > 0.2 && bound.feasibleFraction < 0.95);
}

void TestSearchSpace::cheapest()
{
    // Exact against brute force over every distinct spec of the small spaces.
    for (bool variable : {false, true}) {
        const SearchSpace space = SearchSpace::fromJson(smallSpaceJson(true, true, variable), "small");
        std::int64_t minParams = INT64_MAX;
        double minBops = HUGE_VAL;
        for (const auto &s : space.enumerate(100000000)) {
            const Cost c = computeCost(s);
            minParams = std::min(minParams, c.params);
            minBops = std::min(minBops, c.bops);
        }
        const ArchSpec p = space.cheapestSpec(false), b = space.cheapestSpec(true);
        QVERIFY(space.contains(p) && space.contains(b));
        QCOMPARE(computeCost(p).params, minParams);
        QCOMPARE(computeCost(b).bops, minBops);
    }
    // nac.json: no better than the best of many random specs, and exactly the limit that
    // separates feasible from impossible.
    std::ifstream in(resourceSpace("nac"));
    json j = json::parse(in);
    const SearchSpace nac = SearchSpace::fromJson(j, "nac");
    const ArchSpec p = nac.cheapestSpec(false), b = nac.cheapestSpec(true);
    QVERIFY(nac.contains(p) && nac.contains(b));
    const Cost cp = computeCost(p), cb = computeCost(b);
    qInfo("nac.json: fewest parameters %lld, fewest standard BOPs %.6g", (long long)cp.params, cb.bops);
    SearchRandom rng(1);
    for (int i = 0; i < 3000; ++i) {
        const Cost c = computeCost(nac.sample(rng));
        QVERIFY(c.params >= cp.params);
        QVERIFY(c.bops >= cb.bops);
    }
    j["constraints"]["max_params"] = cp.params;
    QVERIFY(threwInputError(inputErrorMessage([&] { SearchSpace::fromJson(j, "nac"); })) == false);
    j["constraints"]["max_params"] = cp.params - 1;
    const QString msg = inputErrorMessage([&] { SearchSpace::fromJson(j, "nac"); });
    QVERIFY2(msg.startsWith(QStringLiteral("nac: constraints.max_params: no spec of the space has at most %1 "
                                           "parameters (the smallest has %2)")
                                .arg(cp.params - 1)
                                .arg(cp.params)),
             qPrintable(msg));
    j["constraints"]["max_params"] = nullptr;
    j["constraints"]["max_bops"] = cb.bops;
    QVERIFY(threwInputError(inputErrorMessage([&] { SearchSpace::fromJson(j, "nac"); })) == false);
    j["constraints"]["max_bops"] = cb.bops * (1 - 1e-9);
    const QString bopsMsg = inputErrorMessage([&] { SearchSpace::fromJson(j, "nac"); });
    QVERIFY2(bopsMsg.startsWith(QLatin1String("nac: constraints.max_bops: no spec of the space has at most")),
             qPrintable(bopsMsg));
}

void TestSearchSpace::badSpace_data()
{
    QTest::addColumn<QString>("patch"); // JSON merge patch applied to nac.json
    QTest::addColumn<QString>("expected");
    QTest::newRow("unknown root key") << R"({"slots": 3})" << "bad.json: slots: unknown key";
    QTest::newRow("unknown nested key") << R"({"blocks": {"conv": {"kernels": [1]}}})"
                                        << "bad.json: blocks.conv.kernels: unknown key";
    QTest::newRow("empty choices") << R"({"head": {"width": []}})" << "bad.json: head.width: empty list of choices";
    QTest::newRow("empty types") << R"({"blocks": {"types": []}})" << "bad.json: blocks.types: empty list of choices";
    QTest::newRow("duplicate") << R"({"stem": {"channels": [8, 8]}})" << "bad.json: stem.channels[1]: duplicate choice";
    QTest::newRow("even kernel") << R"({"blocks": {"conv": {"kernel": [1, 2]}}})"
                                 << "bad.json: blocks.conv.kernel[1]: kernels must be odd";
    QTest::newRow("unknown norm") << R"({"head": {"norm": ["group"]}})" << "bad.json: head.norm[0]: unknown norm 'group'";
    QTest::newRow("params of an unlisted type")
        << R"({"blocks": {"types": ["conv", "none"]}})" << "bad.json: blocks.conv-attention: parameters of a block type";
    QTest::newRow("stem collapses")
        << R"({"force_one_by_one": false, "stem": {"kernel": [13, 15]}})" << "bad.json: stem.kernel: every kernel collapses";
    QTest::newRow("blocks collapse")
        << R"({"force_one_by_one": false, "stem": {"kernel": [11]}, "blocks": {"types": ["conv"], "conv-attention": null, "conv": {"kernel": [3]}}})"
        << "bad.json: blocks.conv.kernel: no sequence of blocks fits";
    QTest::newRow("max params impossible") << R"({"constraints": {"max_params": 10}})"
                                           << "bad.json: constraints.max_params: no spec of the space";
    QTest::newRow("max bops impossible") << R"({"constraints": {"max_bops": 1000}})"
                                         << "bad.json: constraints.max_bops: no spec of the space";
    QTest::newRow("fpga empties a list") << R"({"constraints": {"fpga_friendly": true}, "head": {"act": ["gelu"]}})"
                                         << "bad.json: constraints.fpga_friendly: removes every choice of head.act";
    QTest::newRow("bad slots") << R"({"blocks": {"slots": -1}})" << "bad.json: blocks.slots: must be an integer";
}

void TestSearchSpace::badSpace()
{
    QFETCH(QString, patch);
    QFETCH(QString, expected);
    std::ifstream in(resourceSpace("nac"));
    json j = json::parse(in);
    j.merge_patch(json::parse(patch.toStdString()));
    const QString msg = inputErrorMessage([&] { SearchSpace::fromJson(j, "bad.json"); });
    QVERIFY2(threwInputError(msg), qPrintable(msg));
    QVERIFY2(msg.startsWith(expected), qPrintable(msg));

    // The same through a file.
    QTemporaryDir dir;
    const std::string path = dir.filePath("bad.json").toStdString();
    std::ofstream(path) << j.dump();
    const QString fileMsg = inputErrorMessage([&] { SearchSpace::load(path); });
    QVERIFY2(fileMsg.startsWith(QString::fromStdString(path) + expected.mid(8)), qPrintable(fileMsg));
}

void TestSearchSpace::fpgaFriendly()
{
    std::ifstream in(resourceSpace("nac"));
    json j = json::parse(in);
    j["constraints"]["fpga_friendly"] = true;
    const SearchSpace space = SearchSpace::fromJson(j, "fpga");
    const SpaceDefinition &e = space.effective();
    QCOMPARE(e.blockTypes, (std::vector<BlockType>{BlockType::Conv, BlockType::None}));
    QCOMPARE(e.convLayer.norms, (std::vector<Norm>{Norm::None, Norm::Batch}));
    QCOMPARE(e.convLayer.acts, (std::vector<Activation>{Activation::None, Activation::ReLU, Activation::LeakyReLU}));
    QCOMPARE(e.headLayer.norms.size(), std::size_t(3)); // LayerNorm over features stays
    QCOMPARE(e.headLayer.acts.size(), std::size_t(3));
    // Independent count: conv layers 6 x 2 x 3 = 36 per effective kernel, no attention,
    // head (5 x 3 x 3)^3.
    std::function<unsigned __int128(int, int)> blocks = [&](int left, int size) -> unsigned __int128 {
        unsigned __int128 n = 1;
        if (left == 0)
            return n;
        auto kernels = [](int s) { return s >= 3 ? std::vector<int>{1, 3} : std::vector<int>{1}; };
        for (int k1 : kernels(size))
            for (int k2 : kernels(size - k1 + 1))
                n += 36 * 36 * blocks(left - 1, size - k1 + 1 - k2 + 1);
        return n;
    };
    const unsigned __int128 expected = (unsigned __int128)4 * blocks(3, 9) * (45 * 45 * 45);
    QCOMPARE(QString::fromStdString(space.structuralCount()), QString::fromStdString(u128String(expected)));
    SearchRandom rng(3);
    for (int i = 0; i < 300; ++i) {
        const ArchSpec s = space.sample(rng);
        for (const auto &b : s.blocks) {
            QVERIFY(b.type != BlockType::ConvAttention);
            for (const auto &l : b.layers)
                QVERIFY(l.norm != Norm::Layer && l.act != Activation::GELU);
        }
        for (const auto &h : s.head)
            QVERIFY(h.act != Activation::GELU);
    }
    // A spec with GELU is outside the FPGA-friendly space (it is inside the plain one).
    ArchProblem problem(space);
    const ArchSpec nac = problem.fitToSlots(builtinArch("nac"));
    std::string why;
    QVERIFY(!space.contains(nac, &why));
    QVERIFY2(why.find("gelu is not an allowed value") != std::string::npos, why.c_str());
}

void TestSearchSpace::jsonRoundTrip()
{
    for (const char *name : {"nac", "wide"}) {
        const SearchSpace a = SearchSpace::load(resourceSpace(name));
        const SearchSpace b = SearchSpace::fromJson(a.toJson(), "round trip");
        QCOMPARE(QString::fromStdString(b.toJson().dump()), QString::fromStdString(a.toJson().dump()));
        QCOMPARE(b.structuralCount(), a.structuralCount());
    }
}

void TestSearchSpace::sampleWithinConstraints()
{
    std::ifstream in(resourceSpace("nac"));
    json j = json::parse(in);
    // Median standard BOPs of unconstrained samples as the limit: about half are redrawn.
    const SearchSpace open = SearchSpace::fromJson(j, "nac");
    SearchRandom rng(11);
    std::vector<double> bops;
    for (int i = 0; i < 400; ++i)
        bops.push_back(computeCost(open.sample(rng)).bops);
    std::sort(bops.begin(), bops.end());
    const double limit = bops[bops.size() / 2];
    j["constraints"]["max_bops"] = limit;
    const SearchSpace space = SearchSpace::fromJson(j, "nac");
    SearchRandom r1(5), r2(5);
    std::set<std::string> keys;
    for (int i = 0; i < 1000; ++i) {
        const ArchSpec s = space.sample(r1);
        QVERIFY(computeCost(s).bops <= limit);
        QVERIFY(space.contains(s));
        QCOMPARE(int(s.blocks.size()), 3);
        QCOMPARE(s.canonicalHash(), space.sample(r2).canonicalHash()); // deterministic
        keys.insert(s.canonicalHash());
    }
    QVERIFY(keys.size() > 990);
    const SpaceSize sz = space.size(20000, 1000);
    QVERIFY(!sz.exact);
    QVERIFY2(sz.feasibleFraction > 0.35 && sz.feasibleFraction < 0.65, qPrintable(QString::number(sz.feasibleFraction)));
}

void TestSearchSpace::crossoverTakesWholeBlocks()
{
    const SearchSpace space = SearchSpace::load(resourceSpace("nac"));
    SearchRandom rng(21);
    int layerMixes = 0;
    for (int i = 0; i < 2000; ++i) {
        const ArchSpec a = space.sample(rng), b = space.sample(rng);
        const ArchSpec c = space.crossover(a, b, rng);
        QVERIFY((c.stem.channels == a.stem.channels && c.stem.kernel == a.stem.kernel)
                || (c.stem.channels == b.stem.channels && c.stem.kernel == b.stem.kernel));
        for (std::size_t s = 0; s < 3; ++s) {
            const BlockSpec &x = c.blocks[s];
            auto same = [](const BlockSpec &p, const BlockSpec &q) {
                ArchSpec u, v;
                u.stem = v.stem = {4, 1, Norm::None, Activation::None};
                u.blocks = {p};
                v.blocks = {q};
                return u.toJson() == v.toJson();
            };
            if (same(x, a.blocks[s]) || same(x, b.blocks[s]))
                continue;
            // Otherwise a layer-by-layer mix of two conv blocks of the same length.
            QVERIFY(a.blocks[s].type == BlockType::Conv && b.blocks[s].type == BlockType::Conv);
            QCOMPARE(x.layers.size(), a.blocks[s].layers.size());
            for (std::size_t k = 0; k < x.layers.size(); ++k) {
                ArchSpec u, v, w;
                u.stem = x.layers[k];
                v.stem = a.blocks[s].layers[k];
                w.stem = b.blocks[s].layers[k];
                QVERIFY(u.toJson() == v.toJson() || u.toJson() == w.toJson());
            }
            ++layerMixes;
        }
    }
    QVERIFY(layerMixes > 100);
}

void TestSearchSpace::variationProperty()
{
    std::ifstream in(resourceSpace("nac"));
    json j = json::parse(in);
    j["constraints"]["max_bops"] = 2.0e8;
    const SearchSpace space = SearchSpace::fromJson(j, "nac");
    ArchProblem problem(space);
    // Mutation alone: at least one gene changes, and a changed block type re-samples the block
    // from that type's lists.
    SearchRandom rng(99);
    int typeChanges = 0;
    for (int i = 0; i < 3000; ++i) {
        const ArchSpec parent = space.sample(rng);
        ArchSpec child = parent;
        space.mutate(child, rng);
        QVERIFY(child.toJson() != parent.toJson());
        for (std::size_t s = 0; s < 3; ++s) {
            if (child.blocks[s].type == parent.blocks[s].type)
                continue;
            ++typeChanges;
            const BlockSpec &b = child.blocks[s];
            if (b.type == BlockType::Conv)
                QCOMPARE(b.layers.size(), std::size_t(2));
            else if (b.type == BlockType::ConvAttention)
                QVERIFY(b.attentionChannels >= 1 && b.attentionChannels <= 32 && b.layers.empty());
            else
                QVERIFY(b.layers.empty());
        }
    }
    QVERIFY(typeChanges > 100);

    // Random parent pairs within the constraint: crossover + mutation, redrawn while outside the
    // space (as NSGA-II does), always ends with a valid child in a few attempts.
    std::set<std::string> children;
    int firstTry = 0, attemptsMax = 0;
    for (int i = 0; i < 2000; ++i) {
        const ArchSpec a = space.sample(rng), b = space.sample(rng);
        int attempts = 0;
        ArchSpec child;
        do {
            child = problem.crossover(a, b, rng);
            problem.mutate(child, rng);
            ++attempts;
        } while (!problem.valid(child) && attempts < 200);
        QVERIFY(problem.valid(child));
        QVERIFY(computeCost(child).bops <= 2.0e8);
        firstTry += attempts == 1;
        attemptsMax = std::max(attemptsMax, attempts);
        children.insert(problem.key(child));
    }
    qInfo("variation: %d of 2000 children valid at the first attempt, at most %d attempts, %zu distinct",
          firstTry, attemptsMax, children.size());
    QVERIFY(firstTry > 1000);
    QVERIFY(children.size() > 1900);

    // Through NSGA-II: thousands of children bred from random parents, all valid, within the
    // BOPs limit, and distinct from each other and from a "seen" set given by the driver.
    std::set<std::string> seen;
    SearchRandom pre(7);
    for (int i = 0; i < 200; ++i)
        seen.insert(space.sample(pre).canonicalHash());
    Nsga2Options o;
    o.populationSize = 40;
    o.seed = 4;
    Nsga2<ArchSpec> opt(problem, o, [&](const std::string &k) { return seen.count(k) > 0; });
    QCOMPARE(opt.seed({builtinArch("nac"), builtinArch("braggnn")}, false), std::size_t(2));
    std::set<std::string> handed;
    int n = 0;
    while (n < 4000) {
        const auto batch = opt.ask(7);
        QVERIFY(!batch.empty());
        for (const auto &g : batch) {
            const std::string k = g.canonicalHash();
            QVERIFY(!seen.count(k));
            QVERIFY(handed.insert(k).second);
            if (n >= 2) { // the two seeds are outside the space / the constraint
                std::string why;
                QVERIFY2(space.contains(g, &why), why.c_str());
                QVERIFY(computeCost(g).bops <= 2.0e8);
            }
            const Cost c = computeCost(g);
            opt.tell(g, {double(c.params), std::log10(c.bops)});
            ++n;
        }
    }
    QVERIFY(opt.generation() >= 90);
}

QTEST_GUILESS_MAIN(TestSearchSpace)
#include "tst_searchspace.moc"
