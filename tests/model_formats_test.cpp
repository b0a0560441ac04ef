// The same tiny Gemma 3 loaded from three places gives the same logits: a float32 GGUF, an
// f16 GGUF (16-bit kernel path), and a Hugging Face folder written by subzero's export
// (config.json, safetensors with HF's zero-centred norm weights, tokenizer.model).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "export/hf_export.h"
#include "formats/safetensors.h"
#include "model/gemma3.h"
#include "model/loader.h"
#include "test_support.h"
#include "tiny_model.h"

namespace sz {
namespace {

class ModelFormats : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = test::make_temp_dir("sz-formats");
        gguf_path_ = test::write_tiny_gemma3(dir_ + "/tiny.gguf");
        torch::manual_seed(9);
        tokens_ = torch::randint(7, 300, {2, 24}, torch::kInt64);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string dir_;
    std::string gguf_path_;
    torch::Tensor tokens_;
};

TEST_F(ModelFormats, HuggingFaceFolderMatchesGguf) {
    torch::NoGradGuard no_grad;
    LoadedModel from_gguf = load_model(gguf_path_);
    // subzero's own Hugging Face export, in float32 so that only the norm offset rounds.
    HfExportOptions options;
    options.dir = dir_ + "/hf";
    options.type = WeightType::F32;
    export_hf_folder(*from_gguf.model, from_gguf.tokenizer->vocab(), *from_gguf.chat_template, options);
    const std::string& hf_dir = options.dir;

    LoadedModel from_hf = load_model(hf_dir);
    EXPECT_EQ(from_hf.format, "safetensors");
    EXPECT_EQ(from_hf.model->config().layer_kinds, from_gguf.model->config().layer_kinds);
    torch::Tensor a = from_gguf.model->forward(tokens_, {});
    torch::Tensor b = from_hf.model->forward(tokens_, {});
    // g = w - 1 then 1 + g rounds once in float32 each way.
    EXPECT_LT((a - b).abs().max().item<float>(), 1e-4);

    for (const char* text : {"the cat sat on the mat", "hello  world\nit is 42!", "<start_of_turn>user\nhi"}) {
        EXPECT_EQ(from_hf.tokenizer->encode(text, true, true), from_gguf.tokenizer->encode(text, true, true)) << text;
    }
}

TEST_F(ModelFormats, HalfPrecisionFileUsesExactWeights) {
    torch::NoGradGuard no_grad;
    // Re-write the tiny model with F16 matrices, as an f16 export would.
    LoadedModel reference = load_model(gguf_path_);
    test::TinyModelOptions options;
    options.matrix_type = GgmlType::F16;
    std::string f16_path = test::write_tiny_gemma3(dir_ + "/tiny-f16.gguf", options);
    LoadedModel half = load_model(f16_path);
    auto& weights = static_cast<Gemma3Model&>(*half.model).weights();
    EXPECT_EQ(weights.layers[0].w_up.scalar_type(), torch::kHalf);
    EXPECT_EQ(weights.layers[0].attn_norm.scalar_type(), torch::kFloat32);

    torch::Tensor with_kernel = half.model->forward(tokens_, {});
    half.model->convert_weights(torch::kFloat32);
    torch::Tensor with_blas = half.model->forward(tokens_, {});
    EXPECT_LT((with_kernel - with_blas).abs().max().item<float>(), 1e-4);
    // And f16 rounding of the weights moves logits only a little from the float32 model.
    EXPECT_LT((with_blas - reference.model->forward(tokens_, {})).abs().max().item<float>(), 5e-2);
}

TEST_F(ModelFormats, MissingConfigNamed) {
    std::string hf_dir = dir_ + "/empty";
    std::filesystem::create_directories(hf_dir);
    try {
        load_model(hf_dir);
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace sz
