#include "train/schedule/fixed_schedules.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "train/schedule/json_fields.h"

namespace sz {

namespace {

constexpr double kPi = 3.14159265358979323846;

void require_steps(int64_t value, int64_t minimum, const char* scheduler, const char* field) {
    if (value < minimum) {
        fail("invalid {} option {} = {}: expected an integer >= {}", scheduler, field, value, minimum);
    }
}

void require_fraction(double value, const char* scheduler, const char* field) {
    if (!(value >= 0.0 && value <= 1.0)) {
        fail("invalid {} option {} = {}: expected a number in [0, 1]", scheduler, field, value);
    }
}

// Linear warm-up from 0: step W is the first at scale 1.
double warmup_scale(int64_t step, int64_t warmup_steps) {
    return static_cast<double>(step) / static_cast<double>(warmup_steps);
}

}  // namespace

// ---- constant ----

void ConstantScheduleConfig::validate() const { require_steps(warmup_steps, 0, "constant", "warmup_steps"); }

nlohmann::json ConstantScheduleConfig::to_json() const { return {{"warmup_steps", warmup_steps}}; }

ConstantScheduleConfig ConstantScheduleConfig::from_json(const nlohmann::json& options) {
    ConstantScheduleConfig config;
    schedule_json::OptionReader reader(options, "constant");
    reader.read("warmup_steps", config.warmup_steps);
    reader.finish();
    config.validate();
    return config;
}

ConstantScheduler::ConstantScheduler(double base_lr, const ConstantScheduleConfig& config)
    : FixedScheduler(base_lr), config_(config) {
    config_.validate();
}

double ConstantScheduler::lr_scale_at(int64_t step) const {
    return step < config_.warmup_steps ? warmup_scale(step, config_.warmup_steps) : 1.0;
}

std::string ConstantScheduler::phase_at(int64_t step) const {
    return step < config_.warmup_steps ? "warmup" : "constant";
}

// ---- cosine ----

void CosineScheduleConfig::validate() const {
    require_steps(warmup_steps, 0, "cosine", "warmup_steps");
    require_steps(total_steps, 1, "cosine", "total_steps");
    if (warmup_steps > total_steps) {
        fail("invalid cosine options: warmup_steps {} exceeds total_steps {}", warmup_steps, total_steps);
    }
    require_fraction(min_lr_ratio, "cosine", "min_lr_ratio");
}

nlohmann::json CosineScheduleConfig::to_json() const {
    return {{"warmup_steps", warmup_steps}, {"total_steps", total_steps}, {"min_lr_ratio", min_lr_ratio}};
}

CosineScheduleConfig CosineScheduleConfig::from_json(const nlohmann::json& options) {
    CosineScheduleConfig config;
    schedule_json::OptionReader reader(options, "cosine");
    reader.read("warmup_steps", config.warmup_steps);
    reader.read("total_steps", config.total_steps);
    reader.read("min_lr_ratio", config.min_lr_ratio);
    reader.finish();
    config.validate();
    return config;
}

CosineScheduler::CosineScheduler(double base_lr, const CosineScheduleConfig& config)
    : FixedScheduler(base_lr), config_(config) {
    config_.validate();
}

double CosineScheduler::lr_scale_at(int64_t step) const {
    if (step < config_.warmup_steps) {
        return warmup_scale(step, config_.warmup_steps);
    }
    const double span = static_cast<double>(std::max<int64_t>(config_.total_steps - config_.warmup_steps, 1));
    const double progress = std::min(1.0, static_cast<double>(step - config_.warmup_steps) / span);
    const double cosine = 0.5 * (1.0 + std::cos(kPi * progress));
    return config_.min_lr_ratio + (1.0 - config_.min_lr_ratio) * cosine;
}

std::string CosineScheduler::phase_at(int64_t step) const {
    return step < config_.warmup_steps ? "warmup" : "decay";
}

// ---- wsd ----

const char* decay_shape_name(DecayShape shape) {
    switch (shape) {
        case DecayShape::linear:
            return "linear";
        case DecayShape::cosine:
            return "cosine";
        case DecayShape::sqrt:
            return "sqrt";
    }
    return "linear";
}

int64_t WsdScheduleConfig::decay_steps() const {
    return std::llround(decay_fraction * static_cast<double>(total_steps));
}

void WsdScheduleConfig::validate() const {
    require_steps(warmup_steps, 0, "wsd", "warmup_steps");
    require_steps(total_steps, 1, "wsd", "total_steps");
    require_fraction(decay_fraction, "wsd", "decay_fraction");
    require_fraction(min_lr_ratio, "wsd", "min_lr_ratio");
    if (warmup_steps + decay_steps() > total_steps) {
        fail("invalid wsd options: warmup_steps {} plus {} decay steps (decay_fraction {} of "
             "total_steps {}) exceed total_steps; shorten the warm-up or the decay",
             warmup_steps, decay_steps(), decay_fraction, total_steps);
    }
}

nlohmann::json WsdScheduleConfig::to_json() const {
    return {
        {"warmup_steps", warmup_steps},
        {"total_steps", total_steps},
        {"decay_fraction", decay_fraction},
        {"decay_shape", decay_shape_name(decay_shape)},
        {"min_lr_ratio", min_lr_ratio},
    };
}

WsdScheduleConfig WsdScheduleConfig::from_json(const nlohmann::json& options) {
    WsdScheduleConfig config;
    schedule_json::OptionReader reader(options, "wsd");
    reader.read("warmup_steps", config.warmup_steps);
    reader.read("total_steps", config.total_steps);
    reader.read("decay_fraction", config.decay_fraction);
    std::string shape = decay_shape_name(config.decay_shape);
    reader.read("decay_shape", shape);
    reader.read("min_lr_ratio", config.min_lr_ratio);
    reader.finish();

    if (shape == "linear") {
        config.decay_shape = DecayShape::linear;
    } else if (shape == "cosine") {
        config.decay_shape = DecayShape::cosine;
    } else if (shape == "sqrt") {
        config.decay_shape = DecayShape::sqrt;
    } else {
        fail("invalid wsd option decay_shape '{}': expected linear, cosine or sqrt", shape);
    }
    config.validate();
    return config;
}

WsdScheduler::WsdScheduler(double base_lr, const WsdScheduleConfig& config)
    : FixedScheduler(base_lr), config_(config) {
    config_.validate();
}

double WsdScheduler::lr_scale_at(int64_t step) const {
    if (step < config_.warmup_steps) {
        return warmup_scale(step, config_.warmup_steps);
    }
    const int64_t decay_steps = config_.decay_steps();
    const int64_t decay_start = config_.total_steps - decay_steps;
    // With no decay steps the LR stays at base_lr, also after total_steps.
    if (decay_steps == 0 || step <= decay_start) {
        return 1.0;
    }
    const double x = std::min(1.0, static_cast<double>(step - decay_start) / static_cast<double>(decay_steps));
    double remaining = 1.0 - x;
    if (config_.decay_shape == DecayShape::cosine) {
        remaining = 0.5 * (1.0 + std::cos(kPi * x));
    } else if (config_.decay_shape == DecayShape::sqrt) {
        remaining = 1.0 - std::sqrt(x);
    }
    return config_.min_lr_ratio + (1.0 - config_.min_lr_ratio) * remaining;
}

std::string WsdScheduler::phase_at(int64_t step) const {
    if (step < config_.warmup_steps) {
        return "warmup";
    }
    const int64_t decay_steps = config_.decay_steps();
    if (decay_steps == 0 || step <= config_.total_steps - decay_steps) {
        return "stable";
    }
    return "decay";
}

// ---- shared stepping ----

StepOutput FixedScheduler::advance(const StepInput& input) {
    StepOutput output;
    output.lr_scale = lr_scale_at(input.step);
    output.lr = base_lr() * output.lr_scale;
    output.mode = phase_at(input.step);

    if (input.step > 1) {
        const std::string previous_phase = phase_at(input.step - 1);
        if (previous_phase != output.mode) {
            SchedulerEvent event;
            event.step = input.step;
            event.name = "phase";
            event.cause = fmt::format("{} phase starts at step {}", output.mode, input.step);
            event.from_mode = previous_phase;
            event.to_mode = output.mode;
            event.lr_before = base_lr() * lr_scale_at(input.step - 1);
            output.events.push_back(std::move(event));
        }
    }
    return output;
}

nlohmann::json FixedScheduler::save_variables() const { return nlohmann::json::object(); }

void FixedScheduler::load_variables(const nlohmann::json& variables, int64_t steps) {
    if (!variables.is_object() || !variables.empty()) {
        fail("invalid {} state: expected an empty 'variables' object, got {}", name(), variables.dump());
    }
}

}  // namespace sz
