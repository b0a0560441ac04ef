// Token sampler: turns one row of logits into the next token id, with llama.cpp's flag
// semantics (--temp, --min-p, --top-p, --top-k, --repeat-penalty, --repeat-last-n, --seed).
//
// Order of the chain: llama.cpp's default sampler sequence (common_params_sampling::samplers in
// common/common.h: penalties, dry, top_n_sigma, top_k, typical_p, top_p, min_p, xtc,
// temperature, then dist) restricted to the samplers here. NOTE: that list is from llama.cpp's
// documentation, because the installed llama-cpp-python 0.3.36 ships no llama.cpp sources.
// That package's Llama._init_sampler builds the same order (penalties, top_k, typical, top_p,
// min_p, temp, dist).
//   1. repetition penalty: every distinct token among the last repeat_last_n accepted tokens
//      has its logit divided by repeat_penalty when positive, multiplied when <= 0;
//   2. top-k: keep the k highest logits (k <= 0: off);
//   3. top-p: keep the smallest set of highest-probability tokens whose probabilities,
//      computed at temperature 1, sum to at least top_p (top_p >= 1: off);
//   4. min-p: keep tokens whose probability at temperature 1 is at least min_p times the
//      highest one, that is logit >= max_logit + log(min_p) (min_p <= 0: off);
//   5. temperature: divide the surviving logits by temp;
//   6. draw from the softmax of what is left, with the sampler's own std::mt19937.
// With temp <= 0 the sampler is greedy: step 1, then the highest logit (ties: lowest id).
// Because steps 3 and 4 come before step 5, temperature changes only how the surviving tokens
// are weighted, never which tokens survive.
//
// Every step keeps at least one token. Ties in logits are ordered by token id, so the same
// seed, parameters, history and logits give the same token on every platform.
// NOTE: the draw uses its own random stream, so a seed reproduces subzero's output but not
// the tokens llama.cpp draws with the same seed.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include <torch/torch.h>

namespace sz {

// Defaults are the ones recommended on the Gemma 3 model card, with llama.cpp's penalty window.
struct SamplerParams {
    float temp = 0.9f;
    float min_p = 0.1f;
    float top_p = 1.0f;
    int32_t top_k = 0;             // 0 (or negative) = off
    float repeat_penalty = 1.1f;   // 1 = off
    int32_t repeat_last_n = 256;   // tokens of history the penalty looks at; 0 = off
    uint32_t seed = 0;

    // Throws sz::Error naming the first out-of-range value and its flag.
    void validate() const;
};

struct TokenProbability {
    int32_t id;
    float probability;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams& params);

    const SamplerParams& params() const { return params_; }

    // Picks the next token from `logits` (n_vocab floats). Does not add it to the history:
    // call accept() with the token that is actually used.
    // Throws sz::Error when the logits contain NaN or no finite value.
    int32_t sample(const float* logits, int64_t n_vocab);
    // The same for a tensor [V], [1, V] or [1, T, V]; a 3-D tensor gives its last position.
    int32_t sample(const torch::Tensor& logits);

    // Runs steps 1-5 without drawing and returns the surviving tokens with their final
    // probabilities, most probable first (ties: lower id first). With temp <= 0 it returns
    // the greedy token with probability 1.
    std::vector<TokenProbability> distribution(const float* logits, int64_t n_vocab);

    // Appends a token to the repetition-penalty history. Prompt tokens count too, as in
    // llama.cpp, so callers accept them before the first sample().
    void accept(int32_t token);
    void accept(const std::vector<int32_t>& tokens);

    // Clears the penalty history and reseeds the generator with params().seed.
    void reset();
    // Clears the penalty history only; the random stream continues.
    void clear_history() { history_.clear(); }

    // The last repeat_last_n accepted tokens, oldest first.
    const std::deque<int32_t>& history() const { return history_; }

private:
    struct Candidate {
        int32_t id;
        float logit;
    };

    // Descending logit, ties by ascending id: a strict total order, so a partial sort or a
    // selection keeps exactly the tokens a full sort would.
    static bool ranks_higher(const Candidate& a, const Candidate& b);

    // Loads the logits into candidates_ and runs steps 1-4; returns the greedy token when
    // temp <= 0 (candidates_ is then unfiltered), else -1.
    int32_t filter(const float* logits, int64_t n_vocab);
    void apply_repetition_penalty();
    int32_t select_greedy() const;
    void apply_top_k();
    void apply_top_p();
    void apply_min_p();
    // Fills weights_ with softmax(logit / temp) over candidates_ and returns their sum.
    double compute_weights();
    int32_t draw();

    SamplerParams params_;
    std::mt19937 rng_;
    std::deque<int32_t> history_;
    // Working set, reused across calls to avoid a 2 MiB allocation per token at V = 262144.
    std::vector<Candidate> candidates_;
    std::vector<float> weights_;
};

// A seed from std::random_device, for runs where the user gave none.
uint32_t random_seed();

}  // namespace sz
