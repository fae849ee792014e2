"""The painted region (core/regions.py) and the instant drag's glue (core/instant_drag.py)."""
import json
import math
from fractions import Fraction

import cv2
import numpy as np
import pytest

from core import regions
from core.instant_drag import check_at_queue, pixel_points, plan_drag, preview
from core.region_warp import apply_warp, bidirectional_warp, preview_warp
from core.regions import MAX_RADIUS_SIDES, certainly_outside, editor_limits, rasterize, read_region

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


def per_pixel(strokes: dict, height: int, width: int) -> np.ndarray:
    """The definition tested at every pixel near each segment, in float64 as the first implementation did: a pixel
    is painted when hypot(centre - nearest point of the segment) <= radius, later strokes over earlier ones."""
    sx, sy = width / strokes["size"][0], height / strokes["size"][1]
    mask = np.zeros((height, width), dtype=np.float32)
    ys, xs = np.mgrid[:height, :width] + 0.5
    for stroke in strokes["strokes"]:
        points = np.asarray(stroke["points"], dtype=np.float64) * [sx, sy]
        radius = stroke["radius"] * math.sqrt(sx * sy)
        for a, b in zip(points, points[1:] if len(points) > 1 else points):
            d = b - a
            length2 = float(d @ d)
            t = 0.0 if length2 == 0 else np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / length2, 0.0, 1.0)
            inside = np.hypot(xs - (a[0] + t * d[0]), ys - (a[1] + t * d[1])) <= radius
            mask[inside] = 0.0 if stroke.get("erase") else 1.0
    return mask


