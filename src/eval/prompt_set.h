// Evaluation prompts: the opening of each conversation (an optional system message and the
// first user message), which both models answer.
#pragma once

#include <string>
#include <vector>

#include "data/conversation.h"
#include "tokenizer/chat_template.h"

namespace sz {

struct EvalPrompt {
    std::vector<ChatMessage> messages;  // [system,] user
    std::string source;                 // "path:line"
};

// The opening of each conversation, in order.
std::vector<EvalPrompt> prompts_from_conversations(const std::vector<Conversation>& conversations);

// Reads a prompts JSONL file. Each non-blank line is {"prompt": "text"} or
// {"messages": [{"role", "content"}, ...]}; of the messages, a leading system message and the
// first user message are kept and the rest ignored. Throws sz::Error naming the file and line
// for unreadable files, invalid JSON, a missing or empty user message, or a file with no prompt.
std::vector<EvalPrompt> read_prompts(const std::string& path);

}  // namespace sz
