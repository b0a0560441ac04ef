#include "locate/atlas.h"

#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "formats/safetensors.h"

namespace sz {

namespace {

constexpr int kAtlasFormatVersion = 1;
const char* const kTensorFile = "atlas.safetensors";
const char* const kMetadataFile = "atlas.json";

// The tensors of one projection under their field names; component scores are "scores.<name>".
// `selected` is stored as float32 because the safetensors writer takes floating types only;
// indices below 2^24 are exact.
std::map<std::string, torch::Tensor> projection_fields(const ProjectionAtlas& p) {
    std::map<std::string, torch::Tensor> fields;
    auto put = [&](const std::string& name, const torch::Tensor& tensor) {
        if (tensor.defined()) {
            fields[name] = tensor.detach().to(torch::kFloat32).contiguous();
        }
    };
    put("singular_values", p.singular_values);
    put("selected", p.selected);
    put("composite", p.composite);
    put("basis", p.basis);
    put("scales", p.scales);
    put("lock_basis", p.lock_basis);
    put("fence_damage", p.fence_damage);
    for (const auto& [name, tensor] : p.component_scores) {
        put("scores." + name, tensor);
    }
    return fields;
}

}  // namespace

std::string ProjectionAtlas::key() const {
    return fmt::format("blocks.{}.{}.{}", layer, projection_module(projection), projection_name(projection));
}

void Atlas::write(const std::string& dir) const {
    std::filesystem::create_directories(dir);
    std::map<std::string, torch::Tensor> tensors;
    nlohmann::json entries = nlohmann::json::array();
    for (const ProjectionAtlas& p : projections) {
        nlohmann::json shapes = nlohmann::json::object();
        for (const auto& [name, tensor] : projection_fields(p)) {
            shapes[name] = tensor.sizes().vec();
            // Empty tensors (say, a lock basis the fence emptied) are recorded by shape only.
            if (tensor.numel() > 0) {
                tensors[p.key() + "." + name] = tensor;
            }
        }
        entries.push_back({{"key", p.key()},
                           {"layer", p.layer},
                           {"projection", projection_name(p.projection)},
                           {"tensors", shapes}});
    }
    nlohmann::json document = metadata;
    document["format_version"] = kAtlasFormatVersion;
    document["atlas_projections"] = entries;
    safetensors::write(dir + "/" + kTensorFile, tensors, {{"format", "subzero-atlas"}});
    write_file_atomically(dir + "/" + kMetadataFile, document.dump(2) + "\n");
}

Atlas Atlas::read(const std::string& dir) {
    const std::string json_path = dir + "/" + kMetadataFile;
    const std::string tensor_path = dir + "/" + kTensorFile;
    std::ifstream in(json_path);
    if (!in) {
        fail("atlas metadata '{}' not found; run `subzero locate` to make an atlas", json_path);
    }
    Atlas atlas;
    try {
        atlas.metadata = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        fail("atlas metadata '{}' is not valid JSON: {}", json_path, e.what());
    }
    if (!atlas.metadata.contains("format_version") || atlas.metadata["format_version"] != kAtlasFormatVersion) {
        fail("atlas '{}' has format_version {} but this subzero reads version {}", json_path,
             atlas.metadata.value("format_version", nlohmann::json()).dump(), kAtlasFormatVersion);
    }
    if (!atlas.metadata.contains("atlas_projections") || !atlas.metadata["atlas_projections"].is_array()) {
        fail("atlas metadata '{}' has no 'atlas_projections' list", json_path);
    }
    std::shared_ptr<safetensors::Checkpoint> file = safetensors::Checkpoint::open(tensor_path);

    for (const nlohmann::json& entry : atlas.metadata["atlas_projections"]) {
        ProjectionAtlas p;
        try {
            p.layer = entry.at("layer").get<int64_t>();
            p.projection = parse_projection(entry.at("projection").get<std::string>());
        } catch (const nlohmann::json::exception& e) {
            fail("atlas metadata '{}': invalid projection entry {}: {}", json_path, entry.dump(), e.what());
        }
        for (const auto& [name, shape_json] : entry.at("tensors").items()) {
            const std::string tensor_name = p.key() + "." + name;
            std::vector<int64_t> shape = shape_json.get<std::vector<int64_t>>();
            torch::Tensor tensor;
            if (file->find(tensor_name) != nullptr) {
                tensor = file->load_float(tensor_name);
                if (tensor.sizes().vec() != shape) {
                    fail("atlas '{}': tensor '{}' has shape [{}] but atlas.json records [{}]", tensor_path,
                         tensor_name, fmt::join(tensor.sizes(), ", "), fmt::join(shape, ", "));
                }
            } else {
                int64_t numel = 1;
                for (int64_t size : shape) {
                    numel *= size;
                }
                if (numel != 0) {
                    fail("atlas '{}' is missing tensor '{}' that atlas.json lists", tensor_path, tensor_name);
                }
                tensor = torch::zeros(shape, torch::kFloat32);
            }
            if (name == "singular_values") {
                p.singular_values = tensor;
            } else if (name == "selected") {
                p.selected = tensor.to(torch::kInt64);
            } else if (name == "composite") {
                p.composite = tensor;
            } else if (name == "basis") {
                p.basis = tensor;
            } else if (name == "scales") {
                p.scales = tensor;
            } else if (name == "lock_basis") {
                p.lock_basis = tensor;
            } else if (name == "fence_damage") {
                p.fence_damage = tensor;
            } else if (name.rfind("scores.", 0) == 0) {
                p.component_scores[name.substr(7)] = tensor;
            } else {
                fail("atlas metadata '{}': unknown field '{}' of {}", json_path, name, p.key());
            }
        }
        if (!p.basis.defined() || !p.scales.defined() || p.basis.size(0) != p.scales.size(0)) {
            fail("atlas '{}': {} needs a basis and one scale per basis row", tensor_path, p.key());
        }
        if (!p.lock_basis.defined()) {
            p.lock_basis = p.basis;
        }
        atlas.projections.push_back(std::move(p));
    }
    return atlas;
}

void Atlas::check_model(const nlohmann::json& model_identity) const {
    const nlohmann::json recorded = metadata.value("model_identity", nlohmann::json::object());
    for (const char* key : {"arch", "n_layer", "n_embd", "n_ff", "weight_hash"}) {
        if (!recorded.contains(key)) {
            fail("the atlas records no model '{}'; it cannot be checked against the model, so make it again "
                 "with `subzero locate`", key);
        }
        if (!model_identity.contains(key) || recorded[key] != model_identity[key]) {
            fail("the atlas was made for another model: its {} is {} but the model's is {}; run `subzero locate` "
                 "on this model", key, recorded[key].dump(), model_identity.value(key, nlohmann::json()).dump());
        }
    }
}

const ProjectionAtlas* Atlas::find(int64_t layer, Projection projection) const {
    for (const ProjectionAtlas& p : projections) {
        if (p.layer == layer && p.projection == projection) {
            return &p;
        }
    }
    return nullptr;
}

}  // namespace sz
