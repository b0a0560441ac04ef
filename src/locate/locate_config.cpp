#include "locate/locate_config.h"

#include <fstream>
#include <set>

#include "core/error.h"
#include "model/projection.h"

namespace sz {

namespace {

// Calls visit(name, member) for every field, so reading, writing and key checks share one list.
template <typename Config, typename Visit>
void visit_fields(Config& c, Visit&& visit) {
    visit("corpus_dir", c.corpus_dir);
    visit("max_prompts_per_class", c.max_prompts_per_class);
    visit("max_length", c.max_length);
    visit("batch_size", c.batch_size);
    visit("layer_ranking", c.layer_ranking);
    visit("ranking_batches", c.ranking_batches);
    visit("sacred_fraction", c.sacred_fraction);
    visit("skip_first_last", c.skip_first_last);
    visit("skip_layers", c.skip_layers);
    visit("projections", c.projections);
    visit("pooling", c.pooling);
    visit("atp_variant", c.atp_variant);
    visit("cone_directions", c.cone_directions);
    visit("cone_kmeans_iterations", c.cone_kmeans_iterations);
    visit("weight_wanda", c.weight_wanda);
    visit("weight_atp", c.weight_atp);
    visit("weight_cone", c.weight_cone);
    visit("knee_max_fraction", c.knee_max_fraction);
    visit("knee_flat_quantile", c.knee_flat_quantile);
    visit("knee_flat_epsilon", c.knee_flat_epsilon);
    visit("bouncer_scale", c.bouncer_scale);
    visit("coherence", c.coherence);
    visit("coherence_top_fraction", c.coherence_top_fraction);
    visit("coherence_top_max", c.coherence_top_max);
    visit("coherence_flat_fraction", c.coherence_flat_fraction);
    visit("causal_gate", c.causal_gate);
    visit("causal_batch", c.causal_batch);
    visit("causal_max_candidates", c.causal_max_candidates);
    visit("causal_keep_quantile", c.causal_keep_quantile);
    visit("das", c.das);
    visit("das_batch", c.das_batch);
    visit("das_target_rank", c.das_target_rank);
    visit("das_explained_floor", c.das_explained_floor);
    visit("das_min_scale", c.das_min_scale);
    visit("fence", c.fence);
    visit("fence_corpora", c.fence_corpora);
    visit("fence_max_prompts", c.fence_max_prompts);
    visit("fence_batch", c.fence_batch);
    visit("fence_max_damage", c.fence_max_damage);
    visit("fence_max_damage_ratio", c.fence_max_damage_ratio);
    visit("fence_release_rejected", c.fence_release_rejected);
    visit("heldout_check", c.heldout_check);
    visit("heldout_max_prompts", c.heldout_max_prompts);
    visit("seed", c.seed);
}

void read_value(const nlohmann::json& value, const std::string& key, const std::string& source, std::string& out) {
    if (!value.is_string()) {
        fail("{}: '{}' must be a string, got {}", source, key, value.dump());
    }
    out = value.get<std::string>();
}

void read_value(const nlohmann::json& value, const std::string& key, const std::string& source, bool& out) {
    if (!value.is_boolean()) {
        fail("{}: '{}' must be true or false, got {}", source, key, value.dump());
    }
    out = value.get<bool>();
}

void read_value(const nlohmann::json& value, const std::string& key, const std::string& source, int64_t& out) {
    if (!value.is_number_integer()) {
        fail("{}: '{}' must be an integer, got {}", source, key, value.dump());
    }
    out = value.get<int64_t>();
}

void read_value(const nlohmann::json& value, const std::string& key, const std::string& source, uint64_t& out) {
    if (!value.is_number_unsigned()) {
        fail("{}: '{}' must be a non-negative integer, got {}", source, key, value.dump());
    }
    out = value.get<uint64_t>();
}

void read_value(const nlohmann::json& value, const std::string& key, const std::string& source, double& out) {
    if (!value.is_number()) {
        fail("{}: '{}' must be a number, got {}", source, key, value.dump());
    }
    out = value.get<double>();
}

template <typename T>
void read_value(const nlohmann::json& value, const std::string& key, const std::string& source, std::vector<T>& out) {
    if (!value.is_array()) {
        fail("{}: '{}' must be a list, got {}", source, key, value.dump());
    }
    out.clear();
    for (size_t i = 0; i < value.size(); ++i) {
        T element{};
        read_value(value[i], fmt::format("{}[{}]", key, i), source, element);
        out.push_back(element);
    }
}

void require_positive(const std::string& source, const char* key, int64_t value) {
    if (value < 1) {
        fail("{}: '{}' must be at least 1, got {}", source, key, value);
    }
}

void require_fraction(const std::string& source, const char* key, double value, bool allow_zero) {
    if (!(value <= 1.0) || (allow_zero ? !(value >= 0.0) : !(value > 0.0))) {
        fail("{}: '{}' must be in {}0, 1], got {}", source, key, allow_zero ? "[" : "(", value);
    }
}

void require_one_of(const std::string& source, const char* key, const std::string& value,
                    const std::set<std::string>& allowed) {
    if (allowed.count(value) == 0) {
        fail("{}: '{}' is '{}'; expected one of: {}", source, key, value, fmt::join(allowed, ", "));
    }
}

}  // namespace

LocateConfig LocateConfig::from_json(const nlohmann::json& json, const std::string& source) {
    if (!json.is_object()) {
        fail("{}: the locate config must be a JSON object, got {}", source, json.type_name());
    }
    LocateConfig config;
    std::set<std::string> known;
    visit_fields(config, [&](const char* name, auto& member) {
        known.insert(name);
        auto it = json.find(name);
        if (it != json.end()) {
            read_value(*it, name, source, member);
        }
    });
    for (auto it = json.begin(); it != json.end(); ++it) {
        if (known.count(it.key()) == 0) {
            fail("{}: unknown locate config key '{}'; valid keys: {}", source, it.key(), fmt::join(known, ", "));
        }
    }
    config.validate(source);
    return config;
}

LocateConfig LocateConfig::from_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        fail("cannot open locate config '{}': file not found or not readable", path);
    }
    nlohmann::json json;
    try {
        json = nlohmann::json::parse(in, nullptr, true, /*ignore_comments=*/true);
    } catch (const nlohmann::json::parse_error& e) {
        fail("locate config '{}' is not valid JSON: {}", path, e.what());
    }
    return from_json(json, path);
}

