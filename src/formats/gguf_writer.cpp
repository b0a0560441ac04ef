#include "formats/gguf_writer.h"

#include <algorithm>
#include <limits>

#include <fmt/ranges.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace sz::gguf {

namespace {

constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr size_t kMaxTensorNameBytes = 63;
constexpr size_t kMaxDims = 4;

// Checks that every element of an array (recursively) has the array's element type.
void check_value(const Value& value, const std::string& key) {
    if (value.type != ValueType::ARRAY) {
        return;
    }
    for (size_t i = 0; i < value.array.size(); ++i) {
        const Value& element = value.array[i];
        if (element.type != value.element_type) {
            fail("metadata key '{}': array element {} has type {}, but the array's element type "
                 "is {}",
                 key, i, value_type_name(element.type), value_type_name(value.element_type));
        }
        check_value(element, key);
    }
}

// Little-endian binary output; the host is little-endian (checked in ggml_type.cpp).
class BinaryOutput {
public:
    explicit BinaryOutput(std::ostream& out) : out_(out) {}

    template <typename T>
    void put(T value) {
        out_.write(reinterpret_cast<const char*>(&value), sizeof(T));
        position_ += sizeof(T);
    }

    void put_bytes(const void* data, size_t size) {
        out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
        position_ += size;
    }

    void put_string(const std::string& text) {
        put<uint64_t>(text.size());
        put_bytes(text.data(), text.size());
    }

    void pad_to(uint64_t alignment) {
        static const char zeros[256] = {};
        while (position_ % alignment != 0) {
            const uint64_t gap = alignment - position_ % alignment;
            put_bytes(zeros, static_cast<size_t>(std::min<uint64_t>(gap, sizeof(zeros))));
        }
    }

private:
    std::ostream& out_;
    uint64_t position_ = 0;
};

// Writes a value without its type tag (the caller writes the tag where the format has one).
void put_value(BinaryOutput& out, const Value& value) {
    switch (value.type) {
        case ValueType::UINT8: out.put<uint8_t>(static_cast<uint8_t>(value.unsigned_integer)); break;
        case ValueType::UINT16: out.put<uint16_t>(static_cast<uint16_t>(value.unsigned_integer)); break;
        case ValueType::UINT32: out.put<uint32_t>(static_cast<uint32_t>(value.unsigned_integer)); break;
        case ValueType::UINT64: out.put<uint64_t>(value.unsigned_integer); break;
        case ValueType::INT8: out.put<int8_t>(static_cast<int8_t>(value.integer)); break;
        case ValueType::INT16: out.put<int16_t>(static_cast<int16_t>(value.integer)); break;
        case ValueType::INT32: out.put<int32_t>(static_cast<int32_t>(value.integer)); break;
        case ValueType::INT64: out.put<int64_t>(value.integer); break;
        case ValueType::FLOAT32: out.put<float>(static_cast<float>(value.real)); break;
        case ValueType::FLOAT64: out.put<double>(value.real); break;
        case ValueType::BOOL: out.put<uint8_t>(value.integer != 0 ? 1 : 0); break;
        case ValueType::STRING: out.put_string(value.string); break;
        case ValueType::ARRAY:
            out.put<uint32_t>(static_cast<uint32_t>(value.element_type));
            out.put<uint64_t>(value.array.size());
            for (const Value& element : value.array) {
                put_value(out, element);
            }
            break;
    }
}

uint64_t align_up(uint64_t offset, uint64_t alignment) {
    return (offset + alignment - 1) / alignment * alignment;
}

}  // namespace

Value make_integer(ValueType type, int64_t value) {
    int64_t min = 0;
    int64_t max = 0;
    switch (type) {
        case ValueType::UINT8: max = std::numeric_limits<uint8_t>::max(); break;
        case ValueType::UINT16: max = std::numeric_limits<uint16_t>::max(); break;
        case ValueType::UINT32: max = std::numeric_limits<uint32_t>::max(); break;
        case ValueType::UINT64: max = std::numeric_limits<int64_t>::max(); break;
        case ValueType::INT8:
            min = std::numeric_limits<int8_t>::min();
            max = std::numeric_limits<int8_t>::max();
            break;
        case ValueType::INT16:
            min = std::numeric_limits<int16_t>::min();
            max = std::numeric_limits<int16_t>::max();
            break;
        case ValueType::INT32:
            min = std::numeric_limits<int32_t>::min();
            max = std::numeric_limits<int32_t>::max();
            break;
        case ValueType::INT64:
            min = std::numeric_limits<int64_t>::min();
            max = std::numeric_limits<int64_t>::max();
            break;
        default: fail("make_integer: {} is not an integer value type", value_type_name(type));
    }
    if (value < min || value > max) {
        fail("value {} is out of range for GGUF type {}", value, value_type_name(type));
    }
    Value result;
    result.type = type;
    result.integer = value;
    if (min == 0) {
        result.unsigned_integer = static_cast<uint64_t>(value);
    }
    return result;
}

