#include "formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace sz::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr size_t kMaxTensorNameBytes = 63;  // ggml's GGML_MAX_NAME (64) includes the NUL
constexpr uint32_t kMaxDims = 4;            // ggml's GGML_MAX_DIMS
// Arrays of arrays are legal. The nesting limit keeps a crafted file from exhausting the
// stack with millions of nested array headers (each needs only 12 bytes).
constexpr int kMaxArrayNesting = 8;

const char* const kCorruptHint = "the file is truncated or corrupt; download or convert it again";

bool is_valid_value_type(uint32_t type) { return type <= static_cast<uint32_t>(ValueType::FLOAT64); }

// Bytes taken by one value of a fixed-size type, or 0 for STRING and ARRAY.
size_t fixed_value_size(ValueType type) {
    switch (type) {
        case ValueType::UINT8:
        case ValueType::INT8:
        case ValueType::BOOL: return 1;
        case ValueType::UINT16:
        case ValueType::INT16: return 2;
        case ValueType::UINT32:
        case ValueType::INT32:
        case ValueType::FLOAT32: return 4;
        case ValueType::UINT64:
        case ValueType::INT64:
        case ValueType::FLOAT64: return 8;
        case ValueType::STRING:
        case ValueType::ARRAY: return 0;
    }
    return 0;
}

// Smallest encoding of one value: a string needs its u64 length, an array its u32 element type
// and u64 count. Used to reject counts that cannot fit in the bytes left before allocating.
size_t min_value_size(ValueType type) {
    if (type == ValueType::STRING) {
        return 8;
    }
    if (type == ValueType::ARRAY) {
        return 12;
    }
    return fixed_value_size(type);
}

bool is_unsigned_integer(ValueType type) {
    return type == ValueType::UINT8 || type == ValueType::UINT16 || type == ValueType::UINT32 ||
           type == ValueType::UINT64;
}

bool is_signed_integer(ValueType type) {
    return type == ValueType::INT8 || type == ValueType::INT16 || type == ValueType::INT32 ||
           type == ValueType::INT64;
}

bool is_float(ValueType type) { return type == ValueType::FLOAT32 || type == ValueType::FLOAT64; }

std::string describe_type(const Value& value) {
    if (value.type == ValueType::ARRAY) {
        return fmt::format("array of {}", value_type_name(value.element_type));
    }
    return value_type_name(value.type);
}

// Bounds-checked little-endian reader over the mapped file. Every read names the field and
// the current key or tensor in its error, so a bad file can be located with a hex dump.
class Cursor {
public:
    Cursor(const std::string& path, const uint8_t* data, size_t size)
        : path_(path), data_(data), size_(size) {}

    size_t position() const { return position_; }
    size_t remaining() const { return size_ - position_; }

    // What is being parsed, for error messages: "metadata key 'x'", "tensor 'y'".
    void set_context(std::string context) { context_ = std::move(context); }
    const std::string& context() const { return context_; }

    template <typename T>
    T read(const char* field) {
        require(sizeof(T), field);
        T value;
        std::memcpy(&value, data_ + position_, sizeof(T));
        position_ += sizeof(T);
        return value;
    }

    std::string read_string(const char* field) {
        const size_t start = position_;
        const auto length = read<uint64_t>(field);
        if (length > remaining()) {
            fail("invalid GGUF file '{}': {}: {} at offset {} has length {}, but only {} bytes "
                 "remain in the file; {}",
                 path_, context_, field, start, length, remaining(), kCorruptHint);
        }
        std::string text(reinterpret_cast<const char*>(data_ + position_), static_cast<size_t>(length));
        position_ += static_cast<size_t>(length);
        return text;
    }

    void require(size_t n_bytes, const char* field) const {
        if (n_bytes > remaining()) {
            fail("invalid GGUF file '{}': {}: {} at offset {} needs {} bytes, but the file ends "
                 "after {}; {}",
                 path_, context_, field, position_, n_bytes, remaining(), kCorruptHint);
        }
    }

private:
    const std::string& path_;
    const uint8_t* data_;
    size_t size_;
    size_t position_ = 0;
    std::string context_ = "header";
};

Value read_value(Cursor& cursor, const std::string& path, ValueType type, int depth);

