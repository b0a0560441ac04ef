// Conversion of GGUF tensors into torch tensors.
#pragma once

#include <torch/torch.h>

#include "formats/gguf.h"

namespace sz::gguf {

// Dequantizes `info` into a new contiguous float32 CPU tensor of info.torch_shape(). Blocks are
// converted in parallel with at::parallel_for. The result owns its memory, so it stays valid
// after the File is closed. Throws sz::Error naming the tensor when its type cannot be
// dequantized (Q8_1).
torch::Tensor load_tensor_f32(const TensorInfo& info);

}  // namespace sz::gguf
