// Exact subspace lock for LoRA: keeps ΔW = scale · B A of each locked projection from reading
// the atlas's locked input directions.
//
// With Q [in, q] an orthonormal basis of the span of ProjectionAtlas::lock_basis rows, the
// lock projects A onto the orthogonal complement, A ← A − (A Q) Qᵀ, so ΔW Q = scale · B (A Q)
// stays at float32 rounding level. Masking the gradient alone is not enough under AdamW,
// because the per-element m/√v scaling rotates the update back into the subspace. The lock
// therefore projects both the gradient of A (before the optimizer step, so that Adam's
// moments carry no locked component) and A itself (after the step).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "locate/atlas.h"
#include "train/lora.h"

namespace sz {

// Leak of one locked projection: how much of ΔW reads the locked directions.
struct LockLeak {
    int64_t layer = 0;
    Projection projection = Projection::Q;
    int64_t locked_directions = 0;
    double delta_norm = 0.0;  // ‖ΔW‖_F
    double leak_norm = 0.0;   // ‖ΔW Q‖_F
    double leak_ratio = 0.0;  // leak_norm / delta_norm; 0 while ΔW = 0

    std::string key() const;  // "blocks.{l}.{module}.{proj}"
};

class SubspaceLock {
public:
    // Locks every atlas projection with a non-empty lock_basis that `adapter` adapts, and
    // projects the current A of each at once (PEFT's random A reads every direction).
    // Atlas entries whose projection has no adapter are listed in unadapted(): there ΔW = 0.
    // Throws sz::Error naming the atlas entry when lock_basis has the wrong width or its
    // rows are not orthonormal (max |B Bᵀ − I| > 1e-3). Keeps pointers into `adapter`, which
    // must outlive the lock.
    SubspaceLock(LoraAdapter& adapter, const Atlas& atlas);

    // G_A ← G_A − (G_A Q) Qᵀ for every locked A with a gradient. Call after backward and
    // before gradient clipping and the optimizer step.
    void project_gradients();
    // A ← A − (A Q) Qᵀ. Call after every optimizer step.
    void project_weights();

    // ‖ΔW Q‖ / ‖ΔW‖ of every locked projection, in float64.
    std::vector<LockLeak> measure() const;
    // The largest leak_ratio of measure(), 0 with nothing locked.
    double max_leak_ratio() const;
    // lock.json: every locked projection's leak, the maximum, and the unadapted entries.
    nlohmann::json to_json() const;
    // Writes to_json() to `path` atomically.
    void write(const std::string& path) const;

    size_t locked_count() const { return locks_.size(); }
    const std::vector<std::string>& unadapted() const { return unadapted_; }

private:
    struct Locked {
        LoraPair* pair;
        torch::Tensor q;  // [in, q] float32, orthonormal columns
    };
    std::vector<Locked> locks_;
    std::vector<std::string> unadapted_;
    double scale_ = 1.0;
};

}  // namespace sz
