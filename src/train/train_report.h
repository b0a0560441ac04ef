// HTML report of a `subzero train` output folder, computed from its files alone: metrics.jsonl
// (step and held-out lines), config.json and lock.json when present.
#pragma once

#include <string>

namespace sz {

// Writes a self-contained HTML page with the training and held-out loss, learning rate,
// scheduler mode, gradient norm, throughput and lock leak charts, and the mode changes with
// their causes. Throws sz::Error when train_dir has no metrics.jsonl or config.json is not a
// JSON object. Lines of metrics.jsonl that are not JSON objects (a line torn by a killed run)
// are skipped and counted in the report.
void write_train_report(const std::string& train_dir, const std::string& html_path);

}  // namespace sz
