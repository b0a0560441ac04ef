"""Compare subzero's logits with llama.cpp's (llama-cpp-python) on the same token sequences.

Input (JSON file, argument 1):
  {"model": F32_GGUF, "source": ORIGINAL_GGUF, "greedy_tokens": N,
   "cases": [{"tokens": [...], "positions": [...], "logits": RAW_F32_FILE,
              "ours_greedy": [...]}]}
where RAW_F32_FILE contains subzero's logits for the listed positions, row-major
[len(positions), n_vocab]. If F32_GGUF does not exist it is made from ORIGINAL_GGUF.

Output (stdout, JSON): per case the number of positions, how many share the argmax, the max
absolute logit difference, the mean KL(llama || subzero) in nats, and llama.cpp's greedy
continuation of N tokens; plus the same figures over all cases.

llama.cpp runs with float32 KV cache (type_k = type_v = 0) so that only its matmul and GELU
implementations differ from subzero's float32 path.
"""
import json
import os
import subprocess
import sys

import numpy as np
import llama_cpp


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def main() -> None:
    with open(sys.argv[1]) as f:
        request = json.load(f)
    model_path = request["model"]
    if not os.path.exists(model_path):
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([sys.executable, os.path.join(here, "dequantize_gguf.py"), request["source"], model_path],
                       check=True)
    longest = max(len(case["tokens"]) for case in request["cases"])
    n_greedy = int(request.get("greedy_tokens", 0))
    llm = llama_cpp.Llama(model_path, n_ctx=longest + n_greedy + 8, n_batch=longest + 8, n_ubatch=longest + 8,
                          logits_all=True, n_threads=os.cpu_count(), verbose=False, type_k=0, type_v=0)
    n_vocab = llm.n_vocab()
    vocab = llama_cpp.llama_model_get_vocab(llm.model)

    results = []
    total_positions = total_agree = 0
    kl_sum = 0.0
    max_diff = 0.0
    for case in request["cases"]:
        tokens = case["tokens"]
        positions = case["positions"]
        llm.reset()
        llm.eval(tokens)
        reference = np.array(llm.scores[: len(tokens)], dtype=np.float32)[positions]
        ours = np.fromfile(case["logits"], dtype=np.float32).reshape(len(positions), n_vocab)
        agree = int((reference.argmax(-1) == ours.argmax(-1)).sum())
        diff = float(np.abs(reference - ours).max())
        log_p = log_softmax(reference)
        log_q = log_softmax(ours)
        kl = (np.exp(log_p) * (log_p - log_q)).sum(-1)

        greedy = []
        if n_greedy > 0:
            # Greedy continuation: argmax of llama.cpp's own logits, one token at a time.
            last = np.array(llm.scores[len(tokens) - 1], dtype=np.float32)
            for _ in range(n_greedy):
                token = int(last.argmax())
                greedy.append(token)
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                llm.eval([token])
                last = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        results.append({"positions": len(positions), "argmax_agree": agree, "max_abs_diff": diff,
                        "mean_kl": float(kl.mean()), "max_kl": float(kl.max()), "llama_greedy": greedy})
        total_positions += len(positions)
        total_agree += agree
        kl_sum += float(kl.sum())
        max_diff = max(max_diff, diff)

    json.dump({"cases": results, "positions": total_positions, "argmax_agree": total_agree,
               "max_abs_diff": max_diff, "mean_kl": kl_sum / max(total_positions, 1)}, sys.stdout)


if __name__ == "__main__":
    main()
