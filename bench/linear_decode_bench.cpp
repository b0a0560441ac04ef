// Microbenchmark: one decode-step projection (a single input row) through kernels::linear_decode
// with fp16 and float32 weights, against libtorch's float32 matmul on the same weights. Shapes are
// Gemma 3 270M's: the tied head (262144 x 640) and the MLP up projection (2048 x 640).
#include <benchmark/benchmark.h>

#include <torch/torch.h>

#include "kernels/linear_decode.h"

namespace {

void BM_LinearDecode(benchmark::State& state) {
    const int64_t rows = state.range(0), cols = state.range(1), m = state.range(2);
    torch::Tensor weight = torch::randn({rows, cols}).to(torch::kHalf);
    torch::Tensor x = torch::randn({m, cols});
    for (auto _ : state) {
        benchmark::DoNotOptimize(sz::kernels::linear_decode(x, weight));
    }
    state.SetBytesProcessed(state.iterations() * rows * cols * 2);
}

void BM_LinearDecodeFloat32(benchmark::State& state) {
    const int64_t rows = state.range(0), cols = state.range(1), m = state.range(2);
    torch::Tensor weight = torch::randn({rows, cols});
    torch::Tensor x = torch::randn({m, cols});
    for (auto _ : state) {
        benchmark::DoNotOptimize(sz::kernels::linear_decode(x, weight));
    }
    state.SetBytesProcessed(state.iterations() * rows * cols * 4);
}

void BM_TorchMatmulFloat32(benchmark::State& state) {
    const int64_t rows = state.range(0), cols = state.range(1), m = state.range(2);
    torch::Tensor weight = torch::randn({rows, cols});
    torch::Tensor x = torch::randn({m, cols});
    for (auto _ : state) {
        benchmark::DoNotOptimize(torch::matmul(x, weight.t()));
    }
    state.SetBytesProcessed(state.iterations() * rows * cols * 4);
}

}  // namespace

BENCHMARK(BM_LinearDecode)->Args({262144, 640, 1})->Args({2048, 640, 1})->Args({640, 2048, 1})->Args({2048, 640, 4})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LinearDecodeFloat32)->Args({262144, 640, 1})->Args({2048, 640, 1})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TorchMatmulFloat32)->Args({262144, 640, 1})->Args({2048, 640, 1})->Args({640, 2048, 1})->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
