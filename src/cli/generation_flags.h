// Flags and helpers shared by `subzero generate` and `subzero chat`: llama.cpp's sampling and
// context flags, timing output, and Ctrl-C handling that stops a reply instead of the process.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "generation/generator.h"
#include "sampling/sampler.h"

namespace sz::cli {

struct GenerationFlags {
    std::string model;
    std::string system;
    SamplerParams sampling;
    int64_t seed = -1;           // -1: random, as llama.cpp's --seed
    int64_t n_predict = 256;     // -n; -1: until end of generation or a full context
    int64_t ctx_size = 8192;     // -c

    // The seed to use: --seed when given, else a random one.
    uint32_t resolve_seed() const;
};

// Adds MODEL, --system, the sampling flags, -n, -c and --seed to `command`, with `flags`
// holding the defaults shown in --help.
void add_generation_flags(CLI::App* command, GenerationFlags& flags);

// Sends spdlog output to stderr, so stdout carries only the generated text or JSON.
void log_to_stderr();

// Writes "prompt: ... / generation: ... / seed: ..." lines to `stream`.
void print_timings(std::FILE* stream, const GenerationTimings& timings, StopReason reason, uint32_t seed);

// While alive, SIGINT sets cancel_flag() when a reply is being generated (see set_generating)
// and exits the process with status 130 otherwise. A second Ctrl-C during the same reply also
// exits, in case the model is stuck in a long prefill. The previous handler is restored on
// destruction.
class InterruptHandler {
public:
    InterruptHandler();
    ~InterruptHandler();
    InterruptHandler(const InterruptHandler&) = delete;
    InterruptHandler& operator=(const InterruptHandler&) = delete;

    // Marks whether a reply is in progress; entering a reply clears the cancellation flag.
    static void set_generating(bool generating);
    static const std::atomic<bool>& cancel_flag();
};

}  // namespace sz::cli
