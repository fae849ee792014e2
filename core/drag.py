"""The drag loop every drag method shares, and DragDiffusion's schedule over it (:func:`optimize_drag_latent`).

A drag method optimises a latent at one noise level at a time.  At each level it computes, once and without grad,
what the updates compare against (:func:`start_level`: the source's features at the source handles, for tracking,
and the source one DDIM step ahead, for the mask term); then each :func:`drag_update` runs

1. ``x0, F = forward(x)`` at that level (features only when no mask term needs ``x0``);
2. optionally point tracking: each handle moves to its best match of the source features within ``r_p``;
3. the handles to the host (the update's one sync); if every one has arrived, stop here;
4. the method's motion loss (:class:`core.motion.MotionSupervision`) plus
   ``lambda |(z_next - z_next_ref) (1 - M)|_1``, the mask term on the latent one DDIM step ahead (M = 1 editable);
5. one Adam step on the latent (through ``torch.amp.GradScaler`` when enabled),

and returns what it computed.  What is method-specific (the motion loss, when to track, what an empty mask means,
how levels follow each other) is the method's: DragDiffusion here, GoodDrag in :mod:`core.gooddrag`.

Conventions from the reference (Yujun-Shi/DragDiffusion, ``utils/drag_utils.py``): points on the supervision grid
(:mod:`core.grids`), features read upsampled (:mod:`core.features`), tracking against the *source* features at the
*source* handles.  Deliberate deviations:

* Sigma space: the pack works with ``x = x0 + sigma*eps``; the reference optimises the VP latent
  ``z = x/sqrt(1+sigma^2)``.  With ``vp_units`` (default) Adam runs on ``z`` and the mask term is measured on
  ``z_next``, so the learning rate and lambda keep the reference's meaning; results are in sigma space.  The source
  takes the same round trip through ``z`` as the optimised latent, so where the edit equals the source (the first
  update) the mask term is exactly zero, with zero gradient, as in the reference.
* Border handling and off-grid points: clamped (:mod:`core.motion`, :mod:`core.grids`).
* No UNet weight gradients and no fp32 master weights: the backend runs the UNet in its own dtype and only the latent
  is optimised, in float32 (float64 when given float64, as the parity runs do); ``torch.amp.GradScaler`` (the
  reference's scaler, on for fp16 UNets) guards against underflow.

Cost (exact, see ``bench/``): without a mask term only the features are needed, so the forward may stop after the
supervised decoder block (``full=False``); the upsampled map is never built; an update syncs with the host once.
``DragRun(truncate=False, dense_features=True)`` is the reference-equivalent path the benchmark compares against.
"""
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import torch

from .ddim import ddim_step
from .drag_model import DragForward
from .features import Sampler, feature_sampler
from .motion import CurrentPatchPull, MotionSupervision, all_reached, track_points
from .settings import DragDiffusionSettings

Tensor = torch.Tensor


def working_copy(z: Tensor) -> Tensor:
    """A detached copy of ``z`` as a normal tensor (even of an inference tensor) in the optimisation dtype: float32
    for half-precision latents, float64 kept."""
    return z.detach().clone().to(torch.promote_types(z.dtype, torch.float32))


@dataclass(frozen=True)
class DragProblem:
    """What the user asked for, on the supervision grid."""
    handles: Tensor  # [N,2] long grid [row, col]
    targets: Tensor  # [N,2]
    grid_hw: tuple
    mask_latent: Optional[Tensor] = None  # [h,w] (or broadcastable to the latent), 1 = editable


@dataclass(frozen=True)
class DragRun:
    """How a drag runs.  ``vp_units``: optimise in the reference's VP units (see the module docstring; False for
    latents that are not VP-scaled).  ``loss_scaling``: GradScaler as the reference (init scale 2^16, a step whose
    gradient overflowed is skipped), needed for fp16 UNets only.  ``truncate``: ask for features only when no mask
    term needs the denoised latent.  ``dense_features``: build the whole upsampled map, as the reference (same
    values, slower)."""
    vp_units: bool = True
    loss_scaling: bool = False
    truncate: bool = True
    dense_features: bool = False


class DragProgress(NamedTuple):
    """What a drag method's ``callback`` receives after each update."""
    step: int  # the denoising step the update belongs to (0 for DragDiffusion's single level)
    update: int  # updates taken so far, this one included
    loss: Tensor  # 0-d; reading it syncs the device
    handles: Tensor  # [N,2] grid, on the CPU: where the next update starts from
    latent: Tensor  # the latent after the update's step, in sigma space, detached
    mask_loss: Optional[Tensor] = None  # the update's mask term before its weight (None without one)


