// Reports of a `subzero locate` run, computed from the atlas folder alone (atlas.json,
// atlas.safetensors and timings.json): a plain-text summary for the terminal and a
// self-contained HTML page with charts.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "locate/atlas.h"

namespace sz {

// Reads "<dir>/timings.json", the array of {stage, name, seconds, from_cache, detail} that
// locate writes. Returns an empty array when the file is missing; throws sz::Error naming the
// file when it is not such an array.
nlohmann::json read_locate_timings(const std::string& dir);

// Terminal summary: selected directions per layer and projection, the top directions by
// composite score, and the stage timings.
std::string locate_summary(const Atlas& atlas, const nlohmann::json& timings);

// Writes the HTML report: selected-direction heat map, sorted composite curves with the knee,
// coherence, causal scores, DAS explained variance and kept scales, fence damage against the
// threshold of the atlas config, layer ranking and stage timings.
void write_locate_report(const Atlas& atlas, const nlohmann::json& timings, const std::string& html_path);

}  // namespace sz
