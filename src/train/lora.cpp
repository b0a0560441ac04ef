#include "train/lora.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "formats/safetensors.h"

namespace sz {

namespace {

constexpr size_t kProjectionCount = kAllProjections.size();

const char* peft_module(Projection p) {
    return std::string(projection_module(p)) == "attn" ? "self_attn" : "mlp";
}

size_t projection_index(Projection p) {
    return static_cast<size_t>(std::find(kAllProjections.begin(), kAllProjections.end(), p) - kAllProjections.begin());
}

// The targets in kAllProjections order, so the parameter order does not depend on how the
// user listed them.
std::vector<Projection> ordered_targets(const std::vector<Projection>& targets) {
    std::vector<Projection> ordered;
    for (Projection p : kAllProjections) {
        if (std::find(targets.begin(), targets.end(), p) != targets.end()) {
            ordered.push_back(p);
        }
    }
    return ordered;
}

template <typename T>
T required_field(const nlohmann::json& config, const char* key, const std::string& source) {
    if (!config.contains(key) || config[key].is_null()) {
        fail("{}: missing field '{}'", source, key);
    }
    try {
        return config[key].get<T>();
    } catch (const nlohmann::json::exception& e) {
        fail("{}: field '{}' has the wrong type: {}", source, key, e.what());
    }
}

}  // namespace

double LoraConfig::scale() const {
    return use_rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

void LoraConfig::validate() const {
    if (rank < 1) {
        fail("LoRA rank must be at least 1, got {}", rank);
    }
    if (!std::isfinite(alpha) || alpha < 0.0) {
        fail("LoRA alpha must be finite and non-negative, got {}", alpha);
    }
    if (!(dropout >= 0.0 && dropout < 1.0)) {
        fail("LoRA dropout must lie in [0, 1), got {}", dropout);
    }
    if (targets.empty()) {
        fail("LoRA needs at least one target projection (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
    }
    std::set<Projection> seen;
    for (Projection p : targets) {
        if (!seen.insert(p).second) {
            fail("LoRA target '{}' is listed twice", projection_name(p));
        }
    }
}

nlohmann::json LoraConfig::to_peft_json() const {
    nlohmann::json modules = nlohmann::json::array();
    for (Projection p : ordered_targets(targets)) {
        modules.push_back(projection_name(p));
    }
    nlohmann::json layers_json = layers.empty() ? nlohmann::json(nullptr) : nlohmann::json(layers);
    return {
        {"peft_type", "LORA"},
        {"task_type", "CAUSAL_LM"},
        {"base_model_name_or_path", base_model_name_or_path},
        {"r", rank},
        {"lora_alpha", alpha},
        {"lora_dropout", dropout},
        {"use_rslora", use_rslora},
        {"target_modules", modules},
        {"layers_to_transform", layers_json},
        {"bias", "none"},
        {"fan_in_fan_out", false},
        {"init_lora_weights", true},
        {"inference_mode", true},
    };
}

LoraConfig LoraConfig::from_peft_json(const nlohmann::json& config, const std::string& source) {
    if (!config.is_object()) {
        fail("{}: expected a JSON object", source);
    }
    std::string peft_type = config.value("peft_type", std::string("LORA"));
    if (peft_type != "LORA") {
        fail("{}: peft_type is '{}', but only LORA adapters are supported", source, peft_type);
    }
    LoraConfig result;
    result.rank = required_field<int64_t>(config, "r", source);
    result.alpha = required_field<double>(config, "lora_alpha", source);
    result.dropout = config.contains("lora_dropout") ? required_field<double>(config, "lora_dropout", source) : 0.0;
    result.use_rslora = config.contains("use_rslora") ? required_field<bool>(config, "use_rslora", source) : false;
    result.base_model_name_or_path = config.value("base_model_name_or_path", std::string());
    if (config.contains("base_model_name_or_path") && config["base_model_name_or_path"].is_null()) {
        result.base_model_name_or_path.clear();
    }

    result.targets.clear();
    if (config.contains("rank_pattern") && config["rank_pattern"].is_object() && !config["rank_pattern"].empty()) {
        fail("{}: the adapter sets per-module ranks (rank_pattern), which subzero's LoRA loader does not read. An "
             "adapter written by `export --peft-out` is for PEFT on the unmodified base; in subzero use the "
             "`subzero train` run's adapter/ folder together with its --atlas",
             source);
    }
    for (const std::string& name : required_field<std::vector<std::string>>(config, "target_modules", source)) {
        try {
            result.targets.push_back(parse_projection(name));
        } catch (const Error& e) {
            fail("{}: target_modules: {}", source, e.what());
        }
    }
    if (config.contains("layers_to_transform") && !config["layers_to_transform"].is_null()) {
        const nlohmann::json& layers = config["layers_to_transform"];
        if (layers.is_number_integer()) {
            result.layers = {layers.get<int64_t>()};
        } else {
            result.layers = required_field<std::vector<int64_t>>(config, "layers_to_transform", source);
        }
    }
    try {
        result.validate();
    } catch (const Error& e) {
        fail("{}: {}", source, e.what());
    }
    return result;
}

std::string LoraPair::module_path() const {
    return fmt::format("model.layers.{}.{}.{}", layer, peft_module(projection), projection_name(projection));
}

torch::Tensor LoraPair::delta_weight(double scale) const {
    torch::NoGradGuard no_grad;
    return torch::matmul(b, a) * scale;
}

std::string peft_tensor_name(int64_t layer, Projection projection, bool is_a) {
    return fmt::format("base_model.model.model.layers.{}.{}.{}.{}.weight", layer, peft_module(projection),
                       projection_name(projection), is_a ? "lora_A" : "lora_B");
}

LoraAdapter::LoraAdapter(LoraConfig config, int64_t n_layer)
    : config_(std::move(config)),
      n_layer_(n_layer),
      index_(static_cast<size_t>(n_layer) * kProjectionCount, -1),
      dropout_generator_(at::make_generator<at::CPUGeneratorImpl>(config_.seed)) {
    config_.validate();
    scale_ = config_.scale();
    for (int64_t layer : config_.layers) {
        if (layer < 0 || layer >= n_layer) {
            fail("LoRA layer {} is out of range: the model has {} layers", layer, n_layer);
        }
    }
}

LoraAdapter::LoraAdapter(CausalLM& model, LoraConfig config) : LoraAdapter(std::move(config), model.config().n_layer) {
    torch::Generator init_generator = at::make_generator<at::CPUGeneratorImpl>(config_.seed);
    std::vector<Projection> targets = ordered_targets(config_.targets);
    for (int64_t layer = 0; layer < n_layer_; ++layer) {
        if (!config_.layers.empty() &&
            std::find(config_.layers.begin(), config_.layers.end(), layer) == config_.layers.end()) {
            continue;
        }
        for (Projection p : targets) {
            const torch::Tensor& weight = model.projection_weight(layer, p);
            const int64_t out = weight.size(0);
            const int64_t in = weight.size(1);
            // Kaiming-uniform with a = √5: bound = √(6 / ((1 + a²) · fan_in)) = 1 / √in.
            const double bound = 1.0 / std::sqrt(static_cast<double>(in));
            LoraPair pair;
            pair.layer = layer;
            pair.projection = p;
            pair.a = ((torch::rand({config_.rank, in}, init_generator, torch::kFloat32) * 2.0 - 1.0) * bound)
                         .set_requires_grad(true);
            pair.b = torch::zeros({out, config_.rank}, torch::kFloat32).set_requires_grad(true);
            index_[static_cast<size_t>(layer) * kProjectionCount + projection_index(p)] = static_cast<int>(pairs_.size());
            pairs_.push_back(std::move(pair));
        }
    }
}

LoraAdapter LoraAdapter::load(const std::string& dir, CausalLM& model) {
    const std::string config_path = (std::filesystem::path(dir) / "adapter_config.json").string();
    const std::string weights_path = (std::filesystem::path(dir) / "adapter_model.safetensors").string();
    std::ifstream config_file(config_path);
    if (!config_file) {
        fail("cannot open '{}': not found or not readable; a PEFT adapter folder holds adapter_config.json "
             "and adapter_model.safetensors",
             config_path);
    }
    nlohmann::json config_json;
    try {
        config_json = nlohmann::json::parse(config_file);
    } catch (const nlohmann::json::parse_error& e) {
        fail("'{}' is not valid JSON: {}", config_path, e.what());
    }
    LoraAdapter adapter(model, LoraConfig::from_peft_json(config_json, config_path));

    auto checkpoint = safetensors::Checkpoint::open(weights_path);
    std::map<std::string, torch::Tensor> values;
    for (const auto& [name, info] : checkpoint->tensors()) {
        values[name] = checkpoint->load_float(name);
    }
    adapter.load_parameters(values, weights_path);
    return adapter;
}

void LoraAdapter::save(const std::string& dir) const {
    std::filesystem::create_directories(dir);
    write_file_atomically((std::filesystem::path(dir) / "adapter_config.json").string(),
                          config_.to_peft_json().dump(2) + "\n");
    safetensors::write((std::filesystem::path(dir) / "adapter_model.safetensors").string(), named_parameters(),
                       {{"format", "pt"}});
}

torch::Tensor LoraAdapter::delta(int64_t il, Projection p, const torch::Tensor& x) const {
    if (il < 0 || il >= n_layer_) {
        return {};
    }
    const int position = index_[static_cast<size_t>(il) * kProjectionCount + projection_index(p)];
    if (position < 0) {
        return {};
    }
    const LoraPair& pair = pairs_[static_cast<size_t>(position)];
    torch::Tensor input = x;
    if (training_ && config_.dropout > 0.0) {
        const double keep = 1.0 - config_.dropout;
        torch::Tensor mask = torch::empty_like(x).bernoulli_(keep, dropout_generator_);
        input = x * mask / keep;
    }
    return torch::matmul(torch::matmul(input, pair.a.t()), pair.b.t()) * scale_;
}

void LoraAdapter::reseed_dropout(uint64_t seed) { dropout_generator_.set_current_seed(seed); }

std::vector<torch::Tensor> LoraAdapter::parameters() const {
    std::vector<torch::Tensor> params;
    params.reserve(pairs_.size() * 2);
    for (const LoraPair& pair : pairs_) {
        params.push_back(pair.a);
        params.push_back(pair.b);
    }
    return params;
}

std::map<std::string, torch::Tensor> LoraAdapter::named_parameters() const {
    std::map<std::string, torch::Tensor> named;
    for (const LoraPair& pair : pairs_) {
        named[peft_tensor_name(pair.layer, pair.projection, true)] = pair.a;
        named[peft_tensor_name(pair.layer, pair.projection, false)] = pair.b;
    }
    return named;
}

void LoraAdapter::load_parameters(const std::map<std::string, torch::Tensor>& values, const std::string& source) {
    std::set<std::string> expected;
    for (const LoraPair& pair : pairs_) {
        expected.insert(peft_tensor_name(pair.layer, pair.projection, true));
        expected.insert(peft_tensor_name(pair.layer, pair.projection, false));
    }
    for (const auto& [name, value] : values) {
        if (expected.count(name) == 0) {
            fail("{}: tensor '{}' does not belong to any adapted projection of this config", source, name);
        }
    }

    torch::NoGradGuard no_grad;
    for (LoraPair& pair : pairs_) {
        for (bool is_a : {true, false}) {
            const std::string name = peft_tensor_name(pair.layer, pair.projection, is_a);
            auto found = values.find(name);
            if (found == values.end()) {
                fail("{}: missing tensor '{}'", source, name);
            }
            torch::Tensor& target = is_a ? pair.a : pair.b;
            if (found->second.sizes() != target.sizes()) {
                fail("{}: tensor '{}' has shape [{}], expected [{}]", source, name, fmt::join(found->second.sizes(), ", "),
                     fmt::join(target.sizes(), ", "));
            }
            target.copy_(found->second);
        }
    }
}

void LoraAdapter::merge_into(CausalLM& model) const {
    torch::NoGradGuard no_grad;
    for (const LoraPair& pair : pairs_) {
        torch::Tensor& weight = model.projection_weight(pair.layer, pair.projection);
        torch::Tensor merged = weight.to(torch::kFloat32) + pair.delta_weight(scale_);
        weight.copy_(merged.to(weight.scalar_type()));
    }
}

const LoraPair* LoraAdapter::find(int64_t layer, Projection projection) const {
    if (layer < 0 || layer >= n_layer_) {
        return nullptr;
    }
    const int position = index_[static_cast<size_t>(layer) * kProjectionCount + projection_index(projection)];
    return position < 0 ? nullptr : &pairs_[static_cast<size_t>(position)];
}

LoraPair* LoraAdapter::find(int64_t layer, Projection projection) {
    return const_cast<LoraPair*>(static_cast<const LoraAdapter*>(this)->find(layer, projection));
}

}  // namespace sz
