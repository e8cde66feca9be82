#include "core/compress/fixedengine.h"
#include "core/compress/intrefops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BRAGGNAC_FE_X86 1
#endif

#include "core/common/error.h"
#include "core/common/parallel.h"

namespace braggnac::core {

namespace {

using intref_detail::alignTo;
using intref_detail::i128;
constexpr int kLanes = 16;        // patches per block (one per int32 lane)
constexpr int kWordU16 = 2 * kLanes; // uint16 values per word (16 lanes x channel pair)

/// FixedFormat::requantise(raw, fracIn) for |raw| < 2^62, in int64 (same result).
inline std::int64_t requant64(std::int64_t raw, int fracIn, const FixedFormat &out)
{
    const int shift = fracIn - out.fraction();
    const std::int64_t mx = out.maxRaw(), mn = out.minRaw();
    if (shift > 0) {
        const int k = shift > 63 ? 63 : shift, k1 = shift - 1 > 63 ? 63 : shift - 1;
        raw = out.rounding == Rounding::RoundHalfUp ? (raw >> k) + ((raw >> k1) & 1) : raw >> k;
    } else if (shift < 0) {
        const int up = -shift;
        if (out.overflow == Overflow::Saturate) {
            if (up >= 62)
                return raw > 0 ? mx : raw < 0 ? mn : 0;
            const std::int64_t d = std::int64_t(1) << up;
            if (raw > mx / d)
                return mx;
            if (raw < -((-mn) / d))
                return mn;
            return raw * d;
        }
        if (up >= out.width)
            return 0;
        raw = std::int64_t(std::uint64_t(raw) << up);
    }
    if (out.overflow == Overflow::Saturate)
        return raw > mx ? mx : raw < mn ? mn : raw;
    const int sh = 64 - out.width;
    return std::int64_t(std::uint64_t(raw) << sh) >> sh;
}

// ---- compiled steps ---------------------------------------------------------------------------

/// FixedFormat::requantise(v, fracIn) for int32 v, in int32 lanes: shift = fracIn - F_out;
/// down: floor(v / 2^s) (+ bit s-1 of v for round-half-up, which is floor(v / 2^s + 1/2));
/// up (saturating): v > upHi -> max, v < upLo -> min, else v << -s; then the overflow step.
struct Requant {
    int shift = 0;
    bool round = false;
    bool saturate = true;
    int width = 16;
    std::int32_t maxRaw = 0, minRaw = 0, upHi = 0, upLo = 0;
    /// Round-half-up as (v + 2^(s-1)) >> s: when |v| <= bound and bound + 2^(s-1) < 2^31 the
    /// addition cannot wrap and equals the bit formula (floor(v / 2^s + 1/2) either way).
    bool addRound = false;
};

/// bound: the largest |v| the op can produce (< 0: unknown, e.g. a wrapping accumulator).
Requant makeRequant(int fracIn, const FixedFormat &out, i128 bound = -1)
{
    Requant r;
    r.shift = fracIn - out.fraction();
    r.round = out.rounding == Rounding::RoundHalfUp;
    r.saturate = out.overflow == Overflow::Saturate;
    r.width = out.width;
    r.maxRaw = std::int32_t(out.maxRaw());
    r.minRaw = std::int32_t(out.minRaw());
    r.addRound = r.round && r.shift > 0 && r.shift <= 30 && bound >= 0
        && bound + (i128(1) << (r.shift - 1)) < (i128(1) << 31);
    if (r.shift < 0) {
        const int up = -r.shift;
        if (up >= 40) {
            r.upHi = 0;
            r.upLo = 0;
        } else {
            const std::int64_t d = std::int64_t(1) << up;
            r.upHi = std::int32_t(out.maxRaw() / d); // floor (max >= 0)
            const std::int64_t lo = out.minRaw();    // ceil(lo / d) for lo < 0
            r.upLo = std::int32_t(-((-lo) / d));
        }
    }
    return r;
}

struct DotStep {
    int outC = 0, outP = 0;              // output channels, output positions (H * W)
    std::vector<std::int32_t> outIndex;  // per full-width position oy * Win + ox: oy * Wo + ox, or -1 (ox >= Wo)
    std::vector<std::int32_t> tapBegin;  // per output channel: first tap (outC + 1 entries)
    std::vector<std::int32_t> tapOff;    // word offset of the tap's input pair from the position
    std::vector<std::uint32_t> tapW;     // the two int16 weights of the pair (low: even channel)
    std::vector<std::int32_t> bias;      // aligned to the product fraction bits (mod 2^32)
    int accWrap = 0;                     // 1..31: wrap the sum to that many bits
    Requant rq;
    std::int64_t nonZero = 0;            // non-zero weights (not pairs) per output position set
    std::int64_t pairs = 0, densePairs = 0;
};

/// The input quantisation (FixedFormat::quantise of a value in [0, 1]) in float: valid when the
/// result fits int32 before the overflow step (saturate, or F <= 30).
struct InputStep {
    int area = 0;
    float scale = 1; // 2^F
    bool round = true, saturate = true;
    int width = 16;
    std::int32_t minRaw = 0, maxRaw = 0;
};

inline std::int32_t inputRaw(const InputStep &s, float q)
{
    const float x = q * s.scale;
    float f = std::floor(x);
    if (s.round && x - f >= 0.5f)
        f += 1;
    if (s.saturate)
        return f > float(s.maxRaw) ? s.maxRaw : f < float(s.minRaw) ? s.minRaw : std::int32_t(f);
    const std::uint32_t u = std::uint32_t(std::int64_t(f)) << (32 - s.width);
    return std::int32_t(u) >> (32 - s.width);
}

enum class EltKind { Relu, Leaky, Gelu, Add };

struct EltStep {
    EltKind kind = EltKind::Relu;
    std::size_t words = 0;
    Requant rq;
    int slopeShift = 0;
    std::int32_t slope = 0;
    std::vector<std::int32_t> table;
    std::int32_t tableLo = 0;
    int shiftA = 0, shiftB = 0;
};

} // namespace

// The kernels, once per instruction set.
namespace fe_portable {
#define FE_ISA 0
#include "core/compress/fixedengine.inc"
#undef FE_ISA
} // namespace fe_portable

#ifdef BRAGGNAC_FE_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace fe_avx2 {
#define FE_ISA 1
#include "core/compress/fixedengine.inc"
#undef FE_ISA
} // namespace fe_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")
// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsics as uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace fe_avx512 {
#define FE_ISA 2
#include "core/compress/fixedengine.inc"
#undef FE_ISA
} // namespace fe_avx512
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace {

struct Kernels {
    void (*dot)(const DotStep &, const std::uint16_t *, std::uint16_t *);
    void (*elt)(const EltStep &, const std::uint16_t *, const std::uint16_t *, std::uint16_t *);
    void (*input)(const InputStep &, const float *, std::int32_t *);
};

Kernels kernelsFor(FixedEngine::Isa isa)
{
    switch (isa) {
#ifdef BRAGGNAC_FE_X86
    case FixedEngine::Isa::Avx512Vnni: return {&fe_avx512::runDot, &fe_avx512::runElt, &fe_avx512::inputPatch};
    case FixedEngine::Isa::Avx2: return {&fe_avx2::runDot, &fe_avx2::runElt, &fe_avx2::inputPatch};
#endif
    default: return {&fe_portable::runDot, &fe_portable::runElt, &fe_portable::inputPatch};
    }
}

/// A tensor in a block's workspace: C channels of P positions, stored as ceil(C / 2) * P words.
struct TensorInfo {
    std::int64_t C = 1, P = 1, H = 1, W = 1;
    std::size_t offset = 0; // in words
    std::size_t words() const { return std::size_t((C + 1) / 2 * P); }
};

TensorInfo shapeInfo(const std::vector<std::int64_t> &shape)
{
    TensorInfo t;
    t.C = shape.empty() ? 1 : shape[0];
    t.H = shape.size() > 1 ? shape[1] : 1;
    t.W = shape.size() > 2 ? shape[2] : 1;
    t.P = t.H * t.W;
    return t;
}

enum class StepType { Dot, Elt, Lane, Alias };

struct Step {
    StepType type = StepType::Alias;
    int op = 0;          // plan index
    int index = 0;       // into dots / elts
    int in0 = 0, in1 = -1, out = 0; // tensor ids
};

int bitsOf(std::int64_t v) // bits of |v| (0 for 0)
{
    std::uint64_t a = std::uint64_t(v < 0 ? -v : v);
    int b = 0;
    while (a) {
        ++b;
        a >>= 1;
    }
    return b;
}

} // namespace

