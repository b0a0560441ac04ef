// Training conversations read from JSONL files, validated and filtered.
//
// Each non-blank line contains one conversation in one of two layouts:
//   OpenAI:   {"messages": [{"role": "system|user|assistant", "content": "..."}, ...]}
//   ShareGPT: {"conversations": [{"from": "system|human|gpt", "value": "..."}, ...]}
// Both layouts accept the role names of the other plus "model" for the assistant. Other keys
// on the line and in each message are ignored.
#pragma once

#include <cstddef>
#include <istream>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"

namespace sz {

// One conversation with the place it was read from, for error messages further down the line.
struct Conversation {
    // Roles are "system", "user" or "assistant". An optional system message comes first, then
    // user and assistant alternate, starting with user and ending with assistant.
    std::vector<ChatMessage> messages;
    std::string source;  // file path
    size_t line = 0;     // 1-based line in `source`
};

struct ConversationOptions {
    // For logs in which the author was the user talking to an AI: swap user and assistant so
    // that the author's lines become the trained replies. The flip then drops the file's
    // system message (it addressed the AI), the author's opening turn (no prompt precedes
    // it) and a final AI turn (no reply follows it). A conversation left with no assistant
    // turn is dropped and counted, because a single exchange has nothing to train on.
    bool flip_roles = false;

    // When non-empty, the system message of every conversation, replacing one from the file.
    std::string system_prompt;

    // Drop conversations whose messages equal an earlier one's after collapsing whitespace
    // runs to one space and trimming. Roles and letter case must match. Duplicates are
    // detected across all files of one load.
    bool deduplicate = true;

    // Drop conversations in which an assistant turn matches one of `disclaimer_patterns`
    // (ECMAScript regexes, case-insensitive). Only assistant turns are searched, so a flipped
    // log keeps conversations whose AI side, now the user, made such disclaimers.
    bool filter_disclaimers = false;
    std::vector<std::string> disclaimer_patterns = default_disclaimer_patterns();

    // Drop conversations in which a user or assistant turn has fewer characters (Unicode code
    // points, after trimming whitespace) than this. 0 turns the filter off.
    size_t min_turn_chars = 0;

    static std::vector<std::string> default_disclaimer_patterns();
};

// Counts of one load, for the CLI to print. Filters run in the order of the fields below, and
// a dropped conversation is counted under the first filter that dropped it.
struct LoadReport {
    size_t read = 0;  // non-blank lines, each one conversation
    size_t kept = 0;
    size_t dropped_no_reply_after_flip = 0;
    size_t dropped_too_short = 0;
    size_t dropped_disclaimer = 0;
    size_t dropped_duplicate = 0;
    size_t system_prompts_replaced = 0;  // conversations whose own system message was replaced

    size_t dropped() const;
    // One line such as "read 120, kept 101, dropped 19 (duplicate 12, disclaimer 7)".
    std::string summary() const;
};

struct LoadedConversations {
    std::vector<Conversation> conversations;  // in file order, files in the order given
    LoadReport report;
};

// Reads, validates and filters the JSONL files. Throws sz::Error when a file cannot be read
// or any line is invalid. The message counts the invalid lines and lists the first 20 as
// "path:line: problem". A line is invalid for:
//   - bad JSON (with the parser's column), or neither or both of the two list keys;
//   - an unknown role, or empty or non-string content;
//   - turns out of order, a final turn that is not the assistant's, or no assistant turn.
LoadedConversations load_conversations(const std::vector<std::string>& paths, const ConversationOptions& options);
LoadedConversations load_conversations(const std::string& path, const ConversationOptions& options);

// Same as load_conversations, reading one stream that error messages call `source`.
LoadedConversations read_conversations(std::istream& input, const std::string& source,
                                       const ConversationOptions& options);

// The conversation's roles and contents with whitespace runs collapsed to one space and each
// content trimmed: equal keys mean duplicate conversations.
std::string conversation_key(const Conversation& conversation);

}  // namespace sz
