// Cross-entropy through a Gemma-sized output head (V = 262144, H = 640, float32), forward and
// backward with respect to the hidden states, for 512 scored positions (a training batch of
// 4 conversations has 150 to 600):
//   WholeLogits    libtorch autograd on the whole [n, V] logits, the peer
//   Blocked/P      chunked_cross_entropy's gradient path with P positions per block
//   LossOnly       chunked_cross_entropy without gradients (one head product), for scale
//
//   build/cross_entropy_bench --benchmark_min_time=2
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "core/allocator.h"
#include "model/chunked_cross_entropy.h"

namespace {

constexpr int64_t kVocab = 262144;
constexpr int64_t kHidden = 640;
constexpr int64_t kPositions = 512;

struct Inputs {
    torch::Tensor weight = torch::randn({kVocab, kHidden}) * 0.03;
    torch::Tensor hidden = torch::randn({kPositions, kHidden});
    torch::Tensor targets = torch::randint(0, kVocab, {kPositions}, torch::kInt64);
    torch::Tensor weights = torch::ones({kPositions});
};

const Inputs& inputs() {
    static const Inputs shared = [] {
        sz::keep_freed_memory_in_process();   // as the subzero binary does
        torch::manual_seed(0);
        return Inputs{};
    }();
    return shared;
}

void WholeLogits(benchmark::State& state) {
    const Inputs& in = inputs();
    for (auto _ : state) {
        torch::Tensor hidden = in.hidden.clone().requires_grad_();
        torch::Tensor logits = torch::matmul(hidden, in.weight.t());
        torch::Tensor loss = torch::nn::functional::cross_entropy(
            logits, in.targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
        loss.backward();
        benchmark::DoNotOptimize(hidden.grad().data_ptr<float>());
    }
    state.counters["positions/s"] = benchmark::Counter(static_cast<double>(kPositions), benchmark::Counter::kIsIterationInvariantRate);
}

void Blocked(benchmark::State& state) {
    const Inputs& in = inputs();
    sz::CrossEntropyBlocks blocks;
    blocks.logit_elements = state.range(0) * kVocab;
    for (auto _ : state) {
        torch::Tensor hidden = in.hidden.clone().requires_grad_();
        torch::Tensor loss = sz::chunked_cross_entropy(hidden, in.weight, 0.0, in.targets, in.weights, blocks);
        loss.backward();
        benchmark::DoNotOptimize(hidden.grad().data_ptr<float>());
    }
    state.counters["positions/s"] = benchmark::Counter(static_cast<double>(kPositions), benchmark::Counter::kIsIterationInvariantRate);
}

void WholeLogitsLossOnly(benchmark::State& state) {
    const Inputs& in = inputs();
    torch::NoGradGuard no_grad;
    for (auto _ : state) {
        torch::Tensor logits = torch::matmul(in.hidden, in.weight.t());
        torch::Tensor loss = torch::nn::functional::cross_entropy(
            logits, in.targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
        benchmark::DoNotOptimize(loss.item<float>());
    }
    state.counters["positions/s"] = benchmark::Counter(static_cast<double>(kPositions), benchmark::Counter::kIsIterationInvariantRate);
}

void LossOnly(benchmark::State& state) {
    const Inputs& in = inputs();
    torch::NoGradGuard no_grad;
    sz::CrossEntropyBlocks blocks;
    blocks.vocab = state.range(0);
    for (auto _ : state) {
        torch::Tensor loss = sz::chunked_cross_entropy(in.hidden, in.weight, 0.0, in.targets, in.weights, blocks);
        benchmark::DoNotOptimize(loss.item<float>());
    }
    state.counters["positions/s"] = benchmark::Counter(static_cast<double>(kPositions), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(WholeLogits)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(Blocked)->Arg(16)->Arg(24)->Arg(32)->Arg(64)->Arg(128)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(WholeLogitsLossOnly)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(LossOnly)->Arg(2048)->Arg(4096)->Arg(8192)->Arg(16384)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