def exactly(strokes: dict, height: int, width: int) -> np.ndarray:
    """The definition in exact rational arithmetic (the float inputs taken as the numbers they are)."""
    mask = np.zeros((height, width), dtype=np.float32)
    for stroke in strokes["strokes"]:
        points = [(Fraction(x), Fraction(y)) for x, y in stroke["points"]]
        radius2 = Fraction(stroke["radius"]) ** 2
        for (ax, ay), (bx, by) in zip(points, points[1:] or points):
            dx, dy = bx - ax, by - ay
            for row in range(height):
                for col in range(width):
                    px, py = Fraction(2 * col + 1, 2), Fraction(2 * row + 1, 2)
                    t = min(max(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0), 1) if dx or dy else 0
                    if (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2 <= radius2:
                        mask[row, col] = 0.0 if stroke.get("erase") else 1.0
    return mask


def random_strokes(rng: np.random.Generator, width: int, height: int, count: int) -> dict:
    """Brush and eraser strokes of 1 to 5 points at 0.1 px, some beyond the border, radii from 0.1 px to the bound
    (twice the longer side), repeated points and axis-aligned segments among them."""
    strokes = []
    for _ in range(count):
        points = rng.uniform([-0.5 * width, -0.5 * height], [1.5 * width, 1.5 * height], (int(rng.integers(1, 6)), 2))
        if rng.random() < 0.3:
            points[-1] = points[0] if rng.random() < 0.5 else [points[0][0], points[-1][1]]
        bound = MAX_RADIUS_SIDES * max(width, height)
        radius = float(np.clip(round(rng.choice([0.3, 3, 30]) * rng.exponential(), 1), 0.1, bound))
        stroke = {"radius": bound if rng.random() < 0.05 else radius, "points": np.round(points, 1).tolist()}
        strokes.append({**stroke, "erase": True} if rng.random() < 0.3 else stroke)
    return {"size": [width, height], "strokes": strokes}


@pytest.mark.parametrize("few_spans", [regions.FEW_SPANS, 0], ids=["span_by_span", "running_sum"])
@pytest.mark.parametrize("seed", range(6))
def test_random_strokes_rasterise_to_the_definition_at_any_size(seed, few_spans, monkeypatch):
    """Intervals per row, then runs of strokes merged: pixel for pixel what testing every pixel gives, also for
    huge radii, points off the picture, and sizes other than the painted one (per-axis scales); the spans drawn
    one by one and by the running sum that large regions take."""
    monkeypatch.setattr(regions, "FEW_SPANS", few_spans)
    rng = np.random.default_rng(seed)
    for _ in range(25):
        width, height = (int(v) for v in rng.integers(4, 48, 2))
        strokes = random_strokes(rng, width, height, int(rng.integers(1, 7)))
        region = read_region(json.dumps(strokes))
        for hw in ((height, width), tuple(int(v) for v in rng.integers(3, 90, 2))):
            np.testing.assert_array_equal(rasterize(region, hw), per_pixel(strokes, *hw), err_msg=json.dumps(strokes))


def test_ties_and_huge_radii_match_exact_arithmetic():
    """Pixel centres exactly on a capsule's edge are inside it (3-4-5 distances, a horizontal edge); a radius at
    the bound from a corner covers the whole picture; one from far off covers part of it."""
    ties = {"size": [24, 20], "strokes": [{"radius": 5.0, "points": [[4.5, 4.5]]},
                                          {"radius": 2.5, "points": [[10.0, 14.0], [20.0, 14.0]]},
                                          {"erase": True, "radius": 2.5, "points": [[7.5, 4.5], [7.5, 9.5]]}]}
    huge = {"size": [24, 20], "strokes": [{"radius": 48.0, "points": [[0.0, 0.0]]},
                                          {"erase": True, "radius": 47.9, "points": [[-30.0, -20.0], [-28.0, 2.5]]}]}
    for strokes in (ties, huge):
        expected = exactly(strokes, 20, 24)
        np.testing.assert_array_equal(rasterize(read_region(json.dumps(strokes)), (20, 24)), expected)
        assert 0 < expected.sum() < 20 * 24
    assert expected[19, 23] == 1.0 and expected[0, 0] == 0.0  # the eraser took a corner of the full cover
    big = {"size": [2048, 1536], "strokes": [{"radius": 4096.0, "points": [[1.5, 2.5], [2000.0, 1500.0]]}]}
    assert rasterize(read_region(json.dumps(big)), (1536, 2048)).all()
    far = {"size": [2048, 1536], "strokes": [{"radius": 3000.0, "points": [[-2500.0, 700.0]]}]}
    ys, xs = np.mgrid[:1536, :2048] + 0.5
    np.testing.assert_array_equal(rasterize(read_region(json.dumps(far)), (1536, 2048)),
                                  (np.hypot(xs + 2500.0, ys - 700.0) <= 3000.0).astype(np.float32))


def test_the_radius_is_bounded_by_the_painted_size():
    at_bound = {"size": [300, 200], "strokes": [{"radius": 600, "points": [[10, 10]]}]}
    assert read_region(json.dumps(at_bound)).strokes[0].radius == 600
    with pytest.raises(ValueError, match="stroke 1's radius 600.1 is more than 2 times the painted picture's longer "
                                         "side \\(600 px\\)"):
        read_region(json.dumps({**at_bound, "strokes": [{"radius": 600.1, "points": [[10, 10]]}]}))
    limits = editor_limits()
    assert limits == {"chars": 200_000, "strokes": 1_000, "points": 20_000, "side": 16_384, "coord": 1e6,
                      "radius_sides": 2}
    assert json.loads(json.dumps(limits)) == limits  # sent to the editor as JSON


def filled_outlines(mask: np.ndarray) -> np.ndarray:
    """What the warp moves: each connected part's filled outer outline, drawn as core/region_warp.py draws it."""
    outlines = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    filled = np.zeros(mask.shape, dtype=np.uint8)
    for outline in outlines:
        cv2.drawContours(filled, [outline], -1, 1, cv2.FILLED)
    return filled > 0


@pytest.mark.parametrize("seed", range(4))
def test_certainly_outside_never_refuses_a_pixel_the_warp_accepts(seed):
    """Every pixel of random regions (rings with holes among them): what the check calls certainly outside lies on
    no filled outline the warp moves, and it decides most of the pixels that do lie off them."""
    rng = np.random.default_rng(seed)
    decided = off = 0
    for _ in range(12):
        width, height = (int(v) for v in rng.integers(8, 40, 2))
        strokes = random_strokes(rng, width, height, int(rng.integers(1, 5)))
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        ring = [[round(cx + 6 * math.cos(a), 1), round(cy + 6 * math.sin(a), 1)]
                for a in np.linspace(0, 2 * math.pi, 13)]
        strokes["strokes"].append({"radius": 1.5, "points": ring})
        region = read_region(json.dumps(strokes))
        accepted = filled_outlines(rasterize(region, (height, width)))
        pixels = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1).reshape(-1, 2)
        outside = certainly_outside(region, pixels).reshape(height, width)
        assert not (outside & accepted).any(), json.dumps(strokes)
        decided, off = decided + outside.sum(), off + (~accepted).sum()
    assert decided > 0.6 * off


