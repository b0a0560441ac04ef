#include "train/train_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "report/html_report.h"
#include "report/svg_plot.h"

namespace sz {

namespace {

namespace fs = std::filesystem;

// Weight of the exponential moving average that smooths the training loss. With 0.9 the
// average spans about ten steps. Its bias correction divides by 1 - 0.9^t, as Adam does for
// its moments, so the first steps are not pulled towards zero.
constexpr double kLossSmoothing = 0.9;
constexpr size_t kMaxLabelledModeChanges = 12;

struct StepLine {
    int64_t step = 0;
    double loss = NAN;
    double lr = NAN;
    double grad_norm = NAN;
    double tokens = NAN;
    double seconds = NAN;
    double leak = NAN;
    std::string mode;
    nlohmann::json events;  // array, or null when the line has none
};

struct HeldoutLine {
    int64_t step = 0;
    double loss = NAN;
};

struct Metrics {
    std::vector<StepLine> steps;      // by step; a later line for the same step replaces an earlier one
    std::vector<HeldoutLine> heldout; // by step
    std::vector<size_t> skipped_lines;  // 1-based line numbers that were not JSON objects
    bool has_events = false;
};

double number_or_nan(const nlohmann::json& line, const char* key) {
    auto it = line.find(key);
    return it != line.end() && it->is_number() ? it->get<double>() : NAN;
}

Metrics read_metrics(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        fail("training metrics '{}' not found; pass the output folder of a `subzero train` run", path);
    }
    std::map<int64_t, StepLine> steps;
    std::map<int64_t, HeldoutLine> heldout;
    Metrics metrics;
    std::string text;
    size_t line_number = 0;
    while (std::getline(in, text)) {
        ++line_number;
        if (text.find_first_not_of(" \t\r") == std::string::npos) {
            continue;
        }
        const nlohmann::json line = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
        if (!line.is_object() || !line.contains("step") || !line["step"].is_number_integer()) {
            metrics.skipped_lines.push_back(line_number);
            continue;
        }
        const int64_t step = line["step"].get<int64_t>();
        if (line.contains("heldout_loss")) {
            heldout[step] = {step, number_or_nan(line, "heldout_loss")};
            continue;
        }
        StepLine s;
        s.step = step;
        s.loss = number_or_nan(line, "loss");
        s.lr = number_or_nan(line, "lr");
        s.grad_norm = number_or_nan(line, "grad_norm");
        s.tokens = number_or_nan(line, "tokens");
        s.seconds = number_or_nan(line, "seconds");
        s.leak = number_or_nan(line, "max_leak_ratio");
        s.mode = line.value("mode", std::string());
        if (line.contains("events") && line["events"].is_array()) {
            s.events = line["events"];
            metrics.has_events = true;
        }
        steps[step] = s;
    }
    for (auto& [step, line] : steps) {
        metrics.steps.push_back(std::move(line));
    }
    for (auto& [step, line] : heldout) {
        metrics.heldout.push_back(line);
    }
    if (!metrics.skipped_lines.empty()) {
        spdlog::warn("{}: skipped {} line(s) that are not JSON objects with a step (line {}); a run killed while "
                     "writing leaves one torn line, which the report leaves out",
                     path, metrics.skipped_lines.size(), fmt::join(metrics.skipped_lines, ", "));
    }
    return metrics;
}

nlohmann::json read_json_object(const std::string& path, bool required) {
    std::ifstream in(path);
    if (!in) {
        if (required) {
            fail("'{}' not found", path);
        }
        return nlohmann::json();
    }
    nlohmann::json value;
    try {
        value = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        fail("'{}' is not valid JSON: {}", path, e.what());
    }
    if (!value.is_object()) {
        fail("'{}' must contain a JSON object, got {}", path, value.type_name());
    }
    return value;
}

// A contiguous run of steps in one scheduler mode.
struct ModeSpan {
    std::string mode;
    int64_t first = 0;
    int64_t last = 0;
};

std::vector<ModeSpan> mode_spans(const std::vector<StepLine>& steps) {
    std::vector<ModeSpan> spans;
    for (const StepLine& s : steps) {
        if (spans.empty() || spans.back().mode != s.mode) {
            spans.push_back({s.mode, s.step, s.step});
        } else {
            spans.back().last = s.step;
        }
    }
    return spans;
}

// Fixed colours for the AECS modes, so that every report reads the same. Other modes, such as
// the phases of the fixed schedules, take palette colours in order of appearance.
std::map<std::string, std::string> mode_colors(const std::vector<ModeSpan>& spans) {
    std::map<std::string, std::string> colors = {
        {"BASELINE", "#9aa5b1"}, {"RECOVERY", "#e15759"}, {"EXPLORE", "#59a14f"}, {"STABILIZE", "#f28e2b"}};
    std::map<std::string, std::string> used;
    size_t next = 0;
    for (const ModeSpan& span : spans) {
        if (used.count(span.mode) > 0) {
            continue;
        }
        auto known = colors.find(span.mode);
        used[span.mode] = known != colors.end() ? known->second : svg::palette_color(next++);
    }
    return used;
}

std::vector<svg::ShadedRange> mode_bands(const std::vector<ModeSpan>& spans,
                                         const std::map<std::string, std::string>& colors) {
    std::vector<svg::ShadedRange> bands;
    if (spans.size() < 2 && (spans.empty() || spans.front().mode.empty())) {
        return bands;  // one unnamed mode: nothing to tell apart
    }
    for (const ModeSpan& span : spans) {
        bands.push_back({static_cast<double>(span.first) - 0.5, static_cast<double>(span.last) + 0.5,
                         span.mode.empty() ? "(no mode)" : span.mode, colors.at(span.mode)});
    }
    return bands;
}

std::vector<svg::VerticalMarker> mode_change_markers(const std::vector<ModeSpan>& spans,
                                                     const std::map<std::string, std::string>& colors) {
    std::vector<svg::VerticalMarker> markers;
    for (size_t i = 1; i < spans.size(); ++i) {
        const std::string label = i <= kMaxLabelledModeChanges ? spans[i].mode : "";
        markers.push_back({static_cast<double>(spans[i].first) - 0.5, label, colors.at(spans[i].mode)});
    }
    return markers;
}

std::vector<double> smoothed(const std::vector<double>& values) {
    std::vector<double> out;
    double average = 0.0;
    double weight = 1.0;
    for (double v : values) {
        if (!std::isfinite(v)) {
            out.push_back(NAN);
            continue;
        }
        average = kLossSmoothing * average + (1.0 - kLossSmoothing) * v;
        weight *= kLossSmoothing;
        out.push_back(average / (1.0 - weight));
    }
    return out;
}

template <typename Field>
svg::Series step_series(const std::vector<StepLine>& steps, const std::string& name, Field field) {
    svg::Series series;
    series.name = name;
    for (const StepLine& s : steps) {
        series.x.push_back(static_cast<double>(s.step));
        series.y.push_back(field(s));
    }
    return series;
}

std::string format_number(double value, const char* format = "{:.4g}") {
    return std::isfinite(value) ? fmt::format(fmt::runtime(format), value) : "n/a";
}

std::string json_text(const nlohmann::json& config, const char* key) {
    if (!config.is_object() || !config.contains(key) || config[key].is_null()) {
        return "";
    }
    const nlohmann::json& value = config[key];
    if (value.is_string()) {
        return value.get<std::string>();
    }
    if (value.is_array()) {
        std::vector<std::string> parts;
        for (const nlohmann::json& item : value) {
            parts.push_back(item.is_string() ? item.get<std::string>() : item.dump());
        }
        return fmt::format("{}", fmt::join(parts, ", "));
    }
    return value.dump();
}

// Scheduler events with their causes: the "events" entries of the step lines when the run
// recorded them, otherwise the mode changes read off the "mode" column.
std::vector<std::vector<std::string>> event_rows(const Metrics& metrics, const std::vector<ModeSpan>& spans) {
    std::vector<std::vector<std::string>> rows;
    if (metrics.has_events) {
        for (const StepLine& s : metrics.steps) {
            if (s.events.is_null()) {
                continue;
            }
            for (const nlohmann::json& event : s.events) {
                if (event.is_string()) {
                    rows.push_back({std::to_string(s.step), event.get<std::string>(), "", "", ""});
                    continue;
                }
                if (!event.is_object()) {
                    continue;
                }
                const std::string from = event.value("from_mode", std::string());
                const std::string to = event.value("to_mode", std::string());
                const std::string ignored = event.value("ignored_reason", std::string());
                std::string outcome = from != to ? fmt::format("{} → {}", from, to) : "ignored";
                if (from == to && !ignored.empty()) {
                    outcome += ": " + ignored;
                }
                rows.push_back({std::to_string(event.value("step", s.step)), event.value("name", std::string()),
                                event.value("cause", std::string()), outcome,
                                format_number(number_or_nan(event, "lr_before"), "{:.3g}")});
            }
        }
        return rows;
    }
    for (size_t i = 1; i < spans.size(); ++i) {
        rows.push_back({std::to_string(spans[i].first), "mode change", "not recorded in metrics.jsonl",
                        fmt::format("{} → {}", spans[i - 1].mode, spans[i].mode), ""});
    }
    return rows;
}

}  // namespace

