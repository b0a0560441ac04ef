// Read-only memory map of a whole file. Model files are large (hundreds of MB to GB), so
// readers view them in place instead of copying them into memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sz {

class MappedFile {
public:
    // Maps `path` read-only; throws sz::Error naming the path if it cannot be opened or mapped.
    explicit MappedFile(const std::string& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&& other) noexcept;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace sz
