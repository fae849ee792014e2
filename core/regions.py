"""A painted region, as the point editor stores it: brush and eraser strokes, and the mask they make.

The editor writes JSON to a node's hidden ``region`` text input::

    {"size": [W, H], "strokes": [{"radius": r, "points": [[x, y], ...]}, {"erase": true, "radius": r, ...}]}

in pixels of the ``W x H`` picture it showed (the node's IMAGE), rounded to 0.1 px.  Strokes, not pixels, keep a
region a few KB and independent of resolution: :func:`rasterize` draws them at any size, scaling coordinates per
axis and the radius by the geometric mean of the two scales.  A pixel belongs to a stroke when its centre lies
within ``radius`` of the stroke's polyline (a single point is a disc); strokes apply in order, a brush stroke
setting its pixels, an eraser stroke clearing them.  An empty text (or no strokes) is no region.

Two checks, as for ``drag_points`` (:mod:`core.points`): :func:`read_region` needs only the text (queue time);
:func:`rasterize` gives the mask at the image's size.  :func:`certainly_outside` tells, without drawing, which
pixels lie certainly outside every filled outline of the painted region (the queue-time check of the handles).
No ComfyUI import: the nodes, the preview route and the tests share it.

The limits below are the only copy: the nodes send them to the point editor in their ``region`` input's
definition (:func:`editor_limits`), so the editor refuses what would be refused here before it is written.
"""
import json
import math
from dataclasses import dataclass
from itertools import groupby

import numpy as np

from .capsules import candidate_spans, reach, row_range, spans, within

FORMAT = '{"size": [W, H], "strokes": [{"radius": r, "points": [[x, y], ...]}, {"erase": true, ...}]}'
MAX_CHARS = 200_000  # a region is a few KB; a pasted pixel dump is refused
MAX_STROKES = 1_000
MAX_POINTS = 20_000  # over all strokes
MAX_SIZE = 16_384  # pixels per side of the painted picture: ComfyUI's largest image (its MAX_RESOLUTION)
MAX_COORDINATE = 1e6  # far beyond any picture; keeps the numbers and the messages sane
# A stroke's radius, at most this many times the painted picture's longer side: from any point of the picture
# a radius of 1.5 sides already covers all of it, so a larger one only costs.
MAX_RADIUS_SIDES = 2
ECHO_CHARS = 60


def editor_limits() -> dict:
    """The limits as the point editor reads them (JSON; the nodes put them in their ``region`` input)."""
    return {"chars": MAX_CHARS, "strokes": MAX_STROKES, "points": MAX_POINTS, "side": MAX_SIZE,
            "coord": MAX_COORDINATE, "radius_sides": MAX_RADIUS_SIDES}


@dataclass(frozen=True)
class Stroke:
    points: np.ndarray  # [N, 2] float64 [x, y] in pixels of the painted size
    radius: float
    erase: bool = False


@dataclass(frozen=True)
class Region:
    size: tuple  # (W, H) of the picture the strokes were painted on
    strokes: tuple  # Stroke, in painting order

    @property
    def painted(self) -> bool:
        """Whether any brush stroke was made (erasers may still have cleared it all: see :func:`rasterize`)."""
        return any(not stroke.erase for stroke in self.strokes)


def _echo(value) -> str:
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "..."


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or abs(value) > MAX_COORDINATE:
        raise ValueError(f"region: {what} must be a finite number, got {_echo(value)}; expected {FORMAT}")
    return float(value)


def _stroke(data, index: int, max_radius: float) -> Stroke:
    where = f"stroke {index + 1}"
    if not isinstance(data, dict) or not isinstance(data.get("points"), list) or not data["points"]:
        raise ValueError(f"region: {where} must be an object with a non-empty 'points' list, got {_echo(data)}")
    radius = _number(data.get("radius"), f"{where}'s radius")
    if radius <= 0:
        raise ValueError(f"region: {where}'s radius must be above 0, got {radius:g}")
    if radius > max_radius:
        raise ValueError(f"region: {where}'s radius {radius:g} is more than {MAX_RADIUS_SIDES} times the painted "
                         f"picture's longer side ({max_radius:g} px); a smaller brush covers the picture already")
    points = []
    for point in data["points"]:
        if not isinstance(point, list) or len(point) != 2:
            raise ValueError(f"region: {where} has a point {_echo(point)} that is not [x, y]")
        points.append([_number(point[0], f"{where}'s x"), _number(point[1], f"{where}'s y")])
    erase = data.get("erase", False)
    if not isinstance(erase, bool):
        raise ValueError(f"region: {where}'s 'erase' must be true or false, got {_echo(erase)}")
    return Stroke(points=np.asarray(points, dtype=np.float64), radius=radius, erase=erase)


