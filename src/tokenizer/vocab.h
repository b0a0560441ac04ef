// Vocabulary of a SentencePiece-style model: pieces, scores, token types and special ids, as
// stored in GGUF `tokenizer.ggml.*` keys or in Hugging Face tokenizer files.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace sz {

namespace gguf { class File; }

// Values of GGUF `tokenizer.ggml.token_type` (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
    UNDEFINED = 0, NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6,
};

struct Vocab {
    std::vector<std::string> pieces;   // U+2581 stands for a space in NORMAL pieces
    std::vector<float> scores;
    std::vector<TokenType> types;
    std::unordered_map<std::string, int32_t> piece_to_id;

    int32_t bos_id = -1;
    int32_t eos_id = -1;
    int32_t eot_id = -1;   // <end_of_turn> or equivalent, found by text when not given
    int32_t unk_id = -1;
    int32_t pad_id = -1;
    bool add_bos = true;
    bool add_eos = false;
    bool add_space_prefix = false;
    std::string chat_template;  // the model's own Jinja template, empty when the file has none

    int32_t size() const { return static_cast<int32_t>(pieces.size()); }

    // Id of the piece with exactly this text, or -1.
    int32_t find_piece(const std::string& piece) const;

    // Builds piece_to_id from pieces, sets eot_id from the piece text when it is unset, then
    // validates (see validate()). `source` names the file in error messages.
    void finalize(const std::string& source);

    // Throws sz::Error naming `source` when the arrays differ in length, a token type is not
    // one of TokenType, a piece occurs twice, or a special id is outside the vocabulary.
    void validate(const std::string& source) const;

    // Builds the vocabulary from GGUF metadata; throws sz::Error naming the file and key.
    static Vocab from_gguf(const gguf::File& file);
};

}  // namespace sz
