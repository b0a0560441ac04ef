#include "model/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace sz {

KvCache::KvCache(const ModelConfig& config, int64_t batch_size, int64_t max_length)
    : config_(config), batch_size_(batch_size), max_length_(max_length) {
    if (batch_size <= 0 || max_length <= 0) {
        fail("invalid KV cache size: batch {} x length {}", batch_size, max_length);
    }
    keys_.resize(config.n_layer);
    values_.resize(config.n_layer);
    key_mask_ = torch::zeros({batch_size, 0}, torch::kBool);
    key_positions_ = torch::zeros({batch_size, 0}, torch::kInt64);
    next_position_ = torch::zeros({batch_size}, torch::kInt64);
}

void KvCache::reserve(int64_t needed) {
    if (needed <= capacity_) {
        return;
    }
    if (needed > max_length_) {
        fail("context is full: {} tokens needed but the context size is {}; start a new conversation "
             "(/reset) or raise -c/--ctx-size",
             needed, max_length_);
    }
    // Doubling keeps reallocation cost amortised O(1) per token; start at 256 positions.
    int64_t new_capacity = std::max<int64_t>(256, capacity_);
    while (new_capacity < needed) {
        new_capacity *= 2;
    }
    new_capacity = std::min(new_capacity, max_length_);
    auto options = torch::TensorOptions().dtype(torch::kFloat32);
    for (int64_t il = 0; il < config_.n_layer; ++il) {
        auto grow = [&](torch::Tensor& store) {
            torch::Tensor bigger =
                torch::zeros({batch_size_, config_.n_head_kv, new_capacity, config_.n_embd_head}, options);
            if (store.defined() && length_ > 0) {
                bigger.narrow(2, 0, length_).copy_(store.narrow(2, 0, length_));
            }
            store = bigger;
        };
        grow(keys_[il]);
        grow(values_[il]);
    }
    capacity_ = new_capacity;
}

std::pair<torch::Tensor, torch::Tensor> KvCache::append(int64_t il, const torch::Tensor& keys,
                                                         const torch::Tensor& values) {
    int64_t n_new = keys.size(2);
    reserve(length_ + n_new);
    // The cache stores values, not graph nodes, so gradients never flow through cached keys.
    keys_[il].narrow(2, length_, n_new).copy_(keys.detach());
    values_[il].narrow(2, length_, n_new).copy_(values.detach());
    if (keys.requires_grad() || values.requires_grad()) {
        // Keep the graph for the new positions so a prefill through the cache still has gradients.
        torch::Tensor k = torch::cat({keys_[il].narrow(2, 0, length_), keys}, 2);
        torch::Tensor v = torch::cat({values_[il].narrow(2, 0, length_), values}, 2);
        return {k, v};
    }
    return {keys_[il].narrow(2, 0, length_ + n_new), values_[il].narrow(2, 0, length_ + n_new)};
}

void KvCache::commit(const torch::Tensor& valid, const torch::Tensor& positions) {
    key_mask_ = torch::cat({key_mask_, valid.to(torch::kBool)}, 1);
    key_positions_ = torch::cat({key_positions_, positions}, 1);
    next_position_ = next_position_ + valid.to(torch::kInt64).sum(1);
    length_ += valid.size(1);
}

void KvCache::truncate(int64_t n) {
    if (n < 0 || n > length_) {
        fail("cannot truncate KV cache of length {} to {}", length_, n);
    }
    if (n == length_) {
        return;
    }
    key_mask_ = key_mask_.narrow(1, 0, n).clone();
    key_positions_ = key_positions_.narrow(1, 0, n).clone();
    next_position_ = key_mask_.to(torch::kInt64).sum(1);
    length_ = n;
}

}  // namespace sz
