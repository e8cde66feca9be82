#include "core/nn/model.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <torch/script.h>
#include <torch/torch.h>

#include "core/arch/layerplan.h"
#include "core/common/atomicfile.h"
#include "core/common/error.h"
#include "core/common/parallel.h"
#include "core/common/runtime.h"
#include "core/nn/torch_net.h"

namespace fs = std::filesystem;

namespace braggnac::core {

namespace {

constexpr const char *kModelFormat = "braggnac-model";
constexpr int kModelVersion = 1;

std::string firstLine(const std::string &s)
{
    const auto p = s.find('\n');
    return p == std::string::npos ? s : s.substr(0, p);
}

void writeText(const fs::path &path, const std::string &text)
{
    std::ofstream f(path, std::ios::binary);
    f << text;
    if (!f)
        throw Error(fileMessage(path.string(), "write failed"));
}

void writeJson(const fs::path &path, const nlohmann::json &j)
{
    writeText(path, j.dump(2) + "\n");
}

nlohmann::json readJson(const std::string &folder, const std::string &file)
{
    const fs::path path = fs::path(folder) / file;
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw InputError(fileMessage(folder, file + ": missing or unreadable"));
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        return nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::parse_error &e) {
        throw InputError(fileMessage(folder, file + ": malformed JSON: " + firstLine(e.what())));
    }
}

std::string shapeString(const torch::Tensor &t)
{
    std::string s = "[";
    for (int64_t i = 0; i < t.dim(); ++i)
        s += (i ? ", " : "") + std::to_string(t.size(i));
    return s + "]";
}

/// Reads the tensor at dotted `name` from nested archives (the layout Module::save writes).
bool readNested(torch::serialize::InputArchive &root, const std::string &name, bool isBuffer,
                torch::Tensor &out)
{
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t p; (p = name.find('.', start)) != std::string::npos; start = p + 1)
        parts.push_back(name.substr(start, p - start));
    parts.push_back(name.substr(start));
    std::vector<std::unique_ptr<torch::serialize::InputArchive>> chain;
    torch::serialize::InputArchive *cur = &root;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        auto next = std::make_unique<torch::serialize::InputArchive>();
        if (!cur->try_read(parts[i], *next))
            return false;
        chain.push_back(std::move(next));
        cur = chain.back().get();
    }
    try {
        return cur->try_read(parts.back(), out, isBuffer);
    } catch (const c10::Error &) {
        return false;
    }
}

std::string scriptName(const std::string &dotted)
{
    std::string s = dotted;
    for (char &c : s)
        if (c == '.')
            c = '_';
    return s;
}

/// TorchScript source equivalent to PeakNetImpl::forward: one statement per LayerPlan op, the
/// same aten ops in the same order; parameters are "self.<state_dict key with _ for .>".
std::string scriptSource(const ArchSpec &spec)
{
    const LayerPlan plan = LayerPlan::lower(spec);
    std::ostringstream src;
    src << "def forward(self, x):\n";
    src << "    n = x.size(0)\n";
    auto var = [](int i) { return i < 0 ? std::string("x") : "v" + std::to_string(i); };
    auto shapeList = [](const std::vector<std::int64_t> &s) {
        std::string out = "[";
        for (std::size_t i = 0; i < s.size(); ++i)
            out += (i ? ", " : "") + std::to_string(s[i]);
        return out + "]";
    };
    for (std::size_t i = 0; i < plan.ops.size(); ++i) {
        const PlanOp &op = plan.ops[i];
        const std::string p = "self." + scriptName(op.name);
        const std::string a = var(op.inputs[0]);
        const std::string b = op.inputs.size() > 1 ? var(op.inputs[1]) : std::string();
        std::ostringstream e;
        switch (op.kind) {
        case OpKind::Conv: e << "torch.conv2d(" << a << ", " << p << "_weight, " << p << "_bias)"; break;
        case OpKind::Linear: e << "torch.linear(" << a << ", " << p << "_weight, " << p << "_bias)"; break;
        case OpKind::BatchNorm:
            e << "torch.batch_norm(" << a << ", " << p << "_weight, " << p << "_bias, " << p << "_running_mean, "
              << p << "_running_var, False, 0.1, " << op.eps << ", False)";
            break;
        case OpKind::LayerNorm:
            e << "torch.layer_norm(" << a << ", " << shapeList(op.outShape) << ", " << p << "_weight, " << p
              << "_bias, " << op.eps << ", True)";
            break;
        case OpKind::Activation:
            switch (op.act) {
            case Activation::ReLU: e << "torch.relu(" << a << ")"; break;
            case Activation::LeakyReLU: e << "torch.leaky_relu(" << a << ", " << op.slope << ")"; break;
            case Activation::GELU: e << "torch.gelu(" << a << ")"; break;
            case Activation::None: e << a; break;
            }
            break;
        case OpKind::MatMulQK: {
            const std::string v = "[n, " + std::to_string(op.attentionChannels) + ", " + std::to_string(op.outShape[0]) + "]";
            e << "torch.matmul(" << a << ".view(" << v << ").permute([0, 2, 1]), " << b << ".view(" << v << "))";
            break;
        }
        case OpKind::Softmax: e << "torch.softmax(" << a << ", -1)"; break;
        case OpKind::MatMulSV: {
            const auto &o = op.outShape;
            e << "torch.matmul(" << a << ", " << b << ".view([n, " << o[0] << ", " << o[1] * o[2]
              << "]).permute([0, 2, 1])).permute([0, 2, 1]).contiguous().view([n, " << o[0] << ", " << o[1]
              << ", " << o[2] << "])";
            break;
        }
        case OpKind::Add: e << a << " + " << b; break;
        case OpKind::Flatten: e << "torch.flatten(" << a << ", 1)"; break;
        }
        src << "    " << var(int(i)) << " = " << e.str() << "\n";
    }
    src << "    return " << var(int(plan.ops.size()) - 1) << "\n";
    return src.str();
}

} // namespace