struct FixedEngine::Impl {
    IntegerReference ref;
    Isa isa = Isa::Portable;
    Kernels kernels{};
    bool vectorised = false;
    std::string reason;
    std::vector<TensorInfo> tensors; // 0: the network input; then per op (aliases share)
    std::vector<int> opTensor;       // per plan op: its output tensor id
    std::vector<Step> steps;
    std::vector<DotStep> dots;
    InputStep input;
    bool fastInput = false; // input quantisation in float (InputStep)
    bool pixelPairs = false; // input word p = (pixel p, pixel p + 1): see compile()
    std::vector<EltStep> elts;
    std::vector<std::string> described;
    std::size_t wordsPerBlock = 0;
    std::int64_t nonZeroMacs = 0;
    // Lane-by-lane ops: the reference's tables, slopes, eps (per op).
    std::vector<std::vector<std::int64_t>> tables;
    std::vector<std::int64_t> slopes, epsRaw;

    explicit Impl(IntegerReference r) : ref(std::move(r)) {}

    bool compile();
    void runBlock(const float *patches, std::size_t count, std::vector<std::uint16_t> &ws, std::int64_t *out) const;
    void runLane(const Step &s, std::uint16_t *ws, unsigned laneMask = 0xffffu) const;
    void runLayerNorm(const Step &s, std::uint16_t *ws) const;
    std::vector<char> fastNorm; // per op: LayerNorm products fit int64 (runLayerNorm)
    std::vector<int> biasBits;  // per LayerNorm op: bits of its largest |bias raw|
};

