// chunked_cross_entropy against the same loss built from whole logits with libtorch autograd:
// value and gradient with respect to the hidden states, with and without a soft cap.
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/chunked_cross_entropy.h"

namespace sz {
namespace {

struct Case {
    double softcap;
    int64_t vocab_block;
};

class ChunkedCrossEntropyTest : public ::testing::TestWithParam<Case> {};

TEST_P(ChunkedCrossEntropyTest, MatchesWholeLogits) {
    const Case c = GetParam();
    torch::manual_seed(3);
    const int64_t n = 37, H = 16, V = 101;
    torch::Tensor weight = torch::randn({V, H}) * 0.8;
    torch::Tensor targets = torch::randint(0, V, {n}, torch::kInt64);
    torch::Tensor weights = torch::rand({n});
    torch::Tensor hidden = torch::randn({n, H}) * 2.0;

    torch::Tensor h1 = hidden.clone().requires_grad_();
    torch::Tensor logits = torch::matmul(h1, weight.t());
    if (c.softcap > 0.0) {
        logits = torch::tanh(logits / c.softcap) * c.softcap;
    }
    torch::Tensor per_row = torch::nn::functional::cross_entropy(
        logits, targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    torch::Tensor expected = (per_row * weights).sum();
    expected.mul(1.7).backward();

    torch::Tensor h2 = hidden.clone().requires_grad_();
    torch::Tensor got = chunked_cross_entropy(h2, weight, c.softcap, targets, weights, c.vocab_block);
    got.mul(1.7).backward();

    EXPECT_NEAR(got.item<double>(), expected.item<double>(), 1e-4 * std::abs(expected.item<double>()));
    EXPECT_LT((h2.grad() - h1.grad()).abs().max().item<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Chunks, ChunkedCrossEntropyTest,
                         ::testing::Values(Case{0.0, 8}, Case{0.0, 100}, Case{30.0, 5}, Case{2.0, 1}));

TEST(ChunkedCrossEntropy, TrainableHeadRejected) {
    torch::Tensor weight = torch::randn({5, 4}).requires_grad_();
    EXPECT_THROW(chunked_cross_entropy(torch::randn({2, 4}), weight, 0.0, torch::zeros({2}, torch::kInt64), {}), Error);
    EXPECT_THROW(chunked_cross_entropy(torch::randn({2, 3}), weight.detach(), 0.0, torch::zeros({2}, torch::kInt64), {}),
                 Error);
}

}  // namespace
}  // namespace sz
