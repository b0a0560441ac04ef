#include "formats/ggml_type.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "core/error.h"

// Dequantization must round exactly like ggml's reference code and the `gguf` Python package,
// which compute `d * q - m` as a product and a separate subtraction. A fused multiply-add
// rounds once and would change the last bit, so contraction is disabled for this file (GCC
// contracts by default in GNU mode on targets with FMA, such as aarch64 or -march=native).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "GGUF blocks are little-endian and are read in place");

namespace sz {

namespace {

constexpr int64_t kQK = 32;    // elements per block of the legacy types (Q4_0 ... Q8_0, IQ4_NL)
constexpr int64_t kQK_K = 256;  // elements per super-block of the K-quants

constexpr uint32_t kMaxTypeId = 30;

// Indexed by ggml type id; entries with a null name are ids subzero does not know.
constexpr std::array<GgmlTypeTraits, kMaxTypeId + 1> make_traits_table() {
    std::array<GgmlTypeTraits, kMaxTypeId + 1> table{};
    table[0] = {"F32", 1, 4, true};
    table[1] = {"F16", 1, 2, true};
    table[2] = {"Q4_0", kQK, 2 + kQK / 2, true};
    table[3] = {"Q4_1", kQK, 2 + 2 + kQK / 2, true};
    table[6] = {"Q5_0", kQK, 2 + 4 + kQK / 2, true};
    table[7] = {"Q5_1", kQK, 2 + 2 + 4 + kQK / 2, true};
    table[8] = {"Q8_0", kQK, 2 + kQK, true};
    // Q8_1 stores d and s as fp16 (36 bytes) in current ggml; gguf-py 0.19.0 still lists the
    // older float32 layout (40 bytes). ggml writes the files, so its size is used.
    table[9] = {"Q8_1", kQK, 2 + 2 + kQK, false};
    table[10] = {"Q2_K", kQK_K, kQK_K / 16 + kQK_K / 4 + 2 + 2, true};
    table[11] = {"Q3_K", kQK_K, kQK_K / 8 + kQK_K / 4 + 12 + 2, true};
    table[12] = {"Q4_K", kQK_K, 2 + 2 + 12 + kQK_K / 2, true};
    table[13] = {"Q5_K", kQK_K, 2 + 2 + 12 + kQK_K / 8 + kQK_K / 2, true};
    table[14] = {"Q6_K", kQK_K, kQK_K / 2 + kQK_K / 4 + kQK_K / 16 + 2, true};
    table[15] = {"Q8_K", kQK_K, 4 + kQK_K + 2 * (kQK_K / 16), true};
    table[20] = {"IQ4_NL", kQK, 2 + kQK / 2, true};
    table[30] = {"BF16", 1, 2, true};
    return table;
}

constexpr std::array<GgmlTypeTraits, kMaxTypeId + 1> kTraits = make_traits_table();

// ---------------------------------------------------------------------------------------------
// Scalar conversions

uint32_t float_bits(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof(bits));
    return bits;
}

float bits_float(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
}

float fp16_bits_to_fp32(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1Fu;
    uint32_t mantissa = h & 0x3FFu;
    if (exponent == 0x1F) {  // infinity or NaN; the NaN payload is kept
        return bits_float(sign | 0x7F800000u | (mantissa << 13));
    }
    if (exponent != 0) {  // normal: rebias the exponent from 15 to 127
        return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }
    if (mantissa == 0) {
        return bits_float(sign);
    }
    // Subnormal: value = mantissa * 2^-24. Shift the leading one up to the implicit-bit
    // position; each shift lowers the float exponent, which starts at that of 2^-14.
    uint32_t float_exponent = 127 - 14;
    while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        --float_exponent;
    }
    return bits_float(sign | (float_exponent << 23) | ((mantissa & 0x3FFu) << 13));
}