void read_array(Cursor& cursor, const std::string& path, Value& value, int depth) {
    const size_t start = cursor.position();
    const auto element_type = cursor.read<uint32_t>("array element type");
    if (!is_valid_value_type(element_type)) {
        fail("invalid GGUF file '{}': {}: array at offset {} has element type {}, which is not a "
             "GGUF value type (0-12); {}",
             path, cursor.context(), start, element_type, kCorruptHint);
    }
    value.element_type = static_cast<ValueType>(element_type);
    if (value.element_type == ValueType::ARRAY && depth + 1 >= kMaxArrayNesting) {
        fail("invalid GGUF file '{}': {}: arrays are nested more than {} levels deep",
             path, cursor.context(), kMaxArrayNesting);
    }
    const auto count = cursor.read<uint64_t>("array length");
    const size_t min_size = min_value_size(value.element_type);
    if (count > cursor.remaining() / min_size) {
        fail("invalid GGUF file '{}': {}: array of {} at offset {} claims {} elements, more than "
             "the {} bytes left in the file can hold; {}",
             path, cursor.context(), value_type_name(value.element_type), start, count,
             cursor.remaining(), kCorruptHint);
    }
    // TODO: each element is a full Value (about 90 bytes), so the three 262144-entry tokenizer
    // arrays of Gemma 3 take roughly 70 MB. Typed element vectors would need a change to gguf.h.
    value.array.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) {
        value.array.push_back(read_value(cursor, path, value.element_type, depth + 1));
    }
}

Value read_value(Cursor& cursor, const std::string& path, ValueType type, int depth) {
    Value value;
    value.type = type;
    switch (type) {
        case ValueType::UINT8:
            value.unsigned_integer = cursor.read<uint8_t>("uint8 value");
            break;
        case ValueType::UINT16:
            value.unsigned_integer = cursor.read<uint16_t>("uint16 value");
            break;
        case ValueType::UINT32:
            value.unsigned_integer = cursor.read<uint32_t>("uint32 value");
            break;
        case ValueType::UINT64:
            value.unsigned_integer = cursor.read<uint64_t>("uint64 value");
            break;
        case ValueType::INT8: value.integer = cursor.read<int8_t>("int8 value"); break;
        case ValueType::INT16: value.integer = cursor.read<int16_t>("int16 value"); break;
        case ValueType::INT32: value.integer = cursor.read<int32_t>("int32 value"); break;
        case ValueType::INT64: value.integer = cursor.read<int64_t>("int64 value"); break;
        case ValueType::FLOAT32: value.real = cursor.read<float>("float32 value"); break;
        case ValueType::FLOAT64: value.real = cursor.read<double>("float64 value"); break;
        case ValueType::BOOL: {
            const size_t offset = cursor.position();
            const auto byte = cursor.read<uint8_t>("bool value");
            if (byte > 1) {
                fail("invalid GGUF file '{}': {}: bool at offset {} is {}, expected 0 or 1; {}",
                     path, cursor.context(), offset, byte, kCorruptHint);
            }
            value.integer = byte;
            break;
        }
        case ValueType::STRING: value.string = cursor.read_string("string value"); break;
        case ValueType::ARRAY: read_array(cursor, path, value, depth); break;
    }
    if (is_unsigned_integer(type)) {
        // `integer` mirrors the value when it fits, and saturates for uint64 above INT64_MAX.
        constexpr auto kMaxSigned = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
        value.integer = static_cast<int64_t>(std::min(value.unsigned_integer, kMaxSigned));
    }
    return value;
}

uint64_t align_up(uint64_t offset, uint64_t alignment) {
    return (offset + alignment - 1) / alignment * alignment;
}

}  // namespace

const char* value_type_name(ValueType type) {
    switch (type) {
        case ValueType::UINT8: return "uint8";
        case ValueType::INT8: return "int8";
        case ValueType::UINT16: return "uint16";
        case ValueType::INT16: return "int16";
        case ValueType::UINT32: return "uint32";
        case ValueType::INT32: return "int32";
        case ValueType::FLOAT32: return "float32";
        case ValueType::BOOL: return "bool";
        case ValueType::STRING: return "string";
        case ValueType::ARRAY: return "array";
        case ValueType::UINT64: return "uint64";
        case ValueType::INT64: return "int64";
        case ValueType::FLOAT64: return "float64";
    }
    return "unknown";
}

int64_t TensorInfo::n_elements() const {
    int64_t count = 1;
    for (int64_t dim : ne) {
        count *= dim;
    }
    return count;
}

std::vector<int64_t> TensorInfo::torch_shape() const { return {ne.rbegin(), ne.rend()}; }

