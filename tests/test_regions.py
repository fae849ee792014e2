"""The painted region (core/regions.py) and the instant drag's glue (core/instant_drag.py)."""
import json
import math

import numpy as np
import pytest

from core.instant_drag import check_at_queue, pixel_points, plan_drag, preview
from core.region_warp import apply_warp, bidirectional_warp, preview_warp
from core.regions import rasterize, read_region

# A known stroke set on a 40x30 picture: a brush dot, a brush polyline, an eraser stroke across it.
STROKES = {"size": [40, 30], "strokes": [
    {"radius": 4.0, "points": [[8.0, 8.0]]},
    {"radius": 3.5, "points": [[14.0, 20.0], [30.0, 20.0], [30.0, 6.0]]},
    {"erase": True, "radius": 2.0, "points": [[22.0, 14.0], [22.0, 26.0]]},
]}


def brute_force(strokes: dict, height: int, width: int) -> np.ndarray:
    """The definition, pixel by pixel: a pixel is painted when its centre is within the radius of the stroke's
    polyline (sampled densely along each segment), later strokes over earlier ones."""
    sx, sy = width / strokes["size"][0], height / strokes["size"][1]
    mask = np.zeros((height, width), dtype=np.float32)
    for stroke in strokes["strokes"]:
        points = [(x * sx, y * sy) for x, y in stroke["points"]]
        segments = list(zip(points, points[1:])) or [(points[0], points[0])]
        radius = stroke["radius"] * math.sqrt(sx * sy)
        for row in range(height):
            for col in range(width):
                cx, cy = col + 0.5, row + 0.5
                near = min(min(math.dist((cx, cy), (ax + t * (bx - ax), ay + t * (by - ay)))
                               for t in np.linspace(0, 1, 2001)) for (ax, ay), (bx, by) in segments)
                if near <= radius + 1e-3:  # dense sampling overestimates the distance by at most ~1e-3 px
                    mask[row, col] = 0.0 if stroke.get("erase") else 1.0
    return mask


def test_a_known_stroke_set_rasterises_to_its_definition():
    painted = rasterize(read_region(json.dumps(STROKES)), (30, 40))
    assert painted.dtype == np.float32 and set(np.unique(painted)) == {0.0, 1.0}
    np.testing.assert_array_equal(painted, brute_force(STROKES, 30, 40))
    # the dot is a disc: the pixel centres within 4 px of (8, 8) are the 52 of a radius-4 disc centred on a corner
    assert painted[:16, :16].sum() == sum(1 for r in range(16) for c in range(16)
                                          if math.hypot(c + 0.5 - 8, r + 0.5 - 8) <= 4)
    assert painted[20, 22] == 0.0 and painted[20, 18] == 1.0  # the eraser cut the polyline


def test_strokes_scale_with_the_picture():
    """Resolution independence: the strokes painted on 40x30, drawn at 80x60, are the doubled strokes."""
    doubled = {"size": [80, 60], "strokes": [
        {**stroke, "radius": stroke["radius"] * 2, "points": [[x * 2, y * 2] for x, y in stroke["points"]]}
        for stroke in STROKES["strokes"]]}
    at_double = rasterize(read_region(json.dumps(STROKES)), (60, 80))
    np.testing.assert_array_equal(at_double, rasterize(read_region(json.dumps(doubled)), (60, 80)))
    assert len(json.dumps(STROKES)) < 300  # a region is strokes, not pixels
    # Stretched to twice the width only: points scale per axis, radii by the geometric mean (sqrt 2).
    np.testing.assert_array_equal(rasterize(read_region(json.dumps(STROKES)), (30, 80)), brute_force(STROKES, 30, 80))


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ('{"strokes": []}', "'size' and 'strokes'"),
    ('{"size": [0, 10], "strokes": []}', "'size' must be"),
    ('{"size": [10, 10], "strokes": [{"radius": 0, "points": [[1, 1]]}]}', "radius must be above 0"),
    ('{"size": [10, 10], "strokes": [{"radius": 1, "points": []}]}', "non-empty 'points'"),
    ('{"size": [10, 10], "strokes": [{"radius": 1, "points": [[1, "a"]]}]}', "stroke 1's y must be a finite"),
    ('{"size": [10, 10], "strokes": [{"radius": 1e999, "points": [[1, 1]]}]}', "finite number"),
    ('{"size": [10, 10], "strokes": [{"radius": 1, "points": [[1, 1, 1]]}]}', "not \\[x, y\\]"),
    ('{"size": [10, 10], "strokes": [{"radius": 1, "erase": 1, "points": [[1, 1]]}]}', "'erase' must be true"),
    (json.dumps({"size": [10, 10], "strokes": [{"radius": 1, "points": [[1, 1]]}] * 1001}), "1001 strokes"),
    ("[" * 200_001, "at most 200000 characters"),
])
def test_malformed_strokes_get_a_sentence(text, message):
    with pytest.raises(ValueError, match=message):
        read_region(text)


