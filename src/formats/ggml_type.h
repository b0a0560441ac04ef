// ggml tensor types as stored in GGUF files, their block geometry, and dequantization.
//
// Block sizes and byte sizes follow ggml's ggml-common.h; the dequantization formulas follow
// ggml-quants.c and are checked element for element against the `gguf` Python package.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sz {

enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, IQ4_NL = 20, BF16 = 30,
};

struct GgmlTypeTraits {
    const char* name;
    int64_t block_size;   // elements per block
    size_t type_size;     // bytes per block
    bool can_dequantize;  // false for types subzero recognises but cannot read (Q8_1)
};

// Returns nullptr for a type id subzero does not know.
const GgmlTypeTraits* ggml_type_traits(uint32_t type_id);
const GgmlTypeTraits& ggml_type_traits(GgmlType type);
std::string ggml_type_name(GgmlType type);

// Bytes taken by `n_elements` elements of `type`; n_elements must be a multiple of the block size.
size_t ggml_row_size(GgmlType type, int64_t n_elements);

// Converts `n_elements` consecutive elements (a multiple of the block size) to float32.
// Throws sz::Error for a type that cannot be dequantized.
void dequantize(GgmlType type, const void* src, float* dst, int64_t n_elements);

// Encodes `n_elements` float32 values (a multiple of the block size) as `type`, byte for byte as
// ggml's reference code does (fp16/bf16 round to nearest even; Q8_0 stores d = max|x| / 127 as
// fp16 and round-half-away-from-zero of x / d). Supports F32, F16, BF16 and Q8_0; throws
// sz::Error for other types. `dst` receives ggml_row_size(type, n_elements) bytes.
void quantize(GgmlType type, const float* src, void* dst, int64_t n_elements);

// IEEE binary16 and bfloat16 conversions (round to nearest even on the way down).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

}  // namespace sz
