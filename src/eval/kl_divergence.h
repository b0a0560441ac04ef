// KL(base || tuned) between two models' next-token distributions on the same token rows:
// how far tuning moved the model on text it was not tuned for.
#pragma once

#include <cstdint>
#include <vector>

#include "locate/corpus.h"
#include "model/causal_lm.h"
#include "model/projection.h"

namespace sz {

struct KlDivergence {
    double mean = 0.0;  // nats, averaged over every scored position of every row
    double max = 0.0;   // the largest single-position value
    int64_t positions = 0;
    int64_t rows = 0;
};

// Scores every real position of each row: for a prompt rendered with the generation prompt,
// that is each prompt token's next-token distribution, the last one being the distribution
// of the first reply token. The models must share a vocabulary. Either adapter may be null.
KlDivergence kl_divergence(CausalLM& base, const ProjectionAdapter* base_adapter, CausalLM& tuned,
                           const ProjectionAdapter* tuned_adapter, const std::vector<RenderedRow>& rows,
                           int32_t pad_id, int64_t batch_size);

// Per-position KL(p || q) from logits [n, V] of both models: sum_v p_v (log p_v - log q_v).
torch::Tensor kl_per_position(const torch::Tensor& base_logits, const torch::Tensor& tuned_logits);

}  // namespace sz
