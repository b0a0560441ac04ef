// Export to GGUF and to a Hugging Face folder, checked against independent readers: llama.cpp
// (llama-cpp-python) for loading, logits, chat template and stopping, the `gguf` Python
// package and jinja2 for metadata and template rendering, and subzero's own loaders for
// round trips.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "export/export.h"
#include "export/gguf_export.h"
#include "export/hf_export.h"
#include "export/merge.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "locate/locate.h"
#include "model/gemma3.h"
#include "model/loader.h"
#include "test_support.h"
#include "tiny_model.h"

namespace sz {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Helpers

struct CommandResult {
    int status = -1;  // exit status, or -1 when the command did not exit normally
    std::string output;
};

// Runs a shell command with stderr merged into stdout.
CommandResult run_command(const std::string& command) {
    CommandResult result;
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) {
        return result;
    }
    char buffer[4096];
    size_t n = 0;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
        result.output.append(buffer, n);
    }
    const int status = pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

// The CLI binary built next to the test binary, or "" when this build has no CLI.
std::string cli_binary() {
    std::error_code error;
    fs::path self = fs::read_symlink("/proc/self/exe", error);
    if (error) {
        return "";
    }
    fs::path cli = self.parent_path() / "subzero";
    return fs::exists(cli) ? cli.string() : "";
}

torch::Tensor logits_of(CausalLM& model, const std::vector<int32_t>& tokens) {
    torch::NoGradGuard no_grad;
    std::vector<int64_t> ids(tokens.begin(), tokens.end());
    return model.forward(torch::tensor(ids).view({1, -1}), {}).squeeze(0).contiguous();
}

void write_f32(const std::string& path, const torch::Tensor& values) {
    torch::Tensor contiguous = values.to(torch::kFloat32).contiguous();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(contiguous.data_ptr<float>()), contiguous.numel() * sizeof(float));
}

// Greedy continuation through the KV cache, stopping after an end-of-generation token.
std::vector<int32_t> greedy_continuation(CausalLM& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                                         int n_tokens) {
    torch::NoGradGuard no_grad;
    KvCache cache(model.config(), 1, static_cast<int64_t>(prompt.size()) + n_tokens + 1);
    ForwardOptions options;
    options.cache = &cache;
    options.last_position_only = true;
    std::vector<int64_t> ids(prompt.begin(), prompt.end());
    torch::Tensor logits = model.forward(torch::tensor(ids).view({1, -1}), options);
    std::vector<int32_t> generated;
    for (int i = 0; i < n_tokens; ++i) {
        const int32_t token = static_cast<int32_t>(logits.view({-1}).argmax().item<int64_t>());
        generated.push_back(token);
        if (tokenizer.is_end_of_generation(token)) {
            break;
        }
        logits = model.forward(torch::tensor({int64_t{token}}).view({1, 1}), options);
    }
    return generated;
}

// Runs llama_logits.py on `model_path` for the given token sequences (every position
// compared) and returns its JSON result. `greedy` contains subzero's greedy continuations, or is
// empty when no greedy comparison is wanted.
json compare_with_llama_cpp(CausalLM& model, const std::string& model_path, const std::vector<std::vector<int32_t>>& cases,
                            const std::string& work_dir, int greedy_tokens, const std::vector<std::vector<int32_t>>& greedy) {
    json request = {{"model", model_path}, {"source", model_path}, {"greedy_tokens", greedy_tokens},
                    {"cases", json::array()}};
    for (size_t i = 0; i < cases.size(); ++i) {
        torch::Tensor logits = logits_of(model, cases[i]);
        std::vector<int64_t> positions(cases[i].size());
        for (size_t t = 0; t < positions.size(); ++t) {
            positions[t] = static_cast<int64_t>(t);
        }
        const std::string logits_path = fmt::format("{}/logits-{}.f32", work_dir, i);
        write_f32(logits_path, logits);
        json entry = {{"tokens", cases[i]}, {"positions", positions}, {"logits", logits_path}};
        if (!greedy.empty()) {
            entry["ours_greedy"] = greedy[i];
        }
        request["cases"].push_back(entry);
    }
    const std::string request_path = work_dir + "/llama-request.json";
    std::ofstream(request_path) << request.dump();
    return json::parse(test::run_python_reference("llama_logits.py", request_path));
}

void print_llama_comparison(const std::string& label, const json& result) {
    const double agree = result["argmax_agree"].get<double>() / result["positions"].get<double>();
    std::cout << fmt::format("{}: {} positions, argmax agreement {:.4f}, max |diff| {:.3e}, mean KL {:.3e}\n", label,
                             result["positions"].get<int>(), agree, result["max_abs_diff"].get<double>(),
                             result["mean_kl"].get<double>());
}

// Random token sequences of the tiny vocabulary, avoiding the control tokens below id 7.
std::vector<std::vector<int32_t>> random_sequences(int64_t n_vocab, int count, int64_t length, uint64_t seed) {
    torch::manual_seed(seed);
    std::vector<std::vector<int32_t>> sequences;
    for (int i = 0; i < count; ++i) {
        torch::Tensor ids = torch::randint(7, n_vocab, {length}, torch::kInt64);
        std::vector<int32_t> sequence = {2};  // BOS first, as every real prompt
        for (int64_t t = 0; t < length; ++t) {
            sequence.push_back(static_cast<int32_t>(ids[t].item<int64_t>()));
        }
        sequences.push_back(sequence);
    }
    return sequences;
}

