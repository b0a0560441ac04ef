// GGUF writer: files it writes are read back by our reader and by the `gguf` Python package
// (tests/reference/read_gguf.py), with the same metadata, layout and tensor values, and its
// F16/BF16/Q8_0 encodings equal gguf.quants.quantize byte for byte.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/ggml_type.h"
#include "formats/gguf.h"
#include "formats/gguf_tensor.h"
#include "formats/gguf_writer.h"
#include "test_support.h"

namespace sz {
namespace {

using gguf::ValueType;

class GgufWriter : public ::testing::Test {
protected:
    void SetUp() override { dir_ = test::make_temp_dir("sz-gguf-writer"); }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string path(const std::string& name) const { return dir_ + "/" + name; }

    std::string dir_;
};

// Metadata of every value type, in a known order, and one tensor per supported encoding.
// Tensors named "X" with a quantized type have an F32 companion "X.source" with the input.
struct Sample {
    gguf::Writer writer;
    std::map<std::string, torch::Tensor> sources;

    Sample() {
        torch::manual_seed(3);
        writer.set_string("general.architecture", "gemma3");
        writer.set_u8("test.u8", 255);
        writer.set_i8("test.i8", -128);
        writer.set_u16("test.u16", 65535);
        writer.set_i16("test.i16", -32768);
        writer.set_u32("test.u32", 4294967295u);
        writer.set_i32("test.i32", -2147483647 - 1);
        writer.set_u64("test.u64", 18446744073709551615u);
        writer.set_i64("test.i64", -9223372036854775807 - 1);
        writer.set_f32("test.f32", 1e-6f);
        writer.set_f64("test.f64", 1.0 / 3.0);
        writer.set_bool("test.bool", false);
        writer.set_string("test.string", "<start_of_turn>user\n\xe2\x96\x81x");
        writer.set_string("test.empty_string", "");
        writer.set_string_array("test.strings", {"<pad>", "", "\xc3\xbc"});
        writer.set_f32_array("test.f32s", {-1000.0f, 0.25f});
        writer.set_i32_array("test.i32s", {1, 3, 6});
        writer.set_value("test.nested",
                         gguf::make_array(ValueType::ARRAY,
                                          {gguf::make_array(ValueType::UINT16, {gguf::make_integer(ValueType::UINT16, 7)}),
                                           gguf::make_array(ValueType::UINT16, {gguf::make_integer(ValueType::UINT16, 8),
                                                                                 gguf::make_integer(ValueType::UINT16, 9)})}));
        writer.set_value("test.empty_array", gguf::make_array(ValueType::INT32, {}));

        add("f32_3d", torch::randn({2, 3, 5}), GgmlType::F32);
        add("f16_2d", torch::randn({4, 64}) * 1000, GgmlType::F16);
        add("bf16_1d", torch::randn({40}), GgmlType::BF16);
        add("q8_0_4d", torch::randn({2, 2, 3, 64}), GgmlType::Q8_0);
        add("f16_tiny", torch::tensor({1e-7f, 65519.0f, -65504.9f, 3e-8f}), GgmlType::F16);
    }

