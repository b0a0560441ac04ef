#include "kernels/linear_decode.h"

#include <immintrin.h>

#include <cstring>

#include <ATen/Parallel.h>

#include "core/error.h"
#include "formats/ggml_type.h"

namespace sz::kernels {

namespace {

// Up to this many rows of x share one pass over the weights (each weight row is loaded once
// and dotted with every x row). Beyond it the product is compute-bound and BLAS wins.
constexpr int64_t kMaxRowsPerPass = 8;
// Weight rows per BLAS block when converting for larger inputs (~1-4 MB of float32).
constexpr int64_t kBlasBlockRows = 512;

// Storage type of the weight matrix.
enum class WeightType { F16, BF16, F32 };

// Element j of a weight row in any of the three storage types.
inline float weight_at(const void* row, int64_t j, WeightType kind) {
    if (kind == WeightType::F32) {
        return static_cast<const float*>(row)[j];
    }
    uint16_t h = static_cast<const uint16_t*>(row)[j];
    if (kind == WeightType::BF16) {
        uint32_t bits = static_cast<uint32_t>(h) << 16;
        float f;
        std::memcpy(&f, &bits, 4);
        return f;
    }
    return fp16_to_fp32(h);
}

// Scalar reference path for CPUs without F16C/AVX2.
inline const void* row_at(const void* w, int64_t n, int64_t k, WeightType kind) {
    size_t element_size = kind == WeightType::F32 ? 4 : 2;
    return static_cast<const uint8_t*>(w) + static_cast<size_t>(n) * static_cast<size_t>(k) * element_size;
}

void dot_rows_scalar(const float* x, int64_t m, int64_t k, const void* w, int64_t n_begin, int64_t n_end,
                     int64_t n_total, float* y, WeightType kind) {
    for (int64_t n = n_begin; n < n_end; ++n) {
        const void* row = row_at(w, n, k, kind);
        for (int64_t r = 0; r < m; ++r) {
            float sum = 0.0f;
            for (int64_t j = 0; j < k; ++j) {
                sum += x[r * k + j] * weight_at(row, j, kind);
            }
            y[r * n_total + n] = sum;
        }
    }
}

__attribute__((target("avx2,f16c,fma"))) inline __m256 load8(const void* row, int64_t j, WeightType kind) {
    if (kind == WeightType::F32) {
        return _mm256_loadu_ps(static_cast<const float*>(row) + j);
    }
    __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + j));
    if (kind == WeightType::F16) {
        return _mm256_cvtph_ps(raw);
    }
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

__attribute__((target("avx2,f16c,fma"))) inline float horizontal_sum(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_hadd_ps(lo, lo);
    lo = _mm_hadd_ps(lo, lo);
    return _mm_cvtss_f32(lo);
}

template <int M>
__attribute__((target("avx2,f16c,fma"))) void dot_rows_avx2(const float* x, int64_t k, const void* w,
                                                            int64_t n_begin, int64_t n_end, int64_t n_total, float* y,
                                                            WeightType kind) {
    for (int64_t n = n_begin; n < n_end; ++n) {
        const void* row = row_at(w, n, k, kind);
        __m256 acc[M];
        for (int r = 0; r < M; ++r) acc[r] = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 8 <= k; j += 8) {
            __m256 wv = load8(row, j, kind);
            for (int r = 0; r < M; ++r) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * k + j), wv, acc[r]);
        }
        for (int r = 0; r < M; ++r) {
            float sum = horizontal_sum(acc[r]);
            for (int64_t t = j; t < k; ++t) sum += x[r * k + t] * weight_at(row, t, kind);
            y[r * n_total + n] = sum;
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma"))) inline __m512 load16(const void* row, int64_t j, WeightType kind) {
    if (kind == WeightType::F32) {
        return _mm512_loadu_ps(static_cast<const float*>(row) + j);
    }
    __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + j));
    if (kind == WeightType::F16) {
        return _mm512_cvtph_ps(raw);
    }
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

template <int M>
__attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma"))) void dot_rows_avx512(const float* x, int64_t k,
                                                                                    const void* w, int64_t n_begin,
                                                                                    int64_t n_end, int64_t n_total,
                                                                                    float* y, WeightType kind) {
    // Two output rows per iteration so two weight streams are in flight.
    int64_t n = n_begin;
    for (; n + 2 <= n_end; n += 2) {
        const void* row0 = row_at(w, n, k, kind);
        const void* row1 = row_at(w, n + 1, k, kind);
        __m512 acc0[M], acc1[M];
        for (int r = 0; r < M; ++r) {
            acc0[r] = _mm512_setzero_ps();
            acc1[r] = _mm512_setzero_ps();
        }
        int64_t j = 0;
        for (; j + 16 <= k; j += 16) {
            __m512 w0 = load16(row0, j, kind);
            __m512 w1 = load16(row1, j, kind);
            for (int r = 0; r < M; ++r) {
                __m512 xv = _mm512_loadu_ps(x + r * k + j);
                acc0[r] = _mm512_fmadd_ps(xv, w0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(xv, w1, acc1[r]);
            }
        }
        for (int r = 0; r < M; ++r) {
            float s0 = _mm512_reduce_add_ps(acc0[r]);
            float s1 = _mm512_reduce_add_ps(acc1[r]);
            for (int64_t t = j; t < k; ++t) {
                s0 += x[r * k + t] * weight_at(row0, t, kind);
                s1 += x[r * k + t] * weight_at(row1, t, kind);
            }
            y[r * n_total + n] = s0;
            y[r * n_total + n + 1] = s1;
        }
    }
    if (n < n_end) {
        dot_rows_avx2<M>(x, k, w, n, n_end, n_total, y, kind);
    }
}

enum class Isa { Scalar, Avx2, Avx512 };

Isa detect_isa() {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma")) {
        return Isa::Avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma")) {
        return Isa::Avx2;
    }
    return Isa::Scalar;
}

