#include "locate/direction_math.h"

#include <algorithm>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"

namespace sz {

namespace {

std::vector<double> to_doubles(const torch::Tensor& t) {
    torch::Tensor flat = t.detach().to(torch::kFloat64).contiguous().view({-1});
    return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

// Indices sorted by descending value; equal values keep ascending index order.
std::vector<int64_t> descending_order(const std::vector<double>& values) {
    std::vector<int64_t> order(values.size());
    for (size_t i = 0; i < order.size(); ++i) {
        order[i] = static_cast<int64_t>(i);
    }
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return values[a] > values[b]; });
    return order;
}

// Flips each column j of `columns` [n, m] (and row j of `partner`, when given) so that the
// column's largest-magnitude entry is positive.
void fix_column_signs(torch::Tensor& columns, torch::Tensor* partner_rows) {
    torch::Tensor index = columns.abs().argmax(0, /*keepdim=*/true);       // [1, m]
    torch::Tensor sign = torch::where(columns.gather(0, index) < 0, -1.0f, 1.0f).to(columns.dtype());  // [1, m]
    columns = columns * sign;
    if (partner_rows != nullptr) {
        *partner_rows = *partner_rows * sign.view({-1, 1});
    }
}

}  // namespace

Svd svd_with_fixed_signs(const torch::Tensor& weight) {
    SZ_ASSERT(weight.dim() == 2);
    auto [U, S, Vh] = torch::linalg_svd(weight.detach().to(torch::kFloat32), /*full_matrices=*/false);
    torch::Tensor V = Vh.t().contiguous();
    torch::Tensor Ut = U.t().contiguous();
    fix_column_signs(V, &Ut);
    return {Ut.t().contiguous(), S.contiguous(), V.t().contiguous()};
}

torch::Tensor norm01(const torch::Tensor& t) {
    torch::Tensor x = t.to(torch::kFloat32);
    return (x - x.min()) / (x.max() - x.min() + 1e-12f);
}

double linear_quantile(const torch::Tensor& t, double q) {
    std::vector<double> values = to_doubles(t);
    SZ_ASSERT(!values.empty());
    std::sort(values.begin(), values.end());
    const double position = q * static_cast<double>(values.size() - 1);
    const size_t below = static_cast<size_t>(std::floor(position));
    const size_t above = std::min(below + 1, values.size() - 1);
    const double fraction = position - static_cast<double>(below);
    return values[below] + (values[above] - values[below]) * fraction;
}

torch::Tensor composite_score(const torch::Tensor& wanda_ratio, const torch::Tensor& atp,
                              const torch::Tensor& alignment, const CompositeWeights& weights) {
    return static_cast<float>(weights.wanda) * norm01(wanda_ratio) +
           static_cast<float>(weights.atp) * norm01(atp.abs()) +
           static_cast<float>(weights.cone) * norm01(alignment);
}

std::vector<int64_t> knee_select(const torch::Tensor& scores, const KneeOptions& options) {
    std::vector<double> values = to_doubles(scores);
    const int64_t n = static_cast<int64_t>(values.size());
    if (n == 0) {
        return {};
    }
    std::vector<int64_t> order = descending_order(values);
    const double first = values[order.front()];
    const double last = values[order.back()];

    if (n < 4 || first - last <= options.flat_epsilon) {
        if (options.flat_top_fraction > 0.0) {
            const int64_t keep = std::max<int64_t>(1, static_cast<int64_t>(std::floor(options.flat_top_fraction * n)));
            return std::vector<int64_t>(order.begin(), order.begin() + std::min(keep, n));
        }
        const double threshold = linear_quantile(scores, options.flat_quantile);
        std::vector<int64_t> selected;
        for (int64_t index : order) {
            if (values[index] > threshold) {
                selected.push_back(index);
            }
        }
        return selected;
    }

    int64_t best = 0;
    double best_distance = -1.0;
    for (int64_t i = 0; i < n; ++i) {
        const double x = static_cast<double>(i) / static_cast<double>(n - 1);
        const double y = (values[order[i]] - last) / (first - last);
        const double distance = std::abs(y + x - 1.0);
        if (distance > best_distance) {
            best_distance = distance;
            best = i;
        }
    }
    const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(std::floor(options.max_fraction * n)));
    const int64_t cut = std::clamp<int64_t>(best + 1, 1, cap);
    return std::vector<int64_t>(order.begin(), order.begin() + cut);
}

