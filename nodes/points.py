"""The drag_points JSON: handle->target pairs in image pixels, as the point editor writes it.

``[{"handle": [x, y], "target": [x, y]}, ...]`` with x to the right and y
down, in pixels of the IMAGE input; the continuous extent ``[0, W] x [0, H]``
is accepted (like the editor's own check).
"""
import json
import math

import torch

FORMAT = '[{"handle": [x, y], "target": [x, y]}, ...] in image pixels'


def _point(value, index: int, field: str) -> list:
    if value is None:
        raise ValueError(f"drag_points: pair {index + 1} has no {field} (unpaired point); expected {FORMAT}")
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise ValueError(f"drag_points: pair {index + 1} {field} must be two finite numbers [x, y], got {value!r}")
    return [float(value[0]), float(value[1])]


def parse_drag_points(text: str, image_hw: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated ``(handles, targets)`` as ``[N, 2]`` float ``[x, y]`` tensors; raises ValueError with the fix."""
    height, width = image_hw
    if not isinstance(text, str) or not text.strip():
        raise ValueError("drag_points is empty: place at least one handle->target pair in the point editor "
                         f"(or send {FORMAT})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"drag_points is not valid JSON ({error.msg} at character {error.pos}); expected {FORMAT}")
    if not isinstance(data, list):
        raise ValueError(f"drag_points must be a JSON list of pairs; expected {FORMAT}")
    if not data:
        raise ValueError("drag_points has no pairs: place at least one handle->target pair in the point editor")
    handles, targets = [], []
    for index, pair in enumerate(data):
        if not isinstance(pair, dict):
            raise ValueError(f"drag_points: pair {index + 1} must be an object {{\"handle\": [x, y], "
                             f"\"target\": [x, y]}}, got {pair!r}")
        handle, target = _point(pair.get("handle"), index, "handle"), _point(pair.get("target"), index, "target")
        for field, (x, y) in (("handle", handle), ("target", target)):
            if not (0 <= x <= width and 0 <= y <= height):
                raise ValueError(f"drag_points: pair {index + 1} {field} ({x:g}, {y:g}) is outside the "
                                 f"{width}x{height} image")
        handles.append(handle)
        targets.append(target)
    return torch.tensor(handles, dtype=torch.float64), torch.tensor(targets, dtype=torch.float64)


def format_drag_points(handles, targets) -> str:
    """The same JSON, coordinates rounded to 0.1 px (as the editor writes them)."""
    pairs = [{"handle": [round(float(hx), 1), round(float(hy), 1)], "target": [round(float(tx), 1), round(float(ty), 1)]}
             for (hx, hy), (tx, ty) in zip(handles.tolist(), targets.tolist())]
    return json.dumps(pairs)
