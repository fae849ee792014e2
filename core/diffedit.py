"""DiffEdit (Couairon et al., 2023): mask inference and masked DDIM decoding.

Deliberate differences from diffusers' deprecated ``StableDiffusionDiffEditPipeline``:

* the clamp value ``ratio * mean`` is computed per image, not over the batch,
  so images in a batch do not change each other's masks;
* differences are taken between denoised (x0) estimates.  At one noise level
  x0, eps and v differences are proportional, and the clamp is relative to the
  mean, so the mask is the same for eps, v-prediction and x0 models;
* guidance is not applied inside the mask: with a shared negative prompt it
  only scales the difference, which the relative clamp cancels;
* decoding blends with the encoded latent at the *same* level as the freshly
  stepped latent, and with the clean latent after the last step (diffusers
  blends with the latent one step noisier and ends on ``x_1``).
"""
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .ddim import Denoiser, StepCallback, batch_sigma, ddim_step
from .noise_space import VARIANCE_EXPLODING, NoiseSpace


@dataclass
class DiffEditMask:
    soft: torch.Tensor  # [B, h, w] in [0, 1]: clamped, rescaled difference map
    binary: torch.Tensor  # [B, h, w] in {0, 1}: ``soft > threshold``


def noised_denoise_estimates(denoise: Denoiser, latent: torch.Tensor, noise: torch.Tensor, sigma: float,
                             callback: Optional[Callable[[int], None]] = None,
                             space: NoiseSpace = VARIANCE_EXPLODING) -> torch.Tensor:
    """Denoised estimates of ``latent`` forward-noised (in ``space``'s convention) with each noise draw.

    ``noise`` is ``[draws, B, C, h, w]``; returns the same shape.  Draws run one
    at a time so memory does not grow with their number.
    """
    estimates = []
    for i, draw in enumerate(noise):
        noisy = space.noised(latent, draw, sigma)
        estimates.append(denoise(noisy, batch_sigma(sigma, noisy)))
        if callback is not None:
            callback(i)
    return torch.stack(estimates)


def mask_from_estimates(query: torch.Tensor, reference: torch.Tensor, clamp_ratio: float = 3.0,
                        threshold: float = 0.5) -> DiffEditMask:
    """Turn per-draw estimates under the query and reference texts into a mask.

    Mean absolute difference over draws and channels, clamped at
    ``clamp_ratio`` times its per-image mean, divided by that clamp value,
    thresholded.  An image whose texts give identical estimates gets an
    all-zero mask rather than NaNs.
    """
    difference = (query - reference).abs().mean(dim=(0, 2))  # [B, h, w]
    clamp = difference.mean(dim=(1, 2), keepdim=True) * clamp_ratio
    safe_clamp = torch.where(clamp > 0, clamp, torch.ones_like(clamp))
    soft = torch.where(clamp > 0, torch.minimum(difference, clamp) / safe_clamp, torch.zeros_like(difference))
    return DiffEditMask(soft=soft, binary=(soft > threshold).to(soft.dtype))


def diffedit_mask(denoise_query: Denoiser, denoise_reference: Denoiser, latent: torch.Tensor, noise: torch.Tensor,
                  sigma: float, clamp_ratio: float = 3.0, threshold: float = 0.5,
                  space: NoiseSpace = VARIANCE_EXPLODING) -> DiffEditMask:
    """The DiffEdit mask of ``latent`` for a query text against a reference text."""
    query = noised_denoise_estimates(denoise_query, latent, noise, sigma, space=space)
    reference = noised_denoise_estimates(denoise_reference, latent, noise, sigma, space=space)
    return mask_from_estimates(query, reference, clamp_ratio, threshold)


def masked_ddim_decode(denoise: Denoiser, trajectory: list[torch.Tensor], sigmas: torch.Tensor, mask: torch.Tensor,
                       callback: Optional[StepCallback] = None) -> torch.Tensor:
    """Decode from the top of an inversion ``trajectory``, regenerating only where ``mask`` is 1.

    ``sigmas`` descends from the trajectory's top level to its clean level;
    ``trajectory[i]`` sits at ``sigmas[-1 - i]``.  After each step the latent
    outside the mask is replaced by the encoded latent of the same level:
    ``y = M * y + (1 - M) * x``.
    """
    steps = len(sigmas) - 1
    if len(trajectory) != steps + 1:
        raise ValueError(f"trajectory has {len(trajectory)} latents but the schedule needs {steps + 1}")
    x = trajectory[-1]
    for i in range(steps):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoise(x, batch_sigma(sigma, x))
        x = ddim_step(x, denoised, sigma, sigma_next)
        x = mask * x + (1 - mask) * trajectory[steps - 1 - i]
        if callback is not None:
            callback(i, x, denoised)
    return x