Value make_uint64(uint64_t value) {
    Value result;
    result.type = ValueType::UINT64;
    result.unsigned_integer = value;
    constexpr auto kMaxSigned = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    result.integer = static_cast<int64_t>(std::min(value, kMaxSigned));
    return result;
}

Value make_float(ValueType type, double value) {
    if (type != ValueType::FLOAT32 && type != ValueType::FLOAT64) {
        fail("make_float: {} is not a floating-point value type", value_type_name(type));
    }
    Value result;
    result.type = type;
    result.real = value;
    return result;
}

Value make_bool(bool value) {
    Value result;
    result.type = ValueType::BOOL;
    result.integer = value ? 1 : 0;
    return result;
}

Value make_string(std::string value) {
    Value result;
    result.type = ValueType::STRING;
    result.string = std::move(value);
    return result;
}

Value make_array(ValueType element_type, std::vector<Value> elements) {
    Value result;
    result.type = ValueType::ARRAY;
    result.element_type = element_type;
    result.array = std::move(elements);
    check_value(result, "(array)");
    return result;
}

void Writer::set_u8(const std::string& key, uint8_t value) { set_value(key, make_integer(ValueType::UINT8, value)); }
void Writer::set_i8(const std::string& key, int8_t value) { set_value(key, make_integer(ValueType::INT8, value)); }
void Writer::set_u16(const std::string& key, uint16_t value) { set_value(key, make_integer(ValueType::UINT16, value)); }
void Writer::set_i16(const std::string& key, int16_t value) { set_value(key, make_integer(ValueType::INT16, value)); }
void Writer::set_u32(const std::string& key, uint32_t value) { set_value(key, make_integer(ValueType::UINT32, value)); }
void Writer::set_i32(const std::string& key, int32_t value) { set_value(key, make_integer(ValueType::INT32, value)); }
void Writer::set_u64(const std::string& key, uint64_t value) { set_value(key, make_uint64(value)); }
void Writer::set_i64(const std::string& key, int64_t value) { set_value(key, make_integer(ValueType::INT64, value)); }
void Writer::set_f32(const std::string& key, float value) { set_value(key, make_float(ValueType::FLOAT32, value)); }
void Writer::set_f64(const std::string& key, double value) { set_value(key, make_float(ValueType::FLOAT64, value)); }
void Writer::set_bool(const std::string& key, bool value) { set_value(key, make_bool(value)); }
void Writer::set_string(const std::string& key, const std::string& value) { set_value(key, make_string(value)); }

void Writer::set_string_array(const std::string& key, const std::vector<std::string>& values) {
    std::vector<Value> elements;
    elements.reserve(values.size());
    for (const std::string& value : values) {
        elements.push_back(make_string(value));
    }
    set_value(key, make_array(ValueType::STRING, std::move(elements)));
}

void Writer::set_f32_array(const std::string& key, const std::vector<float>& values) {
    std::vector<Value> elements;
    elements.reserve(values.size());
    for (float value : values) {
        elements.push_back(make_float(ValueType::FLOAT32, value));
    }
    set_value(key, make_array(ValueType::FLOAT32, std::move(elements)));
}

void Writer::set_i32_array(const std::string& key, const std::vector<int32_t>& values) {
    std::vector<Value> elements;
    elements.reserve(values.size());
    for (int32_t value : values) {
        elements.push_back(make_integer(ValueType::INT32, value));
    }
    set_value(key, make_array(ValueType::INT32, std::move(elements)));
}

void Writer::set_value(const std::string& key, Value value) {
    if (key.empty()) {
        fail("GGUF metadata keys must not be empty");
    }
    if (key.size() > std::numeric_limits<uint16_t>::max()) {
        fail("GGUF metadata key '{}...' is {} bytes long; the format allows at most 65535",
             key.substr(0, 40), key.size());
    }
    check_value(value, key);
    for (Entry& entry : entries_) {
        if (entry.key == key) {
            entry.value = std::move(value);
            return;
        }
    }
    entries_.push_back({key, std::move(value)});
}

void Writer::check_tensor_name(const std::string& name) const {
    if (name.empty()) {
        fail("GGUF tensor names must not be empty");
    }
    if (name.size() > kMaxTensorNameBytes) {
        fail("GGUF tensor name '{}' is {} bytes long; ggml allows at most {}", name, name.size(),
             kMaxTensorNameBytes);
    }
    for (const PendingTensor& tensor : tensors_) {
        if (tensor.name == name) {
            fail("GGUF tensor '{}' was added twice", name);
        }
    }
}

