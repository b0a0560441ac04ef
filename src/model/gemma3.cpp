// Gemma 3 forward pass. Shapes: B batch, T new tokens, S keys (cached + new), H n_embd,
// N query heads, K key/value heads, G = N / K, D head dim, F n_ff, V vocab.
#include "model/gemma3.h"

#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "kernels/linear_decode.h"

namespace sz {

namespace {

// 1 / base^(2i/D) for i in [0, D/2), divided by the linear scaling factor, in float32 as
// transformers computes it (pow on a float32 exponent, then a reciprocal).
torch::Tensor rope_inverse_frequencies(int64_t head_dim, float base, float scale) {
    torch::Tensor exponents = torch::arange(0, head_dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<float>(head_dim);
    torch::Tensor inv_freq = 1.0 / torch::pow(static_cast<double>(base), exponents);
    return (inv_freq / scale).to(torch::kFloat32);
}

// Rotates pairs (x_i, x_{i+D/2}) by the angle position * inv_freq_i (NeoX / half-split layout).
// cos, sin: [B, 1, T, D].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
    int64_t half = x.size(-1) / 2;
    torch::Tensor x1 = x.narrow(-1, 0, half);
    torch::Tensor x2 = x.narrow(-1, half, half);
    torch::Tensor rotated = torch::cat({-x2, x1}, -1);
    return x * cos + rotated * sin;
}

}  // namespace

const std::vector<Gemma3TensorSpec>& gemma3_layer_tensors() {
    static const std::vector<Gemma3TensorSpec> specs = {
        {"input_layernorm.weight", "attn_norm.weight", &Gemma3Layer::attn_norm, true},
        {"self_attn.q_proj.weight", "attn_q.weight", &Gemma3Layer::wq, false},
        {"self_attn.k_proj.weight", "attn_k.weight", &Gemma3Layer::wk, false},
        {"self_attn.v_proj.weight", "attn_v.weight", &Gemma3Layer::wv, false},
        {"self_attn.o_proj.weight", "attn_output.weight", &Gemma3Layer::wo, false},
        {"self_attn.q_norm.weight", "attn_q_norm.weight", &Gemma3Layer::q_norm, true},
        {"self_attn.k_norm.weight", "attn_k_norm.weight", &Gemma3Layer::k_norm, true},
        // HF's post_attention_layernorm normalises the attention branch; GGUF calls it
        // post_attention_norm, and its ffn_norm is HF's pre_feedforward_layernorm.
        {"post_attention_layernorm.weight", "post_attention_norm.weight", &Gemma3Layer::post_attn_norm, true},
        {"pre_feedforward_layernorm.weight", "ffn_norm.weight", &Gemma3Layer::ffn_norm, true},
        {"mlp.gate_proj.weight", "ffn_gate.weight", &Gemma3Layer::w_gate, false},
        {"mlp.up_proj.weight", "ffn_up.weight", &Gemma3Layer::w_up, false},
        {"mlp.down_proj.weight", "ffn_down.weight", &Gemma3Layer::w_down, false},
        {"post_feedforward_layernorm.weight", "post_ffw_norm.weight", &Gemma3Layer::post_ffw_norm, true},
    };
    return specs;
}

Gemma3Model::Gemma3Model(ModelConfig config, Gemma3Weights weights)
    : config_(std::move(config)), weights_(std::move(weights)) {
    config_.validate(config_.name);
    SZ_ASSERT(static_cast<int64_t>(weights_.layers.size()) == config_.n_layer);
    inv_freq_global_ = rope_inverse_frequencies(config_.n_embd_head, config_.f_rope_base_global, config_.f_rope_scale_global);
    inv_freq_local_ = rope_inverse_frequencies(config_.n_embd_head, config_.f_rope_base_local, 1.0f);
    for (int64_t il = 0; il < config_.n_layer; ++il) {
        std::string b = fmt::format("blocks.{}.", il);
        hook_names_.push_back({b + "hook_resid_pre", b + "attn.hook_q", b + "attn.hook_k", b + "attn.hook_v",
                               b + "attn.hook_pattern", b + "attn.hook_z", b + "hook_attn_out", b + "hook_resid_mid",
                               b + "mlp.hook_pre", b + "mlp.hook_post", b + "hook_mlp_out", b + "hook_resid_post"});
    }
}

std::vector<std::string> Gemma3Model::hook_names() const {
    std::vector<std::string> names = {"hook_embed"};
    for (int64_t il = 0; il < config_.n_layer; ++il) {
        const LayerHookNames& h = hook_names_[il];
        for (const std::string* name : {&h.resid_pre, &h.q, &h.k, &h.v, &h.pattern, &h.z, &h.attn_out, &h.resid_mid,
                                        &h.mlp_pre, &h.mlp_post, &h.mlp_out, &h.resid_post}) {
            names.push_back(*name);
        }
        for (Projection p : kAllProjections) {
            names.push_back(projection_input_hook(il, p));
        }
    }
    names.push_back("ln_final.hook_normalized");
    return names;
}

OutputHead Gemma3Model::output_head() {
    // Gemma ties the head to the token embedding table (unscaled).
    return {weights_.token_embd, config_.f_final_logit_softcap};
}

torch::Tensor& Gemma3Model::projection_weight(int64_t il, Projection p) {
    if (il < 0 || il >= config_.n_layer) {
        fail("layer {} out of range: the model has {} layers", il, config_.n_layer);
    }
    Gemma3Layer& layer = weights_.layers[il];
    switch (p) {
        case Projection::Q: return layer.wq;
        case Projection::K: return layer.wk;
        case Projection::V: return layer.wv;
        case Projection::O: return layer.wo;
        case Projection::Gate: return layer.w_gate;
        case Projection::Up: return layer.w_up;
        case Projection::Down: return layer.w_down;
    }
    SZ_ASSERT(false);
}

void Gemma3Model::convert_weights(torch::ScalarType dtype) {
    for_each_parameter([&](const std::string&, torch::Tensor& t) {
        // Norm vectors stay float32: they are tiny and multiply float32 activations directly.
        if (t.dim() >= 2 && t.scalar_type() != dtype) {
            t = t.to(dtype).contiguous();
        }
    });
}

void Gemma3Model::for_each_parameter(const std::function<void(const std::string&, torch::Tensor&)>& visit) {
    visit("model.embed_tokens.weight", weights_.token_embd);
    for (int64_t il = 0; il < config_.n_layer; ++il) {
        for (const Gemma3TensorSpec& spec : gemma3_layer_tensors()) {
            visit(fmt::format("model.layers.{}.{}", il, spec.hf_name), weights_.layers[il].*spec.member);
        }
    }
    visit("model.norm.weight", weights_.output_norm);
}

torch::Tensor Gemma3Model::rms_norm(const torch::Tensor& x, const torch::Tensor& weight) const {
    torch::Tensor inv_rms = torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + config_.f_norm_rms_eps);
    return x * inv_rms * weight;
}

