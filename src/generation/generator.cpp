#include "generation/generator.h"

#include <chrono>

#include <spdlog/spdlog.h>

#include "core/error.h"

namespace sz {

namespace {

using Clock = std::chrono::steady_clock;

double milliseconds_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

bool is_cancelled(const std::atomic<bool>* cancel) {
    return cancel != nullptr && cancel->load(std::memory_order_relaxed);
}

}  // namespace

const char* stop_reason_name(StopReason reason) {
    switch (reason) {
        case StopReason::EndOfGeneration:
            return "eog";
        case StopReason::Length:
            return "length";
        case StopReason::ContextFull:
            return "context";
        case StopReason::Cancelled:
            return "cancelled";
    }
    return "unknown";
}

double GenerationTimings::prompt_tokens_per_second() const {
    return prompt_ms > 0.0 ? 1000.0 * static_cast<double>(prompt_tokens) / prompt_ms : 0.0;
}

double GenerationTimings::generation_tokens_per_second() const {
    return generation_ms > 0.0 ? 1000.0 * static_cast<double>(generated_tokens) / generation_ms : 0.0;
}

size_t common_prefix_length(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) {
        ++n;
    }
    return n;
}

Generator::Generator(CausalLM& model, const Tokenizer& tokenizer, int64_t context_size)
    : model_(model), tokenizer_(tokenizer), context_size_(context_size) {
    if (context_size <= 0) {
        fail("invalid context size {}: expected a positive number of tokens (-c)", context_size);
    }
    const int64_t trained = model.config().n_ctx_train;
    if (trained > 0 && context_size > trained) {
        spdlog::warn("context size {} exceeds the {} tokens {} was trained with; output past that "
                     "length may degrade",
                     context_size, trained, model.config().name);
    }
    cache_ = std::make_unique<KvCache>(model.config(), 1, context_size);
}

void Generator::reset() {
    cache_->truncate(0);
    cached_tokens_.clear();
}

torch::Tensor Generator::extend(const std::vector<int32_t>& tokens) {
    std::vector<int64_t> ids(tokens.begin(), tokens.end());
    torch::Tensor input = torch::tensor(ids, torch::kInt64).view({1, static_cast<int64_t>(ids.size())});
    ForwardOptions options;
    options.cache = cache_.get();
    options.last_position_only = true;
    torch::Tensor logits = model_.forward(input, options);
    cached_tokens_.insert(cached_tokens_.end(), tokens.begin(), tokens.end());
    SZ_ASSERT(static_cast<int64_t>(cached_tokens_.size()) == cache_->length());
    return logits;
}

size_t Generator::reuse_prefix(const std::vector<int32_t>& prompt) {
    size_t reused = common_prefix_length(cached_tokens_, prompt);
    // The logits of the last prompt position are not cached, so that token always runs again.
    if (reused == prompt.size()) {
        reused -= 1;
    }
    cache_->truncate(static_cast<int64_t>(reused));
    cached_tokens_.resize(reused);
    return reused;
}

GenerationResult Generator::generate(const std::vector<int32_t>& prompt, Sampler& sampler,
                                     const GenerationOptions& options) {
    if (prompt.empty()) {
        fail("cannot generate from an empty prompt");
    }
    const int64_t prompt_length = static_cast<int64_t>(prompt.size());
    if (prompt_length >= context_size_) {
        fail("prompt has {} tokens but the context size is {}; shorten it or raise -c", prompt_length,
             context_size_);
    }

    torch::NoGradGuard no_grad;
    GenerationResult result;
    GenerationTimings& timings = result.timings;
    try {
        const size_t reused = reuse_prefix(prompt);
        timings.reused_tokens = static_cast<int64_t>(reused);
        timings.prompt_tokens = prompt_length - timings.reused_tokens;

        Clock::time_point prefill_start = Clock::now();
        torch::Tensor logits = extend(std::vector<int32_t>(prompt.begin() + reused, prompt.end()));
        timings.prompt_ms = milliseconds_since(prefill_start);

        // llama.cpp also counts the prompt in the repetition-penalty window.
        sampler.clear_history();
        sampler.accept(prompt);

        StreamDecoder decoder(tokenizer_);
        auto emit = [&](const std::string& chunk) {
            if (chunk.empty()) {
                return;
            }
            result.text += chunk;
            if (options.on_text) {
                options.on_text(chunk);
            }
        };

        Clock::time_point generation_start = Clock::now();
        result.stop_reason = StopReason::Length;
        while (true) {
            if (options.max_new_tokens >= 0 &&
                static_cast<int64_t>(result.tokens.size()) >= options.max_new_tokens) {
                result.stop_reason = StopReason::Length;
                break;
            }
            if (is_cancelled(options.cancel)) {
                result.stop_reason = StopReason::Cancelled;
                break;
            }

            Clock::time_point sample_start = Clock::now();
            const int32_t token = sampler.sample(logits);
            timings.sampling_ms += milliseconds_since(sample_start);
            sampler.accept(token);
            result.tokens.push_back(token);

            if (tokenizer_.is_end_of_generation(token)) {
                result.stop_reason = StopReason::EndOfGeneration;
                break;
            }
            emit(decoder.push(token));

            // The sampled token is fed to the model only when another one will follow, so a
            // reply may end on the last free position.
            const bool below_limit = options.max_new_tokens < 0 ||
                                     static_cast<int64_t>(result.tokens.size()) < options.max_new_tokens;
            // TODO: llama.cpp can shift the context (drop old tokens) to keep generating;
            // here the reply stops at the context size.
            if (below_limit && cache_->length() + 1 > context_size_) {
                result.stop_reason = StopReason::ContextFull;
                break;
            }
            if (below_limit && !is_cancelled(options.cancel)) {
                logits = extend({token});
            }
        }
        emit(decoder.flush());
        timings.generated_tokens = static_cast<int64_t>(result.tokens.size());
        timings.generation_ms = milliseconds_since(generation_start);
    } catch (...) {
        // A failure inside forward() can leave keys and values of unknown tokens behind.
        reset();
        throw;
    }
    return result;
}

}  // namespace sz
