// The config of `subzero run`: one JSON file that names the model, the person's conversations
// and the settings of every stage (locate, train, export, eval). configs/wren.json is the
// documented example the README runs.
//
//   {
//     "model": "gemma3-270m",                 GGUF file, Hugging Face folder or short name
//     "data": ["data/persona/train.jsonl"],   conversations to train on (JSONL)
//     "heldout": "data/persona/heldout.jsonl",held-out conversations for eval ("" : none)
//     "out": "runs/wren",                     run folder (the --out flag overrides it)
//     "seed": 0,                              seed of every stage (overrides theirs)
//     "locate": { ... } or "FILE.json",       LocateConfig keys, or a file of them; false: no atlas
//     "train": { ... },                       TrainRunConfig keys
//     "export": { "outtype": "f16", "name": "", "hf": false, "peft": true },
//     "eval": { ... }                         eval settings (src/eval)
//   }
//
// Relative paths are looked up in the working directory, then in the config file's folder,
// then in the subzero checkout, so the shipped configs work from any directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/input_path.h"
#include "locate/locate_config.h"
#include "train/train_run.h"

namespace sz {

struct RunExportSettings {
    std::string outtype = "f16";   // GGUF weight type: f16, bf16 or f32
    std::string name;              // general.name; empty: "<model name> (subzero)"
    bool hf = false;               // also write a Hugging Face folder
    bool peft = true;              // also write the combined PEFT adapter (export/merge.h)
};

struct RunConfig {
    std::string source;            // the config file, for messages
    std::string model;
    std::vector<std::string> data;
    std::string heldout;
    std::string out;
    uint64_t seed = 0;

    bool locate_enabled = true;
    LocateConfig locate;
    TrainRunConfig train;
    RunExportSettings export_settings;
    // The "eval" object as given, file keys resolved; checked by check_eval_settings when read.
    // to_json fills in the defaults.
    nlohmann::json eval = nlohmann::json::object();

    // Reads and validates the file: unknown keys, wrong types and missing files are reported
    // with the file, the key and the value before any work starts.
    static RunConfig from_file(const std::string& path);
    nlohmann::json to_json() const;
};

}  // namespace sz
