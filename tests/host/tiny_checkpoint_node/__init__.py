"""Test-only ComfyUI custom node: a tiny random SD1 checkpoint (no weights can be downloaded where the tests run).

The host tests link this folder into a test server's custom_nodes; it is never installed with the pack.
"""
import importlib.util
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[3]


def _load(name: str, relative: str):
    spec = importlib.util.spec_from_file_location(name, PACK_ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fakes = _load("drag_edit_test_fakes", "tests/host/fakes.py")
_models = _load("drag_edit_test_models", "tools/comfy_models.py")


class TinyCheckpoint:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": ("STRING", {"default": "sd1"})}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = "testing"

    def load(self, ckpt_name):
        return _models.make_model(ckpt_name), _fakes.FakeCLIP(), _fakes.FakeVAE()


NODE_CLASS_MAPPINGS = {"DragEditTest_TinyCheckpoint": TinyCheckpoint}
