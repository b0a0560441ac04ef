#include "eval/eval_report.h"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "generation/generator.h"

namespace sz {

const char* const kKlPositionsDescription =
    "every position of each neutral prompt rendered with the chat template and the generation prompt "
    "(the last position is the first reply token); teacher-forced, no generated text";

namespace {

nlohmann::json summary_json(const EvalSide& side, const std::vector<std::string>& markers) {
    const TextSummary& t = side.text;
    nlohmann::json marker_totals = nlohmann::json::object();
    for (size_t i = 0; i < markers.size() && i < t.marker_totals.size(); ++i) {
        if (t.marker_totals[i] > 0) {
            marker_totals[markers[i]] = t.marker_totals[i];
        }
    }
    return {{"model", side.model},
            {"adapter", side.adapter.empty() ? nlohmann::json(nullptr) : nlohmann::json(side.adapter)},
            {"replies", t.replies},
            {"cadence_marker_hits_per_reply", t.marker_hits_per_reply},
            {"replies_with_cadence_marker", t.replies_with_marker},
            {"markdown_lines_per_reply", t.markdown_lines_per_reply},
            {"replies_with_markdown", t.replies_with_markdown},
            {"mean_reply_words", t.mean_words},
            {"mean_reply_tokens", t.mean_tokens},
            {"lowercase_ratio", t.lowercase_ratio},
            {"persona_loss", side.persona.loss},
            {"persona_loss_trained_tokens", side.persona.trained_tokens},
            {"persona_loss_conversations", side.persona.conversations},
            {"cadence_marker_totals", marker_totals},
            {"generation_seconds", side.generation_seconds}};
}

nlohmann::json reply_json(const EvalReply& reply, const std::vector<std::string>& markers) {
    nlohmann::json hits = nlohmann::json::object();
    for (size_t i = 0; i < markers.size() && i < reply.metrics.marker_counts.size(); ++i) {
        if (reply.metrics.marker_counts[i] > 0) {
            hits[markers[i]] = reply.metrics.marker_counts[i];
        }
    }
    return {{"text", reply.text},
            {"tokens", reply.tokens},
            {"stop_reason", reply.stop_reason},
            {"words", reply.metrics.words},
            {"markdown_lines", reply.metrics.markdown_lines},
            {"cadence_markers", hits}};
}

nlohmann::json messages_json(const std::vector<ChatMessage>& messages) {
    nlohmann::json out = nlohmann::json::array();
    for (const ChatMessage& m : messages) {
        out.push_back({{"role", m.role}, {"content", m.content}});
    }
    return out;
}

std::string format_number(double value, int decimals) { return fmt::format("{:.{}f}", value, decimals); }

std::string format_change(double base, double tuned, int decimals) {
    return fmt::format("{:+.{}f}", tuned - base, decimals);
}

// A markdown blockquote of `text`, so that the reply's own markdown shows as written.
std::string quote(const std::string& text) {
    if (text.empty()) {
        return "> (empty reply)\n";
    }
    std::istringstream lines(text);
    std::string line;
    std::string out;
    while (std::getline(lines, line)) {
        out += line.empty() ? ">\n" : "> " + line + "\n";
    }
    return out;
}

}  // namespace

nlohmann::json report_json(const EvalReport& report) {
    const EvalConfig& c = report.config;
    nlohmann::json settings = {{"prompts", c.prompts.empty() ? c.heldout + " (first user turn)" : c.prompts},
                               {"heldout", c.heldout},
                               {"neutral", c.neutral},
                               {"markers", c.markers},
                               {"limit", c.limit},
                               {"max_new_tokens", c.max_new_tokens},
                               {"batch_size", c.batch_size},
                               {"sampling",
                                {{"temp", c.sampling.temp},
                                 {"min_p", c.sampling.min_p},
                                 {"top_p", c.sampling.top_p},
                                 {"top_k", c.sampling.top_k},
                                 {"repeat_penalty", c.sampling.repeat_penalty},
                                 {"repeat_last_n", c.sampling.repeat_last_n},
                                 {"seed", c.sampling.seed}}}};
    nlohmann::json prompts = nlohmann::json::array();
    for (size_t i = 0; i < report.prompts.size(); ++i) {
        prompts.push_back({{"source", report.prompts[i].source},
                           {"messages", messages_json(report.prompts[i].messages)},
                           {"base", reply_json(report.base.replies.at(i), report.marker_texts)},
                           {"tuned", reply_json(report.tuned.replies.at(i), report.marker_texts)}});
    }
    return {{"settings", settings},
            {"base", summary_json(report.base, report.marker_texts)},
            {"tuned", summary_json(report.tuned, report.marker_texts)},
            {"kl_base_tuned",
             {{"mean", report.kl.mean},
              {"max", report.kl.max},
              {"positions", report.kl.positions},
              {"rows", report.kl.rows},
              {"measured_at", kKlPositionsDescription}}},
            {"cadence_marker_rate_lower",
             report.tuned.text.marker_hits_per_reply < report.base.text.marker_hits_per_reply},
            {"markers", report.marker_texts},
            {"prompts", prompts}};
}

std::string replies_markdown(const EvalReport& report) {
    std::string out = fmt::format("# subzero eval: replies\n\nbase: `{}`  \ntuned: `{}`{}\n\n", report.base.model,
                                  report.tuned.model,
                                  report.tuned.adapter.empty() ? "" : fmt::format(" + adapter `{}`", report.tuned.adapter));
    for (size_t i = 0; i < report.prompts.size(); ++i) {
        const EvalPrompt& prompt = report.prompts[i];
        out += fmt::format("## {}. {}\n\n", i + 1, prompt.source);
        for (const ChatMessage& m : prompt.messages) {
            out += fmt::format("**{}:**\n\n{}\n", m.role, quote(m.content));
        }
        const EvalReply& base = report.base.replies.at(i);
        const EvalReply& tuned = report.tuned.replies.at(i);
        out += fmt::format("**base** ({} tokens, {} cadence markers):\n\n{}\n", base.tokens, base.metrics.marker_hits,
                           quote(base.text));
        out += fmt::format("**tuned** ({} tokens, {} cadence markers):\n\n{}\n", tuned.tokens,
                           tuned.metrics.marker_hits, quote(tuned.text));
    }
    return out;
}

std::string metrics_table(const EvalReport& report) {
    struct Row {
        std::string name;
        std::string base;
        std::string tuned;
        std::string change;
    };
    const TextSummary& b = report.base.text;
    const TextSummary& t = report.tuned.text;
    auto row = [](const std::string& name, double base, double tuned, int decimals) {
        return Row{name, format_number(base, decimals), format_number(tuned, decimals),
                   format_change(base, tuned, decimals)};
    };
    std::vector<Row> rows = {
        {"metric", "base", "tuned", "change"},
        row("cadence marker hits per reply", b.marker_hits_per_reply, t.marker_hits_per_reply, 3),
        row("replies with a cadence marker", b.replies_with_marker, t.replies_with_marker, 3),
        row("markdown lines per reply", b.markdown_lines_per_reply, t.markdown_lines_per_reply, 3),
        row("replies with markdown", b.replies_with_markdown, t.replies_with_markdown, 3),
        row("mean reply length (words)", b.mean_words, t.mean_words, 1),
        row("mean reply length (tokens)", b.mean_tokens, t.mean_tokens, 1),
        row("lowercase ratio", b.lowercase_ratio, t.lowercase_ratio, 3),
        row("held-out persona loss (nats/token)", report.base.persona.loss, report.tuned.persona.loss, 4),
        Row{"KL(base || tuned) on neutral prompts (nats)", "-", format_number(report.kl.mean, 5),
            format_change(0.0, report.kl.mean, 5)},
    };
    size_t widths[4] = {0, 0, 0, 0};
    for (const Row& r : rows) {
        widths[0] = std::max(widths[0], r.name.size());
        widths[1] = std::max(widths[1], r.base.size());
        widths[2] = std::max(widths[2], r.tuned.size());
        widths[3] = std::max(widths[3], r.change.size());
    }
    std::string out;
    for (size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        out += fmt::format("{:<{}}  {:>{}}  {:>{}}  {:>{}}\n", r.name, widths[0], r.base, widths[1], r.tuned,
                           widths[2], r.change, widths[3]);
        if (i == 0) {
            out += std::string(widths[0] + widths[1] + widths[2] + widths[3] + 6, '-') + "\n";
        }
    }
    out += fmt::format("{} prompts, up to {} new tokens, {}; KL over {} positions of {} neutral prompts\n",
                       b.replies, report.config.max_new_tokens,
                       report.config.sampling.temp <= 0.0f ? "greedy" : "sampled", report.kl.positions,
                       report.kl.rows);
    return out;
}

void write_eval_outputs(const EvalReport& report) {
    const std::filesystem::path dir(report.config.out_dir);
    // Replies cut off by the token limit can end inside a UTF-8 character; replace such bytes.
    write_file_atomically((dir / "eval.json").string(),
                          report_json(report).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    write_file_atomically((dir / "replies.md").string(), replies_markdown(report));
}

}  // namespace sz
