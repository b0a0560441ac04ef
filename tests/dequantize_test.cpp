// ggml type traits, fp16/bf16 conversions and dequantization, checked against hand-computed
// blocks, against c10::Half / c10::BFloat16, and element for element against the `gguf`
// Python package (tests/reference/*.py) on random blocks and on every tensor of the real model.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/ggml_type.h"
#include "formats/gguf.h"
#include "formats/gguf_tensor.h"
#include "test_support.h"

namespace sz {
namespace {

uint32_t bits_of(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof(bits));
    return bits;
}

float float_of(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
}

// Element-wise comparison result: bit mismatches (two NaNs count as equal) and the largest
// absolute difference over the elements where both values are finite.
struct Comparison {
    int64_t mismatches = 0;
    double max_abs_diff = 0.0;
    int64_t first_mismatch = -1;
};

Comparison compare_floats(const float* actual, const float* expected, int64_t count) {
    Comparison result;
    for (int64_t i = 0; i < count; ++i) {
        const bool both_nan = std::isnan(actual[i]) && std::isnan(expected[i]);
        if (bits_of(actual[i]) != bits_of(expected[i]) && !both_nan) {
            if (result.first_mismatch < 0) {
                result.first_mismatch = i;
            }
            ++result.mismatches;
        }
        if (std::isfinite(actual[i]) && std::isfinite(expected[i])) {
            result.max_abs_diff = std::max(result.max_abs_diff,
                                           std::fabs(static_cast<double>(actual[i]) - expected[i]));
        }
    }
    return result;
}

// ---------------------------------------------------------------------------------------------
// fp16 / bf16

TEST(Fp16, KnownValues) {
    EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
    EXPECT_EQ(fp16_to_fp32(0xC000), -2.0f);
    EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);
    EXPECT_EQ(fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));
    EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(fp16_to_fp32(0x03FF), std::ldexp(1023.0f, -24));
    EXPECT_EQ(fp16_to_fp32(0x8001), -std::ldexp(1.0f, -24));
    EXPECT_EQ(fp16_to_fp32(0x7C00), INFINITY);
    EXPECT_EQ(fp16_to_fp32(0xFC00), -INFINITY);
    EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));
    EXPECT_TRUE(std::signbit(fp16_to_fp32(0x8000)));
    EXPECT_EQ(fp16_to_fp32(0x8000), 0.0f);
}

TEST(Fp16, MatchesC10HalfOnAllValues) {
    for (uint32_t h = 0; h < 65536; ++h) {
        c10::Half reference;
        reference.x = static_cast<uint16_t>(h);
        const float expected = static_cast<float>(reference);
        const float actual = fp16_to_fp32(static_cast<uint16_t>(h));
        if (std::isnan(expected)) {
            EXPECT_TRUE(std::isnan(actual)) << "h = " << h;
        } else {
            EXPECT_EQ(bits_of(actual), bits_of(expected)) << "h = " << h;
        }
    }
}

TEST(Fp16, RoundTripsEveryValue) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const auto half = static_cast<uint16_t>(h);
        const uint16_t back = fp32_to_fp16(fp16_to_fp32(half));
        if ((half & 0x7C00) == 0x7C00 && (half & 0x03FF) != 0) {
            EXPECT_TRUE(std::isnan(fp16_to_fp32(back))) << "h = " << h;
        } else {
            EXPECT_EQ(back, half) << "h = " << h;
        }
    }
}

TEST(Fp16, RoundsToNearestEven) {
    EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie, even is 1.0
    EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie, even is up
    EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7BFF);
    EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);
    EXPECT_EQ(fp32_to_fp16(1e10f), 0x7C00);
    EXPECT_EQ(fp32_to_fp16(-1e10f), 0xFC00);
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);             // tie, even is zero
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0001f, -25)), 0x0001);
    EXPECT_EQ(fp32_to_fp16(3 * std::ldexp(1.0f, -25)), 0x0002);         // tie between 1 and 2 units
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1023.5f, -24)), 0x0400);          // carries into the normals
    EXPECT_EQ(fp32_to_fp16(-1e-10f), 0x8000);
    EXPECT_EQ(fp32_to_fp16(INFINITY), 0x7C00);
    EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(NAN))));
}

