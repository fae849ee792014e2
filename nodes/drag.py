"""Drag Latent Optimize node: DragDiffusion's motion supervision and point tracking on the inverted latent.

Also the pieces both drag nodes share (checks, the private-UNet run, previews, outputs); GoodDrag's node uses them.
"""
from dataclasses import dataclass
from typing import Optional

import torch

import comfy.utils
from comfy_api.latest import io, ui

from ..core.backends import comfy as backend
from ..core.backends.comfy_unet import (
    ComfyDragModel,
    FeatureCapture,
    PrivateUNet,
    check_feature_block,
    diffusion_model,
)
from ..core.drag import (
    at_sigma,
    grid_points_to_image,
    image_points_to_grid,
    mask_to_latent,
    optimize_drag_latent,
    supervision_grid_hw,
)
from ..core.points import FORMAT, format_drag_points, parse_drag_points, read_drag_points
from ..core.preview import drag_preview_image, to_pil
from . import checks
from .inversion import Trajectory
from .trajectory import InversionTrajectory


def _image(image) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (3, 4):
        raise ValueError("image must be an IMAGE [batch, height, width, channels]")
    if image.shape[0] != 1:
        raise ValueError(f"image has batch {image.shape[0]}: drag one image at a time")
    return image


def check_drag_inputs(model, trajectory, image, drag_points, latent=None, mask=None):
    """Everything the node validates before the first model call; returns the pieces it needs."""
    trajectory = InversionTrajectory.checked(trajectory)
    trajectory.check_model(backend.model_signature(checks.model(model)))
    if trajectory.encoded_steps < 1:
        raise ValueError("the trajectory has no inversion steps (strength 0): drag needs a noisy latent; raise "
                         "DDIM Inversion's strength (DragDiffusion uses 0.7)")
    samples = trajectory.latents[-1] if latent is None else checks.latent_samples(latent)
    level = 0 if latent is None else trajectory.level_of(latent)
    if level != 0:
        raise ValueError(f"the latent sits at denoising step {level} of the trajectory; "
                         "DragDiffusion drags at its top level (step 0): connect a latent from there")
    if tuple(samples.shape) != trajectory.latent_shape:
        raise ValueError(f"latent {tuple(samples.shape)} does not match the trajectory's "
                         f"{trajectory.latent_shape}: connect the latent DDIM Inversion made from this trajectory")
    if samples.shape[0] != 1:
        raise ValueError(f"the latent has batch {samples.shape[0]}: drag one image at a time")
    image = _image(image)
    image_hw = tuple(image.shape[1:3])
    latent_hw = tuple(samples.shape[-2:])
    if (image_hw[0] // checks.VAE_SCALE, image_hw[1] // checks.VAE_SCALE) != latent_hw:
        raise ValueError(f"image is {image_hw[1]}x{image_hw[0]} px but the latent is {latent_hw[1]}x{latent_hw[0]} "
                         f"(an image of {latent_hw[1] * checks.VAE_SCALE}x{latent_hw[0] * checks.VAE_SCALE} px): "
                         "connect the image that was encoded")
    handles, targets = parse_drag_points(drag_points, image_hw)
    mask_latent = None
    # An empty mask means nothing was drawn (the reference's semantics): LoadImage gives a 64x64 zero mask for
    # pictures without alpha, which must not trip the size check.
    if isinstance(mask, torch.Tensor) and not bool(mask.any()):
        mask = None
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.shape[-2:] not in (image.shape[1:3], samples.shape[-2:]):
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"mask {shape} must be the image's size {image_hw[1]}x{image_hw[0]} (or the latent's)")
        if mask.ndim == 3 and mask.shape[0] != 1:
            raise ValueError(f"mask has batch {mask.shape[0]}: drag one image at a time, with one mask")
        # The reference's resampling (nearest to the supervision grid, then to the latent), as the demo does.
        mask_latent = mask_to_latent(mask[0] if mask.ndim == 3 else mask, supervision_grid_hw(image_hw),
                                     latent_hw)[0, 0]
    return samples, image_hw, handles, targets, mask_latent


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


