// Learning-rate schedulers: scripted loss and grad-norm sequences that make each AECS event fire
// (and a control that does not), the transition rules and their quirks, the aecs2 corrections,
// exact state round trips, and the fixed schedules at hand-computed steps.
//
// Closed form used by several expected z-scores. After a run of a constant grad norm c, let
// the last k values be g = c + d. The EMA starts at mu = c, var = 0 and stays there over the
// c-run. With a = 0.97 and b = 1 - a = 0.03, each g gives
//   mu_k = c + d (1 - a^k),  g - mu_k = d a^k,
//   var_k = a var_{k-1} + b (d a^k)^2 = b d^2 a^k (a + ... + a^k) = d^2 a^(k+1) (1 - a^k),
//   z_k = d a^k / sqrt(var_k) = sqrt(a^(k-1) / (1 - a^k)),
// independent of c, d and the length of the c-run. Values:
//   z_1 = sqrt(1 / 0.03) = 5.7735027
//   z_5 = sqrt(0.8852928 / 0.1412660) = 2.5033679   (still > 2.5)
//   z_6 = sqrt(0.8587340 / 0.1670280) = 2.2674342
//   z_23 = sqrt(0.5116561 / 0.5036936) = 1.0078731  (still > 1)
//   z_24 = sqrt(0.4963064 / 0.5185828) = 0.9782861
// A falling grad norm leaves mu above the newest value, so z < 0 and no z-based event fires.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/schedule/aecs.h"
#include "train/schedule/fixed_schedules.h"
#include "train/schedule/scheduler.h"

namespace sz {
namespace {

constexpr double kBaseLr = 1e-3;
constexpr double kPi = 3.14159265358979323846;
constexpr double kZ1 = 5.7735026918962555;
constexpr double kZ6 = 2.267434245744765;

// A scripted training run: loss, grad norm and gradient cosine as functions of the 1-based step.
struct Script {
    std::function<double(int64_t)> loss = [](int64_t) { return 2.0; };
    std::function<double(int64_t)> grad_norm = [](int64_t) { return 1.0; };
    // Cosine with the previous step's gradient; step 1 never gets one.
    std::function<double(int64_t)> grad_cosine = [](int64_t) { return 0.0; };
};

StepInput script_input(const Script& script, int64_t step) {
    StepInput input;
    input.step = step;
    input.loss = script.loss(step);
    input.grad_norm = script.grad_norm(step);
    if (step > 1) {
        input.grad_cosine = script.grad_cosine(step);
    }
    return input;
}

// Runs the scheduler up to `last_step`; outputs[s] is step s's output (outputs[0] is unused).
std::vector<StepOutput> run_script(LrScheduler& scheduler, const Script& script, int64_t last_step) {
    std::vector<StepOutput> outputs(1);
    for (int64_t step = scheduler.steps() + 1; step <= last_step; ++step) {
        outputs.push_back(scheduler.step(script_input(script, step)));
    }
    return outputs;
}

// warmup 10, total 1010: for t >= 10 the cosine progress is p = (t - 10) / 1000.
AecsConfig short_warmup_config() {
    AecsConfig config;
    config.warmup_steps = 10;
    config.total_steps = 1010;
    return config;
}

// Grad norm 1 everywhere except `spike_value` at `spike_step`.
std::function<double(int64_t)> one_spike(int64_t spike_step, double spike_value) {
    return [=](int64_t step) { return step == spike_step ? spike_value : 1.0; };
}

int64_t count_events(const std::vector<StepOutput>& outputs, int64_t first_step, int64_t last_step) {
    int64_t count = 0;
    for (int64_t step = first_step; step <= last_step; ++step) {
        count += static_cast<int64_t>(outputs[static_cast<size_t>(step)].events.size());
    }
    return count;
}

// ---- signals ----

TEST(AecsSignals, ZscoreMatchesClosedForm) {
    EXPECT_EQ(aecs_grad_norm_zscore({1.0, 1.0, 1.0, 3.0}), 0.0) << "below 5 samples z is 0";
    EXPECT_NEAR(aecs_grad_norm_zscore({1.0, 1.0, 1.0, 1.0, 1.0}), 0.0, 1e-9);
    EXPECT_NEAR(aecs_grad_norm_zscore({1.0, 1.0, 1.0, 1.0, 2.0}), kZ1, 1e-9);
    EXPECT_NEAR(aecs_grad_norm_zscore({1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0}), kZ6, 1e-9);
    // A spike of any size after a flat run gives z_1, and a drop gives -z_1.
    EXPECT_NEAR(aecs_grad_norm_zscore({5e-5, 5e-5, 5e-5, 5e-5, 5e-5, 1.0}), kZ1, 1e-9);
    EXPECT_NEAR(aecs_grad_norm_zscore({3.0, 3.0, 3.0, 3.0, 3.0, 2.0}), -kZ1, 1e-9);
}

TEST(AecsSignals, SigmaFloorLimitsTinySpikes) {
    // A rise of 1e-5 after a flat run: var = 0.03 * (0.97e-5)^2 = 2.8e-12 < 1e-8, so sigma is
    // the floor sqrt(1e-8) = 1e-4 and z = 0.97e-5 / 1e-4 = 0.097.
    EXPECT_NEAR(aecs_grad_norm_zscore({1.0, 1.0, 1.0, 1.0, 1.0 + 1e-5}), 0.097, 1e-6);
}

// ---- warm-up and backbone ----

TEST(AecsScheduler, WarmupMatchesReferenceTestValues) {
    // Upstream tests/test_scheduler.py (test_warmup_lr): lr 1e-3 and warmup 10 give 5e-4 after
    // 5 calls and 1e-3 after 10.
    AecsConfig config;
    config.warmup_steps = 10;
    config.total_steps = 100;
    AecsScheduler scheduler(kBaseLr, config, AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, Script{}, 55);

    EXPECT_DOUBLE_EQ(outputs[1].lr, 1e-4);  // t = 1 on the first call: 1/10 * 1e-3
    EXPECT_DOUBLE_EQ(outputs[5].lr, 5e-4);
    EXPECT_DOUBLE_EQ(outputs[10].lr, 1e-3);  // t = warmup: p = 0, backbone 1
    // p = (55 - 10) / 90 = 0.5, backbone 0.5 * (1 + cos(pi / 2)) = 0.5
    EXPECT_DOUBLE_EQ(outputs[55].lr, 5e-4);
    EXPECT_EQ(outputs[55].mode, "BASELINE");
    EXPECT_EQ(count_events(outputs, 1, 55), 0) << "a flat run fires no event";
}

TEST(AecsScheduler, CosineIsNotClampedPastTotal) {
    AecsConfig config;
    config.warmup_steps = 10;
    config.total_steps = 110;  // p = (t - 10) / 100
    AecsScheduler scheduler(kBaseLr, config, AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, Script{}, 210);

    EXPECT_NEAR(outputs[110].lr, 0.0, 1e-18);      // p = 1: 0.5 * (1 + cos(pi)) = 0
    EXPECT_NEAR(outputs[160].lr, 5e-4, 1e-15);     // p = 1.5: 0.5 * (1 + cos(1.5 pi)) = 0.5
    EXPECT_NEAR(outputs[210].lr, 1e-3, 1e-15);     // p = 2: back to the full LR
}

TEST(Aecs2Scheduler, CosineIsClampedAtOne) {
    AecsConfig config;
    config.warmup_steps = 10;
    config.total_steps = 110;
    AecsScheduler scheduler(kBaseLr, config, AecsVariant::corrected);
    const std::vector<StepOutput> outputs = run_script(scheduler, Script{}, 210);

    EXPECT_NEAR(outputs[60].lr, 5e-4, 1e-15);  // p = 0.5
    EXPECT_EQ(outputs[110].lr, 0.0);
    EXPECT_EQ(outputs[160].lr, 0.0);
    EXPECT_EQ(outputs[210].lr, 0.0);
}

// ---- events ----

TEST(AecsEvents, GradientSpikeEntersRecovery) {
    Script script;
    script.grad_norm = one_spike(10, 3.0);
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 10);

