#include "export/export.h"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "export/gguf_export.h"
#include "export/hf_export.h"
#include "formats/gguf.h"

namespace sz {

namespace fs = std::filesystem;

namespace {

// Descriptive general.* keys of a source GGUF that stay true for its export; the license
// above all must travel with the weights.
const char* const kCarriedGeneralKeys[] = {
    "general.license", "general.license.name", "general.license.link", "general.basename",
    "general.size_label", "general.tags", "general.languages", "general.author", "general.organization",
};

std::vector<std::pair<std::string, gguf::Value>> carried_metadata(const LoadedModel& loaded) {
    std::vector<std::pair<std::string, gguf::Value>> carried;
    if (loaded.format != "gguf") {
        return carried;
    }
    std::shared_ptr<gguf::File> source = gguf::File::open(loaded.path);
    for (const char* key : kCarriedGeneralKeys) {
        if (const gguf::Value* value = source->find(key)) {
            carried.emplace_back(key, *value);
        }
    }
    return carried;
}

}  // namespace

WeightType parse_weight_type(const std::string& text) {
    if (text == "f32") return WeightType::F32;
    if (text == "f16") return WeightType::F16;
    if (text == "bf16") return WeightType::BF16;
    fail("unknown weight type '{}'; expected f16, bf16 or f32", text);
}

const char* weight_type_name(WeightType type) {
    switch (type) {
        case WeightType::F32: return "f32";
        case WeightType::F16: return "f16";
        case WeightType::BF16: return "bf16";
    }
    SZ_ASSERT(false);
}

void check_parent_folder(const std::string& path, const std::string& output_name) {
    if (path.empty()) {
        fail("{}: the path is empty", output_name);
    }
    fs::path parent = fs::path(path).parent_path();
    if (parent.empty()) {
        parent = ".";
    }
    if (!fs::exists(parent)) {
        fail("{} {}: the folder '{}' does not exist; create it first", output_name, path, parent.string());
    }
    if (!fs::is_directory(parent)) {
        fail("{} {}: '{}' is not a folder", output_name, path, parent.string());
    }
    if (fs::is_directory(path)) {
        fail("{} {}: the path is a folder; give a file name", output_name, path);
    }
}

void export_model(LoadedModel& loaded, const ExportOptions& options) {
    if (options.gguf_path.empty() && options.hf_dir.empty()) {
        fail("nothing to export: give a GGUF output path, a Hugging Face output folder, or both");
    }
    if (!options.gguf_path.empty()) {
        check_parent_folder(options.gguf_path, "GGUF output");
    }
    if (!options.hf_dir.empty()) {
        prepare_hf_output_folder(options.hf_dir);
    }
    if (options.hf_type == WeightType::F16 && !options.hf_dir.empty()) {
        spdlog::warn("float16 Hugging Face weights overflow in Gemma 3's activations when run in float16; "
                     "bf16 or f32 is safer");
    }

    ExportMetadata metadata = options.metadata;
    if (metadata.source.empty()) {
        // The file or folder name only: a full path would publish the exporter's directory layout.
        metadata.source = fs::path(loaded.path).lexically_normal().filename().string();
    }
    if (!options.gguf_path.empty()) {
        GgufExportOptions gguf_options;
        gguf_options.path = options.gguf_path;
        gguf_options.type = options.gguf_type;
        gguf_options.metadata = metadata;
        gguf_options.extra_metadata = carried_metadata(loaded);
        export_gguf(*loaded.model, loaded.tokenizer->vocab(), *loaded.chat_template, gguf_options);
    }
    if (!options.hf_dir.empty()) {
        HfExportOptions hf_options;
        hf_options.dir = options.hf_dir;
        hf_options.type = options.hf_type;
        hf_options.metadata = metadata;
        export_hf_folder(*loaded.model, loaded.tokenizer->vocab(), *loaded.chat_template, hf_options);
    }
}

}  // namespace sz
