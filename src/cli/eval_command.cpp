// `subzero eval --base MODEL --tuned MODEL`: compares a tuned model with its base on held-out
// prompts and prints the metric table; eval.json and replies.md go to --out.
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "core/input_path.h"
#include "eval/eval_report.h"
#include "eval/eval_run.h"

namespace sz::cli {

void add_eval_command(CLI::App& app) {
    auto config = std::make_shared<EvalConfig>();
    const EvalConfig defaults;
    CLI::App* command =
        app.add_subcommand("eval", "Compare a tuned model with its base: cadence markers, markdown, reply length, "
                                   "letter case, held-out persona loss and KL divergence on neutral prompts");
    command->add_option("--base", config->base, "Base model: a GGUF file, a Hugging Face folder or a short name")
        ->required();
    command->add_option("--tuned", config->tuned,
                        "Tuned model (same forms as --base); defaults to --base when --adapter is given");
    // NOTE: an adapter from `subzero train --atlas` was trained on surgically edited weights,
    // and this option applies it to the unedited --tuned (or --base) model.
    command->add_option("--adapter", config->adapter,
                        "PEFT LoRA adapter folder applied to the tuned model (without any atlas edit)");

    command->add_option("--prompts", config->prompts,
                        "JSONL of prompts ({\"prompt\": ...} or {\"messages\": [...]}); default: the first user "
                        "message of each --heldout conversation");
    command->add_option("--heldout", config->heldout,
                        fmt::format("Held-out persona conversations (JSONL) for the persona loss (default {})",
                                    defaults.heldout));
    command->add_option("--neutral", config->neutral,
                        fmt::format("Neutral prompts (JSONL) for the KL divergence (default {})", defaults.neutral));
    command->add_option("--markers", config->markers,
                        fmt::format("Cadence markers, one per line; \"re:\" starts a regex (default {})",
                                    defaults.markers));

    command->add_option("--limit", config->limit,
                        fmt::format("Prompts answered per model, 0 for all (default {})", defaults.limit));
    command->add_option("-n,--max-new-tokens", config->max_new_tokens,
                        fmt::format("Maximum tokens per reply (default {})", defaults.max_new_tokens));
    command->add_option("-b,--batch-size", config->batch_size,
                        fmt::format("Prompts decoded together (default {})", defaults.batch_size));

    command->add_option("--temp", config->sampling.temp, "Sampling temperature; 0 is greedy (default 0)");
    command->add_option("--min-p", config->sampling.min_p,
                        fmt::format("Min-p filter when sampling (default {})", defaults.sampling.min_p));
    command->add_option("--top-p", config->sampling.top_p,
                        fmt::format("Top-p filter when sampling (default {})", defaults.sampling.top_p));
    command->add_option("--top-k", config->sampling.top_k,
                        fmt::format("Top-k filter, 0 for off (default {})", defaults.sampling.top_k));
    command->add_option("--repeat-penalty", config->sampling.repeat_penalty,
                        fmt::format("Repetition penalty, 1 for off (default {})", defaults.sampling.repeat_penalty));
    command->add_option("--seed", config->sampling.seed,
                        "Seed of prompt 0 when sampling; prompt i uses seed + i (default 0)");

    command->add_option("-o,--out", config->out_dir,
                        fmt::format("Folder for eval.json and replies.md, created when missing (default {})",
                                    defaults.out_dir));

    command->callback([config, defaults]() {
        // The default data files ship in the checkout, so they are found from any directory.
        auto resolve_default = [](std::string& value, const std::string& default_value, const char* flag) {
            if (value == default_value) {
                value = resolve_input_path(value, "", flag);
            }
        };
        resolve_default(config->heldout, defaults.heldout, "--heldout");
        resolve_default(config->neutral, defaults.neutral, "--neutral");
        resolve_default(config->markers, defaults.markers, "--markers");
        log_to_stderr();
        const EvalReport report = run_eval(*config);
        std::fputs(metrics_table(report).c_str(), stdout);
        std::printf("wrote %s/eval.json and %s/replies.md\n", config->out_dir.c_str(), config->out_dir.c_str());
        std::fflush(stdout);
    });
}

}  // namespace sz::cli