    const StepOutput& output = outputs[10];
    ASSERT_EQ(output.events.size(), 1u);
    EXPECT_EQ(output.events[0].name, "GRADIENT_SPIKE");
    EXPECT_EQ(output.events[0].from_mode, "BASELINE");
    EXPECT_EQ(output.events[0].to_mode, "RECOVERY");
    EXPECT_DOUBLE_EQ(output.events[0].lr_before, 9e-4);  // step 9: 9/10 * 1e-3
    EXPECT_NEAR(output.signals.at("grad_norm_z"), kZ1, 1e-9);
    EXPECT_EQ(output.mode, "RECOVERY");
    EXPECT_DOUBLE_EQ(output.lr, 3e-4);  // backbone 1 (p = 0) * recovery_lr_factor 0.3
    EXPECT_EQ(output.beta1_scale, 0.5);
    EXPECT_EQ(output.weight_decay_scale, 1.2);
    ASSERT_EQ(scheduler.transitions().size(), 1u);
    EXPECT_EQ(scheduler.mode_entries()[static_cast<size_t>(AecsMode::recovery)], 1);
}

TEST(AecsEvents, FlatGradNormFiresNothing) {
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, Script{}, 10);
    EXPECT_TRUE(outputs[10].events.empty());
    EXPECT_EQ(outputs[10].mode, "BASELINE");
}

TEST(AecsEvents, NoEventsBeforeStepTen) {
    // The spike at step 9 has z = z_1 but the gate is event_persistence + 5 = 10. At step 10
    // the grad norm falls back, so z < 0 and nothing fires there either.
    Script script;
    script.grad_norm = one_spike(9, 3.0);
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 10);

    EXPECT_NEAR(outputs[9].signals.at("grad_norm_z"), kZ1, 1e-9);
    EXPECT_TRUE(outputs[9].events.empty());
    EXPECT_TRUE(outputs[10].events.empty());
    EXPECT_EQ(outputs[10].mode, "BASELINE");
}

TEST(AecsEvents, GateFollowsEventPersistence) {
    AecsConfig config = short_warmup_config();
    config.event_persistence = 0;  // gate at step 0 + 5; z needs 5 samples anyway
    Script script;
    script.grad_norm = one_spike(5, 3.0);
    AecsScheduler scheduler(kBaseLr, config, AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 5);

    ASSERT_EQ(outputs[5].events.size(), 1u);
    EXPECT_EQ(outputs[5].events[0].name, "GRADIENT_SPIKE");
}

TEST(AecsEvents, LossSpikeEntersRecovery) {
    Script script;
    script.loss = [](int64_t step) { return step == 10 ? 2.4 : 2.0; };  // 2.4 > 1.15 * 2.0 = 2.3
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 10);

    ASSERT_EQ(outputs[10].events.size(), 1u);
    EXPECT_EQ(outputs[10].events[0].name, "LOSS_SPIKE");
    EXPECT_EQ(outputs[10].mode, "RECOVERY");
    EXPECT_EQ(outputs[10].signals.at("recent_min_loss"), 2.0);
}

TEST(AecsEvents, LossAtSpikeRatioFiresNothing) {
    // 2.3 equals 1.15 * 2.0 in binary too (doubling is exact), and the test is strictly greater.
    Script script;
    script.loss = [](int64_t step) { return step == 10 ? 2.3 : 2.0; };
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 10);
    EXPECT_TRUE(outputs[10].events.empty());
}

TEST(AecsEvents, UnstableEntersStabilize) {
    // Grad norm 1 for steps 1-4, then 2 for steps 5-10. At step 10: z = z_6 = 2.267, in (1, 2.5],
    // and the population variance of {1 x4, 2 x6} is (4 * 0.6^2 + 6 * 0.4^2) / 10 = 0.24 > 0.1.
    Script script;
    script.grad_norm = [](int64_t step) { return step <= 4 ? 1.0 : 2.0; };
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 10);

    const StepOutput& output = outputs[10];
    EXPECT_NEAR(output.signals.at("grad_norm_z"), kZ6, 1e-9);
    EXPECT_NEAR(output.signals.at("grad_norm_variance"), 0.24, 1e-12);
    ASSERT_EQ(output.events.size(), 1u);
    EXPECT_EQ(output.events[0].name, "UNSTABLE");
    EXPECT_EQ(output.mode, "STABILIZE");
    EXPECT_DOUBLE_EQ(output.lr, 2.4e-4);  // 0.8 * recovery_lr_factor 0.3 = 0.24
    EXPECT_EQ(output.beta1_scale, 1.0);
    EXPECT_EQ(output.weight_decay_scale, 1.0);
}

