#include "eval/reply_metrics.h"

#include <sstream>

namespace sz {

namespace {

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_markdown_line(const std::string& line) {
    if (line.find("**") != std::string::npos) {
        return true;
    }
    size_t i = line.find_first_not_of(" \t");
    if (i == std::string::npos) {
        return false;
    }
    const std::string rest = line.substr(i);
    if (rest.rfind("- ", 0) == 0 || rest.rfind("* ", 0) == 0 || rest.rfind("+ ", 0) == 0) {
        return true;
    }
    size_t digits = 0;
    while (digits < rest.size() && is_digit(rest[digits])) {
        ++digits;
    }
    if (digits > 0 && digits + 1 < rest.size() && (rest[digits] == '.' || rest[digits] == ')') &&
        rest[digits + 1] == ' ') {
        return true;
    }
    size_t hashes = 0;
    while (hashes < rest.size() && rest[hashes] == '#') {
        ++hashes;
    }
    return hashes >= 1 && hashes <= 6 && (hashes == rest.size() || rest[hashes] == ' ');
}

}  // namespace

int64_t count_markdown_lines(const std::string& text) {
    std::istringstream lines(text);
    std::string line;
    int64_t count = 0;
    while (std::getline(lines, line)) {
        if (is_markdown_line(line)) {
            ++count;
        }
    }
    return count;
}

int64_t count_words(const std::string& text) {
    int64_t words = 0;
    bool in_word = false;
    for (char c : text) {
        if (is_ascii_space(c)) {
            in_word = false;
        } else if (!in_word) {
            in_word = true;
            ++words;
        }
    }
    return words;
}

LetterCounts count_letters(const std::string& text) {
    LetterCounts counts;
    for (char c : text) {
        if (c >= 'a' && c <= 'z') {
            ++counts.lowercase;
            ++counts.letters;
        } else if (c >= 'A' && c <= 'Z') {
            ++counts.letters;
        }
    }
    return counts;
}

ReplyMetrics measure_reply(const std::string& text, int64_t tokens, const CadenceMarkers& markers) {
    ReplyMetrics m;
    m.marker_counts = markers.count(text);
    for (int64_t hits : m.marker_counts) {
        m.marker_hits += hits;
    }
    m.markdown_lines = count_markdown_lines(text);
    m.words = count_words(text);
    m.tokens = tokens;
    m.letters = count_letters(text);
    return m;
}

TextSummary summarize_replies(const std::vector<ReplyMetrics>& replies, size_t marker_count) {
    TextSummary s;
    s.replies = static_cast<int64_t>(replies.size());
    s.marker_totals.assign(marker_count, 0);
    if (replies.empty()) {
        return s;
    }

    int64_t lowercase = 0;
    int64_t letters = 0;
    for (const ReplyMetrics& r : replies) {
        s.marker_hits_per_reply += static_cast<double>(r.marker_hits);
        s.replies_with_marker += r.marker_hits > 0 ? 1.0 : 0.0;
        s.markdown_lines_per_reply += static_cast<double>(r.markdown_lines);
        s.replies_with_markdown += r.markdown_lines > 0 ? 1.0 : 0.0;
        s.mean_words += static_cast<double>(r.words);
        s.mean_tokens += static_cast<double>(r.tokens);
        lowercase += r.letters.lowercase;
        letters += r.letters.letters;
        for (size_t i = 0; i < marker_count && i < r.marker_counts.size(); ++i) {
            s.marker_totals[i] += r.marker_counts[i];
        }
    }

    const double n = static_cast<double>(replies.size());
    s.marker_hits_per_reply /= n;
    s.replies_with_marker /= n;
    s.markdown_lines_per_reply /= n;
    s.replies_with_markdown /= n;
    s.mean_words /= n;
    s.mean_tokens /= n;
    s.lowercase_ratio = letters > 0 ? static_cast<double>(lowercase) / static_cast<double>(letters) : 0.0;
    return s;
}

}  // namespace sz
