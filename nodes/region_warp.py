"""Drag Region Warp node: the instant drag's warp (Inpaint4Drag), in a fraction of a second, for any inpainting
model to fill what it uncovers.  The point editor on the node places the pairs, paints the region and previews the
warp live through the pack's route (nodes/routes.py), which runs the same core function."""
from dataclasses import replace

import numpy as np
import torch

from ..core.instant_drag import check_at_queue, plan_drag
from ..core.points import FORMAT
from ..core.region_warp import apply_warp
from ..core.regions import FORMAT as REGION_FORMAT
from ..core.settings import INSTANT_DRAG
from . import checks
from .drag import editor_picture, with_region_limits
from .host_api import io

DEFAULTS = INSTANT_DRAG.warp
NOT_CONNECTED = object()  # validate_inputs' mask when ComfyUI leaves it out: nothing is linked to it


def _picture(image) -> np.ndarray:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (3, 4):
        raise ValueError("image must be an IMAGE [batch, height, width, channels]")
    if image.shape[0] != 1:
        raise ValueError(f"image has batch {image.shape[0]}: Drag Region Warp moves one picture at a time")
    return image[0].detach().float().cpu().numpy()


def _given_mask(mask):
    """A connected MASK that has a region in it, as numpy; an empty one (e.g. Load Image's for a picture without
    alpha) leaves the painted region in charge."""
    if mask is None or not bool(mask.any()):
        return None
    if mask.ndim == 3 and mask.shape[0] != 1:
        raise ValueError(f"mask has batch {mask.shape[0]}: give one region mask")
    return mask.detach().float().cpu().numpy()


class DragRegionWarp(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_RegionWarp",
            display_name="Drag Region Warp",
            category="image editing",
            description="Instant drag (Inpaint4Drag): the painted region moves with the handle->target pairs by a "
                        "bidirectional warp, with no model and no optimisation; inpaint the area it uncovers "
                        "(inpaint_mask) with any inpainting model, then paste that area into the warped picture.",
            inputs=[
                io.Image.Input("image", tooltip="The picture (one): the point editor shows it, points and the "
                                                "region are in its pixels."),
                io.String.Input("drag_points", multiline=True, default="[]",
                                tooltip=f"Handle->target pairs, {FORMAT}. Each handle must lie on the region it "
                                        "drags. Written by the point editor."),
                io.Int.Input("kernel", default=DEFAULTS.kernel, min=0, max=DEFAULTS.max_kernel,
                             tooltip="Pixels the area to inpaint grows by, and the width of the band inpainted "
                                     "along the moved region's outline "
                                     f"(Inpaint4Drag: {DEFAULTS.kernel}; 0 = neither)."),
                io.Mask.Input("mask", optional=True,
                              tooltip="The region to move, instead of the painted one (an empty mask leaves the "
                                      "painted region in charge)."),
                with_region_limits(io.String.Input(
                    "region", default="", optional=True,
                    tooltip=f"The painted region, {REGION_FORMAT}, in pixels of the picture. Written by the point "
                            "editor's brush and eraser.")),
            ],
            outputs=[
                io.Image.Output(display_name="warped", tooltip="The picture with the region moved."),
                io.Mask.Output(display_name="inpaint_mask",
                               tooltip="What to inpaint: the area the region uncovered (grown by kernel) and a band "
                                       "along its new outline."),
                io.Mask.Output(display_name="moved_region", tooltip="The region at its new place."),
                io.Mask.Output(display_name="region", tooltip="The region that moved, at its old place."),
            ],
        )

    @classmethod
    def validate_inputs(cls, drag_points, region=None, mask=NOT_CONNECTED) -> bool | str:
        """At queue time: the JSON of both, and no handle certainly off the painted region unless a MASK is
        connected (linked values arrive as None, an unconnected input not at all; ComfyUI shows a refusal under
        each input named here).  Cheap whatever the region declares: nothing is drawn."""
        connected = mask is not NOT_CONNECTED
        return checks.at_queue(lambda text: check_at_queue(text, region, mask_connected=connected), drag_points)

    @classmethod
    def execute(cls, image, drag_points, kernel, mask=None, region=None) -> io.NodeOutput:
        picture = _picture(image)
        plan, moved = plan_drag(picture.shape[:2], drag_points, region, _given_mask(mask),
                                replace(DEFAULTS, kernel=kernel))
        warped = torch.from_numpy(apply_warp(picture, plan))[None].to(image.dtype)

        def as_mask(array):
            return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]

        return io.NodeOutput(warped, as_mask(plan.inpaint_mask), as_mask(plan.moved_mask), as_mask(moved),
                             ui={"drag_preview": editor_picture(image)})

