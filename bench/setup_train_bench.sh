#!/usr/bin/env bash
# Installs the Hugging Face side of bench/train_speed.py into its own virtual environment:
# PyTorch, transformers, PEFT, safetensors, psutil and sentencepiece, all from PyPI at pinned
# versions.
# Benchmarks are opt-in, so scripts/setup.sh does not call this. Safe to run again: an
# environment that already has these versions is left as it is.
#
#   bench/setup_train_bench.sh            # venv in ~/.cache/subzero/train-bench-venv
#   SUBZERO_TRAIN_BENCH_VENV=DIR bench/setup_train_bench.sh
#
# PyPI's Linux x86_64 torch wheel is built with CUDA, and its shared libraries link the NVIDIA
# runtime libraries (about 3 GB of nvidia-* wheels), so `import torch` fails without them even
# on a CPU-only machine. Measured on a 2-core machine with other jobs running: about 13 minutes
# and 5.6 GB, of which this script removes triton again (1 GB), which torch imports only to
# generate GPU kernels. The benchmark runs on the CPU.
set -euo pipefail

PINNED_PACKAGES=(
  "torch==2.15.0"
  "transformers==5.23.0"
  "peft==0.21.2"
  "accelerate==1.15.0"
  "safetensors==0.8.0"
  "psutil==7.2.2"
  "sentencepiece==0.2.1"  # transformers reads the tokenizer.model that subzero exports
  "protobuf==7.36.2"
)
VENV=${SUBZERO_TRAIN_BENCH_VENV:-$HOME/.cache/subzero/train-bench-venv}
PYTHON=${PYTHON:-python3}

# Exits 0 when the venv has exactly the pinned versions.
check_versions() {
  "$VENV/bin/python" - "${PINNED_PACKAGES[@]}" <<'PY'
import importlib.metadata
import sys

for pin in sys.argv[1:]:
    name, version = pin.split("==")
    installed = importlib.metadata.version(name).split("+")[0]
    if installed != version:
        sys.exit(f"{name} {installed} is installed, {version} is pinned")
PY
}

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup_train_bench: creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if ! check_versions 2>/dev/null; then
  echo "setup_train_bench: installing ${PINNED_PACKAGES[*]} (several GB, see the header)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PINNED_PACKAGES[@]}"
  "$VENV/bin/python" -m pip uninstall -q -y triton
fi
check_versions

# One LoRA-style backward step on the CPU proves the install works without triton.
"$VENV/bin/python" - <<PY
import torch, transformers, peft

layer = torch.nn.Linear(8, 8)
layer(torch.randn(2, 8)).sum().backward()
print("setup_train_bench: torch", torch.__version__, "transformers", transformers.__version__,
      "peft", peft.__version__, "in $VENV")
PY
