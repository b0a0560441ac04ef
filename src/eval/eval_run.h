// `subzero eval`: the base and the tuned model answer the same held-out prompts, and the run
// compares their replies (cadence markers, markdown, length, letter case), their loss on
// held-out persona conversations and their next-token distributions on neutral prompts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/batch_generation.h"
#include "eval/kl_divergence.h"
#include "eval/persona_loss.h"
#include "eval/prompt_set.h"
#include "eval/reply_metrics.h"
#include "sampling/sampler.h"

namespace sz {

struct EvalConfig {
    std::string base;
    std::string tuned;    // empty: the base model, with `adapter` required
    std::string adapter;  // PEFT LoRA folder applied to the tuned model; empty: none
    std::string prompts;  // JSONL of prompts; empty: the first user turn of each held-out conversation
    std::string heldout = "data/persona/heldout.jsonl";
    std::string neutral = "data/corpora/neutral.jsonl";
    std::string markers = "data/eval/cadence_markers.txt";
    std::string out_dir = "eval-out";
    // Prompts answered by each model, the first `limit` of the set (0: all). Measured with
    // Gemma 3 270M Q4_K_M on 2 x86 cores: 16 prompts of 96 tokens took 39-46 s per model.
    int64_t limit = 24;
    int64_t max_new_tokens = 96;
    int64_t batch_size = 8;
    // Greedy by default, so two runs on the same models give the same replies.
    SamplerParams sampling = greedy_sampling();
    bool show_progress = true;  // counter on stderr while generating

    static SamplerParams greedy_sampling();
    // Throws sz::Error naming the first invalid value and its flag.
    void validate() const;
};

struct EvalReply {
    std::string text;
    int64_t tokens = 0;
    std::string stop_reason;
    ReplyMetrics metrics;
};

struct EvalSide {
    std::string model;
    std::string adapter;
    std::vector<EvalReply> replies;  // one per prompt
    TextSummary text;
    PersonaLoss persona;
    double generation_seconds = 0.0;
};

struct EvalReport {
    EvalConfig config;
    std::vector<std::string> marker_texts;
    std::vector<EvalPrompt> prompts;
    EvalSide base;
    EvalSide tuned;
    KlDivergence kl;
};

// Validates every input (config, files, models, vocabularies) before generating, then runs the
// evaluation and writes eval.json and replies.md into config.out_dir. Throws sz::Error naming
// the file, line, flag or value at fault.
EvalReport run_eval(const EvalConfig& config);

}  // namespace sz
