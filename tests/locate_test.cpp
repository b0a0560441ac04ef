// Tests of `subzero locate`: the direction arithmetic against hand-computed cases, the config
// and corpus handling, and the whole pipeline on a tiny model with a planted cadence direction.
#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "locate/corpus.h"
#include "locate/direction_math.h"
#include "locate/locate.h"
#include "locate/locate_config.h"
#include "model/loader.h"
#include "locate/resumable_batch.h"
#include "test_support.h"
#include "tiny_model.h"
#include "train/surgery.h"

namespace sz {
namespace {

TEST(LocateKnee, SelectsElbowOfCurve) {
    // Sorted scores 1, 0.9, 0.2, 0.1, 0, 0, 0, 0, 0, 0 (n = 10, range 1): y_i = c_i, x_i = i/9,
    // |y + x - 1| = 0, 0.011, 0.578, 0.567, 0.556, ... so the argmax is i = 2 and the cut is 3;
    // the cap is floor(0.3 * 10) = 3, so the top three are selected.
    torch::Tensor scores = torch::tensor({0.0f, 0.2f, 0.0f, 1.0f, 0.0f, 0.9f, 0.1f, 0.0f, 0.0f, 0.0f});
    std::vector<int64_t> selected = knee_select(scores, KneeOptions{});
    EXPECT_EQ(selected, (std::vector<int64_t>{3, 5, 1}));
}

TEST(LocateKnee, CapsAtMaxFraction) {
    // Curve 1, 0.95, 0.9, 0.85, 0.8, 0.75, 0, 0, 0, 0: |y + x - 1| is 0.306 at i = 5 and 0.333
    // at i = 6 (the largest), so the cut of 7 is clamped to floor(0.3 * 10) = 3.
    torch::Tensor scores = torch::tensor({1.0f, 0.95f, 0.9f, 0.85f, 0.8f, 0.75f, 0.0f, 0.0f, 0.0f, 0.0f});
    EXPECT_EQ(knee_select(scores, KneeOptions{}), (std::vector<int64_t>{0, 1, 2}));
}

TEST(LocateKnee, FlatCurveUsesQuantileOrTopFraction) {
    // Three scores are a flat curve (n < 4). linear_quantile([1, 2, 3], 0.85) = 2 + 0.7 * 1 = 2.7, so
    // only 3 is strictly above it.
    torch::Tensor scores = torch::tensor({1.0f, 3.0f, 2.0f});
    EXPECT_EQ(knee_select(scores, KneeOptions{}), (std::vector<int64_t>{1}));
    // All equal: nothing is strictly above the quantile, but the top-fraction rule keeps
    // max(1, floor(0.1 * 5)) = 1, the first index on ties.
    torch::Tensor equal = torch::full({5}, 0.5f);
    EXPECT_TRUE(knee_select(equal, KneeOptions{}).empty());
    KneeOptions top;
    top.flat_top_fraction = 0.10;
    EXPECT_EQ(knee_select(equal, top), (std::vector<int64_t>{0}));
}

TEST(LocateQuantile, InterpolatesLinearly) {
    // Sorted 1, 2, 4, 8: q = 0.5 sits at position 1.5, halfway between 2 and 4.
    EXPECT_DOUBLE_EQ(linear_quantile(torch::tensor({8.0f, 1.0f, 4.0f, 2.0f}), 0.5), 3.0);
    EXPECT_DOUBLE_EQ(linear_quantile(torch::tensor({8.0f, 1.0f, 4.0f, 2.0f}), 1.0), 8.0);
}

TEST(LocateCoherence, MultiplierFromBestNeighbourCosine) {
    // v0 = e0 matches neighbour e0 exactly: coh 1, multiplier 1. v1 = (e1 + e2)/sqrt2 against
    // neighbours e0 and (0.6, 0.8, 0): |cos| = 0.8/sqrt2 = 0.5657, multiplier 0.7828.
    // v2 = e2 is orthogonal to both: coh 0, multiplier 0.5.
    const float s = 1.0f / std::sqrt(2.0f);
    torch::Tensor directions = torch::tensor({1.0f, 0.0f, 0.0f, 0.0f, s, s, 0.0f, 0.0f, 1.0f}).view({3, 3});
    torch::Tensor neighbours = torch::tensor({1.0f, 0.0f, 0.0f, 0.6f, 0.8f, 0.0f}).view({2, 3});
    torch::Tensor coh = coherence(directions, neighbours);
    EXPECT_NEAR(coh[0].item<float>(), 1.0f, 1e-6f);
    EXPECT_NEAR(coh[1].item<float>(), 0.8f * s, 1e-6f);
    EXPECT_NEAR(coh[2].item<float>(), 0.0f, 1e-6f);
    torch::Tensor multiplier = coherence_multiplier(coh);
    EXPECT_NEAR(multiplier[0].item<float>(), 1.0f, 1e-6f);
    EXPECT_NEAR(multiplier[1].item<float>(), 0.5f + 0.4f * s, 1e-6f);
    EXPECT_NEAR(multiplier[2].item<float>(), 0.5f, 1e-6f);
    EXPECT_NEAR(coherence(directions, torch::zeros({0, 3})).abs().sum().item<float>(), 0.0f, 0.0f);
}

TEST(LocateCone, AlignmentIsNormOfProjection) {
    // Cone rows e0 and (e0 + e1)/sqrt2 span {e0, e1}. Vector (0.6, 0, 0.8): projection (0.6, 0, 0),
    // norm 0.6. Vector (0.6, 0.8, 0) lies in the span: 1. e2: 0.
    const float s = 1.0f / std::sqrt(2.0f);
    torch::Tensor cone = torch::tensor({1.0f, 0.0f, 0.0f, s, s, 0.0f}).view({2, 3});
    torch::Tensor vectors = torch::tensor({0.6f, 0.0f, 0.8f, 0.6f, 0.8f, 0.0f, 0.0f, 0.0f, 1.0f}).view({3, 3});
    torch::Tensor alignment = cone_alignment(cone, vectors);
    EXPECT_NEAR(alignment[0].item<float>(), 0.6f, 1e-5f);
    EXPECT_NEAR(alignment[1].item<float>(), 1.0f, 1e-5f);
    EXPECT_NEAR(alignment[2].item<float>(), 0.0f, 1e-5f);
}

TEST(LocateCone, RepeatedRowsAddNoDirections) {
    // A cone of three copies of e0 spans e0 only, so e1 has alignment 0 (a plain QR of the
    // rank-1 matrix would add two arbitrary orthonormal columns).
    torch::Tensor cone = torch::tensor({1.0f, 0.0f, 0.0f}).repeat({3, 1});
    torch::Tensor alignment = cone_alignment(cone, torch::eye(3));
    EXPECT_NEAR(alignment[0].item<float>(), 1.0f, 1e-5f);
    EXPECT_NEAR(alignment[1].item<float>(), 0.0f, 1e-5f);
    EXPECT_NEAR(alignment[2].item<float>(), 0.0f, 1e-5f);
}

TEST(LocateDas, RotatesCandidatesByLogitEffect) {
    // Candidates e0, e1 in R^3 with logit deltas (3, 0) and (4, 0): D = [[3, 0], [4, 0]] has
    // one singular value 5 with left vector (0.6, 0.8); explained = (1, 0), so r = 1 and the
    // basis is 0.6 e0 + 0.8 e1 with scale 1 - 0.85 * 1 = 0.15.
    torch::Tensor deltas = torch::tensor({3.0f, 0.0f, 4.0f, 0.0f}).view({2, 2});
    torch::Tensor candidates = torch::eye(3).narrow(0, 0, 2);
    DasRotation rotation = das_rotation(deltas, candidates, 2, 0.05, 0.15);
    ASSERT_EQ(rotation.basis.size(0), 1);
    EXPECT_NEAR(rotation.basis[0][0].item<float>(), 0.6f, 1e-5f);
    EXPECT_NEAR(rotation.basis[0][1].item<float>(), 0.8f, 1e-5f);
    EXPECT_NEAR(rotation.basis[0][2].item<float>(), 0.0f, 1e-5f);
    EXPECT_NEAR(rotation.explained[0].item<float>(), 1.0f, 1e-5f);
    EXPECT_NEAR(rotation.sigma[0].item<float>(), 5.0f, 1e-4f);
    EXPECT_NEAR(rotation.scales[0].item<float>(), 0.15f, 1e-5f);
}

TEST(LocateDas, KeepsSecondAxisAboveFloor) {
    // D = diag(3, 1) (candidates e0, e1): explained = 9/10 and 1/10, both >= 0.05, so r = 2,
    // the basis is e0, e1, and the scales are 1 - 0.85 * 0.9 = 0.235 and 1 - 0.085 = 0.915.
    torch::Tensor deltas = torch::tensor({3.0f, 0.0f, 0.0f, 1.0f}).view({2, 2});
    DasRotation rotation = das_rotation(deltas, torch::eye(2), 2, 0.05, 0.15);
    ASSERT_EQ(rotation.basis.size(0), 2);
    EXPECT_NEAR(rotation.basis[0][0].item<float>(), 1.0f, 1e-5f);
    EXPECT_NEAR(rotation.basis[1][1].item<float>(), 1.0f, 1e-5f);
    EXPECT_NEAR(rotation.scales[0].item<float>(), 0.235f, 1e-5f);
    EXPECT_NEAR(rotation.scales[1].item<float>(), 0.915f, 1e-5f);
    // With a floor of 0.2 the second axis (0.1) is dropped.
    EXPECT_EQ(das_rotation(deltas, torch::eye(2), 2, 0.2, 0.15).basis.size(0), 1);
}

TEST(LocateDas, SingleCandidateIsItsOwnBasis) {
    DasRotation rotation = das_rotation(torch::zeros({1, 4}), torch::tensor({0.0f, 2.0f, 0.0f}).view({1, 3}), 2, 0.05, 0.15);
    EXPECT_NEAR(rotation.basis[0][1].item<float>(), 1.0f, 1e-6f);
    EXPECT_NEAR(rotation.scales[0].item<float>(), 0.15f, 1e-6f);
}

TEST(LocateSvd, SignConventionMakesLargestEntryPositive) {
    torch::manual_seed(3);
    torch::Tensor weight = torch::randn({6, 4});
    Svd svd = svd_with_fixed_signs(weight);
    EXPECT_TRUE(torch::allclose(torch::matmul(svd.U * svd.S, svd.Vh), weight, 1e-4, 1e-5));
    Svd flipped = svd_with_fixed_signs(-weight);
    for (int64_t k = 0; k < 4; ++k) {
        torch::Tensor row = svd.Vh[k];
        EXPECT_GT(row[row.abs().argmax()].item<float>(), 0.0f) << "row " << k;
        // W and -W have the same right singular vectors once the sign is fixed.
        EXPECT_TRUE(torch::allclose(row, flipped.Vh[k], 1e-4, 1e-5)) << "row " << k;
    }
}

TEST(LocateComposite, WeightsNormalisedComponents) {
    // norm01 maps each component to [0, 1]: wanda (1, 3) -> (0, 1), |atp| (2, 1) -> (1, 0),
    // cone (0.5, 0.5) -> (0, 0). Composite = (0.35, 0.45).
    torch::Tensor composite = composite_score(torch::tensor({1.0f, 3.0f}), torch::tensor({-2.0f, 1.0f}),
                                              torch::tensor({0.5f, 0.5f}), CompositeWeights{});
    EXPECT_NEAR(composite[0].item<float>(), 0.35f, 1e-6f);
    EXPECT_NEAR(composite[1].item<float>(), 0.45f, 1e-6f);
}

TEST(LocateConfigTest, RejectsUnknownKeyAndWrongType) {
    EXPECT_EQ(LocateConfig::from_json(nlohmann::json::object(), "test").knee_max_fraction, 0.30);
    LocateConfig config = LocateConfig::from_json({{"causal_max_candidates", 5}, {"pooling", "mean"}}, "test");
    EXPECT_EQ(config.causal_max_candidates, 5);
    EXPECT_EQ(config.pooling, "mean");
    try {
        LocateConfig::from_json({{"knee_fraction", 0.2}}, "cfg.json");
        FAIL() << "unknown key accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("knee_fraction"), std::string::npos) << e.what();
    }
    try {
        LocateConfig::from_json({{"batch_size", "8"}}, "cfg.json");
        FAIL() << "string for an integer accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("batch_size"), std::string::npos) << e.what();
    }
    EXPECT_THROW(LocateConfig::from_json({{"pooling", "max"}}, "cfg.json"), Error);
    EXPECT_THROW(LocateConfig::from_json({{"sacred_fraction", 1.5}}, "cfg.json"), Error);
    EXPECT_THROW(LocateConfig::from_json({{"seed", -1}}, "cfg.json"), Error);
    EXPECT_THROW(LocateConfig::from_json({{"projections", {"gate_proj", "lm_head"}}}, "cfg.json"), Error);
}

TEST(LocateConfigTest, RoundTripsThroughJson) {
    LocateConfig config;
    config.seed = 7;
    config.skip_layers = {2, 3};
    LocateConfig copy = LocateConfig::from_json(config.to_json(), "round trip");
    EXPECT_EQ(copy.to_json(), config.to_json());
}

}  // namespace
}  // namespace sz

