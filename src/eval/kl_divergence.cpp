#include "eval/kl_divergence.h"

#include <algorithm>

#include "core/error.h"

namespace sz {

torch::Tensor kl_per_position(const torch::Tensor& base_logits, const torch::Tensor& tuned_logits) {
    SZ_ASSERT(base_logits.sizes() == tuned_logits.sizes() && base_logits.dim() == 2);
    // Float64, so that a KL near zero is not lost in the rounding of a 262k-term float32 sum.
    // Chunks of 32 positions keep each float64 temporary near 64 MiB at V = 262144.
    constexpr int64_t kChunk = 32;
    const int64_t n = base_logits.size(0);
    torch::Tensor result = torch::empty({n}, torch::kFloat64);
    for (int64_t begin = 0; begin < n; begin += kChunk) {
        const int64_t length = std::min(kChunk, n - begin);
        torch::Tensor log_p = torch::log_softmax(base_logits.narrow(0, begin, length).to(torch::kFloat64), -1);
        torch::Tensor log_q = torch::log_softmax(tuned_logits.narrow(0, begin, length).to(torch::kFloat64), -1);
        result.narrow(0, begin, length).copy_((log_p.exp() * (log_p - log_q)).sum(-1));
    }
    return result;
}

KlDivergence kl_divergence(CausalLM& base, const ProjectionAdapter* base_adapter, CausalLM& tuned,
                           const ProjectionAdapter* tuned_adapter, const std::vector<RenderedRow>& rows,
                           int32_t pad_id, int64_t batch_size) {
    SZ_ASSERT(batch_size >= 1);
    if (base.config().n_vocab != tuned.config().n_vocab) {
        fail("cannot compare next-token distributions: the base model has {} tokens and the tuned model {}",
             base.config().n_vocab, tuned.config().n_vocab);
    }
    torch::NoGradGuard no_grad;
    KlDivergence result;
    double sum = 0.0;
    const int64_t n = static_cast<int64_t>(rows.size());
    for (int64_t begin = 0; begin < n; begin += batch_size) {
        const int64_t end = std::min(n, begin + batch_size);
        TokenBatch batch = make_batch(rows, begin, end, pad_id);
        ForwardOptions options;
        options.attention_mask = batch.mask;
        options.logit_positions = batch.mask != 0;
        options.adapter = base_adapter;
        torch::Tensor base_logits = base.forward(batch.tokens, options);
        options.adapter = tuned_adapter;
        torch::Tensor tuned_logits = tuned.forward(batch.tokens, options);
        torch::Tensor kl = kl_per_position(base_logits, tuned_logits);
        sum += kl.sum().item<double>();
        result.max = std::max(result.max, kl.max().item<double>());
        result.positions += kl.size(0);
    }
    result.rows = n;
    result.mean = result.positions > 0 ? sum / static_cast<double>(result.positions) : 0.0;
    return result;
}

}  // namespace sz
