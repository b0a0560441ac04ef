#include "locate/locate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fnv_hash.h"
#include "core/progress_bar.h"
#include "formats/safetensors.h"
#include "locate/corpus.h"
#include "locate/direction_math.h"
#include "locate/resumable_batch.h"

namespace sz {

namespace {

using TensorMap = std::map<std::string, torch::Tensor>;

// FNV-1a of the file's bytes, recorded per corpus in atlas.json and in the cache key.
std::string file_hash(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        fail("corpus file '{}' not found or not readable", path);
    }
    std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Fnv1a64 hash;
    hash.update(contents.data(), contents.size());
    return hash.hex();
}

std::string projection_key(int64_t layer, Projection p) {
    return fmt::format("blocks.{}.{}.{}", layer, projection_module(p), projection_name(p));
}

// The units the pipeline analyses: (layer, projection) pairs in ascending layer order.
struct Unit {
    int64_t layer;
    Projection projection;
    std::string key() const { return projection_key(layer, projection); }
};

// Selection order encoded as a float tensor [r] so that it fits a safetensors file:
// entry i is 1 + the position of direction i in the selection, 0 when it is not selected.
torch::Tensor encode_selection(const std::vector<int64_t>& selection, int64_t rank) {
    torch::Tensor encoded = torch::zeros({rank}, torch::kFloat32);
    for (size_t i = 0; i < selection.size(); ++i) {
        encoded[selection[i]] = static_cast<float>(i + 1);
    }
    return encoded;
}

std::vector<int64_t> decode_selection(const torch::Tensor& encoded) {
    std::vector<std::pair<int64_t, int64_t>> positions;
    auto values = encoded.accessor<float, 1>();
    for (int64_t i = 0; i < encoded.size(0); ++i) {
        if (values[i] > 0.0f) {
            positions.emplace_back(static_cast<int64_t>(values[i]), i);
        }
    }
    std::sort(positions.begin(), positions.end());
    std::vector<int64_t> selection;
    for (const auto& [position, index] : positions) {
        selection.push_back(index);
    }
    return selection;
}

torch::Tensor ablate(const torch::Tensor& x, const torch::Tensor& direction) {
    return x - torch::matmul(x, direction).unsqueeze(-1) * direction;
}

class Pipeline {
public:
    Pipeline(const LocateInputs& inputs, const LocateConfig& config, std::string out_dir)
        : in_(inputs), config_(config), out_dir_(std::move(out_dir)), stage_dir_(out_dir_ + "/stages") {}

    Atlas run(const std::function<void(const StageReport&)>& progress);

private:
    const LocateInputs& in_;
    const LocateConfig& config_;
    std::string out_dir_;
    std::string stage_dir_;
    std::string cache_key_;
    nlohmann::json identity_;
    nlohmann::json corpus_hashes_;

    std::vector<RenderedRow> corp_;
    std::vector<RenderedRow> authentic_;
    std::vector<Unit> units_;
    std::map<std::string, Svd> svd_;
    TensorMap state_;   // every stage's output, "<unit key>.<field>" or a global name

    int32_t pad_id() const {
        const Vocab& vocab = in_.tokenizer.vocab();
        return vocab.pad_id >= 0 ? vocab.pad_id : vocab.eos_id;
    }
    // Rows skip+1 .. skip+max_rows of "<corpus_dir>/<name>.jsonl", rendered.
    std::vector<RenderedRow> load_rows(const std::string& name, int64_t max_rows, int64_t skip = 0);
    torch::Tensor& field(const Unit& unit, const std::string& name) { return state_.at(unit.key() + "." + name); }
    bool has_field(const Unit& unit, const std::string& name) const { return state_.count(unit.key() + "." + name) != 0; }
    std::vector<int64_t> selection(const Unit& unit) { return decode_selection(field(unit, "selected_rank")); }
    std::set<int64_t> unit_layers() const {
        std::set<int64_t> layers;
        for (const Unit& unit : units_) {
            layers.insert(unit.layer);
        }
        return layers;
    }

    void build_units();
    void compute_svd();

