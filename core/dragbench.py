"""DragBench samples (DragDiffusion's benchmark), read without running anything a shared folder could carry.

A sample folder holds ``original_image.png`` and ``meta_data.pkl``: a dict with ``prompt`` (str), ``points``
(``[x, y]`` pixels alternating handle, target) and ``mask`` (``HxW``, 1 = editable; all zero when nothing was
drawn).  A pickle can name any callable to run on load, so :func:`read_meta` uses an unpickler that resolves only
what numpy needs to rebuild arrays and refuses every other global, before anything is constructed.
"""
import io
import json
import pickle
from pathlib import Path

import numpy as np

META_FILE = "meta_data.pkl"
IMAGE_FILE = "original_image.png"
# What ``pickle.dumps`` of the format's values references: numpy's array and scalar reconstructors and types
# (``numpy.core`` before numpy 2, ``numpy._core`` since).  Plain lists, dicts, strings and numbers need no global.
_ALLOWED = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype")}
MAX_META_BYTES = 64 * 2 ** 20


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named something outside the DragBench format; nothing of it was constructed."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise RefusedGlobal(
            f"{META_FILE} refers to {module}.{name}, which a DragBench sample never contains: it is refused "
            "unread (only lists, dicts, strings, numbers and numpy arrays are accepted)")


def read_meta(path) -> dict:
    """``{"prompt": str, "points": [[x, y], ...], "mask": np.ndarray HxW float32}`` from a ``meta_data.pkl``."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) > MAX_META_BYTES:
        raise ValueError(f"{path} is {len(data)} bytes; a DragBench {META_FILE} is far smaller")
    try:
        meta = _RestrictedUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as error:
        raise ValueError(f"{path}: {error}") from None
    except Exception as error:  # truncated or not a pickle at all
        raise ValueError(f"{path} is not a readable {META_FILE} ({type(error).__name__}: {error})") from None
    if not isinstance(meta, dict) or not {"prompt", "points", "mask"} <= set(meta):
        raise ValueError(f"{path} must hold a dict with 'prompt', 'points' and 'mask'")
    prompt, points, mask = meta["prompt"], meta["points"], np.asarray(meta["mask"])
    if not isinstance(prompt, str):
        raise ValueError(f"{path}: 'prompt' must be text, got {type(prompt).__name__}")
    points = [[float(v) for v in np.asarray(p).reshape(-1)] for p in points]
    if not points or len(points) % 2 or any(len(p) != 2 for p in points):
        raise ValueError(f"{path}: 'points' must alternate handle and target [x, y] points, got {len(points)}")
    if mask.ndim != 2:
        raise ValueError(f"{path}: 'mask' must be HxW, got shape {mask.shape}")
    return {"prompt": prompt, "points": points, "mask": (mask > 0).astype(np.float32)}


def drag_points_json(points) -> str:
    """The alternating DragBench points as the drag nodes' ``drag_points`` JSON."""
    return json.dumps([{"handle": list(points[i]), "target": list(points[i + 1])} for i in range(0, len(points), 2)])