namespace {

bool isaSupported(FixedEngine::Isa isa)
{
    switch (isa) {
    case FixedEngine::Isa::Portable: return true;
#ifdef BRAGGNAC_FE_X86
    case FixedEngine::Isa::Avx2: return __builtin_cpu_supports("avx2");
    case FixedEngine::Isa::Avx512Vnni:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512vnni");
#endif
    default: return false;
    }
}

} // namespace

bool FixedEngine::Impl::compile()
{
    const LayerPlan &plan = ref.plan();
    const QuantSpec &spec = ref.spec();
    const std::size_t nops = plan.ops.size();
    auto refuse = [&](const std::string &why) {
        reason = why;
        return false;
    };
    if (spec.input.width > 16)
        return refuse("the input format " + spec.input.hlsType() + " is wider than 16 bits");
    for (std::size_t i = 0; i < nops; ++i) {
        if (!opHasFormats(plan, i))
            continue;
        const PlanOp &op = plan.ops[i];
        const OpQuant &q = spec.op(op.name);
        if (q.output.width > 16)
            return refuse(op.name + ": output format " + q.output.hlsType() + " is wider than 16 bits");
        if ((op.kind == OpKind::Conv || op.kind == OpKind::Linear) && q.weight.width > 16)
            return refuse(op.name + ": weight format " + q.weight.hlsType() + " is wider than 16 bits");
    }

    // Tensors: 0 = input {1, S, S}; each op with its own output gets one, aliases share.
    TensorInfo in = shapeInfo({1, plan.spec.inputSize, plan.spec.inputSize});
    tensors.push_back(in);
    // A 1-channel input read only by a Conv (the stem) is stored as pixel pairs, word p =
    // (pixel p, pixel p + 1), so the conv pairs horizontally adjacent taps instead of padding
    // every pair with a zero channel.
    pixelPairs = true;
    for (std::size_t i = 0; i < nops; ++i)
        for (std::size_t k = 0; k < plan.ops[i].inputs.size(); ++k)
            if (plan.ops[i].inputs[k] < 0 && (i != 0 || k != 0 || plan.ops[i].kind != OpKind::Conv))
                pixelPairs = false;
    opTensor.assign(nops, 0);
    auto tensorOfInput = [&](int index) { return index < 0 ? 0 : opTensor[std::size_t(index)]; };
    tables.resize(nops);
    fastNorm.assign(nops, 0);
    biasBits.assign(nops, 0);
    slopes.assign(nops, 0);
    epsRaw.assign(nops, 0);
    for (std::size_t i = 0; i < nops; ++i) {
        const PlanOp &op = plan.ops[i];
        Step st;
        st.op = int(i);
        st.in0 = tensorOfInput(op.inputs[0]);
        st.in1 = op.inputs.size() > 1 ? tensorOfInput(op.inputs[1]) : -1;
        if (op.kind == OpKind::BatchNorm || op.kind == OpKind::Flatten) {
            st.type = StepType::Alias;
            opTensor[i] = st.in0;
            st.out = st.in0;
            steps.push_back(st);
            described.push_back(op.name + ": alias of its input ("
                                + (op.kind == OpKind::BatchNorm ? "folded into the preceding op" : "flatten") + ")");
            continue;
        }
        TensorInfo t = shapeInfo(op.outShape);
        opTensor[i] = int(tensors.size());
        st.out = opTensor[i];
        tensors.push_back(t);
        const FixedFormat &fx = ref.format(op.inputs[0]);
        const OpQuant &q = spec.op(op.name);
        const FixedFormat &out = q.output;
        if (op.kind == OpKind::Conv || op.kind == OpKind::Linear) {
            const TensorInfo &ti = tensors[std::size_t(st.in0)];
            DotStep d;
            const std::int64_t cin = ti.C;
            const std::int64_t kh = op.kind == OpKind::Conv ? op.kernel : ti.H;
            const std::int64_t kw = op.kind == OpKind::Conv ? op.kernel : ti.W;
            const std::int64_t ho = op.kind == OpKind::Conv ? op.outShape[1] : 1;
            const std::int64_t wo = op.kind == OpKind::Conv ? op.outShape[2] : 1;
            const std::int64_t cout = op.outShape[0];
            if (cin * kh * kw != (op.kind == OpKind::Conv ? op.inChannels() * op.kernel * op.kernel : op.inChannels()))
                throw Error("fixed engine: " + op.name + ": input shape does not match the plan");
            d.outC = int(cout);
            d.outP = int(ho * wo);
            // Full-width grid up to the last valid position: every position of a block of the
            // grid reads inside the input tensor.
            for (std::int64_t q = 0; q < (ho - 1) * ti.W + wo; ++q)
                d.outIndex.push_back(q % ti.W < wo ? std::int32_t((q / ti.W) * wo + q % ti.W) : -1);
            const auto &w = ref.weightsRaw(op.name);
            const auto &b = ref.biasRaw(op.name);
            const int fp = fx.fraction() + q.weight.fraction();
            const int acc = q.accumulator;
            d.accWrap = acc >= 1 && acc <= 31 ? acc : 0;
            const bool modular = acc >= 1 && acc <= 32;
            d.tapBegin.push_back(0);
            i128 maxBound = 0;
            for (std::int64_t co = 0; co < cout; ++co) {
                const i128 bal = alignTo(b[std::size_t(co)], q.bias.fraction(), fp, q.bias.rounding);
                i128 bound = bal < 0 ? -bal : bal;
                const bool pix = st.in0 == 0 && pixelPairs; // pairs (kx, kx + 1) of the one channel
                for (std::int64_t cp = 0; 2 * cp < cin; ++cp)
                    for (std::int64_t ky = 0; ky < kh; ++ky)
                        for (std::int64_t kx = 0; kx < kw; kx += pix ? 2 : 1) {
                            auto wAt = [&](std::int64_t ci) -> std::int64_t {
                                return ci < cin ? w[std::size_t(((co * cin + ci) * kh + ky) * kw + kx)] : 0;
                            };
                            const std::int64_t wl = wAt(2 * cp);
                            const std::int64_t wh = pix ? (kx + 1 < kw ? w[std::size_t((co * kh + ky) * kw + kx + 1)] : 0)
                                                        : wAt(2 * cp + 1);
                            ++d.densePairs;
                            if (wl == 0 && wh == 0)
                                continue; // pruned (or quantised to zero): skipped
                            d.tapOff.push_back(std::int32_t(cp * ti.P + ky * ti.W + kx));
                            d.tapW.push_back(std::uint32_t(std::uint16_t(wl)) | (std::uint32_t(std::uint16_t(wh)) << 16));
                            d.nonZero += (wl != 0) + (wh != 0);
                            bound += i128((wl < 0 ? -wl : wl) + (wh < 0 ? -wh : wh)) << (fx.width - 1);
                        }
                if (!modular && bound > i128(std::numeric_limits<std::int32_t>::max()))
                    return refuse(op.name + ": an exact sum can reach " + std::to_string(double(bound))
                                  + " (more than 31 bits) with accumulator " + std::to_string(acc)
                                  + "; the int32 kernels would not be exact");
                maxBound = std::max(maxBound, bound);
                d.bias.push_back(std::int32_t(std::uint32_t(std::uint64_t(bal))));
                d.tapBegin.push_back(std::int32_t(d.tapW.size()));
            }
            d.pairs = std::int64_t(d.tapW.size());
            d.rq = makeRequant(fp, out, d.accWrap || modular ? i128(-1) : maxBound);
            nonZeroMacs += d.nonZero * d.outP;
            described.push_back(op.name + ": int16-pair dot" + (st.in0 == 0 && pixelPairs ? " over pixel pairs" : "")
                                + " (" + std::to_string(d.pairs) + " of "
                                + std::to_string(d.densePairs) + " weight pairs non-zero, "
                                + std::to_string(d.nonZero * d.outP) + " MACs)");
            st.type = StepType::Dot;
            st.index = int(dots.size());
            dots.push_back(std::move(d));
            steps.push_back(st);
            continue;
        }
        // Elementwise ops in int32 lanes when their intermediates fit; else lane by lane.
        EltStep e;
        e.words = t.words();
        bool elt = false;
        if (op.kind == OpKind::Activation && op.act == Activation::ReLU) {
            e.kind = EltKind::Relu;
            e.rq = makeRequant(fx.fraction(), out, i128(1) << (fx.width - 1));
            elt = true;
        } else if (op.kind == OpKind::Activation && op.act == Activation::LeakyReLU) {
            const FixedFormat &sf = q.internal.at("slope");
            const std::int64_t slope = sf.quantise(op.slope);
            slopes[i] = slope;
            const int fs = sf.fraction();
            if (fs >= 0 && fx.width - 1 + fs <= 30 && fx.width - 1 + bitsOf(slope) <= 30) {
                e.kind = EltKind::Leaky;
                e.slopeShift = fs;
                e.slope = std::int32_t(slope);
                e.rq = makeRequant(fx.fraction() + fs, out);
                elt = true;
            }
        } else if (op.kind == OpKind::Activation) { // GELU
            const auto t64 = geluTable(fx, out);
            tables[i] = t64;
            e.kind = EltKind::Gelu;
            e.table.assign(t64.begin(), t64.end());
            e.tableLo = std::int32_t(fx.minRaw());
            elt = true;
        } else if (op.kind == OpKind::Add) {
            const FixedFormat &f2 = ref.format(op.inputs[1]);
            const int fp = std::max(fx.fraction(), f2.fraction());
            e.shiftA = fp - fx.fraction();
            e.shiftB = fp - f2.fraction();
            if (std::max(fx.width + e.shiftA, f2.width + e.shiftB) <= 30) {
                e.kind = EltKind::Add;
                e.rq = makeRequant(fp, out);
                elt = true;
            }
        } else if (op.kind == OpKind::Softmax) {
            tables[i] = softmaxExpTable(fx, q.internal.at("exp"));
        } else if (op.kind == OpKind::LayerNorm) {
            tables[i] = rstdTable(q.internal.at("rstd"));
            epsRaw[i] = layerNormEpsRaw(fx, op.eps);
            // (x - mean) has at most 17 bits, the table value W_rstd, gamma W_weight: with the
            // aligned beta below 2^61 the sum stays below 2^62 (runLayerNorm checks per lane).
            fastNorm[i] = 17 + q.internal.at("rstd").width + q.weight.width <= 60;
            std::int64_t mb = 0;
            for (auto v : ref.biasRaw(op.name))
                mb = std::max(mb, v < 0 ? -v : v);
            biasBits[i] = bitsOf(mb);
        }
        if (elt) {
            st.type = StepType::Elt;
            st.index = int(elts.size());
            elts.push_back(std::move(e));
            described.push_back(op.name + ": int32-lane elementwise " + opKindName(op.kind));
        } else if (op.kind == OpKind::LayerNorm && fastNorm[i]) {
            st.type = StepType::Lane;
            described.push_back(op.name + ": 16 lanes in int64 (layernorm; a lane whose beta alignment could "
                                          "overflow runs the integer reference's 128-bit arithmetic)");
        } else {
            st.type = StepType::Lane;
            described.push_back(op.name + ": lane by lane with the integer reference's arithmetic ("
                                + opKindName(op.kind) + ")");
        }
        steps.push_back(st);
    }
    const FixedFormat &fin = spec.input;
    input.area = int(in.P);
    input.scale = std::ldexp(1.0f, fin.fraction());
    input.round = fin.rounding == Rounding::RoundHalfUp;
    input.saturate = fin.overflow == Overflow::Saturate;
    input.width = fin.width;
    input.minRaw = std::int32_t(fin.minRaw());
    input.maxRaw = std::int32_t(fin.maxRaw());
    fastInput = input.saturate || fin.fraction() <= 30;
    std::size_t off = 0;
    for (auto &t : tensors) {
        t.offset = off;
        off += t.words();
    }
    wordsPerBlock = off;
    return true;
}