nlohmann::json LocateConfig::to_json() const {
    nlohmann::json json = nlohmann::json::object();
    visit_fields(*this, [&](const char* name, const auto& member) { json[name] = member; });
    return json;
}

const std::vector<std::pair<std::string, std::string>>& LocateConfig::key_docs() {
    static const std::vector<std::pair<std::string, std::string>> docs = {
        {"corpus_dir", "folder with corp.jsonl, authentic.jsonl and the fence corpora; relative paths are tried "
                       "in the working directory, then in the subzero checkout"},
        {"max_prompts_per_class", "rows read from corp and from authentic for stages 0 to 8; later rows are "
                                  "held out for the held-out check"},
        {"max_length", "tokens per rendered row; longer rows are cut at the end"},
        {"batch_size", "rows per forward pass in stages 0, 1 and 3 and in the held-out check"},
        {"layer_ranking", "how stage 0 picks layers: gradient (gradient norm of o_proj and down_proj on corp), "
                          "last (deepest layers) or all"},
        {"ranking_batches", "corp batches whose gradient norms stage 0 sums"},
        {"sacred_fraction", "share of the model's layers analysed (at least one), 0 to 1"},
        {"skip_first_last", "never analyse the first and the last layer"},
        {"skip_layers", "further layer indices never analysed"},
        {"projections", "MLP projections analysed in each layer: gate_proj, up_proj, down_proj"},
        {"pooling", "stage 1 pooling of each row: last (last real token) or mean (over the reply tokens)"},
        {"atp_variant", "stage 3 score: signed (first-order effect of removing each direction on "
                        "CE(corp) - CE(authentic)) or reference (weight-gradient norm times activation contrast)"},
        {"cone_directions", "spherical k-means centroids of the corp-minus-authentic residual cone"},
        {"cone_kmeans_iterations", "k-means iterations for the cone"},
        {"weight_wanda", "composite weight of the Wanda ratio (corp over authentic activation times singular value)"},
        {"weight_atp", "composite weight of |attribution|"},
        {"weight_cone", "composite weight of the cone alignment"},
        {"knee_max_fraction", "the knee keeps at most this share of a projection's directions, 0 to 1"},
        {"knee_flat_quantile", "on a flat curve, keep directions whose composite exceeds this quantile, 0 to 1"},
        {"knee_flat_epsilon", "a curve whose max - min is at most this counts as flat"},
        {"bouncer_scale", "gain kept along a selected direction when DAS is off, 0 to 1"},
        {"coherence", "run stage 5, which rescales the composite by the best cosine with the neighbour layers' "
                      "top directions"},
        {"coherence_top_fraction", "share of a neighbour layer's directions compared, 0 to 1"},
        {"coherence_top_max", "at most this many neighbour directions compared"},
        {"coherence_flat_fraction", "on a flat repassed curve, keep this top share, 0 to 1"},
        {"causal_gate", "run stage 6, which ablates each candidate and keeps those that raise corp CE and lower "
                        "authentic CE"},
        {"causal_batch", "corp rows and authentic rows scored per candidate in stage 6"},
        {"causal_max_candidates", "candidates ablated per projection in stage 6 (the highest composite first); "
                                  "the main cost of a run"},
        {"causal_keep_quantile", "stage 6 keeps scores above max(0, this quantile of the candidates' scores)"},
        {"das", "run stage 7, which rotates the kept directions onto the main axes of their logit effects"},
        {"das_batch", "authentic rows whose last-token logits stage 7 compares"},
        {"das_target_rank", "rotated axes kept per projection, at most"},
        {"das_explained_floor", "a rotated axis must explain at least this share of the logit-effect variance"},
        {"das_min_scale", "gain kept along an axis that explains everything; scale = 1 - (1 - this) * explained"},
        {"fence", "run stage 8, which releases axes whose removal costs capability loss"},
        {"fence_corpora", "capability corpora of the fence, file names without .jsonl"},
        {"fence_max_prompts", "rows read from each fence corpus"},
        {"fence_batch", "rows of each fence corpus scored per axis"},
        {"fence_max_damage", "max capability CE change allowed per axis, nats"},
        {"fence_max_damage_ratio", "max capability CE change per unit of explained variance"},
        {"fence_release_rejected", "drop fence-rejected axes from the training lock as well as from the surgery"},
        {"heldout_check", "after stage 8, compare clean and ablated CE on held-out corp and authentic rows, with a "
                          "random-direction control"},
        {"heldout_max_prompts", "held-out rows per class, at most"},
        {"seed", "seed of every random choice (k-means start, random control directions)"},
    };
    return docs;
}

