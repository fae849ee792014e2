"""Host tests: the pack inside a real ComfyUI, found through COMFYUI_PATH.

They build tiny models from ComfyUI's own model classes (no weights exist
offline) and run the nodes in-process under ``torch.inference_mode()``, as
ComfyUI's executor does.
"""
import os
import sys
from pathlib import Path

import pytest

from tests.support import comfy_host

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")


@pytest.hookimpl(trylast=True)  # after pytest has grouped the real-frontend tests by frontend
def pytest_collection_modifyitems(config, items):
    # the real-frontend tests last: each frontend's server (frontend_server) then lives only while its tests run
    uses_frontend = [item for item in items if "frontend" in getattr(getattr(item, "callspec", None), "params", {})]
    last = set(uses_frontend)
    items[:] = [item for item in items if item not in last] + uses_frontend
    if COMFYUI_PATH and (Path(COMFYUI_PATH) / "comfy").is_dir():
        return
    reason = ("host tests need a ComfyUI checkout: set COMFYUI_PATH=/path/to/ComfyUI "
              f"(currently {'unset' if not COMFYUI_PATH else 'not a ComfyUI folder: ' + COMFYUI_PATH})")
    for item in items:
        if "tests/host" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def comfy():
    """Import ComfyUI on the CPU and load this pack as a custom node; returns ComfyUI's ``nodes`` module."""
    return comfy_host.start(COMFYUI_PATH)


@pytest.fixture(scope="session")
def frontend_server(frontend, tmp_path_factory):
    """ComfyUI serving the test's ``frontend`` (tests/host/frontends.py) to every real-frontend test of that frontend,
    in either mode; pytest groups those tests and stops the server before the next frontend's starts."""
    from . import frontends

    frontends.skip_unless_supported(frontend, "classic")
    with frontends.serving(tmp_path_factory, frontend) as running:
        yield running


@pytest.fixture(scope="session")
def tiny(comfy):
    from tests.support import comfy_models

    return comfy_models


@pytest.fixture
def no_model_calls(comfy, monkeypatch):
    """ComfyUI's node classes, with every model call of the pack turned into a test failure."""
    from .pack import pack_module

    def refuse(*args, **kwargs):
        raise AssertionError("the model was called before the input was checked")

    monkeypatch.setattr(pack_module("nodes.backend"), "run_guided", refuse)
    return comfy.NODE_CLASS_MAPPINGS


@pytest.fixture(autouse=True)
def forget_recent_lora_trainings():
    """LoRA Identity Tune keeps its last trainings in memory (a save_name change does not retrain); the tiny models
    are seeded, so without this a test could be served another test's training."""
    for name, module in list(sys.modules.items()):
        if name.endswith("nodes.lora_file") and "drag-diffedit" in name:
            module._recent.clear()
    yield