def test_past_its_budget_the_ray_test_leaves_a_doubt(monkeypatch):
    strokes = {"size": [60, 40], "strokes": [{"radius": 3.0, "points": [[10, 10], [20, 12], [30, 10], [40, 12]]}]}
    region = read_region(json.dumps(strokes))
    assert certainly_outside(region, [[50, 11]]).tolist() == [True]  # its row meets the stroke, but left of it
    monkeypatch.setattr(regions, "CHECK_BLOCK", 1)
    monkeypatch.setattr(regions, "RAY_SPANS", 0)  # one segment looked at, then out of budget: not certain
    assert certainly_outside(region, [[50, 11]]).tolist() == [False]


def test_a_hole_in_a_ring_is_left_to_the_warp_which_accepts_it():
    ring = {"size": [40, 40], "strokes": [{"radius": 2.0, "points": [[20 + 10 * math.cos(a), 20 + 10 * math.sin(a)]
                                                                      for a in np.linspace(0, 2 * math.pi, 40)]}]}
    region = read_region(json.dumps(ring))
    assert rasterize(region, (40, 40))[20, 20] == 0.0
    assert certainly_outside(region, [[20, 20], [2, 20], [20, 38]]).tolist() == [False, True, True]
    check_at_queue(json.dumps([{"handle": [20, 20], "target": [25, 25]}]), json.dumps(ring))
    plan, _ = plan_drag((40, 40), json.dumps([{"handle": [20, 20], "target": [25, 25]}]), json.dumps(ring))
    assert len(plan.target_xy) > 0


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
    off = json.dumps([{"handle": [2, 2], "target": [40, 30]}])
    with pytest.raises(ValueError, match="pair 1: the handle \\(2, 2\\) lies in no region"):
        check_at_queue(off, REGION)
    check_at_queue(off, REGION, mask_connected=True)  # a connected MASK replaces the painted region
    with pytest.raises(ValueError, match="drag_points has no pairs"):
        check_at_queue("[]", REGION)
    with pytest.raises(ValueError, match="pair 1 handle \\(70, 2\\) is outside the 64x48 image"):
        check_at_queue(json.dumps([{"handle": [70, 2], "target": [40, 30]}]), REGION)


def test_the_queue_time_check_draws_nothing_at_the_declared_size():
    """A region declared as painted on 16384x16384 with the largest radius, and the most pairs: decided on the
    strokes (drawing it would take gigabytes); the second pair, off the stroke, is named."""
    side = 16384
    huge = json.dumps({"size": [side, side], "strokes": [{"radius": 2 * side, "points": [[-side, -side]]},
                                                         {"erase": True, "radius": side, "points": [[side, side]]}]})
    pairs = [{"handle": [1.0, 1.0], "target": [9.0, 9.0]}] * 99 + [{"handle": [side, side], "target": [9.0, 9.0]}]
    with pytest.raises(ValueError, match="pair 100: the handle \\(16383, 16383\\) lies in no region"):
        check_at_queue(json.dumps(pairs), huge)
    check_at_queue(json.dumps(pairs[:99]), huge)
