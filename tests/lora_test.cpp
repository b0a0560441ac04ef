// LoRA adapters and the subspace lock on the tiny Gemma 3.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/loader.h"
#include "test_support.h"
#include "tiny_model.h"
#include "train/lora.h"
#include "train/subspace_lock.h"
#include "train/surgery.h"

namespace sz {
namespace {

class LoraTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new std::string(test::make_temp_dir("subzero-lora"));
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

    // Fills every B (and perturbs A) so that the adapter changes the output.
    static void randomize(LoraAdapter& adapter, uint64_t seed) {
        torch::NoGradGuard no_grad;
        torch::manual_seed(seed);
        for (torch::Tensor& p : adapter.parameters()) {
            p.copy_(torch::randn_like(p) * 0.1);
        }
    }

    static torch::Tensor tokens() { return torch::tensor({{2, 40, 41, 42, 300, 301, 77, 5, 9, 12}}, torch::kInt64); }

    static std::string* dir_;
    static std::string* path_;
    LoadedModel loaded_;
};

std::string* LoraTest::dir_ = nullptr;
std::string* LoraTest::path_ = nullptr;

TEST_F(LoraTest, InitialisationFollowsPeft) {
    LoraConfig config;
    config.rank = 4;
    config.alpha = 8;
    LoraAdapter adapter(*loaded_.model, config);
    EXPECT_EQ(adapter.pairs().size(), 6u * 7u);
    EXPECT_DOUBLE_EQ(adapter.scale(), 2.0);
    for (const LoraPair& pair : adapter.pairs()) {
        const double bound = 1.0 / std::sqrt(static_cast<double>(pair.a.size(1)));
        EXPECT_LE(pair.a.abs().max().item<double>(), bound);
        EXPECT_GT(pair.a.abs().max().item<double>(), 0.5 * bound);
        EXPECT_EQ(pair.b.abs().max().item<double>(), 0.0);
        EXPECT_TRUE(pair.a.requires_grad());
    }

    config.use_rslora = true;
    EXPECT_DOUBLE_EQ(config.scale(), 4.0);
}

TEST_F(LoraTest, TargetsAndLayersSelectPairs) {
    LoraConfig config;
    config.targets = {Projection::V, Projection::Q};
    config.layers = {1, 4};
    LoraAdapter adapter(*loaded_.model, config);
    ASSERT_EQ(adapter.pairs().size(), 4u);
    EXPECT_NE(adapter.find(1, Projection::Q), nullptr);
    EXPECT_NE(adapter.find(4, Projection::V), nullptr);
    EXPECT_EQ(adapter.find(0, Projection::Q), nullptr);
    EXPECT_EQ(adapter.find(1, Projection::K), nullptr);

    config.layers = {6};
    EXPECT_THROW(LoraAdapter(*loaded_.model, config), Error);
}

TEST_F(LoraTest, ForwardMatchesMergedWeights) {
    LoraConfig config;
    config.rank = 4;
    config.dropout = 0.0;
    LoraAdapter adapter(*loaded_.model, config);
    randomize(adapter, 5);

    torch::NoGradGuard no_grad;
    ForwardOptions base_options;
    torch::Tensor base = loaded_.model->forward(tokens(), base_options);
    ForwardOptions options;
    options.adapter = &adapter;
    torch::Tensor adapted = loaded_.model->forward(tokens(), options);
    EXPECT_GT((adapted - base).abs().max().item<double>(), 1e-2);

    adapter.merge_into(*loaded_.model);
    torch::Tensor merged = loaded_.model->forward(tokens(), base_options);
    EXPECT_LT((merged - adapted).abs().max().item<double>(), 1e-4);
}

TEST_F(LoraTest, DropoutOnlyInTrainingAndSeeded) {
    LoraConfig config;
    config.rank = 4;
    config.dropout = 0.5;
    LoraAdapter adapter(*loaded_.model, config);
    randomize(adapter, 6);
    torch::NoGradGuard no_grad;
    torch::Tensor x = torch::randn({3, 64});

    torch::Tensor eval = adapter.delta(0, Projection::Q, x);
    adapter.set_training(true);
    adapter.reseed_dropout(99);
    torch::Tensor first = adapter.delta(0, Projection::Q, x);
    adapter.reseed_dropout(99);
    torch::Tensor again = adapter.delta(0, Projection::Q, x);
    EXPECT_TRUE(torch::equal(first, again));
    EXPECT_FALSE(torch::allclose(first, eval));
}

TEST_F(LoraTest, PeftSaveLoadRoundTrip) {
    LoraConfig config;
    config.rank = 3;
    config.alpha = 6;
    config.dropout = 0.1;
    config.use_rslora = true;
    config.targets = {Projection::Q, Projection::Down};
    config.base_model_name_or_path = "google/gemma-3-270m-it";
    LoraAdapter adapter(*loaded_.model, config);
    randomize(adapter, 8);

    const std::string out = *dir_ + "/adapter";
    adapter.save(out);

    std::ifstream config_file(out + "/adapter_config.json");
    nlohmann::json saved = nlohmann::json::parse(config_file);
    EXPECT_EQ(saved["r"], 3);
    EXPECT_EQ(saved["lora_alpha"], 6.0);
    EXPECT_EQ(saved["use_rslora"], true);
    EXPECT_EQ(saved["target_modules"], nlohmann::json({"q_proj", "down_proj"}));
    EXPECT_EQ(saved["base_model_name_or_path"], "google/gemma-3-270m-it");

    auto checkpoint = safetensors::Checkpoint::open(out + "/adapter_model.safetensors");
    EXPECT_EQ(checkpoint->tensors().size(), 6u * 2u * 2u);
    const safetensors::TensorInfo* a = checkpoint->find("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->shape, (std::vector<int64_t>{3, 64}));
    const safetensors::TensorInfo* b = checkpoint->find("base_model.model.model.layers.5.mlp.down_proj.lora_B.weight");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->shape, (std::vector<int64_t>{64, 3}));

    LoraAdapter loaded = LoraAdapter::load(out, *loaded_.model);
    EXPECT_EQ(loaded.config().rank, 3);
    EXPECT_DOUBLE_EQ(loaded.scale(), adapter.scale());
    EXPECT_EQ(loaded.config().base_model_name_or_path, "google/gemma-3-270m-it");
    auto expected = adapter.named_parameters();
    auto actual = loaded.named_parameters();
    ASSERT_EQ(actual.size(), expected.size());
    for (const auto& [name, tensor] : expected) {
        EXPECT_TRUE(torch::equal(actual.at(name), tensor)) << name;
    }
}

TEST_F(LoraTest, LoadRejectsMissingTensor) {
    LoraConfig config;
    config.rank = 2;
    config.targets = {Projection::K};
    LoraAdapter adapter(*loaded_.model, config);
    const std::string out = *dir_ + "/adapter-missing";
    adapter.save(out);
    auto named = adapter.named_parameters();
    named.erase(named.begin());
    safetensors::write(out + "/adapter_model.safetensors", named);
    try {
        LoraAdapter::load(out, *loaded_.model);
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("adapter_model.safetensors"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("missing tensor"), std::string::npos) << e.what();
    }
}

// Orthonormal rows [q, in] from a seeded QR.
torch::Tensor lock_rows(int64_t q, int64_t in, uint64_t seed) {
    torch::manual_seed(seed);
    return std::get<0>(torch::linalg_qr(torch::randn({in, q}, torch::kFloat64), "reduced")).t().to(torch::kFloat32);
}

// Runs AdamW with weight decay on random gradients for every parameter; with `lock`, projects
// gradients before and weights after each step as the trainer does.
void run_random_adamw(LoraAdapter& adapter, SubspaceLock* lock, int steps) {
    torch::optim::AdamW optimizer(adapter.parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
    torch::manual_seed(21);
    for (int step = 0; step < steps; ++step) {
        optimizer.zero_grad();
        for (torch::Tensor& p : adapter.parameters()) {
            p.mutable_grad() = torch::randn_like(p);
        }
        if (lock != nullptr) {
            lock->project_gradients();
        }
        optimizer.step();
        if (lock != nullptr) {
            lock->project_weights();
        }
    }
}

Atlas lock_atlas(const CausalLM& model) {
    Atlas atlas;
    uint64_t seed = 100;
    for (int64_t layer : {1, 3}) {
        for (Projection p : {Projection::Q, Projection::Gate, Projection::Down}) {
            ProjectionAtlas entry;
            entry.layer = layer;
            entry.projection = p;
            const int64_t in = p == Projection::Down ? 96 : 64;
            entry.lock_basis = lock_rows(4, in, seed++);
            atlas.projections.push_back(entry);
        }
    }
    return atlas;
}

TEST_F(LoraTest, LockKeepsLeakAtRoundingLevel) {
    LoraConfig config;
    config.rank = 8;
    LoraAdapter adapter(*loaded_.model, config);
    Atlas atlas = lock_atlas(*loaded_.model);
    SubspaceLock lock(adapter, atlas);
    ASSERT_EQ(lock.locked_count(), 6u);

    run_random_adamw(adapter, &lock, 200);
    std::vector<LockLeak> leaks = lock.measure();
    ASSERT_EQ(leaks.size(), 6u);
    for (const LockLeak& leak : leaks) {
        EXPECT_GT(leak.delta_norm, 0.1) << leak.key();
        EXPECT_LE(leak.leak_ratio, 1e-5) << leak.key();
        std::cout << leak.key() << " locked leak ratio " << leak.leak_ratio << "\n";
    }

    const std::string path = *dir_ + "/lock.json";
    lock.write(path);
    std::ifstream file(path);
    nlohmann::json report = nlohmann::json::parse(file);
    EXPECT_EQ(report["projections"].size(), 6u);
    EXPECT_LE(report["max_leak_ratio"].get<double>(), 1e-5);
}

TEST_F(LoraTest, WithoutLockLeakIsLarge) {
    LoraConfig config;
    config.rank = 8;
    LoraAdapter adapter(*loaded_.model, config);
    Atlas atlas = lock_atlas(*loaded_.model);
    run_random_adamw(adapter, nullptr, 200);

    // Measure with a lock built after training; its constructor projects A, so read the
    // leak from the factors before constructing it.
    for (const ProjectionAtlas& entry : atlas.projections) {
        const LoraPair* pair = adapter.find(entry.layer, entry.projection);
        ASSERT_NE(pair, nullptr);
        torch::Tensor delta = pair->delta_weight(adapter.scale()).to(torch::kFloat64);
        torch::Tensor q = entry.lock_basis.t().to(torch::kFloat64);
        double ratio = torch::matmul(delta, q).norm().item<double>() / delta.norm().item<double>();
        EXPECT_GT(ratio, 0.05) << projection_key(entry.layer, entry.projection);
        std::cout << projection_key(entry.layer, entry.projection) << " unlocked leak ratio " << ratio << "\n";
    }
}

TEST_F(LoraTest, LockRejectsNonOrthonormalBasis) {
    LoraConfig config;
    config.rank = 2;
    LoraAdapter adapter(*loaded_.model, config);
    Atlas atlas;
    ProjectionAtlas entry;
    entry.layer = 0;
    entry.projection = Projection::Q;
    entry.lock_basis = torch::ones({2, 64});
    atlas.projections.push_back(entry);
    EXPECT_THROW(SubspaceLock(adapter, atlas), Error);

    atlas.projections[0].lock_basis = lock_rows(2, 63, 1);
    EXPECT_THROW(SubspaceLock(adapter, atlas), Error);
}

TEST_F(LoraTest, LockListsUnadaptedProjections) {
    LoraConfig config;
    config.rank = 2;
    config.targets = {Projection::Q};
    LoraAdapter adapter(*loaded_.model, config);
    Atlas atlas = lock_atlas(*loaded_.model);
    SubspaceLock lock(adapter, atlas);
    EXPECT_EQ(lock.locked_count(), 2u);
    EXPECT_EQ(lock.unadapted().size(), 4u);
}

}  // namespace
}  // namespace sz
