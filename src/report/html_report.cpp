#include "report/html_report.h"

#include <cstdlib>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "report/svg_plot.h"

namespace sz {

namespace {

constexpr const char* kStyle = R"css(
:root { color-scheme: light; }
body { margin: 0; background: #f6f7f9; color: #222; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { font-size: 24px; margin: 8px 0 2px; }
header .subtitle { color: #666; margin: 0 0 12px; }
nav { font-size: 13px; margin: 0 0 8px; }
nav a { color: #4e79a7; text-decoration: none; margin-right: 14px; }
section { background: #fff; border: 1px solid #e3e5e8; border-radius: 8px; padding: 14px 20px 18px; margin: 18px 0; }
h2 { font-size: 18px; margin: 4px 0 10px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
p { margin: 6px 0; }
p.caption { color: #666; font-size: 12.5px; }
pre { background: #f3f4f6; border-radius: 6px; padding: 10px 12px; overflow-x: auto; font-size: 12.5px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { padding: 4px 12px 4px 0; border-bottom: 1px solid #eceef1; text-align: left; vertical-align: top; }
th { color: #555; font-weight: 600; border-bottom: 1px solid #cfd3d8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { font-weight: 500; color: #666; border-bottom: 1px solid #eceef1; padding-right: 24px; }
figure { margin: 8px 0; overflow-x: auto; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
.grid figure { margin: 0; }
svg { max-width: 100%; height: auto; }
)css";

// True for text a reader compares by magnitude: "12", "-0.5", "3.2e-4", "1.5 s", "45%".
bool looks_numeric(const std::string& text) {
    if (text.empty()) {
        return false;
    }
    char* end = nullptr;
    std::strtod(text.c_str(), &end);
    if (end == text.c_str()) {
        return false;
    }
    const std::string rest(end);
    return rest.empty() || rest == " s" || rest == "%" || rest == " nats" || rest == " ms";
}

}  // namespace

std::string escape_html(std::string_view text) {
    // HTML text and attributes need the same five entities as XML, and control characters
    // have no place in either.
    return svg::escape_xml(text);
}

HtmlReport::HtmlReport(std::string title, std::string subtitle)
    : title_(std::move(title)), subtitle_(std::move(subtitle)) {}

void HtmlReport::close_section() {
    if (section_open_) {
        body_ += "</section>\n";
        section_open_ = false;
    }
}

void HtmlReport::add_section(const std::string& heading, const std::string& id) {
    close_section();
    if (id.empty()) {
        body_ += "<section>\n";
    } else {
        body_ += fmt::format("<section id=\"{}\">\n", escape_html(id));
        contents_.emplace_back(id, heading);
    }
    body_ += fmt::format("<h2>{}</h2>\n", escape_html(heading));
    section_open_ = true;
}

void HtmlReport::add_subheading(const std::string& heading) { body_ += fmt::format("<h3>{}</h3>\n", escape_html(heading)); }

void HtmlReport::add_paragraph(const std::string& text) { body_ += fmt::format("<p>{}</p>\n", escape_html(text)); }

void HtmlReport::add_links(const std::vector<std::pair<std::string, std::string>>& links) {
    body_ += "<ul>\n";
    for (const auto& [text, href] : links) {
        body_ += fmt::format("<li><a href=\"{}\">{}</a></li>\n", escape_html(href), escape_html(text));
    }
    body_ += "</ul>\n";
}

void HtmlReport::add_caption(const std::string& text) {
    body_ += fmt::format("<p class=\"caption\">{}</p>\n", escape_html(text));
}

void HtmlReport::add_preformatted(const std::string& text) {
    body_ += fmt::format("<pre>{}</pre>\n", escape_html(text));
}

void HtmlReport::add_key_values(const std::vector<std::pair<std::string, std::string>>& rows) {
    body_ += "<table class=\"kv\">\n";
    for (const auto& [key, value] : rows) {
        body_ += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", escape_html(key), escape_html(value));
    }
    body_ += "</table>\n";
}

void HtmlReport::add_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
    body_ += "<table>\n<tr>";
    for (const std::string& cell : header) {
        body_ += fmt::format("<th>{}</th>", escape_html(cell));
    }
    body_ += "</tr>\n";
    for (const auto& row : rows) {
        body_ += "<tr>";
        for (const std::string& cell : row) {
            body_ += looks_numeric(cell) ? fmt::format("<td class=\"num\">{}</td>", escape_html(cell))
                                         : fmt::format("<td>{}</td>", escape_html(cell));
        }
        body_ += "</tr>\n";
    }
    body_ += "</table>\n";
}

void HtmlReport::add_svg(const std::string& svg) { body_ += "<figure>\n" + svg + "</figure>\n"; }

void HtmlReport::add_svg_grid(const std::vector<std::string>& svgs) {
    body_ += "<div class=\"grid\">\n";
    for (const std::string& svg : svgs) {
        body_ += "<figure>\n" + svg + "</figure>\n";
    }
    body_ += "</div>\n";
}

std::string HtmlReport::html() const {
    std::string out = fmt::format(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n<header>\n<h1>{}</h1>\n",
        escape_html(title_), kStyle, escape_html(title_));
    if (!subtitle_.empty()) {
        out += fmt::format("<p class=\"subtitle\">{}</p>\n", escape_html(subtitle_));
    }
    if (!contents_.empty()) {
        out += "<nav>";
        for (const auto& [id, heading] : contents_) {
            out += fmt::format("<a href=\"#{}\">{}</a>", escape_html(id), escape_html(heading));
        }
        out += "</nav>\n";
    }
    out += "</header>\n";
    out += body_;
    if (section_open_) {
        out += "</section>\n";
    }
    out += "</main>\n</body>\n</html>\n";
    return out;
}

void HtmlReport::write(const std::string& path) const { write_file_atomically(path, html()); }

}  // namespace sz
