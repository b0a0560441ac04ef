// Export-time merge on the tiny Gemma 3: surgery then adapter equals the merged weights, and
// the combined PEFT adapter, applied to the unmodified base as PEFT would (W + scale_m B'A' with
// scale_m = alpha_pattern / rank_pattern), reproduces them; an atlas of another model is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "export/merge.h"
#include "formats/safetensors.h"
#include "locate/locate.h"
#include "model/loader.h"
#include "test_support.h"
#include "tiny_model.h"

namespace sz {
namespace {

namespace fs = std::filesystem;

torch::Tensor orthonormal_rows(int64_t m, int64_t in, uint64_t seed) {
    torch::manual_seed(seed);
    torch::Tensor q = std::get<0>(torch::linalg_qr(torch::randn({in, m}, torch::kFloat64), "reduced"));
    return q.t().contiguous().to(torch::kFloat32);
}

class MergeTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = test::make_temp_dir("subzero-merge");
        model_path_ = test::write_tiny_gemma3(dir_ + "/tiny.gguf");
        LoadedModel loaded = load_model(model_path_);
        loaded.model->convert_weights(torch::kFloat32);

        // Atlas: two attenuated projections, one of them also adapted by LoRA, one not.
        Atlas atlas;
        for (auto [layer, p, m] : {std::tuple<int64_t, Projection, int64_t>{1, Projection::Gate, 2},
                                   {2, Projection::Down, 3}}) {
            ProjectionAtlas entry;
            entry.layer = layer;
            entry.projection = p;
            const int64_t in = loaded.model->projection_weight(layer, p).size(1);
            entry.basis = orthonormal_rows(m, in, 5 + layer);
            entry.scales = torch::linspace(0.1, 0.6, m, torch::kFloat32);
            entry.lock_basis = entry.basis;
            entry.singular_values = torch::zeros({0}, torch::kFloat32);
            entry.selected = torch::zeros({0}, torch::kInt64);
            entry.composite = torch::zeros({0}, torch::kFloat32);
            atlas.projections.push_back(entry);
        }
        atlas.metadata = {{"model_identity", model_identity(*loaded.model)}};
        atlas.write(dir_ + "/atlas");

        // Adapter on gate and up of every layer, with B made non-zero so that it matters.
        LoraConfig config;
        config.rank = 4;
        config.alpha = 8.0;
        config.targets = {Projection::Gate, Projection::Up};
        config.seed = 3;
        LoraAdapter adapter(*loaded.model, config);
        torch::manual_seed(9);
        {
            torch::NoGradGuard no_grad;
            for (const torch::Tensor& parameter : adapter.parameters()) {
                parameter.normal_(0.0, 0.05);
            }
        }
        adapter.save(dir_ + "/adapter");
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string dir_;
    std::string model_path_;
};

TEST_F(MergeTest, MergedWeightsEqualSurgeryThenAdapter) {
    LoadedModel loaded = load_model(model_path_);
    Tuning tuning = read_tuning(loaded, {dir_ + "/atlas", dir_ + "/adapter"});
    merge_tuning(loaded, tuning);

    // Independent path: surgery alone, then W + scale B A from the saved adapter file.
    LoadedModel expected = load_model(model_path_);
    expected.model->convert_weights(torch::kFloat32);
    apply_surgery(*expected.model, *tuning.atlas);
    std::shared_ptr<safetensors::Checkpoint> file = safetensors::Checkpoint::open(dir_ + "/adapter/adapter_model.safetensors");
    const double scale = 8.0 / 4.0;
    for (int64_t layer = 0; layer < loaded.model->config().n_layer; ++layer) {
        for (Projection p : kAllProjections) {
            torch::Tensor want = expected.model->projection_weight(layer, p).to(torch::kFloat64);
            if (p == Projection::Gate || p == Projection::Up) {
                torch::Tensor a = file->load_float(peft_tensor_name(layer, p, true)).to(torch::kFloat64);
                torch::Tensor b = file->load_float(peft_tensor_name(layer, p, false)).to(torch::kFloat64);
                want = want + scale * torch::matmul(b, a);
            }
            torch::Tensor got = loaded.model->projection_weight(layer, p).to(torch::kFloat64);
            EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << "layer " << layer << " " << projection_name(p);
        }
    }
}

TEST_F(MergeTest, CombinedPeftAdapterReproducesMergeOnBase) {
    LoadedModel loaded = load_model(model_path_);
    loaded.model->convert_weights(torch::kFloat32);
    LoadedModel base = load_model(model_path_);
    base.model->convert_weights(torch::kFloat32);
    Tuning tuning = read_tuning(loaded, {dir_ + "/atlas", dir_ + "/adapter"});
    write_combined_peft_adapter(loaded, tuning, dir_ + "/peft");
    merge_tuning(loaded, tuning);

    std::ifstream config_file(dir_ + "/peft/adapter_config.json");
    nlohmann::json config = nlohmann::json::parse(config_file);
    std::shared_ptr<safetensors::Checkpoint> file = safetensors::Checkpoint::open(dir_ + "/peft/adapter_model.safetensors");
    ASSERT_EQ(config["target_modules"].size(), 2u * loaded.model->config().n_layer + 1)
        << "gate and up of every layer, plus layer 2's down_proj from the atlas";
    for (int64_t layer = 0; layer < loaded.model->config().n_layer; ++layer) {
        for (Projection p : kAllProjections) {
            LoraPair module;
            module.layer = layer;
            module.projection = p;
            const std::string path = module.module_path();
            torch::Tensor want = loaded.model->projection_weight(layer, p).to(torch::kFloat64);
            torch::Tensor got = base.model->projection_weight(layer, p).to(torch::kFloat64);
            if (config["rank_pattern"].contains(path)) {
                const double rank = config["rank_pattern"][path].get<double>();
                const double module_scale = config["alpha_pattern"][path].get<double>() / rank;
                torch::Tensor a = file->load_float("base_model.model." + path + ".lora_A.weight").to(torch::kFloat64);
                torch::Tensor b = file->load_float("base_model.model." + path + ".lora_B.weight").to(torch::kFloat64);
                EXPECT_EQ(a.size(0), static_cast<int64_t>(rank)) << path;
                got = got + module_scale * torch::matmul(b, a);
            }
            EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << path;
        }
    }
}

TEST_F(MergeTest, AtlasOfAnotherModelIsRefused) {
    test::TinyModelOptions other;
    other.seed = 4321;
    const std::string other_path = test::write_tiny_gemma3(dir_ + "/other.gguf", other);
    LoadedModel loaded = load_model(other_path);
    try {
        read_tuning(loaded, {dir_ + "/atlas", ""});
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("does not match model"), std::string::npos) << e.what();
    }
    EXPECT_THROW(read_tuning(loaded, {dir_ + "/no-such-atlas", ""}), Error);
    EXPECT_THROW(read_tuning(loaded, {"", dir_ + "/atlas"}), Error) << "an atlas folder is not an adapter";
}

}  // namespace
}  // namespace sz
