// The model-free arithmetic of `subzero locate`: SVD with a fixed sign, the knee cut, the
// composite score, the cone and its alignment, cross-layer coherence and the DAS-style rotation.
// Every function is deterministic for a given input (and seed, where one is taken).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace sz {

// Thin SVD W = U diag(S) Vh of an [out, in] matrix in float32. The sign of each singular pair
// is fixed so that the entry of largest magnitude in Vh[k] (the first one on ties) is positive.
struct Svd {
    torch::Tensor U;    // [out, r]
    torch::Tensor S;    // [r], descending
    torch::Tensor Vh;   // [r, in], orthonormal rows (right singular vectors)
};
Svd svd_with_fixed_signs(const torch::Tensor& weight);

// (t - min t) / (max t - min t + 1e-12), in float32.
torch::Tensor norm01(const torch::Tensor& t);

// Quantile with linear interpolation between order statistics (numpy's default).
double linear_quantile(const torch::Tensor& t, double q);

struct CompositeWeights {
    double wanda = 0.45;
    double atp = 0.35;
    double cone = 0.20;
};
// weights.wanda * norm01(wanda_ratio) + weights.atp * norm01(|atp|) + weights.cone * norm01(alignment).
torch::Tensor composite_score(const torch::Tensor& wanda_ratio, const torch::Tensor& atp,
                              const torch::Tensor& alignment, const CompositeWeights& weights);

// Knee cut on a score curve. Sorted descending (c_0 >= ... >= c_{n-1}), with x_i = i/(n-1) and
// y_i = (c_i - c_{n-1})/(c_0 - c_{n-1}), the cut is argmax_i |y_i + x_i - 1| + 1, clamped to
// [1, max(1, floor(max_fraction * n))]. A curve with n < 4 or range <= flat_epsilon is flat:
// then the selection is either the scores strictly above the flat_quantile quantile (when
// flat_top_fraction <= 0) or the top max(1, floor(flat_top_fraction * n)).
struct KneeOptions {
    double max_fraction = 0.30;
    double flat_epsilon = 1e-6;
    double flat_quantile = 0.85;
    double flat_top_fraction = 0.0;
};
// Returns the selected indices in descending score order (ties: lower index first).
std::vector<int64_t> knee_select(const torch::Tensor& scores, const KneeOptions& options);

// Spherical k-means on unit rows [n, d]: k initial centroids drawn by a permutation seeded with
// `seed`, then `iterations` rounds of max-cosine assignment and renormalised mean centroids.
// A centroid whose cluster empties keeps its previous value.
torch::Tensor spherical_kmeans(const torch::Tensor& rows, int64_t k, int64_t iterations, uint64_t seed);

// Cone of one layer from residual rows [N_corp, d] and [N_auth, d] paired by index: k-means
// centroids of unit(corp_i - auth_i). With fewer than k pairs the normalised mean difference is
// repeated k times; with fewer than 2 pairs the cone is zero.
torch::Tensor corp_cone(const torch::Tensor& corp, const torch::Tensor& authentic, int64_t k, int64_t iterations,
                        uint64_t seed);

// min(1, |Q^T x_j|) for every row x_j of `vectors` [r, d], with Q an orthonormal basis of the
// cone rows from a QR decomposition. QR columns whose |R_jj| is below 1e-6 of the largest are
// dropped, so a rank-deficient cone does not add arbitrary directions. A zero cone gives zeros.
torch::Tensor cone_alignment(const torch::Tensor& cone, const torch::Tensor& vectors);

// coh_k = max_j |v_k . n_j| for every row v_k of `directions` [r, d] against `neighbours` [m, d]
// (zeros when m = 0); the coherence multiplier is 0.5 + 0.5 * coh_k.
torch::Tensor coherence(const torch::Tensor& directions, const torch::Tensor& neighbours);
torch::Tensor coherence_multiplier(const torch::Tensor& coh);

// DAS-style rotation of k candidate directions [k, in] from their logit deltas [k, V] (row i:
// mean clean-minus-ablated logits when candidate i is removed). D = U_D diag(sigma) V_D^T;
// explained_j = sigma_j^2 / sum sigma^2; r leading components (at most target_rank, taken while
// explained_j >= explained_floor, at least one); basis = U_D[:, :r]^T candidates with unit rows;
// scale_j = clip(1 - (1 - min_scale) explained_j, min_scale, 1). A single candidate is its own
// basis with explained 1 and scale min_scale. Column signs of U_D follow the Svd convention.
struct DasRotation {
    torch::Tensor basis;      // [r, in]
    torch::Tensor explained;  // [r]
    torch::Tensor sigma;      // [r]
    torch::Tensor mixing;     // [r, k]
    torch::Tensor scales;     // [r]
};
DasRotation das_rotation(const torch::Tensor& logit_deltas, const torch::Tensor& candidates, int64_t target_rank,
                         double explained_floor, double min_scale);

}  // namespace sz
