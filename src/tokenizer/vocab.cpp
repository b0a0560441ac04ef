#include "tokenizer/vocab.h"

#include <string>

#include "core/error.h"
#include "formats/gguf.h"

namespace sz {

namespace {

// Texts of end-of-turn tokens in the order they are tried when the file does not name one.
// These are the Gemma, Llama 3, ChatML and Phi 3 markers that llama.cpp also detects by text.
const char* const kEndOfTurnTexts[] = {
    "<end_of_turn>", "<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "<|end_of_text|>",
};

// Reads an optional token id key. A missing key keeps `fallback`; a present key must be a
// valid index, because a wrong BOS or EOS id silently corrupts every prompt.
int32_t read_token_id(const gguf::File& file, const std::string& key, int32_t fallback,
                      size_t n_tokens) {
    if (!file.has(key)) {
        return fallback >= 0 && static_cast<size_t>(fallback) < n_tokens ? fallback : -1;
    }
    uint64_t id = file.get_uint(key);
    if (id >= n_tokens) {
        fail("{}: {} = {} is outside the vocabulary of {} tokens", file.path(), key, id, n_tokens);
    }
    return static_cast<int32_t>(id);
}

}  // namespace

int32_t Vocab::find_piece(const std::string& piece) const {
    auto it = piece_to_id.find(piece);
    return it == piece_to_id.end() ? -1 : it->second;
}

void Vocab::finalize(const std::string& source) {
    piece_to_id.clear();
    piece_to_id.reserve(pieces.size());
    for (size_t i = 0; i < pieces.size(); ++i) {
        // llama.cpp indexes an empty piece under a placeholder text, so it never matches
        // input text. Doing the same keeps piece_to_id at one entry per token.
        std::string key = pieces[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : pieces[i];
        auto [it, inserted] = piece_to_id.emplace(key, static_cast<int32_t>(i));
        if (!inserted) {
            fail("{}: tokens {} and {} have the same text '{}'; every piece must be unique",
                 source, it->second, i, key);
        }
    }

    if (eot_id < 0) {
        for (const char* text : kEndOfTurnTexts) {
            eot_id = find_piece(text);
            if (eot_id >= 0) {
                break;
            }
        }
    }
    validate(source);
}

void Vocab::validate(const std::string& source) const {
    if (pieces.empty()) {
        fail("{}: the vocabulary has no tokens", source);
    }
    if (scores.size() != pieces.size()) {
        fail("{}: tokenizer has {} tokens but {} scores; the arrays must have equal length",
             source, pieces.size(), scores.size());
    }
    if (types.size() != pieces.size()) {
        fail("{}: tokenizer has {} tokens but {} token types; the arrays must have equal length",
             source, pieces.size(), types.size());
    }
    if (piece_to_id.size() != pieces.size()) {
        fail("{}: piece index has {} entries for {} tokens; call Vocab::finalize() after "
             "changing pieces", source, piece_to_id.size(), pieces.size());
    }
    for (size_t i = 0; i < types.size(); ++i) {
        auto value = static_cast<int32_t>(types[i]);
        if (value < static_cast<int32_t>(TokenType::UNDEFINED) ||
            value > static_cast<int32_t>(TokenType::BYTE)) {
            fail("{}: token {} ('{}') has token type {}, expected 0..6", source, i, pieces[i], value);
        }
    }

    const std::pair<const char*, int32_t> special_ids[] = {
        {"bos", bos_id}, {"eos", eos_id}, {"eot", eot_id}, {"unknown", unk_id}, {"padding", pad_id},
    };
    for (const auto& [name, id] : special_ids) {
        if (id < -1 || id >= size()) {
            fail("{}: {} token id {} is outside the vocabulary of {} tokens", source, name, id, size());
        }
    }
    if (add_bos && bos_id < 0) {
        fail("{}: add_bos_token is true but the vocabulary has no BOS token id", source);
    }
    if (add_eos && eos_id < 0) {
        fail("{}: add_eos_token is true but the vocabulary has no EOS token id", source);
    }
}

Vocab Vocab::from_gguf(const gguf::File& file) {
    const std::string model = file.get_string_or("tokenizer.ggml.model", "");
    if (model.empty()) {
        fail("{}: tokenizer.ggml.model is missing; the file has no tokenizer", file.path());
    }
    if (model != "llama") {
        fail("{}: tokenizer.ggml.model is '{}', but only SentencePiece vocabularies ('llama') are "
             "supported; '{}' vocabularies are not supported yet",
             file.path(), model, model == "gpt2" ? "gpt2 (BPE)" : model);
    }

    Vocab vocab;
    vocab.pieces = file.get_string_array("tokenizer.ggml.tokens");
    const size_t n_tokens = vocab.pieces.size();

    // Both arrays are optional in llama.cpp: missing scores are 0, missing types NORMAL.
    if (file.has("tokenizer.ggml.scores")) {
        vocab.scores = file.get_float_array("tokenizer.ggml.scores");
    } else {
        vocab.scores.assign(n_tokens, 0.0f);
    }
    if (file.has("tokenizer.ggml.token_type")) {
        std::vector<int32_t> raw_types = file.get_int_array("tokenizer.ggml.token_type");
        vocab.types.reserve(raw_types.size());
        for (int32_t type : raw_types) {
            vocab.types.push_back(static_cast<TokenType>(type));
        }
    } else {
        vocab.types.assign(n_tokens, TokenType::NORMAL);
    }
    if (vocab.scores.size() != n_tokens) {
        fail("{}: tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}",
             file.path(), vocab.scores.size(), n_tokens);
    }
    if (vocab.types.size() != n_tokens) {
        fail("{}: tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
             file.path(), vocab.types.size(), n_tokens);
    }

    // Defaults are llama.cpp's for SentencePiece vocabularies (Llama-style ids), used only
    // when a key is missing.
    vocab.bos_id = read_token_id(file, "tokenizer.ggml.bos_token_id", 1, n_tokens);
    vocab.eos_id = read_token_id(file, "tokenizer.ggml.eos_token_id", 2, n_tokens);
    vocab.unk_id = read_token_id(file, "tokenizer.ggml.unknown_token_id", 0, n_tokens);
    vocab.pad_id = read_token_id(file, "tokenizer.ggml.padding_token_id", -1, n_tokens);
    vocab.eot_id = read_token_id(file, "tokenizer.ggml.eot_token_id", -1, n_tokens);
    vocab.add_bos = file.get_bool_or("tokenizer.ggml.add_bos_token", true);
    vocab.add_eos = file.get_bool_or("tokenizer.ggml.add_eos_token", false);
    vocab.add_space_prefix = file.get_bool_or("tokenizer.ggml.add_space_prefix", true);
    vocab.chat_template = file.get_string_or("tokenizer.chat_template", "");

    vocab.finalize(file.path());
    return vocab;
}

}  // namespace sz
