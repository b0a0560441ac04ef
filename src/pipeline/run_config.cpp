#include "pipeline/run_config.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/input_path.h"
#include "pipeline/run_eval.h"

namespace sz {

namespace fs = std::filesystem;

namespace {

const char* json_kind(const nlohmann::json& value) {
    return value.type_name();
}

std::string read_string(const nlohmann::json& value, const std::string& key, const std::string& source) {
    if (!value.is_string()) {
        fail("{}: '{}' must be a string, got {} {}", source, key, json_kind(value), value.dump());
    }
    return value.get<std::string>();
}

nlohmann::json read_object(const nlohmann::json& value, const std::string& key, const std::string& source) {
    if (!value.is_object()) {
        fail("{}: '{}' must be a JSON object, got {} {}", source, key, json_kind(value), value.dump());
    }
    return value;
}

}  // namespace

RunConfig RunConfig::from_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        fail("run config '{}' not found or not readable", path);
    }
    nlohmann::json json;
    try {
        json = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        // The parser's message gives the line and column of the first invalid character.
        fail("run config '{}' is not valid JSON: {}", path, e.what());
    }
    if (!json.is_object()) {
        fail("run config '{}' must hold a JSON object, got {}", path, json_kind(json));
    }
    const std::string config_dir = fs::absolute(path).parent_path().string();
    RunConfig config;
    config.source = path;
    const std::set<std::string> known = {"model", "data", "heldout", "out", "seed", "locate", "train", "export", "eval"};
    for (const auto& [key, value] : json.items()) {
        if (known.count(key) == 0) {
            fail("{}: unknown key '{}'; known keys: {}", path, key, fmt::join(known, ", "));
        }
    }

    // Model: a short name such as gemma3-270m is not a path, so only existing paths resolve.
    if (!json.contains("model")) {
        fail("{}: 'model' is required (a GGUF file, a Hugging Face folder or a short name such as gemma3-270m)", path);
    }
    config.model = read_string(json["model"], "model", path);
    if (config.model.find('/') != std::string::npos || fs::exists(config.model)) {
        config.model = resolve_input_path(config.model, config_dir, path + ": model");
    }

    if (!json.contains("data")) {
        fail("{}: 'data' is required: the JSONL file (or a list of files) of conversations to train on", path);
    }
    std::vector<std::string> data;
    if (json["data"].is_string()) {
        data.push_back(json["data"].get<std::string>());
    } else if (json["data"].is_array()) {
        for (const nlohmann::json& item : json["data"]) {
            data.push_back(read_string(item, "data", path));
        }
    } else {
        fail("{}: 'data' must be a file name or a list of them, got {}", path, json["data"].dump());
    }
    if (data.empty()) {
        fail("{}: 'data' lists no file", path);
    }
    for (const std::string& file : data) {
        config.data.push_back(resolve_input_path(file, config_dir, path + ": data"));
    }
    if (json.contains("heldout")) {
        const std::string heldout = read_string(json["heldout"], "heldout", path);
        if (!heldout.empty()) {
            config.heldout = resolve_input_path(heldout, config_dir, path + ": heldout");
        }
    }

    config.out = json.contains("out") ? read_string(json["out"], "out", path)
                                      : (fs::path("runs") / fs::path(path).stem()).string();
    if (json.contains("seed")) {
        if (!json["seed"].is_number_unsigned()) {
            fail("{}: 'seed' must be a non-negative integer, got {}", path, json["seed"].dump());
        }
        config.seed = json["seed"].get<uint64_t>();
    }

    // Stage settings: each stage's own parser rejects its unknown keys and wrong types.
    if (json.contains("locate")) {
        const nlohmann::json& locate = json["locate"];
        if (locate.is_boolean()) {
            config.locate_enabled = locate.get<bool>();
        } else if (locate.is_string()) {
            config.locate = LocateConfig::from_file(resolve_input_path(locate.get<std::string>(), config_dir,
                                                                       path + ": locate"));
        } else {
            config.locate = LocateConfig::from_json(read_object(locate, "locate", path), path + ": locate");
        }
    }
    config.locate.seed = config.seed;
    config.locate.corpus_dir = resolve_input_path(config.locate.corpus_dir, config_dir, path + ": locate.corpus_dir");
    config.locate.validate(path + ": locate");

    if (json.contains("train")) {
        config.train = TrainRunConfig::from_json(read_object(json["train"], "train", path), path + ": train");
    }
    config.train.seed = config.seed;
    config.train.validate(path + ": train");

    if (json.contains("export")) {
        const nlohmann::json settings = read_object(json["export"], "export", path);
        for (const auto& [key, value] : settings.items()) {
            const std::string where = "export." + key;
            if (key == "outtype") {
                config.export_settings.outtype = read_string(value, where, path);
                if (config.export_settings.outtype != "f16" && config.export_settings.outtype != "bf16" &&
                    config.export_settings.outtype != "f32") {
                    fail("{}: '{}' must be f16, bf16 or f32, got '{}'", path, where, config.export_settings.outtype);
                }
            } else if (key == "name") {
                config.export_settings.name = read_string(value, where, path);
            } else if (key == "hf" || key == "peft") {
                if (!value.is_boolean()) {
                    fail("{}: '{}' must be true or false, got {}", path, where, value.dump());
                }
                (key == "hf" ? config.export_settings.hf : config.export_settings.peft) = value.get<bool>();
            } else {
                fail("{}: unknown key '{}'; known keys: outtype, name, hf, peft", path, where);
            }
        }
    }
    if (json.contains("eval")) {
        config.eval = read_object(json["eval"], "eval", path);
        // File keys resolve like the config's own paths, so the eval stage finds them from any
        // working directory.
        for (const char* key : {"prompts", "neutral", "markers"}) {
            const nlohmann::json& value = config.eval.value(key, nlohmann::json());
            if (value.is_string() && !value.get<std::string>().empty()) {
                config.eval[key] = resolve_input_path(value.get<std::string>(), config_dir,
                                                      path + ": eval." + std::string(key));
            }
        }
    }
    check_eval_settings(config.eval, path + ": eval");
    return config;
}

nlohmann::json RunConfig::to_json() const {
    nlohmann::json eval_with_defaults = default_eval_settings();
    eval_with_defaults.update(eval);
    return {{"model", model},
            {"data", data},
            {"heldout", heldout},
            {"out", out},
            {"seed", seed},
            {"locate", locate_enabled ? locate.to_json() : nlohmann::json(false)},
            {"train", train.to_json()},
            {"export",
             {{"outtype", export_settings.outtype},
              {"name", export_settings.name},
              {"hf", export_settings.hf},
              {"peft", export_settings.peft}}},
            {"eval", eval_with_defaults}};
}

}  // namespace sz
