#include "core/hls/hlsexport.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/common/error.h"
#include "core/hls/hlsresources.h"

namespace braggnac::core {

namespace fs = std::filesystem;

namespace {

/// The exact decimal literal of raw * 2^-F (|raw| < 2^53): %.17g round-trips the double, and
/// the double is the value exactly, so ap_fixed's construction from it gives raw back.
std::string literal(std::int64_t raw, int fraction)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", std::ldexp(double(raw), -fraction));
    return buf;
}

std::string qMode(Rounding r) { return r == Rounding::RoundHalfUp ? "AP_RND" : "AP_TRN"; }

void writeFile(const fs::path &path, const std::string &text)
{
    fs::create_directories(path.parent_path());
    std::ofstream f(path, std::ios::binary);
    f << text;
    f.close();
    if (!f)
        throw Error(fileMessage(path.string(), "cannot write"));
}

bool isIdentifier(const std::string &s)
{
    if (s.empty() || !(std::isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (char c : s)
        if (!(std::isalnum((unsigned char)c) || c == '_'))
            return false;
    return true;
}

/// Accumulator width of Conv / Linear op i: the spec's, or exact (as intref's narrow rule + 1).
int accumulatorBits(const IntegerReference &ref, std::size_t i)
{
    const PlanOp &op = ref.plan().ops[i];
    const OpQuant &q = ref.spec().op(op.name);
    if (q.accumulator > 0)
        return q.accumulator;
    if (op.kind == OpKind::MatMulQK || op.kind == OpKind::MatMulSV) {
        const FixedFormat &a = ref.format(op.inputs[0]), &b = ref.format(op.inputs[1]);
        const std::int64_t fanIn = op.kind == OpKind::MatMulQK ? op.attentionChannels : op.inShape[1];
        return exactAccumulatorBits(a.width, b.width, fanIn) + 1;
    }
    const FixedFormat &in = ref.format(op.inputs[0]);
    const std::int64_t fanIn = op.kind == OpKind::Conv ? op.inChannels() * op.kernel * op.kernel : op.inChannels();
    const int fp = in.fraction() + q.weight.fraction();
    const int biasBits = q.bias.width + std::max(0, fp - q.bias.fraction());
    return std::max(exactAccumulatorBits(in.width, q.weight.width, fanIn), biasBits) + 2;
}

struct Generator {
    const IntegerReference &ref;
    const HlsOptions &opt;
    const LayerPlan &plan;
    std::vector<int> source; // per op: the op whose buffer holds its output (-1: the input)

    Generator(const IntegerReference &r, const HlsOptions &o) : ref(r), opt(o), plan(r.plan())
    {
        for (std::size_t i = 0; i < plan.ops.size(); ++i) {
            const PlanOp &op = plan.ops[i];
            if (op.kind == OpKind::BatchNorm || op.kind == OpKind::Flatten)
                source.push_back(op.inputs[0] < 0 ? -1 : source[std::size_t(op.inputs[0])]);
            else
                source.push_back(int(i));
        }
    }
    std::string buf(int op) const
    {
        const int s = op < 0 ? -1 : source[std::size_t(op)];
        if (s == int(plan.ops.size()) - 1)
            return "output";
        return s < 0 ? "input" : "layer" + std::to_string(s) + "_out";
    }
    std::string type(int op) const
    {
        const int s = op < 0 ? -1 : source[std::size_t(op)];
        return s < 0 ? "input_t" : "layer" + std::to_string(s) + "_t";
    }
    int lastSource() const { return source.back(); }

    std::string defines() const
    {
        std::ostringstream o;
        o << "// Every tensor's fixed-point type (BraggNAC quantisation spec"
          << (opt.defaultPrecision ? ": none in the model, default ap_fixed<16,6>" : "") << ").\n"
          << "#ifndef DEFINES_H_\n#define DEFINES_H_\n\n#include \"ap_fixed.h\"\n\n";
        const int s = plan.spec.inputSize;
        o << "#define N_INPUT " << s * s << "   // 1 x " << s << " x " << s << "\n";
        o << "#define N_OUTPUT " << plan.output().outElements() << "\n";
        for (std::size_t i = 0; i < plan.ops.size(); ++i)
            if (source[i] == int(i))
                o << "#define N_LAYER_" << i << " " << plan.ops[i].outElements() << "   // " << plan.ops[i].name << "\n";
        o << "\ntypedef " << ref.spec().input.hlsType() << " input_t;\n";
        for (std::size_t i = 0; i < plan.ops.size(); ++i) {
            if (source[i] != int(i))
                continue;
            const PlanOp &op = plan.ops[i];
            const OpQuant &q = ref.spec().op(op.name);
            const std::string n = "layer" + std::to_string(i);
            o << "// " << op.name << " (" << opKindName(op.kind) << ")\n";
            o << "typedef " << q.output.hlsType() << " " << n << "_t;\n";
            if (op.kind == OpKind::Conv || op.kind == OpKind::Linear) {
                const FixedFormat &in = ref.format(op.inputs[0]);
                const int fp = in.fraction() + q.weight.fraction();
                const int acc = accumulatorBits(ref, i);
                o << "typedef " << q.weight.hlsType() << " " << n << "_weight_t;\n";
                o << "typedef " << q.bias.hlsType() << " " << n << "_bias_t;\n";
                o << "typedef ap_fixed<" << acc << "," << acc - fp << "," << qMode(q.bias.rounding) << ",AP_WRAP> " << n
                  << "_accum_t;" << (q.accumulator > 0 ? "" : "   // exact: no sum can overflow it") << "\n";
            } else if (op.kind == OpKind::Activation && op.act == Activation::LeakyReLU) {
                o << "typedef " << q.internal.at("slope").hlsType() << " " << n << "_slope_t;\n";
            } else if (op.kind == OpKind::MatMulQK || op.kind == OpKind::MatMulSV) {
                const int fp = ref.format(op.inputs[0]).fraction() + ref.format(op.inputs[1]).fraction();
                const int acc = accumulatorBits(ref, i);
                o << "typedef ap_fixed<" << acc << "," << acc - fp << ",AP_TRN,AP_WRAP> " << n << "_accum_t;\n";
            } else if (op.kind == OpKind::Softmax) {
                o << "typedef " << q.internal.at("reciprocal").hlsType() << " " << n << "_recip_t;\n";
            }
        }
        o << "typedef " << type(lastSource()) << " result_t;\n\n#endif\n";
        return o.str();
    }

    /// weights/w<i>.h of a Conv / Linear op: non-zero weights only, with their input offsets.
    std::string weights(std::size_t i, std::int64_t &nnzOut) const
    {
        const PlanOp &op = plan.ops[i];
        const OpQuant &q = ref.spec().op(op.name);
        const auto &w = ref.weightsRaw(op.name);
        const auto &b = ref.biasRaw(op.name);
        const std::int64_t nOut = op.outChannels();
        const std::int64_t per = std::int64_t(w.size()) / nOut;
        std::vector<std::string> vals, offs;
        std::vector<std::int64_t> start{0};
        for (std::int64_t o = 0; o < nOut; ++o) {
            for (std::int64_t k = 0; k < per; ++k) {
                const std::int64_t r = w[std::size_t(o * per + k)];
                if (r == 0)
                    continue; // pruned (or quantised to zero): no multiplication generated
                std::int64_t off = k;
                if (op.kind == OpKind::Conv) {
                    const std::int64_t kk = op.kernel, hin = op.inShape[1], win = op.inShape[2];
                    const std::int64_t ci = k / (kk * kk), ky = (k / kk) % kk, kx = k % kk;
                    off = (ci * hin + ky) * win + kx;
                }
                vals.push_back(literal(r, q.weight.fraction()));
                offs.push_back(std::to_string(off));
            }
            start.push_back(std::int64_t(vals.size()));
        }
        nnzOut = std::int64_t(vals.size());
        const std::string n = std::to_string(i);
        std::ostringstream o;
        o << "// " << op.name << ": " << vals.size() << " non-zero of " << w.size()
          << " weights (BatchNorm folded), raw-exact values of " << q.weight.hlsType() << "\n";
        o << "#ifndef W" << n << "_H_\n#define W" << n << "_H_\n\n";
        auto array = [&](const std::string &t, const std::string &name, const std::vector<std::string> &v) {
            o << "static const " << t << " " << name << "[" << std::max<std::size_t>(1, v.size()) << "] = {";
            for (std::size_t k = 0; k < v.size(); ++k)
                o << (k % 12 == 0 ? "\n    " : " ") << v[k] << (k + 1 < v.size() ? "," : "");
            if (v.empty())
                o << "0"; // no weight left: start[] lets nothing read it
            o << "};\n";
        };
        array("layer" + n + "_weight_t", "w" + n, vals);
        array("unsigned", "w" + n + "_off", offs);
        std::vector<std::string> st, bs;
        for (std::int64_t s : start)
            st.push_back(std::to_string(s));
        for (std::int64_t r : b)
            bs.push_back(literal(r, q.bias.fraction()));
        array("unsigned", "w" + n + "_start", st);
        array("layer" + n + "_bias_t", "b" + n, bs);
        o << "\n#endif\n";
        return o.str();
    }

    /// weights/w<i>.h of a LayerNorm (gamma, beta raw, the 1/sqrt table) or GELU op (its table).
    std::string tables(std::size_t i) const
    {
        const PlanOp &op = plan.ops[i];
        const OpQuant &q = ref.spec().op(op.name);
        const std::string n = std::to_string(i);
        std::ostringstream o;
        o << "// " << op.name << " (" << opKindName(op.kind) << "): tables of the integer reference\n";
        o << "#ifndef W" << n << "_H_\n#define W" << n << "_H_\n\n";
        auto array = [&](const std::string &t, const std::string &name, const std::vector<std::string> &v) {
            o << "static const " << t << " " << name << "[" << v.size() << "] = {";
            for (std::size_t k = 0; k < v.size(); ++k)
                o << (k % 12 == 0 ? "\n    " : " ") << v[k] << (k + 1 < v.size() ? "," : "");
            o << "};\n";
        };
        auto ints = [](const std::vector<std::int64_t> &v) {
            std::vector<std::string> s;
            for (std::int64_t x : v)
                s.push_back(std::to_string(x) + "LL");
            return s;
        };
        if (op.kind == OpKind::Softmax) {
            array("long long", "exp" + n, ints(softmaxExpTable(ref.format(op.inputs[0]), q.internal.at("exp"))));
        } else if (op.kind == OpKind::LayerNorm) {
            array("long long", "g" + n, ints(ref.weightsRaw(op.name)));
            array("long long", "be" + n, ints(ref.biasRaw(op.name)));
            array("long long", "rstd" + n, ints(rstdTable(q.internal.at("rstd"))));
        } else {
            const FixedFormat &in = ref.format(op.inputs[0]);
            std::vector<std::string> v;
            for (std::int64_t r : geluTable(in, q.output))
                v.push_back(literal(r, q.output.fraction()));
            array("layer" + n + "_t", "gelu" + n, v);
        }
        o << "\n#endif\n";
        return o.str();
    }

    std::string parameters(const std::vector<std::size_t> &weighted) const
    {
        std::ostringstream o;
        o << "// Per-layer configuration (shapes, reuse factor, types) and the weights.\n"
          << "#ifndef PARAMETERS_H_\n#define PARAMETERS_H_\n\n#include \"defines.h\"\n#include \"nnet_layers.h\"\n\n";
        for (std::size_t i : weighted)
            o << "#include \"weights/w" << i << ".h\"\n";
        o << "\n";
        for (std::size_t i = 0; i < plan.ops.size(); ++i) {
            if (source[i] != int(i))
                continue;
            const PlanOp &op = plan.ops[i];
            const std::string n = "layer" + std::to_string(i);
            o << "struct config" << i << " { // " << op.name << "\n";
            if (op.kind == OpKind::Conv) {
                o << "    static const unsigned n_chan = " << op.inShape[0] << ", in_height = " << op.inShape[1]
                  << ", in_width = " << op.inShape[2] << ";\n"
                  << "    static const unsigned n_filt = " << op.outShape[0] << ", out_height = " << op.outShape[1]
                  << ", out_width = " << op.outShape[2] << ", kernel = " << op.kernel << ";\n";
            } else if (op.kind == OpKind::Linear) {
                o << "    static const unsigned n_in = " << op.inShape[0] << ", n_out = " << op.outShape[0] << ";\n";
            } else if (op.kind == OpKind::MatMulQK) {
                o << "    static const unsigned h = " << op.attentionChannels << ", hw = " << op.outShape[0] << ";\n"
                  << "    typedef " << n << "_accum_t accum_t;\n";
            } else if (op.kind == OpKind::MatMulSV) {
                o << "    static const unsigned h = " << op.outShape[0] << ", hw = " << op.outShape[1] * op.outShape[2] << ";\n"
                  << "    typedef " << n << "_accum_t accum_t;\n";
            } else if (op.kind == OpKind::Softmax) {
                const OpQuant &q = ref.spec().op(op.name);
                const FixedFormat &rf = q.internal.at("reciprocal");
                o << "    static const unsigned rows = " << op.outShape[0] << ", cols = " << op.outShape[1] << ";\n"
                  << "    static const int f_in = " << ref.format(op.inputs[0]).fraction() << ", f_exp = "
                  << q.internal.at("exp").fraction() << ", f_recip = " << rf.fraction() << ";\n"
                  << "    static const long long recip_max_raw = " << rf.maxRaw() << "LL;\n"
                  << "    static const bool recip_rnd = " << (rf.rounding == Rounding::RoundHalfUp ? "true" : "false") << ";\n"
                  << "    typedef " << n << "_recip_t recip_t;\n";
            } else {
                o << "    static const unsigned n_in = " << op.outElements() << ";\n";
            }
            o << "    static const unsigned reuse_factor = " << opt.reuseFactor << ";\n";
            if (op.kind == OpKind::Activation && op.act == Activation::GELU) {
                const FixedFormat &in = ref.format(op.inputs[0]);
                o << "    static const int f_in = " << in.fraction() << ";\n    static const long long in_min_raw = " << in.minRaw()
                  << "LL;\n";
            } else if (op.kind == OpKind::LayerNorm) {
                const FixedFormat &in = ref.format(op.inputs[0]);
                const OpQuant &q = ref.spec().op(op.name);
                o << "    static const int f_in = " << in.fraction() << ", f_rstd = " << q.internal.at("rstd").fraction()
                  << ", f_gamma = " << q.weight.fraction() << ", f_beta = " << q.bias.fraction() << ", f_out = "
                  << q.output.fraction() << ";\n"
                  << "    static const long long eps_raw = " << layerNormEpsRaw(in, op.eps) << "LL;\n"
                  << "    static const bool beta_rnd = " << (q.bias.rounding == Rounding::RoundHalfUp ? "true" : "false")
                  << ", out_rnd = " << (q.output.rounding == Rounding::RoundHalfUp ? "true" : "false") << ";\n";
            }
            if (op.kind == OpKind::Conv || op.kind == OpKind::Linear)
                o << "    typedef " << n << "_weight_t weight_t;\n    typedef " << n << "_bias_t bias_t;\n    typedef " << n
                  << "_accum_t accum_t;\n";
            if (op.kind == OpKind::Activation && op.act == Activation::LeakyReLU)
                o << "    typedef " << n << "_slope_t slope_t;\n";
            o << "};\n";
            if (op.kind == OpKind::Activation && op.act == Activation::LeakyReLU) {
                const FixedFormat &sf = ref.spec().op(op.name).internal.at("slope");
                o << "static const " << n << "_slope_t slope" << i << " = " << literal(sf.quantise(op.slope), sf.fraction())
                  << "; // " << op.slope << "\n";
            }
        }
        o << "\n#endif\n";
        return o.str();
    }

    std::string topHeader() const
    {
        std::ostringstream o;
        o << "#ifndef " << opt.name << "_H_\n#define " << opt.name << "_H_\n\n#include \"defines.h\"\n\n"
          << "// One patch (normalised, input_t) in, the centre (row, col) / patch size out.\n"
          << "void " << opt.name << "(const input_t input[N_INPUT], result_t output[N_OUTPUT]);\n\n#endif\n";
        return o.str();
    }

    std::string topSource() const
    {
        std::ostringstream o;
        o << "// " << plan.spec.name << ": generated by braggnac export-hls (" << opt.ioType << ").\n"
          << "#include \"" << opt.name << ".h\"\n#include \"parameters.h\"\n\n"
          << "void " << opt.name << "(const input_t input[N_INPUT], result_t output[N_OUTPUT])\n{\n"
          << "#pragma HLS INTERFACE ap_vld port=input,output\n"
          << "#pragma HLS ARRAY_PARTITION variable=input complete dim=0\n"
          << "#pragma HLS ARRAY_PARTITION variable=output complete dim=0\n\n";
        const int last = int(plan.ops.size()) - 1;
        for (std::size_t i = 0; i < plan.ops.size(); ++i) {
            if (source[i] != int(i))
                continue;
            const PlanOp &op = plan.ops[i];
            const std::string n = std::to_string(i);
            const std::string out = buf(int(i));
            o << "    // " << op.name << " (" << opKindName(op.kind) << ")\n";
            if (int(i) != last)
                o << "    layer" << n << "_t " << out << "[N_LAYER_" << n << "];\n"
                  << "#pragma HLS ARRAY_PARTITION variable=" << out << " complete dim=0\n";
            const std::string in = buf(op.inputs[0]), tin = type(op.inputs[0]);
            switch (op.kind) {
            case OpKind::Conv:
                o << "    nnet::conv2d<" << tin << ", layer" << n << "_t, config" << n << ">(" << in << ", " << out << ", w" << n
                  << ", w" << n << "_off, w" << n << "_start, b" << n << ");\n";
                break;
            case OpKind::Linear:
                o << "    nnet::dense<" << tin << ", layer" << n << "_t, config" << n << ">(" << in << ", " << out << ", w" << n
                  << ", w" << n << "_off, w" << n << "_start, b" << n << ");\n";
                break;
            case OpKind::Activation:
                if (op.act == Activation::ReLU)
                    o << "    nnet::relu<" << tin << ", layer" << n << "_t, config" << n << ">(" << in << ", " << out << ");\n";
                else if (op.act == Activation::GELU)
                    o << "    nnet::gelu<" << tin << ", layer" << n << "_t, config" << n << ">(" << in << ", " << out << ", gelu"
                      << n << ");\n";
                else
                    o << "    nnet::leaky_relu<" << tin << ", layer" << n << "_t, config" << n << ">(" << in << ", " << out
                      << ", slope" << n << ");\n";
                break;
            case OpKind::LayerNorm:
                o << "    nnet::layer_norm<" << tin << ", layer" << n << "_t, config" << n << ">(" << in << ", " << out << ", g"
                  << n << ", be" << n << ", rstd" << n << ");\n";
                break;
            case OpKind::MatMulQK:
            case OpKind::MatMulSV:
                o << "    nnet::" << (op.kind == OpKind::MatMulQK ? "matmul_qk<" : "matmul_sv<") << tin << ", "
                  << type(op.inputs[1]) << ", layer" << n << "_t, config" << n << ">(" << in << ", " << buf(op.inputs[1])
                  << ", " << out << ");\n";
                break;
            case OpKind::Softmax:
                o << "    nnet::softmax<" << tin << ", layer" << n << "_t, config" << n << ">(" << in << ", " << out << ", exp"
                  << n << ");\n";
                break;
            case OpKind::Add:
                o << "    nnet::add<" << tin << ", " << type(op.inputs[1]) << ", layer" << n << "_t, config" << n << ">(" << in
                  << ", " << buf(op.inputs[1]) << ", " << out << ");\n";
                break;
            default: throw Error("HLS export: internal: op kind not generated");
            }
        }
        if (lastSource() != last) // the network ends in a pass-through op
            o << "    for (unsigned i = 0; i < N_OUTPUT; i++) {\n#pragma HLS UNROLL\n        output[i] = " << buf(lastSource())
              << "[i];\n    }\n";
        o << "}\n";
        return o.str();
    }

    std::string testbench() const
    {
        std::ostringstream o;
        o << "// C simulation testbench: runs " << opt.name << " on every line of tb_data/tb_input_features.dat,\n"
          << "// writes the outputs to tb_data/csim_results.log and compares them exactly with\n"
          << "// tb_data/tb_output_predictions.dat (BraggNAC's integer reference). Exit 1 on any mismatch.\n"
          << "#include <cstdio>\n#include <fstream>\n#include <sstream>\n#include <string>\n\n"
          << "#include \"firmware/" << opt.name << ".h\"\n\n"
          << "int main()\n{\n"
          << "    std::ifstream fin(\"tb_data/tb_input_features.dat\");\n"
          << "    std::ifstream fpr(\"tb_data/tb_output_predictions.dat\");\n"
          << "    if (!fin) {\n        std::fprintf(stderr, \"tb_data/tb_input_features.dat: cannot open\\n\");\n        return 2;\n    }\n"
          << "    std::FILE *fout = std::fopen(\"tb_data/csim_results.log\", \"w\");\n"
          << "    if (!fout) {\n        std::fprintf(stderr, \"tb_data/csim_results.log: cannot write\\n\");\n        return 2;\n    }\n"
          << "    std::string iline, pline;\n    long n = 0, compared = 0, mismatches = 0;\n"
          << "    while (std::getline(fin, iline)) {\n"
          << "        if (iline.empty())\n            continue;\n"
          << "        std::istringstream is(iline);\n        input_t in[N_INPUT];\n"
          << "        for (int k = 0; k < N_INPUT; k++) {\n            double v;\n            if (!(is >> v)) {\n"
          << "                std::fprintf(stderr, \"tb_input_features.dat: line %ld: expected %d values\\n\", n + 1, N_INPUT);\n"
          << "                return 2;\n            }\n            in[k] = v;\n        }\n"
          << "        result_t out[N_OUTPUT];\n        " << opt.name << "(in, out);\n"
          << "        for (int k = 0; k < N_OUTPUT; k++)\n"
          << "            std::fprintf(fout, k + 1 < N_OUTPUT ? \"%.17g \" : \"%.17g\\n\", out[k].to_double());\n"
          << "        if (fpr && std::getline(fpr, pline)) {\n            std::istringstream ps(pline);\n"
          << "            for (int k = 0; k < N_OUTPUT; k++) {\n                double e;\n"
          << "                if (!(ps >> e) || e != out[k].to_double()) {\n                    if (mismatches < 10)\n"
          << "                        std::fprintf(stderr, \"patch %ld output %d: csim %.17g, expected %.17g\\n\", n, k, out[k].to_double(), e);\n"
          << "                    mismatches++;\n                }\n                compared++;\n            }\n        }\n"
          << "        n++;\n    }\n    std::fclose(fout);\n"
          << "    std::printf(\"csim: %ld patches, %ld outputs compared, %ld mismatches\\n\", n, compared, mismatches);\n"
          << "    return mismatches ? 1 : 0;\n}\n";
        return o.str();
    }

    std::string buildCsim() const
    {
        std::ostringstream o;
        o << "#!/bin/sh\n# C simulation with g++: AP_TYPES=DIR ./build_csim.sh uses DIR/ap_fixed.h (Xilinx's:\n"
          << "# $XILINX_HLS/include) instead of the BraggNAC emulation in firmware/ap_types.\n"
          << "set -e\ncd \"$(dirname \"$0\")\"\nINC=\"${AP_TYPES:-firmware/ap_types}\"\n"
          << "${CXX:-g++} -std=c++14 -O1 -I\"$INC\" -Ifirmware -Ifirmware/nnet_utils -o " << opt.name << "_csim "
          << opt.name << "_test.cpp firmware/" << opt.name << ".cpp\n"
          << "./" << opt.name << "_csim\n";
        return o.str();
    }

    std::string buildTcl(const HlsPart &part) const
    {
        std::ostringstream o;
        char period[32];
        std::snprintf(period, sizeof period, "%.4g", 1000.0 / opt.clockMhz);
        o << "# vitis_hls -f build_prj.tcl \"csim=1 synth=1 cosim=0 export=0\"\n"
          << "array set opt {csim 1 synth 1 cosim 0 export 0}\n"
          << "foreach arg $::argv {\n    foreach {k v} [split $arg =] {\n        if {[info exists opt($k)]} { set opt($k) $v }\n    }\n}\n"
          << "open_project -reset " << opt.name << "_prj\n"
          << "set_top " << opt.name << "\n"
          << "add_files firmware/" << opt.name << ".cpp -cflags \"-std=c++14 -Ifirmware/nnet_utils\"\n"
          << "add_files -tb " << opt.name << "_test.cpp -cflags \"-std=c++14 -Ifirmware -Ifirmware/nnet_utils\"\n"
          << "add_files -tb tb_data\n"
          << "open_solution -reset solution1\n"
          << "set_part {" << part.number << "}\n"
          << "create_clock -period " << period << " -name default\n"
          << "if {$opt(csim)} { csim_design }\n"
          << "if {$opt(synth)} { csynth_design }\n"
          << "if {$opt(cosim)} { cosim_design }\n"
          << "if {$opt(export)} { export_design -format ip_catalog }\n"
          << "exit\n";
        return o.str();
    }
};

} // namespace

QuantSpec defaultHlsQuantSpec(const LayerPlan &plan)
{
    QuantSpec q = QuantSpec::defaults(plan, 16);
    const FixedFormat f{16, 6, Rounding::RoundHalfUp, Overflow::Saturate};
    q.input = f;
    for (auto &[name, o] : q.ops) {
        o.weight = f;
        o.bias = f;
        o.output = f;
        o.accumulator = 0;
        for (auto &[k, v] : o.internal)
            v = f;
    }
    return q;
}

void checkHlsSupported(const LayerPlan &plan)
{
    // Every OpKind of the layer plan has a template (conv, dense, batch norm folded, layer norm,
    // ReLU / LeakyReLU / GELU, attention scores, softmax, weighted sum, residual add, flatten).
    for (const PlanOp &op : plan.ops)
        if (op.kind == OpKind::Activation && op.act == Activation::None)
            throw InputError("unsupported layer: " + op.name + " (activation none, spec field " + op.field
                             + "); use an FPGA-friendly space");
}

HlsEstimate exportHls(const IntegerReference &ref, const HlsOptions &options, const std::string &out, bool force,
                      const float *tbPatches, std::size_t n)
{
    const LayerPlan &plan = ref.plan();
    checkHlsSupported(plan);
    if (options.ioType != "io_parallel")
        throw InputError("--io-type: only io_parallel is supported, got '" + options.ioType + "'");
    if (!isIdentifier(options.name))
        throw InputError("project name '" + options.name + "' is not a C identifier");
    const HlsPart &part = hlsPart(options.part);
    const HlsEstimate est = estimateHls(ref, options.reuseFactor, options.clockMhz, part);
    for (std::size_t i = 0; i < plan.ops.size(); ++i)
        if ((plan.ops[i].kind == OpKind::Conv || plan.ops[i].kind == OpKind::Linear) && accumulatorBits(ref, i) > 127)
            throw InputError("layer " + plan.ops[i].name + ": the exact accumulator needs more than 127 bits; set an accumulator width");

    for (std::size_t i = 0; i < plan.ops.size(); ++i) {
        const PlanOp &op = plan.ops[i];
        const FixedFormat &in = ref.format(op.inputs[0]);
        if (op.kind == OpKind::Activation && op.act == Activation::GELU && in.width > 16)
            throw InputError("unsupported layer: " + op.name + " (GELU): a table input wider than 16 bits (" + in.hlsType() + ")");
        if (op.kind == OpKind::Softmax) {
            const OpQuant &q = ref.spec().op(op.name);
            const FixedFormat &ef = q.internal.at("exp"), &rf = q.internal.at("reciprocal");
            const int logC = int(std::ceil(std::log2(double(op.outShape[1]) + 1)));
            const int sh = ef.fraction() + rf.fraction();
            if (in.width > 16 || ef.width + rf.width > 62 || ef.width + logC + std::max(0, -sh) + 2 > 62 || sh + 2 > 62)
                throw InputError("unsupported layer: " + op.name + " (softmax): its 64-bit integer intermediates would "
                                 "overflow with these formats; quantise it narrower (inputs at most 16 bits)");
        }
        if ((op.kind == OpKind::MatMulQK || op.kind == OpKind::MatMulSV) && accumulatorBits(ref, i) > 127)
            throw InputError("layer " + op.name + ": the exact accumulator needs more than 127 bits");
        if (op.kind == OpKind::LayerNorm) {
            // The template computes in 64-bit integers: every intermediate must fit 62 bits.
            const OpQuant &q = ref.spec().op(op.name);
            const FixedFormat &rf = q.internal.at("rstd");
            const int logM = int(std::ceil(std::log2(double(op.outElements()) + 1)));
            const int sq = 2 * (in.width + 1) + logM + 2;
            const int prod = in.width + 1 + rf.width + q.weight.width;
            const int fpMax = in.fraction() + rf.fraction() + q.weight.fraction() + (in.width + 2 - in.fraction());
            const int fpMin = rf.fraction() + q.weight.fraction() + 1;
            const int beta = q.bias.width + std::max(0, fpMax - q.bias.fraction());
            const int up = std::max(prod, beta) + 1 + std::max(0, q.output.fraction() - fpMin);
            if (std::max({sq, prod + 1, beta + 1, up}) > 62)
                throw InputError("unsupported layer: " + op.name + " (layernorm): its 64-bit integer intermediates would "
                                 "overflow with these formats; quantise it narrower (about 16 bits or less)");
        }
    }
    const fs::path target(out);
    if (fs::exists(target)) {
        if (!fs::is_directory(target))
            throw InputError(fileMessage(out, "exists and is not a folder"));
        if (!fs::is_empty(target) && !force)
            throw InputError(fileMessage(out, "exists and is not empty (use --force to replace it)"));
    }
    const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
    if (!fs::is_directory(parent))
        throw InputError(fileMessage(out, "its folder does not exist"));
    std::string tmpl = (parent / (".hls-export-XXXXXX")).string();
    if (!::mkdtemp(tmpl.data()))
        throw InputError(fileMessage(out, "cannot create a temporary folder beside it"));
    const fs::path tmp(tmpl);
    try {
        Generator g(ref, options);
        const fs::path fw = tmp / "firmware";
        std::vector<std::size_t> weighted;
        std::int64_t nnz = 0;
        for (std::size_t i = 0; i < plan.ops.size(); ++i)
            if (plan.ops[i].kind == OpKind::Conv || plan.ops[i].kind == OpKind::Linear) {
                std::int64_t k = 0;
                writeFile(fw / "weights" / ("w" + std::to_string(i) + ".h"), g.weights(i, k));
                nnz += k;
                weighted.push_back(i);
            } else if (plan.ops[i].kind == OpKind::LayerNorm || plan.ops[i].kind == OpKind::Softmax
                       || (plan.ops[i].kind == OpKind::Activation && plan.ops[i].act == Activation::GELU)) {
                writeFile(fw / "weights" / ("w" + std::to_string(i) + ".h"), g.tables(i));
                weighted.push_back(i);
            }
        writeFile(fw / "defines.h", g.defines());
        writeFile(fw / "parameters.h", g.parameters(weighted));
        writeFile(fw / (options.name + ".h"), g.topHeader());
        writeFile(fw / (options.name + ".cpp"), g.topSource());
        writeFile(fw / "ap_types" / "ap_fixed.h", hlsApFixedHeader());
        writeFile(fw / "nnet_utils" / "nnet_layers.h", hlsLayerTemplates());
        writeFile(tmp / (options.name + "_test.cpp"), g.testbench());
        writeFile(tmp / "build_prj.tcl", g.buildTcl(part));
        writeFile(tmp / "build_csim.sh", g.buildCsim());
        fs::permissions(tmp / "build_csim.sh", fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                        fs::perm_options::add);

        // Testbench data: the raw-exact normalised inputs and the integer reference's outputs.
        std::ostringstream in, pred;
        const int s = plan.spec.inputSize;
        const std::size_t area = std::size_t(s) * std::size_t(s);
        if (n > 0) {
            const std::vector<float> norm = normalisePatchesCpu(tbPatches, n, s);
            const std::vector<std::int64_t> raw = ref.forwardRaw(tbPatches, n);
            const FixedFormat &fi = ref.spec().input;
            const FixedFormat &fo = ref.format(int(plan.ops.size()) - 1);
            const std::size_t nout = std::size_t(plan.output().outElements());
            for (std::size_t p = 0; p < n; ++p) {
                for (std::size_t k = 0; k < area; ++k)
                    in << (k ? " " : "") << literal(fi.quantise(norm[p * area + k]), fi.fraction());
                in << "\n";
                for (std::size_t k = 0; k < nout; ++k)
                    pred << (k ? " " : "") << literal(raw[p * nout + k], fo.fraction());
                pred << "\n";
            }
        }
        writeFile(tmp / "tb_data" / "tb_input_features.dat", in.str());
        writeFile(tmp / "tb_data" / "tb_output_predictions.dat", pred.str());

        std::ostringstream readme;
        readme << "# " << options.name << ": HLS project of `" << plan.spec.name << "`\n\n"
               << "Generated by `braggnac export-hls` (" << options.ioType << ", reuse factor " << options.reuseFactor
               << ", " << options.clockMhz << " MHz, part " << part.number << ").\n\n";
        if (options.defaultPrecision)
            readme << "**The model was never quantised: every tensor is exported at `ap_fixed<16,6>` "
                      "(AP_RND, AP_SAT).** Quantise it (braggnac compress) for a calibrated export.\n\n";
        readme << "## Layout\n\n"
               << "- `firmware/" << options.name << ".cpp`, `.h`: the top function\n"
               << "- `firmware/defines.h`: every tensor's ap_fixed type; `firmware/parameters.h`: per-layer configuration\n"
               << "- `firmware/weights/w<i>.h`: the non-zero weights only (" << nnz << " kept), raw-exact constants\n"
               << "- `firmware/nnet_utils/nnet_layers.h`: BraggNAC's layer templates; `firmware/ap_types/ap_fixed.h`: "
                  "BraggNAC's ap_fixed emulation (bit for bit the UG1399 semantics)\n"
               << "- `" << options.name << "_test.cpp`: testbench; `tb_data/`: inputs (raw fixed-point values) and the "
                  "integer reference's outputs\n\n"
               << "## Build\n\n"
               << "- C simulation with g++: `./build_csim.sh` (exit 1 on any mismatch against "
                  "`tb_data/tb_output_predictions.dat`; outputs in `tb_data/csim_results.log`); with Xilinx's headers: "
                  "`AP_TYPES=$XILINX_HLS/include ./build_csim.sh`\n"
               << "- Vitis HLS: `vitis_hls -f build_prj.tcl \"csim=1 synth=1 cosim=0 export=0\"`\n\n"
               << "## Estimate\n\n```\n" << est.text() << "```\n";
        writeFile(tmp / "README.md", readme.str());

        if (fs::exists(target))
            fs::remove_all(target);
        fs::rename(tmp, target);
    } catch (...) {
        std::error_code ec;
        fs::remove_all(tmp, ec);
        throw;
    }
    return est;
}

namespace {

double secondsNow()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// True while a process of process group `pgid` other than a zombie exists (Linux: /proc; elsewhere
/// kill(-pgid, 0), which counts zombies too).
bool groupRunning(pid_t pgid)
{
    std::error_code ec;
    fs::directory_iterator it("/proc", ec);
    if (ec)
        return ::kill(-pgid, 0) == 0;
    for (const fs::directory_entry &e : it) {
        const std::string name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        std::ifstream f(e.path() / "stat");
        std::string stat;
        if (!std::getline(f, stat))
            continue;
        const std::size_t close = stat.rfind(')');
        if (close == std::string::npos)
            continue;
        std::istringstream rest(stat.substr(close + 1));
        char state = 0;
        long ppid = 0, pgrp = 0;
        if (rest >> state >> ppid >> pgrp && pgrp == long(pgid) && state != 'Z' && state != 'X')
            return true;
    }
    return false;
}

void waitGroupGone(pid_t pgid, double seconds)
{
    const double until = secondsNow() + seconds;
    while (groupRunning(pgid) && secondsNow() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

/// Ends the process group led by the (unreaped) child `pid`: SIGTERM, a grace period, SIGKILL;
/// then reaps the leader. The leader is reaped last so that its process group id cannot be reused
/// while it is signalled.
void endGroup(pid_t pid)
{
    ::kill(-pid, SIGTERM);
    waitGroupGone(pid, 1.0);
    ::kill(-pid, SIGKILL);
    waitGroupGone(pid, 5.0);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

std::string describeStatus(int status)
{
    if (WIFEXITED(status))
        return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        const char *name = ::strsignal(WTERMSIG(status));
        return "killed by signal " + std::to_string(WTERMSIG(status)) + (name ? std::string(" (") + name + ")" : std::string());
    }
    return "status " + std::to_string(status);
}

std::string fileTail(const fs::path &p, std::size_t max)
{
    std::ifstream l(p);
    std::stringstream ss;
    ss << l.rdbuf();
    std::string text = ss.str();
    if (text.size() > max)
        text = "..." + text.substr(text.size() - max);
    return text;
}

} // namespace

std::vector<std::int64_t> runCsim(const std::string &dir, const FixedFormat &outputFormat, const std::string &apTypes,
                                  const Monitor &monitor)
{
    monitor.check();
    const fs::path d = fs::absolute(dir);
    const fs::path script = d / "build_csim.sh";
    const fs::path log = d / "csim_build.log";
    const fs::path results = d / "tb_data" / "csim_results.log";
    if (!fs::is_regular_file(script))
        throw InputError(fileMessage(script.string(), "missing: not an HLS export folder (braggnac export-hls)"));
    // An earlier run's results are never read as this run's.
    std::error_code ec;
    fs::remove(results, ec);

    // The environment, with AP_TYPES replaced when given.
    std::vector<std::string> env;
    for (char **e = environ; e && *e; ++e)
        if (apTypes.empty() || std::string(*e).rfind("AP_TYPES=", 0) != 0)
            env.emplace_back(*e);
    if (!apTypes.empty())
        env.push_back("AP_TYPES=" + apTypes);
    std::vector<char *> envp;
    for (std::string &e : env)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string sh = "/bin/sh", scriptArg = script.string();
    char *argv[] = {sh.data(), scriptArg.data(), nullptr};

    // build_csim.sh in its own process group (so cancelling ends g++ and the testbench with it),
    // stdin from /dev/null, stdout and stderr to csim_build.log, default signal dispositions.
    posix_spawn_file_actions_t files;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&files);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&files, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&files, 1, 2);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGCHLD})
        sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    const int spawned = ::posix_spawn(&pid, sh.c_str(), &files, &attr, argv, envp.data());
    posix_spawn_file_actions_destroy(&files);
    posix_spawnattr_destroy(&attr);
    if (spawned != 0)
        throw Error("C simulation: cannot start /bin/sh " + script.string() + ": " + std::strerror(spawned));

    int status = 0;
    for (;;) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            const int err = errno;
            endGroup(pid);
            throw Error("C simulation: waiting for " + script.string() + ": " + std::strerror(err));
        }
        if (monitor.cancelled()) {
            endGroup(pid);
            fs::remove(results, ec); // a partial result is never reported
            throw CancelledError();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }

    std::ifstream res(results);
    // The testbench exits 1 on a mismatch after writing its results: those are compared by the caller.
    if (status != 0 && !res)
        throw Error("C simulation failed: " + script.string() + " ended with " + describeStatus(status) + " (log "
                    + log.string() + "):\n" + fileTail(log, 4000));
    std::vector<std::int64_t> raw;
    double v;
    while (res >> v) {
        const double scaled = std::ldexp(v, outputFormat.fraction());
        raw.push_back(std::int64_t(std::llround(scaled)));
        if (double(raw.back()) != scaled)
            throw Error(fileMessage(results.string(), "a value is not in the output format"));
    }
    if (!res.eof())
        throw Error(fileMessage(results.string(), "not a list of numbers (value " + std::to_string(raw.size() + 1) + ")"));
    return raw;
}

} // namespace braggnac::core