def read_region(text) -> Region:
    """The region in ``text``; ValueError with the fix.  Needs no image (the nodes run it at queue time)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return Region(size=(1, 1), strokes=())
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        raise ValueError(f"region must be the point editor's strokes, at most {MAX_CHARS} characters, {FORMAT}")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError(f"region is not valid JSON; expected {FORMAT} (Clear the region in the editor to start "
                         "again)") from None
    if not isinstance(data, dict) or not isinstance(data.get("strokes"), list) or "size" not in data:
        raise ValueError(f"region must be an object with 'size' and 'strokes'; expected {FORMAT}")
    size = data["size"]
    whole = isinstance(size, list) and len(size) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() and 0 < v <= MAX_SIZE
        for v in size)  # JSON has one number type: 512.0 is 512
    if not whole:
        raise ValueError(f"region: 'size' must be the painted picture's [width, height] in pixels, got {_echo(size)}")
    if len(data["strokes"]) > MAX_STROKES:
        raise ValueError(f"region has {len(data['strokes'])} strokes; at most {MAX_STROKES} are supported")
    max_radius = MAX_RADIUS_SIDES * max(size)
    strokes = tuple(_stroke(stroke, index, max_radius) for index, stroke in enumerate(data["strokes"]))
    if sum(len(stroke.points) for stroke in strokes) > MAX_POINTS:
        raise ValueError(f"region has more than {MAX_POINTS} stroke points; paint it with fewer, longer strokes")
    return Region(size=(int(size[0]), int(size[1])), strokes=strokes)


# ---------------------------------------------------------------------------------------------------------------------
# Drawing: per row, the pixels a segment's capsule holds form an interval (core/capsules.py); a run of strokes of
# one kind is the union of their intervals, merged per row, then added (brush) or taken away (eraser).

SPAN_BUDGET = 1 << 20  # rows of segments computed at a time (memory: a few arrays of this length)
BAND_CELLS = 1 << 22  # pixels filled at a time
FEW_SPANS = 2048  # up to this many spans a slice each is quicker than a running sum over the picture


def _segments(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A polyline's segments as start and end arrays [N, 2]; a single point is one segment of length 0."""
    return (points, points) if len(points) == 1 else (points[:-1], points[1:])


def _scaled(region: Region, image_hw: tuple) -> list:
    """Per stroke ``(paints, a, b, radius)`` in pixels of ``image_hw``: points scale per axis, the radius by the
    geometric mean of the two scales."""
    height, width = image_hw
    scale = np.array([width / region.size[0], height / region.size[1]])
    radius_scale = math.sqrt(scale[0] * scale[1])
    return [(not stroke.erase, *_segments(stroke.points * scale), stroke.radius * radius_scale)
            for stroke in region.strokes]


def _flat(strokes: list) -> tuple:
    """The strokes' segments as flat arrays ``ax, ay, bx, by, radius`` and each segment's stroke index."""
    a = np.concatenate([stroke[1] for stroke in strokes])
    b = np.concatenate([stroke[2] for stroke in strokes])
    counts = [len(stroke[1]) for stroke in strokes]
    radius = np.repeat([stroke[3] for stroke in strokes], counts).astype(np.float64)
    return a[:, 0], a[:, 1], b[:, 0], b[:, 1], radius, np.repeat(np.arange(len(strokes)), counts)


def _covers_all(stroke: tuple, image_hw: tuple) -> bool:
    """Whether one capsule of the stroke holds every pixel centre (capsules are convex: the four corner ones)."""
    height, width = image_hw
    xs = np.array([0.5, width - 0.5, 0.5, width - 0.5])[:, None]
    ys = np.array([0.5, 0.5, height - 0.5, height - 0.5])[:, None]
    _, a, b, radius = stroke
    return bool(within(xs, ys, a[:, 0], a[:, 1], b[:, 0], b[:, 1], radius).all(axis=0).any())