TEST(AecsEvents, SmallVarianceIsNotUnstable) {
    // The same shape at half the step: z is still z_6, but the variance is
    // (4 * 0.3^2 + 6 * 0.2^2) / 10 = 0.06 <= 0.1.
    Script script;
    script.grad_norm = [](int64_t step) { return step <= 4 ? 1.0 : 1.5; };
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 10);

    EXPECT_NEAR(outputs[10].signals.at("grad_norm_z"), kZ6, 1e-9);
    EXPECT_NEAR(outputs[10].signals.at("grad_norm_variance"), 0.06, 1e-12);
    EXPECT_TRUE(outputs[10].events.empty());
}

TEST(AecsEvents, PlateauEntersExplore) {
    Script script;
    script.grad_norm = [](int64_t) { return 5e-5; };  // mean of the last 10 = 5e-5 < 1e-4
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 10);

    EXPECT_TRUE(outputs[9].events.empty());
    ASSERT_EQ(outputs[10].events.size(), 1u);
    EXPECT_EQ(outputs[10].events[0].name, "PLATEAU");
    EXPECT_EQ(outputs[10].mode, "EXPLORE");
    EXPECT_DOUBLE_EQ(outputs[10].lr, 1.5e-3);  // backbone 1 * explore_lr_factor 1.5
    EXPECT_EQ(outputs[10].beta1_scale, 1.0);
    EXPECT_EQ(outputs[10].weight_decay_scale, 0.5);
}

TEST(AecsEvents, SmallGradNormAboveThresholdIsNoPlateau) {
    Script script;
    script.grad_norm = [](int64_t) { return 2e-4; };
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 10);
    EXPECT_TRUE(outputs[10].events.empty());
}

TEST(AecsEvents, RedundantNeedsPushedCosines) {
    // Cosine 0.99 on every step from step 2. Step 26 is the first with 25 = W/2 cosines.
    Script script;
    script.grad_cosine = [](int64_t) { return 0.99; };

    AecsScheduler reference(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> ignored = run_script(reference, script, 60);
    EXPECT_EQ(count_events(ignored, 1, 60), 0) << "step() never fills the cosine buffer";
    EXPECT_EQ(ignored[60].signals.at("redundancy"), 0.0);

    AecsConfig config = short_warmup_config();
    config.push_grad_cosine = true;
    AecsScheduler pushed(kBaseLr, config, AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(pushed, script, 26);
    EXPECT_TRUE(outputs[25].events.empty()) << "24 cosines are below W/2";
    ASSERT_EQ(outputs[26].events.size(), 1u);
    EXPECT_EQ(outputs[26].events[0].name, "REDUNDANT");
    EXPECT_EQ(outputs[26].mode, "EXPLORE");
    EXPECT_NEAR(outputs[26].signals.at("redundancy"), 0.99, 1e-12);
}

TEST(AecsEvents, LowCosineIsNotRedundant) {
    Script script;
    script.grad_cosine = [](int64_t) { return 0.97; };
    AecsConfig config = short_warmup_config();
    config.push_grad_cosine = true;
    AecsScheduler scheduler(kBaseLr, config, AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 60);
    EXPECT_EQ(count_events(outputs, 1, 60), 0);
}

TEST(AecsEvents, PriorityPicksOneEvent) {
    // Grad and loss spike together: GRADIENT_SPIKE wins.
    {
        Script script;
        script.grad_norm = one_spike(10, 3.0);
        script.loss = [](int64_t step) { return step == 10 ? 2.4 : 2.0; };
        AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
        const std::vector<StepOutput> outputs = run_script(scheduler, script, 10);
        ASSERT_EQ(outputs[10].events.size(), 1u);
        EXPECT_EQ(outputs[10].events[0].name, "GRADIENT_SPIKE");
    }
    // Loss spike during a plateau: LOSS_SPIKE wins.
    {
        Script script;
        script.grad_norm = [](int64_t) { return 5e-5; };
        script.loss = [](int64_t step) { return step == 10 ? 2.4 : 2.0; };
        AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
        const std::vector<StepOutput> outputs = run_script(scheduler, script, 10);
        ASSERT_EQ(outputs[10].events.size(), 1u);
        EXPECT_EQ(outputs[10].events[0].name, "LOSS_SPIKE");
    }
    // Redundant gradients during a plateau: PLATEAU enters EXPLORE at step 10, and from step 26,
    // when both hold, the reported event is REDUNDANT.
    {
        Script script;
        script.grad_norm = [](int64_t) { return 5e-5; };
        script.grad_cosine = [](int64_t) { return 0.99; };
        AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::corrected);
        const std::vector<StepOutput> outputs = run_script(scheduler, script, 26);
        EXPECT_EQ(outputs[25].events.at(0).name, "PLATEAU");
        EXPECT_EQ(outputs[26].events.at(0).name, "REDUNDANT");
    }
}

// ---- transition rules ----

// Plateau-level grad norms throughout (PLATEAU enters EXPLORE at step 10 and then fires on
// every step), with one spike to 1.0 at `spike_step`, whose z is z_1.
Script plateau_with_spike(int64_t spike_step) {
    Script script;
    script.grad_norm = [=](int64_t step) { return step == spike_step ? 1.0 : 5e-5; };
    return script;
}

TEST(AecsTransitions, CooldownBlocksLeavingExplore) {
    // EXPLORE entered at step 10, so mode_steps = step - 10 and the cooldown lasts until step 210.
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, plateau_with_spike(209), 219);

    EXPECT_EQ(outputs[11].events.at(0).name, "PLATEAU");
    EXPECT_EQ(outputs[11].events.at(0).ignored_reason, "cooldown: 1 of 200 steps in EXPLORE");
    const SchedulerEvent& spike = outputs[209].events.at(0);
    EXPECT_EQ(spike.name, "GRADIENT_SPIKE");
    EXPECT_FALSE(spike.changed_mode());
    EXPECT_EQ(spike.ignored_reason, "cooldown: 199 of 200 steps in EXPLORE");
    EXPECT_EQ(outputs[209].mode, "EXPLORE");

    // The spike keeps the 10-step mean above 1e-4 and lowers z for steps 210-218. At step 219
    // PLATEAU fires again and changes nothing; the repeated PLATEAU events never reset
    // mode_steps, which is 219 - 10.
    EXPECT_EQ(count_events(outputs, 210, 218), 0);
    EXPECT_EQ(outputs[219].events.at(0).ignored_reason, "already in EXPLORE");
    EXPECT_EQ(scheduler.mode_steps(), 209);
}

