#!/usr/bin/env bash
# Set up and run every check (CI runs exactly this): ruff; the Python tests (core against diffusers; the host
# tests inside a real ComfyUI, with its real frontend in headless Chromium on two frontends, each in classic
# and Nodes 2.0 mode); comfy-cli's node validation; the point editor's unit and browser tests.
#
# ComfyUI: COMFYUI_PATH, else the snapshot at ../shared/comfyui where it exists; COMFYUI_PATH= (empty) runs
# without one, and the host tests report themselves skipped. The frontends: the one the ComfyUI's
# requirements pin (installed into .venv) and the newest comfyui-frontend-package on the package index
# (FRONTEND_VERSION=X.Y.Z for another), served with --front-end-root.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
if [ -z "${COMFYUI_PATH+set}" ] && [ -f ../shared/comfyui/main.py ]; then
  COMFYUI_PATH="$(cd ../shared/comfyui && pwd)"
fi
export COMFYUI_PATH="${COMFYUI_PATH:-}"
PY="$(bash dev/setup_env.sh | tail -n 1)"
status=0

echo "== browser: Chromium and playwright-core (the widget's tests and the real-frontend host tests)"
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || true
fi
if [ -x "$CHROMIUM" ]; then
  export CHROMIUM_PATH="$CHROMIUM"
  (cd web && npm ci --no-audit --no-fund --silent) || status=$?
elif [ "${CI:-}" = "true" ]; then
  echo "Chromium is required in CI but could not be installed"; status=1
else
  echo "SKIPPED: no Chromium at $CHROMIUM (install Debian's 'chromium' or set CHROMIUM_PATH)"
fi

if [ -n "$COMFYUI_PATH" ]; then
  echo "== host: ComfyUI $("$PY" -c "import sys; sys.path.insert(0, sys.argv[1]); import comfyui_version as v; \
print(v.__version__)" "$COMFYUI_PATH") at $COMFYUI_PATH"
  spec="comfyui-frontend-package${FRONTEND_VERSION:+==$FRONTEND_VERSION}"
  rm -rf .frontends/newest
  "$PY" -m pip --disable-pip-version-check install -q --no-deps --target .frontends/newest "$spec" \
    2> >(grep -v "is ignored: it is neither" >&2) || status=$?
  export COMFYUI_FRONTEND_ROOTS="$PWD/.frontends/newest/comfyui_frontend_package/static"
  echo "   frontends: $("$PY" -m pip show comfyui-frontend-package 2>/dev/null | sed -n 's/^Version: //p') (pinned)" \
    "and $(ls .frontends/newest | sed -n 's/^comfyui_frontend_package-\(.*\)\.dist-info$/\1/p') (newest)"
fi

echo "== lint: ruff (rules in pyproject.toml)"
"$PY" -m ruff check . || status=$?

echo "== pytest"
"$PY" -m pytest -ra || status=$?

echo "== comfy-cli: comfy node validate (the registry's checks)"
if [ ! -x .venv-cli/bin/comfy ]; then
  python3 -m venv .venv-cli && .venv-cli/bin/python -m pip --disable-pip-version-check install -q comfy-cli \
    2> >(grep -v "is ignored: it is neither" >&2) || status=$?
fi
.venv-cli/bin/comfy --skip-prompt --no-enable-telemetry node validate || status=$?

echo "== web: point editor unit tests"
(cd web && npm test --silent) || status=$?

echo "== web: point editor in headless Chromium"
if [ -x "$CHROMIUM" ]; then
  (cd web && npm run -s test:browser) || status=$?
fi
echo "== done in $((SECONDS - started)) s, exit $status"
exit $status
