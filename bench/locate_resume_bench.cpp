// Benchmark: one ablated loss evaluation of the locate causal gate on the real Gemma 3 270M,
// as a full forward pass against a pass resumed at the ablated layer from the stored residual
// (locate/resumable_batch.h). Batch: the first 4 corp rows, as stage 6 scores them with the
// default config. Arguments: the ablated layer (gate_proj input).
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <torch/torch.h>

#include "core/model_path.h"
#include "locate/corpus.h"
#include "locate/resumable_batch.h"
#include "model/loader.h"

namespace {

struct Fixture {
    sz::LoadedModel loaded;
    sz::TokenBatch batch;
    std::set<int64_t> layers;
    std::unique_ptr<sz::ResumableBatch> resumable;

    Fixture() : loaded(sz::load_model(sz::resolve_model_path("gemma3-270m"))) {
        loaded.model->convert_weights(torch::kFloat32);
        const char* source = std::getenv("SUBZERO_SOURCE_DIR");
        const std::string corpus = std::string(source != nullptr ? source : ".") + "/data/corpora/corp.jsonl";
        std::vector<sz::RenderedRow> rows;
        for (const auto& messages : sz::read_corpus(corpus, 4)) {
            rows.push_back(sz::render_row(messages, *loaded.chat_template, *loaded.tokenizer, 256));
        }
        batch = sz::make_batch(rows, 0, static_cast<int64_t>(rows.size()), loaded.tokenizer->vocab().pad_id);
        for (int64_t layer = 0; layer < loaded.model->config().n_layer; ++layer) {
            layers.insert(layer);
        }
        resumable = std::make_unique<sz::ResumableBatch>(*loaded.model, batch, layers);
    }
};

Fixture& fixture() {
    static Fixture instance;
    return instance;
}

sz::Hooks ablation(int64_t layer, int64_t width) {
    torch::manual_seed(1);
    torch::Tensor direction = torch::randn({width});
    direction = direction / direction.norm();
    sz::Hooks hooks;
    hooks.add(sz::projection_input_hook(layer, sz::Projection::Gate),
              [direction](const torch::Tensor& x, const std::string&) {
                  return x - torch::matmul(x, direction).unsqueeze(-1) * direction;
              });
    return hooks;
}

void BM_AblatedLossFullPass(benchmark::State& state) {
    Fixture& f = fixture();
    const sz::Hooks hooks = ablation(state.range(0), f.loaded.model->config().n_embd);
    torch::NoGradGuard no_grad;
    for (auto _ : state) {
        sz::ForwardOptions options;
        options.hooks = &hooks;
        benchmark::DoNotOptimize(sz::target_loss(*f.loaded.model, f.batch, options).sum.item<double>());
    }
}

void BM_AblatedLossResumed(benchmark::State& state) {
    Fixture& f = fixture();
    const sz::Hooks hooks = ablation(state.range(0), f.loaded.model->config().n_embd);
    for (auto _ : state) {
        benchmark::DoNotOptimize(f.resumable->loss(state.range(0), hooks));
    }
}

}  // namespace

BENCHMARK(BM_AblatedLossFullPass)->Arg(4)->Arg(9)->Arg(13)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_AblatedLossResumed)->Arg(4)->Arg(9)->Arg(13)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_MAIN();
