#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "formats/ggml_type.h"

namespace fs = std::filesystem;

namespace sz::safetensors {

namespace {

using nlohmann::json;

// The reference implementation (the `safetensors` Rust crate) rejects headers above 100 MB;
// a larger length field means a corrupt file, and the limit bounds the JSON parser's memory.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
const char* const kIndexFileName = "model.safetensors.index.json";

// Element sizes of the dtypes the safetensors format defines. Only F32, F16 and BF16 can be
// loaded; the others are listed so that a checkpoint carrying, say, an I64 buffer still opens.
size_t dtype_size(const std::string& dtype) {
    static const std::map<std::string, size_t> kSizes = {
        {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2},
        {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},    {"U32", 4},     {"F32", 4},
        {"I64", 8},  {"U64", 8}, {"F64", 8},
    };
    auto it = kSizes.find(dtype);
    return it == kSizes.end() ? 0 : it->second;
}

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        fail("cannot open '{}': {}", path, std::strerror(errno));
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

bool ends_with(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

uint64_t json_unsigned(const json& value, const std::string& path, const std::string& name,
                       const char* field) {
    if (!value.is_number_unsigned()) {
        fail("invalid safetensors file '{}': tensor '{}' has {} {}, expected a non-negative integer",
             path, name, field, value.dump());
    }
    return value.get<uint64_t>();
}

}  // namespace

std::shared_ptr<Checkpoint> Checkpoint::open(const std::string& path) {
    auto checkpoint = std::make_shared<Checkpoint>();
    if (!fs::exists(path)) {
        fail("safetensors checkpoint '{}' not found", path);
    }

    std::string index_path;
    std::vector<std::string> shard_paths;
    if (fs::is_directory(path)) {
        if (fs::exists(fs::path(path) / kIndexFileName)) {
            index_path = (fs::path(path) / kIndexFileName).string();
        } else {
            for (const auto& entry : fs::directory_iterator(path)) {
                if (entry.is_regular_file() && entry.path().extension() == ".safetensors") {
                    shard_paths.push_back(entry.path().string());
                }
            }
            std::sort(shard_paths.begin(), shard_paths.end());
            if (shard_paths.empty()) {
                fail("folder '{}' contains neither {} nor any .safetensors file; pass the folder "
                     "of a Hugging Face checkpoint",
                     path, kIndexFileName);
            }
        }
    } else if (ends_with(path, ".json")) {
        index_path = path;
    } else {
        shard_paths.push_back(path);
    }

    if (index_path.empty()) {
        for (const std::string& shard : shard_paths) {
            checkpoint->add_file(shard);
        }
        return checkpoint;
    }

    // Sharded checkpoint: {"metadata": {...}, "weight_map": {tensor name: shard file name}}.
    json index;
    try {
        index = json::parse(read_text_file(index_path));
    } catch (const json::parse_error& error) {
        fail("invalid safetensors index '{}': not valid JSON ({})", index_path, error.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
        fail("invalid safetensors index '{}': expected a JSON object with a \"weight_map\" object",
             index_path);
    }
    std::map<std::string, std::string> weight_map;
    std::set<std::string> shard_names;
    for (const auto& [name, file] : index["weight_map"].items()) {
        if (!file.is_string()) {
            fail("invalid safetensors index '{}': weight_map entry '{}' is {}, expected a file name",
                 index_path, name, file.dump());
        }
        const std::string shard = file.get<std::string>();
        const fs::path shard_path(shard);
        if (shard_path.is_absolute() ||
            std::find(shard_path.begin(), shard_path.end(), fs::path("..")) != shard_path.end()) {
            fail("invalid safetensors index '{}': shard '{}' for tensor '{}' must be a path inside "
                 "the index's folder",
                 index_path, shard, name);
        }
        weight_map[name] = shard;
        shard_names.insert(shard);
    }
    const fs::path folder = fs::path(index_path).parent_path();
    for (const std::string& shard : shard_names) {
        const std::string shard_path = (folder / shard).string();
        if (!fs::exists(shard_path)) {
            fail("safetensors index '{}' lists shard '{}', which is missing; download the whole "
                 "checkpoint",
                 index_path, shard_path);
        }
        checkpoint->add_file(shard_path);
    }
    for (const auto& [name, shard] : weight_map) {
        const TensorInfo* info = checkpoint->find(name);
        const std::string shard_path = (folder / shard).string();
        if (info == nullptr || info->file != shard_path) {
            fail("safetensors index '{}' places tensor '{}' in shard '{}', but that shard does not "
                 "contain it; the checkpoint is inconsistent",
                 index_path, name, shard_path);
        }
    }
    if (index.contains("metadata") && index["metadata"].is_object()) {
        for (const auto& [key, value] : index["metadata"].items()) {
            checkpoint->metadata_.emplace(key, value.is_string() ? value.get<std::string>() : value.dump());
        }
    }
    return checkpoint;
}

void Checkpoint::add_file(const std::string& path) {
    auto file = std::make_unique<MappedFile>(path);
    const uint64_t file_size = file->size();
    if (file_size < 8) {
        fail("invalid safetensors file '{}': it is {} bytes long, too short for the 8-byte header "
             "length; the file is truncated",
             path, file_size);
    }
    uint64_t header_size = 0;
    std::memcpy(&header_size, file->data(), sizeof(header_size));
    if (header_size > file_size - 8) {
        fail("invalid safetensors file '{}': the header length is {} bytes, but only {} bytes "
             "follow it; the file is truncated or not a safetensors file",
             path, header_size, file_size - 8);
    }
    if (header_size > kMaxHeaderBytes) {
        fail("invalid safetensors file '{}': the header length {} exceeds the format's limit of {} "
             "bytes",
             path, header_size, kMaxHeaderBytes);
    }

    // nlohmann::json keeps only the last of repeated keys, so the parser callback records a
    // tensor name that appears twice at the top level.
    std::set<std::string> top_level_keys;
    std::string repeated_key;
    auto find_repeated_keys = [&](int depth, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::key && depth == 1 && repeated_key.empty() &&
            !top_level_keys.insert(parsed.get<std::string>()).second) {
            repeated_key = parsed.get<std::string>();
        }
        return true;
    };
    json header;
    try {
        const auto* begin = reinterpret_cast<const char*>(file->data() + 8);
        header = json::parse(begin, begin + header_size, find_repeated_keys);
    } catch (const json::parse_error& error) {
        fail("invalid safetensors file '{}': the header is not valid JSON ({})", path, error.what());
    }
    if (!repeated_key.empty()) {
        fail("invalid safetensors file '{}': the header lists '{}' more than once", path, repeated_key);
    }
    if (!header.is_object()) {
        fail("invalid safetensors file '{}': the header is {}, expected a JSON object", path,
             header.type_name());
    }

    const uint8_t* data_start = file->data() + 8 + header_size;
    const uint64_t data_size = file_size - 8 - header_size;
    struct Range {
        uint64_t begin;
        uint64_t end;
        std::string name;
    };
    std::vector<Range> ranges;
    std::map<std::string, TensorInfo> added;

    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object()) {
                fail("invalid safetensors file '{}': __metadata__ is {}, expected an object of strings",
                     path, entry.dump());
            }
            for (const auto& [key, value] : entry.items()) {
                if (!value.is_string()) {
                    fail("invalid safetensors file '{}': __metadata__ entry '{}' is {}, expected a "
                         "string",
                         path, key, value.dump());
                }
                metadata_[key] = value.get<std::string>();
            }
            continue;
        }
        if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
            !entry.contains("data_offsets")) {
            fail("invalid safetensors file '{}': tensor '{}' needs \"dtype\", \"shape\" and "
                 "\"data_offsets\", got {}",
                 path, name, entry.dump());
        }
        TensorInfo info;
        info.name = name;
        info.file = path;

        const json& dtype = entry["dtype"];
        if (!dtype.is_string() || dtype_size(dtype.get<std::string>()) == 0) {
            fail("invalid safetensors file '{}': tensor '{}' has unknown dtype {}", path, name, dtype.dump());
        }
        info.dtype = dtype.get<std::string>();

        const json& shape = entry["shape"];
        if (!shape.is_array()) {
            fail("invalid safetensors file '{}': tensor '{}' has shape {}, expected an array", path,
                 name, shape.dump());
        }
        uint64_t n_elements = 1;
        for (const json& dim : shape) {
            const uint64_t size = json_unsigned(dim, path, name, "a dimension");
            if (size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
                (size != 0 && n_elements > std::numeric_limits<uint64_t>::max() / size)) {
                fail("invalid safetensors file '{}': tensor '{}' has shape {}, which is too large",
                     path, name, shape.dump());
            }
            n_elements *= size;
            info.shape.push_back(static_cast<int64_t>(size));
        }

        const json& offsets = entry["data_offsets"];
        if (!offsets.is_array() || offsets.size() != 2) {
            fail("invalid safetensors file '{}': tensor '{}' has data_offsets {}, expected [begin, end]",
                 path, name, offsets.dump());
        }
        const uint64_t begin = json_unsigned(offsets[0], path, name, "data offset");
        const uint64_t end = json_unsigned(offsets[1], path, name, "data offset");
        if (begin > end || end > data_size) {
            fail("invalid safetensors file '{}': tensor '{}' has data_offsets [{}, {}], outside the "
                 "{} bytes of data; the file is truncated or corrupt",
                 path, name, begin, end, data_size);
        }
        const size_t element_size = dtype_size(info.dtype);
        if (n_elements > std::numeric_limits<uint64_t>::max() / element_size ||
            n_elements * element_size != end - begin) {
            fail("invalid safetensors file '{}': tensor '{}' is {} of shape {} ({} elements of {} "
                 "bytes), but its data_offsets span {} bytes",
                 path, name, info.dtype, shape.dump(), n_elements, element_size, end - begin);
        }
        info.data = data_start + begin;
        info.nbytes = static_cast<size_t>(end - begin);

        if (const TensorInfo* existing = find(name)) {
            fail("safetensors tensor '{}' appears in both '{}' and '{}'; the checkpoint is inconsistent",
                 name, existing->file, path);
        }
        if (begin != end) {
            ranges.push_back({begin, end, name});
        }
        added.emplace(name, std::move(info));
    }

    std::sort(ranges.begin(), ranges.end(),
              [](const Range& a, const Range& b) { return a.begin < b.begin; });
    for (size_t i = 1; i < ranges.size(); ++i) {
        if (ranges[i].begin < ranges[i - 1].end) {
            fail("invalid safetensors file '{}': the data of tensors '{}' and '{}' overlap", path,
                 ranges[i - 1].name, ranges[i].name);
        }
    }

    tensors_.merge(added);
    files_.push_back(std::move(file));
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