TEST(AecsTransitions, EventAfterCooldownLeavesExplore) {
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, plateau_with_spike(210), 210);

    const SchedulerEvent& spike = outputs[210].events.at(0);
    EXPECT_EQ(spike.name, "GRADIENT_SPIKE");
    EXPECT_EQ(spike.from_mode, "EXPLORE");
    EXPECT_EQ(spike.to_mode, "RECOVERY");
    // Step 209 in EXPLORE: p = 0.199, lr = 1e-3 * 0.5 * (1 + cos(0.199 pi)) * 1.5.
    EXPECT_NEAR(spike.lr_before, 1e-3 * 0.5 * (1.0 + std::cos(0.199 * kPi)) * 1.5, 1e-15);
    // Step 210: p = 0.2, 0.5 * (1 + cos(0.2 pi)) = 0.5 * 1.8090170 = 0.9045085; * 0.3 * 1e-3.
    EXPECT_NEAR(outputs[210].lr, 2.7135254915624e-4, 1e-15);
}

TEST(AecsTransitions, RecoveryMinimumBlocksEarlyExit) {
    // A short cooldown (10) lets the RECOVERY minimum (100) act on its own. The spike at step 10
    // enters RECOVERY; REDUNDANT fires from step 26 (25 pushed cosines of 0.99) on every step.
    AecsConfig config = short_warmup_config();
    config.cooldown_steps = 10;
    config.push_grad_cosine = true;
    Script script;
    script.grad_norm = one_spike(10, 3.0);
    script.grad_cosine = [](int64_t) { return 0.99; };
    AecsScheduler scheduler(kBaseLr, config, AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 110);

    EXPECT_EQ(outputs[10].mode, "RECOVERY");
    EXPECT_EQ(count_events(outputs, 11, 25), 0);
    EXPECT_EQ(outputs[26].events.at(0).name, "REDUNDANT");
    EXPECT_EQ(outputs[26].events.at(0).ignored_reason, "RECOVERY minimum: 16 of 100 steps");
    EXPECT_EQ(outputs[109].events.at(0).ignored_reason, "RECOVERY minimum: 99 of 100 steps");
    EXPECT_EQ(outputs[110].events.at(0).from_mode, "RECOVERY");
    EXPECT_EQ(outputs[110].events.at(0).to_mode, "EXPLORE");
}

TEST(AecsTransitions, RecoveryStaysWithoutEvents) {
    // The spike at step 10 is the only event: RECOVERY is never left.
    Script script;
    script.grad_norm = one_spike(10, 3.0);
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 1500);

    EXPECT_EQ(count_events(outputs, 11, 1500), 0);
    EXPECT_EQ(outputs[1500].mode, "RECOVERY");
    EXPECT_EQ(scheduler.mode_steps(), 1490);
}

TEST(AecsTransitions, RecoveryMaxDurationReturnsToBaseline) {
    // RECOVERY from step 10. Grad norms fall to 5e-5 from step 1001, so the 10-step mean drops
    // below 1e-4 at step 1010, when mode_steps = 1000: PLATEAU returns to BASELINE and nothing
    // else happens that step. At step 1011 PLATEAU leaves BASELINE at once (no cooldown there).
    AecsConfig config;
    config.warmup_steps = 10;
    config.total_steps = 2010;  // at step 1010, p = 0.5 and the backbone is 0.5
    Script script;
    script.grad_norm = [](int64_t step) { return step == 10 ? 3.0 : step <= 1000 ? 1.0 : 5e-5; };
    AecsScheduler scheduler(kBaseLr, config, AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 1011);

    EXPECT_EQ(count_events(outputs, 11, 1009), 0);
    const SchedulerEvent& back = outputs[1010].events.at(0);
    EXPECT_EQ(back.name, "recovery_max_duration");
    EXPECT_EQ(back.from_mode, "RECOVERY");
    EXPECT_EQ(back.to_mode, "BASELINE");
    EXPECT_EQ(outputs[1010].mode, "BASELINE");
    EXPECT_NEAR(outputs[1010].lr, 5e-4, 1e-15);
    EXPECT_EQ(outputs[1011].events.at(0).to_mode, "EXPLORE");
    EXPECT_EQ(scheduler.mode_entries()[static_cast<size_t>(AecsMode::baseline)], 1);
}

TEST(AecsTransitions, ExploreNeverReturnsToBaseline) {
    // PLATEAU enters EXPLORE at step 10, then grad norms jump from 5e-5 to 1. The jump fires
    // GRADIENT_SPIKE while z_k > 2.5 (k <= 5) and UNSTABLE while z_k > 1 (k <= 23, with variance
    // 10 * 23 / 33^2 = 0.21 > 0.1 at k = 23), all inside the cooldown. From step 34 no event
    // fires, and EXPLORE lasts to the end.
    Script script;
    script.grad_norm = [](int64_t step) { return step <= 10 ? 5e-5 : 1.0; };
    AecsConfig config = short_warmup_config();
    AecsScheduler scheduler(kBaseLr, config, AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 1510);

    EXPECT_EQ(outputs[15].events.at(0).name, "GRADIENT_SPIKE");   // k = 5
    EXPECT_EQ(outputs[16].events.at(0).name, "UNSTABLE");         // k = 6
    EXPECT_EQ(outputs[33].events.at(0).name, "UNSTABLE");         // k = 23
    EXPECT_EQ(count_events(outputs, 34, 1510), 0);
    EXPECT_EQ(outputs[1510].mode, "EXPLORE");
    // p = 1500 / 1000 = 1.5, backbone 0.5, * 1.5 * 1e-3
    EXPECT_NEAR(outputs[1510].lr, 7.5e-4, 1e-15);
    EXPECT_EQ(scheduler.transitions().size(), 1u);
}

