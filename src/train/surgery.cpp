#include "train/surgery.h"

#include <cmath>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"

namespace sz {

namespace {

bool has_rows(const torch::Tensor& t) { return t.defined() && t.numel() > 0; }

// Checks that every scale is finite and in [0, 1].
void check_scales(const torch::Tensor& scales, const std::string& entry_key) {
    torch::Tensor s = scales.to(torch::kFloat64);
    if (!torch::isfinite(s).all().item<bool>()) {
        fail("atlas entry {}: scales contain a non-finite value", entry_key);
    }
    double low = s.min().item<double>();
    double high = s.max().item<double>();
    if (low < 0.0 || high > 1.0) {
        fail("atlas entry {}: scales must lie in [0, 1], found values in [{}, {}]", entry_key, low, high);
    }
}

// W (I - Bᵀ diag(1 - s) B) = W - ((W Bᵀ) diag(1 - s)) B, without forming the [in, in] matrix.
torch::Tensor attenuate_basis(const torch::Tensor& w, const ProjectionAtlas& entry, SurgeryRecord& record) {
    const std::string entry_key = projection_key(entry.layer, entry.projection);
    const int64_t in = w.size(1);
    if (entry.basis.dim() != 2 || entry.basis.size(1) != in) {
        fail("atlas entry {}: basis has shape [{}] but the model's weight has {} input features",
             entry_key, fmt::join(entry.basis.sizes(), ", "), in);
    }
    if (!entry.scales.defined() || entry.scales.dim() != 1 || entry.scales.size(0) != entry.basis.size(0)) {
        fail("atlas entry {}: expected one scale per basis row ({}), got {}", entry_key, entry.basis.size(0),
             entry.scales.defined() ? entry.scales.numel() : 0);
    }
    check_scales(entry.scales, entry_key);

    torch::Tensor b = entry.basis.to(torch::kFloat64);
    torch::Tensor s = entry.scales.to(torch::kFloat64);
    torch::Tensor w64 = w.to(torch::kFloat64);
    torch::Tensor gains = torch::matmul(w64, b.t());  // [out, m]: W b_j per column
    torch::Tensor result = w64 - torch::matmul(gains * (1.0 - s), b);

    record.method = SurgeryMethod::basis;
    record.directions = b.size(0);
    record.min_scale = s.min().item<double>();
    return result;
}

torch::Tensor scale_singular_values(const torch::Tensor& w, const ProjectionAtlas& entry, const SurgeryOptions& options,
                                    SurgeryRecord& record) {
    const std::string entry_key = projection_key(entry.layer, entry.projection);
    torch::Tensor selected = entry.selected.to(torch::kInt64).flatten();
    const int64_t rank = std::min(w.size(0), w.size(1));
    if (selected.min().item<int64_t>() < 0 || selected.max().item<int64_t>() >= rank) {
        fail("atlas entry {}: selected singular indices must lie in [0, {}), found [{}, {}]", entry_key, rank,
             selected.min().item<int64_t>(), selected.max().item<int64_t>());
    }

    torch::Tensor scales;
    if (entry.scales.defined() && entry.scales.numel() == selected.numel()) {
        check_scales(entry.scales, entry_key);
        scales = entry.scales.to(torch::kFloat64).flatten();
    } else {
        if (!(options.singular_value_scale >= 0.0 && options.singular_value_scale <= 1.0)) {
            fail("singular_value_scale must lie in [0, 1], got {}", options.singular_value_scale);
        }
        scales = torch::full({selected.numel()}, options.singular_value_scale, torch::kFloat64);
    }

    torch::Tensor w64 = w.to(torch::kFloat64);
    auto [u, sv, vh] = torch::linalg_svd(w64, /*full_matrices=*/false);
    record.svd_roundtrip_drift = (torch::matmul(u * sv, vh) - w64).abs().max().item<double>();
    torch::Tensor scaled = sv.clone();
    scaled.index_put_({selected}, sv.index({selected}) * scales);

    record.method = SurgeryMethod::singular_values;
    record.directions = selected.numel();
    record.min_scale = scales.min().item<double>();
    return torch::matmul(u * scaled, vh);
}

}  // namespace

const char* surgery_method_name(SurgeryMethod method) {
    switch (method) {
        case SurgeryMethod::basis: return "basis";
        case SurgeryMethod::singular_values: return "singular_values";
    }
    SZ_ASSERT(false);
}

std::string projection_key(int64_t layer, Projection projection) {
    return fmt::format("blocks.{}.{}.{}", layer, projection_module(projection), projection_name(projection));
}

std::string SurgeryRecord::key() const { return projection_key(layer, projection); }

nlohmann::json SurgeryRecord::to_json() const {
    nlohmann::json j = {
        {"key", key()},
        {"layer", layer},
        {"projection", projection_name(projection)},
        {"method", surgery_method_name(method)},
        {"directions", directions},
        {"min_scale", min_scale},
        {"weight_norm", weight_norm},
        {"change_norm", change_norm},
    };
    if (method == SurgeryMethod::singular_values) {
        j["svd_roundtrip_drift"] = svd_roundtrip_drift;
    }
    return j;
}

nlohmann::json SurgeryReport::to_json() const {
    nlohmann::json records = nlohmann::json::array();
    for (const SurgeryRecord& record : applied) {
        records.push_back(record.to_json());
    }
    return {{"applied", records}, {"skipped", skipped}};
}

std::string SurgeryReport::summary() const {
    size_t by_basis = 0;
    for (const SurgeryRecord& record : applied) {
        by_basis += record.method == SurgeryMethod::basis ? 1 : 0;
    }
    return fmt::format("attenuated {} projections ({} via basis, {} via singular values), skipped {}", applied.size(),
                       by_basis, applied.size() - by_basis, skipped.size());
}

SurgeryReport apply_surgery(CausalLM& model, const Atlas& atlas, const SurgeryOptions& options) {
    torch::NoGradGuard no_grad;
    SurgeryReport report;
    const int64_t n_layer = model.config().n_layer;

    for (const ProjectionAtlas& entry : atlas.projections) {
        const std::string entry_key = projection_key(entry.layer, entry.projection);
        if (entry.layer < 0 || entry.layer >= n_layer) {
            fail("atlas entry {}: layer {} is out of range for a model with {} layers", entry_key, entry.layer, n_layer);
        }
        const bool use_basis = has_rows(entry.basis);
        const bool use_singular_values = !use_basis && has_rows(entry.selected);
        if (!use_basis && !use_singular_values) {
            report.skipped.push_back(entry_key + ": no directions");
            continue;
        }

        torch::Tensor& weight = model.projection_weight(entry.layer, entry.projection);
        SurgeryRecord record;
        record.layer = entry.layer;
        record.projection = entry.projection;
        torch::Tensor updated = use_basis ? attenuate_basis(weight, entry, record)
                                          : scale_singular_values(weight, entry, options, record);

        torch::Tensor original = weight.clone();
        weight.copy_(updated.to(weight.scalar_type()));
        record.weight_norm = original.to(torch::kFloat64).norm().item<double>();
        record.change_norm = (weight.to(torch::kFloat64) - original.to(torch::kFloat64)).norm().item<double>();
        if (options.keep_originals) {
            record.original = original;
        }
        report.applied.push_back(std::move(record));
    }
    spdlog::info("surgery: {}", report.summary());
    return report;
}

void restore_surgery(CausalLM& model, const SurgeryReport& report) {
    torch::NoGradGuard no_grad;
    for (const SurgeryRecord& record : report.applied) {
        if (!record.original.defined()) {
            fail("cannot restore {}: apply_surgery ran without keep_originals", record.key());
        }
        model.projection_weight(record.layer, record.projection).copy_(record.original);
    }
}

}  // namespace sz
