"""The drag_points JSON: handle->target pairs in image pixels, as the point editor writes it.

``[{"handle": [x, y], "target": [x, y]}, ...]`` with x to the right and y
down, in pixels of the IMAGE input; the continuous extent ``[0, W] x [0, H]``
is accepted (like the editor's own check).

Two checks: ``read_drag_points`` needs only the text (the node runs it at queue
time, before anything is computed); ``parse_drag_points`` adds the image size,
known only when the node runs.  No ComfyUI import: the demo and tests use it too.
"""
import json

import torch

FORMAT = '[{"handle": [x, y], "target": [x, y]}, ...] in image pixels'
# Each pair adds a supervised patch and a tracking window per drag step; a drag uses a handful.
MAX_PAIRS = 100
MAX_CHARS = 20_000  # the editor writes ~50 characters a pair
MAX_COORDINATE = 1e6  # far beyond any image; keeps float conversion and the messages sane
ECHO_CHARS = 60  # how much of a bad value a message repeats


def _echo(value) -> str:
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "..."


def _point(value, index: int, field: str) -> list:
    if value is None:
        raise ValueError(f"drag_points: pair {index + 1} has no {field} (unpaired point); expected {FORMAT}")
    numbers = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not numbers or not all(abs(v) <= MAX_COORDINATE for v in value):  # also refuses NaN, inf, 10**4000
        raise ValueError(f"drag_points: pair {index + 1} {field} must be two finite numbers [x, y] in image "
                         f"pixels, got {_echo(value)}")
    return [float(value[0]), float(value[1])]


def read_drag_points(text) -> tuple[list, list]:
    """``(handles, targets)`` as lists of ``[x, y]``; raises ValueError with the fix.  Needs no image."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("drag_points is empty: place at least one handle->target pair in the point editor "
                         f"(or send {FORMAT})")
    if len(text) > MAX_CHARS:
        raise ValueError(f"drag_points is {len(text)} characters long (at most {MAX_CHARS}): send at most "
                         f"{MAX_PAIRS} pairs, {FORMAT}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"drag_points is not valid JSON ({error.msg} at character {error.pos}); "
                         f"expected {FORMAT}") from None
    except (ValueError, RecursionError):  # a number too long to read, or nesting deeper than Python's stack
        raise ValueError(f"drag_points is not a list of pairs (nested too deeply or a number too long); "
                         f"expected {FORMAT}") from None
    if not isinstance(data, list):
        raise ValueError(f"drag_points must be a JSON list of pairs; expected {FORMAT}")
    if not data:
        raise ValueError("drag_points has no pairs: place at least one handle->target pair in the point editor")
    if len(data) > MAX_PAIRS:
        raise ValueError(f"drag_points has {len(data)} pairs; at most {MAX_PAIRS} are supported")
    handles, targets = [], []
    for index, pair in enumerate(data):
        if not isinstance(pair, dict):
            raise ValueError(f"drag_points: pair {index + 1} must be an object {{\"handle\": [x, y], "
                             f"\"target\": [x, y]}}, got {_echo(pair)}")
        handles.append(_point(pair.get("handle"), index, "handle"))
        targets.append(_point(pair.get("target"), index, "target"))
        for field, (x, y) in (("handle", handles[-1]), ("target", targets[-1])):
            if x < 0 or y < 0:
                raise ValueError(f"drag_points: pair {index + 1} {field} ({x:g}, {y:g}) is negative: points are "
                                 "image pixels from the top-left corner")
    return handles, targets


def parse_drag_points(text, image_hw: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated ``(handles, targets)`` as ``[N, 2]`` float ``[x, y]`` tensors inside a ``(height, width)`` image."""
    height, width = image_hw
    handles, targets = read_drag_points(text)
    for index, pair in enumerate(zip(handles, targets)):
        for field, (x, y) in zip(("handle", "target"), pair):
            if not (x <= width and y <= height):
                raise ValueError(f"drag_points: pair {index + 1} {field} ({x:g}, {y:g}) is outside the "
                                 f"{width}x{height} image")
    return torch.tensor(handles, dtype=torch.float64), torch.tensor(targets, dtype=torch.float64)


def format_drag_points(handles, targets) -> str:
    """The same JSON, coordinates rounded to 0.1 px (as the editor writes them)."""
    pairs = [{"handle": [round(float(hx), 1), round(float(hy), 1)],
              "target": [round(float(tx), 1), round(float(ty), 1)]}
             for (hx, hy), (tx, ty) in zip(handles.tolist(), targets.tolist())]
    return json.dumps(pairs)
