// Tests of the HTML reports: the SVG chart primitives (escaping, nice axis ticks, well-formed
// XML, skipped values), the locate report of a hand-built atlas and the train report of a
// hand-written metrics.jsonl.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "locate/atlas.h"
#include "locate/locate_report.h"
#include "report/html_report.h"
#include "report/svg_plot.h"
#include "test_support.h"
#include "train/train_report.h"

namespace sz {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
}

// Every <svg>...</svg> element of a page, in order.
std::vector<std::string> svg_elements(const std::string& html) {
    std::vector<std::string> out;
    size_t start = 0;
    while ((start = html.find("<svg", start)) != std::string::npos) {
        const size_t end = html.find("</svg>", start);
        if (end == std::string::npos) {
            break;
        }
        out.push_back(html.substr(start, end + 6 - start));
        start = end + 6;
    }
    return out;
}

// The chart whose aria-label (the escaped title) is `title`.
std::string svg_titled(const std::string& html, const std::string& title) {
    for (const std::string& svg : svg_elements(html)) {
        if (svg.find("aria-label=\"" + svg::escape_xml(title) + "\"") != std::string::npos) {
            return svg;
        }
    }
    return "";
}

// Parses each file with Python's xml.dom.minidom; returns "" when all parse, else the error.
std::string xml_parse_errors(const std::vector<std::string>& documents) {
    const std::string dir = test::make_temp_dir("sz-report-xml");
    std::string paths;
    for (size_t i = 0; i < documents.size(); ++i) {
        const std::string path = dir + "/chart" + std::to_string(i) + ".svg";
        write_text(path, documents[i]);
        paths += " '" + path + "'";
    }

    const std::string script = dir + "/check.py";
    write_text(script,
               "import sys, xml.dom.minidom\n"
               "for p in sys.argv[1:]:\n"
               "    try:\n"
               "        xml.dom.minidom.parse(p)\n"
               "    except Exception as e:\n"
               "        print(p, e)\n");

    const std::string command = "python3 '" + script + "'" + paths + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
        return "cannot start python3";
    }
    std::string output;
    char buffer[4096];
    size_t n = 0;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
        output.append(buffer, n);
    }
    const int status = pclose(pipe);
    fs::remove_all(dir);
    if (status != 0 && output.empty()) {
        return "python3 exited with status " + std::to_string(status);
    }
    return output;
}

std::vector<std::string> heat_map_cells(const std::string& svg) {
    // Cell values are the only 12 px text of a heat map.
    static const std::regex cell("font-size=\"12\" fill=\"[^\"]*\">([^<]*)</text>");
    std::vector<std::string> values;
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), cell); it != std::sregex_iterator(); ++it) {
        values.push_back((*it)[1]);
    }
    return values;
}

size_t count_of(const std::string& text, const std::string& needle) {
    size_t count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++count;
    }
    return count;
}

// ---------------------------------------------------------------------------------------------
// Primitives

TEST(ReportEscape, EscapesMarkupCharacters) {
    EXPECT_EQ(svg::escape_xml("a<b & \"c\" > 'd'"), "a&lt;b &amp; &quot;c&quot; &gt; &#39;d&#39;");
    EXPECT_EQ(escape_html("<&\">"), "&lt;&amp;&quot;&gt;");
    // A control character would make the SVG invalid XML.
    EXPECT_EQ(svg::escape_xml(std::string("x\x01y")), "x y");
}

TEST(ReportTicks, NiceNumberRule) {
    // 0.74 = 7.4e-1 rounds up (not round) to 10e-1; 25 = 2.5e1 rounds to 2e1; 1.25 to 1;
    // 3.2 rounds up to 5; 7 rounds to 10.
    EXPECT_DOUBLE_EQ(svg::nice_number(0.74, false), 1.0);
    EXPECT_DOUBLE_EQ(svg::nice_number(25.0, true), 20.0);
    EXPECT_DOUBLE_EQ(svg::nice_number(1.25, true), 1.0);
    EXPECT_DOUBLE_EQ(svg::nice_number(3.2, false), 5.0);
    EXPECT_DOUBLE_EQ(svg::nice_number(7.0, true), 10.0);
}

