// Thread settings shared by the CLI and the benchmarks.
#pragma once

namespace sz {

// Makes idle OpenMP workers sleep instead of spin. By default libgomp spins for a while after
// every parallel region. On a 2-core machine the spinning workers starve OpenBLAS's own
// threads, so decoding, with hundreds of small parallel regions per token, ran 3x slower
// (measured: 4.2 vs 12.6 tokens/s, Gemma 3 270M f16, 2 threads). libgomp reads
// OMP_WAIT_POLICY once when it is loaded, before main(), so when the variable is unset this
// sets it and re-executes the program with the same arguments. It returns normally when the
// variable was already set (by the user or by the re-exec) or when re-executing fails.
void ensure_passive_openmp(char** argv);

// Sets libtorch's intra-op thread count; n <= 0 means one per hardware thread.
void set_thread_count(int n);
int thread_count();

}  // namespace sz
