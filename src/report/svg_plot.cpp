#include "report/svg_plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "core/error.h"

namespace sz::svg {

namespace {

constexpr const char* kFontFamily = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
constexpr const char* kAxisColor = "#8a8a8a";
constexpr const char* kGridColor = "#ececec";
constexpr const char* kTextColor = "#333333";
constexpr const char* kMutedColor = "#666666";
// Average advance of a character of the 11-12 px sans-serif labels, used to size margins.
constexpr double kCharWidth = 6.2;
// A white outline drawn under the glyphs, so a marker label stays readable over bars and lines.
constexpr const char* kHalo = "stroke=\"#ffffff\" stroke-width=\"3\" stroke-opacity=\"0.85\" paint-order=\"stroke\"";
constexpr double kTitleHeight = 30.0;
constexpr double kLegendRowHeight = 18.0;
constexpr double kNoteRowHeight = 15.0;

std::string px(double value) { return fmt::format("{:.1f}", value); }

std::string fixed(double value, int decimals) { return fmt::format("{:.{}f}", value, std::max(decimals, 0)); }

double text_width(const std::string& text) { return kCharWidth * static_cast<double>(text.size()); }

// Collects the elements of one <svg> document.
class SvgBuilder {
public:
    SvgBuilder(double width, double height) : width_(width), height_(height) {}

    void text(double x, double y, const std::string& content, const std::string& attributes = "") {
        body_ += fmt::format("<text x=\"{}\" y=\"{}\"{}{}>{}</text>\n", px(x), px(y), attributes.empty() ? "" : " ",
                             attributes, escape_xml(content));
    }
    void line(double x1, double y1, double x2, double y2, const std::string& attributes) {
        body_ += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" {}/>\n", px(x1), px(y1), px(x2), px(y2),
                             attributes);
    }
    void rect(double x, double y, double w, double h, const std::string& attributes) {
        body_ += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" {}/>\n", px(x), px(y),
                             px(std::max(w, 0.0)), px(std::max(h, 0.0)), attributes);
    }
    void circle(double x, double y, double r, const std::string& attributes) {
        body_ += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"{}\" {}/>\n", px(x), px(y), px(r), attributes);
    }
    void path(const std::string& d, const std::string& attributes) {
        if (!d.empty()) {
            body_ += fmt::format("<path d=\"{}\" {}/>\n", d, attributes);
        }
    }
    std::string finish(const std::string& title) const {
        return fmt::format(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" "
            "font-family=\"{font}\" font-size=\"11\" fill=\"{text}\" role=\"img\" aria-label=\"{label}\">\n"
            "<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n{body}</svg>\n",
            fmt::arg("w", px(width_)), fmt::arg("h", px(height_)), fmt::arg("font", kFontFamily),
            fmt::arg("text", kTextColor), fmt::arg("label", escape_xml(title)), fmt::arg("body", body_));
    }

private:
    double width_;
    double height_;
    std::string body_;
};

struct LegendEntry {
    std::string label;
    std::string color;
    bool swatch_is_box = false;  // box for bands and bars, short line for series
    bool dashed = false;
    bool swatch_is_dot = false;  // for point series
    double opacity = 1.0;
};

// Lays legend entries out in rows no wider than max_width; returns the row count.
int legend_rows(const std::vector<LegendEntry>& entries, double max_width) {
    if (entries.empty()) {
        return 0;
    }
    int rows = 1;
    double x = 0.0;
    for (const LegendEntry& entry : entries) {
        const double w = 26.0 + text_width(entry.label) + 14.0;
        if (x > 0.0 && x + w > max_width) {
            ++rows;
            x = 0.0;
        }
        x += w;
    }
    return rows;
}

void draw_legend(SvgBuilder& svg, const std::vector<LegendEntry>& entries, double left, double top, double max_width) {
    double x = 0.0;
    double y = top;
    for (const LegendEntry& entry : entries) {
        const double w = 26.0 + text_width(entry.label) + 14.0;
        if (x > 0.0 && x + w > max_width) {
            x = 0.0;
            y += kLegendRowHeight;
        }
        if (entry.swatch_is_dot) {
            svg.circle(left + x + 9.0, y - 4.0, 3.2, fmt::format("fill=\"{}\"", escape_xml(entry.color)));
        } else if (entry.swatch_is_box) {
            svg.rect(left + x, y - 9.0, 18.0, 10.0, fmt::format("fill=\"{}\" stroke=\"#bbbbbb\" stroke-width=\"0.5\"",
                                                                escape_xml(entry.color)));
        } else {
            svg.line(left + x, y - 4.0, left + x + 18.0, y - 4.0,
                     fmt::format("stroke=\"{}\" stroke-width=\"2.5\" stroke-opacity=\"{}\"{}", escape_xml(entry.color),
                                 fixed(entry.opacity, 2), entry.dashed ? " stroke-dasharray=\"5 3\"" : ""));
        }
        svg.text(left + x + 24.0, y, entry.label);
        x += w;
    }
}

