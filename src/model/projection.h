// The linear projections of a transformer block, named as in Hugging Face checkpoints and
// PEFT target_modules, and the adapter interface through which LoRA attaches to them.
#pragma once

#include <array>
#include <string>

#include <torch/torch.h>

namespace sz {

enum class Projection { Q, K, V, O, Gate, Up, Down };

inline constexpr std::array<Projection, 7> kAllProjections = {
    Projection::Q, Projection::K, Projection::V, Projection::O,
    Projection::Gate, Projection::Up, Projection::Down,
};

// "q_proj", "gate_proj", ... (PEFT target_modules names).
const char* projection_name(Projection p);
// "attn" for q/k/v/o, "mlp" for gate/up/down (hook-name prefix).
const char* projection_module(Projection p);
// Parses "q_proj" or "q"; throws sz::Error listing the valid names.
Projection parse_projection(const std::string& name);
// Hook name of the projection's input: "blocks.{il}.mlp.gate_proj.input".
std::string projection_input_hook(int64_t il, Projection p);

// Something that changes a projection's output, such as a LoRA adapter:
// y = x Wᵀ becomes y + delta(x). Implementations return an undefined tensor for projections
// they do not touch.
class ProjectionAdapter {
public:
    virtual ~ProjectionAdapter() = default;
    virtual torch::Tensor delta(int64_t il, Projection p, const torch::Tensor& x) const = 0;
};

}  // namespace sz
