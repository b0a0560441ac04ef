// y = x Wᵀ with W stored in 16-bit floats (IEEE fp16 or bfloat16) and x, y in float32.
//
// Decoding reads every weight once per token, so its speed is memory bandwidth: 16-bit
// weights halve the bytes of float32 ones. libtorch 1.13's CPU matmul has no fast fp16 path,
// so this file converts weights to float32 in registers (F16C / AVX-512) and accumulates in
// float32. The result is exact with respect to the stored weights, which is what an f16 GGUF
// holds; only the summation order differs from a float32 BLAS.
#pragma once

#include <torch/torch.h>

namespace sz::kernels {

// x: [..., K] float32; weight: [N, K] kHalf or kBFloat16, contiguous. Returns [..., N] float32.
// Rows of x beyond a few use a float32 BLAS product on converted weight blocks instead, since
// there the work is compute-bound. Not differentiable: callers that need gradients convert
// the weight to float32 and use torch::matmul.
torch::Tensor linear_half(const torch::Tensor& x, const torch::Tensor& weight);

// Which instruction set linear_half uses on this CPU: "avx512", "avx2" or "scalar".
const char* linear_half_isa();

}  // namespace sz::kernels