    void add(const std::string& name, const torch::Tensor& values, GgmlType type) {
        writer.add_tensor(name, values, type);
        if (type != GgmlType::F32) {
            writer.add_tensor(name + ".source", values, GgmlType::F32);
        }
        sources[name] = values;
    }
};

TEST_F(GgufWriter, RoundTripOwnReader) {
    Sample sample;
    sample.writer.write(path("sample.gguf"));
    auto file = gguf::File::open(path("sample.gguf"));

    EXPECT_EQ(file->version(), 3u);
    ASSERT_EQ(file->metadata_keys_in_order().size(), 19u);
    EXPECT_EQ(file->metadata_keys_in_order().front(), "general.architecture");
    EXPECT_EQ(file->metadata_keys_in_order().back(), "test.empty_array");
    EXPECT_EQ(file->get_uint("test.u8"), 255u);
    EXPECT_EQ(file->find("test.i8")->integer, -128);
    EXPECT_EQ(file->get_uint("test.u16"), 65535u);
    EXPECT_EQ(file->find("test.i16")->integer, -32768);
    EXPECT_EQ(file->get_uint("test.u32"), 4294967295u);
    EXPECT_EQ(file->find("test.i32")->integer, -2147483648LL);
    EXPECT_EQ(file->get_uint("test.u64"), 18446744073709551615u);
    EXPECT_EQ(file->find("test.i64")->integer, std::numeric_limits<int64_t>::min());
    EXPECT_EQ(file->get_float("test.f32"), static_cast<double>(1e-6f));
    EXPECT_EQ(file->get_float("test.f64"), 1.0 / 3.0);
    EXPECT_FALSE(file->get_bool_or("test.bool", true));
    EXPECT_EQ(file->get_string("test.string"), "<start_of_turn>user\n\xe2\x96\x81x");
    EXPECT_EQ(file->get_string("test.empty_string"), "");
    EXPECT_EQ(file->get_string_array("test.strings"), (std::vector<std::string>{"<pad>", "", "\xc3\xbc"}));
    EXPECT_EQ(file->get_float_array("test.f32s"), (std::vector<float>{-1000.0f, 0.25f}));
    EXPECT_EQ(file->get_int_array("test.i32s"), (std::vector<int32_t>{1, 3, 6}));
    EXPECT_TRUE(file->get_int_array("test.empty_array").empty());
    const gguf::Value* nested = file->find("test.nested");
    ASSERT_NE(nested, nullptr);
    ASSERT_EQ(nested->array.size(), 2u);
    EXPECT_EQ(nested->array[1].element_type, ValueType::UINT16);
    EXPECT_EQ(nested->array[1].array[1].unsigned_integer, 9u);

    for (const auto& [name, source] : sample.sources) {
        SCOPED_TRACE(name);
        const gguf::TensorInfo& info = file->tensor(name);
        EXPECT_EQ(info.torch_shape(), source.sizes().vec());
        torch::Tensor loaded = gguf::load_tensor_f32(info);
        torch::Tensor expected;
        switch (info.type) {
            case GgmlType::F32: expected = source; break;
            case GgmlType::F16: expected = source.to(torch::kHalf).to(torch::kFloat); break;
            case GgmlType::BF16: expected = source.to(torch::kBFloat16).to(torch::kFloat); break;
            default: {
                // Q8_0: the error is at most half a quantization step, d / 2 = max|x| / 254,
                // plus the fp16 rounding of d.
                const float bound = source.abs().max().item<float>() / 254.0f * 1.01f;
                EXPECT_LE((loaded - source).abs().max().item<float>(), bound);
                continue;
            }
        }
        EXPECT_TRUE(torch::equal(loaded, expected)) << (loaded - expected).abs().max();
    }
}

TEST_F(GgufWriter, LayoutIsSequentialAndAligned) {
    Sample sample;
    sample.writer.write(path("layout.gguf"));
    auto file = gguf::File::open(path("layout.gguf"));

    EXPECT_EQ(file->alignment(), 32u);
    EXPECT_EQ(file->data_offset() % 32, 0u);
    uint64_t expected_offset = 0;
    for (const gguf::TensorInfo& info : file->tensors()) {
        EXPECT_EQ(info.offset, expected_offset) << info.name;
        expected_offset = (info.offset + info.nbytes + 31) / 32 * 32;
    }
    EXPECT_EQ(std::filesystem::file_size(path("layout.gguf")), file->data_offset() + expected_offset);
}

TEST_F(GgufWriter, CustomAlignment) {
    gguf::Writer writer;
    writer.set_u32("general.alignment", 256);
    writer.add_tensor("a", torch::ones({3}), GgmlType::F32);
    writer.add_tensor("b", torch::ones({3}), GgmlType::F16);
    writer.write(path("aligned.gguf"));
    auto file = gguf::File::open(path("aligned.gguf"));
    EXPECT_EQ(file->alignment(), 256u);
    EXPECT_EQ(file->data_offset() % 256, 0u);
    EXPECT_EQ(file->tensor("b").offset, 256u);
}

TEST_F(GgufWriter, ReadByGgufPy) {
    Sample sample;
    sample.writer.write(path("for_python.gguf"));
    const auto seen = nlohmann::json::parse(
        test::run_python_reference("read_gguf.py", "'" + path("for_python.gguf") + "'"));
    auto file = gguf::File::open(path("for_python.gguf"));

    EXPECT_EQ(seen["alignment"].get<int>(), 32);
    EXPECT_EQ(seen["data_offset"].get<uint64_t>(), file->data_offset());

    // Metadata: same keys in the same order with the same types and values. gguf-py flattens
    // nested arrays, and returns an empty array's type list without the element type.
    const auto& metadata = seen["metadata"];
    ASSERT_EQ(metadata.size(), file->metadata_keys_in_order().size());
    for (size_t i = 0; i < metadata.size(); ++i) {
        EXPECT_EQ(metadata[i]["key"].get<std::string>(), file->metadata_keys_in_order()[i]);
    }
    auto entry = [&](const std::string& key) -> const nlohmann::json& {
        for (const auto& item : metadata) {
            if (item["key"] == key) {
                return item;
            }
        }
        throw std::runtime_error("gguf-py did not report key " + key);
    };
    using Types = std::vector<std::string>;
    EXPECT_EQ(entry("test.u8")["types"].get<Types>(), Types{"UINT8"});
    EXPECT_EQ(entry("test.u8")["value"].get<int>(), 255);
    EXPECT_EQ(entry("test.i8")["types"].get<Types>(), Types{"INT8"});
    EXPECT_EQ(entry("test.i8")["value"].get<int>(), -128);
    EXPECT_EQ(entry("test.u16")["value"].get<int>(), 65535);
    EXPECT_EQ(entry("test.i16")["types"].get<Types>(), Types{"INT16"});
    EXPECT_EQ(entry("test.i16")["value"].get<int>(), -32768);
    EXPECT_EQ(entry("test.u32")["types"].get<Types>(), Types{"UINT32"});
    EXPECT_EQ(entry("test.u32")["value"].get<uint64_t>(), 4294967295u);
    EXPECT_EQ(entry("test.i32")["value"].get<int64_t>(), -2147483648LL);
    EXPECT_EQ(entry("test.u64")["types"].get<Types>(), Types{"UINT64"});
    EXPECT_EQ(entry("test.u64")["value"].get<uint64_t>(), 18446744073709551615u);
    EXPECT_EQ(entry("test.i64")["value"].get<int64_t>(), std::numeric_limits<int64_t>::min());
    EXPECT_EQ(entry("test.f32")["types"].get<Types>(), Types{"FLOAT32"});
    EXPECT_EQ(entry("test.f32")["value"].get<double>(), static_cast<double>(1e-6f));
    EXPECT_EQ(entry("test.f64")["types"].get<Types>(), Types{"FLOAT64"});
    EXPECT_EQ(entry("test.f64")["value"].get<double>(), 1.0 / 3.0);
    EXPECT_EQ(entry("test.bool")["types"].get<Types>(), Types{"BOOL"});
    EXPECT_EQ(entry("test.bool")["value"].get<bool>(), false);
    EXPECT_EQ(entry("test.string")["value"].get<std::string>(), "<start_of_turn>user\n\xe2\x96\x81x");
    EXPECT_EQ(entry("test.empty_string")["value"].get<std::string>(), "");
    EXPECT_EQ(entry("test.strings")["types"].get<Types>(), (Types{"ARRAY", "STRING"}));
    EXPECT_EQ(entry("test.strings")["value"].get<std::vector<std::string>>(), (std::vector<std::string>{"<pad>", "", "\xc3\xbc"}));
    EXPECT_EQ(entry("test.f32s")["types"].get<Types>(), (Types{"ARRAY", "FLOAT32"}));
    EXPECT_EQ(entry("test.f32s")["value"].get<std::vector<double>>(), (std::vector<double>{-1000.0, 0.25}));
    EXPECT_EQ(entry("test.i32s")["types"].get<Types>(), (Types{"ARRAY", "INT32"}));
    EXPECT_EQ(entry("test.i32s")["value"].get<std::vector<int>>(), (std::vector<int>{1, 3, 6}));
    EXPECT_EQ(entry("test.nested")["types"].get<Types>(), (Types{"ARRAY", "ARRAY", "UINT16"}));
    EXPECT_EQ(entry("test.nested")["value"].get<std::vector<int>>(), (std::vector<int>{7, 8, 9}));
    EXPECT_EQ(entry("test.empty_array")["types"].get<Types>(), Types{"ARRAY"});
    EXPECT_TRUE(entry("test.empty_array")["value"].empty());

    // Tensors: same directory, and gguf-py's dequantization equals ours bit for bit.
    const auto& tensors = seen["tensors"];
    ASSERT_EQ(tensors.size(), file->tensors().size());
    for (size_t i = 0; i < tensors.size(); ++i) {
        const gguf::TensorInfo& info = file->tensors()[i];
        SCOPED_TRACE(info.name);
        EXPECT_EQ(tensors[i]["name"].get<std::string>(), info.name);
        EXPECT_EQ(tensors[i]["type"].get<std::string>(), ggml_type_name(info.type));
        EXPECT_EQ(tensors[i]["ne"].get<std::vector<int64_t>>(), info.ne);
        EXPECT_EQ(tensors[i]["offset"].get<uint64_t>(), file->data_offset() + info.offset);
        const auto python_values = tensors[i]["values"].get<std::vector<float>>();
        torch::Tensor ours = gguf::load_tensor_f32(info);
        ASSERT_EQ(static_cast<int64_t>(python_values.size()), ours.numel());
        EXPECT_EQ(std::memcmp(python_values.data(), ours.data_ptr<float>(), python_values.size() * sizeof(float)), 0);
    }

    // Encodings: our F16, BF16 and Q8_0 bytes equal gguf.quants.quantize of the same input.
    const auto& matches = seen["quantize_matches"];
    EXPECT_EQ(matches.size(), 4u);
    for (const auto& [name, match] : matches.items()) {
        EXPECT_TRUE(match.get<bool>()) << name;
    }
}

TEST_F(GgufWriter, SetReplacesValueInPlace) {
    gguf::Writer writer;
    writer.set_u32("first", 1);
    writer.set_u32("second", 2);
    writer.set_string("first", "again");
    EXPECT_EQ(writer.metadata_count(), 2u);
    writer.write(path("replace.gguf"));
    auto file = gguf::File::open(path("replace.gguf"));
    EXPECT_EQ(file->metadata_keys_in_order(), (std::vector<std::string>{"first", "second"}));
    EXPECT_EQ(file->get_string("first"), "again");
}

TEST_F(GgufWriter, TensorNameLimit) {
    gguf::Writer writer;
    writer.add_tensor(std::string(63, 'a'), torch::ones({1}), GgmlType::F32);
    EXPECT_THROW(writer.add_tensor(std::string(64, 'b'), torch::ones({1}), GgmlType::F32), Error);
    EXPECT_THROW(writer.add_tensor("", torch::ones({1}), GgmlType::F32), Error);
    EXPECT_THROW(writer.add_tensor(std::string(63, 'a'), torch::ones({1}), GgmlType::F32), Error);
    EXPECT_EQ(writer.tensor_count(), 1u);
}

TEST_F(GgufWriter, RejectsInvalidTensors) {
    gguf::Writer writer;
    EXPECT_THROW(writer.add_tensor("q", torch::ones({2, 40}), GgmlType::Q8_0), Error);
    EXPECT_THROW(writer.add_tensor("k", torch::ones({2, 256}), GgmlType::Q4_K), Error);
    EXPECT_THROW(writer.add_tensor("5d", torch::ones({1, 1, 1, 1, 1}), GgmlType::F32), Error);
    EXPECT_THROW(writer.add_tensor("scalar", torch::ones({}), GgmlType::F32), Error);
    EXPECT_THROW(writer.add_tensor("ints", torch::ones({4}, torch::kLong), GgmlType::F32), Error);
    EXPECT_THROW(writer.add_tensor("nan", torch::full({32}, NAN), GgmlType::Q8_0), Error);
    EXPECT_THROW(writer.add_tensor_data("short", {32}, GgmlType::Q4_0, std::vector<uint8_t>(17)), Error);
    EXPECT_EQ(writer.tensor_count(), 0u);
}

TEST_F(GgufWriter, RejectsInvalidMetadata) {
    gguf::Writer writer;
    EXPECT_THROW(writer.set_u32("", 1), Error);
    EXPECT_THROW(gguf::make_array(ValueType::INT32, {gguf::make_string("x")}), Error);
    EXPECT_THROW(gguf::make_integer(ValueType::UINT8, 256), Error);
    EXPECT_THROW(gguf::make_integer(ValueType::FLOAT32, 1), Error);
    writer.set_u32("general.alignment", 48);
    EXPECT_THROW(writer.write(path("bad_alignment.gguf")), Error);
    EXPECT_FALSE(std::filesystem::exists(path("bad_alignment.gguf")));
}

TEST_F(GgufWriter, RawTensorData) {
    // One Q4_0 block with d = 1 and every nibble 9, so every value is 9 - 8 = 1.
    std::vector<uint8_t> block(18, 0x99);
    block[0] = 0x00;
    block[1] = 0x3C;
    gguf::Writer writer;
    writer.add_tensor_data("q4", {32}, GgmlType::Q4_0, block);
    writer.write(path("raw.gguf"));
    auto file = gguf::File::open(path("raw.gguf"));
    EXPECT_TRUE(torch::equal(gguf::load_tensor_f32(file->tensor("q4")), torch::ones({32})));
}

}  // namespace
}  // namespace sz
