// Key/value cache for incremental decoding, shared by all layers of one model instance.
//
// Storage per layer: keys and values [B, n_head_kv, capacity, D] in float32 (fp16 would
// overflow on Gemma activations). Capacity grows by doubling up to `max_length`. Each batch
// row keeps a key-validity mask, so left-padded batches decode together, and its next RoPE
// position, so padding does not shift positions.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "model/model_config.h"

namespace sz {

class KvCache {
public:
    KvCache(const ModelConfig& config, int64_t batch_size, int64_t max_length);

    int64_t length() const { return length_; }
    int64_t max_length() const { return max_length_; }
    int64_t batch_size() const { return batch_size_; }

    // Writes the new keys/values [B, Nkv, T, D] of layer `il` after the cached ones and returns
    // views of all keys/values [B, Nkv, length + T, D]. The length advances in commit().
    std::pair<torch::Tensor, torch::Tensor> append(int64_t il, const torch::Tensor& keys, const torch::Tensor& values);

    // Marks T new positions as cached once every layer has appended them; `valid` [B, T] says
    // which of them are real tokens (false for padding), `positions` [B, T] their RoPE positions.
    void commit(const torch::Tensor& valid, const torch::Tensor& positions);

    // Key-validity mask [B, length] (bool), key RoPE positions [B, length] and the next
    // position per row [B] (int64).
    const torch::Tensor& key_mask() const { return key_mask_; }
    const torch::Tensor& key_positions() const { return key_positions_; }
    const torch::Tensor& next_position() const { return next_position_; }

    // Forgets everything after the first `n` positions (n <= length), for example to drop
    // a rejected continuation. truncate(0) empties the cache.
    void truncate(int64_t n);

private:
    void reserve(int64_t needed);

    ModelConfig config_;
    int64_t batch_size_;
    int64_t max_length_;
    int64_t capacity_ = 0;
    int64_t length_ = 0;
    std::vector<torch::Tensor> keys_;
    std::vector<torch::Tensor> values_;
    torch::Tensor key_mask_;
    torch::Tensor key_positions_;
    torch::Tensor next_position_;
};

}  // namespace sz
