#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "formats/gguf.h"

namespace sz {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// Texts that llama.cpp (as vendored by llama-cpp-python 0.3.36) treats as end of generation
// and as CONTROL tokens whatever their stored type. The CONTROL override changes tokenization:
// such a token is no longer split out of the text when parse_special is false.
// NOTE: the list includes "</s>", which in Gemma 3 is the USER_DEFINED HTML strikethrough
// closing tag (id 212), so generation stops on it as it does in llama.cpp.
const std::unordered_set<std::string_view> kEndOfGenerationTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",  // DeepSeek
    "[e~[",
};

// Byte length of the UTF-8 sequence that starts with `lead`, judged by its top four bits as
// llama.cpp does: continuation and invalid bytes count as one-byte characters.
size_t utf8_sequence_length(unsigned char lead) {
    static constexpr size_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return kLengths[lead >> 4];
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
    std::string result;
    result.reserve(text.size());
    size_t start = 0;
    while (true) {
        size_t match = text.find(from, start);
        if (match == std::string_view::npos) {
            break;
        }
        result.append(text.substr(start, match - start));
        result.append(to);
        start = match + from.size();
    }
    result.append(text.substr(start));
    return result;
}

// Parses "<0xAB>" into 0xAB; returns -1 for any other text.
int parse_byte_piece(std::string_view piece) {
    if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') {
        return -1;
    }
    int value = 0;
    for (char c : piece.substr(3, 2)) {
        value <<= 4;
        if (c >= '0' && c <= '9') {
            value |= c - '0';
        } else if (c >= 'A' && c <= 'F') {
            value |= c - 'A' + 10;
        } else if (c >= 'a' && c <= 'f') {
            value |= c - 'a' + 10;
        } else {
            return -1;
        }
    }
    return value;
}

}  // namespace

// Lookup structures derived once from the vocabulary and shared by copies of a Tokenizer.
// Piece texts are copied into `arena` so that the string_view keys stay valid however the
// owning Tokenizer is copied or moved.
struct Tokenizer::Impl {
    struct SpecialToken {
        int32_t id;
        uint32_t length;
        bool control;  // matched only when parse_special is requested
    };

    // A match of a special token in the input text.
    struct SpecialMatch {
        uint32_t rank;  // index into `specials`, which is sorted longest text first
        uint32_t position;
    };

    std::string arena;
    std::vector<size_t> piece_offsets;  // piece i is arena[piece_offsets[i], piece_offsets[i + 1])
    std::unordered_map<std::string_view, int32_t> piece_ids;
    std::vector<float> scores;
    std::array<int32_t, 256> byte_tokens{};
    std::vector<bool> control;             // CONTROL or UNKNOWN, or forced by its text
    std::vector<bool> end_of_generation;
    int32_t unk_id = -1;

    // Byte trie over the special token texts. Node n's edges are edge_byte/edge_child
    // [first_edge[n], first_edge[n + 1]); node 0 is the root.
    struct Trie {
        std::vector<int32_t> rank;  // rank of the special token ending at each node, or -1
        std::vector<uint32_t> first_edge;
        std::vector<unsigned char> edge_byte;
        std::vector<int32_t> edge_child;

        int32_t child(int32_t node, unsigned char byte) const {
            for (uint32_t edge = first_edge[node]; edge < first_edge[node + 1]; ++edge) {
                if (edge_byte[edge] == byte) {
                    return edge_child[edge];
                }
            }
            return -1;
        }
    };

    std::vector<SpecialToken> specials;  // llama.cpp's matching order
    Trie trie;

    explicit Impl(const Vocab& vocab);

    std::string_view piece_text(int32_t id) const {
        return std::string_view(arena).substr(piece_offsets[id], piece_offsets[id + 1] - piece_offsets[id]);
    }

    int32_t find(std::string_view text) const {
        auto it = piece_ids.find(text);
        return it == piece_ids.end() ? -1 : it->second;
    }

    void build_trie();
    std::vector<SpecialMatch> find_special_matches(std::string_view text, bool parse_special) const;
    void encode_fragment(std::string_view text, std::vector<int32_t>& output) const;
    void append_bytes(std::string_view text, std::vector<int32_t>& output) const;
};

