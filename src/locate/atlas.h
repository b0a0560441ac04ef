// The atlas: what `subzero locate` found, in a portable form that training and export read.
//
// On disk, a folder with two files:
//   atlas.safetensors  tensors named "blocks.{l}.{mlp|attn}.{proj}.{field}" (fields below)
//   atlas.json         metadata: format version, model identity and hash, config, seed,
//                      corpus hashes, per-layer and per-projection summaries
// Safetensors and JSON (never a pickle) so an atlas can be read from any language and two
// runs can be diffed.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/projection.h"

namespace sz {

// Directions of one projection's weight W [out, in]. "Input space" vectors have length `in`.
struct ProjectionAtlas {
    int64_t layer = 0;
    Projection projection = Projection::Gate;

    torch::Tensor singular_values;   // [r] float32, descending, of W
    torch::Tensor selected;          // [k] int64, indices of the selected right-singular directions
    torch::Tensor composite;         // [r] float32 composite score of every direction
    std::map<std::string, torch::Tensor> component_scores;  // [r] each: "atp", "wanda", "cone", ...

    // Surgery: W <- W (I - Bᵀ diag(1 - s) B). B [m, in] has orthonormal rows; s [m] is the
    // gain kept along each row (0 removes the direction, 1 leaves it).
    torch::Tensor basis;             // [m, in] float32
    torch::Tensor scales;            // [m] float32

    // Subspace the LoRA update of this projection must not read: orthonormal rows [q, in].
    // Usually equal to `basis`, minus directions the capability fence released.
    torch::Tensor lock_basis;        // [q, in] float32

    torch::Tensor fence_damage;      // [m] float32, capability loss increase per basis row (optional)

    std::string key() const;         // "blocks.{l}.{module}.{proj}"
};

struct Atlas {
    nlohmann::json metadata;                 // see the file comment
    std::vector<ProjectionAtlas> projections;

    // Writes atlas.safetensors and atlas.json into `dir` (created if missing), each atomically.
    void write(const std::string& dir) const;
    // Reads an atlas folder; throws sz::Error naming the file and the inconsistent entry.
    static Atlas read(const std::string& dir);

    // Throws sz::Error when the atlas was made for another model: compares architecture, layer
    // count, widths and the weight hash recorded at locate time with `model_identity`.
    void check_model(const nlohmann::json& model_identity) const;

    const ProjectionAtlas* find(int64_t layer, Projection projection) const;
};

}  // namespace sz