void draw_notes(SvgBuilder& svg, const std::vector<std::string>& notes, double left, double top) {
    for (size_t i = 0; i < notes.size(); ++i) {
        svg.text(left, top + kNoteRowHeight * static_cast<double>(i), notes[i],
                 fmt::format("fill=\"{}\" font-style=\"italic\"", kMutedColor));
    }
}

std::string pluralise(size_t count, const char* noun) {
    return fmt::format("{} {}{}", count, noun, count == 1 ? "" : "s");
}

// Maps data values to pixels on one axis, linear or log10.
struct AxisScale {
    AxisTicks ticks;
    bool log = false;
    double pixel_from = 0.0;  // pixel of ticks.min
    double pixel_to = 1.0;    // pixel of ticks.max

    double operator()(double value) const {
        const double v = log ? std::log10(value) : value;
        const double lo = log ? std::log10(ticks.min) : ticks.min;
        const double hi = log ? std::log10(ticks.max) : ticks.max;
        const double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
        return pixel_from + t * (pixel_to - pixel_from);
    }
};

// Finite data range, widened to include extra values.
struct Range {
    double lo = std::numeric_limits<double>::infinity();
    double hi = -std::numeric_limits<double>::infinity();
    void add(double v) {
        if (std::isfinite(v)) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
    }
    bool empty() const { return lo > hi; }
};

struct Rgb {
    double r, g, b;
};

// Sequential blue scale (light to dark), the usual choice for counts and magnitudes.
Rgb sequential_color(double t) {
    static const std::array<Rgb, 5> stops = {{{247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181},
                                              {8, 48, 107}}};
    t = std::clamp(t, 0.0, 1.0) * static_cast<double>(stops.size() - 1);
    const size_t i = std::min(static_cast<size_t>(t), stops.size() - 2);
    const double f = t - static_cast<double>(i);
    return {stops[i].r + f * (stops[i + 1].r - stops[i].r), stops[i].g + f * (stops[i + 1].g - stops[i].g),
            stops[i].b + f * (stops[i + 1].b - stops[i].b)};
}

std::string css_color(const Rgb& c) {
    return fmt::format("#{:02x}{:02x}{:02x}", static_cast<int>(std::lround(c.r)), static_cast<int>(std::lround(c.g)),
                       static_cast<int>(std::lround(c.b)));
}


}  // namespace

// ---------------------------------------------------------------------------------------------
// Text and numbers

std::string escape_xml(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default:
                // XML 1.0 forbids control characters other than tab, newline and carriage return.
                if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
                    out += ' ';
                } else {
                    out += c;
                }
        }
    }
    return out;
}

const char* palette_color(size_t index) {
    // Tableau 10, a categorical palette readable on white and by most colour-blind readers.
    static const std::array<const char*, 10> colors = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                                       "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
    return colors[index % colors.size()];
}

double nice_number(double x, bool round) {
    SZ_ASSERT(x > 0.0 && std::isfinite(x));
    const double exponent = std::floor(std::log10(x));
    const double power = std::pow(10.0, exponent);
    const double fraction = x / power;
    double nice = 10.0;
    if (round) {
        if (fraction < 1.5) {
            nice = 1.0;
        } else if (fraction < 3.0) {
            nice = 2.0;
        } else if (fraction < 7.0) {
            nice = 5.0;
        }
    } else {
        if (fraction <= 1.0) {
            nice = 1.0;
        } else if (fraction <= 2.0) {
            nice = 2.0;
        } else if (fraction <= 5.0) {
            nice = 5.0;
        }
    }
    return nice * power;
}

AxisTicks nice_ticks(double lo, double hi, int target_count) {
    SZ_ASSERT(std::isfinite(lo) && std::isfinite(hi));
    if (lo > hi) {
        std::swap(lo, hi);
    }
    if (hi - lo <= std::abs(lo) * 1e-12) {
        const double pad = lo == 0.0 ? 1.0 : std::abs(lo) * 0.5;
        lo -= pad;
        hi += pad;
    }
    target_count = std::max(target_count, 2);
    const double range = nice_number(hi - lo, false);
    const double step = nice_number(range / static_cast<double>(target_count - 1), true);
    AxisTicks ticks;
    ticks.step = step;
    // The epsilon keeps a bound that is already a multiple of step from moving a step outwards
    // through rounding, as 0.3 / 0.1 = 2.9999999999999996 would.
    ticks.min = std::floor(lo / step + 1e-9) * step;
    ticks.max = std::ceil(hi / step - 1e-9) * step;
    const auto count = static_cast<int64_t>(std::llround((ticks.max - ticks.min) / step));
    for (int64_t i = 0; i <= count; ++i) {
        double value = ticks.min + static_cast<double>(i) * step;
        if (std::abs(value) < step * 1e-9) {
            value = 0.0;  // avoids "-0" and 1e-17 labels
        }
        ticks.values.push_back(value);
    }
    return ticks;
}