std::vector<int32_t> chat_tokens(const LoadedModel& loaded, const std::vector<ChatMessage>& messages) {
    const std::string text = loaded.chat_template->render(messages, /*add_generation_prompt=*/true);
    return loaded.tokenizer->encode(text, /*add_special=*/false, /*parse_special=*/true);
}

// Expected GGUF metadata entry: value type name as the gguf package prints it, and the value.
struct ExpectedKey {
    std::string type;
    json value;
};

// The metadata an f16 export must carry, derived from the source model and the GGUF rules
// for gemma3 (llama.cpp's types: u32 counts and ids, f32 floats, bool flags), not from the
// exporter's output.
std::map<std::string, ExpectedKey> expected_metadata(const LoadedModel& source, const std::string& name,
                                                     uint32_t file_type) {
    const ModelConfig& c = source.model->config();
    const Vocab& vocab = source.tokenizer->vocab();
    const SamplerParams sampling;  // model-card defaults
    std::map<std::string, ExpectedKey> keys = {
        {"general.architecture", {"STRING", "gemma3"}},
        {"general.type", {"STRING", "model"}},
        {"general.name", {"STRING", name}},
        {"general.file_type", {"UINT32", file_type}},
        {"general.quantization_version", {"UINT32", 2}},
        {"subzero.version", {"STRING", kSubzeroVersion}},
        {"subzero.source", {"STRING", fs::path(source.path).filename().string()}},
        {"subzero.recommended_context_length", {"UINT32", 8192}},
        {"gemma3.context_length", {"UINT32", c.n_ctx_train}},
        {"gemma3.embedding_length", {"UINT32", c.n_embd}},
        {"gemma3.block_count", {"UINT32", c.n_layer}},
        {"gemma3.feed_forward_length", {"UINT32", c.n_ff}},
        {"gemma3.attention.head_count", {"UINT32", c.n_head}},
        {"gemma3.attention.head_count_kv", {"UINT32", c.n_head_kv}},
        {"gemma3.attention.key_length", {"UINT32", c.n_embd_head}},
        {"gemma3.attention.value_length", {"UINT32", c.n_embd_head}},
        {"gemma3.attention.layer_norm_rms_epsilon", {"FLOAT32", c.f_norm_rms_eps}},
        {"gemma3.rope.freq_base", {"FLOAT32", c.f_rope_base_global}},
        {"gemma3.rope.freq_base_swa", {"FLOAT32", c.f_rope_base_local}},
        {"gemma3.attention.sliding_window", {"UINT32", c.n_swa}},
        {"general.sampling.top_k", {"INT32", sampling.top_k}},
        {"general.sampling.top_p", {"FLOAT32", sampling.top_p}},
        {"general.sampling.min_p", {"FLOAT32", sampling.min_p}},
        {"general.sampling.temp", {"FLOAT32", sampling.temp}},
        {"general.sampling.penalty_last_n", {"INT32", sampling.repeat_last_n}},
        {"general.sampling.penalty_repeat", {"FLOAT32", sampling.repeat_penalty}},
        {"tokenizer.ggml.model", {"STRING", "llama"}},
        {"tokenizer.ggml.pre", {"STRING", "default"}},
        {"tokenizer.ggml.bos_token_id", {"UINT32", vocab.bos_id}},
        {"tokenizer.ggml.eos_token_id", {"UINT32", vocab.eos_id}},
        {"tokenizer.ggml.unknown_token_id", {"UINT32", vocab.unk_id}},
        {"tokenizer.ggml.padding_token_id", {"UINT32", vocab.pad_id}},
        {"tokenizer.ggml.eot_token_id", {"UINT32", vocab.find_piece("<end_of_turn>")}},
        {"tokenizer.ggml.add_bos_token", {"BOOL", vocab.add_bos}},
        {"tokenizer.ggml.add_eos_token", {"BOOL", vocab.add_eos}},
        {"tokenizer.ggml.add_space_prefix", {"BOOL", false}},
        {"tokenizer.chat_template", {"STRING", source.chat_template->jinja_source()}},
    };
    // Arrays are compared element by element in the test; only their types are listed here.
    keys["tokenizer.ggml.tokens"] = {"ARRAY", nullptr};
    keys["tokenizer.ggml.scores"] = {"ARRAY", nullptr};
    keys["tokenizer.ggml.token_type"] = {"ARRAY", nullptr};
    return keys;
}

// GGUF tensor names of a gemma3 model, from the shared HF <-> GGUF table.
std::map<std::string, bool> expected_tensors(int64_t n_layer) {
    std::map<std::string, bool> is_norm = {{"token_embd.weight", false}, {"output_norm.weight", true}};
    for (int64_t il = 0; il < n_layer; ++il) {
        for (const Gemma3TensorSpec& spec : gemma3_layer_tensors()) {
            is_norm[fmt::format("blk.{}.{}", il, spec.gguf_name)] = spec.is_norm;
        }
    }
    return is_norm;
}

// ---------------------------------------------------------------------------------------------
// Tiny model

class ExportTiny : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = test::make_temp_dir("sz-export");
        source_path_ = test::write_tiny_gemma3(dir_ + "/tiny.gguf");
        source_ = load_model(source_path_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string export_gguf_file(WeightType type, const std::string& file_name) {
        ExportOptions options;
        options.gguf_path = dir_ + "/" + file_name;
        options.gguf_type = type;
        export_model(source_, options);
        return options.gguf_path;
    }

    std::string dir_;
    std::string source_path_;
    LoadedModel source_;
};