    std::string stage0_rank_layers();
    std::string stage1_capture();
    // Captures the residual leaving each analysed layer at the last token of the neutral
    // rows, for the per-layer axes only. Returns the row count, 0 without a neutral corpus.
    int64_t capture_neutral();
    bool has_neutral_corpus() const { return std::filesystem::exists(config_.corpus_dir + "/neutral.jsonl"); }
    std::string stage3_attribution();
    std::string stage4_score();
    std::string stage5_coherence();
    std::string stage6_causal_gate();
    std::string stage7_das();
    std::string stage8_fence();
    std::string stage9_heldout_check();
    Atlas assemble_atlas() const;
    nlohmann::json layer_axes() const;
    nlohmann::json heldout_summary() const;
};

std::vector<RenderedRow> Pipeline::load_rows(const std::string& name, int64_t max_rows, int64_t skip) {
    const std::string path = config_.corpus_dir + "/" + name + ".jsonl";
    corpus_hashes_[name] = file_hash(path);
    std::vector<RenderedRow> rows;
    int64_t row_number = 0;
    for (const auto& messages : read_corpus(path, skip + max_rows)) {
        ++row_number;
        if (row_number <= skip) {
            continue;
        }
        try {
            rows.push_back(render_row(messages, in_.chat_template, in_.tokenizer, config_.max_length));
        } catch (const Error& e) {
            fail("{}: row {}: {}", path, row_number, e.what());
        }
    }
    return rows;
}

void Pipeline::build_units() {
    units_.clear();
    torch::Tensor analysed = state_.at("analysed_layers");
    for (int64_t i = 0; i < analysed.size(0); ++i) {
        const int64_t layer = static_cast<int64_t>(analysed[i].item<float>());
        for (const std::string& name : config_.projections) {
            units_.push_back({layer, parse_projection(name)});
        }
    }
}

void Pipeline::compute_svd() {
    svd_.clear();
    for (const Unit& unit : units_) {
        svd_[unit.key()] = svd_with_fixed_signs(in_.model.projection_weight(unit.layer, unit.projection));
    }
}

std::string Pipeline::stage0_rank_layers() {
    const int64_t L = in_.model.config().n_layer;
    for (int64_t layer : config_.skip_layers) {
        if (layer < 0 || layer >= L) {
            fail("invalid locate config: skip_layers contains {}, but the model's layers are 0..{}", layer, L - 1);
        }
    }
    std::set<int64_t> skipped(config_.skip_layers.begin(), config_.skip_layers.end());
    if (config_.skip_first_last) {
        skipped.insert(0);
        skipped.insert(L - 1);
    }
    std::vector<double> scores(static_cast<size_t>(L), 0.0);
    std::vector<int64_t> ranked;

    if (config_.layer_ranking == "gradient") {
        // Sum over corp batches of |dCE/dW_o|_F + |dCE/dW_down|_F per layer.
        std::vector<torch::Tensor*> weights;
        for (int64_t il = 0; il < L; ++il) {
            for (Projection p : {Projection::O, Projection::Down}) {
                torch::Tensor& w = in_.model.projection_weight(il, p);
                w.requires_grad_(true);
                weights.push_back(&w);
            }
        }
        const int64_t n_rows = static_cast<int64_t>(corp_.size());
        const int64_t n_batches = std::min(config_.ranking_batches, (n_rows + config_.batch_size - 1) / config_.batch_size);
        ProgressBar bar("stage 0 layer ranking", n_batches);
        for (int64_t b = 0; b < n_batches; ++b) {
            TokenBatch batch = make_batch(corp_, b * config_.batch_size,
                                          std::min(n_rows, (b + 1) * config_.batch_size), pad_id());
            ForwardOptions options;
            options.attention_mask = batch.mask;
            MaskedLoss loss = target_loss(in_.model, batch, options);
            (loss.sum / static_cast<double>(loss.count)).backward();
            for (int64_t il = 0; il < L; ++il) {
                for (int j = 0; j < 2; ++j) {
                    torch::Tensor& w = *weights[static_cast<size_t>(2 * il + j)];
                    scores[static_cast<size_t>(il)] += w.grad().norm().item<double>();
                    w.mutable_grad() = torch::Tensor();
                }
            }
            bar.advance();
        }
        for (torch::Tensor* w : weights) {
            w->requires_grad_(false);
        }
        for (int64_t il = 0; il < L; ++il) {
            ranked.push_back(il);
        }
        std::stable_sort(ranked.begin(), ranked.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
    } else {
        for (int64_t il = L - 1; il >= 0; --il) {
            ranked.push_back(il);
        }
    }

    const int64_t keep = config_.layer_ranking == "all"
                             ? L
                             : std::max<int64_t>(1, std::llround(static_cast<double>(L) * config_.sacred_fraction));
    std::vector<float> analysed;
    for (int64_t i = 0; i < keep && i < L; ++i) {
        if (skipped.count(ranked[i]) == 0) {
            analysed.push_back(static_cast<float>(ranked[i]));
        }
    }
    std::sort(analysed.begin(), analysed.end());
    if (analysed.empty()) {
        fail("no layer is left to analyse: the {} kept layers are all skipped; lower 'skip_layers' or raise "
             "'sacred_fraction'", keep);
    }
    state_["layer_scores"] = torch::tensor(std::vector<float>(scores.begin(), scores.end()));
    state_["analysed_layers"] = torch::tensor(analysed);
    return fmt::format("analysing layers [{}]", fmt::join(analysed, ", "));
}

std::string Pipeline::stage1_capture() {
    torch::NoGradGuard no_grad;
    for (const auto& [label, rows] : {std::pair<std::string, const std::vector<RenderedRow>*>{"corp", &corp_},
                                      {"authentic", &authentic_}}) {
        std::map<std::string, std::vector<torch::Tensor>> pooled;
        const int64_t n_rows = static_cast<int64_t>(rows->size());
        ProgressBar bar("stage 1 capture " + label, n_rows);
        for (int64_t begin = 0; begin < n_rows; begin += config_.batch_size) {
            TokenBatch batch = make_batch(*rows, begin, std::min(n_rows, begin + config_.batch_size), pad_id());
            torch::Tensor weights = config_.pooling == "mean" ? batch.targets.to(torch::kFloat32)
                                                               : torch::one_hot(batch.last, batch.tokens.size(1)).to(torch::kFloat32);
            weights = weights / weights.sum(1, true);   // [B, T], rows sum to 1
            torch::Tensor last_only = torch::one_hot(batch.last, batch.tokens.size(1)).to(torch::kFloat32);
            Hooks hooks;
            auto capture = [&](const std::string& key, const torch::Tensor& pool) {
                return [&pooled, key, pool](const torch::Tensor& x, const std::string&) {
                    pooled[key].push_back(torch::einsum("bt,bti->bi", {pool, x.to(torch::kFloat32)}));
                    return x;
                };
            };
            std::set<int64_t> layers;
            for (const Unit& unit : units_) {
                hooks.add(projection_input_hook(unit.layer, unit.projection), capture(unit.key(), weights));
                layers.insert(unit.layer);
            }
            // The cone reads the residual stream leaving each analysed block at the last token.
            for (int64_t layer : layers) {
                hooks.add(fmt::format("blocks.{}.hook_resid_post", layer), capture(fmt::format("blocks.{}.resid", layer), last_only));
            }
            ForwardOptions options;
            options.attention_mask = batch.mask;
            options.hooks = &hooks;
            options.last_position_only = true;
            in_.model.forward(batch.tokens, options);
            bar.advance(batch.tokens.size(0));
        }
        for (auto& [key, parts] : pooled) {
            state_[label + "." + key] = torch::cat(parts, 0).contiguous();
        }
    }
    const int64_t neutral_rows = capture_neutral();
    return fmt::format("{} corp, {} authentic and {} neutral rows, {} pooling", corp_.size(), authentic_.size(),
                       neutral_rows, config_.pooling);
}

int64_t Pipeline::capture_neutral() {
    if (!has_neutral_corpus()) {
        return 0;
    }
    torch::NoGradGuard no_grad;
    const std::vector<RenderedRow> rows = load_rows("neutral", config_.max_prompts_per_class);
    const int64_t n_rows = static_cast<int64_t>(rows.size());
    std::map<int64_t, std::vector<torch::Tensor>> pooled;
    ProgressBar bar("stage 1 capture neutral", n_rows);
    for (int64_t begin = 0; begin < n_rows; begin += config_.batch_size) {
        TokenBatch batch = make_batch(rows, begin, std::min(n_rows, begin + config_.batch_size), pad_id());
        const torch::Tensor last_only = torch::one_hot(batch.last, batch.tokens.size(1)).to(torch::kFloat32);
        Hooks hooks;
        for (int64_t layer : unit_layers()) {
            hooks.add(fmt::format("blocks.{}.hook_resid_post", layer),
                      [&pooled, layer, last_only](const torch::Tensor& x, const std::string&) {
                          pooled[layer].push_back(torch::einsum("bt,bti->bi", {last_only, x.to(torch::kFloat32)}));
                          return x;
                      });
        }
        ForwardOptions options;
        options.attention_mask = batch.mask;
        options.hooks = &hooks;
        options.last_position_only = true;
        in_.model.forward(batch.tokens, options);
        bar.advance(batch.tokens.size(0));
    }
    for (auto& [layer, parts] : pooled) {
        state_[fmt::format("neutral.blocks.{}.resid", layer)] = torch::cat(parts, 0).contiguous();
    }
    return n_rows;
}

std::string Pipeline::stage3_attribution() {
    TensorMap atp;
    for (const Unit& unit : units_) {
        atp[unit.key()] = torch::zeros({svd_.at(unit.key()).S.size(0)}, torch::kFloat32);
    }

    if (config_.atp_variant == "signed") {
        // M = CE(corp) - CE(authentic), each the mean over all of the class's target tokens. The
        // first-order change of M when x loses its component along v is -(dM/dx . v)(x . v),
        // summed over every position; one backward per batch gives it for every direction.
        for (const auto& [rows, sign] : {std::pair<const std::vector<RenderedRow>*, double>{&corp_, 1.0},
                                         {&authentic_, -1.0}}) {
            const int64_t n_rows = static_cast<int64_t>(rows->size());
            int64_t total_targets = 0;
            for (const RenderedRow& row : *rows) {
                total_targets += static_cast<int64_t>(row.tokens.size()) - row.first_target;
            }
            ProgressBar bar(sign > 0 ? "stage 3 attribution corp" : "stage 3 attribution authentic", n_rows);
            for (int64_t begin = 0; begin < n_rows; begin += config_.batch_size) {
                TokenBatch batch = make_batch(*rows, begin, std::min(n_rows, begin + config_.batch_size), pad_id());
                // Each hook adds a zero leaf to its input instead of detaching it: a detached input
                // would cut the path from gate/up inputs through down_proj's input, so their
                // gradients would miss every effect that passes through a later hooked point.
                std::map<std::string, torch::Tensor> leaves;
                std::map<std::string, torch::Tensor> inputs;
                Hooks hooks;
                for (const Unit& unit : units_) {
                    const std::string key = unit.key();
                    hooks.add(projection_input_hook(unit.layer, unit.projection),
                              [&leaves, &inputs, key](const torch::Tensor& x, const std::string&) {
                                  torch::Tensor leaf = torch::zeros_like(x).requires_grad_();
                                  leaves[key] = leaf;
                                  inputs[key] = x.detach();
                                  return x + leaf;
                              });
                }
                ForwardOptions options;
                options.attention_mask = batch.mask;
                options.hooks = &hooks;
                MaskedLoss loss = target_loss(in_.model, batch, options);
                (loss.sum * (sign / static_cast<double>(total_targets))).backward();

                torch::NoGradGuard no_grad;
                torch::Tensor mask = batch.mask.to(torch::kFloat32).unsqueeze(-1);
                for (const Unit& unit : units_) {
                    const torch::Tensor& leaf = leaves.at(unit.key());
                    if (!leaf.grad().defined()) {
                        continue;   // the loss does not depend on this input
                    }
                    const torch::Tensor& Vh = svd_.at(unit.key()).Vh;
                    torch::Tensor gradient_along = torch::matmul(leaf.grad(), Vh.t());      // [B, T, r]
                    torch::Tensor value_along = torch::matmul(inputs.at(unit.key()), Vh.t());  // [B, T, r]
                    atp[unit.key()] -= (gradient_along * value_along * mask).sum(torch::IntArrayRef{0, 1});
                }
                bar.advance(batch.tokens.size(0));
            }
        }
    } else {
        // Reference variant: atp_k = (mean_corp(a.v_k) - mean_auth(a.v_k)) * mean_i |G_i v_k|,
        // G_i the weight gradient of corp row i's mean cross-entropy over all of its tokens.
        const int64_t n_pairs = std::min(corp_.size(), authentic_.size());
        std::vector<RenderedRow> whole_rows;
        for (int64_t i = 0; i < n_pairs; ++i) {
            RenderedRow row = corp_[i];
            row.first_target = 1;
            whole_rows.push_back(row);
        }
        for (const Unit& unit : units_) {
            in_.model.projection_weight(unit.layer, unit.projection).requires_grad_(true);
        }
        TensorMap gradient_norms;
        ProgressBar bar("stage 3 attribution", n_pairs);
        for (int64_t i = 0; i < n_pairs; ++i) {
            TokenBatch batch = make_batch(whole_rows, i, i + 1, pad_id());
            ForwardOptions options;
            options.attention_mask = batch.mask;
            MaskedLoss loss = target_loss(in_.model, batch, options);
            (loss.sum / static_cast<double>(loss.count)).backward();
            torch::NoGradGuard no_grad;
            for (const Unit& unit : units_) {
                torch::Tensor& w = in_.model.projection_weight(unit.layer, unit.projection);
                torch::Tensor norms = torch::matmul(w.grad(), svd_.at(unit.key()).Vh.t()).norm(2, 0);
                auto it = gradient_norms.find(unit.key());
                if (it == gradient_norms.end()) {
                    gradient_norms[unit.key()] = norms;
                } else {
                    it->second += norms;
                }
                w.mutable_grad() = torch::Tensor();
            }
            bar.advance();
        }
        for (const Unit& unit : units_) {
            in_.model.projection_weight(unit.layer, unit.projection).requires_grad_(false);
            const torch::Tensor& Vh = svd_.at(unit.key()).Vh;
            torch::Tensor contrast = torch::matmul(state_.at("corp." + unit.key()), Vh.t()).mean(0) -
                                     torch::matmul(state_.at("authentic." + unit.key()), Vh.t()).mean(0);
            atp[unit.key()] = contrast * gradient_norms.at(unit.key()) / static_cast<float>(n_pairs);
        }
    }
    for (const Unit& unit : units_) {
        state_[unit.key() + ".atp"] = atp.at(unit.key()).contiguous();
    }
    return fmt::format("{} variant over {} projections", config_.atp_variant, units_.size());
}

std::string Pipeline::stage4_score() {
    torch::NoGradGuard no_grad;
    std::map<int64_t, torch::Tensor> cones;
    KneeOptions knee;
    knee.max_fraction = config_.knee_max_fraction;
    knee.flat_epsilon = config_.knee_flat_epsilon;
    knee.flat_quantile = config_.knee_flat_quantile;
    int64_t selected_total = 0;
    for (const Unit& unit : units_) {
        const Svd& svd = svd_.at(unit.key());
        if (cones.count(unit.layer) == 0) {
            const std::string resid = fmt::format("blocks.{}.resid", unit.layer);
            cones[unit.layer] = corp_cone(state_.at("corp." + resid), state_.at("authentic." + resid),
                                          config_.cone_directions, config_.cone_kmeans_iterations,
                                          config_.seed * 1000003ull + static_cast<uint64_t>(unit.layer));
        }
        const torch::Tensor& cone = cones.at(unit.layer);

        torch::Tensor corp_along = torch::matmul(state_.at("corp." + unit.key()), svd.Vh.t());        // [N, r]
        torch::Tensor authentic_along = torch::matmul(state_.at("authentic." + unit.key()), svd.Vh.t());
        torch::Tensor wanda_corp = svd.S * corp_along.abs().mean(0);
        torch::Tensor wanda_authentic = svd.S * authentic_along.abs().mean(0);
        torch::Tensor wanda_ratio = (wanda_corp + 1e-12f) / (wanda_authentic + 1e-12f);
        torch::Tensor dark_variance = authentic_along.size(0) > 1 ? authentic_along.var(0) : torch::zeros_like(svd.S);

        // The cone lives in the residual stream: gate/up read it on the input side (right
        // singular vectors), down writes it on the output side (left singular vectors).
        const int64_t d = cone.size(1);
        torch::Tensor alignment;
        if (svd.Vh.size(1) == d) {
            alignment = cone_alignment(cone, svd.Vh);
        } else if (svd.U.size(0) == d) {
            alignment = cone_alignment(cone, svd.U.t());
        } else {
            alignment = torch::zeros_like(svd.S);
        }

        torch::Tensor composite = composite_score(wanda_ratio, field(unit, "atp"), alignment,
                                                  {config_.weight_wanda, config_.weight_atp, config_.weight_cone});
        std::vector<int64_t> selected = knee_select(composite, knee);
        selected_total += static_cast<int64_t>(selected.size());
        state_[unit.key() + ".wanda_ratio"] = wanda_ratio.contiguous();
        state_[unit.key() + ".wanda_corp"] = wanda_corp.contiguous();
        state_[unit.key() + ".dark_variance"] = dark_variance.contiguous();
        state_[unit.key() + ".cone"] = alignment.contiguous();
        state_[unit.key() + ".composite_stage4"] = composite.contiguous();
        state_[unit.key() + ".composite"] = composite.clone();
        state_[unit.key() + ".selected_rank"] = encode_selection(selected, svd.S.size(0));
    }
    return fmt::format("{} directions selected by the knee", selected_total);
}

std::string Pipeline::stage5_coherence() {
    torch::NoGradGuard no_grad;
    std::map<std::string, const Unit*> by_key;
    for (const Unit& unit : units_) {
        by_key[unit.key()] = &unit;
    }
    KneeOptions knee;
    knee.max_fraction = config_.knee_max_fraction;
    knee.flat_epsilon = config_.knee_flat_epsilon;
    knee.flat_top_fraction = config_.coherence_flat_fraction;
    int64_t repassed = 0;
    float coh_max_overall = 0.0f;
    // Ascending layer order, updated in place, so layer l reads layer l-1's updated composite.
    for (const Unit& unit : units_) {
        const Svd& svd = svd_.at(unit.key());
        state_[unit.key() + ".coherence"] = torch::zeros_like(svd.S);
        std::vector<torch::Tensor> neighbour_rows;
        for (int64_t neighbour_layer : {unit.layer - 1, unit.layer + 1}) {
            auto it = by_key.find(projection_key(neighbour_layer, unit.projection));
            if (it == by_key.end() || svd_.at(it->first).Vh.size(1) != svd.Vh.size(1)) {
                continue;
            }
            const Svd& neighbour = svd_.at(it->first);
            const int64_t r = neighbour.S.size(0);
            const int64_t n_top = std::min<int64_t>({static_cast<int64_t>(std::floor(config_.coherence_top_fraction * r)),
                                                     config_.coherence_top_max, r});
            if (n_top <= 0) {
                continue;
            }
            torch::Tensor order = std::get<1>(state_.at(it->first + ".composite").sort(/*stable=*/true, 0, /*descending=*/true));
            neighbour_rows.push_back(neighbour.Vh.index_select(0, order.narrow(0, 0, n_top)));
        }
        if (neighbour_rows.empty()) {
            continue;
        }
        torch::Tensor coh = coherence(svd.Vh, torch::cat(neighbour_rows, 0));
        torch::Tensor composite = field(unit, "composite") * coherence_multiplier(coh);
        state_[unit.key() + ".coherence"] = coh.contiguous();
        state_[unit.key() + ".composite"] = composite.contiguous();
        state_[unit.key() + ".selected_rank"] = encode_selection(knee_select(composite, knee), svd.S.size(0));
        coh_max_overall = std::max(coh_max_overall, coh.max().item<float>());
        spdlog::debug("coherence {}: coh_max {:.3f}", unit.key(), coh.max().item<float>());
        ++repassed;
    }
    return fmt::format("{} projections repassed, max coherence {:.3f}", repassed, coh_max_overall);
}

std::string Pipeline::stage6_causal_gate() {
    const std::set<int64_t> layers = unit_layers();
    // Corp and authentic stay in separate batches: corp replies are about three times longer,
    // so one left-padded batch would spend about 40% more layer work on padding, and the head
    // (most of the cost) runs on scored tokens only either way.
    const int64_t n_corp = std::min<int64_t>(config_.causal_batch, static_cast<int64_t>(corp_.size()));
    const int64_t n_authentic = std::min<int64_t>(config_.causal_batch, static_cast<int64_t>(authentic_.size()));
    const ResumableBatch corp(in_.model, make_batch(corp_, 0, n_corp, pad_id()), layers);
    const ResumableBatch authentic(in_.model, make_batch(authentic_, 0, n_authentic, pad_id()), layers);
    const double clean_corp = corp.clean_loss();
    const double clean_authentic = authentic.clean_loss();
    std::map<std::string, std::vector<int64_t>> candidates_by_unit;
    int64_t total_candidates = 0;
    for (const Unit& unit : units_) {
        std::vector<int64_t> candidates = selection(unit);
        if (static_cast<int64_t>(candidates.size()) > config_.causal_max_candidates) {
            candidates.resize(static_cast<size_t>(config_.causal_max_candidates));
        }
        total_candidates += static_cast<int64_t>(candidates.size());
        candidates_by_unit[unit.key()] = std::move(candidates);
    }
    ProgressBar bar("stage 6 causal gate", total_candidates);
    int64_t kept_total = 0;
    for (const Unit& unit : units_) {
        const Svd& svd = svd_.at(unit.key());
        const std::vector<int64_t>& candidates = candidates_by_unit.at(unit.key());
        bar.set_postfix(unit.key());
        torch::Tensor scores = torch::zeros_like(svd.S);
        std::vector<float> candidate_scores;
        for (int64_t index : candidates) {
            torch::Tensor direction = svd.Vh[index];
            Hooks hooks;
            hooks.add(projection_input_hook(unit.layer, unit.projection),
                      [direction](const torch::Tensor& x, const std::string&) { return ablate(x, direction); });
            const double ablated_corp = corp.loss(unit.layer, hooks);
            const double ablated_authentic = authentic.loss(unit.layer, hooks);
            const double score = (clean_authentic - ablated_authentic) + (ablated_corp - clean_corp);
            scores[index] = static_cast<float>(score);
            candidate_scores.push_back(static_cast<float>(score));
            bar.advance();
        }
        std::vector<int64_t> kept;
        if (!candidates.empty()) {
            const double threshold = std::max(0.0, linear_quantile(torch::tensor(candidate_scores), config_.causal_keep_quantile));
            for (size_t i = 0; i < candidates.size(); ++i) {
                if (candidate_scores[i] > threshold) {
                    kept.push_back(candidates[i]);
                }
            }
            if (kept.empty()) {
                const size_t best = static_cast<size_t>(
                    std::max_element(candidate_scores.begin(), candidate_scores.end()) - candidate_scores.begin());
                kept.push_back(candidates[best]);
            }
        }
        kept_total += static_cast<int64_t>(kept.size());
        state_[unit.key() + ".causal"] = scores;
        state_[unit.key() + ".selected_rank"] = encode_selection(kept, svd.S.size(0));
    }
    return fmt::format("clean CE corp {:.4f} authentic {:.4f}; {} directions kept", clean_corp, clean_authentic,
                       kept_total);
}

std::string Pipeline::stage7_das() {
    const int64_t n_rows = std::min<int64_t>(config_.das_batch, static_cast<int64_t>(authentic_.size()));
    // Rows are left-padded, so every row's last real token is the batch's last column and the
    // head only has to run there.
    const ResumableBatch batch(in_.model, make_batch(authentic_, 0, n_rows, pad_id()), unit_layers(),
                               /*last_logits=*/true);
    const torch::Tensor& clean = batch.clean_last_logits();
    int64_t total_candidates = 0;
    for (const Unit& unit : units_) {
        const int64_t kept = static_cast<int64_t>(selection(unit).size());
        total_candidates += kept > 1 ? kept : 0;
    }
    ProgressBar bar("stage 7 DAS rotation", total_candidates);
    int64_t axes = 0;
    for (const Unit& unit : units_) {
        const Svd& svd = svd_.at(unit.key());
        std::vector<int64_t> kept = selection(unit);
        if (kept.empty()) {
            continue;
        }
        bar.set_postfix(unit.key());
        torch::Tensor index = torch::tensor(kept, torch::kInt64);
        torch::Tensor candidates = svd.Vh.index_select(0, index);
        std::vector<torch::Tensor> deltas;
        if (kept.size() > 1) {
            for (int64_t i = 0; i < candidates.size(0); ++i) {
                torch::Tensor direction = candidates[i];
                Hooks hooks;
                hooks.add(projection_input_hook(unit.layer, unit.projection),
                          [direction](const torch::Tensor& x, const std::string&) { return ablate(x, direction); });
                deltas.push_back((clean - batch.last_logits(unit.layer, hooks)).mean(0));
                bar.advance();
            }
        } else {
            deltas.push_back(torch::zeros({clean.size(1)}, torch::kFloat32));
        }
        DasRotation rotation = das_rotation(torch::stack(deltas), candidates, config_.das_target_rank,
                                            config_.das_explained_floor, config_.das_min_scale);
        state_[unit.key() + ".das_basis"] = rotation.basis.contiguous();
        state_[unit.key() + ".das_explained"] = rotation.explained;
        state_[unit.key() + ".das_sigma"] = rotation.sigma;
        state_[unit.key() + ".das_mixing"] = rotation.mixing;
        state_[unit.key() + ".das_scales"] = rotation.scales;
        axes += rotation.basis.size(0);
    }
    return fmt::format("{} rotated axes", axes);
}

std::string Pipeline::stage8_fence() {
    std::set<int64_t> layers;
    int64_t total_axes = 0;
    for (const Unit& unit : units_) {
        if (has_field(unit, "das_basis")) {
            layers.insert(unit.layer);
            total_axes += field(unit, "das_basis").size(0);
        }
    }
    std::vector<ResumableBatch> corpora;
    for (const std::string& name : config_.fence_corpora) {
        std::vector<RenderedRow> rows = load_rows(name, config_.fence_max_prompts);
        const int64_t n_rows = std::min<int64_t>(config_.fence_batch, static_cast<int64_t>(rows.size()));
        corpora.emplace_back(in_.model, make_batch(rows, 0, n_rows, pad_id()), layers);
    }
    ProgressBar bar("stage 8 capability fence", total_axes);
    int64_t passed_total = 0;
    int64_t axes_total = 0;
    for (const Unit& unit : units_) {
        if (!has_field(unit, "das_basis")) {
            continue;
        }
        bar.set_postfix(unit.key());
        const torch::Tensor basis = field(unit, "das_basis");
        const torch::Tensor explained = field(unit, "das_explained");
        const int64_t r = basis.size(0);
        torch::Tensor profile = torch::zeros({static_cast<int64_t>(corpora.size()), r}, torch::kFloat32);
        torch::Tensor passed = torch::zeros({r}, torch::kFloat32);
        for (int64_t j = 0; j < r; ++j) {
            torch::Tensor direction = basis[j];
            Hooks hooks;
            hooks.add(projection_input_hook(unit.layer, unit.projection),
                      [direction](const torch::Tensor& x, const std::string&) { return ablate(x, direction); });
            double damage = 0.0;
            for (size_t c = 0; c < corpora.size(); ++c) {
                const double change = std::abs(corpora[c].loss(unit.layer, hooks) - corpora[c].clean_loss());
                profile[static_cast<int64_t>(c)][j] = static_cast<float>(change);
                damage = std::max(damage, change);
            }
            bar.advance();
            const double ratio = damage / std::max(static_cast<double>(explained[j].item<float>()), 1e-3);
            const bool pass = damage <= config_.fence_max_damage && ratio <= config_.fence_max_damage_ratio;
            passed[j] = pass ? 1.0f : 0.0f;
            passed_total += pass ? 1 : 0;
        }
        axes_total += r;
        state_[unit.key() + ".fence_profile"] = profile;
        state_[unit.key() + ".fence_damage"] = std::get<0>(profile.max(0)).contiguous();
        state_[unit.key() + ".fence_passed"] = passed;
    }
    return fmt::format("{} of {} axes passed", passed_total, axes_total);
}

namespace {

// A double with 6 significant digits, so atlas.json shows 0.1 rather than the float32 value
// 0.10000000149011612.
double rounded(double value) {
    if (!std::isfinite(value)) {
        return value;
    }
    return std::stod(fmt::format("{:.6g}", value));
}

std::vector<double> rounded(const torch::Tensor& values) {
    torch::Tensor flat = values.to(torch::kFloat64).contiguous().view({-1});
    std::vector<double> out;
    for (int64_t i = 0; i < flat.size(0); ++i) {
        out.push_back(rounded(flat[i].item<double>()));
    }
    return out;
}

// Hooks that replace each projection input x by x - sum_j (1 - s_j)(x . b_j) b_j, the same
// map as the weight surgery W (I - B^T diag(1 - s) B) applied to the input.
Hooks attenuation_hooks(const std::vector<std::pair<std::string, std::pair<torch::Tensor, torch::Tensor>>>& edits) {
    Hooks hooks;
    for (const auto& [hook_name, edit] : edits) {
        const torch::Tensor basis = edit.first;               // [m, in]
        const torch::Tensor removed = 1.0f - edit.second;     // [m]
        hooks.add(hook_name, [basis, removed](const torch::Tensor& x, const std::string&) {
            return x - torch::matmul(torch::matmul(x, basis.t()) * removed, basis);
        });
    }
    return hooks;
}

}  // namespace

std::string Pipeline::stage9_heldout_check() {
    const Atlas atlas = assemble_atlas();
    std::vector<std::pair<std::string, std::pair<torch::Tensor, torch::Tensor>>> selected_edits;
    std::vector<std::pair<std::string, std::pair<torch::Tensor, torch::Tensor>>> random_edits;
    // The random control draws from its own seed so it does not depend on earlier stages'
    // use of the global generator (a resumed run skips them).
    torch::manual_seed(config_.seed * 1000003ull + 9);
    int64_t first_layer = std::numeric_limits<int64_t>::max();
    int64_t directions = 0;
    for (const ProjectionAtlas& p : atlas.projections) {
        const int64_t m = p.basis.size(0);
        if (m == 0) {
            continue;
        }
        const std::string hook_name = projection_input_hook(p.layer, p.projection);
        selected_edits.push_back({hook_name, {p.basis, p.scales}});
        // Orthonormal random rows: Q of the QR decomposition of a Gaussian [in, m] matrix.
        torch::Tensor q = std::get<0>(torch::linalg_qr(torch::randn({p.basis.size(1), m}, torch::kFloat32)));
        random_edits.push_back({hook_name, {q.t().contiguous(), p.scales}});
        first_layer = std::min(first_layer, p.layer);
        directions += (p.scales < 1.0f).sum().item<int64_t>();   // fence-released rows keep scale 1
    }
    if (selected_edits.empty()) {
        return "skipped: the atlas has no directions";
    }
    const Hooks selected_hooks = attenuation_hooks(selected_edits);
    const Hooks random_hooks = attenuation_hooks(random_edits);

    std::vector<std::string> details;
    for (const std::string name : {"corp", "authentic"}) {
        const std::vector<RenderedRow> rows =
            load_rows(name, config_.heldout_max_prompts, config_.max_prompts_per_class);
        if (rows.empty()) {
            details.push_back(fmt::format("{}: no held-out rows past the first {}", name,
                                          config_.max_prompts_per_class));
            continue;
        }
        // Token-weighted means over all held-out rows: sums of CE and target counts per batch.
        double clean = 0.0;
        double ablated = 0.0;
        double random = 0.0;
        int64_t targets = 0;
        const int64_t n_rows = static_cast<int64_t>(rows.size());
        ProgressBar bar("stage 9 held-out " + name, n_rows);
        for (int64_t begin = 0; begin < n_rows; begin += config_.batch_size) {
            const int64_t end = std::min(n_rows, begin + config_.batch_size);
            const ResumableBatch batch(in_.model, make_batch(rows, begin, end, pad_id()), {first_layer});
            const int64_t count = predicting_positions(batch.batch()).sum().item<int64_t>();
            clean += batch.clean_loss() * static_cast<double>(count);
            ablated += batch.loss(first_layer, selected_hooks) * static_cast<double>(count);
            random += batch.loss(first_layer, random_hooks) * static_cast<double>(count);
            targets += count;
            bar.advance(end - begin);
        }
        const double n = static_cast<double>(targets);
        state_["heldout." + name] =
            torch::tensor({clean / n, ablated / n, random / n, static_cast<double>(n_rows)}, torch::kFloat64)
                .to(torch::kFloat32);
        details.push_back(fmt::format("{} CE {:.4f} -> {:.4f} (random {:.4f}) on {} rows", name, clean / n,
                                      ablated / n, random / n, n_rows));
    }
    state_["heldout.directions"] = torch::tensor({static_cast<float>(directions)});
    return fmt::format("{}", fmt::join(details, "; "));
}

nlohmann::json Pipeline::heldout_summary() const {
    auto directions = state_.find("heldout.directions");
    if (directions == state_.end()) {
        return nullptr;
    }
    nlohmann::json summary = {{"attenuated_directions", static_cast<int64_t>(directions->second.item<float>())},
                              {"held_out_from_row", config_.max_prompts_per_class + 1},
                              {"expected", "ablated CE above clean on corp, below clean on authentic"}};
    std::map<std::string, double> change;
    for (const std::string name : {"corp", "authentic"}) {
        auto it = state_.find("heldout." + name);
        if (it == state_.end()) {
            summary[name] = nullptr;
            continue;
        }
        const torch::Tensor v = it->second.to(torch::kFloat64);
        const double clean = v[0].item<double>();
        const double ablated = v[1].item<double>();
        const double random = v[2].item<double>();
        change[name] = ablated - clean;
        summary[name] = {{"rows", static_cast<int64_t>(v[3].item<double>())},
                         {"clean_ce", rounded(clean)},
                         {"ablated_ce", rounded(ablated)},
                         {"random_control_ce", rounded(random)},
                         {"ablated_change", rounded(ablated - clean)},
                         {"random_control_change", rounded(random - clean)}};
    }
    if (change.size() == 2) {
        summary["as_claimed"] = change["corp"] > 0.0 && change["authentic"] < 0.0;
    }
    return summary;
}

// Per analysed layer: the corp-minus-authentic axis of the residual stream leaving the
// layer (last token, stage 1), how well it separates the two classes, and its angle to the
// previous analysed layer's axis. These are mean-difference axes, and they do not feed the
// selection.
nlohmann::json Pipeline::layer_axes() const {
    nlohmann::json layers = nlohmann::json::array();
    torch::Tensor previous_axis;
    torch::Tensor previous_corp;
    int64_t previous_layer = -1;
    const torch::Tensor analysed = state_.at("analysed_layers");
    for (int64_t i = 0; i < analysed.size(0); ++i) {
        const int64_t layer = static_cast<int64_t>(analysed[i].item<float>());
        const std::string key = fmt::format("blocks.{}.resid", layer);
        auto corp_it = state_.find("corp." + key);
        auto authentic_it = state_.find("authentic." + key);
        if (corp_it == state_.end() || authentic_it == state_.end()) {
            continue;
        }
        const torch::Tensor corp = corp_it->second.to(torch::kFloat64);
        const torch::Tensor authentic = authentic_it->second.to(torch::kFloat64);
        torch::Tensor axis = corp.mean(0) - authentic.mean(0);
        const double gap_norm = axis.norm().item<double>();
        if (!(gap_norm > 0.0)) {
            continue;
        }
        axis = axis / gap_norm;
        const torch::Tensor corp_along = torch::matmul(corp, axis);
        const torch::Tensor authentic_along = torch::matmul(authentic, axis);
        const double midpoint = 0.5 * (corp_along.mean().item<double>() + authentic_along.mean().item<double>());
        // Balanced training accuracy of the threshold at the midpoint of the class means.
        const double accuracy = 0.5 * ((corp_along > midpoint).to(torch::kFloat64).mean().item<double>() +
                                       (authentic_along < midpoint).to(torch::kFloat64).mean().item<double>());
        const double pooled_std =
            std::sqrt(0.5 * (corp_along.var().item<double>() + authentic_along.var().item<double>()));
        nlohmann::json entry = {{"layer", layer},
                                {"classifier_accuracy", rounded(accuracy)},
                                {"class_mean_gap", rounded(gap_norm)},
                                {"separation_d_prime", rounded(pooled_std > 0.0 ? gap_norm / pooled_std : 0.0)}};
        // Where the neutral rows fall on the axis: 0 at the authentic mean, 1 at the corp mean.
        auto neutral_it = state_.find("neutral." + key);
        if (neutral_it != state_.end()) {
            const double neutral_mean = torch::matmul(neutral_it->second.to(torch::kFloat64), axis).mean().item<double>();
            const double authentic_mean = authentic_along.mean().item<double>();
            entry["neutral_midpoint"] = rounded(neutral_mean);
            entry["neutral_position"] = rounded((neutral_mean - authentic_mean) / gap_norm);
        }
        if (previous_axis.defined()) {
            const double cosine = std::clamp(torch::dot(axis, previous_axis).item<double>(), -1.0, 1.0);
            entry["angle_to_previous_deg"] = rounded(std::acos(cosine) * 180.0 / M_PI);
            entry["previous_layer"] = previous_layer;
        }
        // Origin trace (reference rule): when the previous layer is analysed too and the corp
        // rows' projections on this axis correlate above 0.9 across the two layers, the
        // direction already existed one layer earlier.
        if (previous_layer == layer - 1 && previous_corp.defined() && corp.size(0) > 1) {
            const torch::Tensor before = torch::matmul(previous_corp, axis);
            const torch::Tensor a = before - before.mean();
            const torch::Tensor b = corp_along - corp_along.mean();
            const double denominator = (a.norm() * b.norm()).item<double>();
            const double correlation = denominator > 0.0 ? (a * b).sum().item<double>() / denominator : 0.0;
            entry["origin_correlation"] = rounded(correlation);
            entry["origin_layer"] = correlation > 0.9 ? layer - 1 : layer;
        }
        layers.push_back(entry);
        previous_axis = axis;
        previous_corp = corp;
        previous_layer = layer;
    }
    return layers;
}

// TODO: of the reference's per-layer axes, layer_axes() computes the mean-difference axis, its
// accuracy, the neutral midpoint and the origin trace between adjacent analysed layers. Not
// computed: the logistic-regression axis, the per-class histograms, and the refusal angle (no
// red-team corpus). None of them feeds the selection.
Atlas Pipeline::assemble_atlas() const {
    Atlas atlas;
    nlohmann::json summaries = nlohmann::json::array();
    auto get = [&](const Unit& unit, const std::string& name) -> torch::Tensor {
        auto it = state_.find(unit.key() + "." + name);
        return it == state_.end() ? torch::Tensor() : it->second;
    };
    for (const Unit& unit : units_) {
        const Svd& svd = svd_.at(unit.key());
        std::vector<int64_t> selected = decode_selection(get(unit, "selected_rank"));
        ProjectionAtlas entry;
        entry.layer = unit.layer;
        entry.projection = unit.projection;
        entry.singular_values = svd.S;
        entry.selected = torch::tensor(selected, torch::kInt64);
        entry.composite = get(unit, "composite");
        for (const char* name : {"atp", "wanda_ratio", "wanda_corp", "dark_variance", "cone", "composite_stage4",
                                 "coherence", "causal"}) {
            torch::Tensor value = get(unit, name);
            if (value.defined()) {
                entry.component_scores[name] = value;
            }
        }
        const int64_t in = svd.Vh.size(1);
        if (get(unit, "das_basis").defined()) {
            entry.basis = get(unit, "das_basis");
            entry.scales = get(unit, "das_scales").clone();
            entry.component_scores["das_explained"] = get(unit, "das_explained");
        } else if (!selected.empty()) {
            entry.basis = svd.Vh.index_select(0, entry.selected);
            entry.scales = torch::full({entry.basis.size(0)}, static_cast<float>(config_.bouncer_scale), torch::kFloat32);
        } else {
            entry.basis = torch::zeros({0, in}, torch::kFloat32);
            entry.scales = torch::zeros({0}, torch::kFloat32);
        }
        entry.lock_basis = entry.basis;
        torch::Tensor passed = get(unit, "fence_passed");
        if (passed.defined()) {
            entry.fence_damage = get(unit, "fence_damage");
            torch::Tensor rejected = passed == 0.0f;
            entry.scales = torch::where(rejected, torch::ones_like(entry.scales), entry.scales);
            if (config_.fence_release_rejected) {
                entry.lock_basis = entry.basis.index_select(0, (~rejected).nonzero().squeeze(1)).contiguous();
            }
        }
        if (entry.basis.size(0) == 0) {
            continue;
        }
        summaries.push_back({{"key", unit.key()},
                             {"rank", svd.S.size(0)},
                             {"selected", selected},
                             {"basis_rows", entry.basis.size(0)},
                             {"lock_rows", entry.lock_basis.size(0)}});
        atlas.projections.push_back(std::move(entry));
    }
    std::vector<int64_t> analysed;
    torch::Tensor analysed_tensor = state_.at("analysed_layers");
    for (int64_t i = 0; i < analysed_tensor.size(0); ++i) {
        analysed.push_back(static_cast<int64_t>(analysed_tensor[i].item<float>()));
    }
    atlas.metadata = {{"format_version", 1},
                      {"model", in_.model_name},
                      {"model_identity", identity_},
                      {"config", config_.to_json()},
                      {"seed", config_.seed},
                      {"corpus_hashes", corpus_hashes_},
                      {"analysed_layers", analysed},
                      {"layer_scores", rounded(state_.at("layer_scores"))},
                      {"layer_axes", layer_axes()},
                      {"projections", summaries}};
    nlohmann::json heldout = heldout_summary();
    if (!heldout.is_null()) {
        atlas.metadata["heldout_check"] = heldout;
    }
    return atlas;
}

// Cache of one stage: "<dir>/stage<N>.safetensors" with the cache key in its metadata.
bool load_stage(const std::string& dir, int stage, const std::string& key, TensorMap& state) {
    const std::string path = fmt::format("{}/stage{}.safetensors", dir, stage);
    if (!std::filesystem::exists(path)) {
        return false;
    }
    std::shared_ptr<safetensors::Checkpoint> file = safetensors::Checkpoint::open(path);
    auto it = file->metadata().find("cache_key");
    if (it == file->metadata().end() || it->second != key) {
        spdlog::info("stage {} cache in {} was made with another model, corpus or config; recomputing", stage, dir);
        return false;
    }
    for (const auto& [name, info] : file->tensors()) {
        state[name] = file->load_float(name);
    }
    return true;
}

void save_stage(const std::string& dir, int stage, const std::string& key, const TensorMap& before,
                const TensorMap& after) {
    TensorMap added;
    for (const auto& [name, tensor] : after) {
        auto it = before.find(name);
        if ((it == before.end() || !it->second.is_same(tensor)) && tensor.numel() > 0) {
            added[name] = tensor.contiguous();
        }
    }
    std::filesystem::create_directories(dir);
    safetensors::write(fmt::format("{}/stage{}.safetensors", dir, stage), added, {{"cache_key", key}});
}

Atlas Pipeline::run(const std::function<void(const StageReport&)>& progress) {
    in_.model.convert_weights(torch::kFloat32);
    torch::manual_seed(config_.seed);
    identity_ = model_identity(in_.model);
    corp_ = load_rows("corp", config_.max_prompts_per_class);
    authentic_ = load_rows("authentic", config_.max_prompts_per_class);
    if (has_neutral_corpus()) {
        corpus_hashes_["neutral"] = file_hash(config_.corpus_dir + "/neutral.jsonl");
    }
    if (config_.fence) {
        for (const std::string& name : config_.fence_corpora) {
            corpus_hashes_[name] = file_hash(config_.corpus_dir + "/" + name + ".jsonl");
        }
    }
    // The corpus folder's path stays out of the key: its files are hashed above, and a path
    // would make the cache depend on where the checkout or the working directory is.
    nlohmann::json keyed_config = config_.to_json();
    keyed_config.erase("corpus_dir");
    Fnv1a64 key_hash;
    key_hash.update(keyed_config.dump());
    key_hash.update(identity_.dump());
    key_hash.update(corpus_hashes_.dump());
    cache_key_ = key_hash.hex();

    struct StageDef {
        int number;
        const char* name;
        bool enabled;
        std::string (Pipeline::*run)();
    };
    const StageDef stages[] = {
        {0, "layer ranking", true, &Pipeline::stage0_rank_layers},
        {1, "activation capture", true, &Pipeline::stage1_capture},
        {2, "SVD", true, nullptr},
        {3, "attribution patching", true, &Pipeline::stage3_attribution},
        {4, "composite score and knee", true, &Pipeline::stage4_score},
        {5, "coherence repass", config_.coherence, &Pipeline::stage5_coherence},
        {6, "causal ablation gate", config_.causal_gate, &Pipeline::stage6_causal_gate},
        {7, "DAS rotation", config_.das, &Pipeline::stage7_das},
        {8, "capability fence", config_.fence, &Pipeline::stage8_fence},
        {9, "held-out check", config_.heldout_check, &Pipeline::stage9_heldout_check},
    };
    nlohmann::json timings = nlohmann::json::array();
    bool cache_valid = true;   // a recomputed stage invalidates every later cached stage
    for (const StageDef& stage : stages) {
        StageReport report;
        report.stage = stage.number;
        report.name = stage.name;
        const auto start = std::chrono::steady_clock::now();
        if (!stage.enabled) {
            report.detail = "disabled in the config";
        } else if (stage.number == 2) {
            // Not cached: the SVDs are deterministic and cheaper to recompute than to store.
            compute_svd();
            report.detail = fmt::format("{} projections", units_.size());
        } else if (cache_valid && load_stage(stage_dir_, stage.number, cache_key_, state_)) {
            report.from_cache = true;
            report.detail = "loaded from cache";
        } else {
            cache_valid = false;
            TensorMap before = state_;
            report.detail = (this->*stage.run)();
            save_stage(stage_dir_, stage.number, cache_key_, before, state_);
        }
        if (stage.number == 0) {
            build_units();
        }
        report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        timings.push_back({{"stage", stage.number}, {"name", stage.name}, {"seconds", report.seconds},
                           {"from_cache", report.from_cache}, {"detail", report.detail}});
        if (progress) {
            progress(report);
        }
    }
    Atlas atlas = assemble_atlas();
    atlas.write(out_dir_);
    write_file_atomically(out_dir_ + "/timings.json", timings.dump(2) + "\n");
    return atlas;
}

}  // namespace

nlohmann::json model_identity(CausalLM& model) {
    const ModelConfig& c = model.config();
    Fnv1a64 hash;
    model.for_each_parameter([&](const std::string& name, torch::Tensor& tensor) {
        torch::Tensor data = tensor.detach().to(torch::kFloat32).contiguous();
        hash.update(name.data(), name.size());
        hash.update(data.data_ptr(), static_cast<size_t>(data.numel()) * sizeof(float));
    });
    return {{"arch", c.arch}, {"n_layer", c.n_layer}, {"n_embd", c.n_embd}, {"n_ff", c.n_ff},
            {"n_vocab", c.n_vocab}, {"weight_hash", hash.hex()}};
}

Atlas locate(const LocateInputs& inputs, const LocateConfig& config, const std::string& out_dir,
             const std::function<void(const StageReport&)>& progress) {
    config.validate("locate config");
    Pipeline pipeline(inputs, config, out_dir);
    return pipeline.run(progress);
}

}  // namespace sz