torch::Tensor Checkpoint::load_float(const std::string& name) const {
    const TensorInfo* info = find(name);
    if (info == nullptr) {
        fail("safetensors checkpoint has no tensor '{}' ({} tensors present); the checkpoint may be "
             "incomplete or of another architecture",
             name, tensors_.size());
    }
    if (info->dtype != "F32" && info->dtype != "F16" && info->dtype != "BF16") {
        fail("safetensors tensor '{}' in '{}' has dtype {}; subzero loads F32, F16 and BF16 only",
             name, info->file, info->dtype);
    }

    torch::Tensor result = torch::empty(info->shape, torch::kFloat32);
    float* out = result.data_ptr<float>();
    const uint8_t* in = info->data;
    const int64_t n_elements = result.numel();
    if (n_elements == 0) {
        return result;
    }
    if (info->dtype == "F32") {
        std::memcpy(out, in, info->nbytes);
        return result;
    }

    const bool is_f16 = info->dtype == "F16";
    at::parallel_for(0, n_elements, 1 << 16, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            uint16_t bits;
            std::memcpy(&bits, in + 2 * i, sizeof(bits));
            out[i] = is_f16 ? fp16_to_fp32(bits) : bf16_to_fp32(bits);
        }
    });
    return result;
}

void write(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
           const std::map<std::string, std::string>& metadata) {
    json header = json::object();
    std::vector<torch::Tensor> contiguous;
    uint64_t offset = 0;
    for (const auto& [name, tensor] : tensors) {
        if (name.empty() || name == "__metadata__") {
            fail("cannot write safetensors tensor named '{}': the name is reserved or empty", name);
        }
        std::string dtype;
        switch (tensor.scalar_type()) {
            case torch::kFloat32: dtype = "F32"; break;
            case torch::kFloat16: dtype = "F16"; break;
            case torch::kBFloat16: dtype = "BF16"; break;
            default:
                fail("cannot write safetensors tensor '{}' of dtype {}; convert it to float32, "
                     "float16 or bfloat16",
                     name, std::string(c10::toString(tensor.scalar_type())));
        }
        torch::Tensor data = tensor.detach().to(torch::kCPU).contiguous();
        const uint64_t nbytes = data.numel() * data.element_size();
        header[name] = {{"dtype", dtype},
                        {"shape", data.sizes().vec()},
                        {"data_offsets", {offset, offset + nbytes}}};
        offset += nbytes;
        contiguous.push_back(std::move(data));
    }
    if (!metadata.empty()) {
        header["__metadata__"] = metadata;
    }

    // Spaces pad the header so the data starts 8-byte aligned, as the reference writer does.
    std::string header_text = header.dump();
    header_text.append((8 - header_text.size() % 8) % 8, ' ');
    const uint64_t header_size = header_text.size();

    write_file_atomically(path, [&](std::ostream& out) {
        out.write(reinterpret_cast<const char*>(&header_size), sizeof(header_size));
        out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
        for (const torch::Tensor& data : contiguous) {
            out.write(static_cast<const char*>(data.data_ptr()),
                      static_cast<std::streamsize>(data.numel() * data.element_size()));
        }
    });
}

}  // namespace sz::safetensors
