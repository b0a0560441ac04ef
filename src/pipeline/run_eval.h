// The eval and report steps of `subzero run`, kept apart from run_pipeline.cpp so that the
// pipeline reads as the four stages and nothing else.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace sz {

// The keys a run config's "eval" object accepts, each with its default (EvalConfig's).
nlohmann::json default_eval_settings();

// Throws sz::Error naming `source` and the key when the run config's "eval" object has an
// unknown key or a wrong type. Called before any stage runs.
void check_eval_settings(const nlohmann::json& settings, const std::string& source);

// Compares `base` and `tuned` (model paths or short names) on the held-out conversations and
// the neutral prompts, writes eval.json and replies.md into `out_dir`, and returns the
// terminal table.
std::string run_eval_stage(const std::string& base, const std::string& tuned, const std::string& heldout,
                           const nlohmann::json& settings, uint64_t seed, const std::string& out_dir);

// The terminal table of an earlier eval, read back from `out_dir`/eval.json.
std::string eval_table_from_dir(const std::string& out_dir);

// Writes <out>/report.html: the stage times of `state` (run_state.json), the eval table, and
// links to the locate and train reports.
void write_run_report(const std::string& out, const nlohmann::json& state);

}  // namespace sz
