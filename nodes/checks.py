"""Input checks shared by the nodes: raise clear errors before any model call."""
from typing import Optional

import torch

from ..core.schedules import encoded_steps

INVERSION_NODE = "DragEdit_DDIMInversion"


def latent_samples(latent: dict, what: str = "latent") -> torch.Tensor:
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
        raise ValueError(f"{what} must be a LATENT with 4-D 'samples' (got {type(samples).__name__})")
    if getattr(samples, "is_nested", False):
        raise ValueError(f"{what}: nested (multi-resolution) latents are not supported")
    return samples


def conditioning(cond, what: str, required: bool = True):
    if cond is None or len(cond) == 0:
        if required:
            raise ValueError(f"{what} is empty: connect a CLIPTextEncode (an empty prompt is the unconditional text)")
        return None
    return cond


def conditioning_batch_fits(cond, batch: int, what: str) -> None:
    for entry in cond:
        size = entry[0].shape[0]
        if size not in (1, batch) and batch % size != 0:
            raise ValueError(f"{what} has batch {size}, which does not broadcast to the latent batch {batch}")


def model(value, what: str = "model"):
    """A MODEL (ComfyUI's ModelPatcher); a literal sent through the API is refused with a sentence."""
    if not (hasattr(value, "get_model_object") and hasattr(getattr(value, "model", None), "latent_format")):
        raise ValueError(f"{what} must be a MODEL from a loader node (e.g. Load Checkpoint), got "
                         f"{type(value).__name__}")
    return value


def latent_fits_model(samples: torch.Tensor, model, what: str = "latent") -> None:
    channels = int(model.model.latent_format.latent_channels)
    if samples.shape[1] != channels:
        raise ValueError(f"{what} has {samples.shape[1]} channels but this model expects {channels}: encode the "
                         "image with this model's VAE (VAE Encode of the same checkpoint)")


def schedule(sigmas, flow: bool) -> torch.Tensor:
    """A SIGMAS input to invert along: 1-D, finite, strictly descending, ending at 0; a flow model's below 1 (there
    its latent is pure noise, and no stock sampler could continue from the inverted latent)."""
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError("sigmas must be a SIGMAS schedule of at least two levels (BasicScheduler and friends)")
    sigmas = sigmas.detach().float().cpu()
    if not torch.isfinite(sigmas).all() or not (sigmas[1:] < sigmas[:-1]).all():
        raise ValueError(f"sigmas must descend strictly, got {_levels(sigmas)}")
    if float(sigmas[-1]) != 0.0:
        raise ValueError(f"sigmas must end at 0 (the clean image the inversion starts from), got {_levels(sigmas)}")
    if flow and float(sigmas[0]) >= 1.0:
        raise ValueError(f"on a flow-matching model the sigmas must start below 1 (at 1 the latent is pure noise), got "
                         f"{float(sigmas[0]):g}: lower the scheduler's denoise or drop the first level (SplitSigmas)")
    return sigmas


def _levels(sigmas: torch.Tensor) -> str:
    shown = ", ".join(f"{float(s):.4g}" for s in sigmas[:6])
    return f"[{shown}{', ...' if len(sigmas) > 6 else ''}]"


def at_queue(check, value) -> bool | str:
    """A V3 ``validate_inputs`` answer: True, or the message ``check(value)`` raises; linked inputs (None at queue
    time) are checked when the node runs."""
    if value is None:
        return True
    try:
        check(value)
    except ValueError as error:
        return str(error)
    return True


def drag_cfg(cfg: float) -> None:
    if cfg < 1.0:  # a linked value skips the schema's minimum
        raise ValueError(f"cfg {cfg} is below 1: use 1 for real images, the generation's CFG for generated ones")


def upstream_inversion_steps(hidden, input_name: str) -> Optional[int]:
    """The denoising steps of the trajectory ``input_name`` receives, read off the running graph (``hidden``: a V3
    node's ``cls.hidden`` with ``prompt`` and ``unique_id``, which ComfyUI fills when it executes, not when it
    validates): known when it comes straight from DDIM Inversion with its steps and strength set on the node, else
    None (then the node checks when it runs)."""
    prompt, node_id = getattr(hidden, "prompt", None), getattr(hidden, "unique_id", None)
    if not isinstance(prompt, dict) or node_id is None:
        return None
    link = prompt.get(str(node_id), {}).get("inputs", {}).get(input_name)
    if not isinstance(link, list) or len(link) != 2:
        return None
    source = prompt.get(str(link[0]), {})
    steps, strength = (source.get("inputs", {}).get(name) for name in ("steps", "strength"))
    if source.get("class_type") != INVERSION_NODE or not isinstance(steps, int) or isinstance(strength, list) \
            or source.get("inputs", {}).get("sigmas") is not None:  # a SIGMAS input replaces steps and strength
        return None
    try:
        return encoded_steps(steps, float(strength))
    except (TypeError, ValueError):
        return None
