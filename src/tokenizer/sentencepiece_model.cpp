// ModelProto fields read (sentencepiece_model.proto): 1 pieces {1 piece, 2 score, 3 type},
// 2 trainer_spec {40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id}, 3 normalizer_spec
// {3 add_dummy_prefix}. Every other field is skipped by its wire type.
#include "tokenizer/sentencepiece_model.h"

#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"

namespace sz {

namespace {

class WireReader {
public:
    WireReader(const std::string& path, const uint8_t* begin, const uint8_t* end, const uint8_t* file_start)
        : path_(path), p_(begin), end_(end), file_start_(file_start) {}

    bool done() const { return p_ >= end_; }

    uint64_t varint() {
        uint64_t value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (p_ >= end_) {
                malformed("truncated varint");
            }
            uint8_t byte = *p_++;
            value |= static_cast<uint64_t>(byte & 0x7F) << shift;
            if ((byte & 0x80) == 0) {
                return value;
            }
        }
        malformed("varint longer than 10 bytes");
    }

    float fixed32_float() {
        need(4);
        float value;
        std::memcpy(&value, p_, 4);
        p_ += 4;
        return value;
    }

    // A length-delimited field's payload as a sub-reader.
    WireReader submessage() {
        uint64_t length = varint();
        need(length);
        WireReader sub(path_, p_, p_ + length, file_start_);
        p_ += length;
        return sub;
    }

    std::string bytes() {
        WireReader sub = submessage();
        return std::string(reinterpret_cast<const char*>(sub.p_), sub.end_ - sub.p_);
    }

    void skip(uint32_t wire_type) {
        switch (wire_type) {
            case 0: varint(); break;
            case 1: need(8); p_ += 8; break;
            case 2: submessage(); break;
            case 5: need(4); p_ += 4; break;
            default: malformed(fmt::format("unsupported wire type {}", wire_type));
        }
    }

private:
    void need(uint64_t n) {
        if (static_cast<uint64_t>(end_ - p_) < n) {
            malformed(fmt::format("field of {} bytes runs past the end of its message", n));
        }
    }
    [[noreturn]] void malformed(const std::string& what) const {
        fail("{}: not a valid SentencePiece model at byte {}: {}", path_, p_ - file_start_, what);
    }

    const std::string& path_;
    const uint8_t* p_;
    const uint8_t* end_;
    const uint8_t* file_start_;
};

TokenType piece_type(uint64_t value) {
    switch (value) {
        case 2: return TokenType::UNKNOWN;
        case 3: return TokenType::CONTROL;
        case 4: return TokenType::USER_DEFINED;
        case 5: return TokenType::UNUSED;
        case 6: return TokenType::BYTE;
        default: return TokenType::NORMAL;
    }
}

}  // namespace

SentencePieceModel read_sentencepiece_model(const std::string& path) {
    MappedFile file(path);
    SentencePieceModel model;
    WireReader reader(path, file.data(), file.data() + file.size(), file.data());
    while (!reader.done()) {
        uint64_t key = reader.varint();
        uint32_t field = static_cast<uint32_t>(key >> 3);
        uint32_t wire_type = static_cast<uint32_t>(key & 7);
        if (field == 1 && wire_type == 2) {
            WireReader piece = reader.submessage();
            std::string text;
            float score = 0.0f;
            TokenType type = TokenType::NORMAL;
            while (!piece.done()) {
                uint64_t piece_key = piece.varint();
                uint32_t piece_field = static_cast<uint32_t>(piece_key >> 3);
                uint32_t piece_wire = static_cast<uint32_t>(piece_key & 7);
                if (piece_field == 1 && piece_wire == 2) {
                    text = piece.bytes();
                } else if (piece_field == 2 && piece_wire == 5) {
                    score = piece.fixed32_float();
                } else if (piece_field == 3 && piece_wire == 0) {
                    type = piece_type(piece.varint());
                } else {
                    piece.skip(piece_wire);
                }
            }
            model.pieces.push_back(std::move(text));
            model.scores.push_back(score);
            model.types.push_back(type);
        } else if ((field == 2 || field == 3) && wire_type == 2) {
            WireReader spec = reader.submessage();
            while (!spec.done()) {
                uint64_t spec_key = spec.varint();
                uint32_t spec_field = static_cast<uint32_t>(spec_key >> 3);
                uint32_t spec_wire = static_cast<uint32_t>(spec_key & 7);
                if (spec_wire != 0) {
                    spec.skip(spec_wire);
                    continue;
                }
                // Ids are int32 varints; negative values arrive sign-extended to 64 bits.
                int32_t value = static_cast<int32_t>(spec.varint());
                if (field == 2 && spec_field == 40) model.unk_id = value;
                if (field == 2 && spec_field == 41) model.bos_id = value;
                if (field == 2 && spec_field == 42) model.eos_id = value;
                if (field == 2 && spec_field == 43) model.pad_id = value;
                if (field == 3 && spec_field == 3) model.add_dummy_prefix = value != 0;
            }
        } else {
            reader.skip(wire_type);
        }
    }
    if (model.pieces.empty()) {
        fail("{}: the SentencePiece model has no pieces", path);
    }
    return model;
}

}  // namespace sz
