#include "core/common/error.h"

namespace braggnac::core {

std::string fileMessage(const std::string &path, const std::string &message)
{
    return path.empty() ? message : path + ": " + message;
}

} // namespace braggnac::core
