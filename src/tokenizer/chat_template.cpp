#include "tokenizer/chat_template.h"

#include <algorithm>
#include <cstdint>
#include <regex>

#include "core/error.h"

namespace sz {

namespace {

constexpr const char* kStartOfTurn = "<start_of_turn>";

// Gemma's turn layout as a Jinja template (Hugging Face chat-template conventions: variables
// `messages`, `bos_token`, `add_generation_prompt`, function `raise_exception`). Written for
// base models, whose files carry no template, so that export has one to store.
const char* const kGemmaTemplate = R"JINJA({{ bos_token }}
{%- if messages and messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_turn_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_turn_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set turns = messages[1:] -%}
{%- else -%}
    {%- set first_turn_prefix = '' -%}
    {%- set turns = messages -%}
{%- endif -%}
{%- for turn in turns -%}
    {%- if (turn['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif -%}
    {%- set speaker = 'model' if turn['role'] == 'assistant' else turn['role'] -%}
    {{ '<start_of_turn>' + speaker + '\n' }}
    {%- if loop.first -%}
        {{ first_turn_prefix }}
    {%- endif -%}
    {%- if turn['content'] is string -%}
        {{ turn['content'] | trim }}
    {%- else -%}
        {%- for part in turn['content'] -%}
            {%- if part['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif part['type'] == 'text' -%}
                {{ part['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\n' }}
{%- endif -%}
)JINJA";

// Whitespace as Python's str.isspace() defines it, because Jinja's `trim` filter is
// Python's str.strip().
bool is_python_space(uint32_t code_point) {
    return (code_point >= 0x09 && code_point <= 0x0D) || (code_point >= 0x1C && code_point <= 0x20) ||
           code_point == 0x85 || code_point == 0xA0 || code_point == 0x1680 ||
           (code_point >= 0x2000 && code_point <= 0x200A) || code_point == 0x2028 ||
           code_point == 0x2029 || code_point == 0x202F || code_point == 0x205F || code_point == 0x3000;
}

// Decodes the UTF-8 character starting at `pos`; returns its length, or 0 when the bytes there
// are not a valid sequence (those are never whitespace).
size_t decode_utf8(const std::string& text, size_t pos, uint32_t& code_point) {
    auto byte = static_cast<unsigned char>(text[pos]);
    size_t length = 0;
    if (byte < 0x80) {
        code_point = byte;
        return 1;
    } else if ((byte & 0xE0) == 0xC0) {
        length = 2;
        code_point = byte & 0x1F;
    } else if ((byte & 0xF0) == 0xE0) {
        length = 3;
        code_point = byte & 0x0F;
    } else if ((byte & 0xF8) == 0xF0) {
        length = 4;
        code_point = byte & 0x07;
    } else {
        return 0;
    }
    if (pos + length > text.size()) {
        return 0;
    }
    for (size_t i = 1; i < length; ++i) {
        auto next = static_cast<unsigned char>(text[pos + i]);
        if ((next & 0xC0) != 0x80) {
            return 0;
        }
        code_point = (code_point << 6) | (next & 0x3F);
    }
    return length;
}

std::string trim_python_whitespace(const std::string& text) {
    // Split into characters once so that trailing whitespace can be found from the end.
    std::vector<std::pair<size_t, bool>> characters;  // start offset, is whitespace
    for (size_t pos = 0; pos < text.size();) {
        uint32_t code_point = 0;
        size_t length = decode_utf8(text, pos, code_point);
        characters.emplace_back(pos, length > 0 && is_python_space(code_point));
        pos += length > 0 ? length : 1;
    }
    size_t first = 0;
    while (first < characters.size() && characters[first].second) {
        ++first;
    }
    size_t last = characters.size();
    while (last > first && characters[last - 1].second) {
        --last;
    }
    if (first == last) {
        return "";
    }
    size_t begin = characters[first].first;
    size_t end = last < characters.size() ? characters[last].first : text.size();
    return text.substr(begin, end - begin);
}

// The text a Gemma template appends to the system message, read from the string literal in
// `messages[0]['content'] + '...'`. Gemma's published template appends "\n\n", which is
// also the fallback when the source has no such expression.
std::string system_separator(const std::string& jinja) {
    static const std::regex kPattern(R"(messages\[0\]\[['"]content['"]\]\s*\+\s*(['"])((?:\\.|[^\\'"])*)\1)");
    std::smatch match;
    if (!std::regex_search(jinja, match, kPattern)) {
        return "\n\n";
    }
    const std::string literal = match[2].str();
    std::string separator;
    for (size_t i = 0; i < literal.size(); ++i) {
        if (literal[i] != '\\' || i + 1 == literal.size()) {
            separator += literal[i];
            continue;
        }
        char escaped = literal[++i];
        if (escaped == 'n') {
            separator += '\n';
        } else if (escaped == 't') {
            separator += '\t';
        } else {
            separator += escaped;
        }
    }
    return separator;
}

bool has_piece(const Vocab& vocab, const std::string& piece) {
    if (!vocab.piece_to_id.empty()) {
        return vocab.find_piece(piece) >= 0;
    }
    return std::find(vocab.pieces.begin(), vocab.pieces.end(), piece) != vocab.pieces.end();
}

}  // namespace

ChatTemplate ChatTemplate::for_vocab(const Vocab& vocab) {
    ChatTemplate result;
    if (!vocab.chat_template.empty()) {
        if (vocab.chat_template.find(kStartOfTurn) == std::string::npos) {
            fail("the model's chat template is not a supported family: subzero renders Gemma "
                 "templates (marked by {}) only", kStartOfTurn);
        }
        result.jinja_ = vocab.chat_template;
        result.system_separator_ = system_separator(vocab.chat_template);
    } else {
        if (!has_piece(vocab, kStartOfTurn)) {
            fail("the model has no chat template and its vocabulary has no {} token, so the chat "
                 "format is unknown; use a model with a Gemma vocabulary", kStartOfTurn);
        }
        result.jinja_ = kGemmaTemplate;
    }
    result.family_ = "gemma";
    if (vocab.bos_id >= 0 && vocab.bos_id < vocab.size()) {
        result.bos_piece_ = vocab.pieces[vocab.bos_id];
    }
    return result;
}

// NOTE: a model's own Gemma template is rendered natively, not by a Jinja engine. Only the
// separator after the system text is taken from its source, so other edits to the layout are
// not reproduced.
std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
    std::string prompt = bos_piece_;

    size_t first_turn = 0;
    std::string first_turn_prefix;
    if (!messages.empty() && messages[0].role == "system") {
        first_turn_prefix = messages[0].content + system_separator_;
        first_turn = 1;
    }

    for (size_t i = first_turn; i < messages.size(); ++i) {
        const ChatMessage& message = messages[i];
        const bool user_turn = (i - first_turn) % 2 == 0;
        const bool is_user = message.role == "user";
        const bool is_model = message.role == "assistant" || message.role == "model";
        if (user_turn ? !is_user : !is_model) {
            fail("chat message {} has role '{}' but '{}' was expected: after an optional leading "
                 "system message, Gemma turns must alternate user/assistant",
                 i, message.role, user_turn ? "user" : "assistant");
        }
        prompt += kStartOfTurn;
        prompt += is_user ? "user\n" : "model\n";
        if (i == first_turn) {
            prompt += first_turn_prefix;
        }
        prompt += trim_python_whitespace(message.content);
        prompt += "<end_of_turn>\n";
    }

    if (add_generation_prompt) {
        prompt += kStartOfTurn;
        prompt += "model\n";
    }
    return prompt;
}

}  // namespace sz
