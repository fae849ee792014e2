"""Where LoRA Identity Tune saves, what it may replace, and how it knows a saved file is this training's result.

A saved file records a digest of everything the training depends on (``training_inputs`` in its metadata).  When the
same training is queued again (ComfyUI's cache evicted, or only ``save_name`` changed), the node loads the file (or
its in-memory copy) instead of training.  It replaces only files it wrote itself, and only with ``overwrite`` on.
"""
import hashlib
import json
import os
import re
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import torch

PACK_FOLDER = "comfyui-drag-diffedit"
SUFFIX = ".safetensors"
TRAINED_BY = "comfyui-drag-diffedit LoRA Identity Tune"
_NAME = re.compile(r"[A-Za-z0-9 _.\-/]+")
# Well inside every filesystem's limits once the folder, the suffix and the temp file's affixes are added.
MAX_PART_CHARS, MAX_NAME_CHARS, MAX_DEPTH = 100, 200, 8
STALE_TEMP_SECONDS = 3600  # a temp file this old belongs to a save that was killed
_SAMPLES_PER_TENSOR = 256
UNET_PREFIX = "diffusion_model."
_recent: "OrderedDict[str, dict]" = OrderedDict()  # digest -> state dict: a save_name change does not retrain
_RECENT_MAX = 4


def checked_save_name(save_name) -> Optional[str]:
    """The name without suffix, or None for "do not save"; ValueError for a name no folder may hold.

    Needs no file system: the node runs it at queue time."""
    if not isinstance(save_name, str):
        raise ValueError(f"save_name must be text, got {type(save_name).__name__}")
    name = save_name.strip()
    if name.endswith(SUFFIX):
        name = name[:-len(SUFFIX)]
    if not name:
        return None
    parts = name.split("/")
    if (not _NAME.fullmatch(name) or name.startswith("/")
            or any(part.strip() in ("", ".", "..") for part in parts)):
        raise ValueError(f"save_name {_short(save_name)} is not a plain relative name: use letters, digits, spaces, "
                         "'_', '-', '.' and '/' for subfolders (no '..', no absolute paths, no backslashes)")
    if len(name) > MAX_NAME_CHARS or max(map(len, parts)) > MAX_PART_CHARS or len(parts) > MAX_DEPTH:
        raise ValueError(f"save_name {_short(save_name)} is too long: at most {MAX_NAME_CHARS} characters, "
                         f"{MAX_PART_CHARS} per folder or file name, and {MAX_DEPTH} levels")
    return name


def _short(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:60]) + "..."


def save_target(root: Path, save_name: str) -> Optional[tuple[Path, str]]:
    """``(file path, name as LoraLoader lists it)`` under ``root`` (loras/comfyui-drag-diffedit); None: no save.

    Checks what the file system says before any training: nothing in the way of the file or its folders."""
    name = checked_save_name(save_name)
    if name is None:
        return None
    root = root.resolve()
    path = (root / (name + SUFFIX)).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"save_name {_short(save_name)} leads outside the loras/{PACK_FOLDER} folder")
    if path.is_dir():
        raise ValueError(f"loras/{PACK_FOLDER}/{name}{SUFFIX} is a folder: choose another save_name")
    for parent in path.relative_to(root).parents:
        if (root / parent).exists() and not (root / parent).is_dir():
            raise ValueError(f"loras/{PACK_FOLDER}/{parent} is a file, so it cannot hold {name}{SUFFIX}: "
                             "choose another save_name")
    return path, f"{PACK_FOLDER}/{name}{SUFFIX}"


def _update(digest, tensor: torch.Tensor) -> None:
    flat = tensor.detach().reshape(-1)
    stride = max(1, flat.numel() // _SAMPLES_PER_TENSOR)
    sample = flat[::stride][:_SAMPLES_PER_TENSOR].float().cpu().contiguous()
    digest.update(repr((tuple(tensor.shape), str(tensor.dtype))).encode())
    digest.update(sample.numpy().tobytes())


def _tensors(value, depth=0):
    """The tensors inside a patch entry (tuples, lists, LoRA adapter objects with ``weights``)."""
    if depth > 4:
        return
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item, depth + 1)
    elif hasattr(value, "weights"):
        yield from _tensors(value.weights, depth + 1)


