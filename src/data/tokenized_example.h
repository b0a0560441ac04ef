// Conversations rendered with the model's chat template and tokenized, with the mask of the
// tokens that the response-only loss trains.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/conversation.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace sz {

struct TokenizedExample {
    std::vector<int32_t> input_ids;
    // 1 where input_ids[i] is a prediction target, so the trainer scores the logits at
    // position i - 1 against input_ids[i]. It is 1 on every assistant turn's content tokens
    // and its end-of-turn token (so that the model learns to stop), and 0 on BOS, system and
    // user turns, role headers and the text the template puts after an end-of-turn token.
    // Position 0 is always 0.
    std::vector<uint8_t> loss_mask;
    std::string source;  // file and 1-based line of the conversation
    size_t line = 0;
    bool truncated = false;

    int64_t trained_tokens() const;
};

// Handling of a conversation that tokenizes to more than max_tokens.
enum class OverlongPolicy {
    error,     // throw sz::Error naming the file and line
    truncate,  // keep the first max_tokens tokens; drop the example if none of them is trained
    drop,      // skip the example and count it
};

// Parses "error", "truncate" or "drop"; throws sz::Error for anything else.
OverlongPolicy parse_overlong_policy(const std::string& name);

struct TokenizeOptions {
    int64_t max_tokens = 2048;  // the training context length
    OverlongPolicy overlong = OverlongPolicy::error;
};

struct TokenizeReport {
    size_t kept = 0;
    size_t truncated = 0;         // kept, but cut to max_tokens
    size_t dropped_too_long = 0;  // by OverlongPolicy::drop, or truncated to no trained token
    int64_t tokens = 0;           // over kept examples
    int64_t trained_tokens = 0;   // over kept examples

    // One line such as "kept 98 examples (12345 tokens, 6789 trained), truncated 2".
    std::string summary() const;
};

struct TokenizedExamples {
    std::vector<TokenizedExample> examples;
    TokenizeReport report;
};

// Renders and tokenizes one conversation with no length limit.
//
// Spans come from byte offsets. For each assistant turn k, the render of messages [0, k)
// with the generation prompt must be a prefix of the render of [0, k], and both must be
// prefixes of the full render. The text between the two renders is the turn the model
// generates, and its trained part ends with the last end-of-turn piece (vocab.eot_id) in it.
// The full render is tokenized once, and each token's piece locates it in the text.
// Throws sz::Error naming the conversation's file and line when:
//   - the template breaks those prefix relations or renders a turn without end-of-turn piece;
//   - the token pieces do not spell out the render, or a token straddles a span's edge;
//   - a message content contains the text of a control token such as "<end_of_turn>".
TokenizedExample tokenize_conversation(const Conversation& conversation, const Tokenizer& tokenizer,
                                       const ChatTemplate& chat_template);

// Tokenizes every conversation and applies options.overlong.
TokenizedExamples tokenize_conversations(const std::vector<Conversation>& conversations,
                                         const Tokenizer& tokenizer, const ChatTemplate& chat_template,
                                         const TokenizeOptions& options);

}  // namespace sz
