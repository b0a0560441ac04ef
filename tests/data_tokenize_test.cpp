// Tokenized training examples and batches: the loss mask on the tiny model's toy vocabulary
// and on the real Gemma 3 270M tokenizer, the overlong policies, the seeded train/held-out
// split and the padded batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/conversation.h"
#include "data/split.h"
#include "data/tokenized_example.h"
#include "formats/gguf.h"
#include "model/loader.h"
#include "test_support.h"
#include "tiny_model.h"

namespace sz {
namespace {

namespace fs = std::filesystem;

Conversation make_conversation(std::vector<ChatMessage> messages, size_t line = 1) {
    return Conversation{std::move(messages), "memory.jsonl", line};
}

// The decoded text of every run of consecutive trained tokens.
std::vector<std::string> trained_runs(const TokenizedExample& example, const Tokenizer& tokenizer) {
    std::vector<std::string> runs;
    std::vector<int32_t> run;
    for (size_t i = 0; i <= example.input_ids.size(); ++i) {
        if (i < example.input_ids.size() && example.loss_mask[i] == 1) {
            run.push_back(example.input_ids[i]);
        } else if (!run.empty()) {
            runs.push_back(tokenizer.decode(run, true));
            run.clear();
        }
    }
    return runs;
}

// The loss mask derived another way: token counts of prefix renders. Each assistant turn
// trains from the end of the prompt before it to the end of its own render, less the one
// newline token that follows <end_of_turn>.
std::vector<uint8_t> mask_from_prefix_renders(const Conversation& conversation, const Tokenizer& tokenizer,
                                              const ChatTemplate& chat_template) {
    const std::vector<ChatMessage>& messages = conversation.messages;
    const std::vector<int32_t> full = tokenizer.encode(chat_template.render(messages, false), false, true);
    std::vector<uint8_t> mask(full.size(), 0);
    for (size_t k = 0; k < messages.size(); ++k) {
        if (messages[k].role != "assistant") {
            continue;
        }
        const std::vector<ChatMessage> before(messages.begin(), messages.begin() + static_cast<long>(k));
        const std::vector<ChatMessage> through(messages.begin(), messages.begin() + static_cast<long>(k) + 1);
        const size_t begin = tokenizer.encode(chat_template.render(before, true), false, true).size();
        const std::vector<int32_t> turn = tokenizer.encode(chat_template.render(through, false), false, true);
        EXPECT_TRUE(std::equal(turn.begin(), turn.end(), full.begin())) << "prefix render is not a token prefix";
        EXPECT_EQ(tokenizer.decode({turn.back()}, true), "\n");
        std::fill(mask.begin() + static_cast<long>(begin), mask.begin() + static_cast<long>(turn.size()) - 1, 1);
    }
    return mask;
}

class TinyVocabExamples : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const std::string dir = test::make_temp_dir("sz-data-tokenize");
        const std::string path = test::write_tiny_gemma3(dir + "/tiny.gguf");
        tokenizer_ = new Tokenizer(Tokenizer::from_gguf(*gguf::File::open(path)));
        chat_template_ = new ChatTemplate(ChatTemplate::for_vocab(tokenizer_->vocab()));
        fs::remove_all(dir);
    }
    static void TearDownTestSuite() {
        delete tokenizer_;
        delete chat_template_;
    }

    static TokenizedExample tokenize(const Conversation& conversation) {
        return tokenize_conversation(conversation, *tokenizer_, *chat_template_);
    }

    // The sz::Error message of tokenizing `conversations`, or "" when it succeeds.
    static std::string tokenize_error(const std::vector<Conversation>& conversations, const TokenizeOptions& options) {
        try {
            tokenize_conversations(conversations, *tokenizer_, *chat_template_, options);
        } catch (const Error& error) {
            return error.what();
        }
        return "";
    }

    static Tokenizer* tokenizer_;
    static ChatTemplate* chat_template_;
};

Tokenizer* TinyVocabExamples::tokenizer_ = nullptr;
ChatTemplate* TinyVocabExamples::chat_template_ = nullptr;

