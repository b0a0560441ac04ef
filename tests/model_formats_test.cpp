// The same tiny Gemma 3 loaded from three places gives the same logits: a float32 GGUF, an
// f16 GGUF (16-bit kernel path), and a Hugging Face folder (config.json, safetensors with
// HF's zero-centred norm weights, tokenizer.model).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/gemma3.h"
#include "model/loader.h"
#include "test_support.h"
#include "tiny_model.h"

namespace sz {
namespace {

// Minimal protobuf writer for a sentencepiece ModelProto: pieces and trainer-spec ids.
void put_varint(std::string& out, uint64_t value) {
    while (value >= 0x80) {
        out.push_back(static_cast<char>((value & 0x7F) | 0x80));
        value >>= 7;
    }
    out.push_back(static_cast<char>(value));
}
void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.size());
    out += bytes;
}
std::string sentencepiece_model_bytes(const test::TinyVocab& vocab) {
    std::string model;
    for (size_t i = 0; i < vocab.pieces.size(); ++i) {
        std::string piece;
        put_bytes(piece, 1, vocab.pieces[i]);
        put_varint(piece, (2 << 3) | 5);
        float score = vocab.scores[i];
        piece.append(reinterpret_cast<const char*>(&score), 4);
        put_varint(piece, (3 << 3) | 0);
        // GGUF token types and sentencepiece piece types share numbers 1..6.
        put_varint(piece, static_cast<uint64_t>(vocab.types[i]));
        put_bytes(model, 1, piece);
    }
    std::string trainer;
    for (auto [field, id] : {std::pair{40u, 3}, {41u, 2}, {42u, 1}, {43u, 0}}) {
        put_varint(trainer, (field << 3) | 0);
        put_varint(trainer, id);
    }
    put_bytes(model, 2, trainer);
    return model;
}

void write_hf_folder(Gemma3Model& model, const std::string& dir) {
    const ModelConfig& c = model.config();
    nlohmann::json config = {
        {"architectures", {"Gemma3ForCausalLM"}},
        {"model_type", "gemma3_text"},
        {"vocab_size", c.n_vocab},
        {"hidden_size", c.n_embd},
        {"num_hidden_layers", c.n_layer},
        {"num_attention_heads", c.n_head},
        {"num_key_value_heads", c.n_head_kv},
        {"head_dim", c.n_embd_head},
        {"intermediate_size", c.n_ff},
        {"max_position_embeddings", 512},
        {"rms_norm_eps", 1e-6},
        {"query_pre_attn_scalar", c.n_embd_head},
        {"sliding_window", c.n_swa},
        {"rope_theta", 1e6},
        {"rope_local_base_freq", 1e4},
        {"sliding_window_pattern", 6},
        {"final_logit_softcapping", nullptr},
    };
    std::ofstream(dir + "/config.json") << config.dump(2);
    std::map<std::string, torch::Tensor> tensors;
    model.for_each_parameter([&](const std::string& name, torch::Tensor& t) {
        // subzero keeps norms as the multiplier 1 + g; HF stores g.
        bool is_norm = name.find("norm") != std::string::npos;
        tensors[name] = is_norm ? t - 1.0f : t;
    });
    safetensors::write(dir + "/model.safetensors", tensors);
    std::string proto = sentencepiece_model_bytes(test::tiny_vocab());
    std::ofstream(dir + "/tokenizer.model", std::ios::binary).write(proto.data(), proto.size());
    nlohmann::json tokenizer_config = {{"add_bos_token", true}, {"add_eos_token", false},
                                       {"bos_token", "<bos>"}, {"eos_token", "<eos>"},
                                       {"unk_token", "<unk>"}, {"pad_token", "<pad>"}};
    // As in Gemma's real files, user-defined pieces are listed here; llama.cpp's converter
    // (which subzero follows) treats unlisted USER_DEFINED pieces of tokenizer.model as normal.
    tokenizer_config["added_tokens_decoder"]["7"] = {{"content", "  "}, {"special", false}};
    std::ofstream(dir + "/tokenizer_config.json") << tokenizer_config.dump(2);
}

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
    std::string hf_dir = dir_ + "/hf";
    std::filesystem::create_directories(hf_dir);
    write_hf_folder(static_cast<Gemma3Model&>(*from_gguf.model), hf_dir);

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