AxisTicks log_ticks(double lo, double hi) {
    SZ_ASSERT(lo > 0.0 && hi > 0.0 && std::isfinite(lo) && std::isfinite(hi));
    if (lo > hi) {
        std::swap(lo, hi);
    }
    double low_exp = std::floor(std::log10(lo) + 1e-9);
    double high_exp = std::ceil(std::log10(hi) - 1e-9);
    if (high_exp <= low_exp) {
        high_exp = low_exp + 1.0;
    }
    AxisTicks ticks;
    ticks.min = std::pow(10.0, low_exp);
    ticks.max = std::pow(10.0, high_exp);
    ticks.step = 0.0;  // not constant on a log axis
    const bool fine = high_exp - low_exp < 3.0;
    for (double e = low_exp; e <= high_exp; e += 1.0) {
        const double power = std::pow(10.0, e);
        ticks.values.push_back(power);
        if (fine && e < high_exp) {
            ticks.values.push_back(2.0 * power);
            ticks.values.push_back(5.0 * power);
        }
    }
    return ticks;
}

std::string format_tick(double value, double step) {
    if (value == 0.0) {
        return "0";
    }
    const double magnitude = std::abs(value);
    const double resolution = step > 0.0 ? step : magnitude;
    if (magnitude >= 1e6 || resolution < 1e-3) {
        // Scientific with the mantissa digits the resolution needs: 2e-4, 2.5e-4, 1.2e+06 -> 1.2e6.
        const int exponent = static_cast<int>(std::floor(std::log10(magnitude)));
        const int digits = std::clamp(static_cast<int>(std::ceil(std::log10(magnitude / resolution) - 1e-9)), 0, 6);
        std::string mantissa = fixed(value / std::pow(10.0, exponent), digits);
        if (mantissa.find('.') != std::string::npos) {
            while (mantissa.back() == '0') {
                mantissa.pop_back();
            }
            if (mantissa.back() == '.') {
                mantissa.pop_back();
            }
        }
        return fmt::format("{}e{}", mantissa, exponent);
    }
    const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(resolution) - 1e-9)));
    return fixed(value, decimals);
}

// ---------------------------------------------------------------------------------------------
// Line charts

