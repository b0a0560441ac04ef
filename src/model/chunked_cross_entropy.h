// Cross-entropy through a language model's output head, computed one block of the vocabulary at
// a time (with a running log-sum-exp) so that the [n, V] logits never exist whole. With Gemma's 262144-token vocabulary one
// float32 logit row is 1 MiB; a training batch with 400 scored positions would otherwise hold
// the logits, their log-softmax and their gradient, about 1.2 GiB, at the same time.
//
// Blocks run over the vocabulary rather than over positions, so every block of the head weight
// (671 MB in float32 for Gemma 3 270M) is read once per pass whatever the number of positions.
// The head is logits = c · tanh((h Wᵀ) / c) for a soft cap c > 0, or h Wᵀ when c = 0. The
// backward pass recomputes each block's logits instead of storing them, and returns a
// gradient for `hidden` only: the head weight must be frozen (LoRA never adapts it).
#pragma once

#include <cstdint>

#include <torch/torch.h>

namespace sz {

// Sum over positions i of weights[i] · CE(head(hidden[i]), targets[i]).
//   hidden   [n, H] float32, may require grad
//   weight   [V, H] float32 head weight, must not require grad
//   targets  [n] int64
//   weights  [n] float32, or undefined for all ones
// `vocab_block` vocabulary rows are processed at a time. A block's logits take
// n · vocab_block · 4 bytes, 20 MB for 300 positions and the default.
torch::Tensor chunked_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight, double softcap,
                                    const torch::Tensor& targets, const torch::Tensor& weights,
                                    int64_t vocab_block = 16384);

}  // namespace sz