Tokenizer::Impl::Impl(const Vocab& vocab) {
    const size_t n_tokens = vocab.pieces.size();

    size_t arena_size = 0;
    for (const std::string& piece : vocab.pieces) {
        arena_size += piece.size();
    }
    arena.reserve(arena_size);
    piece_offsets.reserve(n_tokens + 1);
    for (const std::string& piece : vocab.pieces) {
        piece_offsets.push_back(arena.size());
        arena += piece;
    }
    piece_offsets.push_back(arena.size());
    piece_ids.reserve(n_tokens);
    for (size_t i = 0; i < n_tokens; ++i) {
        if (!vocab.pieces[i].empty()) {
            piece_ids.emplace(piece_text(static_cast<int32_t>(i)), static_cast<int32_t>(i));
        }
    }

    scores = vocab.scores;
    unk_id = vocab.unk_id;

    control.assign(n_tokens, false);
    end_of_generation.assign(n_tokens, false);
    for (size_t i = 0; i < n_tokens; ++i) {
        TokenType type = vocab.types[i];
        bool eog_text = kEndOfGenerationTexts.count(vocab.pieces[i]) > 0;
        control[i] = type == TokenType::CONTROL || type == TokenType::UNKNOWN || eog_text;
        end_of_generation[i] = eog_text;
    }
    for (int32_t id : {vocab.eos_id, vocab.eot_id}) {
        if (id >= 0) {
            end_of_generation[id] = true;
        }
    }

    // Byte fallback uses "<0xAB>" pieces, else the piece made of that single byte.
    for (int byte = 0; byte < 256; ++byte) {
        static const char* const kHex = "0123456789ABCDEF";
        const char name[7] = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>', 0};
        int32_t id = find(name);
        if (id < 0) {
            id = find(std::string(1, static_cast<char>(byte)));
        }
        byte_tokens[byte] = id;
    }

    // llama.cpp collects CONTROL, USER_DEFINED and UNKNOWN tokens by ascending id and orders
    // them with std::sort by text length, longest first. std::sort is not stable, so the order
    // of equal lengths is whatever libstdc++ produces. Running the same sort on the same
    // sequence reproduces it.
    std::vector<int32_t> special_ids;
    for (size_t i = 0; i < n_tokens; ++i) {
        if ((control[i] || vocab.types[i] == TokenType::USER_DEFINED) && !vocab.pieces[i].empty()) {
            special_ids.push_back(static_cast<int32_t>(i));
        }
    }
    std::sort(special_ids.begin(), special_ids.end(), [&](int32_t a, int32_t b) {
        return vocab.pieces[a].size() > vocab.pieces[b].size();
    });
    for (int32_t id : special_ids) {
        specials.push_back({id, static_cast<uint32_t>(vocab.pieces[id].size()), control[id]});
    }
    build_trie();
}

void Tokenizer::Impl::build_trie() {
    // Edges keyed by (node << 8) | byte; the ordered map lists them grouped by node, which is
    // the flat layout's order.
    std::map<uint64_t, int32_t> edges;
    trie.rank.assign(1, -1);
    for (size_t rank = 0; rank < specials.size(); ++rank) {
        int32_t node = 0;
        for (unsigned char byte : piece_text(specials[rank].id)) {
            uint64_t key = (static_cast<uint64_t>(node) << 8) | byte;
            auto it = edges.find(key);
            if (it == edges.end()) {
                it = edges.emplace(key, static_cast<int32_t>(trie.rank.size())).first;
                trie.rank.push_back(-1);
            }
            node = it->second;
        }
        trie.rank[node] = static_cast<int32_t>(rank);
    }

    trie.first_edge.assign(trie.rank.size() + 1, 0);
    for (const auto& [key, child] : edges) {
        ++trie.first_edge[(key >> 8) + 1];
        trie.edge_byte.push_back(static_cast<unsigned char>(key & 0xFF));
        trie.edge_child.push_back(child);
    }
    for (size_t node = 1; node < trie.first_edge.size(); ++node) {
        trie.first_edge[node] += trie.first_edge[node - 1];
    }
}

