#!/usr/bin/env bash
# The main job, from a fresh machine: installs what is missing, builds, then runs the whole
# method on the real Gemma 3 270M with the sample persona (configs/wren.json) into runs/wren.
# Extra arguments go to `subzero run` (for example --out /tmp/wren). Rerunning resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/subzero run configs/wren.json "$@"
