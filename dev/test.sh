#!/usr/bin/env bash
# Set up and run every test: Python (core, diffusers reference, ComfyUI host tests when
# COMFYUI_PATH is set), the point editor's unit tests, and its headless-Chromium tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash dev/setup_env.sh | tail -n 1)"

status=0
echo "== lint: ruff (rules in pyproject.toml)"
"$PY" -m ruff check . || status=$?

"$PY" -m pytest -ra || status=$?

echo "== web: point editor unit tests"
(cd web && npm test --silent) || status=$?

echo "== web: point editor in headless Chromium"
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || true
fi
if [ -x "$CHROMIUM" ]; then
  (cd web && npm ci --no-audit --no-fund --silent && CHROMIUM_PATH="$CHROMIUM" npm run -s test:browser) || status=$?
elif [ "${CI:-}" = "true" ]; then
  echo "Chromium is required in CI but could not be installed"; status=1
else
  echo "SKIPPED: no Chromium at $CHROMIUM (install Debian's 'chromium' or set CHROMIUM_PATH)"
fi
exit $status
