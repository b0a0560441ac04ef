#include "eval/prompt_set.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace sz {

namespace {

std::string string_field(const nlohmann::json& object, const char* key, const std::string& where) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_string()) {
        fail("{}: expected a string \"{}\"", where, key);
    }
    return it->get<std::string>();
}

bool is_blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

std::vector<ChatMessage> opening_messages(const nlohmann::json& row, const std::string& where) {
    if (row.contains("prompt")) {
        const std::string text = string_field(row, "prompt", where);
        if (is_blank(text)) {
            fail("{}: \"prompt\" is empty", where);
        }
        return {ChatMessage{"user", text}};
    }
    auto messages = row.find("messages");
    if (messages == row.end() || !messages->is_array()) {
        fail("{}: expected a \"prompt\" string or a \"messages\" list", where);
    }
    std::vector<ChatMessage> opening;
    for (size_t i = 0; i < messages->size(); ++i) {
        const nlohmann::json& message = (*messages)[i];
        const std::string at = fmt::format("{}: message {}", where, i + 1);
        if (!message.is_object()) {
            fail("{}: expected an object with \"role\" and \"content\"", at);
        }
        const std::string role = string_field(message, "role", at);
        const std::string content = string_field(message, "content", at);
        if (role == "system" && i == 0) {
            opening.push_back(ChatMessage{role, content});
            continue;
        }
        if (role != "user") {
            fail("{}: role \"{}\" before the first user message; expected \"user\" (after an optional first "
                 "\"system\")",
                 at, role);
        }
        if (is_blank(content)) {
            fail("{}: the user message is empty", at);
        }
        opening.push_back(ChatMessage{role, content});
        return opening;
    }
    fail("{}: no user message", where);
}

}  // namespace

std::vector<EvalPrompt> prompts_from_conversations(const std::vector<Conversation>& conversations) {
    std::vector<EvalPrompt> prompts;
    for (const Conversation& conversation : conversations) {
        EvalPrompt prompt;
        prompt.source = fmt::format("{}:{}", conversation.source, conversation.line);
        for (const ChatMessage& message : conversation.messages) {
            prompt.messages.push_back(message);
            if (message.role == "user") {
                break;
            }
        }
        prompts.push_back(std::move(prompt));
    }
    return prompts;
}

std::vector<EvalPrompt> read_prompts(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        fail("cannot read the prompts file '{}': it does not exist or is not readable (--prompts)", path);
    }
    std::vector<EvalPrompt> prompts;
    std::string line;
    size_t line_number = 0;
    while (std::getline(in, line)) {
        ++line_number;
        if (is_blank(line)) {
            continue;
        }
        const std::string where = fmt::format("{}:{}", path, line_number);
        nlohmann::json row;
        try {
            row = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error& e) {
            fail("{}: invalid JSON: {}", where, e.what());
        }
        if (!row.is_object()) {
            fail("{}: expected a JSON object", where);
        }
        prompts.push_back(EvalPrompt{opening_messages(row, where), where});
    }
    if (prompts.empty()) {
        fail("prompts file '{}' contains no prompt; write one JSON object per line", path);
    }
    return prompts;
}

}  // namespace sz