namespace sz {
namespace {

// Tiny-model fixture: writes the model and a small corpus folder, and plants a cadence
// direction in one layer's gate_proj input space.
class LocatePipeline : public ::testing::Test {
protected:
    static constexpr int64_t kPlantedLayer = 2;

    void SetUp() override {
        dir_ = test::make_temp_dir("locate");
        model_path_ = test::write_tiny_gemma3(dir_ + "/tiny.gguf");
        corpus_dir_ = dir_ + "/corpora";
        std::filesystem::create_directories(corpus_dir_);
        write_corpora();
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    static std::string row(const std::string& user, const std::string& reply) {
        nlohmann::json messages = nlohmann::json::array();
        messages.push_back({{"role", "user"}, {"content", user}});
        if (!reply.empty()) {
            messages.push_back({{"role", "assistant"}, {"content", reply}});
        }
        return nlohmann::json{{"messages", messages}}.dump() + "\n";
    }

    void write_corpora() {
        const std::vector<std::string> prompts = {"how do i fix it", "is this good", "what is the plan", "tell me more",
                                                  "which one", "why not", "can you check", "is it done",
                                                  "where is it", "what now", "any idea", "help me"};
        std::ofstream corp(corpus_dir_ + "/corp.jsonl");
        std::ofstream authentic(corpus_dir_ + "/authentic.jsonl");
        std::ofstream capability(corpus_dir_ + "/capability_test.jsonl");
        for (size_t i = 0; i < prompts.size(); ++i) {
            corp << row(prompts[i], i % 2 == 0 ? "Great question! Here is the answer." : "Certainly! Here is the plan.");
            authentic << row(prompts[i], i % 2 == 0 ? "nah, 42 works 0k" : "yep 7 on it, 9 too");
            capability << row("2 plus " + std::to_string(i) + " is", "");
        }
    }

    LocateConfig small_config() const {
        LocateConfig config;
        config.corpus_dir = corpus_dir_;
        config.max_prompts_per_class = 12;
        config.batch_size = 4;
        config.layer_ranking = "all";
        config.causal_max_candidates = 8;
        config.fence_corpora = {"capability_test"};
        config.fence_max_prompts = 4;
        config.seed = 11;
        return config;
    }

    // Pooled gate_proj inputs of layer `layer` over the target tokens of each row.
    torch::Tensor mean_gate_input(LoadedModel& loaded, const std::string& corpus) {
        std::vector<RenderedRow> rows;
        for (const auto& messages : read_corpus(corpus_dir_ + "/" + corpus + ".jsonl", 0)) {
            rows.push_back(render_row(messages, *loaded.chat_template, *loaded.tokenizer, 256));
        }
        TokenBatch batch = make_batch(rows, 0, static_cast<int64_t>(rows.size()), 0);
        torch::Tensor captured;
        Hooks hooks;
        hooks.add(projection_input_hook(kPlantedLayer, Projection::Gate), [&](const torch::Tensor& x, const std::string&) {
            captured = x.detach().clone();
            return x;
        });
        ForwardOptions options;
        options.attention_mask = batch.mask;
        options.hooks = &hooks;
        torch::NoGradGuard no_grad;
        loaded.model->forward(batch.tokens, options);
        torch::Tensor weights = batch.targets.to(torch::kFloat32).unsqueeze(-1);
        return (captured * weights).sum(torch::IntArrayRef{0, 1}) / weights.sum();
    }

    // Makes v an exact right singular vector of gate_proj and up_proj in kPlantedLayer, read by
    // eight MLP neurons whose down_proj column writes the direction that raises the logits of
    // corp reply tokens over authentic ones. v separates the two replies' gate inputs, so
    // removing v from the input costs corp likelihood and helps authentic likelihood.
    torch::Tensor plant_direction(LoadedModel& loaded) {
        loaded.model->convert_weights(torch::kFloat32);
        torch::Tensor v = mean_gate_input(loaded, "corp") - mean_gate_input(loaded, "authentic");
        v = v / v.norm();

        torch::Tensor embedding;
        loaded.model->for_each_parameter([&](const std::string& name, torch::Tensor& tensor) {
            if (name == "model.embed_tokens.weight") {
                embedding = tensor.detach();
            }
        });
        auto token_mean = [&](const std::string& text) {
            std::vector<int32_t> ids = loaded.tokenizer->encode(text, false, false);
            return embedding.index_select(0, torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()))).mean(0);
        };
        torch::Tensor writes = token_mean("Great question! Here is the answer. Certainly! Here is the plan.") -
                               token_mean("nah, 42 works 0k yep 7 on it, 9 too");
        writes = writes / writes.norm();

