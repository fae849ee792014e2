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
    if source.get("class_type") != INVERSION_NODE or not isinstance(steps, int) or isinstance(strength, list):
        return None
    try:
        return encoded_steps(steps, float(strength))
    except (TypeError, ValueError):
        return None
