#include "eval/eval_run.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/output_folder.h"
#include "data/conversation.h"
#include "data/tokenized_example.h"
#include "eval/cadence_markers.h"
#include "eval/eval_report.h"
#include "eval/model_pair.h"
#include "locate/corpus.h"

namespace sz {

namespace fs = std::filesystem;

namespace {

// Token budget of one held-out conversation or neutral prompt. Longer ones are cut, which
// only drops their tail from the loss.
constexpr int64_t kMaxScoredTokens = 1024;
// Rows per forward pass for the loss and KL. Each model's float32 logits take T x V x 4 bytes
// per row, about 30 MiB for a 30-token prompt at V = 262144.
constexpr int64_t kScoringBatchSize = 4;

void require_file(const std::string& path, const char* flag) {
    std::error_code error;
    if (!fs::is_regular_file(path, error)) {
        fail("{} file '{}' not found; pass an existing file", flag, path);
    }
}

// In-place "label: done/total" counter on a terminal; one line per batch otherwise.
class ProgressCounter {
public:
    ProgressCounter(std::string label, size_t total, bool enabled)
        : label_(std::move(label)), total_(total), enabled_(enabled), tty_(isatty(STDERR_FILENO) != 0) {}

    void update(size_t done) {
        if (!enabled_) {
            return;
        }
        std::fprintf(stderr, tty_ ? "\r%s: %zu/%zu replies" : "%s: %zu/%zu replies\n", label_.c_str(), done, total_);
        if (tty_ && done == total_) {
            std::fputc('\n', stderr);
        }
        std::fflush(stderr);
    }

private:
    std::string label_;
    size_t total_;
    bool enabled_;
    bool tty_;
};

std::vector<std::vector<int32_t>> render_prompts(const std::vector<EvalPrompt>& prompts, const LoadedModel& model) {
    std::vector<std::vector<int32_t>> tokens;
    for (const EvalPrompt& prompt : prompts) {
        std::string text;
        try {
            text = model.chat_template->render(prompt.messages, /*add_generation_prompt=*/true);
        } catch (const Error& e) {
            fail("{}: cannot render the prompt: {}", prompt.source, e.what());
        }
        tokens.push_back(model.tokenizer->encode(text, /*add_special=*/false, /*parse_special=*/true));
    }
    return tokens;
}

EvalSide generate_side(const std::string& label, const LoadedModel& model, const ProjectionAdapter* adapter,
                       const std::vector<std::vector<int32_t>>& prompts, const CadenceMarkers& markers,
                       const EvalConfig& config) {
    ProgressCounter progress("generating " + label, prompts.size(), config.show_progress);
    BatchGenerationOptions options;
    options.max_new_tokens = config.max_new_tokens;
    options.batch_size = config.batch_size;
    options.sampling = config.sampling;
    options.adapter = adapter;
    options.on_progress = [&](size_t done) { progress.update(done); };

    const auto start = std::chrono::steady_clock::now();
    std::vector<BatchReply> replies = generate_replies(*model.model, *model.tokenizer, prompts, options);
    EvalSide side;
    side.generation_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    std::vector<ReplyMetrics> metrics;
    for (const BatchReply& reply : replies) {
        EvalReply out;
        out.text = reply.text;
        out.tokens = static_cast<int64_t>(reply.tokens.size());
        out.stop_reason = stop_reason_name(reply.stop_reason);
        out.metrics = measure_reply(reply.text, out.tokens, markers);
        metrics.push_back(out.metrics);
        side.replies.push_back(std::move(out));
    }
    side.text = summarize_replies(metrics, markers.markers().size());
    return side;
}

}  // namespace

SamplerParams EvalConfig::greedy_sampling() {
    SamplerParams params;
    params.temp = 0.0f;
    return params;
}

void EvalConfig::validate() const {
    if (base.empty()) {
        fail("no base model: pass --base MODEL");
    }
    if (tuned.empty() && adapter.empty()) {
        fail("no tuned model: pass --tuned MODEL, or --adapter DIR to evaluate the base model with a LoRA adapter");
    }
    if (limit < 0) {
        fail("invalid --limit {}: expected 0 (all prompts) or a positive number", limit);
    }
    if (max_new_tokens < 1) {
        fail("invalid --max-new-tokens {}: expected at least 1", max_new_tokens);
    }
    if (batch_size < 1) {
        fail("invalid --batch-size {}: expected at least 1", batch_size);
    }
    if (out_dir.empty()) {
        fail("no output folder: pass --out DIR");
    }
    sampling.validate();
}

EvalReport run_eval(const EvalConfig& config) {
    config.validate();

    // Files first: they are cheap to check, and a typo should not wait for two model loads.
    require_file(config.markers, "--markers");
    require_file(config.heldout, "--heldout");
    require_file(config.neutral, "--neutral");
    if (!config.prompts.empty()) {
        require_file(config.prompts, "--prompts");
    }
    const CadenceMarkers markers = CadenceMarkers::load(config.markers);
    const LoadedConversations heldout = load_conversations(config.heldout, ConversationOptions{});
    if (heldout.conversations.empty()) {
        fail("held-out file '{}' (--heldout) contains no conversation", config.heldout);
    }
    std::vector<EvalPrompt> prompts = config.prompts.empty() ? prompts_from_conversations(heldout.conversations)
                                                             : read_prompts(config.prompts);
    if (config.limit > 0 && prompts.size() > static_cast<size_t>(config.limit)) {
        prompts.resize(static_cast<size_t>(config.limit));
    }
    const std::vector<std::vector<ChatMessage>> neutral = read_corpus(config.neutral, 0);
    if (neutral.empty()) {
        fail("neutral prompts file '{}' (--neutral) contains no row", config.neutral);
    }
    // Removed again if the eval fails before writing anything into it.
    const OutputFolder output_folder(config.out_dir, "--out");

    ModelPair pair = load_model_pair(config.base, config.tuned, config.adapter);
    const LoadedModel& base = *pair.base;
    const LoadedModel& tuned = *pair.tuned;

    // Tokenize everything with both models' templates before any generation, so a prompt the
    // template rejects fails now.
    const std::vector<std::vector<int32_t>> base_prompts = render_prompts(prompts, base);
    const std::vector<std::vector<int32_t>> tuned_prompts = render_prompts(prompts, tuned);
    TokenizeOptions tokenize;
    tokenize.max_tokens = kMaxScoredTokens;
    tokenize.overlong = OverlongPolicy::truncate;
    const TokenizedExamples base_heldout =
        tokenize_conversations(heldout.conversations, *base.tokenizer, *base.chat_template, tokenize);
    const TokenizedExamples tuned_heldout =
        tokenize_conversations(heldout.conversations, *tuned.tokenizer, *tuned.chat_template, tokenize);
    std::vector<RenderedRow> neutral_rows;
    for (size_t i = 0; i < neutral.size(); ++i) {
        try {
            neutral_rows.push_back(render_row(neutral[i], *base.chat_template, *base.tokenizer, kMaxScoredTokens));
        } catch (const Error& e) {
            fail("{}: row {}: {}", config.neutral, i + 1, e.what());
        }
    }

    EvalReport report;
    report.config = config;
    report.prompts = prompts;
    for (const CadenceMarker& marker : markers.markers()) {
        report.marker_texts.push_back(marker.text);
    }

    spdlog::info("evaluating {} prompts, up to {} new tokens each", prompts.size(), config.max_new_tokens);
    report.base = generate_side("base", base, nullptr, base_prompts, markers, config);
    report.tuned = generate_side("tuned", tuned, pair.tuned_projection_adapter(), tuned_prompts, markers, config);
    report.base.model = pair.base_name;
    report.tuned.model = pair.tuned_name;
    report.tuned.adapter = pair.adapter_dir;

    spdlog::info("scoring {} held-out conversations and {} neutral prompts", base_heldout.examples.size(),
                 neutral_rows.size());
    report.base.persona = persona_loss(*base.model, nullptr, base_heldout.examples, kScoringBatchSize);
    report.tuned.persona =
        persona_loss(*tuned.model, pair.tuned_projection_adapter(), tuned_heldout.examples, kScoringBatchSize);
    const int32_t pad_id = std::max<int32_t>(base.tokenizer->vocab().pad_id, 0);
    report.kl = kl_divergence(*base.model, nullptr, *tuned.model, pair.tuned_projection_adapter(), neutral_rows,
                              pad_id, kScoringBatchSize);

    write_eval_outputs(report);
    return report;
}

}  // namespace sz
