"""Drag Latent Optimize node: DragDiffusion's motion supervision and point tracking on the inverted latent.

Also the run-time pieces both drag nodes share (the private-UNet run, previews, outputs); GoodDrag's node uses them.
Both drag nodes take ``model``, ``trajectory`` (and ``latent``) lazily, and their ``check_lazy_status`` checks the
picture, the points and the mask before asking for them.  They are output nodes (their result, the tracked handles on
the picture, shows on the node): ComfyUI runs a ready output node, and the nodes up to two links before one, ahead
of the others, so the check comes before the LoRA training and the inversion upstream (a typo in the points costs
nothing; ``tests/host/test_early_checks.py`` runs the templates so).
"""
import os
import uuid

import comfy.utils
import folder_paths

from ..core.drag import DragProblem, DragRun, optimize_drag_latent
from ..core.drag_model import at_sigma
from ..core.grids import grid_points_to_image
from ..core.points import FORMAT, format_drag_points, read_drag_points
from ..core.preview import drag_preview_image, image_to_pil
from ..core.regions import FORMAT as REGION_FORMAT
from ..core.regions import editor_limits, read_region
from ..core.settings import DRAGDIFFUSION, DragDiffusionSettings
from . import backend, checks
from .drag_setup import DragSetup, check_picture, lazy_inputs_needed, prepare_drag
from .host_api import io
from .inversion import Trajectory
from .unet_hooks import ComfyDragModel, FeatureCapture, PrivateUNet

DEFAULTS = DRAGDIFFUSION.drag
NODE_DEFAULTS = DRAGDIFFUSION.drag_node_settings
INVERSION = DRAGDIFFUSION.inversion


def preview_progress(image, setup: DragSetup, total: int):
    """``show(value, handles=None)``: the progress bar at ``value`` of ``total``, previewing the handles (grid, on
    the CPU) when given."""
    progress = comfy.utils.ProgressBar(total)
    picture = image_to_pil(image[0])  # converted once; each preview draws on a copy

    def show(value, handles=None):
        if handles is None:
            return progress.update_absolute(value, total)
        shown = grid_points_to_image(handles, setup.image_hw, setup.grid_hw)
        progress.update_absolute(value, total, ("JPEG", drag_preview_image(picture, shown, setup.targets_xy), 512))

    return show


def drag_problem(setup: DragSetup) -> DragProblem:
    return DragProblem(handles=setup.handles, targets=setup.targets, grid_hw=setup.grid_hw,
                       mask_latent=setup.mask_latent)


def drag_run(model) -> DragRun:
    return DragRun(loss_scaling=backend.needs_loss_scaling(model))


def run_drag_method(model, setup: DragSetup, cfg: float, sigmas, method):
    """Run ``method(drag_model, x) -> result`` (``result.latent`` in model space) inside ComfyUI's guider, with
    backward through a private view of the loaded UNet and the supervised block captured; the view is released
    also on error or cancel.  Returns ``(latent in LATENT space, result)``."""
    private, capture = PrivateUNet(), FeatureCapture(setup.block, guided=cfg != 1.0)
    patched = capture.attach(private.attach(model))

    def body(denoise, x):
        private.materialize(patched)
        try:
            result = method(ComfyDragModel(denoise, capture, cfg), x)
        finally:
            private.release()
            capture.clear()
        return result.latent, result

    return backend.run_guided(patched, setup.positive, setup.negative, cfg, setup.samples, sigmas, body,
                              autograd=True)


def editor_picture(image) -> list[dict]:
    """The picture the point editor shows after a run (web/js/drag_points_editor.js), as the ``ui`` entry ComfyUI
    serves from its temp folder (emptied when it starts).  A JPEG under a unique name: a tenth of a PNG's time, and no
    scan of the folder for the next free number."""
    name = f"drag_edit_points_{uuid.uuid4().hex}.jpg"
    image_to_pil(image[0]).save(os.path.join(folder_paths.get_temp_directory(), name), quality=95)
    return [{"filename": name, "subfolder": "", "type": "temp"}]


def drag_output(image, setup: DragSetup, latent: dict, handles) -> io.NodeOutput:
    """The LATENT, the tracked pairs, and the picture the point editor shows with them after a run."""
    tracked = format_drag_points(grid_points_to_image(handles.cpu(), setup.image_hw, setup.grid_hw),
                                 setup.targets_xy)
    return io.NodeOutput(latent, tracked, ui={"drag_preview": editor_picture(image), "tracked_points": [tracked]})


def with_region_limits(region: io.String.Input) -> io.String.Input:
    """The ``region`` input carrying core/regions.py's limits in the node's definition, where the point editor reads
    them (V3 inputs send their ``extra_dict`` keys with the rest; String.Input's constructor does not take it)."""
    region.extra_dict = {**region.extra_dict, "region_limits": editor_limits()}
    return region


def region_input() -> io.String.Input:
    """The editable region painted in the point editor (last of the inputs, so workflows saved before it load)."""
    return with_region_limits(io.String.Input(
        "region", default="", optional=True,
        tooltip=f"The editable region painted in the point editor, {REGION_FORMAT}; a connected mask wins over it."))


def check_texts(drag_points, region=None) -> bool | str:
    """``validate_inputs`` of both drag nodes: the points' and the region's JSON (linked text arrives as None)."""
    answer = checks.at_queue(read_drag_points, drag_points)
    return answer if answer is not True else checks.at_queue(read_region, region)