std::shared_ptr<File> File::open(const std::string& path) {
    std::shared_ptr<File> file(new File(MappedFile(path)));
    file->parse();
    return file;
}

void File::parse() {
    const std::string& path = file_.path();
    Cursor cursor(path, file_.data(), file_.size());

    // Header.
    if (file_.size() < 4) {
        fail("invalid GGUF file '{}': it is {} bytes long, too short for the 'GGUF' magic; {}",
             path, file_.size(), kCorruptHint);
    }
    const auto magic = cursor.read<uint32_t>("magic");
    if (magic != kMagic) {
        const uint8_t* b = file_.data();
        fail("invalid GGUF file '{}': the first bytes are {:02x} {:02x} {:02x} {:02x}, not the "
             "magic 'GGUF' (47 47 55 46); pass a .gguf model file",
             path, b[0], b[1], b[2], b[3]);
    }
    version_ = cursor.read<uint32_t>("version");
    if (version_ == 1) {
        fail("unsupported GGUF file '{}': version 1 is obsolete (32-bit counts); convert the model "
             "again with a current llama.cpp",
             path);
    }
    if (version_ != 2 && version_ != 3) {
        if ((version_ & 0xFFFF) == 0 && version_ != 0) {
            fail("unsupported GGUF file '{}': version field is 0x{:08x}, which looks like a "
                 "big-endian GGUF; subzero reads little-endian files only",
                 path, version_);
        }
        fail("unsupported GGUF file '{}': version {}; subzero reads versions 2 and 3", path, version_);
    }
    const auto tensor_count = cursor.read<uint64_t>("tensor count");
    const auto kv_count = cursor.read<uint64_t>("metadata key/value count");

    // A key/value pair takes at least a key length, a value type and one value byte. A tensor
    // info takes at least a name length, n_dims, a type and an offset.
    constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;
    constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;
    if (kv_count > cursor.remaining() / kMinKeyValueBytes) {
        fail("invalid GGUF file '{}': header claims {} metadata key/value pairs, more than the {} "
             "bytes of the file can hold; {}",
             path, kv_count, cursor.remaining(), kCorruptHint);
    }
    if (tensor_count > cursor.remaining() / kMinTensorInfoBytes) {
        fail("invalid GGUF file '{}': header claims {} tensors, more than the {} bytes of the file "
             "can hold; {}",
             path, tensor_count, cursor.remaining(), kCorruptHint);
    }

    // Metadata.
    key_order_.reserve(static_cast<size_t>(kv_count));
    for (uint64_t i = 0; i < kv_count; ++i) {
        cursor.set_context(fmt::format("metadata pair #{}", i));
        std::string key = cursor.read_string("key");
        cursor.set_context(fmt::format("metadata key '{}'", key));
        if (metadata_.count(key) != 0) {
            fail("invalid GGUF file '{}': metadata key '{}' appears more than once", path, key);
        }
        const size_t type_offset = cursor.position();
        const auto type = cursor.read<uint32_t>("value type");
        if (!is_valid_value_type(type)) {
            fail("invalid GGUF file '{}': metadata key '{}' has value type {} at offset {}, which "
                 "is not a GGUF value type (0-12); {}",
                 path, key, type, type_offset, kCorruptHint);
        }
        metadata_.emplace(key, read_value(cursor, path, static_cast<ValueType>(type), 0));
        key_order_.push_back(std::move(key));
    }

    if (const Value* alignment = find("general.alignment")) {
        if (alignment->type != ValueType::UINT32) {
            fail("invalid GGUF file '{}': metadata key 'general.alignment' has type {}, expected "
                 "uint32",
                 path, describe_type(*alignment));
        }
        const uint64_t value = alignment->unsigned_integer;
        if (value == 0 || (value & (value - 1)) != 0) {
            fail("invalid GGUF file '{}': metadata key 'general.alignment' is {}, expected a "
                 "power of two such as 32",
                 path, value);
        }
        alignment_ = value;
    } else {
        alignment_ = kDefaultAlignment;
    }

    // Tensor directory.
    tensors_.reserve(static_cast<size_t>(tensor_count));
    for (uint64_t i = 0; i < tensor_count; ++i) {
        cursor.set_context(fmt::format("tensor #{}", i));
        TensorInfo info;
        info.name = cursor.read_string("tensor name");
        cursor.set_context(fmt::format("tensor '{}'", info.name));
        if (info.name.size() > kMaxTensorNameBytes) {
            fail("invalid GGUF file '{}': tensor name '{}' is {} bytes long; ggml allows at most {}",
                 path, info.name, info.name.size(), kMaxTensorNameBytes);
        }
        if (tensor_index_.count(info.name) != 0) {
            fail("invalid GGUF file '{}': tensor '{}' appears more than once", path, info.name);
        }

        const auto n_dims = cursor.read<uint32_t>("n_dims");
        if (n_dims > kMaxDims) {
            fail("invalid GGUF file '{}': tensor '{}' has {} dimensions; ggml allows at most {}; {}",
                 path, info.name, n_dims, kMaxDims, kCorruptHint);
        }
        int64_t n_elements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const auto dim = cursor.read<uint64_t>("dimension");
            if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                fail("invalid GGUF file '{}': tensor '{}' has dimension {} of size {}, which is "
                     "negative as int64; {}",
                     path, info.name, d, dim, kCorruptHint);
            }
            const auto size = static_cast<int64_t>(dim);
            if (size != 0 && n_elements > std::numeric_limits<int64_t>::max() / size) {
                fail("invalid GGUF file '{}': tensor '{}' has more than 2^63 elements; {}",
                     path, info.name, kCorruptHint);
            }
            n_elements *= size;
            info.ne.push_back(size);
        }

        const auto type_id = cursor.read<uint32_t>("ggml type");
        const GgmlTypeTraits* traits = ggml_type_traits(type_id);
        if (traits == nullptr) {
            fail("unsupported GGUF file '{}': tensor '{}' has ggml type id {}, which subzero does "
                 "not know; supported types are F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
                 "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K and IQ4_NL; requantize the model to one of them",
                 path, info.name, type_id);
        }
        info.type = static_cast<GgmlType>(type_id);
        const int64_t row_length = info.ne.empty() ? 1 : info.ne[0];
        if (row_length % traits->block_size != 0) {
            fail("invalid GGUF file '{}': tensor '{}' of type {} has ne[0] = {}, which is not a "
                 "multiple of the block size {}",
                 path, info.name, traits->name, row_length, traits->block_size);
        }
        info.offset = cursor.read<uint64_t>("data offset");

        // Bytes = blocks * type_size; checked against overflow before multiplying.
        const uint64_t n_blocks = static_cast<uint64_t>(n_elements / traits->block_size);
        if (n_blocks > std::numeric_limits<uint64_t>::max() / traits->type_size) {
            fail("invalid GGUF file '{}': tensor '{}' is too large to address; {}", path, info.name,
                 kCorruptHint);
        }
        info.nbytes = static_cast<size_t>(n_blocks * traits->type_size);

        tensor_index_.emplace(info.name, tensors_.size());
        tensors_.push_back(std::move(info));
    }

    // Tensor data: starts at the next multiple of the alignment after the directory.
    data_offset_ = align_up(cursor.position(), alignment_);
    const uint64_t file_size = file_.size();
    const uint64_t data_size = data_offset_ <= file_size ? file_size - data_offset_ : 0;
    for (TensorInfo& info : tensors_) {
        if (info.offset % alignment_ != 0) {
            fail("invalid GGUF file '{}': tensor '{}' has data offset {}, which is not a multiple "
                 "of the alignment {}; {}",
                 path, info.name, info.offset, alignment_, kCorruptHint);
        }
        if (info.offset > data_size || info.nbytes > data_size - info.offset) {
            fail("invalid GGUF file '{}': tensor '{}' occupies bytes {} to {} of the data section, "
                 "but the data section ends after {} bytes (file size {}); {}",
                 path, info.name, info.offset, info.offset + info.nbytes, data_size, file_size,
                 kCorruptHint);
        }
        info.data = file_.data() + data_offset_ + info.offset;
    }
}

