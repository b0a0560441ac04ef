// Loads a model and its tokenizer from what the user names: a GGUF file, a Hugging Face folder
// (config.json + safetensors + tokenizer files), or a known short name such as gemma3-270m.
#pragma once

#include <memory>
#include <string>

#include "model/causal_lm.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace sz {

struct LoadedModel {
    std::string path;                     // resolved file or folder
    std::string format;                   // "gguf" or "safetensors"
    std::unique_ptr<CausalLM> model;
    std::shared_ptr<Tokenizer> tokenizer;
    std::shared_ptr<ChatTemplate> chat_template;
};

// Throws sz::Error naming the path and what is wrong: not found, unknown architecture (with
// the supported list), missing tensors or keys.
LoadedModel load_model(const std::string& name_or_path);

// Architectures subzero can run, as GGUF architecture names.
std::vector<std::string> supported_architectures();

}  // namespace sz