torch::Tensor spherical_kmeans(const torch::Tensor& rows, int64_t k, int64_t iterations, uint64_t seed) {
    const int64_t n = rows.size(0);
    SZ_ASSERT(k >= 1 && n >= k);
    at::Generator generator = at::detail::createCPUGenerator(seed);
    torch::Tensor permutation = torch::randperm(n, generator, torch::TensorOptions().dtype(torch::kInt64));
    torch::Tensor centroids = rows.index_select(0, permutation.narrow(0, 0, k)).clone();
    for (int64_t iteration = 0; iteration < iterations; ++iteration) {
        torch::Tensor assignment = torch::matmul(rows, centroids.t()).argmax(1);   // [n]
        for (int64_t c = 0; c < k; ++c) {
            torch::Tensor members = (assignment == c).nonzero().squeeze(1);
            if (members.numel() == 0) {
                continue;
            }
            torch::Tensor mean = rows.index_select(0, members).mean(0);
            centroids[c] = mean / (mean.norm() + 1e-12f);
        }
    }
    return centroids;
}

torch::Tensor corp_cone(const torch::Tensor& corp, const torch::Tensor& authentic, int64_t k, int64_t iterations,
                        uint64_t seed) {
    const int64_t n = std::min(corp.size(0), authentic.size(0));
    const int64_t d = corp.size(1);
    if (n < 2) {
        return torch::zeros({k, d}, torch::kFloat32);
    }
    torch::Tensor difference = corp.narrow(0, 0, n).to(torch::kFloat32) - authentic.narrow(0, 0, n).to(torch::kFloat32);
    if (n < k) {
        torch::Tensor mean = difference.mean(0);
        return (mean / (mean.norm() + 1e-12f)).unsqueeze(0).repeat({k, 1});
    }
    torch::Tensor unit = difference / (difference.norm(2, 1, true) + 1e-12f);
    return spherical_kmeans(unit, k, iterations, seed);
}

torch::Tensor cone_alignment(const torch::Tensor& cone, const torch::Tensor& vectors) {
    const int64_t r = vectors.size(0);
    if (cone.numel() == 0 || cone.abs().max().item<float>() == 0.0f) {
        return torch::zeros({r}, torch::kFloat32);
    }
    auto [Q, R] = torch::linalg_qr(cone.to(torch::kFloat32).t(), "reduced");   // Q [d, k], R [k, k]
    torch::Tensor diagonal = R.diagonal().abs();
    torch::Tensor keep = (diagonal > diagonal.max() * 1e-6f).nonzero().squeeze(1);
    torch::Tensor basis = Q.index_select(1, keep);                              // [d, k']
    torch::Tensor projected = torch::matmul(vectors.to(torch::kFloat32), basis);  // [r, k']
    return projected.norm(2, 1).clamp_max(1.0f);
}

torch::Tensor coherence(const torch::Tensor& directions, const torch::Tensor& neighbours) {
    if (neighbours.numel() == 0) {
        return torch::zeros({directions.size(0)}, torch::kFloat32);
    }
    return torch::matmul(directions.to(torch::kFloat32), neighbours.to(torch::kFloat32).t()).abs().amax(1);
}

torch::Tensor coherence_multiplier(const torch::Tensor& coh) { return 0.5f + 0.5f * coh; }

DasRotation das_rotation(const torch::Tensor& logit_deltas, const torch::Tensor& candidates, int64_t target_rank,
                         double explained_floor, double min_scale) {
    const int64_t k = candidates.size(0);
    SZ_ASSERT(k >= 1 && logit_deltas.size(0) == k);
    DasRotation result;
    if (k == 1) {
        result.basis = candidates.to(torch::kFloat32) / candidates.norm();
        result.explained = torch::ones({1}, torch::kFloat32);
        result.sigma = logit_deltas.to(torch::kFloat32).norm().view({1});
        result.mixing = torch::ones({1, 1}, torch::kFloat32);
        result.scales = torch::full({1}, static_cast<float>(min_scale), torch::kFloat32);
        return result;
    }
    auto [U, sigma, Vh] = torch::linalg_svd(logit_deltas.to(torch::kFloat32), /*full_matrices=*/false);
    fix_column_signs(U, nullptr);
    torch::Tensor energy = sigma.square();
    const float total = energy.sum().item<float>();
    torch::Tensor explained = total > 0.0f ? energy / total : torch::zeros_like(energy);
    std::vector<double> explained_values = to_doubles(explained);

    int64_t rank = 0;
    while (rank < std::min<int64_t>(target_rank, static_cast<int64_t>(explained_values.size())) &&
           explained_values[rank] >= explained_floor) {
        ++rank;
    }
    rank = std::max<int64_t>(rank, 1);

    torch::Tensor mixing = U.narrow(1, 0, rank);                                // [k, r]
    torch::Tensor basis = torch::matmul(mixing.t(), candidates.to(torch::kFloat32));  // [r, in]
    result.basis = basis / (basis.norm(2, 1, true) + 1e-12f);
    result.explained = explained.narrow(0, 0, rank).contiguous();
    result.sigma = sigma.narrow(0, 0, rank).contiguous();
    result.mixing = mixing.t().contiguous();
    result.scales = (1.0f - static_cast<float>(1.0 - min_scale) * result.explained)
                        .clamp(static_cast<float>(min_scale), 1.0f);
    return result;
}

}  // namespace sz
