// `subzero chat MODEL`: an interactive multi-turn conversation on stdin/stdout.
//
// Each turn re-renders the whole conversation through the chat template, and the Generator
// reuses the KV cache for the tokens it shares with the previous turn, so only the new user
// turn is prefilled. Ctrl-C during a reply stops that reply; Ctrl-C at the prompt exits.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "generation/generator.h"
#include "model/loader.h"

namespace sz::cli {

namespace {

struct ChatOptions {
    GenerationFlags flags;
    bool timings = false;
};

const char* const kHelpText =
    "Type a message and press Enter. End a line with \\ to continue on the next line.\n"
    "  /reset  forget the conversation (keeps --system)\n"
    "  /exit   quit (also Ctrl-D); Ctrl-C stops a reply, or quits at the prompt\n";

// Reads one message; a line ending in a backslash continues on the next line. Returns false
// at end of input.
bool read_message(std::string& message) {
    message.clear();
    std::string line;
    bool continued = false;
    while (true) {
        std::fputs(continued ? ". " : "> ", stdout);
        std::fflush(stdout);
        if (!std::getline(std::cin, line)) {
            return continued;
        }
        if (!line.empty() && line.back() == '\\') {
            message += line.substr(0, line.size() - 1) + "\n";
            continued = true;
            continue;
        }
        message += line;
        return true;
    }
}

class ChatSession {
public:
    ChatSession(const ChatOptions& options, LoadedModel& loaded, uint32_t seed)
        : options_(options), loaded_(loaded), params_(sampler_params(options, seed)), sampler_(params_),
          generator_(*loaded.model, *loaded.tokenizer, options.flags.ctx_size) {
        reset();
    }

    void reset() {
        messages_.clear();
        if (!options_.flags.system.empty()) {
            messages_.push_back(ChatMessage{"system", options_.flags.system});
        }
        generator_.reset();
    }

    // Streams the model's reply to `user_text`. An sz::Error (for example from the model)
    // is printed and the user turn dropped, so the session goes on.
    void reply_to(const std::string& user_text) {
        messages_.push_back(ChatMessage{"user", user_text});
        try {
            generate_reply();
        } catch (const Error& e) {
            InterruptHandler::set_generating(false);
            if (!messages_.empty() && messages_.back().role == "user") {
                messages_.pop_back();
            }
            std::printf("\n[error: %s]\n", e.what());
        }
    }

private:
    void generate_reply() {
        const std::string text = loaded_.chat_template->render(messages_, true);
        const std::vector<int32_t> prompt = loaded_.tokenizer->encode(text, false, true);
        if (static_cast<int64_t>(prompt.size()) >= generator_.context_size()) {
            messages_.pop_back();
            std::printf("[the conversation has %zu tokens but the context size is %lld; type /reset to start "
                        "over, or restart with a larger -c]\n",
                        prompt.size(), static_cast<long long>(generator_.context_size()));
            return;
        }

        GenerationOptions generation;
        generation.max_new_tokens = options_.flags.n_predict;
        generation.cancel = &InterruptHandler::cancel_flag();
        generation.on_text = [](const std::string& chunk) {
            std::fwrite(chunk.data(), 1, chunk.size(), stdout);
            std::fflush(stdout);
        };
        InterruptHandler::set_generating(true);
        GenerationResult result = generator_.generate(prompt, sampler_, generation);
        InterruptHandler::set_generating(false);

        // A stopped or cut-off reply stays in the history, so user and model turns alternate
        // as the template requires.
        messages_.push_back(ChatMessage{"assistant", result.text});
        std::fputc('\n', stdout);
        switch (result.stop_reason) {
            case StopReason::EndOfGeneration:
                break;
            case StopReason::Cancelled:
                std::printf("[reply stopped]\n");
                break;
            case StopReason::Length:
                std::printf("[reply cut off at -n %lld tokens]\n", static_cast<long long>(options_.flags.n_predict));
                break;
            case StopReason::ContextFull:
                std::printf("[the context of %lld tokens is full; type /reset to start over, or restart with a "
                            "larger -c]\n",
                            static_cast<long long>(generator_.context_size()));
                break;
        }
        if (options_.timings) {
            print_timings(stderr, result.timings, result.stop_reason, params_.seed);
        }
    }

    static SamplerParams sampler_params(const ChatOptions& options, uint32_t seed) {
        SamplerParams params = options.flags.sampling;
        params.seed = seed;
        if (params.repeat_last_n < 0) {
            params.repeat_last_n = static_cast<int32_t>(options.flags.ctx_size);
        }
        return params;
    }

    const ChatOptions& options_;
    LoadedModel& loaded_;
    SamplerParams params_;
    Sampler sampler_;
    Generator generator_;
    std::vector<ChatMessage> messages_;
};

void run_chat(const ChatOptions& options) {
    options.flags.sampling.validate();
    log_to_stderr();
    LoadedModel loaded = load_model(options.flags.model);
    const uint32_t seed = options.flags.resolve_seed();
    ChatSession session(options, loaded, seed);

    std::fprintf(stderr, "chat with %s (template %s, context %lld tokens, seed %u)\n",
                 loaded.model->config().name.c_str(), loaded.chat_template->family().c_str(),
                 static_cast<long long>(options.flags.ctx_size), seed);
    std::fputs(kHelpText, stderr);

    InterruptHandler interrupt;
    std::string message;
    while (read_message(message)) {
        if (message == "/exit" || message == "/quit") {
            return;
        }
        if (message == "/reset") {
            session.reset();
            std::printf("[conversation cleared]\n");
            continue;
        }
        if (message == "/help") {
            std::fputs(kHelpText, stdout);
            continue;
        }
        if (message.find_first_not_of(" \t\n") == std::string::npos) {
            continue;
        }
        session.reply_to(message);
    }
    std::fputc('\n', stdout);  // end the prompt line after Ctrl-D
}

}  // namespace

void add_chat_command(CLI::App& app) {
    auto options = std::make_shared<ChatOptions>();
    options->flags.n_predict = -1;
    CLI::App* command = app.add_subcommand(
        "chat",
        "Chat with a model on stdin/stdout. Type /reset to forget the conversation and /exit (or Ctrl-D) "
        "to quit; Ctrl-C stops a reply");
    add_generation_flags(command, options->flags);
    command->add_flag("--timings", options->timings, "Print prompt and generation speed to stderr after each reply");
    command->callback([options] { run_chat(*options); });
}

}  // namespace sz::cli
