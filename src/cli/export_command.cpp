// `subzero export MODEL --out FILE.gguf`: writes the model as a GGUF that llama.cpp, Ollama
// and Docker Model Runner load, and with --hf-dir also as a Hugging Face folder. With --atlas
// and --adapter the atlas surgery and the trained LoRA adapter are merged into the weights
// first, and --peft-out writes both as one PEFT adapter for the unmodified base.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "export/export.h"
#include "export/merge.h"
#include "model/loader.h"

namespace sz::cli {

namespace {

struct ExportCommandOptions {
    std::string model;
    std::string out;
    std::string outtype = "f16";
    std::string hf_dir;
    std::string hf_outtype = "bf16";
    std::string name;
    std::string atlas;
    std::string adapter;
    std::string peft_out;
};

void run_export(const ExportCommandOptions& command) {
    ExportOptions options;
    options.gguf_path = command.out;
    options.gguf_type = parse_weight_type(command.outtype);
    options.hf_dir = command.hf_dir;
    options.hf_type = parse_weight_type(command.hf_outtype);
    options.metadata.name = command.name;
    if (options.gguf_path.empty() && options.hf_dir.empty() && command.peft_out.empty()) {
        fail("export needs --out FILE.gguf, --hf-dir DIR, --peft-out DIR, or several of them");
    }
    if (!command.peft_out.empty() && command.atlas.empty() && command.adapter.empty()) {
        fail("--peft-out needs --atlas, --adapter or both: without them there is no change to write");
    }
    // Check the output locations before loading, which takes seconds for a large model.
    if (!options.gguf_path.empty()) {
        check_parent_folder(options.gguf_path, "--out");
    }
    if (!options.hf_dir.empty() && !std::filesystem::exists(options.hf_dir)) {
        check_parent_folder(options.hf_dir, "--hf-dir");
    }
    if (!command.peft_out.empty() && !std::filesystem::exists(command.peft_out)) {
        check_parent_folder(command.peft_out, "--peft-out");
    }

    log_to_stderr();
    const auto start = std::chrono::steady_clock::now();
    spdlog::info("loading {}", command.model);
    LoadedModel loaded = load_model(command.model);
    Tuning tuning = read_tuning(loaded, {command.atlas, command.adapter});
    if (!command.peft_out.empty()) {
        write_combined_peft_adapter(loaded, tuning, command.peft_out);
    }
    if (tuning.atlas || tuning.adapter) {
        merge_tuning(loaded, tuning);
        std::string merged = "the atlas surgery and the adapter";
        if (!tuning.adapter) {
            merged = "the atlas surgery";
        } else if (!tuning.atlas) {
            merged = "the adapter";
        }
        spdlog::info("merged {} into the weights", merged);
    }
    if (!options.gguf_path.empty() || !options.hf_dir.empty()) {
        export_model(loaded, options);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("export finished in {:.1f} s", seconds);
}

}  // namespace

void add_export_command(CLI::App& app) {
    auto options = std::make_shared<ExportCommandOptions>();
    CLI::App* command = app.add_subcommand(
        "export",
        "Write a model as a GGUF file for llama.cpp, Ollama and Docker Model Runner (architecture gemma3, with the "
        "chat template and the recommended sampling), and optionally as a Hugging Face folder. Existing files are "
        "replaced atomically");
    command->add_option("MODEL", options->model, "Model to export: a GGUF file, a Hugging Face folder or a short name")
        ->required();
    command->add_option("-o,--out", options->out, "GGUF file to write; its folder must exist");
    command->add_option("--outtype", options->outtype, "Storage type of the GGUF weight matrices; norms are always f32")
        ->check(CLI::IsMember({"f16", "bf16", "f32"}))
        ->capture_default_str();
    command->add_option("--hf-dir", options->hf_dir,
                        "Also write a Hugging Face folder (config.json, model.safetensors, tokenizer files); created "
                        "when missing, but its parent folder must exist");
    command->add_option("--hf-outtype", options->hf_outtype, "Storage type of the Hugging Face weights")
        ->check(CLI::IsMember({"bf16", "f32"}))
        ->capture_default_str();
    command->add_option("--atlas", options->atlas,
                        "Atlas folder of `subzero locate`: apply its surgery before export (must match MODEL)");
    command->add_option("--adapter", options->adapter,
                        "LoRA adapter folder (PEFT layout, e.g. a `subzero train` run's adapter/) to merge");
    command->add_option("--peft-out", options->peft_out,
                        "Also write the atlas surgery and the adapter as one PEFT adapter for the unmodified MODEL");
    command->add_option("--name", options->name, "Model name written into the files (default: the source model's name)");
    command->callback([options] { run_export(*options); });
}

}  // namespace sz::cli
