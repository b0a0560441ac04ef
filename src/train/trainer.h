// LoRA training loop: AdamW on the adapter parameters only, response-only loss, gradient
// accumulation, global-norm clipping, an LR scheduler, per-step metrics and resumable
// checkpoints.
//
// One optimizer step takes gradient_accumulation_steps micro-batches from the Batcher and
// minimises
//   loss = Σ_micro Σ_trained tokens CE / Σ_micro (trained tokens),
// so every trained token of the window weighs the same, whatever its micro-batch. A trained
// token is one whose loss_mask is 1 (assistant content and end-of-turn tokens).
//
// Determinism: the data order comes from the Batcher (seed and epoch), and the dropout masks
// of micro-batch n are drawn from a generator seeded with (seed, n). A checkpoint stores the
// step, the micro-batch count, the LoRA tensors, AdamW's moments and step counts, the
// scheduler state and the previous step's gradient. On the CPU a resumed run therefore
// computes the same losses, bit for bit, as an uninterrupted one with the same thread count.
//
// `subzero train` (src/cli/train_command.cpp) drives this loop through run_training
// (train/train_run.h).
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "data/split.h"
#include "model/causal_lm.h"
#include "train/lora.h"
#include "train/schedule/scheduler.h"
#include "train/subspace_lock.h"

namespace sz {

struct TrainerConfig {
    // Receives metrics.jsonl, checkpoints/, adapter/ and lock.json; created if missing.
    std::string output_dir;
    int64_t max_steps = 1000;  // optimizer steps
    int64_t gradient_accumulation_steps = 1;
    double learning_rate = 2e-4;
    double weight_decay = 0.0;  // AdamW decoupled weight decay
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double max_grad_norm = 1.0;  // global L2 norm; 0 turns clipping off
    // make_scheduler name and options. When the options leave out total_steps, schedulers
    // other than "constant" get max_steps.
    std::string scheduler = "cosine";
    nlohmann::json scheduler_options = nlohmann::json::object();
    int64_t checkpoint_every = 100;  // optimizer steps; 0 writes only at the end and on a stop request
    int64_t keep_checkpoints = 2;    // most recent checkpoint files kept; 0 keeps all
    uint64_t seed = 0;               // dropout masks; the Batcher has its own seed for data order

    // Throws sz::Error naming the first invalid field.
    void validate() const;
    nlohmann::json to_json() const;
};

// Measurements of one optimizer step, written as one line of metrics.jsonl.
struct StepMetrics {
    int64_t step = 0;  // 1-based
    double loss = 0.0;  // mean CE per trained token over the accumulation window
    double lr = 0.0;
    double grad_norm = 0.0;  // before clipping
    std::optional<double> grad_cosine;  // with the previous step's gradient; none on step 1
    int64_t trained_tokens = 0;
    int64_t tokens = 0;  // non-padding tokens of the window
    int64_t epoch = 0;   // epoch of the window's last micro-batch
    std::string mode;    // scheduler mode or phase
    std::optional<double> max_leak_ratio;  // with a subspace lock
    double seconds = 0.0;
    std::vector<SchedulerEvent> events;    // scheduler events of this step, with their causes

    nlohmann::json to_json() const;
};

struct TrainResult {
    int64_t steps = 0;              // optimizer steps done, counting those before a resume
    bool stopped = false;           // a stop request (SIGTERM, SIGINT) ended the run early
    std::string last_checkpoint;    // path of the last checkpoint written, if any
    std::vector<StepMetrics> history;  // steps run by this call
};

// Fills in what the scheduler options leave out: total_steps = max_steps and, for runs shorter
// than 5000 steps, a warm-up of 10% of the run. "constant" options are returned unchanged.
nlohmann::json complete_scheduler_options(const std::string& scheduler, const nlohmann::json& given, int64_t max_steps);

class Trainer {
public:
    // The model must already hold float32 weights (CausalLM::convert_weights). `lock` is
    // optional; model, adapter, batcher and lock must outlive the trainer. Throws sz::Error
    // when the config is invalid or the scheduler cannot be built.
    Trainer(CausalLM& model, LoraAdapter& adapter, const Batcher& batcher, TrainerConfig config,
            SubspaceLock* lock = nullptr);
    ~Trainer();