void expect_ticks(const svg::AxisTicks& ticks, double min, double max, double step) {
    EXPECT_NEAR(ticks.min, min, 1e-12);
    EXPECT_NEAR(ticks.max, max, 1e-12);
    EXPECT_NEAR(ticks.step, step, 1e-12);
    const auto count = static_cast<size_t>(std::llround((max - min) / step)) + 1;
    ASSERT_EQ(ticks.values.size(), count);
    for (size_t i = 0; i < count; ++i) {
        EXPECT_NEAR(ticks.values[i], min + step * static_cast<double>(i), 1e-9) << "tick " << i;
    }
}

TEST(ReportTicks, HandComputedCases) {
    // [0, 1]: range nice(1) = 1, step nice(1/4 = 0.25, round) = 0.2.
    expect_ticks(svg::nice_ticks(0.0, 1.0), 0.0, 1.0, 0.2);
    // [0.13, 0.87]: range nice(0.74) = 1, step 0.2, floor(0.65) = 0, ceil(4.35) = 5.
    expect_ticks(svg::nice_ticks(0.13, 0.87), 0.0, 1.0, 0.2);
    // [3, 97]: range nice(94) = 100, step nice(25, round) = 20, 0 .. 100.
    expect_ticks(svg::nice_ticks(3.0, 97.0), 0.0, 100.0, 20.0);
    // [-7, 42]: range nice(49) = 50, step nice(12.5, round) = 10, floor(-0.7) = -1, ceil(4.2) = 5.
    expect_ticks(svg::nice_ticks(-7.0, 42.0), -10.0, 50.0, 10.0);
    // A single value 5 widens to [2.5, 7.5]: range 5, step nice(1.25, round) = 1, 2 .. 8.
    expect_ticks(svg::nice_ticks(5.0, 5.0), 2.0, 8.0, 1.0);
    // Zero widens to [-1, 1]: range 2, step nice(0.5, round) = 0.5.
    expect_ticks(svg::nice_ticks(0.0, 0.0), -1.0, 1.0, 0.5);
    // [0.6, 1.2]: range nice(0.6) = 1, step 0.2. The lower bound is a multiple of the step and
    // stays, although 0.6 / 0.2 is 2.9999999999999996 in doubles.
    expect_ticks(svg::nice_ticks(0.6, 1.2), 0.6, 1.2, 0.2);
}

TEST(ReportTicks, LogAxis) {
    // Five decades: powers of ten only.
    const svg::AxisTicks wide = svg::log_ticks(0.003, 20.0);
    EXPECT_EQ(wide.values, (std::vector<double>{1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0}));
    // Two decades: 1, 2, 5 per decade.
    const svg::AxisTicks narrow = svg::log_ticks(0.5, 3.0);
    ASSERT_EQ(narrow.values.size(), 7u);
    const std::vector<double> expected = {0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0};
    for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_NEAR(narrow.values[i], expected[i], 1e-12);
    }
}

TEST(ReportTicks, LabelFormats) {
    EXPECT_EQ(svg::format_tick(0.4, 0.2), "0.4");
    EXPECT_EQ(svg::format_tick(20.0, 20.0), "20");
    EXPECT_EQ(svg::format_tick(0.0, 0.5), "0");
    EXPECT_EQ(svg::format_tick(-0.05, 0.05), "-0.05");
    EXPECT_EQ(svg::format_tick(2e-4, 5e-5), "2e-4");
    EXPECT_EQ(svg::format_tick(2.5e-4, 5e-5), "2.5e-4");
    EXPECT_EQ(svg::format_tick(1.5e6, 5e5), "1.5e6");
}

