// Generator on the tiny random Gemma 3 model: KV-cache decoding against full forwards, prefix
// reuse across calls, stop reasons, streaming, cancellation and the context check.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "generation/generator.h"
#include "model/loader.h"
#include "test_support.h"
#include "tiny_model.h"

namespace sz {
namespace {

class Generation : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new std::string(test::make_temp_dir("sz-generation"));
        path_ = new std::string(test::write_tiny_gemma3(*dir_ + "/tiny.gguf"));
    }
    static void TearDownTestSuite() {
        std::filesystem::remove_all(*dir_);
        delete dir_;
        delete path_;
    }
    void SetUp() override { loaded_ = load_model(*path_); }

    CausalLM& model() { return *loaded_.model; }
    const Tokenizer& tokenizer() { return *loaded_.tokenizer; }

    std::vector<int32_t> prompt_tokens(const std::string& text) { return tokenizer().encode(text, true, false); }

    static SamplerParams greedy_params() {
        SamplerParams params;
        params.temp = 0.0f;
        params.repeat_penalty = 1.0f;
        return params;
    }

    // Greedy continuation computed without a cache: the whole sequence runs through the
    // model for every new token.
    std::vector<int32_t> greedy_without_cache(std::vector<int32_t> sequence, int64_t count) {
        torch::NoGradGuard no_grad;
        std::vector<int32_t> generated;
        for (int64_t i = 0; i < count; ++i) {
            std::vector<int64_t> ids(sequence.begin(), sequence.end());
            torch::Tensor input = torch::tensor(ids, torch::kInt64).view({1, -1});
            torch::Tensor logits = model().forward(input, ForwardOptions{});
            int32_t token = static_cast<int32_t>(logits[0][-1].argmax().item<int64_t>());
            generated.push_back(token);
            if (tokenizer().is_end_of_generation(token)) {
                break;
            }
            sequence.push_back(token);
        }
        return generated;
    }

    static std::string* dir_;
    static std::string* path_;
    LoadedModel loaded_;
};
std::string* Generation::dir_ = nullptr;
std::string* Generation::path_ = nullptr;

TEST_F(Generation, GreedyMatchesFullForward) {
    std::vector<int32_t> prompt = prompt_tokens("the other one is in there");
    Generator generator(model(), tokenizer(), 512);
    Sampler sampler(greedy_params());
    GenerationOptions options;
    options.max_new_tokens = 24;
    GenerationResult result = generator.generate(prompt, sampler, options);

    // 24 new tokens on a 7+ token prompt cross the 8-key sliding window.
    ASSERT_EQ(result.tokens.size(), 24u) << "the model ended early; pick another prompt";
    EXPECT_EQ(result.tokens, greedy_without_cache(prompt, 24));
}

TEST_F(Generation, SameSeedSameTokens) {
    std::vector<int32_t> prompt = prompt_tokens("hello there");
    SamplerParams params;
    params.seed = 99;
    GenerationOptions options;
    options.max_new_tokens = 30;

    Generator first_generator(model(), tokenizer(), 512);
    Sampler first_sampler(params);
    GenerationResult first = first_generator.generate(prompt, first_sampler, options);

    Generator second_generator(model(), tokenizer(), 512);
    Sampler second_sampler(params);
    GenerationResult second = second_generator.generate(prompt, second_sampler, options);

    EXPECT_EQ(first.tokens, second.tokens);
    EXPECT_EQ(first.text, second.text);
}

TEST_F(Generation, StopsAtMaxNewTokens) {
    std::vector<int32_t> prompt = prompt_tokens("abc");
    Generator generator(model(), tokenizer(), 512);
    Sampler sampler(greedy_params());
    GenerationOptions options;
    options.max_new_tokens = 5;
    GenerationResult result = generator.generate(prompt, sampler, options);
    std::vector<int32_t> reference = greedy_without_cache(prompt, 5);

    ASSERT_FALSE(tokenizer().is_end_of_generation(reference.back())) << "pick another prompt";
    EXPECT_EQ(result.stop_reason, StopReason::Length);
    EXPECT_EQ(result.tokens.size(), 5u);
    EXPECT_STREQ(stop_reason_name(result.stop_reason), "length");
}

TEST_F(Generation, ZeroTokensOnlyPrefills) {
    std::vector<int32_t> prompt = prompt_tokens("abc");
    Generator generator(model(), tokenizer(), 512);
    Sampler sampler(greedy_params());
    GenerationOptions options;
    options.max_new_tokens = 0;
    GenerationResult result = generator.generate(prompt, sampler, options);
    EXPECT_TRUE(result.tokens.empty());
    EXPECT_EQ(result.stop_reason, StopReason::Length);
    EXPECT_EQ(generator.cached_tokens(), prompt);
    EXPECT_EQ(result.timings.prompt_tokens, static_cast<int64_t>(prompt.size()));
}

