// Helpers shared by the GoogleTest suite: where the sources and the real model are, temporary
// folders, and running the Python reference scripts in tests/reference/.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "core/model_path.h"

namespace sz::test {

// Repository root; CTest sets SUBZERO_SOURCE_DIR, a manual run falls back to the cwd.
inline std::string source_dir() {
    const char* dir = std::getenv("SUBZERO_SOURCE_DIR");
    return dir != nullptr ? dir : std::filesystem::current_path().string();
}

// The real Gemma 3 270M GGUF installed by scripts/setup.sh. Tests that need it fail (not
// skip) when it is missing, because CI installs it.
inline std::string real_model_path() { return resolve_model_path("gemma3-270m"); }

// A fresh empty folder under the system temp dir, unique per call.
inline std::string make_temp_dir(const std::string& prefix) {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed for " + pattern);
    }
    return pattern;
}

// Runs `python3 tests/reference/<script> <args>` and returns its stdout; throws with the
// exit status when it fails.
inline std::string run_python_reference(const std::string& script, const std::string& args) {
    std::string command = "python3 '" + source_dir() + "/tests/reference/" + script + "' " + args;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
        throw std::runtime_error("cannot start: " + command);
    }
    std::string output;
    char buffer[65536];
    size_t n = 0;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
        output.append(buffer, n);
    }
    int status = pclose(pipe);
    if (status != 0) {
        throw std::runtime_error("reference script failed (status " + std::to_string(status) + "): " + command);
    }
    return output;
}

}  // namespace sz::test
