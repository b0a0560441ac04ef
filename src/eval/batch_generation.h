// Replies to many prompts, decoded several rows at a time. The single-row Generator
// (generation/generator.h) streams every weight once per token. The decode kernel serves up
// to 8 rows in that same pass, so a batch of 8 costs about as much per step as one row.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "generation/generator.h"
#include "model/causal_lm.h"
#include "model/projection.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace sz {

struct BatchGenerationOptions {
    int64_t max_new_tokens = 96;
    int64_t batch_size = 8;
    // temp <= 0 is greedy. Prompt i is sampled with seed sampling.seed + i, so a reply does
    // not depend on which prompts share its batch.
    SamplerParams sampling;
    const ProjectionAdapter* adapter = nullptr;
    // Called after each finished batch with the number of prompts done so far.
    std::function<void(size_t done)> on_progress;
};

struct BatchReply {
    std::vector<int32_t> tokens;  // sampled tokens, the end-of-generation token excluded
    std::string text;
    StopReason stop_reason = StopReason::Length;
};

// Generates one reply per prompt (token ids, BOS included). Rows are left-padded with the
// vocabulary's pad token, which the attention mask hides. A row stops at an end-of-generation token or at
// max_new_tokens; the batch stops when every row has. Throws sz::Error for an empty prompt.
std::vector<BatchReply> generate_replies(CausalLM& model, const Tokenizer& tokenizer,
                                         const std::vector<std::vector<int32_t>>& prompts,
                                         const BatchGenerationOptions& options);

}  // namespace sz
