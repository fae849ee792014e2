#!/usr/bin/env bash
# Set up and run the main job: the full DiffEdit pipeline headless through the core.
# Default: an embedded tiny random model. Pass --model DIR for a diffusers-format checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash tools/setup_env.sh | tail -n 1)"
exec "$PY" -m tools.demo "$@"
