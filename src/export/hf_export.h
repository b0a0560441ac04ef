// Hugging Face folder export of a Gemma 3 text model (Gemma3ForCausalLM), readable by
// transformers and by subzero's own loader:
//   config.json              model_type gemma3_text with every field the loaders read,
//                            layer_types included
//   model.safetensors        HF tensor names; norms stored as g = w - 1 (HF multiplies by
//                            1 + g), metadata {"format": "pt"}
//   tokenizer.model          SentencePiece ModelProto (export/sentencepiece_writer.h)
//   tokenizer_config.json    special tokens, add_bos/add_eos, added_tokens_decoder for every
//                            CONTROL and USER_DEFINED token, chat_template
//   special_tokens_map.json  the same special tokens, for older transformers versions
//   generation_config.json   BOS/EOS/PAD ids (EOS as [eos, end_of_turn]) and the recommended
//                            sampling
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "export/export.h"
#include "model/causal_lm.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/vocab.h"

namespace sz {

struct HfExportOptions {
    std::string dir;
    WeightType type = WeightType::BF16;  // storage of every tensor, norms included
    ExportMetadata metadata;
};

// Creates `dir` when it is missing; throws sz::Error when its parent folder is missing or
// `dir` is a file.
void prepare_hf_output_folder(const std::string& dir);

// Writes the folder. Files already in `dir` with the names above are replaced one by one,
// each atomically; other files are left alone. Throws sz::Error when the model is not a
// Gemma 3 model or the folder cannot be created.
void export_hf_folder(CausalLM& model, const Vocab& vocab, const ChatTemplate& chat_template,
                      const HfExportOptions& options);

// The JSON documents of the folder, exposed for tests and for other writers.
nlohmann::json hf_config_json(const ModelConfig& config, const Vocab& vocab, const HfExportOptions& options);
nlohmann::json hf_tokenizer_config_json(const Vocab& vocab, const ChatTemplate& chat_template, int64_t max_length);
nlohmann::json hf_generation_config_json(const Vocab& vocab, const SamplerParams& sampling);

}  // namespace sz
