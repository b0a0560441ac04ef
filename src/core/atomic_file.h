// Crash-safe file output: write to "<path>.tmp.<pid>", fsync, then rename over `path`.
// A reader never sees a half-written file. A killed writer leaves only its temporary, which
// the next write to the same path removes once that process is gone.
#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace sz {

// Calls `write` with a stream on a temporary file next to `path`, then syncs and renames it
// to `path`. On any exception the temporary file is removed and the exception rethrown.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

// Convenience for small text or binary payloads.
void write_file_atomically(const std::string& path, const std::string& contents);

}  // namespace sz