const Value* File::find(const std::string& key) const {
    auto it = metadata_.find(key);
    return it == metadata_.end() ? nullptr : &it->second;
}

namespace {

[[noreturn]] void fail_missing_key(const std::string& path, const std::string& key) {
    fail("GGUF file '{}' has no metadata key '{}'; the file may be incomplete or made for "
         "another architecture",
         path, key);
}

[[noreturn]] void fail_wrong_type(const std::string& path, const std::string& key, const Value& value,
                                  const char* expected) {
    fail("GGUF file '{}': metadata key '{}' has type {}, expected {}", path, key,
         describe_type(value), expected);
}

uint64_t to_uint(const std::string& path, const std::string& key, const Value& value) {
    if (is_unsigned_integer(value.type)) {
        return value.unsigned_integer;
    }
    if (is_signed_integer(value.type)) {
        if (value.integer < 0) {
            fail("GGUF file '{}': metadata key '{}' is {}, expected a non-negative integer", path,
                 key, value.integer);
        }
        return static_cast<uint64_t>(value.integer);
    }
    fail_wrong_type(path, key, value, "an unsigned or non-negative integer");
}

int32_t to_int32(const std::string& path, const std::string& key, const Value& element, size_t index) {
    int64_t number = 0;
    if (is_signed_integer(element.type)) {
        number = element.integer;
    } else if (element.unsigned_integer <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        number = static_cast<int64_t>(element.unsigned_integer);
    } else {
        number = std::numeric_limits<int64_t>::max();
    }
    if (number < std::numeric_limits<int32_t>::min() || number > std::numeric_limits<int32_t>::max()) {
        fail("GGUF file '{}': metadata key '{}' element {} does not fit in int32", path, key, index);
    }
    return static_cast<int32_t>(number);
}

}  // namespace