        const int64_t n_ff = loaded.model->config().n_ff;
        torch::Tensor u = torch::zeros({n_ff});
        u.narrow(0, 0, 8).fill_(1.0f / std::sqrt(8.0f));
        torch::NoGradGuard no_grad;
        auto plant = [&](Projection p, float singular_value) {
            torch::Tensor& w = loaded.model->projection_weight(kPlantedLayer, p);
            torch::Tensor left = torch::eye(n_ff) - torch::outer(u, u);
            torch::Tensor right = torch::eye(v.size(0)) - torch::outer(v, v);
            w.copy_(torch::matmul(torch::matmul(left, w), right) + singular_value * torch::outer(u, v));
        };
        plant(Projection::Gate, 24.0f);
        plant(Projection::Up, 8.0f);
        torch::Tensor& down = loaded.model->projection_weight(kPlantedLayer, Projection::Down);
        down.narrow(1, 0, 8).copy_(20.0f * writes.unsqueeze(1).expand({writes.size(0), 8}) / std::sqrt(8.0f));
        return v;
    }

    static std::string read_bytes(const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }

    std::string dir_;
    std::string model_path_;
    std::string corpus_dir_;
};

TEST_F(LocatePipeline, BatchMasksPaddingAndFindsLastToken) {
    LoadedModel loaded = load_model(model_path_);
    std::vector<RenderedRow> rows;
    for (const auto& messages : read_corpus(corpus_dir_ + "/corp.jsonl", 2)) {
        rows.push_back(render_row(messages, *loaded.chat_template, *loaded.tokenizer, 256));
    }
    std::vector<RenderedRow> capability;
    for (const auto& messages : read_corpus(corpus_dir_ + "/capability_test.jsonl", 1)) {
        capability.push_back(render_row(messages, *loaded.chat_template, *loaded.tokenizer, 256));
    }
    EXPECT_EQ(capability[0].first_target, 1);
    rows.push_back(capability[0]);
    TokenBatch batch = make_batch(rows, 0, 3, loaded.tokenizer->vocab().pad_id);
    const int64_t T = batch.tokens.size(1);
    for (int64_t b = 0; b < 3; ++b) {
        const int64_t n = static_cast<int64_t>(rows[b].tokens.size());
        EXPECT_EQ(batch.mask[b].sum().item<int64_t>(), n) << "row " << b;
        EXPECT_EQ(batch.last[b].item<int64_t>(), T - 1) << "row " << b;
        EXPECT_EQ(batch.targets[b].sum().item<int64_t>(), n - rows[b].first_target) << "row " << b;
        // Left padding: no target and no real token before T - n.
        EXPECT_EQ(batch.mask[b].narrow(0, 0, T - n).sum().item<int64_t>(), 0) << "row " << b;
    }
    // The reply of a corp row starts after "<start_of_turn>model\n" and ends with "<end_of_turn>\n".
    std::string reply = loaded.tokenizer->decode(
        std::vector<int32_t>(rows[0].tokens.begin() + rows[0].first_target, rows[0].tokens.end()), true);
    EXPECT_EQ(reply, "Great question! Here is the answer.<end_of_turn>\n");
}

TEST_F(LocatePipeline, FindsPlantedDirection) {
    LoadedModel loaded = load_model(model_path_);
    torch::Tensor v = plant_direction(loaded);
    const std::string out = dir_ + "/atlas";
    LocateConfig config = small_config();
    config.causal_max_candidates = 20;
    Atlas atlas = locate({*loaded.model, *loaded.tokenizer, *loaded.chat_template, "tiny"}, config, out);

    const ProjectionAtlas* planted = atlas.find(kPlantedLayer, Projection::Gate);
    ASSERT_NE(planted, nullptr);
    const float planted_cosine = torch::matmul(planted->basis, v).abs().max().item<float>();
    EXPECT_GE(planted_cosine, 0.9f);

    // The planted direction's ablation effect dwarfs every direction of the control layers.
    const float planted_causal = planted->component_scores.at("causal").max().item<float>();
    const float planted_atp = planted->component_scores.at("atp").abs().max().item<float>();
    float control_causal = 0.0f;
    float control_atp = 0.0f;
    for (const ProjectionAtlas& p : atlas.projections) {
        if (p.layer == kPlantedLayer) {
            continue;
        }
        control_causal = std::max(control_causal, p.component_scores.at("causal").max().item<float>());
        control_atp = std::max(control_atp, p.component_scores.at("atp").abs().max().item<float>());
    }
    std::printf("planted |cos| %.4f, causal %.4f (control max %.4f), |atp| %.4f (control max %.4f)\n",
                planted_cosine, planted_causal, control_causal, planted_atp, control_atp);
    EXPECT_LT(control_causal, 0.25f * planted_causal);
    // NOTE: |atp| is printed, not asserted. The planted neurons dominate the MLP output, and
    // the post-feedforward RMSNorm makes that output scale-invariant, so the first-order
    // estimate of removing v is small even though the ablation itself is large.

    // The atlas reads back with the same tensors and matches the model it was made for.
    Atlas reread = Atlas::read(out);
    ASSERT_EQ(reread.projections.size(), atlas.projections.size());
    const ProjectionAtlas* reread_planted = reread.find(kPlantedLayer, Projection::Gate);
    ASSERT_NE(reread_planted, nullptr);
    EXPECT_TRUE(torch::equal(reread_planted->basis, planted->basis));
    EXPECT_TRUE(torch::equal(reread_planted->selected, planted->selected));
    EXPECT_NO_THROW(reread.check_model(model_identity(*loaded.model)));
    LoadedModel unplanted = load_model(model_path_);
    EXPECT_THROW(reread.check_model(model_identity(*unplanted.model)), Error);
}

TEST_F(LocatePipeline, SameSeedGivesIdenticalAtlasAndResumes) {
    LocateConfig config = small_config();
    config.causal_max_candidates = 3;
    std::vector<std::string> outs = {dir_ + "/first", dir_ + "/second"};
    for (const std::string& out : outs) {
        LoadedModel loaded = load_model(model_path_);
        plant_direction(loaded);
        locate({*loaded.model, *loaded.tokenizer, *loaded.chat_template, "tiny"}, config, out);
    }
    for (const char* name : {"atlas.safetensors", "atlas.json"}) {
        const std::string first = read_bytes(outs[0] + "/" + name);
        EXPECT_FALSE(first.empty()) << name;
        EXPECT_EQ(first, read_bytes(outs[1] + "/" + name)) << name;
    }

    // A rerun into the first folder takes every cached stage (all but the SVD) and writes the
    // same bytes; a changed config recomputes.
    LoadedModel loaded = load_model(model_path_);
    plant_direction(loaded);
    std::vector<StageReport> reports;
    locate({*loaded.model, *loaded.tokenizer, *loaded.chat_template, "tiny"}, config, outs[0],
           [&](const StageReport& report) { reports.push_back(report); });
    ASSERT_EQ(reports.size(), 10u);
    for (const StageReport& report : reports) {
        EXPECT_EQ(report.from_cache, report.stage != 2) << "stage " << report.stage;
    }
    EXPECT_EQ(read_bytes(outs[0] + "/atlas.safetensors"), read_bytes(outs[1] + "/atlas.safetensors"));

    // The same corpus files in another folder keep the cache: the key hashes their contents,
    // not their path.
    LocateConfig moved = config;
    moved.corpus_dir = dir_ + "/moved-corpora";
    std::filesystem::copy(corpus_dir_, moved.corpus_dir);
    reports.clear();
    locate({*loaded.model, *loaded.tokenizer, *loaded.chat_template, "tiny"}, moved, outs[0],
           [&](const StageReport& report) { reports.push_back(report); });
    ASSERT_EQ(reports.size(), 10u);
    for (const StageReport& report : reports) {
        EXPECT_EQ(report.from_cache, report.stage != 2) << "moved corpus, stage " << report.stage;
    }

    config.knee_max_fraction = 0.2;
    reports.clear();
    locate({*loaded.model, *loaded.tokenizer, *loaded.chat_template, "tiny"}, config, outs[0],
           [&](const StageReport& report) { reports.push_back(report); });
    EXPECT_FALSE(reports[0].from_cache);
}

TEST_F(LocatePipeline, ResumedPassMatchesFullPass) {
    LoadedModel loaded = load_model(model_path_);
    loaded.model->convert_weights(torch::kFloat32);
    std::vector<RenderedRow> rows;
    for (const auto& messages : read_corpus(corpus_dir_ + "/corp.jsonl", 3)) {
        rows.push_back(render_row(messages, *loaded.chat_template, *loaded.tokenizer, 256));
    }
    for (const auto& messages : read_corpus(corpus_dir_ + "/authentic.jsonl", 2)) {
        rows.push_back(render_row(messages, *loaded.chat_template, *loaded.tokenizer, 256));
    }
    const TokenBatch batch = make_batch(rows, 0, static_cast<int64_t>(rows.size()), 0);
    const ResumableBatch losses(*loaded.model, batch, {1, 2});
    const ResumableBatch logits(*loaded.model, batch, {1, 2}, /*last_logits=*/true);

    torch::manual_seed(5);
    torch::NoGradGuard no_grad;
    ForwardOptions plain;
    MaskedLoss clean = target_loss(*loaded.model, batch, plain);
    EXPECT_NEAR(losses.clean_loss(), clean.sum.item<double>() / clean.count, 1e-6);

    const std::vector<std::pair<int64_t, Projection>> edits = {{2, Projection::Gate}, {1, Projection::Down}};
    for (const auto& [layer, projection] : edits) {
        const int64_t width = loaded.model->projection_weight(layer, projection).size(1);
        torch::Tensor direction = torch::randn({width});
        direction = direction / direction.norm();
        Hooks hooks;
        hooks.add(projection_input_hook(layer, projection), [direction](const torch::Tensor& x, const std::string&) {
            return x - torch::matmul(x, direction).unsqueeze(-1) * direction;
        });
        ForwardOptions full;
        full.hooks = &hooks;
        MaskedLoss ablated = target_loss(*loaded.model, batch, full);
        const double full_loss = ablated.sum.item<double>() / ablated.count;
        EXPECT_NEAR(losses.loss(layer, hooks), full_loss, 1e-5) << "layer " << layer;
        // The edit must change the loss, or the comparison would not test the resumed pass.
        EXPECT_GT(std::abs(full_loss - losses.clean_loss()), 1e-6) << "layer " << layer;

        full.attention_mask = batch.mask;
        full.last_position_only = true;
        torch::Tensor full_logits = loaded.model->forward(batch.tokens, full).squeeze(1);
        EXPECT_TRUE(torch::allclose(logits.last_logits(layer, hooks), full_logits, 1e-4, 1e-4)) << "layer " << layer;
    }
}

TEST_F(LocatePipeline, CausalScoresMatchPlainForwards) {
    LoadedModel loaded = load_model(model_path_);
    plant_direction(loaded);
    LocateConfig config = small_config();
    config.causal_max_candidates = 4;
    config.das = false;
    config.fence = false;
    config.heldout_check = false;
    Atlas atlas = locate({*loaded.model, *loaded.tokenizer, *loaded.chat_template, "tiny"}, config, dir_ + "/atlas");

    // Score every candidate of the planted projection with two plain full passes per class.
    auto rows_of = [&](const std::string& name) {
        std::vector<RenderedRow> rows;
        for (const auto& messages : read_corpus(corpus_dir_ + "/" + name + ".jsonl", config.causal_batch)) {
            rows.push_back(render_row(messages, *loaded.chat_template, *loaded.tokenizer, config.max_length));
        }
        return make_batch(rows, 0, static_cast<int64_t>(rows.size()), loaded.tokenizer->vocab().pad_id);
    };
    const TokenBatch corp = rows_of("corp");
    const TokenBatch authentic = rows_of("authentic");
    torch::NoGradGuard no_grad;
    auto mean_loss = [&](const TokenBatch& batch, const Hooks* hooks) {
        ForwardOptions options;
        options.hooks = hooks;
        MaskedLoss loss = target_loss(*loaded.model, batch, options);
        return loss.sum.item<double>() / loss.count;
    };
    const double clean_corp = mean_loss(corp, nullptr);
    const double clean_authentic = mean_loss(authentic, nullptr);

    const ProjectionAtlas* planted = atlas.find(kPlantedLayer, Projection::Gate);
    ASSERT_NE(planted, nullptr);
    const torch::Tensor causal = planted->component_scores.at("causal");
    const Svd svd = svd_with_fixed_signs(loaded.model->projection_weight(kPlantedLayer, Projection::Gate));
    int64_t compared = 0;
    for (int64_t k = 0; k < causal.size(0); ++k) {
        if (causal[k].item<float>() == 0.0f) {
            continue;   // not a candidate
        }
        torch::Tensor direction = svd.Vh[k];
        Hooks hooks;
        hooks.add(projection_input_hook(kPlantedLayer, Projection::Gate),
                  [direction](const torch::Tensor& x, const std::string&) {
                      return x - torch::matmul(x, direction).unsqueeze(-1) * direction;
                  });
        const double expected = (clean_authentic - mean_loss(authentic, &hooks)) + (mean_loss(corp, &hooks) - clean_corp);
        EXPECT_NEAR(causal[k].item<float>(), expected, 1e-4) << "direction " << k;
        ++compared;
    }
    EXPECT_GT(compared, 0);
}

TEST_F(LocatePipeline, HeldOutCheckMatchesSurgery) {
    LoadedModel loaded = load_model(model_path_);
    plant_direction(loaded);
    LocateConfig config = small_config();
    config.max_prompts_per_class = 8;   // rows 9 to 12 are held out
    config.causal_max_candidates = 4;
    const std::string out = dir_ + "/atlas";
    Atlas atlas = locate({*loaded.model, *loaded.tokenizer, *loaded.chat_template, "tiny"}, config, out);
    ASSERT_TRUE(atlas.metadata.contains("heldout_check"));
    const nlohmann::json& check = atlas.metadata["heldout_check"];

    // Reference: token-weighted mean CE of rows 9..12, on the model before and after the weight
    // surgery that training applies with the same atlas.
    auto heldout_loss = [&](const std::string& name) {
        std::vector<RenderedRow> rows;
        int64_t index = 0;
        for (const auto& messages : read_corpus(corpus_dir_ + "/" + name + ".jsonl", 0)) {
            if (index++ >= config.max_prompts_per_class) {
                rows.push_back(render_row(messages, *loaded.chat_template, *loaded.tokenizer, config.max_length));
            }
        }
        torch::NoGradGuard no_grad;
        MaskedLoss loss = target_loss(*loaded.model, make_batch(rows, 0, static_cast<int64_t>(rows.size()),
                                                                loaded.tokenizer->vocab().pad_id),
                                      ForwardOptions{});
        return std::make_pair(loss.sum.item<double>() / loss.count, static_cast<int64_t>(rows.size()));
    };
    const auto [clean_corp, corp_rows] = heldout_loss("corp");
    const auto [clean_authentic, authentic_rows] = heldout_loss("authentic");
    apply_surgery(*loaded.model, atlas);
    const double ablated_corp = heldout_loss("corp").first;
    const double ablated_authentic = heldout_loss("authentic").first;

    EXPECT_EQ(check["corp"]["rows"].get<int64_t>(), corp_rows);
    EXPECT_EQ(check["authentic"]["rows"].get<int64_t>(), authentic_rows);
    EXPECT_NEAR(check["corp"]["clean_ce"].get<double>(), clean_corp, 1e-4);
    EXPECT_NEAR(check["authentic"]["clean_ce"].get<double>(), clean_authentic, 1e-4);
    EXPECT_NEAR(check["corp"]["ablated_ce"].get<double>(), ablated_corp, 1e-3);
    EXPECT_NEAR(check["authentic"]["ablated_ce"].get<double>(), ablated_authentic, 1e-3);
    // The planted direction raises corp likelihood and lowers authentic likelihood, so removing
    // it moves both the way the method claims, which random directions do far less.
    EXPECT_GT(ablated_corp, clean_corp);
    EXPECT_LT(ablated_authentic, clean_authentic);
    EXPECT_TRUE(check["as_claimed"].get<bool>());
    EXPECT_LT(std::abs(check["corp"]["random_control_change"].get<double>()), ablated_corp - clean_corp);
}

TEST_F(LocatePipeline, LayerAxesMatchDirectCapture) {
    {
        std::ofstream neutral(corpus_dir_ + "/neutral.jsonl");
        for (const std::string& prompt : {"the sky is", "water boils at", "two plus two", "paris is in"}) {
            neutral << row(prompt, "");
        }
    }
    LoadedModel loaded = load_model(model_path_);
    plant_direction(loaded);
    LocateConfig config = small_config();
    config.causal_gate = false;
    config.das = false;
    config.fence = false;
    config.heldout_check = false;
    Atlas atlas = locate({*loaded.model, *loaded.tokenizer, *loaded.chat_template, "tiny"}, config, dir_ + "/atlas");
    const nlohmann::json& axes = atlas.metadata.at("layer_axes");
    ASSERT_FALSE(axes.empty());

    // Reference: the residual leaving each layer at the last token of every row, from one
    // full pass per corpus (rows are left-padded, so the last column).
    auto last_residuals = [&](const std::string& name, int64_t layer) {
        std::vector<RenderedRow> rows;
        for (const auto& messages : read_corpus(corpus_dir_ + "/" + name + ".jsonl", 0)) {
            rows.push_back(render_row(messages, *loaded.chat_template, *loaded.tokenizer, config.max_length));
        }
        TokenBatch batch = make_batch(rows, 0, static_cast<int64_t>(rows.size()), loaded.tokenizer->vocab().pad_id);
        torch::Tensor captured;
        Hooks hooks;
        hooks.add(fmt::format("blocks.{}.hook_resid_post", layer), [&](const torch::Tensor& x, const std::string&) {
            captured = x.select(1, x.size(1) - 1).to(torch::kFloat64);
            return x;
        });
        ForwardOptions options;
        options.attention_mask = batch.mask;
        options.hooks = &hooks;
        torch::NoGradGuard no_grad;
        loaded.model->forward(batch.tokens, options);
        return captured;
    };
    for (const nlohmann::json& entry : axes) {
        const int64_t layer = entry.at("layer").get<int64_t>();
        const torch::Tensor corp = last_residuals("corp", layer);
        const torch::Tensor authentic = last_residuals("authentic", layer);
        const torch::Tensor neutral = last_residuals("neutral", layer);
        const torch::Tensor gap = corp.mean(0) - authentic.mean(0);
        const torch::Tensor axis = gap / gap.norm();
        const double authentic_mean = torch::matmul(authentic, axis).mean().item<double>();
        const double corp_mean = torch::matmul(corp, axis).mean().item<double>();
        const double midpoint = 0.5 * (corp_mean + authentic_mean);
        const double accuracy = 0.5 * ((torch::matmul(corp, axis) > midpoint).to(torch::kFloat64).mean().item<double>() +
                                       (torch::matmul(authentic, axis) < midpoint).to(torch::kFloat64).mean().item<double>());
        const double position = (torch::matmul(neutral, axis).mean().item<double>() - authentic_mean) / gap.norm().item<double>();
        EXPECT_NEAR(entry.at("class_mean_gap").get<double>(), gap.norm().item<double>(),
                    1e-3 * gap.norm().item<double>()) << "layer " << layer;
        EXPECT_NEAR(entry.at("classifier_accuracy").get<double>(), accuracy, 1e-6) << "layer " << layer;
        EXPECT_NEAR(entry.at("neutral_position").get<double>(), position, 1e-3) << "layer " << layer;
    }
}

TEST(LocateConfigTest, ShippedDefaultsAndDocsMatchCode) {
    const nlohmann::json defaults = LocateConfig().to_json();
    std::ifstream in(test::source_dir() + "/configs/locate.json");
    ASSERT_TRUE(in) << "configs/locate.json not found under " << test::source_dir();
    EXPECT_EQ(nlohmann::json::parse(in), defaults) << "regenerate with: subzero locate --print-config";
    const auto& docs = LocateConfig::key_docs();
    ASSERT_EQ(docs.size(), defaults.size());
    for (const auto& [key, doc] : docs) {
        EXPECT_TRUE(defaults.contains(key)) << key;
        EXPECT_FALSE(doc.empty()) << key;
    }
}

}  // namespace
}  // namespace sz

