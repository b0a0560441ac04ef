// Conversation loading: both JSONL layouts, every validation error with its file and line, role
// flipping, system prompts, de-duplication, the disclaimer and length filters, and the report.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/conversation.h"
#include "test_support.h"

namespace sz {
namespace {

namespace fs = std::filesystem;

using Messages = std::vector<ChatMessage>;

const std::string kValidLine =
    R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})";

class ConversationData : public ::testing::Test {
protected:
    void SetUp() override { dir_ = test::make_temp_dir("sz-conversation-data"); }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write_file(const std::string& name, const std::string& text) {
        const std::string path = dir_ + "/" + name;
        std::ofstream(path, std::ios::binary) << text;
        return path;
    }

    // The sz::Error message of loading `text`, or "" when it loads.
    std::string load_error(const std::string& text, const ConversationOptions& options = {}) {
        const std::string path = write_file("data.jsonl", text);
        try {
            load_conversations(path, options);
        } catch (const Error& error) {
            return error.what();
        }
        return "";
    }

    std::string dir_;
};

LoadedConversations read_text(const std::string& text, const ConversationOptions& options = {}) {
    std::istringstream input(text);
    return read_conversations(input, "memory.jsonl", options);
}

std::string openai_line(const Messages& messages) {
    std::string line = R"({"messages": [)";
    for (size_t i = 0; i < messages.size(); ++i) {
        line += (i > 0 ? ", " : "");
        line += R"({"role": ")" + messages[i].role + R"(", "content": ")" + messages[i].content + R"("})";
    }
    return line + "]}";
}

void expect_messages(const Conversation& conversation, const Messages& expected) {
    ASSERT_EQ(conversation.messages.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(conversation.messages[i].role, expected[i].role) << "message " << i + 1;
        EXPECT_EQ(conversation.messages[i].content, expected[i].content) << "message " << i + 1;
    }
}

TEST_F(ConversationData, ReadsOpenAiLayout) {
    const std::string path = write_file(
        "openai.jsonl", R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"},)"
                        R"( {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},)"
                        R"( {"role": "assistant", "content": " A2\n"}], "id": 7})"
                        "\n\n" +
                            kValidLine + "\n");
    LoadedConversations loaded = load_conversations(path, {});

    ASSERT_EQ(loaded.conversations.size(), 2u);
    expect_messages(loaded.conversations[0],
                    {{"system", "Be brief."}, {"user", "Q1"}, {"assistant", "A1"}, {"user", "Q2"}, {"assistant", " A2\n"}});
    EXPECT_EQ(loaded.conversations[0].source, path);
    EXPECT_EQ(loaded.conversations[0].line, 1u);
    EXPECT_EQ(loaded.conversations[1].line, 3u);
    EXPECT_EQ(loaded.report.read, 2u);
    EXPECT_EQ(loaded.report.kept, 2u);
}

TEST_F(ConversationData, ReadsShareGptLayout) {
    LoadedConversations loaded = read_text(
        R"({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q1"},)"
        R"( {"from": "gpt", "value": "A1"}, {"from": "user", "value": "Q2"}, {"from": "model", "value": "A2"},)"
        R"( {"from": "human", "value": "Q3"}, {"from": "assistant", "value": "A3"}]})");

    ASSERT_EQ(loaded.conversations.size(), 1u);
    expect_messages(loaded.conversations[0], {{"system", "S"},
                                              {"user", "Q1"},
                                              {"assistant", "A1"},
                                              {"user", "Q2"},
                                              {"assistant", "A2"},
                                              {"user", "Q3"},
                                              {"assistant", "A3"}});
    EXPECT_EQ(loaded.conversations[0].source, "memory.jsonl");
}

TEST_F(ConversationData, AcceptsCrlfAndByteOrderMark) {
    ConversationOptions options;
    options.deduplicate = false;
    LoadedConversations loaded = read_text("\xEF\xBB\xBF" + kValidLine + "\r\n\r\n" + kValidLine + "\r\n", options);
    ASSERT_EQ(loaded.conversations.size(), 2u);
    EXPECT_EQ(loaded.conversations[1].line, 3u);
    expect_messages(loaded.conversations[0], {{"user", "hi"}, {"assistant", "hello"}});
}

