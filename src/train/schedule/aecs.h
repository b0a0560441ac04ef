// AECS, the Adaptive Event-Control Scheduler: a cosine LR backbone scaled by a mode that
// events in the loss and gradient-norm history switch. "aecs" reproduces the reference
// implementation JuiceB0xC0de/AECS-scheduler at commit aa47a77 (aecs/scheduler.py).
// NOTE: that revision's behaviour was ported from a written description, not from its source.
// Later upstream revisions (09c419b, and the tests of 3628b96) differ: they clamp p, go on to
// the event's mode on the step that ends RECOVERY by recovery_max_steps, and update the
// z-score EMA incrementally instead of over the window.
//
// Each step, in this order:
//   1. push the loss and grad norm into ring buffers of length W = max(loss_window,
//      grad_window); aecs2 (and aecs with push_grad_cosine) also push the gradient cosine;
//   2. increment the step count t and the steps spent in the current mode (mode_steps);
//   3. detect at most one event, from step event_persistence + 5 on (10 by default), in this
//      priority order:
//        GRADIENT_SPIKE  z > instability_z_thresh                               -> RECOVERY
//        LOSS_SPIKE      recent_min > 0 and loss > loss_spike_ratio * recent_min -> RECOVERY
//        UNSTABLE        z > 1 and grad-norm variance > reentry_grad_norm_tol  -> STABILIZE
//        REDUNDANT       mean gradient cosine > redundancy_thresh               -> EXPLORE
//        PLATEAU         mean of the last 10 grad norms < plateau_grad_norm_thresh -> EXPLORE
//      where z is the grad-norm z-score (aecs_grad_norm_zscore), recent_min the minimum of the
//      last 10 losses including this one, the variance the population variance of the window
//      (0 below 5 samples), and the cosine mean needs at least W/2 stored cosines (else 0);
//   4. only on a step where an event fired, apply the transition rules:
//        a. outside BASELINE, do nothing while mode_steps < cooldown_steps (leaving BASELINE
//           has no cooldown);
//        b. in RECOVERY, do nothing while mode_steps < recovery_min_steps; once
//           mode_steps >= recovery_max_steps, go to BASELINE (cause recovery_max_duration)
//           and do nothing else this step;
//        c. do nothing when the event's mode is the current one, and do not reset mode_steps;
//        d. otherwise enter the event's mode with mode_steps = 0;
//   5. LR = base_lr * backbone(t) * mode factor, where backbone(t) = t / warmup_steps while
//      t < warmup_steps, then 0.5 * (1 + cos(pi * p)) with
//      p = (t - warmup_steps) / max(total_steps - warmup_steps, 1). Mode factors: BASELINE 1,
//      RECOVERY recovery_lr_factor, EXPLORE explore_lr_factor, STABILIZE
//      0.8 * recovery_lr_factor. RECOVERY also scales Adam beta1 by recovery_momentum_factor
//      and weight decay by 1.2; EXPLORE scales weight decay by 0.5.
//
// "aecs" keeps the reference's behaviour, including what looks unintended:
//   - p is not clamped, so past total_steps the LR rises again, and there is no LR floor;
//   - no event leads back to BASELINE, so EXPLORE and STABILIZE last until training ends
//     unless another event moves them after the cooldown, and RECOVERY returns only when an
//     event fires after recovery_max_steps;
//   - the gradient cosines are not fed by step(), so REDUNDANT never fires unless
//     push_grad_cosine is set (the reference caller has to call push_grad_cosine itself);
//   - the z-score EMA is recomputed over the whole window every step and includes the
//     newest grad norm in its mean;
//   - base_lr, redundancy_window, recovery_clip_boost and explore_noise_std are accepted
//     but never read.
// "aecs2" changes three things and nothing else:
//   - p is clamped at 1, so the LR stays at 0 after total_steps;
//   - a mode returns to BASELINE (cause quiet_cooldown) after quiet_steps steps without any
//     event, once it has lasted cooldown_steps (and recovery_min_steps in RECOVERY). RECOVERY
//     and STABILIZE return only while the grad-norm variance is at most reentry_grad_norm_tol,
//     which applies the reference's re-entry guard that its own rules never reach;
//   - the gradient cosine of every step from step 2 on is required and pushed, so REDUNDANT
//     can fire.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/schedule/scheduler.h"

