"""The point editor's live preview of the instant drag: ``POST /drag_edit/region_warp_preview?editor=<id>``.

The body is ``{"image": data URL, "drag_points", "region", "kernel"}`` as the editor has them (the picture PNG,
JPEG or WebP, at most 4096 px a side and a 32 MiB body); the answer is ``{"preview": JPEG data URL}``, the warped
picture with the area to inpaint drawn as Inpaint4Drag's UI does, computed by the same core function as Drag Region
Warp from the painted region (a MASK connected to the node is not known here; the editor says so).  Other answers,
each ``{"error": sentence}``: 400 for anything wrong in the request; 409 with ``"superseded": true`` when a newer
request of the same editor replaced this one before it ran (the editor ignores it); 429 with ``"busy": true`` when
previews of 8 other editors wait already.

Everything after reading the body runs on the route's own worker thread (:mod:`.newest_wins`), one preview at a
time: the JSON, the picture's decoding, the warp, the JPEG.  The server's event loop only reads the bytes.
"""
import base64
import binascii
import io
import json
import logging
import uuid
from dataclasses import replace

import numpy as np
from aiohttp import web
from PIL import Image

from ..core.instant_drag import preview
from ..core.points import read_drag_points
from ..core.regions import read_region
from ..core.settings import INSTANT_DRAG
from .newest_wins import BUSY, SUPERSEDED, NewestWins

PREVIEW = "/drag_edit/region_warp_preview"
MAX_PREVIEW_BYTES = 32 * 2 ** 20  # a 4K PNG fits
MAX_PREVIEW_SIDE = 4096
MAX_WAITING = 8  # editors whose previews may wait at once
FORMATS = ("PNG", "JPEG", "WEBP")  # what a browser's canvas encodes
MAX_EDITOR_ID = 64

_worker = NewestWins(MAX_WAITING, "drag_edit_preview")


NOT_A_PICTURE = (f"image is not a readable {', '.join(FORMATS[:-1])} or {FORMATS[-1]} picture (another format, or "
                 "damaged bytes)")


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
    except Exception:  # whatever a decoder makes of untrusted bytes, it is a bad picture
        raise ValueError(NOT_A_PICTURE) from None


def _decode_picture(url) -> np.ndarray:
    if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url[:64]:
        raise ValueError("image must be the picture as a base64 data URL (data:image/png;base64,...)")
    try:
        data = base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("image: the data URL's base64 is damaged (a character outside base64 or a cut end)") \
            from None
    with _open(data) as picture:
        if picture.format not in FORMATS:
            raise ValueError(NOT_A_PICTURE)
        if max(picture.size) > MAX_PREVIEW_SIDE:
            raise ValueError(f"the picture is {picture.size[0]}x{picture.size[1]}; previews go up to "
                             f"{MAX_PREVIEW_SIDE} px a side")
        try:
            return np.asarray(picture.convert("RGB"))
        except Exception:  # a truncated or broken stream, as above
            raise ValueError(NOT_A_PICTURE) from None


def _kernel(value) -> int:
    top = INSTANT_DRAG.warp.max_kernel
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ValueError(f"kernel must be a whole number of pixels from 0 to {top}, got {str(value)[:40]}")
    return value


def _text(body: dict, name: str, optional: bool = False):
    value = body.get(name)
    if not isinstance(value, str) and not (optional and value is None):
        raise ValueError(f"{name} must be the editor's text (a JSON string), got {type(value).__name__}")
    return value


def warp_preview(raw: bytes) -> dict:
    """The route's answer for a request body (the worker runs it); ValueError with a sentence for bad input."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # also bytes that are no text
        raise ValueError("the body is not valid JSON; expected {\"image\", \"drag_points\", \"region\", "
                         "\"kernel\"}") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object {\"image\", \"drag_points\", \"region\", \"kernel\"}")
    drag_points, region = _text(body, "drag_points"), _text(body, "region", optional=True)
    kernel = _kernel(body.get("kernel", INSTANT_DRAG.warp.kernel))
    read_drag_points(drag_points)  # the texts first: they cost nothing next to the picture
    read_region(region)
    picture = _decode_picture(body.get("image"))
    shown = preview(picture, drag_points, region, replace(INSTANT_DRAG.warp, kernel=kernel))
    encoded = io.BytesIO()
    Image.fromarray(shown).save(encoded, format="JPEG", quality=90)
    return {"preview": "data:image/jpeg;base64," + base64.b64encode(encoded.getvalue()).decode()}


def _refuse(status: int, error: str, **extra) -> web.Response:
    return web.json_response({"error": error, **extra}, status=status)


async def _body(request: web.Request):
    """The body's bytes, or None past MAX_PREVIEW_BYTES (read no further)."""
    if request.content_length is not None and request.content_length > MAX_PREVIEW_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(2 ** 16):
        size += len(chunk)
        if size > MAX_PREVIEW_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def handle(request: web.Request) -> web.Response:
    editor = request.query.get("editor", "")[:MAX_EDITOR_ID] or f"anonymous {uuid.uuid4()}"
    busy = f"previews of {MAX_WAITING} other editors are waiting; this one was not queued, try again shortly"
    if not _worker.has_room(editor):
        return _refuse(429, busy, busy=True)
    raw = await _body(request)
    if raw is None:
        return _refuse(400, f"the request is over {MAX_PREVIEW_BYTES // 2 ** 20} MiB: send a smaller picture "
                            f"(previews go up to {MAX_PREVIEW_SIDE} px a side)")
    try:
        answer = await _worker.run(editor, lambda: warp_preview(raw))
    except ValueError as error:  # bad JSON, points, strokes, picture, kernel
        return _refuse(400, str(error))
    except Exception as error:  # a fault of ours: said plainly, logged with its traceback
        logging.exception("drag_edit: the region warp preview failed")
        return _refuse(500, f"the preview failed inside the pack ({type(error).__name__}); see the server log")
    if answer is SUPERSEDED:
        return _refuse(409, "a newer preview request of this editor replaced this one", superseded=True)
    if answer is BUSY:
        return _refuse(429, busy, busy=True)
    return web.json_response(answer)
