// Error type for every failure the user can act on: bad files, bad config, bad input.
//
// Library code throws sz::Error with a message that names the file, key, tensor or value
// and says what to do; only the CLI's main() catches it and turns it into an exit code.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace sz {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws sz::Error with an fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace sz

// Internal invariant: a violation is a bug in subzero, not bad input.
#define SZ_ASSERT(cond)                                                                  \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            throw std::logic_error(fmt::format("internal error at {}:{}: assertion '{}' " \
                                               "failed; please report this",              \
                                               __FILE__, __LINE__, #cond));              \
        }                                                                                \
    } while (0)
