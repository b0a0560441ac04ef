#include "data/tokenized_example.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"

namespace sz {

namespace {

// Byte range [begin, end) of the rendered text.
struct TextSpan {
    size_t begin = 0;
    size_t end = 0;
};

bool starts_with(const std::string& text, const std::string& prefix) {
    return text.size() >= prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

std::string render_or_fail(const ChatTemplate& chat_template, const std::vector<ChatMessage>& messages,
                           bool add_generation_prompt, const std::string& where) {
    try {
        return chat_template.render(messages, add_generation_prompt);
    } catch (const Error& error) {
        fail("{}: {}", where, error.what());
    }
}

// The trained span of every assistant turn in `full`, the render of the whole conversation.
std::vector<TextSpan> find_trained_spans(const std::vector<ChatMessage>& messages, const std::string& full,
                                         const ChatTemplate& chat_template, const std::string& end_of_turn,
                                         const std::string& where) {
    std::vector<TextSpan> spans;
    for (size_t k = 0; k < messages.size(); ++k) {
        if (messages[k].role != "assistant") {
            continue;
        }
        const std::vector<ChatMessage> before(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(k));
        const std::vector<ChatMessage> through(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(k) + 1);
        const std::string prompt = render_or_fail(chat_template, before, true, where);
        const std::string with_turn = render_or_fail(chat_template, through, false, where);
        if (!starts_with(with_turn, prompt) || !starts_with(full, with_turn)) {
            fail("{}: the {} chat template does not render message {} as an extension of the messages "
                 "before it, so the assistant's tokens cannot be located for the loss mask",
                 where, chat_template.family(), k + 1);
        }
        const size_t end_of_turn_pos = with_turn.rfind(end_of_turn);
        if (end_of_turn_pos == std::string::npos || end_of_turn_pos < prompt.size()) {
            fail("{}: the {} chat template renders assistant message {} without the end-of-turn piece '{}'",
                 where, chat_template.family(), k + 1, end_of_turn);
        }
        spans.push_back({prompt.size(), end_of_turn_pos + end_of_turn.size()});
    }
    return spans;
}

size_t count_control_tokens(const std::vector<int32_t>& ids, const Vocab& vocab) {
    return static_cast<size_t>(std::count_if(ids.begin(), ids.end(), [&](int32_t id) {
        return vocab.types[static_cast<size_t>(id)] == TokenType::CONTROL;
    }));
}

// Rejects message contents that tokenize to control tokens: such text would add or end turns
// that the template did not write. The common case costs one short render: the conversation
// with every content replaced by a placeholder must have as many control tokens.
void check_no_control_text(const std::vector<ChatMessage>& messages, size_t control_tokens,
                           const Tokenizer& tokenizer, const ChatTemplate& chat_template,
                           const std::string& where) {
    std::vector<ChatMessage> placeholders = messages;
    for (ChatMessage& message : placeholders) {
        message.content = "x";
    }
    const std::string skeleton = render_or_fail(chat_template, placeholders, false, where);
    if (count_control_tokens(tokenizer.encode(skeleton, false, true), tokenizer.vocab()) == control_tokens) {
        return;
    }
    for (size_t i = 0; i < messages.size(); ++i) {
        for (int32_t id : tokenizer.encode(messages[i].content, false, true)) {
            if (tokenizer.vocab().types[static_cast<size_t>(id)] == TokenType::CONTROL) {
                fail("{}: message {} contains the text of the control token '{}', which would be read as a "
                     "turn marker; remove it from the data",
                     where, i + 1, tokenizer.vocab().pieces[static_cast<size_t>(id)]);
            }
        }
    }
    fail("{}: the conversation renders to a different number of control tokens than its turn layout; "
         "a message content probably joins with the template text into a control token",
         where);
}

}  // namespace

int64_t TokenizedExample::trained_tokens() const {
    return std::count(loss_mask.begin(), loss_mask.end(), uint8_t{1});
}

OverlongPolicy parse_overlong_policy(const std::string& name) {
    if (name == "error") {
        return OverlongPolicy::error;
    }
    if (name == "truncate") {
        return OverlongPolicy::truncate;
    }
    if (name == "drop") {
        return OverlongPolicy::drop;
    }
    fail("invalid overlong policy '{}'; expected error, truncate or drop", name);
}

std::string TokenizeReport::summary() const {
    std::string text = fmt::format("kept {} examples ({} tokens, {} trained)", kept, tokens, trained_tokens);
    if (truncated > 0) {
        text += fmt::format(", truncated {}", truncated);
    }
    if (dropped_too_long > 0) {
        text += fmt::format(", dropped {} too long", dropped_too_long);
    }
    return text;
}

TokenizedExample tokenize_conversation(const Conversation& conversation, const Tokenizer& tokenizer,
                                       const ChatTemplate& chat_template) {
    const std::string where = fmt::format("{}:{}", conversation.source, conversation.line);
    const Vocab& vocab = tokenizer.vocab();
    if (vocab.eot_id < 0) {
        fail("{}: the vocabulary has no end-of-turn token, so the loss mask cannot train the model to "
             "stop; use a chat model's vocabulary",
             where);
    }
    const std::string& end_of_turn = vocab.pieces[static_cast<size_t>(vocab.eot_id)];

    const std::string full = render_or_fail(chat_template, conversation.messages, false, where);
    const std::vector<TextSpan> spans =
        find_trained_spans(conversation.messages, full, chat_template, end_of_turn, where);

    TokenizedExample example;
    example.source = conversation.source;
    example.line = conversation.line;
    example.input_ids = tokenizer.encode(full, false, true);
    check_no_control_text(conversation.messages, count_control_tokens(example.input_ids, vocab), tokenizer,
                          chat_template, where);

    // Walk tokens and spans together; both are in text order.
    example.loss_mask.assign(example.input_ids.size(), 0);
    size_t offset = 0;
    size_t span = 0;
    for (size_t i = 0; i < example.input_ids.size(); ++i) {
        const std::string piece = tokenizer.token_to_piece(example.input_ids[i], true);
        if (full.compare(offset, piece.size(), piece) != 0) {
            fail("{}: token {} ('{}') does not match the rendered text at byte {}, so tokens cannot be "
                 "mapped to assistant turns",
                 where, i, piece, offset);
        }
        const size_t begin = offset;
        const size_t end = offset + piece.size();
        offset = end;
        while (span < spans.size() && spans[span].end <= begin) {
            ++span;
        }
        if (span == spans.size() || end <= spans[span].begin) {
            continue;  // before the next span
        }
        if (begin < spans[span].begin || end > spans[span].end) {
            fail("{}: token {} ('{}') spans the edge of an assistant turn, so the loss mask would be "
                 "ambiguous",
                 where, i, piece);
        }
        example.loss_mask[i] = 1;
    }
    if (offset != full.size()) {
        fail("{}: the tokens spell out {} of the {} bytes of the rendered text", where, offset, full.size());
    }
    return example;
}

TokenizedExamples tokenize_conversations(const std::vector<Conversation>& conversations,
                                         const Tokenizer& tokenizer, const ChatTemplate& chat_template,
                                         const TokenizeOptions& options) {
    if (options.max_tokens < 2) {
        fail("invalid maximum token count {}: an example needs at least 2 tokens", options.max_tokens);
    }
    const auto max_tokens = static_cast<size_t>(options.max_tokens);
    TokenizedExamples result;
    TokenizeReport& report = result.report;
    for (const Conversation& conversation : conversations) {
        TokenizedExample example = tokenize_conversation(conversation, tokenizer, chat_template);
        if (example.input_ids.size() > max_tokens) {
            if (options.overlong == OverlongPolicy::error) {
                fail("{}:{}: the conversation is {} tokens long, more than the maximum of {}; raise the "
                     "maximum, shorten the conversation, or truncate or drop overlong conversations",
                     conversation.source, conversation.line, example.input_ids.size(), max_tokens);
            }
            if (options.overlong == OverlongPolicy::drop) {
                ++report.dropped_too_long;
                continue;
            }
            example.input_ids.resize(max_tokens);
            example.loss_mask.resize(max_tokens);
            example.truncated = true;
            if (example.trained_tokens() == 0) {
                ++report.dropped_too_long;
                continue;
            }
            ++report.truncated;
        }
        ++report.kept;
        report.tokens += static_cast<int64_t>(example.input_ids.size());
        report.trained_tokens += example.trained_tokens();
        result.examples.push_back(std::move(example));
    }
    return result;
}

}  // namespace sz
