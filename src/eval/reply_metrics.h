// Per-reply text measurements for `subzero eval` and their averages over a set of replies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/cadence_markers.h"

namespace sz {

// Lines of `text` that carry markdown structure: after leading spaces and tabs, a bullet
// ("- ", "* ", "+ "), a numbered item (digits then ". " or ") "), or a header (1 to 6 '#'
// then a space or the end of the line); or any line that contains "**" (bold).
// A line counts once even when it matches several rules.
int64_t count_markdown_lines(const std::string& text);

// Runs of non-whitespace characters (ASCII whitespace separates words).
int64_t count_words(const std::string& text);

struct LetterCounts {
    int64_t lowercase = 0;
    int64_t letters = 0;
};

// Lowercase and all letters of `text`. NOTE: only ASCII letters count, so a reply in a
// non-Latin script has no letters and no lowercase ratio.
LetterCounts count_letters(const std::string& text);

struct ReplyMetrics {
    std::vector<int64_t> marker_counts;  // per marker, in the markers file's order
    int64_t marker_hits = 0;             // sum of marker_counts
    int64_t markdown_lines = 0;
    int64_t words = 0;
    int64_t tokens = 0;  // generated tokens, end-of-turn token excluded
    LetterCounts letters;
};

ReplyMetrics measure_reply(const std::string& text, int64_t tokens, const CadenceMarkers& markers);

// Averages over a set of replies. Rates are shares of replies in [0, 1].
struct TextSummary {
    int64_t replies = 0;
    double marker_hits_per_reply = 0.0;
    double replies_with_marker = 0.0;  // share with at least one marker hit
    double markdown_lines_per_reply = 0.0;
    double replies_with_markdown = 0.0;  // share with at least one markdown line
    double mean_words = 0.0;
    double mean_tokens = 0.0;
    // Lowercase letters over all letters, pooled over every reply, so long replies weigh more.
    // 0 when the replies contain no letter.
    double lowercase_ratio = 0.0;
    std::vector<int64_t> marker_totals;  // per marker, summed over replies
};

TextSummary summarize_replies(const std::vector<ReplyMetrics>& replies, size_t marker_count);

}  // namespace sz
