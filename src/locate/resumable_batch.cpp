#include "locate/resumable_batch.h"

#include <fmt/format.h>

#include "core/error.h"

namespace sz {

namespace {

std::string resid_pre_hook(int64_t layer) { return fmt::format("blocks.{}.hook_resid_pre", layer); }

}  // namespace

ResumableBatch::ResumableBatch(CausalLM& model, TokenBatch batch, const std::set<int64_t>& layers, bool last_logits)
    : model_(model), batch_(std::move(batch)) {
    torch::NoGradGuard no_grad;
    Hooks hooks;
    for (int64_t layer : layers) {
        hooks.add(resid_pre_hook(layer), [this, layer](const torch::Tensor& x, const std::string&) {
            residual_[layer] = x.detach().clone();
            return x;
        });
    }
    ForwardOptions options;
    options.attention_mask = batch_.mask;
    options.hooks = &hooks;
    if (last_logits) {
        SZ_ASSERT((batch_.last == batch_.tokens.size(1) - 1).all().item<bool>());
        options.last_position_only = true;
        clean_last_logits_ = model_.forward(batch_.tokens, options).squeeze(1);
    } else {
        MaskedLoss loss = target_loss(model_, batch_, options);
        clean_loss_ = loss.sum.item<double>() / static_cast<double>(loss.count);
    }
}

ForwardOptions ResumableBatch::resume_options(int64_t layer, const Hooks& hooks) const {
    auto it = residual_.find(layer);
    SZ_ASSERT(it != residual_.end());
    ForwardOptions options;
    options.attention_mask = batch_.mask;
    options.hooks = &hooks;
    options.start_layer = layer;
    options.start_residual = it->second;
    return options;
}

double ResumableBatch::loss(int64_t layer, const Hooks& hooks) const {
    torch::NoGradGuard no_grad;
    MaskedLoss loss = target_loss(model_, batch_, resume_options(layer, hooks));
    return loss.sum.item<double>() / static_cast<double>(loss.count);
}

torch::Tensor ResumableBatch::last_logits(int64_t layer, const Hooks& hooks) const {
    torch::NoGradGuard no_grad;
    ForwardOptions options = resume_options(layer, hooks);
    options.last_position_only = true;
    return model_.forward(batch_.tokens, options).squeeze(1);
}

}  // namespace sz
