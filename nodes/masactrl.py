"""Latent MasaCtrl Denoise node: denoise the dragged latent attending to the source's self-attention."""
import os
import weakref

import torch

import comfy.model_management
from comfy_api.latest import io

from ..core.backends import comfy as backend
from ..core.backends.comfy_unet import attach_reference_attention, diffusion_model, self_attention_layers
from ..core.masactrl import ReferenceRecording, SelfAttentionReference, default_start_layer, masactrl_denoise
from . import checks
from .inversion import Trajectory
from .trajectory import LEVEL_KEY, InversionTrajectory


def controlled_layers(model, start_layer: int) -> list:
    """The self-attention layer keys from ``start_layer`` (-1 = DragDiffusion's choice for this UNet) on."""
    layers = self_attention_layers(diffusion_model(model))
    if start_layer < 0:
        start_layer = default_start_layer([(key[0], scale) for key, scale in layers])
    elif start_layer >= len(layers):
        raise ValueError(f"start_layer {start_layer} is out of range: this UNet has {len(layers)} self-attention "
                         f"layers (0..{len(layers) - 1}); -1 picks DragDiffusion's choice")
    return [key for key, _ in layers[start_layer:]]


# Largest reference recording kept per source image (CPU memory). SD1.5 at 512 px needs about 0.8 GB (fp32, 35 steps,
# 6 layers); above the limit the node runs both branches every time.
RECORDING_LIMIT_MB = float(os.environ.get("DRAG_EDIT_REFERENCE_CACHE_MB", 4096))


class _RecordingKey:
    """Everything the reference branch depends on besides the trajectory it is stored on.

    The model is held weakly (a recording must not keep a model in memory) and compared by identity, as are the
    conditionings (held strongly, so their ids cannot be reused): ComfyUI hands a node the same objects when
    nothing upstream changed, and new objects otherwise.
    """

    def __init__(self, model, positive, negative, cfg, start_step, layers, sigmas):
        self.model = weakref.ref(model)
        self.patches_uuid = getattr(model, "patches_uuid", None)
        self.conds = (positive, negative)
        self.settings = (float(cfg), int(start_step), tuple(layers), tuple(float(s) for s in sigmas))

    def matches(self, other: "_RecordingKey") -> bool:
        return (self.model() is not None and self.model() is other.model() and self.patches_uuid == other.patches_uuid
                and all(a is b for a, b in zip(self.conds, other.conds)) and self.settings == other.settings)


def reference_recording(trajectory, key: _RecordingKey) -> ReferenceRecording:
    """The trajectory's recording for ``key``, or a new empty one that replaces it (one per trajectory)."""
    stored = trajectory.reference_recordings
    n_steps = trajectory.encoded_steps
    if "key" in stored and stored["key"].matches(key) and stored["recording"].complete(n_steps):
        return stored["recording"]
    recording = ReferenceRecording(int(RECORDING_LIMIT_MB * 2 ** 20), comfy.model_management.intermediate_device())
    stored.clear()
    stored.update(key=key, recording=recording)
    return recording


class LatentMasaCtrlDenoise(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_LatentMasaCtrlDenoise",
            display_name="Latent MasaCtrl Denoise",
            category="image editing",
            description="DDIM-denoises the edited latent while its self-attention attends to the keys and values "
                        "of the source (reference) branch, which keeps the identity of the image.",
            inputs=[
                io.Model.Input("model", tooltip="The model used for the inversion and the drag."),
                io.Conditioning.Input("positive", tooltip="The prompt of the image."),
                Trajectory.Input("trajectory", tooltip="DDIM Inversion of the source: its last latent is the "
                                                       "reference branch."),
                io.Latent.Input("latent", tooltip="The edited latent (Drag Latent Optimize). It is denoised from the "
                                                  "level the drag left it at (the trajectory's top for "
                                                  "DragDiffusion; a LATENT from elsewhere is taken to be there)."),
                io.Int.Input("start_step", default=0, min=0, max=999,
                             tooltip="First denoising step whose attention is shared (0 = all, the reference)."),
                io.Int.Input("start_layer", default=-1, min=-1, max=999,
                             tooltip="First shared self-attention layer in execution order (SD1.x/2.x have 16, "
                                     "SDXL 70). -1 = DragDiffusion's choice mapped to this UNet: the decoder "
                                     "layers at 1/2 latent resolution and finer (SD1.x/2.x: 10)."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Guidance: 1 for real images; the generation's CFG for generated ones."),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative prompt, used when cfg != 1."),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The denoised edited latent (VAE Decode it).")],
        )

    @classmethod
    def execute(cls, model, positive, trajectory, latent, start_step, start_layer, cfg,
                negative=None) -> io.NodeOutput:
        positive = checks.conditioning(positive, "positive")
        trajectory = InversionTrajectory.checked(trajectory)
        trajectory.check_model(backend.model_signature(checks.model(model)))
        edited = checks.latent_samples(latent)
        if tuple(edited.shape) != trajectory.latent_shape:
            raise ValueError(f"latent {tuple(edited.shape)} does not match the trajectory's {trajectory.latent_shape}:"
                             " connect the latent dragged from this trajectory")
        if trajectory.encoded_steps < 1:
            raise ValueError("the trajectory has no inversion steps (strength 0): nothing to denoise")
        level = trajectory.level_of(latent)  # where the drag method left the latent (0: the trajectory's top)
        sigmas = trajectory.sampling_sigmas()[level:]
        steps = len(sigmas) - 1
        if start_step >= steps:
            raise ValueError(f"start_step {start_step} is past the {steps} denoising steps left from the latent's "
                             f"level (step {level} of {trajectory.encoded_steps})")
        checks.conditioning_batch_fits(positive, edited.shape[0], "positive")
        if cfg != 1.0:
            negative = checks.conditioning(negative, "negative", required=False) or backend.zero_conditioning(model)
            checks.conditioning_batch_fits(negative, edited.shape[0], "negative")
        layers = controlled_layers(model, start_layer)
        control = SelfAttentionReference(layers, start_step)
        patched = attach_reference_attention(model, control)
        callback = backend.progress_callback(model, steps)
        recording_key = _RecordingKey(model, positive, negative if cfg != 1.0 else None, cfg, start_step, layers,
                                      sigmas)
        recording = reference_recording(trajectory, recording_key)
        # A re-drag of the same source replays the recorded reference branch: only the edited latent is denoised.
        replay_only = recording.complete(steps)
        source = [] if replay_only else [trajectory.source_at(latent, level)]  # the source at the same level
        x = torch.cat(source + [edited.float().cpu()])

        def body(denoise, x):
            reference, edit = (x, x) if replay_only else x.chunk(2)
            reference, edit = masactrl_denoise(denoise, reference, edit, sigmas, control, callback,
                                               backend.check_interrupt, recording)
            return edit, None

        out, _ = backend.run_guided(patched, positive, negative, cfg, x, sigmas, body)
        samples = out.clone()
        result = {key: value for key, value in latent.items() if key not in ("samples", "noise_mask", LEVEL_KEY)}
        result["samples"] = samples
        return io.NodeOutput(result)