svg::LineChart sample_line_chart() {
    svg::LineChart chart;
    chart.title = "Loss <train> & \"eval\"";
    chart.x_label = "step";
    chart.y_label = "loss (nats)";
    svg::Series a{"a < b", {1, 2, 3, 4, 5}, {2.0, 1.5, NAN, 1.0, INFINITY}, "", svg::SeriesStyle::line};
    svg::Series b{"b & c", {1, 3, 5}, {1.8, 1.2, 0.9}, "", svg::SeriesStyle::line_markers};
    svg::Series c{"steps", {1, 2, 3}, {0.5, 0.7, 0.6}, "", svg::SeriesStyle::step};
    chart.series = {a, b, c};
    chart.vertical_markers = {{2.5, "knee <3>", "#555"}};
    chart.horizontal_markers = {{1.0, "limit \"1\""}};
    chart.ranges = {{0.5, 2.5, "BASELINE", ""}, {2.5, 5.5, "RECOVERY & co", ""}};
    return chart;
}

TEST(ReportSvg, ChartsAreWellFormedXml) {
    svg::LineChart empty;
    empty.title = "empty";
    svg::LineChart single;
    single.title = "single";
    single.series = {{"one", {3.0}, {7.0}}};
    svg::LineChart log_chart = sample_line_chart();
    log_chart.log_y = true;
    log_chart.series[0].y[0] = -1.0;
    svg::LineChart categories;
    categories.title = "modes";
    categories.y_categories = {"BASELINE", "RECOVERY"};
    categories.series = {{"", {1, 2, 3}, {0, 1, 0}, "", svg::SeriesStyle::step}};

    svg::HeatMap map;
    map.title = "heat <map>";
    map.rows = {"r<1>", "r2"};
    map.columns = {"c&1", "c2", "c3"};
    map.values = {{1, 2, NAN}, {0, 5, 3}};
    svg::HeatMap empty_map;
    empty_map.title = "empty map";

    svg::BarChart bars;
    bars.title = "bars \"q\"";
    bars.categories = {"a<", "b&", "c\""};
    bars.series = {{"s1", {1.0, -2.0, NAN}, "", {}}, {"s2", {0.5, 0.5, 0.5}, "", {"#f00", "", "#0f0"}}};
    bars.thresholds = {{0.8, "limit <0.8>"}};
    bars.show_values = true;
    svg::BarChart horizontal = bars;
    horizontal.horizontal = true;
    svg::BarChart no_bars;
    no_bars.title = "no bars";

    const std::vector<std::string> documents = {
        svg::render(sample_line_chart()), svg::render(empty), svg::render(single), svg::render(log_chart),
        svg::render(categories), svg::render(map), svg::render(empty_map), svg::render(bars),
        svg::render(horizontal), svg::render(no_bars)};
    EXPECT_EQ(xml_parse_errors(documents), "");
    // A non-finite coordinate would be printed as nan or inf inside an attribute or a label.
    static const std::regex non_finite("(=\"|>|[ ,MLHV])-?(nan|inf)([^a-z]|$)");
    for (const std::string& document : documents) {
        EXPECT_FALSE(std::regex_search(document, non_finite)) << document;
    }
}

TEST(ReportSvg, EscapesLabels) {
    const std::string svg = svg::render(sample_line_chart());
    EXPECT_NE(svg.find("Loss &lt;train&gt; &amp; &quot;eval&quot;"), std::string::npos);
    EXPECT_NE(svg.find("knee &lt;3&gt;"), std::string::npos);
    EXPECT_NE(svg.find("RECOVERY &amp; co"), std::string::npos);
    EXPECT_EQ(svg.find("<train>"), std::string::npos);
}

TEST(ReportSvg, ReportsSkippedValues) {
    const std::string svg = svg::render(sample_line_chart());
    // Series a has one NaN and one infinity.
    EXPECT_NE(svg.find("2 points skipped (NaN or infinite)"), std::string::npos);

    svg::LineChart log_chart = sample_line_chart();
    log_chart.log_y = true;
    log_chart.series[0].y[0] = 0.0;
    EXPECT_NE(svg::render(log_chart).find("1 point skipped (not positive, log scale)"), std::string::npos);
}