void FixedEngine::Impl::runLane(const Step &s, std::uint16_t *ws, unsigned laneMask) const
{
    const PlanOp &op = ref.plan().ops[std::size_t(s.op)];
    const QuantSpec &spec = ref.spec();
    const TensorInfo &ti = tensors[std::size_t(s.in0)];
    const TensorInfo &to = tensors[std::size_t(s.out)];
    const TensorInfo *ti2 = s.in1 >= 0 ? &tensors[std::size_t(s.in1)] : nullptr;
    auto unpack = [&](const TensorInfo &t, int lane, std::vector<std::int64_t> &v) {
        v.resize(std::size_t(t.C * t.P));
        for (std::int64_t c = 0; c < t.C; ++c)
            for (std::int64_t p = 0; p < t.P; ++p)
                v[std::size_t(c * t.P + p)] =
                    std::int16_t(ws[(t.offset + std::size_t((c >> 1) * t.P + p)) * kWordU16 + std::size_t(2 * lane + (c & 1))]);
    };
    std::vector<std::int64_t> xv, x2v, y;
    const FixedFormat &out = *(&spec.op(op.name).output);
    const FixedFormat &fx = ref.format(op.inputs[0]);
    const int acc = spec.op(op.name).accumulator;
    for (int lane = 0; lane < kLanes; ++lane) {
        if (!(laneMask >> lane & 1u))
            continue;
        unpack(ti, lane, xv);
        if (ti2)
            unpack(*ti2, lane, x2v);
        const std::int64_t *x = xv.data();
        y.assign(std::size_t(to.C * to.P), 0);
        switch (op.kind) {
        case OpKind::Activation: {
            const std::size_t m = y.size();
            if (op.act == Activation::ReLU)
                intref_detail::reluOp(x, y.data(), m, fx, out);
            else if (op.act == Activation::LeakyReLU)
                intref_detail::leakyReluOp(x, y.data(), m, fx, out, spec.ops.at(op.name).internal.at("slope").fraction(),
                                           slopes[std::size_t(s.op)]);
            else
                intref_detail::geluOp(x, y.data(), m, fx, tables[std::size_t(s.op)]);
            break;
        }
        case OpKind::LayerNorm:
            intref_detail::layerNormOp(x, y.data(), op.outElements(), fx, spec.ops.at(op.name), tables[std::size_t(s.op)],
                                       epsRaw[std::size_t(s.op)], ref.weightsRaw(op.name), ref.biasRaw(op.name));
            break;
        case OpKind::MatMulQK:
            intref_detail::matMulQKOp(x, x2v.data(), y.data(), op.attentionChannels, op.outShape[0], fx,
                                      ref.format(op.inputs[1]), acc, out);
            break;
        case OpKind::Softmax:
            intref_detail::softmaxOp(x, y.data(), op.outShape[0], op.outShape[1], spec.ops.at(op.name),
                                     tables[std::size_t(s.op)]);
            break;
        case OpKind::MatMulSV:
            intref_detail::matMulSVOp(x, x2v.data(), y.data(), op.outShape[0], op.outShape[1] * op.outShape[2], fx,
                                      ref.format(op.inputs[1]), acc, out);
            break;
        case OpKind::Add:
            intref_detail::addOp(x, x2v.data(), y.data(), y.size(), fx, ref.format(op.inputs[1]), out);
            break;
        default: throw Error("fixed engine: op " + op.name + " has no lane-by-lane path");
        }
        for (std::int64_t c = 0; c < to.C; ++c)
            for (std::int64_t p = 0; p < to.P; ++p)
                ws[(to.offset + std::size_t((c >> 1) * to.P + p)) * kWordU16 + std::size_t(2 * lane + (c & 1))] =
                    std::uint16_t(std::uint64_t(y[std::size_t(c * to.P + p)]));
    }
}

