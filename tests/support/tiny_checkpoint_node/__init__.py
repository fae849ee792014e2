"""Test-only ComfyUI custom node: a checkpoint with random weights (no weights can be downloaded where the tests run).

``ckpt_name`` names the architecture: ``sd1``, ``sd1-v`` (v-prediction), ``sd1-inpaint`` (9 input channels) or
``sdxl`` for the tiny UNets of the host tests, ``flux`` or ``sd3`` for tiny rectified-flow transformers (16-channel
latents, a 16-channel stand-in VAE), ``sdxl-inpaint`` for the smallest SDXL inpainting UNet ComfyUI detects as one,
``sd15-full``, ``sd15-inpaint-full`` or ``sdxl-full`` for the real block structure and widths the bench measures.

Flux Fill is loaded as ComfyUI users load it, in three files: the stand-ins of the stock Load Diffusion Model,
DualCLIPLoader and Load VAE take the same inputs, the file name naming the architecture: ``flux-fill`` (tiny, detected
as Flux Fill by ComfyUI) or ``flux-fill-full`` (Flux's widths, fewer blocks: the bench).

A test server loads this folder as a custom node; in-process runs register it (``tests/support/comfy_host.py``).  It
is never installed with the pack.  Modules are loaded by file path: the server has neither the pack nor ``tests`` on
its path.
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
        if ckpt_name == "sdxl-inpaint":
            return (_models.make_detected_model(ckpt_name, seed, dtype=getattr(torch, dtype)),
                    _fakes.FakeCLIP(*_models.SDXL_CONTEXT), _fakes.FakeVAE())
        return _models.make_model(ckpt_name, seed), _fakes.FakeCLIP(), _fakes.FakeVAE()


def _flux_fill_depths(depths: str) -> tuple:
    double, single = (int(n) for n in depths.split(","))
    return double, single


class TestDiffusionModel:
    """Load Diffusion Model's stand-in (UNETLoader's inputs): ``flux-fill`` or ``flux-fill-full`` (``depths``: its
    double and single blocks)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"unet_name": ("STRING", {"default": "flux-fill"})},
                "optional": {"weight_dtype": ("STRING", {"default": "default"}), "seed": ("INT", {"default": 0}),
                             "depths": ("STRING", {"default": "1,1"}), "dtype": ("STRING", {"default": "float32"})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"
    CATEGORY = "testing"

    def load(self, unet_name, weight_dtype="default", seed=0, depths="1,1", dtype="float32"):
        return (_models.make_detected_model(unet_name, seed, _flux_fill_depths(depths), getattr(torch, dtype)),)


class TestTextEncoders:
    """DualCLIPLoader's stand-in: a text encoder of the Flux Fill model's widths (``clip_name1`` names it)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_name1": ("STRING", {"default": "flux-fill"}),
                             "clip_name2": ("STRING", {"default": "flux-fill"}),
                             "type": ("STRING", {"default": "flux"})},
                "optional": {"device": ("STRING", {"default": "default"})}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"
    CATEGORY = "testing"

    def load(self, clip_name1, clip_name2, type, device="default"):
        if clip_name1.endswith("-full"):
            width, pooled, tokens = _models.FLUX_FULL_CONTEXT
            return (_fakes.FakeCLIP(width, pooled, tokens),)
        return (_fakes.FakeCLIP(_models.FLOW_CONTEXT_DIM, _models.FLOW_POOLED_DIM),)


class TestVAE:
    """Load VAE's stand-in: ``flux-fill`` a 16-channel stand-in, ``flux-fill-full`` the Flux VAE's structure with
    random weights."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": ("STRING", {"default": "flux-fill"})}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "load"
    CATEGORY = "testing"

    def load(self, vae_name):
        if vae_name.endswith("-full"):
            return (_models.make_full_vae(latent_channels=_models.FLOW_CHANNELS),)
        return (_fakes.FakeVAE(_models.FLOW_CHANNELS),)


NODE_CLASS_MAPPINGS = {"DragEditTest_Checkpoint": TestCheckpoint, "DragEditTest_DiffusionModel": TestDiffusionModel,
                       "DragEditTest_TextEncoders": TestTextEncoders, "DragEditTest_VAE": TestVAE}
# The stock loaders each stand-in replaces, and the input naming the file (the architecture here).
STAND_INS = {"CheckpointLoaderSimple": ("DragEditTest_Checkpoint", "ckpt_name"),
             "UNETLoader": ("DragEditTest_DiffusionModel", "unet_name"),
             "DualCLIPLoader": ("DragEditTest_TextEncoders", "clip_name1"),
             "VAELoader": ("DragEditTest_VAE", "vae_name")}
