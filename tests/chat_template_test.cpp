// Chat template tests: family detection, Gemma rendering against jinja2's rendering of the
// same Jinja source (tests/reference/llama_tokenize.py), role-order errors, and tokenizing a
// rendered prompt with the real vocabulary.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_support.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace sz {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

Vocab make_gemma_like_vocab(const std::string& chat_template = "") {
    Vocab vocab;
    for (const char* piece : {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "a"}) {
        vocab.pieces.push_back(piece);
        vocab.scores.push_back(0.0f);
        vocab.types.push_back(piece[0] == '<' ? TokenType::CONTROL : TokenType::NORMAL);
    }
    vocab.bos_id = 2;
    vocab.eos_id = 1;
    vocab.chat_template = chat_template;
    vocab.finalize("test vocabulary");
    return vocab;
}

using Conversation = std::vector<ChatMessage>;

TEST(ChatTemplate, BaseModelGetsCanonicalGemmaTemplate) {
    ChatTemplate chat_template = ChatTemplate::for_vocab(make_gemma_like_vocab());
    EXPECT_EQ(chat_template.family(), "gemma");
    EXPECT_NE(chat_template.jinja_source().find("<start_of_turn>"), std::string::npos);
    EXPECT_NE(chat_template.jinja_source().find("bos_token"), std::string::npos);
}

TEST(ChatTemplate, KeepsModelsOwnTemplate) {
    const std::string source = "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}{% endfor %}";
    ChatTemplate chat_template = ChatTemplate::for_vocab(make_gemma_like_vocab(source));
    EXPECT_EQ(chat_template.family(), "gemma");
    EXPECT_EQ(chat_template.jinja_source(), source);
}

TEST(ChatTemplate, RejectsUnknownFamily) {
    EXPECT_THROW(ChatTemplate::for_vocab(make_gemma_like_vocab("{% for m in messages %}<|im_start|>{% endfor %}")), Error);
    Vocab vocab = make_gemma_like_vocab();
    vocab.pieces[4] = "<|im_start|>";
    vocab.finalize("test vocabulary");
    EXPECT_THROW(ChatTemplate::for_vocab(vocab), Error);
}

