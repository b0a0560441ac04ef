// Hyperparameters of a decoder-only transformer, in llama.cpp's naming (n_ for counts,
// f_ for float constants), filled from GGUF metadata or a Hugging Face config.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sz {

enum class AttentionKind { Global, SlidingWindow };

struct ModelConfig {
    std::string arch;           // GGUF architecture name: "gemma3"
    std::string name;           // general.name, for logs and reports

    int64_t n_vocab = 0;
    int64_t n_embd = 0;         // hidden size H
    int64_t n_layer = 0;
    int64_t n_head = 0;         // query heads
    int64_t n_head_kv = 0;      // key/value heads (grouped-query attention)
    int64_t n_embd_head = 0;    // head dimension d
    int64_t n_ff = 0;           // MLP width F
    int64_t n_ctx_train = 0;    // context length the model was trained for

    float f_norm_rms_eps = 1e-6f;
    float f_rope_base_global = 1e6f;
    float f_rope_base_local = 1e4f;
    float f_rope_scale_global = 1.0f;     // linear RoPE scaling on global layers (8 on Gemma 3 4B+)
    float f_attention_scale = 0.0625f;    // query_pre_attn_scalar^(-1/2)
    float f_final_logit_softcap = 0.0f;   // 0 = none

    int64_t n_swa = 0;                    // sliding window W: a query sees at most W keys, itself included
    std::vector<AttentionKind> layer_kinds;

    bool is_sliding(int64_t il) const { return layer_kinds.at(il) == AttentionKind::SlidingWindow; }
    float rope_base(int64_t il) const { return is_sliding(il) ? f_rope_base_local : f_rope_base_global; }
    float rope_scale(int64_t il) const { return is_sliding(il) ? 1.0f : f_rope_scale_global; }

    // Throws sz::Error naming `source` and the first inconsistent field.
    void validate(const std::string& source) const;
    std::string summary() const;
};

}  // namespace sz
