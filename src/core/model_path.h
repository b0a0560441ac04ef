// Resolves what the user typed as MODEL: a file or folder path, or a short name of a model
// installed from PyPI (for example `gemma3-270m`), so users need not type a site-packages path.
#pragma once

#include <string>
#include <vector>

namespace sz {

// Returns an existing path for `name_or_path`, or throws sz::Error listing the places tried
// and how to install the model.
std::string resolve_model_path(const std::string& name_or_path);

// Returns the supported short names, each with the file it resolves to when installed.
std::vector<std::pair<std::string, std::string>> known_model_names();

}  // namespace sz
