"""DragDiffusion latent optimisation (motion supervision + point tracking) as plain torch functions.

Conventions taken from the reference (Yujun-Shi/DragDiffusion, ``utils/drag_utils.py``):

* Points live on a *supervision grid* of ``int(H/2) x int(W/2)`` for an ``H x W`` image. Image points are ``[x, y]``
  pixels; grid points are integer ``[row, col]`` = ``round(y*grid_h/H), round(x*grid_w/W)`` (no half-pixel offset).
* Supervision features are the decoder feature map bilinearly upsampled (``align_corners=False``) to the grid.
  Here they are never materialised: :func:`sample_upsampled` evaluates exactly the grid positions that are needed.
* Motion supervision per pair (skipped once ``|target - handle| < 2``): ``(2r_m+1)^2 * mean |F(q+d) - sg(F(q))|``
  over channels and the patch around the *current* handle, ``d`` the unit direction, ``F(q+d)`` bilinear in the grid.
* Tracking compares against the features of the *original* handles in the *original* latent (L1, ``(2r_p+1)^2`` window).
* Mask term ``lam * sum |(z_next - z_next_ref) * (1 - mask)|`` on the latent one DDIM step ahead; 1 = editable.

Deliberate deviations (each repeated where it applies):

* Border handling: the reference crashes (or shrinks the patch and so changes the loss normalisation) for handles
  within ~2 grid px of the border that move outward. Here sample coordinates are clamped into the grid (replicate
  padding) and the patch always keeps its full size.
* Points outside the image are clamped onto the grid (the reference would index out of range).
* Sigma space: the pack works with ``x = x0 + sigma*eps``; the reference optimises the VP latent
  ``z = x/sqrt(1+sigma^2)``. With ``vp_units=True`` (default) Adam runs on ``z`` and the mask term is measured on
  ``z_next``, so ``lr`` and ``lam`` keep the reference's meaning; the returned latent is in sigma space.
* No UNet weight gradients and no fp32 master weights: the backend runs the UNet in its own dtype and only the latent
  is optimised, in float32 (float64 when given float64, as the parity runs do); ``torch.amp.GradScaler`` (the
  reference's scaler, on for fp16 UNets) guards against underflow.

Cost (exact, see ``bench/``): without a mask term only the features are needed, so the forward may stop after the
supervised decoder block (``DragForward``'s ``full=False``); the upsampled map is never built; the loop syncs with the
host once per iteration (the early-stop check).  ``dense_features=True`` plus ``truncate=False`` is the
reference-equivalent path the benchmark and tests compare against.
"""

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .ddim import batch_sigma, ddim_step

Tensor = torch.Tensor
GridHW = Tuple[int, int]


def working_copy(z: Tensor) -> Tensor:
    """A detached copy of ``z`` as a normal tensor (even of an inference tensor) in the optimisation dtype: float32
    for half-precision latents, float64 kept."""
    return z.detach().clone().to(torch.promote_types(z.dtype, torch.float32))


# --------------------------------------------------------------------------------------------------------------------
# Points and masks

def supervision_grid_hw(image_hw: Sequence[int]) -> GridHW:
    """Reference supervision resolution: ``int(0.5*H) x int(0.5*W)``."""
    return int(0.5 * image_hw[0]), int(0.5 * image_hw[1])


def image_points_to_grid(points_xy, image_hw: Sequence[int], grid_hw: Sequence[int]) -> Tensor:
    """``[N,2]`` image ``[x, y]`` pixels -> ``[N,2]`` long ``[row, col]`` on the grid (round half to even, as the
    reference). Deviation: results are clamped into the grid so points on the far edge stay valid."""
    p = torch.as_tensor(points_xy, dtype=torch.float64).reshape(-1, 2)
    rows = torch.round(p[:, 1] * grid_hw[0] / image_hw[0]).clamp(0, grid_hw[0] - 1)
    cols = torch.round(p[:, 0] * grid_hw[1] / image_hw[1]).clamp(0, grid_hw[1] - 1)
    return torch.stack([rows, cols], dim=1).long()