TEST_F(ExportTiny, F16LogitsMatchLlamaCpp) {
    const std::string path = export_gguf_file(WeightType::F16, "tiny-f16.gguf");
    LoadedModel exported = load_model(path);

    std::vector<std::vector<int32_t>> cases = random_sequences(source_.model->config().n_vocab, 4, 40, 17);
    cases.push_back(chat_tokens(exported, {{"system", "be brief"}, {"user", "the cat sat on the mat"}}));
    json result = compare_with_llama_cpp(*exported.model, path, cases, dir_, 0, {});
    print_llama_comparison("tiny f16 export, llama.cpp vs subzero on the same file", result);

    const double agree = result["argmax_agree"].get<double>() / result["positions"].get<double>();
    EXPECT_GE(agree, 0.99);
    // llama.cpp rounds matmul inputs to f16 for F16 weights and uses an f16 GELU table; the
    // measured max |diff| is 6e-3. A wrong norm offset, RoPE base or window moves logits by O(1).
    EXPECT_LT(result["max_abs_diff"].get<double>(), 0.05);
    EXPECT_LT(result["mean_kl"].get<double>(), 1e-4);
}

TEST_F(ExportTiny, F16ReloadWithinRounding) {
    torch::NoGradGuard no_grad;
    const std::string path = export_gguf_file(WeightType::F16, "tiny-f16.gguf");
    LoadedModel exported = load_model(path);

    // Every matrix is the source rounded to f16 (nearest even), every norm is unchanged.
    std::map<std::string, torch::Tensor> exported_params;
    exported.model->for_each_parameter([&](const std::string& name, torch::Tensor& t) { exported_params[name] = t; });
    source_.model->for_each_parameter([&](const std::string& name, torch::Tensor& t) {
        const torch::Tensor& e = exported_params.at(name);
        if (t.dim() == 1) {
            EXPECT_EQ(e.scalar_type(), torch::kFloat32) << name;
            EXPECT_TRUE(torch::equal(e, t)) << name;
        } else {
            EXPECT_EQ(e.scalar_type(), torch::kHalf) << name;
            EXPECT_TRUE(torch::equal(e, t.to(torch::kHalf))) << name;
        }
    });

    torch::Tensor tokens = torch::randint(7, source_.model->config().n_vocab, {2, 32}, torch::kInt64);
    torch::Tensor expected = source_.model->forward(tokens, {});
    torch::Tensor actual = exported.model->forward(tokens, {});
    const float max_diff = (expected - actual).abs().max().item<float>();
    std::cout << fmt::format("tiny f16 export vs float32 source: max |logit diff| {:.3e}\n", max_diff);
    EXPECT_LT(max_diff, 5e-2);
    EXPECT_GT(max_diff, 0.0f) << "f16 rounding should change the logits a little";
}

TEST_F(ExportTiny, F32ReloadIsExact) {
    torch::NoGradGuard no_grad;
    const std::string path = export_gguf_file(WeightType::F32, "tiny-f32.gguf");
    LoadedModel exported = load_model(path);
    torch::Tensor tokens = torch::randint(7, source_.model->config().n_vocab, {2, 32}, torch::kInt64);
    EXPECT_TRUE(torch::equal(source_.model->forward(tokens, {}), exported.model->forward(tokens, {})));
    std::shared_ptr<gguf::File> file = gguf::File::open(path);
    EXPECT_EQ(file->get_uint("general.file_type"), 0u);
    EXPECT_EQ(file->tensor("blk.0.attn_q.weight").type, GgmlType::F32);
}

TEST_F(ExportTiny, Bf16ReloadKeepsBf16Weights) {
    const std::string path = export_gguf_file(WeightType::BF16, "tiny-bf16.gguf");
    LoadedModel exported = load_model(path);
    std::shared_ptr<gguf::File> file = gguf::File::open(path);
    EXPECT_EQ(file->get_uint("general.file_type"), 32u);
    EXPECT_EQ(file->tensor("blk.0.ffn_up.weight").type, GgmlType::BF16);
    EXPECT_EQ(file->tensor("blk.0.ffn_norm.weight").type, GgmlType::F32);
    auto& source_weights = static_cast<Gemma3Model&>(*source_.model).weights();
    auto& exported_weights = static_cast<Gemma3Model&>(*exported.model).weights();
    EXPECT_TRUE(torch::equal(exported_weights.layers[2].w_down, source_weights.layers[2].w_down.to(torch::kBFloat16)));
}

