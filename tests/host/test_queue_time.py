"""Static checks answer at queue time: POST /prompt gives 400 with the node's message, and nothing runs.

A typo in drag_points or save_name must not cost a LoRA training and an inversion.  The shipped real-image drag
workflow is queued over HTTP to a real ComfyUI server with one input broken at a time.
"""
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.support.workflow_api import to_api_prompt

from . import server

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "drag_real_image.json"
DRAG, LORA = "DragEdit_DragLatentOptimize", "DragEdit_LoRAIdentityTune"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    picture = {"example.png": lambda path: Image.new("RGB", (768, 768), (120, 160, 220)).save(path)}
    with server.serving(tmp_path_factory, "comfy-queue-time", picture, placeholder_checkpoint=True) as started:
        yield started


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post_prompt(url, prompt):
    request = urllib.request.Request(url + "prompt", data=json.dumps({"prompt": prompt}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def prompt(comfy):
    return to_api_prompt(json.loads(WORKFLOW.read_text()), comfy.NODE_CLASS_MAPPINGS)


def _node_id(prompt, class_type):
    return next(key for key, node in prompt.items() if node["class_type"] == class_type)


@pytest.mark.parametrize("node_type, field, value, message", [
    (DRAG, "drag_points", "[{\"handle\": [10, 10], \"target\": [20, 20]", "drag_points is not valid JSON"),
    (DRAG, "drag_points", "[]", "drag_points has no pairs"),
    (DRAG, "drag_points", json.dumps([{"handle": [10, 10]}]), "pair 1 has no target \\(unpaired point\\)"),
    (DRAG, "drag_points", json.dumps([{"handle": [10, "x"], "target": [20, 20]}]),
     "pair 1 handle must be two finite numbers"),
    (DRAG, "drag_points", json.dumps([{"handle": [10, -5], "target": [20, 20]}]), "handle \\(10, -5\\) is negative"),
    (DRAG, "drag_points", "[" * 5000 + "]" * 5000, "nested too deeply"),
    (DRAG, "drag_points", json.dumps([{"handle": [1, 1], "target": [2, 2]}] * 101), "101 pairs; at most 100"),
    (DRAG, "drag_points", "[" + " " * 1_000_000 + "]", "is 1000002 characters long"),
    (DRAG, "drag_points", json.dumps([{"handle": [10 ** 4000, 1], "target": [2, 2]}]), "two finite numbers"),
    (LORA, "save_name", "../outside", "is not a plain relative name"),
    (LORA, "save_name", "x" * 300, "is too long"),
    (LORA, "save_name", "/".join(["d"] * 1000), "is too long"),
])
def test_static_errors_are_refused_at_queue_time(running, prompt, node_type, field, value, message):
    import re

    broken = json.loads(json.dumps(prompt))
    node_id = _node_id(broken, node_type)
    broken[node_id]["inputs"][field] = value
    status, body = _post_prompt(running["url"], broken)
    assert status == 400, body
    errors = body["node_errors"]
    assert list(errors) == [node_id], errors  # only the broken node is blamed
    details = " ".join(error["details"] for error in errors[node_id]["errors"])
    assert re.search(message, details), details
    assert len(details) < 1000, "the message does not echo the whole input"
    assert _get(running["url"] + "history") == {}, "nothing ran"
    assert _get(running["url"] + "queue") == {"queue_running": [], "queue_pending": []}


def test_a_point_outside_the_image_waits_for_the_image(running, prompt):
    """The image size is known only when the graph runs: that check stays in the node (before any model work)."""
    from .pack import pack_module

    points = pack_module("core.points")
    points.read_drag_points(json.dumps([{"handle": [5000, 10], "target": [20, 20]}]))  # fine without the image
    with pytest.raises(ValueError, match="is outside the 768x768 image"):
        points.parse_drag_points(json.dumps([{"handle": [5000, 10], "target": [20, 20]}]), (768, 768))


def test_drag_cfg_below_one_is_refused_at_queue_time(running, prompt):
    """The generated-image feature mix weighs by cfg / (2 cfg - 1): 0.5 once divided by zero inside the drag."""
    broken = json.loads(json.dumps(prompt))
    node_id = _node_id(broken, DRAG)
    broken[node_id]["inputs"]["cfg"] = 0.5
    status, body = _post_prompt(running["url"], broken)
    assert status == 400 and list(body["node_errors"]) == [node_id], body
    (error,) = body["node_errors"][node_id]["errors"]
    assert error["message"] == "Value 0.5 smaller than min of 1.0" and error["details"] == "cfg"

