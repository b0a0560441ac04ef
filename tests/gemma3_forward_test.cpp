// Gemma 3 engine paths on a tiny random model written by the test: llama.cpp parity, KV-cache
// decoding, padded batches, hook points (read, replace, gradients) and input validation.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/loader.h"
#include "test_support.h"
#include "tiny_model.h"

namespace sz {
namespace {

class TinyGemma3 : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new std::string(test::make_temp_dir("sz-tiny"));
        path_ = new std::string(test::write_tiny_gemma3(*dir_ + "/tiny.gguf"));
    }
    static void TearDownTestSuite() {
        std::filesystem::remove_all(*dir_);
        delete dir_;
        delete path_;
    }
    void SetUp() override { loaded_ = load_model(*path_); }

    CausalLM& model() { return *loaded_.model; }
    torch::Tensor random_tokens(int64_t batch, int64_t length, uint64_t seed) {
        torch::manual_seed(seed);
        // Skip the control tokens (ids below 7) so sequences look like text.
        return torch::randint(7, model().config().n_vocab, {batch, length}, torch::kInt64);
    }

    static std::string* dir_;
    static std::string* path_;
    LoadedModel loaded_;
};
std::string* TinyGemma3::dir_ = nullptr;
std::string* TinyGemma3::path_ = nullptr;

TEST_F(TinyGemma3, ConfigFromGguf) {
    const ModelConfig& c = model().config();
    EXPECT_EQ(c.n_layer, 6);
    EXPECT_EQ(c.n_head_kv, 2);
    EXPECT_EQ(c.n_swa, 8);
    for (int64_t il = 0; il < c.n_layer; ++il) {
        EXPECT_EQ(c.is_sliding(il), il != 5) << "layer " << il;
    }
    EXPECT_FLOAT_EQ(c.f_attention_scale, 0.25f);
}

// llama.cpp runs the same F32 file; a 40-token sequence crosses the 8-key window many times.
TEST_F(TinyGemma3, LogitsMatchLlamaCpp) {
    torch::NoGradGuard no_grad;
    nlohmann::json request;
    request["model"] = *path_;
    request["source"] = *path_;
    request["greedy_tokens"] = 0;
    for (int i = 0; i < 3; ++i) {
        torch::Tensor tokens = random_tokens(1, 40, 100 + i);
        torch::Tensor logits = model().forward(tokens, {}).squeeze(0).contiguous();
        std::string logits_path = fmt::format("{}/tiny-logits-{}.f32", *dir_, i);
        std::ofstream(logits_path, std::ios::binary)
            .write(reinterpret_cast<const char*>(logits.data_ptr<float>()), logits.numel() * sizeof(float));
        std::vector<int64_t> ids(tokens.data_ptr<int64_t>(), tokens.data_ptr<int64_t>() + tokens.numel());
        std::vector<int64_t> positions(ids.size());
        std::iota(positions.begin(), positions.end(), 0);
        request["cases"].push_back({{"tokens", ids}, {"positions", positions}, {"logits", logits_path}, {"ours_greedy", nlohmann::json::array()}});
    }
    std::ofstream(*dir_ + "/tiny-request.json") << request.dump();
    nlohmann::json result = nlohmann::json::parse(test::run_python_reference("llama_logits.py", *dir_ + "/tiny-request.json"));
    std::cout << fmt::format("tiny model vs llama.cpp: argmax {}/{}, max |diff| {:.3e}, mean KL {:.3e}\n",
                             result["argmax_agree"].get<int>(), result["positions"].get<int>(),
                             result["max_abs_diff"].get<double>(), result["mean_kl"].get<double>());
    EXPECT_EQ(result["argmax_agree"], result["positions"]);
    // llama.cpp's GELU goes through an fp16 lookup table: ~1e-3 relative error per activation.
    EXPECT_LT(result["max_abs_diff"].get<double>(), 5e-2);
    EXPECT_LT(result["mean_kl"].get<double>(), 1e-4);
}