def training_digest(model, signature: dict, conditioning: list, samples: torch.Tensor, settings: dict) -> str:
    """A digest of what the LoRA depends on: the model (a strided sample of every weight and weight patch, its
    sampling), the prompt's tensors, the latent and the settings.  ``save_name``/``overwrite`` are not in it."""
    import comfy.model_management

    # Loaded by this patcher, the module holds its own patches (another clone's are taken out first), and
    # ``get_key_patches`` answers each weight as it was before them, followed by the patches: digest both.
    comfy.model_management.load_models_gpu([model])
    key_patches = model.get_key_patches(UNET_PREFIX)
    digest = hashlib.sha256()
    digest.update(json.dumps([signature, settings], sort_keys=True).encode())
    for key in sorted(key_patches):
        digest.update(key.removeprefix(UNET_PREFIX).encode())
        _update(digest, key_patches[key][0][0])  # (original weight, its convert function)
    for key in sorted(key for key, entry in key_patches.items() if len(entry) > 1):
        digest.update(key.encode())
        for patch in key_patches[key][1:]:
            digest.update(repr([p for p in patch if isinstance(p, (int, float, str))]).encode())
            for tensor in _tensors(patch):
                _update(digest, tensor)
    for tensor, extra in conditioning:
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        for key in sorted(extra):
            if isinstance(extra[key], torch.Tensor):
                digest.update(key.encode() + extra[key].detach().float().cpu().contiguous().numpy().tobytes())
    digest.update(samples.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def read_metadata(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except Exception:  # not a safetensors file: someone else's, never ours
        return {}


def existing_result(path: Path, digest: str, overwrite: bool) -> Optional[dict]:
    """The saved LoRA if ``path`` holds this very training's result; None if there is nothing (or something to
    replace).  Raises, before any training, when the file there must not be replaced."""
    if not path.exists():
        return None
    metadata = read_metadata(path)
    ours = metadata.get("trained_by") == TRAINED_BY
    if ours and metadata.get("training_inputs") == digest:
        from safetensors.torch import load_file

        return load_file(str(path))
    if not ours:
        raise ValueError(f"{path.name} already exists in {path.parent} and was not written by LoRA Identity Tune: "
                         "it is never replaced; choose another save_name")
    if not overwrite:
        raise ValueError(f"{path.name} already exists and holds a LoRA trained from other inputs (another image, "
                         "prompt, model or setting): choose another save_name, or enable overwrite to replace it")
    return None


def remember(digest: str, state: dict) -> None:
    _recent[digest] = state
    _recent.move_to_end(digest)
    while len(_recent) > _RECENT_MAX:
        _recent.popitem(last=False)


def recalled(digest: str) -> Optional[dict]:
    return _recent.get(digest)


def save_lora(state: dict, path: Path, overwrite: bool, metadata: dict) -> None:
    """Write through a temp file in the same folder, so the target is either untouched or complete."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=SUFFIX + ".tmp")
    os.close(handle)
    try:
        save_file(state, temp, metadata=dict(metadata, trained_by=TRAINED_BY))
        if path.exists() and not overwrite:  # appeared while we trained
            raise ValueError(f"{path} appeared during training: enable overwrite to replace it")
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def remove_stale_temp_files(folder: Path) -> None:
    """Temp files of saves that were killed (a save takes seconds; these are an hour old)."""
    now = time.time()
    for temp in folder.glob("." + "*" + SUFFIX + ".tmp"):
        try:
            if now - temp.stat().st_mtime > STALE_TEMP_SECONDS:
                temp.unlink()
        except OSError:
            pass