void FixedEngine::Impl::runLayerNorm(const Step &s, std::uint16_t *ws) const
{
    // The reference's layer norm (exact sums; mean rounded half up; variance at 2F fraction
    // bits plus eps; 1/sqrt from the table by the variance's 12-bit mantissa and an even
    // exponent) for 16 lanes in int64: every intermediate is below 2^62 (fastNorm, and the
    // beta alignment checked per lane; a lane that fails runs runLane).
    const PlanOp &op = ref.plan().ops[std::size_t(s.op)];
    const OpQuant &q = ref.spec().ops.at(op.name);
    const FixedFormat &fx = ref.format(op.inputs[0]);
    const FixedFormat &rf = q.internal.at("rstd");
    const FixedFormat &out = q.output;
    const TensorInfo &ti = tensors[std::size_t(s.in0)];
    const TensorInfo &to = tensors[std::size_t(s.out)];
    const std::int64_t m = ti.C * ti.P;
    const int f = fx.fraction();
    const auto &g = ref.weightsRaw(op.name);
    const auto &b = ref.biasRaw(op.name);
    const auto &table = tables[std::size_t(s.op)];
    auto at = [&](const TensorInfo &t, std::int64_t c, std::int64_t p) {
        return (t.offset + std::size_t((c >> 1) * t.P + p)) * kWordU16 + std::size_t(c & 1);
    };
    std::int64_t sum[kLanes] = {}, sq[kLanes] = {}, mean[kLanes], t[kLanes];
    int fp[kLanes], bsh[kLanes];
    for (std::int64_t c = 0; c < ti.C; ++c)
        for (std::int64_t p = 0; p < ti.P; ++p) {
            const std::uint16_t *x = ws + at(ti, c, p);
            for (int l = 0; l < kLanes; ++l)
                sum[l] += std::int16_t(x[2 * l]);
        }
    // divRound(num, m) round-half-up = floor((2 num + m) / 2m), in int64 (|num| < 2^53 here).
    auto divRoundHalfUp = [](std::int64_t num, std::int64_t den) {
        const std::int64_t n2 = 2 * num + den, d2 = 2 * den;
        std::int64_t q = n2 / d2;
        if (n2 % d2 != 0 && n2 < 0)
            --q;
        return q;
    };
    for (int l = 0; l < kLanes; ++l)
        mean[l] = divRoundHalfUp(sum[l], m);
    for (std::int64_t c = 0; c < ti.C; ++c)
        for (std::int64_t p = 0; p < ti.P; ++p) {
            const std::uint16_t *x = ws + at(ti, c, p);
            for (int l = 0; l < kLanes; ++l) {
                const std::int64_t d = std::int64_t(std::int16_t(x[2 * l])) - mean[l];
                sq[l] += d * d;
            }
        }
    unsigned slow = 0;
    for (int l = 0; l < kLanes; ++l) {
        const intref_detail::RstdLookup r =
            intref_detail::rstdLookup(divRoundHalfUp(sq[l], m) + epsRaw[std::size_t(s.op)], table, f);
        t[l] = r.t;
        fp[l] = f + rf.fraction() + q.weight.fraction() + r.e;
        bsh[l] = fp[l] - q.bias.fraction(); // beta: << bsh, or rounded >> -bsh
        if ((bsh[l] >= 0 && biasBits[std::size_t(s.op)] + bsh[l] > 60) || bsh[l] < -62)
            slow |= 1u << l;
    }
    const bool rnd = q.bias.rounding == Rounding::RoundHalfUp;
    for (std::int64_t c = 0; c < ti.C; ++c)
        for (std::int64_t p = 0; p < ti.P; ++p) {
            const std::size_t j = std::size_t(c * ti.P + p);
            const std::uint16_t *x = ws + at(ti, c, p);
            std::uint16_t *y = ws + at(to, c, p);
            const std::int64_t gj = g[j], bj = b[j];
            for (int l = 0; l < kLanes; ++l) {
                if (slow >> l & 1u)
                    continue;
                const int sh = bsh[l];
                const std::int64_t bal = sh >= 0 ? bj * (std::int64_t(1) << sh)
                                                 : (bj + (rnd ? std::int64_t(1) << (-sh - 1) : 0)) >> -sh;
                const std::int64_t v = (std::int64_t(std::int16_t(x[2 * l])) - mean[l]) * t[l] * gj + bal;
                y[2 * l] = std::uint16_t(std::uint64_t(requant64(v, fp[l], out)));
            }
        }
    if (slow)
        runLane(s, ws, slow);
}

