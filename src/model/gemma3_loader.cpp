// Gemma 3 hyperparameters and weights from GGUF files and from Hugging Face folders.
#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_tensor.h"
#include "formats/safetensors.h"
#include "model/gemma3.h"

namespace sz {

namespace {

// Layer il is global iff (il + 1) % period == 0; Gemma 3 uses period 6 (5 local : 1 global).
std::vector<AttentionKind> layer_kinds_from_period(int64_t n_layer, int64_t period) {
    std::vector<AttentionKind> kinds;
    for (int64_t il = 0; il < n_layer; ++il) {
        bool global = period <= 1 || (il + 1) % period == 0;
        kinds.push_back(global ? AttentionKind::Global : AttentionKind::SlidingWindow);
    }
    return kinds;
}

// F16 and BF16 tensors keep their 16-bit storage (decoding is bandwidth-bound and the values
// are exact); every other type is dequantized to float32.
torch::Tensor load_weight(const gguf::TensorInfo& info) {
    if (info.type == GgmlType::F16 || info.type == GgmlType::BF16) {
        auto dtype = info.type == GgmlType::F16 ? torch::kHalf : torch::kBFloat16;
        return torch::from_blob(const_cast<uint8_t*>(info.data), info.torch_shape(), dtype).clone();
    }
    return gguf::load_tensor_f32(info);
}

void check_shape(const std::string& source, const std::string& name, const torch::Tensor& tensor,
                 std::vector<int64_t> expected) {
    if (tensor.sizes() != c10::IntArrayRef(expected)) {
        fail("{}: tensor '{}' has shape [{}] but the config implies [{}]", source, name, fmt::join(tensor.sizes(), ", "),
             fmt::join(expected, ", "));
    }
}

// Expected PyTorch shape of a per-layer tensor, by its HF name.
std::vector<int64_t> layer_tensor_shape(const ModelConfig& c, const std::string& hf_name) {
    const int64_t q_out = c.n_head * c.n_embd_head;
    const int64_t kv_out = c.n_head_kv * c.n_embd_head;
    if (hf_name == "self_attn.q_proj.weight") return {q_out, c.n_embd};
    if (hf_name == "self_attn.k_proj.weight" || hf_name == "self_attn.v_proj.weight") return {kv_out, c.n_embd};
    if (hf_name == "self_attn.o_proj.weight") return {c.n_embd, q_out};
    if (hf_name == "self_attn.q_norm.weight" || hf_name == "self_attn.k_norm.weight") return {c.n_embd_head};
    if (hf_name == "mlp.gate_proj.weight" || hf_name == "mlp.up_proj.weight") return {c.n_ff, c.n_embd};
    if (hf_name == "mlp.down_proj.weight") return {c.n_embd, c.n_ff};
    return {c.n_embd};  // the four block norms
}

ModelConfig gemma3_config_from_gguf(const gguf::File& file) {
    const std::string arch = file.get_string("general.architecture");
    auto key = [&](const char* suffix) { return arch + "." + suffix; };
    ModelConfig c;
    c.arch = arch;
    c.name = file.get_string_or("general.name", "gemma3");
    c.n_embd = static_cast<int64_t>(file.get_uint(key("embedding_length")));
    c.n_layer = static_cast<int64_t>(file.get_uint(key("block_count")));
    c.n_head = static_cast<int64_t>(file.get_uint(key("attention.head_count")));
    // llama.cpp's fallbacks for these two (head_count, n_embd / n_head) are wrong for Gemma,
    // so they are required here rather than guessed.
    c.n_head_kv = static_cast<int64_t>(file.get_uint(key("attention.head_count_kv")));
    c.n_embd_head = static_cast<int64_t>(file.get_uint(key("attention.key_length")));
    const int64_t value_length = static_cast<int64_t>(file.get_uint_or(key("attention.value_length"), c.n_embd_head));
    if (value_length != c.n_embd_head) {
        fail("{}: {} = {} differs from key_length {}; subzero supports equal key and value head sizes", file.path(),
             key("attention.value_length"), value_length, c.n_embd_head);
    }
    c.n_ff = static_cast<int64_t>(file.get_uint(key("feed_forward_length")));
    c.n_ctx_train = static_cast<int64_t>(file.get_uint_or(key("context_length"), 32768));
    c.f_norm_rms_eps = static_cast<float>(file.get_float(key("attention.layer_norm_rms_epsilon")));
    c.f_rope_base_global = static_cast<float>(file.get_float_or(key("rope.freq_base"), 1e6));
    // Older converters omit the local base; llama.cpp then uses 10000, as Gemma 3 was trained.
    c.f_rope_base_local = static_cast<float>(file.get_float_or(key("rope.freq_base_swa"), 1e4));
    if (file.get_string_or(key("rope.scaling.type"), "none") == "linear") {
        c.f_rope_scale_global = static_cast<float>(file.get_float_or(key("rope.scaling.factor"), 1.0));
    }
    // llama.cpp does not store query_pre_attn_scalar: it uses 1/sqrt(head_dim), except for the
    // 62-layer 27B model whose scalar is n_embd / n_head = 168 (llama-model.cpp, GEMMA3).
    c.f_attention_scale = c.n_layer == 62 ? 1.0f / std::sqrt(static_cast<float>(c.n_embd) / c.n_head)
                                          : 1.0f / std::sqrt(static_cast<float>(c.n_embd_head));
    c.f_final_logit_softcap = static_cast<float>(file.get_float_or(key("final_logit_softcapping"), 0.0));
    c.n_swa = static_cast<int64_t>(file.get_uint_or(key("attention.sliding_window"), 0));
    int64_t period = static_cast<int64_t>(file.get_uint_or(key("attention.sliding_window_pattern"), 6));
    c.layer_kinds = layer_kinds_from_period(c.n_layer, c.n_swa > 0 ? period : 1);

    const gguf::TensorInfo& embd = file.tensor("token_embd.weight");
    c.n_vocab = embd.torch_shape().at(0);
    c.validate(file.path());
    return c;
}

}  // namespace

std::unique_ptr<Gemma3Model> load_gemma3_gguf(const gguf::File& file) {
    ModelConfig c = gemma3_config_from_gguf(file);
    const std::string& source = file.path();
    Gemma3Weights w;
    w.token_embd = load_weight(file.tensor("token_embd.weight"));
    check_shape(source, "token_embd.weight", w.token_embd, {c.n_vocab, c.n_embd});
    if (file.find_tensor("output.weight") != nullptr) {
        // TODO: untied output heads (not used by any Gemma 3 release) are not supported yet.
        fail("{}: has an untied output.weight; subzero's Gemma 3 supports only the tied head", source);
    }
    w.output_norm = gguf::load_tensor_f32(file.tensor("output_norm.weight"));
    check_shape(source, "output_norm.weight", w.output_norm, {c.n_embd});
    w.layers.resize(c.n_layer);
    for (int64_t il = 0; il < c.n_layer; ++il) {
        for (const Gemma3TensorSpec& spec : gemma3_layer_tensors()) {
            std::string name = fmt::format("blk.{}.{}", il, spec.gguf_name);
            // GGUF norms already hold the multiplier 1 + g (the converter adds 1).
            torch::Tensor t = spec.is_norm ? gguf::load_tensor_f32(file.tensor(name)) : load_weight(file.tensor(name));
            check_shape(source, name, t, layer_tensor_shape(c, spec.hf_name));
            w.layers[il].*spec.member = t;
        }
    }
    return std::make_unique<Gemma3Model>(std::move(c), std::move(w));
}

std::unique_ptr<Gemma3Model> load_gemma3_hf(const std::string& dir, const nlohmann::json& root,
                                            const safetensors::Checkpoint& checkpoint) {
    // 4B+ checkpoints nest the text model's config under text_config.
    const nlohmann::json& j = root.contains("text_config") ? root.at("text_config") : root;
    const std::string source = dir + "/config.json";
    auto get_int = [&](const char* field) -> int64_t {
        if (!j.contains(field) || !j.at(field).is_number_integer()) {
            fail("{}: missing or non-integer field '{}'", source, field);
        }
        return j.at(field).get<int64_t>();
    };
    auto get_float_or = [&](const char* field, double fallback) -> double {
        return j.contains(field) && j.at(field).is_number() ? j.at(field).get<double>() : fallback;
    };
    ModelConfig c;
    c.arch = "gemma3";
    c.name = root.value("_name_or_path", std::string("gemma3"));
    c.n_vocab = get_int("vocab_size");
    c.n_embd = get_int("hidden_size");
    c.n_layer = get_int("num_hidden_layers");
    c.n_head = get_int("num_attention_heads");
    c.n_head_kv = get_int("num_key_value_heads");
    c.n_embd_head = get_int("head_dim");
    c.n_ff = get_int("intermediate_size");
    c.n_ctx_train = j.value("max_position_embeddings", int64_t{32768});
    c.f_norm_rms_eps = static_cast<float>(get_float_or("rms_norm_eps", 1e-6));
    c.f_attention_scale = static_cast<float>(1.0 / std::sqrt(get_float_or("query_pre_attn_scalar", double(c.n_embd_head))));
    c.f_final_logit_softcap = static_cast<float>(get_float_or("final_logit_softcapping", 0.0));
    c.n_swa = j.value("sliding_window", int64_t{0});

    // Two config generations: flat rope_theta / rope_local_base_freq / rope_scaling, or a
    // nested rope_parameters {full_attention: {...}, sliding_attention: {...}}.
    c.f_rope_base_global = static_cast<float>(get_float_or("rope_theta", 1e6));
    c.f_rope_base_local = static_cast<float>(get_float_or("rope_local_base_freq", 1e4));
    auto read_scaling = [&](const nlohmann::json& scaling) {
        if (scaling.is_object() && scaling.value("rope_type", scaling.value("type", std::string())) == "linear") {
            c.f_rope_scale_global = static_cast<float>(scaling.value("factor", 1.0));
        }
    };
    if (j.contains("rope_scaling")) {
        read_scaling(j.at("rope_scaling"));
    }
    if (j.contains("rope_parameters") && j.at("rope_parameters").is_object()) {
        const nlohmann::json& rp = j.at("rope_parameters");
        if (rp.contains("full_attention")) {
            c.f_rope_base_global = static_cast<float>(rp.at("full_attention").value("rope_theta", double(c.f_rope_base_global)));
            read_scaling(rp.at("full_attention"));
        }
        if (rp.contains("sliding_attention")) {
            c.f_rope_base_local = static_cast<float>(rp.at("sliding_attention").value("rope_theta", double(c.f_rope_base_local)));
        }
    }
    if (j.contains("layer_types") && j.at("layer_types").is_array()) {
        for (const auto& kind : j.at("layer_types")) {
            c.layer_kinds.push_back(kind.get<std::string>() == "sliding_attention" ? AttentionKind::SlidingWindow
                                                                                  : AttentionKind::Global);
        }
    } else {
        int64_t period = j.value("sliding_window_pattern", j.value("_sliding_window_pattern", int64_t{6}));
        c.layer_kinds = layer_kinds_from_period(c.n_layer, period);
    }
    c.validate(source);

    // Tensor names: "model.*" for Gemma3ForCausalLM, "language_model.model.*" or
    // "model.language_model.*" inside the multimodal checkpoints.
    std::string prefix;
    for (const char* candidate : {"model.", "language_model.model.", "model.language_model."}) {
        if (checkpoint.find(std::string(candidate) + "embed_tokens.weight") != nullptr) {
            prefix = candidate;
            break;
        }
    }
    if (prefix.empty()) {
        fail("{}: no embed_tokens.weight under model., language_model.model. or model.language_model.", dir);
    }
    auto load = [&](const std::string& name) {
        if (checkpoint.find(name) == nullptr) {
            fail("{}: tensor '{}' is missing from the safetensors files", dir, name);
        }
        return checkpoint.load_float(name);
    };

    Gemma3Weights w;
    w.token_embd = load(prefix + "embed_tokens.weight");
    if (w.token_embd.size(0) > c.n_vocab) {
        w.token_embd = w.token_embd.narrow(0, 0, c.n_vocab).clone();
    }
    check_shape(dir, prefix + "embed_tokens.weight", w.token_embd, {c.n_vocab, c.n_embd});
    // HF stores norm weights as g and multiplies by 1 + g; subzero keeps the multiplier.
    w.output_norm = load(prefix + "norm.weight") + 1.0f;
    w.layers.resize(c.n_layer);
    for (int64_t il = 0; il < c.n_layer; ++il) {
        for (const Gemma3TensorSpec& spec : gemma3_layer_tensors()) {
            std::string name = fmt::format("{}layers.{}.{}", prefix, il, spec.hf_name);
            torch::Tensor t = load(name);
            check_shape(dir, name, t, layer_tensor_shape(c, spec.hf_name));
            w.layers[il].*spec.member = spec.is_norm ? t + 1.0f : t;
        }
    }
    return std::make_unique<Gemma3Model>(std::move(c), std::move(w));
}

}  // namespace sz
