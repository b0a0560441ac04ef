// Chat template: renders a conversation into the prompt text a chat model was trained on.
//
// subzero renders known template families natively (Gemma's turn markers today) and keeps the
// model's own Jinja source untouched so that export can write it back into the GGUF.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/vocab.h"

namespace sz {

struct ChatMessage {
    std::string role;     // "system", "user" or "assistant" ("model" is accepted for assistant)
    std::string content;
};

class ChatTemplate {
public:
    // Picks the template family from the vocabulary's Jinja source, or from its special
    // tokens when the file carries no template (base models). Throws sz::Error when neither
    // identifies a known family.
    static ChatTemplate for_vocab(const Vocab& vocab);

    // Renders the conversation. The text starts with the BOS piece when the family's template
    // does, so tokenize it with add_special = false and parse_special = true.
    // Throws sz::Error for roles out of order (the Gemma template requires user/assistant
    // alternation after an optional leading system message).
    std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

    const std::string& family() const { return family_; }
    // The Jinja template to write on export: the model's own when it had one, else the
    // canonical template of the family.
    const std::string& jinja_source() const { return jinja_; }

private:
    std::string family_;
    std::string jinja_;
    std::string bos_piece_;
    std::string system_separator_ = "\n\n";  // appended to the system message text
};

}  // namespace sz