// All 65536 fp16 values as float32, so the dequantization loops convert with one load.
const std::array<float, 65536>& fp16_table() {
    static const std::array<float, 65536> table = [] {
        std::array<float, 65536> values{};
        for (uint32_t h = 0; h < 65536; ++h) {
            values[h] = fp16_bits_to_fp32(static_cast<uint16_t>(h));
        }
        return values;
    }();
    return table;
}

// ---------------------------------------------------------------------------------------------
// Block readers. `block` points at one block of the type's byte size; `y` receives its
// block_size outputs. Field offsets follow ggml's block structs (ggml-common.h).

uint16_t load_u16(const uint8_t* p) {
    uint16_t value;
    std::memcpy(&value, p, sizeof(value));
    return value;
}

uint32_t load_u32(const uint8_t* p) {
    uint32_t value;
    std::memcpy(&value, p, sizeof(value));
    return value;
}

struct Fp16Reader {
    const float* table = fp16_table().data();
    float operator()(const uint8_t* p) const { return table[load_u16(p)]; }
};

// Q4_0: d, then 16 bytes of nibbles; low nibbles are elements 0..15, high nibbles 16..31.
void dequantize_q4_0(const uint8_t* block, float* y, const Fp16Reader& fp16) {
    const float d = fp16(block);
    const uint8_t* qs = block + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
}

// Q4_1: d, m, then nibbles as in Q4_0; y = q * d + m.
void dequantize_q4_1(const uint8_t* block, float* y, const Fp16Reader& fp16) {
    const float d = fp16(block);
    const float m = fp16(block + 2);
    const uint8_t* qs = block + 4;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
        y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
}

// Q5_0: d, a 32-bit mask with the fifth bit of every element, then nibbles as in Q4_0.
void dequantize_q5_0(const uint8_t* block, float* y, const Fp16Reader& fp16) {
    const float d = fp16(block);
    const uint32_t qh = load_u32(block + 2);
    const uint8_t* qs = block + 6;
    for (int j = 0; j < 16; ++j) {
        int low = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
        int high = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
        y[j] = static_cast<float>(low - 16) * d;
        y[j + 16] = static_cast<float>(high - 16) * d;
    }
}

// Q5_1: d, m, the fifth-bit mask, then nibbles; y = q * d + m.
void dequantize_q5_1(const uint8_t* block, float* y, const Fp16Reader& fp16) {
    const float d = fp16(block);
    const float m = fp16(block + 2);
    const uint32_t qh = load_u32(block + 4);
    const uint8_t* qs = block + 8;
    for (int j = 0; j < 16; ++j) {
        int low = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
        int high = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
        y[j] = static_cast<float>(low) * d + m;
        y[j + 16] = static_cast<float>(high) * d + m;
    }
}

// Q8_0: d, then 32 signed bytes.
void dequantize_q8_0(const uint8_t* block, float* y, const Fp16Reader& fp16) {
    const float d = fp16(block);
    const auto* qs = reinterpret_cast<const int8_t*>(block + 2);
    for (int j = 0; j < 32; ++j) {
        y[j] = static_cast<float>(qs[j]) * d;
    }
}

// IQ4_NL: d, then nibbles that index a fixed non-linear table of 16 levels.
void dequantize_iq4_nl(const uint8_t* block, float* y, const Fp16Reader& fp16) {
    static constexpr int8_t kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                           1,    13,   25,  38,  53,  69,  89,  113};
    const float d = fp16(block);
    const uint8_t* qs = block + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = d * static_cast<float>(kLevels[qs[j] & 0x0F]);
        y[j + 16] = d * static_cast<float>(kLevels[qs[j] >> 4]);
    }
}

