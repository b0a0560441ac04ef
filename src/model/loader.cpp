#include "model/loader.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/model_path.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/gemma3.h"

namespace fs = std::filesystem;

namespace sz {

namespace {

// One row per supported family. Adding a family (Llama, Qwen2/3, Gemma 3n) means a new model
// file and a row here; `hf_model_types` are the config.json "model_type" values it accepts.
struct Family {
    const char* gguf_arch;
    std::vector<std::string> hf_model_types;
    std::unique_ptr<CausalLM> (*from_gguf)(const gguf::File&);
    std::unique_ptr<CausalLM> (*from_hf)(const std::string&, const nlohmann::json&, const safetensors::Checkpoint&);
};

const std::vector<Family>& families() {
    static const std::vector<Family> table = {
        {"gemma3", {"gemma3_text", "gemma3"},
         [](const gguf::File& f) -> std::unique_ptr<CausalLM> { return load_gemma3_gguf(f); },
         [](const std::string& d, const nlohmann::json& j, const safetensors::Checkpoint& c) -> std::unique_ptr<CausalLM> {
             return load_gemma3_hf(d, j, c);
         }},
    };
    return table;
}

std::string supported_list() {
    std::string list;
    for (const Family& family : families()) {
        list += std::string(list.empty() ? "" : ", ") + family.gguf_arch;
    }
    return list;
}

LoadedModel load_gguf(const std::string& path) {
    auto file = gguf::File::open(path);
    std::string arch = file->get_string("general.architecture");
    for (const Family& family : families()) {
        if (arch == family.gguf_arch) {
            LoadedModel loaded;
            loaded.path = path;
            loaded.format = "gguf";
            loaded.model = family.from_gguf(*file);
            loaded.tokenizer = std::make_shared<Tokenizer>(Tokenizer::from_gguf(*file));
            loaded.chat_template = std::make_shared<ChatTemplate>(ChatTemplate::for_vocab(loaded.tokenizer->vocab()));
            return loaded;
        }
    }
    fail("{}: unsupported architecture '{}' (general.architecture); subzero supports: {}", path, arch, supported_list());
}

LoadedModel load_hf_folder(const std::string& dir) {
    std::string config_path = dir + "/config.json";
    if (!fs::exists(config_path)) {
        fail("{}: no config.json; a Hugging Face model folder needs config.json, safetensors weights and tokenizer files", dir);
    }
    std::ifstream in(config_path);
    if (!in) {
        fail("cannot read '{}': {}", config_path, std::strerror(errno));
    }
    nlohmann::json config;
    try {
        config = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        fail("{}: invalid JSON: {}", config_path, e.what());
    }
    const nlohmann::json& text = config.contains("text_config") ? config.at("text_config") : config;
    std::string model_type = text.value("model_type", config.value("model_type", std::string()));
    for (const Family& family : families()) {
        for (const std::string& accepted : family.hf_model_types) {
            if (model_type == accepted) {
                auto checkpoint = safetensors::Checkpoint::open(dir);
                LoadedModel loaded;
                loaded.path = dir;
                loaded.format = "safetensors";
                loaded.model = family.from_hf(dir, config, *checkpoint);
                loaded.tokenizer = std::make_shared<Tokenizer>(Tokenizer::from_hf_dir(dir));
                loaded.chat_template = std::make_shared<ChatTemplate>(ChatTemplate::for_vocab(loaded.tokenizer->vocab()));
                return loaded;
            }
        }
    }
    fail("{}: unsupported model_type '{}'; subzero supports: {}", config_path, model_type, supported_list());
}

}  // namespace

std::vector<std::string> supported_architectures() {
    std::vector<std::string> names;
    for (const Family& family : families()) {
        names.push_back(family.gguf_arch);
    }
    return names;
}

LoadedModel load_model(const std::string& name_or_path) {
    std::string path = resolve_model_path(name_or_path);
    auto start = std::chrono::steady_clock::now();
    LoadedModel loaded = fs::is_directory(path) ? load_hf_folder(path) : load_gguf(path);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    int64_t n_params = 0;
    loaded.model->for_each_parameter([&](const std::string&, torch::Tensor& t) { n_params += t.numel(); });
    spdlog::info("loaded {} in {:.1f} s: {}, {:.1f} M parameters ({:.0f} MiB as float32)", path, seconds,
                 loaded.model->config().summary(), n_params / 1e6, n_params * 4.0 / (1 << 20));
    return loaded;
}

}  // namespace sz
