#include "export/gguf_export.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "formats/gguf_writer.h"
#include "model/gemma3.h"

namespace sz {

namespace {

// llama.cpp marks layer il as sliding-window iff il % 6 < 5 unless the file names another
// period, and older builds ignore that key, so only this pattern exports faithfully.
constexpr int64_t kGemma3LayerPeriod = 6;

struct TensorTarget {
    std::string gguf_name;
    bool is_norm = false;
};

// HF parameter name -> GGUF tensor name, built from gemma3_layer_tensors() so that loading
// and export share one name table.
std::map<std::string, TensorTarget> gemma3_tensor_targets(int64_t n_layer) {
    std::map<std::string, TensorTarget> targets;
    targets["model.embed_tokens.weight"] = {"token_embd.weight", false};
    targets["model.norm.weight"] = {"output_norm.weight", true};
    for (int64_t il = 0; il < n_layer; ++il) {
        for (const Gemma3TensorSpec& spec : gemma3_layer_tensors()) {
            targets[fmt::format("model.layers.{}.{}", il, spec.hf_name)] = {fmt::format("blk.{}.{}", il, spec.gguf_name),
                                                                           spec.is_norm};
        }
    }
    return targets;
}

// Rejects models whose behaviour llama.cpp would not reproduce from the gemma3 keys.
void check_llama_cpp_compatible(const ModelConfig& c, const std::string& path) {
    if (c.arch != "gemma3") {
        fail("{}: cannot export architecture '{}' to GGUF; subzero's GGUF export supports gemma3", path, c.arch);
    }
    if (c.n_swa <= 0) {
        fail("{}: the model has no sliding window; llama.cpp's gemma3 graph needs "
             "gemma3.attention.sliding_window > 0", path);
    }
    for (int64_t il = 0; il < c.n_layer; ++il) {
        const bool global = (il + 1) % kGemma3LayerPeriod == 0;
        if (c.is_sliding(il) == global) {
            fail("{}: layer {} is {} but llama.cpp's gemma3 layout makes every {}th layer global and the rest "
                 "sliding-window; this layer pattern cannot be exported to GGUF",
                 path, il, global ? "sliding-window" : "global", kGemma3LayerPeriod);
        }
    }
    // llama.cpp does not read query_pre_attn_scalar; it derives the scale from the shape.
    const float llama_scale = c.n_layer == 62 ? 1.0f / std::sqrt(static_cast<float>(c.n_embd) / c.n_head)
                                              : 1.0f / std::sqrt(static_cast<float>(c.n_embd_head));
    if (std::abs(llama_scale - c.f_attention_scale) > 1e-6f * llama_scale) {
        fail("{}: the attention scale {} differs from the {} that llama.cpp derives for {} layers of head size {}; "
             "the model cannot be exported to GGUF faithfully",
             path, c.f_attention_scale, llama_scale, c.n_layer, c.n_embd_head);
    }
    if (c.f_final_logit_softcap != 0.0f) {
        fail("{}: the model soft-caps its logits at {}, which llama.cpp's sliding-window gemma3 graph does not do; "
             "the model cannot be exported to GGUF faithfully", path, c.f_final_logit_softcap);
    }
}

void set_general_keys(gguf::Writer& writer, const ModelConfig& c, const GgufExportOptions& options) {
    writer.set_string("general.architecture", "gemma3");
    writer.set_string("general.type", "model");
    writer.set_string("general.name", options.metadata.name.empty() ? c.name : options.metadata.name);
    for (const auto& [key, value] : options.extra_metadata) {
        writer.set_value(key, value);
    }
    writer.set_u32("general.file_type", gguf_file_type(options.type));
    writer.set_u32("general.quantization_version", 2);
}

void set_hyperparameters(gguf::Writer& writer, const ModelConfig& c) {
    auto u32 = [](int64_t value) { return static_cast<uint32_t>(value); };
    writer.set_u32("gemma3.context_length", u32(c.n_ctx_train));
    writer.set_u32("gemma3.embedding_length", u32(c.n_embd));
    writer.set_u32("gemma3.block_count", u32(c.n_layer));
    writer.set_u32("gemma3.feed_forward_length", u32(c.n_ff));
    writer.set_u32("gemma3.attention.head_count", u32(c.n_head));
    writer.set_u32("gemma3.attention.head_count_kv", u32(c.n_head_kv));
    writer.set_u32("gemma3.attention.key_length", u32(c.n_embd_head));
    writer.set_u32("gemma3.attention.value_length", u32(c.n_embd_head));
    writer.set_f32("gemma3.attention.layer_norm_rms_epsilon", c.f_norm_rms_eps);
    writer.set_f32("gemma3.rope.freq_base", c.f_rope_base_global);
    writer.set_f32("gemma3.rope.freq_base_swa", c.f_rope_base_local);
    writer.set_u32("gemma3.attention.sliding_window", u32(c.n_swa));
    if (c.f_rope_scale_global != 1.0f) {
        writer.set_string("gemma3.rope.scaling.type", "linear");
        writer.set_f32("gemma3.rope.scaling.factor", c.f_rope_scale_global);
    }
}

// Value types follow gguf-py 0.19.0 (add_sampling_*): int32 for top_k and penalty_last_n,
// float32 for the rest.
void set_sampling_keys(gguf::Writer& writer, const ExportMetadata& metadata) {
    const SamplerParams& s = metadata.sampling;
    writer.set_i32("general.sampling.top_k", s.top_k);
    writer.set_f32("general.sampling.top_p", s.top_p);
    writer.set_f32("general.sampling.min_p", s.min_p);
    writer.set_f32("general.sampling.temp", s.temp);
    writer.set_i32("general.sampling.penalty_last_n", s.repeat_last_n);
    writer.set_f32("general.sampling.penalty_repeat", s.repeat_penalty);
}

void set_provenance_keys(gguf::Writer& writer, const ExportMetadata& metadata) {
    writer.set_string("subzero.version", kSubzeroVersion);
    if (!metadata.source.empty()) {
        writer.set_string("subzero.source", metadata.source);
    }
    // GGUF has no standard key for the context a model is meant to be used with; llama.cpp
    // ignores this one.
    writer.set_u32("subzero.recommended_context_length", static_cast<uint32_t>(metadata.recommended_context_length));
}

void set_tokenizer_keys(gguf::Writer& writer, const Vocab& vocab, const ChatTemplate& chat_template) {
    writer.set_string("tokenizer.ggml.model", "llama");
    writer.set_string("tokenizer.ggml.pre", "default");
    writer.set_string_array("tokenizer.ggml.tokens", vocab.pieces);
    writer.set_f32_array("tokenizer.ggml.scores", vocab.scores);
    std::vector<int32_t> types;
    types.reserve(vocab.types.size());
    for (TokenType type : vocab.types) {
        types.push_back(static_cast<int32_t>(type));
    }
    writer.set_i32_array("tokenizer.ggml.token_type", types);

    // llama.cpp's SPM defaults (bos 1, eos 2, unk 0) are Llama's, so every id the vocabulary
    // has is written explicitly.
    const std::pair<const char*, int32_t> ids[] = {
        {"tokenizer.ggml.bos_token_id", vocab.bos_id},     {"tokenizer.ggml.eos_token_id", vocab.eos_id},
        {"tokenizer.ggml.unknown_token_id", vocab.unk_id}, {"tokenizer.ggml.padding_token_id", vocab.pad_id},
        {"tokenizer.ggml.eot_token_id", vocab.eot_id},
    };
    for (const auto& [key, id] : ids) {
        if (id >= 0) {
            writer.set_u32(key, static_cast<uint32_t>(id));
        }
    }
    writer.set_bool("tokenizer.ggml.add_bos_token", vocab.add_bos);
    writer.set_bool("tokenizer.ggml.add_eos_token", vocab.add_eos);
    writer.set_bool("tokenizer.ggml.add_space_prefix", vocab.add_space_prefix);
    writer.set_string("tokenizer.chat_template", chat_template.jinja_source());
}

// Adds every parameter as a GGUF tensor: norms as F32, matrices as `matrix_type`, and the
// embedding cut to the vocabulary size (llama.cpp requires one row per token).
void add_tensors(gguf::Writer& writer, CausalLM& model, int64_t n_tokens, GgmlType matrix_type,
                 const std::string& path) {
    const ModelConfig& c = model.config();
    std::map<std::string, TensorTarget> targets = gemma3_tensor_targets(c.n_layer);
    size_t added = 0;
    model.for_each_parameter([&](const std::string& hf_name, torch::Tensor& tensor) {
        auto it = targets.find(hf_name);
        SZ_ASSERT(it != targets.end());
        const TensorTarget& target = it->second;
        torch::Tensor values = tensor;
        if (target.gguf_name == "token_embd.weight") {
            if (values.size(0) < n_tokens) {
                fail("{}: the embedding has {} rows but the vocabulary has {} tokens; llama.cpp needs one row per "
                     "token", path, values.size(0), n_tokens);
            }
            if (values.size(0) > n_tokens) {
                spdlog::info("dropping {} embedding rows beyond the {} vocabulary tokens", values.size(0) - n_tokens,
                             n_tokens);
                values = values.narrow(0, 0, n_tokens);
            }
        }
        writer.add_tensor(target.gguf_name, values, target.is_norm ? GgmlType::F32 : matrix_type);
        ++added;
    });
    SZ_ASSERT(added == targets.size());
}

}  // namespace

uint32_t gguf_file_type(WeightType type) {
    switch (type) {
        case WeightType::F32: return 0;   // LLAMA_FTYPE_ALL_F32
        case WeightType::F16: return 1;   // LLAMA_FTYPE_MOSTLY_F16
        case WeightType::BF16: return 32; // LLAMA_FTYPE_MOSTLY_BF16
    }
    SZ_ASSERT(false);
}

GgmlType ggml_type_of(WeightType type) {
    switch (type) {
        case WeightType::F32: return GgmlType::F32;
        case WeightType::F16: return GgmlType::F16;
        case WeightType::BF16: return GgmlType::BF16;
    }
    SZ_ASSERT(false);
}

void export_gguf(CausalLM& model, const Vocab& vocab, const ChatTemplate& chat_template,
                 const GgufExportOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    check_parent_folder(options.path, "GGUF output");
    const ModelConfig& c = model.config();
    check_llama_cpp_compatible(c, options.path);
    vocab.validate(options.path);
    options.metadata.sampling.validate();

    gguf::Writer writer;
    set_general_keys(writer, c, options);
    set_provenance_keys(writer, options.metadata);
    set_hyperparameters(writer, c);
    set_sampling_keys(writer, options.metadata);
    set_tokenizer_keys(writer, vocab, chat_template);

    // TODO: gguf::Writer keeps every encoded tensor in memory until write(), so an f16 export
    // needs about 2 bytes per parameter on top of the loaded model (8 GiB more for a 4B model).
    spdlog::info("encoding {} layers as {} (norms as f32)", c.n_layer, weight_type_name(options.type));
    torch::NoGradGuard no_grad;
    add_tensors(writer, model, vocab.size(), ggml_type_of(options.type), options.path);

    spdlog::info("writing {}: {} tensors, {} metadata keys", options.path, writer.tensor_count(),
                 writer.metadata_count());
    writer.write(options.path);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double mib = static_cast<double>(std::filesystem::file_size(options.path)) / (1 << 20);
    spdlog::info("wrote {} ({:.1f} MiB, {}) in {:.1f} s", options.path, mib, weight_type_name(options.type), seconds);
}

}  // namespace sz
