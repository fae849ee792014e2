"""Hooks into a ComfyUI UNet (``openaimodel.UNetModel``) for the drag, MasaCtrl, LoRA and DragBench nodes.

Everything here is installed on a ModelPatcher *clone* through ComfyUI's patch
and wrapper mechanisms, so the shared model is never touched and other patches
(LoRA, FreeU, ControlNet, attention patches) keep applying.  Block indices are
read off the UNet, never hard-coded.
"""
from typing import Optional

import torch

import comfy.patcher_extension
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, Upsample

from ..core.backends.shared_weights import autograd_view
from ..core.drag_model import ForwardTruncated, guided_forward
from ..core.masactrl import SelfAttentionReference

_WRAPPER_KEY = "drag_edit_private_unet"


def diffusion_model(model):
    unet = model.model.diffusion_model
    if not hasattr(unet, "output_blocks"):
        raise ValueError(f"{type(model.model).__name__} is not a UNet model: the drag nodes support SD1.x, SD2.x and "
                         "SDXL-family checkpoints")
    return unet


def self_attention_layers(unet) -> list[tuple[tuple, int]]:
    """Every self-attention layer in execution order, as ``((part, block, block_index), downscale)``.

    The key is what ComfyUI calls ``(block[0], block[1], block_index)`` in ``transformer_options``.
    """
    layers, scale = [], 1
    parts = [("input", unet.input_blocks), ("middle", [unet.middle_block] if unet.middle_block is not None else []),
             ("output", unet.output_blocks)]
    for part, blocks in parts:
        for number, block in enumerate(blocks):
            for module in block:
                if isinstance(module, SpatialTransformer):
                    layers += [((part, number, index), scale) for index in range(len(module.transformer_blocks))]
                elif isinstance(module, Downsample):
                    scale *= 2
                elif isinstance(module, Upsample):
                    scale //= 2
    return layers


def default_feature_block(unet) -> int:
    """DragDiffusion's feature: the output of the decoder block whose upsampler reaches full latent resolution.

    SD1.x/2.x: ``output_blocks[8]`` (640 channels); SDXL: ``output_blocks[5]`` (640 channels).
    """
    upsampling = [i for i, block in enumerate(unet.output_blocks) if any(isinstance(m, Upsample) for m in block)]
    if not upsampling:
        raise ValueError("this UNet has no upsampling decoder block to take drag features from")
    return upsampling[-1]


def dift_feature_block(unet) -> int:
    """DragBench's DIFT feature: the decoder block that upsamples to half the latent resolution (SD2.1:
    ``output_blocks[5]``, diffusers' ``up_blocks[1]``, 1280 channels; SDXL: ``output_blocks[2]``); a UNet with a
    single upsampling block uses that one."""
    upsampling = [i for i, block in enumerate(unet.output_blocks) if any(isinstance(m, Upsample) for m in block)]
    if not upsampling:
        raise ValueError("this UNet has no upsampling decoder block to take DIFT features from")
    return upsampling[-2] if len(upsampling) >= 2 else upsampling[-1]


def check_feature_block(unet, block: int) -> int:
    """``block`` (-1 = default) as an output block whose output reaches another block's patch."""
    if block < 0:
        return default_feature_block(unet)
    last = len(unet.output_blocks) - 2  # the last block's output only reaches the final conv
    if block > last:
        raise ValueError(f"feature_block {block} is out of range: this UNet's decoder features can be taken from "
                         f"output blocks 0..{last} (-1 = default {default_feature_block(unet)})")
    return block


