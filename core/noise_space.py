"""How a latent holds noise at level ``sigma``: the two conventions of ComfyUI's ``model_sampling``.

* **Variance exploding** (EPS, V_PREDICTION, EDM; k-diffusion): ``x = x0 + sigma * eps``; the network sees
  ``x / sqrt(1 + sigma^2)`` (the VP latent ``z_t`` of diffusers' schedulers).
* **Rectified flow** (CONST: SD3, Flux): ``x = (1 - sigma) * x0 + sigma * eps``; the network sees ``x`` itself.

In both, ``d = (x - x0) / sigma`` is ``dx/dsigma`` along the deterministic path (the noise ``eps``; the flow's
velocity ``eps - x0``), so a DDIM (eta 0) step is the same Euler step ``x + (sigma' - sigma) * d`` and
:mod:`core.ddim` needs no case for either.  What differs is how a clean latent is noised, how the network's input is
scaled, and where a schedule ends: a :class:`NoiseSpace` says it.  Backends pick one (the ComfyUI adapter asks the
model's own ``model_sampling``); the algorithms never ask which kind of model they run.
"""
from dataclasses import dataclass
from typing import Protocol

import torch


class NoiseSpace(Protocol):
    def noised(self, latent: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
        """The clean ``latent`` forward-noised with ``noise`` to level ``sigma``."""

    def input_scale(self, sigma: float) -> float:
        """What the network's input is multiplied by at ``sigma``."""

    def clean_sigma(self, sigma_table: torch.Tensor) -> float:
        """The level a schedule ends at, where the clean latent sits."""


@dataclass(frozen=True)
class VarianceExploding:
    """``x = x0 + sigma * eps``.  Schedules end at the table's first level (diffusers' DDIM with
    ``set_alpha_to_one=False``, as both papers run it), not at 0."""

    def noised(self, latent, noise, sigma):
        return latent + sigma * noise

    def input_scale(self, sigma):
        return (1.0 + float(sigma) ** 2) ** -0.5

    def clean_sigma(self, sigma_table):
        return float(sigma_table[0])


@dataclass(frozen=True)
class RectifiedFlow:
    """``x = (1 - sigma) * x0 + sigma * eps``, ``sigma`` in [0, 1].  Schedules end at 0, as diffusers'
    ``FlowMatchEulerDiscreteScheduler`` and ComfyUI's schedulers do."""

    def noised(self, latent, noise, sigma):
        return (1.0 - sigma) * latent + sigma * noise

    def input_scale(self, sigma):
        return 1.0

    def clean_sigma(self, sigma_table):
        return 0.0


VARIANCE_EXPLODING = VarianceExploding()
RECTIFIED_FLOW = RectifiedFlow()
