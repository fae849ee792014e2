"""GoodDrag (Zhang et al., ICLR 2025): drag updates alternating with denoising steps (AlDD), with
information-preserving motion supervision, as a schedule over the drag loop of :mod:`core.drag`.

Follows the official code (``zewei-Zhang/GoodDrag``: ``pipeline.py`` ``GoodDragger.good_drag`` /
``gooddrag_step`` / ``cal_motion_supervision_loss``, ``utils/drag_utils.py``), in the paper's notation with
``t`` running over the denoising steps from the inverted level:

1. The source branch ``z^src_t`` starts as the inverted latent and is DDIM-denoised alongside the edit, without
   attention control; at each level its decoder features ``F^src_t`` are read at the original handles ``h^0``.
2. For each of the first ``drag_end_step`` steps, unless every handle has arrived or tracking has stalled:
   a. a fresh Adam on the latent ``z_t``; the first update tracks the handles (``F(z_t)`` against ``F^src_t(h^0)``,
      L1 in a ``(2r_p+1)^2`` window);
   b. each update: forward ``F(z_t)``; stop if every handle is within 2 grid px; loss
      ``(2r_m)^2 mean|F(z_t)(h + d) - F^src_t(h^0 patch)|`` with ``d = min(beta, |g - h|) (g - h)/|g - h|``, pairs
      closer than 2 skipped (:class:`AnchoredPull`), plus ``lam |(z_{t-1} - z^src_{t-1}) (1 - M)|_1``; Adam step;
   c. after ``max_updates_per_track`` updates, or once the motion loss is at most ``loss_threshold (2r_m)^2``,
      the handles are tracked again with that update's features (taken before its step); ``tracks_per_step``
      trackings end the step; a tracking that moves no handle counts toward ``max_unchanged_tracks``, which ends
      the drag for good (any tracking that moves one resets the count);
   d. one DDIM step of ``z_t`` and of ``z^src_t``.
3. The result is the latent and the source after the last drag step's denoise, ``steps`` steps below the inverted
   level: latent-MasaCtrl denoising continues from there with the source as its reference branch.

Deliberate deviations:

* Border handling as :mod:`core.motion`: patches and tracking windows that cross the grid border are clamped
  (replicate padding, full-size patch); the official slicing shrinks or shifts them there, or fails
  (``tests/test_gooddrag_core.py`` runs a handle on the border).
* Mixed precision: the official code wraps the UNet in ``accelerate`` fp16 autocast; here the UNet runs in its
  own dtype with ``torch.amp.GradScaler`` for fp16 (as :mod:`core.drag`), and the latent is optimised in fp32
  (fp64 stays fp64: ``dev/parity_gooddrag.py`` compares with the official code in fp64, where float32 rounding
  cannot flip the sign of a near-zero L1 term of the loss and so send Adam elsewhere).

Kept as the official code does: without a mask the mask term holds the whole latent (its empty mask is all
zeros), and a step whose drag stopped early (arrival, stalled tracking) is still denoised without attention control.
"""
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch

from .ddim import batch_sigma, ddim_step
from .drag import (
    DragCallback,
    DragLatent,
    DragProblem,
    DragProgress,
    DragRun,
    drag_update,
    retrack,
    start_level,
    working_copy,
)
from .drag_model import DragModel, at_sigma
from .features import Sampler, read_patches
from .motion import patch_l1, pull_directions, shifted_patches
from .settings import GoodDragSettings

Tensor = torch.Tensor


@dataclass(frozen=True)
class AnchoredPull:
    """GoodDrag's information-preserving motion supervision: the shifted patch is pulled toward ``anchor``, the
    source's patch at the *original* handles (not the current features), by a step of ``min(beta, |g - h|)``, with
    the official normalisation ``(2r)^2`` (not the patch's ``(2r+1)^2``)."""
    anchor: Tensor  # [C,N,P]
    radius: int
    step_bound: float
    reach_threshold: float = 2.0

    @property
    def weight(self) -> float:
        return float((2 * self.radius) ** 2)

    @classmethod
    def from_source(cls, source: Sampler, problem: DragProblem, settings: GoodDragSettings) -> "AnchoredPull":
        anchor = read_patches(source, problem.grid_hw, problem.handles, settings.motion_radius)
        return cls(anchor, settings.motion_radius, settings.step_bound, settings.reach_threshold)

    def __call__(self, sample: Sampler, grid_hw: Sequence[int], handles: Tensor, targets: Tensor) -> Tensor:
        unit, distance, active = pull_directions(handles, targets, self.reach_threshold)
        shift = unit * distance.clamp(max=self.step_bound).unsqueeze(1)
        _, shifted = shifted_patches(sample, grid_hw, handles, shift, self.radius)
        return patch_l1(shifted, self.anchor.to(shifted), self.weight, active)


@dataclass
class GoodDragResult:
    latent: Tensor  # the edited latent in sigma space, ``steps`` denoising steps below the inverted level
    source: Tensor  # the source branch at the same level (latent-MasaCtrl's reference)
    steps: int  # denoising steps taken
    handles: Tensor  # [N,2] long grid [row, col] after the last tracking
    handles_per_step: list = field(default_factory=list)  # handles after each drag step (before its denoise)
    updates: int = 0  # optimiser steps taken in all
    arrived: bool = False