DragCallback = Callable[[DragProgress], None]


@dataclass(frozen=True)
class DragLevel:
    """One noise level's constants: what every update there compares against."""
    sigma: float
    sigma_next: float
    scale: float  # x = z / scale: the VP units of the optimised leaf (1 without vp_units)
    scale_next: float
    grid_hw: tuple
    targets: Tensor
    targets_host: Tensor  # on the CPU, for the arrival check without another sync
    source_features: Tensor  # [N,C]: the source's features at the source handles, which tracking looks for
    keep: Optional[Tensor]  # 1 - mask, or None: no mask term
    next_reference: Optional[Tensor]  # the source one DDIM step ahead (VP units), for the mask term
    full: bool  # whether updates need the denoised latent
    dense: bool


def start_level(forward: DragForward, source: Tensor, sigma: float, sigma_next: float, problem: DragProblem,
                keep: Optional[Tensor], run: DragRun = DragRun()) -> tuple[DragLevel, Sampler]:
    """The level's constants from one forward of ``source`` (no grad): features at ``problem.handles`` and, with a
    mask term (``keep`` = 1 - mask), the source's next DDIM step.  Also returns a sampler of the source's features,
    for a method that needs more of them (GoodDrag's anchor patch); drop it when done."""
    sigma, sigma_next = float(sigma), float(sigma_next)
    scale = (1.0 + sigma ** 2) ** -0.5 if run.vp_units else 1.0
    scale_next = (1.0 + sigma_next ** 2) ** -0.5 if run.vp_units else 1.0
    x_source = (working_copy(source) * scale) / scale  # the round trip the optimised latent takes
    full = keep is not None or not run.truncate
    at = problem.handles.detach().clone().long().to(source.device)
    with torch.no_grad():
        denoised, feats = forward(x_source, full)
        next_reference = None
        if keep is not None:
            next_reference = ddim_step(x_source, denoised.to(x_source.dtype), sigma, sigma_next) * scale_next
        sampler = feature_sampler(feats, problem.grid_hw, run.dense_features)
        source_features = sampler(at[:, 0], at[:, 1]).t()  # [N,C]
    targets = problem.targets.detach().clone().long().to(source.device)
    level = DragLevel(sigma=sigma, sigma_next=sigma_next, scale=scale, scale_next=scale_next,
                      grid_hw=tuple(problem.grid_hw), targets=targets, targets_host=targets.cpu(),
                      source_features=source_features, keep=keep, next_reference=next_reference, full=full,
                      dense=run.dense_features)
    return level, sampler


@dataclass
class DragLatent:
    """The latent being optimised at one level: the leaf in VP units (``x = z / scale``), its handles, its Adam."""
    initial: Tensor  # the working copy it started from, in sigma space
    z: Tensor
    scale: float
    handles: Tensor  # [N,2] long grid, where the next update starts
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    steps_run: int = 0  # optimiser steps (one GradScaler skipped on overflow counts, as in the reference)

    @classmethod
    def start(cls, x: Tensor, level: DragLevel, handles: Tensor, learning_rate: float,
              loss_scaling: bool = False) -> "DragLatent":
        """A fresh Adam on ``x`` (a copy; call under ``torch.inference_mode(False), torch.enable_grad()``)."""
        initial = working_copy(x)
        z = (initial * level.scale).requires_grad_(True)  # Adam's lr and eps then act as in the reference
        return cls(initial=initial, z=z, scale=level.scale, handles=handles.detach().clone().long().to(x.device),
                   optimizer=torch.optim.Adam([z], lr=learning_rate),
                   scaler=torch.amp.GradScaler(x.device.type, init_scale=2.0 ** 16, enabled=loss_scaling))

    @property
    def x(self) -> Tensor:
        """The current latent in sigma space (differentiable in ``z``)."""
        return self.z / self.scale

    def result(self) -> Tensor:
        """The latent in sigma space, detached; exactly the start when no step was taken."""
        return self.z.detach() / self.scale if self.steps_run else self.initial


@dataclass(frozen=True)
class DragUpdate:
    """What one :func:`drag_update` computed."""
    handles: Tensor  # [N,2] on the host, after this update's tracking
    features: Tensor  # this update's features (taken before its step), detached
    loss: Optional[Tensor] = None  # None: every handle had arrived and no step was taken
    motion_loss: Optional[Tensor] = None
    mask_loss: Optional[Tensor] = None  # the unweighted mask term (None without one)