// ---- aecs2 ----

// REDUNDANT at step 26 (25 cosines of 0.99), then cosines of 0 pull the mean below 0.98:
// at step 27 it is 25 * 0.99 / 26 = 0.952.
Script redundant_burst() {
    Script script;
    script.grad_cosine = [](int64_t step) { return step <= 26 ? 0.99 : 0.0; };
    return script;
}

TEST(Aecs2Scheduler, QuietCooldownReturnsToBaseline) {
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::corrected);
    const std::vector<StepOutput> outputs = run_script(scheduler, redundant_burst(), 226);

    EXPECT_EQ(outputs[26].mode, "EXPLORE");
    EXPECT_EQ(count_events(outputs, 27, 225), 0);
    EXPECT_EQ(outputs[225].mode, "EXPLORE");
    // Step 226: 200 steps since the last event and 200 steps in EXPLORE.
    const SchedulerEvent& back = outputs[226].events.at(0);
    EXPECT_EQ(back.name, "quiet_cooldown");
    EXPECT_EQ(back.from_mode, "EXPLORE");
    EXPECT_EQ(back.to_mode, "BASELINE");
    EXPECT_EQ(outputs[226].mode, "BASELINE");
    EXPECT_EQ(outputs[226].weight_decay_scale, 1.0);
}

TEST(Aecs2Scheduler, ReferenceStaysInExplore) {
    // The same run with aecs, fed the same cosines, never returns.
    AecsConfig config = short_warmup_config();
    config.push_grad_cosine = true;
    AecsScheduler scheduler(kBaseLr, config, AecsVariant::reference);
    const std::vector<StepOutput> outputs = run_script(scheduler, redundant_burst(), 1000);
    EXPECT_EQ(outputs[26].mode, "EXPLORE");
    EXPECT_EQ(outputs[1000].mode, "EXPLORE");
}

TEST(Aecs2Scheduler, IgnoredEventRestartsQuietCount) {
    // A spike at step 100 fires inside the cooldown and is ignored, yet it restarts the quiet
    // count: the return moves from step 226 to step 100 + 200.
    Script script = redundant_burst();
    script.grad_norm = one_spike(100, 3.0);
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::corrected);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 300);

    EXPECT_EQ(outputs[100].events.at(0).ignored_reason, "cooldown: 74 of 200 steps in EXPLORE");
    EXPECT_EQ(outputs[299].mode, "EXPLORE");
    EXPECT_EQ(outputs[300].events.at(0).name, "quiet_cooldown");
    EXPECT_EQ(outputs[300].mode, "BASELINE");
}

TEST(Aecs2Scheduler, RecoveryReturnWaitsForLowVariance) {
    // Grad norm 3, a spike to 6 at step 10 (RECOVERY), and a fall to 2 from step 191. The fall
    // gives z < 0, so the last event is at step 10 and the run is quiet from step 210. The
    // window (50 steps) then contains n values of 2 and 50 - n of 3, variance n (50 - n) / 2500:
    //   step 210: n = 20, 0.24 > 0.1, the return waits;
    //   step 234: n = 44, 0.1056 > 0.1;
    //   step 235: n = 45, 0.09 <= 0.1, back to BASELINE.
    Script script;
    script.grad_norm = [](int64_t step) { return step == 10 ? 6.0 : step <= 190 ? 3.0 : 2.0; };
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::corrected);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 235);

    EXPECT_EQ(outputs[10].mode, "RECOVERY");
    EXPECT_EQ(count_events(outputs, 11, 234), 0);
    EXPECT_NEAR(outputs[234].signals.at("grad_norm_variance"), 0.1056, 1e-12);
    EXPECT_EQ(outputs[234].mode, "RECOVERY");
    EXPECT_EQ(outputs[235].events.at(0).name, "quiet_cooldown");
    EXPECT_EQ(outputs[235].mode, "BASELINE");
}

TEST(Aecs2Scheduler, RecoveryReturnsWhenGradientsFlat) {
    // Control for the test above without the fall: the window is flat at step 210.
    Script script;
    script.grad_norm = [](int64_t step) { return step == 10 ? 6.0 : 3.0; };
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::corrected);
    const std::vector<StepOutput> outputs = run_script(scheduler, script, 210);

    EXPECT_EQ(outputs[209].mode, "RECOVERY");
    EXPECT_EQ(outputs[210].events.at(0).name, "quiet_cooldown");
    EXPECT_EQ(outputs[210].mode, "BASELINE");
}

TEST(Aecs2Scheduler, RequiresGradientCosine) {
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::corrected);
    StepInput input;
    input.step = 1;
    input.loss = 2.0;
    input.grad_norm = 1.0;
    EXPECT_NO_THROW(scheduler.step(input)) << "step 1 has no previous gradient";
    input.step = 2;
    EXPECT_THROW(scheduler.step(input), Error);
    EXPECT_EQ(scheduler.steps(), 1) << "a rejected step does not count";
    input.grad_cosine = 0.5;
    EXPECT_NO_THROW(scheduler.step(input));
}

// ---- input and option errors ----

TEST(AecsScheduler, RejectsInvalidInput) {
    AecsScheduler scheduler(kBaseLr, short_warmup_config(), AecsVariant::reference);
    StepInput input;
    input.step = 1;
    input.loss = std::numeric_limits<double>::quiet_NaN();
    input.grad_norm = 1.0;
    EXPECT_THROW(scheduler.step(input), Error);
    input.loss = 2.0;
    input.grad_norm = -1.0;
    EXPECT_THROW(scheduler.step(input), Error);
    input.grad_norm = 1.0;
    input.grad_cosine = 1.5;
    EXPECT_THROW(scheduler.step(input), Error);
    input.grad_cosine.reset();
    input.step = 2;
    EXPECT_THROW(scheduler.step(input), Error) << "the first step is 1";
    EXPECT_EQ(scheduler.steps(), 0);
}