TEST(Fp16, MatchesC10HalfOnRandomFloats) {
    std::mt19937 rng(7);
    int64_t checked = 0;
    for (int i = 0; i < 2'000'000; ++i) {
        const float value = float_of(rng());
        if (std::isnan(value)) {
            continue;
        }
        const c10::Half reference(value);
        ASSERT_EQ(fp32_to_fp16(value), reference.x) << "value bits 0x" << std::hex << bits_of(value);
        ++checked;
    }
    EXPECT_GT(checked, 1'900'000);
}

TEST(Bf16, KnownValues) {
    EXPECT_EQ(bf16_to_fp32(0x3F80), 1.0f);
    EXPECT_EQ(bf16_to_fp32(0xC040), -3.0f);
    EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
    EXPECT_EQ(fp32_to_bf16(float_of(0x3F808000)), 0x3F80);  // tie, even is down
    EXPECT_EQ(fp32_to_bf16(float_of(0x3F818000)), 0x3F82);  // tie, even is up
    EXPECT_EQ(fp32_to_bf16(float_of(0x3F808001)), 0x3F81);
    EXPECT_EQ(fp32_to_bf16(float_of(0x7F7FFFFF)), 0x7F80);  // max float rounds to infinity
    EXPECT_EQ(fp32_to_bf16(float_of(0x7F800001)) & 0x7FC0, 0x7FC0);  // NaN stays a quiet NaN
}

TEST(Bf16, MatchesC10OnRandomFloats) {
    std::mt19937 rng(11);
    for (int i = 0; i < 2'000'000; ++i) {
        const float value = float_of(rng());
        if (std::isnan(value)) {
            continue;
        }
        const c10::BFloat16 reference(value);
        ASSERT_EQ(fp32_to_bf16(value), reference.x) << "value bits 0x" << std::hex << bits_of(value);
    }
}

// ---------------------------------------------------------------------------------------------
// Type traits

TEST(GgmlTypeTraits, BlockGeometry) {
    // Block sizes and bytes per block from ggml-common.h. GGML_QUANT_SIZES in gguf 0.19.0
    // agrees except for Q8_1, which it lists with the obsolete 40-byte layout.
    const std::map<uint32_t, std::pair<int64_t, size_t>> expected = {
        {0, {1, 4}},      {1, {1, 2}},      {2, {32, 18}},    {3, {32, 20}},
        {6, {32, 22}},    {7, {32, 24}},    {8, {32, 34}},    {9, {32, 36}},
        {10, {256, 84}},  {11, {256, 110}}, {12, {256, 144}}, {13, {256, 176}},
        {14, {256, 210}}, {15, {256, 292}}, {20, {32, 18}},   {30, {1, 2}},
    };
    for (const auto& [id, geometry] : expected) {
        const GgmlTypeTraits* traits = ggml_type_traits(id);
        ASSERT_NE(traits, nullptr) << "type id " << id;
        EXPECT_EQ(traits->block_size, geometry.first) << traits->name;
        EXPECT_EQ(traits->type_size, geometry.second) << traits->name;
        EXPECT_EQ(traits->can_dequantize, id != 9) << traits->name;
    }
    EXPECT_EQ(ggml_type_traits(4), nullptr);
    EXPECT_EQ(ggml_type_traits(16), nullptr);
    EXPECT_EQ(ggml_type_traits(31), nullptr);
    EXPECT_EQ(ggml_type_traits(1u << 31), nullptr);
    EXPECT_EQ(ggml_type_name(GgmlType::Q4_K), "Q4_K");
    EXPECT_EQ(ggml_type_name(static_cast<GgmlType>(99)), "type 99");
}

