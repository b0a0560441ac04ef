// `subzero run CONFIG`: locate, train, export and eval from one config file into one run
// folder (src/pipeline/run_pipeline.h). Rerunning the same command resumes where it stopped.
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "pipeline/run_config.h"
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
    command->callback([options] { run_run(*options); });
}

}  // namespace sz::cli