def prepare_drag(model, positive, trajectory, image, drag_points, cfg, feature_block, negative=None, mask=None,
                 latent=None) -> DragSetup:
    """The drag nodes' checks and conversions, all before the first model call."""
    checks.drag_cfg(cfg)
    positive = checks.conditioning(positive, "positive")
    samples, image_hw, handles_xy, targets_xy, mask_latent = check_drag_inputs(
        model, trajectory, image, drag_points, latent, mask)
    block = check_feature_block(diffusion_model(model), feature_block)
    if cfg != 1.0:
        negative = checks.conditioning(negative, "negative", required=False) or backend.zero_conditioning(model)
    grid_hw = supervision_grid_hw(image_hw)
    return DragSetup(positive=positive, negative=negative, samples=samples, image_hw=image_hw, grid_hw=grid_hw,
                     handles=image_points_to_grid(handles_xy, image_hw, grid_hw),
                     targets=image_points_to_grid(targets_xy, image_hw, grid_hw), targets_xy=targets_xy,
                     mask_latent=mask_latent, block=block)


def preview_progress(image, setup: DragSetup, total: int):
    """``show(value, handles=None)``: the progress bar at ``value`` of ``total``, previewing the handles (grid, on
    the CPU) when given."""
    progress = comfy.utils.ProgressBar(total)
    picture = to_pil(image[0])  # converted once; each preview draws on a copy

    def show(value, handles=None):
        if handles is None:
            return progress.update_absolute(value, total)
        shown = grid_points_to_image(handles, setup.image_hw, setup.grid_hw)
        progress.update_absolute(value, total, ("JPEG", drag_preview_image(picture, shown, setup.targets_xy), 512))

    return show


def run_drag_method(model, setup: DragSetup, cfg: float, sigmas, method):
    """Run ``method(drag_model, x) -> result`` (``result.latent`` in model space) inside ComfyUI's guider, with
    backward through a private view of the loaded UNet and the supervised block captured; the view is released
    also on error or cancel.  Returns ``(latent in LATENT space, result)``."""
    private, capture = PrivateUNet(), FeatureCapture(setup.block, guided=cfg != 1.0)
    patched = capture.attach(private.attach(model))

    def body(denoise, x):
        private.materialize(patched)
        try:
            result = method(ComfyDragModel(denoise, diffusion_model(model), capture, cfg), x)
        finally:
            private.release()
            capture.chunks = []
        return result.latent, result

    return backend.run_guided(patched, setup.positive, setup.negative, cfg, setup.samples, sigmas, body,
                              autograd=True)


def drag_output(node, image, setup: DragSetup, latent: dict, handles) -> io.NodeOutput:
    """The LATENT, the tracked pairs, and the picture the point editor shows with them after a run."""
    tracked = format_drag_points(grid_points_to_image(handles.cpu(), setup.image_hw, setup.grid_hw),
                                 setup.targets_xy)
    preview = ui.ImageSaveHelper.save_images(image[:1, ..., :3], "drag_edit_points", ui.FolderType.temp, node)
    # The point editor shows the picture and the tracked handles after a run (web/js/drag_points_editor.js).
    return io.NodeOutput(latent, tracked, ui={"drag_preview": [dict(r) for r in preview], "tracked_points": [tracked]})


