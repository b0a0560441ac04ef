// `subzero run`: the whole method from one config, into one run folder.
//
//   <out>/run_state.json    config and per-stage fingerprint, status and time
//   <out>/atlas/            subzero locate (atlas, stage cache, report.html)
//   <out>/train/            subzero train on the atlas (adapter/, metrics, report.html)
//   <out>/model.gguf        merged model, f16 by default, for llama.cpp, Ollama, Docker Model Runner
//   <out>/Modelfile         Ollama recipe for model.gguf with the recommended sampling
//   <out>/peft-adapter/     surgery + LoRA as one PEFT adapter for the unmodified base
//   <out>/eval/             base vs tuned: eval.json, replies.md
//   <out>/report.html       one page linking the stage reports, with the eval table
//
// A stage is skipped when it finished before with the same fingerprint, which covers its
// settings and everything upstream of it. An interrupted stage resumes through its own cache
// (locate's stage files, train's checkpoints). A stage whose settings changed reruns, and so
// does every stage after it.
#pragma once

#include <string>

#include "pipeline/run_config.h"

namespace sz {

struct RunResult {
    bool finished = false;     // false when a stop request (SIGINT, SIGTERM) ended the run
    std::string out;           // the run folder
    std::string gguf_path;
    std::string summary;       // the eval table and how to chat with the result
};

// Checks every input (config, model, data, held-out file, output folder) before any stage
// runs, then runs the stages. Throws sz::Error naming the file, key or folder at fault.
RunResult run_pipeline(const RunConfig& config);

}  // namespace sz