class PrivateUNet:
    """Runs the MODEL's diffusion model as a private module tree that autograd can use.

    ComfyUI runs graphs under ``torch.inference_mode()`` and loads weights as
    inference tensors, which backward refuses to save.  ``attach`` returns a
    clone whose diffusion-model call is routed to an ``autograd_view`` made by
    ``materialize`` once ComfyUI has loaded (and patched) the weights, i.e.
    from inside a sampling loop: the loaded weights themselves, LoRA and other
    weight patches included, without a second copy of them.  Transformer
    patches, wrappers and ControlNet still apply.  Call ``release`` in a
    ``finally``: the view is dropped and the shared model was never modified.
    """

    def __init__(self):
        self.unet = None

    def attach(self, model):
        patched = model.clone()
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, _WRAPPER_KEY, self._forward)
        return patched

    def _forward(self, executor, *args, **kwargs):
        if self.unet is None:
            return executor(*args, **kwargs)
        return self.unet._forward(*args, **kwargs)

    def materialize(self, model) -> torch.nn.Module:
        with torch.inference_mode(False):
            self.unet = autograd_view(model.model.diffusion_model)
        return self.unet

    def release(self) -> None:
        self.unet = None


class FeatureCapture:
    """Collects the output of one decoder block, with the cond/uncond flag of each batch chunk
    (a ``core.drag_model.BlockCapture``).

    With ``stop_after`` set (the flags the caller needs: ``{0}``, or ``{0, 1}`` under CFG) the forward is cut
    by ``ForwardTruncated`` as soon as all of them were captured: no later block runs.
    """

    def __init__(self, block: int, guided: bool = False):
        self.block = block
        self.guided = guided  # the guider runs cond and uncond rows
        self.chunks: list = []
        self.stop_after: Optional[set] = None

    def arm(self, full: bool) -> None:
        self.chunks = []
        self.stop_after = None if full else ({0, 1} if self.guided else {0})

    def clear(self) -> None:
        """Drop what a forward captured that nobody takes (e.g. a plain denoise)."""
        self.chunks = []

    def attach(self, model):
        patched = model.clone()
        patched.set_model_output_block_patch(self._patch)
        return patched

    def _patch(self, h, hsp, transformer_options):
        # This patch runs before output block ``block + 1``: ``h`` is the output of ``block``.
        if transformer_options.get("block") == ("output", self.block + 1):
            flags = transformer_options.get("cond_or_uncond") or [0]
            for flag, rows in zip(flags, h.chunk(len(flags))):
                self.chunks.append((flag, rows))
            if self.stop_after is not None and self.stop_after <= {flag for flag, _ in self.chunks}:
                raise ForwardTruncated(h)
        return h, hsp

    def take(self) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """``(cond, uncond)`` features of the last call(s); uncond is None without CFG."""
        cond = [rows for flag, rows in self.chunks if flag == 0]
        uncond = [rows for flag, rows in self.chunks if flag == 1]
        self.chunks = []
        if not cond:
            raise RuntimeError(f"no features were captured after output block {self.block}")
        return torch.cat(cond), (torch.cat(uncond) if uncond else None)


def attach_reference_attention(model, control: SelfAttentionReference):
    """A clone whose self-attention layers consult ``control`` (latent-MasaCtrl): an attn1 patch hands a layer the
    reference branch's input as its keys and values where ``control`` returns one, and leaves it alone elsewhere."""

    def patch(n, context, value, extra_options):
        block = extra_options.get("block")
        if block is None:
            return n, context, value
        reference = control.context((block[0], block[1], extra_options.get("block_index", 0)), n)
        if reference is None:
            return n, context, value
        return n, reference, reference

    patched = model.clone()
    patched.set_model_attn1_patch(patch)
    return patched


class ComfyDragModel:
    """:class:`core.drag_model.DragModel` inside a running ComfyUI guider (``nodes.backend.run_guided``).

    ``denoise`` is the guider's (CFG, every patch of the MODEL applied); the features come from ``capture``, attached
    to the clone the guider runs.
    """

    def __init__(self, denoise, capture: FeatureCapture, cfg: float):
        self._denoise, self.capture, self.cfg = denoise, capture, cfg

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.capture.arm(True)
        out = self._denoise(x, sigma)
        self.capture.clear()
        return out

    def features(self, x: torch.Tensor, sigma: torch.Tensor, full: bool = True):
        return guided_forward(self._denoise, self.capture, self.cfg, x, sigma, full)