def _merge(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-open flat spans ``[start, stop)`` merged where they overlap or touch; sorted."""
    if not len(starts):
        return starts, stops
    order = np.argsort(starts, kind="stable")
    starts, stops = starts[order], stops[order]
    reached = np.maximum.accumulate(stops)
    first = np.flatnonzero(np.r_[True, starts[1:] > reached[:-1]])
    return starts[first], reached[np.r_[first[1:] - 1, len(starts) - 1]]


def _union(segments: tuple, image_hw: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of every segment's capsule as merged flat spans ``[row * (W + 1) + x0, ... + x1 + 1)``."""
    height, width = image_hw
    ax, ay, bx, by, radius = segments
    top, bottom = row_range(ay, by, radius, height)
    counts = np.maximum(bottom - top + 1, 0)
    ends = np.cumsum(counts)
    starts = stops = np.zeros(0, dtype=np.int64)
    first = 0
    while first < len(counts):
        last = max(first + 1, int(np.searchsorted(ends, ends[first] - counts[first] + SPAN_BUDGET, side="right")))
        chunk = np.arange(first, last)
        segment = np.repeat(chunk, counts[chunk])
        offsets = np.repeat(np.cumsum(counts[chunk]) - counts[chunk], counts[chunk])
        rows = top[segment] + np.arange(len(segment)) - offsets
        x0, x1 = spans(ax[segment], ay[segment], bx[segment], by[segment], radius[segment], rows, width)
        hit = x0 <= x1
        flat = rows[hit] * (width + 1)
        starts, stops = _merge(np.r_[starts, flat + x0[hit]], np.r_[stops, flat + x1[hit] + 1])
        first = last
    return starts, stops


def _subtract(starts, stops, cut_starts, cut_stops) -> tuple[np.ndarray, np.ndarray]:
    """Merged flat spans minus merged flat spans, as merged flat spans."""
    bounds = np.unique(np.r_[starts, stops, cut_starts, cut_stops])  # pieces [bound, next bound) of one state

    def holds(lo, hi):
        index = np.searchsorted(lo, bounds[:-1], side="right") - 1
        return (index >= 0) & (bounds[:-1] < hi[np.maximum(index, 0)])

    if not len(starts) or not len(cut_starts):
        return starts, stops
    kept = np.flatnonzero(holds(starts, stops) & ~holds(cut_starts, cut_stops))
    return _merge(bounds[kept], bounds[kept + 1])


def _draw(image_hw: tuple, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """The bool mask of merged flat spans: span by span when they are few (a brush stroke's few hundred rows),
    else a band of rows at a time by a running sum, whose cost is the picture's size."""
    height, width = image_hw
    stride = width + 1
    mask = np.zeros((height, stride), dtype=bool)
    if len(starts) <= FEW_SPANS:
        flat = mask.reshape(-1)
        for start, stop in zip(starts.tolist(), stops.tolist()):
            flat[start:stop] = True
        return mask[:, :width]
    band = max(1, BAND_CELLS // stride)
    for top in range(0, height, band):
        bottom = min(top + band, height)
        lo, hi = np.searchsorted(starts, [top * stride, bottom * stride])
        steps = np.zeros((bottom - top) * stride, dtype=np.int8)
        steps[starts[lo:hi] - top * stride] = 1  # merged spans neither overlap nor touch: distinct indices
        steps[stops[lo:hi] - top * stride] = -1
        mask[top:bottom] = np.cumsum(steps, dtype=np.int8).reshape(bottom - top, stride)
    return mask[:, :width]


def rasterize(region: Region, image_hw: tuple) -> np.ndarray:
    """The region as a float32 ``[H, W]`` mask (1 = painted) at ``image_hw``; all zeros when it is empty.

    The painted pixels stay merged intervals per row until the end: each run of brush strokes adds the union of
    its capsules' intervals, each run of erasers takes it away.  Cost: one closed-form interval per row each
    segment spans, whatever the radius, and one pass over the picture; a stroke that covers the whole picture
    makes every earlier one moot.
    """
    height, width = image_hw
    strokes = _scaled(region, image_hw)
    starts = stops = np.zeros(0, dtype=np.int64)
    covering = [index for index, stroke in enumerate(strokes) if _covers_all(stroke, image_hw)]
    if covering:
        if strokes[covering[-1]][0]:
            starts = np.arange(height, dtype=np.int64) * (width + 1)
            stops = starts + width
        strokes = strokes[covering[-1] + 1:]
    for paints, run in groupby(strokes, key=lambda stroke: stroke[0]):
        group = _union(_flat(list(run))[:5], image_hw)
        if paints:
            starts, stops = _merge(np.r_[starts, group[0]], np.r_[stops, group[1]])
        else:
            starts, stops = _subtract(starts, stops, *group)
    return _draw(image_hw, starts, stops).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------------
# The queue-time check: which handles lie certainly off the region, decided on the strokes, without drawing

CHECK_BLOCK = 2048  # segments looked at together
RAY_SPANS = 1 << 18  # closed-form intervals the ray test computes at most; pixels left undecided stay in doubt


def _near(centres, lo, hi, radius) -> np.ndarray:
    """``[P, B]``: whether centres (a column) lie within the capsules' extent along one axis (a cheap first cut)."""
    wider = reach(radius)
    return (centres >= np.minimum(lo, hi) - wider) & (centres <= np.maximum(lo, hi) + wider)


def _painted_now(pixels: np.ndarray, segments: tuple, stroke_of: np.ndarray, paints: np.ndarray) -> np.ndarray:
    """Whether each whole pixel ``[x, y]`` is painted at the painted size, exactly as :func:`rasterize` decides: the
    last stroke whose capsule holds its centre is a brush.  Strokes are scanned from the last, so a pixel is done
    with at the first capsule found to hold it."""
    ax, ay, bx, by, radius = segments
    painted = np.zeros(len(pixels), dtype=bool)
    todo = np.arange(len(pixels))
    for end in range(len(stroke_of), 0, -CHECK_BLOCK):
        block = np.arange(max(0, end - CHECK_BLOCK), end)
        cx, cy = pixels[todo, :1] + 0.5, pixels[todo, 1:] + 0.5
        pixel, near = np.nonzero(_near(cx, ax[block], bx[block], radius[block])
                                 & _near(cy, ay[block], by[block], radius[block]))
        segment = block[near]
        held = within(cx[pixel, 0], cy[pixel, 0], ax[segment], ay[segment], bx[segment], by[segment], radius[segment])
        last = np.full(len(todo), -1)
        np.maximum.at(last, pixel[held], segment[held])  # segments are in painting order
        found = last >= 0
        painted[todo[found]] = paints[stroke_of[last[found]]]
        todo = todo[~found]
        if not len(todo):
            break
    return painted


def _reached_along_rows(x, y, segments: tuple, width: int) -> tuple[np.ndarray, int]:
    """``([P, 2], spans)``: whether the capsules may reach pixels of row ``y`` left of ``x`` and right of it
    (closed-form intervals, a hair wide), and how many intervals that took."""
    ax, ay, bx, by, radius = segments
    pixel, segment = np.nonzero(_near(y + 0.5, ay, by, radius))
    x0, x1 = candidate_spans(ax[segment], ay[segment], bx[segment], by[segment], radius[segment], y[pixel, 0], width)
    hit = (x0 <= x1)
    sides = [hit & (x0 < x[pixel, 0]), hit & (x1 > x[pixel, 0])]
    return np.stack([np.bincount(pixel[side], minlength=len(x)) > 0 for side in sides], axis=1), len(segment)


def _rays_clear(pixels: np.ndarray, segments: tuple, size: tuple) -> np.ndarray:
    """Whether, from each pixel, a ray left, right, up or down meets no pixel that the (brush) ``segments`` may
    paint.  A pixel whose four rays are all met is done with; past RAY_SPANS intervals the pixels not decided yet
    count as not clear (a doubt)."""
    width, height = size
    ax, ay, bx, by, radius = segments
    met = np.zeros((len(pixels), 4), dtype=bool)  # left, right, up, down
    todo, spent = np.arange(len(pixels)), 0
    for start in range(0, len(ax), CHECK_BLOCK):
        if not len(todo) or spent > RAY_SPANS:
            return np.zeros(len(pixels), dtype=bool) if len(todo) else ~met.all(axis=1)
        block = slice(start, start + CHECK_BLOCK)
        x, y = (pixels[todo, axis:axis + 1].astype(np.float64) for axis in (0, 1))
        rows, row_spans = _reached_along_rows(x, y, (ax[block], ay[block], bx[block], by[block], radius[block]), width)
        columns, column_spans = _reached_along_rows(y, x, (ay[block], ax[block], by[block], bx[block], radius[block]),
                                                    height)
        met[todo] |= np.concatenate([rows, columns], axis=1)
        spent += row_spans + column_spans
        todo = todo[~met[todo].all(axis=1)]
    return ~met.all(axis=1)


def certainly_outside(region: Region, pixels) -> np.ndarray:
    """Per whole pixel ``[x, y]`` of the painted picture: whether it lies outside every filled outer outline of the
    region as :func:`rasterize` draws it at the painted size, beyond doubt.  The warp moves each connected part's
    filled outline (holes included), so a pixel counts only when it is unpainted and a ray along its row or column
    reaches the border through pixels no brush stroke reaches (erasers are not trusted there: a doubt is left to
    the node).  Such an outline runs through painted pixel centres only, so the ray crosses none.  Costs at most
    pixels times segments cheap tests and a bounded number of intervals, whatever the painted size and the radii."""
    pixels = np.asarray(pixels, dtype=np.int64).reshape(-1, 2)
    strokes = _scaled(region, region.size[::-1])
    if not strokes:
        return np.ones(len(pixels), dtype=bool)
    *segments, stroke_of = _flat(strokes)
    paints = np.array([stroke[0] for stroke in strokes])
    outside = ~_painted_now(pixels, tuple(segments), stroke_of, paints)
    brush = paints[stroke_of]
    if outside.any() and brush.any():
        outside[outside] = _rays_clear(pixels[outside], tuple(values[brush] for values in segments), region.size)
    return outside
