#pragma once
// Exceptions thrown at core API boundaries. Messages name the file, the dataset/field/offset and
// what was expected, in one line, so the CLI and the studio can show them verbatim.
#include <stdexcept>
#include <string>

namespace braggnac::core {

/// A failed computation (CLI exit code 1).
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Bad input: unreadable or malformed file, wrong dataset path, invalid spec field, bad
/// argument (CLI exit code 2).
class InputError : public Error {
public:
    using Error::Error;
};

/// Thrown by long operations when their CancelToken was triggered.
class CancelledError : public Error {
public:
    CancelledError() : Error("cancelled") {}
};

/// "path: message" -- the house format for errors about a file.
std::string fileMessage(const std::string &path, const std::string &message);

} // namespace braggnac::core
