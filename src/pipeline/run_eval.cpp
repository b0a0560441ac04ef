#include "pipeline/run_eval.h"

#include "core/error.h"

namespace sz {

// TODO: placeholder until the eval command lands; the run stops after export.
void check_eval_settings(const nlohmann::json& settings, const std::string& source) {}

std::string run_eval_stage(const std::string&, const std::string&, const std::string&, const nlohmann::json&, uint64_t,
                           const std::string&) {
    fail("eval is not built yet");
}

std::string eval_table_from_dir(const std::string&) { return ""; }

void write_run_report(const std::string&, const nlohmann::json&) {}

}  // namespace sz
