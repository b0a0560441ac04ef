// `subzero train MODEL --data FILE --out DIR`: trains a LoRA adapter on conversation data,
// optionally after atlas surgery and with the atlas subspace locked. The work itself is
// run_training (src/train/train_run.h); this file maps flags onto its options.
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "train/schedule/scheduler.h"
#include "train/train_run.h"
#include "train/trainer.h"

namespace sz::cli {

namespace {

// Flags that override a config field; unset ones leave the field from --config or the default.
struct TrainCommandOptions {
    std::string model;
    std::vector<std::string> data;
    std::string out;
    std::string atlas;
    std::string config_path;
    bool resume = false;
    bool flip_roles = false;
    bool filter_disclaimers = false;
    std::optional<std::string> system_prompt;
    std::optional<uint64_t> seed;
    std::optional<int64_t> max_steps;
    std::optional<double> heldout_fraction;
    std::optional<int64_t> rank;
    std::optional<double> alpha;
    std::optional<double> dropout;
    std::optional<double> learning_rate;
    std::optional<double> weight_decay;
    std::optional<int64_t> batch_size;
    std::optional<int64_t> gradient_accumulation_steps;
    std::optional<std::string> scheduler;
    std::optional<int64_t> eval_every;
    std::optional<int64_t> checkpoint_every;
    std::optional<int64_t> log_every;
    std::optional<int64_t> max_tokens;
};

// CLI11's PositiveNumber prints the whole range of a double in its message; this one names the
// value only.
const CLI::Validator kPositive(
    [](std::string& value) -> std::string {
        try {
            if (std::stod(value) > 0.0) {
                return "";
            }
        } catch (const std::exception&) {
            return "expected a number greater than 0, got '" + value + "'";
        }
        return "expected a number greater than 0, got " + value;
    },
    "POSITIVE");

template <typename T>
void override_field(T& field, const std::optional<T>& flag) {
    if (flag) {
        field = *flag;
    }
}

void run_train(const TrainCommandOptions& command) {
    TrainRunOptions options;
    options.model = command.model;
    options.data = command.data;
    options.output_dir = command.out;
    options.atlas_dir = command.atlas;
    options.resume = command.resume;

    // With --resume and no --config, the run continues with the config it saved.
    const std::string saved_config = (std::filesystem::path(command.out) / "config.json").string();
    if (!command.config_path.empty()) {
        options.config = TrainRunConfig::from_file(command.config_path);
        options.config_source = command.config_path;
    } else if (command.resume && std::filesystem::exists(saved_config)) {
        nlohmann::json saved = nlohmann::json::parse(std::ifstream(saved_config), nullptr, /*allow_exceptions=*/false);
        if (saved.is_discarded() || !saved.is_object()) {
            fail("{}: invalid JSON; pass --config FILE to resume with explicit settings", saved_config);
        }
        // The saved file also records model, data and atlas, which the command line sets.
        saved.erase("model");
        saved.erase("data");
        saved.erase("atlas");
        options.config = TrainRunConfig::from_json(saved, saved_config);
        options.config_source = saved_config;
    }

    TrainRunConfig& config = options.config;
    if (command.flip_roles) {
        config.flip_roles = true;
    }
    if (command.filter_disclaimers) {
        config.filter_disclaimers = true;
    }
    override_field(config.system_prompt, command.system_prompt);
    override_field(config.seed, command.seed);
    override_field(config.max_steps, command.max_steps);
    override_field(config.heldout_fraction, command.heldout_fraction);
    override_field(config.rank, command.rank);
    override_field(config.alpha, command.alpha);
    override_field(config.dropout, command.dropout);
    override_field(config.learning_rate, command.learning_rate);
    override_field(config.weight_decay, command.weight_decay);
    override_field(config.batch_size, command.batch_size);
    override_field(config.gradient_accumulation_steps, command.gradient_accumulation_steps);
    override_field(config.scheduler, command.scheduler);
    override_field(config.eval_every, command.eval_every);
    override_field(config.checkpoint_every, command.checkpoint_every);
    override_field(config.log_every, command.log_every);
    override_field(config.max_tokens, command.max_tokens);
    if (options.config_source == "train config") {
        options.config_source = "train flags";
    }

    log_to_stderr();
    install_stop_signal_handlers();
    TrainRunResult result = run_training(options);
    if (result.stopped) {
        spdlog::info("stopped at step {}; continue with the same command plus --resume", result.steps);
        return;
    }
    std::string final_loss;
    if (!result.history.empty()) {
        final_loss = fmt::format(", last training loss {:.4f}", result.history.back().loss);
    }
    if (!result.heldout.empty()) {
        final_loss += fmt::format(", held-out loss {:.4f}", result.heldout.back().loss);
    }
    spdlog::info("training finished after {} steps{}; outputs in {}", result.steps, final_loss, command.out);
}

}  // namespace

void add_train_command(CLI::App& app) {
    auto options = std::make_shared<TrainCommandOptions>();
    const TrainRunConfig defaults;
    CLI::App* command = app.add_subcommand(
        "train",
        "Train a LoRA adapter on JSONL conversations (OpenAI or ShareGPT layout). With --atlas, first attenuate the "
        "atlas directions in the base weights and keep the adapter out of the locked subspace. Writes config.json, "
        "metrics.jsonl, checkpoints/, adapter/ (PEFT layout) and, with --atlas, lock.json into --out. SIGINT or "
        "SIGTERM stops after the current step with a checkpoint; --resume continues from it");
    command->add_option("MODEL", options->model, "Base model: a GGUF file, a Hugging Face folder or a short name")
        ->required();
    command->add_option("-d,--data", options->data, "JSONL conversation file; repeat for several files")
        ->required()
        ->check(CLI::ExistingFile);
    command->add_option("-o,--out", options->out, "Output folder (created when missing)")->required();
    command->add_option("--atlas", options->atlas, "Atlas folder written by `subzero locate` for this model")
        ->check(CLI::ExistingDirectory);
    command->add_option("-c,--config", options->config_path,
                        "JSON file of training settings (keys as in the config.json a run writes); flags override it, "
                        "unknown keys are rejected")
        ->check(CLI::ExistingFile);
    command->add_flag("--resume", options->resume,
                      "Continue from the latest checkpoint in --out, with its config.json unless --config is given");
    command->add_flag("--flip-roles", options->flip_roles,
                      "Swap user and assistant, for logs in which the author was the user talking to an AI");
    command->add_flag("--filter-disclaimers", options->filter_disclaimers,
                      "Drop conversations whose assistant turns contain AI disclaimers");
    command->add_option("--system", options->system_prompt, "System message for every conversation, replacing the file's");
    command->add_option("--seed", options->seed,
                        fmt::format("Seed for LoRA initialisation, dropout, data order and the held-out split (default {})",
                                    defaults.seed));
    command->add_option("--max-steps", options->max_steps,
                        fmt::format("Optimizer steps to train (default {})", defaults.max_steps))
        ->check(kPositive);
    command->add_option("--heldout-fraction", options->heldout_fraction,
                        fmt::format("Share of conversations held out for evaluation, in [0, 1) (default {})",
                                    defaults.heldout_fraction));
    command->add_option("--rank", options->rank, fmt::format("LoRA rank (default {})", defaults.rank))
        ->check(kPositive);
    command->add_option("--alpha", options->alpha,
                        fmt::format("LoRA alpha; the update is scaled by alpha / rank (default {})", defaults.alpha));
    command->add_option("--dropout", options->dropout,
                        fmt::format("LoRA dropout probability on the adapter input (default {})", defaults.dropout));
    command->add_option("--lr", options->learning_rate,
                        fmt::format("Peak learning rate of AdamW (default {})", defaults.learning_rate));
    command->add_option("--weight-decay", options->weight_decay,
                        fmt::format("AdamW decoupled weight decay (default {})", defaults.weight_decay));
    command->add_option("-b,--batch-size", options->batch_size,
                        fmt::format("Conversations per micro-batch (default {})", defaults.batch_size))
        ->check(kPositive);
    command->add_option("--grad-accum", options->gradient_accumulation_steps,
                        fmt::format("Micro-batches per optimizer step (default {})",
                                    defaults.gradient_accumulation_steps))
        ->check(kPositive);
    command->add_option("--scheduler", options->scheduler,
                        fmt::format("Learning-rate scheduler (default {})", defaults.scheduler))
        ->check(CLI::IsMember(scheduler_names()));
    command->add_option("--eval-every", options->eval_every,
                        fmt::format("Optimizer steps between held-out evaluations; 0 evaluates only at the end "
                                    "(default {})",
                                    defaults.eval_every));
    command->add_option("--checkpoint-every", options->checkpoint_every,
                        fmt::format("Optimizer steps between checkpoints; 0 writes one only at the end or on a stop "
                                    "(default {})",
                                    defaults.checkpoint_every));
    command->add_option("--log-every", options->log_every,
                        fmt::format("Optimizer steps between progress lines (default {})", defaults.log_every))
        ->check(kPositive);
    command->add_option("--max-tokens", options->max_tokens,
                        fmt::format("Context length in tokens; a longer conversation is an error (default {})",
                                    defaults.max_tokens));
    command->callback([options] { run_train(*options); });
}

}  // namespace sz::cli
