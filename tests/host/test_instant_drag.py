"""The instant drag inside real ComfyUI: Drag Region Warp, the painted region on the drag nodes, the live preview
route of a real server."""
import base64
import io
import json
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from . import server
from .pack import hand_made_trajectory, pack_module

PICTURE_HW = (96, 128)
REGION = json.dumps({"size": [128, 96], "strokes": [{"radius": 10.0, "points": [[40.0, 40.0], [56.0, 48.0]]}]})
PAIRS = json.dumps([{"handle": [44.0, 42.0], "target": [80.0, 60.0]}])


def picture(seed=0):
    return torch.rand(1, *PICTURE_HW, 3, generator=torch.Generator().manual_seed(seed))


def warp(comfy, points=PAIRS, region=REGION, kernel=5, mask=None, image=None):
    node = comfy.NODE_CLASS_MAPPINGS["DragEdit_RegionWarp"]
    return node.execute(picture() if image is None else image, points, kernel, mask=mask, region=region).args


def test_the_node_moves_the_painted_region_as_the_core_does(comfy):
    region_warp, regions = pack_module("core.region_warp"), pack_module("core.regions")
    image = picture()
    before = image.clone()
    with torch.inference_mode():
        warped, inpaint, moved, region = warp(comfy, image=image)
    painted = regions.rasterize(regions.read_region(REGION), PICTURE_HW)
    plan = region_warp.bidirectional_warp(painted, [[44, 42]], [[80, 60]], 5)
    expected = region_warp.apply_warp(image[0].numpy(), plan)
    assert torch.equal(image, before), "the input picture was changed"
    assert warped.shape == image.shape and torch.equal(warped[0], torch.from_numpy(expected))
    assert torch.equal(inpaint[0], torch.from_numpy(plan.inpaint_mask.astype(np.float32)))
    assert torch.equal(moved[0], torch.from_numpy(plan.moved_mask.astype(np.float32)))
    assert torch.equal(region[0], torch.from_numpy(painted)) and inpaint.shape == (1, *PICTURE_HW)


def test_a_connected_mask_wins_and_an_empty_one_leaves_the_painted_region(comfy):
    mask = torch.zeros(1, *PICTURE_HW)
    mask[:, 50:70, 70:100] = 1
    with torch.inference_mode():
        _, _, _, region = warp(comfy, json.dumps([{"handle": [80, 60], "target": [40, 30]}]), mask=mask)
        assert torch.equal(region, mask)
        _, _, _, painted = warp(comfy, mask=torch.zeros(1, 64, 64))  # Load Image's mask of a picture without alpha
    assert painted.sum() > 0 and not torch.equal(painted, torch.zeros_like(painted))


@pytest.mark.parametrize("kwargs, message", [
    (dict(points=json.dumps([{"handle": [5, 5], "target": [40, 30]}])), "pair 1: the handle \\(5, 5\\) lies in no "
                                                                       "region"),
    (dict(region=""), "no region to move: paint it"),
    (dict(image=torch.rand(2, *PICTURE_HW, 3)), "image has batch 2"),
    (dict(points=json.dumps([{"handle": [44, 42], "target": [500, 60]}])), "outside the 128x96 image"),
])
def test_bad_input_is_refused_with_a_sentence(comfy, kwargs, message):
    with pytest.raises(ValueError, match=message):
        warp(comfy, **kwargs)


def test_what_needs_no_picture_is_checked_at_queue_time(comfy):
    validate = comfy.NODE_CLASS_MAPPINGS["DragEdit_RegionWarp"].validate_inputs
    assert validate(drag_points=PAIRS, region=REGION) is True
    assert validate(drag_points=None, region=REGION) is True  # linked: checked when the node runs
    assert "pair 1: the handle (5, 5) lies in no region" in validate(
        drag_points=json.dumps([{"handle": [5, 5], "target": [40, 30]}]), region=REGION)
    assert "region is not valid JSON" in validate(drag_points=PAIRS, region="{")


@pytest.mark.parametrize("node_id", ["DragEdit_DragLatentOptimize", "DragEdit_GoodDragLatentOptimize"])
def test_the_drag_nodes_take_the_painted_region_when_no_mask_is_connected(comfy, tiny, node_id):
    """The painted region is the editable mask (DragDiffusion's resampling to the latent); a connected MASK wins."""
    drag_setup, grids, regions = pack_module("nodes.drag_setup"), pack_module("core.grids"), pack_module("core.regions")
    model = tiny.make_model("sd1")
    image = torch.rand(1, 128, 128, 3)
    painted = json.dumps({"size": [128, 128], "strokes": [{"radius": 12.0, "points": [[30.0, 30.0], [70.0, 60.0]]}]})
    setup = drag_setup.prepare_drag(model, tiny.conditioning(), hand_made_trajectory(model), image, PAIRS, 1.0, -1,
                                    region=painted)
    expected = grids.mask_to_latent_nearest(torch.from_numpy(regions.rasterize(regions.read_region(painted),
                                                                               (128, 128))), (64, 64), (16, 16))
    assert torch.equal(setup.mask_latent, expected[0, 0]) and 0 < setup.mask_latent.sum() < 256
    connected = torch.zeros(1, 128, 128)
    connected[:, 64:, 64:] = 1
    setup = drag_setup.prepare_drag(model, tiny.conditioning(), hand_made_trajectory(model), image, PAIRS, 1.0, -1,
                                    mask=connected, region=painted)
    assert torch.equal(setup.mask_latent, grids.mask_to_latent_nearest(connected[0], (64, 64), (16, 16))[0, 0])
    assert "region" in comfy.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()["optional"], "no painted region's input"


