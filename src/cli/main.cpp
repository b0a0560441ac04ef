// subzero: the command-line entry point. Parses flags, dispatches to a subcommand, and turns
// sz::Error into a one-line message and exit code 1 (CLI11 sets its own codes for bad usage).
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/threading.h"

int main(int argc, char** argv) {
    sz::ensure_passive_openmp(argv);
    sz::keep_freed_memory_in_process();
    sz::set_thread_count(0);
    CLI::App app{"subzero: find and remove the assistant cadence of a chat model, then teach it one person's voice"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "subzero 0.1.0");
    // Global options may also follow the subcommand, as in `subzero chat MODEL -t 2`.
    app.fallthrough();
    app.add_option("-t,--threads", "CPU threads for tensor operations (default: one per hardware thread)")
        ->each([](const std::string& value) { sz::set_thread_count(std::stoi(value)); })
        ->check(CLI::Range(1, 1024));

    sz::cli::add_tokenize_command(app);
    sz::cli::add_generate_command(app);
    sz::cli::add_chat_command(app);
    sz::cli::add_inspect_command(app);
    sz::cli::add_locate_command(app);
    sz::cli::add_export_command(app);
    sz::cli::add_train_command(app);
    sz::cli::add_run_command(app);
    sz::cli::add_report_command(app);
    sz::cli::add_eval_command(app);

    // CLI11 reports a mistyped command only as "A subcommand is required", without the word.
    if (argc > 1 && argv[1][0] != '-') {
        std::vector<std::string> names;
        for (const CLI::App* command : app.get_subcommands([](CLI::App*) { return true; })) {
            names.push_back(command->get_name());
        }
        if (std::find(names.begin(), names.end(), argv[1]) == names.end()) {
            std::fprintf(stderr, "error: unknown command '%s'; the commands are %s (see `subzero --help`)\n", argv[1],
                         fmt::format("{}", fmt::join(names, ", ")).c_str());
            return 2;
        }
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const sz::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "internal error: %s\n", e.what());
        return 3;
    }
    return 0;
}
