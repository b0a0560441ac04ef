#include "core/atomic_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

#include "core/error.h"

namespace sz {

namespace {

void fsync_path(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;  // Directories on some filesystems cannot be opened; the rename still happened.
    }
    ::fsync(fd);
    ::close(fd);
}

std::string parent_directory(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos) {
        return ".";
    }
    return slash == 0 ? "/" : path.substr(0, slash);
}

// Removes "<path>.tmp.<pid>" files whose writer process no longer exists: a writer killed by
// SIGKILL or an unhandled signal cannot clean up after itself, so the next write does it.
void remove_stale_temporaries(const std::string& path) {
    namespace fs = std::filesystem;
    fs::path target(path);
    fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
    const std::string prefix = target.filename().string() + ".tmp.";
    std::error_code error;
    for (const fs::directory_entry& entry : fs::directory_iterator(folder, error)) {
        const std::string name = entry.path().filename().string();
        if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) {
            continue;
        }
        const std::string pid = name.substr(prefix.size());
        if (pid.find_first_not_of("0123456789") != std::string::npos || pid == std::to_string(::getpid())) {
            continue;
        }
        if (!fs::exists("/proc/" + pid, error)) {
            fs::remove(entry.path(), error);
        }
    }
}

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
    remove_stale_temporaries(path);
    std::string temporary = path + ".tmp." + std::to_string(::getpid());
    try {
        {
            std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
            if (!out) {
                fail("cannot create '{}': {}", temporary, std::strerror(errno));
            }
            write(out);
            out.flush();
            if (!out) {
                fail("failed writing '{}' (disk full?)", temporary);
            }
        }
        fsync_path(temporary);
        if (std::rename(temporary.c_str(), path.c_str()) != 0) {
            fail("cannot rename '{}' to '{}': {}", temporary, path, std::strerror(errno));
        }
        fsync_path(parent_directory(path));
    } catch (...) {
        std::remove(temporary.c_str());
        throw;
    }
}

void write_file_atomically(const std::string& path, const std::string& contents) {
    write_file_atomically(path, [&](std::ostream& out) { out.write(contents.data(), contents.size()); });
}

}  // namespace sz
