"""Points and masks between the three resolutions an edit sees: image pixels, the drag's supervision grid and latent
cells.

The supervision grid is DragDiffusion's (``run_drag`` in the reference): ``int(H/2) x int(W/2)`` for an ``H x W``
image.  Image points are ``[x, y]`` pixels; grid points are integer ``[row, col]`` =
``round(y*grid_h/H), round(x*grid_w/W)`` (no half-pixel offset, round half to even as torch.round).
"""
from typing import Sequence

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
# Pixels per latent cell of the SD-family VAEs the pack targets.
VAE_SCALE = 8


def supervision_grid_hw(image_hw: Sequence[int]) -> tuple[int, int]:
    """The reference's supervision resolution: ``int(0.5*H) x int(0.5*W)``."""
    return int(0.5 * image_hw[0]), int(0.5 * image_hw[1])


def image_points_to_grid(points_xy, image_hw: Sequence[int], grid_hw: Sequence[int]) -> Tensor:
    """``[N,2]`` image ``[x, y]`` pixels -> ``[N,2]`` long ``[row, col]`` on the grid (round half to even, as the
    reference). Deviation: results are clamped into the grid so points on the far edge stay valid (the reference
    would index out of range)."""
    p = torch.as_tensor(points_xy, dtype=torch.float64).reshape(-1, 2)
    rows = torch.round(p[:, 1] * grid_hw[0] / image_hw[0]).clamp(0, grid_hw[0] - 1)
    cols = torch.round(p[:, 0] * grid_hw[1] / image_hw[1]).clamp(0, grid_hw[1] - 1)
    return torch.stack([rows, cols], dim=1).long()


def grid_points_to_image(points_rc: Tensor, image_hw: Sequence[int], grid_hw: Sequence[int]) -> Tensor:
    """Inverse of :func:`image_points_to_grid` (up to its rounding): ``[N,2]`` ``[row, col]`` -> float ``[x, y]``."""
    p = torch.as_tensor(points_rc, dtype=torch.float64).reshape(-1, 2)
    return torch.stack([p[:, 1] * image_hw[1] / grid_hw[1], p[:, 0] * image_hw[0] / grid_hw[0]], dim=1)


def mask_to_latent_nearest(mask: Tensor, grid_hw: Sequence[int], latent_hw: Sequence[int]) -> Tensor:
    """DragDiffusion's resampling of its editable mask: an image mask ``[H,W]`` (nonzero = editable) -> ``[1,1,h,w]``
    {0,1}, nearest to the supervision grid, then nearest to the latent size.  The drag nodes and the demo use it so
    the mask term sees the cells the reference's does."""
    m = (torch.as_tensor(mask).float().reshape(1, 1, *mask.shape[-2:]) > 0).float()
    m = F.interpolate(m, size=tuple(grid_hw), mode="nearest")
    return F.interpolate(m, size=tuple(latent_hw), mode="nearest")


def mask_to_latent(mask: Tensor, latent_shape: tuple) -> Tensor:
    """A MASK ``[B, H, W]`` or ``[H, W]`` at pixel or latent resolution -> ``[B, 1, h, w]`` at latent resolution,
    by area averaging (DiffEdit's decode): a latent-resolution mask that was upsampled exactly comes back exactly,
    and painted soft edges stay soft."""
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
        resized = F.avg_pool2d(cropped, VAE_SCALE)
    else:
        raise ValueError(f"mask is {mask_hw[1]}x{mask_hw[0]} px but the latent is {width}x{height} "
                         f"({width * VAE_SCALE}x{height * VAE_SCALE} px): use a mask of the image's size")
    return resized.clamp(0, 1).expand(batch, 1, height, width).clone()