TEST_F(TinyVocabExamples, MaskCoversRepliesAndEndOfTurn) {
    const Conversation conversation = make_conversation(
        {{"system", "Be kind."}, {"user", "hi"}, {"assistant", "hello there"}, {"user", "how"}, {"assistant", "fine"}});
    const TokenizedExample example = tokenize(conversation);

    ASSERT_EQ(example.loss_mask.size(), example.input_ids.size());
    EXPECT_EQ(example.input_ids.front(), tokenizer_->vocab().bos_id);
    EXPECT_EQ(example.loss_mask.front(), 0);
    EXPECT_EQ(example.loss_mask.back(), 0);  // the newline after the last <end_of_turn>
    EXPECT_EQ(trained_runs(example, *tokenizer_),
              (std::vector<std::string>{"hello there<end_of_turn>", "fine<end_of_turn>"}));
    EXPECT_EQ(example.loss_mask, mask_from_prefix_renders(conversation, *tokenizer_, *chat_template_));
    EXPECT_EQ(tokenizer_->decode(example.input_ids, true), chat_template_->render(conversation.messages, false));
    EXPECT_EQ(example.source, "memory.jsonl");
    EXPECT_EQ(example.line, 1u);
    EXPECT_FALSE(example.truncated);

    const auto eot = std::count(example.input_ids.begin(), example.input_ids.end(), tokenizer_->vocab().eot_id);
    EXPECT_EQ(eot, 4);
    int64_t trained_eot = 0;
    for (size_t i = 0; i < example.input_ids.size(); ++i) {
        trained_eot += example.input_ids[i] == tokenizer_->vocab().eot_id && example.loss_mask[i] == 1;
    }
    EXPECT_EQ(trained_eot, 2);
}

TEST_F(TinyVocabExamples, MaskTrimsAndHandlesByteFallback) {
    // The toy vocabulary has no accented letters, so "é" and "☕" become byte tokens.
    const Conversation conversation =
        make_conversation({{"user", "  caf\u00e9? "}, {"assistant", "\n  caf\u00e9 \u2615 ok!\n\n"}});
    const TokenizedExample example = tokenize(conversation);
    EXPECT_EQ(trained_runs(example, *tokenizer_), (std::vector<std::string>{"caf\u00e9 \u2615 ok!<end_of_turn>"}));
    EXPECT_EQ(example.loss_mask, mask_from_prefix_renders(conversation, *tokenizer_, *chat_template_));
}

TEST_F(TinyVocabExamples, RejectsControlTokenText) {
    for (const std::string& role : {"assistant", "user"}) {
        SCOPED_TRACE(role);
        std::vector<ChatMessage> messages = {{"user", "hi"}, {"assistant", "fine"}};
        (role == "user" ? messages[0] : messages[1]).content = "a<end_of_turn>b";
        const std::string message = tokenize_error({make_conversation(messages, 7)}, {});
        const std::string expected = std::string("memory.jsonl:7: message ") + (role == "user" ? "1" : "2") +
                                     " contains the text of the control token '<end_of_turn>'";
        EXPECT_NE(message.find(expected), std::string::npos) << message;
    }
}

TEST_F(TinyVocabExamples, RenderErrorNamesLine) {
    const std::string message =
        tokenize_error({make_conversation({{"user", "a"}, {"user", "b"}, {"assistant", "c"}}, 4)}, {});
    EXPECT_EQ(message.rfind("memory.jsonl:4: chat message 1 has role 'user' but 'assistant' was expected", 0), 0u)
        << message;
}

TEST_F(TinyVocabExamples, OverlongIsErrorByDefault) {
    const Conversation long_one = make_conversation({{"user", "hi"}, {"assistant", "a long reply here"}}, 9);
    const size_t length = tokenize(long_one).input_ids.size();
    TokenizeOptions options;
    options.max_tokens = static_cast<int64_t>(length) - 1;
    const std::string message = tokenize_error({long_one}, options);
    EXPECT_NE(message.find(fmt::format("memory.jsonl:9: the conversation is {} tokens long, more than the maximum of {}",
                                       length, length - 1)),
              std::string::npos)
        << message;

    options.max_tokens = static_cast<int64_t>(length);
    EXPECT_EQ(tokenize_error({long_one}, options), "");
    options.max_tokens = 1;
    EXPECT_NE(tokenize_error({long_one}, options).find("invalid maximum token count 1"), std::string::npos);
}

