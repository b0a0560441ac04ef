#include "locate/locate_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "locate/direction_math.h"
#include "report/html_report.h"
#include "report/svg_plot.h"

namespace sz {

namespace {

constexpr const char* kPassColor = "#59a14f";
constexpr const char* kRejectColor = "#e15759";
constexpr const char* kMutedBarColor = "#bab0ac";

std::vector<double> to_doubles(const torch::Tensor& tensor) {
    if (!tensor.defined() || tensor.numel() == 0) {
        return {};
    }
    torch::Tensor flat = tensor.detach().to(torch::kFloat64).contiguous().view(-1);
    return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

std::vector<int64_t> to_indices(const torch::Tensor& tensor) {
    if (!tensor.defined() || tensor.numel() == 0) {
        return {};
    }
    torch::Tensor flat = tensor.detach().to(torch::kInt64).contiguous().view(-1);
    return std::vector<int64_t>(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
}

template <typename T>
T config_value(const Atlas& atlas, const char* key, T fallback) {
    const nlohmann::json& config = atlas.metadata.value("config", nlohmann::json::object());
    if (!config.is_object() || !config.contains(key)) {
        return fallback;
    }
    try {
        return config.at(key).get<T>();
    } catch (const nlohmann::json::exception&) {
        return fallback;
    }
}

std::string short_name(Projection projection) {
    std::string name = projection_name(projection);
    const size_t suffix = name.rfind("_proj");
    return suffix == std::string::npos ? name : name.substr(0, suffix);
}

// Per-projection data that the report draws, copied out of the tensors.
struct ProjectionView {
    const ProjectionAtlas* atlas = nullptr;
    std::string label;                 // "layer 5 gate"
    std::vector<double> composite;     // [r] by singular-direction index
    std::vector<int64_t> order;        // direction indices by descending composite, ties by index
    std::vector<int64_t> selected;     // direction indices
    int64_t knee = 0;                  // directions the knee cut keeps on the final composite
    std::vector<double> explained;     // [m] DAS explained variance per basis row
    std::vector<double> scales;        // [m]
    std::vector<double> damage;        // [m] fence damage per basis row, empty without a fence
};

struct LocateView {
    std::vector<int64_t> layers;
    std::vector<Projection> columns;
    std::vector<ProjectionView> projections;  // by layer, then column order
    double fence_max_damage = 0.15;
    double fence_max_damage_ratio = 0.40;
    bool fence_ran = false;
};

bool fence_rejects(const LocateView& view, double damage, double explained) {
    return damage > view.fence_max_damage || damage / std::max(explained, 1e-3) > view.fence_max_damage_ratio;
}

LocateView build_view(const Atlas& atlas) {
    LocateView view;
    view.fence_max_damage = config_value<double>(atlas, "fence_max_damage", 0.15);
    view.fence_max_damage_ratio = config_value<double>(atlas, "fence_max_damage_ratio", 0.40);

    std::set<int64_t> layers;
    if (atlas.metadata.contains("analysed_layers") && atlas.metadata["analysed_layers"].is_array()) {
        for (const nlohmann::json& layer : atlas.metadata["analysed_layers"]) {
            if (layer.is_number()) {
                layers.insert(static_cast<int64_t>(std::llround(layer.get<double>())));
            }
        }
    }
    std::vector<Projection> columns;
    for (const std::string& name : config_value<std::vector<std::string>>(atlas, "projections", {})) {
        try {
            columns.push_back(parse_projection(name));
        } catch (const Error&) {
            // An unknown name in an old config only loses its (empty) heat-map column.
        }
    }
    for (const ProjectionAtlas& p : atlas.projections) {
        layers.insert(p.layer);
        if (std::find(columns.begin(), columns.end(), p.projection) == columns.end()) {
            columns.push_back(p.projection);
        }
    }
    // Columns in model order (gate, up, down), whatever order the config lists them in.
    std::sort(columns.begin(), columns.end(), [](Projection a, Projection b) {
        return static_cast<int>(a) < static_cast<int>(b);
    });
    view.layers.assign(layers.begin(), layers.end());
    view.columns = columns;

    KneeOptions knee;
    knee.max_fraction = config_value<double>(atlas, "knee_max_fraction", knee.max_fraction);
    knee.flat_epsilon = config_value<double>(atlas, "knee_flat_epsilon", knee.flat_epsilon);
    knee.flat_quantile = config_value<double>(atlas, "knee_flat_quantile", knee.flat_quantile);

    for (int64_t layer : view.layers) {
        for (Projection projection : view.columns) {
            const ProjectionAtlas* p = atlas.find(layer, projection);
            if (p == nullptr) {
                continue;
            }
            ProjectionView pv;
            pv.atlas = p;
            pv.label = fmt::format("layer {} {}", layer, short_name(projection));
            pv.composite = to_doubles(p->composite);
            pv.order.resize(pv.composite.size());
            std::iota(pv.order.begin(), pv.order.end(), int64_t{0});
            std::stable_sort(pv.order.begin(), pv.order.end(),
                             [&](int64_t a, int64_t b) { return pv.composite[a] > pv.composite[b]; });
            pv.selected = to_indices(p->selected);
            if (!pv.composite.empty()) {
                // Stage 5 repasses the knee with a top-fraction rule for flat curves.
                KneeOptions options = knee;
                if (p->component_scores.count("coherence") > 0) {
                    options.flat_top_fraction = config_value<double>(atlas, "coherence_flat_fraction", 0.10);
                }
                pv.knee = static_cast<int64_t>(knee_select(p->composite, options).size());
            }
            auto found = p->component_scores.find("das_explained");
            if (found != p->component_scores.end()) {
                pv.explained = to_doubles(found->second);
            }
            pv.scales = to_doubles(p->scales);
            pv.damage = to_doubles(p->fence_damage);
            view.fence_ran = view.fence_ran || !pv.damage.empty();
            view.projections.push_back(std::move(pv));
        }
    }
    return view;
}

const ProjectionView* find_view(const LocateView& view, int64_t layer, Projection projection) {
    for (const ProjectionView& pv : view.projections) {
        if (pv.atlas->layer == layer && pv.atlas->projection == projection) {
            return &pv;
        }
    }
    return nullptr;
}

struct TopDirection {
    const ProjectionView* projection;
    int64_t index;
    double composite;
    double singular_value;
};

// Selected directions of every projection, by descending composite score.
std::vector<TopDirection> top_directions(const LocateView& view, size_t count) {
    std::vector<TopDirection> all;
    for (const ProjectionView& pv : view.projections) {
        const std::vector<double> singular = to_doubles(pv.atlas->singular_values);
        for (int64_t index : pv.selected) {
            const double composite = index < static_cast<int64_t>(pv.composite.size()) ? pv.composite[index] : NAN;
            const double sigma = index < static_cast<int64_t>(singular.size()) ? singular[index] : NAN;
            all.push_back({&pv, index, composite, sigma});
        }
    }
    std::stable_sort(all.begin(), all.end(), [](const TopDirection& a, const TopDirection& b) {
        return (std::isnan(b.composite) && !std::isnan(a.composite)) || a.composite > b.composite;
    });
    if (all.size() > count) {
        all.resize(count);
    }
    return all;
}

int64_t basis_rows(const ProjectionAtlas& p) { return p.basis.defined() ? p.basis.size(0) : 0; }
int64_t lock_rows(const ProjectionAtlas& p) { return p.lock_basis.defined() ? p.lock_basis.size(0) : 0; }

std::string stage_label(const nlohmann::json& stage) {
    return fmt::format("{} {}", stage.value("stage", -1), stage.value("name", std::string("?")));
}

double total_seconds(const nlohmann::json& timings) {
    double total = 0.0;
    for (const nlohmann::json& stage : timings) {
        total += stage.value("seconds", 0.0);
    }
    return total;
}

// ---------------------------------------------------------------------------------------------
// Charts

std::string selected_heat_map(const LocateView& view, const std::string& title, const std::string& value_label,
                              int64_t (*count)(const ProjectionView&)) {
    svg::HeatMap map;
    map.title = title;
    map.row_axis_label = "layer";
    map.column_axis_label = "projection";
    map.value_label = value_label;
    for (Projection projection : view.columns) {
        map.columns.push_back(projection_name(projection));
    }
    for (int64_t layer : view.layers) {
        map.rows.push_back(fmt::format("layer {}", layer));
        std::vector<double> row;
        for (Projection projection : view.columns) {
            const ProjectionView* pv = find_view(view, layer, projection);
            // The atlas leaves out analysed projections where nothing was selected.
            row.push_back(pv == nullptr ? 0.0 : static_cast<double>(count(*pv)));
        }
        map.values.push_back(row);
    }
    return svg::render(map);
}

std::string composite_curve(const ProjectionView& pv) {
    svg::LineChart chart;
    chart.title = pv.label;
    chart.x_label = "rank by composite score";
    chart.y_label = "composite score";
    chart.width = 370;
    chart.height = 230;

    // The knee and the selection sit at the head of the curve. The long flat tail is cut at
    // three times the furthest of them (at least 60 ranks), so the knee is not squeezed
    // against the y axis.
    size_t shown = std::max<size_t>(60, 3 * static_cast<size_t>(pv.knee));
    for (size_t rank = 0; rank < pv.order.size(); ++rank) {
        if (std::find(pv.selected.begin(), pv.selected.end(), pv.order[rank]) != pv.selected.end()) {
            shown = std::max(shown, 3 * (rank + 1));
        }
    }
    shown = std::min(shown, pv.order.size());
    if (shown < pv.order.size()) {
        chart.x_label = fmt::format("rank by composite score (first {} of {})", shown, pv.order.size());
    }

    svg::Series curve;
    curve.name = "composite";
    curve.color = svg::palette_color(0);
    for (size_t rank = 0; rank < shown; ++rank) {
        curve.x.push_back(static_cast<double>(rank + 1));
        curve.y.push_back(pv.composite[pv.order[rank]]);
    }

    svg::Series chosen;
    chosen.name = "selected";
    chosen.color = svg::palette_color(2);
    chosen.style = svg::SeriesStyle::markers;
    for (size_t rank = 0; rank < shown; ++rank) {
        if (std::find(pv.selected.begin(), pv.selected.end(), pv.order[rank]) != pv.selected.end()) {
            chosen.x.push_back(static_cast<double>(rank + 1));
            chosen.y.push_back(pv.composite[pv.order[rank]]);
        }
    }
    chart.series = {curve, chosen};

    if (pv.knee > 0) {
        chart.vertical_markers.push_back({static_cast<double>(pv.knee) + 0.5, fmt::format("knee {}", pv.knee), "#555555"});
    }
    return svg::render(chart);
}

// One chart per analysed projection, layer by layer, in the heat map's column order. A
// projection the atlas leaves out gets an empty chart, so every row of the grid shows the same
// projections.
std::vector<std::string> composite_curves(const LocateView& view) {
    std::vector<std::string> charts;
    for (int64_t layer : view.layers) {
        bool any = false;
        for (Projection projection : view.columns) {
            any = any || find_view(view, layer, projection) != nullptr;
        }
        if (!any) {
            continue;
        }
        for (Projection projection : view.columns) {
            const ProjectionView* pv = find_view(view, layer, projection);
            if (pv != nullptr) {
                charts.push_back(composite_curve(*pv));
                continue;
            }
            svg::LineChart empty;
            empty.title = fmt::format("layer {} {}: nothing selected", layer, short_name(projection));
            empty.x_label = "rank by composite score";
            empty.y_label = "composite score";
            empty.width = 370;
            empty.height = 230;
            empty.empty_message = "scores not stored in the atlas";
            charts.push_back(svg::render(empty));
        }
    }
    return charts;
}

std::string coherence_heat_map(const LocateView& view) {
    svg::HeatMap map;
    map.title = "Max cross-layer coherence of the selected directions";
    map.row_axis_label = "layer";
    map.column_axis_label = "projection";
    map.value_label = "coherence (|cos|)";
    map.value_decimals = 2;
    for (Projection projection : view.columns) {
        map.columns.push_back(projection_name(projection));
    }
    for (int64_t layer : view.layers) {
        map.rows.push_back(fmt::format("layer {}", layer));
        std::vector<double> row;
        for (Projection projection : view.columns) {
            const ProjectionView* pv = find_view(view, layer, projection);
            double best = NAN;
            if (pv != nullptr) {
                auto found = pv->atlas->component_scores.find("coherence");
                if (found != pv->atlas->component_scores.end()) {
                    const std::vector<double> coherence = to_doubles(found->second);
                    for (int64_t index : pv->selected) {
                        if (index < static_cast<int64_t>(coherence.size())) {
                            best = std::isnan(best) ? coherence[index] : std::max(best, coherence[index]);
                        }
                    }
                }
            }
            row.push_back(best);
        }
        map.values.push_back(row);
    }
    return svg::render(map);
}

// Candidates of the causal gate are the directions it scored; their score is non-zero unless
// ablating them changed both losses by exactly the same amount.
std::string causal_chart(const ProjectionView& pv, const std::vector<double>& causal) {
    svg::BarChart chart;
    chart.title = pv.label;
    chart.category_label = "direction (by composite rank)";
    chart.value_label = "causal score (nats)";
    chart.width = 370;
    chart.height = 250;
    svg::BarSeries scores;
    for (int64_t index : pv.order) {
        if (index >= static_cast<int64_t>(causal.size()) || causal[index] == 0.0) {
            continue;
        }
        const bool kept = std::find(pv.selected.begin(), pv.selected.end(), index) != pv.selected.end();
        chart.categories.push_back(fmt::format("#{}", index));
        scores.values.push_back(causal[index]);
        scores.bar_colors.push_back(kept ? kPassColor : kMutedBarColor);
    }
    scores.color = kMutedBarColor;
    chart.series = {scores};
    chart.extra_legend = {{"kept", kPassColor}, {"dropped", kMutedBarColor}};
    return svg::render(chart);
}

struct AxisRow {
    const ProjectionView* projection;
    size_t row;
};

std::vector<AxisRow> basis_axes(const LocateView& view) {
    std::vector<AxisRow> axes;
    for (const ProjectionView& pv : view.projections) {
        for (size_t j = 0; j < static_cast<size_t>(basis_rows(*pv.atlas)); ++j) {
            axes.push_back({&pv, j});
        }
    }
    return axes;
}

std::string axis_label(const AxisRow& axis) {
    return fmt::format("L{} {} #{}", axis.projection->atlas->layer, short_name(axis.projection->atlas->projection),
                       axis.row);
}

double value_at(const std::vector<double>& values, size_t i) { return i < values.size() ? values[i] : NAN; }

std::string das_chart(const LocateView& view) {
    svg::BarChart chart;
    chart.title = "DAS axes: explained variance and kept gain";
    chart.category_label = "basis row (layer, projection, axis)";
    chart.value_label = "fraction";
    chart.width = 1100;
    svg::BarSeries explained{"explained variance of the logit change", {}, svg::palette_color(0), {}};
    svg::BarSeries scales{"gain kept along the axis (scale)", {}, svg::palette_color(1), {}};
    for (const AxisRow& axis : basis_axes(view)) {
        chart.categories.push_back(axis_label(axis));
        explained.values.push_back(value_at(axis.projection->explained, axis.row));
        scales.values.push_back(value_at(axis.projection->scales, axis.row));
    }
    chart.series = {explained, scales};
    return svg::render(chart);
}

std::string fence_chart(const LocateView& view) {
    svg::BarChart chart;
    chart.title = "Capability fence: damage of ablating each axis";
    chart.category_label = "basis row (layer, projection, axis)";
    chart.value_label = "damage (nats)";
    chart.width = 1100;
    svg::BarSeries damage;
    damage.color = kPassColor;
    for (const AxisRow& axis : basis_axes(view)) {
        const double d = value_at(axis.projection->damage, axis.row);
        chart.categories.push_back(axis_label(axis));
        damage.values.push_back(d);
        const bool rejected = std::isfinite(d) && fence_rejects(view, d, value_at(axis.projection->explained, axis.row));
        damage.bar_colors.push_back(rejected ? kRejectColor : kPassColor);
    }
    chart.series = {damage};
    chart.thresholds.push_back({view.fence_max_damage, fmt::format("threshold {} nats", view.fence_max_damage)});
    chart.extra_legend = {{"passed", kPassColor}, {"rejected (released from the lock)", kRejectColor}};
    return svg::render(chart);
}

std::string layer_ranking_chart(const Atlas& atlas, const LocateView& view) {
    svg::BarChart chart;
    chart.title = "Stage 0 layer ranking";
    chart.category_label = "layer";
    chart.value_label = "layer score";
    chart.width = 1100;
    chart.height = 280;
    svg::BarSeries scores;
    const nlohmann::json& values = atlas.metadata.value("layer_scores", nlohmann::json::array());
    for (size_t layer = 0; layer < values.size(); ++layer) {
        chart.categories.push_back(std::to_string(layer));
        scores.values.push_back(values[layer].is_number() ? values[layer].get<double>() : NAN);
        const bool analysed =
            std::find(view.layers.begin(), view.layers.end(), static_cast<int64_t>(layer)) != view.layers.end();
        scores.bar_colors.push_back(analysed ? svg::palette_color(0) : kMutedBarColor);
    }
    chart.series = {scores};
    chart.extra_legend = {{"analysed", svg::palette_color(0)}, {"not analysed", kMutedBarColor}};
    return svg::render(chart);
}

std::string timings_chart(const nlohmann::json& timings) {
    svg::BarChart chart;
    chart.title = "Stage timings";
    chart.category_label = "stage";
    chart.value_label = "wall time (s)";
    chart.horizontal = true;
    chart.show_values = true;
    chart.value_decimals = 1;
    chart.width = 760;
    svg::BarSeries seconds;
    for (const nlohmann::json& stage : timings) {
        chart.categories.push_back(stage_label(stage));
        seconds.values.push_back(stage.value("seconds", NAN));
        seconds.bar_colors.push_back(stage.value("from_cache", false) ? kMutedBarColor : svg::palette_color(0));
    }
    chart.series = {seconds};
    chart.extra_legend = {{"computed", svg::palette_color(0)}, {"loaded from cache", kMutedBarColor}};
    return svg::render(chart);
}

std::string format_directions(const ProjectionView& pv, size_t count) {
    std::vector<std::string> parts;
    for (int64_t index : pv.order) {
        if (parts.size() == count) {
            break;
        }
        if (std::find(pv.selected.begin(), pv.selected.end(), index) != pv.selected.end()) {
            parts.push_back(fmt::format("#{} ({:.3f})", index, pv.composite[index]));
        }
    }
    return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace

nlohmann::json read_locate_timings(const std::string& dir) {
    const std::string path = (std::filesystem::path(dir) / "timings.json").string();
    std::ifstream in(path);
    if (!in) {
        return nlohmann::json::array();
    }
    nlohmann::json timings;
    try {
        timings = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        fail("stage timings '{}' are not valid JSON: {}; delete the file or rerun `subzero locate`", path, e.what());
    }
    if (!timings.is_array()) {
        fail("stage timings '{}' must be a JSON array of stage entries, got {}", path, timings.type_name());
    }
    for (size_t i = 0; i < timings.size(); ++i) {
        if (!timings[i].is_object() || !timings[i].contains("seconds") || !timings[i]["seconds"].is_number()) {
            fail("stage timings '{}': entry {} has no numeric 'seconds': {}", path, i, timings[i].dump());
        }
    }
    return timings;
}

std::string locate_summary(const Atlas& atlas, const nlohmann::json& timings) {
    const LocateView view = build_view(atlas);
    int64_t selected = 0;
    int64_t rows = 0;
    int64_t locked = 0;
    for (const ProjectionView& pv : view.projections) {
        selected += static_cast<int64_t>(pv.selected.size());
        rows += basis_rows(*pv.atlas);
        locked += lock_rows(*pv.atlas);
    }
    std::string out = fmt::format("atlas of {}: {} selected directions in {} projections, {} basis rows, {} locked\n",
                                  atlas.metadata.value("model", std::string("unknown model")), selected,
                                  view.projections.size(), rows, locked);

    out += "\nselected directions per layer and projection:\n";
    out += fmt::format("  {:>6}", "layer");
    for (Projection projection : view.columns) {
        out += fmt::format(" {:>10}", projection_name(projection));
    }
    out += "\n";
    for (int64_t layer : view.layers) {
        out += fmt::format("  {:>6}", layer);
        for (Projection projection : view.columns) {
            const ProjectionView* pv = find_view(view, layer, projection);
            out += fmt::format(" {:>10}", pv == nullptr ? 0 : pv->selected.size());
        }
        out += "\n";
    }

    const std::vector<TopDirection> top = top_directions(view, 10);
    if (!top.empty()) {
        out += "\ntop directions by composite score:\n";
        for (const TopDirection& d : top) {
            out += fmt::format("  {:<26} #{:<5} composite {:.4f}  singular value {:.4g}\n", d.projection->atlas->key(),
                               d.index, d.composite, d.singular_value);
        }
    }

    if (!timings.empty()) {
        out += "\nstage timings:\n";
        for (const nlohmann::json& stage : timings) {
            out += fmt::format("  {:<30} {:>9.2f} s{}\n", stage_label(stage), stage.value("seconds", 0.0),
                               stage.value("from_cache", false) ? "  (cached)" : "");
        }
        out += fmt::format("  {:<30} {:>9.2f} s\n", "total", total_seconds(timings));
    }
    return out;
}

void write_locate_report(const Atlas& atlas, const nlohmann::json& timings, const std::string& html_path) {
    const LocateView view = build_view(atlas);
    const std::string model = atlas.metadata.value("model", std::string("unknown model"));
    HtmlReport report("subzero locate report", fmt::format("{} · seed {}", model, atlas.metadata.value("seed", 0)));

    int64_t selected = 0;
    int64_t rows = 0;
    int64_t locked = 0;
    for (const ProjectionView& pv : view.projections) {
        selected += static_cast<int64_t>(pv.selected.size());
        rows += basis_rows(*pv.atlas);
        locked += lock_rows(*pv.atlas);
    }
    report.add_section("Summary", "summary");
    std::vector<std::pair<std::string, std::string>> facts = {
        {"model", model},
        {"analysed layers", fmt::format("{}", fmt::join(view.layers, ", "))},
        {"projections with a selection", fmt::format("{}", view.projections.size())},
        {"selected directions", fmt::format("{}", selected)},
        {"surgery basis rows", fmt::format("{}", rows)},
        {"locked rows (after the fence)", fmt::format("{}", locked)},
        {"fence threshold", fmt::format("{} nats, damage / explained variance at most {}", view.fence_max_damage,
                                        view.fence_max_damage_ratio)},
    };
    if (!timings.empty()) {
        facts.emplace_back("total stage time", fmt::format("{:.1f} s", total_seconds(timings)));
    }
    report.add_key_values(facts);

    report.add_section("Selected directions", "selection");
    report.add_svg_grid({selected_heat_map(view, "Selected directions per layer and projection", "selected directions",
                                           [](const ProjectionView& pv) { return static_cast<int64_t>(pv.selected.size()); }),
                         selected_heat_map(view, "Locked rows per layer and projection", "locked rows",
                                           [](const ProjectionView& pv) { return lock_rows(*pv.atlas); })});
    report.add_caption("Analysed projections missing from the atlas selected nothing and count 0. Locked rows are the "
                       "surgery basis rows the capability fence did not release.");
    std::vector<std::vector<std::string>> table;
    for (const ProjectionView& pv : view.projections) {
        table.push_back({pv.atlas->key(), std::to_string(pv.composite.size()), std::to_string(pv.knee),
                         std::to_string(pv.selected.size()), std::to_string(basis_rows(*pv.atlas)),
                         std::to_string(lock_rows(*pv.atlas)), format_directions(pv, 5)});
    }
    report.add_table({"projection", "rank", "knee", "selected", "basis rows", "locked rows",
                      "top selected directions (composite)"},
                     table);
    if (!atlas.metadata.value("layer_scores", nlohmann::json::array()).empty()) {
        report.add_svg(layer_ranking_chart(atlas, view));
    }

    report.add_section("Composite score curves", "composite");
    report.add_caption("Each projection's composite score of every singular direction, sorted in descending order. "
                       "The dashed line is the knee cut on this curve; dots are the directions finally selected "
                       "(after the causal gate).");
    report.add_svg_grid(composite_curves(view));

    bool any_coherence = false;
    bool any_causal = false;
    for (const ProjectionView& pv : view.projections) {
        any_coherence = any_coherence || pv.atlas->component_scores.count("coherence") > 0;
        any_causal = any_causal || pv.atlas->component_scores.count("causal") > 0;
    }
    if (any_coherence) {
        report.add_section("Coherence", "coherence");
        report.add_svg(coherence_heat_map(view));
        report.add_caption("Largest coherence among each projection's selected directions: how well a direction "
                           "aligns with the top directions of the neighbouring analysed layers. Grey: not computed.");
    }
    if (any_causal) {
        report.add_section("Causal ablation gate", "causal");
        report.add_caption("Score of ablating each candidate direction: the rise of the corp loss plus the fall of "
                           "the authentic loss, in nats. Green candidates were kept.");
        std::vector<std::string> charts;
        for (const ProjectionView& pv : view.projections) {
            auto found = pv.atlas->component_scores.find("causal");
            if (found != pv.atlas->component_scores.end()) {
                charts.push_back(causal_chart(pv, to_doubles(found->second)));
            }
        }
        report.add_svg_grid(charts);
    }
    if (rows > 0) {
        report.add_section("DAS rotation", "das");
        report.add_svg(das_chart(view));
        report.add_caption("Per surgery axis: the share of the ablation logit change it explains, and the gain the "
                           "surgery keeps along it (0 removes the axis, 1 leaves it).");
    }
    if (view.fence_ran) {
        report.add_section("Capability fence", "fence");
        report.add_svg(fence_chart(view));
        report.add_caption(fmt::format("Damage is the largest absolute change of the mean loss over the fence corpora "
                                       "when the axis is ablated. An axis is rejected when its damage exceeds {} nats or "
                                       "{} times its explained variance. Rejected axes keep their full gain.",
                                       view.fence_max_damage, view.fence_max_damage_ratio));
    }
    if (!timings.empty()) {
        report.add_section("Stage timings", "timings");
        report.add_svg(timings_chart(timings));
        std::vector<std::vector<std::string>> stages;
        for (const nlohmann::json& stage : timings) {
            stages.push_back({std::to_string(stage.value("stage", -1)), stage.value("name", std::string()),
                              fmt::format("{:.2f} s", stage.value("seconds", 0.0)),
                              stage.value("from_cache", false) ? "yes" : "no", stage.value("detail", std::string())});
        }
        report.add_table({"stage", "name", "time", "cached", "detail"}, stages);
    }

    report.add_section("Text summary", "text");
    report.add_preformatted(locate_summary(atlas, timings));
    report.write(html_path);
}

}  // namespace sz