def grid_points_to_image(points_rc: Tensor, image_hw: Sequence[int], grid_hw: Sequence[int]) -> Tensor:
    """Inverse of :func:`image_points_to_grid` (up to its rounding): ``[N,2]`` ``[row, col]`` -> float ``[x, y]``."""
    p = torch.as_tensor(points_rc, dtype=torch.float64).reshape(-1, 2)
    return torch.stack([p[:, 1] * image_hw[1] / grid_hw[1], p[:, 0] * image_hw[0] / grid_hw[0]], dim=1)


def mask_to_latent(mask: Tensor, grid_hw: Sequence[int], latent_hw: Sequence[int]) -> Tensor:
    """Image mask ``[H,W]`` (nonzero = editable) -> ``[1,1,h,w]`` {0,1} latent mask, resampled like the reference:
    nearest to the supervision grid, then nearest to the latent size."""
    m = (torch.as_tensor(mask).float().reshape(1, 1, *mask.shape[-2:]) > 0).float()
    m = F.interpolate(m, size=tuple(grid_hw), mode="nearest")
    return F.interpolate(m, size=tuple(latent_hw), mode="nearest")


# --------------------------------------------------------------------------------------------------------------------
# Sparse sampling of the upsampled supervision map

def _source_taps(index: Tensor, in_size: int, out_size: int, dtype: torch.dtype):
    """1-D taps of ``F.interpolate(bilinear, align_corners=False)`` for integer output indices, computed the way
    PyTorch's kernels do (same op order, in the kernel's accumulation dtype) so results match to rounding."""
    scale = torch.tensor(float(in_size), dtype=dtype) / out_size
    src = (scale * (index.to(dtype) + 0.5) - 0.5).clamp_min(0.0)  # PyTorch clamps negative sources to 0
    lo = src.floor().long().clamp_max(in_size - 1)
    hi = (lo + 1).clamp_max(in_size - 1)
    return lo, hi, (src - lo.to(dtype)).clamp(0.0, 1.0)


def sample_upsampled(feat: Tensor, grid_hw: Sequence[int], rows: Tensor, cols: Tensor) -> Tensor:
    """Values of ``F.interpolate(feat[None], grid_hw, mode="bilinear", align_corners=False)[0]`` at integer grid
    positions ``(rows, cols)`` (same shape S, must be inside the grid), without building the dense map. Equal to the
    dense result up to float rounding (same taps and weights; PyTorch's summation order differs by ~1 ulp).

    ``feat`` is ``[C,h,w]``; returns ``[C, *S]`` in ``feat``'s dtype promoted to at least float32."""
    _, h, w = feat.shape
    dtype = torch.promote_types(feat.dtype, torch.float32)
    r0, r1, wr = _source_taps(rows.to(feat.device), h, grid_hw[0], dtype)
    c0, c1, wc = _source_taps(cols.to(feat.device), w, grid_hw[1], dtype)
    # one gather for all four taps: its backward is a single scatter into a feature-sized buffer
    taps = feat.flatten(1)[:, torch.stack([r0 * w + c0, r0 * w + c1, r1 * w + c0, r1 * w + c1])]
    x00, x01, x10, x11 = taps.unbind(1)
    return (1 - wr) * ((1 - wc) * x00 + wc * x01) + wr * ((1 - wc) * x10 + wc * x11)


def _as_map(features: Tensor) -> Tensor:
    """Backend features ``[B,C,h,w]`` are opaque: fold the batch into channels (B=1, or CFG rows already weighted)."""
    return features.reshape(-1, *features.shape[-2:])


Sampler = Callable[[Tensor, Tensor], Tensor]


