"""LoRA training speed and peak memory of subzero against Hugging Face transformers + PEFT.

    bench/setup_train_bench.sh        # once: the Hugging Face side's virtual environment
    python3 bench/train_speed.py [--build build] [--batch-size 4] [--warmup 2] [--steps 10] [--rounds 2]

Both trainers run the same LoRA fine-tune of the real Gemma 3 270M in float32 on the CPU:
  - the same micro-batches: build/train_batches_bench writes the token ids, padding and loss
    masks that `subzero train` draws for its first steps. The Hugging Face side trains on
    exactly those, with labels -100 where the loss mask is 0, so both train the replies only;
  - the same weights: `subzero export --hf-dir` writes the model subzero loads as a float32
    Hugging Face folder, which transformers loads as Gemma3ForCausalLM;
  - LoRA rank 16, alpha 32, dropout 0.05 on q, k, v, o, gate, up and down projections; AdamW
    (lr 2e-4, betas 0.9/0.999, eps 1e-8, no weight decay), constant learning rate, gradient
    clipping at global norm 1.0, one micro-batch per step;
  - 2 threads: OMP_NUM_THREADS=2 for both, `subzero -t 2`, torch.set_num_threads(2).

Each round runs subzero, then Hugging Face, each as its own process. The script holds
/tmp/subzero-heavy.lock (flock) over all rounds, so that no other heavy job that takes the lock
runs between them. The first --warmup steps are not timed. Peak memory is the
process's maximum resident set size (wait4's ru_maxrss), which includes loading the model.
Prints one Markdown table row per run and the median subzero / Hugging Face ratios.

The Hugging Face side runs in a child process under the venv's Python (--hf-worker); this
script itself needs only the standard library.
"""
import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = "/tmp/subzero-heavy.lock"
CACHE = os.path.expanduser("~/.cache/subzero")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def train_config(args) -> dict:
    """Return the subzero train config. The Hugging Face worker mirrors every setting in it."""
    return {
        "rank": 16, "alpha": 32.0, "dropout": 0.05, "targets": TARGETS,
        "max_steps": args.warmup + args.steps, "batch_size": args.batch_size,
        "learning_rate": 2e-4, "weight_decay": 0.0, "max_grad_norm": 1.0, "scheduler": "constant",
        "checkpoint_every": 0, "eval_every": 0, "heldout_fraction": 0.0, "seed": args.seed,
    }


