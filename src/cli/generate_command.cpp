// `subzero generate MODEL -p PROMPT`: one reply to one prompt, streamed to stdout with timings
// on stderr, or printed as one JSON object with --json.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "generation/generator.h"
#include "model/loader.h"

namespace sz::cli {

namespace {

struct GenerateOptions {
    GenerationFlags flags;
    std::string prompt;
    bool chat = false;  // the default; accepted so that scripts can request it explicitly
    bool raw = false;
    bool json = false;
};

std::vector<int32_t> prompt_tokens(const GenerateOptions& options, const LoadedModel& loaded) {
    if (options.raw) {
        // As llama.cpp's llama-cli: BOS first, and control-token text is parsed as tokens.
        return loaded.tokenizer->encode(options.prompt, true, true);
    }
    std::vector<ChatMessage> messages;
    if (!options.flags.system.empty()) {
        messages.push_back(ChatMessage{"system", options.flags.system});
    }
    messages.push_back(ChatMessage{"user", options.prompt});
    const std::string text = loaded.chat_template->render(messages, true);
    return loaded.tokenizer->encode(text, false, true);
}

bool same_file(int first, int second) {
    struct stat a {};
    struct stat b {};
    return fstat(first, &a) == 0 && fstat(second, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

nlohmann::json sampling_json(const SamplerParams& params) {
    return {{"temp", params.temp},
            {"min_p", params.min_p},
            {"top_p", params.top_p},
            {"top_k", params.top_k},
            {"repeat_penalty", params.repeat_penalty},
            {"repeat_last_n", params.repeat_last_n},
            {"seed", params.seed}};
}

nlohmann::json timings_json(const GenerationTimings& timings) {
    return {{"prompt_tokens", timings.prompt_tokens},
            {"prompt_ms", timings.prompt_ms},
            {"prompt_tokens_per_second", timings.prompt_tokens_per_second()},
            {"generated_tokens", timings.generated_tokens},
            {"generation_ms", timings.generation_ms},
            {"generation_tokens_per_second", timings.generation_tokens_per_second()},
            {"sampling_ms", timings.sampling_ms}};
}

void run_generate(const GenerateOptions& options) {
    if (options.raw && !options.flags.system.empty()) {
        fail("--system needs the chat template, but --raw skips it; put the system text in the prompt or drop --raw");
    }
    options.flags.sampling.validate();
    log_to_stderr();

    LoadedModel loaded = load_model(options.flags.model);
    SamplerParams params = options.flags.sampling;
    params.seed = options.flags.resolve_seed();
    if (params.repeat_last_n < 0) {
        params.repeat_last_n = static_cast<int32_t>(options.flags.ctx_size);
    }
    Sampler sampler(params);
    Generator generator(*loaded.model, *loaded.tokenizer, options.flags.ctx_size);
    const std::vector<int32_t> prompt = prompt_tokens(options, loaded);

    GenerationOptions generation;
    generation.max_new_tokens = options.flags.n_predict;
    generation.cancel = &InterruptHandler::cancel_flag();
    if (!options.json) {
        generation.on_text = [](const std::string& chunk) {
            std::fwrite(chunk.data(), 1, chunk.size(), stdout);
            std::fflush(stdout);
        };
    }

    InterruptHandler interrupt;
    InterruptHandler::set_generating(true);
    GenerationResult result = generator.generate(prompt, sampler, generation);
    InterruptHandler::set_generating(false);

    if (options.json) {
        nlohmann::json output = {{"prompt_tokens", prompt},
                                 {"generated_tokens", result.tokens},
                                 {"text", result.text},
                                 {"stop_reason", stop_reason_name(result.stop_reason)},
                                 {"seed", params.seed},
                                 {"sampling", sampling_json(params)},
                                 {"timings", timings_json(result.timings)}};
        // A reply cut off by -n can end inside a UTF-8 character; such bytes print as U+FFFD.
        std::printf("%s\n", output.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        return;
    }
    // End the line on a terminal so the shell prompt starts on its own; a pipe gets the text as is.
    const bool open_line = result.text.empty() || result.text.back() != '\n';
    if (isatty(STDOUT_FILENO) && open_line) {
        std::fputc('\n', stdout);
    }
    std::fflush(stdout);
    // With both streams in one file (2>&1), start the timings on their own line there instead.
    if (!isatty(STDOUT_FILENO) && open_line && same_file(STDOUT_FILENO, STDERR_FILENO)) {
        std::fputc('\n', stderr);
    }
    print_timings(stderr, result.timings, result.stop_reason, params.seed);
}

}  // namespace

void add_generate_command(CLI::App& app) {
    auto options = std::make_shared<GenerateOptions>();
    CLI::App* command = app.add_subcommand(
        "generate",
        "Generate a reply to one prompt. By default the prompt is sent as a user turn through the "
        "model's chat template (with --system before it); --raw feeds the prompt as plain text after BOS");
    add_generation_flags(command, options->flags);
    command->add_option("-p,--prompt", options->prompt, "Prompt text")->required();
    CLI::Option* chat = command->add_flag("--chat", options->chat,
                                          "Render the prompt as a user turn through the chat template (the default)");
    command->add_flag("--raw", options->raw,
                      "Tokenize the prompt as plain text with BOS, skipping the chat template; control-token "
                      "text such as <start_of_turn> still becomes tokens")
        ->excludes(chat);
    command->add_flag("--json", options->json,
                      "Print one JSON object with prompt_tokens, generated_tokens, text, stop_reason, seed and "
                      "timings instead of streaming the text");
    command->callback([options] { run_generate(*options); });
}

}  // namespace sz::cli