torch::Tensor Gemma3Model::matmul_weight(const torch::Tensor& x, const torch::Tensor& weight) {
    // The decode kernel has no backward, so anything that differentiates through the input
    // or the weight (training, attribution) goes through torch::matmul on float32 weights.
    const bool needs_graph = torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad());
    if (needs_graph) {
        return torch::matmul(x, weight.scalar_type() == torch::kFloat32 ? weight.t() : weight.to(torch::kFloat32).t());
    }
    return kernels::linear_decode(x, weight);
}

torch::Tensor Gemma3Model::project(const torch::Tensor& x, int64_t il, Projection p, const ForwardOptions& options) {
    torch::Tensor input = x;
    if (options.hooks != nullptr && !options.hooks->empty()) {
        input = options.hooks->run(projection_input_hook(il, p), input);
    }
    torch::Tensor y = matmul_weight(input, projection_weight(il, p));
    if (options.adapter != nullptr) {
        torch::Tensor delta = options.adapter->delta(il, p, input);
        if (delta.defined()) {
            y = y + delta;
        }
    }
    return y;
}

torch::Tensor Gemma3Model::forward(const torch::Tensor& tokens, const ForwardOptions& options) {
    if (tokens.dim() != 2 || tokens.scalar_type() != torch::kInt64) {
        fail("forward expects int64 token ids of shape [batch, tokens], got {} of shape [{}]",
             std::string(c10::toString(tokens.scalar_type())), fmt::join(tokens.sizes(), ", "));
    }
    const int64_t B = tokens.size(0);
    const int64_t T = tokens.size(1);
    const int64_t N = config_.n_head;
    const int64_t K = config_.n_head_kv;
    const int64_t G = N / K;
    const int64_t D = config_.n_embd_head;
    KvCache* cache = options.cache;
    const Hooks* hooks = (options.hooks != nullptr && !options.hooks->empty()) ? options.hooks : nullptr;
    auto run_hook = [&](const std::string& name, torch::Tensor t) { return hooks ? hooks->run(name, std::move(t)) : t; };

    // Validate inputs before any work: ids in range, cache shape, hook names.
    if (T == 0) {
        fail("forward called with no tokens");
    }
    if (tokens.min().item<int64_t>() < 0 || tokens.max().item<int64_t>() >= config_.n_vocab) {
        fail("token id out of range [0, {}): got min {} max {}", config_.n_vocab, tokens.min().item<int64_t>(),
             tokens.max().item<int64_t>());
    }
    if (options.start_layer != 0) {
        const bool shape_ok = options.start_residual.defined() && options.start_residual.dim() == 3 &&
                              options.start_residual.size(0) == B && options.start_residual.size(1) == T &&
                              options.start_residual.size(2) == config_.n_embd;
        if (options.start_layer < 0 || options.start_layer >= config_.n_layer || !shape_ok || cache != nullptr) {
            fail("start_layer {} needs a [{}, {}, {}] start_residual, a layer in 0..{} and no KV cache",
                 options.start_layer, B, T, config_.n_embd, config_.n_layer - 1);
        }
    }
    if (options.logit_positions.defined() &&
        (options.logit_positions.sizes() != tokens.sizes() || options.last_position_only)) {
        fail("logit_positions must have the tokens' shape [{}] and cannot be combined with last_position_only",
             fmt::join(tokens.sizes(), ", "));
    }
    if (cache != nullptr && cache->batch_size() != B) {
        fail("KV cache was made for batch size {} but the input has {} rows", cache->batch_size(), B);
    }
    if (hooks != nullptr) {
        std::vector<std::string> valid = hook_names();
        std::set<std::string> valid_set(valid.begin(), valid.end());
        for (const std::string& name : hooks->names()) {
            if (valid_set.count(name) == 0) {
                fail("unknown hook point '{}'; names look like blocks.0.hook_resid_post or "
                     "blocks.0.mlp.down_proj.input (layers 0..{})", name, config_.n_layer - 1);
            }
        }
    }

    // Token validity and RoPE positions. Padding gets no position of its own, so a row's
    // real tokens are numbered 0, 1, 2, ... whatever padding precedes them.
    torch::Tensor valid = options.attention_mask.defined() ? options.attention_mask.to(torch::kBool)
                                                           : torch::ones({B, T}, torch::kBool);
    if (valid.sizes() != tokens.sizes()) {
        fail("attention_mask shape [{}] does not match tokens [{}]", fmt::join(valid.sizes(), ", "),
             fmt::join(tokens.sizes(), ", "));
    }
    const int64_t past = cache != nullptr ? cache->length() : 0;
    torch::Tensor start = cache != nullptr ? cache->next_position().unsqueeze(1) : torch::zeros({B, 1}, torch::kInt64);
    torch::Tensor positions = (start + valid.to(torch::kInt64).cumsum(1) - 1).clamp_min(0);  // [B, T]

    // Attention masks [B, 1, 1, T, S] (additive: 0 or -inf), one for global and one for local
    // layers. Key j is visible to query t if it is a real token, not in the future, and on
    // local layers within the window: pos(t) - pos(j) < W. The diagonal is always visible so
    // that padding rows never softmax over nothing (their outputs are unused).
    torch::Tensor key_valid = cache != nullptr ? torch::cat({cache->key_mask(), valid}, 1) : valid;           // [B, S]
    torch::Tensor key_positions = cache != nullptr ? torch::cat({cache->key_positions(), positions}, 1) : positions;
    const int64_t S = past + T;
    torch::Tensor query_index = torch::arange(past, past + T, torch::kInt64).view({1, T, 1});
    torch::Tensor key_index = torch::arange(0, S, torch::kInt64).view({1, 1, S});
    torch::Tensor causal = key_index <= query_index;                                                      // [1, T, S]
    torch::Tensor diagonal = key_index == query_index;
    torch::Tensor visible_global = (causal & key_valid.unsqueeze(1)) | diagonal;                         // [B, T, S]
    torch::Tensor distance = positions.unsqueeze(2) - key_positions.unsqueeze(1);                        // [B, T, S]
    torch::Tensor visible_local = visible_global & ((distance < config_.n_swa) | diagonal);
    const float neg_inf = -std::numeric_limits<float>::infinity();
    auto additive = [&](const torch::Tensor& visible) {
        return torch::zeros({B, T, S}, torch::kFloat32).masked_fill(visible.logical_not(), neg_inf).view({B, 1, 1, T, S});
    };
    torch::Tensor mask_global = additive(visible_global);
    torch::Tensor mask_local = config_.n_swa > 0 ? additive(visible_local) : mask_global;

    // RoPE tables [B, 1, T, D] for the two layer kinds.
    auto rope_tables = [&](const torch::Tensor& inv_freq) {
        torch::Tensor angles = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq.view({1, 1, -1});  // [B, T, D/2]
        torch::Tensor emb = torch::cat({angles, angles}, -1).unsqueeze(1);
        return std::make_pair(emb.cos(), emb.sin());
    };
    auto [cos_global, sin_global] = rope_tables(inv_freq_global_);
    auto [cos_local, sin_local] = rope_tables(inv_freq_local_);

    // Embedding, scaled by sqrt(H) in float32 (the head reuses the unscaled table), or the
    // caller's residual when the pass starts at a later layer.
    torch::Tensor x;
    if (options.start_layer == 0) {
        const float embed_scale = std::sqrt(static_cast<float>(config_.n_embd));
        x = torch::embedding(weights_.token_embd, tokens).to(torch::kFloat32) * embed_scale;  // [B, T, H]
        x = run_hook("hook_embed", x);
    } else {
        x = options.start_residual;
    }

    for (int64_t il = options.start_layer; il < config_.n_layer; ++il) {
        const Gemma3Layer& layer = weights_.layers[il];
        const LayerHookNames& names = hook_names_[il];
        const bool sliding = config_.is_sliding(il);
        x = run_hook(names.resid_pre, x);

        // Attention: project, QK-norm per head, RoPE.
        torch::Tensor a = rms_norm(x, layer.attn_norm);
        torch::Tensor q = project(a, il, Projection::Q, options).view({B, T, N, D});
        torch::Tensor k = project(a, il, Projection::K, options).view({B, T, K, D});
        torch::Tensor v = project(a, il, Projection::V, options).view({B, T, K, D});
        q = rms_norm(q, layer.q_norm).transpose(1, 2);  // [B, N, T, D]
        k = rms_norm(k, layer.k_norm).transpose(1, 2);  // [B, K, T, D]
        v = v.transpose(1, 2);
        const torch::Tensor& cos = sliding ? cos_local : cos_global;
        const torch::Tensor& sin = sliding ? sin_local : sin_global;
        q = run_hook(names.q, apply_rope(q, cos, sin));
        k = run_hook(names.k, apply_rope(k, cos, sin));
        v = run_hook(names.v, v);

        torch::Tensor keys = k;
        torch::Tensor values = v;
        if (cache != nullptr) {
            std::tie(keys, values) = cache->append(il, k, v);  // [B, K, S, D]
        }

        // Grouped-query scores: query heads h = kv * G + g share KV head kv.
        torch::Tensor grouped_q = q.reshape({B, K, G * T, D});
        torch::Tensor scores = torch::matmul(grouped_q, keys.transpose(-1, -2)) * config_.f_attention_scale;  // [B, K, G*T, S]
        scores = scores.view({B, K, G, T, S}) + (sliding ? mask_local : mask_global);
        torch::Tensor pattern = torch::softmax(scores, -1);
        if (hooks != nullptr && hooks->active(names.pattern)) {
            pattern = hooks->run(names.pattern, pattern.view({B, N, T, S})).view({B, K, G, T, S});
        }
        torch::Tensor z = torch::matmul(pattern.view({B, K, G * T, S}), values);                         // [B, K, G*T, D]
        z = z.view({B, N, T, D}).transpose(1, 2).reshape({B, T, N * D});
        z = run_hook(names.z, z);
        torch::Tensor attn_out = rms_norm(project(z, il, Projection::O, options), layer.post_attn_norm);
        attn_out = run_hook(names.attn_out, attn_out);
        x = run_hook(names.resid_mid, x + attn_out);

        // MLP (GeGLU with the tanh approximation of GELU).
        torch::Tensor b = rms_norm(x, layer.ffn_norm);
        torch::Tensor gate = run_hook(names.mlp_pre, project(b, il, Projection::Gate, options));
        torch::Tensor up = project(b, il, Projection::Up, options);
        torch::Tensor hidden = run_hook(names.mlp_post, torch::gelu(gate, "tanh") * up);
        torch::Tensor mlp_out = rms_norm(project(hidden, il, Projection::Down, options), layer.post_ffw_norm);
        mlp_out = run_hook(names.mlp_out, mlp_out);
        x = run_hook(names.resid_post, x + mlp_out);
    }
    if (cache != nullptr) {
        cache->commit(valid, positions);
    }

    if (options.last_position_only) {
        x = x.narrow(1, T - 1, 1);
    } else if (options.logit_positions.defined()) {
        x = x.reshape({B * T, -1}).index_select(0, options.logit_positions.reshape({-1}).nonzero().squeeze(1));
    }
    torch::Tensor h = run_hook("ln_final.hook_normalized", rms_norm(x, weights_.output_norm));
    if (options.return_hidden) {
        return h;
    }
    torch::Tensor logits = matmul_weight(h, weights_.token_embd);  // [B, T, V]
    if (config_.f_final_logit_softcap > 0.0f) {
        logits = torch::tanh(logits / config_.f_final_logit_softcap) * config_.f_final_logit_softcap;
    }
    return logits;
}

}  // namespace sz