void FixedEngine::Impl::runBlock(const float *patches, std::size_t count, std::vector<std::uint16_t> &buf,
                                 std::int64_t *out) const
{
    const int s = ref.plan().spec.inputSize;
    const std::size_t area = std::size_t(s) * std::size_t(s);
    // The workspace, 64-byte aligned (a word is one cache line: no load splits across two).
    if (buf.size() != wordsPerBlock * kWordU16 + kWordU16)
        buf.assign(wordsPerBlock * kWordU16 + kWordU16, 0); // odd-channel pad halves stay 0 (or a harmless value)
    std::uint16_t *ws = buf.data() + ((64 - reinterpret_cast<std::uintptr_t>(buf.data()) % 64) % 64) / 2;
    std::fill(ws, ws + tensors[0].words() * kWordU16, std::uint16_t(0));
    // Input: normalised and quantised exactly as the reference; lanes past `count` stay 0 (a
    // constant patch normalises to 0 as well).
    if (fastInput) {
        std::int32_t raw[4096];
        std::vector<std::int32_t> big;
        std::int32_t *r = raw;
        if (area + 1 > 4096) {
            big.resize(area + 1);
            r = big.data();
        }
        for (std::size_t l = 0; l < count; ++l) {
            kernels.input(input, patches + l * area, r);
            if (pixelPairs) {
                r[area] = 0; // the pair partner of the last pixel
                for (std::size_t k = 0; k < area; ++k) {
                    const std::uint32_t word = (std::uint32_t(r[k]) & 0xffffu) | (std::uint32_t(r[k + 1]) << 16);
                    std::memcpy(ws + k * kWordU16 + 2 * l, &word, sizeof word);
                }
            } else {
                for (std::size_t k = 0; k < area; ++k)
                    ws[k * kWordU16 + 2 * l] = std::uint16_t(std::uint32_t(r[k]));
            }
        }
    } else {
        const auto norm = normalisePatchesCpu(patches, count, s);
        const FixedFormat &fin = ref.spec().input;
        for (std::size_t l = 0; l < count; ++l)
            for (std::size_t k = 0; k < area; ++k) {
                const auto v = std::uint16_t(std::uint64_t(fin.quantise(norm[l * area + k])));
                ws[k * kWordU16 + 2 * l] = v;
                if (pixelPairs && k > 0)
                    ws[(k - 1) * kWordU16 + 2 * l + 1] = v;
            }
    }
    for (const Step &st : steps) {
        switch (st.type) {
        case StepType::Alias: break;
        case StepType::Dot:
            kernels.dot(dots[std::size_t(st.index)], ws + tensors[std::size_t(st.in0)].offset * kWordU16,
                        ws + tensors[std::size_t(st.out)].offset * kWordU16);
            break;
        case StepType::Elt:
            kernels.elt(elts[std::size_t(st.index)], ws + tensors[std::size_t(st.in0)].offset * kWordU16,
                        st.in1 >= 0 ? ws + tensors[std::size_t(st.in1)].offset * kWordU16 : nullptr,
                        ws + tensors[std::size_t(st.out)].offset * kWordU16);
            break;
        case StepType::Lane:
            if (fastNorm[std::size_t(st.op)])
                runLayerNorm(st, ws);
            else
                runLane(st, ws);
            break;
        }
    }
    const TensorInfo &t = tensors[std::size_t(opTensor.back())];
    const std::uint16_t *o = ws + t.offset * kWordU16;
    for (std::size_t l = 0; l < count; ++l) {
        out[2 * l] = std::int16_t(o[2 * l]);
        out[2 * l + 1] = std::int16_t(o[2 * l + 1]);
    }
}

