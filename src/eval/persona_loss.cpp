#include "eval/persona_loss.h"

#include <algorithm>

#include "core/error.h"
#include "data/split.h"
#include "train/trainer.h"

namespace sz {

PersonaLoss persona_loss(CausalLM& model, const ProjectionAdapter* adapter,
                         const std::vector<TokenizedExample>& examples, int64_t batch_size) {
    SZ_ASSERT(batch_size >= 1);
    torch::NoGradGuard no_grad;
    PersonaLoss result;
    double loss_sum = 0.0;
    const size_t step = static_cast<size_t>(batch_size);
    for (size_t begin = 0; begin < examples.size(); begin += step) {
        std::vector<size_t> indices;
        for (size_t i = begin; i < std::min(examples.size(), begin + step); ++i) {
            indices.push_back(i);
        }
        Batch batch = make_batch(examples, indices, /*pad_id=*/0);
        ForwardOptions options;
        options.attention_mask = batch.attention_mask;
        options.adapter = adapter;
        options.logit_positions = scoring_positions(batch);
        loss_sum += trained_token_loss_sum(model.forward(batch.input_ids, options), batch).item<double>();
        result.trained_tokens += batch.trained_tokens;
    }
    if (result.trained_tokens == 0) {
        fail("the held-out conversations contain no assistant token to score");
    }
    result.conversations = static_cast<int64_t>(examples.size());
    result.loss = loss_sum / static_cast<double>(result.trained_tokens);
    return result;
}

}  // namespace sz
