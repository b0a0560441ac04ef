// Assistant-cadence markers: stock phrases of chat assistants ("i'd be happy to", "great
// question"), counted in generated replies to measure how much assistant cadence is left.
#pragma once

#include <cstdint>
#include <regex>
#include <string>
#include <vector>

namespace sz {

struct CadenceMarker {
    std::string text;  // the marker as written in the file, "re:" prefix included
    size_t line = 0;   // 1-based line in the markers file
    bool is_regex = false;
    std::string needle;  // lowercase substring, when !is_regex
    std::regex pattern;  // case-insensitive ECMAScript regex, when is_regex
};

// Markers read from a text file: one per line, '#' starts a comment line, blank lines are
// skipped. A line "re:PATTERN" is an ECMAScript regex; any other line is a substring. Both
// match case-insensitively. Throws sz::Error naming the file and line for an unreadable file,
// an invalid regex, a regex that matches the empty string, or a file with no marker.
class CadenceMarkers {
public:
    static CadenceMarkers load(const std::string& path);
    static CadenceMarkers parse(const std::string& text, const std::string& source);

    // Non-overlapping occurrences of each marker in `reply`, in marker order. The reply is
    // lowercased (ASCII) and U+2019 is read as an apostrophe before matching.
    std::vector<int64_t> count(const std::string& reply) const;

    const std::vector<CadenceMarker>& markers() const { return markers_; }
    const std::string& source() const { return source_; }

private:
    std::vector<CadenceMarker> markers_;
    std::string source_;
};

// `text` with ASCII letters lowercased and the right single quotation mark (U+2019) replaced
// by "'", so "I’d" matches the marker "i'd".
std::string normalize_for_markers(const std::string& text);

}  // namespace sz