def retrack(level: DragLevel, features: Tensor, handles: Tensor, radius: int) -> Tensor:
    """``handles`` moved to their best matches of the source features in ``features`` (:func:`track_points`)."""
    with torch.no_grad():
        sampler = feature_sampler(features.detach(), level.grid_hw, level.dense)
        return track_points(level.source_features, sampler, handles, radius, level.grid_hw)


def drag_update(latent: DragLatent, level: DragLevel, forward: DragForward, pull: MotionSupervision, *,
                track_radius: Optional[int], mask_weight: float) -> DragUpdate:
    """One update (forward -> track -> arrived? -> loss -> step, see the module docstring); ``track_radius`` None:
    no tracking this time."""
    x = latent.x
    denoised, feats = forward(x, level.full)
    if track_radius is not None:
        latent.handles = retrack(level, feats, latent.handles, track_radius)
    handles_host = latent.handles.cpu()  # the update's one host sync: the arrival check needs the handles
    if bool(all_reached(handles_host, level.targets_host, pull.reach_threshold)):
        return DragUpdate(handles=handles_host, features=feats.detach())
    motion_loss = pull(feature_sampler(feats, level.grid_hw, level.dense), level.grid_hw, latent.handles,
                       level.targets)
    loss, mask_loss = motion_loss, None
    if level.keep is not None:
        x_next = ddim_step(x, denoised.to(x.dtype), level.sigma, level.sigma_next) * level.scale_next
        mask_loss = ((x_next - level.next_reference) * level.keep).abs().sum()
        loss = loss + mask_weight * mask_loss
    latent.optimizer.zero_grad(set_to_none=True)
    latent.scaler.scale(loss).backward()
    latent.scaler.step(latent.optimizer)
    latent.scaler.update()
    latent.steps_run += 1
    return DragUpdate(handles=handles_host, features=feats.detach(), loss=loss.detach(),
                      motion_loss=motion_loss.detach(), mask_loss=None if mask_loss is None else mask_loss.detach())


# ---------------------------------------------------------------------------------------------------------------------
# DragDiffusion


@dataclass
class DragResult:
    latent: Tensor  # optimised latent in sigma space, dtype/device of the input
    handles: Tensor  # [N,2] long grid [row, col]: the handles used by the last step (after its tracking)
    steps_run: int  # optimiser steps taken
    losses: list = field(default_factory=list)  # loss of each step


def editable_complement(mask_latent: Optional[Tensor], like: Tensor) -> Optional[Tensor]:
    """DragDiffusion's mask term weight ``1 - M``; an absent or all-zero mask means nothing was drawn: everything is
    editable and there is no mask term (the reference's ``using_mask``)."""
    if mask_latent is None:
        return None
    mask = mask_latent.detach().clone().float().to(like.device)
    return 1.0 - mask if bool(mask.sum() != 0) else None


def optimize_drag_latent(forward: DragForward, z: Tensor, sigma: float, sigma_next: float, problem: DragProblem,
                         settings: DragDiffusionSettings = DragDiffusionSettings(), run: DragRun = DragRun(),
                         callback: Optional[DragCallback] = None,
                         should_stop: Optional[Callable[[], bool]] = None) -> DragResult:
    """DragDiffusion's schedule: up to ``settings.steps`` updates at one noise level, tracking from the second on.

    ``forward`` runs the denoiser at ``sigma`` (:func:`core.drag_model.at_sigma`); ``z`` is the inverted latent
    there.  Stops early when every handle has arrived (checked after tracking, before the loss).  ``callback`` gets a
    :class:`DragProgress` after each step; ``should_stop()`` is polled before each (it may raise to abort).  Safe
    under an outer ``torch.inference_mode()``."""
    pull = CurrentPatchPull(settings.motion_radius, settings.reach_threshold)
    with torch.inference_mode(False), torch.enable_grad():
        level, _ = start_level(forward, z, sigma, sigma_next, problem, editable_complement(problem.mask_latent, z),
                               run)
        latent = DragLatent.start(z, level, problem.handles, settings.learning_rate, run.loss_scaling)
        losses = []
        for step in range(settings.steps):
            if should_stop is not None and should_stop():
                break
            update = drag_update(latent, level, forward, pull, track_radius=settings.track_radius if step else None,
                                 mask_weight=settings.mask_weight)
            if update.loss is None:
                break
            losses.append(update.loss)
            if callback is not None:
                callback(DragProgress(step=0, update=step + 1, loss=update.loss, handles=update.handles,
                                      latent=latent.result(), mask_loss=update.mask_loss))
        return DragResult(latent=latent.result().to(z.dtype), handles=latent.handles, steps_run=latent.steps_run,
                          losses=torch.stack(losses).tolist() if losses else [])