def held_region(mask_latent: Optional[Tensor], like: Tensor) -> Tensor:
    """GoodDrag's mask term weight ``1 - M``; without a mask (all zeros in the official code) it holds everything."""
    if mask_latent is None:
        return torch.ones_like(like[:, :1])
    return 1.0 - mask_latent.detach().clone().float().to(like.device)


class _Alternation:
    """The state GoodDrag carries across denoising steps: where the handles are, and whether dragging goes on."""

    def __init__(self, model: DragModel, problem: DragProblem, settings: GoodDragSettings, run: DragRun,
                 callback: Optional[DragCallback], should_stop: Optional[Callable[[], bool]]):
        self.model, self.problem, self.settings, self.run = model, problem, settings, run
        self.callback, self.should_stop = callback, should_stop
        self.unchanged, self.dragging = 0, True

    def drag_step(self, step: int, x: Tensor, source: Tensor, keep: Tensor, sigmas: Sequence[float],
                  result: GoodDragResult) -> Tensor:
        """Step 2a-c at one level: returns the dragged latent (``x`` itself when no update was taken)."""
        forward = at_sigma(self.model.features, sigmas[0])
        level, source_features = start_level(forward, source, sigmas[0], sigmas[1], self.problem, keep, self.run)
        pull = AnchoredPull.from_source(source_features, self.problem, self.settings)
        del source_features
        latent = DragLatent.start(x, level, result.handles, self.settings.learning_rate, self.run.loss_scaling)
        tracks, since_track, first = 0, 0, True
        while tracks < self.settings.tracks_per_step:
            if self.should_stop is not None and self.should_stop():
                self.dragging = False
                break
            update = drag_update(latent, level, forward, pull, mask_weight=self.settings.mask_weight,
                                 track_radius=self.settings.track_radius if first else None)
            first = False
            if update.loss is None:
                self.dragging, result.arrived = False, True
                break
            result.updates += 1
            since_track += 1
            handles_host = update.handles
            if self._tracks_now(since_track, update, pull):
                tracks, since_track = tracks + 1, 0
                before = latent.handles
                latent.handles = retrack(level, update.features, latent.handles, self.settings.track_radius)
                self.unchanged = self.unchanged + 1 if torch.equal(latent.handles, before) else 0
                handles_host = latent.handles.cpu()
            if self.callback is not None:  # the handles the next update starts from
                self.callback(DragProgress(step, result.updates, update.loss, handles_host, latent.result(),
                                           update.mask_loss))
            if self.unchanged >= self.settings.max_unchanged_tracks:
                self.dragging = False
                break
        result.handles = latent.handles
        return latent.result() if latent.steps_run else x

    def _tracks_now(self, since_track: int, update, pull: AnchoredPull) -> bool:
        # The motion loss is read (a host sync) only when the update count alone does not decide.
        return (since_track == self.settings.max_updates_per_track
                or float(update.motion_loss) <= self.settings.loss_threshold * pull.weight)


def gooddrag(model: DragModel, z: Tensor, sigmas: Tensor, problem: DragProblem,
             settings: GoodDragSettings = GoodDragSettings(), run: DragRun = DragRun(),
             callback: Optional[DragCallback] = None,
             should_stop: Optional[Callable[[], bool]] = None) -> GoodDragResult:
    """GoodDrag's alternating drag and denoise (AlDD) from the inverted latent ``z`` at ``sigmas[0]``.

    ``model`` is a :class:`core.drag_model.DragModel`; ``sigmas`` the descending DDIM levels from ``z`` down (the
    trajectory's sampling sigmas).  ``callback`` gets a :class:`core.drag.DragProgress` after each update with the
    handles the next one starts from (on the CPU); ``should_stop()`` is polled before each update (it may raise to
    abort).  Safe under ``torch.inference_mode()``."""
    with torch.inference_mode(False), torch.enable_grad():
        x = working_copy(z)
        source = x.clone()
        keep = held_region(problem.mask_latent, x)
        result = GoodDragResult(latent=x, source=source, steps=0,
                                handles=problem.handles.detach().clone().long().to(z.device))
        alternation = _Alternation(model, problem, settings, run, callback, should_stop)
        for step in range(min(settings.drag_end_step, len(sigmas) - 1)):
            if not alternation.dragging or alternation.unchanged >= settings.max_unchanged_tracks:
                break
            sigma, sigma_next = float(sigmas[step]), float(sigmas[step + 1])
            x = alternation.drag_step(step, x, source, keep, (sigma, sigma_next), result)
            result.handles_per_step.append(result.handles.cpu())
            x, source = _denoise_both(model, x, source, sigma, sigma_next)
            result.steps = step + 1
        result.latent, result.source = x.to(z.dtype), source.to(z.dtype)
    return result


def _denoise_both(model: DragModel, x: Tensor, source: Tensor, sigma: float, sigma_next: float):
    """One DDIM step of the edit and the source, in one batch ``[source, edit]`` as the official code runs them."""
    with torch.no_grad():
        both = torch.cat([source, x])
        denoised = model.denoise(both, batch_sigma(sigma, both)).to(both.dtype)
        stepped = ddim_step(both, denoised, sigma, sigma_next)
    return stepped[1:], stepped[:1]
