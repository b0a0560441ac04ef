#include "core/atomic_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
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

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
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
