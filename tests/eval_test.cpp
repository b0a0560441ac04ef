// `subzero eval` pieces: reply metrics against hand-counted cases, KL divergence against a
// direct torch computation on the tiny Gemma 3, batched decoding against the single-row
// Generator, and run_eval end to end (a model against itself) and on invalid inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/conversation.h"
#include "data/tokenized_example.h"
#include "eval/batch_generation.h"
#include "eval/cadence_markers.h"
#include "eval/eval_report.h"
#include "eval/eval_run.h"
#include "eval/kl_divergence.h"
#include "eval/model_pair.h"
#include "eval/persona_loss.h"
#include "eval/prompt_set.h"
#include "eval/reply_metrics.h"
#include "generation/generator.h"
#include "locate/corpus.h"
#include "model/loader.h"
#include "test_support.h"
#include "tiny_model.h"

namespace sz {
namespace {

namespace fs = std::filesystem;

// The message of the sz::Error that `action` throws, or "" when it throws none.
template <typename F>
std::string error_message(F action) {
    try {
        action();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

// ---------------------------------------------------------------- reply metrics

TEST(EvalMetrics, MarkdownLinesCounted) {
    // Structured: "- a", "  * b", "1. c", "12) d", "# e", "###### f", "##", "x **bold** y".
    // Not: "-a", "1.5 g", "####### h" (7 hashes), "#tag", "plain", "+x".
    const std::string text =
        "- a\n  * b\n1. c\n12) d\n# e\n###### f\n##\nx **bold** y\n-a\n1.5 g\n####### h\n#tag\nplain\n+x\n+ y";
    EXPECT_EQ(count_markdown_lines(text), 9);
    EXPECT_EQ(count_markdown_lines(""), 0);
    EXPECT_EQ(count_markdown_lines("just a sentence."), 0);
}

TEST(EvalMetrics, BoldAndBulletLineCountsOnce) { EXPECT_EQ(count_markdown_lines("- **one** thing"), 1); }

TEST(EvalMetrics, WordsSplitOnWhitespace) {
    EXPECT_EQ(count_words(""), 0);
    EXPECT_EQ(count_words("   \n\t "), 0);
    EXPECT_EQ(count_words("one"), 1);
    EXPECT_EQ(count_words("  two words\n\nthree\tfour, five. "), 5);
}

TEST(EvalMetrics, LowercaseLettersCounted) {
    // "Hello World 42 é": letters H,e,l,l,o,W,o,r,l,d (ASCII only) = 10, lowercase 8.
    const LetterCounts counts = count_letters("Hello World 42 \xC3\xA9");
    EXPECT_EQ(counts.letters, 10);
    EXPECT_EQ(counts.lowercase, 8);
}

TEST(EvalMetrics, SummaryAveragesReplies) {
    const CadenceMarkers markers = CadenceMarkers::parse("great question\nfeel free to\n", "inline");
    std::vector<ReplyMetrics> replies = {
        measure_reply("Great question! Feel free to ask.\n- a list", 10, markers),  // 2 hits, 1 md line
        measure_reply("no", 2, markers),                                           // 0 hits
        measure_reply("GREAT QUESTION. great question", 6, markers),               // 2 hits
    };
    const TextSummary s = summarize_replies(replies, markers.markers().size());
    EXPECT_EQ(s.replies, 3);
    EXPECT_DOUBLE_EQ(s.marker_hits_per_reply, 4.0 / 3.0);
    EXPECT_DOUBLE_EQ(s.replies_with_marker, 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(s.markdown_lines_per_reply, 1.0 / 3.0);
    EXPECT_DOUBLE_EQ(s.replies_with_markdown, 1.0 / 3.0);
    // Words: 9 ("-" counts) + 1 + 4.
    EXPECT_DOUBLE_EQ(s.mean_words, 14.0 / 3.0);
    EXPECT_DOUBLE_EQ(s.mean_tokens, 6.0);
    // Letters: reply 1 has 31 (G, F upper), reply 2 has 2, reply 3 has 26 (13 upper).
    EXPECT_DOUBLE_EQ(s.lowercase_ratio, (29.0 + 2.0 + 13.0) / (31.0 + 2.0 + 26.0));
    ASSERT_EQ(s.marker_totals.size(), 2u);
    EXPECT_EQ(s.marker_totals[0], 3);
    EXPECT_EQ(s.marker_totals[1], 1);
}

TEST(EvalMetrics, EmptySummaryIsZero) {
    const TextSummary s = summarize_replies({}, 3);
    EXPECT_EQ(s.replies, 0);
    EXPECT_EQ(s.marker_hits_per_reply, 0.0);
    EXPECT_EQ(s.marker_totals, std::vector<int64_t>(3, 0));
}

// ---------------------------------------------------------------- cadence markers

TEST(EvalMarkers, CommentsAndBlankLinesSkipped) {
    const CadenceMarkers markers = CadenceMarkers::parse("# header\n\n  i'd be happy to  \n# x\nre:^sure[!,]\n", "m.txt");
    ASSERT_EQ(markers.markers().size(), 2u);
    EXPECT_EQ(markers.markers()[0].text, "i'd be happy to");
    EXPECT_EQ(markers.markers()[0].line, 3u);
    EXPECT_FALSE(markers.markers()[0].is_regex);
    EXPECT_TRUE(markers.markers()[1].is_regex);
    EXPECT_EQ(markers.markers()[1].line, 5u);
}

TEST(EvalMarkers, SubstringCountsIgnoreCaseAndQuotes) {
    const CadenceMarkers markers = CadenceMarkers::parse("i'd be happy to\naa\n", "m.txt");
    // U+2019 in "I’d" counts as an apostrophe; "aaaa" contains two non-overlapping "aa".
    const std::vector<int64_t> counts = markers.count("I\xE2\x80\x99" "d be HAPPY to help. i'd be happy to. aaaa");
    EXPECT_EQ(counts, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(markers.count("nothing here"), (std::vector<int64_t>{0, 0}));
}

TEST(EvalMarkers, RegexMarkersMatch) {
    const CadenceMarkers markers = CadenceMarkers::parse("re:^\\s*(certainly|sure)\\s*[!,.]\nre:delv(e|ing)\n", "m");
    EXPECT_EQ(markers.count("Certainly! Let's start by delving in, then delve."), (std::vector<int64_t>{1, 2}));
    // The "^" anchor matches at the start of the reply only.
    EXPECT_EQ(markers.count("well, sure! fine"), (std::vector<int64_t>{0, 0}));
}

TEST(EvalMarkers, InvalidRegexNamesLine) {
    const std::string message = error_message([] { CadenceMarkers::parse("ok\n\nre:(unclosed\n", "m.txt"); });
    EXPECT_NE(message.find("m.txt:3"), std::string::npos) << message;
    EXPECT_NE(message.find("(unclosed"), std::string::npos) << message;
}

TEST(EvalMarkers, EmptyMatchRegexRejected) {
    const std::string message = error_message([] { CadenceMarkers::parse("re:x*\n", "m.txt"); });
    EXPECT_NE(message.find("m.txt:1"), std::string::npos) << message;
    EXPECT_NE(message.find("empty string"), std::string::npos) << message;
}

TEST(EvalMarkers, FileWithoutMarkersRejected) {
    const std::string message = error_message([] { CadenceMarkers::parse("# only a comment\n\n", "m.txt"); });
    EXPECT_NE(message.find("no marker"), std::string::npos) << message;
}

TEST(EvalMarkers, ShippedListLoads) {
    const CadenceMarkers markers = CadenceMarkers::load(test::source_dir() + "/data/eval/cadence_markers.txt");
    EXPECT_GE(markers.markers().size(), 10u);
    const std::vector<int64_t> counts = markers.count("Great question! I hope this helps.");
    int64_t hits = 0;
    for (int64_t c : counts) {
        hits += c;
    }
    EXPECT_EQ(hits, 2);
}

// A substring marker inside another would count one phrase twice.
TEST(EvalMarkers, ShippedListHasNoNestedMarkers) {
    const CadenceMarkers markers = CadenceMarkers::load(test::source_dir() + "/data/eval/cadence_markers.txt");
    for (const CadenceMarker& outer : markers.markers()) {
        for (const CadenceMarker& inner : markers.markers()) {
            if (&outer == &inner || outer.is_regex || inner.is_regex) {
                continue;
            }
            EXPECT_EQ(outer.needle.find(inner.needle), std::string::npos)
                << "'" << inner.text << "' (line " << inner.line << ") is inside '" << outer.text << "'";
        }
    }
}

// ---------------------------------------------------------------- prompts

TEST(EvalPrompts, OpeningOfConversationKept) {
    const std::string dir = test::make_temp_dir("subzero-eval-prompts");
    const std::string path = dir + "/p.jsonl";
    write_text(path,
               "{\"prompt\": \"hello\"}\n\n"
               "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", \"content\": "
               "\"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}, {\"role\": \"user\", \"content\": \"x\"}]}\n");
    const std::vector<EvalPrompt> prompts = read_prompts(path);
    ASSERT_EQ(prompts.size(), 2u);
    ASSERT_EQ(prompts[0].messages.size(), 1u);
    EXPECT_EQ(prompts[0].messages[0].content, "hello");
    ASSERT_EQ(prompts[1].messages.size(), 2u);
    EXPECT_EQ(prompts[1].messages[0].role, "system");
    EXPECT_EQ(prompts[1].messages[1].content, "hi");
    EXPECT_EQ(prompts[1].source, path + ":3");
    fs::remove_all(dir);
}

TEST(EvalPrompts, BadLinesNamed) {
    const std::string dir = test::make_temp_dir("subzero-eval-prompts");
    const std::string path = dir + "/p.jsonl";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"{\"prompt\": \"ok\"}\n{not json\n", ":2: invalid JSON"},
        {"{\"prompt\": \"  \"}\n", ":1: \"prompt\" is empty"},
        {"{\"text\": \"x\"}\n", ":1: expected a \"prompt\" string or a \"messages\" list"},
        {"{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}\n", "role \"assistant\""},
        {"{\"messages\": []}\n", ":1: no user message"},
        {"\n\n", "contains no prompt"},
    };
    for (const auto& [text, expected] : cases) {
        write_text(path, text);
        const std::string message = error_message([&] { read_prompts(path); });
        EXPECT_NE(message.find(expected), std::string::npos) << "input: " << text << "\nmessage: " << message;
    }
    fs::remove_all(dir);
}

// ---------------------------------------------------------------- models on the tiny Gemma 3

class EvalModels : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new std::string(test::make_temp_dir("subzero-eval"));
        path_ = new std::string(test::write_tiny_gemma3(*dir_ + "/tiny.gguf"));
        heldout_ = new std::string(*dir_ + "/heldout.jsonl");
        neutral_ = new std::string(*dir_ + "/neutral.jsonl");
        std::ofstream heldout(*heldout_);
        const char* replies[] = {"sure thing", "no idea, sorry", "the cat sat on the mat", "it is late"};
        for (int i = 0; i < 4; ++i) {
            nlohmann::json line = {{"messages",
                                    {{{"role", "user"}, {"content", "question number " + std::to_string(i)}},
                                     {{"role", "assistant"}, {"content", replies[i]}}}}};
            heldout << line.dump() << "\n";
        }
        std::ofstream neutral(*neutral_);
        for (const char* text : {"the sea is", "in the north there", "a leap year has"}) {
            nlohmann::json line = {{"messages", {{{"role", "user"}, {"content", text}}}}};
            neutral << line.dump() << "\n";
        }
    }
    static void TearDownTestSuite() {
        fs::remove_all(*dir_);
        delete dir_;
        delete path_;
        delete heldout_;
        delete neutral_;
    }

    // Config for run_eval on the tiny model against itself, writing into `name`.
    static EvalConfig tiny_config(const std::string& name) {
        EvalConfig config;
        config.base = *path_;
        config.tuned = *path_;
        config.heldout = *heldout_;
        config.neutral = *neutral_;
        config.markers = test::source_dir() + "/data/eval/cadence_markers.txt";
        config.out_dir = *dir_ + "/" + name;
        config.max_new_tokens = 6;
        config.batch_size = 3;
        config.show_progress = false;
        return config;
    }

    static std::vector<RenderedRow> neutral_rows(const LoadedModel& model) {
        std::vector<RenderedRow> rows;
        for (const auto& messages : read_corpus(*neutral_, 0)) {
            rows.push_back(render_row(messages, *model.chat_template, *model.tokenizer, 256));
        }
        return rows;
    }

    static std::string* dir_;
    static std::string* path_;
    static std::string* heldout_;
    static std::string* neutral_;
};

std::string* EvalModels::dir_ = nullptr;
std::string* EvalModels::path_ = nullptr;
std::string* EvalModels::heldout_ = nullptr;
std::string* EvalModels::neutral_ = nullptr;

TEST_F(EvalModels, KlOfModelWithItselfIsZero) {
    LoadedModel model = load_model(*path_);
    const KlDivergence kl = kl_divergence(*model.model, nullptr, *model.model, nullptr, neutral_rows(model), 0, 2);
    EXPECT_EQ(kl.rows, 3);
    EXPECT_GT(kl.positions, 0);
    EXPECT_NEAR(kl.mean, 0.0, 1e-9);
    EXPECT_NEAR(kl.max, 0.0, 1e-9);
}

TEST_F(EvalModels, KlMatchesDirectComputation) {
    LoadedModel base = load_model(*path_);
    LoadedModel tuned = load_model(*path_);
    torch::manual_seed(5);
    torch::Tensor& weight = tuned.model->projection_weight(2, Projection::Down);
    weight.add_(0.3 * torch::randn_like(weight));

    const std::vector<RenderedRow> rows = neutral_rows(base);
    const KlDivergence kl = kl_divergence(*base.model, nullptr, *tuned.model, nullptr, rows, 0, 2);

    // Reference: one unpadded row at a time, all logits, torch's kl_div with log targets.
    torch::NoGradGuard no_grad;
    double sum = 0.0;
    int64_t positions = 0;
    for (const RenderedRow& row : rows) {
        std::vector<int64_t> ids(row.tokens.begin(), row.tokens.end());
        torch::Tensor input = torch::tensor(ids, torch::kInt64).unsqueeze(0);
        torch::Tensor p = torch::log_softmax(base.model->forward(input, {}).squeeze(0).to(torch::kFloat64), -1);
        torch::Tensor q = torch::log_softmax(tuned.model->forward(input, {}).squeeze(0).to(torch::kFloat64), -1);
        // kl_div(input = log q, target = log p, log_target) = p (log p - log q) elementwise.
        torch::Tensor per_token = torch::kl_div(q, p, at::Reduction::None, /*log_target=*/true).sum(-1);
        sum += per_token.sum().item<double>();
        positions += per_token.size(0);
    }
    EXPECT_EQ(kl.positions, positions);
    ASSERT_GT(sum, 0.0);
    EXPECT_GT(kl.mean, 1e-4);
    EXPECT_NEAR(kl.mean, sum / static_cast<double>(positions), 1e-4 * sum / static_cast<double>(positions));
}

TEST_F(EvalModels, PersonaLossMatchesUnbatched) {
    LoadedModel model = load_model(*path_);
    const LoadedConversations conversations = load_conversations(*heldout_, ConversationOptions{});
    TokenizeOptions options;
    options.max_tokens = 256;
    const TokenizedExamples examples =
        tokenize_conversations(conversations.conversations, *model.tokenizer, *model.chat_template, options);
    const PersonaLoss batched = persona_loss(*model.model, nullptr, examples.examples, 3);

    // Reference: each example alone, full logits, logits at i - 1 score token i where masked.
    torch::NoGradGuard no_grad;
    double sum = 0.0;
    int64_t count = 0;
    for (const TokenizedExample& example : examples.examples) {
        std::vector<int64_t> ids(example.input_ids.begin(), example.input_ids.end());
        torch::Tensor input = torch::tensor(ids, torch::kInt64).unsqueeze(0);
        torch::Tensor log_probs = torch::log_softmax(model.model->forward(input, {}).squeeze(0), -1);
        for (size_t i = 1; i < ids.size(); ++i) {
            if (example.loss_mask[i] != 0) {
                sum -= log_probs[static_cast<int64_t>(i) - 1][ids[i]].item<double>();
                ++count;
            }
        }
    }
    EXPECT_EQ(batched.trained_tokens, count);
    EXPECT_EQ(batched.conversations, 4);
    EXPECT_NEAR(batched.loss, sum / static_cast<double>(count), 1e-4);
}

TEST_F(EvalModels, BatchedGreedyMatchesGenerator) {
    LoadedModel model = load_model(*path_);
    // Different lengths, so the batch pads the shorter rows on the left.
    std::vector<std::vector<int32_t>> prompts;
    for (const char* text : {"hi", "tell me about the sea", "what is it", "ok then, one more question"}) {
        const std::string rendered = model.chat_template->render({ChatMessage{"user", text}}, true);
        prompts.push_back(model.tokenizer->encode(rendered, false, true));
    }
    BatchGenerationOptions options;
    options.max_new_tokens = 10;
    options.batch_size = 3;
    options.sampling = EvalConfig::greedy_sampling();
    size_t progress_calls = 0;
    options.on_progress = [&](size_t) { ++progress_calls; };
    const std::vector<BatchReply> replies = generate_replies(*model.model, *model.tokenizer, prompts, options);
    ASSERT_EQ(replies.size(), prompts.size());
    EXPECT_EQ(progress_calls, 2u);

    Generator generator(*model.model, *model.tokenizer, 256);
    for (size_t i = 0; i < prompts.size(); ++i) {
        Sampler sampler(options.sampling);
        GenerationOptions single;
        single.max_new_tokens = options.max_new_tokens;
        GenerationResult expected = generator.generate(prompts[i], sampler, single);
        if (expected.stop_reason == StopReason::EndOfGeneration) {
            expected.tokens.pop_back();
        }
        EXPECT_EQ(replies[i].tokens, expected.tokens) << "prompt " << i;
        EXPECT_EQ(replies[i].text, expected.text) << "prompt " << i;
        EXPECT_EQ(replies[i].stop_reason, expected.stop_reason) << "prompt " << i;
    }
}

TEST_F(EvalModels, SelfComparisonHasNoChange) {
    const EvalConfig config = tiny_config("self");
    const EvalReport report = run_eval(config);

    ASSERT_EQ(report.prompts.size(), 4u);
    for (size_t i = 0; i < report.prompts.size(); ++i) {
        EXPECT_EQ(report.base.replies[i].text, report.tuned.replies[i].text) << "prompt " << i;
    }
    EXPECT_EQ(report.base.text.marker_hits_per_reply, report.tuned.text.marker_hits_per_reply);
    EXPECT_EQ(report.base.text.mean_tokens, report.tuned.text.mean_tokens);
    EXPECT_EQ(report.base.text.lowercase_ratio, report.tuned.text.lowercase_ratio);
    EXPECT_EQ(report.base.persona.loss, report.tuned.persona.loss);
    EXPECT_GT(report.base.persona.loss, 0.0);
    EXPECT_NEAR(report.kl.mean, 0.0, 1e-9);
    EXPECT_EQ(report.kl.rows, 3);

    std::ifstream json_file(fs::path(config.out_dir) / "eval.json");
    ASSERT_TRUE(json_file.good());
    const nlohmann::json json = nlohmann::json::parse(json_file);
    EXPECT_EQ(json.at("prompts").size(), 4u);
    EXPECT_EQ(json.at("prompts")[0].at("messages")[0].at("content"), "question number 0");
    EXPECT_EQ(json.at("base").at("persona_loss").get<double>(), report.base.persona.loss);
    EXPECT_FALSE(json.at("cadence_marker_rate_lower").get<bool>());
    EXPECT_TRUE(fs::exists(fs::path(config.out_dir) / "replies.md"));
    EXPECT_NE(metrics_table(report).find("held-out persona loss"), std::string::npos);
}

TEST_F(EvalModels, LimitAndPromptsFileApplied) {
    EvalConfig config = tiny_config("limited");
    config.prompts = *dir_ + "/prompts.jsonl";
    write_text(config.prompts, "{\"prompt\": \"one\"}\n{\"prompt\": \"two\"}\n{\"prompt\": \"three\"}\n");
    config.limit = 2;
    const EvalReport report = run_eval(config);
    ASSERT_EQ(report.prompts.size(), 2u);
    EXPECT_EQ(report.prompts[1].messages[0].content, "two");
    EXPECT_EQ(report.base.replies.size(), 2u);
}

TEST_F(EvalModels, AdapterChangesTunedSide) {
    LoadedModel model = load_model(*path_);
    LoraConfig lora;
    lora.rank = 2;
    lora.dropout = 0.0;
    LoraAdapter adapter(*model.model, lora);
    // PEFT initialises B to zero; a non-zero B makes the adapter change the model.
    torch::NoGradGuard no_grad;
    for (const torch::Tensor& parameter : adapter.parameters()) {
        parameter.normal_(0.0, 0.5);
    }
    const std::string adapter_dir = *dir_ + "/adapter";
    adapter.save(adapter_dir);

    EvalConfig config = tiny_config("adapter");
    config.tuned = "";
    config.adapter = adapter_dir;
    const EvalReport report = run_eval(config);
    EXPECT_GT(report.kl.mean, 1e-4);
    EXPECT_NE(report.base.persona.loss, report.tuned.persona.loss);
    EXPECT_EQ(report.tuned.model, *path_);
    EXPECT_EQ(report.tuned.adapter, adapter_dir);
}

// ---------------------------------------------------------------- invalid input

TEST_F(EvalModels, MissingFilesNamed) {
    struct Case {
        std::string EvalConfig::*field;
        std::string flag;
    };
    for (const Case& c : {Case{&EvalConfig::markers, "--markers"}, Case{&EvalConfig::heldout, "--heldout"},
                          Case{&EvalConfig::neutral, "--neutral"}, Case{&EvalConfig::prompts, "--prompts"}}) {
        EvalConfig config = tiny_config("missing");
        config.*c.field = *dir_ + "/nope.jsonl";
        const std::string message = error_message([&] { run_eval(config); });
        EXPECT_NE(message.find(c.flag), std::string::npos) << message;
        EXPECT_NE(message.find("nope.jsonl"), std::string::npos) << message;
    }
    EXPECT_FALSE(fs::exists(*dir_ + "/missing/eval.json"));
}

TEST_F(EvalModels, BadHeldoutLineNamedBeforeLoading) {
    EvalConfig config = tiny_config("bad-heldout");
    config.heldout = *dir_ + "/bad-heldout.jsonl";
    // The model path is invalid too: the data error must come first.
    config.base = *dir_ + "/no-model.gguf";
    write_text(config.heldout,
               "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": "
               "\"b\"}]}\n{\"messages\": [oops\n");
    const std::string message = error_message([&] { run_eval(config); });
    EXPECT_NE(message.find("bad-heldout.jsonl:2"), std::string::npos) << message;
}

TEST_F(EvalModels, BadNeutralLineNamed) {
    EvalConfig config = tiny_config("bad-neutral");
    config.neutral = *dir_ + "/bad-neutral.jsonl";
    write_text(config.neutral, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}\n{\"text\": 1}\n");
    const std::string message = error_message([&] { run_eval(config); });
    EXPECT_NE(message.find("bad-neutral.jsonl:2"), std::string::npos) << message;
}

TEST_F(EvalModels, InvalidNumbersNamed) {
    EvalConfig config = tiny_config("numbers");
    config.limit = -1;
    EXPECT_NE(error_message([&] { run_eval(config); }).find("--limit -1"), std::string::npos);
    config = tiny_config("numbers");
    config.max_new_tokens = 0;
    EXPECT_NE(error_message([&] { run_eval(config); }).find("--max-new-tokens 0"), std::string::npos);
    config = tiny_config("numbers");
    config.tuned = "";
    EXPECT_NE(error_message([&] { run_eval(config); }).find("--tuned"), std::string::npos);
}

TEST_F(EvalModels, DifferentVocabulariesRejected) {
    LoadedModel model = load_model(*path_);
    Vocab other = model.tokenizer->vocab();
    other.pieces[300] = "zz";
    const std::string message =
        error_message([&] { check_same_vocabulary(model.tokenizer->vocab(), other, "base.gguf", "tuned.gguf"); });
    EXPECT_NE(message.find("different vocabularies"), std::string::npos) << message;
    EXPECT_NE(message.find("token 300"), std::string::npos) << message;

    Vocab shorter = model.tokenizer->vocab();
    shorter.pieces.pop_back();
    const std::string size_message =
        error_message([&] { check_same_vocabulary(model.tokenizer->vocab(), shorter, "base.gguf", "tuned.gguf"); });
    EXPECT_NE(size_message.find("tokens"), std::string::npos) << size_message;
    EXPECT_EQ(error_message([&] { check_same_vocabulary(model.tokenizer->vocab(), model.tokenizer->vocab(), "a", "b"); }),
              "");
}

TEST_F(EvalModels, MissingTunedModelNamed) {
    EvalConfig config = tiny_config("missing-model");
    config.tuned = *dir_ + "/absent.gguf";
    const std::string message = error_message([&] { run_eval(config); });
    EXPECT_NE(message.find("absent.gguf"), std::string::npos) << message;
    EXPECT_FALSE(std::filesystem::exists(config.out_dir)) << "a failed eval left its empty output folder";
}

}  // namespace
}  // namespace sz