// Each invalid line sits on line 3, after a valid line and a blank line, so the test also
// checks that blank lines count.
TEST_F(ConversationData, ValidationErrorsNameFileAndLine) {
    struct Case {
        const char* name;
        std::string line;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {"truncated JSON", R"({"messages": [)", "invalid JSON: parse error at column 15"},
        {"garbage", "hello", "invalid JSON: parse error at column 1: syntax error while parsing value - invalid literal"},
        {"not an object", "[1, 2]", "expected a JSON object with a \"messages\" or \"conversations\" list, got array"},
        {"neither key", R"({"dialogue": []})", "has neither \"messages\" (OpenAI layout) nor \"conversations\""},
        {"both keys", R"({"messages": [], "conversations": []})", "has both \"messages\" and \"conversations\""},
        {"list not array", R"({"messages": "hi"})", "\"messages\" must be a list of messages, got string"},
        {"empty list", R"({"conversations": []})", "\"conversations\" is empty"},
        {"message not object", R"({"messages": ["hi"]})", "message 1 must be a JSON object, got string"},
        {"missing role", R"({"messages": [{"content": "hi"}]})", "message 1 has no \"role\" key"},
        {"role not string", R"({"messages": [{"role": 1, "content": "hi"}]})", "message 1 \"role\" must be a string, got number"},
        {"unknown role", R"({"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]})",
         "message 2 has unknown role 'tool'; expected system, user (or human) or assistant (or gpt, model)"},
        {"unknown sharegpt role", R"({"conversations": [{"from": "bot", "value": "a"}]})", "message 1 has unknown role 'bot'"},
        {"missing content", R"({"messages": [{"role": "user"}]})", "message 1 has no \"content\" key"},
        {"missing value", R"({"conversations": [{"from": "human", "content": "a"}]})", "message 1 has no \"value\" key"},
        {"empty content", R"({"messages": [{"role": "user", "content": ""}]})", "message 1 (user) has empty content"},
        {"blank content", R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": " \n\t\u00a0"}]})",
         "message 2 (assistant) has empty content"},
        {"number content", R"({"messages": [{"role": "user", "content": 5}]})", "message 1 \"content\" must be a string, got number"},
        {"null content", R"({"messages": [{"role": "user", "content": null}]})", "message 1 \"content\" must be a string, got null"},
        {"parts content", R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]})",
         "message 1 \"content\" must be a string, got array"},
        {"two user turns", openai_line({{"user", "a"}, {"user", "b"}, {"assistant", "c"}}),
         "message 2 has role 'user' but 'assistant' was expected: after an optional system message, user and "
         "assistant turns alternate, starting with user"},
        {"starts with assistant", openai_line({{"assistant", "a"}, {"user", "b"}, {"assistant", "c"}}),
         "message 1 has role 'assistant' but 'user' was expected"},
        {"late system", openai_line({{"user", "a"}, {"system", "b"}, {"assistant", "c"}}),
         "message 2 is a system message; only the first message may be one"},
        {"ends with user", openai_line({{"user", "a"}, {"assistant", "b"}, {"user", "c"}}),
         "ends with a user turn; the last turn must be the assistant's"},
        {"no assistant", openai_line({{"system", "s"}, {"user", "a"}}), "has no assistant turn, so there is nothing to train on"},
        {"only system", openai_line({{"system", "s"}}), "has only a system message and no assistant turn"},
    };
    const std::string path = dir_ + "/data.jsonl";
    for (const Case& test_case : cases) {
        SCOPED_TRACE(test_case.name);
        const std::string message = load_error(kValidLine + "\n\n" + test_case.line + "\n");
        EXPECT_NE(message.find(path + ":3: " + test_case.expected), std::string::npos) << message;
        EXPECT_NE(message.find("1 invalid conversation line(s)"), std::string::npos) << message;
    }
}

TEST_F(ConversationData, ListsEveryInvalidLineUpToTwenty) {
    std::string text;
    for (int i = 0; i < 25; ++i) {
        text += "{}\n";
    }
    const std::string message = load_error(text);
    const std::string path = dir_ + "/data.jsonl";
    EXPECT_NE(message.find("25 invalid conversation line(s)"), std::string::npos) << message;
    EXPECT_NE(message.find(path + ":1: has neither"), std::string::npos);
    EXPECT_NE(message.find(path + ":20: has neither"), std::string::npos);
    EXPECT_EQ(message.find(path + ":21: "), std::string::npos);
    EXPECT_NE(message.find("... and 5 more"), std::string::npos);
}