def check_before_model(inputs: dict) -> list:
    """``check_lazy_status`` of both drag nodes: the picture, points and mask first; then ask for the rest."""
    if inputs.get("image") is not None and isinstance(inputs.get("drag_points"), str):
        check_picture(inputs["image"], inputs["drag_points"], inputs.get("mask"), inputs.get("region"))
    return lazy_inputs_needed(inputs)


class DragLatentOptimize(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_DragLatentOptimize",
            display_name="Drag Latent Optimize",
            category="image editing",
            description="DragDiffusion: moves image content from handle points to target points by optimising the "
                        "inverted latent (motion supervision on UNet decoder features, point tracking, mask term).",
            is_output_node=True,
            inputs=[
                io.Model.Input("model", lazy=True, tooltip="The model used for the inversion (the LoRA-tuned "
                                                           "clone)."),
                io.Conditioning.Input("positive", tooltip="The prompt of the image."),
                Trajectory.Input("trajectory", lazy=True,
                                 tooltip=f"DDIM Inversion of the image (DragDiffusion: {INVERSION.steps} steps, "
                                         f"strength {INVERSION.strength:g}). The drag runs at its last level."),
                io.Image.Input("image", tooltip="The image being edited, as encoded: the point editor shows it, "
                                                "and points are in its pixels."),
                io.String.Input("drag_points", multiline=True, default="[]",
                                tooltip=f"Handle->target pairs, {FORMAT}. Written by the point editor; API users "
                                        "send the same JSON."),
                io.Int.Input("steps", default=DEFAULTS.steps, min=1, max=1000,
                             tooltip="Maximum optimisation steps; stops early when every handle is within "
                                     f"{DEFAULTS.reach_threshold:g} supervision pixels "
                                     f"({2 * DEFAULTS.reach_threshold:g} image px) of its target."),
                io.Float.Input("learning_rate", default=DEFAULTS.learning_rate, min=0.0001, max=1.0, step=0.001,
                               round=0.0001, tooltip="Adam learning rate on the latent (the reference's "
                                                     f"{DEFAULTS.learning_rate:g}; its author suggests 0.02-0.04 "
                                                     "for speed at some quality cost)."),
                io.Float.Input("mask_weight", default=DEFAULTS.mask_weight, min=0.0, max=100.0, step=0.01,
                               tooltip="Lambda: how strongly the area outside the mask is held to the original "
                                       "(only with a non-empty mask)."),
                io.Float.Input("cfg", default=NODE_DEFAULTS.cfg, min=1.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Guidance: 1 for real images; the generation's CFG (e.g. 7.5) for images "
                                       "generated in the graph. Below 1 the reference's feature mix is undefined."),
                io.Int.Input("feature_block", default=NODE_DEFAULTS.feature_block, min=-1, max=64,
                             tooltip="UNet decoder block (output_blocks index) supervising the motion. -1 = the "
                                     "block that upsamples to latent resolution (SD1.x/2.x: 8, SDXL: 5)."),
                io.Int.Input("motion_radius", default=DEFAULTS.motion_radius, min=0, max=8,
                             tooltip="r_m: half-size of the supervised patch around each handle, in supervision "
                                     "pixels (image px / 2)."),
                io.Int.Input("track_radius", default=DEFAULTS.track_radius, min=1, max=16,
                             tooltip="r_p: half-size of the point-tracking search window, in supervision pixels."),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative prompt, used when cfg != 1."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Editable region (1 = may change), e.g. from LoadImage's mask editor; it wins "
                                      "over the painted region. Neither: everything may change and there is no "
                                      "mask term."),
                io.Latent.Input("latent", optional=True, lazy=True,
                                tooltip="Start from this latent instead of the trajectory's last one (e.g. a "
                                        "previous drag); it must have the trajectory's shape."),
                region_input(),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="The optimised latent, for Latent MasaCtrl Denoise."),
                io.String.Output(display_name="tracked_points",
                                 tooltip="The pairs with each handle where tracking last found it (same JSON)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, drag_points, region=None) -> bool | str:
        """At queue time, before LoRA tuning and inversion run: the JSON's shape (linked text arrives as None)."""
        return check_texts(drag_points, region)

    @classmethod
    def check_lazy_status(cls, **inputs) -> list:
        return check_before_model(inputs)

    @classmethod
    def execute(cls, model, positive, trajectory, image, drag_points, steps, learning_rate, mask_weight, cfg,
                feature_block, motion_radius, track_radius, negative=None, mask=None, latent=None,
                region=None) -> io.NodeOutput:
        setup = prepare_drag(model, positive, trajectory, image, drag_points, cfg, feature_block, negative, mask,
                             latent, region)
        settings = DragDiffusionSettings(steps=steps, learning_rate=learning_rate, mask_weight=mask_weight,
                                         motion_radius=motion_radius, track_radius=track_radius)
        sigmas = trajectory.sampling_sigmas()
        sigma, sigma_next = float(sigmas[0]), float(sigmas[1])
        show = preview_progress(image, setup, steps)

        def drag(drag_model, x):
            return optimize_drag_latent(at_sigma(drag_model.features, sigma), x, sigma, sigma_next,
                                        drag_problem(setup), settings, drag_run(model),
                                        callback=lambda progress: show(progress.update, progress.handles),
                                        should_stop=backend.check_interrupt)

        optimised, result = run_drag_method(model, setup, cfg, sigmas, drag)
        return drag_output(image, setup, {"samples": optimised.detach().clone(), **trajectory.at_step(0)},
                           result.handles)