def feature_sampler(features: Tensor, grid_hw: Sequence[int], dense: bool = False) -> Sampler:
    """``(rows, cols) -> [C, *S]``: the upsampled supervision map read at integer grid positions.

    ``dense=False`` evaluates only the positions asked for (:func:`sample_upsampled`); ``dense=True`` builds the whole
    ``F.interpolate`` map first, as the reference does (the benchmark's reference-equivalent path)."""
    feat = _as_map(features)
    if not dense:
        return lambda rows, cols: sample_upsampled(feat, grid_hw, rows, cols)
    up = F.interpolate(feat[None], size=tuple(grid_hw), mode="bilinear", align_corners=False)[0]
    return lambda rows, cols: up[:, rows.to(up.device), cols.to(up.device)]


# --------------------------------------------------------------------------------------------------------------------
# Point tracking


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
    offsets = torch.arange(-radius, radius + 1, device=handles.device)
    d_row = offsets.repeat_interleave(offsets.numel())  # row-major window order
    d_col = offsets.repeat(offsets.numel())
    rows = handles[:, :1] + d_row  # [N,K]
    cols = handles[:, 1:] + d_col
    inside = (rows >= 0) & (rows < grid_hw[0]) & (cols >= 0) & (cols < grid_hw[1])
    values = feats(rows.clamp(0, grid_hw[0] - 1), cols.clamp(0, grid_hw[1] - 1))  # [C,N,K]
    dist = (values - handle_feats.t().unsqueeze(-1)).abs().sum(0)
    best = dist.masked_fill(~inside, float("inf")).argmin(dim=1, keepdim=True)
    return torch.cat([rows.gather(1, best), cols.gather(1, best)], dim=1)


# --------------------------------------------------------------------------------------------------------------------
# Motion supervision

def _unit_directions(handles: Tensor, targets: Tensor, reach_threshold: float, step_bound: Optional[float] = None):
    delta = (targets - handles).to(torch.float64)
    dist = delta.norm(dim=1)
    active = dist >= reach_threshold
    direction = delta / dist.clamp_min(1e-12).unsqueeze(1)
    if step_bound is not None:  # GoodDrag: a step of min(beta, distance) toward the target
        direction = direction * dist.clamp(max=step_bound).unsqueeze(1)
    return direction, active


def patch_offsets(r: int, device=None) -> Tuple[Tensor, Tensor]:
    """Row and column offsets of a ``(2r+1)^2`` patch, row-major."""
    offsets = torch.arange(-r, r + 1, device=device)
    return offsets.repeat_interleave(offsets.numel()), offsets.repeat(offsets.numel())