TEST_F(ExportTiny, MetadataReadByGgufPackage) {
    const std::string path = export_gguf_file(WeightType::F16, "tiny-f16.gguf");
    const std::vector<std::vector<ChatMessage>> conversations = {
        {{"user", "hello there"}},
        {{"system", "You are terse."}, {"user", "  hi  "}, {"assistant", "hello\n"}, {"user", "bye"}},
        {{"user", "one"}, {"assistant", "two"}},
    };
    const std::vector<bool> generation_prompts = {true, true, false};
    json request = {{"model", path}, {"conversations", json::array()}};
    for (size_t i = 0; i < conversations.size(); ++i) {
        json messages = json::array();
        for (const ChatMessage& m : conversations[i]) {
            messages.push_back({{"role", m.role}, {"content", m.content}});
        }
        request["conversations"].push_back({{"messages", messages}, {"add_generation_prompt", generation_prompts[i]}});
    }
    // Roles out of order: the template itself must reject them, as subzero does.
    request["conversations"].push_back(
        {{"messages", {{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}}},
         {"add_generation_prompt", true}});
    std::ofstream(dir_ + "/check.json") << request.dump();
    json result = json::parse(test::run_python_reference("gguf_export_check.py", dir_ + "/check.json"));
    const json& metadata = result["metadata"];

    const std::map<std::string, ExpectedKey> expected = expected_metadata(source_, "tiny-gemma3-test", 1);
    std::set<std::string> actual_keys;
    for (const auto& [key, entry] : metadata.items()) {
        actual_keys.insert(key);
        EXPECT_TRUE(expected.count(key) > 0) << "unexpected key " << key;
    }
    for (const auto& [key, want] : expected) {
        ASSERT_TRUE(metadata.contains(key)) << "missing key " << key;
        const json& entry = metadata[key];
        EXPECT_EQ(entry["type"], want.type) << key;
        if (want.value.is_null()) {
            continue;
        }
        if (want.type == "FLOAT32") {
            EXPECT_FLOAT_EQ(entry["value"].get<float>(), want.value.get<float>()) << key;
        } else {
            EXPECT_EQ(entry["value"], want.value) << key;
        }
    }

    const Vocab& vocab = source_.tokenizer->vocab();
    EXPECT_EQ(metadata["tokenizer.ggml.tokens"]["element_type"], "STRING");
    EXPECT_EQ(metadata["tokenizer.ggml.scores"]["element_type"], "FLOAT32");
    EXPECT_EQ(metadata["tokenizer.ggml.token_type"]["element_type"], "INT32");
    EXPECT_EQ(metadata["tokenizer.ggml.tokens"]["value"].get<std::vector<std::string>>(), vocab.pieces);
    EXPECT_EQ(metadata["tokenizer.ggml.scores"]["value"].get<std::vector<float>>(), vocab.scores);
    std::vector<int32_t> types;
    for (TokenType type : vocab.types) {
        types.push_back(static_cast<int32_t>(type));
    }
    EXPECT_EQ(metadata["tokenizer.ggml.token_type"]["value"].get<std::vector<int32_t>>(), types);

    // Tensors: the gemma3 names, norms F32, matrices F16, one embedding row per token.
    const std::map<std::string, bool> tensors = expected_tensors(source_.model->config().n_layer);
    EXPECT_EQ(result["tensors"].size(), tensors.size());
    for (const auto& [name, is_norm] : tensors) {
        ASSERT_TRUE(result["tensors"].contains(name)) << name;
        EXPECT_EQ(result["tensors"][name]["type"], is_norm ? "F32" : "F16") << name;
    }
    EXPECT_EQ(result["tensors"]["token_embd.weight"]["ne"],
              json({source_.model->config().n_embd, static_cast<int64_t>(vocab.size())}));

    // The stored template, rendered by jinja2, gives subzero's own rendering.
    ASSERT_EQ(result["renders"].size(), conversations.size() + 1);
    for (size_t i = 0; i < conversations.size(); ++i) {
        ASSERT_TRUE(result["renders"][i].is_string()) << result["renders"][i].dump();
        EXPECT_EQ(result["renders"][i].get<std::string>(),
                  source_.chat_template->render(conversations[i], generation_prompts[i]))
            << "conversation " << i;
    }
    EXPECT_TRUE(result["renders"].back().contains("error")) << result["renders"].back().dump();
}

TEST_F(ExportTiny, ModelTemplateKeptVerbatim) {
    const std::string own_template =
        "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] | trim }}"
        "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";
    test::TinyModelOptions options;
    options.chat_template = own_template;
    LoadedModel with_template = load_model(test::write_tiny_gemma3(dir_ + "/tiny-template.gguf", options));
    ExportOptions export_options;
    export_options.gguf_path = dir_ + "/with-template.gguf";
    export_options.metadata.name = "renamed";
    export_model(with_template, export_options);
    std::shared_ptr<gguf::File> file = gguf::File::open(export_options.gguf_path);
    EXPECT_EQ(file->get_string("tokenizer.chat_template"), own_template);
    EXPECT_EQ(file->get_string("general.name"), "renamed");
}