void Writer::add_tensor(const std::string& name, const torch::Tensor& tensor, GgmlType type) {
    check_tensor_name(name);
    if (type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::BF16 && type != GgmlType::Q8_0) {
        fail("tensor '{}': the GGUF writer encodes F32, F16, BF16 and Q8_0, not {}", name,
             ggml_type_name(type));
    }
    if (!tensor.is_floating_point()) {
        fail("tensor '{}' has dtype {}; the GGUF writer needs a floating-point tensor", name,
             std::string(c10::toString(tensor.scalar_type())));
    }
    if (tensor.dim() < 1 || static_cast<size_t>(tensor.dim()) > kMaxDims) {
        fail("tensor '{}' has {} dimensions; GGUF tensors have 1 to {}", name, tensor.dim(), kMaxDims);
    }
    std::vector<int64_t> ne(tensor.sizes().rbegin(), tensor.sizes().rend());
    const int64_t block_size = ggml_type_traits(type).block_size;
    if (ne[0] % block_size != 0) {
        fail("tensor '{}' has a last dimension of {}, which is not a multiple of the {} block "
             "size {}; store it as F16 or F32 instead",
             name, ne[0], ggml_type_name(type), block_size);
    }

    torch::Tensor values = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    std::vector<uint8_t> data(ggml_row_size(type, values.numel()));
    quantize(type, values.data_ptr<float>(), data.data(), values.numel());
    tensors_.push_back({name, std::move(ne), type, std::move(data)});
}

void Writer::add_tensor_data(const std::string& name, const std::vector<int64_t>& ne, GgmlType type,
                             std::vector<uint8_t> data) {
    check_tensor_name(name);
    if (ne.empty() || ne.size() > kMaxDims) {
        fail("tensor '{}' has {} dimensions; GGUF tensors have 1 to {}", name, ne.size(), kMaxDims);
    }
    int64_t rows = 1;
    for (size_t d = 1; d < ne.size(); ++d) {
        if (ne[d] < 0) {
            fail("tensor '{}' has a negative dimension {}", name, ne[d]);
        }
        rows *= ne[d];
    }
    const size_t expected = ggml_row_size(type, ne[0]) * static_cast<size_t>(rows);
    if (data.size() != expected) {
        fail("tensor '{}' of type {} and ne [{}] needs {} bytes, got {}", name, ggml_type_name(type),
             fmt::join(ne, ", "), expected, data.size());
    }
    tensors_.push_back({name, ne, type, std::move(data)});
}

uint64_t Writer::alignment() const {
    for (const Entry& entry : entries_) {
        if (entry.key != "general.alignment") {
            continue;
        }
        const uint64_t value = entry.value.unsigned_integer;
        if (entry.value.type != ValueType::UINT32 || value == 0 || (value & (value - 1)) != 0) {
            fail("metadata key 'general.alignment' must be a uint32 power of two, such as 32");
        }
        return value;
    }
    return kDefaultAlignment;
}

void Writer::write(std::ostream& stream) const {
    const uint64_t align = alignment();
    BinaryOutput out(stream);

    out.put<uint32_t>(0x46554747);  // "GGUF"
    out.put<uint32_t>(kVersion);
    out.put<uint64_t>(tensors_.size());
    out.put<uint64_t>(entries_.size());

    for (const Entry& entry : entries_) {
        out.put_string(entry.key);
        out.put<uint32_t>(static_cast<uint32_t>(entry.value.type));
        put_value(out, entry.value);
    }

    // ggml requires each offset to equal the padded sizes of all earlier tensors.
    uint64_t offset = 0;
    for (const PendingTensor& tensor : tensors_) {
        out.put_string(tensor.name);
        out.put<uint32_t>(static_cast<uint32_t>(tensor.ne.size()));
        for (int64_t dim : tensor.ne) {
            out.put<uint64_t>(static_cast<uint64_t>(dim));
        }
        out.put<uint32_t>(static_cast<uint32_t>(tensor.type));
        out.put<uint64_t>(offset);
        offset = align_up(offset + tensor.data.size(), align);
    }
    out.pad_to(align);

    for (const PendingTensor& tensor : tensors_) {
        out.put_bytes(tensor.data.data(), tensor.data.size());
        out.pad_to(align);
    }
}

void Writer::write(const std::string& path) const {
    alignment();  // reject a bad general.alignment before creating the temporary file
    write_file_atomically(path, [this](std::ostream& out) { write(out); });
}

}  // namespace sz::gguf