namespace sz {

enum class AecsVariant {
    reference,  // "aecs"
    corrected,  // "aecs2"
};

enum class AecsMode { baseline, recovery, explore, stabilize };
constexpr int kAecsModeCount = 4;

// "BASELINE", "RECOVERY", "EXPLORE" or "STABILIZE", the reference's mode strings.
const char* aecs_mode_name(AecsMode mode);

// Reference defaults. Steps count optimizer steps; thresholds on grad norms are in the units
// of the global L2 gradient norm the trainer passes. The reference's verbose flag and its
// layer_grad_norms input are not ported: step() returns transitions as events for the
// trainer's log, and the reference stores per-layer norms without reading them.
struct AecsConfig {
    double base_lr = 5e-5;           // not read: the LR is the scheduler's base_lr
    int64_t warmup_steps = 500;      // steps of linear warm-up from 0
    int64_t total_steps = 10000;     // step at which the cosine reaches 0
    int64_t loss_window = 50;        // steps; the ring buffers hold max(loss_window, grad_window)
    int64_t grad_window = 50;        // steps
    int64_t redundancy_window = 20;  // not read
    double instability_z_thresh = 2.5;        // GRADIENT_SPIKE when the z-score exceeds it
    double loss_spike_ratio = 1.15;           // LOSS_SPIKE when loss exceeds this * recent minimum
    double redundancy_thresh = 0.98;          // REDUNDANT when the mean gradient cosine exceeds it
    double plateau_grad_norm_thresh = 1e-4;   // PLATEAU when the last 10 grad norms average below it
    double recovery_lr_factor = 0.3;          // RECOVERY LR factor; STABILIZE uses 0.8 times it
    double recovery_momentum_factor = 0.5;    // RECOVERY multiplies Adam beta1 by it
    double recovery_clip_boost = 1.5;         // not read
    int64_t recovery_min_steps = 100;         // steps before an event may leave RECOVERY
    int64_t recovery_max_steps = 1000;        // steps after which an event returns RECOVERY to BASELINE
    double explore_lr_factor = 1.5;           // EXPLORE LR factor
    double explore_noise_std = 1e-5;          // not read
    int64_t event_persistence = 5;            // only use: no events before step event_persistence + 5
    int64_t cooldown_steps = 200;             // steps before an event may leave a non-BASELINE mode
    // Grad-norm variance (squared grad-norm units) above which z > 1 counts as UNSTABLE, and
    // at most which aecs2 lets RECOVERY or STABILIZE return to BASELINE.
    double reentry_grad_norm_tol = 0.1;
    // aecs only: push StepInput::grad_cosine, as a reference caller that calls
    // buffer.push_grad_cosine each step would. Off, like the reference's trainer callback.
    bool push_grad_cosine = false;
    // aecs2 only: event-free steps after which a non-BASELINE mode returns to BASELINE.
    int64_t quiet_steps = 200;

    // Throws sz::Error naming the first invalid field.
    void validate() const;
    // Options in make_scheduler's form; aecs omits quiet_steps and aecs2 push_grad_cosine.
    nlohmann::json to_json(AecsVariant variant) const;
    // Reads make_scheduler options over the defaults; rejects the other variant's only field.
    static AecsConfig from_json(const nlohmann::json& options, AecsVariant variant);
};

// The reference's "ZClip-style" grad-norm z-score over the window, oldest first. Returns 0
// below 5 samples. Starting from mu = oldest and var = 0, each later g updates
// mu = 0.97 * mu + 0.03 * g, then var = 0.97 * var + 0.03 * (g - mu)^2 with the updated mu;
// z = (newest - mu) / sqrt(max(var, 1e-8)).
double aecs_grad_norm_zscore(const std::deque<double>& grad_norms);

class AecsScheduler : public LrScheduler {
public:
    // Throws sz::Error when base_lr or the config is invalid.
    AecsScheduler(double base_lr, const AecsConfig& config, AecsVariant variant);

    std::string name() const override;
    nlohmann::json config_json() const override;

    const AecsConfig& config() const { return config_; }
    AecsVariant variant() const { return variant_; }
    AecsMode mode() const { return mode_; }
    // Steps since the current mode was entered, counting the current step.
    int64_t mode_steps() const { return mode_steps_; }
    // Every mode change so far, oldest first (the reference's transition_log).
    const std::vector<SchedulerEvent>& transitions() const { return transitions_; }
    // How often each mode was entered, indexed by AecsMode (the reference's event_counter).
    const std::array<int64_t, kAecsModeCount>& mode_entries() const { return mode_entries_; }

protected:
    StepOutput advance(const StepInput& input) override;
    nlohmann::json save_variables() const override;
    void load_variables(const nlohmann::json& variables, int64_t steps) override;

private:
    struct Detection {
        std::string name;  // empty when no event fired
        std::string cause;
        AecsMode target = AecsMode::baseline;
    };

    void push_signals(const StepInput& input);
    Detection detect_event(int64_t step, StepOutput& output) const;
    void apply_transition_rules(const Detection& detection, int64_t step, StepOutput& output);
    void maybe_return_when_quiet(int64_t step, StepOutput& output);
    void enter_mode(AecsMode target, const std::string& name, const std::string& cause, int64_t step,
                    StepOutput& output);
    void record_ignored(const Detection& detection, const std::string& reason, int64_t step,
                        StepOutput& output) const;
    double backbone(int64_t step) const;
    double mode_lr_factor() const;
    size_t window() const;

    AecsConfig config_;
    AecsVariant variant_;

    std::deque<double> losses_;
    std::deque<double> grad_norms_;
    std::deque<double> grad_cosines_;
    AecsMode mode_ = AecsMode::baseline;
    int64_t mode_steps_ = 0;
    int64_t steps_since_event_ = 0;  // aecs2's quiet counter; 0 on a step where an event fired
    double last_lr_ = 0.0;           // LR returned by the previous step; base_lr before step 1
    std::vector<SchedulerEvent> transitions_;
    std::array<int64_t, kAecsModeCount> mode_entries_{};
};

}  // namespace sz
