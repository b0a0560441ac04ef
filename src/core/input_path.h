// Finds an input file or folder that a config or a default names by a relative path, so that
// the shipped configs and data files work from any working directory.
#pragma once

#include <string>

namespace sz {

// Resolves `path`. An absolute path must exist, and a relative one is tried in the working
// directory, then in `config_dir` (skipped when empty), then in the subzero checkout that
// contains this binary (build/subzero -> ..). Throws sz::Error naming `key`, the value and
// every place tried when the path exists in none of them.
std::string resolve_input_path(const std::string& path, const std::string& config_dir, const std::string& key);

}  // namespace sz
