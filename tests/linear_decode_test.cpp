// kernels::linear_decode against libtorch's float32 matmul on the same weight values.
#include <gtest/gtest.h>

#include "kernels/linear_decode.h"

namespace sz {
namespace {

void expect_matches_float32(int64_t m, int64_t n, int64_t k, torch::ScalarType dtype) {
    torch::manual_seed(m * 1000 + n + k);
    torch::Tensor weight = torch::randn({n, k}).to(dtype);
    torch::Tensor x = torch::randn({m, k});
    torch::Tensor expected = torch::matmul(x, weight.to(torch::kFloat32).t());
    torch::Tensor actual = kernels::linear_decode(x, weight);
    ASSERT_EQ(actual.sizes(), expected.sizes());
    // Only the summation order differs: relative error ~ sqrt(k) * 2^-24 per output.
    double scale = expected.abs().max().item<double>();
    EXPECT_LT((actual - expected).abs().max().item<double>(), 1e-5 * scale * std::sqrt(static_cast<double>(k)))
        << "m=" << m << " n=" << n << " k=" << k << " dtype=" << c10::toString(dtype);
}

TEST(LinearDecode, MatchesFloat32ForDecodeShapes) {
    for (auto dtype : {torch::kFloat32, torch::kHalf, torch::kBFloat16}) {
        for (int64_t m = 1; m <= 8; ++m) {
            expect_matches_float32(m, 37, 640, dtype);
        }
        // Tails: k not a multiple of 16 or 8, odd n.
        expect_matches_float32(1, 33, 19, dtype);
        expect_matches_float32(3, 5, 7, dtype);
    }
}

TEST(LinearDecode, MatchesFloat32ForPrefillShapes) {
    expect_matches_float32(20, 1100, 64, torch::kHalf);
    expect_matches_float32(9, 3, 640, torch::kBFloat16);
}

TEST(LinearDecode, KeepsLeadingDimensions) {
    torch::Tensor weight = torch::randn({6, 16}).to(torch::kHalf);
    torch::Tensor x = torch::randn({2, 3, 16});
    EXPECT_EQ(kernels::linear_decode(x, weight).sizes(), torch::IntArrayRef({2, 3, 6}));
}

TEST(LinearDecode, RejectsMismatchedInput) {
    torch::Tensor weight = torch::randn({6, 16}).to(torch::kHalf);
    EXPECT_THROW(kernels::linear_decode(torch::randn({1, 15}), weight), std::exception);
    EXPECT_THROW(kernels::linear_decode(torch::randn({1, 16}), torch::randn({6, 16}).to(torch::kInt32)), std::exception);
}

}  // namespace
}  // namespace sz
