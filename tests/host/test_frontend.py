"""The point editor in the real ComfyUI frontend, served by a headless ComfyUI.

Starts ``main.py`` of COMFYUI_PATH as a subprocess (CPU, a temporary base directory with
this pack symlinked into custom_nodes/ and a test picture in input/), then runs
web/tests/frontend/point_editor_frontend.mjs, which drives Debian's chromium through
playwright-core and prints a JSON summary of its checks.

Skipped (with the reason) without COMFYUI_PATH, node, web/node_modules/playwright-core,
the comfyui-frontend-package or chromium; with CI=true, a missing chromium fails instead.
"""
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

PACK_ROOT = Path(__file__).resolve().parents[2]
PACK_NAME = "comfyui-drag-diffedit"
SCRIPT = PACK_ROOT / "web" / "tests" / "frontend" / "point_editor_frontend.mjs"
COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
IMAGE_SIZE = (512, 384)
SERVER_START_TIMEOUT = 120
SCRIPT_TIMEOUT = 120


def _missing_requirement():
    """The reason this test cannot run here, or None."""
    if not COMFYUI_PATH or not (Path(COMFYUI_PATH) / "main.py").is_file():
        return "needs a ComfyUI checkout: set COMFYUI_PATH=/path/to/ComfyUI"
    if importlib.util.find_spec("comfyui_frontend_package") is None:
        return f"the ComfyUI frontend is not installed in {sys.executable} (pip install comfyui-frontend-package)"
    if shutil.which("node") is None:
        return "needs Node.js (`node`) to drive the browser"
    if not (PACK_ROOT / "web" / "node_modules" / "playwright-core").is_dir():
        return "needs playwright-core: run `cd web && npm ci`"
    if not os.access(CHROMIUM, os.X_OK):
        message = f"needs chromium at {CHROMIUM} (Debian: apt-get install chromium, or set CHROMIUM_PATH)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}", pytrace=False)
        return message
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_picture(path):
    """A small synthetic landscape, so the editor has something to show."""
    from PIL import Image, ImageDraw

    width, height = IMAGE_SIZE
    img = Image.new("RGB", IMAGE_SIZE, (120, 170, 220))
    draw = ImageDraw.Draw(img)
    for y in range(height):
        t = y / height
        draw.line([(0, y), (width, y)], fill=(int(90 + 100 * t), int(150 + 60 * t), int(220 - 60 * t)))
    draw.rectangle((0, 250, width, height), fill=(80, 130, 60))
    draw.ellipse((380, 40, 450, 110), fill=(255, 214, 102))
    draw.polygon([(180, 250), (320, 120), (470, 250)], fill=(120, 130, 150))
    draw.rectangle((90, 230, 170, 300), fill=(200, 80, 70))
    img.save(path)


def _wait_for_server(url, proc, log_path):
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ComfyUI exited with {proc.returncode} while starting; log:\n{_tail(log_path)}", pytrace=False)
        try:
            with urllib.request.urlopen(url + "object_info/DragEdit_DragLatentOptimize", timeout=2) as res:
                if b"DragEdit_DragLatentOptimize" in res.read():
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"ComfyUI did not serve the pack within {SERVER_START_TIMEOUT}s; log:\n{_tail(log_path)}", pytrace=False)


def _tail(path, lines=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory):
    reason = _missing_requirement()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("comfy-frontend")
    for sub in ("custom_nodes", "input", "output", "temp", "user", "models"):
        (base / sub).mkdir()
    (base / "custom_nodes" / PACK_NAME).symlink_to(PACK_ROOT, target_is_directory=True)
    _write_picture(base / "input" / "scene.png")
    port = _free_port()
    log_path = base / "server.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
             "--base-directory", str(base), "--database-url", "sqlite:///:memory:", "--disable-api-nodes"],
            cwd=COMFYUI_PATH, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for_server(url, proc, log_path)
        yield {"url": url, "base": base, "log": log_path}
    finally:
        _stop(proc)


def test_point_editor_in_real_frontend(comfy_server):
    cmd = ["node", str(SCRIPT), "--url", comfy_server["url"], "--image", "scene.png",
           "--width", str(IMAGE_SIZE[0]), "--height", str(IMAGE_SIZE[1]), "--chromium", CHROMIUM]
    try:
        run = subprocess.run(cmd, cwd=PACK_ROOT, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the browser script ran over {SCRIPT_TIMEOUT}s; stderr:\n{e.stderr}", pytrace=False)
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON from the browser script (exit {run.returncode}); stderr:\n{run.stderr[-4000:]}"
    summary = json.loads(lines[-1])
    details = json.dumps({k: v for k, v in summary.items() if k != "errors"}, indent=1)[:6000]

    assert "exception" not in summary, summary["exception"] + "\n" + details
    failed = {name: c.get("detail") for name, c in summary["checks"].items() if not c["ok"]}
    assert not failed, f"failed checks: {json.dumps(failed, indent=1)}\nerrors: {summary.get('errors')}"

    # the pack's scripts load and nothing it does logs an error (the host's own startup 404s are not ours)
    assert summary["error_counts"]["ours"] == 0, summary["errors"]
    assert summary["error_counts"]["after_startup"] == 0, summary["errors"]

    # the API prompt and the queued request carry exactly the clicked pairs
    pairs = json.loads(summary["api_prompt_drag_points"])
    assert len(pairs) == 2 and all(set(p) == {"handle", "target"} for p in pairs), pairs
    assert summary["queued_drag_points"] == summary["api_prompt_drag_points"] == summary["widget_value"]
    assert summary["reloaded_value"] == summary["widget_value"]

    # malformed drag_points: an error message on the node, no exception, the text kept as it was
    assert len(summary["malformed"]) == 3
    for entry in summary["malformed"]:
        assert entry["message"] and not entry["load_error"] and not entry["new_errors"], entry
        assert entry["canvas_draws"] and entry["raw_kept"], entry
    assert run.returncode == 0, details
