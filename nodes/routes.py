"""The pack's HTTP routes: the instant drag's live preview, and the server's peak memory.

``POST /drag_edit/region_warp_preview`` takes ``{"image": data URL (PNG or JPEG), "drag_points", "region",
"kernel"}`` as the point editor has them and answers ``{"preview": JPEG data URL}``, the warped picture with the
area to inpaint drawn as Inpaint4Drag's UI does, computed by the same core function as Drag Region Warp; bad input
answers 400 ``{"error": sentence}``.

``POST /drag_edit/peak_memory/reset`` starts a new peak; ``GET /drag_edit/peak_memory`` answers
``{"device", "peak_bytes", "measures"}``, the peak since that reset as :mod:`core.memory` counts it (null where
it cannot be measured).  A server runs one prompt at a time, so a reset before queueing and a read after it give
that prompt's peak; the DragBench runner reads it per sample.
"""
import asyncio
import base64
import io
from dataclasses import replace

import numpy as np
from aiohttp import web
from PIL import Image

from ..core.instant_drag import preview
from ..core.memory import peak_bytes, reset_peak
from ..core.settings import INSTANT_DRAG

PREFIX = "/drag_edit/peak_memory"
PREVIEW = "/drag_edit/region_warp_preview"
MAX_PREVIEW_BYTES = 32 * 2 ** 20  # a 4K PNG fits
MAX_PREVIEW_SIDE = 4096


def _device():
    import comfy.model_management

    return comfy.model_management.get_torch_device()


def _answer(device, reset: bool) -> web.Response:
    """The peak as JSON; ``peak_bytes`` is null where it cannot be measured (e.g. a CPU without Linux's /proc)."""
    if device.type == "cuda":
        measures = "torch.cuda.max_memory_allocated"
    elif device.type == "cpu":
        measures = "peak resident set (VmHWM)"
    else:
        return web.json_response({"device": str(device), "peak_bytes": None,
                                  "measures": f"not measured on {device.type}"})
    try:
        if reset:
            reset_peak(device)
        peak = peak_bytes(device)
    except (OSError, RuntimeError) as error:
        return web.json_response({"device": str(device), "peak_bytes": None, "measures": f"not measured: {error}"})
    return web.json_response({"device": str(device), "peak_bytes": peak, "measures": measures})


async def _read(request: web.Request) -> web.Response:
    return _answer(_device(), reset=False)


async def _reset(request: web.Request) -> web.Response:
    return _answer(_device(), reset=True)


def _decode_picture(url) -> np.ndarray:
    if not isinstance(url, str) or not url.startswith("data:image/") or "," not in url:
        raise ValueError("image must be the picture as a data URL (data:image/png;base64,...)")
    data = base64.b64decode(url.split(",", 1)[1], validate=False)
    with Image.open(io.BytesIO(data)) as picture:
        if max(picture.size) > MAX_PREVIEW_SIDE:
            raise ValueError(f"the picture is {picture.size[0]}x{picture.size[1]}; previews go up to "
                             f"{MAX_PREVIEW_SIDE} px a side")
        return np.asarray(picture.convert("RGB"))


def _warp_preview(body: dict) -> dict:
    picture = _decode_picture(body.get("image"))
    kernel = body.get("kernel", INSTANT_DRAG.warp.kernel)
    if isinstance(kernel, bool) or not isinstance(kernel, int):
        raise ValueError(f"kernel must be a whole number of pixels, got {str(kernel)[:40]}")
    shown = preview(picture, body.get("drag_points"), body.get("region"), replace(INSTANT_DRAG.warp, kernel=kernel))
    encoded = io.BytesIO()
    Image.fromarray(shown).save(encoded, format="JPEG", quality=90)
    return {"preview": "data:image/jpeg;base64," + base64.b64encode(encoded.getvalue()).decode()}


async def _preview(request: web.Request) -> web.Response:
    if request.content_length is not None and request.content_length > MAX_PREVIEW_BYTES:
        return web.json_response({"error": "the picture is too large for a preview"}, status=413)
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        # the warp runs off the server's event loop: the page and the queue stay responsive
        answer = await asyncio.get_running_loop().run_in_executor(None, _warp_preview, body)
    except (ValueError, OSError) as error:  # bad JSON, points, strokes, picture
        return web.json_response({"error": str(error)}, status=400)
    return web.json_response(answer)


_registered = []


def register() -> bool:
    """Add the routes to the running PromptServer (once); False when there is none (ComfyUI used as a library)."""
    if _registered:
        return True
    try:
        from server import PromptServer
    except ImportError:
        return False
    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        return False
    instance.routes.get(PREFIX)(_read)
    instance.routes.post(PREFIX + "/reset")(_reset)
    instance.routes.post(PREVIEW)(_preview)
    _registered.append(instance)
    return True
