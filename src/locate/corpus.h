// Corpus rows for `subzero locate`: chat messages read from JSONL, rendered with the model's
// chat template, tokenized, and packed into padded batches with loss masks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model/causal_lm.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace sz {

// Reads up to `max_rows` rows of {"messages": [{"role", "content"}, ...]} (0: all). Throws
// sz::Error naming the file and line for a missing file, invalid JSON or a row without messages.
std::vector<std::vector<ChatMessage>> read_corpus(const std::string& path, int64_t max_rows);

// One rendered row. Rows that end with an assistant message are measured on that reply: its
// tokens, end-of-turn marker included, are the loss targets. Rows that end with a user message
// are rendered with the generation prompt and every token after BOS is a target.
struct RenderedRow {
    std::vector<int32_t> tokens;
    int64_t first_target = 1;   // index of the first token that is a loss target
};

// Throws sz::Error when the rendered reply does not extend the rendered prompt token by token,
// or when truncation to `max_length` leaves no target.
RenderedRow render_row(const std::vector<ChatMessage>& messages, const ChatTemplate& chat_template,
                       const Tokenizer& tokenizer, int64_t max_length);

// Left-padded batch. `targets` is true at position t when token t is a loss target, which the
// logits at position t-1 predict. `last` is each row's last real position, found from the mask.
struct TokenBatch {
    torch::Tensor tokens;    // [B, T] int64
    torch::Tensor mask;      // [B, T] int64, 1 on real tokens
    torch::Tensor targets;   // [B, T] bool
    torch::Tensor last;      // [B] int64
};

TokenBatch make_batch(const std::vector<RenderedRow>& rows, int64_t begin, int64_t end, int32_t pad_id);

// Sum of next-token cross-entropy over the batch's target positions, and their count. Pads
// and non-target tokens never enter the sum.
struct MaskedLoss {
    torch::Tensor sum;       // scalar, differentiable
    int64_t count = 0;
};
MaskedLoss masked_cross_entropy(const torch::Tensor& logits, const TokenBatch& batch);

// [B, T] bool, true at the positions whose logits predict a target (position t predicts t+1).
torch::Tensor predicting_positions(const TokenBatch& batch);

// The same sum from a forward pass that applies the head at predicting positions only, through
// chunked_cross_entropy so that the [n, V] logits never exist whole. The mask, the logit
// positions and return_hidden of `options` are set from the batch.
MaskedLoss target_loss(CausalLM& model, const TokenBatch& batch, ForwardOptions options);

}  // namespace sz
