// A fixed batch that is scored under many edits of one layer at a time (stages 6 to 8 of
// locate and the held-out check). An edit inside layer l leaves layers 0..l-1 unchanged, so
// one clean pass stores the residual entering each layer of interest and every edited pass
// starts there. The results equal full passes with the same hooks: the resumed pass runs the
// same operations on the same residual.
#pragma once

#include <cstdint>
#include <map>
#include <set>

#include <torch/torch.h>

#include "locate/corpus.h"
#include "model/causal_lm.h"

namespace sz {

class ResumableBatch {
public:
    // Runs the clean pass (no gradients) and stores blocks.{l}.hook_resid_pre for each of
    // `layers`. With `last_logits`, the clean pass keeps the logits at the last column ([B, V])
    // instead of the target loss. That needs left-padded rows, whose last real token is the
    // last column.
    ResumableBatch(CausalLM& model, TokenBatch batch, const std::set<int64_t>& layers, bool last_logits = false);

    // Mean cross-entropy over the target tokens, of the clean pass or of a pass that starts at
    // `layer` with `hooks` (which must only edit layer `layer` or later).
    double clean_loss() const { return clean_loss_; }
    double loss(int64_t layer, const Hooks& hooks) const;

    // Logits at the last column [B, V], clean or resumed at `layer` with `hooks`.
    const torch::Tensor& clean_last_logits() const { return clean_last_logits_; }
    torch::Tensor last_logits(int64_t layer, const Hooks& hooks) const;

    const TokenBatch& batch() const { return batch_; }

private:
    ForwardOptions resume_options(int64_t layer, const Hooks& hooks) const;

    CausalLM& model_;
    TokenBatch batch_;
    std::map<int64_t, torch::Tensor> residual_;
    double clean_loss_ = 0.0;
    torch::Tensor clean_last_logits_;
};

}  // namespace sz
