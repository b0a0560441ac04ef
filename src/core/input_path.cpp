#include "core/input_path.h"

#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace sz {

namespace fs = std::filesystem;

namespace {

// The subzero checkout that contains this binary (build/subzero -> ..), or "" when unknown.
fs::path checkout_dir() {
    std::error_code error;
    fs::path executable = fs::read_symlink("/proc/self/exe", error);
    return error ? fs::path() : executable.parent_path().parent_path();
}

}  // namespace

std::string resolve_input_path(const std::string& path, const std::string& config_dir, const std::string& key) {
    if (path.empty()) {
        fail("'{}' is empty", key);
    }
    const fs::path given(path);
    if (given.is_absolute()) {
        if (!fs::exists(given)) {
            fail("'{}': {} does not exist", key, path);
        }
        return path;
    }
    std::vector<fs::path> candidates = {fs::current_path() / given};
    if (!config_dir.empty()) {
        candidates.push_back(fs::path(config_dir) / given);
    }
    if (!checkout_dir().empty()) {
        candidates.push_back(checkout_dir() / given);
    }
    std::vector<std::string> tried;
    for (const fs::path& candidate : candidates) {
        if (fs::exists(candidate)) {
            return candidate.lexically_normal().string();
        }
        tried.push_back(candidate.lexically_normal().string());
    }
    fail("'{}': '{}' not found; looked in {}", key, path, fmt::join(tried, ", "));
}

}  // namespace sz
