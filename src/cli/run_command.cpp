// `subzero run CONFIG`: locate, train, export and eval from one config file into one run
// folder (src/pipeline/run_pipeline.h). Rerunning the same command resumes where it stopped.
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "pipeline/run_config.h"
#include "pipeline/run_eval.h"
#include "pipeline/run_pipeline.h"

namespace sz::cli {

namespace {

struct RunCommandOptions {
    std::string config;
    std::string out;
    bool print_config = false;
};

void run_run(const RunCommandOptions& command) {
    RunConfig config = RunConfig::from_file(command.config);
    if (!command.out.empty()) {
        config.out = command.out;
    }
    if (command.print_config) {
        fmt::print("{}\n", config.to_json().dump(2));
        return;
    }
    log_to_stderr();
    RunResult result = run_pipeline(config);
    if (!result.finished) {
        fail("{}", result.summary);   // exit status 1, so scripts can tell a stopped run from a finished one
    }
    fmt::print("{}\n", result.summary);
}

// Help footer: every key with its default, generated from the code so that it cannot drift.
// The JSON it prints is a valid config once model and data are added.
std::string config_keys_help() {
    nlohmann::json keys = RunConfig{}.to_json();
    keys.erase("model");
    keys.erase("data");
    keys.erase("out");
    keys.erase("locate");
    return "Config keys. Required: \"model\" (GGUF file, Hugging Face folder or short name such as gemma3-270m)\n"
           "and \"data\" (JSONL file, or list of files, of conversations to train on). \"out\" defaults to\n"
           "runs/<config file name>. \"locate\" takes the keys of `subzero locate --help` (all default when\n"
           "left out), a file of them, or false for no atlas. \"heldout\" \"\" means data/persona/heldout.jsonl.\n"
           "The other keys and their defaults (configs/README.md explains each):\n" +
           keys.dump(2);
}

}  // namespace

void add_run_command(CLI::App& app) {
    auto options = std::make_shared<RunCommandOptions>();
    CLI::App* command = app.add_subcommand(
        "run",
        "The whole method from one config: locate the bouncer directions, train a LoRA adapter on the person's "
        "conversations with the atlas applied, export a merged GGUF (plus a PEFT adapter), and evaluate base against "
        "tuned. Everything goes into one run folder; rerunning the same command resumes where it stopped. "
        "configs/wren.json is a documented example");
    command->add_option("CONFIG", options->config, "JSON run config (keys: model, data, heldout, out, seed, locate, "
                                                   "train, export, eval; see configs/README.md)")
        ->required()
        ->check(CLI::ExistingFile);
    command->add_option("-o,--out", options->out, "Run folder (overrides the config's 'out')");
    command->add_flag("--print-config", options->print_config,
                      "Print the complete config, defaults filled in, and exit without running");
    command->footer(config_keys_help());
    command->callback([options] { run_run(*options); });
}

}  // namespace sz::cli