def motion_supervision_loss(features: Tensor, grid_hw: Sequence[int], handles: Tensor, targets: Tensor,
                            r_m: int = 1, reach_threshold: float = 2.0, dense: bool = False, *,
                            anchor: Optional[Tensor] = None, step_bound: Optional[float] = None,
                            patch_weight: Optional[float] = None) -> Tensor:
    """Reference motion-supervision loss on the (virtual) upsampled map, computed from ``(2r_m+1)^2 + 4`` shifted
    taps per point instead of the dense map.

    ``features``: ``[B,C,h,w]`` or ``[C,h,w]`` decoder features (channels opaque). ``handles``/``targets``: ``[N,2]``
    ``[row, col]`` grid points. Pairs closer than ``reach_threshold`` contribute nothing.

    Deviation (reference border bug): positions are clamped into the grid (replicate padding) instead of slicing, so
    handles at the border moving outward neither crash nor shrink the patch; the ``(2r_m+1)^2`` patch is always full.
    For handles at least ``r_m + 1`` grid px inside the border this is identical to the reference.
    ``dense``: read the taps from the whole upsampled map (see :func:`feature_sampler`); same values.

    GoodDrag's information-preserving variant: ``anchor`` ``[C,N,P]`` replaces ``sg(F(q))`` (the original handles'
    patch in the original features), ``step_bound`` beta makes the shift ``min(beta, |t - q|)`` long instead of 1,
    and ``patch_weight`` replaces ``(2r_m+1)^2`` (GoodDrag weighs by ``(2r_m)^2``)."""
    feat = _as_map(features)
    sample = feature_sampler(feat, grid_hw, dense)
    handles, targets = handles.to(feat.device), targets.to(feat.device)
    direction, active = _unit_directions(handles, targets, reach_threshold, step_bound)
    hs, ws = grid_hw
    d_row, d_col = patch_offsets(r_m, feat.device)
    patch_rows = handles[:, :1] + d_row  # [N,P]
    patch_cols = handles[:, 1:] + d_col

    # F(q + d): one fractional offset per pair, shared by the whole patch, so 4 integer taps with scalar weights.
    floor = direction.floor()
    rows = patch_rows + floor[:, :1].long()
    cols = patch_cols + floor[:, 1:].long()
    # replicate padding = clamp integer grid positions; all five reads in one sparse sample
    all_rows = torch.stack([patch_rows, rows, rows + 1, rows, rows + 1]).clamp(0, hs - 1)
    all_cols = torch.stack([patch_cols, cols, cols, cols + 1, cols + 1]).clamp(0, ws - 1)
    values = sample(all_rows, all_cols)  # [C,5,N,P]
    anchor = values[:, 0].detach() if anchor is None else anchor.to(values)  # sg(F(q)), or GoodDrag's original
    frac = (direction - floor).to(values.dtype)
    fr, fc = frac[:, :1], frac[:, 1:]  # [N,1], broadcast over the patch
    shifted = (values[:, 1] * ((1 - fr) * (1 - fc)) + values[:, 2] * (fr * (1 - fc))
               + values[:, 3] * ((1 - fr) * fc) + values[:, 4] * (fr * fc))
    weight = patch_rows.shape[1] if patch_weight is None else patch_weight
    per_pair = (shifted - anchor).abs().mean(dim=(0, 2)) * weight  # (2r_m+1)^2 * mean
    return (per_pair * active.to(per_pair.dtype)).sum()


def all_reached(handles: Tensor, targets: Tensor, reach_threshold: float = 2.0) -> Tensor:
    """True (0-d bool tensor) when every handle is strictly closer than ``reach_threshold`` to its target."""
    return ((targets - handles).to(torch.float64).norm(dim=1) < reach_threshold).all()


# --------------------------------------------------------------------------------------------------------------------
# Optimisation loop

class DragForward(Protocol):
    """What the drag loop needs from a backend: the denoiser at the drag's noise level, with decoder features.

    ``forward(x, full)`` -> ``(denoised [B,C,h,w] or None, features [B,C',hf,wf])`` for a sigma-space latent ``x``.
    With ``full=False`` the loop needs only the features, and the backend may stop the UNet after the supervised
    block (raise :class:`ForwardTruncated` from a hook) and return ``None`` for ``denoised``.  Features are opaque
    channels (e.g. CFG rows already combined by :func:`guided_features`).
    """

    def __call__(self, x: Tensor, full: bool = True) -> Tuple[Optional[Tensor], Tensor]: ...


class ForwardTruncated(Exception):
    """Raised by a backend's feature hook to stop a forward whose remaining blocks nobody needs."""

    def __init__(self, features: Tensor):
        super().__init__("forward stopped after the supervised block")
        self.features = features


def at_sigma(forward: Callable[..., Tuple[Optional[Tensor], Tensor]], sigma: float) -> DragForward:
    """Bind a backend's ``forward(x, sigma, full)`` to the drag's one noise level."""
    return lambda x, full=True: forward(x, batch_sigma(sigma, x), full)


@dataclass
class DragResult:
    latent: Tensor  # optimised latent in sigma space, dtype/device of the input
    handles: Tensor  # [N,2] long grid [row, col]: the handles used by the last step (after its tracking)
    steps_run: int  # optimiser steps taken (one GradScaler skipped on overflow counts, as in the reference)
    losses: list = field(default_factory=list)  # loss of each step


