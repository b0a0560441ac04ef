// Safetensors reader, single file or sharded with a `model.safetensors.index.json`.
//
// Layout: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw row-major data. Offsets are
// relative to the first byte after the header. Supported dtypes: F32, F16, BF16.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/mapped_file.h"

namespace sz::safetensors {

struct TensorInfo {
    std::string name;
    std::string dtype;             // "F32", "F16", "BF16"
    std::vector<int64_t> shape;    // PyTorch order
    const uint8_t* data = nullptr;
    size_t nbytes = 0;
    std::string file;              // the shard that holds it
};

class Checkpoint {
public:
    // Opens a `.safetensors` file, a `.safetensors.index.json`, or a directory containing
    // either. Throws sz::Error naming the file and tensor on any inconsistency.
    static std::shared_ptr<Checkpoint> open(const std::string& path);

    const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find(const std::string& name) const;
    // Copies the tensor into a new float32 torch tensor of its shape.
    torch::Tensor load_float(const std::string& name) const;
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

private:
    std::vector<std::unique_ptr<MappedFile>> files_;
    std::map<std::string, TensorInfo> tensors_;
    std::map<std::string, std::string> metadata_;
    void add_file(const std::string& path);
};

// Writes float32/f16/bf16 tensors into a single safetensors file, atomically.
void write(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
           const std::map<std::string, std::string>& metadata = {});

}  // namespace sz::safetensors
