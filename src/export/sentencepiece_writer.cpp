#include "export/sentencepiece_writer.h"

#include <cstdint>
#include <cstring>

namespace sz {

namespace {

// Protobuf wire types.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kLengthDelimited = 2;
constexpr uint32_t kFixed32 = 5;

// SentencePiece.Type and TrainerSpec.ModelType values.
constexpr uint64_t kPieceNormal = 1;
constexpr uint64_t kPieceUnknown = 2;
constexpr uint64_t kModelTypeBpe = 2;

const char* const kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

void put_varint(std::string& out, uint64_t value) {
    while (value >= 0x80) {
        out.push_back(static_cast<char>((value & 0x7F) | 0x80));
        value >>= 7;
    }
    out.push_back(static_cast<char>(value));
}

void put_key(std::string& out, uint32_t field, uint32_t wire_type) { put_varint(out, (field << 3) | wire_type); }

void put_uint(std::string& out, uint32_t field, uint64_t value) {
    put_key(out, field, kVarint);
    put_varint(out, value);
}

// Protobuf encodes a negative int32 as its 64-bit two's complement, ten bytes long.
void put_int32(std::string& out, uint32_t field, int32_t value) {
    put_uint(out, field, static_cast<uint64_t>(static_cast<int64_t>(value)));
}

void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
    put_key(out, field, kLengthDelimited);
    put_varint(out, bytes.size());
    out += bytes;
}

void put_float(std::string& out, uint32_t field, float value) {
    put_key(out, field, kFixed32);
    char bytes[4];
    std::memcpy(bytes, &value, sizeof(bytes));  // little-endian hosts only, as the reader
    out.append(bytes, sizeof(bytes));
}

std::string replace_spaces(const std::string& text) {
    std::string out;
    for (char ch : text) {
        out += ch == ' ' ? std::string(kSpaceMark) : std::string(1, ch);
    }
    return out;
}

// Piece text as tokenizer.model stores it.
std::string stored_piece(const Vocab& vocab, size_t id) {
    const std::string& piece = vocab.pieces[id];
    if (vocab.types[id] != TokenType::USER_DEFINED || piece.find(' ') == std::string::npos) {
        return piece;
    }
    std::string marked = replace_spaces(piece);
    return vocab.find_piece(marked) < 0 ? marked : piece;
}

uint64_t stored_type(const Vocab& vocab, size_t id) {
    if (static_cast<int32_t>(id) == vocab.unk_id) {
        return kPieceUnknown;
    }
    TokenType type = vocab.types[id];
    return type == TokenType::UNDEFINED ? kPieceNormal : static_cast<uint64_t>(type);
}

std::string trainer_spec(const Vocab& vocab) {
    bool has_byte_pieces = false;
    for (TokenType type : vocab.types) {
        has_byte_pieces |= type == TokenType::BYTE;
    }
    auto piece_or_empty = [&](int32_t id) { return id >= 0 ? vocab.pieces[id] : std::string(); };

    std::string spec;
    put_uint(spec, 3, kModelTypeBpe);
    put_int32(spec, 4, vocab.size());
    put_uint(spec, 35, has_byte_pieces ? 1 : 0);
    put_int32(spec, 40, vocab.unk_id);
    put_int32(spec, 41, vocab.bos_id);
    put_int32(spec, 42, vocab.eos_id);
    put_int32(spec, 43, vocab.pad_id);
    const std::pair<uint32_t, int32_t> pieces[] = {{45, vocab.unk_id}, {46, vocab.bos_id}, {47, vocab.eos_id},
                                                   {48, vocab.pad_id}};
    for (const auto& [field, id] : pieces) {
        if (id >= 0) {
            put_bytes(spec, field, piece_or_empty(id));
        }
    }
    return spec;
}

std::string normalizer_spec(const Vocab& vocab) {
    std::string spec;
    put_bytes(spec, 1, "identity");
    put_uint(spec, 3, vocab.add_space_prefix ? 1 : 0);
    put_uint(spec, 4, 0);
    put_uint(spec, 5, 1);
    return spec;
}

}  // namespace

std::string sentencepiece_model_proto(const Vocab& vocab) {
    std::string model;
    for (size_t id = 0; id < vocab.pieces.size(); ++id) {
        std::string piece;
        put_bytes(piece, 1, stored_piece(vocab, id));
        put_float(piece, 2, vocab.scores[id]);
        put_uint(piece, 3, stored_type(vocab, id));
        put_bytes(model, 1, piece);
    }
    put_bytes(model, 2, trainer_spec(vocab));
    put_bytes(model, 3, normalizer_spec(vocab));
    return model;
}

}  // namespace sz