@dataclass
class DragState:
    """One latent being dragged at one noise level: what :func:`drag_update` reads and advances.

    Made by :func:`start_drag`; a schedule (DragDiffusion's one level, GoodDrag's alternation) calls updates on it.
    ``z`` is the optimised leaf in the reference's VP units (``x = z / scale``); ``handle_feats`` are the features
    of the original handles in the original latent, which tracking compares against.
    """
    z: Tensor
    sigma: float
    sigma_next: float
    scale: float
    scale_next: float
    handles: Tensor  # [N,2] long grid [row, col], current
    targets: Tensor
    targets_host: Tensor  # the targets on the CPU, for the early-stop check without another sync
    handle_feats: Tensor  # [N,C]
    keep: Optional[Tensor]  # 1 - mask, or None: no mask term
    next_ref: Optional[Tensor]  # the original latent one DDIM step ahead (VP units), for the mask term
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    grid_hw: GridHW
    full: bool  # whether updates need the denoised latent (mask term, or no truncation)
    dense: bool
    anchor: Optional[Tensor] = None  # [C,N,P] GoodDrag's motion-supervision anchor, or None: the current patch
    steps_run: int = 0
    losses: list = field(default_factory=list)  # 0-d tensors, one per step taken
    motion_loss: Optional[Tensor] = None  # the last step's motion-supervision part (0-d)
    features: Optional[Tensor] = None  # the last forward's features, detached, when ``drag_update`` keeps them

    @property
    def x(self) -> Tensor:
        """The current latent in sigma space (differentiable in ``z``)."""
        return self.z / self.scale


def start_drag(forward: DragForward, z: Tensor, sigma, sigma_next, handles: Tensor, targets: Tensor, *,
               grid_hw: Sequence[int], mask_latent: Optional[Tensor] = None, lr: float = 0.01, vp_units: bool = True,
               loss_scaling: bool = False, truncate: bool = True, dense_features: bool = False,
               source: Optional[Tensor] = None, source_handles: Optional[Tensor] = None,
               anchor_radius: Optional[int] = None, empty_mask_editable: bool = True) -> DragState:
    """Reference features and the mask term's reference latent (one forward, no grad), Adam on the latent.

    The reference is ``source`` (the unedited latent at this level; default ``z``, DragDiffusion's case) read at
    ``source_handles`` (default ``handles``): tracking compares against those features, the mask term against
    ``source``'s next DDIM step.  ``anchor_radius``: also keep the ``(2r+1)^2`` patch around each source handle as
    the motion-supervision anchor (GoodDrag).  Call under ``torch.inference_mode(False), torch.enable_grad()`` (as
    :func:`optimize_drag_latent` does).  ``empty_mask_editable=False``: an all-zero (or absent) mask holds the whole
    latent through the mask term, as GoodDrag's code does, instead of meaning "no mask term"."""
    x_init = working_copy(z)
    sigma, sigma_next = float(sigma), float(sigma_next)  # one noise level for the (single) latent
    scale = (1.0 + sigma ** 2) ** -0.5 if vp_units else 1.0
    scale_next = (1.0 + sigma_next ** 2) ** -0.5 if vp_units else 1.0
    # A given source takes the round trip through the optimised VP latent, so where the edit equals it (GoodDrag's
    # first step) the mask term is exactly zero, with zero gradient, as in the official code.
    x_source = x_init if source is None else (working_copy(source) * scale) / scale
    handles = handles.detach().clone().long().to(z.device)
    targets = targets.detach().clone().long().to(z.device)
    keep = None
    if mask_latent is not None:
        mask = mask_latent.detach().clone().float().to(z.device)
        if bool(mask.sum() != 0) or not empty_mask_editable:  # all-zero = nothing drawn = all editable (reference)
            keep = 1.0 - mask
    elif not empty_mask_editable:
        keep = torch.ones_like(x_init[:, :1])
    full = keep is not None or not truncate

    at = handles if source_handles is None else source_handles.detach().clone().long().to(z.device)
    anchor = None
    with torch.no_grad():
        denoised, feats = forward(x_source, full)
        next_ref = None
        if keep is not None:
            next_ref = ddim_step(x_source, denoised.to(x_source.dtype), sigma, sigma_next) * scale_next
        sampler = feature_sampler(feats, grid_hw, dense_features)
        handle_feats = sampler(at[:, 0], at[:, 1]).t()  # [N,C]
        if anchor_radius is not None:
            d_row, d_col = patch_offsets(anchor_radius, at.device)
            anchor = sampler((at[:, :1] + d_row).clamp(0, grid_hw[0] - 1),
                             (at[:, 1:] + d_col).clamp(0, grid_hw[1] - 1))  # [C,N,P], border rows replicated
        del denoised, feats

    # The parameter is the VP latent so Adam's lr/eps act exactly as in the reference.
    z_param = (x_init * scale).requires_grad_(True)
    return DragState(z=z_param, sigma=sigma, sigma_next=sigma_next, scale=scale, scale_next=scale_next,
                     handles=handles, targets=targets, targets_host=targets.cpu(), handle_feats=handle_feats,
                     keep=keep, next_ref=next_ref,
                     optimizer=torch.optim.Adam([z_param], lr=lr),
                     scaler=torch.amp.GradScaler(z.device.type, init_scale=2.0 ** 16, enabled=loss_scaling),
                     grid_hw=tuple(grid_hw), full=full, dense=dense_features, anchor=anchor)


