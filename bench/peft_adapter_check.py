"""Checks that the PEFT adapter `subzero export --peft-out` writes (atlas surgery and LoRA in one
adapter for the unmodified base) gives PEFT the same model that subzero merges.

    ~/.cache/subzero/train-bench-venv/bin/python bench/peft_adapter_check.py \
        --atlas runs/wren/atlas --adapter runs/wren/train/adapter

Runs in the venv of bench/setup_train_bench.sh. Steps:
  - subzero exports the merged model as a float32 GGUF and writes the combined PEFT adapter;
  - transformers loads the float32 Hugging Face folder of the base model and PEFT applies the
    adapter (rank_pattern and alpha_pattern give each module its own rank and scale);
  - both produce float32 logits on a chat-formatted text, compared as the max absolute
    difference and the argmax agreement. The base model alone is compared too, as a scale for
    how far the adapter moves the logits.
Prints one JSON object.
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import peft
import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = ("<start_of_turn>user\nwhat do you think of pineapple on pizza?<end_of_turn>\n<start_of_turn>model\n"
        "honestly it's fine. sweet and salty works, people just like having something to argue about.<end_of_turn>\n")


def subzero_logits(build: str, model: str, ids: list, work: str) -> np.ndarray:
    path = os.path.join(work, "logits.f32")
    subprocess.run([os.path.join(build, "logits_dump_bench"), model, ",".join(str(i) for i in ids), path], check=True)
    return np.fromfile(path, dtype=np.float32).reshape(len(ids), -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--hf-dir", default=os.path.expanduser("~/.cache/subzero/gemma3-270m-hf-f32"))
    parser.add_argument("--atlas", required=True)
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    subzero = os.path.join(args.build, "subzero")

    ids = json.loads(subprocess.run([subzero, "tokenize", "gemma3-270m", TEXT, "--json"], check=True,
                                    capture_output=True, text=True).stdout)["ids"]
    with tempfile.TemporaryDirectory() as work:
        merged = os.path.join(work, "tuned-f32.gguf")
        peft_dir = os.path.join(work, "peft")
        subprocess.run([subzero, "export", "gemma3-270m", "--atlas", args.atlas, "--adapter", args.adapter,
                        "--out", merged, "--outtype", "f32", "--peft-out", peft_dir], check=True,
                       capture_output=True)
        ours = subzero_logits(args.build, merged, ids, work)
        base_ours = subzero_logits(args.build, "gemma3-270m", ids, work)

        model = transformers.Gemma3ForCausalLM.from_pretrained(args.hf_dir, dtype=torch.float32)
        model = peft.PeftModel.from_pretrained(model, peft_dir)
        model.eval()
        with torch.no_grad():
            theirs = model(torch.tensor([ids])).logits[0].numpy()

    print(json.dumps({
        "tokens": len(ids),
        "peft_vs_subzero_merged_max_abs_difference": float(np.abs(ours - theirs).max()),
        "peft_vs_subzero_merged_argmax_agreement": float((ours.argmax(-1) == theirs.argmax(-1)).mean()),
        "adapter_effect_max_abs_difference": float(np.abs(ours - base_ours).max()),
        "logit_range": [float(theirs.min()), float(theirs.max())],
    }))


if __name__ == "__main__":
    main()