TEST_F(ConversationData, MissingFileIsAnError) {
    const std::string path = dir_ + "/absent.jsonl";
    try {
        load_conversations(path, {});
        FAIL() << "expected sz::Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("cannot open training data '" + path + "'"), std::string::npos)
            << error.what();
    }
}

TEST_F(ConversationData, FlipSwapsRolesAndTrimsEnds) {
    ConversationOptions options;
    options.flip_roles = true;
    // The author (user) opens and the AI has the last word: both ends go, with the system message.
    LoadedConversations loaded = read_text(
        openai_line({{"system", "You are helpful."}, {"user", "A1"}, {"assistant", "B1"}, {"user", "A2"}, {"assistant", "B2"}}) +
            "\n" +
            // The author has the last word: only the opening turn goes.
            openai_line({{"user", "C1"}, {"assistant", "D1"}, {"user", "C2"}, {"assistant", "D2"}, {"user", "C3"}}) + "\n" +
            // The AI greets first: it becomes the user's opening turn.
            openai_line({{"assistant", "Hello!"}, {"user", "E1"}, {"assistant", "F1"}}) + "\n",
        options);

    ASSERT_EQ(loaded.conversations.size(), 3u);
    expect_messages(loaded.conversations[0], {{"user", "B1"}, {"assistant", "A2"}});
    expect_messages(loaded.conversations[1], {{"user", "D1"}, {"assistant", "C2"}, {"user", "D2"}, {"assistant", "C3"}});
    expect_messages(loaded.conversations[2], {{"user", "Hello!"}, {"assistant", "E1"}});
    EXPECT_EQ(loaded.report.dropped_no_reply_after_flip, 0u);
}

TEST_F(ConversationData, FlipDropsSingleExchange) {
    ConversationOptions options;
    options.flip_roles = true;
    LoadedConversations loaded = read_text(kValidLine + "\n" + openai_line({{"user", "only me"}}) + "\n", options);
    EXPECT_TRUE(loaded.conversations.empty());
    EXPECT_EQ(loaded.report.read, 2u);
    EXPECT_EQ(loaded.report.dropped_no_reply_after_flip, 2u);
    EXPECT_EQ(loaded.report.summary(), "read 2, kept 0, dropped 2 (no reply after role flip 2)");
}

TEST_F(ConversationData, FlipStillChecksAlternation) {
    ConversationOptions options;
    options.flip_roles = true;
    const std::string message = load_error(openai_line({{"user", "a"}, {"user", "b"}, {"assistant", "c"}}), options);
    EXPECT_NE(message.find(":1: message 2 has role 'user' but 'assistant' was expected: after an optional system "
                           "message, user and assistant turns alternate"),
              std::string::npos)
        << message;
    EXPECT_EQ(message.find("starting with user"), std::string::npos) << message;
}

TEST_F(ConversationData, RawLogExampleNeedsFlip) {
    const std::string path = test::source_dir() + "/data/persona/raw_log_example.jsonl";
    ConversationOptions options;
    options.flip_roles = true;
    options.filter_disclaimers = true;
    LoadedConversations loaded = load_conversations(path, options);

    EXPECT_EQ(loaded.report.read, 10u);
    EXPECT_EQ(loaded.report.kept, 9u);
    EXPECT_EQ(loaded.report.dropped_no_reply_after_flip, 1u);  // a single exchange
    EXPECT_EQ(loaded.report.dropped_disclaimer, 0u);  // the AI's disclaimer is now a user turn
    for (const Conversation& conversation : loaded.conversations) {
        EXPECT_EQ(conversation.messages.front().role, "user") << "line " << conversation.line;
        EXPECT_EQ(conversation.messages.back().role, "assistant") << "line " << conversation.line;
    }
    // The first log's system message, the author's opening turn and the AI's last reply go.
    const Conversation& first = loaded.conversations[0];
    ASSERT_EQ(first.messages.size(), 2u);
    EXPECT_EQ(first.messages[0].content.rfind("Great question! An acetone-like smell", 0), 0u);
    EXPECT_EQ(first.messages[1].content, "dramatic then. same as me before coffee. fed it, it's sulking on top of the fridge now");

    // Unflipped, the log is invalid where the author has the last word.
    try {
        load_conversations(path, {});
        FAIL() << "expected sz::Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find(path + ":3: ends with a user turn"), std::string::npos) << error.what();
    }
}

