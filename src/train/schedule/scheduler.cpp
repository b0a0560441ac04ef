#include "train/schedule/scheduler.h"

#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "train/schedule/aecs.h"
#include "train/schedule/fixed_schedules.h"
#include "train/schedule/json_fields.h"

namespace sz {

std::string SchedulerEvent::describe() const {
    std::string line = fmt::format("step {}: {} ({})", step, name, cause);
    if (changed_mode()) {
        return line + fmt::format(": mode {} -> {}", from_mode, to_mode);
    }
    return line + fmt::format(": ignored, {}", ignored_reason);
}

LrScheduler::LrScheduler(double base_lr) : base_lr_(base_lr) {
    if (!(base_lr > 0.0) || !std::isfinite(base_lr)) {
        fail("invalid base learning rate {}: expected a finite number > 0", base_lr);
    }
}

StepOutput LrScheduler::step(const StepInput& input) {
    if (input.step != steps_ + 1) {
        fail("{} scheduler: expected step {} but got step {}; call step() once per optimizer step "
             "with consecutive 1-based step numbers, and after a resume load the scheduler state "
             "saved with the checkpoint",
             name(), steps_ + 1, input.step);
    }
    StepOutput output = advance(input);
    steps_ = input.step;
    return output;
}

nlohmann::json LrScheduler::state() const {
    return {
        {"scheduler", name()},
        {"base_lr", exact_double_to_string(base_lr_)},
        {"config", config_json()},
        {"steps", steps_},
        {"variables", save_variables()},
    };
}

void LrScheduler::load_state(const nlohmann::json& state) {
    using namespace schedule_json;
    const std::string what = "scheduler state";

    const std::string saved_name = read_string(state, "scheduler", what);
    if (saved_name != name()) {
        fail("cannot load a '{}' scheduler state into a '{}' scheduler; use the scheduler the "
             "checkpoint was trained with",
             saved_name, name());
    }
    const double saved_base_lr = read_exact_double(state, "base_lr", what);
    if (saved_base_lr != base_lr_) {
        fail("cannot load {} scheduler state: it was saved with base learning rate {} but this "
             "scheduler has {}",
             name(), saved_base_lr, base_lr_);
    }

    const nlohmann::json& saved_config = require_field(state, "config", what);
    const nlohmann::json config = config_json();
    if (saved_config != config) {
        for (const auto& item : config.items()) {
            auto saved = saved_config.find(item.key());
            if (saved == saved_config.end() || *saved != item.value()) {
                fail("cannot load {} scheduler state: option '{}' was {} when saved but is {} now",
                     name(), item.key(), saved == saved_config.end() ? "missing" : saved->dump(),
                     item.value().dump());
            }
        }
        fail("cannot load {} scheduler state: its options {} differ from the current {}", name(),
             saved_config.dump(), config.dump());
    }

    const int64_t steps = read_int(state, "steps", what);
    if (steps < 0) {
        fail("invalid scheduler state: steps {} is negative", steps);
    }
    load_variables(require_field(state, "variables", what), steps);
    steps_ = steps;
}

const std::vector<std::string>& scheduler_names() {
    static const std::vector<std::string> names = {"aecs", "aecs2", "cosine", "constant", "wsd"};
    return names;
}

std::unique_ptr<LrScheduler> make_scheduler(const std::string& name, double base_lr,
                                            const nlohmann::json& options) {
    if (name == "aecs") {
        return std::make_unique<AecsScheduler>(
            base_lr, AecsConfig::from_json(options, AecsVariant::reference), AecsVariant::reference);
    }
    if (name == "aecs2") {
        return std::make_unique<AecsScheduler>(
            base_lr, AecsConfig::from_json(options, AecsVariant::corrected), AecsVariant::corrected);
    }
    if (name == "cosine") {
        return std::make_unique<CosineScheduler>(base_lr, CosineScheduleConfig::from_json(options));
    }
    if (name == "constant") {
        return std::make_unique<ConstantScheduler>(base_lr, ConstantScheduleConfig::from_json(options));
    }
    if (name == "wsd") {
        return std::make_unique<WsdScheduler>(base_lr, WsdScheduleConfig::from_json(options));
    }
    fail("unknown scheduler '{}': expected one of {}", name, fmt::join(scheduler_names(), ", "));
}

std::unique_ptr<LrScheduler> restore_scheduler(const nlohmann::json& state) {
    const std::string what = "scheduler state";
    const std::string name = schedule_json::read_string(state, "scheduler", what);
    const double base_lr = schedule_json::read_exact_double(state, "base_lr", what);
    std::unique_ptr<LrScheduler> scheduler =
        make_scheduler(name, base_lr, schedule_json::require_field(state, "config", what));
    scheduler->load_state(state);
    return scheduler;
}

std::string exact_double_to_string(double value) {
    if (std::isnan(value)) {
        return "nan";
    }
    if (std::isinf(value)) {
        return value > 0 ? "inf" : "-inf";
    }
    // std::to_chars in hex format writes the shortest exact hex mantissa without the "0x"
    // prefix and ignores the locale.
    char buffer[64];
    const bool negative = std::signbit(value);
    const auto result = std::to_chars(buffer, buffer + sizeof(buffer), std::fabs(value), std::chars_format::hex);
    return std::string(negative ? "-0x" : "0x") + std::string(buffer, result.ptr);
}

double exact_double_from_string(const std::string& text, const std::string& what) {
    if (text == "nan") {
        return std::numeric_limits<double>::quiet_NaN();
    }
    if (text == "inf") {
        return std::numeric_limits<double>::infinity();
    }
    if (text == "-inf") {
        return -std::numeric_limits<double>::infinity();
    }
    const bool negative = !text.empty() && text[0] == '-';
    const size_t prefix = negative ? 3 : 2;
    if (text.compare(negative ? 1 : 0, 2, "0x") != 0 || text.size() <= prefix) {
        fail("invalid {}: '{}' is not a hex float such as 0x1.8p+1", what, text);
    }
    double magnitude = 0.0;
    const char* begin = text.data() + prefix;
    const char* end = text.data() + text.size();
    const auto result = std::from_chars(begin, end, magnitude, std::chars_format::hex);
    if (result.ec != std::errc() || result.ptr != end || std::signbit(magnitude)) {
        fail("invalid {}: '{}' is not a hex float such as 0x1.8p+1", what, text);
    }
    return negative ? -magnitude : magnitude;
}

}  // namespace sz
