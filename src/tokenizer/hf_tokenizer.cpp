// Tokenizer::from_hf_dir: builds the same Vocab that llama.cpp's converter would write into a
// GGUF, from a Hugging Face model folder, so that encoding is identical on both paths.
//
// With tokenizer.model present the SentencePiece model is read by sentencepiece_model.cpp,
// which is also what the converter prefers. Otherwise tokenizer.json is read (SentencePiece-
// style BPE or Unigram). tokenizer_config.json supplies special tokens, added tokens, the
// add_bos/add_eos flags and the chat template; config.json supplies the vocabulary size.
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/tokenizer.h"

namespace sz {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr float kAddedTokenScore = -1000.0f;   // what the converter writes for added tokens
constexpr float kPaddingTokenScore = -10000.0f;

std::optional<json> read_json_if_exists(const fs::path& path) {
    if (!fs::exists(path)) {
        return std::nullopt;
    }
    std::ifstream stream(path);
    if (!stream) {
        fail("{}: cannot open the file for reading", path.string());
    }
    try {
        return json::parse(stream);
    } catch (const json::exception& e) {
        fail("{}: invalid JSON: {}", path.string(), e.what());
    }
}

std::string read_text_file(const fs::path& path) {
    std::ifstream stream(path, std::ios::binary);
    if (!stream) {
        fail("{}: cannot open the file for reading", path.string());
    }
    std::ostringstream buffer;
    buffer << stream.rdbuf();
    return buffer.str();
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) {
        text.replace(pos, from.size(), to);
    }
    return text;
}

// Text of a special token entry in tokenizer_config.json: a plain string or an AddedToken
// object {"content": ...}. Empty when absent or null.
std::string special_token_text(const json& config, const char* key) {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) {
        return "";
    }
    if (it->is_string()) {
        return it->get<std::string>();
    }
    if (it->is_object() && it->contains("content")) {
        return it->at("content").get<std::string>();
    }
    return "";
}