const Isa kIsa = detect_isa();

template <int M>
void dot_rows(const float* x, int64_t k, const void* w, int64_t n_begin, int64_t n_end, int64_t n_total, float* y,
              WeightType kind) {
    switch (kIsa) {
        case Isa::Avx512: return dot_rows_avx512<M>(x, k, w, n_begin, n_end, n_total, y, kind);
        case Isa::Avx2: return dot_rows_avx2<M>(x, k, w, n_begin, n_end, n_total, y, kind);
        case Isa::Scalar: return dot_rows_scalar(x, M, k, w, n_begin, n_end, n_total, y, kind);
    }
}

void dot_rows_any(int64_t m, const float* x, int64_t k, const void* w, int64_t n_begin, int64_t n_end,
                  int64_t n_total, float* y, WeightType kind) {
    switch (m) {
        case 1: return dot_rows<1>(x, k, w, n_begin, n_end, n_total, y, kind);
        case 2: return dot_rows<2>(x, k, w, n_begin, n_end, n_total, y, kind);
        case 3: return dot_rows<3>(x, k, w, n_begin, n_end, n_total, y, kind);
        case 4: return dot_rows<4>(x, k, w, n_begin, n_end, n_total, y, kind);
        case 5: return dot_rows<5>(x, k, w, n_begin, n_end, n_total, y, kind);
        case 6: return dot_rows<6>(x, k, w, n_begin, n_end, n_total, y, kind);
        case 7: return dot_rows<7>(x, k, w, n_begin, n_end, n_total, y, kind);
        case 8: return dot_rows<8>(x, k, w, n_begin, n_end, n_total, y, kind);
        default: SZ_ASSERT(false);
    }
}

}  // namespace

const char* linear_decode_isa() {
    switch (kIsa) {
        case Isa::Avx512: return "avx512";
        case Isa::Avx2: return "avx2";
        case Isa::Scalar: return "scalar";
    }
    return "scalar";
}

torch::Tensor linear_decode(const torch::Tensor& x, const torch::Tensor& weight) {
    const auto dtype = weight.scalar_type();
    if (!(dtype == torch::kFloat32 || dtype == torch::kHalf || dtype == torch::kBFloat16) || weight.dim() != 2 ||
        !weight.is_contiguous()) {
        fail("linear_decode needs a contiguous 2-D float32, fp16 or bf16 weight");
    }
    const int64_t n_out = weight.size(0);
    const int64_t k = weight.size(1);
    if (x.size(-1) != k || x.scalar_type() != torch::kFloat32) {
        fail("linear_decode: input of shape [{}] does not match weight [{}, {}]", fmt::join(x.sizes(), ", "), n_out, k);
    }
    std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
    out_shape.back() = n_out;
    torch::Tensor x2 = x.reshape({-1, k}).contiguous();
    const int64_t m = x2.size(0);

    if (m > kMaxRowsPerPass && dtype == torch::kFloat32) {
        return torch::matmul(x2, weight.t()).view(out_shape);
    }
    if (m > kMaxRowsPerPass) {
        // Compute-bound: convert weight blocks to float32 and let BLAS do the product.
        torch::Tensor y = torch::empty({m, n_out}, torch::kFloat32);
        for (int64_t n0 = 0; n0 < n_out; n0 += kBlasBlockRows) {
            int64_t rows = std::min(kBlasBlockRows, n_out - n0);
            torch::Tensor block = weight.narrow(0, n0, rows).to(torch::kFloat32);
            y.narrow(1, n0, rows).copy_(torch::matmul(x2, block.t()));
        }
        return y.view(out_shape);
    }

    torch::Tensor y = torch::empty({m, n_out}, torch::kFloat32);
    const float* xp = x2.data_ptr<float>();
    const void* wp = weight.data_ptr();
    float* yp = y.data_ptr<float>();
    WeightType kind = WeightType::BF16;
    if (dtype == torch::kFloat32) {
        kind = WeightType::F32;
    } else if (dtype == torch::kHalf) {
        kind = WeightType::F16;
    }
    // Grain: enough rows that each task streams a few hundred KB of weights.
    const int64_t grain = std::max<int64_t>(16, (1 << 17) / std::max<int64_t>(k, 1));
    at::parallel_for(0, n_out, grain, [&](int64_t begin, int64_t end) {
        dot_rows_any(m, xp, k, wp, begin, end, n_out, yp, kind);
    });
    return y.view(out_shape);
}

}  // namespace sz::kernels
