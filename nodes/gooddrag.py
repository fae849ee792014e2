"""GoodDrag Latent Optimize node: GoodDrag's alternating drag and denoise on the same drag core and backend."""
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
from ..core.drag import grid_points_to_image, image_points_to_grid, supervision_grid_hw
from ..core.gooddrag import DEFAULTS, gooddrag
from ..core.points import FORMAT, format_drag_points, read_drag_points
from ..core.preview import drag_preview_image, to_pil
from . import checks
from .drag import check_drag_inputs
from .inversion import Trajectory
from .trajectory import LEVEL_KEY


class GoodDragLatentOptimize(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_GoodDragLatentOptimize",
            display_name="GoodDrag Latent Optimize",
            category="image editing",
            description="GoodDrag: alternates a few drag updates with one denoising step over the first steps "
                        "(AlDD), supervising against the original handle features with a bounded step. Its latent "
                        "carries the step it stopped at; Latent MasaCtrl Denoise continues from there.",
            inputs=[
                io.Model.Input("model", tooltip="The model used for the inversion (the LoRA-tuned clone)."),
                io.Conditioning.Input("positive", tooltip="The prompt of the image."),
                Trajectory.Input("trajectory", tooltip="DDIM Inversion of the image (GoodDrag: 50 steps, strength "
                                                       "0.75)."),
                io.Image.Input("image", tooltip="The image being edited, as encoded: the point editor shows it, "
                                                "and points are in its pixels."),
                io.String.Input("drag_points", multiline=True, default="[]",
                                tooltip=f"Handle->target pairs, {FORMAT}. Written by the point editor."),
                io.Int.Input("drag_end_step", default=DEFAULTS["drag_end_step"], min=1, max=1000,
                             tooltip="Denoising steps that get drag updates (GoodDrag: 7); then plain denoising."),
                io.Int.Input("drags_per_step", default=DEFAULTS["drags_per_step"], min=1, max=100,
                             tooltip="Point trackings per denoising step (GoodDrag: 10)."),
                io.Int.Input("max_drags_per_track", default=DEFAULTS["max_drags_per_track"], min=1, max=100,
                             tooltip="Drag updates between two trackings (GoodDrag: 3)."),
                io.Float.Input("step_bound", default=DEFAULTS["step_bound"], min=0.5, max=32.0, step=0.5,
                               tooltip="Beta: how far (supervision px) the features are pulled per update, at most "
                                       "(GoodDrag: 4)."),
                io.Float.Input("learning_rate", default=DEFAULTS["lr"], min=0.0001, max=1.0, step=0.001,
                               round=0.0001, tooltip="Adam learning rate on the latent, fresh each step "
                                                     "(GoodDrag: 0.02)."),
                io.Float.Input("mask_weight", default=DEFAULTS["lam"], min=0.0, max=100.0, step=0.01,
                               tooltip="Lambda of the mask term (GoodDrag: 0.2). Without a mask it holds the whole "
                                       "latent, as GoodDrag's code does."),
                io.Int.Input("motion_radius", default=DEFAULTS["r_m"], min=1, max=16,
                             tooltip="r1: half-size of the supervised patch (GoodDrag: 4)."),
                io.Int.Input("track_radius", default=DEFAULTS["r_p"], min=1, max=32,
                             tooltip="r2: half-size of the tracking window (GoodDrag: 12)."),
                io.Int.Input("max_unchanged_tracks", default=DEFAULTS["max_unchanged_tracks"], min=1, max=1000,
                             tooltip="Stop dragging after this many trackings in a row move no handle "
                                     "(GoodDrag: 10)."),
                io.Float.Input("cfg", default=1.0, min=1.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Guidance: 1 for real images; the generation's CFG for generated ones."),
                io.Int.Input("feature_block", default=-1, min=-1, max=64,
                             tooltip="UNet decoder block supervising the motion; -1 = as DragDiffusion."),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative prompt, used when cfg != 1."),
                io.Mask.Input("mask", optional=True, tooltip="Editable region (1 = may change)."),
            ],
            outputs=[
                io.Latent.Output(display_name="latent",
                                 tooltip="The edited latent at the step the alternation ended, with the source at "
                                         "that step: connect it to Latent MasaCtrl Denoise."),
                io.String.Output(display_name="tracked_points", tooltip="The pairs with the tracked handles."),
            ],
        )

    @classmethod
    def validate_inputs(cls, drag_points) -> bool | str:
        if drag_points is not None:
            try:
                read_drag_points(drag_points)
            except ValueError as error:
                return str(error)
        return True

    @classmethod
    def execute(cls, model, positive, trajectory, image, drag_points, drag_end_step, drags_per_step,
                max_drags_per_track, step_bound, learning_rate, mask_weight, motion_radius, track_radius,
                max_unchanged_tracks, cfg, feature_block, negative=None, mask=None) -> io.NodeOutput:
        if cfg < 1.0:  # a linked value skips the schema's minimum
            raise ValueError(f"cfg {cfg} is below 1: use 1 for real images, the generation's CFG for generated ones")
        positive = checks.conditioning(positive, "positive")
        samples, image_hw, handles_xy, targets_xy, mask_latent = check_drag_inputs(
            model, trajectory, image, drag_points, None, mask)
        if drag_end_step >= trajectory.encoded_steps:
            raise ValueError(f"drag_end_step {drag_end_step} leaves none of the trajectory's "
                             f"{trajectory.encoded_steps} denoising steps for Latent MasaCtrl Denoise: lower it, or "
                             "invert with more steps or strength")
        block = check_feature_block(diffusion_model(model), feature_block)
        if cfg != 1.0:
            negative = checks.conditioning(negative, "negative", required=False) or backend.zero_conditioning(model)
        grid_hw = supervision_grid_hw(image_hw)
        handles = image_points_to_grid(handles_xy, image_hw, grid_hw)
        targets = image_points_to_grid(targets_xy, image_hw, grid_hw)
        sigmas = trajectory.sampling_sigmas()

        private, capture = PrivateUNet(), FeatureCapture(block, guided=cfg != 1.0)
        patched = capture.attach(private.attach(model))
        progress = comfy.utils.ProgressBar(drag_end_step)
        picture = to_pil(image[0])

        def on_update(step, update, loss, current):  # the alternation: denoising step, and each drag update in it
            shown = grid_points_to_image(current, image_hw, grid_hw)
            progress.update_absolute(step, drag_end_step, ("JPEG", drag_preview_image(picture, shown, targets_xy), 512))

        def body(denoise, x):
            private.materialize(patched)
            try:
                drag_model = ComfyDragModel(denoise, diffusion_model(model), capture, cfg)
                result = gooddrag(drag_model, x, sigmas, handles, targets, grid_hw=grid_hw, mask_latent=mask_latent,
                                  drag_end_step=drag_end_step, drags_per_step=drags_per_step,
                                  max_drags_per_track=max_drags_per_track, step_bound=step_bound, r_m=motion_radius,
                                  r_p=track_radius, lam=mask_weight, lr=learning_rate,
                                  max_unchanged_tracks=max_unchanged_tracks,
                                  loss_scaling=backend.needs_loss_scaling(model), callback=on_update,
                                  should_stop=backend.check_interrupt)
            finally:
                private.release()
                capture.chunks = []
            progress.update_absolute(drag_end_step, drag_end_step)
            return result.latent, result

        edited, result = backend.run_guided(patched, positive, negative, cfg, samples, sigmas, body, autograd=True)
        source = backend.to_latent_space(model, result.source).detach().clone()
        level = trajectory.level(result.level)
        level[LEVEL_KEY]["source"] = source.to(torch.float32).cpu()  # Latent MasaCtrl Denoise's reference branch
        tracked = format_drag_points(grid_points_to_image(result.handles.cpu(), image_hw, grid_hw), targets_xy)
        out = {"samples": edited.detach().clone(), **level}
        preview = ui.ImageSaveHelper.save_images(image[:1, ..., :3], "drag_edit_points", ui.FolderType.temp, cls)
        return io.NodeOutput(out, tracked, ui={"drag_preview": [dict(r) for r in preview], "tracked_points": [tracked]})
