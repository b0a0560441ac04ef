#include "sampling/sampler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace sz {

namespace {

// Logit buckets for top-p. At V = 262144 a bucket of a smooth distribution contains a few
// hundred tokens, so sorting the one that contains the cut is cheap.
constexpr size_t kTopPBuckets = 1024;

}  // namespace

void SamplerParams::validate() const {
    if (std::isnan(temp)) {
        fail("invalid --temp {}: expected a number (<= 0 means greedy)", temp);
    }
    if (!(min_p >= 0.0f && min_p <= 1.0f)) {
        fail("invalid --min-p {}: expected a value in [0, 1] (0 turns it off)", min_p);
    }
    if (!(top_p >= 0.0f && top_p <= 1.0f)) {
        fail("invalid --top-p {}: expected a value in [0, 1] (1 turns it off)", top_p);
    }
    if (top_k < 0) {
        fail("invalid --top-k {}: expected a count >= 0 (0 turns it off)", top_k);
    }
    if (!(repeat_penalty > 0.0f) || std::isinf(repeat_penalty)) {
        fail("invalid --repeat-penalty {}: expected a positive number (1 turns it off)", repeat_penalty);
    }
    if (repeat_last_n < -1) {
        fail("invalid --repeat-last-n {}: expected a count >= 0, or -1 for the whole context", repeat_last_n);
    }
}

Sampler::Sampler(const SamplerParams& params) : params_(params), rng_(params.seed) {
    params_.validate();
}

bool Sampler::ranks_higher(const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

void Sampler::reset() {
    history_.clear();
    rng_.seed(params_.seed);
}

void Sampler::accept(int32_t token) {
    if (params_.repeat_last_n == 0) {
        return;
    }
    history_.push_back(token);
    if (params_.repeat_last_n > 0 && history_.size() > static_cast<size_t>(params_.repeat_last_n)) {
        history_.pop_front();
    }
}

void Sampler::accept(const std::vector<int32_t>& tokens) {
    for (int32_t token : tokens) {
        accept(token);
    }
}

int32_t Sampler::sample(const torch::Tensor& logits) {
    if (!logits.defined() || logits.dim() < 1 || logits.size(-1) == 0) {
        fail("cannot sample from an empty logits tensor");
    }
    const int64_t n_vocab = logits.size(-1);
    torch::Tensor rows = logits.reshape({-1, n_vocab});
    if (logits.dim() >= 3 && logits.size(0) != 1) {
        fail("cannot sample from logits with batch size {}: the sampler takes one sequence",
             logits.size(0));
    }
    if (logits.dim() == 2 && logits.size(0) != 1) {
        fail("cannot sample from logits of shape [{}]: expected [V], [1, V] or [1, T, V]",
             fmt::join(logits.sizes(), ", "));
    }
    torch::Tensor last = rows[rows.size(0) - 1].to(torch::kCPU, torch::kFloat32).contiguous();
    return sample(last.data_ptr<float>(), n_vocab);
}

int32_t Sampler::sample(const float* logits, int64_t n_vocab) {
    const int32_t greedy = filter(logits, n_vocab);
    if (greedy >= 0) {
        return greedy;
    }
    return draw();
}

std::vector<TokenProbability> Sampler::distribution(const float* logits, int64_t n_vocab) {
    const int32_t greedy = filter(logits, n_vocab);
    if (greedy >= 0) {
        return {TokenProbability{greedy, 1.0f}};
    }
    const double total = compute_weights();
    std::vector<TokenProbability> result;
    result.reserve(candidates_.size());
    for (size_t i = 0; i < candidates_.size(); ++i) {
        result.push_back(TokenProbability{candidates_[i].id, static_cast<float>(weights_[i] / total)});
    }
    std::sort(result.begin(), result.end(), [](const TokenProbability& a, const TokenProbability& b) {
        return a.probability > b.probability || (a.probability == b.probability && a.id < b.id);
    });
    return result;
}

int32_t Sampler::filter(const float* logits, int64_t n_vocab) {
    if (n_vocab <= 0 || n_vocab > std::numeric_limits<int32_t>::max()) {
        fail("cannot sample from {} logits", n_vocab);
    }

    candidates_.resize(static_cast<size_t>(n_vocab));
    bool any_finite = false;
    for (int64_t i = 0; i < n_vocab; ++i) {
        const float logit = logits[i];
        if (std::isnan(logit) || logit == std::numeric_limits<float>::infinity()) {
            fail("the model returned an invalid logit {} for token {}; the weights or the "
                 "activations overflowed",
                 logit, i);
        }
        any_finite = any_finite || std::isfinite(logit);
        candidates_[i] = Candidate{static_cast<int32_t>(i), logit};
    }
    if (!any_finite) {
        fail("cannot sample: every one of the {} logits is -inf", n_vocab);
    }

    // Candidates are still indexed by token id here, which the penalty step relies on.
    apply_repetition_penalty();
    if (params_.temp <= 0.0f) {
        return select_greedy();
    }
    apply_top_k();
    apply_top_p();
    apply_min_p();
    return -1;
}

void Sampler::apply_repetition_penalty() {
    if (params_.repeat_penalty == 1.0f || history_.empty()) {
        return;
    }
    // Each distinct token is penalized once, however often it occurs in the window.
    std::vector<int32_t> distinct(history_.begin(), history_.end());
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());

    for (int32_t token : distinct) {
        if (token < 0 || static_cast<size_t>(token) >= candidates_.size()) {
            fail("token id {} in the repetition-penalty history is outside the vocabulary of {} tokens",
                 token, candidates_.size());
        }
        float& logit = candidates_[token].logit;
        if (logit > 0.0f) {
            logit /= params_.repeat_penalty;
        } else {
            logit *= params_.repeat_penalty;
        }
    }
}

