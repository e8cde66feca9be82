#include "core/hls/hlscheck.h"

#include <chrono>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/compress/intref.h"
#include "core/hls/hlsexport.h"
#include "core/io/patchdataset.h"

namespace braggnac::core {

namespace {

double secondsSince(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class T>
T field(const nlohmann::json &j, const char *key, const std::string &context)
{
    if (!j.is_object() || !j.contains(key))
        throw InputError(context + ": missing field '" + key + "'");
    try {
        return j.at(key).get<T>();
    } catch (const nlohmann::json::exception &) {
        throw InputError(context + ": field '" + key + "' has the wrong type");
    }
}

std::optional<double> optionalNumber(const nlohmann::json &j, const char *key, const std::string &context)
{
    if (!j.is_object() || !j.contains(key))
        throw InputError(context + ": missing field '" + key + "'");
    if (j.at(key).is_null())
        return std::nullopt;
    if (!j.at(key).is_number())
        throw InputError(context + ": field '" + key + "' is neither a number nor null");
    return j.at(key).get<double>();
}

} // namespace

nlohmann::json HlsCheck::toJson() const
{
    nlohmann::json list = nlohmann::json::array();
    for (const HlsMismatch &m : firstMismatches)
        list.push_back({{"patch", m.patch},
                        {"output", m.output},
                        {"expected", m.expected},
                        {"got", m.got ? nlohmann::json(*m.got) : nlohmann::json(nullptr)}});
    return {{"n", patches},
            {"outputs", outputs},
            {"csim_outputs", csimOutputs},
            {"mismatches", mismatches},
            {"first_mismatches", list},
            {"mean_distance", meanDistance ? nlohmann::json(*meanDistance) : nlohmann::json(nullptr)},
            {"csim_results", csimResults},
            {"build_log", buildLog},
            {"seconds", {{"csim", csimSeconds}, {"reference", referenceSeconds}}}};
}

HlsCheck HlsCheck::fromJson(const nlohmann::json &j, const std::string &context)
{
    HlsCheck c;
    c.patches = field<std::size_t>(j, "n", context);
    c.outputs = field<std::size_t>(j, "outputs", context);
    c.csimOutputs = field<std::size_t>(j, "csim_outputs", context);
    c.mismatches = field<std::size_t>(j, "mismatches", context);
    c.meanDistance = optionalNumber(j, "mean_distance", context);
    c.csimResults = field<std::string>(j, "csim_results", context);
    c.buildLog = field<std::string>(j, "build_log", context);
    const nlohmann::json &list = j.contains("first_mismatches") ? j.at("first_mismatches") : nlohmann::json();
    if (!list.is_array())
        throw InputError(context + ": field 'first_mismatches' is not an array");
    for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string where = context + ": first_mismatches[" + std::to_string(i) + "]";
        HlsMismatch m;
        m.patch = field<std::size_t>(list[i], "patch", where);
        m.output = field<std::size_t>(list[i], "output", where);
        m.expected = field<double>(list[i], "expected", where);
        m.got = optionalNumber(list[i], "got", where);
        c.firstMismatches.push_back(m);
    }
    const nlohmann::json &sec = j.contains("seconds") ? j.at("seconds") : nlohmann::json();
    c.csimSeconds = field<double>(sec, "csim", context + ": seconds");
    c.referenceSeconds = field<double>(sec, "reference", context + ": seconds");
    return c;
}

std::size_t hlsCheckPatchCount(const PatchDataset &data, int inputSize, std::size_t nWanted, const std::string &dataName)
{
    if (data.patchSize != inputSize)
        throw InputError(fileMessage(dataName, "patches are " + std::to_string(data.patchSize) + " x "
                                                   + std::to_string(data.patchSize) + ", the model takes "
                                                   + std::to_string(inputSize)));
    const std::size_t n = std::min(nWanted, data.size());
    if (n == 0)
        throw InputError(fileMessage(dataName, "no patches"));
    return n;
}

HlsCheck checkHlsExport(const std::string &dir, const IntegerReference &ref, const PatchDataset &data, std::size_t n,
                        const Monitor &monitor, const std::string &dataName, const std::string &apTypes)
{
    const LayerPlan &plan = ref.plan();
    if (hlsCheckPatchCount(data, plan.spec.inputSize, n, dataName) != n)
        throw InputError(fileMessage(dataName, "holds " + std::to_string(data.size()) + " patches, the check asked for "
                                                   + std::to_string(n)));
    {
        // The testbench simulates every line of its input file: it must hold exactly these n patches.
        const std::string tbInput = dir + "/tb_data/tb_input_features.dat";
        std::ifstream f(tbInput);
        if (!f)
            throw InputError(fileMessage(tbInput, "missing: not an HLS export with testbench data (braggnac export-hls --check)"));
        std::size_t lines = 0;
        std::string line;
        while (std::getline(f, line))
            lines += !line.empty();
        if (lines != n)
            throw InputError(fileMessage(tbInput, "holds " + std::to_string(lines) + " patches, the check is on "
                                                      + std::to_string(n) + "; export with the check's patches"));
    }
    const FixedFormat &fo = ref.format(int(plan.ops.size()) - 1);
    const std::size_t nout = std::size_t(plan.output().outElements());

    HlsCheck c;
    c.patches = n;
    c.csimResults = dir + "/tb_data/csim_results.log";
    c.buildLog = dir + "/csim_build.log";
    monitor.report(0, "C simulation: building and running " + dir + "/build_csim.sh (g++)");
    auto t0 = std::chrono::steady_clock::now();
    const std::vector<std::int64_t> csim = runCsim(dir, fo, apTypes, monitor);
    c.csimSeconds = secondsSince(t0);
    monitor.check();
    monitor.report(0.9, "comparing with the integer reference");
    t0 = std::chrono::steady_clock::now();
    const std::vector<std::int64_t> expect = ref.forwardRaw(data.patches.data(), n);
    c.referenceSeconds = secondsSince(t0);

    c.outputs = expect.size();
    c.csimOutputs = csim.size();
    for (std::size_t k = 0; k < expect.size(); ++k) {
        const bool missing = k >= csim.size();
        if (!missing && csim[k] == expect[k])
            continue;
        ++c.mismatches;
        if (c.firstMismatches.size() < HlsCheck::kListedMismatches) {
            HlsMismatch m;
            m.patch = k / nout;
            m.output = k % nout;
            m.expected = fo.toDouble(expect[k]);
            if (!missing)
                m.got = fo.toDouble(csim[k]);
            c.firstMismatches.push_back(m);
        }
    }
    if (csim.size() > expect.size())
        c.mismatches += csim.size() - expect.size();

    // The distance of the C simulation's (row, column) outputs, in units of the patch size, to the labels.
    if (!data.centers.empty() && csim.size() >= expect.size() && nout >= 2) {
        const double s = plan.spec.inputSize;
        double sum = 0;
        for (std::size_t p = 0; p < n; ++p) {
            const double r = fo.toDouble(csim[nout * p]) * s - data.centers[2 * p];
            const double col = fo.toDouble(csim[nout * p + 1]) * s - data.centers[2 * p + 1];
            sum += std::sqrt(r * r + col * col);
        }
        c.meanDistance = sum / double(n);
    }
    monitor.report(1, "compared");
    return c;
}

} // namespace braggnac::core
