"""Denoiser backend for a diffusers ``UNet2DConditionModel``.

Lets the core run on a real UNet without ComfyUI (tests, the headless demo).
The sigma table comes from the scheduler config, so it matches ComfyUI's
``model_sampling`` for the same checkpoint.
"""
from typing import Optional

import torch

from ..ddim import Denoiser
from ..guidance import classifier_free_guidance
from ..schedules import sigmas_from_alphas_cumprod


class DiffusersUNetDenoiser:
    """``unet(x_vp, t) -> eps | v`` turned into ``(x, sigma) -> x0`` in sigma space."""

    def __init__(self, unet, scheduler_config):
        from diffusers import DDPMScheduler  # only for its beta-schedule arithmetic

        config = dict(scheduler_config)
        self.prediction_type = config.get("prediction_type", "epsilon")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"unsupported prediction_type {self.prediction_type!r}")
        alphas_cumprod = DDPMScheduler.from_config(config).alphas_cumprod
        self.unet = unet
        self.sigma_table = sigmas_from_alphas_cumprod(alphas_cumprod)
        self._log_sigmas = self.sigma_table.double().log()

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Nearest integer timestep in log-sigma, as ComfyUI's ``ModelSamplingDiscrete``."""
        distance = (sigma.detach().double().cpu().log()[:, None] - self._log_sigmas[None]).abs()
        return distance.argmin(dim=1)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, encoder_hidden_states: torch.Tensor, **unet_kwargs) -> torch.Tensor:
        sigma = sigma.to(x.device, torch.float32).reshape(-1, 1, 1, 1)
        x_vp = x / (1 + sigma ** 2).sqrt()
        t = self.timestep(sigma.flatten()).to(x.device)
        dtype = self.unet.dtype
        out = self.unet(x_vp.to(dtype), t, encoder_hidden_states=encoder_hidden_states.to(dtype), **unet_kwargs).sample.float()
        if self.prediction_type == "epsilon":
            return x - sigma * out
        return x / (1 + sigma ** 2) - out * sigma / (1 + sigma ** 2).sqrt()

    def denoiser(self, cond: torch.Tensor, uncond: Optional[torch.Tensor] = None, cfg: float = 1.0,
                 **unet_kwargs) -> Denoiser:
        """Bind conditioning (and CFG when ``cfg != 1``) into a protocol denoiser.

        ``cond``/``uncond`` are text embeddings ``[1 or B, tokens, dim]``.
        """
        def expand(embeds: torch.Tensor, batch: int) -> torch.Tensor:
            if embeds.shape[0] not in (1, batch):
                raise ValueError(f"conditioning batch {embeds.shape[0]} does not broadcast to latent batch {batch}")
            return embeds.expand(batch, *embeds.shape[1:])

        def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            batch = x.shape[0]
            if cfg == 1.0 or uncond is None:
                return self(x, sigma, expand(cond, batch), **unet_kwargs)
            both = torch.cat([expand(uncond, batch), expand(cond, batch)])
            denoised_uncond, denoised_cond = self(torch.cat([x, x]), torch.cat([sigma, sigma]), both, **unet_kwargs).chunk(2)
            return classifier_free_guidance(denoised_cond, denoised_uncond, cfg)

        return denoise
