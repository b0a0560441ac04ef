#include "model/model_config.h"

#include <fmt/format.h>

#include "core/error.h"

namespace sz {

void ModelConfig::validate(const std::string& source) const {
    auto require_positive = [&](const char* field, int64_t value) {
        if (value <= 0) {
            fail("{}: invalid model config: {} = {} (must be positive)", source, field, value);
        }
    };
    require_positive("n_vocab", n_vocab);
    require_positive("n_embd", n_embd);
    require_positive("n_layer", n_layer);
    require_positive("n_head", n_head);
    require_positive("n_head_kv", n_head_kv);
    require_positive("n_embd_head", n_embd_head);
    require_positive("n_ff", n_ff);
    if (n_head % n_head_kv != 0) {
        fail("{}: invalid model config: n_head = {} is not a multiple of n_head_kv = {}", source, n_head, n_head_kv);
    }
    if (n_embd_head % 2 != 0) {
        fail("{}: invalid model config: head dimension {} must be even for RoPE", source, n_embd_head);
    }
    if (static_cast<int64_t>(layer_kinds.size()) != n_layer) {
        fail("{}: invalid model config: {} layer kinds for {} layers", source, layer_kinds.size(), n_layer);
    }
    if (!(f_norm_rms_eps > 0.0f) || !(f_rope_base_global > 0.0f) || !(f_rope_base_local > 0.0f) ||
        !(f_rope_scale_global > 0.0f) || !(f_attention_scale > 0.0f)) {
        fail("{}: invalid model config: eps, RoPE bases, RoPE scale and attention scale must be positive", source);
    }
}

std::string ModelConfig::summary() const {
    int64_t n_global = 0;
    for (auto kind : layer_kinds) {
        n_global += kind == AttentionKind::Global ? 1 : 0;
    }
    return fmt::format("{} '{}': {} layers ({} global, window {}), n_embd {}, heads {}/{} x {}, n_ff {}, vocab {}",
                       arch, name, n_layer, n_global, n_swa, n_embd, n_head, n_head_kv, n_embd_head, n_ff, n_vocab);
}

}  // namespace sz