TEST_F(ExportTiny, LlamaCppStopsAtEndOfTurn) {
    const std::string path = export_gguf_file(WeightType::F16, "tiny-f16.gguf");
    const Vocab& vocab = source_.tokenizer->vocab();
    const int32_t end_of_turn = vocab.find_piece("<end_of_turn>");
    const std::vector<ChatMessage> messages = {{"user", "hello there"}};
    const int free_tokens = 5;
    json request = {{"model", path},
                    {"messages", {{{"role", "user"}, {"content", "hello there"}}}},
                    {"free_tokens", free_tokens},
                    {"check_ids", {vocab.eos_id, end_of_turn, vocab.bos_id}}};
    std::ofstream(dir_ + "/chat.json") << request.dump();
    json result = json::parse(test::run_python_reference("llama_chat_stop.py", dir_ + "/chat.json"));
    std::cout << "llama.cpp warnings while loading the tiny export:\n";
    for (const json& line : result["log"]) {
        std::cout << "  " << line.get<std::string>() << "\n";
    }

    // llama-cpp-python uses the file's own template, not a built-in guess.
    EXPECT_EQ(result["chat_format"], "chat_template.default");
    EXPECT_EQ(result["bos"], vocab.bos_id);
    EXPECT_EQ(result["eos"], vocab.eos_id);
    EXPECT_EQ(result["eot"], end_of_turn);
    EXPECT_TRUE(result["is_eog"][std::to_string(end_of_turn)].get<bool>());
    EXPECT_TRUE(result["is_eog"][std::to_string(vocab.eos_id)].get<bool>());
    EXPECT_FALSE(result["is_eog"][std::to_string(vocab.bos_id)].get<bool>());

    // Its rendering and tokenization of the conversation has as many tokens as subzero's.
    EXPECT_EQ(result["stop"]["prompt_tokens"].get<size_t>(), chat_tokens(source_, messages).size());
    EXPECT_EQ(result["stop"]["finish_reason"], "stop");
    EXPECT_EQ(result["stop"]["completion_tokens"], free_tokens);
    EXPECT_EQ(result["stop"]["content"].get<std::string>().find("<end_of_turn>"), std::string::npos);
    EXPECT_EQ(result["control"]["finish_reason"], "length");

    // llama.cpp reads back the recommended sampling under the names libllama defines.
    const json& sampling = result["sampling_metadata"];
    const SamplerParams defaults;
    ASSERT_FALSE(sampling["general.sampling.temp"].is_null()) << sampling.dump();
    EXPECT_FLOAT_EQ(std::stof(sampling["general.sampling.temp"].get<std::string>()), defaults.temp);
    EXPECT_FLOAT_EQ(std::stof(sampling["general.sampling.min_p"].get<std::string>()), defaults.min_p);
    EXPECT_FLOAT_EQ(std::stof(sampling["general.sampling.top_p"].get<std::string>()), defaults.top_p);
    EXPECT_EQ(std::stoi(sampling["general.sampling.top_k"].get<std::string>()), defaults.top_k);
    EXPECT_EQ(std::stoi(sampling["general.sampling.penalty_last_n"].get<std::string>()), defaults.repeat_last_n);
    EXPECT_FLOAT_EQ(std::stof(sampling["general.sampling.penalty_repeat"].get<std::string>()), defaults.repeat_penalty);
    for (const auto& [key, value] : sampling.items()) {
        EXPECT_EQ(key.rfind("general.sampling.", 0), 0u) << key;
    }
}

TEST_F(ExportTiny, HfFolderRoundTrip) {
    torch::NoGradGuard no_grad;
    ExportOptions options;
    options.hf_dir = dir_ + "/hf";
    options.hf_type = WeightType::F32;
    export_model(source_, options);
    for (const char* file : {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json",
                             "special_tokens_map.json", "generation_config.json"}) {
        EXPECT_TRUE(fs::exists(options.hf_dir + "/" + file)) << file;
    }

    LoadedModel reloaded = load_model(options.hf_dir);
    EXPECT_EQ(reloaded.format, "safetensors");
    const ModelConfig& a = source_.model->config();
    const ModelConfig& b = reloaded.model->config();
    EXPECT_EQ(b.layer_kinds, a.layer_kinds);
    EXPECT_EQ(b.n_swa, a.n_swa);
    EXPECT_EQ(b.n_ctx_train, a.n_ctx_train);
    EXPECT_FLOAT_EQ(b.f_attention_scale, a.f_attention_scale);
    EXPECT_FLOAT_EQ(b.f_rope_base_global, a.f_rope_base_global);
    EXPECT_FLOAT_EQ(b.f_rope_base_local, a.f_rope_base_local);
    EXPECT_FLOAT_EQ(b.f_norm_rms_eps, a.f_norm_rms_eps);

    torch::Tensor tokens = torch::randint(7, a.n_vocab, {2, 32}, torch::kInt64);
    // Norms go through g = w - 1 and back to 1 + g, one float32 rounding each way.
    EXPECT_LT((source_.model->forward(tokens, {}) - reloaded.model->forward(tokens, {})).abs().max().item<float>(), 1e-4);

    const Vocab& va = source_.tokenizer->vocab();
    const Vocab& vb = reloaded.tokenizer->vocab();
    EXPECT_EQ(vb.pieces, va.pieces);
    EXPECT_EQ(vb.types, va.types);
    EXPECT_EQ(vb.bos_id, va.bos_id);
    EXPECT_EQ(vb.eos_id, va.eos_id);
    EXPECT_EQ(vb.eot_id, va.eot_id);
    EXPECT_EQ(vb.unk_id, va.unk_id);
    EXPECT_EQ(vb.pad_id, va.pad_id);
    EXPECT_EQ(vb.add_bos, va.add_bos);
    EXPECT_EQ(vb.add_space_prefix, va.add_space_prefix);
    for (int32_t id = 0; id < va.size(); ++id) {
        // Listed added tokens get the converter's score -1000 on reload; the rest keep theirs.
        const bool added = va.types[id] == TokenType::CONTROL || va.types[id] == TokenType::USER_DEFINED;
        EXPECT_FLOAT_EQ(vb.scores[id], added ? -1000.0f : va.scores[id]) << "token " << id;
    }
    for (const char* text : {"the cat sat on the mat", "hello  world\nit is 42!", "<start_of_turn>user\nhi",
                             "caf\xC3\xA9 \xF0\x9F\x8E\x89   x"}) {
        EXPECT_EQ(reloaded.tokenizer->encode(text, true, true), source_.tokenizer->encode(text, true, true)) << text;
    }
    // The base model had no template; the folder carries the canonical one.
    EXPECT_EQ(reloaded.tokenizer->vocab().chat_template, source_.chat_template->jinja_source());

    std::ifstream generation_file(options.hf_dir + "/generation_config.json");
    json generation = json::parse(generation_file);
    EXPECT_EQ(generation["eos_token_id"], json({va.eos_id, va.find_piece("<end_of_turn>")}));
    EXPECT_FLOAT_EQ(generation["temperature"].get<float>(), 0.9f);
    EXPECT_FLOAT_EQ(generation["min_p"].get<float>(), 0.1f);
    EXPECT_EQ(generation["top_k"], 0);
    std::ifstream config_file(options.hf_dir + "/config.json");
    json config = json::parse(config_file);
    EXPECT_EQ(config["model_type"], "gemma3_text");
    EXPECT_EQ(config["query_pre_attn_scalar"], a.n_embd_head);
    EXPECT_EQ(config["layer_types"].size(), static_cast<size_t>(a.n_layer));
    EXPECT_EQ(config["torch_dtype"], "float32");
}

