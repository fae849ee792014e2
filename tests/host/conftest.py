"""Host tests: the pack inside a real ComfyUI, found through COMFYUI_PATH.

They build tiny models from ComfyUI's own model classes (no weights exist
offline) and run the nodes in-process under ``torch.inference_mode()``, as
ComfyUI's executor does.
"""
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import pytest

PACK_ROOT = Path(__file__).resolve().parents[2]
PACK_NAME = "comfyui-drag-diffedit"
COMFYUI_PATH = os.environ.get("COMFYUI_PATH")


def pytest_collection_modifyitems(config, items):
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
    sys.path.insert(0, COMFYUI_PATH)
    from comfy.cli_args import args

    args.cpu = True  # before comfy.model_management is imported
    base = Path(tempfile.mkdtemp(prefix="comfy-host-"))
    import folder_paths

    folder_paths.set_output_directory(str(base / "output"))
    folder_paths.set_temp_directory(str(base / "temp"))
    folder_paths.set_input_directory(str(base / "input"))
    folder_paths.add_model_folder_path("loras", str(base / "models" / "loras"), is_default=True)
    for sub in ("output", "temp", "input", "models/loras", "custom_nodes"):
        (base / sub).mkdir(parents=True, exist_ok=True)

    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    link = base / "custom_nodes" / PACK_NAME
    link.symlink_to(PACK_ROOT, target_is_directory=True)
    loaded = asyncio.run(nodes.load_custom_node(str(link)))
    assert loaded, "ComfyUI failed to import the pack (see the log above)"
    nodes.HOST_BASE_DIR = base
    return nodes


@pytest.fixture(scope="session")
def tiny(comfy):
    from tools import comfy_models

    return comfy_models


@pytest.fixture
def no_model_calls(comfy, monkeypatch):
    """ComfyUI's node classes, with every model call of the pack turned into a test failure."""
    from .pack import pack_module

    def refuse(*args, **kwargs):
        raise AssertionError("the model was called before the input was checked")

    monkeypatch.setattr(pack_module("core.backends.comfy"), "run_guided", refuse)
    return comfy.NODE_CLASS_MAPPINGS


@pytest.fixture(autouse=True)
def forget_recent_lora_trainings():
    """LoRA Identity Tune keeps its last trainings in memory (a save_name change does not retrain); the tiny models
    are seeded, so without this a test could be served another test's training."""
    for name, module in list(sys.modules.items()):
        if name.endswith("nodes.lora_file") and "drag-diffedit" in name:
            module._recent.clear()
    yield