int32_t Sampler::select_greedy() const {
    // Candidates are in id order, so a strict comparison keeps the lowest id among ties.
    size_t best = 0;
    for (size_t i = 1; i < candidates_.size(); ++i) {
        if (candidates_[i].logit > candidates_[best].logit) {
            best = i;
        }
    }
    return candidates_[best].id;
}

void Sampler::apply_top_k() {
    const size_t k = static_cast<size_t>(params_.top_k);
    if (params_.top_k <= 0 || k >= candidates_.size()) {
        return;
    }
    std::nth_element(candidates_.begin(), candidates_.begin() + k, candidates_.end(), ranks_higher);
    candidates_.resize(k);
}

void Sampler::apply_top_p() {
    if (params_.top_p >= 1.0f) {
        return;
    }
    float max_logit = -std::numeric_limits<float>::infinity();
    float min_logit = std::numeric_limits<float>::infinity();
    for (const Candidate& c : candidates_) {
        max_logit = std::max(max_logit, c.logit);
        if (std::isfinite(c.logit)) {
            min_logit = std::min(min_logit, c.logit);
        }
    }

    // The cut is the first position, in descending logit order, where the cumulative
    // probability reaches top_p. Instead of sorting V logits, one pass sums the probability
    // mass of kTopPBuckets equal-width logit buckets, bucket 0 being the highest logits.
    // The cut lies in the first bucket where the running sum reaches top_p, so only that
    // bucket is sorted. Bucket boundaries respect the logit order, so the kept set is the
    // one a full sort gives.
    const float range = max_logit - min_logit;
    const float scale = range > 0.0f ? static_cast<float>(kTopPBuckets) / range : 0.0f;
    auto bucket_of = [&](const Candidate& c) -> size_t {
        if (!std::isfinite(c.logit)) {
            return kTopPBuckets - 1;
        }
        return std::min(kTopPBuckets - 1, static_cast<size_t>((max_logit - c.logit) * scale));
    };
    auto weight = [max_logit](const Candidate& c) { return static_cast<double>(std::exp(c.logit - max_logit)); };

    std::array<double, kTopPBuckets> bucket_mass{};
    double total = 0.0;
    for (const Candidate& c : candidates_) {
        const double w = weight(c);
        bucket_mass[bucket_of(c)] += w;
        total += w;
    }

    double needed = static_cast<double>(params_.top_p) * total;
    size_t cut_bucket = 0;
    while (cut_bucket < kTopPBuckets && bucket_mass[cut_bucket] < needed) {
        needed -= bucket_mass[cut_bucket];
        ++cut_bucket;
    }
    if (cut_bucket == kTopPBuckets) {
        return;  // rounding kept the sum just below top_p, so every candidate stays
    }

    auto above_cut = [&](const Candidate& c) { return bucket_of(c) < cut_bucket; };
    auto in_cut = [&](const Candidate& c) { return bucket_of(c) == cut_bucket; };
    auto cut_begin = std::partition(candidates_.begin(), candidates_.end(), above_cut);
    auto cut_end = std::partition(cut_begin, candidates_.end(), in_cut);
    std::sort(cut_begin, cut_end, ranks_higher);

    double cumulative = 0.0;
    auto last_kept = cut_end;
    for (auto it = cut_begin; it != cut_end; ++it) {
        cumulative += weight(*it);
        if (cumulative >= needed) {
            last_kept = it + 1;
            break;
        }
    }
    // When rounding keeps the sum just below top_p, the whole cut bucket stays.
    candidates_.erase(last_kept, candidates_.end());
}

void Sampler::apply_min_p() {
    if (params_.min_p <= 0.0f) {
        return;
    }
    float max_logit = -std::numeric_limits<float>::infinity();
    for (const Candidate& c : candidates_) {
        max_logit = std::max(max_logit, c.logit);
    }
    // p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p), at temperature 1.
    const float threshold = max_logit + std::log(params_.min_p);

    auto below = [threshold](const Candidate& c) { return c.logit < threshold; };
    candidates_.erase(std::remove_if(candidates_.begin(), candidates_.end(), below), candidates_.end());
}

double Sampler::compute_weights() {
    float max_logit = -std::numeric_limits<float>::infinity();
    for (const Candidate& c : candidates_) {
        max_logit = std::max(max_logit, c.logit);
    }
    weights_.resize(candidates_.size());
    double total = 0.0;
    for (size_t i = 0; i < candidates_.size(); ++i) {
        // Step 5 (temperature) and the softmax, shifted by the maximum to stay in range.
        weights_[i] = std::exp((candidates_[i].logit - max_logit) / params_.temp);
        total += weights_[i];
    }
    return total;
}

int32_t Sampler::draw() {
    const double total = compute_weights();

    // One 32-bit mt19937 output per token gives a uniform u in [0, 1). mt19937 is fully
    // specified by the C++ standard, unlike std::uniform_real_distribution, so a seed
    // reproduces the same draws with every standard library.
    const double u = static_cast<double>(rng_()) / 4294967296.0;
    const double target = u * total;
    double cumulative = 0.0;
    size_t last_positive = 0;
    for (size_t i = 0; i < candidates_.size(); ++i) {
        if (weights_[i] <= 0.0f) {
            continue;
        }
        cumulative += weights_[i];
        last_positive = i;
        if (cumulative > target) {
            return candidates_[i].id;
        }
    }
    // Rounding left the target at the very end of the distribution.
    return candidates_[last_positive].id;
}

uint32_t random_seed() {
    std::random_device device;
    return device();
}

}  // namespace sz
