// 64-bit FNV-1a: a fast, stable, non-cryptographic hash for cache keys and fingerprints
// (stage caches, checkpoint checksums, run-stage fingerprints). Constants from the FNV spec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace sz {

class Fnv1a64 {
public:
    void update(const void* data, size_t size) {
        const auto* bytes = static_cast<const uint8_t*>(data);
        for (size_t i = 0; i < size; ++i) {
            state_ = (state_ ^ bytes[i]) * 1099511628211ull;
        }
    }
    // Hashes the text and its terminating NUL, so that ("ab", "c") and ("a", "bc") differ.
    void update(const std::string& text) { update(text.c_str(), text.size() + 1); }
    std::string hex() const { return fmt::format("{:016x}", state_); }

private:
    uint64_t state_ = 1469598103934665603ull;
};

}  // namespace sz