TEST_F(TinyVocabExamples, OverlongDropAndTruncate) {
    const Conversation short_one = make_conversation({{"user", "hi"}, {"assistant", "ok"}}, 1);
    const Conversation long_one = make_conversation({{"user", "hi"}, {"assistant", "a long reply here"}}, 2);
    const Conversation long_prompt = make_conversation({{"user", "a very long question indeed"}, {"assistant", "ok"}}, 3);
    const TokenizedExample short_example = tokenize(short_one);
    const TokenizedExample long_example = tokenize(long_one);
    const int64_t max_tokens = static_cast<int64_t>(short_example.input_ids.size()) + 1;
    ASSERT_GT(static_cast<int64_t>(long_example.input_ids.size()), max_tokens);
    ASSERT_GT(static_cast<int64_t>(tokenize(long_prompt).input_ids.size()), max_tokens);

    TokenizeOptions options;
    options.max_tokens = max_tokens;
    options.overlong = OverlongPolicy::drop;
    TokenizedExamples dropped = tokenize_conversations({short_one, long_one, long_prompt}, *tokenizer_, *chat_template_, options);
    ASSERT_EQ(dropped.examples.size(), 1u);
    EXPECT_EQ(dropped.examples[0].line, 1u);
    EXPECT_EQ(dropped.report.kept, 1u);
    EXPECT_EQ(dropped.report.dropped_too_long, 2u);
    EXPECT_EQ(dropped.report.truncated, 0u);

    options.overlong = OverlongPolicy::truncate;
    TokenizedExamples truncated =
        tokenize_conversations({short_one, long_one, long_prompt}, *tokenizer_, *chat_template_, options);
    ASSERT_EQ(truncated.examples.size(), 2u);
    const TokenizedExample& cut = truncated.examples[1];
    EXPECT_EQ(cut.line, 2u);
    EXPECT_TRUE(cut.truncated);
    EXPECT_EQ(static_cast<int64_t>(cut.input_ids.size()), max_tokens);
    EXPECT_TRUE(std::equal(cut.input_ids.begin(), cut.input_ids.end(), long_example.input_ids.begin()));
    EXPECT_TRUE(std::equal(cut.loss_mask.begin(), cut.loss_mask.end(), long_example.loss_mask.begin()));
    EXPECT_GT(cut.trained_tokens(), 0);
    EXPECT_EQ(truncated.report.truncated, 1u);
    EXPECT_EQ(truncated.report.dropped_too_long, 1u);  // the long prompt leaves no trained token
    EXPECT_EQ(truncated.report.tokens, static_cast<int64_t>(short_example.input_ids.size()) + max_tokens);
    EXPECT_EQ(truncated.report.trained_tokens, short_example.trained_tokens() + cut.trained_tokens());
    EXPECT_EQ(truncated.report.summary(),
              fmt::format("kept 2 examples ({} tokens, {} trained), truncated 1, dropped 1 too long",
                          truncated.report.tokens, truncated.report.trained_tokens));
}

TEST(OverlongPolicy, ParsesNames) {
    EXPECT_EQ(parse_overlong_policy("error"), OverlongPolicy::error);
    EXPECT_EQ(parse_overlong_policy("truncate"), OverlongPolicy::truncate);
    EXPECT_EQ(parse_overlong_policy("drop"), OverlongPolicy::drop);
    EXPECT_THROW(parse_overlong_policy("skip"), Error);
}

class RealVocabExamples : public ::testing::Test {
protected:
    static void SetUpTestSuite() { loaded_ = new LoadedModel(load_model("gemma3-270m")); }
    static void TearDownTestSuite() { delete loaded_; }

    const Tokenizer& tokenizer() { return *loaded_->tokenizer; }
    const ChatTemplate& chat_template() { return *loaded_->chat_template; }

    // Checks that the trained tokens decode to exactly each assistant content, trimmed, with
    // <end_of_turn>, and that the mask matches the one from prefix renders.
    void expect_exact_mask(const Conversation& conversation, const std::vector<std::string>& trimmed_replies) {
        const TokenizedExample example = tokenize_conversation(conversation, tokenizer(), chat_template());
        std::vector<std::string> expected;
        for (const std::string& reply : trimmed_replies) {
            expected.push_back(reply + "<end_of_turn>");
        }
        EXPECT_EQ(trained_runs(example, tokenizer()), expected);
        EXPECT_EQ(example.loss_mask, mask_from_prefix_renders(conversation, tokenizer(), chat_template()));
        EXPECT_EQ(example.input_ids.front(), 2);  // <bos>
        EXPECT_EQ(example.loss_mask.front(), 0);
    }