TEST(GgmlTypeTraits, RowSize) {
    EXPECT_EQ(ggml_row_size(GgmlType::Q4_K, 1024), 4u * 144);
    EXPECT_EQ(ggml_row_size(GgmlType::Q8_0, 640), 20u * 34);
    EXPECT_EQ(ggml_row_size(GgmlType::F16, 3), 6u);
    EXPECT_THROW(ggml_row_size(GgmlType::Q4_K, 640), Error);
    EXPECT_THROW(ggml_row_size(static_cast<GgmlType>(4), 32), Error);
}

// ---------------------------------------------------------------------------------------------
// Dequantization

TEST(Dequantize, HandWrittenQ4_0) {
    uint8_t block[18];
    const uint16_t d = 0x3800;  // 0.5
    std::memcpy(block, &d, 2);
    for (int j = 0; j < 16; ++j) {
        block[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    }
    float y[32];
    dequantize(GgmlType::Q4_0, block, y, 32);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], (j - 8) * 0.5f) << j;
        EXPECT_EQ(y[j + 16], (15 - j - 8) * 0.5f) << j;
    }
}

TEST(Dequantize, HandWrittenQ4_K) {
    // d = 1, dmin = 0.5; sub-block s has scale s + 1 and min s (s < 4 only, so the packed
    // bytes are plain); every nibble is 3 (low) and 5 (high).
    uint8_t block[144] = {};
    const uint16_t d = 0x3C00;
    const uint16_t dmin = 0x3800;
    std::memcpy(block, &d, 2);
    std::memcpy(block + 2, &dmin, 2);
    for (int s = 0; s < 4; ++s) {
        block[4 + s] = static_cast<uint8_t>(s + 1);  // scales 0-3
        block[8 + s] = static_cast<uint8_t>(s);      // mins 0-3
    }
    std::memset(block + 16, 0x53, 128);
    float y[256];
    dequantize(GgmlType::Q4_K, block, y, 256);
    // Chunk 0: low nibbles use sub-block 0 (scale 1, min 0), high nibbles sub-block 1
    // (scale 2, min 1). Chunk 1 uses sub-blocks 2 and 3. Sub-blocks 4-7 have scale 0, min 0.
    EXPECT_EQ(y[0], 3.0f);
    EXPECT_EQ(y[32], 2.0f * 5 - 0.5f * 1);
    EXPECT_EQ(y[64], 3.0f * 3 - 0.5f * 2);
    EXPECT_EQ(y[96 + 31], 4.0f * 5 - 0.5f * 3);
    EXPECT_EQ(y[128], 0.0f);
    EXPECT_EQ(y[255], 0.0f);
}

TEST(Dequantize, RejectsPartialBlock) {
    std::vector<uint8_t> bytes(64);
    std::vector<float> out(64);
    EXPECT_THROW(dequantize(GgmlType::Q4_0, bytes.data(), out.data(), 31), Error);
    EXPECT_THROW(dequantize(GgmlType::Q8_1, bytes.data(), out.data(), 32), Error);
}

TEST(Dequantize, RandomBlocksMatchGgufPy) {
    const std::string dir = test::make_temp_dir("sz-random-blocks");
    const std::string path = dir + "/random_blocks.gguf";
    test::run_python_reference("write_random_blocks.py", "'" + path + "'");
    auto file = gguf::File::open(path);

    const std::set<std::string> expected_types = {"F16",  "BF16", "Q4_0", "Q4_1", "Q5_0",
                                                  "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K",
                                                  "Q5_K", "Q6_K", "IQ4_NL", "Q8_K"};
    std::set<std::string> seen;
    for (const gguf::TensorInfo& info : file->tensors()) {
        const std::string suffix = ".raw";
        if (info.name.size() < suffix.size() ||
            info.name.compare(info.name.size() - suffix.size(), suffix.size(), suffix) != 0) {
            continue;
        }
        const std::string type = info.name.substr(0, info.name.size() - suffix.size());
        SCOPED_TRACE(type);
        EXPECT_EQ(ggml_type_name(info.type), type);
        seen.insert(type);

        torch::Tensor actual = gguf::load_tensor_f32(info);
        torch::Tensor expected = gguf::load_tensor_f32(file->tensor(type + ".expected"));
        ASSERT_EQ(actual.sizes(), expected.sizes());
        const Comparison comparison =
            compare_floats(actual.data_ptr<float>(), expected.data_ptr<float>(), actual.numel());
        EXPECT_EQ(comparison.mismatches, 0) << "first mismatch at element " << comparison.first_mismatch;
        EXPECT_EQ(comparison.max_abs_diff, 0.0);
        std::cout << "[ random ] " << type << ": " << actual.numel()
                  << " elements, max abs diff " << comparison.max_abs_diff << "\n";
    }
    EXPECT_EQ(seen, expected_types);
    std::filesystem::remove_all(dir);
}