// The converter also treats these texts as CONTROL when the config does not flag them special.
bool looks_special(const std::string& text) {
    auto starts = [&](const char* prefix) { return text.rfind(prefix, 0) == 0; };
    auto ends = [&](const std::string& suffix) {
        return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    return text == "<pad>" || text == "<mask>" || text == "<cls>" || text == "<sep>" || text == "<eod>" ||
           (starts("<|") && ends("|>")) || (starts("<unused") && ends(">"));
}

std::optional<int64_t> configured_vocab_size(const std::optional<json>& model_config) {
    if (!model_config) {
        return std::nullopt;
    }
    for (const json* section : {&*model_config, model_config->contains("text_config")
                                                   ? &model_config->at("text_config")
                                                   : nullptr}) {
        if (section != nullptr && section->contains("vocab_size") && section->at("vocab_size").is_number_integer()) {
            return section->at("vocab_size").get<int64_t>();
        }
    }
    return std::nullopt;
}

void resize_vocab(Vocab& vocab, size_t size) {
    size_t old_size = vocab.pieces.size();
    vocab.pieces.resize(size);
    vocab.scores.resize(size, kPaddingTokenScore);
    vocab.types.resize(size, TokenType::UNUSED);
    for (size_t i = old_size; i < size; ++i) {
        vocab.pieces[i] = "[PAD" + std::to_string(i) + "]";
    }
}

// Marks one added token the way the converter does. Special (or special-looking) tokens become
// CONTROL with their text unchanged. Others become USER_DEFINED with U+2581 turned back into
// spaces, because they are matched on raw text before spaces are replaced.
void apply_added_token(Vocab& vocab, int64_t id, const std::string& content, bool special) {
    if (id < 0 || id >= vocab.size()) {
        return;  // the converter drops added tokens beyond the model's vocabulary size
    }
    bool control = special || looks_special(content);
    vocab.pieces[id] = control ? content : replace_all(content, "\xE2\x96\x81", " ");
    vocab.types[id] = control ? TokenType::CONTROL : TokenType::USER_DEFINED;
    vocab.scores[id] = kAddedTokenScore;
}

void load_sentencepiece_model(const fs::path& path, Vocab& vocab) {
    SentencePieceModel model = read_sentencepiece_model(path.string());
    vocab.pieces = std::move(model.pieces);
    vocab.scores = std::move(model.scores);
    vocab.types = std::move(model.types);
    // The converter keeps UNKNOWN, CONTROL, UNUSED and BYTE and writes every other piece as
    // NORMAL; user-defined pieces become USER_DEFINED only through tokenizer_config.json.
    for (TokenType& type : vocab.types) {
        if (type == TokenType::USER_DEFINED) {
            type = TokenType::NORMAL;
        }
    }
    const int32_t n_pieces = static_cast<int32_t>(vocab.pieces.size());
    auto id_or_none = [&](int32_t id) { return id >= 0 && id < n_pieces ? id : -1; };
    vocab.bos_id = id_or_none(model.bos_id);
    vocab.eos_id = id_or_none(model.eos_id);
    vocab.unk_id = id_or_none(model.unk_id);
    vocab.pad_id = id_or_none(model.pad_id);
    vocab.add_space_prefix = model.add_dummy_prefix;
}

// True when any normalizer or pre-tokenizer step of tokenizer.json prepends U+2581.
bool prepends_space(const json& tokenizer) {
    bool found = false;
    auto visit = [&](const json& node, auto& self) -> void {
        if (node.is_array()) {
            for (const json& item : node) {
                self(item, self);
            }
            return;
        }
        if (!node.is_object()) {
            return;
        }
        std::string type = node.value("type", "");
        if (type == "Prepend" && node.value("prepend", "") == "\xE2\x96\x81") {
            found = true;
        }
        if (type == "Metaspace" && (node.value("add_prefix_space", false) ||
                                    node.value("prepend_scheme", "") == "always")) {
            found = true;
        }
        for (const char* child : {"normalizers", "pretokenizers"}) {
            if (node.contains(child)) {
                self(node.at(child), self);
            }
        }
    };
    for (const char* section : {"normalizer", "pre_tokenizer"}) {
        if (tokenizer.contains(section)) {
            visit(tokenizer.at(section), visit);
        }
    }
    return found;
}

bool uses_byte_level(const json& tokenizer) {
    for (const char* section : {"pre_tokenizer", "decoder"}) {
        if (tokenizer.contains(section) && tokenizer.at(section).dump().find("\"ByteLevel\"") != std::string::npos) {
            return true;
        }
    }
    return false;
}

void load_tokenizer_json(const fs::path& path, const json& tokenizer, Vocab& vocab) {
    const json& model = tokenizer.at("model");
    const std::string type = model.value("type", "");
    if (uses_byte_level(tokenizer)) {
        fail("{}: byte-level (GPT-2 style) BPE tokenizers are not supported yet; only "
             "SentencePiece-style vocabularies with U+2581 for spaces are", path.string());
    }
    bool byte_fallback = model.value("byte_fallback", false);

    if (type == "Unigram") {
        // TODO: Unigram vocabularies are encoded with the BPE merge rule, as llama.cpp does for
        // any SentencePiece vocabulary. Hugging Face's Unigram (Viterbi) encoder can split
        // the same text differently.
        for (const json& entry : model.at("vocab")) {
            vocab.pieces.push_back(entry.at(0).get<std::string>());
            vocab.scores.push_back(entry.at(1).get<float>());
            vocab.types.push_back(TokenType::NORMAL);
        }
        if (model.contains("unk_id") && model.at("unk_id").is_number_integer()) {
            vocab.unk_id = model.at("unk_id").get<int32_t>();
        }
    } else if (type == "BPE") {
        const json& pieces = model.at("vocab");
        int64_t max_id = -1;
        for (const auto& [piece, id] : pieces.items()) {
            if (id.get<int64_t>() < 0) {
                fail("{}: model.vocab gives '{}' the negative id {}", path.string(), piece, id.get<int64_t>());
            }
            max_id = std::max<int64_t>(max_id, id.get<int64_t>());
        }
        resize_vocab(vocab, static_cast<size_t>(max_id + 1));
        for (const auto& [piece, id] : pieces.items()) {
            vocab.pieces[id.get<int64_t>()] = piece;
            vocab.types[id.get<int64_t>()] = TokenType::NORMAL;
        }
        // SentencePiece merges by piece score, BPE by merge rank: the earlier a merge, the
        // higher the score of the piece it produces. Pieces no merge produces rank after all
        // merges, in id order.
        const size_t n_merges = model.contains("merges") ? model.at("merges").size() : 0;
        std::vector<bool> scored(vocab.pieces.size(), false);
        for (size_t rank = 0; rank < n_merges; ++rank) {
            const json& merge = model.at("merges").at(rank);
            std::string merged;
            if (merge.is_string()) {
                std::string text = merge.get<std::string>();
                size_t split = text.find(' ');
                merged = split == std::string::npos ? text : text.substr(0, split) + text.substr(split + 1);
            } else {
                merged = merge.at(0).get<std::string>() + merge.at(1).get<std::string>();
            }
            auto it = pieces.find(merged);
            if (it != pieces.end() && !scored[it->get<int64_t>()]) {
                scored[it->get<int64_t>()] = true;
                vocab.scores[it->get<int64_t>()] = -static_cast<float>(rank);
            }
        }
        for (size_t id = 0; id < vocab.pieces.size(); ++id) {
            if (!scored[id]) {
                vocab.scores[id] = -static_cast<float>(n_merges + id);
            }
        }
        std::string unk = model.contains("unk_token") && model.at("unk_token").is_string()
                              ? model.at("unk_token").get<std::string>() : "";
        if (!unk.empty() && pieces.contains(unk)) {
            vocab.unk_id = pieces.at(unk).get<int32_t>();
        }
    } else {
        fail("{}: tokenizer model type '{}' is not supported; expected 'BPE' or 'Unigram'",
             path.string(), type);
    }

    for (size_t id = 0; id < vocab.pieces.size(); ++id) {
        const std::string& piece = vocab.pieces[id];
        if (byte_fallback && piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece.back() == '>') {
            vocab.types[id] = TokenType::BYTE;
        }
    }
    if (vocab.unk_id >= 0 && vocab.unk_id < vocab.size()) {
        vocab.types[vocab.unk_id] = TokenType::UNKNOWN;
    }
    vocab.add_space_prefix = prepends_space(tokenizer);
}

}  // namespace