TEST(SchedulerFactory, RejectsBadOptions) {
    EXPECT_THROW(make_scheduler("linear", kBaseLr), Error);
    EXPECT_THROW(make_scheduler("cosine", 0.0), Error);
    EXPECT_THROW(make_scheduler("cosine", kBaseLr, {{"warmup_step", 10}}), Error);
    EXPECT_THROW(make_scheduler("cosine", kBaseLr, {{"warmup_steps", 10.5}}), Error);
    EXPECT_THROW(make_scheduler("cosine", kBaseLr, {{"min_lr_ratio", 1.5}}), Error);
    EXPECT_THROW(make_scheduler("aecs", kBaseLr, {{"quiet_steps", 50}}), Error) << "aecs2 only";
    EXPECT_THROW(make_scheduler("aecs2", kBaseLr, {{"push_grad_cosine", true}}), Error) << "aecs only";
    EXPECT_THROW(make_scheduler("aecs", kBaseLr, {{"cooldown_steps", -1}}), Error);
    EXPECT_THROW(make_scheduler("wsd", kBaseLr, {{"decay_shape", "exp"}}), Error);
    EXPECT_THROW(make_scheduler("wsd", kBaseLr, {{"warmup_steps", 100}, {"total_steps", 110},
                                                 {"decay_fraction", 0.2}}),
                 Error)
        << "100 warm-up + 22 decay steps exceed 110";

    try {
        make_scheduler("cosine", kBaseLr, {{"warmup_step", 10}});
        FAIL() << "expected sz::Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("warmup_step"), std::string::npos) << error.what();
    }
}

TEST(SchedulerFactory, DefaultsMatchReference) {
    const AecsConfig config;
    EXPECT_EQ(config.warmup_steps, 500);
    EXPECT_EQ(config.total_steps, 10000);
    EXPECT_EQ(config.loss_window, 50);
    EXPECT_EQ(config.grad_window, 50);
    EXPECT_EQ(config.instability_z_thresh, 2.5);
    EXPECT_EQ(config.loss_spike_ratio, 1.15);
    EXPECT_EQ(config.redundancy_thresh, 0.98);
    EXPECT_EQ(config.plateau_grad_norm_thresh, 1e-4);
    EXPECT_EQ(config.recovery_lr_factor, 0.3);
    EXPECT_EQ(config.recovery_momentum_factor, 0.5);
    EXPECT_EQ(config.recovery_min_steps, 100);
    EXPECT_EQ(config.recovery_max_steps, 1000);
    EXPECT_EQ(config.explore_lr_factor, 1.5);
    EXPECT_EQ(config.event_persistence, 5);
    EXPECT_EQ(config.cooldown_steps, 200);
    EXPECT_EQ(config.reentry_grad_norm_tol, 0.1);

    const std::unique_ptr<LrScheduler> scheduler = make_scheduler("aecs", kBaseLr);
    EXPECT_EQ(scheduler->config_json().at("total_steps"), 10000);
    EXPECT_EQ(scheduler->config_json().at("push_grad_cosine"), false);
}

TEST(SchedulerEvent, DescribeNamesModesAndCause) {
    SchedulerEvent event;
    event.step = 120;
    event.name = "PLATEAU";
    event.cause = "mean of last 10 grad norms 5e-05 < 0.0001";
    event.from_mode = "BASELINE";
    event.to_mode = "EXPLORE";
    EXPECT_EQ(event.describe(),
              "step 120: PLATEAU (mean of last 10 grad norms 5e-05 < 0.0001): mode BASELINE -> EXPLORE");
    event.to_mode = "BASELINE";
    event.ignored_reason = "already in BASELINE";
    EXPECT_EQ(event.describe(),
              "step 120: PLATEAU (mean of last 10 grad norms 5e-05 < 0.0001): ignored, already in BASELINE");
}

// ---- state round trip ----

TEST(ExactDouble, RoundTripsEveryValue) {
    const std::vector<double> values = {0.0,
                                        -0.0,
                                        0.1,
                                        1.0 / 3.0,
                                        -2.5e-300,
                                        std::numeric_limits<double>::denorm_min(),
                                        std::numeric_limits<double>::max(),
                                        std::numeric_limits<double>::infinity(),
                                        -std::numeric_limits<double>::infinity()};
    for (double value : values) {
        const std::string text = exact_double_to_string(value);
        const double parsed = exact_double_from_string(text, "test value");
        EXPECT_EQ(parsed, value) << text;
        EXPECT_EQ(std::signbit(parsed), std::signbit(value)) << text;
    }
    EXPECT_EQ(exact_double_to_string(1.5), "0x1.8p+0");
    EXPECT_TRUE(std::isnan(exact_double_from_string("nan", "test value")));
    EXPECT_THROW(exact_double_from_string("1.5", "test value"), Error);
    EXPECT_THROW(exact_double_from_string("0x1.8p+0 ", "test value"), Error);
    EXPECT_THROW(exact_double_from_string("-0x-1p0", "test value"), Error);
}

// Noisy losses and grad norms with grad-norm spikes every 40 steps, loss spikes every 53,
// redundant gradients over steps 200-260 and a plateau over steps 400-430.
std::vector<StepInput> noisy_run(int64_t steps) {
    std::mt19937 generator(1234);
    std::uniform_real_distribution<double> noise(-1.0, 1.0);
    std::vector<StepInput> inputs;
    for (int64_t step = 1; step <= steps; ++step) {
        StepInput input;
        input.step = step;
        input.loss = 2.0 + 0.05 * noise(generator) + (step % 53 == 0 ? 1.0 : 0.0);
        input.grad_norm = 1.0 + 0.2 * noise(generator);
        if (step % 40 == 0) {
            input.grad_norm *= 4.0;
        }
        if (step >= 400 && step <= 430) {
            input.grad_norm = 5e-5;
        }
        const double cosine = (step >= 200 && step <= 260) ? 0.995 : 0.5 + 0.3 * noise(generator);
        if (step > 1) {
            input.grad_cosine = cosine;
        }
        inputs.push_back(input);
    }
    return inputs;
}

