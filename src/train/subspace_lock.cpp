#include "train/subspace_lock.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "train/surgery.h"

namespace sz {

namespace {

// Maximum |B Bᵀ − I| accepted from the atlas; QR then makes the basis orthonormal to rounding.
constexpr double kOrthonormalTolerance = 1e-3;

torch::Tensor remove_locked_component(const torch::Tensor& m, const torch::Tensor& q) {
    return m - torch::matmul(torch::matmul(m, q), q.t());
}

}  // namespace

std::string LockLeak::key() const { return projection_key(layer, projection); }

SubspaceLock::SubspaceLock(LoraAdapter& adapter, const Atlas& atlas) : scale_(adapter.scale()) {
    for (const ProjectionAtlas& entry : atlas.projections) {
        if (!entry.lock_basis.defined() || entry.lock_basis.numel() == 0) {
            continue;
        }
        LoraPair* pair = adapter.find(entry.layer, entry.projection);
        if (pair == nullptr) {
            unadapted_.push_back(projection_key(entry.layer, entry.projection));
            continue;
        }
        const int64_t in = pair->a.size(1);
        if (entry.lock_basis.dim() != 2 || entry.lock_basis.size(1) != in) {
            fail("atlas entry {}: lock_basis has shape [{}] but the projection has {} input features", projection_key(entry.layer, entry.projection),
                 fmt::join(entry.lock_basis.sizes(), ", "), in);
        }
        torch::Tensor basis = entry.lock_basis.to(torch::kFloat64);
        const int64_t rows = basis.size(0);
        double deviation =
            (torch::matmul(basis, basis.t()) - torch::eye(rows, torch::kFloat64)).abs().max().item<double>();
        if (!(deviation <= kOrthonormalTolerance)) {
            fail("atlas entry {}: lock_basis rows are not orthonormal (max |B Bᵀ − I| = {:.3g}); re-run locate",
                 projection_key(entry.layer, entry.projection), deviation);
        }
        torch::Tensor q = std::get<0>(torch::linalg_qr(basis.t(), "reduced")).to(torch::kFloat32).contiguous();
        locks_.push_back({pair, q});
    }
    project_weights();
    if (!unadapted_.empty()) {
        spdlog::info("subspace lock: {} atlas projections have no LoRA adapter and stay unchanged", unadapted_.size());
    }
}

void SubspaceLock::project_gradients() {
    torch::NoGradGuard no_grad;
    for (Locked& lock : locks_) {
        torch::Tensor grad = lock.pair->a.mutable_grad();
        if (grad.defined()) {
            grad.copy_(remove_locked_component(grad, lock.q));
        }
    }
}

void SubspaceLock::project_weights() {
    torch::NoGradGuard no_grad;
    for (Locked& lock : locks_) {
        lock.pair->a.copy_(remove_locked_component(lock.pair->a, lock.q));
    }
}

std::vector<LockLeak> SubspaceLock::measure() const {
    torch::NoGradGuard no_grad;
    std::vector<LockLeak> leaks;
    for (const Locked& lock : locks_) {
        torch::Tensor delta = torch::matmul(lock.pair->b.to(torch::kFloat64), lock.pair->a.to(torch::kFloat64)) * scale_;
        LockLeak leak;
        leak.layer = lock.pair->layer;
        leak.projection = lock.pair->projection;
        leak.locked_directions = lock.q.size(1);
        leak.delta_norm = delta.norm().item<double>();
        leak.leak_norm = torch::matmul(delta, lock.q.to(torch::kFloat64)).norm().item<double>();
        leak.leak_ratio = leak.delta_norm > 0.0 ? leak.leak_norm / leak.delta_norm : 0.0;
        leaks.push_back(leak);
    }
    return leaks;
}

double SubspaceLock::max_leak_ratio() const {
    double worst = 0.0;
    for (const LockLeak& leak : measure()) {
        worst = std::max(worst, leak.leak_ratio);
    }
    return worst;
}

nlohmann::json SubspaceLock::to_json() const {
    nlohmann::json projections = nlohmann::json::array();
    double worst = 0.0;
    for (const LockLeak& leak : measure()) {
        projections.push_back({
            {"key", leak.key()},
            {"layer", leak.layer},
            {"projection", projection_name(leak.projection)},
            {"locked_directions", leak.locked_directions},
            {"delta_norm", leak.delta_norm},
            {"leak_norm", leak.leak_norm},
            {"leak_ratio", leak.leak_ratio},
        });
        worst = std::max(worst, leak.leak_ratio);
    }
    return {{"max_leak_ratio", worst}, {"projections", projections}, {"unadapted", unadapted_}};
}

void SubspaceLock::write(const std::string& path) const { write_file_atomically(path, to_json().dump(2) + "\n"); }

}  // namespace sz
