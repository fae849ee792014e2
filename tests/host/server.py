"""A real ComfyUI server (``main.py`` of COMFYUI_PATH) with this pack, for the tests that talk HTTP to it."""
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.comfy_server import PACK_NAME, PACK_ROOT, tail  # noqa: F401 (the host tests' names)
from tests.support.comfy_server import comfy_server as _comfy_server

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")


def missing_requirement():
    """Why a server cannot start here, or None."""
    if not COMFYUI_PATH or not (Path(COMFYUI_PATH) / "main.py").is_file():
        return "needs a ComfyUI checkout: set COMFYUI_PATH=/path/to/ComfyUI"
    if importlib.util.find_spec("comfyui_frontend_package") is None:
        return f"the ComfyUI frontend is not installed in {sys.executable} (pip install comfyui-frontend-package)"
    return None


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def browser_missing_requirement():
    """Why the real frontend cannot be driven here, or None; with CI=true a missing chromium fails instead."""
    reason = missing_requirement()
    if reason:
        return reason
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


def run_frontend_script(script: Path, url: str, *args: str, timeout: int = 180) -> dict:
    """Run one of web/tests/frontend/*.mjs against ``url``; returns its JSON summary (fails the test on a crash)."""
    command = ["node", str(script), "--url", url, "--chromium", CHROMIUM, *args]
    try:
        run = subprocess.run(command, cwd=PACK_ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{script.name} ran over {timeout}s; stderr:\n{error.stderr}", pytrace=False)
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if not lines:
        pytest.fail(f"{script.name} printed no summary (exit {run.returncode}); stderr:\n{run.stderr[-3000:]}",
                    pytrace=False)
    return json.loads(lines[-1])


# What the templates name in their loaders: queue-time validation only lists model names, so placeholder files of
# those names let a template be queued; they are never loaded unless the graph runs.
TEMPLATE_MODELS = {"checkpoints": ["v1-5-pruned-emaonly.safetensors", "sd-v1-5-inpainting.safetensors",
                                   "flux1-dev-fp8.safetensors", "sd_xl_base_1.0_inpainting_0.1.safetensors"],
                   "loras": ["lcm-lora-sdv1-5.safetensors", "lcm_lora_sdxl.safetensors"],
                   "diffusion_models": ["flux1-fill-dev.safetensors"],
                   "text_encoders": ["clip_l.safetensors", "t5xxl_fp16.safetensors"], "vae": ["ae.safetensors"]}


@contextlib.contextmanager
def serving(tmp_path_factory, name: str, inputs: dict, placeholder_checkpoint: bool = False, browser: bool = False,
            extra_args=()):
    """A server for a test module: skipped (with the reason) where it cannot start; ``inputs`` maps file names in
    its input folder to functions that write them; ``placeholder_checkpoint`` adds the templates' model names;
    ``extra_args`` go to main.py (a frontend's --front-end-root)."""
    reason = browser_missing_requirement() if browser else missing_requirement()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp(name)
    (base / "input").mkdir()
    for file_name, write in inputs.items():
        write(base / "input" / file_name)
    if placeholder_checkpoint:
        for folder, names in TEMPLATE_MODELS.items():
            (base / "models" / folder).mkdir(parents=True, exist_ok=True)
            for model in names:
                (base / "models" / folder / model).write_bytes(b"never loaded")
    with comfy_server(base, extra_args) as started:
        yield started


def comfy_server(base: Path, extra_args=()):
    """Serve ComfyUI (COMFYUI_PATH) on the CPU from ``base``; yields ``{"url", "base", "log"}``."""
    return _comfy_server(base, COMFYUI_PATH, extra_args)