    static LoadedModel* loaded_;
};

LoadedModel* RealVocabExamples::loaded_ = nullptr;

TEST_F(RealVocabExamples, SingleExchange) {
    expect_exact_mask(make_conversation({{"user", "Hi"}, {"assistant", "Hello! How are you?"}}), {"Hello! How are you?"});
}

TEST_F(RealVocabExamples, MultiTurnWithSystemAndFormatting) {
    const Conversation conversation = make_conversation({
        {"system", "You are Sam, a baker."},
        {"user", "Recipe?"},
        {"assistant", "  Flour, water, salt.\n\n1. Mix\n2. Wait\n"},
        {"user", "Code for it?"},
        {"assistant", "```python\ndef bake():\n    return \"bread\"\n```"},
        {"user", "\u00bfY en espa\u00f1ol? \u65e5\u672c\u8a9e\u3082"},
        {"assistant", "Claro \U0001F35E \u2014 <b>pan</b> & \u30d1\u30f3 \t"},
    });
    expect_exact_mask(conversation, {"Flour, water, salt.\n\n1. Mix\n2. Wait",
                                     "```python\ndef bake():\n    return \"bread\"\n```",
                                     "Claro \U0001F35E \u2014 <b>pan</b> & \u30d1\u30f3"});

    const TokenizedExample example = tokenize_conversation(conversation, tokenizer(), chat_template());
    int64_t trained_end_of_turn = 0;
    for (size_t i = 0; i < example.input_ids.size(); ++i) {
        trained_end_of_turn += example.input_ids[i] == 106 && example.loss_mask[i] == 1;
    }
    EXPECT_EQ(trained_end_of_turn, 3);
}

TEST_F(RealVocabExamples, RawLogExampleFlipped) {
    ConversationOptions options;
    options.flip_roles = true;
    const LoadedConversations loaded =
        load_conversations(test::source_dir() + "/data/persona/raw_log_example.jsonl", options);
    ASSERT_FALSE(loaded.conversations.empty());
    for (const Conversation& conversation : loaded.conversations) {
        SCOPED_TRACE(conversation.line);
        std::vector<std::string> replies;
        for (const ChatMessage& message : conversation.messages) {
            if (message.role == "assistant") {
                replies.push_back(message.content);  // the example file has no surrounding whitespace
            }
        }
        expect_exact_mask(conversation, replies);
    }

    TokenizeOptions tokenize_options;
    tokenize_options.max_tokens = 512;
    const TokenizedExamples examples =
        tokenize_conversations(loaded.conversations, tokenizer(), chat_template(), tokenize_options);
    EXPECT_EQ(examples.report.kept, loaded.conversations.size());
    EXPECT_GT(examples.report.trained_tokens, 0);
    EXPECT_LT(examples.report.trained_tokens, examples.report.tokens);
}

std::vector<Conversation> numbered_conversations(size_t count) {
    std::vector<Conversation> conversations;
    for (size_t i = 0; i < count; ++i) {
        conversations.push_back(
            make_conversation({{"user", "question " + std::to_string(i)}, {"assistant", "answer " + std::to_string(i)}}, i + 1));
    }
    return conversations;
}

std::set<std::string> heldout_contents(const std::vector<Conversation>& conversations, const DataSplit& split) {
    std::set<std::string> contents;
    for (size_t index : split.heldout) {
        contents.insert(conversations[index].messages[0].content);
    }
    return contents;
}

TEST(DataSplit, PartitionsAllIndicesInOrder) {
    const std::vector<Conversation> conversations = numbered_conversations(50);
    SplitOptions options;
    options.heldout_fraction = 0.2;
    const DataSplit split = split_conversations(conversations, options);

    EXPECT_EQ(split.heldout.size(), 10u);
    EXPECT_EQ(split.train.size(), 40u);
    EXPECT_TRUE(std::is_sorted(split.train.begin(), split.train.end()));
    EXPECT_TRUE(std::is_sorted(split.heldout.begin(), split.heldout.end()));
    std::vector<size_t> all = split.train;
    all.insert(all.end(), split.heldout.begin(), split.heldout.end());
    std::sort(all.begin(), all.end());
    for (size_t i = 0; i < all.size(); ++i) {
        EXPECT_EQ(all[i], i);
    }
}

