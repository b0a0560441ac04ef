#include "cli/generation_flags.h"

#include <csignal>
#include <unistd.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/error.h"

namespace sz::cli {

namespace {

static_assert(std::atomic<bool>::is_always_lock_free, "the SIGINT handler needs a lock-free flag");

std::atomic<bool> g_cancel{false};
std::atomic<bool> g_generating{false};
struct sigaction g_previous_action;

void handle_sigint(int) {
    // Only async-signal-safe calls here: atomics, write and _exit.
    if (g_generating.load() && !g_cancel.load()) {
        g_cancel.store(true);
        return;
    }
    const char newline = '\n';
    ssize_t ignored = write(STDOUT_FILENO, &newline, 1);
    (void)ignored;
    _exit(130);
}

}  // namespace

uint32_t GenerationFlags::resolve_seed() const {
    if (seed < 0) {
        return random_seed();
    }
    return static_cast<uint32_t>(seed);
}

void add_generation_flags(CLI::App* command, GenerationFlags& flags) {
    command->add_option("MODEL", flags.model,
                        "GGUF file, Hugging Face model folder, or installed model name (gemma3-270m)")
        ->required();
    command->add_option("--system,--system-prompt", flags.system, "System message placed before the first user turn");
    command->add_option("-n,--n-predict,--predict", flags.n_predict,
                        "Maximum number of tokens per reply; -1 = until the model ends its turn or the context is full")
        ->capture_default_str()
        ->check(CLI::Range(int64_t{-1}, int64_t{1} << 30));
    command->add_option("-c,--ctx-size", flags.ctx_size, "Context size in tokens: prompt plus reply (plus history in chat)")
        ->capture_default_str()
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
    command->add_option("-s,--seed", flags.seed, "Random seed; -1 = a random seed, printed so the run can be repeated")
        ->capture_default_str()
        ->check(CLI::Range(int64_t{-1}, int64_t{UINT32_MAX}));

    SamplerParams& s = flags.sampling;
    command->add_option("--temp", s.temp, "Temperature; <= 0 picks the most likely token (greedy)")->capture_default_str();
    command->add_option("--min-p", s.min_p, "Min-p: drop tokens below this fraction of the top token's probability; 0 = off")
        ->capture_default_str();
    command->add_option("--top-p", s.top_p, "Top-p (nucleus): keep the most likely tokens up to this total probability; 1 = off")
        ->capture_default_str();
    command->add_option("--top-k", s.top_k, "Top-k: keep only the k most likely tokens; 0 = off")->capture_default_str();
    command->add_option("--repeat-penalty", s.repeat_penalty,
                        "Divide positive logits (multiply negative ones) of recent tokens by this; 1 = off")
        ->capture_default_str();
    command->add_option("--repeat-last-n", s.repeat_last_n,
                        "How many recent tokens, prompt included, the repeat penalty covers; 0 = off, -1 = the whole context")
        ->capture_default_str();
}

void log_to_stderr() {
    static bool done = false;
    if (done) {
        return;
    }
    auto logger = spdlog::stderr_color_mt("subzero");
    logger->set_level(spdlog::default_logger()->level());
    spdlog::set_default_logger(logger);
    done = true;
}

void print_timings(std::FILE* stream, const GenerationTimings& timings, StopReason reason, uint32_t seed) {
    std::fprintf(stream, "prompt: %lld tokens in %.1f ms (%.1f tokens/s), %lld reused from the cache\n",
                 static_cast<long long>(timings.prompt_tokens), timings.prompt_ms, timings.prompt_tokens_per_second(),
                 static_cast<long long>(timings.reused_tokens));
    std::fprintf(stream, "generation: %lld tokens in %.1f ms (%.1f tokens/s, %.1f ms sampling), stop: %s\n",
                 static_cast<long long>(timings.generated_tokens), timings.generation_ms,
                 timings.generation_tokens_per_second(), timings.sampling_ms, stop_reason_name(reason));
    std::fprintf(stream, "seed: %u\n", seed);
}

InterruptHandler::InterruptHandler() {
    g_cancel.store(false);
    g_generating.store(false);
    struct sigaction action {};
    action.sa_handler = handle_sigint;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, &g_previous_action);
}

InterruptHandler::~InterruptHandler() {
    sigaction(SIGINT, &g_previous_action, nullptr);
}

void InterruptHandler::set_generating(bool generating) {
    if (generating) {
        g_cancel.store(false);
    }
    g_generating.store(generating);
}

const std::atomic<bool>& InterruptHandler::cancel_flag() {
    return g_cancel;
}

}  // namespace sz::cli