// ---------------------------------------------------------------------------------------------

void setTorchThreads(int threads)
{
    configureNumericRuntime();
    torch::set_num_threads(resolveThreads(threads));
}

std::string defaultDevice()
{
    return torch::cuda::is_available() ? "cuda" : "cpu";
}

bool cudaAvailable()
{
    return torch::cuda::is_available();
}

std::string torchVersion()
{
    return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "."
        + std::to_string(TORCH_VERSION_PATCH);
}

// ---------------------------------------------------------------------------------------------

Model::Model(const ArchSpec &spec, std::uint64_t seed) : m_impl(std::make_unique<Impl>(spec, seed)) {}
Model::~Model() = default;
Model::Model(Model &&) noexcept = default;
Model &Model::operator=(Model &&) noexcept = default;

const ArchSpec &Model::spec() const
{
    return m_impl->spec;
}

std::int64_t Model::parameterCount() const
{
    std::int64_t n = 0;
    for (const auto &p : m_impl->net->parameters())
        n += p.numel();
    return n;
}

NamedTensors Model::namedParameters() const
{
    NamedTensors out;
    torch::NoGradGuard noGrad;
    auto add = [&](const std::string &key, const torch::Tensor &v) {
        if (!v.is_floating_point())
            return; // num_batches_tracked
        torch::Tensor t = v.detach().to(torch::kCPU, torch::kFloat32).contiguous();
        NamedTensor nt;
        nt.shape.assign(t.sizes().begin(), t.sizes().end());
        nt.values.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
        out[key] = std::move(nt);
    };
    for (const auto &p : m_impl->net->named_parameters(true))
        add(p.key(), p.value());
    for (const auto &b : m_impl->net->named_buffers(true))
        add(b.key(), b.value());
    return out;
}

std::vector<float> Model::predict(const float *patches, std::size_t n, int batchSize) const
{
    const int s = m_impl->spec.inputSize;
    const std::size_t area = std::size_t(s) * std::size_t(s);
    std::vector<float> out(n * 2);
    if (n == 0)
        return out;
    if (batchSize <= 0)
        batchSize = 4096;
    PeakNet &net = m_impl->net;
    // A net in training mode is switched to eval() for the call and back afterwards; serialise
    // such calls so concurrent predictions neither race on the mode nor restore it mid-forward.
    std::unique_lock<std::mutex> modeLock(m_impl->modeMutex);
    const bool wasTraining = net->is_training();
    if (wasTraining)
        net->eval();
    else
        modeLock.unlock(); // eval mode: forward() only reads the module, calls may overlap
    try {
        torch::InferenceMode guard;
        for (std::size_t begin = 0; begin < n; begin += std::size_t(batchSize)) {
            const std::size_t count = std::min(n - begin, std::size_t(batchSize));
            torch::Tensor x = normalisePatches(patches + begin * area, count, s);
            if (m_impl->device != torch::Device(torch::kCPU))
                x = x.to(m_impl->device);
            torch::Tensor y = net->forward(x).mul(float(s)).to(torch::kCPU).contiguous();
            std::memcpy(out.data() + begin * 2, y.data_ptr<float>(), count * 2 * sizeof(float));
        }
    } catch (...) {
        if (wasTraining)
            net->train();
        throw;
    }
    if (wasTraining)
        net->train();
    return out;
}

void Model::save(const std::string &folder) const
{
    AtomicOutput out(folder, AtomicOutput::Kind::Folder);
    const fs::path dir(out.tempPath());

    m_impl->spec.save((dir / "spec.json").string());

    PeakNet cpuNet = m_impl->net;
    if (m_impl->device != torch::Device(torch::kCPU)) {
        cpuNet = clonePeakNet(m_impl->net);
        cpuNet->to(torch::kCPU);
    }
    try {
        torch::serialize::OutputArchive archive;
        cpuNet->save(archive);
        archive.save_to((dir / "weights.pt").string());
    } catch (const c10::Error &e) {
        throw Error(fileMessage(folder, "weights.pt: cannot write: " + firstLine(e.what())));
    }
    std::vector<std::string> files = {"spec.json", "weights.pt", "recipe.json", "metrics.json"};
    writeJson(dir / "recipe.json", recipe.is_null() ? nlohmann::json::object() : recipe);
    writeJson(dir / "metrics.json", metrics.is_null() ? nlohmann::json::object() : metrics);
    if (!quantization.is_null()) {
        writeJson(dir / "quantization.json", quantization);
        files.push_back("quantization.json");
    }
    nlohmann::json index;
    index["format"] = kModelFormat;
    index["version"] = kModelVersion;
    index["files"] = files;
    index["arch"] = m_impl->spec.name;
    index["input_size"] = m_impl->spec.inputSize;
    index["parameters"] = parameterCount();
    index["torch_version"] = torchVersion();
    index["created_by"] = versionString();
    writeJson(dir / "model.json", index);
    out.commit();
}

