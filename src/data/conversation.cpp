#include "data/conversation.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <string_view>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace sz {

namespace {

using nlohmann::json;

constexpr size_t kMaxListedErrors = 20;

// Key names of one file layout.
struct Layout {
    const char* list_key;
    const char* role_key;
    const char* content_key;
};
constexpr Layout kOpenAi{"messages", "role", "content"};
constexpr Layout kShareGpt{"conversations", "from", "value"};

// Byte length of the whitespace character at `pos`, or 0 when none starts there. The set is
// Python's str.isspace(), because the Gemma template trims contents with Jinja's `trim`,
// which is Python's str.strip(). So a content that this code calls blank renders as empty.
size_t whitespace_length_at(std::string_view text, size_t pos) {
    const auto byte = [&](size_t offset) {
        return pos + offset < text.size() ? static_cast<unsigned char>(text[pos + offset]) : 0u;
    };
    const unsigned first = byte(0);
    if ((first >= 0x09 && first <= 0x0D) || (first >= 0x1C && first <= 0x20)) {
        return 1;
    }
    if (first == 0xC2 && (byte(1) == 0x85 || byte(1) == 0xA0)) {
        return 2;
    }
    if (first == 0xE1 && byte(1) == 0x9A && byte(2) == 0x80) {  // U+1680
        return 3;
    }
    if (first == 0xE2 && byte(1) == 0x80) {
        const unsigned third = byte(2);
        // U+2000..U+200A, U+2028, U+2029, U+202F
        if ((third >= 0x80 && third <= 0x8A) || third == 0xA8 || third == 0xA9 || third == 0xAF) {
            return 3;
        }
    }
    if (first == 0xE2 && byte(1) == 0x81 && byte(2) == 0x9F) {  // U+205F
        return 3;
    }
    if (first == 0xE3 && byte(1) == 0x80 && byte(2) == 0x80) {  // U+3000
        return 3;
    }
    return 0;
}

bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

std::string_view trim_whitespace(std::string_view text) {
    size_t begin = 0;
    while (begin < text.size()) {
        const size_t length = whitespace_length_at(text, begin);
        if (length == 0) {
            break;
        }
        begin += length;
    }
    size_t end = text.size();
    while (end > begin) {
        size_t start = end - 1;
        while (start > begin && is_continuation_byte(text[start])) {
            --start;
        }
        if (whitespace_length_at(text, start) != end - start) {
            break;
        }
        end = start;
    }
    return text.substr(begin, end - begin);
}

size_t count_code_points(std::string_view text) {
    size_t count = 0;
    for (char c : text) {
        count += is_continuation_byte(c) ? 0 : 1;
    }
    return count;
}

// Maps a role name of either layout to "system", "user" or "assistant"; empty when unknown.
std::string canonical_role(const std::string& role) {
    if (role == "system") {
        return "system";
    }
    if (role == "user" || role == "human") {
        return "user";
    }
    if (role == "assistant" || role == "gpt" || role == "model") {
        return "assistant";
    }
    return "";
}

// nlohmann's parse_error text without its "[json.exception.parse_error.101] " prefix and the
// "line 1, " that refers to the single line handed to the parser.
std::string describe_parse_error(const json::parse_error& error) {
    std::string text = error.what();
    const size_t prefix_end = text.find("] ");
    if (text.rfind("[json.exception.", 0) == 0 && prefix_end != std::string::npos) {
        text = text.substr(prefix_end + 2);
    }
    const size_t line_part = text.find("line 1, ");
    if (line_part != std::string::npos) {
        text.erase(line_part, std::strlen("line 1, "));
    }
    return text;
}

const char* json_type_name(const json& value) { return value.type_name(); }

// Parses one JSONL line into messages with canonical roles, checking everything that does
// not depend on the options except the turn order. Returns the problem, or "" when valid.
std::string parse_messages(const std::string& line, std::vector<ChatMessage>& messages) {
    json document;
    try {
        document = json::parse(line);
    } catch (const json::parse_error& error) {
        return "invalid JSON: " + describe_parse_error(error);
    }
    if (!document.is_object()) {
        return fmt::format("expected a JSON object with a \"messages\" or \"conversations\" list, got {}",
                           json_type_name(document));
    }
    const bool has_openai = document.contains(kOpenAi.list_key);
    const bool has_sharegpt = document.contains(kShareGpt.list_key);
    if (has_openai == has_sharegpt) {
        return has_openai ? "has both \"messages\" and \"conversations\"; keep one"
                          : "has neither \"messages\" (OpenAI layout) nor \"conversations\" (ShareGPT layout)";
    }
    const Layout& layout = has_openai ? kOpenAi : kShareGpt;
    const json& list = document.at(layout.list_key);
    if (!list.is_array()) {
        return fmt::format("\"{}\" must be a list of messages, got {}", layout.list_key, json_type_name(list));
    }
    if (list.empty()) {
        return fmt::format("\"{}\" is empty", layout.list_key);
    }

    for (size_t i = 0; i < list.size(); ++i) {
        const json& item = list[i];
        const size_t number = i + 1;
        if (!item.is_object()) {
            return fmt::format("message {} must be a JSON object, got {}", number, json_type_name(item));
        }
        const auto role_it = item.find(layout.role_key);
        if (role_it == item.end()) {
            return fmt::format("message {} has no \"{}\" key", number, layout.role_key);
        }
        if (!role_it->is_string()) {
            return fmt::format("message {} \"{}\" must be a string, got {}", number, layout.role_key,
                               json_type_name(*role_it));
        }
        const std::string role = canonical_role(role_it->get<std::string>());
        if (role.empty()) {
            return fmt::format("message {} has unknown role '{}'; expected system, user (or human) or "
                               "assistant (or gpt, model)",
                               number, role_it->get<std::string>());
        }
        const auto content_it = item.find(layout.content_key);
        if (content_it == item.end()) {
            return fmt::format("message {} has no \"{}\" key", number, layout.content_key);
        }
        // TODO: OpenAI content may also be a list of {"type": "text", "text": ...} parts; such
        // lines are rejected instead of having their text parts joined.
        if (!content_it->is_string()) {
            return fmt::format("message {} \"{}\" must be a string, got {}", number, layout.content_key,
                               json_type_name(*content_it));
        }
        std::string content = content_it->get<std::string>();
        if (trim_whitespace(content).empty()) {
            return fmt::format("message {} ({}) has empty content", number, role);
        }
        messages.push_back({role, std::move(content)});
    }
    return "";
}

// Checks that the turns after an optional system message alternate user/assistant. With
// `first_may_be_assistant` a log may open with the assistant (the AI greeting first), which
// only makes sense before a role flip. Returns the problem, or "" when valid.
std::string check_turn_order(const std::vector<ChatMessage>& messages, bool first_may_be_assistant) {
    const size_t first_turn = messages.front().role == "system" ? 1 : 0;
    if (first_turn == messages.size()) {
        return "has only a system message and no assistant turn";
    }
    const bool starts_with_user = messages[first_turn].role == "user" || !first_may_be_assistant;
    for (size_t i = first_turn; i < messages.size(); ++i) {
        const bool user_expected = ((i - first_turn) % 2 == 0) == starts_with_user;
        const std::string& role = messages[i].role;
        if (role == "system") {
            return fmt::format("message {} is a system message; only the first message may be one", i + 1);
        }
        if ((role == "user") != user_expected) {
            return fmt::format("message {} has role '{}' but '{}' was expected: after an optional system "
                               "message, user and assistant turns alternate{}",
                               i + 1, role, user_expected ? "user" : "assistant",
                               first_may_be_assistant ? "" : ", starting with user");
        }
    }
    return "";
}

// Checks what training needs of an unflipped conversation. Returns the problem, or "".
std::string check_trainable(const std::vector<ChatMessage>& messages) {
    bool has_assistant = false;
    for (const ChatMessage& message : messages) {
        has_assistant = has_assistant || message.role == "assistant";
    }
    if (!has_assistant) {
        return "has no assistant turn, so there is nothing to train on";
    }
    if (messages.back().role != "assistant") {
        return fmt::format("ends with a {} turn; the last turn must be the assistant's, because the "
                           "assistant's replies are what is trained",
                           messages.back().role);
    }
    return "";
}

// Swaps user and assistant, then trims the conversation to start with user and end with
// assistant. Returns false when no user/assistant exchange is left.
bool flip_roles(std::vector<ChatMessage>& messages) {
    std::vector<ChatMessage> flipped;
    for (ChatMessage& message : messages) {
        if (message.role == "system") {
            continue;  // it instructed the AI, which is now the user
        }
        message.role = message.role == "user" ? "assistant" : "user";
        flipped.push_back(std::move(message));
    }
    if (!flipped.empty() && flipped.front().role == "assistant") {
        flipped.erase(flipped.begin());
    }
    if (!flipped.empty() && flipped.back().role == "user") {
        flipped.pop_back();
    }
    messages = std::move(flipped);
    return !messages.empty();
}

bool apply_system_prompt(std::vector<ChatMessage>& messages, const std::string& system_prompt) {
    if (!messages.empty() && messages.front().role == "system") {
        messages.front().content = system_prompt;
        return true;
    }
    messages.insert(messages.begin(), ChatMessage{"system", system_prompt});
    return false;
}

bool has_short_turn(const std::vector<ChatMessage>& messages, size_t min_chars) {
    for (const ChatMessage& message : messages) {
        if (message.role != "system" && count_code_points(trim_whitespace(message.content)) < min_chars) {
            return true;
        }
    }
    return false;
}

std::vector<std::regex> compile_patterns(const std::vector<std::string>& patterns) {
    std::vector<std::regex> compiled;
    for (const std::string& pattern : patterns) {
        try {
            compiled.emplace_back(pattern, std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
        } catch (const std::regex_error& error) {
            fail("disclaimer pattern '{}' is not a valid ECMAScript regex: {}", pattern, error.what());
        }
    }
    return compiled;
}

bool has_disclaimer(const std::vector<ChatMessage>& messages, const std::vector<std::regex>& patterns) {
    for (const ChatMessage& message : messages) {
        if (message.role != "assistant") {
            continue;
        }
        for (const std::regex& pattern : patterns) {
            if (std::regex_search(message.content, pattern)) {
                return true;
            }
        }
    }
    return false;
}

// Reads conversations from several sources with one duplicate set and one report.
class ConversationReader {
public:
    explicit ConversationReader(const ConversationOptions& options)
        : options_(options) {
        if (options.filter_disclaimers) {
            disclaimer_patterns_ = compile_patterns(options.disclaimer_patterns);
        }
    }

    void read(std::istream& input, const std::string& source) {
        std::string line;
        size_t line_number = 0;
        while (std::getline(input, line)) {
            ++line_number;
            if (line_number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) {
                line.erase(0, 3);  // UTF-8 byte order mark
            }
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            if (trim_whitespace(line).empty()) {
                continue;
            }
            ++result_.report.read;
            const std::string problem = read_line(line, source, line_number);
            if (!problem.empty()) {
                errors_.push_back(fmt::format("{}:{}: {}", source, line_number, problem));
            }
        }
        if (input.bad()) {
            fail("reading training data '{}' failed after line {}: {}", source, line_number, std::strerror(errno));
        }
    }

    LoadedConversations finish() {
        if (!errors_.empty()) {
            std::string message =
                fmt::format("{} invalid conversation line(s); fix or remove them:", errors_.size());
            for (size_t i = 0; i < errors_.size() && i < kMaxListedErrors; ++i) {
                message += "\n  " + errors_[i];
            }
            if (errors_.size() > kMaxListedErrors) {
                message += fmt::format("\n  ... and {} more", errors_.size() - kMaxListedErrors);
            }
            throw Error(message);
        }
        result_.report.kept = result_.conversations.size();
        return std::move(result_);
    }

private:
    // Validates and filters one line. Returns the problem of an invalid line, or "" when the
    // line was kept or dropped by a filter.
    std::string read_line(const std::string& line, const std::string& source, size_t line_number) {
        Conversation conversation;
        conversation.source = source;
        conversation.line = line_number;
        std::string problem = parse_messages(line, conversation.messages);
        if (problem.empty()) {
            problem = check_turn_order(conversation.messages, options_.flip_roles);
        }
        if (problem.empty() && !options_.flip_roles) {
            problem = check_trainable(conversation.messages);
        }
        if (!problem.empty() || !errors_.empty()) {
            return problem;  // once the load fails, only validation still matters
        }

        LoadReport& report = result_.report;
        if (options_.flip_roles && !flip_roles(conversation.messages)) {
            ++report.dropped_no_reply_after_flip;
            return "";
        }
        if (!options_.system_prompt.empty() && apply_system_prompt(conversation.messages, options_.system_prompt)) {
            ++report.system_prompts_replaced;
        }
        if (options_.min_turn_chars > 0 && has_short_turn(conversation.messages, options_.min_turn_chars)) {
            ++report.dropped_too_short;
            return "";
        }
        if (options_.filter_disclaimers && has_disclaimer(conversation.messages, disclaimer_patterns_)) {
            ++report.dropped_disclaimer;
            return "";
        }
        if (options_.deduplicate && !seen_keys_.insert(conversation_key(conversation)).second) {
            ++report.dropped_duplicate;
            return "";
        }
        result_.conversations.push_back(std::move(conversation));
        return "";
    }

    const ConversationOptions& options_;
    std::vector<std::regex> disclaimer_patterns_;
    std::unordered_set<std::string> seen_keys_;
    std::vector<std::string> errors_;
    LoadedConversations result_;
};

}  // namespace

std::vector<std::string> ConversationOptions::default_disclaimer_patterns() {
    return {
        R"(\bas an ai\b)",
        R"(\blanguage model\b)",
        R"(\bai assistant\b)",
        "\\bi(?:'|\u2019)?m (?:just |only )?an ai\\b",  // I'm / I’m / Im
        R"(\bi am (?:just |only )?an ai\b)",
    };
}

size_t LoadReport::dropped() const {
    return dropped_no_reply_after_flip + dropped_too_short + dropped_disclaimer + dropped_duplicate;
}

std::string LoadReport::summary() const {
    std::string text = fmt::format("read {}, kept {}, dropped {}", read, kept, dropped());
    std::vector<std::string> reasons;
    const std::pair<const char*, size_t> counts[] = {
        {"no reply after role flip", dropped_no_reply_after_flip},
        {"too short", dropped_too_short},
        {"disclaimer", dropped_disclaimer},
        {"duplicate", dropped_duplicate},
    };
    for (const auto& [reason, count] : counts) {
        if (count > 0) {
            reasons.push_back(fmt::format("{} {}", reason, count));
        }
    }
    if (!reasons.empty()) {
        text += fmt::format(" ({})", fmt::join(reasons, ", "));
    }
    if (system_prompts_replaced > 0) {
        text += fmt::format("; system prompt replaced in {}", system_prompts_replaced);
    }
    return text;
}

LoadedConversations read_conversations(std::istream& input, const std::string& source,
                                       const ConversationOptions& options) {
    ConversationReader reader(options);
    reader.read(input, source);
    return reader.finish();
}

LoadedConversations load_conversations(const std::vector<std::string>& paths, const ConversationOptions& options) {
    ConversationReader reader(options);
    for (const std::string& path : paths) {
        std::ifstream input(path, std::ios::binary);
        if (!input) {
            fail("cannot open training data '{}': {}", path, std::strerror(errno));
        }
        reader.read(input, path);
    }
    return reader.finish();
}

LoadedConversations load_conversations(const std::string& path, const ConversationOptions& options) {
    return load_conversations(std::vector<std::string>{path}, options);
}

std::string conversation_key(const Conversation& conversation) {
    std::string key;
    for (const ChatMessage& message : conversation.messages) {
        key += message.role;
        key += '\x1f';  // unit separator: cannot occur in a role name
        bool pending_space = false;
        for (char c : trim_whitespace(message.content)) {
            if (std::isspace(static_cast<unsigned char>(c))) {
                pending_space = true;
                continue;
            }
            if (pending_space) {
                key += ' ';
                pending_space = false;
            }
            key += c;
        }
        key += '\x1e';  // record separator between messages
    }
    return key;
}

}  // namespace sz
