"""Inpaint4Drag's bidirectional region warp (Lu & Han, ICCV 2025): move a masked region with handle->target pairs.

Each connected region of the mask (its outer outline, holes filled) moves by an inverse-distance-weighted mix of
the displacements of the pairs whose handle sits on it.  The outline and the region's pixels are mapped forward;
the moved outline, filled, is the moved region; every pixel of it then looks *back* through the same weighting
for its source, so the moved region has no holes.  What the region uncovers (plus a band along the moved
outline) is the inpaint mask: an inpainting model fills it afterwards, which is all the method needs.

The numbers follow the official code (``utils/drag.py: bi_warp``, Visual-AI/Inpaint4Drag) to the pixel: the
same float32 torch arithmetic in the same order, the same OpenCV contours and fills; ``dev/parity_inpaint4drag.py``
checks it.  Deliberate differences, each with a test in ``tests/test_region_warp.py`` but the device one:

* a pair whose handle is on no region pixel is refused with a ValueError naming the pair (the official code
  silently leaves such a pair out); a handle off the pixel grid is refused the same way, since it matches no pixel;
* an empty region, no pairs, non-finite points, a target more than one image width/height beyond the border,
  a negative kernel or one wider than the image, and a region whose size differs from the image's are refused
  (the official code returns an empty warp, clamps the kernel to 0, or fails inside torch/OpenCV);
* where two regions move onto the same pixel, :func:`apply_warp` keeps the later region's pixel explicitly (the
  official preview leaves it to numpy's order for repeated indices, which is the same in practice);
* it always runs on the CPU (the official code uses CUDA when present, where distances may round differently);
* it needs OpenCV 4.11 or later, and agrees exactly with the official code run on such an OpenCV.  The official
  requirements pin OpenCV 4.8.0.76, whose ``fillPoly`` spills a pixel past some outlines (opencv/opencv#26130,
  fixed in 4.11): against that version the moved region differs by a few pixels along its edge (2-5 per case in
  the parity run, all inside the inpaint mask there).

Behaviour kept from the official code that may surprise: a hole in a region moves with it (the region is the
filled outer outline); a region with no pair stays and is not inpainted; pixels of the moved region whose source
falls off the image keep the original picture; a moved outline that leaves the image entirely moves nothing.

Speed (bench/warp.py): row chunks where integer coordinates keep the distances exact, a shortcut for one
whole-pixel move shared by all references (exactly the weighted result), and torch on one thread while planning
(``InstantDragSettings.threads``): the plan is dozens of small torch operations, and each parallel one waits until
every thread has a core, a scheduler slice per operation on a busy 2-core machine (10x slower in our bench).  The
limit holds for the planning thread only (:mod:`core.thread_limit`): torch's process-wide setting is never touched.
No ComfyUI import: nodes, templates and the bench use it.
"""
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import torch

from .settings import INSTANT_DRAG, InstantDragSettings
from .thread_limit import limited_threads

DEFAULTS = INSTANT_DRAG.warp


@dataclass(frozen=True)
class WarpPlan:
    """What :func:`bidirectional_warp` decides, as numpy arrays in image pixels (``x`` right, ``y`` down)."""

    source_xy: np.ndarray  # [M, 2] int32: where each moved pixel's colour comes from
    target_xy: np.ndarray  # [M, 2] int32: where it goes (regions in mask order, rows top to bottom)
    inpaint_mask: np.ndarray  # [H, W] bool: uncovered area, dilated, plus the band along each moved outline
    moved_mask: np.ndarray  # [H, W] bool: the pixels the warp writes (``target_xy``)
    kernel: int  # the kernel used (odd, or 0)

    @property
    def image_hw(self) -> tuple:
        return self.inpaint_mask.shape


OFF_REGION = "lies in no region of the mask"


