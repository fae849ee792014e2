"""Which pixel centres lie within a radius of a segment (a "capsule": the segment grown by the radius).

A painted stroke is a chain of capsules (:mod:`core.regions`).  Along one row of pixel centres a capsule is an
interval, the union of three: the two end discs and the band beside the segment, each in closed form.  Drawing
intervals costs one computation per row a segment spans, whatever its radius, where testing every pixel near it
costs the radius squared.  Floating point can move a closed-form end by a hair, so the ends are then settled by
the definition itself, :func:`within`, and the interval holds exactly the pixels :func:`within` accepts.

Everything works on numpy arrays of equal length (one entry per segment and row), float64, in pixels with
x right and y down; pixel ``(col, row)`` has its centre at ``(col + 0.5, row + 0.5)``.
"""
import numpy as np

# The closed form runs with the radius a hair larger, so that its interval contains every pixel that the exact
# test accepts (ties and float error included); the exact test then trims the ends.
REACH_SLACK = 1e-9


def within(px, py, ax, ay, bx, by, radius) -> np.ndarray:
    """Whether points (px, py) lie within ``radius`` of the segment a-b (a point when a == b): the definition."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(length2 > 0, np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0), 0.0)
    return np.hypot(px - (ax + t * dx), py - (ay + t * dy)) <= radius


def reach(radius):
    """The radius the closed form uses: a hair larger than ``radius``."""
    return radius * (1 + REACH_SLACK) + REACH_SLACK


def _disc(cx, cy, radius, row_y):
    """[lo, hi] in x of the disc at (cx, cy) on the line y = row_y; lo > hi when they miss."""
    half2 = radius * radius - (row_y - cy) ** 2
    half = np.sqrt(np.maximum(half2, 0.0))
    hit = half2 >= 0
    return np.where(hit, cx - half, np.inf), np.where(hit, cx + half, -np.inf)


def _slab(numerator_lo, numerator_hi, denominator, holds_when_flat):
    """``{u: numerator_lo <= u * denominator <= numerator_hi}`` as [lo, hi]; where the denominator is 0 the
    condition does not depend on u: everything when ``holds_when_flat``, nothing otherwise."""
    flat = denominator == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        first, second = numerator_lo / denominator, numerator_hi / denominator
    lo = np.where(flat, np.where(holds_when_flat, -np.inf, np.inf), np.minimum(first, second))
    hi = np.where(flat, np.where(holds_when_flat, np.inf, -np.inf), np.maximum(first, second))
    return lo, hi


def _band(ax, ay, bx, by, radius, row_y):
    """[lo, hi] in x, on the line y = row_y, of the points that project onto the segment (0 <= t <= 1) and lie
    within ``radius`` of its line; empty for a zero-length segment."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    width = radius * np.sqrt(length2)
    v = row_y - ay
    # with u = x - ax: the projection 0 <= u dx + v dy <= length2, the distance |u dy - v dx| <= radius |d|
    t_lo, t_hi = _slab(-v * dy, length2 - v * dy, dx, (0 <= v * dy) & (v * dy <= length2))
    d_lo, d_hi = _slab(v * dx - width, v * dx + width, dy, np.abs(v * dx) <= width)
    lo, hi = ax + np.maximum(t_lo, d_lo), ax + np.minimum(t_hi, d_hi)
    empty = (length2 == 0) | (lo > hi)
    return np.where(empty, np.inf, lo), np.where(empty, -np.inf, hi)


def candidate_spans(ax, ay, bx, by, radius, rows, width: int):
    """``(x0, x1)`` int64, pixel columns of ``rows`` whose centres lie within a hair more than ``radius`` of the
    segment, clipped to ``[0, width - 1]`` (x0 > x1: none).  A superset of the exact pixels, by a hair."""
    row_y = rows + 0.5
    wider = reach(radius)
    pieces = [_disc(ax, ay, wider, row_y), _disc(bx, by, wider, row_y), _band(ax, ay, bx, by, wider, row_y)]
    lo = np.minimum.reduce([piece[0] for piece in pieces])
    hi = np.maximum.reduce([piece[1] for piece in pieces])
    x0 = np.clip(np.ceil(lo - 0.5), 0, width)  # clipped as floats: huge coordinates never overflow an int
    x1 = np.clip(np.floor(hi - 0.5), -1, width - 1)
    return x0.astype(np.int64), x1.astype(np.int64)


def _settle(ends, others, step: int, limit: int, accepts) -> None:
    """Move ``ends`` (x0 with step +1, x1 with step -1) inward past pixels ``accepts`` refuses, then outward over
    pixels it accepts, up to ``limit``; ``others`` are the opposite ends."""
    todo = np.flatnonzero((ends - others) * step <= 0)
    while todo.size:  # inward: a hair of candidate beyond the set, usually one step at most
        todo = todo[~accepts(todo, ends[todo])]
        ends[todo] += step
        todo = todo[(ends[todo] - others[todo]) * step <= 0]
    todo = np.flatnonzero(((ends - others) * step <= 0) & (ends != limit))
    while todo.size:  # outward: only where float error made the closed form short
        todo = todo[accepts(todo, ends[todo] - step)]
        ends[todo] -= step
        todo = todo[ends[todo] != limit]


def spans(ax, ay, bx, by, radius, rows, width: int):
    """``(x0, x1)`` int64: the pixel columns of ``rows`` whose centres lie within ``radius`` of the segment a-b,
    exactly as :func:`within` decides, clipped to ``[0, width - 1]``; x0 > x1 where there are none."""
    x0, x1 = candidate_spans(ax, ay, bx, by, radius, rows, width)
    row_y = rows + 0.5

    def accepts(index, columns):
        return within(columns + 0.5, row_y[index], ax[index], ay[index], bx[index], by[index], radius[index])

    _settle(x0, x1, +1, 0, accepts)
    _settle(x1, x0, -1, width - 1, accepts)
    return x0, x1


def row_range(ay, by, radius, height: int):
    """``(top, bottom)`` int64: the rows a segment's capsule may touch (bottom inclusive; top > bottom: none)."""
    wider = reach(radius)
    top = np.clip(np.ceil(np.minimum(ay, by) - wider - 0.5) - 1, 0, height)
    bottom = np.clip(np.floor(np.maximum(ay, by) + wider - 0.5) + 1, -1, height - 1)
    return top.astype(np.int64), bottom.astype(np.int64)
