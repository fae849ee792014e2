"""What both drag nodes check and derive from their inputs before any model call.

The checks come in two rounds.  :func:`check_picture` needs only the picture, the points and the mask: the drag
nodes run it from ``check_lazy_status``, before their lazy ``model`` and ``trajectory`` (and so the LoRA training
and inversion upstream) are computed.  :func:`prepare_drag` adds the model and the trajectory.
"""
from dataclasses import dataclass
from typing import Optional

import torch

from ..core.grids import VAE_SCALE, image_points_to_grid, mask_to_latent_nearest, supervision_grid_hw
from ..core.points import parse_drag_points
from ..core.regions import rasterize, read_region
from . import backend, checks
from .trajectory import InversionTrajectory
from .unet_hooks import check_feature_block, diffusion_model

# The inputs ComfyUI computes only when the picture and the points passed (see the nodes' check_lazy_status).
LAZY_INPUTS = ("model", "trajectory", "latent")


@dataclass(frozen=True)
class Picture:
    """The picture's checks: its size, the points in its pixels, and the editable mask (None: nothing drawn)."""
    image_hw: tuple
    handles_xy: torch.Tensor
    targets_xy: torch.Tensor
    mask: Optional[torch.Tensor]  # [H,W] at image or latent size


def _image(image) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (3, 4):
        raise ValueError("image must be an IMAGE [batch, height, width, channels]")
    if image.shape[0] != 1:
        raise ValueError(f"image has batch {image.shape[0]}: drag one image at a time")
    return image


def check_picture(image, drag_points, mask=None, region=None) -> Picture:
    """The checks that need no model: the points inside the picture, the mask of its size (or its latent's).
    The editable mask is the connected one, else the region painted in the point editor."""
    image_hw = tuple(_image(image).shape[1:3])
    handles, targets = parse_drag_points(drag_points, image_hw)
    # An empty mask means nothing was drawn (the reference's semantics): LoadImage gives a 64x64 zero mask for
    # pictures without alpha, which must not trip the size check.
    if isinstance(mask, torch.Tensor) and not bool(mask.any()):
        mask = None
    if mask is None:
        painted = rasterize(read_region(region), image_hw)
        mask = torch.from_numpy(painted) if painted.any() else None
    if mask is not None:
        latent_hw = (image_hw[0] // VAE_SCALE, image_hw[1] // VAE_SCALE)
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape[-2:]) not in (image_hw, latent_hw):
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"mask {shape} must be the image's size {image_hw[1]}x{image_hw[0]} (or the latent's)")
        if mask.ndim == 3 and mask.shape[0] != 1:
            raise ValueError(f"mask has batch {mask.shape[0]}: drag one image at a time, with one mask")
        mask = mask[0] if mask.ndim == 3 else mask
    return Picture(image_hw=image_hw, handles_xy=handles, targets_xy=targets, mask=mask)


def lazy_inputs_needed(inputs: dict) -> list:
    """The lazy inputs still to compute (a linked one arrives as None until ComfyUI computed it)."""
    return [name for name in LAZY_INPUTS if name in inputs and inputs[name] is None]


@dataclass
class DragSetup:
    """What both drag nodes derive from their inputs before any model call."""
    positive: list
    negative: Optional[list]
    samples: torch.Tensor
    image_hw: tuple
    grid_hw: tuple
    handles: torch.Tensor  # [N,2] grid [row, col]
    targets: torch.Tensor
    targets_xy: torch.Tensor  # image [x, y], for previews and the tracked_points output
    mask_latent: Optional[torch.Tensor]
    block: int


def check_trajectory(model, trajectory, picture: Picture, latent=None) -> torch.Tensor:
    """The latent the drag starts from: the trajectory's top (or ``latent``, which must sit there), of the
    picture's size."""
    trajectory = InversionTrajectory.checked(trajectory)
    backend.require_unet(checks.model(model), "The drag nodes")
    trajectory.check_model(backend.model_signature(model))
    if trajectory.encoded_steps < 1:
        raise ValueError("the trajectory has no inversion steps (strength 0): drag needs a noisy latent; raise "
                         "DDIM Inversion's strength (DragDiffusion uses 0.7)")
    samples = trajectory.latents[-1] if latent is None else checks.latent_samples(latent)
    step = 0 if latent is None else trajectory.step_of(latent)
    if step != 0:
        raise ValueError(f"the latent sits at denoising step {step} of the trajectory; "
                         "DragDiffusion drags at its top (step 0): connect a latent from there")
    if tuple(samples.shape) != trajectory.latent_shape:
        raise ValueError(f"latent {tuple(samples.shape)} does not match the trajectory's "
                         f"{trajectory.latent_shape}: connect the latent DDIM Inversion made from this trajectory")
    if samples.shape[0] != 1:
        raise ValueError(f"the latent has batch {samples.shape[0]}: drag one image at a time")
    latent_hw, image_hw = tuple(samples.shape[-2:]), picture.image_hw
    if (image_hw[0] // VAE_SCALE, image_hw[1] // VAE_SCALE) != latent_hw:
        raise ValueError(f"image is {image_hw[1]}x{image_hw[0]} px but the latent is {latent_hw[1]}x{latent_hw[0]} "
                         f"(an image of {latent_hw[1] * VAE_SCALE}x{latent_hw[0] * VAE_SCALE} px): "
                         "connect the image that was encoded")
    return samples


def prepare_drag(model, positive, trajectory, image, drag_points, cfg: float, feature_block: int, negative=None,
                 mask=None, latent=None, region=None) -> DragSetup:
    """The drag nodes' checks and conversions, all before the first model call."""
    checks.drag_cfg(cfg)
    positive = checks.conditioning(positive, "positive")
    picture = check_picture(image, drag_points, mask, region)
    samples = check_trajectory(model, trajectory, picture, latent)
    block = check_feature_block(diffusion_model(model), feature_block)
    if cfg != 1.0:
        negative = checks.conditioning(negative, "negative", required=False) or backend.zero_conditioning(model)
    image_hw = picture.image_hw
    grid_hw = supervision_grid_hw(image_hw)
    mask_latent = None
    if picture.mask is not None:  # the reference's resampling, as the demo does
        mask_latent = mask_to_latent_nearest(picture.mask, grid_hw, tuple(samples.shape[-2:]))[0, 0]
    return DragSetup(positive=positive, negative=negative, samples=samples, image_hw=image_hw, grid_hw=grid_hw,
                     handles=image_points_to_grid(picture.handles_xy, image_hw, grid_hw),
                     targets=image_points_to_grid(picture.targets_xy, image_hw, grid_hw),
                     targets_xy=picture.targets_xy, mask_latent=mask_latent, block=block)
