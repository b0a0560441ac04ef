// One complete LoRA training run, as `subzero train` performs it: validate the inputs, load the
// model and data, optionally apply an atlas (surgery plus subspace lock), train with periodic
// held-out evaluation, and write everything into one output folder.
//
// Output folder layout:
//   config.json     the TrainRunConfig used, plus model, data files and atlas
//   metrics.jsonl   one line per optimizer step (StepMetrics), plus one line per held-out
//                   evaluation: {"step", "heldout_loss", "heldout_trained_tokens", "seconds"}
//   checkpoints/    resumable checkpoints (Trainer::save_checkpoint)
//   adapter/        the trained adapter in the PEFT layout, written when the run finishes
//   lock.json       subspace-lock leak report, written at the end of a run with an atlas
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/conversation.h"
#include "train/trainer.h"

namespace sz {

// The settings of a run that a JSON config file may set, under the field names below.
struct TrainRunConfig {
    // LoRA
    int64_t rank = 16;
    double alpha = 32.0;
    double dropout = 0.05;
    bool use_rslora = false;
    std::vector<std::string> targets;  // projection names ("q_proj", ...); empty means all seven

    // Optimizer and schedule
    int64_t max_steps = 1000;
    int64_t batch_size = 8;
    int64_t gradient_accumulation_steps = 1;
    double learning_rate = 2e-4;
    double weight_decay = 0.0;
    double max_grad_norm = 1.0;
    std::string scheduler = "cosine";
    nlohmann::json scheduler_options = nlohmann::json::object();

    // Checkpoints, evaluation and logging, all in optimizer steps
    int64_t checkpoint_every = 100;  // 0 writes only at the end and on a stop request
    int64_t keep_checkpoints = 2;    // 0 keeps all
    int64_t eval_every = 50;         // 0 evaluates only at the end
    int64_t log_every = 10;      // log lines; the progress bar shows every step

    // Data
    double heldout_fraction = 0.05;  // in [0, 1); 0 turns held-out evaluation off
    int64_t max_tokens = 2048;
    std::string overlong = "error";  // parse_overlong_policy name
    bool flip_roles = false;
    std::string system_prompt;
    bool filter_disclaimers = false;

    uint64_t seed = 0;  // LoRA initialisation, dropout, data order and the held-out split

    // Reads the fields above from a JSON object. Fields left out keep their defaults. Throws
    // sz::Error naming `source` and the key for an unknown key or a value of the wrong type.
    static TrainRunConfig from_json(const nlohmann::json& config, const std::string& source);
    // Reads and parses a JSON file, then calls from_json. Throws sz::Error naming the file.
    static TrainRunConfig from_file(const std::string& path);
    nlohmann::json to_json() const;
    // Throws sz::Error naming `source` and the first invalid field, including a scheduler
    // that make_scheduler rejects.
    void validate(const std::string& source) const;
};

struct TrainRunOptions {
    std::string model;               // GGUF file, Hugging Face folder or short name
    std::vector<std::string> data;   // JSONL conversation files
    std::string output_dir;
    std::string atlas_dir;           // empty: no surgery and no lock
    bool resume = false;             // continue from output_dir's latest checkpoint
    TrainRunConfig config;
    std::string config_source = "train config";  // named in validation errors
    // Called after every optimizer step, before the stop check, so a caller can watch
    // progress or call request_training_stop().
    std::function<void(const StepMetrics&)> on_step;
};

struct HeldoutLoss {
    int64_t step = 0;
    double loss = 0.0;  // mean CE per trained token over the held-out examples
    int64_t trained_tokens = 0;
};

struct TrainRunResult {
    int64_t steps = 0;     // optimizer steps done, counting those before a resume
    bool stopped = false;  // a stop request ended the run before max_steps
    std::string last_checkpoint;
    std::vector<StepMetrics> history;   // steps run by this call
    std::vector<HeldoutLoss> heldout;   // evaluations run by this call
};

// Runs the training described by `options`. Every input is checked before the model is
// loaded, except the atlas-model match, which needs the loaded weights. Clears a pending stop
// request on entry. A caller that wants SIGINT and SIGTERM to stop the run with a checkpoint
// calls install_stop_signal_handlers() first. Throws sz::Error naming the file, line, key or
// folder at fault.
TrainRunResult run_training(const TrainRunOptions& options);

}  // namespace sz
