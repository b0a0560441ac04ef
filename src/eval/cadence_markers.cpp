#include "eval/cadence_markers.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace sz {

namespace {

std::string trim(const std::string& s) {
    const char* space = " \t\r\n";
    const size_t begin = s.find_first_not_of(space);
    if (begin == std::string::npos) {
        return "";
    }
    const size_t end = s.find_last_not_of(space);
    return s.substr(begin, end - begin + 1);
}

int64_t count_substring(const std::string& haystack, const std::string& needle) {
    int64_t hits = 0;
    for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + needle.size())) {
        ++hits;
    }
    return hits;
}

int64_t count_regex(const std::string& haystack, const std::regex& pattern) {
    auto begin = std::sregex_iterator(haystack.begin(), haystack.end(), pattern);
    return static_cast<int64_t>(std::distance(begin, std::sregex_iterator()));
}

}  // namespace

std::string normalize_for_markers(const std::string& text) {
    static const std::string kRightQuote = "\xE2\x80\x99";  // U+2019 in UTF-8
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        if (text.compare(i, kRightQuote.size(), kRightQuote) == 0) {
            out += '\'';
            i += kRightQuote.size() - 1;
            continue;
        }
        const char c = text[i];
        out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    return out;
}

CadenceMarkers CadenceMarkers::load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        fail("cannot read the cadence markers file '{}': it does not exist or is not readable (--markers)", path);
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    return parse(buffer.str(), path);
}

CadenceMarkers CadenceMarkers::parse(const std::string& text, const std::string& source) {
    CadenceMarkers result;
    result.source_ = source;
    std::istringstream lines(text);
    std::string raw;
    size_t line_number = 0;
    while (std::getline(lines, raw)) {
        ++line_number;
        const std::string line = trim(raw);
        if (line.empty() || line[0] == '#') {
            continue;
        }
        CadenceMarker marker;
        marker.text = line;
        marker.line = line_number;
        if (line.rfind("re:", 0) == 0) {
            marker.is_regex = true;
            const std::string expression = line.substr(3);
            try {
                marker.pattern = std::regex(expression, std::regex::ECMAScript | std::regex::icase);
            } catch (const std::regex_error& e) {
                fail("{}:{}: invalid regular expression '{}': {}", source, line_number, expression, e.what());
            }
            // An empty match would count once per position and swamp the metric.
            if (std::regex_match(std::string(), marker.pattern)) {
                fail("{}:{}: regular expression '{}' matches the empty string; make it match at least one character",
                     source, line_number, expression);
            }
        } else {
            marker.needle = normalize_for_markers(line);
        }
        result.markers_.push_back(std::move(marker));
    }
    if (result.markers_.empty()) {
        fail("cadence markers file '{}' contains no marker; write one phrase per line", source);
    }
    return result;
}

std::vector<int64_t> CadenceMarkers::count(const std::string& reply) const {
    const std::string normalized = normalize_for_markers(reply);
    std::vector<int64_t> counts;
    counts.reserve(markers_.size());
    for (const CadenceMarker& marker : markers_) {
        counts.push_back(marker.is_regex ? count_regex(normalized, marker.pattern)
                                         : count_substring(normalized, marker.needle));
    }
    return counts;
}

}  // namespace sz
