// Learning-rate scheduler interface used by the trainer once per optimizer step.
//
// Step numbers are 1-based: the first call to step() passes step 1, and step() must be called
// once per optimizer step, before optimizer.step(), with consecutive step numbers. The
// returned learning rate applies to the optimizer step being taken.
//
// Schedulers (make_scheduler names):
//   "aecs"      Adaptive Event-Control Scheduler as in the reference implementation
//               (JuiceB0xC0de/AECS-scheduler at aa47a77), quirks included;
//   "aecs2"     the same controller with three corrections (see aecs.h);
//   "cosine"    linear warm-up, then cosine decay to a minimum LR ratio;
//   "constant"  optional linear warm-up, then the base LR;
//   "wsd"       warm-up, stable, then decay over the last fraction of training.
//
// A scheduler's state (state()) is JSON. Its step-to-step doubles are exact hex-float strings,
// and its options are JSON numbers, which nlohmann-json writes with enough digits to read back
// exactly. A scheduler restored with load_state() or restore_scheduler() therefore continues
// bit-identically.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sz {

// Measurements the trainer passes for one optimizer step.
struct StepInput {
    int64_t step = 0;       // 1-based index of the optimizer step about to be taken
    double loss = 0.0;      // training loss of this step
    double grad_norm = 0.0; // global L2 norm of all trained gradients, before clipping
    // Cosine between this step's flattened gradient and the previous step's, absent on step 1.
    // aecs2 requires it from step 2 on, and aecs reads it only with push_grad_cosine set.
    std::optional<double> grad_cosine;
};

// Something that fired during a step and the mode change it caused, if any.
struct SchedulerEvent {
    int64_t step = 0;
    // AECS signal (GRADIENT_SPIKE, LOSS_SPIKE, UNSTABLE, REDUNDANT, PLATEAU), AECS rule
    // (recovery_max_duration, quiet_cooldown), or "phase" for the fixed schedules.
    std::string name;
    std::string cause;        // measured values behind it, e.g. "z 5.77 > 2.5"
    std::string from_mode;
    std::string to_mode;      // equals from_mode when the event changed nothing
    std::string ignored_reason;  // why it changed nothing; empty when it changed the mode
    double lr_before = 0.0;   // LR of the previous step, the one in force before this step's

    bool changed_mode() const { return from_mode != to_mode; }
    // One log line, e.g. "step 120: PLATEAU (mean of last 10 grad norms 5e-05 < 0.0001):
    // mode BASELINE -> EXPLORE".
    std::string describe() const;
};

// Learning rate and optimizer adjustments for one optimizer step.
struct StepOutput {
    double lr = 0.0;        // absolute learning rate, base_lr * lr_scale
    double lr_scale = 0.0;  // multiplier of each param group's base LR
    std::string mode;       // AECS mode, or the fixed schedule's phase ("warmup", "decay", ...)
    // Adam beta1 = beta1_scale * base beta1; beta2 is never changed. Applies only to param
    // groups that have betas.
    double beta1_scale = 1.0;
    // Weight decay = weight_decay_scale * base weight decay, for groups that have one.
    double weight_decay_scale = 1.0;
    // Events of this step. An AECS condition that persists fires on every step, usually ignored,
    // so a trainer may log only the events where changed_mode() is true.
    std::vector<SchedulerEvent> events;
    // Signals the scheduler computed this step, by name (AECS: grad_norm_z, ...). Empty for
    // the fixed schedules.
    std::map<std::string, double> signals;
};

class LrScheduler {
public:
    // base_lr is the optimizer's learning rate, the one lr_scale multiplies. Throws sz::Error
    // unless it is finite and positive.
    explicit LrScheduler(double base_lr);
    virtual ~LrScheduler() = default;
    LrScheduler(const LrScheduler&) = delete;
    LrScheduler& operator=(const LrScheduler&) = delete;

    virtual std::string name() const = 0;
    // The scheduler's options as a JSON object, in the form make_scheduler accepts.
    virtual nlohmann::json config_json() const = 0;

    double base_lr() const { return base_lr_; }
    // Optimizer steps taken so far, 0 before the first step().
    int64_t steps() const { return steps_; }

    // Advances one optimizer step. Throws sz::Error, and changes nothing, when input.step is not
    // steps() + 1 or the input is invalid for this scheduler (for AECS: a non-finite loss or
    // grad norm, a cosine outside [-1, 1], or for aecs2 a missing cosine).
    StepOutput step(const StepInput& input);

    // Full state for a checkpoint: name, base LR, options and the step-to-step variables.
    nlohmann::json state() const;
    // Replaces the step-to-step variables with a state() saved by a scheduler of the same
    // name, base LR and options. Throws sz::Error naming the first mismatch or invalid field,
    // and leaves this scheduler unchanged when it throws.
    void load_state(const nlohmann::json& state);

protected:
    // Computes the output for step steps() + 1; the base class has validated the step number
    // and increments steps() after it returns.
    virtual StepOutput advance(const StepInput& input) = 0;
    virtual nlohmann::json save_variables() const = 0;
    // Must parse all of `variables` before changing any member, so that a throw leaves the
    // scheduler unchanged. steps is the step count saved with them.
    virtual void load_variables(const nlohmann::json& variables, int64_t steps) = 0;

private:
    double base_lr_;
    int64_t steps_ = 0;
};

// Names make_scheduler accepts.
const std::vector<std::string>& scheduler_names();

// Builds the scheduler `name` for an optimizer whose LR is base_lr. `options` is a JSON object
// of config fields (see aecs.h and fixed_schedules.h); fields left out keep their defaults.
// Throws sz::Error for an unknown name, an unknown or mistyped option, or an invalid value.
std::unique_ptr<LrScheduler> make_scheduler(const std::string& name, double base_lr,
                                            const nlohmann::json& options = nlohmann::json::object());

// Builds a scheduler from a state() and loads that state into it.
std::unique_ptr<LrScheduler> restore_scheduler(const nlohmann::json& state);

// Exact text form of a double for JSON state: a hex float such as "0x1.999999999999ap-4",
// or "inf", "-inf", "nan". Independent of the C locale.
std::string exact_double_to_string(double value);
// Parses exact_double_to_string's output. Throws sz::Error naming `what` on any other text.
double exact_double_from_string(const std::string& text, const std::string& what);

}  // namespace sz