def unclaimed_handle(index: int, handle, why: str = OFF_REGION) -> ValueError:
    """The refusal of pair ``index`` (from 0), whose handle drags nothing."""
    x, y = handle
    return ValueError(f"pair {index + 1}: the handle ({x:g}, {y:g}) {why}; put each handle on a pixel of the region "
                      "it drags")


def odd_kernel(kernel) -> int:
    """The kernel the official code uses: even sizes grow by one so the square has a centre; 0 stays 0."""
    try:
        whole = not isinstance(kernel, bool) and float(kernel).is_integer()
    except (TypeError, ValueError, OverflowError):  # not a number, or one past float's range (10**400)
        whole = False
    if not whole:
        raise ValueError(f"kernel must be a whole number of pixels, got {repr(kernel)[:40]}; 0 for no dilation, "
                         "up to the image's size")
    kernel = int(kernel)
    if kernel < 0:
        raise ValueError(f"kernel must be 0 (no dilation, no band) or more, got {kernel}")
    return kernel + 1 if kernel % 2 == 0 and kernel > 0 else kernel


def _region_array(region_mask) -> np.ndarray:
    """``region_mask > 0`` as uint8 [H, W]; a MASK batch of one ``[1, H, W]`` is accepted."""
    if isinstance(region_mask, torch.Tensor):
        region_mask = region_mask.detach().cpu().numpy()
    region = np.asarray(region_mask)
    if region.ndim == 3 and region.shape[0] == 1:
        region = region[0]
    if region.ndim != 2 or min(region.shape) == 0:
        raise ValueError(f"the region mask must be one [H, W] mask, got shape {tuple(region.shape)}")
    return (region > 0).astype(np.uint8)