std::string File::get_string(const std::string& key) const {
    const Value* value = find(key);
    if (value == nullptr) {
        fail_missing_key(path(), key);
    }
    if (value->type != ValueType::STRING) {
        fail_wrong_type(path(), key, *value, "string");
    }
    return value->string;
}

std::string File::get_string_or(const std::string& key, const std::string& fallback) const {
    return has(key) ? get_string(key) : fallback;
}

uint64_t File::get_uint(const std::string& key) const {
    const Value* value = find(key);
    if (value == nullptr) {
        fail_missing_key(path(), key);
    }
    return to_uint(path(), key, *value);
}

uint64_t File::get_uint_or(const std::string& key, uint64_t fallback) const {
    return has(key) ? get_uint(key) : fallback;
}

double File::get_float(const std::string& key) const {
    const Value* value = find(key);
    if (value == nullptr) {
        fail_missing_key(path(), key);
    }
    if (!is_float(value->type)) {
        fail_wrong_type(path(), key, *value, "float32 or float64");
    }
    return value->real;
}

double File::get_float_or(const std::string& key, double fallback) const {
    return has(key) ? get_float(key) : fallback;
}

bool File::get_bool_or(const std::string& key, bool fallback) const {
    const Value* value = find(key);
    if (value == nullptr) {
        return fallback;
    }
    if (value->type != ValueType::BOOL) {
        fail_wrong_type(path(), key, *value, "bool");
    }
    return value->integer != 0;
}

std::vector<std::string> File::get_string_array(const std::string& key) const {
    const Value* value = find(key);
    if (value == nullptr) {
        fail_missing_key(path(), key);
    }
    if (value->type != ValueType::ARRAY || value->element_type != ValueType::STRING) {
        fail_wrong_type(path(), key, *value, "array of string");
    }
    std::vector<std::string> result;
    result.reserve(value->array.size());
    for (const Value& element : value->array) {
        result.push_back(element.string);
    }
    return result;
}

std::vector<float> File::get_float_array(const std::string& key) const {
    const Value* value = find(key);
    if (value == nullptr) {
        fail_missing_key(path(), key);
    }
    if (value->type != ValueType::ARRAY || !is_float(value->element_type)) {
        fail_wrong_type(path(), key, *value, "array of float32");
    }
    std::vector<float> result;
    result.reserve(value->array.size());
    for (const Value& element : value->array) {
        result.push_back(static_cast<float>(element.real));
    }
    return result;
}

std::vector<int32_t> File::get_int_array(const std::string& key) const {
    const Value* value = find(key);
    if (value == nullptr) {
        fail_missing_key(path(), key);
    }
    if (value->type != ValueType::ARRAY ||
        !(is_signed_integer(value->element_type) || is_unsigned_integer(value->element_type))) {
        fail_wrong_type(path(), key, *value, "array of int32");
    }
    std::vector<int32_t> result;
    result.reserve(value->array.size());
    for (size_t i = 0; i < value->array.size(); ++i) {
        result.push_back(to_int32(path(), key, value->array[i], i));
    }
    return result;
}

const TensorInfo* File::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(const std::string& name) const {
    const TensorInfo* info = find_tensor(name);
    if (info == nullptr) {
        fail("GGUF file '{}' has no tensor '{}' ({} tensors present); the file may be incomplete "
             "or made for another architecture",
             path(), name, tensors_.size());
    }
    return *info;
}

}  // namespace sz::gguf
