// Every subcommand registers itself on the root CLI11 app through one of these functions;
// main() only calls them, parses, and maps exceptions to exit codes.
#pragma once

#include <CLI/CLI.hpp>

namespace sz::cli {

void add_tokenize_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_locate_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_eval_command(CLI::App& app);

}  // namespace sz::cli
