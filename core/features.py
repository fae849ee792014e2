"""Reading the drag's supervision map: decoder features bilinearly upsampled (``align_corners=False``) to the
supervision grid, as the reference does, evaluated only at the grid positions a loss or a tracking needs.

A backend's features are ``[B,C,h,w]`` with opaque channels (B = 1, or CFG rows already weighted): they are folded
into one ``[C,h,w]`` map.  A *sampler* ``(rows, cols) -> [C, *S]`` reads that map upsampled at integer grid
positions of any shape ``S``.
"""
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
Sampler = Callable[[Tensor, Tensor], Tensor]


def as_map(features: Tensor) -> Tensor:
    """Backend features ``[B,C,h,w]`` (or ``[C,h,w]``) as one ``[B*C,h,w]`` map."""
    return features.reshape(-1, *features.shape[-2:])


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


def feature_sampler(features: Tensor, grid_hw: Sequence[int], dense: bool = False) -> Sampler:
    """``(rows, cols) -> [C, *S]``: the upsampled supervision map read at integer grid positions.

    ``dense=False`` evaluates only the positions asked for (:func:`sample_upsampled`); ``dense=True`` builds the whole
    ``F.interpolate`` map first, as the reference does (the benchmark's reference-equivalent path)."""
    feat = as_map(features)
    if not dense:
        return lambda rows, cols: sample_upsampled(feat, grid_hw, rows, cols)
    up = F.interpolate(feat[None], size=tuple(grid_hw), mode="bilinear", align_corners=False)[0]
    return lambda rows, cols: up[:, rows.to(up.device), cols.to(up.device)]


def patch_offsets(radius: int, device=None) -> tuple[Tensor, Tensor]:
    """Row and column offsets of a ``(2r+1)^2`` patch, row-major."""
    offsets = torch.arange(-radius, radius + 1, device=device)
    return offsets.repeat_interleave(offsets.numel()), offsets.repeat(offsets.numel())


def read_patches(sample: Sampler, grid_hw: Sequence[int], centres: Tensor, radius: int) -> Tensor:
    """The ``(2r+1)^2`` patch around each ``[row, col]`` centre, ``[C,N,P]``; positions past the grid's border read
    its edge (replicate padding), so every patch keeps its full size."""
    d_row, d_col = patch_offsets(radius, centres.device)
    return sample((centres[:, :1] + d_row).clamp(0, grid_hw[0] - 1), (centres[:, 1:] + d_col).clamp(0, grid_hw[1] - 1))
