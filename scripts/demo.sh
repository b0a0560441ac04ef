#!/usr/bin/env bash
# The main job, from a fresh machine: installs what is missing, builds, then chats with the
# real Gemma 3 270M. Extra arguments go to `subzero chat` (for example --temp 0 or --seed 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/subzero chat gemma3-270m "$@"