TEST_F(Generation, StopsWhenContextIsFull) {
    std::vector<int32_t> prompt = prompt_tokens("the end");
    const int64_t context = static_cast<int64_t>(prompt.size()) + 5;
    Generator generator(model(), tokenizer(), context);
    Sampler sampler(greedy_params());
    GenerationOptions options;
    options.max_new_tokens = -1;
    GenerationResult result = generator.generate(prompt, sampler, options);
    std::vector<int32_t> reference = greedy_without_cache(prompt, 6);
    ASSERT_EQ(reference.size(), 6u) << "the model ended early; pick another prompt";

    // Five more positions hold five fed tokens; the sixth is sampled but never fed.
    EXPECT_EQ(result.stop_reason, StopReason::ContextFull);
    EXPECT_EQ(result.tokens, reference);
    EXPECT_EQ(static_cast<int64_t>(generator.cached_tokens().size()), context);
}

TEST_F(Generation, RejectsPromptLongerThanContext) {
    std::vector<int32_t> prompt(40, 20);
    Generator generator(model(), tokenizer(), 32);
    Sampler sampler(greedy_params());
    try {
        generator.generate(prompt, sampler, GenerationOptions{});
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "prompt has 40 tokens but the context size is 32; shorten it or raise -c");
    }
}

TEST_F(Generation, RejectsEmptyPrompt) {
    Generator generator(model(), tokenizer(), 32);
    Sampler sampler(greedy_params());
    EXPECT_THROW(generator.generate({}, sampler, GenerationOptions{}), Error);
}

TEST_F(Generation, ReusesCommonPrefix) {
    std::vector<int32_t> first_prompt = prompt_tokens("is the answer in there");
    Generator generator(model(), tokenizer(), 512);
    Sampler sampler(greedy_params());
    GenerationOptions options;
    options.max_new_tokens = 6;
    GenerationResult first = generator.generate(first_prompt, sampler, options);
    ASSERT_EQ(first.timings.reused_tokens, 0);

    // The next turn extends the previous prompt and reply, like a re-rendered chat.
    std::vector<int32_t> second_prompt = first_prompt;
    second_prompt.insert(second_prompt.end(), first.tokens.begin(), first.tokens.end());
    std::vector<int32_t> user_turn = tokenizer().encode(" and then", false, false);
    second_prompt.insert(second_prompt.end(), user_turn.begin(), user_turn.end());
    GenerationResult second = generator.generate(second_prompt, sampler, options);

    // Everything fed to the model before stays: the prompt and all reply tokens but the last.
    const int64_t expected_reuse = static_cast<int64_t>(first_prompt.size() + first.tokens.size() - 1);
    EXPECT_EQ(second.timings.reused_tokens, expected_reuse);
    EXPECT_EQ(second.timings.prompt_tokens, static_cast<int64_t>(second_prompt.size()) - expected_reuse);
    EXPECT_EQ(second.tokens, greedy_without_cache(second_prompt, 6));
}

TEST_F(Generation, TruncatesDivergingCache) {
    std::vector<int32_t> first_prompt = prompt_tokens("one two three four five");
    Generator generator(model(), tokenizer(), 512);
    Sampler sampler(greedy_params());
    GenerationOptions options;
    options.max_new_tokens = 8;
    generator.generate(first_prompt, sampler, options);

    // Same first four tokens, then different text: the cache must drop everything after them.
    std::vector<int32_t> second_prompt(first_prompt.begin(), first_prompt.begin() + 4);
    std::vector<int32_t> tail = tokenizer().encode("zebra", false, false);
    second_prompt.insert(second_prompt.end(), tail.begin(), tail.end());
    GenerationResult second = generator.generate(second_prompt, sampler, options);

    EXPECT_EQ(second.timings.reused_tokens, 4);
    EXPECT_EQ(second.tokens, greedy_without_cache(second_prompt, 8));

    // The same prompt again reuses all but its last token.
    GenerationResult again = generator.generate(second_prompt, sampler, options);
    EXPECT_EQ(again.timings.reused_tokens, static_cast<int64_t>(second_prompt.size()) - 1);
    EXPECT_EQ(again.tokens, second.tokens);
}

TEST_F(Generation, ResetEmptiesCache) {
    std::vector<int32_t> prompt = prompt_tokens("abc");
    Generator generator(model(), tokenizer(), 512);
    Sampler sampler(greedy_params());
    generator.generate(prompt, sampler, GenerationOptions{});
    generator.reset();
    EXPECT_TRUE(generator.cached_tokens().empty());
    GenerationResult result = generator.generate(prompt, sampler, GenerationOptions{});
    EXPECT_EQ(result.timings.reused_tokens, 0);
}

