"""GoodDrag Latent Optimize node: GoodDrag's alternating drag and denoise on the same drag loop and backend."""

from ..core.gooddrag import gooddrag
from ..core.points import FORMAT
from ..core.settings import GOODDRAG, GoodDragSettings
from . import backend, checks
from .drag import (
    check_before_model,
    check_texts,
    drag_output,
    drag_problem,
    drag_run,
    preview_progress,
    region_input,
    run_drag_method,
)
from .drag_setup import prepare_drag
from .host_api import io
from .inversion import Trajectory

DEFAULTS = GOODDRAG.drag
NODE_DEFAULTS = GOODDRAG.drag_node_settings


def check_drag_end_step(drag_end_step: int, encoded_steps: int) -> None:
    if drag_end_step >= encoded_steps:
        raise ValueError(f"drag_end_step {drag_end_step} leaves none of the trajectory's {encoded_steps} denoising "
                         "steps for Latent MasaCtrl Denoise: lower it, or invert with more steps or strength")


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
            is_output_node=True,  # see nodes/drag.py
            inputs=[
                io.Model.Input("model", lazy=True, tooltip="The model used for the inversion (the LoRA-tuned "
                                                           "clone)."),
                io.Conditioning.Input("positive", tooltip="The prompt of the image."),
                Trajectory.Input("trajectory", lazy=True, tooltip="DDIM Inversion of the image (GoodDrag: "
                                                                  f"{GOODDRAG.inversion.steps} steps, strength "
                                                                  f"{GOODDRAG.inversion.strength:g})."),
                io.Image.Input("image", tooltip="The image being edited, as encoded: the point editor shows it, "
                                                "and points are in its pixels."),
                io.String.Input("drag_points", multiline=True, default="[]",
                                tooltip=f"Handle->target pairs, {FORMAT}. Written by the point editor."),
                io.Int.Input("drag_end_step", default=DEFAULTS.drag_end_step, min=1, max=1000,
                             tooltip="Denoising steps that get drag updates (GoodDrag: "
                                     f"{DEFAULTS.drag_end_step}); then plain denoising."),
                io.Int.Input("tracks_per_step", default=DEFAULTS.tracks_per_step, min=1, max=100,
                             tooltip=f"Point trackings per denoising step (GoodDrag: {DEFAULTS.tracks_per_step})."),
                io.Int.Input("max_updates_per_track", default=DEFAULTS.max_updates_per_track, min=1, max=100,
                             tooltip=f"Drag updates between trackings (GoodDrag: {DEFAULTS.max_updates_per_track})."),
                io.Float.Input("step_bound", default=DEFAULTS.step_bound, min=0.5, max=32.0, step=0.5,
                               tooltip="Beta: how far (supervision px) the features are pulled per update, at most "
                                       f"(GoodDrag: {DEFAULTS.step_bound:g})."),
                io.Float.Input("learning_rate", default=DEFAULTS.learning_rate, min=0.0001, max=1.0, step=0.001,
                               round=0.0001, tooltip="Adam learning rate on the latent, fresh each step "
                                                     f"(GoodDrag: {DEFAULTS.learning_rate:g})."),
                io.Float.Input("mask_weight", default=DEFAULTS.mask_weight, min=0.0, max=100.0, step=0.01,
                               tooltip=f"Lambda of the mask term (GoodDrag: {DEFAULTS.mask_weight:g}). Without a "
                                       "mask it holds the whole latent, as GoodDrag's code does."),
                io.Int.Input("motion_radius", default=DEFAULTS.motion_radius, min=1, max=16,
                             tooltip=f"r1: half-size of the supervised patch (GoodDrag: {DEFAULTS.motion_radius})."),
                io.Int.Input("track_radius", default=DEFAULTS.track_radius, min=1, max=32,
                             tooltip=f"r2: half-size of the tracking window (GoodDrag: {DEFAULTS.track_radius})."),
                io.Int.Input("max_unchanged_tracks", default=DEFAULTS.max_unchanged_tracks, min=1, max=1000,
                             tooltip="Stop dragging after this many trackings in a row move no handle "
                                     f"(GoodDrag: {DEFAULTS.max_unchanged_tracks})."),
                io.Float.Input("cfg", default=NODE_DEFAULTS.cfg, min=1.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Guidance: 1 for real images; the generation's CFG for generated ones."),
                io.Int.Input("feature_block", default=NODE_DEFAULTS.feature_block, min=-1, max=64,
                             tooltip="UNet decoder block supervising the motion; -1 = as DragDiffusion."),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative prompt, used when cfg != 1."),
                io.Mask.Input("mask", optional=True, tooltip="Editable region (1 = may change); it wins over the "
                                                             "painted region."),
                region_input(),
            ],
            outputs=[
                io.Latent.Output(display_name="latent",
                                 tooltip="The edited latent at the step the alternation ended, with the source at "
                                         "that step: connect it to Latent MasaCtrl Denoise."),
                io.String.Output(display_name="tracked_points", tooltip="The pairs with the tracked handles."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, drag_points, region=None) -> bool | str:
        return check_texts(drag_points, region)

    @classmethod
    def check_lazy_status(cls, **inputs) -> list:
        """Before the model and the trajectory exist: also drag_end_step against the DDIM Inversion the trajectory
        comes from, whose steps and strength are on the running graph."""
        encoded = checks.upstream_inversion_steps(cls.hidden, "trajectory")
        if encoded is not None and isinstance(inputs.get("drag_end_step"), int):
            check_drag_end_step(inputs["drag_end_step"], encoded)
        return check_before_model(inputs)

    @classmethod
    def execute(cls, model, positive, trajectory, image, drag_points, drag_end_step, tracks_per_step,
                max_updates_per_track, step_bound, learning_rate, mask_weight, motion_radius, track_radius,
                max_unchanged_tracks, cfg, feature_block, negative=None, mask=None, region=None) -> io.NodeOutput:
        setup = prepare_drag(model, positive, trajectory, image, drag_points, cfg, feature_block, negative, mask,
                             region=region)
        check_drag_end_step(drag_end_step, trajectory.encoded_steps)
        settings = GoodDragSettings(
            drag_end_step=drag_end_step, tracks_per_step=tracks_per_step, max_updates_per_track=max_updates_per_track,
            step_bound=step_bound, learning_rate=learning_rate, mask_weight=mask_weight, motion_radius=motion_radius,
            track_radius=track_radius, max_unchanged_tracks=max_unchanged_tracks)
        sigmas = trajectory.sampling_sigmas()
        show = preview_progress(image, setup, drag_end_step)  # the alternation: the denoising step of each update

        def drag(drag_model, x):
            return gooddrag(drag_model, x, sigmas, drag_problem(setup), settings, drag_run(model),
                            callback=lambda progress: show(progress.step + 1, progress.handles),
                            should_stop=backend.check_interrupt)

        edited, result = run_drag_method(model, setup, cfg, sigmas, drag)
        show(drag_end_step)
        step = trajectory.at_step(result.steps, source=backend.to_latent_space(model, result.source))
        return drag_output(image, setup, {"samples": edited.detach().clone(), **step}, result.handles)
