#!/usr/bin/env bash
# Create (or reuse) .venv with CPU-or-GPU torch and the pack's Python dependencies.
# torch is pinned so a registry with a local wheel does not pull several GB of CUDA packages;
# override with TORCH_SPEC="torch==X.Y.Z" if you need another build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
# Keep real pip errors, drop this machine's noise about absent local index folders.
quiet_pip() { "$PY" -m pip "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
if ! "$PY" -c "import torch" 2>/dev/null; then
  quiet_pip install -q "$TORCH_SPEC"
fi
quiet_pip install -q -r requirements.txt -r requirements-test.txt
echo "$PY"
