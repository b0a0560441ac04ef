#include "core/threading.h"

#include <cstdlib>
#include <thread>

#include <unistd.h>

#include <ATen/Parallel.h>

namespace sz {

void ensure_passive_openmp(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY") != nullptr) {
        return;
    }
    setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
    execv("/proc/self/exe", argv);
    // execv returns only on failure; run on with the spinning default.
}

void set_thread_count(int n) {
    if (n <= 0) {
        n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    }
    at::set_num_threads(n);
}

int thread_count() { return at::get_num_threads(); }

}  // namespace sz
