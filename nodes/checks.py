"""Input checks shared by the nodes: raise clear errors before any model call."""
import torch

# Pixels per latent cell of the SD-family VAEs the pack targets.
VAE_SCALE = 8


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


def mask_to_latent(mask: torch.Tensor, latent_shape: tuple) -> torch.Tensor:
    """A MASK ``[B, H, W]`` or ``[H, W]`` at pixel or latent resolution -> ``[B, 1, h, w]`` at latent resolution.

    Area averaging recovers a latent-resolution mask that was upsampled
    exactly, and keeps painted soft edges soft.
    """
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise ValueError(f"mask must be [batch, height, width], got shape {tuple(mask.shape)}")
    batch, _, height, width = latent_shape
    if mask.shape[0] not in (1, batch):
        raise ValueError(f"mask batch {mask.shape[0]} does not match the latent batch {batch}")
    mask_hw = tuple(mask.shape[-2:])
    if mask_hw == (height, width):
        resized = mask[:, None].float()
    elif mask_hw[0] // VAE_SCALE == height and mask_hw[1] // VAE_SCALE == width:
        cropped = mask[:, None, :height * VAE_SCALE, :width * VAE_SCALE].float()
        resized = torch.nn.functional.avg_pool2d(cropped, VAE_SCALE)
    else:
        raise ValueError(f"mask is {mask_hw[1]}x{mask_hw[0]} px but the latent is {width}x{height} "
                         f"({width * VAE_SCALE}x{height * VAE_SCALE} px): use a mask of the image's size")
    return resized.clamp(0, 1).expand(batch, 1, height, width).clone()


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
