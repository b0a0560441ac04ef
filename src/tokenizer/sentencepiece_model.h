// Reader for SentencePiece `tokenizer.model` files (a serialized sentencepiece.ModelProto).
//
// subzero parses the protobuf wire format itself instead of linking libsentencepiece: Debian's
// libsentencepiece pulls in protobuf-lite, and loading it next to libtorch's full libprotobuf
// crashes during static initialisation (seen with libsentencepiece0 0.1.97 and libtorch 1.13).
#pragma once

#include <string>
#include <vector>

#include "tokenizer/vocab.h"

namespace sz {

struct SentencePieceModel {
    std::vector<std::string> pieces;
    std::vector<float> scores;
    std::vector<TokenType> types;
    // TrainerSpec ids (protobuf defaults: unk 0, bos 1, eos 2, pad -1).
    int32_t unk_id = 0;
    int32_t bos_id = 1;
    int32_t eos_id = 2;
    int32_t pad_id = -1;
    bool add_dummy_prefix = true;  // NormalizerSpec.add_dummy_prefix
};

// Throws sz::Error naming the file and byte offset of malformed data.
SentencePieceModel read_sentencepiece_model(const std::string& path);

}  // namespace sz
