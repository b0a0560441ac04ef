#include "model/projection.h"

#include <fmt/format.h>

#include "core/error.h"

namespace sz {

const char* projection_name(Projection p) {
    switch (p) {
        case Projection::Q: return "q_proj";
        case Projection::K: return "k_proj";
        case Projection::V: return "v_proj";
        case Projection::O: return "o_proj";
        case Projection::Gate: return "gate_proj";
        case Projection::Up: return "up_proj";
        case Projection::Down: return "down_proj";
    }
    SZ_ASSERT(false);
}

const char* projection_module(Projection p) {
    switch (p) {
        case Projection::Q:
        case Projection::K:
        case Projection::V:
        case Projection::O: return "attn";
        case Projection::Gate:
        case Projection::Up:
        case Projection::Down: return "mlp";
    }
    SZ_ASSERT(false);
}

Projection parse_projection(const std::string& name) {
    for (Projection p : kAllProjections) {
        std::string full = projection_name(p);
        if (name == full || name == full.substr(0, full.size() - 5)) {
            return p;
        }
    }
    fail("unknown projection '{}'; valid names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj", name);
}

std::string projection_input_hook(int64_t il, Projection p) {
    return fmt::format("blocks.{}.{}.{}.input", il, projection_module(p), projection_name(p));
}

}  // namespace sz
