// `subzero locate MODEL --out DIR`: runs the localisation pipeline and writes the atlas that
// training and export read. Stage outputs are cached in DIR, so an interrupted run resumes.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "core/input_path.h"
#include "locate/locate.h"
#include "locate/locate_report.h"
#include "model/loader.h"

namespace sz::cli {

namespace {

namespace fs = std::filesystem;

// Checked before the model loads, so a wrong corpus path fails in milliseconds.
std::string resolve_corpus_dir(const std::string& corpus_dir) {
    try {
        return resolve_input_path(corpus_dir, "", "corpus_dir");
    } catch (const Error& e) {
        fail("corpus folder not found: {}. Set 'corpus_dir' in the --config file to the folder that holds "
             "corp.jsonl, authentic.jsonl and the other corpora",
             e.what());
    }
}

struct LocateCommandOptions {
    std::string model;
    std::string out;
    std::string config_path;
    std::optional<uint64_t> seed;
    bool print_config = false;
};

// Help footer: every config key with its default and meaning, generated from the config
// itself so the list cannot fall behind the code.
std::string config_keys_help() {
    const nlohmann::json defaults = LocateConfig().to_json();
    std::string text = "Config keys (--config FILE, a JSON object; keys not given keep these defaults):\n";
    for (const auto& [key, doc] : LocateConfig::key_docs()) {
        text += fmt::format("  {} = {}\n      {}\n", key, defaults.at(key).dump(), doc);
    }
    return text;
}

void run_locate(const LocateCommandOptions& command) {
    LocateConfig config = command.config_path.empty() ? LocateConfig() : LocateConfig::from_file(command.config_path);
    if (command.seed) {
        config.seed = *command.seed;
    }
    config.validate(command.config_path.empty() ? "default locate config" : command.config_path);
    if (command.print_config) {
        std::printf("%s\n", config.to_json().dump(2).c_str());
        return;
    }
    if (command.model.empty() || command.out.empty()) {
        fail("missing {}: locate needs a MODEL and an --out folder (only --print-config runs without them)",
             command.model.empty() ? "MODEL" : "--out");
    }
    config.corpus_dir = resolve_corpus_dir(config.corpus_dir);
    if (fs::exists(command.out) && !fs::is_directory(command.out)) {
        fail("--out '{}' exists and is not a folder; pass a folder for the atlas and its stage cache", command.out);
    }

    log_to_stderr();
    spdlog::info("loading {}", command.model);
    LoadedModel loaded = load_model(command.model);
    const std::string name = loaded.model->config().name.empty() ? command.model : loaded.model->config().name;
    double total_seconds = 0.0;
    Atlas atlas = locate({*loaded.model, *loaded.tokenizer, *loaded.chat_template, name}, config, command.out,
                         [&](const StageReport& report) {
                             total_seconds += report.seconds;
                             spdlog::info("stage {}/9 {}: {} ({:.1f} s{})", report.stage, report.name, report.detail,
                                          report.seconds, report.from_cache ? ", cached" : "");
                         });
    int64_t axes = 0;
    for (const ProjectionAtlas& p : atlas.projections) {
        axes += p.basis.size(0);
    }
    spdlog::info("atlas with {} axes in {} projections written to {} ({:.1f} s)", axes, atlas.projections.size(),
                 command.out, total_seconds);
    const nlohmann::json timings = read_locate_timings(command.out);
    const std::string report_path = (fs::path(command.out) / "report.html").string();
    write_locate_report(atlas, timings, report_path);
    fmt::print(stderr, "{}\nreport: {}\n", locate_summary(atlas, timings), report_path);
}

}  // namespace

void add_locate_command(CLI::App& app) {
    auto options = std::make_shared<LocateCommandOptions>();
    CLI::App* command = app.add_subcommand(
        "locate",
        "Find the MLP singular directions that carry the assistant cadence and write them as an atlas "
        "(atlas.safetensors and atlas.json). Stage outputs are cached in the output folder, so rerunning the same "
        "command resumes after the last finished stage");
    command->add_option("MODEL", options->model, "Model to analyse: a GGUF file, a Hugging Face folder or a short name");
    command->add_option("-o,--out", options->out, "Output folder for the atlas and the stage cache (created when missing)");
    command->add_option("-c,--config", options->config_path,
                        "JSON file of locate settings; keys not given keep their defaults, unknown keys are rejected")
        ->check(CLI::ExistingFile);
    command->add_option("--seed", options->seed, "Seed for every random choice (overrides the config's 'seed')");
    command->add_flag("--print-config", options->print_config,
                      "Print the effective config (defaults, then --config, then --seed) as JSON and exit");
    command->footer(config_keys_help());
    command->callback([options] { run_locate(*options); });
}

}  // namespace sz::cli
