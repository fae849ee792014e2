"""The point editor in the real ComfyUI frontend, served by a headless ComfyUI.

Starts ``main.py`` of COMFYUI_PATH as a subprocess (CPU, a temporary base directory with
this pack symlinked into custom_nodes/ and a test picture in input/), once for each frontend
(tests/host/frontends.py: the installed one and those in COMFYUI_FRONTEND_ROOTS), then runs,
in classic and in Nodes 2.0 mode, web/tests/frontend/point_editor_frontend.mjs (pairs, layout),
editor_keys_frontend.mjs (the editor's keys never reach the host's shortcuts) and
region_editor_frontend.mjs (the painted region and Drag Region Warp's live preview), which drive
Debian's chromium through playwright-core and print a JSON summary of their checks.

Skipped (with the reason) without COMFYUI_PATH, node, web/node_modules/playwright-core,
the comfyui-frontend-package or chromium; with CI=true, a missing chromium fails instead.
"""
import json
from pathlib import Path

from . import frontends
from .scene import IMAGE_SIZE

PACK_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = PACK_ROOT / "web" / "tests" / "frontend"
PICTURE_ARGS = ("--image", "scene.png", "--width", str(IMAGE_SIZE[0]), "--height", str(IMAGE_SIZE[1]))

pytestmark = frontends.each_frontend_and_mode


def failed_checks(summary) -> dict:
    return {name: c.get("detail") for name, c in summary["checks"].items() if not c["ok"]}


def run(script, frontend_server, frontend, mode, timeout=180):
    frontends.skip_unless_supported(frontend, mode)
    return frontends.run_script(SCRIPTS / script, frontend_server, frontend, mode, *PICTURE_ARGS, timeout=timeout)


def test_point_editor_in_real_frontend(frontend_server, frontend, mode):
    summary = run("point_editor_frontend.mjs", frontend_server, frontend, mode)
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


def test_editor_keys_stay_out_of_the_host_shortcuts(frontend_server, frontend, mode):
    """With a stroke and two pairs made and a host button clicked, Ctrl+Z in the editor undoes exactly the last edit,
    twice, without a graph reload; Ctrl+Shift+Z / Ctrl+Y redo in the editor, not on the graph; Delete, Esc, P/B/E,
    +/-, ]/[ act in the editor only (the selected node stays, unpinned); Ctrl+S still saves the workflow."""
    summary = run("editor_keys_frontend.mjs", frontend_server, frontend, mode)
    assert "exception" not in summary, summary["exception"]
    failed = failed_checks(summary)
    assert not failed, f"failed checks: {json.dumps(failed, indent=1)[:6000]}\nerrors: {summary.get('errors')}"
    assert [key["key"] for key in summary["keys"]] == ["Delete", "Backspace", "Escape", "b", "e", "p", "+", "]", "-",
                                                      "["]
    assert summary["ok"]


def test_region_and_live_preview_in_real_frontend(frontend_server, frontend, mode, comfy):
    """Paint, preview (the pack's route), run, save and reload on Load Image -> Upscale Image -> Drag Region Warp;
    paint on Drag Latent Optimize and read the API prompt."""
    from .pack import pack_module

    summary = run("region_editor_frontend.mjs", frontend_server, frontend, mode, timeout=400)
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
