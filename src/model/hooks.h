// Hook points: named places in the forward pass where a caller reads or replaces an
// activation without touching model code, in the style of TransformerLens.
//
// Names (stable API; shapes use B batch, T new tokens, S keys incl. cache, H n_embd,
// F n_ff, N heads, D head dim):
//   hook_embed                         [B, T, H]  scaled token embeddings
//   blocks.{l}.hook_resid_pre          [B, T, H]  residual stream entering block l
//   blocks.{l}.attn.hook_q / hook_k    [B, N, T, D] after QK-norm and RoPE (k: new tokens only)
//   blocks.{l}.attn.hook_v             [B, Nkv, T, D]
//   blocks.{l}.attn.hook_pattern       [B, N, T, S]  softmax probabilities
//   blocks.{l}.attn.hook_z             [B, T, N*D] head outputs before o_proj (= o_proj input)
//   blocks.{l}.hook_attn_out           [B, T, H]  post-attention-norm output added to the residual
//   blocks.{l}.hook_resid_mid          [B, T, H]
//   blocks.{l}.mlp.hook_pre            [B, T, F]  gate_proj output before GELU
//   blocks.{l}.mlp.hook_post           [B, T, F]  gelu(gate) * up (= down_proj input)
//   blocks.{l}.hook_mlp_out            [B, T, H]  post-feedforward-norm output added to the residual
//   blocks.{l}.hook_resid_post         [B, T, H]
//   blocks.{l}.{attn,mlp}.{q,k,v,o,gate,up,down}_proj.input   projection inputs
//   ln_final.hook_normalized           [B, T, H]
// A hook returns the tensor that continues through the model: return its argument to only
// read, return a modified tensor to ablate or patch. For d(loss)/d(activation), add a zero
// probe that requires grad and return the sum: `probe = torch::zeros_like(x).requires_grad_();
// return x + probe;` then, after backward(), probe.grad() is the gradient. Unlike returning
// x.detach().requires_grad_(), the sum keeps the path to earlier hook points, so several
// points can be probed in one backward pass.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace sz {

using HookFn = std::function<torch::Tensor(const torch::Tensor& activation, const std::string& name)>;

class Hooks {
public:
    // Adds `fn` at `name`; several hooks at one name run in the order added.
    void add(const std::string& name, HookFn fn);
    void clear() { hooks_.clear(); }
    bool empty() const { return hooks_.empty(); }
    bool active(const std::string& name) const { return hooks_.count(name) != 0; }
    std::vector<std::string> names() const;

    // Runs every hook registered at `name` on `activation`; returns it unchanged when none.
    torch::Tensor run(const std::string& name, torch::Tensor activation) const;

private:
    std::map<std::string, std::vector<HookFn>> hooks_;
};

// Stores detached copies of activations at the hook points it is attached to.
class ActivationCache {
public:
    // Registers read-only capture hooks on `hooks` for every name in `names`.
    void attach(Hooks& hooks, const std::vector<std::string>& names);
    const torch::Tensor& at(const std::string& name) const;
    bool contains(const std::string& name) const { return store_.count(name) != 0; }
    const std::map<std::string, torch::Tensor>& tensors() const { return store_; }
    void clear() { store_.clear(); }

private:
    std::map<std::string, torch::Tensor> store_;
};

}  // namespace sz