TEST_F(ExportTiny, HfFolderBf16Weights) {
    torch::NoGradGuard no_grad;
    ExportOptions options;
    options.hf_dir = dir_ + "/hf-bf16";
    export_model(source_, options);  // bf16 is the default
    auto checkpoint = safetensors::Checkpoint::open(options.hf_dir);
    EXPECT_EQ(checkpoint->find("model.layers.0.mlp.up_proj.weight")->dtype, "BF16");
    EXPECT_EQ(checkpoint->find("model.norm.weight")->dtype, "BF16");
    EXPECT_EQ(checkpoint->metadata().at("format"), "pt");

    // HF stores g = w - 1 for norms.
    auto& weights = static_cast<Gemma3Model&>(*source_.model).weights();
    torch::Tensor stored_norm = checkpoint->load_float("model.layers.1.post_feedforward_layernorm.weight");
    EXPECT_TRUE(torch::equal(stored_norm, (weights.layers[1].post_ffw_norm - 1.0f).to(torch::kBFloat16).to(torch::kFloat32)));

    LoadedModel reloaded = load_model(options.hf_dir);
    torch::Tensor tokens = torch::randint(7, source_.model->config().n_vocab, {1, 32}, torch::kInt64);
    const float max_diff = (source_.model->forward(tokens, {}) - reloaded.model->forward(tokens, {})).abs().max().item<float>();
    std::cout << fmt::format("tiny bf16 Hugging Face export vs float32 source: max |logit diff| {:.3e}\n", max_diff);
    EXPECT_LT(max_diff, 0.3);
}

TEST_F(ExportTiny, HfFolderExportsToGguf) {
    torch::NoGradGuard no_grad;
    ExportOptions to_hf;
    to_hf.hf_dir = dir_ + "/hf";
    to_hf.hf_type = WeightType::F32;
    export_model(source_, to_hf);
    LoadedModel from_hf = load_model(to_hf.hf_dir);

    ExportOptions to_gguf;
    to_gguf.gguf_path = dir_ + "/from-hf.gguf";
    to_gguf.gguf_type = WeightType::F32;
    export_model(from_hf, to_gguf);
    LoadedModel from_gguf = load_model(to_gguf.gguf_path);

    torch::Tensor tokens = torch::randint(7, source_.model->config().n_vocab, {2, 32}, torch::kInt64);
    EXPECT_TRUE(torch::equal(from_hf.model->forward(tokens, {}), from_gguf.model->forward(tokens, {})));
    EXPECT_EQ(from_gguf.tokenizer->vocab().pieces, source_.tokenizer->vocab().pieces);
    EXPECT_EQ(from_gguf.tokenizer->vocab().types, source_.tokenizer->vocab().types);
    EXPECT_EQ(gguf::File::open(to_gguf.gguf_path)->get_string("subzero.source"), "hf");
}

TEST_F(ExportTiny, ExistingOutputReplaced) {
    const std::string path = export_gguf_file(WeightType::F32, "model.gguf");
    const auto f32_size = fs::file_size(path);
    export_gguf_file(WeightType::F16, "model.gguf");
    EXPECT_LT(fs::file_size(path), f32_size);
    EXPECT_EQ(gguf::File::open(path)->get_uint("general.file_type"), 1u);
    size_t files = 0;
    for (const auto& entry : fs::directory_iterator(dir_)) {
        EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
        ++files;
    }
    EXPECT_EQ(files, 2u);  // tiny.gguf and model.gguf, no temporary files left behind
}