TEST_F(TinyGemma3, CachedDecodeMatchesFullForward) {
    torch::NoGradGuard no_grad;
    torch::Tensor tokens = random_tokens(1, 30, 7);
    torch::Tensor full = model().forward(tokens, {});

    KvCache cache(model().config(), 1, 64);
    ForwardOptions options;
    options.cache = &cache;
    std::vector<torch::Tensor> pieces = {model().forward(tokens.narrow(1, 0, 12), options)};
    for (int64_t t = 12; t < 30; ++t) {
        pieces.push_back(model().forward(tokens.narrow(1, t, 1), options));
    }
    torch::Tensor incremental = torch::cat(pieces, 1);
    EXPECT_EQ(cache.length(), 30);
    EXPECT_LT((incremental - full).abs().max().item<float>(), 1e-4);
}

TEST_F(TinyGemma3, LeftPaddedBatchMatchesSingleRows) {
    torch::NoGradGuard no_grad;
    torch::Tensor a = random_tokens(1, 20, 11);
    torch::Tensor b = random_tokens(1, 13, 12);
    // Row b is left-padded with 7 pad tokens (id 0) masked out.
    torch::Tensor batch = torch::cat({a, torch::cat({torch::zeros({1, 7}, torch::kInt64), b}, 1)}, 0);
    torch::Tensor mask = torch::ones({2, 20}, torch::kBool);
    mask.index_put_({1, torch::indexing::Slice(0, 7)}, false);
    ForwardOptions options;
    options.attention_mask = mask;
    torch::Tensor batched = model().forward(batch, options);

    torch::Tensor alone_a = model().forward(a, {});
    torch::Tensor alone_b = model().forward(b, {});
    EXPECT_LT((batched[0] - alone_a[0]).abs().max().item<float>(), 1e-4);
    EXPECT_LT((batched[1].narrow(0, 7, 13) - alone_b[0]).abs().max().item<float>(), 1e-4);

    // Decoding one more token per row through the cache keeps the rows independent.
    KvCache cache(model().config(), 2, 32);
    options.cache = &cache;
    model().forward(batch, options);
    torch::Tensor next = torch::tensor({{int64_t{40}}, {int64_t{41}}});
    ForwardOptions step;
    step.cache = &cache;
    torch::Tensor stepped = model().forward(next, step);
    torch::Tensor full_b = model().forward(torch::cat({b, next[1].view({1, 1})}, 1), {});
    EXPECT_LT((stepped[1][0] - full_b[0][13]).abs().max().item<float>(), 1e-4);
}

TEST_F(TinyGemma3, HooksCaptureAndReplace) {
    torch::NoGradGuard no_grad;
    torch::Tensor tokens = random_tokens(1, 10, 21);
    Hooks hooks;
    ActivationCache cache;
    cache.attach(hooks, {"hook_embed", "blocks.2.hook_resid_post", "blocks.2.mlp.hook_post", "blocks.5.attn.hook_pattern"});
    ForwardOptions options;
    options.hooks = &hooks;
    torch::Tensor baseline = model().forward(tokens, options);
    EXPECT_EQ(cache.at("blocks.2.hook_resid_post").sizes(), torch::IntArrayRef({1, 10, 64}));
    EXPECT_EQ(cache.at("blocks.2.mlp.hook_post").sizes(), torch::IntArrayRef({1, 10, 96}));
    torch::Tensor pattern = cache.at("blocks.5.attn.hook_pattern");
    EXPECT_EQ(pattern.sizes(), torch::IntArrayRef({1, 4, 10, 10}));
    EXPECT_LT((pattern.sum(-1) - 1).abs().max().item<float>(), 1e-5);
    EXPECT_EQ(pattern.triu(1).abs().max().item<float>(), 0.0f) << "future keys must get zero probability";
    // Capturing alone changes nothing.
    EXPECT_EQ((model().forward(tokens, {}) - baseline).abs().max().item<float>(), 0.0f);

    // Zeroing the down_proj input equals zeroing the down_proj weight.
    Hooks ablate;
    ablate.add("blocks.2.mlp.down_proj.input", [](const torch::Tensor& x, const std::string&) { return torch::zeros_like(x); });
    options.hooks = &ablate;
    torch::Tensor ablated = model().forward(tokens, options);
    torch::Tensor saved = model().projection_weight(2, Projection::Down).clone();
    model().projection_weight(2, Projection::Down).zero_();
    torch::Tensor zeroed = model().forward(tokens, {});
    model().projection_weight(2, Projection::Down).copy_(saved);
    EXPECT_LT((ablated - zeroed).abs().max().item<float>(), 1e-5);
    EXPECT_GT((ablated - baseline).abs().max().item<float>(), 1e-3);
}

