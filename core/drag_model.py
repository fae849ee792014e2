"""What a drag method needs from a model, as one protocol the ComfyUI and diffusers backends both implement.

A drag method (DragDiffusion's one-level loop, GoodDrag's alternation) sees a :class:`DragModel`: the guided
denoiser at any noise level, the supervised decoder block's features (CFG rows mixed as the reference does), the
self-attention layers and a way to route them through a reference control (latent-MasaCtrl).  The forward adapter
that stops the UNet after the supervised block and mixes the CFG rows lives here once (:func:`guided_forward`);
each backend only says how it captures the block's output.
"""
from typing import Callable, ContextManager, Hashable, Optional, Protocol, Sequence, Tuple

import torch

from .drag import ForwardTruncated, guided_features

Tensor = torch.Tensor


class DragModel(Protocol):
    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The guided ``x0`` prediction for a sigma-space latent, ``sigma`` per row."""

    def features(self, x: Tensor, sigma: Tensor, full: bool = True) -> Tuple[Optional[Tensor], Tensor]:
        """``(denoised, features)``; with ``full=False`` the UNet may stop after the supervised block and
        ``denoised`` is None (see ``core.drag.DragForward``)."""

    def self_attention_layers(self) -> Sequence[Tuple[Hashable, int]]:
        """Every self-attention layer in execution order: ``(key, latent downscale)``."""

    def reference_attention(self, control) -> ContextManager:
        """While open, the layers named in ``control.layers`` consult ``control`` (``core.masactrl``)."""


class BlockCapture(Protocol):
    """A backend's hook on the supervised block."""

    def arm(self, full: bool) -> None:
        """Before a forward: with ``full=False``, stop it (``ForwardTruncated``) once the features are captured."""

    def take(self) -> Tuple[Tensor, Optional[Tensor]]:
        """After a forward: the block's output for the cond rows, and for the uncond rows under CFG (else None)."""


def guided_forward(denoise: Callable[[Tensor, Tensor], Tensor], capture: BlockCapture, cfg: float,
                   x: Tensor, sigma: Tensor, full: bool = True) -> Tuple[Optional[Tensor], Tensor]:
    """The one forward adapter: run ``denoise`` with ``capture`` armed, return ``(denoised or None, features)``."""
    capture.arm(full)
    try:
        denoised = denoise(x, sigma)
    except ForwardTruncated:
        denoised = None
    cond, uncond = capture.take()
    return denoised, guided_features(cond, uncond, cfg)
