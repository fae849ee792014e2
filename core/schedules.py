"""DDIM timestep schedules expressed as sigmas.

The papers and diffusers use DDIM with "leading" spacing and ``steps_offset=1``
(981, 961, ..., 1 for 50 steps).  A model's own noise table supplies the sigma
of each integer timestep, so eps, v-prediction and rescaled schedules all work.
The level below the smallest timestep is where the clean latent sits: for
variance-exploding models the table's first entry (diffusers'
``set_alpha_to_one=False``), for rectified flows 0 (``clean_sigma``).
Flow tables hold ``len(table)`` timesteps (ComfyUI: 1000 for SD3, 10000 for
Flux), and the spacing scales with it.
"""
from typing import Optional

import torch


def sigmas_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Noise table ``sigma_t = sqrt((1 - a_t) / a_t)`` of a VP schedule."""
    alphas_cumprod = alphas_cumprod.double()
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt().float()


def ddim_timesteps(steps: int, num_train_timesteps: int = 1000, steps_offset: int = 1) -> list[int]:
    """Descending "leading" DDIM timesteps, as diffusers' ``DDIMScheduler``."""
    ratio = num_train_timesteps // max(steps, 1)
    if steps < 1 or (steps - 1) * ratio + steps_offset > num_train_timesteps - 1:
        raise ValueError(f"steps must be between 1 and {num_train_timesteps - steps_offset}, got {steps}")
    return [i * ratio + steps_offset for i in reversed(range(steps))]


def encoded_steps(steps: int, strength: float) -> int:
    """How many of ``steps`` DDIM steps an encoding of ``strength`` walks.

    Rounds (DragDiffusion) where diffusers truncates: ``int(50 * 0.29)`` would
    silently lose a step to float error.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be within [0, 1], got {strength}")
    return int(round(steps * strength))


def ddim_sigmas(sigma_table: torch.Tensor, steps: int, strength: float = 1.0,
                clean_sigma: Optional[float] = None) -> torch.Tensor:
    """Descending sigmas of the last ``strength`` part of a ``steps``-step DDIM schedule.

    ``len == encoded_steps(steps, strength) + 1``; the last entry is the clean
    level: ``clean_sigma``, by default ``sigma_table[0]`` (a noise space's
    :meth:`~core.noise_space.NoiseSpace.clean_sigma`).  Flip it for inversion.
    """
    timesteps = ddim_timesteps(steps, num_train_timesteps=len(sigma_table))
    used = timesteps[steps - encoded_steps(steps, strength):]
    table = sigma_table.detach().float().cpu()
    clean = table[:1] if clean_sigma is None else torch.tensor([float(clean_sigma)])
    return torch.cat([table[used], clean])