// Q2_K: scales[16] (low nibble: scale, high nibble: min of each 16-element group), qs[64]
// with four 2-bit values per byte, then d and dmin. Element 128*h + 32*k + l is bits 2k..2k+1
// of qs[32*h + l] and belongs to group 8*h + 2*k + l/16: y = (d*scale) * q - (dmin*min).
void dequantize_q2_k(const uint8_t* block, float* y, const Fp16Reader& fp16) {
    const uint8_t* scales = block;
    const uint8_t* qs = block + 16;
    const float d = fp16(block + 80);
    const float dmin = fp16(block + 82);
    for (int half = 0; half < 2; ++half) {
        for (int k = 0; k < 4; ++k) {
            for (int sub = 0; sub < 2; ++sub) {
                const int group = 8 * half + 2 * k + sub;
                const float dl = d * static_cast<float>(scales[group] & 0x0F);
                const float ml = dmin * static_cast<float>(scales[group] >> 4);
                for (int l = 16 * sub; l < 16 * sub + 16; ++l) {
                    const int q = (qs[32 * half + l] >> (2 * k)) & 3;
                    y[128 * half + 32 * k + l] = dl * static_cast<float>(q) - ml;
                }
            }
        }
    }
}

// Q3_K: hmask[32], qs[64], scales[12], d. The 2-bit values are laid out as in Q2_K. Bit i of
// hmask[l] belongs to element 32*i + l; when it is clear the value is lowered by 4. The sixteen
// 6-bit signed scales (stored with an offset of 32) are packed as: low 4 bits of scale g in
// byte g % 8 (low nibble for g < 8, high nibble otherwise), high 2 bits of scale g in bits
// 2*(g/4)..2*(g/4)+1 of byte 8 + g % 4. y = (d * scale) * q.
void dequantize_q3_k(const uint8_t* block, float* y, const Fp16Reader& fp16) {
    const uint8_t* hmask = block;
    const uint8_t* qs = block + 32;
    const uint8_t* packed = block + 96;
    const float d = fp16(block + 108);

    float group_scale[16];
    for (int g = 0; g < 16; ++g) {
        int low = (packed[g % 8] >> (4 * (g / 8))) & 0x0F;
        int high = (packed[8 + g % 4] >> (2 * (g / 4))) & 0x03;
        group_scale[g] = d * static_cast<float>((low | (high << 4)) - 32);
    }
    for (int half = 0; half < 2; ++half) {
        for (int k = 0; k < 4; ++k) {
            const int mask_bit = 4 * half + k;
            for (int l = 0; l < 32; ++l) {
                const int index = 128 * half + 32 * k + l;
                int q = (qs[32 * half + l] >> (2 * k)) & 3;
                if (((hmask[l] >> mask_bit) & 1) == 0) {
                    q -= 4;
                }
                y[index] = group_scale[index / 16] * static_cast<float>(q);
            }
        }
    }
}

// Unpacks the eight 6-bit scales and mins of Q4_K and Q5_K from 12 bytes. Bytes 0-3 contain
// scales 0-3 and bytes 4-7 mins 0-3 in their low 6 bits. Their top 2 bits are the high bits of
// scales / mins 4-7, whose low 4 bits are the nibbles of bytes 8-11 (scale low, min high).
void unpack_k_scales(const uint8_t* packed, int scales[8], int mins[8]) {
    for (int s = 0; s < 4; ++s) {
        scales[s] = packed[s] & 63;
        mins[s] = packed[s + 4] & 63;
    }
    for (int s = 4; s < 8; ++s) {
        scales[s] = (packed[s + 4] & 0x0F) | ((packed[s - 4] >> 6) << 4);
        mins[s] = (packed[s + 4] >> 4) | ((packed[s] >> 6) << 4);
    }
}

