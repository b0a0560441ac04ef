// Weight surgery on the tiny Gemma 3: gains along the atlas basis are scaled exactly, the
// orthogonal complement is untouched, and the singular-value variant scales singular values.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "model/loader.h"
#include "test_support.h"
#include "tiny_model.h"
#include "train/surgery.h"

namespace sz {
namespace {

class SurgeryTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new std::string(test::make_temp_dir("subzero-surgery"));
        path_ = new std::string(test::write_tiny_gemma3(*dir_ + "/tiny.gguf"));
    }
    static void TearDownTestSuite() {
        std::filesystem::remove_all(*dir_);
        delete dir_;
        delete path_;
    }
    void SetUp() override {
        loaded_ = load_model(*path_);
        loaded_.model->convert_weights(torch::kFloat32);
    }

    static std::string* dir_;
    static std::string* path_;
    LoadedModel loaded_;
};

std::string* SurgeryTest::dir_ = nullptr;
std::string* SurgeryTest::path_ = nullptr;

// Random orthonormal rows [m, in] from a seeded QR.
torch::Tensor orthonormal_rows(int64_t m, int64_t in, uint64_t seed) {
    torch::manual_seed(seed);
    torch::Tensor q = std::get<0>(torch::linalg_qr(torch::randn({in, m}, torch::kFloat64), "reduced"));
    return q.t().contiguous();
}

TEST_F(SurgeryTest, BasisDirectionsScaledExactly) {
    const int64_t layer = 2;
    const Projection p = Projection::Up;
    torch::Tensor original = loaded_.model->projection_weight(layer, p).clone().to(torch::kFloat64);
    const int64_t in = original.size(1);

    torch::Tensor basis = orthonormal_rows(3, in, 7);
    torch::Tensor scales = torch::tensor({0.0, 0.15, 0.5}, torch::kFloat64);
    ProjectionAtlas entry;
    entry.layer = layer;
    entry.projection = p;
    entry.basis = basis.to(torch::kFloat32);
    entry.scales = scales.to(torch::kFloat32);
    Atlas atlas;
    atlas.projections.push_back(entry);

    SurgeryReport report = apply_surgery(*loaded_.model, atlas);
    ASSERT_EQ(report.applied.size(), 1u);
    EXPECT_EQ(report.applied[0].method, SurgeryMethod::basis);
    EXPECT_EQ(report.applied[0].directions, 3);
    torch::Tensor updated = loaded_.model->projection_weight(layer, p).to(torch::kFloat64);

    // Along each basis row the gain is s_j times the old one. The atlas basis is float32, so
    // compare against the float32-rounded rows that surgery used.
    torch::Tensor b32 = basis.to(torch::kFloat32).to(torch::kFloat64);
    for (int64_t j = 0; j < 3; ++j) {
        torch::Tensor before = torch::matmul(original, b32[j]);
        torch::Tensor after = torch::matmul(updated, b32[j]);
        double error = (after - scales[j].item<double>() * before).abs().max().item<double>();
        EXPECT_LT(error, 1e-5) << "basis row " << j;
    }

    // A vector orthogonal to every basis row keeps its output.
    torch::manual_seed(11);
    torch::Tensor x = torch::randn({in}, torch::kFloat64);
    x = x - torch::matmul(torch::matmul(b32, x), b32);
    double complement_error = (torch::matmul(updated, x) - torch::matmul(original, x)).abs().max().item<double>();
    EXPECT_LT(complement_error, 1e-5);
    EXPECT_GT(report.applied[0].change_norm, 0.0);
}

TEST_F(SurgeryTest, SingularValueVariantScalesSelected) {
    const int64_t layer = 1;
    const Projection p = Projection::Q;
    torch::Tensor original = loaded_.model->projection_weight(layer, p).to(torch::kFloat64);
    torch::Tensor sv_before = torch::linalg_svdvals(original);

    ProjectionAtlas entry;
    entry.layer = layer;
    entry.projection = p;
    entry.selected = torch::tensor({0, 4}, torch::kInt64);
    Atlas atlas;
    atlas.projections.push_back(entry);

    SurgeryOptions options;
    options.singular_value_scale = 0.15;
    SurgeryReport report = apply_surgery(*loaded_.model, atlas, options);
    ASSERT_EQ(report.applied.size(), 1u);
    EXPECT_EQ(report.applied[0].method, SurgeryMethod::singular_values);
    EXPECT_LT(report.applied[0].svd_roundtrip_drift, 1e-10);

    torch::Tensor expected = sv_before.clone();
    expected[0] *= 0.15;
    expected[4] *= 0.15;
    expected = std::get<0>(expected.sort(0, /*descending=*/true));
    torch::Tensor sv_after = torch::linalg_svdvals(loaded_.model->projection_weight(layer, p).to(torch::kFloat64));
    EXPECT_LT((sv_after - expected).abs().max().item<double>(), 1e-5);
}

TEST_F(SurgeryTest, RestoreUndoesSurgery) {
    torch::Tensor original = loaded_.model->projection_weight(0, Projection::Down).clone();
    ProjectionAtlas entry;
    entry.layer = 0;
    entry.projection = Projection::Down;
    entry.basis = orthonormal_rows(2, original.size(1), 3).to(torch::kFloat32);
    entry.scales = torch::zeros({2});
    Atlas atlas;
    atlas.projections.push_back(entry);

    SurgeryOptions options;
    options.keep_originals = true;
    SurgeryReport report = apply_surgery(*loaded_.model, atlas, options);
    EXPECT_FALSE(torch::equal(loaded_.model->projection_weight(0, Projection::Down), original));
    restore_surgery(*loaded_.model, report);
    EXPECT_TRUE(torch::equal(loaded_.model->projection_weight(0, Projection::Down), original));
}

TEST_F(SurgeryTest, EmptyEntrySkipped) {
    ProjectionAtlas entry;
    entry.layer = 0;
    entry.projection = Projection::K;
    Atlas atlas;
    atlas.projections.push_back(entry);
    SurgeryReport report = apply_surgery(*loaded_.model, atlas);
    EXPECT_TRUE(report.applied.empty());
    ASSERT_EQ(report.skipped.size(), 1u);
    EXPECT_NE(report.skipped[0].find("blocks.0.attn.k_proj"), std::string::npos);
}

TEST_F(SurgeryTest, InvalidEntriesRejected) {
    const int64_t in = loaded_.model->projection_weight(0, Projection::Gate).size(1);
    ProjectionAtlas wrong_width;
    wrong_width.layer = 0;
    wrong_width.basis = orthonormal_rows(2, in + 1, 1).to(torch::kFloat32);
    wrong_width.scales = torch::zeros({2});
    ProjectionAtlas scale_count = wrong_width;
    scale_count.basis = orthonormal_rows(2, in, 1).to(torch::kFloat32);
    scale_count.scales = torch::zeros({3});
    ProjectionAtlas scale_range = scale_count;
    scale_range.scales = torch::tensor({0.5f, 1.5f});
    ProjectionAtlas bad_layer = scale_range;
    bad_layer.layer = 99;
    bad_layer.scales = torch::zeros({2});

    for (const ProjectionAtlas& entry : {wrong_width, scale_count, scale_range, bad_layer}) {
        Atlas atlas;
        atlas.projections.push_back(entry);
        EXPECT_THROW(apply_surgery(*loaded_.model, atlas), Error) << projection_key(entry.layer, entry.projection);
    }
}

}  // namespace
}  // namespace sz
