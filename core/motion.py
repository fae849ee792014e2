"""Motion supervision and point tracking on the supervision map (:mod:`core.features`), in the reference's notation.

Every drag method pulls the features around each handle ``h`` toward its target ``g``: it reads a ``(2r+1)^2``
patch shifted by ``d`` along ``g - h`` (bilinear, one fractional offset per pair) and penalises its L1 distance to an
anchor patch; pairs within ``reach_threshold`` of their target pull no more.  *What* the anchor, the shift and the
weight are is the method's: DragDiffusion's :class:`CurrentPatchPull` here, GoodDrag's anchored pull in
:mod:`core.gooddrag`.  Both are :class:`MotionSupervision` objects the drag loop (:mod:`core.drag`) calls.

Deviation from the references (border handling): they slice the map, which crashes (or shrinks the patch and so
changes the loss normalisation) for handles within ~2 grid px of the border that move outward.  Here positions are
clamped into the grid (replicate padding) and the patch always keeps its full size; for handles at least ``r + 1``
grid px inside the border this is identical to the reference.
"""
from dataclasses import dataclass
from typing import Optional, Protocol, Sequence, Union

import torch

from .features import Sampler, feature_sampler, patch_offsets

Tensor = torch.Tensor


class MotionSupervision(Protocol):
    """A method's motion loss: how the features at the handles are pulled toward the targets."""

    reach_threshold: float  # a pair closer than this to its target has arrived (no pull, and the drag may stop)

    def __call__(self, sample: Sampler, grid_hw: Sequence[int], handles: Tensor, targets: Tensor) -> Tensor:
        """The loss of one update: ``sample`` reads the current supervision map; handles/targets ``[N,2]`` grid."""


def pull_directions(handles: Tensor, targets: Tensor, reach_threshold: float):
    """``(unit [N,2] float64, distance [N], active [N] bool)``: the unit vector from each handle toward its target,
    and which pairs still pull (distance at least ``reach_threshold``)."""
    delta = (targets - handles).to(torch.float64)
    distance = delta.norm(dim=1)
    return delta / distance.clamp_min(1e-12).unsqueeze(1), distance, distance >= reach_threshold


def shifted_patches(sample: Sampler, grid_hw: Sequence[int], handles: Tensor, shift: Tensor, radius: int):
    """``(patch, shifted)``, both ``[C,N,P]``: the ``(2r+1)^2`` patch around each handle, and the same patch moved by
    the pair's float ``shift`` ``[N,2]`` (bilinear from 4 integer taps with the pair's scalar weights).  All five
    reads go through one sample; positions are clamped into the grid (see the module docstring)."""
    hs, ws = grid_hw
    d_row, d_col = patch_offsets(radius, handles.device)
    patch_rows = handles[:, :1] + d_row  # [N,P]
    patch_cols = handles[:, 1:] + d_col
    floor = shift.floor()
    rows = patch_rows + floor[:, :1].long()
    cols = patch_cols + floor[:, 1:].long()
    all_rows = torch.stack([patch_rows, rows, rows + 1, rows, rows + 1]).clamp(0, hs - 1)
    all_cols = torch.stack([patch_cols, cols, cols, cols + 1, cols + 1]).clamp(0, ws - 1)
    values = sample(all_rows, all_cols)  # [C,5,N,P]
    frac = (shift - floor).to(values.dtype)
    fr, fc = frac[:, :1], frac[:, 1:]  # [N,1], broadcast over the patch
    shifted = (values[:, 1] * ((1 - fr) * (1 - fc)) + values[:, 2] * (fr * (1 - fc))
               + values[:, 3] * ((1 - fr) * fc) + values[:, 4] * (fr * fc))
    return values[:, 0], shifted


def patch_l1(shifted: Tensor, anchor: Tensor, weight: float, active: Tensor) -> Tensor:
    """``sum over active pairs of weight * mean |shifted - anchor|`` (mean over channels and the patch)."""
    per_pair = (shifted - anchor).abs().mean(dim=(0, 2)) * weight
    return (per_pair * active.to(per_pair.dtype)).sum()


@dataclass(frozen=True)
class CurrentPatchPull:
    """DragDiffusion's motion supervision (``drag_diffusion_update``): the patch one unit step ``d`` toward the target
    is pulled toward the stop-gradient patch at the current handle,
    ``(2r+1)^2 * mean |F(q + d) - sg(F(q))|`` per pair."""
    radius: int = 1
    reach_threshold: float = 2.0

    def __call__(self, sample: Sampler, grid_hw: Sequence[int], handles: Tensor, targets: Tensor) -> Tensor:
        unit, _, active = pull_directions(handles, targets, self.reach_threshold)
        patch, shifted = shifted_patches(sample, grid_hw, handles, unit, self.radius)
        return patch_l1(shifted, patch.detach(), float((2 * self.radius + 1) ** 2), active)


def motion_supervision_loss(features: Tensor, grid_hw: Sequence[int], handles: Tensor, targets: Tensor,
                            pull: MotionSupervision = CurrentPatchPull(), dense: bool = False) -> Tensor:
    """``pull``'s loss on decoder ``features`` (``[B,C,h,w]`` or ``[C,h,w]``) read through the (virtual) upsampled
    map; ``dense`` builds the whole map first, as the reference (same values)."""
    sample = feature_sampler(features, grid_hw, dense)
    return pull(sample, grid_hw, handles.to(features.device), targets.to(features.device))


def track_points(handle_feats: Tensor, feats: Union[Tensor, Sampler], handles: Tensor, radius: int = 3,
                 grid_hw: Optional[Sequence[int]] = None) -> Tensor:
    """Move each handle to the position in its ``(2r+1)^2`` window (clipped at the grid border) whose features are
    closest in L1 over channels to ``handle_feats`` ``[N,C]``; ties go to the first position in row-major order.

    ``feats`` is the supervision map ``[C,Hs,Ws]`` or a sampler ``(rows, cols) -> [C, *S]`` (then give ``grid_hw``).
    Vectorised over points; no host sync."""
    if isinstance(feats, Tensor):
        grid_hw = feats.shape[-2:]
        feat_map = feats
        feats = lambda r, c: feat_map[:, r, c]  # noqa: E731
    d_row, d_col = patch_offsets(radius, handles.device)  # row-major window order
    rows = handles[:, :1] + d_row  # [N,K]
    cols = handles[:, 1:] + d_col
    inside = (rows >= 0) & (rows < grid_hw[0]) & (cols >= 0) & (cols < grid_hw[1])
    values = feats(rows.clamp(0, grid_hw[0] - 1), cols.clamp(0, grid_hw[1] - 1))  # [C,N,K]
    dist = (values - handle_feats.t().unsqueeze(-1)).abs().sum(0)
    best = dist.masked_fill(~inside, float("inf")).argmin(dim=1, keepdim=True)
    return torch.cat([rows.gather(1, best), cols.gather(1, best)], dim=1)


def all_reached(handles: Tensor, targets: Tensor, reach_threshold: float = 2.0) -> Tensor:
    """True (0-d bool tensor) when every handle is strictly closer than ``reach_threshold`` to its target."""
    return ((targets - handles).to(torch.float64).norm(dim=1) < reach_threshold).all()
