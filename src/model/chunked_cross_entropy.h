// Cross-entropy through a language model's output head without the whole [n, V] logits. With
// Gemma's 262144-token vocabulary one float32 logit row is 1 MiB; a training batch with 400
// scored positions would otherwise hold the logits, their log-softmax and their gradient,
// about 1.2 GiB, at the same time.
//
// Two paths, one per use:
// - Without gradients (evaluation), blocks run over the vocabulary with a running log-sum-exp.
//   Every block of the head weight (671 MB in float32 for Gemma 3 270M) is then read once per
//   pass, whatever the number of positions, at one head product per position.
// - With gradients for `hidden` (training), blocks run over positions. Each block's whole
//   logit rows give the loss and, in the same forward pass, the gradient with respect to
//   `hidden`; backward only scales it. Two head products per position instead of the three
//   (logits, recomputed logits, gradient) of a vocabulary-blocked backward.
// The head is logits = c · tanh((h Wᵀ) / c) for a soft cap c > 0, or h Wᵀ when c = 0. Only
// `hidden` gets a gradient: the head weight must be frozen (LoRA never adapts it).
#pragma once

#include <cstdint>

#include <torch/torch.h>

namespace sz {

struct CrossEntropyBlocks {
    // Vocabulary rows per block without gradients. A block's logits take n · vocab · 4 bytes,
    // 8 MiB for 512 positions, which stays below glibc's 32 MiB mmap threshold, so blocks
    // reuse heap memory instead of being mapped and zeroed anew. Measured on one causal-gate
    // pass of Gemma 3 270M (bench/locate_resume_bench.cpp): 2.4 s at 4096, 2.5 s at 2048 and
    // 8192, 3.1 s at 16384.
    int64_t vocab = 4096;
    // Logits held at once with gradients, in elements: positions per block =
    // logit_elements / V, 128 for Gemma's vocabulary, a 128 MiB float32 buffer. Smaller
    // blocks are slower because every block multiplies by the whole head weight. On 2 cores
    // with OpenBLAS, 512 positions took 2.4 s at 128 per block, 2.8 s at 64 and 5.1 s at 16
    // (bench/cross_entropy_bench.cpp). A vocabulary-blocked backward took 3.2 s.
    int64_t logit_elements = int64_t{1} << 25;
};

// Sum over positions i of weights[i] · CE(head(hidden[i]), targets[i]).
//   hidden   [n, H] float32, may require grad
//   weight   [V, H] float32 head weight, must not require grad
//   targets  [n] int64
//   weights  [n] float32, or undefined for all ones
// The gradient path is taken when grad mode is on and `hidden` requires grad. It supports one
// backward pass of first order, as training does.
torch::Tensor chunked_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight, double softcap,
                                    const torch::Tensor& targets, const torch::Tensor& weights,
                                    const CrossEntropyBlocks& blocks = {});

}  // namespace sz
