"""The instant drag as the Drag Region Warp node and the point editor's live preview both run it: the drag_points
JSON and a region (painted strokes or a mask) in, the warped picture and its masks out.

One implementation serves both, so the preview shows exactly what the node will compute.  The points of
``drag_points`` are continuous image coordinates (0.1 px); the warp matches handles to region pixels exactly, so
they are rounded to whole pixels, a handle on the far edge (x = W) to the last one.  Targets may lie on or just past
the far edge: what moves off the picture is dropped.
"""
from typing import Optional

import numpy as np

from .points import parse_drag_points, read_drag_points
from .region_warp import WarpPlan, bidirectional_warp, preview_warp, unclaimed_handle
from .regions import certainly_outside, rasterize, read_region
from .settings import INSTANT_DRAG, InstantDragSettings


def pixel_points(handles_xy, targets_xy, image_hw: tuple) -> tuple[np.ndarray, np.ndarray]:
    """drag_points' coordinates as the whole pixels the warp works on (handles kept inside the picture)."""
    height, width = image_hw
    handles = np.rint(np.asarray(handles_xy, dtype=np.float64))
    handles = np.stack([np.clip(handles[:, 0], 0, width - 1), np.clip(handles[:, 1], 0, height - 1)], axis=1)
    return handles, np.rint(np.asarray(targets_xy, dtype=np.float64))


def region_mask(region_text, mask: Optional[np.ndarray], image_hw: tuple) -> np.ndarray:
    """The region to move at ``image_hw``: ``mask`` when given (nonzero = region), else the painted strokes."""
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float32)
        if mask.ndim == 3 and mask.shape[0] == 1:
            mask = mask[0]
        if mask.shape != tuple(image_hw):
            raise ValueError(f"the region mask is {mask.shape[-1]}x{mask.shape[0]} but the picture is "
                             f"{image_hw[1]}x{image_hw[0]}: give a mask of the picture's size")
        return (mask > 0).astype(np.float32)
    region = read_region(region_text)
    painted = rasterize(region, image_hw)
    if not painted.any():
        raise ValueError("no region to move: paint it on the picture in the editor (or connect a MASK)")
    return painted


def plan_drag(image_hw: tuple, drag_points: str, region_text=None, mask: Optional[np.ndarray] = None,
              settings: InstantDragSettings = INSTANT_DRAG.warp) -> tuple[WarpPlan, np.ndarray]:
    """``(plan, region)``: how the region (``mask``, else the painted ``region_text``) moves with the pairs of
    ``drag_points`` in a picture of ``image_hw``.  ValueError with a sentence naming the problem (and the pair)."""
    handles_xy, targets_xy = parse_drag_points(drag_points, image_hw)
    region = region_mask(region_text, mask, image_hw)
    handles, targets = pixel_points(handles_xy.numpy(), targets_xy.numpy(), image_hw)
    return bidirectional_warp(region, handles, targets, settings.kernel, image_hw, settings), region


def preview(picture: np.ndarray, drag_points: str, region_text=None,
            settings: InstantDragSettings = INSTANT_DRAG.warp) -> np.ndarray:
    """The editor's live preview of ``picture`` ``[H, W, C]``: the warped picture with the area to inpaint drawn
    as the official UI does."""
    plan, _ = plan_drag(tuple(picture.shape[:2]), drag_points, region_text, settings=settings)
    return preview_warp(picture, plan, settings)


def check_at_queue(drag_points, region_text, mask_connected: bool = False) -> None:
    """What needs no picture: the points' JSON, the strokes' JSON, and, where a region is painted and no MASK is
    connected (a MASK would replace it), that no handle lies certainly off it on the picture it was painted on
    (its size is in the strokes).  Decided on the strokes, without drawing (:func:`core.regions.certainly_outside`):
    it costs pairs times stroke points whatever the sizes and radii, and a doubt is left to the node, which refuses
    as soon as it runs; it never refuses what the node accepts."""
    read_drag_points(drag_points)
    region = read_region(region_text)
    if not region.painted or mask_connected:
        return
    width, height = region.size
    handles_xy, targets_xy = parse_drag_points(drag_points, (height, width))
    handles, _ = pixel_points(handles_xy.numpy(), targets_xy.numpy(), (height, width))
    off = np.flatnonzero(certainly_outside(region, handles))
    if len(off):
        raise unclaimed_handle(int(off[0]), handles[off[0]])