void LocateConfig::validate(const std::string& source) const {
    require_positive(source, "max_prompts_per_class", max_prompts_per_class);
    if (max_length < 8) {
        fail("{}: 'max_length' must be at least 8 tokens, got {}", source, max_length);
    }
    require_positive(source, "batch_size", batch_size);
    require_one_of(source, "layer_ranking", layer_ranking, {"gradient", "last", "all"});
    require_positive(source, "ranking_batches", ranking_batches);
    require_fraction(source, "sacred_fraction", sacred_fraction, false);
    if (projections.empty()) {
        fail("{}: 'projections' must name at least one projection", source);
    }
    for (const std::string& name : projections) {
        parse_projection(name);
    }
    require_one_of(source, "pooling", pooling, {"last", "mean"});
    require_one_of(source, "atp_variant", atp_variant, {"signed", "reference"});
    require_positive(source, "cone_directions", cone_directions);
    require_positive(source, "cone_kmeans_iterations", cone_kmeans_iterations);
    for (auto [key, weight] : {std::pair<const char*, double>{"weight_wanda", weight_wanda},
                               {"weight_atp", weight_atp}, {"weight_cone", weight_cone}}) {
        if (!(weight >= 0.0)) {
            fail("{}: '{}' must be non-negative, got {}", source, key, weight);
        }
    }
    require_fraction(source, "knee_max_fraction", knee_max_fraction, false);
    require_fraction(source, "knee_flat_quantile", knee_flat_quantile, true);
    if (!(knee_flat_epsilon >= 0.0)) {
        fail("{}: 'knee_flat_epsilon' must be non-negative, got {}", source, knee_flat_epsilon);
    }
    require_fraction(source, "bouncer_scale", bouncer_scale, true);
    require_fraction(source, "coherence_top_fraction", coherence_top_fraction, false);
    require_positive(source, "coherence_top_max", coherence_top_max);
    require_fraction(source, "coherence_flat_fraction", coherence_flat_fraction, false);
    require_positive(source, "causal_batch", causal_batch);
    require_positive(source, "causal_max_candidates", causal_max_candidates);
    require_fraction(source, "causal_keep_quantile", causal_keep_quantile, true);
    require_positive(source, "das_batch", das_batch);
    require_positive(source, "das_target_rank", das_target_rank);
    require_fraction(source, "das_explained_floor", das_explained_floor, true);
    require_fraction(source, "das_min_scale", das_min_scale, true);
    require_positive(source, "fence_max_prompts", fence_max_prompts);
    require_positive(source, "fence_batch", fence_batch);
    require_positive(source, "heldout_max_prompts", heldout_max_prompts);
    if (!(fence_max_damage >= 0.0) || !(fence_max_damage_ratio >= 0.0)) {
        fail("{}: 'fence_max_damage' and 'fence_max_damage_ratio' must be non-negative", source);
    }
}

}  // namespace sz