def retrack(state: DragState, features: Tensor, r_p: int) -> None:
    """Move ``state.handles`` to their best matches of the original handle features in ``features``."""
    with torch.no_grad():
        sampler = feature_sampler(features.detach(), state.grid_hw, state.dense)
        state.handles = track_points(state.handle_feats, sampler, state.handles, r_p, state.grid_hw)


def drag_update(state: DragState, forward: DragForward, *, track: bool, r_m: int = 1, r_p: int = 3,
                lam: float = 0.1, reach_threshold: float = 2.0, step_bound: Optional[float] = None,
                patch_weight: Optional[float] = None, keep_features: bool = False) -> Tuple[Optional[Tensor], Tensor]:
    """One drag update: forward -> track -> (arrived?) -> loss -> Adam step.

    1. ``F, x0 = forward(x)`` at the state's level (features only when no mask term needs ``x0``);
    2. if ``track``, move each handle to its best match of ``handle_feats`` within ``r_p`` (:func:`track_points`);
    3. fetch the handles to the host (the update's one sync); if all are within ``reach_threshold``, stop here;
    4. motion supervision (:func:`motion_supervision_loss`, against ``state.anchor`` when set, with ``step_bound``
       and ``patch_weight``) plus ``lam * |(z_next - z_next_ref) * (1 - mask)|_1``;
    5. one optimiser step (through GradScaler when enabled).

    Returns ``(loss or None when every handle had arrived, handles on the host)``; ``state.motion_loss`` holds the
    motion part, and ``state.features`` the detached features when ``keep_features``."""
    x = state.x
    denoised, feats = forward(x, state.full)
    state.features = feats.detach() if keep_features else None
    if track:
        retrack(state, feats, r_p)
    handles_host = state.handles.cpu()  # the update's one host sync: the early-stop check needs the handles
    if bool(all_reached(handles_host, state.targets_host, reach_threshold)):
        return None, handles_host
    loss = motion_supervision_loss(feats, state.grid_hw, state.handles, state.targets, r_m, reach_threshold,
                                   state.dense, anchor=state.anchor, step_bound=step_bound, patch_weight=patch_weight)
    state.motion_loss = loss.detach()
    if state.keep is not None:
        x_next = ddim_step(x, denoised.to(x.dtype), state.sigma, state.sigma_next) * state.scale_next
        loss = loss + lam * ((x_next - state.next_ref) * state.keep).abs().sum()
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.steps_run += 1
    state.losses.append(loss.detach())
    return state.losses[-1], handles_host


