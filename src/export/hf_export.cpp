#include "export/hf_export.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "export/sentencepiece_writer.h"
#include "formats/safetensors.h"
#include "model/gemma3.h"

namespace sz {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The shortest decimal that reads back as the same float32, so 1e-6f is written as 1e-06
// rather than 9.999999974752427e-07.
double json_float(float value) { return std::stod(fmt::format("{}", value)); }

const char* torch_dtype_name(WeightType type) {
    switch (type) {
        case WeightType::F32: return "float32";
        case WeightType::F16: return "float16";
        case WeightType::BF16: return "bfloat16";
    }
    SZ_ASSERT(false);
}

torch::ScalarType scalar_type_of(WeightType type) {
    switch (type) {
        case WeightType::F32: return torch::kFloat32;
        case WeightType::F16: return torch::kHalf;
        case WeightType::BF16: return torch::kBFloat16;
    }
    SZ_ASSERT(false);
}

json token_text_or_null(const Vocab& vocab, int32_t id) {
    return id >= 0 ? json(vocab.pieces[id]) : json(nullptr);
}

json token_id_or_null(int32_t id) { return id >= 0 ? json(id) : json(nullptr); }

// HF names of the norm weights, which HF stores as g and subzero as the multiplier 1 + g.
std::set<std::string> gemma3_norm_names(int64_t n_layer) {
    std::set<std::string> names = {"model.norm.weight"};
    for (int64_t il = 0; il < n_layer; ++il) {
        for (const Gemma3TensorSpec& spec : gemma3_layer_tensors()) {
            if (spec.is_norm) {
                names.insert(fmt::format("model.layers.{}.{}", il, spec.hf_name));
            }
        }
    }
    return names;
}

// Layer i is global iff (i + 1) % 6 == 0: the pattern transformers assumes when a config has
// no layer_types, written as sliding_window_pattern for versions that predate layer_types.
bool follows_period_of_six(const ModelConfig& c) {
    for (int64_t il = 0; il < c.n_layer; ++il) {
        if (c.is_sliding(il) == ((il + 1) % 6 == 0)) {
            return false;
        }
    }
    return true;
}

std::map<std::string, torch::Tensor> hf_tensors(CausalLM& model, WeightType type) {
    const std::set<std::string> norms = gemma3_norm_names(model.config().n_layer);
    const torch::ScalarType dtype = scalar_type_of(type);
    std::map<std::string, torch::Tensor> tensors;
    model.for_each_parameter([&](const std::string& name, torch::Tensor& tensor) {
        torch::Tensor values = tensor.detach();
        if (norms.count(name) > 0) {
            values = values.to(torch::kFloat32) - 1.0f;
        }
        tensors[name] = values.to(dtype).contiguous();
    });
    return tensors;
}

void write_json(const fs::path& path, const json& document) {
    write_file_atomically(path.string(), document.dump(2) + "\n");
}

}  // namespace

void prepare_hf_output_folder(const std::string& dir) {
    if (dir.empty()) {
        fail("Hugging Face output folder: the path is empty");
    }
    if (fs::exists(dir)) {
        if (!fs::is_directory(dir)) {
            fail("Hugging Face output folder {}: the path is a file, not a folder", dir);
        }
        return;
    }
    fs::path parent = fs::path(dir).lexically_normal().parent_path();
    if (parent.empty()) {
        parent = ".";
    }
    if (!fs::is_directory(parent)) {
        fail("Hugging Face output folder {}: the folder '{}' does not exist; create it first", dir, parent.string());
    }
    std::error_code error;
    fs::create_directory(dir, error);
    if (error) {
        fail("Hugging Face output folder {}: cannot create it: {}", dir, error.message());
    }
}

json hf_config_json(const ModelConfig& c, const Vocab& vocab, const HfExportOptions& options) {
    std::vector<std::string> layer_types;
    for (int64_t il = 0; il < c.n_layer; ++il) {
        layer_types.push_back(c.is_sliding(il) ? "sliding_attention" : "full_attention");
    }
    // HF scales queries by query_pre_attn_scalar^(-1/2); integers stay integers in the JSON.
    const double scalar = 1.0 / (static_cast<double>(c.f_attention_scale) * c.f_attention_scale);
    const double rounded = std::round(scalar);
    const json query_pre_attn_scalar = std::abs(scalar - rounded) < 1e-3 * rounded ? json(static_cast<int64_t>(rounded))
                                                                                   : json(scalar);
    json rope_scaling = nullptr;
    if (c.f_rope_scale_global != 1.0f) {
        rope_scaling = {{"rope_type", "linear"}, {"factor", json_float(c.f_rope_scale_global)}};
    }

    json config = {
        {"architectures", {"Gemma3ForCausalLM"}},
        {"model_type", "gemma3_text"},
        {"_name_or_path", options.metadata.name.empty() ? c.name : options.metadata.name},
        {"vocab_size", c.n_vocab},
        {"hidden_size", c.n_embd},
        {"intermediate_size", c.n_ff},
        {"num_hidden_layers", c.n_layer},
        {"num_attention_heads", c.n_head},
        {"num_key_value_heads", c.n_head_kv},
        {"head_dim", c.n_embd_head},
        {"max_position_embeddings", c.n_ctx_train},
        {"rms_norm_eps", json_float(c.f_norm_rms_eps)},
        {"hidden_activation", "gelu_pytorch_tanh"},
        {"query_pre_attn_scalar", query_pre_attn_scalar},
        {"sliding_window", c.n_swa},
        {"layer_types", layer_types},
        {"rope_theta", json_float(c.f_rope_base_global)},
        {"rope_local_base_freq", json_float(c.f_rope_base_local)},
        {"rope_scaling", rope_scaling},
        {"final_logit_softcapping", c.f_final_logit_softcap != 0.0f ? json(json_float(c.f_final_logit_softcap)) : json(nullptr)},
        {"attn_logit_softcapping", nullptr},
        {"attention_bias", false},
        {"attention_dropout", 0.0},
        {"tie_word_embeddings", true},
        {"use_cache", true},
        {"initializer_range", 0.02},
        {"bos_token_id", token_id_or_null(vocab.bos_id)},
        {"eos_token_id", token_id_or_null(vocab.eos_id)},
        {"pad_token_id", token_id_or_null(vocab.pad_id)},
        {"torch_dtype", torch_dtype_name(options.type)},
    };
    if (follows_period_of_six(c)) {
        config["sliding_window_pattern"] = 6;
    }
    return config;
}

