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
REGION_META_FILE = "meta_data_i4p.pkl"  # optional: a region to move (Inpaint4Drag's evaluation format)
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


def _unpickled(path: Path, keys: set) -> dict:
    data = path.read_bytes()
    if len(data) > MAX_META_BYTES:
        raise ValueError(f"{path} is {len(data)} bytes; a DragBench {path.name} is far smaller")
    try:
        meta = _RestrictedUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as error:
        raise ValueError(f"{path}: {error}") from None
    except Exception as error:  # truncated or not a pickle at all
        raise ValueError(f"{path} is not a readable {path.name} ({type(error).__name__}: {error})") from None
    if not isinstance(meta, dict) or not keys <= set(meta):
        raise ValueError(f"{path} must hold a dict with {', '.join(repr(k) for k in sorted(keys))}")
    return meta


def read_meta(path) -> dict:
    """``{"prompt": str, "points": [[x, y], ...], "mask": np.ndarray HxW float32}`` from a ``meta_data.pkl``."""
    path = Path(path)
    meta = _unpickled(path, {"prompt", "points", "mask"})
    prompt, points, mask = meta["prompt"], meta["points"], np.asarray(meta["mask"])
    if not isinstance(prompt, str):
        raise ValueError(f"{path}: 'prompt' must be text, got {type(prompt).__name__}")
    points = [[float(v) for v in np.asarray(p).reshape(-1)] for p in points]
    if not points or len(points) % 2 or any(len(p) != 2 for p in points):
        raise ValueError(f"{path}: 'points' must alternate handle and target [x, y] points, got {len(points)}")
    if mask.ndim != 2:
        raise ValueError(f"{path}: 'mask' must be HxW, got shape {mask.shape}")
    return {"prompt": prompt, "points": points, "mask": (mask > 0).astype(np.float32)}


def read_region_mask(path) -> np.ndarray:
    """The region mask (HxW float32, 1 = the region to move) of a ``meta_data_i4p.pkl``: the region annotations
    Inpaint4Drag evaluates with (RegionDrag's DragBench-SR/-DR), beside a sample's ``meta_data.pkl``."""
    path = Path(path)
    mask = np.asarray(_unpickled(path, {"mask"})["mask"])
    if mask.ndim != 2:
        raise ValueError(f"{path}: 'mask' must be HxW, got shape {mask.shape}")
    return (mask > 0).astype(np.float32)


def drag_points_json(points) -> str:
    """The alternating DragBench points as the drag nodes' ``drag_points`` JSON."""
    return json.dumps([{"handle": list(points[i]), "target": list(points[i + 1])} for i in range(0, len(points), 2)])


# ---------------------------------------------------------------------------------------------------------------------
# Mean Distance (DragBench's point matching, run_eval_point_matching.py): where did the handle's content go?

def match_points(source_features, edited_features, handles_xy, image_hw):
    """For each handle, the pixel of the edited image whose feature is most cosine-similar to the handle's feature
    in the source image, searched over the whole image (no window), as the protocol does.

    ``*_features``: ``[C,h,w]`` maps (e.g. DIFT features) upsampled bilinearly to ``image_hw`` here;
    ``handles_xy``: ``[[x, y], ...]`` pixels.  Returns ``[[x, y], ...]`` integer pixels."""
    import torch
    import torch.nn.functional as F

    def full(features):
        return F.interpolate(torch.as_tensor(features).float()[None], size=tuple(image_hw), mode="bilinear")[0]

    source, edited = full(source_features), full(edited_features)
    flat = F.normalize(edited.reshape(edited.shape[0], -1), dim=0)  # [C, H*W]
    height, width = image_hw
    found = []
    for x, y in handles_xy:
        # points may lie on the image's far edges (x = W, y = H): read the last pixel there
        row, col = min(int(round(float(y))), height - 1), min(int(round(float(x))), width - 1)
        query = F.normalize(source[:, row, col], dim=0)
        best = int((query @ flat).argmax())
        found.append([best % width, best // width])
    return found


def mean_distance(matched_xy, targets_xy) -> tuple[list, float]:
    """Distances in pixels from each matched point to its target, and their mean (over all pairs)."""
    distances = [float(np.hypot(mx - tx, my - ty)) for (mx, my), (tx, ty) in zip(matched_xy, targets_xy)]
    return distances, float(np.mean(distances)) if distances else float("nan")


def dift_features(features, latent, sigma: float, ensemble: int = 8, seed: int = 42):
    """DIFT features of one encoded image, as DragBench's point matching computes them: the latent noised to
    ``sigma`` with ``ensemble`` noise draws, one truncated forward each, the decoder features averaged.

    ``features(x, sigma_batch, full)`` is a :class:`core.drag_model.DragModel`'s ``features`` (the capture set to
    the protocol's block); ``latent`` ``[1,C,h,w]`` in sigma space.  The noise comes from a CPU generator seeded
    with ``seed`` for each image, so an unchanged image keeps its features.  Returns ``[C',h',w']``."""
    import torch

    from .ddim import batch_sigma

    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((ensemble, *latent.shape[1:]), generator=generator).to(latent)
    x = latent.expand(ensemble, -1, -1, -1) + sigma * noise
    with torch.no_grad():
        _, feats = features(x, batch_sigma(sigma, x), False)
    return feats.float().mean(0)


# ---------------------------------------------------------------------------------------------------------------------
# Image Fidelity (run_eval_similarity.py): 1 - LPIPS between the original and the edited image

def image_fidelity(distance, original, edited) -> float:
    """``1 - distance(a, b)`` for IMAGE rows ``[1,H,W,3]`` in 0..1, prepared as the protocol prepares them: the
    edited image resized to the original's size, both mapped to [-1, 1] and resized to 224x224 (bilinear; a
    non-square picture is squashed).  ``distance`` is an LPIPS module (AlexNet, as the protocol)."""
    import torch
    import torch.nn.functional as F

    def prepare(image, size):
        x = image[:1, ..., :3].movedim(-1, 1).float() * 2 - 1
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False) if tuple(x.shape[-2:]) != size else x

    size = tuple(original.shape[1:3])
    a = F.interpolate(prepare(original, size), size=(224, 224), mode="bilinear", align_corners=False)
    b = F.interpolate(prepare(edited, size), size=(224, 224), mode="bilinear", align_corners=False)
    with torch.no_grad():
        return 1.0 - float(distance(a, b).reshape(-1)[0])
