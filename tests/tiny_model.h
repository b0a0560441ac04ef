// A tiny random-weight Gemma 3 GGUF that tests write themselves: the real architecture and
// tokenizer layout at toy size, so every engine path runs in milliseconds.
//
// Shape: n_embd 64, 6 layers (layer 5 global, the rest local with a window of 8 keys), 4 query
// heads sharing 2 KV heads of dim 16, n_ff 96. The vocabulary has 364 pieces: Gemma's special
// tokens, 256 byte-fallback tokens, and letters, digits and a few merges with scores.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "formats/gguf_writer.h"

namespace sz::test {

struct TinyModelOptions {
    int64_t n_embd = 64;
    int64_t n_layer = 6;
    int64_t n_head = 4;
    int64_t n_head_kv = 2;
    int64_t head_dim = 16;
    int64_t n_ff = 96;
    int64_t sliding_window = 8;
    uint64_t seed = 1234;
    std::string chat_template;  // empty: no tokenizer.chat_template key, like the real base model
    GgmlType matrix_type = GgmlType::F32;  // storage of 2-D weights (F16 for an f16-export-like file)
};

struct TinyVocab {
    std::vector<std::string> pieces;
    std::vector<float> scores;
    std::vector<int32_t> types;
};

inline TinyVocab tiny_vocab() {
    TinyVocab v;
    auto add = [&](const std::string& piece, float score, int32_t type) {
        v.pieces.push_back(piece);
        v.scores.push_back(score);
        v.types.push_back(type);
    };
    const int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kByte = 6;
    for (const char* special : {"<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"}) {
        add(special, 0.0f, kControl);
    }
    add("  ", -1000.0f, kUserDefined);  // Gemma has user-defined runs of spaces
    for (int byte = 0; byte < 256; ++byte) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", byte);
        add(name, 0.0f, kByte);
    }
    const std::string space = "\xE2\x96\x81";  // U+2581
    add(space, -1.0f, kNormal);
    std::string singles = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\n";
    for (size_t i = 0; i < singles.size(); ++i) {
        add(std::string(1, singles[i]), -2.0f - 0.01f * static_cast<float>(i), kNormal);
    }
    const char* merges[] = {"th", "he", "the", "in", "er", "an", "re", "on", "at", "en", "nd", "is", "it", "ou"};
    float score = -1.5f;
    for (const char* merge : merges) {
        add(merge, score, kNormal);
        add(space + merge, score + 0.25f, kNormal);
        score -= 0.01f;
    }
    add(space + "model", -1.0f, kNormal);
    add("user", -1.0f, kNormal);
    add("model", -1.0f, kNormal);
    return v;
}

// Writes the model to `path` and returns it.
inline std::string write_tiny_gemma3(const std::string& path, const TinyModelOptions& o = {}) {
    torch::manual_seed(o.seed);
    TinyVocab vocab = tiny_vocab();
    const int64_t n_vocab = static_cast<int64_t>(vocab.pieces.size());
    gguf::Writer w;
    w.set_string("general.architecture", "gemma3");
    w.set_string("general.name", "tiny-gemma3-test");
    w.set_u32("general.file_type", 0);
    w.set_u32("gemma3.context_length", 512);
    w.set_u32("gemma3.embedding_length", static_cast<uint32_t>(o.n_embd));
    w.set_u32("gemma3.block_count", static_cast<uint32_t>(o.n_layer));
    w.set_u32("gemma3.feed_forward_length", static_cast<uint32_t>(o.n_ff));
    w.set_u32("gemma3.attention.head_count", static_cast<uint32_t>(o.n_head));
    w.set_u32("gemma3.attention.head_count_kv", static_cast<uint32_t>(o.n_head_kv));
    w.set_u32("gemma3.attention.key_length", static_cast<uint32_t>(o.head_dim));
    w.set_u32("gemma3.attention.value_length", static_cast<uint32_t>(o.head_dim));
    w.set_f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
    w.set_f32("gemma3.rope.freq_base", 1e6f);
    w.set_f32("gemma3.rope.freq_base_swa", 1e4f);
    w.set_u32("gemma3.attention.sliding_window", static_cast<uint32_t>(o.sliding_window));
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_string("tokenizer.ggml.pre", "default");
    w.set_string_array("tokenizer.ggml.tokens", vocab.pieces);
    w.set_f32_array("tokenizer.ggml.scores", vocab.scores);
    w.set_i32_array("tokenizer.ggml.token_type", vocab.types);
    w.set_u32("tokenizer.ggml.bos_token_id", 2);
    w.set_u32("tokenizer.ggml.eos_token_id", 1);
    w.set_u32("tokenizer.ggml.unknown_token_id", 3);
    w.set_u32("tokenizer.ggml.padding_token_id", 0);
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    w.set_bool("tokenizer.ggml.add_eos_token", false);
    w.set_bool("tokenizer.ggml.add_space_prefix", false);
    if (!o.chat_template.empty()) {
        w.set_string("tokenizer.chat_template", o.chat_template);
    }

    // Weights ~ N(0, 1/fan_in) so activations stay O(1); norms near 1 (GGUF stores 1 + g).
    auto linear = [](int64_t out, int64_t in) { return torch::randn({out, in}) / std::sqrt(static_cast<double>(in)); };
    auto norm = [](int64_t n) { return 1.0 + 0.1 * torch::randn({n}); };
    w.add_tensor("token_embd.weight", torch::randn({n_vocab, o.n_embd}) * 0.5, o.matrix_type);
    w.add_tensor("output_norm.weight", norm(o.n_embd), GgmlType::F32);
    for (int64_t il = 0; il < o.n_layer; ++il) {
        auto name = [&](const char* suffix) { return "blk." + std::to_string(il) + "." + suffix; };
        w.add_tensor(name("attn_norm.weight"), norm(o.n_embd), GgmlType::F32);
        w.add_tensor(name("attn_q.weight"), linear(o.n_head * o.head_dim, o.n_embd), o.matrix_type);
        w.add_tensor(name("attn_k.weight"), linear(o.n_head_kv * o.head_dim, o.n_embd), o.matrix_type);
        w.add_tensor(name("attn_v.weight"), linear(o.n_head_kv * o.head_dim, o.n_embd), o.matrix_type);
        w.add_tensor(name("attn_output.weight"), linear(o.n_embd, o.n_head * o.head_dim), o.matrix_type);
        w.add_tensor(name("attn_q_norm.weight"), norm(o.head_dim), GgmlType::F32);
        w.add_tensor(name("attn_k_norm.weight"), norm(o.head_dim), GgmlType::F32);
        w.add_tensor(name("post_attention_norm.weight"), norm(o.n_embd), GgmlType::F32);
        w.add_tensor(name("ffn_norm.weight"), norm(o.n_embd), GgmlType::F32);
        w.add_tensor(name("ffn_gate.weight"), linear(o.n_ff, o.n_embd), o.matrix_type);
        w.add_tensor(name("ffn_up.weight"), linear(o.n_ff, o.n_embd), o.matrix_type);
        w.add_tensor(name("ffn_down.weight"), linear(o.n_embd, o.n_ff), o.matrix_type);
        w.add_tensor(name("post_ffw_norm.weight"), norm(o.n_embd), GgmlType::F32);
    }
    w.write(path);
    return path;
}

}  // namespace sz::test
