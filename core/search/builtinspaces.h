#pragma once
// The search spaces shipped with BraggNAC (resources/spaces/*.json, compiled in at build time so
// the CLI and the studio find them without an installed resource folder).
//   nac  - the NAC paper's space (fastmachinelearning/nac-opt)
//   wide - kernels {1,3,5} and wider channels
#include <string>
#include <vector>

#include "core/search/space.h"

namespace braggnac::core {

std::vector<std::string> builtinSpaceNames();
/// The JSON text of a shipped space; throws InputError for an unknown name.
std::string builtinSpaceText(const std::string &name);
/// A shipped space by name, or a space file by path (InputError naming the file or the name).
SearchSpace resolveSpace(const std::string &nameOrPath);

} // namespace braggnac::core
