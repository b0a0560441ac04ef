#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (GoogleTest through CTest).
# The suite uses the real Gemma 3 270M GGUF and llama.cpp (llama-cpp-python) as references.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
# Idle OpenMP workers sleep instead of spinning (see src/core/threading.h); set here because
# the test binary does not re-execute itself.
export OMP_WAIT_POLICY=PASSIVE
ctest --output-on-failure --timeout 1500 -j 1
