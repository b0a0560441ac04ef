// Sampler chain: each step on small hand-computed distributions, plus determinism, errors and
// the selection paths on a Gemma-sized vocabulary. The expected survivors and probabilities
// of the small cases are also what llama.cpp's own samplers (libllama from llama-cpp-python
// 0.3.36) return for the same logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "sampling/sampler.h"

namespace sz {
namespace {

// Every step off: plain softmax sampling at temperature 1.
SamplerParams neutral_params() {
    SamplerParams params;
    params.temp = 1.0f;
    params.min_p = 0.0f;
    params.top_p = 1.0f;
    params.top_k = 0;
    params.repeat_penalty = 1.0f;
    params.repeat_last_n = 64;
    params.seed = 1234;
    return params;
}

std::vector<float> log_of(const std::vector<float>& probabilities) {
    std::vector<float> logits;
    for (float p : probabilities) {
        logits.push_back(std::log(p));
    }
    return logits;
}

std::vector<TokenProbability> distribution_of(const SamplerParams& params, const std::vector<float>& logits,
                                              const std::vector<int32_t>& history = {}) {
    Sampler sampler(params);
    sampler.accept(history);
    return sampler.distribution(logits.data(), static_cast<int64_t>(logits.size()));
}

std::vector<int32_t> ids_of(const std::vector<TokenProbability>& distribution) {
    std::vector<int32_t> ids;
    for (const TokenProbability& entry : distribution) {
        ids.push_back(entry.id);
    }
    return ids;
}

int32_t greedy_pick(const std::vector<float>& logits, float penalty, const std::vector<int32_t>& history) {
    SamplerParams params = neutral_params();
    params.temp = 0.0f;
    params.repeat_penalty = penalty;
    Sampler sampler(params);
    sampler.accept(history);
    return sampler.sample(logits.data(), static_cast<int64_t>(logits.size()));
}

std::vector<float> random_logits(int64_t n_vocab, uint32_t seed, float scale) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> logits(n_vocab);
    for (float& logit : logits) {
        logit = normal(rng);
    }
    return logits;
}

// Probabilities 0.15, 0.5, 0.05, 0.3 for ids 0..3: sorted order is 1, 3, 0, 2.
const std::vector<float> kFourTokens = log_of({0.15f, 0.5f, 0.05f, 0.3f});

TEST(Sampler, DefaultsMatchModelCard) {
    SamplerParams params;
    EXPECT_FLOAT_EQ(params.temp, 0.9f);
    EXPECT_FLOAT_EQ(params.min_p, 0.1f);
    EXPECT_FLOAT_EQ(params.top_p, 1.0f);
    EXPECT_EQ(params.top_k, 0);
    EXPECT_FLOAT_EQ(params.repeat_penalty, 1.1f);
    EXPECT_EQ(params.repeat_last_n, 256);
}

TEST(Sampler, GreedyTiesPickLowestId) {
    EXPECT_EQ(greedy_pick({1.0f, 3.0f, 3.0f, 2.0f}, 1.0f, {}), 1);
    EXPECT_EQ(greedy_pick({-5.0f, -1.0f, -1.0f}, 1.0f, {}), 1);
    EXPECT_EQ(greedy_pick({7.0f, 7.0f, 7.0f}, 1.0f, {}), 0);
}

TEST(Sampler, NegativeTemperatureIsGreedy) {
    SamplerParams params = neutral_params();
    params.temp = -1.0f;
    std::vector<TokenProbability> result = distribution_of(params, kFourTokens);
    ASSERT_EQ(result.size(), 1u);
    EXPECT_EQ(result[0].id, 1);
    EXPECT_FLOAT_EQ(result[0].probability, 1.0f);
}

TEST(Sampler, GreedyIgnoresRandomState) {
    SamplerParams params = neutral_params();
    params.temp = 0.0f;
    std::vector<float> logits = random_logits(1000, 5, 3.0f);
    int32_t expected = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    for (uint32_t seed : {1u, 2u, 3u}) {
        params.seed = seed;
        Sampler sampler(params);
        EXPECT_EQ(sampler.sample(logits.data(), 1000), expected);
        EXPECT_EQ(sampler.sample(logits.data(), 1000), expected);
    }
}

TEST(RepetitionPenalty, DividesPositiveLogits) {
    // 3 / 1.4 = 2.14 stays above 2, 3 / 1.6 = 1.875 drops below it.
    EXPECT_EQ(greedy_pick({3.0f, 2.0f}, 1.4f, {0}), 0);
    EXPECT_EQ(greedy_pick({3.0f, 2.0f}, 1.6f, {0}), 1);
}

TEST(RepetitionPenalty, MultipliesNegativeLogits) {
    // -2 * 1.2 = -2.4 stays above -2.5, -2 * 1.3 = -2.6 drops below it.
    EXPECT_EQ(greedy_pick({-2.0f, -2.5f}, 1.2f, {0}), 0);
    EXPECT_EQ(greedy_pick({-2.0f, -2.5f}, 1.3f, {0}), 1);
}

TEST(RepetitionPenalty, ZeroLogitStaysZero) {
    // 0 * penalty = 0 still beats -0.1.
    EXPECT_EQ(greedy_pick({0.0f, -0.1f}, 2.0f, {0}), 0);
}

TEST(RepetitionPenalty, AppliesOncePerDistinctToken) {
    // Penalized once: -1 * 1.4 = -1.4 > -1.5. Twice would give -1.96 < -1.5.
    EXPECT_EQ(greedy_pick({-1.0f, -1.5f}, 1.4f, {0, 0, 0}), 0);
}

TEST(RepetitionPenalty, PenaltyOneIsOff) {
    EXPECT_EQ(greedy_pick({3.0f, 2.9f}, 1.0f, {0, 0}), 0);
}

TEST(RepetitionPenalty, MatchesExactValues) {
    // Penalty 2 on tokens 0, 1 and 2: 2 -> 1, -1 -> -2, 0 -> 0; token 3 untouched.
    SamplerParams params = neutral_params();
    params.repeat_penalty = 2.0f;
    std::vector<TokenProbability> result = distribution_of(params, {2.0f, -1.0f, 0.0f, 1.9f}, {0, 1, 1, 2});
    double z = std::exp(1.0) + std::exp(-2.0) + std::exp(0.0) + std::exp(1.9);
    ASSERT_EQ(result.size(), 4u);
    EXPECT_EQ(result[0].id, 3);
    EXPECT_NEAR(result[0].probability, std::exp(1.9) / z, 1e-6);
    EXPECT_EQ(result[1].id, 0);
    EXPECT_NEAR(result[1].probability, std::exp(1.0) / z, 1e-6);
    EXPECT_EQ(result[2].id, 2);
    EXPECT_NEAR(result[2].probability, 1.0 / z, 1e-6);
    EXPECT_EQ(result[3].id, 1);
    EXPECT_NEAR(result[3].probability, std::exp(-2.0) / z, 1e-6);
}

TEST(RepetitionPenalty, WindowKeepsLastN) {
    SamplerParams params = neutral_params();
    params.repeat_last_n = 2;
    Sampler sampler(params);
    sampler.accept({0, 5, 6});
    ASSERT_EQ(sampler.history().size(), 2u);
    EXPECT_EQ(sampler.history()[0], 5);
    EXPECT_EQ(sampler.history()[1], 6);

    // Token 0 left the window, so it keeps logit 3; penalized it would fall to 0.3 < 2.
    params.temp = 0.0f;
    params.repeat_penalty = 10.0f;
    Sampler greedy(params);
    greedy.accept({0, 1, 2});
    std::vector<float> logits = {3.0f, -5.0f, -5.0f, 2.0f};
    EXPECT_EQ(greedy.sample(logits.data(), 4), 0);
}

TEST(RepetitionPenalty, LastNZeroKeepsNoHistory) {
    SamplerParams params = neutral_params();
    params.repeat_last_n = 0;
    params.repeat_penalty = 10.0f;
    params.temp = 0.0f;
    Sampler sampler(params);
    sampler.accept({0, 0, 0});
    EXPECT_TRUE(sampler.history().empty());
    std::vector<float> logits = {3.0f, 2.0f};
    EXPECT_EQ(sampler.sample(logits.data(), 2), 0);
}

TEST(RepetitionPenalty, LastNMinusOneKeepsEverything) {
    SamplerParams params = neutral_params();
    params.repeat_last_n = -1;
    Sampler sampler(params);
    std::vector<int32_t> tokens(1000);
    std::iota(tokens.begin(), tokens.end(), 0);
    sampler.accept(tokens);
    EXPECT_EQ(sampler.history().size(), 1000u);
}

TEST(TopK, KeepsHighestK) {
    SamplerParams params = neutral_params();
    params.top_k = 2;
    std::vector<TokenProbability> result = distribution_of(params, {1.0f, 4.0f, 2.0f, 3.0f, 0.0f});
    ASSERT_EQ(result.size(), 2u);
    EXPECT_EQ(result[0].id, 1);
    EXPECT_NEAR(result[0].probability, 0.7310586, 1e-6);  // 1 / (1 + e^-1)
    EXPECT_EQ(result[1].id, 3);
    EXPECT_NEAR(result[1].probability, 0.2689414, 1e-6);
}

TEST(TopK, ZeroAndLargeKAreOff) {
    SamplerParams params = neutral_params();
    params.top_k = 0;
    EXPECT_EQ(distribution_of(params, kFourTokens).size(), 4u);
    params.top_k = 100;
    EXPECT_EQ(distribution_of(params, kFourTokens).size(), 4u);
}

TEST(TopK, TieAtCutKeepsLowerId) {
    SamplerParams params = neutral_params();
    params.top_k = 2;
    std::vector<TokenProbability> result = distribution_of(params, {1.0f, 2.0f, 1.0f, 1.0f});
    EXPECT_EQ(ids_of(result), (std::vector<int32_t>{1, 0}));
}

TEST(TopP, CutPoints) {
    // Sorted probabilities 0.5, 0.3, 0.15, 0.05: cumulative 0.5, 0.8, 0.95, 1.0.
    SamplerParams params = neutral_params();

    params.top_p = 0.49f;
    EXPECT_EQ(ids_of(distribution_of(params, kFourTokens)), (std::vector<int32_t>{1}));

    params.top_p = 0.79f;
    std::vector<TokenProbability> two = distribution_of(params, kFourTokens);
    EXPECT_EQ(ids_of(two), (std::vector<int32_t>{1, 3}));
    ASSERT_EQ(two.size(), 2u);
    EXPECT_NEAR(two[0].probability, 0.625, 1e-6);  // 0.5 / 0.8
    EXPECT_NEAR(two[1].probability, 0.375, 1e-6);

    params.top_p = 0.81f;
    EXPECT_EQ(ids_of(distribution_of(params, kFourTokens)), (std::vector<int32_t>{1, 3, 0}));

    params.top_p = 0.96f;
    EXPECT_EQ(ids_of(distribution_of(params, kFourTokens)), (std::vector<int32_t>{1, 3, 0, 2}));
}

TEST(TopP, ZeroKeepsOneToken) {
    SamplerParams params = neutral_params();
    params.top_p = 0.0f;
    EXPECT_EQ(ids_of(distribution_of(params, kFourTokens)), (std::vector<int32_t>{1}));
}

TEST(TopP, EqualLogitsCutByLowerId) {
    // Four equal logits: 0.25 + 0.25 reaches 0.5 exactly, so ids 0 and 1 stay.
    SamplerParams params = neutral_params();
    params.top_p = 0.5f;
    EXPECT_EQ(ids_of(distribution_of(params, {0.0f, 0.0f, 0.0f, 0.0f})), (std::vector<int32_t>{0, 1}));
}

TEST(TopP, SkipsNegativeInfinity) {
    // p(1) = 1 / (1 + e^-1) = 0.73 < 0.9, so token 3 joins it; masked tokens never do.
    SamplerParams params = neutral_params();
    params.top_p = 0.9f;
    const float minus_infinity = -std::numeric_limits<float>::infinity();
    std::vector<float> logits = {minus_infinity, 1.0f, minus_infinity, 0.0f};
    EXPECT_EQ(ids_of(distribution_of(params, logits)), (std::vector<int32_t>{1, 3}));
}

TEST(TopP, UsesTopKSurvivors) {
    // Over all four tokens 0.4 < 0.5 would keep two; over the top-2 survivors
    // 0.4 / 0.7 = 0.57 >= 0.5 keeps one, because top-k runs first.
    SamplerParams params = neutral_params();
    params.top_k = 2;
    params.top_p = 0.5f;
    EXPECT_EQ(ids_of(distribution_of(params, log_of({0.4f, 0.3f, 0.2f, 0.1f}))), (std::vector<int32_t>{0}));
}

TEST(MinP, CutPoints) {
    // Ratios to the top probability 0.5: 0.6, 0.3, 0.1.
    SamplerParams params = neutral_params();

    params.min_p = 0.29f;
    std::vector<TokenProbability> three = distribution_of(params, kFourTokens);
    EXPECT_EQ(ids_of(three), (std::vector<int32_t>{1, 3, 0}));
    ASSERT_EQ(three.size(), 3u);
    EXPECT_NEAR(three[0].probability, 0.5 / 0.95, 1e-6);
    EXPECT_NEAR(three[1].probability, 0.3 / 0.95, 1e-6);
    EXPECT_NEAR(three[2].probability, 0.15 / 0.95, 1e-6);

    params.min_p = 0.31f;
    EXPECT_EQ(ids_of(distribution_of(params, kFourTokens)), (std::vector<int32_t>{1, 3}));

    params.min_p = 0.09f;
    EXPECT_EQ(ids_of(distribution_of(params, kFourTokens)), (std::vector<int32_t>{1, 3, 0, 2}));

    params.min_p = 1.0f;
    EXPECT_EQ(ids_of(distribution_of(params, kFourTokens)), (std::vector<int32_t>{1}));
}

TEST(MinP, RunsAfterRepetitionPenalty) {
    // Without the penalty e^-1 = 0.37 < 0.5 cuts token 1; penalty 2 makes both logits 1.
    SamplerParams params = neutral_params();
    params.min_p = 0.5f;
    EXPECT_EQ(ids_of(distribution_of(params, {2.0f, 1.0f})), (std::vector<int32_t>{0}));

    params.repeat_penalty = 2.0f;
    std::vector<TokenProbability> both = distribution_of(params, {2.0f, 1.0f}, {0});
    ASSERT_EQ(both.size(), 2u);
    EXPECT_NEAR(both[0].probability, 0.5, 1e-6);
    EXPECT_NEAR(both[1].probability, 0.5, 1e-6);
}

TEST(Temperature, ReweightsWithoutChangingSurvivors) {
    // min_p 0.29 keeps 0.5, 0.3, 0.15 at any temperature; temp 2 turns them into
    // sqrt(p) / sum(sqrt(p)).
    SamplerParams params = neutral_params();
    params.min_p = 0.29f;
    params.temp = 2.0f;
    std::vector<TokenProbability> result = distribution_of(params, kFourTokens);
    EXPECT_EQ(ids_of(result), (std::vector<int32_t>{1, 3, 0}));
    ASSERT_EQ(result.size(), 3u);
    double z = std::sqrt(0.5) + std::sqrt(0.3) + std::sqrt(0.15);
    EXPECT_NEAR(result[0].probability, std::sqrt(0.5) / z, 1e-6);
    EXPECT_NEAR(result[1].probability, std::sqrt(0.3) / z, 1e-6);
    EXPECT_NEAR(result[2].probability, std::sqrt(0.15) / z, 1e-6);

    params.temp = 0.05f;
    EXPECT_EQ(distribution_of(params, kFourTokens).size(), 3u);
}

TEST(Sampler, DrawFrequenciesMatchDistribution) {
    SamplerParams params = neutral_params();
    Sampler sampler(params);
    std::vector<float> logits = log_of({0.5f, 0.3f, 0.2f});
    std::vector<int> counts(3, 0);
    const int draws = 20000;
    for (int i = 0; i < draws; ++i) {
        counts[sampler.sample(logits.data(), 3)] += 1;
    }
    EXPECT_NEAR(counts[0] / static_cast<double>(draws), 0.5, 0.02);
    EXPECT_NEAR(counts[1] / static_cast<double>(draws), 0.3, 0.02);
    EXPECT_NEAR(counts[2] / static_cast<double>(draws), 0.2, 0.02);
}

TEST(Sampler, NeverDrawsNegativeInfinity) {
    SamplerParams params = neutral_params();
    const float minus_infinity = -std::numeric_limits<float>::infinity();
    std::vector<float> logits = {minus_infinity, 0.0f, minus_infinity, 0.0f};
    Sampler sampler(params);
    for (int i = 0; i < 1000; ++i) {
        int32_t token = sampler.sample(logits.data(), 4);
        EXPECT_TRUE(token == 1 || token == 3) << "drew token " << token;
    }
}

std::vector<int32_t> sample_sequence(const SamplerParams& params, const std::vector<float>& logits, int count) {
    Sampler sampler(params);
    std::vector<int32_t> tokens;
    for (int i = 0; i < count; ++i) {
        int32_t token = sampler.sample(logits.data(), static_cast<int64_t>(logits.size()));
        sampler.accept(token);
        tokens.push_back(token);
    }
    return tokens;
}

TEST(Sampler, SameSeedSameTokens) {
    SamplerParams params;  // defaults, penalty included
    params.seed = 42;
    std::vector<float> logits = random_logits(5000, 9, 2.0f);
    std::vector<int32_t> first = sample_sequence(params, logits, 100);
    std::vector<int32_t> second = sample_sequence(params, logits, 100);
    EXPECT_EQ(first, second);

    params.seed = 43;
    std::vector<int32_t> other = sample_sequence(params, logits, 100);
    EXPECT_NE(first, other);
}

TEST(Sampler, ResetRestartsRandomStream) {
    SamplerParams params = neutral_params();
    params.seed = 7;
    std::vector<float> logits = random_logits(100, 3, 0.5f);
    Sampler sampler(params);
    std::vector<int32_t> first;
    for (int i = 0; i < 20; ++i) {
        first.push_back(sampler.sample(logits.data(), 100));
    }
    sampler.reset();
    std::vector<int32_t> second;
    for (int i = 0; i < 20; ++i) {
        second.push_back(sampler.sample(logits.data(), 100));
    }
    EXPECT_EQ(first, second);
}

TEST(Sampler, TensorUsesLastPosition) {
    SamplerParams params = neutral_params();
    params.temp = 0.0f;
    Sampler sampler(params);
    torch::Tensor logits = torch::zeros({1, 3, 5});
    logits[0][0][1] = 5.0f;
    logits[0][2][4] = 5.0f;
    EXPECT_EQ(sampler.sample(logits), 4);
    EXPECT_EQ(sampler.sample(logits[0][0]), 1);
    EXPECT_THROW(sampler.sample(torch::zeros({2, 1, 5})), Error);
}

TEST(Sampler, RejectsInvalidLogits) {
    Sampler sampler(neutral_params());
    std::vector<float> with_nan = {0.0f, std::numeric_limits<float>::quiet_NaN()};
    EXPECT_THROW(sampler.sample(with_nan.data(), 2), Error);
    std::vector<float> with_infinity = {0.0f, std::numeric_limits<float>::infinity()};
    EXPECT_THROW(sampler.sample(with_infinity.data(), 2), Error);
    const float minus_infinity = -std::numeric_limits<float>::infinity();
    std::vector<float> all_masked = {minus_infinity, minus_infinity};
    EXPECT_THROW(sampler.sample(all_masked.data(), 2), Error);
    EXPECT_THROW(sampler.sample(all_masked.data(), 0), Error);
}

TEST(Sampler, RejectsHistoryOutsideVocabulary) {
    SamplerParams params = neutral_params();
    params.repeat_penalty = 1.5f;
    Sampler sampler(params);
    sampler.accept(7);
    std::vector<float> logits = {0.0f, 1.0f};
    EXPECT_THROW(sampler.sample(logits.data(), 2), Error);
}

TEST(SamplerParams, RejectsOutOfRangeValues) {
    auto with = [](auto change) {
        SamplerParams params;
        change(params);
        return params;
    };
    EXPECT_NO_THROW(SamplerParams{}.validate());
    EXPECT_THROW(with([](SamplerParams& p) { p.min_p = 1.5f; }).validate(), Error);
    EXPECT_THROW(with([](SamplerParams& p) { p.min_p = -0.1f; }).validate(), Error);
    EXPECT_THROW(with([](SamplerParams& p) { p.top_p = 1.1f; }).validate(), Error);
    EXPECT_THROW(with([](SamplerParams& p) { p.top_k = -1; }).validate(), Error);
    EXPECT_THROW(with([](SamplerParams& p) { p.repeat_penalty = 0.0f; }).validate(), Error);
    EXPECT_THROW(with([](SamplerParams& p) { p.repeat_last_n = -2; }).validate(), Error);
    EXPECT_THROW(with([](SamplerParams& p) { p.temp = std::nanf(""); }).validate(), Error);
    EXPECT_THROW(Sampler(with([](SamplerParams& p) { p.min_p = 2.0f; })), Error);
}

// Gemma 3's vocabulary size: the selection paths must agree with a full sort.
constexpr int64_t kGemmaVocab = 262144;

TEST(TopP, LargeVocabularyMatchesFullSort) {
    std::vector<float> logits = random_logits(kGemmaVocab, 11, 3.0f);
    SamplerParams params = neutral_params();
    params.top_p = 0.9f;
    Sampler sampler(params);
    std::vector<TokenProbability> result = sampler.distribution(logits.data(), kGemmaVocab);

    std::vector<int32_t> order(kGemmaVocab);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    double total = 0.0;
    for (float logit : logits) {
        total += std::exp(static_cast<double>(logit));
    }
    size_t expected_count = 0;
    double cumulative = 0.0;
    while (expected_count < order.size()) {
        cumulative += std::exp(static_cast<double>(logits[order[expected_count]]));
        ++expected_count;
        if (cumulative >= 0.9 * total) {
            break;
        }
    }
    // A kept set this large spans many top-p buckets, so the bucket walk is exercised.
    ASSERT_GT(expected_count, 1000u);
    ASSERT_EQ(result.size(), expected_count);
    std::vector<int32_t> expected_ids(order.begin(), order.begin() + expected_count);
    EXPECT_EQ(ids_of(result), expected_ids);
}

TEST(MinP, LargeVocabularyAfterTopK) {
    std::vector<float> logits = random_logits(kGemmaVocab, 12, 2.0f);
    SamplerParams params = neutral_params();
    params.top_k = 500;
    params.min_p = 0.2f;
    Sampler sampler(params);
    std::vector<TokenProbability> result = sampler.distribution(logits.data(), kGemmaVocab);

    float max_logit = *std::max_element(logits.begin(), logits.end());
    std::vector<float> sorted = logits;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    size_t expected = 0;
    while (expected < 500 && sorted[expected] >= max_logit + std::log(0.2f)) {
        ++expected;
    }
    ASSERT_GT(expected, 1u);
    EXPECT_EQ(result.size(), expected);
}

}  // namespace
}  // namespace sz
