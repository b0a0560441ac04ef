// The two models `subzero eval` compares: a base model and a tuned one, the tuned one given
// as its own model or as the base plus a PEFT LoRA adapter.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "model/loader.h"
#include "tokenizer/vocab.h"
#include "train/lora.h"

namespace sz {

struct ModelPair {
    std::string base_name;
    std::string tuned_name;
    std::string adapter_dir;  // empty when the tuned model has no adapter
    std::shared_ptr<LoadedModel> base;
    // Shares `base` when both names resolve to the same path, so a self-comparison or a base
    // plus adapter loads the weights once.
    std::shared_ptr<LoadedModel> tuned;
    std::shared_ptr<LoraAdapter> tuned_adapter;

    const ProjectionAdapter* tuned_projection_adapter() const { return tuned_adapter.get(); }
};

// Loads both models and the adapter. `tuned_name` empty means the base model (only valid with
// an adapter). Throws sz::Error when a model or adapter fails to load or the vocabularies
// differ.
ModelPair load_model_pair(const std::string& base_name, const std::string& tuned_name, const std::string& adapter_dir);

// Throws sz::Error unless both vocabularies have the same pieces in the same order and the
// same BOS and end-of-turn ids: the KL divergence compares distributions token by token, and
// both models must read the same prompt tokens.
void check_same_vocabulary(const Vocab& base, const Vocab& tuned, const std::string& base_name,
                           const std::string& tuned_name);

}  // namespace sz