TEST(DataSplit, DeterministicBySeed) {
    const std::vector<Conversation> conversations = numbered_conversations(100);
    SplitOptions options;
    options.heldout_count = 10;
    options.seed = 7;
    const DataSplit first = split_conversations(conversations, options);
    const DataSplit second = split_conversations(conversations, options);
    EXPECT_EQ(first.heldout, second.heldout);
    EXPECT_EQ(first.train, second.train);

    options.seed = 8;
    EXPECT_NE(split_conversations(conversations, options).heldout, first.heldout);
}

TEST(DataSplit, StableUnderReordering) {
    const std::vector<Conversation> conversations = numbered_conversations(60);
    std::vector<Conversation> reversed(conversations.rbegin(), conversations.rend());
    SplitOptions options;
    options.heldout_fraction = 0.25;
    options.seed = 3;
    EXPECT_EQ(heldout_contents(conversations, split_conversations(conversations, options)),
              heldout_contents(reversed, split_conversations(reversed, options)));
}

TEST(DataSplit, SizesAndInvalidOptions) {
    const std::vector<Conversation> conversations = numbered_conversations(5);
    SplitOptions options;
    EXPECT_EQ(split_conversations(conversations, options).heldout.size(), 0u);
    options.heldout_fraction = 0.01;
    EXPECT_EQ(split_conversations(conversations, options).heldout.size(), 1u);  // at least one
    options.heldout_fraction = 0.5;
    EXPECT_EQ(split_conversations(conversations, options).heldout.size(), 3u);  // 2.5 rounds up

    options.heldout_fraction = 1.0;
    EXPECT_THROW(split_conversations(conversations, options), Error);
    options.heldout_fraction = -0.1;
    EXPECT_THROW(split_conversations(conversations, options), Error);
    options.heldout_fraction = 0.1;
    options.heldout_count = 1;
    EXPECT_THROW(split_conversations(conversations, options), Error);
    options.heldout_fraction = 0.0;
    options.heldout_count = 5;
    EXPECT_THROW(split_conversations(conversations, options), Error);
    options.heldout_count = 4;
    EXPECT_EQ(split_conversations(conversations, options).train.size(), 1u);
    EXPECT_THROW(split_conversations({}, SplitOptions{}), Error);
}

// Examples of the given lengths; example i has ids 100*i + position and trains its odd positions.
std::vector<TokenizedExample> synthetic_examples(const std::vector<size_t>& lengths) {
    std::vector<TokenizedExample> examples;
    for (size_t i = 0; i < lengths.size(); ++i) {
        TokenizedExample example;
        for (size_t t = 0; t < lengths[i]; ++t) {
            example.input_ids.push_back(static_cast<int32_t>(100 * i + t + 1));
            example.loss_mask.push_back(t % 2);
        }
        examples.push_back(example);
    }
    return examples;
}

TEST(Batcher, PadsRightWithMasks) {
    const std::vector<TokenizedExample> examples = synthetic_examples({3, 5, 2});
    const Batch batch = make_batch(examples, {0, 1, 2}, -7);

    ASSERT_EQ(batch.input_ids.sizes(), (std::vector<int64_t>{3, 5}));
    ASSERT_EQ(batch.attention_mask.sizes(), (std::vector<int64_t>{3, 5}));
    ASSERT_EQ(batch.loss_mask.sizes(), (std::vector<int64_t>{3, 5}));
    EXPECT_EQ(batch.input_ids.scalar_type(), torch::kInt64);
    EXPECT_EQ(batch.attention_mask.scalar_type(), torch::kInt64);
    EXPECT_EQ(batch.loss_mask.scalar_type(), torch::kFloat32);

    const auto ids = batch.input_ids.accessor<int64_t, 2>();
    const auto attention = batch.attention_mask.accessor<int64_t, 2>();
    const auto loss = batch.loss_mask.accessor<float, 2>();
    for (int64_t row = 0; row < 3; ++row) {
        const TokenizedExample& example = examples[static_cast<size_t>(row)];
        const auto length = static_cast<int64_t>(example.input_ids.size());
        for (int64_t t = 0; t < 5; ++t) {
            SCOPED_TRACE(fmt::format("row {} position {}", row, t));
            if (t < length) {
                EXPECT_EQ(ids[row][t], example.input_ids[static_cast<size_t>(t)]);
                EXPECT_EQ(attention[row][t], 1);
                EXPECT_EQ(loss[row][t], static_cast<float>(example.loss_mask[static_cast<size_t>(t)]));
            } else {
                EXPECT_EQ(ids[row][t], -7);
                EXPECT_EQ(attention[row][t], 0);
                EXPECT_EQ(loss[row][t], 0.0f);
            }
        }
    }
    EXPECT_EQ(batch.trained_tokens, 1 + 2 + 1);
    EXPECT_EQ(batch.loss_mask.sum().item<float>(), 4.0f);
    EXPECT_EQ(batch.example_indices, (std::vector<size_t>{0, 1, 2}));
    EXPECT_THROW(make_batch(examples, {}, 0), Error);
}

