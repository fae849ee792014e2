"""The INVERSION_TRAJECTORY value passed between nodes, and the denoising step a LATENT of the pack sits at."""
from dataclasses import dataclass
from typing import Optional

import torch

# A LATENT the drag nodes write carries the denoising step it sits at on its trajectory's schedule (0 = the top,
# where DDIM Inversion stops), so Latent MasaCtrl Denoise continues from wherever a drag method stopped.
STEP_KEY = "drag_edit_step"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: ComfyUI hands on the same object while cached
class InversionTrajectory:
    """Every latent of a DDIM inversion, in LATENT space (as VAEEncode makes them), on the CPU.

    ``latents[i]`` sits at ``sigmas[i]`` (ascending); ``latents[0]`` is the
    encoded image and ``latents[-1]`` the start level handed to samplers.
    """
    latents: tuple
    sigmas: torch.Tensor
    steps: int
    strength: float
    cfg: float
    model_signature: dict

    @property
    def encoded_steps(self) -> int:
        return len(self.latents) - 1

    @property
    def latent_shape(self) -> tuple:
        return tuple(self.latents[0].shape)

    def sampling_sigmas(self) -> torch.Tensor:
        """The same levels, descending, as a decode walks them."""
        return self.sigmas.flip(0)

    @classmethod
    def checked(cls, value) -> "InversionTrajectory":
        """The TRAJECTORY input; a literal sent through the API is refused with a sentence."""
        if not isinstance(value, cls):
            raise ValueError(f"trajectory must be the INVERSION_TRAJECTORY output of DDIM Inversion, got "
                             f"{type(value).__name__}")
        return value

    def step_of(self, latent: dict) -> int:
        """The denoising step ``latent`` sits at; a LATENT without the pack's step is at the top (step 0)."""
        entry = latent.get(STEP_KEY)
        if entry is None:
            return 0
        sigmas = self.sampling_sigmas()
        try:
            step, sigma = int(entry["step"]), float(entry["sigma"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"the latent's {STEP_KEY!r} must be {{'step': int, 'sigma': float}}, got "
                             f"{str(entry)[:60]}") from None
        if not 0 <= step < len(sigmas) - 1 or abs(float(sigmas[step]) - sigma) > 1e-4 * max(1.0, sigma):
            raise ValueError(f"the latent sits at denoising step {step} (noise level {sigma:.4g}), which is not a "
                             f"level of this trajectory ({len(sigmas) - 1} steps from {float(sigmas[0]):.4g}): "
                             "connect the trajectory the drag used")
        return step

    def source_at(self, latent: dict, step: int) -> torch.Tensor:
        """The source (reference branch) at ``step``: the one the drag method carried along in the LATENT (GoodDrag
        denoises its own), else the inversion's latent at that level."""
        source = (latent.get(STEP_KEY) or {}).get("source")
        if source is None:
            return self.latents[-1 - step]
        if not isinstance(source, torch.Tensor) or tuple(source.shape) != self.latent_shape:
            raise ValueError(f"the latent's source at its level must be a tensor of the trajectory's shape "
                             f"{self.latent_shape}")
        return source

    def at_step(self, step: int, source: Optional[torch.Tensor] = None) -> dict:
        """The LATENT entry that records ``step`` on this trajectory's schedule, with the drag method's own source
        at that step when it denoised one (GoodDrag)."""
        entry = {"step": int(step), "sigma": round(float(self.sampling_sigmas()[step]), 6)}
        if source is not None:
            entry["source"] = source.detach().float().cpu()
        return {STEP_KEY: entry}

    def check_model(self, signature: dict) -> None:
        if signature != self.model_signature:
            differences = ", ".join(f"{key}: {self.model_signature.get(key)} vs {signature.get(key)}"
                                    for key in signature if signature.get(key) != self.model_signature.get(key))
            raise ValueError("This inversion trajectory was made with a different kind of model "
                             f"({differences}). Run DDIM Inversion with the MODEL used here.")
