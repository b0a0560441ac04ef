// chunked_cross_entropy against the same loss built from whole logits with libtorch autograd:
// value and gradient with respect to the hidden states, with and without a soft cap, through
// the vocabulary-blocked path (no gradients) and the position-blocked path (gradients).
#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "core/error.h"
#include "model/chunked_cross_entropy.h"

namespace sz {
namespace {

struct Case {
    double softcap;
    int64_t vocab_block;
    int64_t positions_per_block;  // of the gradient path
};

void PrintTo(const Case& c, std::ostream* os) {
    *os << "softcap " << c.softcap << ", vocab_block " << c.vocab_block << ", positions_per_block "
        << c.positions_per_block;
}

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

    CrossEntropyBlocks blocks;
    blocks.vocab = c.vocab_block;
    blocks.logit_elements = c.positions_per_block * V;
    torch::Tensor h2 = hidden.clone().requires_grad_();
    torch::Tensor got = chunked_cross_entropy(h2, weight, c.softcap, targets, weights, blocks);
    got.mul(1.7).backward();
    EXPECT_NEAR(got.item<double>(), expected.item<double>(), 1e-4 * std::abs(expected.item<double>()));
    EXPECT_LT((h2.grad() - h1.grad()).abs().max().item<double>(), 1e-5);

    torch::NoGradGuard no_grad;
    torch::Tensor evaluated = chunked_cross_entropy(hidden, weight, c.softcap, targets, weights, blocks);
    EXPECT_NEAR(evaluated.item<double>(), expected.item<double>(), 1e-4 * std::abs(expected.item<double>()));
}

INSTANTIATE_TEST_SUITE_P(Chunks, ChunkedCrossEntropyTest,
                         ::testing::Values(Case{0.0, 8, 5}, Case{0.0, 100, 37}, Case{30.0, 5, 1}, Case{2.0, 1, 64}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                             return "softcap" + std::to_string(static_cast<int>(info.param.softcap)) + "_vocab" +
                                    std::to_string(info.param.vocab_block) + "_positions" +
                                    std::to_string(info.param.positions_per_block);
                         });

TEST(ChunkedCrossEntropy, TrainableHeadRejected) {
    torch::Tensor weight = torch::randn({5, 4}).requires_grad_();
    EXPECT_THROW(chunked_cross_entropy(torch::randn({2, 4}), weight, 0.0, torch::zeros({2}, torch::kInt64), {}), Error);
    EXPECT_THROW(chunked_cross_entropy(torch::randn({2, 3}), weight.detach(), 0.0, torch::zeros({2}, torch::kInt64), {}),
                 Error);
}

}  // namespace
}  // namespace sz