void expect_identical(const StepOutput& expected, const StepOutput& actual, int64_t step) {
    SCOPED_TRACE("step " + std::to_string(step));
    EXPECT_EQ(actual.lr, expected.lr);
    EXPECT_EQ(actual.lr_scale, expected.lr_scale);
    EXPECT_EQ(actual.mode, expected.mode);
    EXPECT_EQ(actual.beta1_scale, expected.beta1_scale);
    EXPECT_EQ(actual.weight_decay_scale, expected.weight_decay_scale);
    EXPECT_EQ(actual.signals, expected.signals);
    ASSERT_EQ(actual.events.size(), expected.events.size());
    for (size_t i = 0; i < actual.events.size(); ++i) {
        EXPECT_EQ(actual.events[i].describe(), expected.events[i].describe());
        EXPECT_EQ(actual.events[i].lr_before, expected.events[i].lr_before);
    }
}

struct RoundTripCase {
    std::string name;
    nlohmann::json options;
};

TEST(SchedulerState, ResumeContinuesBitIdentically) {
    // Short AECS counters so that transitions happen in both halves of the run.
    const nlohmann::json aecs_options = {{"warmup_steps", 20},       {"total_steps", 500},
                                         {"cooldown_steps", 20},     {"recovery_min_steps", 10},
                                         {"recovery_max_steps", 60}, {"push_grad_cosine", true}};
    nlohmann::json aecs2_options = aecs_options;
    aecs2_options.erase("push_grad_cosine");
    aecs2_options["quiet_steps"] = 30;
    const std::vector<RoundTripCase> cases = {
        {"aecs", aecs_options},
        {"aecs2", aecs2_options},
        // 1/3 has no short decimal form, so the options' JSON numbers must read back exactly.
        {"cosine", {{"warmup_steps", 20}, {"total_steps", 500}, {"min_lr_ratio", 1.0 / 3.0}}},
        {"constant", {{"warmup_steps", 20}}},
        {"wsd", {{"warmup_steps", 20}, {"total_steps", 500}, {"decay_shape", "sqrt"}}},
    };
    constexpr int64_t kSteps = 600;
    constexpr int64_t kSaveStep = 300;
    const std::vector<StepInput> inputs = noisy_run(kSteps);
    // 0.1 + 0.2 has no short decimal form, so a lossy encoding of base_lr would show.
    const double base_lr = 0.1 + 0.2;

    for (const RoundTripCase& test_case : cases) {
        SCOPED_TRACE(test_case.name);
        std::unique_ptr<LrScheduler> uninterrupted = make_scheduler(test_case.name, base_lr, test_case.options);
        std::vector<StepOutput> expected;
        for (const StepInput& input : inputs) {
            expected.push_back(uninterrupted->step(input));
        }

        std::unique_ptr<LrScheduler> first_half = make_scheduler(test_case.name, base_lr, test_case.options);
        for (int64_t i = 0; i < kSaveStep; ++i) {
            first_half->step(inputs[static_cast<size_t>(i)]);
        }
        const std::string saved = first_half->state().dump();

        // Both resume paths: a scheduler rebuilt from the state alone, and load_state into a
        // scheduler made with the same options.
        std::unique_ptr<LrScheduler> restored = restore_scheduler(nlohmann::json::parse(saved));
        std::unique_ptr<LrScheduler> loaded = make_scheduler(test_case.name, base_lr, test_case.options);
        loaded->load_state(nlohmann::json::parse(saved));
        ASSERT_EQ(restored->steps(), kSaveStep);
        ASSERT_EQ(loaded->steps(), kSaveStep);

        for (int64_t i = kSaveStep; i < kSteps; ++i) {
            const size_t index = static_cast<size_t>(i);
            expect_identical(expected[index], restored->step(inputs[index]), i + 1);
            expect_identical(expected[index], loaded->step(inputs[index]), i + 1);
        }
        EXPECT_EQ(restored->state(), uninterrupted->state());
        EXPECT_EQ(loaded->state(), uninterrupted->state());

        if (test_case.name.rfind("aecs", 0) == 0) {
            const auto& aecs = dynamic_cast<const AecsScheduler&>(*uninterrupted);
            int64_t transitions_after_save = 0;
            for (const SchedulerEvent& event : aecs.transitions()) {
                transitions_after_save += event.step > kSaveStep ? 1 : 0;
            }
            EXPECT_GE(aecs.transitions().size(), 4u);
            EXPECT_GE(transitions_after_save, 1) << "the resumed half must exercise transitions";
        }
    }
}

TEST(SchedulerState, LoadRejectsMismatches) {
    std::unique_ptr<LrScheduler> aecs = make_scheduler("aecs", kBaseLr, {{"warmup_steps", 10}});
    for (int64_t step = 1; step <= 5; ++step) {
        aecs->step({step, 2.0, 1.0, std::nullopt});
    }
    const nlohmann::json state = aecs->state();

    EXPECT_THROW(make_scheduler("aecs2", kBaseLr, {{"warmup_steps", 10}})->load_state(state), Error);
    EXPECT_THROW(make_scheduler("aecs", 2e-3, {{"warmup_steps", 10}})->load_state(state), Error);
    try {
        make_scheduler("aecs", kBaseLr, {{"warmup_steps", 20}})->load_state(state);
        FAIL() << "expected sz::Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("warmup_steps"), std::string::npos) << error.what();
    }

    nlohmann::json truncated = state;
    truncated["variables"]["losses"].erase(0);
    std::unique_ptr<LrScheduler> target = make_scheduler("aecs", kBaseLr, {{"warmup_steps", 10}});
    EXPECT_THROW(target->load_state(truncated), Error);
    EXPECT_EQ(target->steps(), 0) << "a failed load leaves the scheduler unchanged";

    std::unique_ptr<LrScheduler> resumed = restore_scheduler(state);
    EXPECT_THROW(resumed->step({1, 2.0, 1.0, std::nullopt}), Error) << "the next step is 6";
    EXPECT_NO_THROW(resumed->step({6, 2.0, 1.0, std::nullopt}));
}

// ---- fixed schedules ----

