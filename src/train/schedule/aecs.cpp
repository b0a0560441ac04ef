#include "train/schedule/aecs.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "train/schedule/json_fields.h"

namespace sz {

namespace {

// Windows the reference hard-codes: the recent-minimum loss and the PLATEAU mean both look at
// the last 10 steps, and the z-score and variance need 5 samples.
constexpr size_t kRecentSteps = 10;
constexpr size_t kMinStatisticSamples = 5;
// The UNSTABLE z-score floor, hard-coded in the reference next to the configurable threshold.
constexpr double kUnstableZ = 1.0;
constexpr double kStabilizeOfRecoveryFactor = 0.8;
constexpr double kExploreWeightDecayScale = 0.5;
constexpr double kRecoveryWeightDecayScale = 1.2;
constexpr double kPi = 3.14159265358979323846;

struct Signals {
    double z = 0.0;
    double variance = 0.0;
    double recent_min_loss = 0.0;
    double redundancy = 0.0;
    double recent_mean_grad_norm = 0.0;
};

double population_variance(const std::deque<double>& values) {
    if (values.size() < kMinStatisticSamples) {
        return 0.0;
    }
    double sum = 0.0;
    for (double value : values) {
        sum += value;
    }
    const double mean = sum / static_cast<double>(values.size());
    double squares = 0.0;
    for (double value : values) {
        squares += (value - mean) * (value - mean);
    }
    return squares / static_cast<double>(values.size());
}

double recent_min(const std::deque<double>& values) {
    const size_t count = std::min(kRecentSteps, values.size());
    return *std::min_element(values.end() - static_cast<std::ptrdiff_t>(count), values.end());
}

double recent_mean(const std::deque<double>& values) {
    const size_t count = std::min(kRecentSteps, values.size());
    double sum = 0.0;
    for (size_t i = values.size() - count; i < values.size(); ++i) {
        sum += values[i];
    }
    return sum / static_cast<double>(count);
}

// Mean stored cosine, or 0 until at least half the window (at least 1) is filled.
double redundancy_score(const std::deque<double>& cosines, size_t window) {
    if (cosines.size() < std::max<size_t>(1, window / 2)) {
        return 0.0;
    }
    double sum = 0.0;
    for (double cosine : cosines) {
        sum += cosine;
    }
    return sum / static_cast<double>(cosines.size());
}

void push_bounded(std::deque<double>& values, double value, size_t window) {
    values.push_back(value);
    while (values.size() > window) {
        values.pop_front();
    }
}

AecsMode parse_mode(const std::string& name, const std::string& what) {
    for (int i = 0; i < kAecsModeCount; ++i) {
        if (name == aecs_mode_name(static_cast<AecsMode>(i))) {
            return static_cast<AecsMode>(i);
        }
    }
    fail("invalid {}: unknown mode '{}' (expected BASELINE, RECOVERY, EXPLORE or STABILIZE)", what, name);
}

void require_at_least(int64_t value, int64_t minimum, const char* field) {
    if (value < minimum) {
        fail("invalid AECS option {} = {}: expected an integer >= {}", field, value, minimum);
    }
}

void require_finite(double value, const char* field) {
    if (!std::isfinite(value)) {
        fail("invalid AECS option {} = {}: expected a finite number", field, value);
    }
}

void require_positive(double value, const char* field) {
    if (!(value > 0.0) || !std::isfinite(value)) {
        fail("invalid AECS option {} = {}: expected a finite number > 0", field, value);
    }
}

}  // namespace

const char* aecs_mode_name(AecsMode mode) {
    switch (mode) {
        case AecsMode::baseline:
            return "BASELINE";
        case AecsMode::recovery:
            return "RECOVERY";
        case AecsMode::explore:
            return "EXPLORE";
        case AecsMode::stabilize:
            return "STABILIZE";
    }
    return "BASELINE";
}

void AecsConfig::validate() const {
    require_finite(base_lr, "base_lr");
    require_at_least(warmup_steps, 0, "warmup_steps");
    require_at_least(total_steps, 1, "total_steps");
    require_at_least(loss_window, 1, "loss_window");
    require_at_least(grad_window, 1, "grad_window");
    require_at_least(redundancy_window, 0, "redundancy_window");
    require_finite(instability_z_thresh, "instability_z_thresh");
    require_positive(loss_spike_ratio, "loss_spike_ratio");
    require_finite(redundancy_thresh, "redundancy_thresh");
    require_finite(plateau_grad_norm_thresh, "plateau_grad_norm_thresh");
    require_positive(recovery_lr_factor, "recovery_lr_factor");
    require_positive(recovery_momentum_factor, "recovery_momentum_factor");
    require_finite(recovery_clip_boost, "recovery_clip_boost");
    require_at_least(recovery_min_steps, 0, "recovery_min_steps");
    require_at_least(recovery_max_steps, 0, "recovery_max_steps");
    require_positive(explore_lr_factor, "explore_lr_factor");
    require_finite(explore_noise_std, "explore_noise_std");
    require_at_least(event_persistence, 0, "event_persistence");
    require_at_least(cooldown_steps, 0, "cooldown_steps");
    require_finite(reentry_grad_norm_tol, "reentry_grad_norm_tol");
    require_at_least(quiet_steps, 0, "quiet_steps");
}

nlohmann::json AecsConfig::to_json(AecsVariant variant) const {
    nlohmann::json options = {
        {"base_lr", base_lr},
        {"warmup_steps", warmup_steps},
        {"total_steps", total_steps},
        {"loss_window", loss_window},
        {"grad_window", grad_window},
        {"redundancy_window", redundancy_window},
        {"instability_z_thresh", instability_z_thresh},
        {"loss_spike_ratio", loss_spike_ratio},
        {"redundancy_thresh", redundancy_thresh},
        {"plateau_grad_norm_thresh", plateau_grad_norm_thresh},
        {"recovery_lr_factor", recovery_lr_factor},
        {"recovery_momentum_factor", recovery_momentum_factor},
        {"recovery_clip_boost", recovery_clip_boost},
        {"recovery_min_steps", recovery_min_steps},
        {"recovery_max_steps", recovery_max_steps},
        {"explore_lr_factor", explore_lr_factor},
        {"explore_noise_std", explore_noise_std},
        {"event_persistence", event_persistence},
        {"cooldown_steps", cooldown_steps},
        {"reentry_grad_norm_tol", reentry_grad_norm_tol},
    };
    if (variant == AecsVariant::reference) {
        options["push_grad_cosine"] = push_grad_cosine;
    } else {
        options["quiet_steps"] = quiet_steps;
    }
    return options;
}

AecsConfig AecsConfig::from_json(const nlohmann::json& options, AecsVariant variant) {
    AecsConfig config;
    schedule_json::OptionReader reader(options, variant == AecsVariant::reference ? "aecs" : "aecs2");
    reader.read("base_lr", config.base_lr);
    reader.read("warmup_steps", config.warmup_steps);
    reader.read("total_steps", config.total_steps);
    reader.read("loss_window", config.loss_window);
    reader.read("grad_window", config.grad_window);
    reader.read("redundancy_window", config.redundancy_window);
    reader.read("instability_z_thresh", config.instability_z_thresh);
    reader.read("loss_spike_ratio", config.loss_spike_ratio);
    reader.read("redundancy_thresh", config.redundancy_thresh);
    reader.read("plateau_grad_norm_thresh", config.plateau_grad_norm_thresh);
    reader.read("recovery_lr_factor", config.recovery_lr_factor);
    reader.read("recovery_momentum_factor", config.recovery_momentum_factor);
    reader.read("recovery_clip_boost", config.recovery_clip_boost);
    reader.read("recovery_min_steps", config.recovery_min_steps);
    reader.read("recovery_max_steps", config.recovery_max_steps);
    reader.read("explore_lr_factor", config.explore_lr_factor);
    reader.read("explore_noise_std", config.explore_noise_std);
    reader.read("event_persistence", config.event_persistence);
    reader.read("cooldown_steps", config.cooldown_steps);
    reader.read("reentry_grad_norm_tol", config.reentry_grad_norm_tol);
    if (variant == AecsVariant::reference) {
        reader.read("push_grad_cosine", config.push_grad_cosine);
    } else {
        reader.read("quiet_steps", config.quiet_steps);
    }
    reader.finish();
    config.validate();
    return config;
}

double aecs_grad_norm_zscore(const std::deque<double>& grad_norms) {
    if (grad_norms.size() < kMinStatisticSamples) {
        return 0.0;
    }
    // NOTE: the weights 0.97 and 0.03 follow the description of aa47a77. Revision 09c419b
    // computes 1 - 0.97 (= 0.030000000000000027); if aa47a77 did too, z differs in the last bits.
    double mu = grad_norms.front();
    double var = 0.0;
    for (size_t i = 1; i < grad_norms.size(); ++i) {
        const double g = grad_norms[i];
        mu = 0.97 * mu + 0.03 * g;
        var = 0.97 * var + 0.03 * (g - mu) * (g - mu);
    }
    const double sigma = std::sqrt(std::max(var, 1e-8));
    if (sigma < 1e-8) {
        return 0.0;
    }
    return (grad_norms.back() - mu) / sigma;
}

AecsScheduler::AecsScheduler(double base_lr, const AecsConfig& config, AecsVariant variant)
    : LrScheduler(base_lr), config_(config), variant_(variant), last_lr_(base_lr) {
    config_.validate();
}

std::string AecsScheduler::name() const {
    return variant_ == AecsVariant::reference ? "aecs" : "aecs2";
}

nlohmann::json AecsScheduler::config_json() const { return config_.to_json(variant_); }

size_t AecsScheduler::window() const {
    return static_cast<size_t>(std::max(config_.loss_window, config_.grad_window));
}

void AecsScheduler::push_signals(const StepInput& input) {
    if (!std::isfinite(input.loss)) {
        fail("{}: invalid loss {} at step {}: expected a finite number; skip the optimizer step "
             "instead of passing a non-finite loss",
             name(), input.loss, input.step);
    }
    if (!std::isfinite(input.grad_norm) || input.grad_norm < 0.0) {
        fail("{}: invalid grad_norm {} at step {}: expected a finite number >= 0", name(),
             input.grad_norm, input.step);
    }
    if (input.grad_cosine && !(std::fabs(*input.grad_cosine) <= 1.0 + 1e-6)) {
        fail("{}: invalid grad_cosine {} at step {}: expected a cosine in [-1, 1]", name(),
             *input.grad_cosine, input.step);
    }
    const bool use_cosine = variant_ == AecsVariant::corrected || config_.push_grad_cosine;
    if (variant_ == AecsVariant::corrected && input.step > 1 && !input.grad_cosine) {
        fail("aecs2: missing grad_cosine at step {}: pass the cosine between this step's and the "
             "previous step's flattened gradients on every step after the first",
             input.step);
    }

    push_bounded(losses_, input.loss, window());
    push_bounded(grad_norms_, input.grad_norm, window());
    if (use_cosine && input.grad_cosine) {
        push_bounded(grad_cosines_, *input.grad_cosine, window());
    }
}

AecsScheduler::Detection AecsScheduler::detect_event(int64_t step, StepOutput& output) const {
    Signals signals;
    signals.z = aecs_grad_norm_zscore(grad_norms_);
    signals.variance = population_variance(grad_norms_);
    signals.recent_min_loss = recent_min(losses_);
    signals.redundancy = redundancy_score(grad_cosines_, window());
    signals.recent_mean_grad_norm = recent_mean(grad_norms_);
    output.signals = {
        {"grad_norm_z", signals.z},
        {"grad_norm_variance", signals.variance},
        {"recent_min_loss", signals.recent_min_loss},
        {"redundancy", signals.redundancy},
        {"recent_mean_grad_norm", signals.recent_mean_grad_norm},
    };

    Detection detection;
    if (step < config_.event_persistence + 5) {
        return detection;
    }
    const double loss = losses_.back();
    if (signals.z > config_.instability_z_thresh) {
        detection.name = "GRADIENT_SPIKE";
        detection.cause = fmt::format("grad-norm z-score {:.4g} > {}", signals.z,
                                      config_.instability_z_thresh);
        detection.target = AecsMode::recovery;
    } else if (signals.recent_min_loss > 0.0 &&
               loss > signals.recent_min_loss * config_.loss_spike_ratio) {
        detection.name = "LOSS_SPIKE";
        detection.cause = fmt::format("loss {:.6g} > {} x recent minimum {:.6g}", loss,
                                      config_.loss_spike_ratio, signals.recent_min_loss);
        detection.target = AecsMode::recovery;
    } else if (signals.z > kUnstableZ && signals.variance > config_.reentry_grad_norm_tol) {
        detection.name = "UNSTABLE";
        detection.cause = fmt::format("grad-norm z-score {:.4g} > {} and variance {:.4g} > {}",
                                      signals.z, kUnstableZ, signals.variance,
                                      config_.reentry_grad_norm_tol);
        detection.target = AecsMode::stabilize;
    } else if (signals.redundancy > config_.redundancy_thresh) {
        detection.name = "REDUNDANT";
        detection.cause = fmt::format("mean gradient cosine {:.6g} > {}", signals.redundancy,
                                      config_.redundancy_thresh);
        detection.target = AecsMode::explore;
    } else if (grad_norms_.size() >= kRecentSteps &&
               signals.recent_mean_grad_norm < config_.plateau_grad_norm_thresh) {
        detection.name = "PLATEAU";
        detection.cause = fmt::format("mean of last {} grad norms {:.4g} < {}", kRecentSteps,
                                      signals.recent_mean_grad_norm, config_.plateau_grad_norm_thresh);
        detection.target = AecsMode::explore;
    }
    return detection;
}

void AecsScheduler::record_ignored(const Detection& detection, const std::string& reason, int64_t step,
                                   StepOutput& output) const {
    SchedulerEvent event;
    event.step = step;
    event.name = detection.name;
    event.cause = detection.cause;
    event.from_mode = aecs_mode_name(mode_);
    event.to_mode = event.from_mode;
    event.ignored_reason = reason;
    event.lr_before = last_lr_;
    output.events.push_back(std::move(event));
}

void AecsScheduler::enter_mode(AecsMode target, const std::string& name, const std::string& cause,
                               int64_t step, StepOutput& output) {
    SchedulerEvent event;
    event.step = step;
    event.name = name;
    event.cause = cause;
    event.from_mode = aecs_mode_name(mode_);
    event.to_mode = aecs_mode_name(target);
    event.lr_before = last_lr_;

    mode_ = target;
    mode_steps_ = 0;
    mode_entries_[static_cast<size_t>(target)] += 1;
    transitions_.push_back(event);
    output.events.push_back(std::move(event));
}

void AecsScheduler::apply_transition_rules(const Detection& detection, int64_t step, StepOutput& output) {
    if (mode_ != AecsMode::baseline && mode_steps_ < config_.cooldown_steps) {
        record_ignored(detection,
                       fmt::format("cooldown: {} of {} steps in {}", mode_steps_,
                                   config_.cooldown_steps, aecs_mode_name(mode_)),
                       step, output);
        return;
    }
    if (mode_ == AecsMode::recovery) {
        if (mode_steps_ < config_.recovery_min_steps) {
            record_ignored(detection,
                           fmt::format("RECOVERY minimum: {} of {} steps", mode_steps_,
                                       config_.recovery_min_steps),
                           step, output);
            return;
        }
        if (mode_steps_ >= config_.recovery_max_steps) {
            enter_mode(AecsMode::baseline, "recovery_max_duration",
                       fmt::format("{} fired after {} steps in RECOVERY (recovery_max_steps {}): {}",
                                   detection.name, mode_steps_, config_.recovery_max_steps,
                                   detection.cause),
                       step, output);
            return;
        }
    }
    if (detection.target == mode_) {
        record_ignored(detection, fmt::format("already in {}", aecs_mode_name(mode_)), step, output);
        return;
    }
    // The reference's variance guard for a BASELINE target is unreachable here because no event
    // maps to BASELINE; aecs2 applies it in maybe_return_when_quiet.
    enter_mode(detection.target, detection.name, detection.cause, step, output);
}

void AecsScheduler::maybe_return_when_quiet(int64_t step, StepOutput& output) {
    if (mode_ == AecsMode::baseline || steps_since_event_ < config_.quiet_steps ||
        mode_steps_ < config_.cooldown_steps) {
        return;
    }
    if (mode_ == AecsMode::recovery && mode_steps_ < config_.recovery_min_steps) {
        return;
    }
    const double variance = population_variance(grad_norms_);
    const bool needs_calm_gradients = mode_ == AecsMode::recovery || mode_ == AecsMode::stabilize;
    if (needs_calm_gradients && variance > config_.reentry_grad_norm_tol) {
        return;
    }
    enter_mode(AecsMode::baseline, "quiet_cooldown",
               fmt::format("no event for {} steps (quiet_steps {}) after {} steps in {}; grad-norm "
                           "variance {:.4g}",
                           steps_since_event_, config_.quiet_steps, mode_steps_,
                           aecs_mode_name(mode_), variance),
               step, output);
}

double AecsScheduler::backbone(int64_t step) const {
    const double t = static_cast<double>(step);
    if (step < config_.warmup_steps) {
        return t / static_cast<double>(config_.warmup_steps);
    }
    const double span = static_cast<double>(std::max<int64_t>(config_.total_steps - config_.warmup_steps, 1));
    double progress = static_cast<double>(step - config_.warmup_steps) / span;
    if (variant_ == AecsVariant::corrected) {
        progress = std::min(progress, 1.0);
    }
    return 0.5 * (1.0 + std::cos(kPi * progress));
}

double AecsScheduler::mode_lr_factor() const {
    switch (mode_) {
        case AecsMode::baseline:
            return 1.0;
        case AecsMode::recovery:
            return config_.recovery_lr_factor;
        case AecsMode::explore:
            return config_.explore_lr_factor;
        case AecsMode::stabilize:
            return config_.recovery_lr_factor * kStabilizeOfRecoveryFactor;
    }
    return 1.0;
}

StepOutput AecsScheduler::advance(const StepInput& input) {
    push_signals(input);
    const int64_t step = input.step;
    mode_steps_ += 1;

    StepOutput output;
    const Detection detection = detect_event(step, output);
    if (!detection.name.empty()) {
        steps_since_event_ = 0;
        apply_transition_rules(detection, step, output);
    } else {
        steps_since_event_ += 1;
        if (variant_ == AecsVariant::corrected) {
            maybe_return_when_quiet(step, output);
        }
    }

    // lr uses the reference's operation order, (base * backbone) * factor, so that it matches
    // bit for bit. lr_scale can therefore differ from lr / base_lr in the last bit.
    const double backbone_value = backbone(step);
    const double factor = mode_lr_factor();
    output.lr = base_lr() * backbone_value * factor;
    output.lr_scale = backbone_value * factor;
    output.mode = aecs_mode_name(mode_);
    output.beta1_scale = mode_ == AecsMode::recovery ? config_.recovery_momentum_factor : 1.0;
    if (mode_ == AecsMode::explore) {
        output.weight_decay_scale = kExploreWeightDecayScale;
    } else if (mode_ == AecsMode::recovery) {
        output.weight_decay_scale = kRecoveryWeightDecayScale;
    }
    last_lr_ = output.lr;
    return output;
}

nlohmann::json AecsScheduler::save_variables() const {
    nlohmann::json entries = nlohmann::json::object();
    for (int i = 0; i < kAecsModeCount; ++i) {
        entries[aecs_mode_name(static_cast<AecsMode>(i))] = mode_entries_[static_cast<size_t>(i)];
    }
    nlohmann::json transitions = nlohmann::json::array();
    for (const SchedulerEvent& event : transitions_) {
        transitions.push_back({
            {"step", event.step},
            {"name", event.name},
            {"cause", event.cause},
            {"from_mode", event.from_mode},
            {"to_mode", event.to_mode},
            {"lr_before", exact_double_to_string(event.lr_before)},
        });
    }
    return {
        {"mode", aecs_mode_name(mode_)},
        {"mode_steps", mode_steps_},
        {"steps_since_event", steps_since_event_},
        {"last_lr", exact_double_to_string(last_lr_)},
        {"losses", schedule_json::exact_double_array(losses_)},
        {"grad_norms", schedule_json::exact_double_array(grad_norms_)},
        {"grad_cosines", schedule_json::exact_double_array(grad_cosines_)},
        {"mode_entries", entries},
        {"transitions", transitions},
    };
}

void AecsScheduler::load_variables(const nlohmann::json& variables, int64_t steps) {
    using namespace schedule_json;
    const std::string what = name() + " state";

    const AecsMode mode = parse_mode(read_string(variables, "mode", what), what);
    const int64_t mode_steps = read_int(variables, "mode_steps", what);
    const int64_t steps_since_event = read_int(variables, "steps_since_event", what);
    const double last_lr = read_exact_double(variables, "last_lr", what);
    std::deque<double> losses = read_exact_double_array(variables, "losses", what);
    std::deque<double> grad_norms = read_exact_double_array(variables, "grad_norms", what);
    std::deque<double> grad_cosines = read_exact_double_array(variables, "grad_cosines", what);

    const size_t expected_samples = static_cast<size_t>(std::min<int64_t>(steps, static_cast<int64_t>(window())));
    if (losses.size() != expected_samples || grad_norms.size() != expected_samples) {
        fail("invalid {}: {} losses and {} grad norms after {} steps with window {}; expected {} of "
             "each",
             what, losses.size(), grad_norms.size(), steps, window(), expected_samples);
    }
    if (grad_cosines.size() > window()) {
        fail("invalid {}: {} gradient cosines exceed the window {}", what, grad_cosines.size(), window());
    }
    if (mode_steps < 0 || mode_steps > steps || steps_since_event < 0 || steps_since_event > steps) {
        fail("invalid {}: mode_steps {} and steps_since_event {} must lie in [0, {}]", what, mode_steps,
             steps_since_event, steps);
    }

    std::array<int64_t, kAecsModeCount> mode_entries{};
    const nlohmann::json& entries = require_field(variables, "mode_entries", what);
    for (int i = 0; i < kAecsModeCount; ++i) {
        mode_entries[static_cast<size_t>(i)] = read_int(entries, aecs_mode_name(static_cast<AecsMode>(i)), what + " mode_entries");
    }

    std::vector<SchedulerEvent> transitions;
    const nlohmann::json& saved_transitions = require_field(variables, "transitions", what);
    if (!saved_transitions.is_array()) {
        fail("invalid {}: field 'transitions' must be an array", what);
    }
    for (const nlohmann::json& saved : saved_transitions) {
        const std::string item = what + " transition";
        SchedulerEvent event;
        event.step = read_int(saved, "step", item);
        event.name = read_string(saved, "name", item);
        event.cause = read_string(saved, "cause", item);
        event.from_mode = read_string(saved, "from_mode", item);
        event.to_mode = read_string(saved, "to_mode", item);
        event.lr_before = read_exact_double(saved, "lr_before", item);
        transitions.push_back(std::move(event));
    }

    mode_ = mode;
    mode_steps_ = mode_steps;
    steps_since_event_ = steps_since_event;
    last_lr_ = last_lr;
    losses_ = std::move(losses);
    grad_norms_ = std::move(grad_norms);
    grad_cosines_ = std::move(grad_cosines);
    mode_entries_ = mode_entries;
    transitions_ = std::move(transitions);
}

}  // namespace sz
