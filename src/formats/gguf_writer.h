// GGUF v3 writer: metadata of every value type and F32/F16/BF16/Q8_0 tensors, laid out as
// ggml's reader requires (sequential offsets, each tensor padded to the alignment).
//
// Typical use, for an f16 export that llama.cpp loads:
//   gguf::Writer writer;
//   writer.set_string("general.architecture", "gemma3");
//   writer.set_u32("gemma3.block_count", 18);
//   writer.add_tensor("token_embd.weight", embedding, GgmlType::F16);
//   writer.write("model.gguf");
// llama.cpp checks metadata types strictly: use u32 for counts and ids, f32 for epsilons and
// rope bases, bool for flags, and arrays of string / f32 / i32 for the tokenizer.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "formats/ggml_type.h"
#include "formats/gguf.h"

namespace sz::gguf {

// Builders for metadata values, mainly for arrays and nested arrays passed to set_value().
Value make_integer(ValueType type, int64_t value);  // any integer type; range-checked
Value make_uint64(uint64_t value);
Value make_float(ValueType type, double value);     // FLOAT32 or FLOAT64
Value make_bool(bool value);
Value make_string(std::string value);
// Every element must have type `element_type`; throws sz::Error otherwise.
Value make_array(ValueType element_type, std::vector<Value> elements);

class Writer {
public:
    // Metadata. Keys are written in the order they were first set; setting a key again
    // replaces its value and keeps its position.
    void set_u8(const std::string& key, uint8_t value);
    void set_i8(const std::string& key, int8_t value);
    void set_u16(const std::string& key, uint16_t value);
    void set_i16(const std::string& key, int16_t value);
    void set_u32(const std::string& key, uint32_t value);
    void set_i32(const std::string& key, int32_t value);
    void set_u64(const std::string& key, uint64_t value);
    void set_i64(const std::string& key, int64_t value);
    void set_f32(const std::string& key, float value);
    void set_f64(const std::string& key, double value);
    void set_bool(const std::string& key, bool value);
    void set_string(const std::string& key, const std::string& value);
    void set_string_array(const std::string& key, const std::vector<std::string>& values);
    void set_f32_array(const std::string& key, const std::vector<float>& values);
    void set_i32_array(const std::string& key, const std::vector<int32_t>& values);
    // Sets any value, including arrays of arrays. Throws sz::Error if an array contains an
    // element whose type is not its element_type.
    void set_value(const std::string& key, Value value);

    // Encodes a floating-point torch tensor (any float dtype; converted to float32 first) as
    // `type`, which must be F32, F16, BF16 or Q8_0. The GGUF dimensions are the torch shape
    // reversed, with the same bytes (no transpose). Throws sz::Error for a name that is empty,
    // longer than 63 bytes or already added, for more than 4 dimensions, and for a last
    // dimension that is not a multiple of the type's block size.
    void add_tensor(const std::string& name, const torch::Tensor& tensor, GgmlType type);
    // Adds already encoded data of any known type. `ne` is in ggml order (ne[0] contiguous).
    // `data` must be exactly ggml_row_size(type, ne[0]) times the product of the other ne bytes.
    void add_tensor_data(const std::string& name, const std::vector<int64_t>& ne, GgmlType type,
                         std::vector<uint8_t> data);

    size_t metadata_count() const { return entries_.size(); }
    size_t tensor_count() const { return tensors_.size(); }

    // Writes the file atomically (temporary file, then rename). The alignment is the
    // `general.alignment` value when set (a uint32 power of two), otherwise 32.
    void write(const std::string& path) const;
    void write(std::ostream& out) const;

private:
    struct Entry {
        std::string key;
        Value value;
    };
    struct PendingTensor {
        std::string name;
        std::vector<int64_t> ne;
        GgmlType type;
        std::vector<uint8_t> data;
    };

    void check_tensor_name(const std::string& name) const;
    uint64_t alignment() const;

    std::vector<Entry> entries_;
    std::vector<PendingTensor> tensors_;
};

}  // namespace sz::gguf