// Every occurrence of every special token that parse_special allows, sorted by rank and then
// position: the order in which llama.cpp's partition pass tries them.
std::vector<Tokenizer::Impl::SpecialMatch> Tokenizer::Impl::find_special_matches(
    std::string_view text, bool parse_special) const {
    std::vector<SpecialMatch> matches;
    for (size_t start = 0; start < text.size(); ++start) {
        int32_t node = 0;
        for (size_t i = start; i < text.size(); ++i) {
            node = trie.child(node, static_cast<unsigned char>(text[i]));
            if (node < 0) {
                break;
            }
            int32_t rank = trie.rank[node];
            if (rank >= 0 && (parse_special || !specials[rank].control)) {
                matches.push_back({static_cast<uint32_t>(rank), static_cast<uint32_t>(start)});
            }
        }
    }
    if (matches.size() < 2) {
        return matches;
    }
    // Counting sort by rank: positions were found in increasing order and stay so within a
    // rank. Runs of whitespace match dozens of user-defined tokens at every position, so the
    // list can be much longer than the text.
    std::vector<uint32_t> rank_starts(specials.size() + 1, 0);
    for (const SpecialMatch& match : matches) {
        ++rank_starts[match.rank + 1];
    }
    for (size_t rank = 1; rank < rank_starts.size(); ++rank) {
        rank_starts[rank] += rank_starts[rank - 1];
    }
    std::vector<SpecialMatch> sorted(matches.size());
    for (const SpecialMatch& match : matches) {
        sorted[rank_starts[match.rank]++] = match;
    }
    return sorted;
}

void Tokenizer::Impl::append_bytes(std::string_view text, std::vector<int32_t>& output) const {
    for (unsigned char byte : text) {
        int32_t id = byte_tokens[byte];
        if (id < 0) {
            id = unk_id;
        }
        if (id < 0) {
            fail("cannot encode byte 0x{:02X}: the vocabulary has no <0x{:02X}> token and no "
                 "unknown token", byte, byte);
        }
        output.push_back(id);
    }
}

// SentencePiece BPE on one fragment whose spaces are already U+2581: start from UTF-8
// characters and keep merging the adjacent pair that forms the highest-scoring piece.
void Tokenizer::Impl::encode_fragment(std::string_view text, std::vector<int32_t>& output) const {
    struct Symbol {
        int32_t prev;
        int32_t next;
        uint32_t offset;
        uint32_t length;  // 0 once merged into its left neighbour
    };
    struct Bigram {
        float score;
        int32_t left;
        int32_t right;
        uint32_t length;  // left.length + right.length when pushed; detects stale entries
    };
    // Highest score first; equal scores go leftmost first.
    auto lower_priority = [](const Bigram& a, const Bigram& b) {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    };

    std::vector<Symbol> symbols;
    symbols.reserve(text.size());
    for (size_t offset = 0; offset < text.size();) {
        size_t length = std::min(utf8_sequence_length(static_cast<unsigned char>(text[offset])),
                                 text.size() - offset);
        auto index = static_cast<int32_t>(symbols.size());
        symbols.push_back({index - 1, offset + length == text.size() ? -1 : index + 1,
                           static_cast<uint32_t>(offset), static_cast<uint32_t>(length)});
        offset += length;
    }

    std::vector<Bigram> storage;
    storage.reserve(symbols.size());
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(lower_priority)> queue(
        lower_priority, std::move(storage));
    auto try_add_bigram = [&](int32_t left, int32_t right) {
        if (left < 0 || right < 0) {
            return;
        }
        uint32_t length = symbols[left].length + symbols[right].length;
        int32_t id = find(text.substr(symbols[left].offset, length));
        if (id >= 0) {
            queue.push({scores[id], left, right, length});
        }
    };

    for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) {
        try_add_bigram(i - 1, i);
    }
    while (!queue.empty()) {
        Bigram bigram = queue.top();
        queue.pop();
        Symbol& left = symbols[bigram.left];
        Symbol& right = symbols[bigram.right];
        if (left.length == 0 || right.length == 0 || left.length + right.length != bigram.length) {
            continue;  // one side changed since this pair was queued
        }
        left.length += right.length;
        right.length = 0;
        left.next = right.next;
        if (right.next >= 0) {
            symbols[right.next].prev = bigram.left;
        }
        try_add_bigram(left.prev, bigram.left);
        try_add_bigram(bigram.left, left.next);
    }

    // Every merged symbol is a piece by construction; a single character that is not falls
    // back to its bytes. (llama.cpp's re-split along recorded merges never applies, because
    // it is only consulted for texts that are not pieces, and only pieces are recorded.)
    for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
        std::string_view piece = text.substr(symbols[i].offset, symbols[i].length);
        int32_t id = find(piece);
        if (id >= 0) {
            output.push_back(id);
        } else {
            append_bytes(piece, output);
        }
    }
}

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
    if (vocab_.piece_to_id.size() != vocab_.pieces.size()) {
        vocab_.finalize("vocabulary");
    } else {
        vocab_.validate("vocabulary");
    }
    impl_ = std::make_shared<const Impl>(vocab_);
}

