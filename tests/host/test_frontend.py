"""The point editor in the real ComfyUI frontend, served by a headless ComfyUI.

Starts ``main.py`` of COMFYUI_PATH as a subprocess (CPU, a temporary base directory with
this pack symlinked into custom_nodes/ and a test picture in input/), then runs
web/tests/frontend/point_editor_frontend.mjs (pairs) and region_editor_frontend.mjs (the
painted region and Drag Region Warp's live preview), which drive Debian's chromium through
playwright-core and print a JSON summary of their checks.

Skipped (with the reason) without COMFYUI_PATH, node, web/node_modules/playwright-core,
the comfyui-frontend-package or chromium; with CI=true, a missing chromium fails instead.
"""
import json
from pathlib import Path

import pytest

from . import server

PACK_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = PACK_ROOT / "web" / "tests" / "frontend" / "point_editor_frontend.mjs"
REGION_SCRIPT = PACK_ROOT / "web" / "tests" / "frontend" / "region_editor_frontend.mjs"
IMAGE_SIZE = (512, 384)


def write_picture(path):
    """A small synthetic landscape (512x384), so the editor has something real-looking to show.

    Also the picture of docs/images/drag_point_editor.png (see dev/screenshot_point_editor.mjs).
    """
    import random

    from PIL import Image, ImageDraw, ImageFilter

    width, height = IMAGE_SIZE
    rng = random.Random(3)
    img = Image.new("RGB", IMAGE_SIZE)
    draw = ImageDraw.Draw(img)
    for y in range(240):  # evening sky
        t = y / 240
        draw.line([(0, y), (width, y)], fill=(int(70 + 170 * t), int(110 + 90 * t), int(190 - 40 * t)))
    glow = Image.new("L", IMAGE_SIZE, 0)
    ImageDraw.Draw(glow).ellipse((330, 20, 470, 160), fill=140)
    img = Image.composite(Image.new("RGB", IMAGE_SIZE, (255, 225, 150)), img, glow.filter(ImageFilter.GaussianBlur(30)))
    draw = ImageDraw.Draw(img)
    draw.ellipse((372, 62, 428, 118), fill=(255, 236, 170))
    for peak, snow, color in [((-20, 240, 110, 120, 250), (90, 118, 110, 120, 130, 140, 100, 150), (92, 104, 140)),
                              ((160, 240, 300, 110, 480), (280, 128, 300, 110, 322, 130, 300, 140), (110, 118, 155)),
                              ((380, 240, 470, 160, 560), None, (100, 112, 150))]:
        x0, base, xp, yp, x1 = peak
        draw.polygon([(x0, base), (xp, yp), (x1, base)], fill=color)
        if snow:
            draw.polygon(list(zip(snow[::2], snow[1::2])), fill=(238, 240, 247))
    for y in range(230, height):  # meadow
        t = (y - 230) / (height - 230)
        draw.line([(0, y), (width, y)], fill=(int(110 - 40 * t), int(160 - 50 * t), int(70 - 30 * t)))
    draw.ellipse((250, 280, 500, 350), fill=(80, 130, 190))  # lake
    draw.ellipse((270, 290, 420, 320), fill=(120, 170, 215))
    draw.rectangle((110, 235, 195, 300), fill=(214, 94, 74))  # house
    draw.polygon([(100, 240), (152, 196), (205, 240)], fill=(120, 58, 50))
    draw.rectangle((140, 262, 160, 300), fill=(92, 60, 40))
    draw.rectangle((170, 250, 188, 266), fill=(250, 230, 160))
    for x, y, s in [(40, 300, 1.0), (70, 320, 0.8), (225, 305, 0.9), (470, 285, 0.7)]:  # trees
        draw.rectangle((x - 4 * s, y, x + 4 * s, y + 30 * s), fill=(90, 60, 35))
        draw.ellipse((x - 22 * s, y - 45 * s, x + 22 * s, y + 8 * s), fill=(46, 110, 56))
    for _ in range(70):  # flowers
        x, y = rng.randint(0, width), rng.randint(300, height)
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=rng.choice([(250, 240, 120), (245, 245, 245), (240, 150, 180)]))
    img.filter(ImageFilter.GaussianBlur(0.6)).save(path)


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory):
    with server.serving(tmp_path_factory, "comfy-frontend", {"scene.png": write_picture}, browser=True) as running:
        yield running


