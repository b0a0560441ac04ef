// y = x Wᵀ for decode-sized inputs (a few rows of x), with W in float32, fp16 or bfloat16.
//
// Decoding reads every weight once per token, so its speed is memory bandwidth. libtorch 1.13
// sends a 1-row product through OpenBLAS sgemm, which repacks the whole weight matrix each
// call (measured 3x slower than a plain streaming pass on the 262144 x 640 Gemma head), and
// it has no fast CPU path for 16-bit weights at all. This kernel streams each weight row once,
// converts 16-bit values to float32 in registers (F16C / AVX-512) and accumulates in float32.
// Results equal a float32 product on the same weight values up to summation order.
#pragma once

#include <torch/torch.h>

namespace sz::kernels {

// x: [..., K] float32; weight: [N, K] kFloat32, kHalf or kBFloat16, contiguous.
// Returns [..., N] float32. Inputs with more than a few rows go to BLAS instead (converting
// 16-bit weight blocks to float32 first), since there the work is compute-bound.
// Not differentiable: callers that need gradients use torch::matmul on float32 weights.
torch::Tensor linear_decode(const torch::Tensor& x, const torch::Tensor& weight);

// Which instruction set linear_decode uses on this CPU: "avx512", "avx2" or "scalar".
const char* linear_decode_isa();

}  // namespace sz::kernels
