"""The ComfyUI frontends the real-frontend tests run on, in both node renderings, and a server for each.

The frontend installed with ComfyUI's requirements (the server's default; the snapshot pins 1.27.10) and every
static folder listed in COMFYUI_FRONTEND_ROOTS (os.pathsep-separated, each served with ``main.py --front-end-root``;
dev/test.sh lists the newest comfyui-frontend-package there), each in classic mode and in Nodes 2.0 (the setting
Comfy.VueNodes.Enabled, set by the scripts through the settings API). Tests take ``frontend`` with session scope, so
pytest runs each frontend's tests together and one server per frontend serves them all, one server at a time.
"""
import contextlib
import importlib.metadata
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import server
from .scene import write_picture

MODES = ("classic", "nodes2")
# Vue-rendered nodes show DOM widgets (the editor) since the frontend's "Implement DOMWidget for vue" (October 2025,
# after 1.27). 1.27.10's Vue rendering, a hidden experiment, shows the editor's hidden text fields instead (checked);
# 1.58.1 renders the editor (tested). 1.28 is the first minor release after that change; not itself checked here.
NODES2_SINCE = (1, 28)
DIST_INFO = "comfyui_frontend_package-*.dist-info"


@dataclass(frozen=True)
class Frontend:
    version: str
    root: str | None = None  # a static folder for --front-end-root; None: the installed package

    def __str__(self):
        return self.version


def version_of(root: Path) -> str:
    """A static folder's version, from the dist-info beside its package (<target>/comfyui_frontend_package/static)."""
    for folder in (root.parent.parent, root.parent):
        found = sorted(folder.glob(DIST_INFO))
        if found:
            return found[-1].name.removeprefix("comfyui_frontend_package-").removesuffix(".dist-info")
    return f"unknown-{root.parent.name}"


def all_frontends() -> list:
    frontends = []
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        frontends.append(Frontend(importlib.metadata.version("comfyui-frontend-package")))
    for root in os.environ.get("COMFYUI_FRONTEND_ROOTS", "").split(os.pathsep):
        if root.strip():
            frontends.append(Frontend(version_of(Path(root)), str(Path(root).resolve())))
    return frontends


FRONTENDS = all_frontends()

# Stacked on a test: its ids read "<frontend version>-<mode>", and its runs are grouped by frontend across modules.
each_frontend_and_mode = [
    pytest.mark.parametrize("frontend", FRONTENDS or [None], ids=str, scope="session"),
    pytest.mark.parametrize("mode", MODES),
]


def parametrize_frontends(test):
    for mark in each_frontend_and_mode:
        test = mark(test)
    return test


def skip_unless_supported(frontend, mode):
    if frontend is None:
        pytest.skip("no ComfyUI frontend: install comfyui-frontend-package or set COMFYUI_FRONTEND_ROOTS")
    if mode == "nodes2" and tuple(int(p) for p in frontend.version.split(".")[:2] if p.isdigit()) < NODES2_SINCE:
        pytest.skip(f"frontend {frontend.version} has no Nodes 2.0: its Vue node rendering (a hidden experiment) "
                    "shows no DOM widgets, so no point editor")


@contextlib.contextmanager
def serving(tmp_path_factory, frontend):
    """ComfyUI serving ``frontend``, with the scene picture and the stock example.png in its input folder and the
    templates' model names as placeholder files (the templates queue as opened)."""
    example = Path(server.COMFYUI_PATH or "") / "input" / "example.png"
    inputs = {"scene.png": write_picture}
    if example.is_file():
        inputs["example.png"] = lambda path: shutil.copy(example, path)
    args = ("--front-end-root", frontend.root) if frontend.root else ()
    with server.serving(tmp_path_factory, f"comfy-frontend-{frontend}", inputs, placeholder_checkpoint=True,
                        browser=True, extra_args=args) as running:
        yield running


def run_script(script: Path, running, frontend, mode, *args, timeout: int = 180) -> dict:
    """Run one of web/tests/frontend/*.mjs in ``mode`` on ``running`` (a server of ``frontend``); the summary, after
    checking that the page served was that frontend in that mode."""
    summary = server.run_frontend_script(script, running["url"], "--mode", mode, *args, timeout=timeout)
    served = summary.get("frontend")
    if served:  # absent when the script failed before opening the page (then its summary says why)
        expected = {"version": served["version"] if frontend.version.startswith("unknown-") else frontend.version,
                    "mode": mode, "vueNodes": mode == "nodes2"}
        assert served == expected, served
    return summary
