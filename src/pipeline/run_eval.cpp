#include "pipeline/run_eval.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/eval_report.h"
#include "eval/eval_run.h"
#include "pipeline/run_config.h"
#include "report/html_report.h"

namespace sz {

namespace fs = std::filesystem;

namespace {

// Applies the run config's "eval" object to `config`. Paths resolve like the run config's own.
void apply_settings(EvalConfig& config, const nlohmann::json& settings, const std::string& source,
                    const std::string& config_dir) {
    auto number = [&](const std::string& key, const nlohmann::json& value) {
        if (!value.is_number()) {
            fail("{}: '{}' must be a number, got {}", source, key, value.dump());
        }
        return value.get<double>();
    };
    auto integer = [&](const std::string& key, const nlohmann::json& value) {
        if (!value.is_number_integer()) {
            fail("{}: '{}' must be an integer, got {}", source, key, value.dump());
        }
        return value.get<int64_t>();
    };
    auto path = [&](const std::string& key, const nlohmann::json& value) {
        if (!value.is_string()) {
            fail("{}: '{}' must be a file name, got {}", source, key, value.dump());
        }
        return resolve_input_path(value.get<std::string>(), config_dir, source + "." + key);
    };
    for (const auto& [key, value] : settings.items()) {
        if (key == "limit") {
            config.limit = integer(key, value);
        } else if (key == "max_new_tokens") {
            config.max_new_tokens = integer(key, value);
        } else if (key == "batch_size") {
            config.batch_size = integer(key, value);
        } else if (key == "prompts") {
            // Empty keeps the default: the first user turn of each held-out conversation.
            config.prompts = value == "" ? std::string() : path(key, value);
        } else if (key == "neutral") {
            config.neutral = path(key, value);
        } else if (key == "markers") {
            config.markers = path(key, value);
        } else if (key == "temp") {
            config.sampling.temp = static_cast<float>(number(key, value));
        } else if (key == "min_p") {
            config.sampling.min_p = static_cast<float>(number(key, value));
        } else if (key == "top_p") {
            config.sampling.top_p = static_cast<float>(number(key, value));
        } else if (key == "top_k") {
            config.sampling.top_k = static_cast<int32_t>(integer(key, value));
        } else if (key == "repeat_penalty") {
            config.sampling.repeat_penalty = static_cast<float>(number(key, value));
        } else {
            std::string known;
            const nlohmann::json defaults = default_eval_settings();   // items() does not own it
            for (const auto& item : defaults.items()) {
                known += (known.empty() ? "" : ", ") + item.key();
            }
            fail("{}: unknown key '{}'; known keys: {}", source, key, known);
        }
    }
}

EvalConfig eval_config(const nlohmann::json& settings, const std::string& source) {
    EvalConfig config;
    config.neutral = resolve_input_path(config.neutral, "", source + ".neutral");
    config.markers = resolve_input_path(config.markers, "", source + ".markers");
    config.heldout = resolve_input_path(config.heldout, "", source + ".heldout");
    apply_settings(config, settings, source, "");
    return config;
}

}  // namespace

nlohmann::json default_eval_settings() {
    // A float such as 0.1f widened to double prints as 0.10000000149011612; fmt's shortest
    // form of the float reads back as the double 0.1.
    auto shortest = [](float value) { return std::stod(fmt::format("{}", value)); };
    const EvalConfig config;
    return {{"limit", config.limit},
            {"max_new_tokens", config.max_new_tokens},
            {"batch_size", config.batch_size},
            {"prompts", config.prompts},
            {"neutral", config.neutral},
            {"markers", config.markers},
            {"temp", shortest(config.sampling.temp)},
            {"min_p", shortest(config.sampling.min_p)},
            {"top_p", shortest(config.sampling.top_p)},
            {"top_k", config.sampling.top_k},
            {"repeat_penalty", shortest(config.sampling.repeat_penalty)}};
}

void check_eval_settings(const nlohmann::json& settings, const std::string& source) {
    EvalConfig config = eval_config(settings, source);
    // Named by their config keys here; EvalConfig::validate names the eval command's flags.
    if (config.limit < 0) {
        fail("{}: 'limit' must be 0 (all prompts) or a positive number, got {}", source, config.limit);
    }
    if (config.max_new_tokens < 1 || config.batch_size < 1) {
        fail("{}: 'max_new_tokens' and 'batch_size' must be at least 1, got {} and {}", source, config.max_new_tokens,
             config.batch_size);
    }
    // The run supplies the models and the folder later; only the settings are checked here.
    config.base = "base";
    config.tuned = "tuned";
    config.out_dir = "eval";
    config.validate();
}

std::string run_eval_stage(const std::string& base, const std::string& tuned, const std::string& heldout,
                           const nlohmann::json& settings, uint64_t seed, const std::string& out_dir) {
    EvalConfig config = eval_config(settings, "run config: eval");
    config.base = base;
    config.tuned = tuned;
    if (!heldout.empty()) {
        config.heldout = heldout;
    }
    config.out_dir = out_dir;
    config.sampling.seed = static_cast<uint32_t>(seed);
    EvalReport report = run_eval(config);
    const std::string table = metrics_table(report);
    write_file_atomically((fs::path(out_dir) / "table.txt").string(), table);
    return table;
}

std::string eval_table_from_dir(const std::string& out_dir) {
    std::ifstream in(fs::path(out_dir) / "table.txt");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_run_report(const std::string& out, const nlohmann::json& state) {
    HtmlReport report("subzero run", out);
    report.add_section("Stages", "stages");
    std::vector<std::vector<std::string>> rows;
    const nlohmann::json stages = state.value("stages", nlohmann::json::object());
    for (const auto& [name, stage] : stages.items()) {
        rows.push_back({name, stage.value("status", ""), fmt::format("{:.1f}", stage.value("seconds", 0.0))});
    }
    report.add_table({"stage", "status", "seconds (last run)"}, rows);
    std::vector<std::pair<std::string, std::string>> links;
    for (const auto& [text, href] : {std::pair<std::string, std::string>{"locate report", "atlas/report.html"},
                                     {"training report", "train/report.html"},
                                     {"replies, base and tuned side by side", "eval/replies.md"},
                                     {"eval metrics (JSON)", "eval/eval.json"}}) {
        if (fs::exists(fs::path(out) / href)) {
            links.emplace_back(text, href);
        }
    }
    report.add_links(links);
    const std::string table = eval_table_from_dir((fs::path(out) / "eval").string());
    if (!table.empty()) {
        report.add_section("Base against tuned", "eval");
        report.add_preformatted(table);
    }
    report.add_section("Config", "config");
    report.add_preformatted(state.value("config", nlohmann::json::object()).dump(2));
    report.write((fs::path(out) / "report.html").string());
}

}  // namespace sz