TEST_F(Generation, StreamedChunksFormText) {
    std::vector<int32_t> prompt = prompt_tokens("stream");
    Generator generator(model(), tokenizer(), 512);
    SamplerParams params;
    params.seed = 5;
    Sampler sampler(params);
    std::string streamed;
    GenerationOptions options;
    options.max_new_tokens = 40;
    options.on_text = [&](const std::string& chunk) {
        EXPECT_FALSE(chunk.empty());
        streamed += chunk;
    };
    GenerationResult result = generator.generate(prompt, sampler, options);

    std::vector<int32_t> content = result.tokens;
    if (result.stop_reason == StopReason::EndOfGeneration) {
        content.pop_back();
    }
    EXPECT_FALSE(result.text.empty());
    EXPECT_EQ(streamed, result.text);
    EXPECT_EQ(result.text, tokenizer().decode(content));
}

TEST_F(Generation, CancelBeforeFirstToken) {
    std::vector<int32_t> prompt = prompt_tokens("abc");
    Generator generator(model(), tokenizer(), 512);
    Sampler sampler(greedy_params());
    std::atomic<bool> cancel{true};
    GenerationOptions options;
    options.cancel = &cancel;
    GenerationResult result = generator.generate(prompt, sampler, options);
    EXPECT_EQ(result.stop_reason, StopReason::Cancelled);
    EXPECT_TRUE(result.tokens.empty());
    EXPECT_STREQ(stop_reason_name(result.stop_reason), "cancelled");
}

TEST_F(Generation, CancelDuringReply) {
    std::vector<int32_t> prompt = prompt_tokens("abc");
    Generator generator(model(), tokenizer(), 512);
    SamplerParams params;
    params.seed = 3;
    params.min_p = 0.0f;
    Sampler sampler(params);
    std::atomic<bool> cancel{false};
    int chunks = 0;
    GenerationOptions options;
    options.max_new_tokens = 200;
    options.cancel = &cancel;
    options.on_text = [&](const std::string&) {
        chunks += 1;
        if (chunks == 3) {
            cancel = true;
        }
    };
    GenerationResult result = generator.generate(prompt, sampler, options);
    ASSERT_NE(result.stop_reason, StopReason::EndOfGeneration) << "the model ended early; pick another seed";
    EXPECT_EQ(result.stop_reason, StopReason::Cancelled);
    EXPECT_EQ(chunks, 3);
    EXPECT_LT(result.tokens.size(), 200u);

    // The cache contains exactly what was fed, so the next call can reuse it.
    GenerationResult next = generator.generate(prompt, sampler, GenerationOptions{});
    EXPECT_EQ(next.timings.reused_tokens, static_cast<int64_t>(prompt.size()) - 1);
}

TEST_F(Generation, TimingsCountTokens) {
    std::vector<int32_t> prompt = prompt_tokens("count these tokens");
    Generator generator(model(), tokenizer(), 512);
    Sampler sampler(greedy_params());
    GenerationOptions options;
    options.max_new_tokens = 4;
    GenerationResult result = generator.generate(prompt, sampler, options);
    EXPECT_EQ(result.timings.prompt_tokens, static_cast<int64_t>(prompt.size()));
    EXPECT_EQ(result.timings.generated_tokens, static_cast<int64_t>(result.tokens.size()));
    EXPECT_GT(result.timings.prompt_ms, 0.0);
    EXPECT_GT(result.timings.prompt_tokens_per_second(), 0.0);
    EXPECT_GT(result.timings.generation_tokens_per_second(), 0.0);
    EXPECT_LE(result.timings.sampling_ms, result.timings.generation_ms);
}

TEST_F(Generation, PenaltyHistoryStartsWithPrompt) {
    std::vector<int32_t> prompt = prompt_tokens("abc");
    Generator generator(model(), tokenizer(), 512);
    SamplerParams params = greedy_params();
    params.repeat_penalty = 1.1f;
    Sampler sampler(params);
    sampler.accept(std::vector<int32_t>{7, 7, 7});  // stale history from another conversation
    GenerationOptions options;
    options.max_new_tokens = 3;
    GenerationResult result = generator.generate(prompt, sampler, options);

    std::vector<int32_t> expected = prompt;
    expected.insert(expected.end(), result.tokens.begin(), result.tokens.end());
    EXPECT_EQ(std::vector<int32_t>(sampler.history().begin(), sampler.history().end()), expected);
}

TEST(CommonPrefix, Lengths) {
    EXPECT_EQ(common_prefix_length({}, {1, 2}), 0u);
    EXPECT_EQ(common_prefix_length({1, 2, 3}, {1, 2, 4}), 2u);
    EXPECT_EQ(common_prefix_length({1, 2}, {1, 2, 3}), 2u);
    EXPECT_EQ(common_prefix_length({5}, {6}), 0u);
}

}  // namespace
}  // namespace sz
