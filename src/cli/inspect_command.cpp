// `subzero inspect MODEL`: what a model file contains: architecture and shape, chat template
// family, special tokens, tensor types (GGUF) and the hook point names.
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "model/loader.h"

namespace sz::cli {

namespace {

struct InspectOptions {
    std::string model;
    bool json = false;
    bool hooks = false;
};

struct TypeUsage {
    int64_t count = 0;
    uint64_t bytes = 0;
};

// Tensor count and bytes per storage type: ggml types from the GGUF directory, or the
// in-memory dtypes of the loaded parameters for other formats.
std::map<std::string, TypeUsage> tensor_types(const LoadedModel& loaded) {
    std::map<std::string, TypeUsage> usage;
    if (loaded.format == "gguf") {
        std::shared_ptr<gguf::File> file = gguf::File::open(loaded.path);
        for (const gguf::TensorInfo& tensor : file->tensors()) {
            TypeUsage& entry = usage[ggml_type_name(tensor.type)];
            entry.count += 1;
            entry.bytes += tensor.nbytes;
        }
        return usage;
    }
    loaded.model->for_each_parameter([&](const std::string&, torch::Tensor& tensor) {
        TypeUsage& entry = usage[std::string(c10::toString(tensor.scalar_type()))];
        entry.count += 1;
        entry.bytes += static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
    });
    return usage;
}

struct SpecialToken {
    const char* role;
    int32_t id;
};

std::vector<SpecialToken> special_tokens(const Vocab& vocab) {
    return {{"bos", vocab.bos_id}, {"eos", vocab.eos_id}, {"eot", vocab.eot_id},
            {"unk", vocab.unk_id}, {"pad", vocab.pad_id}};
}

std::vector<int32_t> end_of_generation_tokens(const Tokenizer& tokenizer) {
    std::vector<int32_t> ids;
    for (int32_t id = 0; id < tokenizer.vocab().size(); ++id) {
        if (tokenizer.is_end_of_generation(id)) {
            ids.push_back(id);
        }
    }
    return ids;
}

nlohmann::json config_json(const ModelConfig& c) {
    int64_t n_global = 0;
    for (AttentionKind kind : c.layer_kinds) {
        n_global += kind == AttentionKind::Global ? 1 : 0;
    }
    return {{"arch", c.arch},
            {"name", c.name},
            {"n_vocab", c.n_vocab},
            {"n_embd", c.n_embd},
            {"n_layer", c.n_layer},
            {"n_global_layers", n_global},
            {"n_head", c.n_head},
            {"n_head_kv", c.n_head_kv},
            {"n_embd_head", c.n_embd_head},
            {"n_ff", c.n_ff},
            {"n_ctx_train", c.n_ctx_train},
            {"n_swa", c.n_swa},
            {"f_norm_rms_eps", c.f_norm_rms_eps},
            {"f_rope_base_global", c.f_rope_base_global},
            {"f_rope_base_local", c.f_rope_base_local},
            {"f_rope_scale_global", c.f_rope_scale_global},
            {"f_attention_scale", c.f_attention_scale},
            {"f_final_logit_softcap", c.f_final_logit_softcap}};
}

int64_t parameter_count(CausalLM& model) {
    int64_t count = 0;
    model.for_each_parameter([&](const std::string&, torch::Tensor& tensor) { count += tensor.numel(); });
    return count;
}

void print_json(const InspectOptions& options, const LoadedModel& loaded) {
    const Vocab& vocab = loaded.tokenizer->vocab();
    nlohmann::json output;
    output["path"] = loaded.path;
    output["format"] = loaded.format;
    output["config"] = config_json(loaded.model->config());
    output["parameters"] = parameter_count(*loaded.model);
    output["chat_template"] = {{"family", loaded.chat_template->family()},
                               {"from_file", !vocab.chat_template.empty()}};
    output["vocab"] = {{"size", vocab.size()}, {"add_bos", vocab.add_bos}, {"add_eos", vocab.add_eos}};

    nlohmann::json specials = nlohmann::json::object();
    for (const SpecialToken& special : special_tokens(vocab)) {
        if (special.id >= 0) {
            specials[special.role] = {{"id", special.id}, {"piece", vocab.pieces[special.id]}};
        }
    }
    output["special_tokens"] = specials;
    nlohmann::json end_of_generation = nlohmann::json::array();
    for (int32_t id : end_of_generation_tokens(*loaded.tokenizer)) {
        end_of_generation.push_back({{"id", id}, {"piece", vocab.pieces[id]}});
    }
    output["end_of_generation"] = end_of_generation;

    nlohmann::json types = nlohmann::json::object();
    int64_t tensor_count = 0;
    for (const auto& [name, usage] : tensor_types(loaded)) {
        types[name] = {{"count", usage.count}, {"bytes", usage.bytes}};
        tensor_count += usage.count;
    }
    output["tensors"] = {{"count", tensor_count}, {"types", types}};

    const std::vector<std::string> hooks = loaded.model->hook_names();
    output["hook_count"] = hooks.size();
    if (options.hooks) {
        output["hook_names"] = hooks;
    }
    std::printf("%s\n", output.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

void print_text(const InspectOptions& options, const LoadedModel& loaded) {
    const Vocab& vocab = loaded.tokenizer->vocab();
    const ModelConfig& config = loaded.model->config();
    std::printf("path:          %s (%s)\n", loaded.path.c_str(), loaded.format.c_str());
    std::printf("model:         %s\n", config.summary().c_str());
    std::printf("parameters:    %.1f M\n", static_cast<double>(parameter_count(*loaded.model)) / 1e6);
    std::printf("trained ctx:   %lld tokens\n", static_cast<long long>(config.n_ctx_train));
    std::printf("chat template: %s (%s)\n", loaded.chat_template->family().c_str(),
                vocab.chat_template.empty() ? "no template in the file; the family's canonical one"
                                            : "the file's own Jinja template");
    std::printf("vocabulary:    %d tokens, add BOS %s, add EOS %s\n", vocab.size(), vocab.add_bos ? "yes" : "no",
                vocab.add_eos ? "yes" : "no");

    std::printf("special tokens:\n");
    for (const SpecialToken& special : special_tokens(vocab)) {
        if (special.id >= 0) {
            std::printf("  %-4s %7d  %s\n", special.role, special.id, vocab.pieces[special.id].c_str());
        }
    }
    std::printf("  end of generation:");
    for (int32_t id : end_of_generation_tokens(*loaded.tokenizer)) {
        std::printf(" %d %s", id, vocab.pieces[id].c_str());
    }
    std::printf("\n");

    std::printf("tensor types:\n");
    for (const auto& [name, usage] : tensor_types(loaded)) {
        std::printf("  %-6s %5lld tensors  %9.1f MiB\n", name.c_str(), static_cast<long long>(usage.count),
                    static_cast<double>(usage.bytes) / (1024.0 * 1024.0));
    }

    const std::vector<std::string> hooks = loaded.model->hook_names();
    if (!options.hooks) {
        std::printf("hook points:   %zu (list them with --hooks)\n", hooks.size());
        return;
    }
    std::printf("hook points:   %zu\n", hooks.size());
    for (const std::string& hook : hooks) {
        std::printf("  %s\n", hook.c_str());
    }
}

void run_inspect(const InspectOptions& options) {
    log_to_stderr();
    LoadedModel loaded = load_model(options.model);
    if (options.json) {
        print_json(options, loaded);
    } else {
        print_text(options, loaded);
    }
}

}  // namespace

void add_inspect_command(CLI::App& app) {
    auto options = std::make_shared<InspectOptions>();
    CLI::App* command = app.add_subcommand(
        "inspect", "Print a model's configuration, chat template family, special tokens, tensor types and hook points");
    command->add_option("MODEL", options->model,
                        "GGUF file, Hugging Face model folder, or installed model name (gemma3-270m)")
        ->required();
    command->add_flag("--json", options->json, "Print one JSON object instead of text");
    command->add_flag("--hooks", options->hooks, "List every hook point name");
    command->callback([options] { run_inspect(*options); });
}

}  // namespace sz::cli
