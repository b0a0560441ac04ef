// Fixed learning-rate schedules: the LR depends only on the step number. With s the 1-based
// step, W = warmup_steps, T = total_steps and r = min_lr_ratio:
//   warm-up (all three):  scale = s / W while s < W, so step W is the first at the full LR;
//   constant:             scale = 1 from step W on;
//   cosine:               p = min(1, (s - W) / max(T - W, 1)), scale = r + (1 - r) * 0.5 * (1 + cos(pi p));
//   wsd:                  D = round(decay_fraction * T) decay steps; scale = 1 until step T - D,
//                         then x = min(1, (s - (T - D)) / D) and scale = r + (1 - r) * f(x) with
//                         f = 1 - x (linear), 0.5 * (1 + cos(pi x)) (cosine) or 1 - sqrt(x) (sqrt).
// The warm-up and cosine match AECS's backbone, so with the defaults (W = 500, T = 10000,
// r = 0) "cosine" is AECS's LR in BASELINE, clamped after T like aecs2.
// After T the LR stays at r * base_lr, except for wsd with decay_fraction 0, which keeps base_lr.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "train/schedule/scheduler.h"

namespace sz {

struct ConstantScheduleConfig {
    int64_t warmup_steps = 0;  // steps of linear warm-up from 0; 0 = none

    void validate() const;
    nlohmann::json to_json() const;
    static ConstantScheduleConfig from_json(const nlohmann::json& options);
};

struct CosineScheduleConfig {
    int64_t warmup_steps = 500;   // steps of linear warm-up from 0
    int64_t total_steps = 10000;  // step at which the LR reaches min_lr_ratio * base_lr
    double min_lr_ratio = 0.0;    // final LR as a fraction of base_lr, in [0, 1]

    void validate() const;
    nlohmann::json to_json() const;
    static CosineScheduleConfig from_json(const nlohmann::json& options);
};

enum class DecayShape { linear, cosine, sqrt };

// "linear", "cosine" or "sqrt".
const char* decay_shape_name(DecayShape shape);

struct WsdScheduleConfig {
    int64_t warmup_steps = 500;   // steps of linear warm-up from 0
    int64_t total_steps = 10000;  // step at which the decay reaches min_lr_ratio * base_lr
    double decay_fraction = 0.1;  // share of total_steps spent decaying, in [0, 1]
    DecayShape decay_shape = DecayShape::linear;  // option "decay_shape": "linear", "cosine", "sqrt"
    double min_lr_ratio = 0.0;    // final LR as a fraction of base_lr, in [0, 1]

    // Steps of decay, round(decay_fraction * total_steps).
    int64_t decay_steps() const;
    // Throws sz::Error for an invalid field, or when warm-up and decay do not fit in total_steps.
    void validate() const;
    nlohmann::json to_json() const;
    static WsdScheduleConfig from_json(const nlohmann::json& options);
};

// A schedule whose LR scale and phase are functions of the step. Emits a "phase" event on
// the first step of each phase after the first.
class FixedScheduler : public LrScheduler {
public:
    using LrScheduler::LrScheduler;

    // LR scale for the 1-based step `step` (step >= 1).
    virtual double lr_scale_at(int64_t step) const = 0;
    // Phase name for `step`: "warmup", then "constant" (constant), "decay" (cosine), or
    // "stable" and then "decay" (wsd).
    virtual std::string phase_at(int64_t step) const = 0;

protected:
    StepOutput advance(const StepInput& input) override;
    nlohmann::json save_variables() const override;
    void load_variables(const nlohmann::json& variables, int64_t steps) override;
};

class ConstantScheduler : public FixedScheduler {
public:
    ConstantScheduler(double base_lr, const ConstantScheduleConfig& config);

    std::string name() const override { return "constant"; }
    nlohmann::json config_json() const override { return config_.to_json(); }
    double lr_scale_at(int64_t step) const override;
    std::string phase_at(int64_t step) const override;

private:
    ConstantScheduleConfig config_;
};

class CosineScheduler : public FixedScheduler {
public:
    CosineScheduler(double base_lr, const CosineScheduleConfig& config);

    std::string name() const override { return "cosine"; }
    nlohmann::json config_json() const override { return config_.to_json(); }
    double lr_scale_at(int64_t step) const override;
    std::string phase_at(int64_t step) const override;

private:
    CosineScheduleConfig config_;
};

class WsdScheduler : public FixedScheduler {
public:
    WsdScheduler(double base_lr, const WsdScheduleConfig& config);

    std::string name() const override { return "wsd"; }
    nlohmann::json config_json() const override { return config_.to_json(); }
    double lr_scale_at(int64_t step) const override;
    std::string phase_at(int64_t step) const override;

private:
    WsdScheduleConfig config_;
};

}  // namespace sz
