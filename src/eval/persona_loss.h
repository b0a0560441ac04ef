// Held-out persona loss: mean cross-entropy per trained token (assistant content and its
// end-of-turn token) on conversations the model was not trained on, as `subzero train`
// measures it.
#pragma once

#include <cstdint>
#include <vector>

#include "data/tokenized_example.h"
#include "model/causal_lm.h"
#include "model/projection.h"

namespace sz {

struct PersonaLoss {
    double loss = 0.0;  // nats per trained token
    int64_t trained_tokens = 0;
    int64_t conversations = 0;
};

// Throws sz::Error when `examples` has no trained token.
PersonaLoss persona_loss(CausalLM& model, const ProjectionAdapter* adapter,
                         const std::vector<TokenizedExample>& examples, int64_t batch_size);

}  // namespace sz