// d(loss)/d(activation) from a hook agrees with a finite difference along a random direction.
TEST_F(TinyGemma3, HookGradientMatchesFiniteDifference) {
    torch::Tensor tokens = random_tokens(1, 12, 31);
    torch::Tensor target = random_tokens(1, 12, 32);
    auto loss_with_offset = [&](const torch::Tensor& offset, torch::Tensor* captured) {
        Hooks hooks;
        hooks.add("blocks.1.hook_resid_post", [&](const torch::Tensor& x, const std::string&) {
            torch::Tensor y = x + offset;
            if (captured != nullptr) {
                torch::Tensor probe = torch::zeros_like(y).requires_grad_();
                *captured = probe;
                return y + probe;
            }
            return y;
        });
        ForwardOptions options;
        options.hooks = &hooks;
        torch::Tensor logits = model().forward(tokens, options);
        return torch::nn::functional::cross_entropy(logits.view({-1, logits.size(-1)}), target.view({-1}));
    };
    torch::Tensor activation;
    torch::Tensor zero = torch::zeros({1, 12, 64});
    torch::Tensor loss = loss_with_offset(zero, &activation);
    loss.backward();
    ASSERT_TRUE(activation.grad().defined());

    torch::manual_seed(5);
    torch::Tensor direction = torch::randn({1, 12, 64});
    direction /= direction.norm();
    const double eps = 1e-2;
    torch::NoGradGuard no_grad;
    double numeric = (loss_with_offset(direction * eps, nullptr).item<double>() -
                      loss_with_offset(direction * -eps, nullptr).item<double>()) / (2 * eps);
    double analytic = (activation.grad() * direction).sum().item<double>();
    EXPECT_NEAR(analytic, numeric, 1e-3 + 1e-2 * std::abs(numeric));
}

TEST_F(TinyGemma3, UnknownHookNameRejected) {
    Hooks hooks;
    hooks.add("blocks.99.hook_resid_post", [](const torch::Tensor& x, const std::string&) { return x; });
    ForwardOptions options;
    options.hooks = &hooks;
    try {
        model().forward(random_tokens(1, 4, 1), options);
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("blocks.99.hook_resid_post"), std::string::npos) << e.what();
    }
}

TEST_F(TinyGemma3, OutOfRangeTokenRejected) {
    torch::Tensor tokens = torch::tensor({{int64_t{2}, model().config().n_vocab}});
    EXPECT_THROW(model().forward(tokens, {}), Error);
}

TEST_F(TinyGemma3, FullContextRejected) {
    torch::NoGradGuard no_grad;
    KvCache cache(model().config(), 1, 16);
    ForwardOptions options;
    options.cache = &cache;
    model().forward(random_tokens(1, 16, 3), options);
    try {
        model().forward(random_tokens(1, 1, 4), options);
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("context"), std::string::npos) << e.what();
    }
}

TEST(ModelLoader, UnknownArchitectureRejected) {
    std::string dir = test::make_temp_dir("sz-arch");
    gguf::Writer w;
    w.set_string("general.architecture", "mamba9");
    w.write(dir + "/m.gguf");
    try {
        load_model(dir + "/m.gguf");
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        std::string message = e.what();
        EXPECT_NE(message.find("mamba9"), std::string::npos) << message;
        EXPECT_NE(message.find("gemma3"), std::string::npos) << message;
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sz
