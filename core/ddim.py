"""Deterministic DDIM (eta = 0) sampling and inversion in sigma space.

With ``x = x0 + sigma * eps`` a DDIM step is an Euler step of the probability
flow ODE: ``x' = x + (sigma' - sigma) * eps`` where ``eps = (x - x0) / sigma``.
"""
from typing import Callable, Optional

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


def batch_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """``sigma`` as the ``[batch]`` tensor the denoiser protocol takes."""
    return torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0]).clone()


def eps_from_denoised(x: torch.Tensor, denoised: torch.Tensor, sigma) -> torch.Tensor:
    return (x - denoised) / sigma


def ddim_step(x: torch.Tensor, denoised: torch.Tensor, sigma, sigma_next) -> torch.Tensor:
    """One eta-0 DDIM step from ``sigma`` to ``sigma_next`` (either direction)."""
    return x + (sigma_next - sigma) * eps_from_denoised(x, denoised, sigma)


def ddim_sample(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor,
                callback: Optional[StepCallback] = None) -> torch.Tensor:
    """Denoise ``x`` from ``sigmas[0]`` down the descending ``sigmas``."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = denoise(x, batch_sigma(sigma, x))
        x = ddim_step(x, denoised, sigma, sigma_next)
        if callback is not None:
            callback(i, x, denoised)
    return x


def inverse_ddim_step(denoise: Denoiser, x: torch.Tensor, sigma, sigma_next) -> tuple[torch.Tensor, torch.Tensor]:
    """Inversion step with the papers' approximation: noise estimated at the destination.

    The model sees the current latent but is told it sits at ``sigma_next``
    (``unet(z_t, t + 1)`` in VP terms).  The denoiser scales its input by
    ``1/sqrt(1 + sigma^2)``, so the input is pre-scaled to hand it ``z_t``
    unchanged.  Returns ``(x_next, denoised)``.
    """
    scale = ((1 + sigma_next ** 2) / (1 + sigma ** 2)) ** 0.5
    x_in = x * scale
    denoised = denoise(x_in, batch_sigma(sigma_next, x))
    eps = eps_from_denoised(x_in, denoised, sigma_next)
    return x + (sigma_next - sigma) * eps, denoised


def ddim_invert(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor,
                callback: Optional[StepCallback] = None) -> list[torch.Tensor]:
    """Encode the clean latent ``x`` up the ascending ``sigmas``.

    Returns the trajectory: ``trajectory[i]`` is the latent at ``sigmas[i]``,
    ``trajectory[0]`` is ``x`` itself.
    """
    trajectory = [x]
    for i in range(len(sigmas) - 1):
        x, denoised = inverse_ddim_step(denoise, x, float(sigmas[i]), float(sigmas[i + 1]))
        trajectory.append(x)
        if callback is not None:
            callback(i, x, denoised)
    return trajectory
