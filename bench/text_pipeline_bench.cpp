// Microbenchmarks of the per-token text work around the model, on the real Gemma 3 vocabulary
// (262144 pieces): encoding 10 kB of mixed and degenerate text, and one sampler step with the
// recommended settings, with and without top-p.
#include <benchmark/benchmark.h>

#include <random>

#include "core/model_path.h"
#include "formats/gguf.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace {

const sz::Tokenizer& real_tokenizer() {
    static const sz::Tokenizer tokenizer =
        sz::Tokenizer::from_gguf(*sz::gguf::File::open(sz::resolve_model_path("gemma3-270m")));
    return tokenizer;
}

std::string ten_kilobytes(int kind) {
    if (kind == 1) return std::string(10240, 'a');
    if (kind == 2) return std::string(10240, ' ');  // matches user-defined space runs everywhere
    std::string text;
    while (text.size() < 10240) {
        text += "The quick brown fox jumps over the lazy dog. Ünïcödé 中文字符 😀👨‍👩‍👧 "
                "<start_of_turn>user\n    if (x) {\n\t\treturn y;\n    }\n";
    }
    return text;
}

void BM_Encode10kB(benchmark::State& state) {
    const sz::Tokenizer& tokenizer = real_tokenizer();
    std::string text = ten_kilobytes(static_cast<int>(state.range(0)));
    for (auto _ : state) {
        benchmark::DoNotOptimize(tokenizer.encode(text, true, true));
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}

void BM_SampleGemmaVocabulary(benchmark::State& state) {
    const int64_t n_vocab = 262144;
    std::mt19937 rng(13);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::vector<float> logits(n_vocab);
    for (float& logit : logits) logit = normal(rng);
    sz::SamplerParams params;
    params.top_p = state.range(0) == 0 ? 1.0f : 0.95f;
    params.seed = 1;
    sz::Sampler sampler(params);
    sampler.accept(std::vector<int32_t>(256, 17));
    for (auto _ : state) {
        benchmark::DoNotOptimize(sampler.sample(logits.data(), n_vocab));
    }
}

}  // namespace

// Argument: 0 mixed text, 1 one long run of 'a', 2 one long run of spaces.
BENCHMARK(BM_Encode10kB)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
// Argument: 0 recommended defaults (top-p off), 1 top-p 0.95.
BENCHMARK(BM_SampleGemmaVocabulary)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