TEST_F(ExportTiny, MissingOutputFolderNamed) {
    ExportOptions options;
    options.gguf_path = dir_ + "/no-such-folder/model.gguf";
    try {
        export_model(source_, options);
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(dir_ + "/no-such-folder"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    }

    options.gguf_path.clear();
    options.hf_dir = dir_ + "/missing-parent/hf";
    try {
        export_model(source_, options);
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(dir_ + "/missing-parent"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir_ + "/missing-parent"));
}

TEST_F(ExportTiny, HfOutputFolderIsFile) {
    ExportOptions options;
    options.hf_dir = source_path_;
    EXPECT_THROW(export_model(source_, options), Error);
}

TEST_F(ExportTiny, NothingRequestedRejected) {
    EXPECT_THROW(export_model(source_, ExportOptions{}), Error);
}

TEST(ExportOptions, UnknownWeightTypeNamed) {
    EXPECT_EQ(parse_weight_type("f16"), WeightType::F16);
    EXPECT_EQ(parse_weight_type("bf16"), WeightType::BF16);
    EXPECT_EQ(parse_weight_type("f32"), WeightType::F32);
    try {
        parse_weight_type("q4_0");
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("q4_0"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("f16"), std::string::npos) << e.what();
    }
}

TEST_F(ExportTiny, CliRejectsBadArguments) {
    const std::string cli = cli_binary();
    if (cli.empty()) {
        GTEST_SKIP() << "no subzero binary next to the test binary (built with SUBZERO_BUILD_CLI=OFF)";
    }
    CommandResult outtype = run_command(fmt::format("'{}' export '{}' --out '{}/x.gguf' --outtype q4", cli, source_path_, dir_));
    // A usage error exits with CLI11's code for the failed check (105 for a value outside the
    // accepted set), not with 1 as sz::Error does.
    EXPECT_NE(outtype.status, 0) << outtype.output;
    EXPECT_NE(outtype.status, 1) << outtype.output;
    EXPECT_NE(outtype.output.find("--outtype"), std::string::npos) << outtype.output;
    EXPECT_NE(outtype.output.find("q4"), std::string::npos) << outtype.output;

    CommandResult folder = run_command(fmt::format("'{}' export '{}' --out '{}/missing/x.gguf'", cli, source_path_, dir_));
    EXPECT_EQ(folder.status, 1) << folder.output;
    EXPECT_NE(folder.output.find(dir_ + "/missing"), std::string::npos) << folder.output;

    CommandResult ok = run_command(fmt::format("'{}' export '{}' --out '{}/cli.gguf' --name cli-test", cli, source_path_, dir_));
    EXPECT_EQ(ok.status, 0) << ok.output;
    EXPECT_EQ(gguf::File::open(dir_ + "/cli.gguf")->get_string("general.name"), "cli-test");
}

// ---------------------------------------------------------------------------------------------
// Real model

TEST(ExportReal, F16MatchesLlamaCpp) {
    torch::NoGradGuard no_grad;
    LoadedModel source = load_model("gemma3-270m");
    const std::string dir = test::make_temp_dir("sz-export-real");
    ExportOptions options;
    options.gguf_path = dir + "/gemma3-270m-f16.gguf";
    export_model(source, options);

    std::shared_ptr<gguf::File> file = gguf::File::open(options.gguf_path);
    EXPECT_EQ(file->get_string("general.license"), "gemma");  // carried from the source file
    EXPECT_EQ(file->get_uint("tokenizer.ggml.eot_token_id"), 106u);
    EXPECT_EQ(file->tensor("token_embd.weight").torch_shape(), (std::vector<int64_t>{262144, 640}));
    EXPECT_FALSE(file->get_string("tokenizer.chat_template").empty());

    LoadedModel exported = load_model(options.gguf_path);
    std::vector<std::vector<int32_t>> cases = {
        exported.tokenizer->encode("The capital of France is", true, false),
        exported.tokenizer->encode("def fibonacci(n):\n    if n < 2:\n        return n\n    return", true, false),
        chat_tokens(exported, {{"user", "Write a haiku about a cat sleeping on a warm laptop."}}),
        chat_tokens(exported, {{"system", "You are a terse chef."}, {"user", "Give me a recipe for a quick weeknight pasta."}}),
    };

    // subzero: the export reproduces the float32 source within f16 weight rounding.
    int64_t same_argmax = 0;
    int64_t positions = 0;
    float max_source_diff = 0.0f;
    for (const std::vector<int32_t>& tokens : cases) {
        torch::Tensor a = logits_of(*source.model, tokens);
        torch::Tensor b = logits_of(*exported.model, tokens);
        same_argmax += a.argmax(-1).eq(b.argmax(-1)).sum().item<int64_t>();
        positions += a.size(0);
        max_source_diff = std::max(max_source_diff, (a - b).abs().max().item<float>());
    }
    std::cout << fmt::format("f16 export vs float32 source (subzero): argmax {}/{}, max |diff| {:.3e}\n", same_argmax,
                             positions, max_source_diff);
    EXPECT_GE(static_cast<double>(same_argmax) / positions, 0.99);

    // llama.cpp on the exported file against subzero on the same file.
    const int greedy_tokens = 24;
    std::vector<std::vector<int32_t>> greedy;
    for (const std::vector<int32_t>& tokens : cases) {
        greedy.push_back(greedy_continuation(*exported.model, *exported.tokenizer, tokens, greedy_tokens));
    }
    json result = compare_with_llama_cpp(*exported.model, options.gguf_path, cases, dir, greedy_tokens, greedy);
    print_llama_comparison("gemma3-270m f16 export, llama.cpp vs subzero on the same file", result);
    int identical = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
        const std::vector<int32_t> theirs = result["cases"][i]["llama_greedy"].get<std::vector<int32_t>>();
        const bool same = theirs == greedy[i];
        identical += same ? 1 : 0;
        std::cout << fmt::format("  prompt {}: greedy {}: subzero '{}' | llama.cpp '{}'\n", i, same ? "identical" : "differs",
                                 exported.tokenizer->decode(greedy[i]), exported.tokenizer->decode(theirs));
    }

    // llama.cpp chat on the export: the file's template, <end_of_turn> as end of generation.
    json chat_request = {{"model", options.gguf_path},
                         {"messages", {{{"role", "user"}, {"content", "Say hello."}}}},
                         {"free_tokens", 4},
                         {"check_ids", {1, 106}}};
    std::ofstream(dir + "/chat.json") << chat_request.dump();
    json chat = json::parse(test::run_python_reference("llama_chat_stop.py", dir + "/chat.json"));
    fs::remove_all(dir);
    std::cout << "llama.cpp warnings while loading the gemma3-270m export:\n";
    for (const json& line : chat["log"]) {
        std::cout << "  " << line.get<std::string>() << "\n";
    }

    const double agree = result["argmax_agree"].get<double>() / result["positions"].get<double>();
    EXPECT_GE(agree, 0.99);
    // A greedy continuation may flip at a near-tie of its two best tokens; allow one of four.
    EXPECT_GE(identical, 3);
    EXPECT_EQ(chat["chat_format"], "chat_template.default");
    EXPECT_EQ(chat["eot"], 106);
    EXPECT_TRUE(chat["is_eog"]["106"].get<bool>());
    EXPECT_TRUE(chat["is_eog"]["1"].get<bool>());
    EXPECT_EQ(chat["stop"]["finish_reason"], "stop");
    EXPECT_EQ(chat["stop"]["completion_tokens"], 4);
    EXPECT_EQ(chat["control"]["finish_reason"], "length");
}