def test_no_strokes_is_no_region():
    for text in ("", None, '{"size": [10, 10], "strokes": []}'):
        region = read_region(text)
        assert not region.painted and not rasterize(region, (8, 6)).any()


# ---------------------------------------------------------------------------------------------------------------------
# The instant drag's glue

REGION = json.dumps({"size": [64, 48], "strokes": [{"radius": 6.0, "points": [[20.0, 20.0], [30.0, 24.0]]}]})
PAIR = json.dumps([{"handle": [22.4, 20.6], "target": [40.0, 30.0]}])


def test_the_glue_rounds_the_points_and_warps_the_painted_region():
    picture = np.random.default_rng(0).random((48, 64, 3)).astype(np.float32)
    plan, region = plan_drag((48, 64), PAIR, REGION)
    expected = bidirectional_warp(rasterize(read_region(REGION), (48, 64)), [[22, 21]], [[40, 30]])
    for field in ("source_xy", "target_xy", "inpaint_mask", "moved_mask"):
        np.testing.assert_array_equal(getattr(plan, field), getattr(expected, field))
    assert region.sum() == rasterize(read_region(REGION), (48, 64)).sum()
    np.testing.assert_array_equal(preview(picture, PAIR, REGION), preview_warp(picture, expected))
    assert not np.array_equal(apply_warp(picture, plan), picture)
    handles, targets = pixel_points([[64.0, 48.0]], [[64.0, 48.0]], (48, 64))
    assert handles.tolist() == [[63, 47]] and targets.tolist() == [[64, 48]]  # far edge: the last pixel


def test_a_given_mask_wins_over_the_strokes():
    mask = np.zeros((48, 64), np.float32)
    mask[30:40, 40:60] = 1
    with pytest.raises(ValueError, match="pair 1: the handle \\(22, 21\\) lies in no region"):
        plan_drag((48, 64), PAIR, REGION, mask=mask)
    with pytest.raises(ValueError, match="the region mask is 10x10 but the picture is 64x48"):
        plan_drag((48, 64), PAIR, REGION, mask=np.ones((10, 10)))


@pytest.mark.parametrize("points, region, message", [
    (PAIR, "", "no region to move: paint it"),
    (json.dumps([{"handle": [2, 2], "target": [40, 30]}]), REGION, "pair 1: the handle \\(2, 2\\) lies in no region"),
    (json.dumps([{"handle": [70, 2], "target": [40, 30]}]), REGION, "outside the 64x48 image"),
])
def test_bad_input_is_refused_with_a_sentence(points, region, message):
    with pytest.raises(ValueError, match=message):
        plan_drag((48, 64), points, region)


def test_the_queue_time_check_needs_no_picture():
    check_at_queue(PAIR, REGION)
    check_at_queue(PAIR, "")  # nothing painted: a MASK may be connected, checked when the node runs
    with pytest.raises(ValueError, match="pair 1: the handle \\(2, 2\\) lies in no region"):
        check_at_queue(json.dumps([{"handle": [2, 2], "target": [40, 30]}]), REGION)
    with pytest.raises(ValueError, match="drag_points has no pairs"):
        check_at_queue("[]", REGION)
