// GGUF reader: the real model, a file written by the `gguf` Python package, and malformed
// files built byte by byte, each of which must raise sz::Error naming the file and the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "test_support.h"

namespace sz {
namespace {

using gguf::ValueType;

// Little-endian byte string builder for hand-made GGUF files.
class Bytes {
public:
    Bytes& u8(uint8_t v) { return raw(&v, 1); }
    Bytes& u32(uint32_t v) { return raw(&v, 4); }
    Bytes& u64(uint64_t v) { return raw(&v, 8); }
    Bytes& f32(float v) { return raw(&v, 4); }
    Bytes& str(const std::string& s) {
        u64(s.size());
        data_ += s;
        return *this;
    }
    Bytes& append(const Bytes& other) {
        data_ += other.data_;
        return *this;
    }
    Bytes& pad_to(size_t alignment) {
        while (data_.size() % alignment != 0) {
            data_.push_back('\0');
        }
        return *this;
    }
    Bytes& zeros(size_t count) {
        data_.append(count, '\0');
        return *this;
    }
    const std::string& data() const { return data_; }

private:
    Bytes& raw(const void* p, size_t n) {
        data_.append(static_cast<const char*>(p), n);
        return *this;
    }
    std::string data_;
};

Bytes header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    Bytes b;
    b.u32(0x46554747).u32(version).u64(n_tensors).u64(n_kv);
    return b;
}

Bytes kv_u32(const std::string& key, uint32_t value) {
    Bytes b;
    b.str(key).u32(static_cast<uint32_t>(ValueType::UINT32)).u32(value);
    return b;
}

Bytes tensor_info(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type, uint64_t offset) {
    Bytes b;
    b.str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t n : ne) {
        b.u64(n);
    }
    b.u32(type).u64(offset);
    return b;
}

// A complete file: header, the given key/value and tensor-info bytes, padding to 32, data.
std::string gguf_file(uint64_t n_tensors, uint64_t n_kv, const Bytes& body, size_t data_bytes,
                      uint32_t version = 3) {
    Bytes b = header(n_tensors, n_kv, version);
    b.append(body).pad_to(32).zeros(data_bytes);
    return b.data();
}

