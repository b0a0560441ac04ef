// Settings of `subzero locate`: every count, threshold and weight of the localisation
// pipeline. Defaults are those of the reference implementation (sub-zero `ProbeConfig` at HEAD),
// except where a field comment names a deliberate departure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sz {

struct LocateConfig {
    // Corpora: JSONL files of chat messages, "<corpus_dir>/<name>.jsonl".
    std::string corpus_dir = "data/corpora";
    int64_t max_prompts_per_class = 32;   // rows read from corp and from authentic
    int64_t max_length = 256;             // tokens per rendered row; longer rows keep their head
    int64_t batch_size = 8;               // rows per forward pass in stages 0, 1 and 3

    // Stage 0: which layers get per-direction analysis. "gradient" ranks layers by the gradient
    // norms of o_proj and down_proj on the corp corpus. "last" takes the deepest layers, and
    // "all" analyses every layer that is not skipped.
    std::string layer_ranking = "gradient";
    int64_t ranking_batches = 5;          // corp batches whose gradient norms are summed
    double sacred_fraction = 0.50;        // share of all layers kept, at least one
    bool skip_first_last = true;          // never analyse layer 0 or layer L-1
    std::vector<int64_t> skip_layers;     // further layers never analysed
    std::vector<std::string> projections = {"gate_proj", "up_proj", "down_proj"};

    // Stage 1: activations pooled per row at the last real token ("last") or over the rows'
    // measured tokens ("mean").
    std::string pooling = "last";

    // Stage 3: "signed" is first-order attribution patching of removing each direction on
    // M = CE(corp) - CE(authentic); "reference" is the reference's weight-gradient norm times
    // the corp-minus-authentic activation contrast.
    std::string atp_variant = "signed";

    // Stage 4: cone, Wanda ratio, composite and knee.
    int64_t cone_directions = 3;
    int64_t cone_kmeans_iterations = 5;
    double weight_wanda = 0.45;
    double weight_atp = 0.35;
    double weight_cone = 0.20;
    double knee_max_fraction = 0.30;      // the knee keeps at most this share of directions
    double knee_flat_quantile = 0.85;     // flat curve: keep composite > this quantile
    double knee_flat_epsilon = 1e-6;      // flat curve: max - min at most this
    double bouncer_scale = 0.15;          // gain kept along a selected singular direction

    // Stage 5: cross-layer coherence.
    bool coherence = true;
    double coherence_top_fraction = 0.30; // neighbour directions compared: top share ...
    int64_t coherence_top_max = 64;       // ... capped at this count
    double coherence_flat_fraction = 0.10;

    // Stage 6: causal ablation gate.
    bool causal_gate = true;
    int64_t causal_batch = 4;             // corp and authentic rows scored
    int64_t causal_max_candidates = 20;
    double causal_keep_quantile = 0.5;    // keep scores above max(0, this quantile)

    // Stage 7: DAS-style rotation of the kept directions.
    bool das = true;
    int64_t das_batch = 4;                // authentic rows
    int64_t das_target_rank = 2;
    double das_explained_floor = 0.05;
    double das_min_scale = 0.15;

    // Stage 8: capability fence.
    bool fence = true;
    std::vector<std::string> fence_corpora = {"capability_code", "capability_math", "capability_facts",
                                              "capability_reasoning", "capability_multilingual"};
    int64_t fence_max_prompts = 16;
    int64_t fence_batch = 4;
    double fence_max_damage = 0.15;       // nats, max over corpora
    double fence_max_damage_ratio = 0.40; // damage / explained variance
    // The reference keeps a rejected axis locked against training; subzero releases it.
    bool fence_release_rejected = true;

    // Held-out check after stage 8: the rows of corp and authentic past max_prompts_per_class,
    // scored clean, with every atlas direction attenuated at once, and with as many random
    // directions in the same projections. Not part of the reference.
    bool heldout_check = true;
    int64_t heldout_max_prompts = 16;     // held-out rows per class, at most

    uint64_t seed = 0;

    // Reads a JSON object; keys not given keep their defaults. Throws sz::Error naming `source`
    // and the key for an unknown key, a wrong type or an out-of-range value.
    static LocateConfig from_json(const nlohmann::json& json, const std::string& source);
    static LocateConfig from_file(const std::string& path);
    nlohmann::json to_json() const;
    // Every key of to_json(), in declaration order, with what it sets and its unit.
    static const std::vector<std::pair<std::string, std::string>>& key_docs();
    // Throws sz::Error naming the first invalid field.
    void validate(const std::string& source) const;
};

}  // namespace sz
