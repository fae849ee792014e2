"""The pack's HTTP routes: the instant drag's live preview (:mod:`.preview_route`), and the server's peak memory.

``POST /drag_edit/peak_memory/reset`` starts a new peak; ``GET /drag_edit/peak_memory`` answers
``{"device", "peak_bytes", "measures"}``, the peak since that reset as :mod:`core.memory` counts it (null where
it cannot be measured).  A server runs one prompt at a time, so a reset before queueing and a read after it give
that prompt's peak; the DragBench runner reads it per sample.
"""
from aiohttp import web

from ..core.memory import peak_bytes, reset_peak
from . import preview_route

PREFIX = "/drag_edit/peak_memory"


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
    instance.routes.post(preview_route.PREVIEW)(preview_route.handle)
    _registered.append(instance)
    return True