Tokenizer Tokenizer::from_gguf(const gguf::File& file) { return Tokenizer(Vocab::from_gguf(file)); }

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool add_special,
                                       bool parse_special) const {
    if (text.size() > UINT32_MAX) {
        fail("cannot tokenize a text of {} bytes: the limit is 4 GiB", text.size());
    }
    std::vector<int32_t> output;
    output.reserve(text.size() / 3 + 2);
    if (add_special && vocab_.add_bos) {
        output.push_back(vocab_.bos_id);
    }

    // Split out special tokens: each one, longest first, claims all its occurrences that do
    // not overlap text already claimed by a longer (or earlier-sorted) special token.
    std::vector<Impl::SpecialMatch> matches = impl_->find_special_matches(text, parse_special);
    std::vector<std::pair<uint32_t, int32_t>> accepted;  // position, token id
    if (!matches.empty()) {
        std::vector<uint8_t> claimed(text.size(), 0);
        for (const Impl::SpecialMatch& match : matches) {
            uint32_t length = impl_->specials[match.rank].length;
            uint8_t* begin = claimed.data() + match.position;
            if (std::memchr(begin, 1, length) != nullptr) {
                continue;
            }
            std::memset(begin, 1, length);
            accepted.emplace_back(match.position, impl_->specials[match.rank].id);
        }
        std::sort(accepted.begin(), accepted.end());
    }

    // Raw text between special tokens is encoded fragment by fragment. With add_space_prefix,
    // a fragment at the start or after a special token gets a leading space.
    bool previous_special = true;
    auto encode_raw = [&](size_t begin, size_t end) {
        if (begin >= end) {
            return;
        }
        std::string fragment = vocab_.add_space_prefix && previous_special ? " " : "";
        fragment.append(text, begin, end - begin);
        impl_->encode_fragment(replace_all(fragment, " ", kSpaceMark), output);
        previous_special = false;
    };
    size_t position = 0;
    for (const auto& [match_position, id] : accepted) {
        encode_raw(position, match_position);
        output.push_back(id);
        previous_special = true;
        position = match_position + vocab_.pieces[id].size();
    }
    encode_raw(position, text.size());

    if (add_special && vocab_.add_eos) {
        output.push_back(vocab_.eos_id);
    }
    return output;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
    if (id < 0 || id >= vocab_.size()) {
        fail("token id {} is outside the vocabulary of {} tokens", id, vocab_.size());
    }
    const std::string& piece = vocab_.pieces[id];
    if (impl_->control[id]) {
        return render_special ? piece : std::string();
    }
    switch (vocab_.types[id]) {
        case TokenType::USER_DEFINED:
            return piece;
        case TokenType::NORMAL:
            return replace_all(piece, kSpaceMark, " ");
        case TokenType::BYTE: {
            int byte = parse_byte_piece(piece);
            return byte >= 0 ? std::string(1, static_cast<char>(byte)) : piece;
        }
        default:
            // UNUSED and UNDEFINED tokens print nothing, as in llama.cpp.
            return std::string();
    }
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
    std::string text;
    bool strip_space = vocab_.add_space_prefix;
    for (int32_t id : ids) {
        std::string piece = token_to_piece(id, render_special);
        // SentencePiece removes the space it prepended from the first piece of text.
        if (strip_space && !piece.empty()) {
            if (piece[0] == ' ') {
                piece.erase(0, 1);
            }
            strip_space = false;
        }
        text += piece;
    }
    return text;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
    return id >= 0 && id < vocab_.size() && impl_->end_of_generation[id];
}

std::string StreamDecoder::push(int32_t id) {
    pending_ += tokenizer_.token_to_piece(id);

    // Hold back a trailing UTF-8 sequence whose lead byte promises more bytes than have
    // arrived. Invalid bytes are passed through, so they cannot stall the stream.
    size_t keep_from = pending_.size();
    for (size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
        auto byte = static_cast<unsigned char>(pending_[pending_.size() - back]);
        if ((byte & 0xC0) == 0x80) {
            continue;  // continuation byte: keep looking for the lead byte
        }
        // 0xF8 and above never start a sequence, so only 0xC0..0xF7 can be incomplete.
        if (byte >= 0xC0 && byte < 0xF8 && utf8_sequence_length(byte) > back) {
            keep_from = pending_.size() - back;
        }
        break;
    }
    std::string complete = pending_.substr(0, keep_from);
    pending_.erase(0, keep_from);
    return complete;
}

std::string StreamDecoder::flush() {
    std::string rest;
    rest.swap(pending_);
    return rest;
}

}  // namespace sz
