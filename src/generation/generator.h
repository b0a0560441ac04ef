// Text generation: prefill a prompt into a KV cache, then decode one token at a time with a
// Sampler until an end-of-generation token, a token limit, a full context or cancellation.
//
// A Generator keeps its KV cache between calls. Each generate() reuses the cached keys and
// values of the longest common token prefix with the previous call and prefills only the
// rest, so a chat that re-renders the whole conversation each turn pays for the new turn only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/causal_lm.h"
#include "model/kv_cache.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace sz {

enum class StopReason {
    EndOfGeneration,  // the model sampled an end-of-generation token (EOS, <end_of_turn>)
    Length,           // max_new_tokens reached
    ContextFull,      // no position left in the context for the next token
    Cancelled,        // the cancellation flag was set
};

// "eog", "length", "context" or "cancelled", as written in JSON output.
const char* stop_reason_name(StopReason reason);

struct GenerationTimings {
    int64_t prompt_tokens = 0;     // prompt tokens run through the model in this call
    int64_t reused_tokens = 0;     // prompt tokens whose keys and values came from the cache
    double prompt_ms = 0.0;        // prefill wall time
    int64_t generated_tokens = 0;  // sampled tokens, the end-of-generation token included
    double generation_ms = 0.0;    // wall time from the end of prefill to the last token
    double sampling_ms = 0.0;      // part of generation_ms spent in the sampler

    double prompt_tokens_per_second() const;
    double generation_tokens_per_second() const;
};

struct GenerationOptions {
    // Maximum number of tokens to sample (llama.cpp's -n); negative means no limit other
    // than the context size. 0 only prefills the prompt.
    int64_t max_new_tokens = 256;
    // Receives the reply text as it is produced, in chunks of whole UTF-8 characters.
    std::function<void(const std::string&)> on_text;
    // Checked before each token; when it becomes true the call returns with
    // StopReason::Cancelled and the text generated so far. The flag is not reset.
    const std::atomic<bool>* cancel = nullptr;
};

struct GenerationResult {
    // Every sampled token, including the end-of-generation token when stop_reason is
    // EndOfGeneration.
    std::vector<int32_t> tokens;
    // Decoded reply; control tokens such as <end_of_turn> render as nothing.
    std::string text;
    StopReason stop_reason = StopReason::Length;
    GenerationTimings timings;
};

// Length of the longest common prefix of two token sequences.
size_t common_prefix_length(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

class Generator {
public:
    // The model and tokenizer must outlive the generator. context_size is the maximum number
    // of positions (prompt plus reply) in the KV cache.
    Generator(CausalLM& model, const Tokenizer& tokenizer, int64_t context_size);

    // Generates a continuation of `prompt`. Throws sz::Error when the prompt is empty or
    // does not leave one free position in the context. The sampler's penalty history is
    // replaced by the prompt, and every sampled token is accepted into it.
    GenerationResult generate(const std::vector<int32_t>& prompt, Sampler& sampler, const GenerationOptions& options);

    // Empties the KV cache, so the next call prefills its whole prompt.
    void reset();

    int64_t context_size() const { return context_size_; }
    // Tokens whose keys and values are in the cache, in order.
    const std::vector<int32_t>& cached_tokens() const { return cached_tokens_; }

private:
    // Runs `tokens` through the model on top of the cache and returns the logits of the
    // last position, [1, 1, V].
    torch::Tensor extend(const std::vector<int32_t>& tokens);
    // Truncates the cache to the longest common prefix with `prompt` and returns its length.
    // The last prompt token is always left out, so that its logits are computed again.
    size_t reuse_prefix(const std::vector<int32_t>& prompt);

    CausalLM& model_;
    const Tokenizer& tokenizer_;
    int64_t context_size_;
    std::unique_ptr<KvCache> cache_;
    std::vector<int32_t> cached_tokens_;
};

}  // namespace sz
