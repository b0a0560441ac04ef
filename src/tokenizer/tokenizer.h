// Text <-> token ids for SentencePiece-BPE vocabularies with byte fallback (Gemma, Llama 2).
//
// Encoding matches llama.cpp's SPM path: user-defined (and, when requested, control) tokens
// are split out of the raw text first, longest first; each remaining fragment has spaces
// replaced by U+2581, and adjacent symbols are merged by highest piece score (ties: leftmost)
// until no pair forms a known piece; unknown symbols fall back to <0xXX> byte tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/vocab.h"

namespace sz {

class Tokenizer {
public:
    explicit Tokenizer(Vocab vocab);
    static Tokenizer from_gguf(const gguf::File& file);
    // Loads tokenizer.json (and tokenizer_config.json for specials/template) from a
    // Hugging Face model folder.
    static Tokenizer from_hf_dir(const std::string& dir);

    // add_special: prepend BOS (and append EOS) as the vocabulary says.
    // parse_special: match CONTROL tokens written as text ("<start_of_turn>"); USER_DEFINED
    // tokens are always matched, as llama.cpp does.
    std::vector<int32_t> encode(const std::string& text, bool add_special, bool parse_special) const;

    // Raw bytes of one token: "▁" becomes a space, <0xXX> becomes that byte, CONTROL tokens
    // are empty unless render_special.
    std::string token_to_piece(int32_t id, bool render_special = false) const;
    std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;

    // True for EOS, EOT and other end-of-generation tokens.
    bool is_end_of_generation(int32_t id) const;

    const Vocab& vocab() const { return vocab_; }

private:
    Vocab vocab_;
    struct Impl;
    std::shared_ptr<const Impl> impl_;
};

// Turns a token stream into text without splitting a UTF-8 character that byte-fallback
// tokens spread over several tokens: push() returns only complete characters.
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
    std::string push(int32_t id);
    std::string flush();  // whatever bytes are still pending, even if incomplete

private:
    const Tokenizer& tokenizer_;
    std::string pending_;
};

}  // namespace sz