def _points(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    points = np.asarray(values, dtype=np.float64)
    if points.ndim == 1 and points.size in (0, 2):
        points = points.reshape(-1, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must be [x, y] pairs, shape [N, 2]; got shape {tuple(points.shape)}")
    for index, point in enumerate(points):
        if not np.isfinite(point).all():
            raise ValueError(f"pair {index + 1}: the {name[:-1]} {point.tolist()} is not a finite [x, y]")
    return points


def _check_targets(targets: np.ndarray, image_hw: tuple, reach: float) -> None:
    """A target far beyond the border would only overflow OpenCV's integer drawing: refuse it instead."""
    height, width = image_hw
    for index, (x, y) in enumerate(targets):
        if not (-reach * width <= x <= (1 + reach) * width and -reach * height <= y <= (1 + reach) * height):
            raise ValueError(f"pair {index + 1}: the target ({x:g}, {y:g}) is more than {reach:g} image "
                             f"width/height beyond the {width}x{height} image; drag within or near the image")


def _fill(contour_xy: np.ndarray, image_hw: tuple) -> np.ndarray:
    """The filled outline as uint8 [H, W] (clipped to the image), drawn by OpenCV as the official code does."""
    mask = np.zeros(image_hw, dtype=np.uint8)
    cv2.drawContours(mask, [contour_xy.reshape(-1, 1, 2)], -1, 1, cv2.FILLED)
    return mask


def _pixels_xy(mask: np.ndarray) -> torch.Tensor:
    """The mask's pixels as float32 ``[x, y]``, rows top to bottom (the order the weighting's references keep)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return torch.zeros((0, 2), dtype=torch.float32)
    top = rows[0]
    ys, xs = np.nonzero(mask[top:rows[-1] + 1])  # the rows that have pixels: same order, less to scan
    return torch.from_numpy(np.stack([xs, ys + top], axis=1).astype(np.float32))


# Below this size integer coordinates keep torch.cdist's float32 arithmetic exact (8 * 1448^2 < 2^24), so
# splitting the rows changes no bit.  Chunks keep the distance matrix small; few of them keep the number of
# torch's parallel sections low (each waits for a free core on a busy machine).
EXACT_COORDINATE = 1448
CHUNK_ROWS = 16384


def _exact(*coordinates: torch.Tensor) -> bool:
    """Whole numbers within EXACT_COORDINATE (checked with numpy: no parallel section for a test)."""
    arrays = [c.numpy() for c in coordinates]
    return all(np.array_equal(a, np.round(a)) and np.abs(a).max(initial=0) <= EXACT_COORDINATE for a in arrays)


def kept_references(count: int, keep: int) -> torch.Tensor:
    """The indices of the ``keep`` references kept of ``count``: evenly by index, as the official code picks them
    (torch's float32 linspace).  Past 2^24 references float32 rounds the last index up to ``count`` or beyond (the
    IndexError of a region of 50 million pixels, e.g. on a 16384 px picture): such indices become the last one."""
    return torch.linspace(0, count - 1, keep).long().clamp_(max=count - 1)


def _idw_rows(points: torch.Tensor, references: torch.Tensor, moves: torch.Tensor,
              settings: InstantDragSettings) -> torch.Tensor:
    nearest, index = torch.topk(torch.cdist(points, references), k=min(settings.neighbours, len(references)),
                                dim=1, largest=False)
    weights = 1.0 / (nearest + settings.eps)
    weights = weights / weights.sum(dim=1, keepdim=True)
    return (points + (weights.unsqueeze(-1) * moves[index]).sum(dim=1)).round().float()


def idw_move(points: torch.Tensor, references: torch.Tensor, moves: torch.Tensor,
             settings: InstantDragSettings = DEFAULTS) -> torch.Tensor:
    """Move float32 ``points`` [N, 2] by the inverse-distance-weighted ``moves`` of their nearest ``references``.

    The k nearest of at most ``max_references`` references (taken evenly by index, as torch's float32 linspace
    picks them) weigh ``1 / (d + eps)``, normalised; the moved points are rounded to whole pixels.  With a single
    reference every point moves by its move exactly, unrounded, as in the official code.  The arithmetic is the
    official code's (torch cdist, topk, float32) so that rounding ties break the same way.
    """
    if len(points) == 0 or len(references) == 0:
        return points
    if len(references) == 1:
        return torch.from_numpy(points.numpy() + moves.numpy())
    if (moves.numpy() == moves[0].numpy()).all() and _exact(moves[:1], points):
        # One whole-pixel move for all: the weights sum to 1 within a few float32 ulps, far from a rounding
        # tie, so the weighted result rounds to exactly this (a one-pair drag's backward map).
        return torch.from_numpy(points.numpy() + moves[0].numpy())
    if len(references) > settings.max_references:
        keep = kept_references(len(references), settings.max_references)
        references, moves = references[keep], moves[keep]
    if len(points) <= CHUNK_ROWS or not _exact(points, references):
        return _idw_rows(points, references, moves, settings)
    chunks = points.tensor_split(-(-len(points) // CHUNK_ROWS))  # near-equal chunks, none of a few rows
    return torch.cat([_idw_rows(rows, references, moves, settings) for rows in chunks])


def _on_region(handles32: np.ndarray, filled: np.ndarray, match_distance: float) -> np.ndarray:
    """Which float32 handles sit (within ``match_distance``) on a pixel of the filled region."""
    height, width = filled.shape
    pixel = np.round(handles32.astype(np.float64))
    close = np.hypot(*(handles32 - pixel).T) < match_distance
    inside = (pixel[:, 0] >= 0) & (pixel[:, 0] < width) & (pixel[:, 1] >= 0) & (pixel[:, 1] < height)
    on = close & inside
    px, py = pixel[on].astype(np.int64).T
    on[on] = filled[py, px] > 0
    return on


def bidirectional_warp(region_mask, handles, targets, kernel: int = DEFAULTS.kernel,
                       image_hw: Optional[tuple] = None, settings: InstantDragSettings = DEFAULTS) -> WarpPlan:
    """Plan the warp of ``region_mask`` [H, W] (nonzero = region) by pairs ``handles[i] -> targets[i]`` ([N, 2]).

    ``kernel`` dilates the uncovered area by a square and draws a band of that thickness along each moved
    outline (even sizes become odd; 0: neither).  ``image_hw``, when given, must be the region's size.  Raises
    ValueError with a sentence naming the problem (and the pair, counted from 1).
    """
    region = _region_array(region_mask)
    hw = region.shape
    if image_hw is not None and tuple(image_hw) != hw:
        raise ValueError(f"the region mask is {hw[1]}x{hw[0]} but the image is {image_hw[1]}x{image_hw[0]}: "
                         "draw the region on the image it moves")
    kernel = odd_kernel(kernel)
    if kernel > max(hw):
        raise ValueError(f"kernel {kernel} is wider than the {hw[1]}x{hw[0]} image")
    handles, targets = _points(handles, "handles"), _points(targets, "targets")
    if len(handles) != len(targets):
        raise ValueError(f"handles and targets differ in number ({len(handles)} and {len(targets)}): give one "
                         "target per handle")
    if len(handles) == 0:
        raise ValueError("no handle->target pairs: place at least one pair with its handle inside the region")
    _check_targets(targets, hw, settings.target_reach)
    if not region.any():
        raise ValueError("the region mask is empty: paint the region to move (nonzero pixels)")

    with limited_threads(settings.threads):
        return _plan(region, handles, targets, kernel, settings)


def _plan(region: np.ndarray, handles: np.ndarray, targets: np.ndarray, kernel: int,
          settings: InstantDragSettings) -> WarpPlan:
    hw = region.shape
    handles32 = torch.from_numpy(handles.astype(np.float32))
    targets32 = torch.from_numpy(targets.astype(np.float32))
    outlines = [c[:, 0, :] for c in cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
                if len(c)]
    regions = [_fill(outline, hw) for outline in outlines]
    members = [_on_region(handles32.numpy(), filled, settings.match_distance) for filled in regions]
    claimed = np.logical_or.reduce(members) if members else np.zeros(len(handles), dtype=bool)
    for index in np.flatnonzero(~claimed):
        px, py = (int(round(value)) for value in handles[index])
        nearby = 0 <= px < hw[1] and 0 <= py < hw[0] and any(filled[py, px] for filled in regions)
        raise unclaimed_handle(index, handles[index], "is not on a whole pixel (handles are matched to region pixels "
                                              "exactly)" if nearby else OFF_REGION)

    sources, destinations = [], []
    uncovered = np.zeros(hw, dtype=bool)  # union of moved regions' sources, then minus their targets
    covered = np.zeros(hw, dtype=bool)
    band = np.zeros(hw, dtype=np.uint8)
    for outline, filled, member in zip(outlines, regions, members):
        if not member.any():
            continue  # a region without a pair stays where it is
        pixels = _pixels_xy(filled)
        handle, moves = handles32[member], targets32[member] - handles32[member]
        moved_outline = idw_move(torch.from_numpy(outline.astype(np.float32)), handle, moves, settings)
        moved_pixels = idw_move(pixels, handle, moves, settings)
        moved_outline = moved_outline.int().numpy()  # truncation, as the official code converts
        landed = _fill(moved_outline, hw)
        if not landed.any():
            continue  # moved entirely off the image
        if kernel:
            cv2.drawContours(band, [moved_outline], -1, 1, kernel)
        target = _pixels_xy(landed)
        back = torch.from_numpy(pixels.numpy() - moved_pixels.numpy())
        source = idw_move(target, moved_pixels, back, settings).numpy()  # the backward map: no holes
        inside = (source[:, 0] >= 0) & (source[:, 0] < hw[1]) & (source[:, 1] >= 0) & (source[:, 1] < hw[0])
        if inside.any():
            sources.append(source[inside])
            destinations.append(target.numpy()[inside])
            uncovered |= filled > 0
            covered |= landed > 0

    moved = np.zeros(hw, dtype=bool)
    if not sources:
        empty = np.zeros((0, 2), dtype=np.int32)
        return WarpPlan(empty, empty.copy(), np.zeros(hw, dtype=bool), moved, kernel)
    source_xy = np.concatenate(sources).astype(np.int32)
    target_xy = np.concatenate(destinations).astype(np.int32)
    moved[target_xy[:, 1], target_xy[:, 0]] = True
    uncovered = (uncovered & ~covered).astype(np.uint8)
    if kernel:
        uncovered = cv2.dilate(uncovered, np.ones((kernel, kernel), dtype=np.uint8))
    return WarpPlan(source_xy, target_xy, (uncovered > 0) | (band > 0), moved, kernel)


def _last_writes(target_xy: np.ndarray, width: int) -> np.ndarray:
    """Indices of the pairs to write so each target pixel is written once, by its last pair."""
    flat = target_xy[:, 1].astype(np.int64) * width + target_xy[:, 0]
    _, first_from_end = np.unique(flat[::-1], return_index=True)
    return np.sort(len(flat) - 1 - first_from_end)


def _image_rows(image):
    """``(rows [H, W, C], put_back)`` for an [H, W, C] or batch-of-one [1, H, W, C] numpy array or tensor."""
    batched = image.ndim == 4
    if batched and image.shape[0] != 1:
        raise ValueError(f"the warp takes one image, got a batch of {image.shape[0]}")
    rows = image[0] if batched else image
    if rows.ndim != 3:
        raise ValueError(f"the image must be [H, W, C] (or [1, H, W, C]), got shape {tuple(image.shape)}")
    return rows, (lambda out: out[None]) if batched else (lambda out: out)


def apply_warp(image, plan: WarpPlan):
    """The warped picture: each target pixel takes its source pixel's colour (nearest copy); the rest unchanged.

    ``image`` is [H, W, C] or [1, H, W, C], float or uint8, numpy or torch; returns a new one of the same kind.
    Sources are read from the unwarped picture.
    """
    rows, put_back = _image_rows(image)
    if tuple(rows.shape[:2]) != plan.image_hw:
        raise ValueError(f"the image is {rows.shape[1]}x{rows.shape[0]} but the warp was planned for "
                         f"{plan.image_hw[1]}x{plan.image_hw[0]}")
    source, target = plan.source_xy, plan.target_xy
    if np.count_nonzero(plan.moved_mask) != len(target):  # regions landed on each other
        keep = _last_writes(target, plan.image_hw[1])
        source, target = source[keep], target[keep]
    out = rows.clone() if isinstance(rows, torch.Tensor) else rows.copy()
    if isinstance(rows, torch.Tensor):
        source, target = torch.from_numpy(source).long(), torch.from_numpy(target).long()
        source, target = source.to(rows.device), target.to(rows.device)
    out[target[:, 1], target[:, 0]] = rows[source[:, 1], source[:, 0]]
    return put_back(out)


def preview_warp(image, plan: WarpPlan, settings: InstantDragSettings = DEFAULTS):
    """The warped picture with the inpaint area drawn as the official UI does: white, a black line every 10 px.

    White is 255 for uint8 pictures and 1.0 for float ones.
    """
    warped = apply_warp(image, plan)
    rows, put_back = _image_rows(warped)
    height, width = plan.image_hw
    step = settings.preview_grid
    grid = np.ones((height, width), dtype=bool)
    grid[::step] = False
    grid[:, ::step] = False
    white = 255 if not (rows.dtype.is_floating_point if isinstance(rows, torch.Tensor)
                        else np.issubdtype(rows.dtype, np.floating)) else 1.0
    if isinstance(rows, torch.Tensor):
        area = torch.from_numpy(plan.inpaint_mask).to(rows.device)
        rows[area] = torch.from_numpy(grid[plan.inpaint_mask]).to(rows.dtype).to(rows.device)[:, None] * white
    else:
        rows[plan.inpaint_mask] = (grid[plan.inpaint_mask] * white).astype(rows.dtype)[:, None]
    return put_back(rows)
