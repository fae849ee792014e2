"""GoodDrag Latent Optimize node: GoodDrag's alternating drag and denoise on the same drag core and backend."""

from comfy_api.latest import io

from ..core.backends import comfy as backend
from ..core.gooddrag import DEFAULTS, gooddrag
from ..core.points import FORMAT, read_drag_points
from . import checks
from .drag import drag_output, prepare_drag, preview_progress, run_drag_method
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
        return checks.at_queue(read_drag_points, drag_points)

    @classmethod
    def execute(cls, model, positive, trajectory, image, drag_points, drag_end_step, drags_per_step,
                max_drags_per_track, step_bound, learning_rate, mask_weight, motion_radius, track_radius,
                max_unchanged_tracks, cfg, feature_block, negative=None, mask=None) -> io.NodeOutput:
        setup = prepare_drag(model, positive, trajectory, image, drag_points, cfg, feature_block, negative, mask)
        if drag_end_step >= trajectory.encoded_steps:
            raise ValueError(f"drag_end_step {drag_end_step} leaves none of the trajectory's "
                             f"{trajectory.encoded_steps} denoising steps for Latent MasaCtrl Denoise: lower it, or "
                             "invert with more steps or strength")
        sigmas = trajectory.sampling_sigmas()
        show = preview_progress(image, setup, drag_end_step)  # the alternation: the denoising step of each update

        def drag(drag_model, x):
            return gooddrag(drag_model, x, sigmas, setup.handles, setup.targets, grid_hw=setup.grid_hw,
                            mask_latent=setup.mask_latent, drag_end_step=drag_end_step, drags_per_step=drags_per_step,
                            max_drags_per_track=max_drags_per_track, step_bound=step_bound, r_m=motion_radius,
                            r_p=track_radius, lam=mask_weight, lr=learning_rate,
                            max_unchanged_tracks=max_unchanged_tracks, loss_scaling=backend.needs_loss_scaling(model),
                            callback=lambda step, update, loss, handles: show(step, handles),
                            should_stop=backend.check_interrupt)

        edited, result = run_drag_method(model, setup, cfg, sigmas, drag)
        show(drag_end_step)
        level = trajectory.level(result.level)
        # The source at that step, Latent MasaCtrl Denoise's reference branch.
        level[LEVEL_KEY]["source"] = backend.to_latent_space(model, result.source).detach().float().cpu()
        return drag_output(cls, image, setup, {"samples": edited.detach().clone(), **level}, result.handles)
