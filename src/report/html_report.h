// A self-contained HTML document for run reports: one inline stylesheet, headings, paragraphs,
// tables and inline SVG charts, with no scripts and no external assets, so the file can be
// opened offline or attached to an issue.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sz {

// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string escape_html(std::string_view text);

class HtmlReport {
public:
    // `title` becomes the <title> and the page heading; `subtitle` (optional) a muted line under it.
    explicit HtmlReport(std::string title, std::string subtitle = "");

    // Starts a section with an <h2> heading; the content added next belongs to it. `id` (optional)
    // becomes the section's anchor and an entry in the table of contents.
    void add_section(const std::string& heading, const std::string& id = "");
    void add_subheading(const std::string& heading);
    void add_paragraph(const std::string& text);
    // A muted, smaller paragraph for how to read a chart.
    void add_caption(const std::string& text);
    void add_preformatted(const std::string& text);
    // Two-column table of labels and values.
    void add_key_values(const std::vector<std::pair<std::string, std::string>>& rows);
    // A table with a header row. Cells that parse as numbers are right-aligned.
    void add_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
    // A bulleted list of links, {text, href}; relative hrefs point at files next to the report.
    void add_links(const std::vector<std::pair<std::string, std::string>>& links);
    // An <svg> element from svg::render, inserted as is.
    void add_svg(const std::string& svg);
    // Several charts side by side, wrapping to the page width (small multiples).
    void add_svg_grid(const std::vector<std::string>& svgs);

    std::string html() const;
    // Writes html() to `path` atomically.
    void write(const std::string& path) const;

private:
    void close_section();

    std::string title_;
    std::string subtitle_;
    std::vector<std::pair<std::string, std::string>> contents_;  // {id, heading}
    std::string body_;
    bool section_open_ = false;
};

}  // namespace sz