# ---------------------------------------------------------------------------------------------------------------------
# The live preview through a real server


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with server.serving(tmp_path_factory, "comfy-instant", {}) as started:
        yield started


def data_url(array: np.ndarray) -> str:
    encoded = io.BytesIO()
    Image.fromarray(array).save(encoded, format="PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.getvalue()).decode()


def post_preview(url, body, editor="test editor"):
    """(status, answer) of the preview route for ``body`` (a dict sent as JSON, or raw bytes)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    route = "drag_edit/region_warp_preview?" + urllib.parse.urlencode({"editor": editor})
    request = urllib.request.Request(url + route, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_preview_route_warps_with_the_nodes_core(running, comfy):
    instant = pack_module("core.instant_drag")
    rows, cols = np.mgrid[0:PICTURE_HW[0], 0:PICTURE_HW[1]]  # smooth, so JPEG keeps it close
    array = np.stack([rows * 2, cols * 2, 255 - rows - cols], axis=-1).clip(0, 255).astype(np.uint8)
    status, body = post_preview(running["url"], {"image": data_url(array), "drag_points": PAIRS, "region": REGION,
                                                 "kernel": 5})
    assert status == 200, body
    assert body["preview"].startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(body["preview"].split(",", 1)[1]))) as shown:
        shown = np.asarray(shown.convert("RGB")).astype(np.float64)
    expected = instant.preview(array, PAIRS, REGION).astype(np.float64)
    assert shown.shape == expected.shape
    error, change = np.abs(shown - expected).mean(), np.abs(expected - array).mean()
    assert change > 5 and error < change / 5, f"the preview is not the core's warp (up to JPEG): {error}, {change}"


def encoded(array: np.ndarray, format: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format)
    return f"data:image/{format.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


GARBAGE = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4).decode()
TRUNCATED = "data:image/png;base64," + base64.b64encode(  # valid base64 of a cut picture
    base64.b64decode(encoded(np.random.default_rng(0).integers(0, 255, (*PICTURE_HW, 3), np.uint8), "PNG")[22:])[:-3000]
).decode()
HUGE_RADIUS = json.dumps({"size": [128, 96], "strokes": [{"radius": 1e6, "points": [[40.0, 40.0]]}]})
OFF_REGION = json.dumps([{"handle": [5, 5], "target": [40, 30]}])


@pytest.mark.parametrize("change, message", [
    ({"drag_points": OFF_REGION}, "pair 1: the handle (5, 5) lies in no"),
    ({"region": ""}, "no region to move"),
    ({"region": "{"}, "region is not valid JSON"),
    ({"region": 5}, "region must be the editor's text"),
    ({"drag_points": None}, "drag_points must be the editor's text"),
    ({"image": "not a picture"}, "image must be the picture as a base64 data URL"),
    ({"image": "data:image/png;base64,iVBOR#w0K"}, "base64 is damaged"),
    ({"image": GARBAGE}, "image is not a readable PNG, JPEG or WEBP picture"),
    ({"image": TRUNCATED}, "image is not a readable PNG, JPEG or WEBP picture"),
    ({"image": encoded(np.zeros((*PICTURE_HW, 3), np.uint8), "GIF")}, "image is not a readable PNG, JPEG or WEBP"),
    ({"image": encoded(np.zeros((*PICTURE_HW, 3), np.uint8), "TIFF")}, "image is not a readable PNG, JPEG or WEBP"),
    ({"image": encoded(np.zeros((*PICTURE_HW, 3), np.uint8), "BMP")}, "image is not a readable PNG, JPEG or WEBP"),
    ({"image": encoded(np.zeros((10, 4100, 3), np.uint8), "PNG")}, "the picture is 4100x10; previews go up to 4096"),
    ({"kernel": "5"}, "kernel must be a whole number of pixels from 0 to 64"),
    ({"kernel": 10 ** 400}, "kernel must be a whole number of pixels from 0 to 64, got 10000000000"),
    ({"kernel": float("nan")}, "kernel must be a whole number of pixels from 0 to 64, got nan"),
    ({"kernel": 65}, "from 0 to 64, got 65"),
    ({"region": HUGE_RADIUS}, "stroke 1's radius 1e+06 is more than 2 times the painted picture's longer side"),
    ({"drag_points": json.dumps([{"handle": [float("nan"), 5], "target": [40, 30]}])}, "two finite numbers"),
])
def test_the_preview_route_answers_bad_input_with_a_sentence(running, change, message):
    array = np.zeros((*PICTURE_HW, 3), np.uint8)
    body = {"image": data_url(array), "drag_points": PAIRS, "region": REGION, "kernel": 5, **change}
    status, answer = post_preview(running["url"], body)
    assert status == 400 and message in answer["error"], answer
    assert "object at 0x" not in answer["error"] and answer["error"][0].isalpha()


@pytest.mark.parametrize("body, message", [
    (b"{not json", "the body is not valid JSON"),
    (b"\xff\xfe\x00garbage", "the body is not valid JSON"),
    (b"[" * 100_000, "the body is not valid JSON"),
    (b"[1, 2]", "the body must be a JSON object"),
    (b"{" + b" " * (32 * 2 ** 20) + b"}", "the request is over 32 MiB"),
])
def test_a_bad_body_is_answered_400_with_a_sentence(running, body, message):
    status, answer = post_preview(running["url"], body)
    assert status == 400 and message in answer["error"], answer
