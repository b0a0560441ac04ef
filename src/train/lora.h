// LoRA adapters on the linear projections of a CausalLM, attached through ProjectionAdapter so
// the model itself is not edited.
//
// For a projection with weight W [out, in], the adapter stores A [r, in] and B [out, r] and adds
//   delta(x) = scale · dropout(x) Aᵀ Bᵀ,   scale = alpha / r (alpha / √r with rsLoRA),
// so the effective weight is W + scale · B A. Initialisation follows PEFT: A is
// Kaiming-uniform with a = √5, i.e. U(−1/√in, 1/√in), and B = 0, so training starts at the
// base model. Saved in the PEFT layout (adapter_config.json + adapter_model.safetensors).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/causal_lm.h"
#include "model/projection.h"

namespace sz {

struct LoraConfig {
    int64_t rank = 16;
    double alpha = 32.0;
    double dropout = 0.05;   // probability of zeroing an input element, in [0, 1)
    bool use_rslora = false;  // scale alpha / √rank instead of alpha / rank
    std::vector<Projection> targets{kAllProjections.begin(), kAllProjections.end()};
    std::vector<int64_t> layers;  // layers to adapt; empty means every layer
    uint64_t seed = 0;            // A's initialisation and the dropout masks
    std::string base_model_name_or_path;  // recorded in adapter_config.json

    double scale() const;
    // Throws sz::Error for a rank < 1, a negative or non-finite alpha, a dropout outside
    // [0, 1), no targets, or a duplicate target.
    void validate() const;

    // adapter_config.json as PEFT writes it for a LoRA adapter.
    nlohmann::json to_peft_json() const;
    // Reads the fields above from a PEFT adapter_config.json. Throws sz::Error naming `source`
    // for a missing or mistyped field, a peft_type other than LORA, or a target_modules entry
    // that is not one of the seven projections.
    static LoraConfig from_peft_json(const nlohmann::json& config, const std::string& source);
};

// The two factors of one adapted projection.
struct LoraPair {
    int64_t layer = 0;
    Projection projection = Projection::Q;
    torch::Tensor a;  // [r, in] float32, requires_grad
    torch::Tensor b;  // [out, r] float32, requires_grad

    // "model.layers.{l}.{self_attn|mlp}.{proj}", the PEFT module path without its prefix.
    std::string module_path() const;
    // ΔW = scale · B A [out, in], detached.
    torch::Tensor delta_weight(double scale) const;
};

class LoraAdapter : public ProjectionAdapter {
public:
    // Creates adapters for every targeted projection of `model`, initialised from
    // config.seed. Throws sz::Error when the config is invalid or names a layer the model
    // does not have.
    LoraAdapter(CausalLM& model, LoraConfig config);

    // Reads a PEFT adapter folder made for `model`. Throws sz::Error naming the file when a
    // tensor is missing, has the wrong shape, or does not belong to a targeted projection.
    static LoraAdapter load(const std::string& dir, CausalLM& model);
    // Writes adapter_config.json and adapter_model.safetensors into `dir` (created if
    // missing), each atomically.
    void save(const std::string& dir) const;

    torch::Tensor delta(int64_t il, Projection p, const torch::Tensor& x) const override;

    // Dropout is applied only in training mode (the default is evaluation mode).
    void set_training(bool training) { training_ = training; }
    bool training() const { return training_; }
    // Restarts the dropout generator from `seed`. The trainer reseeds it per micro-batch from
    // the run seed and the micro-batch number, which makes a resumed run draw the same masks.
    void reseed_dropout(uint64_t seed);

    // A and B of every pair, in pairs() order (A then B), for the optimizer.
    std::vector<torch::Tensor> parameters() const;
    // Parameters under their PEFT tensor names ("base_model.model.model.layers.0.self_attn.
    // q_proj.lora_A.weight"), sorted by name.
    std::map<std::string, torch::Tensor> named_parameters() const;
    // Copies values into the parameters in place, keeping their identity for the optimizer.
    // Throws sz::Error naming `source` when a name is missing or a shape differs.
    void load_parameters(const std::map<std::string, torch::Tensor>& values, const std::string& source);

    // Adds scale · B A into each adapted base weight (in the weight's dtype). The adapter must
    // not be used on the merged model afterwards, or its delta counts twice.
    void merge_into(CausalLM& model) const;

    const LoraConfig& config() const { return config_; }
    double scale() const { return scale_; }
    const std::vector<LoraPair>& pairs() const { return pairs_; }
    // The pair of (layer, projection), or nullptr when that projection is not adapted.
    const LoraPair* find(int64_t layer, Projection projection) const;
    LoraPair* find(int64_t layer, Projection projection);

private:
    LoraAdapter(LoraConfig config, int64_t n_layer);

    LoraConfig config_;
    double scale_ = 1.0;
    int64_t n_layer_ = 0;
    std::vector<LoraPair> pairs_;
    std::vector<int> index_;  // [n_layer * 7]: position in pairs_, or -1
    bool training_ = false;
    mutable torch::Generator dropout_generator_;
};

// PEFT tensor name of A or B: "base_model.model.model.layers.{l}.{self_attn|mlp}.{proj}.lora_A.weight".
std::string peft_tensor_name(int64_t layer, Projection projection, bool is_a);

}  // namespace sz
