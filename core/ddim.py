"""Deterministic DDIM (eta = 0) sampling and inversion in sigma space.

A DDIM step is an Euler step of the probability flow ODE: ``x' = x + (sigma' - sigma) * d`` with
``d = (x - x0) / sigma``, in either noise convention (see :mod:`core.noise_space`): with ``x = x0 + sigma * eps``
``d`` is the noise, with a rectified flow's ``x = (1 - sigma) * x0 + sigma * eps`` the velocity, and the step is
the flow's Euler step.
"""
from typing import Callable, Optional

import torch

from .noise_space import VARIANCE_EXPLODING, NoiseSpace

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


def inverse_ddim_step(denoise: Denoiser, x: torch.Tensor, sigma, sigma_next,
                      space: NoiseSpace = VARIANCE_EXPLODING) -> tuple[torch.Tensor, torch.Tensor]:
    """Inversion step with the papers' approximation: noise estimated at the destination.

    The network sees the current latent but is told it sits at ``sigma_next``
    (``unet(z_t, t + 1)`` in VP terms).  The denoiser scales its input by the
    space's input scale at ``sigma_next``, so the input is pre-scaled to hand the
    network the latent it would see at ``sigma`` unchanged (a rectified flow's
    network sees ``x`` itself: no scaling).  Returns ``(x_next, denoised)``.
    """
    scale = space.input_scale(sigma) / space.input_scale(sigma_next)
    x_in = x * scale if scale != 1.0 else x
    denoised = denoise(x_in, batch_sigma(sigma_next, x))
    eps = eps_from_denoised(x_in, denoised, sigma_next)
    return x + (sigma_next - sigma) * eps, denoised


def ddim_invert(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor,
                callback: Optional[StepCallback] = None, space: NoiseSpace = VARIANCE_EXPLODING) -> list[torch.Tensor]:
    """Encode the clean latent ``x`` up the ascending ``sigmas``.

    Returns the trajectory: ``trajectory[i]`` is the latent at ``sigmas[i]``,
    ``trajectory[0]`` is ``x`` itself.
    """
    trajectory = [x]
    for i in range(len(sigmas) - 1):
        x, denoised = inverse_ddim_step(denoise, x, float(sigmas[i]), float(sigmas[i + 1]), space)
        trajectory.append(x)
        if callback is not None:
            callback(i, x, denoised)
    return trajectory
