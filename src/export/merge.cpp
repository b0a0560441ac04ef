#include "export/merge.h"

#include <cmath>
#include <filesystem>
#include <map>

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "formats/safetensors.h"
#include "locate/locate.h"

namespace sz {

namespace {

// Low-rank factors of the change surgery makes to one projection: ΔW_s = b · a.
struct SurgeryFactors {
    torch::Tensor a;   // [m, in] float32
    torch::Tensor b;   // [out, m] float32
};

// Runs the surgery on each affected weight, factors the change and restores the weight.
// ΔW_s has rank at most m = `directions`, so a randomized range finder with a few spare columns
// captures its column space exactly (up to rounding): Q = orth(ΔW Ω), then ΔW = Q (Qᵀ ΔW), and
// an SVD of the small [k, in] matrix Qᵀ ΔW truncates the factors to rank m. A full SVD of every
// [2048, 640] change in float64 took seconds each on 2 cores.
std::map<std::string, SurgeryFactors> surgery_factors(CausalLM& model, const Atlas& atlas) {
    torch::NoGradGuard no_grad;
    SurgeryOptions options;
    options.keep_originals = true;
    SurgeryReport report = apply_surgery(model, atlas, options);
    torch::Generator generator = at::detail::createCPUGenerator(/*seed_val=*/0x5eed);
    std::map<std::string, SurgeryFactors> factors;
    for (const SurgeryRecord& record : report.applied) {
        torch::Tensor updated = model.projection_weight(record.layer, record.projection).to(torch::kFloat64);
        torch::Tensor change = updated - record.original.to(torch::kFloat64);                   // [out, in]
        const int64_t k = std::min<int64_t>({record.directions + 4, change.size(0), change.size(1)});
        torch::Tensor probe = torch::randn({change.size(1), k}, generator, torch::kFloat64);
        torch::Tensor q = std::get<0>(torch::linalg_qr(torch::matmul(change, probe), "reduced"));   // [out, k]
        auto [u, s, vh] = torch::linalg_svd(torch::matmul(q.t(), change), /*full_matrices=*/false);  // [k, in]
        const int64_t m = std::min<int64_t>(record.directions, s.size(0));
        factors[record.key()] = {vh.narrow(0, 0, m).to(torch::kFloat32).contiguous(),
                                 (torch::matmul(q, u.narrow(1, 0, m)) * s.narrow(0, 0, m)).to(torch::kFloat32).contiguous()};
    }
    restore_surgery(model, report);
    return factors;
}

}  // namespace

Tuning read_tuning(LoadedModel& loaded, const TuningInputs& inputs) {
    Tuning tuning;
    if (!inputs.atlas_dir.empty()) {
        if (!std::filesystem::is_directory(inputs.atlas_dir)) {
            fail("atlas folder '{}' not found; pass the --out folder of `subzero locate`", inputs.atlas_dir);
        }
        tuning.atlas = Atlas::read(inputs.atlas_dir);
        try {
            tuning.atlas->check_model(model_identity(*loaded.model));
        } catch (const Error& e) {
            fail("atlas '{}' does not match model '{}': {}", inputs.atlas_dir, loaded.path, e.what());
        }
    }
    if (!inputs.adapter_dir.empty()) {
        if (!std::filesystem::is_regular_file(std::filesystem::path(inputs.adapter_dir) / "adapter_config.json")) {
            fail("adapter folder '{}' has no adapter_config.json; pass the adapter/ folder of a `subzero train` run",
                 inputs.adapter_dir);
        }
        tuning.adapter.emplace(LoraAdapter::load(inputs.adapter_dir, *loaded.model));
    }
    return tuning;
}

void write_combined_peft_adapter(LoadedModel& loaded, const Tuning& tuning, const std::string& dir) {
    if (!tuning.atlas && !tuning.adapter) {
        fail("a PEFT adapter needs an atlas, an adapter, or both");
    }
    CausalLM& model = *loaded.model;
    model.convert_weights(torch::kFloat32);
    std::map<std::string, SurgeryFactors> surgery;
    if (tuning.atlas) {
        surgery = surgery_factors(model, *tuning.atlas);
    }

    // One combined module per projection that either part touches. Without a trained adapter
    // the surgery pairs carry scale 1.
    LoraConfig config = tuning.adapter ? tuning.adapter->config() : LoraConfig{};
    const double scale = tuning.adapter ? tuning.adapter->scale() : 1.0;
    const int64_t n_layer = model.config().n_layer;
    std::map<std::string, torch::Tensor> tensors;
    nlohmann::json rank_pattern = nlohmann::json::object();
    nlohmann::json alpha_pattern = nlohmann::json::object();
    nlohmann::json modules = nlohmann::json::array();
    for (int64_t layer = 0; layer < n_layer; ++layer) {
        for (Projection p : kAllProjections) {
            const LoraPair* pair = tuning.adapter ? tuning.adapter->find(layer, p) : nullptr;
            auto it = surgery.find(projection_key(layer, p));
            if (pair == nullptr && it == surgery.end()) {
                continue;
            }
            std::vector<torch::Tensor> a_parts;
            std::vector<torch::Tensor> b_parts;
            if (pair != nullptr) {
                a_parts.push_back(pair->a.detach());
                b_parts.push_back(pair->b.detach());
            }
            if (it != surgery.end()) {
                a_parts.push_back(it->second.a);
                b_parts.push_back(it->second.b / scale);
            }
            torch::Tensor a = torch::cat(a_parts, 0).contiguous();
            torch::Tensor b = torch::cat(b_parts, 1).contiguous();
            const int64_t rank = a.size(0);
            LoraPair module;
            module.layer = layer;
            module.projection = p;
            const std::string path = module.module_path();
            modules.push_back(path);
            rank_pattern[path] = rank;
            alpha_pattern[path] = config.use_rslora ? scale * std::sqrt(static_cast<double>(rank))
                                                    : scale * static_cast<double>(rank);
            tensors["base_model.model." + path + ".lora_A.weight"] = a;
            tensors["base_model.model." + path + ".lora_B.weight"] = b;
        }
    }

    // PEFT matches each target_modules entry against the end of a module's path, so full
    // paths select exactly these projections.
    nlohmann::json peft = config.to_peft_json();
    peft["target_modules"] = modules;
    peft["layers_to_transform"] = nullptr;
    peft["rank_pattern"] = rank_pattern;
    peft["alpha_pattern"] = alpha_pattern;
    if (!tuning.adapter) {
        peft["r"] = 1;
        peft["lora_alpha"] = 1.0;
        peft["lora_dropout"] = 0.0;
    }
    if (peft.value("base_model_name_or_path", std::string()).empty()) {
        peft["base_model_name_or_path"] = loaded.path;
    }
    std::filesystem::create_directories(dir);
    write_file_atomically((std::filesystem::path(dir) / "adapter_config.json").string(), peft.dump(2) + "\n");
    safetensors::write((std::filesystem::path(dir) / "adapter_model.safetensors").string(), tensors,
                       {{"format", "pt"}});
    spdlog::info("wrote a PEFT adapter for the unmodified base to {} ({} modules, surgery folded into {})", dir,
                 modules.size(), surgery.size());
}

nlohmann::json merge_tuning(LoadedModel& loaded, const Tuning& tuning) {
    CausalLM& model = *loaded.model;
    model.convert_weights(torch::kFloat32);
    nlohmann::json record = nlohmann::json::object();
    if (tuning.atlas) {
        record["surgery"] = apply_surgery(model, *tuning.atlas).to_json();
    }
    if (tuning.adapter) {
        tuning.adapter->merge_into(model);
        record["adapter"] = {{"projections", tuning.adapter->pairs().size()},
                             {"rank", tuning.adapter->config().rank},
                             {"scale", tuning.adapter->scale()}};
    }
    return record;
}

}  // namespace sz
