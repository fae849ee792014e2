#!/usr/bin/env bash
# Set up and run the main job headless through the core. Default: an embedded tiny random model;
# pass --model DIR for a diffusers-format checkpoint.
#   bash tools/demo.sh                   both pipelines: demo_output/diffedit and demo_output/drag
#   bash tools/demo.sh diffedit [args]   DiffEdit (tools/demo.py)
#   bash tools/demo.sh drag [args]       DragDiffusion real image: LoRA, inversion, drag, MasaCtrl (tools/demo_drag.py)
#   bash tools/demo.sh --option ...      DiffEdit with those options (as before)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash dev/setup_env.sh | tail -n 1)"
case "${1:-}" in
  "")
    "$PY" -m tools.demo --out demo_output/diffedit --overwrite
    exec "$PY" -m tools.demo_drag --out demo_output/drag --overwrite ;;
  drag) shift; exec "$PY" -m tools.demo_drag "$@" ;;
  diffedit) shift; exec "$PY" -m tools.demo "$@" ;;
  *) exec "$PY" -m tools.demo "$@" ;;
esac