// Same checksum as tests/reference/dequantize_real_model.py: sum(bits[i] * (2i + 1)) mod 2^64.
uint64_t checksum(const float* values, int64_t count) {
    uint64_t sum = 0;
    for (int64_t i = 0; i < count; ++i) {
        sum += static_cast<uint64_t>(bits_of(values[i])) * (2 * static_cast<uint64_t>(i) + 1);
    }
    return sum;
}

std::vector<float> read_floats(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    const auto size = static_cast<size_t>(in.tellg());
    std::vector<float> values(size / sizeof(float));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(size));
    return values;
}

// Every element of every tensor is covered by the checksum; the sampled rows give the
// element-wise difference. The expected maximum absolute difference is exactly 0: both sides
// convert fp16 exactly and round each product and difference once, in the same order.
TEST(Dequantize, RealModelMatchesGgufPy) {
    const std::string model = test::real_model_path();
    const std::string dir = test::make_temp_dir("sz-real-dequant");
    const auto index = nlohmann::json::parse(
        test::run_python_reference("dequantize_real_model.py", "'" + model + "' '" + dir + "'"));
    const std::vector<float> reference_rows = read_floats(dir + "/rows.f32");
    auto file = gguf::File::open(model);
    ASSERT_EQ(index.size(), file->tensors().size());

    std::map<std::string, int> tensors_per_type;
    std::map<std::string, double> max_diff_per_type;
    size_t row_cursor = 0;
    double seconds = 0.0;
    int64_t total_elements = 0;
    for (const auto& entry : index) {
        const std::string name = entry["name"];
        SCOPED_TRACE(name);
        const gguf::TensorInfo& info = file->tensor(name);
        const std::string type = entry["type"];
        EXPECT_EQ(ggml_type_name(info.type), type);
        EXPECT_EQ(info.ne, entry["ne"].get<std::vector<int64_t>>());

        const auto start = std::chrono::steady_clock::now();
        torch::Tensor values = gguf::load_tensor_f32(info);
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        total_elements += values.numel();
        const float* data = values.data_ptr<float>();
        EXPECT_EQ(std::to_string(checksum(data, values.numel())), entry["checksum"].get<std::string>());

        const int64_t row_length = info.ne[0];
        for (int64_t row : entry["rows"].get<std::vector<int64_t>>()) {
            ASSERT_LE(row_cursor + row_length, reference_rows.size());
            const Comparison comparison =
                compare_floats(data + row * row_length, reference_rows.data() + row_cursor, row_length);
            EXPECT_EQ(comparison.mismatches, 0) << "row " << row << ", first mismatch at column "
                                                << comparison.first_mismatch;
            max_diff_per_type[type] = std::max(max_diff_per_type[type], comparison.max_abs_diff);
            row_cursor += row_length;
        }
        ++tensors_per_type[type];
    }
    EXPECT_EQ(row_cursor, reference_rows.size());

    std::set<std::string> types;
    for (const auto& [type, count] : tensors_per_type) {
        types.insert(type);
        std::cout << "[ real model ] " << type << ": " << count << " tensors, max abs diff "
                  << max_diff_per_type[type] << "\n";
        EXPECT_EQ(max_diff_per_type[type], 0.0) << type;
    }
    std::cout << "[ real model ] dequantized " << total_elements << " elements in " << seconds
              << " s\n";
    EXPECT_EQ(types, (std::set<std::string>{"F32", "Q4_K", "Q5_0", "Q6_K", "Q8_0"}));
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sz
