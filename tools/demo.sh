#!/usr/bin/env bash
# Set up and run the main job headless through the core: the full DiffEdit pipeline (tools/demo.py), or with
# `drag` as the first argument the DragDiffusion real-image pipeline (tools/demo_drag.py).
# Default: an embedded tiny random model. Pass --model DIR for a diffusers-format checkpoint.
#   bash tools/demo.sh [args]        DiffEdit
#   bash tools/demo.sh drag [args]   DragDiffusion (LoRA, inversion, drag, MasaCtrl)
set -euo pipefail
cd "$(dirname "$0")/.."
MODULE=tools.demo
if [ "${1:-}" = "drag" ]; then
  MODULE=tools.demo_drag
  shift
fi
PY="$(bash tools/setup_env.sh | tail -n 1)"
exec "$PY" -m "$MODULE" "$@"
