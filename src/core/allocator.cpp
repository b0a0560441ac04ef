#include "core/allocator.h"

#include <malloc.h>

namespace sz {

void keep_freed_memory_in_process() {
    // Blocks below 32 MiB (glibc's largest mmap threshold on 64-bit) come from the heap and are
    // reused. The heap top is trimmed only beyond 2 GiB free, the largest int mallopt takes,
    // and grows in 256 MiB steps.
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
    mallopt(M_TOP_PAD, 256 * 1024 * 1024);
}

}  // namespace sz