TEST(ReportSvg, EmptyAndSinglePointCharts) {
    svg::LineChart empty;
    empty.title = "empty";
    empty.series = {{"nothing", {}, {}}};
    EXPECT_NE(svg::render(empty).find(">no data<"), std::string::npos);

    svg::LineChart single;
    single.title = "single";
    single.series = {{"one", {3.0}, {7.0}}};
    const std::string svg = svg::render(single);
    EXPECT_EQ(count_of(svg, "<circle"), 1u);
    EXPECT_EQ(svg.find(">no data<"), std::string::npos);
}

TEST(ReportSvg, MismatchedSeriesThrows) {
    svg::LineChart chart;
    chart.series = {{"bad", {1, 2}, {1}}};
    EXPECT_THROW(svg::render(chart), Error);
    svg::HeatMap map;
    map.rows = {"a"};
    map.columns = {"x", "y"};
    map.values = {{1}};
    EXPECT_THROW(svg::render(map), Error);
    svg::BarChart bars;
    bars.categories = {"a", "b"};
    bars.series = {{"s", {1}, "", {}}};
    EXPECT_THROW(svg::render(bars), Error);
}

TEST(ReportSvg, HeatMapWritesCellValues) {
    svg::HeatMap map;
    map.rows = {"r1", "r2"};
    map.columns = {"a", "b"};
    map.values = {{1.25, 0.0}, {3.5, NAN}};
    map.value_decimals = 1;
    // Row-major; the NaN cell has no number.
    EXPECT_EQ(heat_map_cells(svg::render(map)), (std::vector<std::string>{"1.2", "0.0", "3.5"}));
}