namespace {

Vocab load_hf_vocab(const std::string& dir) {
    const fs::path folder(dir);
    if (!fs::is_directory(folder)) {
        fail("{}: not a folder; expected a Hugging Face model folder with tokenizer.json or "
             "tokenizer.model", dir);
    }
    const std::optional<json> config = read_json_if_exists(folder / "tokenizer_config.json");
    const std::optional<json> model_config = read_json_if_exists(folder / "config.json");
    const std::optional<json> tokenizer_json =
        fs::exists(folder / "tokenizer.model") ? std::nullopt : read_json_if_exists(folder / "tokenizer.json");

    Vocab vocab;
    vocab.add_bos = false;  // set from tokenizer_config.json once the BOS id is known
    std::string source;
    if (fs::exists(folder / "tokenizer.model")) {
        source = (folder / "tokenizer.model").string();
        load_sentencepiece_model(folder / "tokenizer.model", vocab);
    } else if (tokenizer_json) {
        source = (folder / "tokenizer.json").string();
        load_tokenizer_json(folder / "tokenizer.json", *tokenizer_json, vocab);
    } else {
        fail("{}: neither tokenizer.model nor tokenizer.json found", dir);
    }

    // llama.cpp's converter writes add_space_prefix = false for every Gemma model, whatever
    // the SentencePiece normalizer specifies.
    if (model_config && model_config->value("model_type", "").rfind("gemma", 0) == 0) {
        vocab.add_space_prefix = false;
    }

    // The model's embedding has vocab_size rows; the converter pads the vocabulary with
    // [PADn] tokens up to that size and ignores tokens beyond it. Without config.json, the
    // vocabulary grows to hold every added token of tokenizer.json.
    if (std::optional<int64_t> size = configured_vocab_size(model_config); size && *size > 0) {
        if (static_cast<size_t>(*size) > vocab.pieces.size()) {
            resize_vocab(vocab, static_cast<size_t>(*size));
        } else {
            vocab.pieces.resize(*size);
            vocab.scores.resize(*size);
            vocab.types.resize(*size);
        }
    } else if (tokenizer_json && tokenizer_json->contains("added_tokens")) {
        for (const json& token : tokenizer_json->at("added_tokens")) {
            int64_t id = token.at("id").get<int64_t>();
            if (id >= vocab.size()) {
                resize_vocab(vocab, static_cast<size_t>(id) + 1);
            }
        }
    }

    // Added tokens: tokenizer.json's own list first, then added_tokens.json, then the
    // tokenizer_config.json decoder table, which has the last word as in the converter.
    if (tokenizer_json && tokenizer_json->contains("added_tokens")) {
        for (const json& token : tokenizer_json->at("added_tokens")) {
            apply_added_token(vocab, token.at("id").get<int64_t>(), token.at("content").get<std::string>(),
                              token.value("special", false));
        }
    }
    if (std::optional<json> added = read_json_if_exists(folder / "added_tokens.json")) {
        for (const auto& [content, id] : added->items()) {
            if (id.get<int64_t>() >= 0 && id.get<int64_t>() < vocab.size()) {
                vocab.pieces[id.get<int64_t>()] = content;
                vocab.types[id.get<int64_t>()] = TokenType::USER_DEFINED;
                vocab.scores[id.get<int64_t>()] = kAddedTokenScore;
            }
        }
    }
    if (config && config->contains("added_tokens_decoder")) {
        for (const auto& [id_text, token] : config->at("added_tokens_decoder").items()) {
            int64_t id = -1;
            try {
                id = std::stoll(id_text);
            } catch (const std::exception&) {
                fail("{}: added_tokens_decoder has the key '{}', expected a token id",
                     (folder / "tokenizer_config.json").string(), id_text);
            }
            apply_added_token(vocab, id, token.at("content").get<std::string>(), token.value("special", false));
        }
    }

    vocab.piece_to_id.clear();
    vocab.finalize(source);  // index first, so special tokens can be looked up by text

    if (config) {
        const std::pair<const char*, int32_t*> special_tokens[] = {
            {"bos_token", &vocab.bos_id}, {"eos_token", &vocab.eos_id},
            {"unk_token", &vocab.unk_id}, {"pad_token", &vocab.pad_id},
        };
        for (const auto& [key, id] : special_tokens) {
            std::string text = special_token_text(*config, key);
            if (text.empty()) {
                continue;
            }
            int32_t found = vocab.find_piece(text);
            if (found < 0) {
                fail("{}: {} '{}' is not in the vocabulary", (folder / "tokenizer_config.json").string(), key, text);
            }
            *id = found;
        }
        vocab.add_bos = config->value("add_bos_token", vocab.bos_id >= 0);
        vocab.add_eos = config->value("add_eos_token", false);

        if (config->contains("chat_template")) {
            const json& chat_template = config->at("chat_template");
            if (chat_template.is_string()) {
                vocab.chat_template = chat_template.get<std::string>();
            } else if (chat_template.is_array()) {
                // Named templates: [{"name": "default", "template": "..."}, ...]
                for (const json& entry : chat_template) {
                    if (entry.value("name", "") == "default") {
                        vocab.chat_template = entry.value("template", "");
                    }
                }
            }
        }
    } else {
        vocab.add_bos = vocab.bos_id >= 0;
    }
    if (vocab.chat_template.empty() && fs::exists(folder / "chat_template.jinja")) {
        vocab.chat_template = read_text_file(folder / "chat_template.jinja");
    }
    if (vocab.chat_template.empty()) {
        if (std::optional<json> file = read_json_if_exists(folder / "chat_template.json")) {
            vocab.chat_template = file->value("chat_template", "");
        }
    }

    vocab.validate(source);
    return vocab;
}

}  // namespace

Tokenizer Tokenizer::from_hf_dir(const std::string& dir) {
    try {
        return Tokenizer(load_hf_vocab(dir));
    } catch (const json::exception& e) {
        // A field with an unexpected JSON type or a missing required field.
        fail("{}: unexpected content in the tokenizer files: {}", dir, e.what());
    }
}

}  // namespace sz
