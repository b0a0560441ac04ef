// Folds a finished training run into the base weights before export: the atlas surgery first,
// then the LoRA adapter's delta on top, the order in which training saw them.
//
// Also writes the same change as one PEFT adapter for the *unmodified* base model, so users of
// transformers + PEFT get the tuned model without subzero. The surgery changes a projection by
// ΔW_s = W_s − W, whose rank is at most the number of attenuated directions m, so it fits in a
// LoRA pair of rank m. Per projection the combined pair is
//   A' = [A; A_s]            [r + m, in]
//   B' = [B, B_s / scale]    [out, r + m]
// with ΔW_s = B_s A_s from a rank-m SVD of ΔW_s, and scale the trained adapter's scale, kept by
// giving each combined module lora_alpha = scale · (r + m) (or scale · √(r + m) with rsLoRA)
// through PEFT's rank_pattern and alpha_pattern.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "locate/atlas.h"
#include "model/loader.h"
#include "train/lora.h"
#include "train/surgery.h"

namespace sz {

// Inputs of a tuned model: an atlas folder and an adapter folder. Either may be empty.
struct TuningInputs {
    std::string atlas_dir;     // atlas of `subzero locate`; empty: no surgery
    std::string adapter_dir;   // PEFT adapter of `subzero train`; empty: no adapter
};

// The parts, read and checked against the model before any weight changes.
struct Tuning {
    std::optional<Atlas> atlas;
    std::optional<LoraAdapter> adapter;
};

// Reads both parts. Throws sz::Error naming the folder when a part is missing or unreadable,
// when the atlas was made for another model, or when the adapter does not fit the model.
Tuning read_tuning(LoadedModel& loaded, const TuningInputs& inputs);

// Writes the combined PEFT adapter described in the file comment into `dir`. Must run on the
// base weights, before merge_tuning. Needs at least one of the two parts.
void write_combined_peft_adapter(LoadedModel& loaded, const Tuning& tuning, const std::string& dir);

// Applies the surgery and merges the adapter into the weights (float32 during the merge).
// Returns a JSON record of what changed, for the export log and the run report.
nlohmann::json merge_tuning(LoadedModel& loaded, const Tuning& tuning);

}  // namespace sz