void write_train_report(const std::string& train_dir, const std::string& html_path) {
    const Metrics metrics = read_metrics((fs::path(train_dir) / "metrics.jsonl").string());
    const nlohmann::json config = read_json_object((fs::path(train_dir) / "config.json").string(), false);
    const nlohmann::json lock = read_json_object((fs::path(train_dir) / "lock.json").string(), false);
    const std::vector<StepLine>& steps = metrics.steps;
    const std::vector<ModeSpan> spans = mode_spans(steps);
    const std::map<std::string, std::string> colors = mode_colors(spans);
    const std::vector<svg::ShadedRange> bands = mode_bands(spans, colors);

    const std::string model = json_text(config, "model");
    HtmlReport report("subzero train report", model.empty() ? train_dir : fmt::format("{} · {}", model, train_dir));

    // Summary numbers.
    double total_seconds = 0.0;
    double total_tokens = 0.0;
    for (const StepLine& s : steps) {
        if (std::isfinite(s.seconds) && std::isfinite(s.tokens)) {
            total_seconds += s.seconds;
            total_tokens += s.tokens;
        }
    }
    std::vector<double> losses;
    for (const StepLine& s : steps) {
        losses.push_back(s.loss);
    }
    const std::vector<double> smooth = smoothed(losses);
    const HeldoutLine* best = nullptr;
    for (const HeldoutLine& h : metrics.heldout) {
        if (std::isfinite(h.loss) && (best == nullptr || h.loss < best->loss)) {
            best = &h;
        }
    }

    report.add_section("Summary", "summary");
    std::vector<std::pair<std::string, std::string>> facts;
    if (!model.empty()) {
        facts.emplace_back("model", model);
    }
    if (config.is_object()) {
        facts.emplace_back("data", json_text(config, "data"));
        const std::string atlas = json_text(config, "atlas");
        facts.emplace_back("atlas", atlas.empty() ? "none (no surgery, no lock)" : atlas);
        const std::string options = json_text(config, "scheduler_options");
        facts.emplace_back("scheduler", fmt::format("{}, {}", json_text(config, "scheduler"),
                                                    options.empty() || options == "{}" ? "default options" : options));
        facts.emplace_back("learning rate", json_text(config, "learning_rate"));
        facts.emplace_back("LoRA", fmt::format("rank {}, alpha {}, targets {}", json_text(config, "rank"),
                                               json_text(config, "alpha"),
                                               json_text(config, "targets").empty() ? "all" : json_text(config, "targets")));
        facts.emplace_back("batch", fmt::format("{} examples × {} accumulation steps", json_text(config, "batch_size"),
                                                json_text(config, "gradient_accumulation_steps")));
    } else {
        facts.emplace_back("config", "config.json not found");
    }
    facts.emplace_back("steps recorded",
                       steps.empty() ? "0" : fmt::format("{} of {}", steps.back().step, json_text(config, "max_steps")));
    if (!steps.empty()) {
        facts.emplace_back("final training loss",
                           fmt::format("{} (smoothed {})", format_number(steps.back().loss), format_number(smooth.back())));
    }
    if (best != nullptr) {
        facts.emplace_back("best held-out loss", fmt::format("{} at step {} (last {} at step {})", format_number(best->loss),
                                                             best->step, format_number(metrics.heldout.back().loss),
                                                             metrics.heldout.back().step));
    }
    if (total_seconds > 0.0) {
        facts.emplace_back("training time", fmt::format("{:.1f} s, {:.0f} tokens/s on average", total_seconds,
                                                        total_tokens / total_seconds));
    }
    if (lock.is_object()) {
        facts.emplace_back("max lock leak ratio", format_number(number_or_nan(lock, "max_leak_ratio"), "{:.3g}"));
    }
    if (!metrics.skipped_lines.empty()) {
        facts.emplace_back("skipped metrics lines",
                           fmt::format("{} (not JSON objects with a step): line {}", metrics.skipped_lines.size(),
                                       fmt::join(metrics.skipped_lines, ", ")));
    }
    report.add_key_values(facts);

    // Loss.
    report.add_section("Loss", "loss");
    svg::LineChart loss_chart;
    loss_chart.title = "Training and held-out loss";
    loss_chart.x_label = "optimizer step";
    loss_chart.y_label = "cross-entropy per trained token (nats)";
    loss_chart.width = 1100;
    loss_chart.height = 360;
    svg::Series raw = step_series(steps, "training loss", [](const StepLine& s) { return s.loss; });
    raw.color = svg::palette_color(0);
    raw.opacity = 0.35;
    raw.width = 1.2;
    svg::Series average = raw;
    average.name = fmt::format("training loss, moving average ({})", kLossSmoothing);
    average.y = smooth;
    average.opacity = 1.0;
    average.width = 2.2;
    svg::Series heldout;
    heldout.name = "held-out loss";
    heldout.color = svg::palette_color(1);
    heldout.style = svg::SeriesStyle::line_markers;
    for (const HeldoutLine& h : metrics.heldout) {
        heldout.x.push_back(static_cast<double>(h.step));
        heldout.y.push_back(h.loss);
    }
    loss_chart.series = {raw, average, heldout};
    loss_chart.ranges = bands;
    report.add_svg(svg::render(loss_chart));
    if (!bands.empty()) {
        report.add_caption("Shaded bands are the scheduler modes.");
    }

    // Learning rate and modes.
    report.add_section("Learning rate and scheduler mode", "schedule");
    svg::LineChart lr_chart;
    lr_chart.title = "Learning rate";
    lr_chart.x_label = "optimizer step";
    lr_chart.y_label = "learning rate";
    lr_chart.width = 1100;
    lr_chart.height = 300;
    svg::Series lr = step_series(steps, "", [](const StepLine& s) { return s.lr; });
    lr.color = svg::palette_color(0);
    lr_chart.series = {lr};
    lr_chart.ranges = bands;
    lr_chart.vertical_markers = mode_change_markers(spans, colors);
    report.add_svg(svg::render(lr_chart));

    std::vector<std::string> mode_names;
    for (const ModeSpan& span : spans) {
        if (std::find(mode_names.begin(), mode_names.end(), span.mode) == mode_names.end()) {
            mode_names.push_back(span.mode);
        }
    }
    if (!mode_names.empty()) {
        svg::LineChart mode_chart;
        mode_chart.title = "Scheduler mode";
        mode_chart.x_label = "optimizer step";
        mode_chart.y_label = "mode";
        mode_chart.width = 1100;
        mode_chart.height = std::max(150, 90 + 26 * static_cast<int>(mode_names.size()));
        mode_chart.y_categories = mode_names;
        svg::Series mode = step_series(steps, "", [&](const StepLine& s) {
            return static_cast<double>(std::find(mode_names.begin(), mode_names.end(), s.mode) - mode_names.begin());
        });
        mode.color = "#333333";
        mode.style = svg::SeriesStyle::step;
        mode_chart.series = {mode};
        mode_chart.ranges = bands;
        report.add_svg(svg::render(mode_chart));
    }

    std::vector<std::vector<std::string>> spans_table;
    for (const ModeSpan& span : spans) {
        spans_table.push_back({span.mode.empty() ? "(no mode)" : span.mode, std::to_string(span.first),
                               std::to_string(span.last), std::to_string(span.last - span.first + 1)});
    }
    report.add_subheading("Mode spans");
    report.add_table({"mode", "first step", "last step", "steps"}, spans_table);
    const std::vector<std::vector<std::string>> events = event_rows(metrics, spans);
    report.add_subheading(metrics.has_events ? "Scheduler events" : "Mode changes");
    if (events.empty()) {
        report.add_paragraph(metrics.has_events ? "The scheduler recorded no events." : "The mode never changed.");
    } else {
        report.add_table({"step", "event", "cause", "outcome", "LR before"}, events);
    }

    // Gradients and throughput.
    report.add_section("Gradients and throughput", "gradients");
    svg::LineChart grad_chart;
    grad_chart.title = "Gradient norm before clipping";
    grad_chart.x_label = "optimizer step";
    grad_chart.y_label = "global L2 norm";
    grad_chart.log_y = true;
    grad_chart.width = 1100;
    grad_chart.height = 300;
    svg::Series grad = step_series(steps, "", [](const StepLine& s) { return s.grad_norm; });
    grad.color = svg::palette_color(3);
    grad_chart.series = {grad};
    grad_chart.ranges = bands;
    const double clip = config.is_object() ? config.value("max_grad_norm", 0.0) : 0.0;
    if (clip > 0.0) {
        grad_chart.horizontal_markers.push_back({clip, fmt::format("clipped above {}", clip)});
    }
    report.add_svg(svg::render(grad_chart));

    svg::LineChart speed_chart;
    speed_chart.title = "Throughput";
    speed_chart.x_label = "optimizer step";
    speed_chart.y_label = "tokens per second";
    speed_chart.width = 1100;
    speed_chart.height = 260;
    svg::Series speed = step_series(steps, "", [](const StepLine& s) {
        return s.seconds > 0.0 ? s.tokens / s.seconds : NAN;
    });
    speed.color = svg::palette_color(4);
    speed_chart.series = {speed};
    report.add_svg(svg::render(speed_chart));
    report.add_caption("Non-padding tokens of the step's batches divided by the step's wall time.");

    // Subspace lock.
    bool any_leak = false;
    for (const StepLine& s : steps) {
        any_leak = any_leak || std::isfinite(s.leak);
    }
    if (any_leak || lock.is_object()) {
        report.add_section("Subspace lock", "lock");
        if (any_leak) {
            svg::LineChart leak_chart;
            leak_chart.title = "Largest leak into the locked subspace";
            leak_chart.x_label = "optimizer step";
            leak_chart.y_label = "leak ratio";
            leak_chart.log_y = true;
            leak_chart.width = 1100;
            leak_chart.height = 260;
            svg::Series leak = step_series(steps, "", [](const StepLine& s) { return s.leak; });
            leak.color = svg::palette_color(6);
            leak_chart.series = {leak};
            report.add_svg(svg::render(leak_chart));
            report.add_caption("Norm of the LoRA update's component inside the locked subspace divided by the "
                               "norm of the whole update, for the projection where it is largest.");
        }
        if (lock.is_object() && lock.contains("projections") && lock["projections"].is_array()) {
            std::vector<nlohmann::json> entries(lock["projections"].begin(), lock["projections"].end());
            std::stable_sort(entries.begin(), entries.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
                return number_or_nan(a, "leak_ratio") > number_or_nan(b, "leak_ratio");
            });
            std::vector<std::vector<std::string>> rows;
            for (size_t i = 0; i < entries.size() && i < 12; ++i) {
                rows.push_back({entries[i].value("key", std::string()),
                                format_number(number_or_nan(entries[i], "locked_directions"), "{:.0f}"),
                                format_number(number_or_nan(entries[i], "delta_norm"), "{:.3g}"),
                                format_number(number_or_nan(entries[i], "leak_norm"), "{:.3g}"),
                                format_number(number_or_nan(entries[i], "leak_ratio"), "{:.3g}")});
            }
            report.add_subheading(fmt::format("lock.json: projections with the largest leak ratio ({} of {})",
                                              rows.size(), entries.size()));
            report.add_table({"projection", "locked directions", "update norm", "leak norm", "leak ratio"}, rows);
        }
    }
    report.write(html_path);
}

}  // namespace sz
