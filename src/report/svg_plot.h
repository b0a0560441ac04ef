// Inline SVG charts for the HTML reports: line and scatter charts, heat maps and bar charts.
//
// Each render function returns one self-contained <svg> element (no scripts, no external
// fonts or styles, no element ids, so any number of charts can share one HTML page). All text
// is XML-escaped. Non-finite values, and non-positive values on a log axis, are skipped and
// counted in a note under the chart. A chart without drawable data shows "no data".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sz::svg {

// Escapes &, <, >, " and ' for XML text and attribute values.
std::string escape_xml(std::string_view text);

// Colour i of a ten-colour categorical palette, cycling.
const char* palette_color(size_t index);

// Ticks of a linear axis: `values` run from `min` to `max` in steps of `step`, and the range
// [min, max] covers the data.
struct AxisTicks {
    double min = 0.0;
    double max = 1.0;
    double step = 0.2;
    std::vector<double> values;
};

// Heckbert's nice number: the value of 1, 2, 5 or 10 times a power of ten closest to x
// (round = true, with cut-offs 1.5, 3 and 7) or the smallest one at least x (round = false).
// x must be positive.
double nice_number(double x, bool round);

// Nice ticks for data in [lo, hi] with about target_count ticks, by Heckbert's labelling rule:
// range = nice_number(hi - lo, false), step = nice_number(range / (target_count - 1), true),
// min = floor(lo / step) * step and max = ceil(hi / step) * step. A zero-width range is
// widened to lo - 1 .. lo + 1 for lo = 0, otherwise by half of |lo| each side.
AxisTicks nice_ticks(double lo, double hi, int target_count = 5);

// Ticks of a log10 axis covering [lo, hi] (both positive): every power of ten, with 2 and 5
// times each power added when the range spans fewer than three decades.
AxisTicks log_ticks(double lo, double hi);

// Tick label with as many decimals as `step` needs; scientific ("2e-4") for very small or
// very large magnitudes.
std::string format_tick(double value, double step);

// ---------------------------------------------------------------------------------------------
// Line and scatter charts

enum class SeriesStyle {
    line,          // straight segments between points
    step,          // horizontal then vertical segments, for piecewise-constant values
    markers,       // points only (scatter)
    line_markers,  // segments and points
};

struct Series {
    std::string name;   // legend entry; empty leaves the series out of the legend
    std::vector<double> x;
    std::vector<double> y;  // same length as x
    std::string color;      // CSS colour; empty takes the palette colour of the series index
    SeriesStyle style = SeriesStyle::line;
    double width = 1.8;     // stroke width in px
    double opacity = 1.0;
    bool dashed = false;
};

// A vertical line at x, e.g. the knee of a score curve or a mode change.
struct VerticalMarker {
    double x = 0.0;
    std::string label;
    std::string color = "#555555";
};

// A horizontal line at y, e.g. a threshold.
struct HorizontalMarker {
    double y = 0.0;
    std::string label;
    std::string color = "#d62728";
};

// A shaded band from x0 to x1, e.g. the steps spent in one scheduler mode. Bands with the same
// label share one legend entry.
struct ShadedRange {
    double x0 = 0.0;
    double x1 = 0.0;
    std::string label;
    std::string color;
};

struct LineChart {
    std::string title;
    std::string x_label;  // with the unit, e.g. "optimizer step"
    std::string y_label;
    bool log_y = false;
    // Categorical y axis: when set, y value i is drawn as y_categories[i] (e.g. a scheduler
    // mode), and ticks sit at 0 .. size - 1.
    std::vector<std::string> y_categories;
    std::vector<Series> series;
    std::vector<VerticalMarker> vertical_markers;
    std::vector<HorizontalMarker> horizontal_markers;
    std::vector<ShadedRange> ranges;
    std::string empty_message = "no data";  // shown when nothing can be drawn
    int width = 720;   // px
    int height = 320;  // px
};

std::string render(const LineChart& chart);

// ---------------------------------------------------------------------------------------------
// Heat maps

struct HeatMap {
    std::string title;
    std::string row_axis_label;     // e.g. "layer"
    std::string column_axis_label;  // e.g. "projection"
    std::string value_label;        // colour scale caption, with the unit
    std::vector<std::string> rows;
    std::vector<std::string> columns;
    std::vector<std::vector<double>> values;  // [rows][columns]; NaN draws an empty grey cell
    int value_decimals = 0;   // decimals of the number written in each cell
    int cell_width = 96;      // px
    int cell_height = 28;     // px
};

// Throws sz::Error when `values` does not have one row per row label and one value per column.
std::string render(const HeatMap& map);

// ---------------------------------------------------------------------------------------------
// Bar charts

struct BarSeries {
    std::string name;            // legend entry; empty leaves it out of the legend
    std::vector<double> values;  // one per category; NaN leaves a gap
    std::string color;           // empty takes the palette colour of the series index
    std::vector<std::string> bar_colors;  // optional per-category override of `color`
};

struct BarChart {
    std::string title;
    std::string category_label;  // axis of the categories
    std::string value_label;     // axis of the values, with the unit
    std::vector<std::string> categories;
    std::vector<BarSeries> series;  // several series make grouped bars
    std::vector<HorizontalMarker> thresholds;  // lines across the value axis
    bool horizontal = false;     // categories down the left side, bars growing right
    bool show_values = false;    // write each bar's value at its end
    int value_decimals = 2;
    // Legend entries that no series has, e.g. the meaning of bar_colors: {label, colour}.
    std::vector<std::pair<std::string, std::string>> extra_legend;
    int width = 720;   // px
    int height = 0;    // px; 0 sizes the chart to the category count
};

// Throws sz::Error when a series has a value count other than the category count.
std::string render(const BarChart& chart);

}  // namespace sz::svg
