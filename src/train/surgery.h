// Weight surgery: attenuates the atlas directions of each projection's base weight in place,
// before training.
//
// Two methods, chosen per projection from what the atlas stores:
//   basis            W <- W (I - Bᵀ diag(1 - s) B), with B = ProjectionAtlas::basis [m, in]
//                    (orthonormal rows) and s = scales [m]. The gain along input direction
//                    b_j becomes s_j times the old gain, and the orthogonal complement of the
//                    rows of B is unchanged. Used whenever basis and scales are present.
//   singular_values  U, S, Vh = svd(W); S[selected[j]] *= scale_j; W <- U diag(S) Vh. The
//                    scale is scales[j] when scales has one entry per selected index, else
//                    SurgeryOptions::singular_value_scale. Used when the atlas has selected
//                    indices but no basis. The SVD round trip changes W by rounding even in
//                    the kept directions; the record stores that drift.
// The arithmetic runs in float64 and the result is cast back to the weight's dtype.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "locate/atlas.h"
#include "model/causal_lm.h"

namespace sz {

struct SurgeryOptions {
    // Gain kept along each selected singular direction when the atlas stores no per-direction
    // scales (the reference's fixed value).
    double singular_value_scale = 0.15;
    // Keep a copy of every original weight so that restore_surgery() can undo the change.
    bool keep_originals = false;
};

enum class SurgeryMethod { basis, singular_values };

// "blocks.{l}.{mlp|attn}.{proj}", the key an atlas uses for one projection.
std::string projection_key(int64_t layer, Projection projection);

// "basis" or "singular_values".
const char* surgery_method_name(SurgeryMethod method);

// Change made by surgery to one projection.
struct SurgeryRecord {
    int64_t layer = 0;
    Projection projection = Projection::Gate;
    SurgeryMethod method = SurgeryMethod::basis;
    int64_t directions = 0;          // rows of B, or selected singular directions
    double min_scale = 1.0;          // smallest gain applied
    double weight_norm = 0.0;        // ‖W‖_F before surgery
    double change_norm = 0.0;        // ‖W_new − W‖_F, measured after the cast back
    double svd_roundtrip_drift = 0.0;  // max |U diag(S) Vh − W|; singular_values method only
    torch::Tensor original;          // the weight before surgery, when keep_originals is set

    std::string key() const;  // "blocks.{l}.{module}.{proj}", as ProjectionAtlas::key()
    nlohmann::json to_json() const;
};

struct SurgeryReport {
    std::vector<SurgeryRecord> applied;
    // Atlas entries left alone, each with the reason ("blocks.3.mlp.up_proj: no directions").
    std::vector<std::string> skipped;

    nlohmann::json to_json() const;
    // One line such as "attenuated 12 projections (10 via basis, 2 via singular values), skipped 1".
    std::string summary() const;
};

// Applies every projection of `atlas` to `model` in place. Throws sz::Error naming the atlas
// entry when its tensors do not fit the model's weight (layer out of range, wrong width,
// scales of another length than the basis rows, scales outside [0, 1] or not finite).
SurgeryReport apply_surgery(CausalLM& model, const Atlas& atlas, const SurgeryOptions& options = {});

// Copies the originals kept by apply_surgery back into the model. Throws sz::Error when the
// report was made without keep_originals.
void restore_surgery(CausalLM& model, const SurgeryReport& report);

}  // namespace sz