TEST(ReportHtml, DocumentEscapesAndEmbeds) {
    HtmlReport report("Run <1>", "sub & title");
    report.add_section("Section \"A\"", "a");
    report.add_paragraph("x < y");
    report.add_key_values({{"k&", "v>"}});
    report.add_table({"name", "value"}, {{"<b>", "1.5"}});
    report.add_svg(svg::render(sample_line_chart()));
    const std::string html = report.html();
    EXPECT_NE(html.find("<title>Run &lt;1&gt;</title>"), std::string::npos);
    EXPECT_NE(html.find("<h2>Section &quot;A&quot;</h2>"), std::string::npos);
    EXPECT_NE(html.find("<p>x &lt; y</p>"), std::string::npos);
    EXPECT_NE(html.find("<td>&lt;b&gt;</td><td class=\"num\">1.5</td>"), std::string::npos);
    EXPECT_NE(html.find("<a href=\"#a\">"), std::string::npos);
    EXPECT_EQ(svg_elements(html).size(), 1u);
    EXPECT_EQ(html.find("<script"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Locate report

ProjectionAtlas make_projection(int64_t layer, Projection projection, std::vector<float> composite,
                                std::vector<int64_t> selected, int64_t in) {
    ProjectionAtlas p;
    p.layer = layer;
    p.projection = projection;
    const auto r = static_cast<int64_t>(composite.size());
    p.singular_values = torch::linspace(10.0, 1.0, r);
    p.composite = torch::tensor(composite);
    p.selected = torch::tensor(selected, torch::kInt64);
    p.component_scores["composite_stage4"] = p.composite.clone();
    p.component_scores["coherence"] = torch::full({r}, 0.25f);
    torch::Tensor causal = torch::zeros({r});
    for (size_t i = 0; i < selected.size(); ++i) {
        causal[selected[i]] = 0.1f * static_cast<float>(i + 1);
    }
    p.component_scores["causal"] = causal;
    const auto m = static_cast<int64_t>(selected.size());
    p.basis = torch::eye(in).narrow(0, 0, m).contiguous();
    p.scales = torch::full({m}, 0.5f);
    p.lock_basis = p.basis;
    p.component_scores["das_explained"] = torch::full({m}, 0.5f);
    p.fence_damage = torch::full({m}, 0.05f);
    return p;
}

// Layers 3, 5 and 7 analysed; selections: layer 3 gate 3 and down 2, layer 5 up 1, layer 7 none.
Atlas make_atlas() {
    Atlas atlas;
    // Composite 1, 0.9, 0.8, 0.1, 0.08, 0.06, 0.04, 0.02, 0.01, 0 in shuffled order. Sorted, with
    // x_i = i/9 and y_i = c_i, |y + x - 1| is 0, 0.011, 0.022, 0.567, 0.476, ..., largest at
    // i = 3, so the cut is 4, capped at floor(0.3 * 10) = 3: the knee is 3.
    const std::vector<float> shuffled = {0.06f, 1.0f, 0.01f, 0.8f, 0.1f, 0.0f, 0.9f, 0.04f, 0.08f, 0.02f};
    atlas.projections.push_back(make_projection(3, Projection::Gate, shuffled, {1, 6, 3}, 8));
    atlas.projections.push_back(make_projection(3, Projection::Down, shuffled, {1, 6}, 16));
    atlas.projections.push_back(make_projection(5, Projection::Up, shuffled, {1}, 8));
    // The layer-3 gate's second axis damages capability beyond the 0.15 nats threshold.
    atlas.projections[0].fence_damage = torch::tensor({0.05f, 0.2f, 0.01f});
    atlas.projections[0].lock_basis = atlas.projections[0].basis.index_select(0, torch::tensor({0, 2}));
    atlas.metadata = {{"model", "tiny <test> model"},
                      {"seed", 7},
                      {"analysed_layers", {3.0, 5.0, 7.0}},
                      {"layer_scores", {0.1, 0.2, 0.3, 0.9, 0.4, 0.8, 0.2, 0.7, 0.1}},
                      {"config",
                       {{"projections", {"down_proj", "gate_proj", "up_proj"}},
                        {"fence_max_damage", 0.15},
                        {"fence_max_damage_ratio", 0.4},
                        {"knee_max_fraction", 0.3}}}};
    return atlas;
}

nlohmann::json make_timings() {
    return nlohmann::json::array({{{"stage", 0}, {"name", "layer ranking"}, {"seconds", 1.5}, {"from_cache", false},
                                   {"detail", "3 layers"}},
                                  {{"stage", 1}, {"name", "activation capture"}, {"seconds", 0.25},
                                   {"from_cache", true}, {"detail", "loaded from cache"}}});
}

TEST(ReportLocate, HeatMapHasSelectedCounts) {
    const Atlas atlas = make_atlas();
    const std::string dir = test::make_temp_dir("sz-report-locate");
    const std::string path = dir + "/report.html";
    write_locate_report(atlas, make_timings(), path);
    const std::string html = read_text(path);

    // Rows are layers 3, 5, 7 and columns gate, up, down (model order), from the counts above.
    const std::string heat = svg_titled(html, "Selected directions per layer and projection");
    ASSERT_FALSE(heat.empty());
    EXPECT_EQ(heat_map_cells(heat), (std::vector<std::string>{"3", "0", "2", "0", "1", "0", "0", "0", "0"}));
    const std::string locked = svg_titled(html, "Locked rows per layer and projection");
    EXPECT_EQ(heat_map_cells(locked), (std::vector<std::string>{"2", "0", "2", "0", "1", "0", "0", "0", "0"}));
    fs::remove_all(dir);
}

TEST(ReportLocate, MarksKneeAndFence) {
    const std::string dir = test::make_temp_dir("sz-report-locate");
    const std::string path = dir + "/report.html";
    write_locate_report(make_atlas(), make_timings(), path);
    const std::string html = read_text(path);

    const std::string curve = svg_titled(html, "layer 3 gate");
    ASSERT_FALSE(curve.empty());
    EXPECT_NE(curve.find(">knee 3<"), std::string::npos);
    // Layer 5 selected in up only, so its gate and down cells of the grid are empty charts.
    // Layer 7 selected nothing and gets no row.
    EXPECT_FALSE(svg_titled(html, "layer 5 gate: nothing selected").empty());
    EXPECT_FALSE(svg_titled(html, "layer 5 down: nothing selected").empty());
    EXPECT_TRUE(svg_titled(html, "layer 7 gate: nothing selected").empty());

    const std::string fence = svg_titled(html, "Capability fence: damage of ablating each axis");
    ASSERT_FALSE(fence.empty());
    EXPECT_NE(fence.find("threshold 0.15 nats"), std::string::npos);
    // One of the six axes (0.2 nats) is over the threshold. Legend swatches have a stroke
    // attribute after the fill, so only bars match.
    EXPECT_EQ(count_of(fence, "fill=\"#e15759\"/>"), 1u);
    EXPECT_EQ(count_of(fence, "fill=\"#59a14f\"/>"), 5u);

    EXPECT_NE(html.find("tiny &lt;test&gt; model"), std::string::npos);
    EXPECT_FALSE(svg_titled(html, "Stage timings").empty());
    EXPECT_EQ(xml_parse_errors(svg_elements(html)), "");
    fs::remove_all(dir);
}

TEST(ReportLocate, SummaryTableAndTimings) {
    const std::string summary = locate_summary(make_atlas(), make_timings());
    // The row of layer 3: gate 3, up 0, down 2.
    std::istringstream lines(summary);
    std::string line;
    std::vector<std::string> layer3;
    while (std::getline(lines, line)) {
        std::istringstream words(line);
        std::vector<std::string> fields;
        for (std::string w; words >> w;) {
            fields.push_back(w);
        }
        if (fields.size() == 4 && fields[0] == "3") {
            layer3 = fields;
        }
    }
    EXPECT_EQ(layer3, (std::vector<std::string>{"3", "3", "0", "2"}));
    EXPECT_NE(summary.find("gate_proj"), std::string::npos);
    EXPECT_NE(summary.find("blocks.3.mlp.gate_proj"), std::string::npos);
    EXPECT_NE(summary.find("(cached)"), std::string::npos);
    EXPECT_NE(summary.find("1.75 s"), std::string::npos);  // total of 1.5 and 0.25
}

TEST(ReportLocate, EmptyAtlasRenders) {
    Atlas atlas;
    atlas.metadata = {{"analysed_layers", {2.0, 4.0}}, {"config", {{"projections", {"gate_proj"}}}}};
    const std::string dir = test::make_temp_dir("sz-report-locate");
    write_locate_report(atlas, nlohmann::json::array(), dir + "/report.html");
    const std::string html = read_text(dir + "/report.html");
    EXPECT_EQ(heat_map_cells(svg_titled(html, "Selected directions per layer and projection")),
              (std::vector<std::string>{"0", "0"}));
    EXPECT_EQ(xml_parse_errors(svg_elements(html)), "");
    EXPECT_NE(locate_summary(atlas, nlohmann::json::array()).find("0 selected directions in 0 projections"),
              std::string::npos);
    fs::remove_all(dir);
}

TEST(ReportLocate, ReadsAtlasFolder) {
    const std::string dir = test::make_temp_dir("sz-report-locate");
    make_atlas().write(dir);
    write_text(dir + "/timings.json", make_timings().dump());
    const Atlas atlas = Atlas::read(dir);
    const nlohmann::json timings = read_locate_timings(dir);
    EXPECT_EQ(timings.size(), 2u);
    write_locate_report(atlas, timings, dir + "/report.html");
    EXPECT_EQ(heat_map_cells(svg_titled(read_text(dir + "/report.html"), "Selected directions per layer and projection")),
              (std::vector<std::string>{"3", "0", "2", "0", "1", "0", "0", "0", "0"}));

    write_text(dir + "/timings.json", "{\"stage\": 1}");
    EXPECT_THROW(read_locate_timings(dir), Error);
    fs::remove(dir + "/timings.json");
    EXPECT_TRUE(read_locate_timings(dir).empty());
    fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Train report

// 30 steps: BASELINE 1-10, RECOVERY 11-20, BASELINE 21-30, held-out every 10 steps, and a torn
// last line as a killed run leaves it.
std::string write_train_dir(bool with_events) {
    const std::string dir = test::make_temp_dir("sz-report-train");
    std::string metrics;
    for (int step = 1; step <= 30; ++step) {
        const std::string mode = step >= 11 && step <= 20 ? "RECOVERY" : "BASELINE";
        nlohmann::json line = {{"step", step},       {"loss", 3.0 - 0.05 * step}, {"lr", 1e-4},
                               {"grad_norm", 0.5},   {"trained_tokens", 100},     {"tokens", 400},
                               {"epoch", 0},         {"mode", mode},              {"seconds", 0.5},
                               {"grad_cosine", nullptr}};
        if (with_events && step == 11) {
            line["events"] = {{{"step", 11}, {"name", "GRADIENT_SPIKE"}, {"cause", "z 5.77 > 2.5"},
                               {"from_mode", "BASELINE"}, {"to_mode", "RECOVERY"}, {"ignored_reason", ""},
                               {"lr_before", 1e-4}}};
        }
        metrics += line.dump() + "\n";
        if (step % 10 == 0) {
            metrics += nlohmann::json({{"step", step}, {"heldout_loss", 2.5}, {"heldout_trained_tokens", 50},
                                       {"seconds", 0.1}})
                           .dump() +
                       "\n";
        }
    }
    metrics += "{\"step\": 31, \"lo";
    write_text(dir + "/metrics.jsonl", metrics);
    write_text(dir + "/config.json",
               nlohmann::json({{"model", "tiny"}, {"scheduler", "aecs"}, {"max_steps", 30}, {"max_grad_norm", 1.0},
                               {"learning_rate", 1e-4}, {"rank", 4}, {"alpha", 8}, {"data", {"a.jsonl"}},
                               {"atlas", nullptr}})
                   .dump());
    return dir;
}

TEST(ReportTrain, ListsModeChanges) {
    const std::string dir = write_train_dir(false);
    write_train_report(dir, dir + "/report.html");
    const std::string html = read_text(dir + "/report.html");
    EXPECT_NE(html.find("<td class=\"num\">11</td><td>mode change</td>"), std::string::npos);
    EXPECT_NE(html.find("BASELINE → RECOVERY"), std::string::npos);
    EXPECT_NE(html.find("<td class=\"num\">21</td><td>mode change</td>"), std::string::npos);
    EXPECT_NE(html.find("RECOVERY → BASELINE"), std::string::npos);
    // Mode spans: first step, last step, length.
    EXPECT_NE(html.find("<td>RECOVERY</td><td class=\"num\">11</td><td class=\"num\">20</td><td class=\"num\">10</td>"),
              std::string::npos);
    // The torn line is line 34 (30 step lines and 3 held-out lines before it).
    EXPECT_NE(html.find("line 34"), std::string::npos);
    // Mode changes marked on the learning-rate chart.
    const std::string lr = svg_titled(html, "Learning rate");
    EXPECT_EQ(count_of(lr, "stroke-dasharray=\"4 3\""), 2u);
    EXPECT_EQ(xml_parse_errors(svg_elements(html)), "");
    fs::remove_all(dir);
}

TEST(ReportTrain, ListsRecordedEventsWithCauses) {
    const std::string dir = write_train_dir(true);
    write_train_report(dir, dir + "/report.html");
    const std::string html = read_text(dir + "/report.html");
    EXPECT_NE(html.find("<td>GRADIENT_SPIKE</td><td>z 5.77 &gt; 2.5</td><td>BASELINE → RECOVERY</td>"),
              std::string::npos);
    fs::remove_all(dir);
}

TEST(ReportTrain, MissingMetricsThrows) {
    const std::string dir = test::make_temp_dir("sz-report-train");
    EXPECT_THROW(write_train_report(dir, dir + "/report.html"), Error);
    fs::remove_all(dir);
}

}  // namespace
}  // namespace sz