FixedEngine::FixedEngine(const LayerPlan &plan, const NamedTensors &weights, const QuantSpec &spec, Isa isa)
    : m_impl(std::make_unique<Impl>(IntegerReference(plan, weights, spec)))
{
    Impl &d = *m_impl;
    if (isa == Isa::Auto)
        isa = isaSupported(Isa::Avx512Vnni) ? Isa::Avx512Vnni : isaSupported(Isa::Avx2) ? Isa::Avx2 : Isa::Portable;
    if (!isaSupported(isa))
        throw Error(std::string("fixed engine: this CPU does not support ") + isaName(isa));
    d.isa = isa;
    d.kernels = kernelsFor(isa);
    const LayerPlan &p = d.ref.plan();
    if (p.output().outShape != std::vector<std::int64_t>{2})
        throw Error("fixed engine: the network output is not 2 values");
    d.vectorised = d.compile();
    if (!d.vectorised) {
        d.steps.clear();
        d.dots.clear();
        d.elts.clear();
        d.described.assign(1, "whole network through the integer reference: " + d.reason);
        d.nonZeroMacs = 0;
    }
}

FixedEngine::~FixedEngine() = default;
FixedEngine::FixedEngine(FixedEngine &&) noexcept = default;
FixedEngine &FixedEngine::operator=(FixedEngine &&) noexcept = default;