TEST(FixedSchedules, ConstantWithWarmup) {
    std::unique_ptr<LrScheduler> scheduler = make_scheduler("constant", 2e-3, {{"warmup_steps", 4}});
    std::vector<StepOutput> outputs(1);
    for (int64_t step = 1; step <= 6; ++step) {
        outputs.push_back(scheduler->step({step, 0.0, 0.0, std::nullopt}));
    }
    EXPECT_DOUBLE_EQ(outputs[1].lr, 5e-4);    // 1/4 * 2e-3
    EXPECT_DOUBLE_EQ(outputs[3].lr, 1.5e-3);  // 3/4 * 2e-3
    EXPECT_EQ(outputs[4].lr, 2e-3);
    EXPECT_EQ(outputs[6].lr, 2e-3);
    EXPECT_EQ(outputs[3].mode, "warmup");
    EXPECT_EQ(outputs[4].mode, "constant");
    ASSERT_EQ(outputs[4].events.size(), 1u);
    EXPECT_EQ(outputs[4].events[0].from_mode, "warmup");
    EXPECT_EQ(outputs[4].events[0].to_mode, "constant");
    EXPECT_DOUBLE_EQ(outputs[4].events[0].lr_before, 1.5e-3);
    EXPECT_TRUE(outputs[5].events.empty());
}

TEST(FixedSchedules, ConstantWithoutWarmup) {
    ConstantScheduler scheduler(2e-3, ConstantScheduleConfig{});
    EXPECT_EQ(scheduler.lr_scale_at(1), 1.0);
    EXPECT_EQ(scheduler.phase_at(1), "constant");
}

TEST(FixedSchedules, CosineAtHandComputedSteps) {
    CosineScheduleConfig config;
    config.warmup_steps = 10;
    config.total_steps = 110;  // p = (s - 10) / 100
    config.min_lr_ratio = 0.1;
    CosineScheduler scheduler(kBaseLr, config);

    EXPECT_DOUBLE_EQ(scheduler.lr_scale_at(5), 0.5);
    EXPECT_EQ(scheduler.lr_scale_at(10), 1.0);
    // p = 0.25: 0.1 + 0.9 * 0.5 * (1 + cos(pi / 4)) = 0.1 + 0.9 * 0.8535534 = 0.8681981
    EXPECT_NEAR(scheduler.lr_scale_at(35), 0.8681980515339464, 1e-12);
    // p = 0.5: 0.1 + 0.9 * 0.5 = 0.55
    EXPECT_NEAR(scheduler.lr_scale_at(60), 0.55, 1e-12);
    EXPECT_NEAR(scheduler.lr_scale_at(110), 0.1, 1e-12);
    EXPECT_NEAR(scheduler.lr_scale_at(500), 0.1, 1e-12) << "clamped after total_steps";
    EXPECT_EQ(scheduler.phase_at(9), "warmup");
    EXPECT_EQ(scheduler.phase_at(10), "decay");
}

TEST(FixedSchedules, CosineDefaultsMatchAecsBackbone) {
    // With the defaults, cosine equals aecs2 in BASELINE step for step.
    std::unique_ptr<LrScheduler> cosine = make_scheduler("cosine", kBaseLr);
    std::unique_ptr<LrScheduler> aecs2 = make_scheduler("aecs2", kBaseLr);
    for (int64_t step = 1; step <= 10500; step += 1) {
        const StepInput input{step, 2.0, 1.0, step > 1 ? std::optional<double>(0.0) : std::nullopt};
        const StepOutput expected = aecs2->step(input);
        const StepOutput actual = cosine->step(input);
        ASSERT_EQ(expected.mode, "BASELINE");
        ASSERT_EQ(actual.lr, expected.lr) << "step " << step;
    }
}

TEST(FixedSchedules, WsdAtHandComputedSteps) {
    // warm-up 10, total 110, decay 0.2 * 110 = 22 steps after step 88: x = (s - 88) / 22.
    WsdScheduleConfig config;
    config.warmup_steps = 10;
    config.total_steps = 110;
    config.decay_fraction = 0.2;
    WsdScheduler linear(kBaseLr, config);
    EXPECT_EQ(config.decay_steps(), 22);
    EXPECT_DOUBLE_EQ(linear.lr_scale_at(5), 0.5);
    EXPECT_EQ(linear.lr_scale_at(50), 1.0);
    EXPECT_EQ(linear.lr_scale_at(88), 1.0);
    EXPECT_DOUBLE_EQ(linear.lr_scale_at(99), 0.5);  // x = 0.5: 1 - 0.5
    EXPECT_EQ(linear.lr_scale_at(110), 0.0);
    EXPECT_EQ(linear.lr_scale_at(200), 0.0);
    EXPECT_EQ(linear.phase_at(88), "stable");
    EXPECT_EQ(linear.phase_at(89), "decay");

    config.decay_shape = DecayShape::sqrt;
    EXPECT_NEAR(WsdScheduler(kBaseLr, config).lr_scale_at(99), 0.2928932188134524, 1e-12);  // 1 - sqrt(0.5)
    config.decay_shape = DecayShape::cosine;
    EXPECT_NEAR(WsdScheduler(kBaseLr, config).lr_scale_at(99), 0.5, 1e-12);  // 0.5 * (1 + cos(pi / 2))
    config.decay_shape = DecayShape::linear;
    config.min_lr_ratio = 0.1;
    EXPECT_NEAR(WsdScheduler(kBaseLr, config).lr_scale_at(99), 0.55, 1e-12);  // 0.1 + 0.9 * 0.5
    EXPECT_NEAR(WsdScheduler(kBaseLr, config).lr_scale_at(110), 0.1, 1e-12);
}

TEST(FixedSchedules, WsdEmitsPhaseEvents) {
    std::unique_ptr<LrScheduler> scheduler = make_scheduler(
        "wsd", kBaseLr, {{"warmup_steps", 10}, {"total_steps", 110}, {"decay_fraction", 0.2}});
    std::vector<std::string> changes;
    for (int64_t step = 1; step <= 110; ++step) {
        for (const SchedulerEvent& event : scheduler->step({step, 0.0, 0.0, std::nullopt}).events) {
            changes.push_back(std::to_string(event.step) + " " + event.from_mode + "->" + event.to_mode);
        }
    }
    EXPECT_EQ(changes, (std::vector<std::string>{"10 warmup->stable", "89 stable->decay"}));
}

}  // namespace
}  // namespace sz
