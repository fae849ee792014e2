"""Latent MasaCtrl Denoise node: denoise the dragged latent attending to the source's self-attention."""
import hashlib
import os
import weakref

import torch

import comfy.model_management

from ..core.masactrl import ReferenceRecording, SelfAttentionReference, default_start_layer, masactrl_denoise
from ..core.settings import DRAGDIFFUSION
from . import backend, checks
from .host_api import io
from .inversion import Trajectory
from .trajectory import STEP_KEY, InversionTrajectory
from .unet_hooks import attach_reference_attention, diffusion_model, self_attention_layers

DEFAULTS = DRAGDIFFUSION.denoise


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


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.blake2b(tensor.detach().float().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()


class _RecordingKey:
    """Everything the reference branch depends on besides the trajectory it is kept for.

    The model is held weakly (a recording must not keep a model in memory) and compared by identity, as are the
    conditionings (held strongly, so their ids cannot be reused): ComfyUI hands a node the same objects when nothing
    upstream changed, and new objects otherwise.  The source is compared by content: a drag method that denoises its
    own source (GoodDrag) hands a new tensor of the same values on every re-drag.
    """

    def __init__(self, model, positive, negative, cfg, start_step, layers, sigmas, source):
        self.model = weakref.ref(model)
        self.patches_uuid = getattr(model, "patches_uuid", None)
        self.conds = (positive, negative)
        self.settings = (float(cfg), int(start_step), tuple(layers), tuple(float(s) for s in sigmas))
        self.source = _digest(source)

    def matches(self, other: "_RecordingKey") -> bool:
        return (self.model() is not None and self.model() is other.model() and self.patches_uuid == other.patches_uuid
                and all(a is b for a, b in zip(self.conds, other.conds)) and self.settings == other.settings
                and self.source == other.source)


# One recording per trajectory, dropped with it (i.e. with ComfyUI's cache of the DDIM Inversion output).
_recordings: "weakref.WeakKeyDictionary[InversionTrajectory, tuple]" = weakref.WeakKeyDictionary()


def reference_recording(trajectory: InversionTrajectory, key: _RecordingKey, steps: int) -> ReferenceRecording:
    """The trajectory's complete recording of ``steps`` steps for ``key``, or a new empty one that replaces it."""
    stored = _recordings.get(trajectory)
    if stored is not None and stored[0].matches(key) and stored[1].complete(steps):
        return stored[1]
    recording = ReferenceRecording(int(RECORDING_LIMIT_MB * 2 ** 20), comfy.model_management.intermediate_device())
    _recordings[trajectory] = (key, recording)
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
                io.Int.Input("start_step", default=DEFAULTS.start_step, min=0, max=999,
                             tooltip="First denoising step whose attention is shared (0 = all, the reference)."),
                io.Int.Input("start_layer", default=DEFAULTS.start_layer, min=-1, max=999,
                             tooltip="First shared self-attention layer in execution order (SD1.x/2.x have 16, "
                                     "SDXL 70). -1 = DragDiffusion's choice mapped to this UNet: the decoder "
                                     "layers at 1/2 latent resolution and finer (SD1.x/2.x: 10)."),
                io.Float.Input("cfg", default=DEFAULTS.cfg, min=0.0, max=30.0, step=0.1, round=0.01,
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
        backend.require_unet(checks.model(model), "Latent MasaCtrl Denoise")
        trajectory.check_model(backend.model_signature(model))
        edited = checks.latent_samples(latent)
        step, sigmas = _denoising_steps(trajectory, edited, latent, start_step)
        checks.conditioning_batch_fits(positive, edited.shape[0], "positive")
        if cfg != 1.0:
            negative = checks.conditioning(negative, "negative", required=False) or backend.zero_conditioning(model)
            checks.conditioning_batch_fits(negative, edited.shape[0], "negative")
        layers = controlled_layers(model, start_layer)
        control = SelfAttentionReference(layers, start_step)
        patched = attach_reference_attention(model, control)
        callback = backend.progress_callback(model, len(sigmas) - 1)
        source = trajectory.source_at(latent, step)  # the reference branch at the edit's step
        key = _RecordingKey(model, positive, negative if cfg != 1.0 else None, cfg, start_step, layers, sigmas, source)
        recording = reference_recording(trajectory, key, len(sigmas) - 1)
        # A re-drag of the same source replays the recorded reference branch: only the edited latent is denoised.
        replay_only = recording.complete(len(sigmas) - 1)
        x = torch.cat(([] if replay_only else [source]) + [edited.float().cpu()])

        def body(denoise, x):
            reference, edit = (x, x) if replay_only else x.chunk(2)
            reference, edit = masactrl_denoise(denoise, reference, edit, sigmas, control, callback,
                                               backend.check_interrupt, recording)
            return edit, None

        out, _ = backend.run_guided(patched, positive, negative, cfg, x, sigmas, body)
        result = {key: value for key, value in latent.items() if key not in ("samples", "noise_mask", STEP_KEY)}
        result["samples"] = out.clone()
        return io.NodeOutput(result)


def _denoising_steps(trajectory: InversionTrajectory, edited: torch.Tensor, latent: dict, start_step: int):
    """``(step, sigmas)``: where the drag method left the latent (0: the trajectory's top) and the levels left."""
    if tuple(edited.shape) != trajectory.latent_shape:
        raise ValueError(f"latent {tuple(edited.shape)} does not match the trajectory's {trajectory.latent_shape}:"
                         " connect the latent dragged from this trajectory")
    if trajectory.encoded_steps < 1:
        raise ValueError("the trajectory has no inversion steps (strength 0): nothing to denoise")
    step = trajectory.step_of(latent)
    sigmas = trajectory.sampling_sigmas()[step:]
    if start_step >= len(sigmas) - 1:
        raise ValueError(f"start_step {start_step} is past the {len(sigmas) - 1} denoising steps left from the "
                         f"latent's step {step} of {trajectory.encoded_steps}")
    return step, sigmas