TEST_F(ConversationData, SystemPromptInsertedOrReplaced) {
    ConversationOptions options;
    options.system_prompt = "You are Sam.";
    LoadedConversations loaded =
        read_text(kValidLine + "\n" + openai_line({{"system", "Old."}, {"user", "q"}, {"assistant", "a"}}) + "\n", options);

    ASSERT_EQ(loaded.conversations.size(), 2u);
    expect_messages(loaded.conversations[0], {{"system", "You are Sam."}, {"user", "hi"}, {"assistant", "hello"}});
    expect_messages(loaded.conversations[1], {{"system", "You are Sam."}, {"user", "q"}, {"assistant", "a"}});
    EXPECT_EQ(loaded.report.system_prompts_replaced, 1u);
    EXPECT_EQ(loaded.report.summary(), "read 2, kept 2, dropped 0; system prompt replaced in 1");
}

TEST_F(ConversationData, DeduplicatesAfterWhitespaceNormalising) {
    const std::string text = openai_line({{"user", "how are you"}, {"assistant", "fine, thanks"}}) + "\n" +
                             openai_line({{"user", "  how   are\\n you "}, {"assistant", "fine,\\tthanks\\n"}}) + "\n" +
                             openai_line({{"user", "How are you"}, {"assistant", "fine, thanks"}}) + "\n";
    LoadedConversations loaded = read_text(text);
    ASSERT_EQ(loaded.conversations.size(), 2u);
    EXPECT_EQ(loaded.conversations[0].line, 1u);
    EXPECT_EQ(loaded.conversations[1].line, 3u);  // letter case is kept apart
    EXPECT_EQ(loaded.report.dropped_duplicate, 1u);
    EXPECT_EQ(loaded.report.summary(), "read 3, kept 2, dropped 1 (duplicate 1)");

    ConversationOptions keep_all;
    keep_all.deduplicate = false;
    EXPECT_EQ(read_text(text, keep_all).conversations.size(), 3u);
}

TEST_F(ConversationData, DeduplicatesAcrossFiles) {
    const std::string first = write_file("a.jsonl", kValidLine + "\n");
    const std::string second = write_file("b.jsonl", R"({"conversations": [{"from": "human", "value": "hi"}, )"
                                                     R"({"from": "gpt", "value": "hello "}]})"
                                                     "\n");
    LoadedConversations loaded = load_conversations(std::vector<std::string>{first, second}, {});
    ASSERT_EQ(loaded.conversations.size(), 1u);
    EXPECT_EQ(loaded.conversations[0].source, first);
    EXPECT_EQ(loaded.report.dropped_duplicate, 1u);
}

TEST_F(ConversationData, DisclaimerFilterSearchesAssistantTurns) {
    const std::string text =
        openai_line({{"user", "opinion?"}, {"assistant", "As an AI language model, I have none."}}) + "\n" +
        openai_line({{"user", "feelings?"}, {"assistant", "I\u2019m just an AI."}}) + "\n" +
        openai_line({{"user", "are you an AI?"}, {"assistant", "i am an ai, sadly"}}) + "\n" +
        openai_line({{"user", "As an AI, what do you think?"}, {"assistant", "I'm a person, thanks."}}) + "\n" +
        openai_line({{"user", "job?"}, {"assistant", "I work as an aide."}}) + "\n";

    LoadedConversations unfiltered = read_text(text);
    EXPECT_EQ(unfiltered.conversations.size(), 5u);

    ConversationOptions options;
    options.filter_disclaimers = true;
    LoadedConversations loaded = read_text(text, options);
    ASSERT_EQ(loaded.conversations.size(), 2u);
    EXPECT_EQ(loaded.conversations[0].line, 4u);  // the disclaimer is in the user turn
    EXPECT_EQ(loaded.conversations[1].line, 5u);  // "aide" is not "ai"
    EXPECT_EQ(loaded.report.dropped_disclaimer, 3u);
    EXPECT_EQ(loaded.report.summary(), "read 5, kept 2, dropped 3 (disclaimer 3)");
}

