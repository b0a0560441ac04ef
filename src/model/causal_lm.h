// Interface of a decoder-only language model. Each model family (gemma3.cpp today) implements
// it in one file; loader.cpp picks the family from the file's architecture name.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model/hooks.h"
#include "model/kv_cache.h"
#include "model/model_config.h"
#include "model/projection.h"

namespace sz {

struct ForwardOptions {
    // [B, T] bool or integer, 1 for real tokens and 0 for padding; undefined means no padding.
    torch::Tensor attention_mask;
    // When set, new keys/values are appended and attention also reads the cached ones.
    KvCache* cache = nullptr;
    const Hooks* hooks = nullptr;
    const ProjectionAdapter* adapter = nullptr;
    // Compute logits for the last position of each row only ([B, 1, V]); saves the
    // [T x H] x [H x V] head product during prefill.
    bool last_position_only = false;
    // [B, T] bool. When defined, logits are computed only where it is true and returned as
    // [n, V] in row-major order. A loss over response tokens needs the 262k-wide head at those
    // positions only, which is most of a Gemma 3 270M forward pass.
    torch::Tensor logit_positions;
    // Start the pass at layer `start_layer` from `start_residual` ([B, T, H], the value of
    // blocks.{start_layer}.hook_resid_pre from an earlier pass on the same tokens). An edit
    // inside layer l leaves layers 0..l-1 unchanged, so a caller that compares many edits of
    // layer l pays for the layers before it once. Not combinable with a KV cache.
    int64_t start_layer = 0;
    torch::Tensor start_residual;
    // Return the final normalised hidden states (ln_final.hook_normalized, [.., H]) instead of
    // logits, for losses that apply the head themselves in chunks (chunked_cross_entropy.h).
    bool return_hidden = false;
};

// The output head: logits = softcap · tanh((h Wᵀ) / softcap), or h Wᵀ when softcap is 0.
struct OutputHead {
    torch::Tensor weight;   // [V, H]
    double softcap = 0.0;
};

class CausalLM {
public:
    virtual ~CausalLM() = default;

    virtual const ModelConfig& config() const = 0;

    // tokens: [B, T] int64. Returns float32 logits [B, T, V] ([B, 1, V] with
    // last_position_only, [n, V] with logit_positions).
    virtual torch::Tensor forward(const torch::Tensor& tokens, const ForwardOptions& options) = 0;

    virtual OutputHead output_head() = 0;

    // The [out, in] weight of projection `p` in layer `il`, for surgery and LoRA merges.
    virtual torch::Tensor& projection_weight(int64_t il, Projection p) = 0;

    // Visits every parameter under its Hugging Face name ("model.layers.0.mlp.up_proj.weight").
    // Norm weights are visited in the multiplier convention: the vector the activation is
    // multiplied by, which is 1 + g for Gemma's HF weights (GGUF stores it that way).
    virtual void for_each_parameter(const std::function<void(const std::string&, torch::Tensor&)>& visit) = 0;

    // Every hook name this model fires, for validating user input and for discovery.
    virtual std::vector<std::string> hook_names() const = 0;

    // Converts every matrix parameter to `dtype` (kFloat32, kHalf or kBFloat16). Models load
    // with the precision of the file: float32 for quantized and F32 tensors, 16-bit for F16
    // and BF16 tensors. Analysis and training convert to float32 first.
    virtual void convert_weights(torch::ScalarType dtype) = 0;
};

}  // namespace sz
