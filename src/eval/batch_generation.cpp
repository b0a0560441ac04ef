#include "eval/batch_generation.h"

#include <algorithm>

#include "core/error.h"
#include "model/kv_cache.h"

namespace sz {

namespace {

void generate_batch(CausalLM& model, const Tokenizer& tokenizer, const std::vector<std::vector<int32_t>>& prompts,
                    size_t begin, size_t end, const BatchGenerationOptions& options, std::vector<BatchReply>& replies) {
    const int64_t rows = static_cast<int64_t>(end - begin);
    size_t longest = 0;
    for (size_t i = begin; i < end; ++i) {
        longest = std::max(longest, prompts[i].size());
    }
    const int64_t width = static_cast<int64_t>(longest);
    const int64_t pad_id = std::max<int32_t>(tokenizer.vocab().pad_id, 0);

    torch::Tensor tokens = torch::full({rows, width}, pad_id, torch::kInt64);
    torch::Tensor mask = torch::zeros({rows, width}, torch::kInt64);
    std::vector<Sampler> samplers;
    samplers.reserve(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
        const std::vector<int32_t>& prompt = prompts[begin + static_cast<size_t>(r)];
        const int64_t offset = width - static_cast<int64_t>(prompt.size());
        for (size_t t = 0; t < prompt.size(); ++t) {
            tokens[r][offset + static_cast<int64_t>(t)] = prompt[t];
        }
        mask.select(0, r).narrow(0, offset, static_cast<int64_t>(prompt.size())).fill_(1);
        SamplerParams params = options.sampling;
        params.seed = options.sampling.seed + static_cast<uint32_t>(begin + static_cast<size_t>(r));
        samplers.emplace_back(params);
        samplers.back().accept(prompt);
    }

    KvCache cache(model.config(), rows, width + options.max_new_tokens);
    ForwardOptions forward;
    forward.cache = &cache;
    forward.adapter = options.adapter;
    forward.last_position_only = true;
    forward.attention_mask = mask;
    torch::Tensor logits = model.forward(tokens, forward);  // [rows, 1, V]

    std::vector<bool> done(static_cast<size_t>(rows), false);
    int64_t active = rows;
    for (int64_t step = 0; step < options.max_new_tokens && active > 0; ++step) {
        torch::Tensor next = torch::full({rows, 1}, pad_id, torch::kInt64);
        torch::Tensor next_mask = torch::zeros({rows, 1}, torch::kInt64);
        torch::Tensor rows_logits = logits.reshape({rows, -1}).contiguous();
        for (int64_t r = 0; r < rows; ++r) {
            if (done[static_cast<size_t>(r)]) {
                continue;
            }
            BatchReply& reply = replies[begin + static_cast<size_t>(r)];
            const int32_t token = samplers[static_cast<size_t>(r)].sample(rows_logits[r]);
            samplers[static_cast<size_t>(r)].accept(token);
            if (tokenizer.is_end_of_generation(token)) {
                reply.stop_reason = StopReason::EndOfGeneration;
                done[static_cast<size_t>(r)] = true;
                --active;
                continue;
            }
            reply.tokens.push_back(token);
            next[r][0] = token;
            next_mask[r][0] = 1;
        }
        // The last step's tokens need no logits, as in Generator::generate.
        if (active > 0 && step + 1 < options.max_new_tokens) {
            forward.attention_mask = next_mask;
            logits = model.forward(next, forward);
        }
    }
    for (size_t i = begin; i < end; ++i) {
        replies[i].text = tokenizer.decode(replies[i].tokens);
    }
}

}  // namespace

std::vector<BatchReply> generate_replies(CausalLM& model, const Tokenizer& tokenizer,
                                         const std::vector<std::vector<int32_t>>& prompts,
                                         const BatchGenerationOptions& options) {
    if (options.batch_size < 1) {
        fail("invalid batch size {}: expected at least 1", options.batch_size);
    }
    if (options.max_new_tokens < 1) {
        fail("invalid maximum of new tokens {}: expected at least 1", options.max_new_tokens);
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
        if (prompts[i].empty()) {
            fail("prompt {} has no tokens", i + 1);
        }
    }
    options.sampling.validate();

    torch::NoGradGuard no_grad;
    std::vector<BatchReply> replies(prompts.size());
    const size_t batch = static_cast<size_t>(options.batch_size);
    for (size_t begin = 0; begin < prompts.size(); begin += batch) {
        const size_t end = std::min(prompts.size(), begin + batch);
        generate_batch(model, tokenizer, prompts, begin, end, options, replies);
        if (options.on_progress) {
            options.on_progress(end);
        }
    }
    return replies;
}

}  // namespace sz
