// Writer for SentencePiece `tokenizer.model` files: a serialized sentencepiece.ModelProto
// built from a Vocab, readable by src/tokenizer/sentencepiece_model.cpp and by the
// sentencepiece library.
//
// Fields written (sentencepiece_model.proto):
//   1 pieces           {1 piece, 2 score, 3 type}, one per token in id order
//   2 trainer_spec     {3 model_type = BPE, 4 vocab_size, 35 byte_fallback, 40-43 unk/bos/eos/pad
//                       ids, 45-48 their pieces}
//   3 normalizer_spec  {1 name "identity", 3 add_dummy_prefix, 4 remove_extra_whitespaces = false,
//                       5 escape_whitespaces = true}
#pragma once

#include <string>

#include "tokenizer/vocab.h"

namespace sz {

// Serializes `vocab`. The piece at unk_id is typed UNKNOWN, as SentencePiece requires one
// UNKNOWN piece. USER_DEFINED pieces, which a GGUF vocabulary stores with literal spaces,
// are written with U+2581 for each space as in the original tokenizer.model, unless that
// text belongs to another token.
std::string sentencepiece_model_proto(const Vocab& vocab);

}  // namespace sz
