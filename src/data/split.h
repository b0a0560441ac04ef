// Train/held-out split and padded training batches.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <torch/torch.h>

#include "data/conversation.h"
#include "data/tokenized_example.h"

namespace sz {

struct SplitOptions {
    uint64_t seed = 0;
    // Share of conversations held out, in [0, 1). The count is rounded to the nearest integer,
    // and a non-zero share holds out at least one conversation when there are two or more.
    double heldout_fraction = 0.0;
    // Exact number held out; set either this or heldout_fraction, not both.
    std::optional<size_t> heldout_count;
};

// Indices into the split list, ascending, so each part keeps the file order.
struct DataSplit {
    std::vector<size_t> train;
    std::vector<size_t> heldout;
};

// Holds out the conversations whose seeded 64-bit hash of conversation_key() is lowest. The
// choice depends on the seed and the contents only, so reordering the file selects the same
// conversations. Adding conversations can move the rank boundary, so it can change which
// earlier ones are held out. Conversations with equal keys are ranked by position.
// Throws sz::Error when the options are invalid or would leave no training conversation.
DataSplit split_conversations(const std::vector<Conversation>& conversations, const SplitOptions& options);

// A right-padded batch. T is the longest example in the batch.
// TODO: batches are not bucketed by length, so one long example pads every row of its batch.
struct Batch {
    torch::Tensor input_ids;       // [B, T] int64; pad_id after each example
    torch::Tensor attention_mask;  // [B, T] int64; 1 on real tokens, 0 on padding
    torch::Tensor loss_mask;       // [B, T] float32; TokenizedExample::loss_mask, 0 on padding
    std::vector<size_t> example_indices;  // rows' positions in the batcher's example list
    int64_t trained_tokens = 0;           // sum of loss_mask
};

// Pads the examples at `indices` into one batch. Throws sz::Error when `indices` is empty.
Batch make_batch(const std::vector<TokenizedExample>& examples, const std::vector<size_t>& indices,
                 int64_t pad_id);

struct BatcherOptions {
    int64_t batch_size = 8;
    int64_t pad_id = 0;  // Gemma's <pad>; any valid id works because padding is masked
    bool shuffle = true;
    bool drop_last = false;  // drop a final batch smaller than batch_size
    uint64_t seed = 0;
};

// Fixed-size batches of the examples, in an order that depends only on the seed and the epoch
// number, so a resumed run gets the same batches.
class Batcher {
public:
    // Throws sz::Error when batch_size < 1 or there are no examples.
    Batcher(std::vector<TokenizedExample> examples, const BatcherOptions& options);

    size_t batches_per_epoch() const;
    // Example order of one epoch: the identity without shuffling, otherwise a Fisher-Yates
    // permutation drawn from std::mt19937_64 seeded with the seed and the epoch. The draws use
    // no std:: distribution, whose algorithm differs between standard libraries, so the order
    // is the same on every platform.
    std::vector<size_t> epoch_order(int64_t epoch) const;
    // Batch `index` (0-based, < batches_per_epoch()) of `epoch`.
    Batch batch(int64_t epoch, size_t index) const;

    const std::vector<TokenizedExample>& examples() const { return examples_; }

private:
    std::vector<TokenizedExample> examples_;
    BatcherOptions options_;
};

}  // namespace sz
