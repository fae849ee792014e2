"""GoodDrag (Zhang et al., ICLR 2025): drag updates alternating with denoising steps (AlDD), with
information-preserving motion supervision, as a schedule over the drag core of :mod:`core.drag`.

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
      closer than 2 skipped, plus ``lam |(z_{t-1} - z^src_{t-1}) (1 - M)|_1``; Adam step;
   c. after ``max_drags_per_track`` updates, or once the motion loss is at most ``loss_threshold (2r_m)^2``,
      the handles are tracked again with that update's features (taken before its step); ``drags_per_step``
      trackings end the step; a tracking that moves no handle counts toward ``max_unchanged_tracks``, which ends
      the drag for good (any tracking that moves one resets the count);
   d. one DDIM step of ``z_t`` and of ``z^src_t``.
3. The result is the latent and the source after the last drag step's denoise, ``level`` steps below the inverted
   level: latent-MasaCtrl denoising continues from there with the source as its reference branch.

Deliberate deviations:

* Border handling as :mod:`core.drag`: patches and tracking windows that cross the grid border are clamped
  (replicate padding, full-size patch); the official slicing shrinks or shifts them there, or fails
  (``tests/test_gooddrag_core.py`` runs a handle on the border).
* Mixed precision: the official code wraps the UNet in ``accelerate`` fp16 autocast; here the UNet runs in its
  own dtype with ``torch.amp.GradScaler`` for fp16 (as :mod:`core.drag`), and the latent is optimised in fp32
  (fp64 stays fp64: ``tools/parity_gooddrag.py`` compares with the official code in fp64, where float32 rounding
  cannot flip the sign of a near-zero L1 term of the loss and so send Adam elsewhere).

Kept as the official code does: without a mask the mask term holds the whole latent (its empty mask is all
zeros; ``empty_mask_editable=True`` gives DragDiffusion's reading, no mask term), and a step whose drag stopped
early (arrival, stalled tracking) is still denoised without attention control.
"""
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch

from .ddim import batch_sigma, ddim_step
from .drag import at_sigma, drag_update, retrack, start_drag, working_copy

Tensor = torch.Tensor

# The official UI's defaults (gooddrag_ui.py), what its users run; the GoodDragger class defaults differ
# (drag_end_step 10, lr 0.01, max_drag_per_track 10, threshold 4.0), and bench_gooddrag.py uses lam 0.1 and
# max_track_no_change 5.
DEFAULTS = dict(drag_end_step=7, drags_per_step=10, max_drags_per_track=3, step_bound=4.0, r_m=4, r_p=12,
                lam=0.2, lr=0.02, loss_threshold=0.0, max_unchanged_tracks=10)


@dataclass
class GoodDragResult:
    latent: Tensor  # the edited latent in sigma space, ``level`` steps below the inverted level
    source: Tensor  # the source branch at the same level (latent-MasaCtrl's reference)
    level: int  # denoising steps taken
    handles: Tensor  # [N,2] long grid [row, col] after the last tracking
    handles_per_step: list = field(default_factory=list)  # handles after each drag step (before its denoise)
    updates: int = 0  # optimiser steps taken in all
    arrived: bool = False


def gooddrag(model, z: Tensor, sigmas: Tensor, handles: Tensor, targets: Tensor, *, grid_hw: Sequence[int],
             mask_latent: Optional[Tensor] = None, drag_end_step: int = 7, drags_per_step: int = 10,
             max_drags_per_track: int = 3, step_bound: float = 4.0, r_m: int = 4, r_p: int = 12, lam: float = 0.2,
             lr: float = 0.02, loss_threshold: float = 0.0, max_unchanged_tracks: int = 10,
             reach_threshold: float = 2.0, empty_mask_editable: bool = False, loss_scaling: bool = False,
             truncate: bool = True, callback: Optional[Callable[[int, int, Tensor, Tensor], None]] = None,
             should_stop: Optional[Callable[[], bool]] = None) -> GoodDragResult:
    """GoodDrag's alternating drag and denoise (AlDD) from the inverted latent ``z`` at ``sigmas[0]``.

    ``model`` is a :class:`core.drag_model.DragModel` (``features`` and ``denoise``); ``sigmas`` the descending
    DDIM levels from ``z`` down (the trajectory's sampling sigmas); ``handles``/``targets`` ``[N,2]`` grid points.
    ``callback(step, update, loss, handles)`` after each update with the handles the next one starts from (on the
    CPU); ``should_stop()`` is polled before each update (it may raise to abort).  Safe under
    ``torch.inference_mode()``.
    """
    n_steps = len(sigmas) - 1
    patch_weight = float((2 * r_m) ** 2)  # the official normalisation (not the patch's (2r_m+1)^2)
    with torch.inference_mode(False), torch.enable_grad():
        x = working_copy(z)
        source = x.clone()
        handles_init = handles.detach().clone().long().to(z.device)
        current = handles_init.clone()
        targets = targets.detach().clone().long().to(z.device)
        result = GoodDragResult(latent=x, source=source, level=0, handles=current)
        unchanged, dragging = 0, True
        for step in range(min(drag_end_step, n_steps)):
            if not dragging or unchanged >= max_unchanged_tracks:
                break
            sigma, sigma_next = float(sigmas[step]), float(sigmas[step + 1])
            forward = at_sigma(model.features, sigma)
            state = start_drag(forward, x, sigma, sigma_next, current, targets, grid_hw=grid_hw,
                               mask_latent=mask_latent, lr=lr, loss_scaling=loss_scaling, truncate=truncate,
                               source=source, source_handles=handles_init, anchor_radius=r_m,
                               empty_mask_editable=empty_mask_editable)
            tracks, since_track, first = 0, 0, True
            while tracks < drags_per_step:
                if should_stop is not None and should_stop():
                    dragging = False
                    break
                loss, handles_host = drag_update(state, forward, track=first, r_m=r_m, r_p=r_p, lam=lam,
                                                 reach_threshold=reach_threshold, step_bound=step_bound,
                                                 patch_weight=patch_weight, keep_features=True)
                first = False
                if loss is None:  # every handle arrived
                    dragging, result.arrived = False, True
                    break
                result.updates += 1
                since_track += 1
                # The motion loss is read (a host sync) only when the update count alone does not decide.
                if since_track == max_drags_per_track or float(state.motion_loss) <= loss_threshold * patch_weight:
                    tracks, since_track = tracks + 1, 0
                    before = state.handles
                    retrack(state, state.features, r_p)  # the features of this update's forward, before its step
                    unchanged = unchanged + 1 if torch.equal(state.handles, before) else 0
                    handles_host = state.handles.cpu()
                if callback is not None:  # the handles the next update starts from
                    callback(step, result.updates, loss, handles_host)
                if unchanged >= max_unchanged_tracks:
                    dragging = False
                    break
            state.features = None
            current = state.handles
            if state.steps_run:
                x = state.z.detach() / state.scale
            result.handles_per_step.append(current.cpu())
            x, source = _denoise_both(model, x, source, sigma, sigma_next)
            result.level = step + 1
        result.latent, result.source, result.handles = x.to(z.dtype), source.to(z.dtype), current
    return result


def _denoise_both(model, x: Tensor, source: Tensor, sigma: float, sigma_next: float):
    """One DDIM step of the edit and the source, in one batch ``[source, edit]`` as the official code runs them."""
    with torch.no_grad():
        both = torch.cat([source, x])
        denoised = model.denoise(both, batch_sigma(sigma, both)).to(both.dtype)
        stepped = ddim_step(both, denoised, sigma, sigma_next)
    return stepped[1:], stepped[:1]
