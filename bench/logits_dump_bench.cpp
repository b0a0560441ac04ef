// Writes subzero's float32 logits for one token sequence, so that bench/hf_export_check.py can
// compare them with transformers' logits for the Hugging Face folder that `subzero export`
// writes. The weights are converted to float32 first, as `subzero train` does.
//
//   build/logits_dump_bench MODEL IDS OUT.f32
//
// IDS: comma-separated token ids. OUT.f32: raw little-endian float32, row-major [len(IDS), V].
#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/atomic_file.h"
#include "model/loader.h"

namespace {

std::vector<int64_t> parse_ids(const std::string& text) {
    std::vector<int64_t> ids;
    std::stringstream stream(text);
    std::string item;
    while (std::getline(stream, item, ',')) {
        ids.push_back(std::stoll(item));
    }
    return ids;
}

void write_logits(const std::string& model_name, const std::string& ids_text, const std::string& out_path) {
    const std::vector<int64_t> ids = parse_ids(ids_text);
    sz::LoadedModel loaded = sz::load_model(model_name);
    loaded.model->convert_weights(torch::kFloat32);
    torch::NoGradGuard no_grad;
    const torch::Tensor tokens = torch::tensor(ids, torch::kInt64).unsqueeze(0);
    const torch::Tensor logits = loaded.model->forward(tokens, sz::ForwardOptions{}).squeeze(0).contiguous();
    const auto* bytes = reinterpret_cast<const char*>(logits.data_ptr<float>());
    sz::write_file_atomically(out_path, std::string(bytes, bytes + logits.numel() * sizeof(float)));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s MODEL IDS OUT.f32\n", argv[0]);
        return 2;
    }
    try {
        write_logits(argv[1], argv[2], argv[3]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