// A tuned model as `subzero run` exports it: atlas surgery on three MLP projections plus a LoRA
// adapter on every projection, merged, written as f16, and read by llama.cpp and subzero.
TEST(ExportReal, MergedTunedModelMatchesLlamaCpp) {
    torch::NoGradGuard no_grad;
    const std::string dir = test::make_temp_dir("sz-export-tuned");
    LoadedModel base = load_model("gemma3-270m");
    base.model->convert_weights(torch::kFloat32);

    Atlas atlas;
    torch::manual_seed(21);
    for (auto [layer, p] : {std::pair<int64_t, Projection>{4, Projection::Gate}, {7, Projection::Up}, {9, Projection::Down}}) {
        ProjectionAtlas entry;
        entry.layer = layer;
        entry.projection = p;
        const int64_t in = base.model->projection_weight(layer, p).size(1);
        torch::Tensor q = std::get<0>(torch::linalg_qr(torch::randn({in, 2}, torch::kFloat64), "reduced"));
        entry.basis = q.t().contiguous().to(torch::kFloat32);
        entry.scales = torch::tensor({0.15f, 0.5f});
        entry.lock_basis = entry.basis;
        entry.singular_values = torch::zeros({0}, torch::kFloat32);
        entry.selected = torch::zeros({0}, torch::kInt64);
        entry.composite = torch::zeros({0}, torch::kFloat32);
        atlas.projections.push_back(entry);
    }
    atlas.metadata = {{"model_identity", model_identity(*base.model)}};
    atlas.write(dir + "/atlas");
    LoraConfig lora;
    lora.rank = 8;
    lora.alpha = 16.0;
    lora.seed = 5;
    {
        LoraAdapter adapter(*base.model, lora);
        for (const torch::Tensor& parameter : adapter.parameters()) {
            if (parameter.size(0) != lora.rank) {   // B [out, r]; A keeps its initialisation
                parameter.normal_(0.0, 0.01);
            }
        }
        adapter.save(dir + "/adapter");
    }

    Tuning tuning = read_tuning(base, {dir + "/atlas", dir + "/adapter"});
    merge_tuning(base, tuning);
    ExportOptions options;
    options.gguf_path = dir + "/tuned.gguf";
    export_model(base, options);
    LoadedModel exported = load_model(options.gguf_path);

    std::vector<std::vector<int32_t>> cases;
    const std::vector<std::string> texts = {
        "The capital of France is", "def add(a, b):\n    return", "Once upon a time, in a small village,",
        "The three primary colours are", "import numpy as np\nx = np.", "Water boils at a temperature of",
        "The quick brown fox", "In 1969, the first humans", "Photosynthesis is the process by which",
        "My favourite breakfast is"};
    for (const std::string& text : texts) {
        cases.push_back(exported.tokenizer->encode(text, true, false));
    }
    const std::vector<std::string> questions = {
        "hey whats up", "What did you have for dinner?", "can you help me write an email to my landlord?",
        "are you an AI?", "what do you honestly think of pineapple on pizza?", "explain recursion briefly",
        "give me ten tips for sleeping better", "How do I fix a flat bike tyre?", "what's 17 times 23?",
        "tell me a joke"};
    for (const std::string& question : questions) {
        cases.push_back(chat_tokens(exported, {{"user", question}}));
    }

    // subzero's export reproduces the merged float32 model within f16 rounding.
    int64_t same_argmax = 0;
    int64_t positions = 0;
    for (const std::vector<int32_t>& tokens : cases) {
        torch::Tensor a = logits_of(*base.model, tokens);
        torch::Tensor b = logits_of(*exported.model, tokens);
        same_argmax += a.argmax(-1).eq(b.argmax(-1)).sum().item<int64_t>();
        positions += a.size(0);
    }
    std::cout << fmt::format("tuned f16 export vs merged float32 model (subzero): argmax {}/{}\n", same_argmax, positions);
    EXPECT_GE(static_cast<double>(same_argmax) / positions, 0.99);

    // llama.cpp on the export against subzero on the same file, 20 prompts, greedy text.
    const int greedy_tokens = 16;
    std::vector<std::vector<int32_t>> greedy;
    for (const std::vector<int32_t>& tokens : cases) {
        greedy.push_back(greedy_continuation(*exported.model, *exported.tokenizer, tokens, greedy_tokens));
    }
    json result = compare_with_llama_cpp(*exported.model, options.gguf_path, cases, dir, greedy_tokens, greedy);
    print_llama_comparison("tuned gemma3-270m f16 export, llama.cpp vs subzero on the same file", result);
    int identical = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
        identical += result["cases"][i]["llama_greedy"].get<std::vector<int32_t>>() == greedy[i] ? 1 : 0;
    }
    std::cout << fmt::format("greedy continuations identical: {}/{}\n", identical, cases.size());
    fs::remove_all(dir);
    EXPECT_GE(result["argmax_agree"].get<double>() / result["positions"].get<double>(), 0.99);
    // A continuation may flip at a near-tie of its two best tokens; allow two of twenty.
    EXPECT_GE(identical, 18);
}

}  // namespace
}  // namespace sz