def thread_environment(threads: int) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def run_measured(command: list, env: dict, log_path: str) -> int:
    """Run `command` and return its peak RSS in KiB (Linux reports ru_maxrss in KiB)."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit("train_speed: %s failed with exit code %d; see %s" % (command[0], code, log_path))
    return usage.ru_maxrss


def ensure_hf_model(args) -> None:
    if os.path.exists(os.path.join(args.hf_dir, "config.json")):
        return
    subprocess.run([os.path.join(args.build, "subzero"), "export", "gemma3-270m", "--hf-dir", args.hf_dir,
                    "--hf-outtype", "f32"], check=True)


def timed_steps(steps: list, warmup: int) -> dict:
    timed = steps[warmup:]
    seconds = sum(s["seconds"] for s in timed)
    return {
        "steps": len(timed),
        "seconds": seconds,
        "trained_tokens_per_s": sum(s["trained_tokens"] for s in timed) / seconds,
        "tokens_per_s": sum(s["tokens"] for s in timed) / seconds,
        "first_loss": steps[0]["loss"],
    }


def run_subzero(args, config_path: str, data: str, run_dir: str) -> dict:
    command = [os.path.join(args.build, "subzero"), "-t", str(args.threads), "train", "gemma3-270m",
               "--data", data, "--out", run_dir, "--config", config_path]
    peak_kib = run_measured(command, thread_environment(args.threads), run_dir + ".log")
    with open(os.path.join(run_dir, "metrics.jsonl")) as lines:
        steps = [json.loads(line) for line in lines if '"heldout_loss"' not in line]
    result = timed_steps(steps, args.warmup)
    result["peak_rss_mib"] = peak_kib / 1024
    return result


def run_hf(args, batches_path: str, out_path: str) -> dict:
    command = [os.path.join(args.venv, "bin", "python"), os.path.abspath(__file__), "--hf-worker",
               "--batches", batches_path, "--hf-dir", args.hf_dir, "--threads", str(args.threads),
               "--seed", str(args.seed), "--worker-out", out_path]
    peak_kib = run_measured(command, thread_environment(args.threads), out_path + ".log")
    with open(out_path) as f:
        worker = json.load(f)
    result = timed_steps(worker["steps"], args.warmup)
    result["peak_rss_mib"] = peak_kib / 1024
    result["versions"] = worker["versions"]
    return result


# ---------------------------------------------------------------------------------------------
# Hugging Face worker: runs in the venv with torch, transformers and PEFT.

def hf_worker(args) -> None:
    import torch
    import transformers
    import peft

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(args.batches) as f:
        batches = json.load(f)["batches"]

    model = transformers.Gemma3ForCausalLM.from_pretrained(args.hf_dir, dtype=torch.float32)
    model.config.use_cache = False
    lora = peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=TARGETS, bias="none",
                           task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, lora)
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    steps = []
    for batch in batches:
        start = time.perf_counter()
        input_ids = torch.tensor(batch["input_ids"], dtype=torch.long)
        attention_mask = torch.tensor(batch["attention_mask"], dtype=torch.long)
        loss_mask = torch.tensor(batch["loss_mask"], dtype=torch.long)
        # transformers shifts the labels itself: label i is scored by the logits at i - 1, as
        # subzero's loss mask marks token i.
        labels = torch.where(loss_mask > 0, input_ids, torch.full_like(input_ids, -100))
        output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        steps.append({"loss": output.loss.item(), "seconds": seconds,
                      "trained_tokens": int(loss_mask[:, 1:].sum()), "tokens": int(attention_mask.sum())})
        print("step %d: loss %.4f, %.2f s" % (len(steps), steps[-1]["loss"], seconds), flush=True)

    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                "attention": model.base_model.model.config._attn_implementation}
    with open(args.worker_out, "w") as f:
        json.dump({"steps": steps, "versions": versions}, f)


# ---------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--venv", default=os.environ.get("SUBZERO_TRAIN_BENCH_VENV",
                                                         os.path.join(CACHE, "train-bench-venv")))
    parser.add_argument("--hf-dir", default=os.path.join(CACHE, "gemma3-270m-hf-f32"))
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "persona", "train.jsonl"))
    parser.add_argument("--work", default=os.path.join(CACHE, "train-bench"))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each run")
    parser.add_argument("--steps", type=int, default=10, help="timed steps after the warm-up")
    parser.add_argument("--rounds", type=int, default=2, help="subzero, Hugging Face pairs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hf-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batches", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hf_worker:
        hf_worker(args)
        return

    os.makedirs(args.work, exist_ok=True)
    ensure_hf_model(args)
    config_path = os.path.join(args.work, "config.json")
    with open(config_path, "w") as f:
        json.dump(train_config(args), f, indent=2)
    batches_path = os.path.join(args.work, "batches.json")
    subprocess.run([os.path.join(args.build, "train_batches_bench"), "gemma3-270m", config_path, args.data,
                    str(args.warmup + args.steps), batches_path], check=True)

    lock = open(LOCK, "a")
    print("train_speed: waiting for %s" % LOCK, flush=True)
    fcntl.flock(lock, fcntl.LOCK_EX)
    rows = []
    for round_index in range(args.rounds):
        run_dir = os.path.join(args.work, "subzero-%d" % round_index)
        subprocess.run(["rm", "-rf", run_dir], check=True)
        subzero = run_subzero(args, config_path, args.data, run_dir)
        hf = run_hf(args, batches_path, os.path.join(args.work, "hf-%d.json" % round_index))
        rows.append((subzero, hf))
        print("round %d: subzero %.1f trained tokens/s, %.0f MiB; HF %.1f trained tokens/s, %.0f MiB; first loss "
              "%.4f vs %.4f" % (round_index + 1, subzero["trained_tokens_per_s"], subzero["peak_rss_mib"],
                                hf["trained_tokens_per_s"], hf["peak_rss_mib"], subzero["first_loss"],
                                hf["first_loss"]), flush=True)
    fcntl.flock(lock, fcntl.LOCK_UN)

    print()
    print("HF side:", json.dumps(rows[0][1]["versions"]))
    print("| run | trainer | trained tokens/s | tokens/s | peak RSS MiB | step-1 loss |")
    print("|---|---|---|---|---|---|")
    for index, (subzero, hf) in enumerate(rows):
        for name, result in (("subzero", subzero), ("transformers + PEFT", hf)):
            print("| %d | %s | %.1f | %.1f | %.0f | %.4f |" % (index + 1, name, result["trained_tokens_per_s"],
                                                           result["tokens_per_s"], result["peak_rss_mib"],
                                                           result["first_loss"]))
    speed = statistics.median(s["trained_tokens_per_s"] / h["trained_tokens_per_s"] for s, h in rows)
    total = statistics.median(s["tokens_per_s"] / h["tokens_per_s"] for s, h in rows)
    memory = statistics.median(s["peak_rss_mib"] / h["peak_rss_mib"] for s, h in rows)
    print("median ratios subzero / HF: trained tokens/s %.2f, tokens/s %.2f, peak RSS %.2f" % (speed, total, memory))


if __name__ == "__main__":
    main()