std::string render(const LineChart& chart) {
    // Data ranges and skipped values.
    Range x_range;
    Range y_range;
    size_t non_finite = 0;
    size_t non_positive = 0;
    size_t drawable = 0;
    auto usable = [&](double x, double y) {
        return std::isfinite(x) && std::isfinite(y) && (!chart.log_y || y > 0.0);
    };
    for (const Series& series : chart.series) {
        if (series.x.size() != series.y.size()) {
            fail("chart '{}': series '{}' has {} x values but {} y values", chart.title, series.name, series.x.size(),
                 series.y.size());
        }
        for (size_t i = 0; i < series.x.size(); ++i) {
            if (!std::isfinite(series.x[i]) || !std::isfinite(series.y[i])) {
                ++non_finite;
            } else if (chart.log_y && series.y[i] <= 0.0) {
                ++non_positive;
            } else {
                x_range.add(series.x[i]);
                y_range.add(series.y[i]);
                ++drawable;
            }
        }
    }
    for (const VerticalMarker& marker : chart.vertical_markers) {
        x_range.add(marker.x);
    }
    for (const ShadedRange& range : chart.ranges) {
        x_range.add(range.x0);
        x_range.add(range.x1);
    }
    for (const HorizontalMarker& marker : chart.horizontal_markers) {
        if (!chart.log_y || marker.y > 0.0) {
            y_range.add(marker.y);
        }
    }

    std::vector<std::string> notes;
    if (non_finite > 0) {
        notes.push_back(fmt::format("{} skipped (NaN or infinite)", pluralise(non_finite, "point")));
    }
    if (non_positive > 0) {
        notes.push_back(fmt::format("{} skipped (not positive, log scale)", pluralise(non_positive, "point")));
    }

    // Legend: named series, then one entry per band label.
    std::vector<LegendEntry> legend;
    for (size_t i = 0; i < chart.series.size(); ++i) {
        const Series& series = chart.series[i];
        if (!series.name.empty()) {
            legend.push_back({series.name, series.color.empty() ? palette_color(i) : series.color, false, series.dashed,
                              series.style == SeriesStyle::markers, series.opacity});
        }
    }
    std::map<std::string, std::string> band_colors;
    std::vector<std::string> band_order;
    for (size_t i = 0; i < chart.ranges.size(); ++i) {
        const ShadedRange& range = chart.ranges[i];
        if (band_colors.count(range.label) == 0) {
            band_colors[range.label] = range.color.empty() ? palette_color(band_order.size()) : range.color;
            band_order.push_back(range.label);
            if (!range.label.empty()) {
                legend.push_back({range.label, band_colors[range.label], true, false, false});
            }
        }
    }

    const double width = std::max(chart.width, 200);
    const double height = std::max(chart.height, 140);

    AxisTicks y_ticks;
    AxisTicks x_ticks;
    const bool categorical = !chart.y_categories.empty();
    if (categorical) {
        y_ticks.min = -0.5;
        y_ticks.max = static_cast<double>(chart.y_categories.size()) - 0.5;
        y_ticks.step = 1.0;
        for (size_t i = 0; i < chart.y_categories.size(); ++i) {
            y_ticks.values.push_back(static_cast<double>(i));
        }
    } else if (!y_range.empty()) {
        y_ticks = chart.log_y ? log_ticks(y_range.lo, y_range.hi) : nice_ticks(y_range.lo, y_range.hi);
    }
    auto y_tick_label = [&](size_t i) {
        return categorical ? chart.y_categories[i] : format_tick(y_ticks.values[i], y_ticks.step);
    };
    if (!x_range.empty()) {
        x_ticks = nice_ticks(x_range.lo, x_range.hi, std::max(4, static_cast<int>(width / 80.0)));
        // The x axis spans the data exactly, as step and rank axes read best that way, and keeps
        // only the nice ticks inside it.
        if (x_range.hi > x_range.lo) {
            const double slack = (x_range.hi - x_range.lo) * 1e-9;
            std::vector<double> inside;
            for (double value : x_ticks.values) {
                if (value >= x_range.lo - slack && value <= x_range.hi + slack) {
                    inside.push_back(value);
                }
            }
            x_ticks.min = x_range.lo;
            x_ticks.max = x_range.hi;
            x_ticks.values = inside;
        }
    }
    double widest_y_label = 0.0;
    for (size_t i = 0; i < y_ticks.values.size(); ++i) {
        widest_y_label = std::max(widest_y_label, text_width(y_tick_label(i)));
    }

    const int rows = legend_rows(legend, width - 24.0);
    // A common minimum keeps the plot areas of charts stacked on one page aligned.
    const double left = std::max(70.0, 34.0 + widest_y_label);
    const double right = width - 18.0;
    const double top = kTitleHeight + (rows > 0 ? rows * kLegendRowHeight + 8.0 : 6.0);
    const double bottom_extra = 46.0 + kNoteRowHeight * static_cast<double>(notes.size());
    const double total_height = height + kNoteRowHeight * static_cast<double>(notes.size());
    const double bottom = total_height - bottom_extra;

    SvgBuilder svg(width, total_height);
    svg.text(12.0, 19.0, chart.title, "font-size=\"14\" font-weight=\"600\"");
    draw_legend(svg, legend, 12.0, kTitleHeight + 10.0, width - 24.0);
    svg.text((left + right) / 2.0, total_height - 10.0 - kNoteRowHeight * static_cast<double>(notes.size()),
             chart.x_label, fmt::format("text-anchor=\"middle\" fill=\"{}\"", kMutedColor));
    svg.text(0.0, 0.0, chart.y_label,
             fmt::format("text-anchor=\"middle\" fill=\"{}\" transform=\"translate(13 {}) rotate(-90)\"", kMutedColor,
                         px((top + bottom) / 2.0)));
    draw_notes(svg, notes, left, total_height - 6.0 - kNoteRowHeight * static_cast<double>(notes.size() - 1));

    if (drawable == 0) {
        svg.rect(left, top, right - left, bottom - top, fmt::format("fill=\"none\" stroke=\"{}\"", kAxisColor));
        svg.text((left + right) / 2.0, (top + bottom) / 2.0, chart.empty_message,
                 fmt::format("text-anchor=\"middle\" fill=\"{}\" font-size=\"13\"", kMutedColor));
        return svg.finish(chart.title);
    }

    AxisScale x_scale{x_ticks, false, left, right};
    AxisScale y_scale{y_ticks, chart.log_y, bottom, top};

    // Bands under everything else.
    for (const ShadedRange& range : chart.ranges) {
        const double x0 = x_scale(std::clamp(std::min(range.x0, range.x1), x_ticks.min, x_ticks.max));
        const double x1 = x_scale(std::clamp(std::max(range.x0, range.x1), x_ticks.min, x_ticks.max));
        svg.rect(x0, top, x1 - x0, bottom - top,
                 fmt::format("fill=\"{}\" fill-opacity=\"0.16\"", escape_xml(band_colors[range.label])));
    }

    // Grid and tick labels.
    for (size_t i = 0; i < y_ticks.values.size(); ++i) {
        const double y = y_scale(y_ticks.values[i]);
        svg.line(left, y, right, y, fmt::format("stroke=\"{}\"", kGridColor));
        svg.text(left - 6.0, y + 3.5, y_tick_label(i),
                 fmt::format("text-anchor=\"end\" fill=\"{}\"", kMutedColor));
    }
    for (double value : x_ticks.values) {
        const double x = x_scale(value);
        svg.line(x, top, x, bottom, fmt::format("stroke=\"{}\"", kGridColor));
        svg.line(x, bottom, x, bottom + 4.0, fmt::format("stroke=\"{}\"", kAxisColor));
        svg.text(x, bottom + 16.0, format_tick(value, x_ticks.step),
                 fmt::format("text-anchor=\"middle\" fill=\"{}\"", kMutedColor));
    }
    svg.line(left, bottom, right, bottom, fmt::format("stroke=\"{}\"", kAxisColor));
    svg.line(left, top, left, bottom, fmt::format("stroke=\"{}\"", kAxisColor));

    // Series.
    for (size_t i = 0; i < chart.series.size(); ++i) {
        const Series& series = chart.series[i];
        const std::string color = escape_xml(series.color.empty() ? palette_color(i) : series.color);
        std::string d;
        bool pen_down = false;
        size_t points = 0;
        for (size_t j = 0; j < series.x.size(); ++j) {
            if (!usable(series.x[j], series.y[j])) {
                pen_down = false;  // a gap breaks the line
                continue;
            }
            ++points;
            const double x = x_scale(series.x[j]);
            const double y = y_scale(series.y[j]);
            if (!pen_down) {
                d += fmt::format("M{} {}", px(x), px(y));
                pen_down = true;
            } else if (series.style == SeriesStyle::step) {
                d += fmt::format("H{}V{}", px(x), px(y));
            } else {
                d += fmt::format("L{} {}", px(x), px(y));
            }
        }
        const bool draw_line = series.style != SeriesStyle::markers && points > 1;
        if (draw_line) {
            svg.path(d, fmt::format("fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-opacity=\"{}\" "
                                    "stroke-linejoin=\"round\"{}",
                                    color, px(series.width), fixed(series.opacity, 2),
                                    series.dashed ? " stroke-dasharray=\"5 3\"" : ""));
        }
        const bool draw_markers =
            series.style == SeriesStyle::markers || series.style == SeriesStyle::line_markers || points == 1;
        if (draw_markers) {
            for (size_t j = 0; j < series.x.size(); ++j) {
                if (usable(series.x[j], series.y[j])) {
                    svg.circle(x_scale(series.x[j]), y_scale(series.y[j]), 2.8,
                               fmt::format("fill=\"{}\" fill-opacity=\"{}\"", color, fixed(series.opacity, 2)));
                }
            }
        }
    }

    // Markers on top, with labels staggered so that neighbours do not overprint.
    for (const HorizontalMarker& marker : chart.horizontal_markers) {
        if (chart.log_y && marker.y <= 0.0) {
            continue;
        }
        const double y = y_scale(marker.y);
        const std::string color = escape_xml(marker.color);
        svg.line(left, y, right, y, fmt::format("stroke=\"{}\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"", color));
        svg.text(right - 4.0, y - 4.0, marker.label, fmt::format("text-anchor=\"end\" fill=\"{}\" {}", color, kHalo));
    }
    for (size_t i = 0; i < chart.vertical_markers.size(); ++i) {
        const VerticalMarker& marker = chart.vertical_markers[i];
        const double x = x_scale(marker.x);
        const std::string color = escape_xml(marker.color);
        svg.line(x, top, x, bottom, fmt::format("stroke=\"{}\" stroke-width=\"1.2\" stroke-dasharray=\"4 3\"", color));
        const double label_y = top + 12.0 + 13.0 * static_cast<double>(i % 3);
        const bool flip = x + 4.0 + text_width(marker.label) > right;
        svg.text(flip ? x - 4.0 : x + 4.0, label_y, marker.label,
                 fmt::format("fill=\"{}\" {}{}", color, kHalo, flip ? " text-anchor=\"end\"" : ""));
    }
    return svg.finish(chart.title);
}

// ---------------------------------------------------------------------------------------------
// Heat maps

std::string render(const HeatMap& map) {
    if (map.values.size() != map.rows.size()) {
        fail("heat map '{}': {} value rows for {} row labels", map.title, map.values.size(), map.rows.size());
    }
    for (size_t r = 0; r < map.values.size(); ++r) {
        if (map.values[r].size() != map.columns.size()) {
            fail("heat map '{}': row '{}' has {} values for {} columns", map.title, map.rows[r], map.values[r].size(),
                 map.columns.size());
        }
    }
    Range range;
    size_t missing = 0;
    for (const auto& row : map.values) {
        for (double v : row) {
            if (std::isfinite(v)) {
                range.add(v);
            } else {
                ++missing;
            }
        }
    }
    const double lo = range.empty() ? 0.0 : std::min(range.lo, 0.0);
    const double hi = range.empty() ? 1.0 : (range.hi > lo ? range.hi : lo + 1.0);

    double widest_row = 0.0;
    for (const std::string& label : map.rows) {
        widest_row = std::max(widest_row, text_width(label));
    }
    const double cw = std::max(map.cell_width, 24);
    const double ch = std::max(map.cell_height, 16);
    const double left = 30.0 + widest_row + 8.0;
    const double top = kTitleHeight + 40.0;
    const double grid_w = cw * static_cast<double>(map.columns.size());
    const double grid_h = ch * static_cast<double>(map.rows.size());
    const double legend_x = left + grid_w + 28.0;
    const double legend_h = std::clamp(grid_h, 90.0, 220.0);
    const double legend_label_w = std::max(text_width(fixed(hi, map.value_decimals)), text_width(fixed(lo, map.value_decimals)));
    std::vector<std::string> notes;
    if (missing > 0) {
        notes.push_back(fmt::format("{} without a value (grey)", pluralise(missing, "cell")));
    }
    const double width = std::max(legend_x + 16.0 + 8.0 + legend_label_w + 34.0, text_width(map.title) * 1.2 + 24.0);
    const double height = top + std::max(grid_h, legend_h) + 16.0 + kNoteRowHeight * static_cast<double>(notes.size());

    SvgBuilder svg(width, height);
    svg.text(12.0, 19.0, map.title, "font-size=\"14\" font-weight=\"600\"");
    svg.text(left + grid_w / 2.0, kTitleHeight + 12.0, map.column_axis_label,
             fmt::format("text-anchor=\"middle\" fill=\"{}\"", kMutedColor));
    svg.text(0.0, 0.0, map.row_axis_label,
             fmt::format("text-anchor=\"middle\" fill=\"{}\" transform=\"translate(14 {}) rotate(-90)\"", kMutedColor,
                         px(top + grid_h / 2.0)));
    for (size_t c = 0; c < map.columns.size(); ++c) {
        svg.text(left + cw * (static_cast<double>(c) + 0.5), top - 8.0, map.columns[c],
                 "text-anchor=\"middle\" font-weight=\"600\"");
    }
    if (map.rows.empty() || map.columns.empty()) {
        svg.text(left + 40.0, top + 20.0, "no data", fmt::format("fill=\"{}\" font-size=\"13\"", kMutedColor));
    }
    for (size_t r = 0; r < map.rows.size(); ++r) {
        const double y = top + ch * static_cast<double>(r);
        svg.text(left - 8.0, y + ch / 2.0 + 4.0, map.rows[r], "text-anchor=\"end\"");
        for (size_t c = 0; c < map.columns.size(); ++c) {
            const double x = left + cw * static_cast<double>(c);
            const double v = map.values[r][c];
            if (!std::isfinite(v)) {
                svg.rect(x, y, cw, ch, "fill=\"#e6e6e6\" stroke=\"#ffffff\" stroke-width=\"1.5\"");
                continue;
            }
            const double t = (v - lo) / (hi - lo);
            svg.rect(x, y, cw, ch,
                     fmt::format("fill=\"{}\" stroke=\"#ffffff\" stroke-width=\"1.5\"", css_color(sequential_color(t))));
            svg.text(x + cw / 2.0, y + ch / 2.0 + 4.0, fixed(v, map.value_decimals),
                     fmt::format("text-anchor=\"middle\" font-size=\"12\" fill=\"{}\"", t > 0.55 ? "#ffffff" : kTextColor));
        }
    }

    // Colour scale: stacked boxes, so no gradient element (and no id) is needed.
    constexpr int kSteps = 32;
    const double legend_top = top;
    for (int i = 0; i < kSteps; ++i) {
        const double t = 1.0 - (static_cast<double>(i) + 0.5) / kSteps;
        svg.rect(legend_x, legend_top + legend_h * i / kSteps, 16.0, legend_h / kSteps + 0.5,
                 fmt::format("fill=\"{}\"", css_color(sequential_color(t))));
    }
    svg.rect(legend_x, legend_top, 16.0, legend_h, "fill=\"none\" stroke=\"#bbbbbb\" stroke-width=\"0.5\"");
    svg.text(legend_x + 22.0, legend_top + 9.0, fixed(hi, map.value_decimals), fmt::format("fill=\"{}\"", kMutedColor));
    svg.text(legend_x + 22.0, legend_top + legend_h, fixed(lo, map.value_decimals), fmt::format("fill=\"{}\"", kMutedColor));
    svg.text(0.0, 0.0, map.value_label,
             fmt::format("text-anchor=\"middle\" fill=\"{}\" transform=\"translate({} {}) rotate(-90)\"", kMutedColor,
                         px(legend_x + 30.0 + legend_label_w), px(legend_top + legend_h / 2.0)));
    draw_notes(svg, notes, left, height - 6.0 - kNoteRowHeight * static_cast<double>(notes.size() - 1));
    return svg.finish(map.title);
}

// ---------------------------------------------------------------------------------------------
// Bar charts

std::string render(const BarChart& chart) {
    const size_t n = chart.categories.size();
    Range range;
    size_t non_finite = 0;
    for (const BarSeries& series : chart.series) {
        if (series.values.size() != n) {
            fail("bar chart '{}': series '{}' has {} values for {} categories", chart.title, series.name,
                 series.values.size(), n);
        }
        if (!series.bar_colors.empty() && series.bar_colors.size() != n) {
            fail("bar chart '{}': series '{}' has {} bar colours for {} categories", chart.title, series.name,
                 series.bar_colors.size(), n);
        }
        for (double v : series.values) {
            if (std::isfinite(v)) {
                range.add(v);
            } else {
                ++non_finite;
            }
        }
    }
    const bool has_data = !range.empty();
    for (const HorizontalMarker& marker : chart.thresholds) {
        range.add(marker.y);
    }
    range.add(0.0);  // bars start at zero
    const AxisTicks ticks = nice_ticks(range.lo, range.hi);

    std::vector<std::string> notes;
    if (non_finite > 0) {
        notes.push_back(fmt::format("{} without a value (NaN or infinite)", pluralise(non_finite, "bar")));
    }
    std::vector<LegendEntry> legend;
    for (size_t i = 0; i < chart.series.size(); ++i) {
        const BarSeries& series = chart.series[i];
        if (!series.name.empty()) {
            legend.push_back({series.name, series.color.empty() ? palette_color(i) : series.color, true, false, false});
        }
    }
    for (const auto& [label, color] : chart.extra_legend) {
        legend.push_back({label, color, true, false, false});
    }

    double widest_category = 0.0;
    for (const std::string& label : chart.categories) {
        widest_category = std::max(widest_category, text_width(label));
    }
    double widest_tick = 0.0;
    for (double value : ticks.values) {
        widest_tick = std::max(widest_tick, text_width(format_tick(value, ticks.step)));
    }

    const double width = std::max(chart.width, 200);
    const int rows = legend_rows(legend, width - 24.0);
    const double top = kTitleHeight + (rows > 0 ? rows * kLegendRowHeight + 8.0 : 6.0);
    const double series_count = static_cast<double>(std::max<size_t>(chart.series.size(), 1));
    const double notes_h = kNoteRowHeight * static_cast<double>(notes.size());

    double left = 0.0;
    double right = width - 18.0;
    double bottom = 0.0;
    double height = 0.0;
    bool rotate_labels = false;
    if (chart.horizontal) {
        left = 34.0 + widest_category;
        const double band = std::max(20.0, 8.0 + 13.0 * series_count);
        if (chart.show_values) {
            right -= 40.0;
        }
        bottom = top + band * static_cast<double>(std::max<size_t>(n, 1));
        height = chart.height > 0 ? chart.height : bottom + 44.0 + notes_h;
        bottom = height - 44.0 - notes_h;
    } else {
        left = 34.0 + widest_tick;
        const double band = (right - left) / static_cast<double>(std::max<size_t>(n, 1));
        rotate_labels = widest_category > band - 4.0;
        const double label_h = rotate_labels ? 0.72 * widest_category + 14.0 : 18.0;
        height = chart.height > 0 ? chart.height : 300.0 + label_h;
        bottom = height - 28.0 - label_h - notes_h;
    }

    SvgBuilder svg(width, height);
    svg.text(12.0, 19.0, chart.title, "font-size=\"14\" font-weight=\"600\"");
    draw_legend(svg, legend, 12.0, kTitleHeight + 10.0, width - 24.0);
    draw_notes(svg, notes, left, height - 6.0 - kNoteRowHeight * static_cast<double>(notes.size()) + kNoteRowHeight);

    const std::string value_axis_label = chart.value_label;
    const std::string category_axis_label = chart.category_label;
    if (chart.horizontal) {
        svg.text((left + right) / 2.0, height - 10.0 - notes_h, value_axis_label,
                 fmt::format("text-anchor=\"middle\" fill=\"{}\"", kMutedColor));
        svg.text(0.0, 0.0, category_axis_label,
                 fmt::format("text-anchor=\"middle\" fill=\"{}\" transform=\"translate(13 {}) rotate(-90)\"",
                             kMutedColor, px((top + bottom) / 2.0)));
    } else {
        svg.text((left + right) / 2.0, height - 10.0 - notes_h, category_axis_label,
                 fmt::format("text-anchor=\"middle\" fill=\"{}\"", kMutedColor));
        svg.text(0.0, 0.0, value_axis_label,
                 fmt::format("text-anchor=\"middle\" fill=\"{}\" transform=\"translate(13 {}) rotate(-90)\"",
                             kMutedColor, px((top + bottom) / 2.0)));
    }

    if (!has_data) {
        svg.rect(left, top, right - left, bottom - top, fmt::format("fill=\"none\" stroke=\"{}\"", kAxisColor));
        svg.text((left + right) / 2.0, (top + bottom) / 2.0, "no data",
                 fmt::format("text-anchor=\"middle\" fill=\"{}\" font-size=\"13\"", kMutedColor));
        return svg.finish(chart.title);
    }

    // The value axis runs left to right (horizontal bars) or bottom to top (vertical bars).
    const AxisScale value_scale = chart.horizontal ? AxisScale{ticks, false, left, right}
                                                   : AxisScale{ticks, false, bottom, top};
    for (double value : ticks.values) {
        const double p = value_scale(value);
        const std::string label = format_tick(value, ticks.step);
        if (chart.horizontal) {
            svg.line(p, top, p, bottom, fmt::format("stroke=\"{}\"", kGridColor));
            svg.text(p, bottom + 16.0, label, fmt::format("text-anchor=\"middle\" fill=\"{}\"", kMutedColor));
        } else {
            svg.line(left, p, right, p, fmt::format("stroke=\"{}\"", kGridColor));
            svg.text(left - 6.0, p + 3.5, label, fmt::format("text-anchor=\"end\" fill=\"{}\"", kMutedColor));
        }
    }

    const double extent = chart.horizontal ? bottom - top : right - left;
    const double band = extent / static_cast<double>(std::max<size_t>(n, 1));
    const double bar = band * 0.78 / series_count;
    const double zero = value_scale(0.0);
    for (size_t c = 0; c < n; ++c) {
        const double band_start = (chart.horizontal ? top : left) + band * static_cast<double>(c);
        const double band_middle = band_start + band / 2.0;
        if (chart.horizontal) {
            svg.text(left - 6.0, band_middle + 4.0, chart.categories[c], "text-anchor=\"end\"");
        } else if (rotate_labels) {
            svg.text(0.0, 0.0, chart.categories[c],
                     fmt::format("text-anchor=\"end\" transform=\"translate({} {}) rotate(-45)\"", px(band_middle + 3.0),
                                 px(bottom + 12.0)));
        } else {
            svg.text(band_middle, bottom + 16.0, chart.categories[c], "text-anchor=\"middle\"");
        }
        for (size_t s = 0; s < chart.series.size(); ++s) {
            const BarSeries& series = chart.series[s];
            const double v = series.values[c];
            if (!std::isfinite(v)) {
                continue;
            }
            std::string color = series.color.empty() ? palette_color(s) : series.color;
            if (!series.bar_colors.empty() && !series.bar_colors[c].empty()) {
                color = series.bar_colors[c];
            }
            const double offset = band_start + band * 0.11 + bar * static_cast<double>(s);
            const double end = value_scale(v);
            const std::string fill = fmt::format("fill=\"{}\"", escape_xml(color));
            if (chart.horizontal) {
                svg.rect(std::min(zero, end), offset, std::abs(end - zero), bar, fill);
                if (chart.show_values) {
                    svg.text(std::max(zero, end) + 4.0, offset + bar / 2.0 + 4.0, fixed(v, chart.value_decimals),
                             fmt::format("fill=\"{}\"", kMutedColor));
                }
            } else {
                svg.rect(offset, std::min(zero, end), bar, std::abs(end - zero), fill);
                if (chart.show_values) {
                    svg.text(offset + bar / 2.0, std::min(zero, end) - 4.0, fixed(v, chart.value_decimals),
                             fmt::format("text-anchor=\"middle\" fill=\"{}\"", kMutedColor));
                }
            }
        }
    }
    if (chart.horizontal) {
        svg.line(zero, top, zero, bottom, fmt::format("stroke=\"{}\"", kAxisColor));
        svg.line(left, bottom, right, bottom, fmt::format("stroke=\"{}\"", kAxisColor));
    } else {
        svg.line(left, zero, right, zero, fmt::format("stroke=\"{}\"", kAxisColor));
        svg.line(left, top, left, bottom, fmt::format("stroke=\"{}\"", kAxisColor));
    }
    for (const HorizontalMarker& marker : chart.thresholds) {
        const double p = value_scale(marker.y);
        const std::string color = escape_xml(marker.color);
        const std::string style = fmt::format("stroke=\"{}\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"", color);
        if (chart.horizontal) {
            svg.line(p, top, p, bottom, style);
            svg.text(p + 4.0, top + 10.0, marker.label, fmt::format("fill=\"{}\" {}", color, kHalo));
        } else {
            svg.line(left, p, right, p, style);
            svg.text(right - 4.0, p - 4.0, marker.label,
                     fmt::format("text-anchor=\"end\" fill=\"{}\" {}", color, kHalo));
        }
    }
    return svg.finish(chart.title);
}

}  // namespace sz::svg
