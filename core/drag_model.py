"""What a drag method needs from a model, as one protocol the ComfyUI and diffusers backends both implement.

A drag method (DragDiffusion's one-level loop, GoodDrag's alternation) sees a :class:`DragModel`: the guided
denoiser at any noise level and the supervised decoder block's features (CFG rows mixed as the reference does).
The forward adapter that stops the UNet after the supervised block and mixes the CFG rows lives here once
(:func:`guided_forward`); each backend only says how it captures the block's output (:class:`BlockCapture`).
"""
from typing import Callable, Optional, Protocol, Tuple

import torch

from .ddim import batch_sigma

Tensor = torch.Tensor


class DragModel(Protocol):
    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The guided ``x0`` prediction for a sigma-space latent, ``sigma`` per row."""

    def features(self, x: Tensor, sigma: Tensor, full: bool = True) -> Tuple[Optional[Tensor], Tensor]:
        """``(denoised, features)``; with ``full=False`` the UNet may stop after the supervised block and
        ``denoised`` is None (see :class:`DragForward`)."""


class DragForward(Protocol):
    """A :class:`DragModel`'s ``features`` bound to one noise level (:func:`at_sigma`): ``forward(x, full)`` ->
    ``(denoised [B,C,h,w] or None, features [B,C',hf,wf])``.  With ``full=False`` the caller needs only the features,
    and the backend may stop the UNet after the supervised block (raise :class:`ForwardTruncated` from a hook)."""

    def __call__(self, x: Tensor, full: bool = True) -> Tuple[Optional[Tensor], Tensor]: ...


class ForwardTruncated(Exception):
    """Raised by a backend's feature hook to stop a forward whose remaining blocks nobody needs."""

    def __init__(self, features: Tensor):
        super().__init__("forward stopped after the supervised block")
        self.features = features


def at_sigma(features: Callable[..., Tuple[Optional[Tensor], Tensor]], sigma: float) -> DragForward:
    """Bind a backend's ``features(x, sigma, full)`` to one noise level."""
    return lambda x, full=True: features(x, batch_sigma(sigma, x), full)


class BlockCapture(Protocol):
    """A backend's hook on the supervised block."""

    def arm(self, full: bool) -> None:
        """Before a forward: with ``full=False``, stop it (``ForwardTruncated``) once the features are captured."""

    def take(self) -> Tuple[Tensor, Optional[Tensor]]:
        """After a forward: the block's output for the cond rows, and for the uncond rows under CFG (else None)."""


def guided_features(cond: Tensor, uncond: Optional[Tensor], cfg: float) -> Tensor:
    """Drag features under classifier-free guidance, as the reference's generated-image mode builds them.

    ``cat([(1 - k) F_uncond, k F_cond])`` over channels with ``k = cfg / (2 cfg - 1)``; the cond features alone
    without guidance.
    """
    if uncond is None or cfg == 1.0:
        return cond
    if cfg < 1.0:  # k = cfg / (2 cfg - 1) has a pole at 0.5 and turns negative below it
        raise ValueError(f"drag guidance must be 1 (real images) or above (generated images), got {cfg}")
    k = cfg / (2.0 * cfg - 1.0)
    return torch.cat([(1.0 - k) * uncond, k * cond], dim=1)


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
