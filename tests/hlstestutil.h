#pragma once
// Shared by the HLS export tests (tst_hlsexport, tst_hlscheck): the small network every check
// exports, and reading an exported file back as text.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/arch/archspec.h"

namespace braggnac::test {

/// conv 6 (k3, batch norm, ReLU) -> conv 8 (k3, batch norm, LeakyReLU) -> dense 16 (ReLU) -> out.
inline core::ArchSpec friendlySpec()
{
    using namespace braggnac::core;
    ArchSpec s;
    s.name = "friendly";
    s.inputSize = 11;
    s.stem = {6, 3, Norm::Batch, Activation::ReLU};
    BlockSpec b;
    b.type = BlockType::Conv;
    b.layers = {{8, 3, Norm::Batch, Activation::LeakyReLU}};
    s.blocks = {b};
    s.head = {{16, Norm::None, Activation::ReLU}};
    return s;
}

/// The whole file as text ("" when it cannot be read).
inline std::string readText(const std::filesystem::path &p)
{
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

} // namespace braggnac::test
