#include "model/chunked_cross_entropy.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace sz {

namespace {

// Logits of vocabulary rows [begin, begin + size), and tanh(raw / c) when a soft cap is set
// (the backward pass needs it).
std::pair<torch::Tensor, torch::Tensor> block_logits(const torch::Tensor& h, const torch::Tensor& weight, int64_t begin,
                                                     int64_t size, double softcap) {
    torch::Tensor raw = torch::matmul(h, weight.narrow(0, begin, size).t());   // [n, size]
    if (softcap <= 0.0) {
        return {raw, torch::Tensor()};
    }
    torch::Tensor t = torch::tanh(raw / softcap);
    return {t * softcap, t};
}

// Rows whose target falls in [begin, begin + size), and the target's column in the block.
std::pair<torch::Tensor, torch::Tensor> targets_in_block(const torch::Tensor& targets, int64_t begin, int64_t size) {
    torch::Tensor rows = ((targets >= begin) & (targets < begin + size)).nonzero().squeeze(1);
    return {rows, targets.index_select(0, rows) - begin};
}

class ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
public:
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                                 const torch::Tensor& weight, double softcap, const torch::Tensor& targets,
                                 const torch::Tensor& weights, int64_t block) {
        const int64_t n = hidden.size(0);
        const int64_t V = weight.size(0);
        torch::Tensor h = hidden.detach();
        torch::Tensor running_max = torch::full({n}, -std::numeric_limits<float>::infinity(), torch::kFloat32);
        torch::Tensor running_sum = torch::zeros({n}, torch::kFloat32);
        torch::Tensor picked = torch::zeros({n}, torch::kFloat32);
        for (int64_t begin = 0; begin < V; begin += block) {
            const int64_t size = std::min(block, V - begin);
            torch::Tensor logits = block_logits(h, weight, begin, size, softcap).first;
            // Online log-sum-exp: rescale the running sum to the new maximum.
            torch::Tensor new_max = torch::maximum(running_max, std::get<0>(logits.max(1)));
            running_sum = running_sum * torch::exp(running_max - new_max) +
                          torch::exp(logits - new_max.unsqueeze(1)).sum(1);
            running_max = new_max;
            auto [rows, columns] = targets_in_block(targets, begin, size);
            picked.index_put_({rows}, logits.index_select(0, rows).gather(1, columns.unsqueeze(1)).squeeze(1));
        }
        torch::Tensor lse = running_max + torch::log(running_sum);
        ctx->save_for_backward({hidden, weight, targets, weights, lse});
        ctx->saved_data["softcap"] = softcap;
        ctx->saved_data["block"] = block;
        return ((lse - picked) * weights).to(torch::kFloat64).sum().to(torch::kFloat32);
    }

    // d loss / d logits = w · (softmax(logits) − onehot(target)); through the cap, times
    // 1 − tanh²; then d loss / d h = (that) W, summed over blocks.
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_outputs) {
        auto saved = ctx->get_saved_variables();
        const torch::Tensor h = saved[0].detach();
        const torch::Tensor& weight = saved[1];
        const torch::Tensor& targets = saved[2];
        const torch::Tensor& weights = saved[3];
        const torch::Tensor& lse = saved[4];
        const double softcap = ctx->saved_data["softcap"].toDouble();
        const int64_t block = ctx->saved_data["block"].toInt();
        const torch::Tensor row_scale = (weights * grad_outputs[0]).unsqueeze(1);   // [n, 1]

        const int64_t V = weight.size(0);
        torch::Tensor grad_hidden = torch::zeros_like(h);
        for (int64_t begin = 0; begin < V; begin += block) {
            const int64_t size = std::min(block, V - begin);
            auto [logits, t] = block_logits(h, weight, begin, size, softcap);
            torch::Tensor grad = torch::exp(logits - lse.unsqueeze(1));
            auto [rows, columns] = targets_in_block(targets, begin, size);
            grad.index_put_({rows, columns}, grad.index({rows, columns}) - 1.0f);
            grad.mul_(row_scale);
            if (t.defined()) {
                grad.mul_(1.0 - t * t);
            }
            grad_hidden.addmm_(grad, weight.narrow(0, begin, size));
        }
        return {grad_hidden, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
};

// The training path: one block of positions at a time, the block's whole logit rows, their
// log-sum-exp and the gradient with respect to `hidden`, all in the forward pass. That costs
// two head products per position (logits, then gradient times W) where the vocabulary-blocked
// path costs three (logits, recomputed logits, gradient times W). The stored gradient is that
// of the summed loss, so backward only scales it by the incoming gradient (first order only).
class FusedCrossEntropy : public torch::autograd::Function<FusedCrossEntropy> {
public:
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                                 const torch::Tensor& weight, double softcap, const torch::Tensor& targets,
                                 const torch::Tensor& weights, int64_t block) {
        const int64_t n = hidden.size(0);
        const int64_t V = weight.size(0);
        torch::Tensor h = hidden.detach();
        torch::Tensor grad_hidden = torch::empty_like(h);
        torch::Tensor losses = torch::empty({n}, torch::kFloat32);
        for (int64_t begin = 0; begin < n; begin += block) {
            const int64_t size = std::min(block, n - begin);
            auto [logits, t] = block_logits(h.narrow(0, begin, size), weight, 0, V, softcap);   // [size, V]
            const torch::Tensor block_targets = targets.narrow(0, begin, size).unsqueeze(1);
            const torch::Tensor block_weights = weights.narrow(0, begin, size);
            const torch::Tensor picked = logits.gather(1, block_targets).squeeze(1);

            // Softmax in place in the logits buffer (four passes over it, no temporary of its
            // size), then d loss / d logits = w · (softmax − onehot); through the cap, times
            // 1 − tanh².
            const torch::Tensor row_max = std::get<0>(logits.max(1, /*keepdim=*/true));
            torch::Tensor grad = logits.sub_(row_max).exp_();
            const torch::Tensor row_sum = grad.sum(1);
            losses.narrow(0, begin, size).copy_(row_max.squeeze(1) + torch::log(row_sum) - picked);
            grad.mul_((block_weights / row_sum).unsqueeze(1));
            grad.scatter_add_(1, block_targets, -block_weights.unsqueeze(1));
            if (t.defined()) {
                grad.mul_(1.0 - t * t);
            }
            torch::Tensor block_grad_hidden = grad_hidden.narrow(0, begin, size);
            torch::mm_out(block_grad_hidden, grad, weight);
        }
        ctx->save_for_backward({grad_hidden});
        return (losses * weights).to(torch::kFloat64).sum().to(torch::kFloat32);
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_outputs) {
        const torch::Tensor grad_hidden = ctx->get_saved_variables()[0] * grad_outputs[0];
        return {grad_hidden, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
};

}  // namespace

torch::Tensor chunked_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight, double softcap,
                                    const torch::Tensor& targets, const torch::Tensor& weights,
                                    const CrossEntropyBlocks& blocks) {
    if (hidden.dim() != 2 || weight.dim() != 2 || hidden.size(1) != weight.size(1) || targets.dim() != 1 ||
        targets.size(0) != hidden.size(0)) {
        fail("chunked_cross_entropy: expected hidden [n, H], weight [V, H] and targets [n], got [{}], [{}], [{}]",
             fmt::join(hidden.sizes(), ", "), fmt::join(weight.sizes(), ", "), fmt::join(targets.sizes(), ", "));
    }
    if (weight.requires_grad()) {
        fail("chunked_cross_entropy: the head weight must be frozen; it returns no gradient for it");
    }
    if (blocks.vocab < 1 || blocks.logit_elements < 1) {
        fail("chunked_cross_entropy: block sizes must be at least 1, got vocab {} and logit_elements {}", blocks.vocab,
             blocks.logit_elements);
    }
    torch::Tensor w = weights.defined() ? weights.to(torch::kFloat32) : torch::ones({hidden.size(0)}, torch::kFloat32);
    if (torch::GradMode::is_enabled() && hidden.requires_grad()) {
        const int64_t positions = std::max<int64_t>(1, blocks.logit_elements / weight.size(0));
        return FusedCrossEntropy::apply(hidden, weight.to(torch::kFloat32), softcap, targets, w, positions);
    }
    return ChunkedCrossEntropy::apply(hidden, weight.to(torch::kFloat32), softcap, targets, w, blocks.vocab);
}

}  // namespace sz