namespace sz {
namespace {

// Runs the whole pipeline on the real Gemma 3 270M with a reduced config (one layer, gate_proj
// only, four rows per class). Opt-in because it takes about a minute on two CPU cores.
TEST(LocateRealModel, ReducedConfigSmoke) {
    if (std::getenv("SUBZERO_LOCATE_REAL") == nullptr) {
        GTEST_SKIP() << "set SUBZERO_LOCATE_REAL=1 to run locate on the real model";
    }
    LoadedModel loaded = load_model(test::real_model_path());
    LocateConfig config;
    config.corpus_dir = test::source_dir() + "/data/corpora";
    config.max_prompts_per_class = 4;
    config.max_length = 96;
    config.batch_size = 2;
    config.layer_ranking = "last";
    config.sacred_fraction = 2.0 / static_cast<double>(loaded.model->config().n_layer);
    config.projections = {"gate_proj"};
    config.causal_batch = 2;
    config.causal_max_candidates = 2;
    config.das_batch = 2;
    config.fence_corpora = {"capability_facts"};
    config.fence_max_prompts = 2;
    config.fence_batch = 2;
    config.heldout_max_prompts = 2;
    const std::string out = test::make_temp_dir("locate-real");
    std::vector<StageReport> reports;
    Atlas atlas = locate({*loaded.model, *loaded.tokenizer, *loaded.chat_template, "gemma3-270m"}, config, out,
                         [&](const StageReport& report) { reports.push_back(report); });
    EXPECT_EQ(reports.size(), 10u);
    ASSERT_FALSE(atlas.projections.empty());
    const ProjectionAtlas& p = atlas.projections.front();
    EXPECT_EQ(p.basis.size(1), loaded.model->config().n_embd);
    EXPECT_TRUE(torch::allclose(torch::matmul(p.basis, p.basis.t()), torch::eye(p.basis.size(0)), 1e-4, 1e-4));
    EXPECT_NO_THROW(Atlas::read(out));
    EXPECT_TRUE(atlas.metadata.contains("heldout_check"));
    std::filesystem::remove_all(out);
}

}  // namespace
}  // namespace sz
