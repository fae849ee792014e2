"""A real ComfyUI server (``main.py`` of a ComfyUI checkout) on the CPU with this pack, from a fresh base folder:
for the host tests that talk HTTP to it and for the bench."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
PACK_NAME = "comfyui-drag-diffedit"
START_TIMEOUT = 120


class ServerFailed(RuntimeError):
    """The server exited or did not serve the pack in time; the message ends with its log."""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_for_server(url, proc, log_path):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"ComfyUI exited with {proc.returncode} while starting; log:\n{tail(log_path)}")
        try:
            with urllib.request.urlopen(url + "object_info/DragEdit_DragLatentOptimize", timeout=2) as res:
                if b"DragEdit_DragLatentOptimize" in res.read():
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServerFailed(f"ComfyUI did not serve the pack within {START_TIMEOUT}s; log:\n{tail(log_path)}")


def _stop(proc):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@contextlib.contextmanager
def comfy_server(base: Path, comfyui_path: str, extra_args=()):
    """Serve ComfyUI on the CPU from a fresh base directory, ``extra_args`` added to main.py's command line;
    yields ``{"url", "base", "log"}``."""
    for sub in ("custom_nodes", "input", "output", "temp", "user", "models"):
        (base / sub).mkdir(exist_ok=True)
    (base / "custom_nodes" / PACK_NAME).symlink_to(PACK_ROOT, target_is_directory=True)
    port = _free_port()
    log_path = base / "server.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
             "--base-directory", str(base), "--database-url", "sqlite:///:memory:", "--disable-api-nodes",
             *extra_args],
            cwd=comfyui_path, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for_server(url, proc, log_path)
        yield {"url": url, "base": base, "log": log_path}
    finally:
        _stop(proc)