TEST(Batcher, EpochCoversEveryExampleOnce) {
    BatcherOptions options;
    options.batch_size = 3;
    options.seed = 11;
    const Batcher batcher(synthetic_examples({4, 2, 6, 3, 5, 1, 2}), options);
    ASSERT_EQ(batcher.batches_per_epoch(), 3u);

    std::vector<size_t> seen;
    for (size_t index = 0; index < batcher.batches_per_epoch(); ++index) {
        const Batch batch = batcher.batch(0, index);
        const size_t expected_rows = index < 2 ? 3 : 1;
        EXPECT_EQ(batch.input_ids.size(0), static_cast<int64_t>(expected_rows)) << "batch " << index;
        size_t longest = 0;
        for (size_t example : batch.example_indices) {
            longest = std::max(longest, batcher.examples()[example].input_ids.size());
        }
        EXPECT_EQ(batch.input_ids.size(1), static_cast<int64_t>(longest)) << "batch " << index;
        seen.insert(seen.end(), batch.example_indices.begin(), batch.example_indices.end());
    }
    EXPECT_EQ(seen, batcher.epoch_order(0));
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 3, 4, 5, 6}));
    EXPECT_THROW(batcher.batch(0, 3), Error);
}

TEST(Batcher, ShuffleDependsOnSeedAndEpoch) {
    BatcherOptions options;
    options.seed = 5;
    const std::vector<TokenizedExample> examples = synthetic_examples(std::vector<size_t>(20, 2));
    const Batcher batcher(examples, options);
    const Batcher same(examples, options);
    options.seed = 6;
    const Batcher other_seed(examples, options);

    EXPECT_EQ(batcher.epoch_order(0), same.epoch_order(0));
    EXPECT_EQ(batcher.epoch_order(3), same.epoch_order(3));
    EXPECT_NE(batcher.epoch_order(0), batcher.epoch_order(1));
    EXPECT_NE(batcher.epoch_order(0), other_seed.epoch_order(0));

    options.shuffle = false;
    const Batcher ordered(examples, options);
    std::vector<size_t> identity(20);
    for (size_t i = 0; i < identity.size(); ++i) {
        identity[i] = i;
    }
    EXPECT_EQ(ordered.epoch_order(4), identity);
}

// The order must not change between builds or standard libraries, or a resumed run would see
// different batches than the interrupted one. The expected order came from a separate Python
// implementation of SplitMix64, mt19937_64 and the same Fisher-Yates draws.
TEST(Batcher, ShuffleOrderIsPinned) {
    BatcherOptions options;
    options.seed = 42;
    const Batcher batcher(synthetic_examples(std::vector<size_t>(8, 1)), options);
    EXPECT_EQ(batcher.epoch_order(0), (std::vector<size_t>{1, 0, 3, 4, 2, 7, 6, 5}));
}

TEST(Batcher, DropLastAndInvalidOptions) {
    BatcherOptions options;
    options.batch_size = 3;
    options.drop_last = true;
    const Batcher batcher(synthetic_examples({1, 2, 3, 4, 5, 6, 7}), options);
    EXPECT_EQ(batcher.batches_per_epoch(), 2u);
    EXPECT_THROW(batcher.batch(0, 2), Error);

    EXPECT_THROW(Batcher(synthetic_examples({1, 2}), options), Error);  // not one full batch
    options.drop_last = false;
    options.batch_size = 0;
    EXPECT_THROW(Batcher(synthetic_examples({1}), options), Error);
    options.batch_size = 1;
    EXPECT_THROW(Batcher({}, options), Error);
}

}  // namespace
}  // namespace sz
