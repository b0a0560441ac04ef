// GGUF export of a Gemma 3 model in the layout llama.cpp's converter produces, so that
// llama.cpp loads the file as one of its own conversions.
// NOTE: the tests load exports with llama.cpp (llama-cpp-python 0.3.36) only. Docker Model
// Runner runs llama.cpp; Ollama's own GGUF reader has not been tried.
//
// What is written:
//   general.*     architecture "gemma3", type, name, file_type, quantization_version, and the
//                 recommended sampling as general.sampling.*. Key names and value types are
//                 the ones gguf-py 0.19.0 writes, and the libllama of llama-cpp-python 0.3.36
//                 lists the same names through llama_model_meta_key_str.
//   gemma3.*      hyperparameters with llama.cpp's exact value types (u32 counts, f32 floats)
//   tokenizer.*   SentencePiece vocabulary, special ids (bos, eos, unk, pad, and eot for
//                 <end_of_turn>), add_bos/add_eos/add_space_prefix, and tokenizer.chat_template
//   subzero.*     provenance and the recommended context length, ignored by llama.cpp
//   tensors       token_embd, output_norm and blk.N.* under the names of gemma3_layer_tensors();
//                 norm vectors as F32 holding the multiplier 1 + g, every matrix in the
//                 requested type (F16 and BF16 round to nearest even)
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "export/export.h"
#include "formats/ggml_type.h"
#include "formats/gguf.h"
#include "model/causal_lm.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/vocab.h"

namespace sz {

struct GgufExportOptions {
    std::string path;
    WeightType type = WeightType::F16;
    ExportMetadata metadata;
    // Further general.* keys copied from the source file (license, basename, size label),
    // written after general.name in this order.
    std::vector<std::pair<std::string, gguf::Value>> extra_metadata;
};

// general.file_type of a file whose matrices are all `type`: llama.h's llama_ftype values
// 0 (ALL_F32), 1 (MOSTLY_F16) or 32 (MOSTLY_BF16).
uint32_t gguf_file_type(WeightType type);
GgmlType ggml_type_of(WeightType type);

// Writes `model` with `vocab` and the template of `chat_template` to options.path.
// Throws sz::Error when the model is not a Gemma 3 model, when the embedding has fewer rows
// than the vocabulary, or when the parent folder of the path is missing. It also throws when
// llama.cpp would run the model differently from subzero: a layer pattern other than 5 local
// to 1 global, an attention scale that llama.cpp does not derive, or a final logit soft-cap.
void export_gguf(CausalLM& model, const Vocab& vocab, const ChatTemplate& chat_template,
                 const GgufExportOptions& options);

}  // namespace sz