TEST_F(ConversationData, DisclaimerPatternsAreConfigurable) {
    ConversationOptions options;
    options.filter_disclaimers = true;
    options.disclaimer_patterns = {"^sorry"};
    LoadedConversations loaded = read_text(
        openai_line({{"user", "q"}, {"assistant", "Sorry, no."}}) + "\n" +
            openai_line({{"user", "q2"}, {"assistant", "As an AI, no."}}) + "\n",
        options);
    ASSERT_EQ(loaded.conversations.size(), 1u);
    EXPECT_EQ(loaded.conversations[0].line, 2u);

    options.disclaimer_patterns = {"(unclosed"};
    try {
        read_text(kValidLine, options);
        FAIL() << "expected sz::Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("disclaimer pattern '(unclosed' is not a valid ECMAScript regex"),
                  std::string::npos)
            << error.what();
    }
}

// libstdc++'s std::regex matches recursively, so a long reply must not exhaust the stack.
TEST_F(ConversationData, DisclaimerFilterOnLongReply) {
    ConversationOptions options;
    options.filter_disclaimers = true;
    const std::string long_reply(1 << 18, 'x');
    LoadedConversations loaded = read_text(openai_line({{"user", "q"}, {"assistant", long_reply}}) + "\n" +
                                               openai_line({{"user", "q"}, {"assistant", long_reply + " as an AI"}}) + "\n",
                                           options);
    ASSERT_EQ(loaded.conversations.size(), 1u);
    EXPECT_EQ(loaded.conversations[0].line, 1u);
    EXPECT_EQ(loaded.report.dropped_disclaimer, 1u);
}

TEST_F(ConversationData, MinimumLengthCountsCodePoints) {
    ConversationOptions options;
    options.min_turn_chars = 3;
    LoadedConversations loaded = read_text(openai_line({{"user", "hey"}, {"assistant", " ok \\n"}}) + "\n" +
                                               openai_line({{"user", "hey"}, {"assistant", "h\u00e9\u00e9"}}) + "\n" +
                                               openai_line({{"system", "S"}, {"user", "hey"}, {"assistant", "yes"}}) + "\n" +
                                               openai_line({{"user", "no"}, {"assistant", "yes"}}) + "\n",
                                           options);
    ASSERT_EQ(loaded.conversations.size(), 2u);
    EXPECT_EQ(loaded.conversations[0].line, 2u);  // three characters in five bytes
    EXPECT_EQ(loaded.conversations[1].line, 3u);  // the system message is not measured
    EXPECT_EQ(loaded.report.dropped_too_short, 2u);
}

TEST_F(ConversationData, FiltersCountFirstReasonOnly) {
    ConversationOptions options;
    options.min_turn_chars = 5;
    options.filter_disclaimers = true;
    const std::string short_disclaimer = openai_line({{"user", "q"}, {"assistant", "As an AI"}});
    LoadedConversations loaded =
        read_text(short_disclaimer + "\n" + openai_line({{"user", "hello there"}, {"assistant", "As an AI, no."}}) + "\n" +
                      openai_line({{"user", "hello there"}, {"assistant", "As an AI, no."}}) + "\n",
                  options);
    EXPECT_TRUE(loaded.conversations.empty());
    EXPECT_EQ(loaded.report.dropped_too_short, 1u);
    EXPECT_EQ(loaded.report.dropped_disclaimer, 2u);
    EXPECT_EQ(loaded.report.dropped_duplicate, 0u);
    EXPECT_EQ(loaded.report.dropped(), 3u);
}

TEST_F(ConversationData, KeyNormalisesWhitespaceOnly) {
    Conversation a{{{"user", " a  b\n"}, {"assistant", "c"}}, "x", 1};
    Conversation b{{{"user", "a b"}, {"assistant", "c\t"}}, "y", 2};
    Conversation c{{{"user", "a b"}, {"assistant", "C"}}, "y", 3};
    Conversation d{{{"user", "a bc"}}, "y", 4};
    EXPECT_EQ(conversation_key(a), conversation_key(b));
    EXPECT_NE(conversation_key(a), conversation_key(c));
    EXPECT_NE(conversation_key(a), conversation_key(d));
}

}  // namespace
}  // namespace sz
