// Prefill and decode throughput of subzero's engine on one model file, printed as JSON.
//
//   engine_bench MODEL [--prompt-tokens 512] [--gen-tokens 128] [--threads N] [--repeats 3]
//
// Prefill: one forward over a prompt of --prompt-tokens ids (logits of the last position
// only, as generation needs). Decode: --gen-tokens single-token steps through the KV cache,
// greedy, without stopping at end of turn. The best of --repeats runs is reported, as
// llama-bench does. bench/engine_speed.py runs this next to llama.cpp on the same file.
#include <chrono>
#include <cstdio>
#include <string>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/threading.h"
#include "kernels/linear_decode.h"
#include "model/loader.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
    sz::ensure_passive_openmp(argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: engine_bench MODEL [--prompt-tokens N] [--gen-tokens N] [--threads N] [--repeats N]\n");
        return 2;
    }
    std::string model_path = argv[1];
    int64_t prompt_tokens = 512;
    int64_t gen_tokens = 128;
    int threads = 0;  // one per hardware thread
    int repeats = 3;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        int64_t value = std::stoll(argv[i + 1]);
        if (flag == "--prompt-tokens") prompt_tokens = value;
        else if (flag == "--gen-tokens") gen_tokens = value;
        else if (flag == "--threads") threads = static_cast<int>(value);
        else if (flag == "--repeats") repeats = static_cast<int>(value);
        else {
            std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
            return 2;
        }
    }
    sz::set_thread_count(threads);
    threads = sz::thread_count();
    spdlog::set_level(spdlog::level::warn);
    torch::NoGradGuard no_grad;

    try {
        sz::LoadedModel loaded = sz::load_model(model_path);
        sz::CausalLM& model = *loaded.model;
        // A fixed pseudo-random prompt of ordinary token ids (no control tokens).
        torch::manual_seed(0);
        torch::Tensor prompt = torch::randint(1000, 200000, {1, prompt_tokens}, torch::kInt64);
        prompt[0][0] = 2;  // <bos>

        double best_prefill = 1e30, best_decode = 1e30;
        for (int r = 0; r < repeats; ++r) {
            sz::KvCache cache(model.config(), 1, prompt_tokens + gen_tokens + 1);
            sz::ForwardOptions options;
            options.cache = &cache;
            options.last_position_only = true;

            auto start = std::chrono::steady_clock::now();
            torch::Tensor logits = model.forward(prompt, options);
            best_prefill = std::min(best_prefill, seconds_since(start));

            start = std::chrono::steady_clock::now();
            for (int64_t t = 0; t < gen_tokens; ++t) {
                int64_t next = logits.view({-1}).argmax().item<int64_t>();
                logits = model.forward(torch::tensor({next}).view({1, 1}), options);
            }
            best_decode = std::min(best_decode, seconds_since(start));
        }
        nlohmann::json out = {{"engine", "subzero"},
                              {"model", model_path},
                              {"threads", threads},
                              {"isa", sz::kernels::linear_decode_isa()},
                              {"prompt_tokens", prompt_tokens},
                              {"gen_tokens", gen_tokens},
                              {"prefill_tokens_per_s", prompt_tokens / best_prefill},
                              {"decode_tokens_per_s", gen_tokens / best_decode}};
        std::printf("%s\n", out.dump().c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
