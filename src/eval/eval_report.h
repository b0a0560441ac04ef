// Output of `subzero eval`: eval.json, replies.md and the terminal table.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "eval/eval_run.h"

namespace sz {

// Description of the positions the KL divergence averages over, as written in eval.json.
extern const char* const kKlPositionsDescription;

nlohmann::json report_json(const EvalReport& report);
// Side-by-side replies per prompt, in markdown.
std::string replies_markdown(const EvalReport& report);
// The metric | base | tuned | change table, for the terminal.
std::string metrics_table(const EvalReport& report);

// Writes eval.json and replies.md into report.config.out_dir, each atomically.
void write_eval_outputs(const EvalReport& report);

}  // namespace sz