Model Model::load(const std::string &folder)
{
    if (!fs::is_directory(folder)) {
        if (fs::exists(folder))
            throw InputError(fileMessage(folder, "not a model folder (expected a folder with model.json)"));
        throw InputError(fileMessage(folder, "no such model folder"));
    }
    const nlohmann::json index = readJson(folder, "model.json");
    if (!index.is_object() || index.value("format", std::string()) != kModelFormat)
        throw InputError(fileMessage(folder, std::string("model.json: format: expected \"") + kModelFormat + "\""));
    if (!index.contains("version") || !index["version"].is_number_integer()
        || index["version"].get<int>() > kModelVersion)
        throw InputError(fileMessage(folder, "model.json: version: expected an integer <= "
                                                 + std::to_string(kModelVersion)));
    if (index.contains("files") && index["files"].is_array()) {
        for (const auto &f : index["files"]) {
            if (f.is_string() && !fs::exists(fs::path(folder) / f.get<std::string>()))
                throw InputError(fileMessage(folder, f.get<std::string>() + ": missing (listed in model.json)"));
        }
    }
    const fs::path specPath = fs::path(folder) / "spec.json";
    if (!fs::exists(specPath))
        throw InputError(fileMessage(folder, "spec.json: missing"));
    ArchSpec spec = ArchSpec::load(specPath.string());
    Model model(spec, 0);

    const fs::path weightsPath = fs::path(folder) / "weights.pt";
    if (!fs::exists(weightsPath))
        throw InputError(fileMessage(folder, "weights.pt: missing"));
    torch::serialize::InputArchive archive;
    try {
        archive.load_from(weightsPath.string(), torch::Device(torch::kCPU));
    } catch (const std::exception &e) {
        throw InputError(fileMessage(folder, "weights.pt: cannot read: " + firstLine(e.what())));
    }
    PeakNet &net = model.m_impl->net;
    torch::NoGradGuard noGrad;
    auto assign = [&](const std::string &name, torch::Tensor &target, bool isBuffer) {
        torch::Tensor t;
        if (!readNested(archive, name, isBuffer, t) || !t.defined())
            throw InputError(fileMessage(folder, "weights.pt: tensor '" + name
                                                     + "' missing (spec.json does not match the weights)"));
        if (!t.sizes().equals(target.sizes()))
            throw InputError(fileMessage(folder, "weights.pt: tensor '" + name + "' has shape "
                                                     + shapeString(t) + ", spec.json needs "
                                                     + shapeString(target)));
        if (t.scalar_type() != target.scalar_type())
            throw InputError(fileMessage(folder, "weights.pt: tensor '" + name + "' has type "
                                                     + std::string(c10::toString(t.scalar_type()))
                                                     + ", expected "
                                                     + std::string(c10::toString(target.scalar_type()))));
        target.copy_(t);
    };
    for (auto &p : net->named_parameters(true))
        assign(p.key(), p.value(), false);
    for (auto &b : net->named_buffers(true))
        assign(b.key(), b.value(), true);

    model.recipe = readJson(folder, "recipe.json");
    model.metrics = readJson(folder, "metrics.json");
    if (fs::exists(fs::path(folder) / "quantization.json"))
        model.quantization = readJson(folder, "quantization.json");
    net->eval();
    return model;
}

void Model::exportTorchScript(const std::string &path) const
{
    const std::string source = scriptSource(m_impl->spec);
    torch::jit::Module module("BraggNACPeakNet");
    torch::NoGradGuard noGrad;
    for (const auto &p : m_impl->net->named_parameters(true))
        module.register_parameter(scriptName(p.key()), p.value().detach().to(torch::kCPU).clone(), false);
    for (const auto &b : m_impl->net->named_buffers(true))
        module.register_buffer(scriptName(b.key()), b.value().detach().to(torch::kCPU).clone());
    try {
        module.define(source);
    } catch (const std::exception &e) {
        throw Error("exportTorchScript: generated TorchScript does not compile: " + firstLine(e.what()));
    }
    module.eval();
    AtomicOutput out(path);
    try {
        module.save(out.tempPath());
    } catch (const c10::Error &e) {
        throw Error(fileMessage(path, "cannot write TorchScript: " + firstLine(e.what())));
    }
    out.commit();
}

} // namespace braggnac::core
