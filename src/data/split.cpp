#include "data/split.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "core/error.h"

namespace sz {

namespace {

// The SplitMix64 step and finalizer: spreads every input bit over the output.
uint64_t mix64(uint64_t value) {
    value += 0x9E3779B97F4A7C15ULL;
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ULL;
    value = (value ^ (value >> 27)) * 0x94D049BB133111EBULL;
    return value ^ (value >> 31);
}

// 64-bit FNV-1a, fixed here because std::hash differs between standard libraries.
uint64_t fnv1a64(const std::string& text) {
    uint64_t hash = 0xCBF29CE484222325ULL;
    for (char c : text) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001B3ULL;
    }
    return hash;
}

// Uniform integer in [0, bound) by rejection, so no value is favoured.
uint64_t uniform_below(std::mt19937_64& engine, uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
    while (true) {
        const uint64_t draw = engine();
        if (draw >= threshold) {
            return draw % bound;
        }
    }
}

size_t heldout_size(size_t total, const SplitOptions& options) {
    if (options.heldout_count.has_value()) {
        if (options.heldout_fraction != 0.0) {
            fail("set either a held-out count ({}) or a held-out fraction ({}), not both",
                 *options.heldout_count, options.heldout_fraction);
        }
        return *options.heldout_count;
    }
    const double fraction = options.heldout_fraction;
    if (!std::isfinite(fraction) || fraction < 0.0 || fraction >= 1.0) {
        fail("invalid held-out fraction {}; expected a value in [0, 1)", fraction);
    }
    auto count = static_cast<size_t>(std::llround(fraction * static_cast<double>(total)));
    if (fraction > 0.0 && count == 0 && total >= 2) {
        count = 1;
    }
    return count;
}

}  // namespace

DataSplit split_conversations(const std::vector<Conversation>& conversations, const SplitOptions& options) {
    if (conversations.empty()) {
        fail("there are no conversations to split into training and held-out sets");
    }
    const size_t total = conversations.size();
    const size_t heldout = heldout_size(total, options);
    if (heldout >= total) {
        fail("holding out {} of {} conversations would leave none for training; hold out fewer", heldout, total);
    }

    const uint64_t seed_hash = mix64(options.seed);
    std::vector<std::pair<uint64_t, size_t>> ranks;  // seeded content hash, position
    ranks.reserve(total);
    for (size_t i = 0; i < total; ++i) {
        ranks.emplace_back(mix64(fnv1a64(conversation_key(conversations[i])) ^ seed_hash), i);
    }
    std::sort(ranks.begin(), ranks.end());

    DataSplit split;
    for (size_t rank = 0; rank < total; ++rank) {
        (rank < heldout ? split.heldout : split.train).push_back(ranks[rank].second);
    }
    std::sort(split.train.begin(), split.train.end());
    std::sort(split.heldout.begin(), split.heldout.end());
    return split;
}

Batch make_batch(const std::vector<TokenizedExample>& examples, const std::vector<size_t>& indices,
                 int64_t pad_id) {
    if (indices.empty()) {
        fail("cannot make a batch of zero examples");
    }
    size_t max_length = 0;
    for (size_t index : indices) {
        SZ_ASSERT(index < examples.size());
        SZ_ASSERT(examples[index].input_ids.size() == examples[index].loss_mask.size());
        max_length = std::max(max_length, examples[index].input_ids.size());
    }
    const auto rows = static_cast<int64_t>(indices.size());
    const auto columns = static_cast<int64_t>(max_length);

    Batch batch;
    batch.input_ids = torch::full({rows, columns}, pad_id, torch::kInt64);
    batch.attention_mask = torch::zeros({rows, columns}, torch::kInt64);
    batch.loss_mask = torch::zeros({rows, columns}, torch::kFloat32);
    auto ids = batch.input_ids.accessor<int64_t, 2>();
    auto attention = batch.attention_mask.accessor<int64_t, 2>();
    auto loss = batch.loss_mask.accessor<float, 2>();
    for (int64_t row = 0; row < rows; ++row) {
        const TokenizedExample& example = examples[indices[static_cast<size_t>(row)]];
        for (size_t column = 0; column < example.input_ids.size(); ++column) {
            const auto t = static_cast<int64_t>(column);
            ids[row][t] = example.input_ids[column];
            attention[row][t] = 1;
            loss[row][t] = example.loss_mask[column] != 0 ? 1.0f : 0.0f;
        }
        batch.trained_tokens += example.trained_tokens();
    }
    batch.example_indices = indices;
    return batch;
}

Batcher::Batcher(std::vector<TokenizedExample> examples, const BatcherOptions& options)
    : examples_(std::move(examples)), options_(options) {
    if (options_.batch_size < 1) {
        fail("invalid batch size {}; expected at least 1", options_.batch_size);
    }
    if (examples_.empty()) {
        fail("there are no training examples to batch");
    }
    if (options_.drop_last && examples_.size() < static_cast<size_t>(options_.batch_size)) {
        fail("{} examples do not fill one batch of {} and the last partial batch is dropped; lower the "
             "batch size",
             examples_.size(), options_.batch_size);
    }
}

size_t Batcher::batches_per_epoch() const {
    const auto size = static_cast<size_t>(options_.batch_size);
    return options_.drop_last ? examples_.size() / size : (examples_.size() + size - 1) / size;
}

std::vector<size_t> Batcher::epoch_order(int64_t epoch) const {
    std::vector<size_t> order(examples_.size());
    for (size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
    }
    if (!options_.shuffle) {
        return order;
    }
    std::mt19937_64 engine(mix64(options_.seed ^ mix64(static_cast<uint64_t>(epoch))));
    for (size_t i = order.size() - 1; i > 0; --i) {
        std::swap(order[i], order[uniform_below(engine, i + 1)]);
    }
    return order;
}

Batch Batcher::batch(int64_t epoch, size_t index) const {
    if (index >= batches_per_epoch()) {
        fail("batch index {} is out of range; an epoch has {} batches", index, batches_per_epoch());
    }
    const std::vector<size_t> order = epoch_order(epoch);
    const auto size = static_cast<size_t>(options_.batch_size);
    const size_t begin = index * size;
    const size_t end = std::min(begin + size, order.size());
    return make_batch(examples_, std::vector<size_t>(order.begin() + static_cast<std::ptrdiff_t>(begin),
                                                     order.begin() + static_cast<std::ptrdiff_t>(end)),
                      options_.pad_id);
}

}  // namespace sz