const IntegerReference &FixedEngine::reference() const { return m_impl->ref; }
FixedEngine::Isa FixedEngine::isa() const { return m_impl->isa; }
bool FixedEngine::vectorised() const { return m_impl->vectorised; }
std::string FixedEngine::fallbackReason() const { return m_impl->reason; }
std::vector<std::string> FixedEngine::describe() const { return m_impl->described; }
std::int64_t FixedEngine::nonZeroMacs() const { return m_impl->nonZeroMacs; }
bool FixedEngine::supported(Isa isa) { return isa == Isa::Auto || isaSupported(isa); }

const char *FixedEngine::isaName(Isa isa)
{
    switch (isa) {
    case Isa::Auto: return "auto";
    case Isa::Portable: return "portable";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512Vnni: return "avx512-vnni";
    }
    return "?";
}

std::vector<std::int64_t> FixedEngine::forwardRaw(const float *patches, std::size_t n, int threads) const
{
    const Impl &d = *m_impl;
    if (!d.vectorised)
        return d.ref.forwardRaw(patches, n, threads);
    const std::size_t area = std::size_t(d.ref.plan().spec.inputSize) * std::size_t(d.ref.plan().spec.inputSize);
    std::vector<std::int64_t> out(n * 2);
    const std::size_t blocks = (n + kLanes - 1) / kLanes;
    const int workers = resolveThreads(threads);
    std::vector<std::vector<std::uint16_t>> ws(std::size_t(std::max(1, workers)));
    parallelChunks(blocks, workers, 4, [&](std::size_t begin, std::size_t end, int worker) {
        auto &buf = ws[std::size_t(worker)];
        for (std::size_t b = begin; b < end; ++b) {
            const std::size_t first = b * kLanes, count = std::min<std::size_t>(kLanes, n - first);
            d.runBlock(patches + first * area, count, buf, out.data() + 2 * first);
        }
    });
    return out;
}

std::vector<double> FixedEngine::predict(const float *patches, std::size_t n, int threads) const
{
    const auto raw = forwardRaw(patches, n, threads);
    const FixedFormat &f = m_impl->ref.format(int(m_impl->ref.plan().ops.size()) - 1);
    const double s = m_impl->ref.plan().spec.inputSize;
    std::vector<double> out(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i)
        out[i] = f.toDouble(raw[i]) * s;
    return out;
}

} // namespace braggnac::core