TEST(ChatTemplate, RendersSystemIntoFirstUserTurn) {
    ChatTemplate chat_template = ChatTemplate::for_vocab(make_gemma_like_vocab());
    EXPECT_EQ(chat_template.render({{"system", "S"}, {"user", "Hi"}}, true),
              "<bos><start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, RendersTurnsAndTrimsContent) {
    ChatTemplate chat_template = ChatTemplate::for_vocab(make_gemma_like_vocab());
    EXPECT_EQ(chat_template.render({{"user", "  Hi \n"}, {"assistant", "\tHello!\n\n"}, {"user", "Bye"}}, false),
              "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
              "<start_of_turn>user\nBye<end_of_turn>\n");
    EXPECT_EQ(chat_template.render({{"user", "Q"}, {"model", "A"}}, false),
              "<bos><start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n");
}

TEST(ChatTemplate, SystemSeparatorFromModelTemplate) {
    const std::string canonical = ChatTemplate::for_vocab(make_gemma_like_vocab()).jinja_source();
    ChatTemplate own_canonical = ChatTemplate::for_vocab(make_gemma_like_vocab(canonical));
    EXPECT_EQ(own_canonical.render({{"system", "S"}, {"user", "Hi"}}, false),
              "<bos><start_of_turn>user\nS\n\nHi<end_of_turn>\n");

    const std::string single_newline =
        "{{ bos_token }}{% set p = messages[0]['content'] + '\\n' %}<start_of_turn>user\n{{ p }}";
    ChatTemplate variant = ChatTemplate::for_vocab(make_gemma_like_vocab(single_newline));
    EXPECT_EQ(variant.render({{"system", "S"}, {"user", "Hi"}}, false),
              "<bos><start_of_turn>user\nS\nHi<end_of_turn>\n");
}

std::string render_error(const Conversation& conversation) {
    try {
        ChatTemplate::for_vocab(make_gemma_like_vocab()).render(conversation, true);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(ChatTemplate, RejectsRolesOutOfOrder) {
    std::string message = render_error({{"user", "a"}, {"user", "b"}});
    EXPECT_NE(message.find("message 1"), std::string::npos) << message;
    EXPECT_NE(message.find("'user'"), std::string::npos) << message;

    message = render_error({{"system", "s"}, {"assistant", "a"}});
    EXPECT_NE(message.find("message 1"), std::string::npos) << message;
    EXPECT_NE(message.find("'assistant'"), std::string::npos) << message;

    EXPECT_NE(render_error({{"user", "a"}, {"system", "s"}}), "");
    EXPECT_NE(render_error({{"user", "a"}, {"tool", "t"}}), "");
    EXPECT_NE(render_error({{"assistant", "a"}}), "");
}

// Conversations rendered both natively and by jinja2 from jinja_source(). Whitespace around
// content includes characters Python's str.strip() removes (U+00A0, U+3000) and one it keeps
// (U+200B).
std::vector<std::pair<Conversation, bool>> reference_conversations() {
    return {
        {{{"user", "Hi"}}, true},
        {{{"system", "S"}, {"user", "Hi"}}, true},
        {{{"system", "You are terse.\n"}, {"user", "  What is 2+2?  "}, {"assistant", "4"}, {"user", "And 3+3?"}}, true},
        {{{"user", "Hello"}, {"assistant", "Hi there!"}}, false},
        {{{"user", "\u00a0\u3000padded\u3000\u00a0"}, {"model", "\u200bzero width\u200b"}}, true},
        {{{"user", ""}, {"assistant", ""}}, true},
        {{{"system", "only system"}}, true},
        {{}, true},
        {{{"user", "<start_of_turn>markup inside\n\n"}, {"assistant", "line1\nline2\n"}, {"user", "\t tabs \t"}}, false},
        {{{"system", "多语言 système"}, {"user", "こんにちは 😀"}}, true},
    };
}

TEST(ChatTemplate, MatchesJinjaRendering) {
    ChatTemplate chat_template = ChatTemplate::for_vocab(make_gemma_like_vocab());
    json request = {{"templates", json::array()}};
    auto conversations = reference_conversations();
    for (const auto& [conversation, generation_prompt] : conversations) {
        json messages = json::array();
        for (const ChatMessage& message : conversation) {
            messages.push_back({{"role", message.role}, {"content", message.content}});
        }
        request["templates"].push_back({{"source", chat_template.jinja_source()}, {"bos_token", "<bos>"},
                                        {"messages", messages}, {"add_generation_prompt", generation_prompt}});
    }
    // Out-of-order roles: jinja2 must raise too.
    request["templates"].push_back({{"source", chat_template.jinja_source()}, {"bos_token", "<bos>"},
                                    {"messages", {{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}}},
                                    {"add_generation_prompt", true}});

    const std::string dir = test::make_temp_dir("subzero-chat");
    const std::string request_path = dir + "/request.json";
    std::ofstream(request_path) << request.dump();
    json response = json::parse(test::run_python_reference("llama_tokenize.py", "'" + request_path + "'"));
    fs::remove_all(dir);

    const json& renders = response.at("renders");
    ASSERT_EQ(renders.size(), conversations.size() + 1);
    for (size_t i = 0; i < conversations.size(); ++i) {
        ASSERT_TRUE(renders[i].contains("text")) << "conversation " << i << ": " << renders[i].dump();
        EXPECT_EQ(chat_template.render(conversations[i].first, conversations[i].second),
                  renders[i].at("text").get<std::string>())
            << "conversation " << i;
    }
    EXPECT_TRUE(renders.back().contains("error"));
    EXPECT_THROW(chat_template.render({{"user", "a"}, {"user", "b"}}, true), Error);
}

TEST(ChatTemplate, RealVocabPromptTokenizesWithOneBos) {
    Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(test::real_model_path()));
    ChatTemplate chat_template = ChatTemplate::for_vocab(tokenizer.vocab());
    EXPECT_EQ(chat_template.family(), "gemma");

    std::string prompt = chat_template.render({{"system", "Be brief."}, {"user", "Hi"}}, true);
    std::vector<int32_t> ids = tokenizer.encode(prompt, false, true);
    ASSERT_GE(ids.size(), 4u);
    EXPECT_EQ(ids[0], 2);    // <bos>
    EXPECT_EQ(ids[1], 105);  // <start_of_turn>
    EXPECT_NE(ids[2], 2);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 106), 1);  // <end_of_turn>
    EXPECT_EQ(ids.back(), tokenizer.vocab().find_piece("\n"));
    EXPECT_EQ(tokenizer.decode(ids, true), prompt);
}

}  // namespace
}  // namespace sz
