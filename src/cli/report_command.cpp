// `subzero report DIR [--out FILE]`: regenerates the HTML report of a `subzero locate` output
// folder (atlas.json) or a `subzero train` output folder (metrics.jsonl) from its files alone.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "locate/atlas.h"
#include "locate/locate_report.h"
#include "train/train_report.h"

namespace sz::cli {

namespace {

namespace fs = std::filesystem;

struct ReportCommandOptions {
    std::string dir;
    std::string out;
};

void run_report(const ReportCommandOptions& command) {
    const fs::path dir(command.dir);
    const std::string out = command.out.empty() ? (dir / "report.html").string() : command.out;
    log_to_stderr();
    if (fs::exists(dir / "atlas.json")) {
        const Atlas atlas = Atlas::read(command.dir);
        const nlohmann::json timings = read_locate_timings(command.dir);
        std::fputs(locate_summary(atlas, timings).c_str(), stdout);
        write_locate_report(atlas, timings, out);
    } else if (fs::exists(dir / "metrics.jsonl")) {
        write_train_report(command.dir, out);
    } else {
        fail("'{}' contains neither atlas.json nor metrics.jsonl; pass the output folder of `subzero locate` or "
             "`subzero train`",
             command.dir);
    }
    std::printf("report written to %s\n", out.c_str());
}

}  // namespace

void add_report_command(CLI::App& app) {
    auto options = std::make_shared<ReportCommandOptions>();
    CLI::App* command = app.add_subcommand(
        "report",
        "Write the HTML report of a locate output folder (atlas.json, atlas.safetensors, timings.json) or a train "
        "output folder (metrics.jsonl, config.json, lock.json); a locate folder's summary is also printed");
    command->add_option("DIR", options->dir, "Output folder of `subzero locate` or `subzero train`")
        ->required()
        ->check(CLI::ExistingDirectory);
    command->add_option("-o,--out", options->out, "HTML file to write (default: DIR/report.html)");
    command->callback([options] { run_report(*options); });
}

}  // namespace sz::cli
