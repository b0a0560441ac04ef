#include "formats/gguf_tensor.h"

#include <ATen/Parallel.h>

#include "core/error.h"

namespace sz::gguf {

torch::Tensor load_tensor_f32(const TensorInfo& info) {
    const GgmlTypeTraits& traits = ggml_type_traits(info.type);
    if (!traits.can_dequantize) {
        fail("tensor '{}' has ggml type {}, which subzero cannot dequantize; requantize the model "
             "with llama-quantize to a weight type such as Q8_0 or Q4_K",
             info.name, traits.name);
    }
    SZ_ASSERT(info.data != nullptr || info.nbytes == 0);

    torch::Tensor result = torch::empty(info.torch_shape(), torch::kFloat32);
    const int64_t n_blocks = info.n_elements() / traits.block_size;
    SZ_ASSERT(static_cast<size_t>(n_blocks) * traits.type_size == info.nbytes);

    float* out = result.data_ptr<float>();
    // About 64 Ki elements per task: large enough to amortise scheduling, small enough to
    // spread a single 640-wide layer over every core.
    const int64_t grain_blocks = std::max<int64_t>(1, 65536 / traits.block_size);
    at::parallel_for(0, n_blocks, grain_blocks, [&](int64_t begin, int64_t end) {
        dequantize(info.type, info.data + begin * traits.type_size, out + begin * traits.block_size,
                   (end - begin) * traits.block_size);
    });
    return result;
}

}  // namespace sz::gguf
