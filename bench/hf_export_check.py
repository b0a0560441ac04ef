"""Checks that transformers reads the Hugging Face folder that `subzero export --hf-dir` writes
as the same model and tokenizer that subzero uses.

    ~/.cache/subzero/train-bench-venv/bin/python bench/hf_export_check.py [--build build] [--hf-dir DIR]

Runs in the venv of bench/setup_train_bench.sh. Compares
  - the token ids of a chat-formatted text from transformers' tokenizer with `subzero tokenize`;
  - transformers' Gemma3ForCausalLM float32 logits on those ids with subzero's
    (build/logits_dump_bench), as the max absolute difference and the argmax agreement.
Prints one JSON object.
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = ("<start_of_turn>user\nwhat did you have for dinner?<end_of_turn>\n<start_of_turn>model\n"
        "beans on toast with a fried egg on top. Ünïcödé, 中文, and emoji 😀 too.<end_of_turn>\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--hf-dir", default=os.path.expanduser("~/.cache/subzero/gemma3-270m-hf-f32"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    subzero_ids = json.loads(subprocess.run([os.path.join(args.build, "subzero"), "tokenize", "gemma3-270m", TEXT,
                                             "--json"], check=True, capture_output=True, text=True).stdout)["ids"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.hf_dir)
    hf_ids = tokenizer(TEXT)["input_ids"]

    with tempfile.TemporaryDirectory() as work:
        logits_path = os.path.join(work, "logits.f32")
        subprocess.run([os.path.join(args.build, "logits_dump_bench"), "gemma3-270m",
                        ",".join(str(i) for i in subzero_ids), logits_path], check=True)
        ours = np.fromfile(logits_path, dtype=np.float32).reshape(len(subzero_ids), -1)

    model = transformers.Gemma3ForCausalLM.from_pretrained(args.hf_dir, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        theirs = model(torch.tensor([subzero_ids])).logits[0].numpy()

    difference = np.abs(ours - theirs)
    print(json.dumps({
        "tokens": len(subzero_ids),
        "token_ids_equal": hf_ids == subzero_ids,
        "model_class": type(model).__name__,
        "max_abs_logit_difference": float(difference.max()),
        "logit_range": [float(theirs.min()), float(theirs.max())],
        "argmax_agreement": float((ours.argmax(-1) == theirs.argmax(-1)).mean()),
    }))


if __name__ == "__main__":
    main()