json hf_tokenizer_config_json(const Vocab& vocab, const ChatTemplate& chat_template, int64_t max_length) {
    // subzero's HF loader, like llama.cpp's converter, gives every token listed here the score
    // -1000 and the type CONTROL (special) or USER_DEFINED, and keeps its text as written.
    json added = json::object();
    for (int32_t id = 0; id < vocab.size(); ++id) {
        const TokenType type = vocab.types[id];
        if (type != TokenType::CONTROL && type != TokenType::USER_DEFINED) {
            continue;
        }
        added[std::to_string(id)] = {{"content", vocab.pieces[id]}, {"lstrip", false}, {"normalized", false},
                                     {"rstrip", false}, {"single_word", false},
                                     {"special", type == TokenType::CONTROL}};
    }
    return {
        {"add_bos_token", vocab.add_bos},
        {"add_eos_token", vocab.add_eos},
        {"bos_token", token_text_or_null(vocab, vocab.bos_id)},
        {"eos_token", token_text_or_null(vocab, vocab.eos_id)},
        {"unk_token", token_text_or_null(vocab, vocab.unk_id)},
        {"pad_token", token_text_or_null(vocab, vocab.pad_id)},
        {"added_tokens_decoder", added},
        {"chat_template", chat_template.jinja_source()},
        {"clean_up_tokenization_spaces", false},
        {"spaces_between_special_tokens", false},
        {"model_max_length", max_length},
        {"sp_model_kwargs", json::object()},
        {"tokenizer_class", "GemmaTokenizer"},
        {"use_default_system_prompt", false},
    };
}

json hf_generation_config_json(const Vocab& vocab, const SamplerParams& sampling) {
    // Generation stops at <eos> and at <end_of_turn>, as llama.cpp does by token text.
    std::vector<int32_t> end_ids;
    for (int32_t id : {vocab.eos_id, vocab.eot_id}) {
        if (id >= 0 && std::find(end_ids.begin(), end_ids.end(), id) == end_ids.end()) {
            end_ids.push_back(id);
        }
    }
    // TODO: transformers' repetition_penalty covers the whole context; there is no field for
    // llama.cpp's repeat_last_n window, so that part of the recommended sampling is lost here.
    return {
        {"bos_token_id", token_id_or_null(vocab.bos_id)},
        {"eos_token_id", end_ids},
        {"pad_token_id", token_id_or_null(vocab.pad_id)},
        {"do_sample", sampling.temp > 0.0f},
        {"temperature", json_float(sampling.temp)},
        {"top_p", json_float(sampling.top_p)},
        {"top_k", sampling.top_k},
        {"min_p", json_float(sampling.min_p)},
        {"repetition_penalty", json_float(sampling.repeat_penalty)},
    };
}

void export_hf_folder(CausalLM& model, const Vocab& vocab, const ChatTemplate& chat_template,
                      const HfExportOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    const ModelConfig& c = model.config();
    if (c.arch != "gemma3") {
        fail("{}: cannot export architecture '{}' as a Hugging Face folder; subzero's export supports gemma3",
             options.dir, c.arch);
    }
    vocab.validate(options.dir);
    options.metadata.sampling.validate();
    prepare_hf_output_folder(options.dir);
    const fs::path dir(options.dir);

    spdlog::info("writing Hugging Face folder {} ({} weights)", options.dir, weight_type_name(options.type));
    torch::NoGradGuard no_grad;
    std::map<std::string, torch::Tensor> tensors = hf_tensors(model, options.type);
    // TODO: the weights go into one unsharded file. transformers reads it at any size, but hubs
    // and some tools expect large models in shards with a model.safetensors.index.json.
    safetensors::write((dir / "model.safetensors").string(), tensors, {{"format", "pt"}});
    const size_t n_tensors = tensors.size();
    tensors.clear();

    write_file_atomically((dir / "tokenizer.model").string(), sentencepiece_model_proto(vocab));
    write_json(dir / "config.json", hf_config_json(c, vocab, options));
    write_json(dir / "tokenizer_config.json", hf_tokenizer_config_json(vocab, chat_template, c.n_ctx_train));
    write_json(dir / "special_tokens_map.json", {{"bos_token", token_text_or_null(vocab, vocab.bos_id)},
                                                 {"eos_token", token_text_or_null(vocab, vocab.eos_id)},
                                                 {"unk_token", token_text_or_null(vocab, vocab.unk_id)},
                                                 {"pad_token", token_text_or_null(vocab, vocab.pad_id)}});
    write_json(dir / "generation_config.json", hf_generation_config_json(vocab, options.metadata.sampling));

    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double mib = static_cast<double>(fs::file_size(dir / "model.safetensors")) / (1 << 20);
    spdlog::info("wrote {}: {} tensors ({:.1f} MiB) and tokenizer files in {:.1f} s", options.dir, n_tensors, mib,
                 seconds);
}

}  // namespace sz