// Q4_K: d, dmin, 12 bytes of packed scales, qs[128]. Chunk c (64 elements) reads qs[32c..]:
// low nibbles use sub-block 2c, high nibbles sub-block 2c+1; y = (d*scale) * q - (dmin*min).
void dequantize_q4_k(const uint8_t* block, float* y, const Fp16Reader& fp16) {
    const float d = fp16(block);
    const float dmin = fp16(block + 2);
    int scales[8];
    int mins[8];
    unpack_k_scales(block + 4, scales, mins);
    const uint8_t* qs = block + 16;
    for (int c = 0; c < 4; ++c) {
        const float d_low = d * static_cast<float>(scales[2 * c]);
        const float m_low = dmin * static_cast<float>(mins[2 * c]);
        const float d_high = d * static_cast<float>(scales[2 * c + 1]);
        const float m_high = dmin * static_cast<float>(mins[2 * c + 1]);
        for (int l = 0; l < 32; ++l) {
            y[64 * c + l] = d_low * static_cast<float>(qs[32 * c + l] & 0x0F) - m_low;
            y[64 * c + 32 + l] = d_high * static_cast<float>(qs[32 * c + l] >> 4) - m_high;
        }
    }
}

// Q5_K: as Q4_K with qh[32] before qs[128]; bit s of qh[l] is the fifth bit of element
// 32*s + l (sub-block s).
void dequantize_q5_k(const uint8_t* block, float* y, const Fp16Reader& fp16) {
    const float d = fp16(block);
    const float dmin = fp16(block + 2);
    int scales[8];
    int mins[8];
    unpack_k_scales(block + 4, scales, mins);
    const uint8_t* qh = block + 16;
    const uint8_t* qs = block + 48;
    for (int c = 0; c < 4; ++c) {
        const float d_low = d * static_cast<float>(scales[2 * c]);
        const float m_low = dmin * static_cast<float>(mins[2 * c]);
        const float d_high = d * static_cast<float>(scales[2 * c + 1]);
        const float m_high = dmin * static_cast<float>(mins[2 * c + 1]);
        for (int l = 0; l < 32; ++l) {
            int low = (qs[32 * c + l] & 0x0F) | (((qh[l] >> (2 * c)) & 1) << 4);
            int high = (qs[32 * c + l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4);
            y[64 * c + l] = d_low * static_cast<float>(low) - m_low;
            y[64 * c + 32 + l] = d_high * static_cast<float>(high) - m_high;
        }
    }
}

// Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), 16 signed 8-bit scales, d. Each
// 128-element half n uses ql[64n..], qh[32n..] and scales[8n..]; y = (d * scale) * (q - 32).
void dequantize_q6_k(const uint8_t* block, float* y, const Fp16Reader& fp16) {
    const float d = fp16(block + 208);
    for (int n = 0; n < 2; ++n) {
        const uint8_t* ql = block + 64 * n;
        const uint8_t* qh = block + 128 + 32 * n;
        const auto* scales = reinterpret_cast<const int8_t*>(block + 192 + 8 * n);
        float* out = y + 128 * n;
        for (int l = 0; l < 32; ++l) {
            const int group = l / 16;
            const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            out[l] = d * static_cast<float>(scales[group + 0]) * static_cast<float>(q1);
            out[l + 32] = d * static_cast<float>(scales[group + 2]) * static_cast<float>(q2);
            out[l + 64] = d * static_cast<float>(scales[group + 4]) * static_cast<float>(q3);
            out[l + 96] = d * static_cast<float>(scales[group + 6]) * static_cast<float>(q4);
        }
    }
}

// Q8_K: a float32 d, 256 signed bytes, then 16 int16 group sums that dequantization ignores.
void dequantize_q8_k(const uint8_t* block, float* y, const Fp16Reader&) {
    const float d = bits_float(load_u32(block));
    const auto* qs = reinterpret_cast<const int8_t*>(block + 4);
    for (int j = 0; j < 256; ++j) {
        y[j] = d * static_cast<float>(qs[j]);
    }
}

using BlockDequantizer = void (*)(const uint8_t*, float*, const Fp16Reader&);

BlockDequantizer block_dequantizer(GgmlType type) {
    switch (type) {
        case GgmlType::Q4_0: return dequantize_q4_0;
        case GgmlType::Q4_1: return dequantize_q4_1;
        case GgmlType::Q5_0: return dequantize_q5_0;
        case GgmlType::Q5_1: return dequantize_q5_1;
        case GgmlType::Q8_0: return dequantize_q8_0;
        case GgmlType::Q2_K: return dequantize_q2_k;
        case GgmlType::Q3_K: return dequantize_q3_k;
        case GgmlType::Q4_K: return dequantize_q4_k;
        case GgmlType::Q5_K: return dequantize_q5_k;
        case GgmlType::Q6_K: return dequantize_q6_k;
        case GgmlType::Q8_K: return dequantize_q8_k;
        case GgmlType::IQ4_NL: return dequantize_iq4_nl;
        default: return nullptr;
    }
}

}  // namespace

