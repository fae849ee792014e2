"""A painted region, as the point editor stores it: brush and eraser strokes, and the mask they make.

The editor writes JSON to a node's hidden ``region`` text input::

    {"size": [W, H], "strokes": [{"radius": r, "points": [[x, y], ...]}, {"erase": true, "radius": r, ...}]}

in pixels of the ``W x H`` picture it showed (the node's IMAGE), rounded to 0.1 px.  Strokes, not pixels, keep a
region a few KB and independent of resolution: :func:`rasterize` draws them at any size, scaling coordinates per
axis and the radius by the geometric mean of the two scales.  A pixel belongs to a stroke when its centre lies
within ``radius`` of the stroke's polyline (a single point is a disc); strokes apply in order, a brush stroke
setting its pixels, an eraser stroke clearing them.  An empty text (or no strokes) is no region.

Two checks, as for ``drag_points`` (:mod:`core.points`): :func:`read_region` needs only the text (queue time);
:func:`rasterize` gives the mask at the image's size.  No ComfyUI import: the nodes, the preview route and the
tests share it.
"""
import json
import math
from dataclasses import dataclass

import numpy as np

FORMAT = '{"size": [W, H], "strokes": [{"radius": r, "points": [[x, y], ...]}, {"erase": true, ...}]}'
MAX_CHARS = 200_000  # a region is a few KB; a pasted pixel dump is refused
MAX_STROKES = 1_000
MAX_POINTS = 20_000  # over all strokes
MAX_SIZE = 16_384  # pixels per side of the picture the strokes were painted on
ECHO_CHARS = 60


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
            or abs(value) > 1e6:
        raise ValueError(f"region: {what} must be a finite number, got {_echo(value)}; expected {FORMAT}")
    return float(value)


def _stroke(data, index: int) -> Stroke:
    where = f"stroke {index + 1}"
    if not isinstance(data, dict) or not isinstance(data.get("points"), list) or not data["points"]:
        raise ValueError(f"region: {where} must be an object with a non-empty 'points' list, got {_echo(data)}")
    radius = _number(data.get("radius"), f"{where}'s radius")
    if radius <= 0:
        raise ValueError(f"region: {where}'s radius must be above 0, got {radius:g}")
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
    strokes = tuple(_stroke(stroke, index) for index, stroke in enumerate(data["strokes"]))
    if sum(len(stroke.points) for stroke in strokes) > MAX_POINTS:
        raise ValueError(f"region has more than {MAX_POINTS} stroke points; paint it with fewer, longer strokes")
    return Region(size=(int(size[0]), int(size[1])), strokes=strokes)


def _segment_distance(px: np.ndarray, py: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from points (px, py) to the segment a-b (a point when a == b)."""
    d = b - a
    length2 = float(d @ d)
    t = 0.0 if length2 == 0 else np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / length2, 0.0, 1.0)
    return np.hypot(px - (a[0] + t * d[0]), py - (a[1] + t * d[1]))


def _draw(mask: np.ndarray, stroke: Stroke, scale: np.ndarray, radius: float) -> None:
    points = stroke.points * scale
    height, width = mask.shape
    for a, b in zip(points, points[1:] if len(points) > 1 else points):
        # only the pixels around this segment: their centres within the radius of it
        left = max(0, int(np.floor(min(a[0], b[0]) - radius)))
        right = min(width, int(np.ceil(max(a[0], b[0]) + radius)) + 1)
        top = max(0, int(np.floor(min(a[1], b[1]) - radius)))
        bottom = min(height, int(np.ceil(max(a[1], b[1]) + radius)) + 1)
        if left >= right or top >= bottom:
            continue
        ys, xs = np.mgrid[top:bottom, left:right]
        inside = _segment_distance(xs + 0.5, ys + 0.5, a, b) <= radius
        mask[top:bottom, left:right][inside] = not stroke.erase


def rasterize(region: Region, image_hw: tuple) -> np.ndarray:
    """The region as a float32 ``[H, W]`` mask (1 = painted) at ``image_hw``; all zeros when it is empty."""
    height, width = image_hw
    mask = np.zeros((height, width), dtype=bool)
    scale = np.array([width / region.size[0], height / region.size[1]])
    radius_scale = math.sqrt(scale[0] * scale[1])
    for stroke in region.strokes:
        _draw(mask, stroke, scale, stroke.radius * radius_scale)
    return mask.astype(np.float32)

