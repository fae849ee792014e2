"""Latent-MasaCtrl denoising (DragDiffusion's "reference-latent control").

The edited branch's self-attention uses its own queries with the keys and
values of the reference branch, at the same step and layer, in a chosen set of
layers and from a chosen step on.  Keys and values are projections of the
self-attention input, so handing the edited layer the reference's *input* as
its context gives exactly that.

The two branches run in lockstep, one denoiser call each per step: the
reference call records the inputs of the controlled layers, the edited call
replays them.  The reference branch is therefore plain DDIM, untouched, and
only one step's inputs are held at a time.  Backends install the hook
(``SelfAttentionReference.context``) on their attention layers.

The reference branch does not depend on the edited latent, so a
``ReferenceRecording`` can keep every step's recorded inputs: a second edit of
the same source (a re-drag) then runs the edited branch alone, on exactly the
values the first run replayed.
"""
from typing import Callable, Hashable, Iterable, Optional

import torch

from .ddim import Denoiser, StepCallback, batch_sigma, ddim_step


class SelfAttentionReference:
    """Records the reference branch's self-attention inputs and replays them to the edited branch.

    ``layers``: the controlled layer keys (backend-specific, hashable);
    ``start_step``: first controlled denoising step (0-based, counted over the steps run).
    """

    def __init__(self, layers: Iterable[Hashable], start_step: int = 0):
        self.layers = frozenset(layers)
        self.start_step = start_step
        self.mode = "off"
        self.step = 0
        self._recorded: dict = {}
        self._calls: dict = {}

    def reset(self) -> None:
        """Back to ``off``, dropping whatever was recorded."""
        self.mode, self.step, self._recorded, self._calls = "off", 0, {}, {}

    def begin(self, mode: str, step: int) -> None:
        """Enter ``record``, ``replay`` or ``off`` for one denoiser call at ``step``."""
        if mode not in ("record", "replay", "off"):
            raise ValueError(f"unknown mode {mode!r}")
        if mode == "record":
            self._recorded = {}
        self.mode, self.step, self._calls = mode, step, {}

    def recorded(self) -> dict:
        """What the last ``record`` call captured (layer occurrence -> input)."""
        return self._recorded

    def load(self, recorded: dict, step: int) -> None:
        """Replay ``recorded`` (from a ``ReferenceRecording``) for one denoiser call at ``step``."""
        self._recorded = recorded
        self.begin("replay", step)

    def controls(self, layer: Hashable) -> bool:
        return layer in self.layers and self.step >= self.start_step

    def context(self, layer: Hashable, hidden: torch.Tensor) -> Optional[torch.Tensor]:
        """Called by a self-attention layer with its input; returns the context to attend to, or None for itself."""
        if self.mode == "off" or not self.controls(layer):
            return None
        # A layer may run more than once per denoiser call (cond and uncond batched apart): key by occurrence.
        occurrence = self._calls.get(layer, 0)
        self._calls[layer] = occurrence + 1
        key = (layer, occurrence)
        if self.mode == "record":
            self._recorded[key] = hidden.detach()
            return None
        reference = self._recorded.get(key)
        if reference is None or reference.shape != hidden.shape:
            raise RuntimeError(f"self-attention layer {layer!r} ran differently in the edited branch than in the "
                               "reference branch; both must see the same conditioning and batch layout")
        return reference


class ReferenceRecording:
    """The reference branch's recorded self-attention inputs for every step of one denoising run.

    Filled by :func:`masactrl_denoise` while it runs both branches; once complete, later runs with the same source,
    model, conditioning, schedule and controlled layers replay it instead of running the reference branch.
    ``device``: where the recording is kept (e.g. the CPU, so a GPU holds one step at a time); ``max_bytes``: past
    this size recording stops, the recording stays incomplete and is never used.  Whoever keeps one must key it on
    everything the reference branch depends on.
    """

    def __init__(self, max_bytes: int, device: Optional[torch.device] = None):
        self.max_bytes, self.device = max_bytes, device
        self.steps: list[dict] = []
        self.nbytes = 0
        self.overflowed = False
        self.reference: Optional[torch.Tensor] = None  # the reference branch's final latent

    def complete(self, n_steps: int) -> bool:
        return not self.overflowed and self.reference is not None and len(self.steps) == n_steps

    def add(self, step: int, recorded: dict) -> None:
        if self.overflowed or step != len(self.steps):
            return
        size = sum(t.numel() * t.element_size() for t in recorded.values())
        if self.nbytes + size > self.max_bytes:
            self.overflowed, self.steps = True, []  # drop it all at once: a partial recording is useless
            return
        self.nbytes += size
        self.steps.append({key: t.to(self.device or t.device, copy=True) for key, t in recorded.items()})

    def at(self, step: int, device: torch.device) -> dict:
        return {key: t.to(device) for key, t in self.steps[step].items()}


def masactrl_denoise(denoise: Denoiser, x_reference: torch.Tensor, x_edit: torch.Tensor, sigmas: torch.Tensor,
                     control: SelfAttentionReference, callback: Optional[StepCallback] = None,
                     check_interrupt: Optional[Callable[[], None]] = None,
                     recording: Optional[ReferenceRecording] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """DDIM-denoise both branches down the descending ``sigmas``; returns ``(reference, edited)``.

    ``recording``: a complete one replaces the reference branch (``x_reference`` is then unused and the recorded
    final reference latent is returned); an empty one is filled as the branches run.
    ``callback(i, x_edit, denoised_edit)`` after each step; ``check_interrupt()`` may raise to cancel.
    """
    if x_reference.shape != x_edit.shape:
        raise ValueError(f"reference latent {tuple(x_reference.shape)} and edited latent {tuple(x_edit.shape)} differ")
    n_steps = len(sigmas) - 1
    replay_only = recording is not None and recording.complete(n_steps)
    try:
        for i in range(n_steps):
            if check_interrupt is not None:
                check_interrupt()
            sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
            if replay_only:
                control.load(recording.at(i, x_edit.device), i)
            else:
                control.begin("record", i)
                denoised_reference = denoise(x_reference, batch_sigma(sigma, x_reference))
                x_reference = ddim_step(x_reference, denoised_reference, sigma, sigma_next)
                if recording is not None:
                    recording.add(i, control.recorded())
                control.begin("replay", i)
            denoised_edit = denoise(x_edit, batch_sigma(sigma, x_edit))
            x_edit = ddim_step(x_edit, denoised_edit, sigma, sigma_next)
            if callback is not None:
                callback(i, x_edit, denoised_edit)
    finally:
        control.reset()
    if replay_only:
        return recording.reference.to(x_edit.device), x_edit
    if recording is not None and not recording.overflowed:
        recording.reference = x_reference.detach().to(recording.device or x_reference.device, copy=True)
    return x_reference, x_edit


def default_start_layer(layer_scales: list[tuple[str, int]]) -> int:
    """DragDiffusion's layer choice, mapped to any UNet.

    ``layer_scales`` lists the self-attention layers in execution order as
    ``(part, downscale)`` with part ``input``/``middle``/``output`` and the
    latent downscale factor the layer runs at.  On SD1.5 the reference
    controls transformer blocks 10-15: the decoder layers at 1/2 latent
    resolution and finer.  The same rule picks the 640-channel decoder level of
    SDXL.  Falls back to the last decoder layer when none is that fine.
    """
    decoder = [i for i, (part, _) in enumerate(layer_scales) if part == "output"]
    if not decoder:
        raise ValueError("this UNet has no decoder self-attention layers to control")
    fine = [i for i in decoder if layer_scales[i][1] <= 2]
    return fine[0] if fine else decoder[-1]