const GgmlTypeTraits* ggml_type_traits(uint32_t type_id) {
    if (type_id > kMaxTypeId || kTraits[type_id].name == nullptr) {
        return nullptr;
    }
    return &kTraits[type_id];
}

const GgmlTypeTraits& ggml_type_traits(GgmlType type) {
    const GgmlTypeTraits* traits = ggml_type_traits(static_cast<uint32_t>(type));
    if (traits == nullptr) {
        fail("unknown ggml type id {}", static_cast<uint32_t>(type));
    }
    return *traits;
}

std::string ggml_type_name(GgmlType type) {
    const GgmlTypeTraits* traits = ggml_type_traits(static_cast<uint32_t>(type));
    if (traits == nullptr) {
        return "type " + std::to_string(static_cast<uint32_t>(type));
    }
    return traits->name;
}

size_t ggml_row_size(GgmlType type, int64_t n_elements) {
    const GgmlTypeTraits& traits = ggml_type_traits(type);
    if (n_elements < 0 || n_elements % traits.block_size != 0) {
        fail("{} elements of ggml type {} do not fill whole blocks: the count must be a "
             "non-negative multiple of {}",
             n_elements, traits.name, traits.block_size);
    }
    return static_cast<size_t>(n_elements / traits.block_size) * traits.type_size;
}

void dequantize(GgmlType type, const void* src, float* dst, int64_t n_elements) {
    const GgmlTypeTraits& traits = ggml_type_traits(type);
    if (!traits.can_dequantize) {
        fail("ggml type {} cannot be dequantized by subzero (it is only used for activations "
             "inside llama.cpp); requantize the file with llama-quantize",
             traits.name);
    }
    if (n_elements < 0 || n_elements % traits.block_size != 0) {
        fail("cannot dequantize {} elements of ggml type {}: the count must be a non-negative "
             "multiple of the block size {}",
             n_elements, traits.name, traits.block_size);
    }
    const auto* bytes = static_cast<const uint8_t*>(src);
    const int64_t n_blocks = n_elements / traits.block_size;

    switch (type) {
        case GgmlType::F32:
            std::memcpy(dst, bytes, static_cast<size_t>(n_elements) * sizeof(float));
            return;
        case GgmlType::F16: {
            const float* table = fp16_table().data();
            for (int64_t i = 0; i < n_elements; ++i) {
                dst[i] = table[load_u16(bytes + 2 * i)];
            }
            return;
        }
        case GgmlType::BF16:
            for (int64_t i = 0; i < n_elements; ++i) {
                dst[i] = bf16_to_fp32(load_u16(bytes + 2 * i));
            }
            return;
        default:
            break;
    }

    BlockDequantizer dequantize_block = block_dequantizer(type);
    SZ_ASSERT(dequantize_block != nullptr);
    const Fp16Reader fp16;
    for (int64_t b = 0; b < n_blocks; ++b) {
        dequantize_block(bytes + b * traits.type_size, dst + b * traits.block_size, fp16);
    }
}

