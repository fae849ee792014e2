#!/usr/bin/env bash
# Create (or reuse) .venv with torch and the pack's test dependencies; prints the venv's python on its last line.
#
# With COMFYUI_PATH set to a ComfyUI checkout, also ComfyUI's own requirements (the host tests import it and serve
# it), and torch comes from the package index: torchvision's wheels there are built against the index's torch
# build, and a local CPU-only torch cannot load their operators ("operator torchvision::nms does not exist").
# torch stays at the pin either way (ComfyUI's requirements name torch and torchvision unpinned, which would
# upgrade it); torchaudio is left out (it can break `import transformers`, and nothing here uses it).
# Override the pin with TORCH_SPEC="torch==X.Y.Z".
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
COMFYUI_PATH="${COMFYUI_PATH:-}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
# Keep real pip errors, drop this machine's noise about absent local index folders.
quiet_pip() { "$PY" -m pip --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2); }

if [ -z "$COMFYUI_PATH" ]; then
  if ! "$PY" -c "import torch" 2>/dev/null; then
    quiet_pip install -q "$TORCH_SPEC"
  fi
  quiet_pip install -q -r requirements.txt -r requirements-test.txt
  echo "$PY"
  exit 0
fi

if [ ! -f "$COMFYUI_PATH/requirements.txt" ]; then
  echo "COMFYUI_PATH=$COMFYUI_PATH is not a ComfyUI checkout (no requirements.txt)" >&2
  exit 1
fi
if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
  # --isolated: the index's builds, not a local find-links wheel of the same version
  quiet_pip --isolated install -q --force-reinstall "$TORCH_SPEC" torchvision
fi
TORCH_PIN="torch==$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")"
grep -vE '^\s*(torch|torchvision|torchaudio)\s*([#;].*)?$' "$COMFYUI_PATH/requirements.txt" > "$VENV/comfyui-requirements.txt"
echo "$TORCH_PIN" > "$VENV/torch-constraint.txt"
# lpips: only DragBench's Image Fidelity node needs it (not a requirement of the pack)
quiet_pip install -q -c "$VENV/torch-constraint.txt" -r requirements.txt -r requirements-test.txt \
  -r "$VENV/comfyui-requirements.txt" lpips
quiet_pip uninstall -q -y torchaudio 2>/dev/null || true
echo "$PY"
