// GGUF reader: header, metadata and tensor directory of a memory-mapped GGUF file (v2, v3).
//
// Layout (all little-endian): magic "GGUF", u32 version, u64 tensor_count, u64 kv_count,
// kv_count key/value pairs, tensor_count tensor infos, padding to `general.alignment`
// (default 32), then the tensor data. Source: ggml docs/gguf.md.
// Every count, length and offset is validated against the file size before it is used, so a
// truncated or malformed file raises sz::Error instead of reading out of bounds.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "formats/ggml_type.h"

namespace sz::gguf {

enum class ValueType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
    BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

const char* value_type_name(ValueType type);

// One metadata value. Scalars are widened into `integer` / `real`; arrays keep their element
// type and hold their elements in `array` (arrays may nest).
struct Value {
    ValueType type = ValueType::UINT8;
    ValueType element_type = ValueType::UINT8;  // for ARRAY only
    int64_t integer = 0;                        // every integer type and BOOL; saturates at INT64_MAX
    uint64_t unsigned_integer = 0;              // every unsigned type, including UINT64 above INT64_MAX
    double real = 0.0;                          // FLOAT32, FLOAT64
    std::string string;                         // STRING
    std::vector<Value> array;                   // ARRAY
};

struct TensorInfo {
    std::string name;
    std::vector<int64_t> ne;   // ggml order: ne[0] is the contiguous (fastest) dimension
    GgmlType type = GgmlType::F32;
    uint64_t offset = 0;       // relative to the start of the data section
    const uint8_t* data = nullptr;
    size_t nbytes = 0;

    int64_t n_elements() const;
    // PyTorch-order shape: ne reversed, so a Linear weight is [out, in].
    std::vector<int64_t> torch_shape() const;
};

class File {
public:
    // Opens and validates `path`; throws sz::Error naming the file and the bad field.
    static std::shared_ptr<File> open(const std::string& path);

    const std::string& path() const { return file_.path(); }
    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }

    const std::map<std::string, Value>& metadata() const { return metadata_; }
    const std::vector<std::string>& metadata_keys_in_order() const { return key_order_; }
    const Value* find(const std::string& key) const;
    bool has(const std::string& key) const { return find(key) != nullptr; }

    // Typed getters; each throws sz::Error naming the file and key when the key is missing or
    // has another type. The `_or` forms return `fallback` when the key is absent.
    std::string get_string(const std::string& key) const;
    std::string get_string_or(const std::string& key, const std::string& fallback) const;
    uint64_t get_uint(const std::string& key) const;      // any unsigned or non-negative integer type
    uint64_t get_uint_or(const std::string& key, uint64_t fallback) const;
    double get_float(const std::string& key) const;       // FLOAT32 or FLOAT64
    double get_float_or(const std::string& key, double fallback) const;
    bool get_bool_or(const std::string& key, bool fallback) const;
    std::vector<std::string> get_string_array(const std::string& key) const;
    std::vector<float> get_float_array(const std::string& key) const;
    std::vector<int32_t> get_int_array(const std::string& key) const;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(const std::string& name) const;
    // Throws sz::Error naming the file and tensor when it is absent.
    const TensorInfo& tensor(const std::string& name) const;

private:
    explicit File(MappedFile file) : file_(std::move(file)) {}
    void parse();

    MappedFile file_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::map<std::string, Value> metadata_;
    std::vector<std::string> key_order_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t> tensor_index_;
};

}  // namespace sz::gguf