def optimize_drag_latent(forward: DragForward, z: Tensor, sigma, sigma_next, handles: Tensor, targets: Tensor, *,
                         grid_hw: Sequence[int], mask_latent: Optional[Tensor] = None, steps: int = 80,
                         lr: float = 0.01, lam: float = 0.1, r_m: int = 1, r_p: int = 3,
                         reach_threshold: float = 2.0, vp_units: bool = True, loss_scaling: bool = False,
                         truncate: bool = True, dense_features: bool = False,
                         callback: Optional[Callable[[int, Tensor, Tensor], None]] = None,
                         should_stop: Optional[Callable[[], bool]] = None) -> DragResult:
    """DragDiffusion's schedule: up to ``steps`` updates (:func:`drag_update`) at one noise level.

    ``forward`` (:class:`DragForward`) runs the denoiser at ``sigma``. ``handles``/``targets`` are ``[N,2]`` grid
    ``[row, col]`` points; ``grid_hw`` is the supervision grid size.

    Per the reference: reference features and the next-step latent are computed once without grad; Adam on the latent
    only; each iteration runs forward, tracks handles against the original handle features (from the second
    iteration on), stops early when all handles are within ``reach_threshold`` (checked after tracking, before the
    loss), then steps on motion supervision + mask term.

    ``mask_latent`` (``[h,w]`` or broadcastable to the latent, 1 = editable): ``None`` means everything is editable
    and there is no mask term; an all-zero mask is treated the same way, as the reference does (nothing drawn).
    ``vp_units``: optimise and regularise in the reference's VP latent units (see module docstring); set False for
    models whose latent is not VP-scaled. ``loss_scaling``: ``torch.amp.GradScaler`` as the reference (init scale
    2^16; a step whose gradient overflowed is skipped and the scale halved) — needed for fp16 UNets only.
    ``truncate``: ask for features only (``full=False``) when no mask term needs the denoised latent.
    ``dense_features``: build the whole upsampled map each iteration, as the reference (same values, slower).
    ``callback(step, loss, handles)`` after each step with the loss as a 0-d tensor (reading it syncs the device) and
    the handles on the CPU; ``should_stop()`` is polled before each iteration (it may also raise to abort).
    Safe under an outer ``torch.inference_mode()``.
    """
    with torch.inference_mode(False), torch.enable_grad():
        state = start_drag(forward, z, sigma, sigma_next, handles, targets, grid_hw=grid_hw, mask_latent=mask_latent,
                           lr=lr, vp_units=vp_units, loss_scaling=loss_scaling, truncate=truncate,
                           dense_features=dense_features)
        for step in range(steps):
            if should_stop is not None and should_stop():
                break
            loss, handles_host = drag_update(state, forward, track=step > 0, r_m=r_m, r_p=r_p, lam=lam,
                                             reach_threshold=reach_threshold)
            if loss is None:
                break
            if callback is not None:
                callback(step, loss, handles_host)

        latent = (state.z.detach() / state.scale if state.steps_run else working_copy(z)).to(z.dtype)
        losses = torch.stack(state.losses).tolist() if state.losses else []
    return DragResult(latent=latent, handles=state.handles, steps_run=state.steps_run, losses=losses)


def guided_features(cond: Tensor, uncond: Optional[Tensor], cfg: float) -> Tensor:
    """Drag features under classifier-free guidance, as the reference's generated-image mode builds them.

    ``cat([(1 - k) F_uncond, k F_cond])`` over channels with ``k = cfg / (2 cfg - 1)``; the cond features alone
    without guidance.
    """
    if uncond is None or cfg == 1.0:
        return cond
    if cfg < 1.0:  # k = cfg / (2 cfg - 1) has a pole at 0.5 and turns negative below it
        raise ValueError(f"drag guidance must be 1 (real images) or above (generated images), got {cfg}")
    k = cfg / (2.0 * cfg - 1.0)
    return torch.cat([(1.0 - k) * uncond, k * cond], dim=1)
