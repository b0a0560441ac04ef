// `subzero locate`: finds the singular directions of a model's MLP projections that carry the
// assistant cadence (corp replies) rather than the authentic voice, and writes them as an atlas.
//
// Stages: 0 layer ranking, 1 activation capture, 2 SVD, 3 attribution patching, 4 Wanda ratio,
// cone alignment, composite score and knee cut, 5 cross-layer coherence, 6 causal ablation
// gate, 7 DAS-style rotation, 8 capability fence, 9 held-out check (clean vs attenuated CE on
// corpus rows the other stages never saw, with a random-direction control; recorded in
// atlas.json as "heldout_check"). Each stage's output is cached under
// "<out>/stages/", so a rerun with the same model, corpora and config resumes after the last
// finished stage.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "locate/atlas.h"
#include "locate/locate_config.h"
#include "model/causal_lm.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace sz {

// Architecture, sizes and a 64-bit hash of every parameter's float32 bytes: what an atlas
// records so that training can reject an atlas made for another model.
nlohmann::json model_identity(CausalLM& model);

struct LocateInputs {
    CausalLM& model;
    const Tokenizer& tokenizer;
    const ChatTemplate& chat_template;
    std::string model_name;   // for the atlas metadata
};

struct StageReport {
    int stage = 0;
    std::string name;
    double seconds = 0.0;
    bool from_cache = false;
    std::string detail;
};

// Runs every stage, writes "<out_dir>/atlas.safetensors", "<out_dir>/atlas.json" and the stage
// timings in "<out_dir>/timings.json", and returns the atlas. Converts the model's weights to
// float32 first. `progress` (optional) is called after each stage.
Atlas locate(const LocateInputs& inputs, const LocateConfig& config, const std::string& out_dir,
             const std::function<void(const StageReport&)>& progress = {});

}  // namespace sz
