// Gemma 3 text model (270M, 1B, and the text tower of 4B/12B/27B).
//
// Forward pass as in Hugging Face transformers' modeling_gemma3.py, float32 throughout:
//   x = E[t] * sqrt(H)
//   per layer: x += post_attn_norm(attn(attn_norm(x)));  x += post_ffw_norm(mlp(ffn_norm(x)))
//   attn: QK-RMSNorm per head, NeoX RoPE (base 1e6 global, 1e4 local), grouped-query
//         attention, scale query_pre_attn_scalar^(-1/2), causal mask plus a sliding window of
//         W keys on local layers (layer il is global iff (il+1) % 6 == 0)
//   mlp:  down(gelu_tanh(gate(b)) * up(b))
//   logits = output_norm(x) Eᵀ (tied head)
// RMSNorm(z; w) = z * rsqrt(mean(z²) + eps) * w, with w the multiplier 1 + g.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/causal_lm.h"

namespace sz {

namespace gguf { class File; }
namespace safetensors { class Checkpoint; }

struct Gemma3Layer {
    torch::Tensor attn_norm;       // [H]     input_layernorm
    torch::Tensor wq;              // [N*D, H]
    torch::Tensor wk;              // [Nkv*D, H]
    torch::Tensor wv;              // [Nkv*D, H]
    torch::Tensor wo;              // [H, N*D]
    torch::Tensor q_norm;          // [D]
    torch::Tensor k_norm;          // [D]
    torch::Tensor post_attn_norm;  // [H]     post_attention_layernorm (on the attention branch)
    torch::Tensor ffn_norm;        // [H]     pre_feedforward_layernorm
    torch::Tensor w_gate;          // [F, H]
    torch::Tensor w_up;            // [F, H]
    torch::Tensor w_down;          // [H, F]
    torch::Tensor post_ffw_norm;   // [H]     post_feedforward_layernorm
};

struct Gemma3Weights {
    torch::Tensor token_embd;      // [V, H]  also the output head (tied)
    torch::Tensor output_norm;     // [H]
    std::vector<Gemma3Layer> layers;
};

// One row per per-layer tensor: the Hugging Face name, the GGUF name, and whether it is a
// norm (stored as g in HF, as 1 + g in GGUF). Loading and export both walk this table, so
// the two name schemes cannot drift apart.
struct Gemma3TensorSpec {
    const char* hf_name;    // suffix after "model.layers.{il}."
    const char* gguf_name;  // suffix after "blk.{il}."
    torch::Tensor Gemma3Layer::*member;
    bool is_norm;
};
const std::vector<Gemma3TensorSpec>& gemma3_layer_tensors();

class Gemma3Model : public CausalLM {
public:
    Gemma3Model(ModelConfig config, Gemma3Weights weights);

    const ModelConfig& config() const override { return config_; }
    torch::Tensor forward(const torch::Tensor& tokens, const ForwardOptions& options) override;
    OutputHead output_head() override;
    torch::Tensor& projection_weight(int64_t il, Projection p) override;
    void for_each_parameter(const std::function<void(const std::string&, torch::Tensor&)>& visit) override;
    std::vector<std::string> hook_names() const override;
    void convert_weights(torch::ScalarType dtype) override;

    Gemma3Weights& weights() { return weights_; }

private:
    // Hook names of one block, formatted once at construction instead of on every forward.
    struct LayerHookNames {
        std::string resid_pre, q, k, v, pattern, z, attn_out, resid_mid, mlp_pre, mlp_post, mlp_out, resid_post;
    };

    static torch::Tensor matmul_weight(const torch::Tensor& x, const torch::Tensor& weight);
    torch::Tensor project(const torch::Tensor& x, int64_t il, Projection p, const ForwardOptions& options);
    torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight) const;

    ModelConfig config_;
    Gemma3Weights weights_;
    torch::Tensor inv_freq_global_;  // [D/2] RoPE inverse frequencies, scaling applied
    torch::Tensor inv_freq_local_;
    std::vector<LayerHookNames> hook_names_;
};

// Builds a Gemma 3 model from a GGUF file (architecture "gemma3"); throws sz::Error naming the
// file and the missing or inconsistent key or tensor.
std::unique_ptr<Gemma3Model> load_gemma3_gguf(const gguf::File& file);

// Builds a Gemma 3 model from a Hugging Face folder: config.json plus safetensors.
std::unique_ptr<Gemma3Model> load_gemma3_hf(const std::string& dir, const nlohmann::json& config,
                                            const safetensors::Checkpoint& checkpoint);

}  // namespace sz
