// Export of a loaded model to the files other tools run: a GGUF for llama.cpp, Ollama and
// Docker Model Runner, and a Hugging Face folder for transformers and for subzero itself.
//
// export_model() is the single entry point for the CLI. It writes the model exactly as it is
// in memory, so a step that changes the weights (merging a LoRA adapter, for example) runs
// on the LoadedModel first and then calls export_model() unchanged.
#pragma once

#include <string>

#include "model/loader.h"
#include "sampling/sampler.h"

namespace sz {

// subzero's release version, written into exported files for provenance.
// NOTE: kept equal by hand to the --version string in src/cli/main.cpp.
inline constexpr const char* kSubzeroVersion = "0.1.0";

// Storage type of exported weights. GGUF files keep norm vectors in float32 whatever the type;
// Hugging Face folders store every tensor in it.
enum class WeightType { F32, F16, BF16 };

// Parses "f32", "f16" or "bf16"; throws sz::Error naming the value and the accepted ones.
WeightType parse_weight_type(const std::string& text);
const char* weight_type_name(WeightType type);

// Descriptive metadata shared by every export format.
struct ExportMetadata {
    std::string name;            // model name (general.name, _name_or_path); empty: the model's own
    std::string source;          // name of the source file or folder; empty: export_model() fills it in
    // Recommended sampling written into the files. The defaults are the Gemma 3 model card's
    // (temp 0.9, min_p 0.1, top_p 1.0, top_k off, repeat penalty 1.1 over 256 tokens).
    SamplerParams sampling;
    int64_t recommended_context_length = 8192;  // the model card's context for chat use
};

struct ExportOptions {
    std::string gguf_path;                   // empty: no GGUF file
    WeightType gguf_type = WeightType::F16;
    std::string hf_dir;                      // empty: no Hugging Face folder
    WeightType hf_type = WeightType::BF16;   // Gemma's own checkpoints are bfloat16
    ExportMetadata metadata;
};

// Writes the requested files for `loaded`. Every output location is checked before any
// weight is encoded, so a typo fails at once instead of after minutes of work. Each file is
// written atomically: an existing file is replaced only once the new one is complete.
// Throws sz::Error when no output is requested, when a parent folder is missing, or when the
// model cannot be represented in the target format.
void export_model(LoadedModel& loaded, const ExportOptions& options);

// Checks that `path` can be written as a file: throws sz::Error naming the folder when the
// folder that would contain it is missing or not a folder, and when `path` is itself a folder.
// `output_name` names the output in the message ("GGUF output", "--out").
void check_parent_folder(const std::string& path, const std::string& output_name);

}  // namespace sz
