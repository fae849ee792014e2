"""Test-only ComfyUI custom node: a checkpoint with random weights (no weights can be downloaded where the tests run).

``ckpt_name`` names the architecture: ``sd1``, ``sd1-v`` (v-prediction), ``sd1-inpaint`` (9 input channels) or
``sdxl`` for the tiny UNets of the host tests, ``flux`` or ``sd3`` for tiny rectified-flow transformers (16-channel
latents, a 16-channel stand-in VAE), ``sd15-full``, ``sd15-inpaint-full`` or ``sdxl-full`` for the real block structure
and widths the bench measures.  A test server loads this folder as a custom node; in-process runs register it
(``tests/support/comfy_host.py``).  It is never installed with the pack.  Modules are loaded by file path: the server
has neither the pack nor ``tests`` on its path.
"""
import importlib.util
from pathlib import Path

import torch

SUPPORT = Path(__file__).resolve().parents[1]


def _load(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, SUPPORT / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fakes = _load("drag_edit_test_fakes", "fakes.py")
_models = _load("drag_edit_test_models", "comfy_models.py")


class TestCheckpoint:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": ("STRING", {"default": "sd1"})},
                "optional": {"seed": ("INT", {"default": 0}), "dtype": ("STRING", {"default": "float32"})}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = "testing"

    def load(self, ckpt_name, seed=0, dtype="float32"):
        if ckpt_name.endswith("-full"):  # the text encoder stays a stand-in, of SD1.5's width
            kind = ckpt_name.removesuffix("-full")
            return (_models.make_full_model(kind, seed, getattr(torch, dtype)), _fakes.FakeCLIP(768),
                    _models.make_full_vae(seed))
        if ckpt_name in _models.FLOW_KINDS:
            return (_models.make_model(ckpt_name, seed),
                    _fakes.FakeCLIP(_models.FLOW_CONTEXT_DIM, _models.FLOW_POOLED_DIM),
                    _fakes.FakeVAE(_models.FLOW_CHANNELS))
        return _models.make_model(ckpt_name, seed), _fakes.FakeCLIP(), _fakes.FakeVAE()


NODE_CLASS_MAPPINGS = {"DragEditTest_Checkpoint": TestCheckpoint}