def failed_checks(summary) -> dict:
    return {name: c.get("detail") for name, c in summary["checks"].items() if not c["ok"]}


def test_point_editor_in_real_frontend(comfy_server):
    summary = server.run_frontend_script(SCRIPT, comfy_server["url"], "--image", "scene.png",
                                         "--width", str(IMAGE_SIZE[0]), "--height", str(IMAGE_SIZE[1]))
    details = json.dumps({k: v for k, v in summary.items() if k != "errors"}, indent=1)[:6000]

    assert "exception" not in summary, summary["exception"] + "\n" + details
    failed = failed_checks(summary)
    assert not failed, f"failed checks: {json.dumps(failed, indent=1)}\nerrors: {summary.get('errors')}"

    # the pack's scripts load and nothing it does logs an error (the host's own startup 404s are not ours)
    assert summary["error_counts"]["ours"] == 0, summary["errors"]
    assert summary["error_counts"]["after_startup"] == 0, summary["errors"]

    # the API prompt and the queued request carry exactly the clicked pairs
    pairs = json.loads(summary["api_prompt_drag_points"])
    assert len(pairs) == 2 and all(set(p) == {"handle", "target"} for p in pairs), pairs
    assert summary["queued_drag_points"] == summary["api_prompt_drag_points"] == summary["widget_value"]
    assert summary["reloaded_value"] == summary["widget_value"]

    # malformed drag_points: an error message on the node, no exception, the text kept as it was
    assert len(summary["malformed"]) == 3
    for entry in summary["malformed"]:
        assert entry["message"] and not entry["load_error"] and not entry["new_errors"], entry
        assert entry["canvas_draws"] and entry["raw_kept"], entry
    assert summary["ok"], details


def test_region_and_live_preview_in_real_frontend(comfy_server, comfy):
    """Paint, preview (the pack's route), run, save and reload on Load Image -> Upscale Image -> Drag Region Warp;
    paint on Drag Latent Optimize and read the API prompt."""
    from .pack import pack_module

    summary = server.run_frontend_script(REGION_SCRIPT, comfy_server["url"], "--image", "scene.png",
                                         "--width", str(IMAGE_SIZE[0]), "--height", str(IMAGE_SIZE[1]), timeout=400)
    details = json.dumps({k: v for k, v in summary.items() if k != "errors"}, indent=1)[:6000]
    assert "exception" not in summary, summary["exception"] + "\n" + details
    failed = failed_checks(summary)
    assert not failed, f"failed checks: {json.dumps(failed, indent=1)}\nerrors: {summary.get('errors')}"
    assert summary["error_counts"]["ours"] == 0 and summary["error_counts"]["after_startup"] == 0, summary["errors"]

    # the texts the editor wrote are what the nodes read: the API prompt, the reloaded workflow
    assert summary["api_prompt_region"] == summary["reloaded_region"] == summary["region"]
    assert 200 in summary["route_statuses"] and 400 in summary["route_statuses"], summary["route_statuses"]

    # ... and core/regions.py reads them as painted: the stroke at the scaled picture's size, the handle on it
    regions = pack_module("core.regions")
    region = regions.read_region(summary["region"])
    width, height = IMAGE_SIZE[0] // 2, IMAGE_SIZE[1] // 2
    assert region.size == (width, height) and len(region.strokes) == 1 and region.painted
    mask = regions.rasterize(region, (height, width))
    (x, y), = [pair["handle"] for pair in json.loads(summary["widget_value"])]
    assert mask[round(y), round(x)] == 1 and 0 < mask.mean() < 0.2
    drag_region = regions.read_region(summary["drag_api_region"])
    assert drag_region.size == IMAGE_SIZE and drag_region.painted
