"""The shipped templates as a new user meets them: a stock ComfyUI with its stock input/example.png.

Each template is queued over HTTP exactly as opened (the checkpoint it names is a placeholder file: validation only
lists names) and must be accepted; the template browser lists the three and serves their thumbnails. The real frontend
(each of tests/host/frontends.py, in both modes) loads and queues them too.
"""
import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from tests.support.workflow_api import to_api_prompt

from . import frontends, server
from .test_queue_time import _get, _post_prompt

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
NAMES = sorted(path.stem for path in WORKFLOWS.glob("*.json"))


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    example = Path(server.COMFYUI_PATH or "") / "input" / "example.png"
    if server.COMFYUI_PATH and not example.is_file():
        pytest.skip(f"the ComfyUI checkout has no stock {example}")
    inputs = {"example.png": lambda path: shutil.copy(example, path)}
    with server.serving(tmp_path_factory, "comfy-stock", inputs, placeholder_checkpoint=True) as started:
        yield started


@pytest.mark.parametrize("name", NAMES)
def test_template_queues_as_opened(stock, comfy, name):
    prompt = to_api_prompt(json.loads((WORKFLOWS / f"{name}.json").read_text()), comfy.NODE_CLASS_MAPPINGS)
    status, body = _post_prompt(stock["url"], prompt)
    assert status == 200, body
    assert body["node_errors"] == {}


def test_template_browser_lists_them_with_thumbnails(stock):
    listed = _get(stock["url"] + "workflow_templates")
    assert sorted(listed[server.PACK_NAME]) == sorted(NAMES)
    for name in NAMES:
        with urllib.request.urlopen(f"{stock['url']}api/workflow_templates/{server.PACK_NAME}/{name}.jpg") as res:
            assert res.status == 200 and res.read(3) == b"\xff\xd8\xff"  # a JPEG


@frontends.parametrize_frontends
def test_templates_queue_from_the_real_frontend(frontend_server, frontend, mode):
    """Loaded by the frontend's own loader and queued with its Queue path: accepted as opened; the point editor
    shows the stock picture at the 512x512 the drag receives, and each editor keeps its picture's minimum height."""
    frontends.skip_unless_supported(frontend, mode)
    if not (frontend_server["base"] / "input" / "example.png").is_file():
        pytest.skip(f"the ComfyUI checkout has no stock {Path(server.COMFYUI_PATH) / 'input' / 'example.png'}")
    summary = frontends.run_script(server.PACK_ROOT / "web" / "tests" / "frontend" / "templates_frontend.mjs",
                                   frontend_server, frontend, mode, timeout=300)
    failed = {name: check.get("detail") for name, check in summary.get("checks", {}).items() if not check["ok"]}
    assert summary["ok"] and not failed, (failed, summary.get("exception"))
    for name in ("drag_real_image", "gooddrag_real_image"):
        assert summary["checks"][f"{name}_editor_shows_512px"]["detail"] == {"width": 512, "height": 512}
    editors = {node.split("#")[0] for heights in summary["editor_heights"].values() for node in heights}
    assert editors == {"DragEdit_DragLatentOptimize", "DragEdit_GoodDragLatentOptimize", "DragEdit_RegionWarp"}


def test_the_templates_are_what_the_generator_writes(comfy):
    """The shipped JSON is the generator's output: every default in it comes from core/settings.py by name."""
    from dev.make_workflows import workflows

    for name, content in workflows(comfy.NODE_CLASS_MAPPINGS).items():
        assert (WORKFLOWS / name).read_text() == content, \
            f"{name} is stale: run COMFYUI_PATH=/path/to/ComfyUI python -m dev.make_workflows"