class DragLatentOptimize(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_DragLatentOptimize",
            display_name="Drag Latent Optimize",
            category="image editing",
            description="DragDiffusion: moves image content from handle points to target points by optimising the "
                        "inverted latent (motion supervision on UNet decoder features, point tracking, mask term).",
            inputs=[
                io.Model.Input("model", tooltip="The model used for the inversion (the LoRA-tuned clone)."),
                io.Conditioning.Input("positive", tooltip="The prompt of the image."),
                Trajectory.Input("trajectory", tooltip="DDIM Inversion of the image (DragDiffusion: 50 steps, "
                                                       "strength 0.7). The drag runs at its last level."),
                io.Image.Input("image", tooltip="The image being edited, as encoded: the point editor shows it, "
                                                "and points are in its pixels."),
                io.String.Input("drag_points", multiline=True, default="[]",
                                tooltip=f"Handle->target pairs, {FORMAT}. Written by the point editor; API users "
                                        "send the same JSON."),
                io.Int.Input("steps", default=80, min=1, max=1000,
                             tooltip="Maximum optimisation steps; stops early when every handle is within 2 "
                                     "supervision pixels (4 image px) of its target."),
                io.Float.Input("learning_rate", default=0.01, min=0.0001, max=1.0, step=0.001, round=0.0001,
                               tooltip="Adam learning rate on the latent (the reference's 0.01; its author "
                                       "suggests 0.02-0.04 for speed at some quality cost)."),
                io.Float.Input("mask_weight", default=0.1, min=0.0, max=100.0, step=0.01,
                               tooltip="Lambda: how strongly the area outside the mask is held to the original "
                                       "(only with a non-empty mask)."),
                io.Float.Input("cfg", default=1.0, min=1.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Guidance: 1 for real images; the generation's CFG (e.g. 7.5) for images "
                                       "generated in the graph. Below 1 the reference's feature mix is undefined."),
                io.Int.Input("feature_block", default=-1, min=-1, max=64,
                             tooltip="UNet decoder block (output_blocks index) supervising the motion. -1 = the "
                                     "block that upsamples to latent resolution (SD1.x/2.x: 8, SDXL: 5)."),
                io.Int.Input("motion_radius", default=1, min=0, max=8,
                             tooltip="r_m: half-size of the supervised patch around each handle, in supervision "
                                     "pixels (image px / 2)."),
                io.Int.Input("track_radius", default=3, min=1, max=16,
                             tooltip="r_p: half-size of the point-tracking search window, in supervision pixels."),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative prompt, used when cfg != 1."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Editable region (1 = may change), e.g. from LoadImage's mask editor. Empty "
                                      "or absent: everything may change and there is no mask term."),
                io.Latent.Input("latent", optional=True,
                                tooltip="Start from this latent instead of the trajectory's last one (e.g. a "
                                        "previous drag); it must have the trajectory's shape."),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="The optimised latent, for Latent MasaCtrl Denoise."),
                io.String.Output(display_name="tracked_points",
                                 tooltip="The pairs with each handle where tracking last found it (same JSON)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, drag_points) -> bool | str:
        """At queue time, before LoRA tuning and inversion run: the JSON's shape (linked text arrives as None)."""
        return checks.at_queue(read_drag_points, drag_points)

    @classmethod
    def execute(cls, model, positive, trajectory, image, drag_points, steps, learning_rate, mask_weight, cfg,
                feature_block, motion_radius, track_radius, negative=None, mask=None, latent=None) -> io.NodeOutput:
        setup = prepare_drag(model, positive, trajectory, image, drag_points, cfg, feature_block, negative, mask,
                             latent)
        sigmas = trajectory.sampling_sigmas()
        sigma, sigma_next = float(sigmas[0]), float(sigmas[1])
        show = preview_progress(image, setup, steps)

        def drag(drag_model, x):
            return optimize_drag_latent(
                at_sigma(drag_model.features, sigma), x, sigma, sigma_next, setup.handles, setup.targets,
                grid_hw=setup.grid_hw, mask_latent=setup.mask_latent, steps=steps, lr=learning_rate, lam=mask_weight,
                r_m=motion_radius, r_p=track_radius, loss_scaling=backend.needs_loss_scaling(model),
                callback=lambda step, loss, handles: show(step + 1, handles), should_stop=backend.check_interrupt)

        optimised, result = run_drag_method(model, setup, cfg, sigmas, drag)
        return drag_output(cls, image, setup, {"samples": optimised.detach().clone(), **trajectory.level(0)},
                           result.handles)