void quantize(GgmlType type, const float* src, void* dst, int64_t n_elements) {
    const GgmlTypeTraits& traits = ggml_type_traits(type);
    if (n_elements < 0 || n_elements % traits.block_size != 0) {
        fail("cannot quantize {} elements to ggml type {}: the count must be a non-negative "
             "multiple of the block size {}",
             n_elements, traits.name, traits.block_size);
    }
    auto* bytes = static_cast<uint8_t*>(dst);
    switch (type) {
        case GgmlType::F32:
            std::memcpy(bytes, src, static_cast<size_t>(n_elements) * sizeof(float));
            return;
        case GgmlType::F16:
        case GgmlType::BF16:
            for (int64_t i = 0; i < n_elements; ++i) {
                const uint16_t half = type == GgmlType::F16 ? fp32_to_fp16(src[i]) : fp32_to_bf16(src[i]);
                std::memcpy(bytes + 2 * i, &half, sizeof(half));
            }
            return;
        case GgmlType::Q8_0:
            for (int64_t b = 0; b < n_elements / kQK; ++b) {
                const float* x = src + b * kQK;
                uint8_t* block = bytes + b * traits.type_size;
                float max_abs = 0.0f;
                for (int j = 0; j < kQK; ++j) {
                    if (!std::isfinite(x[j])) {
                        fail("cannot quantize element {} to Q8_0: it is {}, and Q8_0 stores only "
                             "finite values",
                             b * kQK + j, x[j]);
                    }
                    max_abs = std::max(max_abs, std::fabs(x[j]));
                }
                const float d = max_abs / 127.0f;
                const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
                const uint16_t d_half = fp32_to_fp16(d);
                std::memcpy(block, &d_half, sizeof(d_half));
                for (int j = 0; j < kQK; ++j) {
                    block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * inverse)));
                }
            }
            return;
        default:
            fail("subzero cannot quantize to ggml type {}; use F32, F16, BF16 or Q8_0", traits.name);
    }
}

float fp16_to_fp32(uint16_t h) { return fp16_table()[h]; }

uint16_t fp32_to_fp16(float f) {
    const uint32_t bits = float_bits(f);
    const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
    const uint32_t magnitude = bits & 0x7FFFFFFFu;

    if (magnitude > 0x7F800000u) {  // NaN: keep the top payload bits and force a quiet NaN
        return static_cast<uint16_t>(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
    }
    // 65520 (0x477FF000) is halfway between the largest fp16, 65504, and 65536; ties go to the
    // even neighbour, which is infinity because 65504 has an odd mantissa.
    if (magnitude >= 0x477FF000u) {
        return static_cast<uint16_t>(sign | 0x7C00u);
    }
    const uint32_t exponent = magnitude >> 23;
    if (exponent < 113) {
        // Below 2^-14 the result is an fp16 subnormal, counted in units of 2^-24. The float is
        // m * 2^(exponent - 150) with a 24-bit m, so the unit count is m >> (126 - exponent),
        // rounded to nearest even on the bits shifted out.
        const uint32_t shift = 126 - exponent;
        if (shift > 24) {  // below 2^-25, which itself ties to zero
            return sign;
        }
        const uint32_t mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
        uint32_t units = mantissa >> shift;
        const uint32_t remainder = mantissa & ((1u << shift) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        if (remainder > halfway || (remainder == halfway && (units & 1u) != 0)) {
            ++units;  // may carry into the smallest normal, 0x0400, which is still correct
        }
        return static_cast<uint16_t>(sign | units);
    }
    // Normal: rebias the exponent and round the 13 dropped mantissa bits to nearest even. A
    // carry out of the mantissa correctly bumps the exponent.
    uint32_t rebiased = magnitude - ((127u - 15u) << 23);
    const uint32_t odd = (rebiased >> 13) & 1u;
    rebiased += 0x0FFFu + odd;
    return static_cast<uint16_t>(sign | (rebiased >> 13));
}

float bf16_to_fp32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

uint16_t fp32_to_bf16(float f) {
    const uint32_t bits = float_bits(f);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {  // NaN: truncate and force a quiet NaN
        return static_cast<uint16_t>((bits >> 16) | 0x0040u);
    }
    const uint32_t odd = (bits >> 16) & 1u;
    return static_cast<uint16_t>((bits + 0x7FFFu + odd) >> 16);
}

}  // namespace sz