    // Runs one optimizer step and appends its metrics line.
    StepMetrics step();
    // Runs steps until max_steps or a stop request, writing checkpoints every
    // checkpoint_every steps and one on the way out, then saves the adapter (adapter/) and,
    // with a lock, lock.json.
    TrainResult train();

    // Writes checkpoints/step-NNNNNNNN.safetensors under output_dir, points checkpoints/latest
    // at it and removes checkpoints beyond keep_checkpoints. Returns the path.
    std::string save_checkpoint();
    // Writes this trainer's checkpoint to `path` (temporary file, fsync, rename).
    void save_checkpoint_to(const std::string& path) const;
    // Restores a checkpoint written by save_checkpoint_to. Throws sz::Error naming the file
    // when it is not a subzero training checkpoint, its checksum does not match, it was
    // written with another seed or gradient_accumulation_steps, or a tensor is missing or
    // has another shape. Truncates metrics.jsonl to the steps the checkpoint had done.
    // NOTE: the scheduler continues with the name, base LR and options saved in the
    // checkpoint; changed scheduler options in this trainer's config are ignored.
    void resume(const std::string& path);

    int64_t steps_done() const { return step_; }
    const LrScheduler& scheduler() const { return *scheduler_; }
    const TrainerConfig& config() const { return config_; }

private:
    struct Window;
    Window next_window();
    double accumulate(const Window& window);
    void apply_schedule(const StepOutput& output);
    void append_metrics(const StepMetrics& metrics);
    void truncate_metrics(int64_t last_step);
    std::vector<std::string> parameter_names() const;

    CausalLM& model_;
    LoraAdapter& adapter_;
    const Batcher& batcher_;
    TrainerConfig config_;
    SubspaceLock* lock_;
    std::vector<torch::Tensor> parameters_;
    std::unique_ptr<torch::optim::AdamW> optimizer_;
    std::unique_ptr<LrScheduler> scheduler_;
    torch::Tensor previous_gradient_;  // flattened, for the gradient cosine
    int64_t step_ = 0;
    int64_t micro_batches_ = 0;  // micro-batches consumed: the Batcher cursor
    std::ofstream metrics_;
};

// Path of the checkpoint that checkpoints/latest under `output_dir` names. Throws sz::Error
// when there is none.
std::string latest_checkpoint(const std::string& output_dir);

// [B, T] bool: the positions whose logits score a trained token (logits at i - 1 score token
// i). Passed as ForwardOptions::logit_positions so that the vocabulary head runs there only.
torch::Tensor scoring_positions(const Batch& batch);

// Token cross-entropy summed over the trained tokens of `batch`, weighted by its loss mask.
// `logits` ([n, V]) is the output of a forward pass given scoring_positions(batch).
torch::Tensor trained_token_loss_sum(const torch::Tensor& logits, const Batch& batch);

// The same sum computed from the final hidden states with chunked_cross_entropy, so the
// [n, V] logits never exist whole; what training uses. Sets the mask, positions and
// return_hidden of `options`.
torch::Tensor trained_token_loss(CausalLM& model, const Batch& batch, ForwardOptions options);

// Stop requests: SIGTERM and SIGINT set a flag that train() checks after each step, so the
// run writes a checkpoint and returns instead of dying mid-step.
void install_stop_signal_handlers();
// Puts back the default action (terminate) for SIGTERM and SIGINT, for the stages of a longer
// job that have no stop points of their own.
void restore_default_stop_signal_handlers();
void request_training_stop();
bool training_stop_requested();
void clear_training_stop_request();

}  // namespace sz