class GgufMalformed : public ::testing::Test {
protected:
    void SetUp() override { dir_ = test::make_temp_dir("sz-gguf-malformed"); }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    // Writes `bytes` to a file and returns the sz::Error message of opening it, or "" when it
    // opened. Any other exception fails the test.
    std::string open_error(const std::string& bytes) {
        path_ = dir_ + "/case" + std::to_string(counter_++) + ".gguf";
        std::ofstream(path_, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        try {
            gguf::File::open(path_);
        } catch (const Error& error) {
            return error.what();
        }
        return "";
    }

    // Expects opening `bytes` to fail with a message naming the file and each of `parts`.
    void expect_error(const std::string& bytes, const std::vector<std::string>& parts) {
        const std::string message = open_error(bytes);
        ASSERT_FALSE(message.empty()) << "the file opened without error";
        EXPECT_NE(message.find(path_), std::string::npos) << message;
        for (const std::string& part : parts) {
            EXPECT_NE(message.find(part), std::string::npos) << "missing '" << part << "' in: " << message;
        }
    }

    std::string dir_;
    std::string path_;
    int counter_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Valid files

TEST(GgufReader, RealModelMetadata) {
    auto file = gguf::File::open(test::real_model_path());
    EXPECT_EQ(file->version(), 3u);
    EXPECT_EQ(file->alignment(), 32u);
    EXPECT_EQ(file->data_offset() % 32, 0u);
    EXPECT_EQ(file->get_string("general.architecture"), "gemma3");
    EXPECT_EQ(file->get_uint("gemma3.block_count"), 18u);
    EXPECT_EQ(file->get_uint("gemma3.embedding_length"), 640u);
    EXPECT_EQ(file->get_uint("gemma3.attention.head_count_kv"), 1u);
    EXPECT_FLOAT_EQ(static_cast<float>(file->get_float("gemma3.attention.layer_norm_rms_epsilon")), 1e-6f);
    EXPECT_EQ(file->get_float("gemma3.rope.freq_base"), 1000000.0);
    EXPECT_TRUE(file->get_bool_or("tokenizer.ggml.add_bos_token", false));
    EXPECT_EQ(file->get_uint("tokenizer.ggml.bos_token_id"), 2u);

    const auto tokens = file->get_string_array("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), 262144u);
    EXPECT_EQ(tokens[2], "<bos>");
    EXPECT_EQ(file->get_float_array("tokenizer.ggml.scores").size(), tokens.size());
    const auto token_types = file->get_int_array("tokenizer.ggml.token_type");
    ASSERT_EQ(token_types.size(), tokens.size());
    EXPECT_EQ(token_types[2], 3);  // CONTROL
    EXPECT_EQ(file->metadata_keys_in_order().front(), "general.architecture");
    EXPECT_EQ(file->metadata_keys_in_order().size(), file->metadata().size());

    EXPECT_EQ(file->tensors().size(), 236u);
    const gguf::TensorInfo& embedding = file->tensor("token_embd.weight");
    EXPECT_EQ(embedding.type, GgmlType::Q8_0);
    EXPECT_EQ(embedding.ne, (std::vector<int64_t>{640, 262144}));
    EXPECT_EQ(embedding.torch_shape(), (std::vector<int64_t>{262144, 640}));
    EXPECT_EQ(embedding.nbytes, 262144u * 20 * 34);
    EXPECT_EQ(file->find_tensor("output.weight"), nullptr);  // tied to token_embd
}

TEST(GgufReader, ReadsGgufPyFile) {
    const std::string dir = test::make_temp_dir("sz-gguf-py");
    const std::string path = dir + "/written_by_gguf_py.gguf";
    test::run_python_reference("write_random_blocks.py", "'" + path + "'");
    auto file = gguf::File::open(path);

    const std::vector<std::string> expected_order = {
        "general.architecture", "test.u8",  "test.i8",     "test.u16",    "test.i16",
        "test.u32",             "test.i32", "test.u64",    "test.i64",    "test.f32",
        "test.f64",             "test.bool", "test.string", "test.strings", "test.f32s",
        "test.i32s",            "test.nested"};
    EXPECT_EQ(file->metadata_keys_in_order(), expected_order);

    EXPECT_EQ(file->get_uint("test.u8"), 200u);
    EXPECT_EQ(file->find("test.i8")->integer, -100);
    EXPECT_EQ(file->get_uint("test.u16"), 60000u);
    EXPECT_EQ(file->find("test.i16")->integer, -30000);
    EXPECT_EQ(file->get_uint("test.u32"), 4000000000u);
    EXPECT_EQ(file->find("test.i32")->integer, -2000000000);
    EXPECT_EQ(file->get_uint("test.u64"), 18000000000000000000u);
    EXPECT_EQ(file->find("test.u64")->integer, std::numeric_limits<int64_t>::max());
    EXPECT_EQ(file->find("test.i64")->integer, -9000000000000000000);
    EXPECT_EQ(file->get_float("test.f32"), static_cast<double>(0.1f));
    EXPECT_EQ(file->get_float("test.f64"), 0.1);
    EXPECT_TRUE(file->get_bool_or("test.bool", false));
    EXPECT_EQ(file->get_string("test.string"), "h\xc3\xa9llo \xe2\x96\x81world");
    EXPECT_EQ(file->get_string_array("test.strings"), (std::vector<std::string>{"a", "", "\xc3\xbc" "ber"}));
    EXPECT_EQ(file->get_float_array("test.f32s"), (std::vector<float>{1.5f, -2.25f}));
    EXPECT_EQ(file->get_int_array("test.i32s"), (std::vector<int32_t>{1, -2, 3}));

    const gguf::Value* nested = file->find("test.nested");
    ASSERT_NE(nested, nullptr);
    EXPECT_EQ(nested->type, ValueType::ARRAY);
    EXPECT_EQ(nested->element_type, ValueType::ARRAY);
    ASSERT_EQ(nested->array.size(), 2u);
    EXPECT_EQ(nested->array[0].element_type, ValueType::INT32);
    ASSERT_EQ(nested->array[1].array.size(), 3u);
    EXPECT_EQ(nested->array[1].array[2].integer, 5);

    EXPECT_EQ(file->tensor("Q4_K.raw").ne, (std::vector<int64_t>{4096, 8}));
    std::filesystem::remove_all(dir);
}

TEST(GgufReader, TypedGetterErrors) {
    const std::string dir = test::make_temp_dir("sz-gguf-getters");
    const std::string path = dir + "/getters.gguf";
    gguf::Writer writer;
    writer.set_u32("count", 7);
    writer.set_i8("negative", -1);
    writer.set_string("name", "x");
    writer.write(path);
    auto file = gguf::File::open(path);

    auto message_of = [](auto&& call) -> std::string {
        try {
            call();
        } catch (const Error& error) {
            return error.what();
        }
        return "";
    };
    const std::string wrong_type = message_of([&] { file->get_string("count"); });
    EXPECT_NE(wrong_type.find(path), std::string::npos) << wrong_type;
    EXPECT_NE(wrong_type.find("'count' has type uint32, expected string"), std::string::npos) << wrong_type;

    const std::string missing = message_of([&] { file->get_uint("absent.key"); });
    EXPECT_NE(missing.find("no metadata key 'absent.key'"), std::string::npos) << missing;

    const std::string negative = message_of([&] { file->get_uint("negative"); });
    EXPECT_NE(negative.find("'negative' is -1"), std::string::npos) << negative;

    const std::string no_tensor = message_of([&] { file->tensor("blk.0.attn_q.weight"); });
    EXPECT_NE(no_tensor.find("no tensor 'blk.0.attn_q.weight'"), std::string::npos) << no_tensor;

    EXPECT_EQ(file->get_uint_or("absent.key", 5), 5u);
    EXPECT_EQ(file->get_string_or("name", "fallback"), "x");
    EXPECT_THROW(file->get_float("count"), Error);
    EXPECT_THROW(file->get_bool_or("count", true), Error);
    EXPECT_THROW(file->get_string_array("name"), Error);
    std::filesystem::remove_all(dir);
}

TEST_F(GgufMalformed, AcceptsVersion2) {
    Bytes body;
    body.append(kv_u32("a", 1)).append(tensor_info("t", {32}, 0, 0));
    EXPECT_EQ(open_error(gguf_file(1, 1, body, 128, 2)), "");
}

TEST_F(GgufMalformed, AcceptsCustomAlignment) {
    Bytes body;
    body.append(kv_u32("general.alignment", 64))
        .append(tensor_info("a", {4}, 0, 0))
        .append(tensor_info("b", {4}, 0, 64));
    Bytes file = header(2, 1);
    file.append(body).pad_to(64).zeros(64 + 16);
    ASSERT_EQ(open_error(file.data()), "");
    auto opened = gguf::File::open(path_);
    EXPECT_EQ(opened->alignment(), 64u);
    EXPECT_EQ(opened->data_offset() % 64, 0u);
    EXPECT_EQ(opened->tensor("b").data, opened->tensor("a").data + 64);
}

// ---------------------------------------------------------------------------------------------
// Malformed files

TEST_F(GgufMalformed, EmptyFile) { expect_error("", {"too short"}); }

TEST_F(GgufMalformed, BadMagic) {
    std::string bytes = gguf_file(0, 0, Bytes(), 0);
    bytes[0] = 'X';
    expect_error(bytes, {"58 47 55 46", "magic"});
}

TEST_F(GgufMalformed, Version1) { expect_error(gguf_file(0, 0, Bytes(), 0, 1), {"version 1"}); }

TEST_F(GgufMalformed, Version4) { expect_error(gguf_file(0, 0, Bytes(), 0, 4), {"version 4", "2 and 3"}); }

TEST_F(GgufMalformed, BigEndian) { expect_error(gguf_file(0, 0, Bytes(), 0, 0x03000000), {"big-endian"}); }

TEST_F(GgufMalformed, AbsurdKeyValueCount) {
    expect_error(gguf_file(0, uint64_t{1} << 60, Bytes(), 0), {"1152921504606846976 metadata"});
}

TEST_F(GgufMalformed, AbsurdTensorCount) {
    expect_error(gguf_file(uint64_t{1} << 40, 0, Bytes(), 0), {"1099511627776 tensors"});
}

TEST_F(GgufMalformed, AbsurdKeyLength) {
    Bytes body;
    body.u64(uint64_t{1} << 62).u32(4).u32(0);
    expect_error(gguf_file(0, 1, body, 0), {"key", "length 4611686018427387904"});
}

TEST_F(GgufMalformed, AbsurdStringLength) {
    Bytes body;
    body.str("general.name").u32(static_cast<uint32_t>(ValueType::STRING)).u64(1000000);
    expect_error(gguf_file(0, 1, body, 0), {"'general.name'", "length 1000000"});
}

TEST_F(GgufMalformed, AbsurdArrayLength) {
    Bytes body;
    body.str("tokenizer.ggml.scores").u32(static_cast<uint32_t>(ValueType::ARRAY));
    body.u32(static_cast<uint32_t>(ValueType::FLOAT32)).u64(uint64_t{1} << 61);
    expect_error(gguf_file(0, 1, body, 0), {"'tokenizer.ggml.scores'", "2305843009213693952 elements"});
}

TEST_F(GgufMalformed, BadValueType) {
    Bytes body;
    body.str("k").u32(13).u32(0);
    expect_error(gguf_file(0, 1, body, 0), {"'k'", "value type 13"});
}

TEST_F(GgufMalformed, BadArrayElementType) {
    Bytes body;
    body.str("k").u32(static_cast<uint32_t>(ValueType::ARRAY)).u32(77).u64(1);
    expect_error(gguf_file(0, 1, body, 0), {"'k'", "element type 77"});
}

TEST_F(GgufMalformed, BadBool) {
    Bytes body;
    body.str("flag").u32(static_cast<uint32_t>(ValueType::BOOL)).u8(2);
    expect_error(gguf_file(0, 1, body, 0), {"'flag'", "bool", "is 2"});
}

TEST_F(GgufMalformed, DeepArrayNesting) {
    Bytes body;
    body.str("deep").u32(static_cast<uint32_t>(ValueType::ARRAY));
    for (int i = 0; i < 100; ++i) {
        body.u32(static_cast<uint32_t>(ValueType::ARRAY)).u64(1);
    }
    body.u32(static_cast<uint32_t>(ValueType::UINT8)).u64(0);
    expect_error(gguf_file(0, 1, body, 0), {"'deep'", "nested"});
}

TEST_F(GgufMalformed, DuplicateKey) {
    Bytes body;
    body.append(kv_u32("general.file_type", 1)).append(kv_u32("general.file_type", 2));
    expect_error(gguf_file(0, 2, body, 0), {"'general.file_type'", "more than once"});
}

TEST_F(GgufMalformed, AlignmentWrongType) {
    Bytes body;
    body.str("general.alignment").u32(static_cast<uint32_t>(ValueType::UINT64)).u64(32);
    expect_error(gguf_file(0, 1, body, 0), {"'general.alignment'", "uint64", "expected uint32"});
}

TEST_F(GgufMalformed, AlignmentNotPowerOfTwo) {
    expect_error(gguf_file(0, 1, kv_u32("general.alignment", 48), 0), {"'general.alignment' is 48"});
}

TEST_F(GgufMalformed, AlignmentZero) {
    expect_error(gguf_file(0, 1, kv_u32("general.alignment", 0), 0), {"'general.alignment' is 0"});
}

TEST_F(GgufMalformed, TooManyDimensions) {
    expect_error(gguf_file(1, 0, tensor_info("t", {1, 1, 1, 1, 1}, 0, 0), 32), {"'t'", "5 dimensions"});
}

TEST_F(GgufMalformed, NegativeDimension) {
    expect_error(gguf_file(1, 0, tensor_info("t", {32, uint64_t{1} << 63}, 0, 0), 32),
                 {"'t'", "9223372036854775808"});
}

TEST_F(GgufMalformed, ElementCountOverflow) {
    expect_error(gguf_file(1, 0, tensor_info("t", {uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0), 32),
                 {"'t'", "2^63"});
}

TEST_F(GgufMalformed, UnknownTypeId) {
    expect_error(gguf_file(1, 0, tensor_info("blk.0.attn_q.weight", {32}, 99, 0), 32),
                 {"'blk.0.attn_q.weight'", "type id 99"});
}

TEST_F(GgufMalformed, RowNotWholeBlocks) {
    expect_error(gguf_file(1, 0, tensor_info("t", {640, 2}, 12, 0), 2000), {"'t'", "Q4_K", "ne[0] = 640", "256"});
}

TEST_F(GgufMalformed, MisalignedOffset) {
    Bytes body;
    body.append(tensor_info("a", {4}, 0, 0)).append(tensor_info("b", {4}, 0, 16));
    expect_error(gguf_file(2, 0, body, 64), {"'b'", "offset 16", "alignment 32"});
}

TEST_F(GgufMalformed, OffsetPastEnd) {
    expect_error(gguf_file(1, 0, tensor_info("t", {32}, 0, 4096), 128), {"'t'", "4096", "data section ends"});
}

TEST_F(GgufMalformed, DataPastEnd) {
    expect_error(gguf_file(1, 0, tensor_info("t", {64}, 0, 0), 128), {"'t'", "bytes 0 to 256"});
}

TEST_F(GgufMalformed, DuplicateTensor) {
    Bytes body;
    body.append(tensor_info("t", {8}, 0, 0)).append(tensor_info("t", {8}, 0, 32));
    expect_error(gguf_file(2, 0, body, 64), {"'t'", "more than once"});
}

TEST_F(GgufMalformed, TensorNameTooLong) {
    const std::string name(64, 'n');
    expect_error(gguf_file(1, 0, tensor_info(name, {8}, 0, 0), 32), {name, "64 bytes"});
}

// Every proper prefix of a valid file that still cuts into its header, metadata, tensor
// directory or tensor data must be rejected with an error naming the file.
TEST_F(GgufMalformed, TruncatedAtEveryLength) {
    gguf::Writer writer;
    writer.set_string("general.architecture", "gemma3");
    writer.set_u32("gemma3.block_count", 2);
    writer.set_f32("gemma3.rope.freq_base", 10000.0f);
    writer.set_bool("tokenizer.ggml.add_bos_token", true);
    writer.set_string_array("tokenizer.ggml.tokens", {"<pad>", "<eos>", "<bos>"});
    writer.set_i32_array("tokenizer.ggml.token_type", {3, 3, 3});
    writer.set_value("nested", gguf::make_array(ValueType::ARRAY, {gguf::make_array(ValueType::UINT8, {})}));
    writer.add_tensor("a.weight", torch::ones({2, 32}), GgmlType::Q8_0);
    writer.add_tensor("b.weight", torch::ones({3}), GgmlType::F32);
    std::ostringstream stream;
    writer.write(stream);
    const std::string full = stream.str();
    ASSERT_EQ(open_error(full), "");

    auto file = gguf::File::open(path_);
    const gguf::TensorInfo& last = file->tensor("b.weight");
    const size_t data_end = file->data_offset() + last.offset + last.nbytes;
    ASSERT_LE(data_end, full.size());

    for (size_t length = 0; length < data_end; ++length) {
        const std::string message = open_error(full.substr(0, length));
        ASSERT_FALSE(message.empty()) << "prefix of " << length << " bytes opened without error";
        ASSERT_NE(message.find(path_), std::string::npos) << message;
    }
    // Only the zero padding after the last tensor may be cut.
    for (size_t length = data_end; length <= full.size(); ++length) {
        EXPECT_EQ(open_error(full.substr(0, length)), "") << length;
    }
}

}  // namespace
}  // namespace sz
