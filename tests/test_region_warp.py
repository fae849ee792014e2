"""The region warp (core/region_warp.py) against closed forms and a plain-loop reference.

Exact agreement with the official Inpaint4Drag code is checked by dev/parity_inpaint4drag.py (it needs a run of
that code); these tests hold the behaviour that could break: where pixels go, what the inpaint mask covers,
and every refusal the module lists as a deviation.
"""
import dataclasses
import threading
import time

import cv2
import numpy as np
import pytest
import torch

from core import region_warp
from core.region_warp import (
    CHUNK_ROWS,
    DEFAULTS,
    InstantDragSettings,
    _fill,
    _idw_rows,
    apply_warp,
    bidirectional_warp,
    idw_move,
    kept_references,
    odd_kernel,
    preview_warp,
)
from core.thread_limit import available as thread_limit_available


def disc(hw, cx, cy, r):
    yy, xx = np.mgrid[:hw[0], :hw[1]]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8)


def shifted(mask, dx, dy):
    """``mask`` moved by whole pixels, what falls off the image dropped."""
    out = np.zeros_like(mask)
    ys, xs = np.nonzero(mask)
    ys, xs = ys + dy, xs + dx
    inside = (xs >= 0) & (xs < mask.shape[1]) & (ys >= 0) & (ys < mask.shape[0])
    out[ys[inside], xs[inside]] = 1
    return out


def picture(hw, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)


def as_set(points):
    return {tuple(p) for p in np.asarray(points).tolist()}


def enclosed_holes(mask):
    """Pixels not in ``mask`` that cannot reach the border through non-mask pixels (4-connected flood fill)."""
    outside = np.zeros(mask.shape, dtype=bool)
    free = mask == 0
    stack = [(y, x) for y in range(mask.shape[0]) for x in (0, mask.shape[1] - 1) if free[y, x]]
    stack += [(y, x) for x in range(mask.shape[1]) for y in (0, mask.shape[0] - 1) if free[y, x]]
    while stack:
        y, x = stack.pop()
        if outside[y, x] or not free[y, x]:
            continue
        outside[y, x] = True
        stack += [(y + dy, x + dx) for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))
                  if 0 <= y + dy < mask.shape[0] and 0 <= x + dx < mask.shape[1]]
    return free & ~outside


def test_one_pair_moves_the_region_by_its_displacement():
    hw, d = (64, 64), (9, -5)
    region = disc(hw, 25, 30, 8)
    plan = bidirectional_warp(region, [[25, 30]], [[25 + d[0], 30 + d[1]]], kernel=0)
    np.testing.assert_array_equal(plan.target_xy - plan.source_xy, np.broadcast_to(d, plan.source_xy.shape))
    np.testing.assert_array_equal(plan.moved_mask, shifted(region, *d).astype(bool))
    image = picture(hw)
    warped = apply_warp(image, plan)
    ys, xs = np.nonzero(region)
    np.testing.assert_array_equal(warped[ys + d[1], xs + d[0]], image[ys, xs])
    untouched = ~plan.moved_mask
    np.testing.assert_array_equal(warped[untouched], image[untouched])
    # Kernel 0: exactly the uncovered part of the old region, no dilation, no band.
    np.testing.assert_array_equal(plan.inpaint_mask, (region > 0) & ~shifted(region, *d).astype(bool))


def test_stretched_region_has_no_holes():
    # Two handles pulled apart: a forward map alone would spread the pixels and leave gaps.
    hw = (96, 96)
    region = disc(hw, 48, 48, 14)
    plan = bidirectional_warp(region, [[38, 48], [58, 48]], [[20, 48], [76, 48]], kernel=0)
    assert plan.moved_mask.sum() > region.sum() * 1.5  # it did stretch
    assert not enclosed_holes(plan.moved_mask).any()
    # The forward half alone (each region pixel pushed to where it goes) does leave holes: the test can fail.
    ys, xs = np.nonzero(region)
    pixels = torch.from_numpy(np.stack([xs, ys], 1).astype(np.float32))
    handles = torch.tensor([[38.0, 48.0], [58.0, 48.0]])
    landed = idw_move(pixels, handles, torch.tensor([[20.0, 48.0], [76.0, 48.0]]) - handles).long().numpy()
    forward = np.zeros(hw, dtype=np.uint8)
    forward[landed[:, 1], landed[:, 0]] = 1
    assert enclosed_holes(forward).any()


def test_handle_outside_every_region_is_refused_naming_the_pair():
    region = disc((64, 64), 20, 20, 6)
    with pytest.raises(ValueError, match=r"pair 2: the handle \(50, 50\) lies in no region"):
        bidirectional_warp(region, [[20, 20], [50, 50]], [[25, 25], [40, 40]])


def test_handle_between_pixels_is_refused():
    region = disc((64, 64), 20, 20, 6)
    with pytest.raises(ValueError, match=r"pair 1: the handle \(20.5, 20\) is not on a whole pixel"):
        bidirectional_warp(region, [[20.5, 20]], [[25, 25]])


def test_empty_region_is_refused():
    with pytest.raises(ValueError, match="region mask is empty"):
        bidirectional_warp(np.zeros((32, 32)), [[5, 5]], [[9, 9]])


@pytest.mark.parametrize("handles, targets, message", [
    ([[20, 20]], [[float("nan"), 3]], "pair 1: the target"),
    ([[20, 20], [float("inf"), 3]], [[1, 1], [2, 2]], "pair 2: the handle"),
    ([[20, 20]], [[20, 1e9]], "pair 1: the target .* beyond the 64x64 image"),
    ([[20, 20]], [[-70, 20]], "pair 1: the target"),
    ([], [], "no handle->target pairs"),
    ([[20, 20]], [], r"differ in number \(1 and 0\)"),
])
def test_bad_points_are_refused(handles, targets, message):
    with pytest.raises(ValueError, match=message):
        bidirectional_warp(disc((64, 64), 20, 20, 6), handles, targets)


def test_targets_up_to_one_image_beyond_the_border_are_accepted():
    region = disc((64, 64), 20, 20, 6)
    plan = bidirectional_warp(region, [[20, 20]], [[-44, 128]])
    assert len(plan.target_xy) == 0 and not plan.inpaint_mask.any()  # all of it left the image


def test_region_of_another_size_and_bad_kernels_are_refused():
    region = disc((64, 48), 20, 20, 6)
    with pytest.raises(ValueError, match="region mask is 48x64 but the image is 64x64"):
        bidirectional_warp(region, [[20, 20]], [[25, 25]], image_hw=(64, 64))
    with pytest.raises(ValueError, match=r"one \[H, W\] mask"):
        bidirectional_warp(np.zeros((2, 64, 48)), [[20, 20]], [[25, 25]])
    with pytest.raises(ValueError, match="kernel must be 0"):
        bidirectional_warp(region, [[20, 20]], [[25, 25]], kernel=-1)
    with pytest.raises(ValueError, match="wider than"):
        bidirectional_warp(region, [[20, 20]], [[25, 25]], kernel=65)
    for kernel in (10 ** 400, float("nan"), 2.5):  # past float's range, not a number, not whole
        with pytest.raises(ValueError, match=r"kernel must be a whole number of pixels, got (1000000000|nan|2.5)"):
            bidirectional_warp(region, [[20, 20]], [[25, 25]], kernel=kernel)
    with pytest.raises(ValueError, match="image is 64x64 but the warp was planned for 48x64"):
        apply_warp(picture((64, 64)), bidirectional_warp(region, [[20, 20]], [[25, 25]]))


def test_pixels_mapped_off_the_image_are_dropped():
    hw, d = (64, 64), (20, 0)
    region = disc(hw, 50, 30, 9)
    plan = bidirectional_warp(region, [[50, 30]], [[70, 30]], kernel=0)
    assert (plan.target_xy[:, 0] < 64).all() and (plan.target_xy >= 0).all()
    np.testing.assert_array_equal(plan.moved_mask, shifted(region, *d).astype(bool))
    assert len(plan.target_xy) < region.sum()
    np.testing.assert_array_equal(plan.source_xy, plan.target_xy - d)
    # Dragged the other way off the left edge: the sources of the moved pixels stay inside the image too.
    plan = bidirectional_warp(disc(hw, 8, 30, 9), [[8, 30], [8, 25]], [[-6, 30], [-6, 25]], kernel=0)
    assert ((plan.source_xy >= 0) & (plan.source_xy < 64)).all()


def test_kernel_zero_even_and_odd():
    hw = (64, 64)
    region = disc(hw, 30, 30, 10)
    handles, targets = [[30, 30], [36, 30]], [[38, 34], [44, 33]]
    plans = {k: bidirectional_warp(region, handles, targets, kernel=k) for k in (0, 4, 5, 9)}
    uncovered = (region > 0) & ~plans[0].moved_mask
    np.testing.assert_array_equal(plans[0].inpaint_mask, uncovered)
    assert (odd_kernel(4), odd_kernel(5), odd_kernel(0), plans[4].kernel) == (5, 5, 0, 5)
    np.testing.assert_array_equal(plans[4].inpaint_mask, plans[5].inpaint_mask)
    assert plans[5].inpaint_mask[uncovered].all() and plans[5].inpaint_mask.sum() > uncovered.sum()
    assert plans[9].inpaint_mask.sum() > plans[5].inpaint_mask.sum()
    # The band follows the moved outline: pixels on the moved region's edge are in the mask at kernel 5 only.
    edge = plans[0].moved_mask & ~np.pad(plans[0].moved_mask, 1)[2:, 1:-1]
    assert not plans[0].inpaint_mask[edge].any() and plans[5].inpaint_mask[edge].all()
    assert DEFAULTS.kernel == 5


def test_region_with_a_hole_moves_as_a_whole():
    # The region is the filled outer outline: the hole's pixels travel with the ring.
    hw, d = (64, 64), (7, 6)
    ring = disc(hw, 30, 30, 12) & (1 - disc(hw, 30, 30, 5))
    plan = bidirectional_warp(ring, [[30, 20]], [[37, 26]], kernel=0)
    np.testing.assert_array_equal(plan.moved_mask, shifted(disc(hw, 30, 30, 12), *d).astype(bool))
    image = picture(hw, 1)
    warped = apply_warp(image, plan)
    np.testing.assert_array_equal(warped[30 + 6, 30 + 7], image[30, 30])  # the hole's centre moved
    # A handle in the hole belongs to the region.
    assert len(bidirectional_warp(ring, [[30, 30]], [[37, 36]]).target_xy) == len(plan.target_xy)


def test_non_square_image():
    hw, d = (96, 160), (60, -10)
    region = disc(hw, 40, 50, 12)
    plan = bidirectional_warp(region, [[40, 50], [45, 52]], [[100, 40], [105, 42]], kernel=0)
    np.testing.assert_array_equal(plan.moved_mask, shifted(region, *d).astype(bool))
    image = picture(hw, 2)
    warped = apply_warp(image, plan)
    assert warped.shape == image.shape
    np.testing.assert_array_equal(warped[50 - 10, 40 + 60], image[50, 40])


def test_two_regions_move_independently():
    hw = (96, 96)
    a, b = disc(hw, 25, 25, 9), disc(hw, 70, 70, 11)
    da, db = (10, 4), (-6, 12)
    handles = [[22, 25], [28, 27], [66, 70], [74, 68]]
    moves = [da, da, db, db]
    plan = bidirectional_warp(a | b, handles, np.add(handles, moves), kernel=0)
    expected = shifted(a, *da).astype(bool) | shifted(b, *db).astype(bool)
    np.testing.assert_array_equal(plan.moved_mask, expected)
    move = plan.target_xy - plan.source_xy
    from_a = a[plan.source_xy[:, 1], plan.source_xy[:, 0]] > 0
    assert (move[from_a] == da).all() and (move[~from_a] == db).all()


def test_region_without_a_pair_stays():
    hw = (64, 64)
    a, b = disc(hw, 15, 15, 6), disc(hw, 45, 45, 6)
    plan = bidirectional_warp(a | b, [[45, 45]], [[40, 50]], kernel=3)
    assert not plan.inpaint_mask[a > 0].any() and not plan.moved_mask[a > 0].any()


def test_overlapping_regions_keep_the_later_write():
    hw = (48, 64)
    region = disc(hw, 16, 24, 7) | disc(hw, 48, 24, 7)
    plan = bidirectional_warp(region, [[16, 24], [48, 24]], [[30, 24], [34, 24]])
    assert len(plan.target_xy) > plan.moved_mask.sum()  # some pixels are written twice
    image = picture(hw, 3)
    expected = image.copy()
    for (sx, sy), (tx, ty) in zip(plan.source_xy, plan.target_xy):  # one pixel at a time, in plan order
        expected[ty, tx] = image[sy, sx]
    np.testing.assert_array_equal(apply_warp(image, plan), expected)
    tensor = torch.from_numpy(image).float()[None] / 255
    np.testing.assert_array_equal(apply_warp(tensor, plan)[0].numpy(), expected.astype(np.float32) / 255)


def test_image_kinds_and_preview():
    hw = (40, 56)
    region = disc(hw, 20, 20, 6)
    plan = bidirectional_warp(torch.from_numpy(region).float()[None], [[20, 20]], [[30, 24]])
    image = picture(hw, 4)
    warped = apply_warp(image, plan)
    assert warped.dtype == np.uint8 and not np.shares_memory(warped, image)
    tensor = torch.from_numpy(image).float()[None] / 255
    out = apply_warp(tensor, plan)
    assert out.shape == (1, *hw, 3) and out.dtype == torch.float32
    np.testing.assert_array_equal((out[0] * 255).round().byte().numpy(), warped)
    with pytest.raises(ValueError, match="batch of 2"):
        apply_warp(tensor.expand(2, -1, -1, -1), plan)
    preview = preview_warp(image, plan)
    area = plan.inpaint_mask
    np.testing.assert_array_equal(preview[~area], warped[~area])
    assert set(np.unique(preview[area])) <= {0, 255}
    ys, xs = np.nonzero(area)
    on_line = (ys % 10 == 0) | (xs % 10 == 0)
    assert (preview[ys[on_line], xs[on_line]] == 0).all() and (preview[ys[~on_line], xs[~on_line]] == 255).all()
    float_preview = preview_warp(tensor, plan)[0]
    assert set(float_preview[torch.from_numpy(area)].unique().tolist()) <= {0.0, 1.0}


def test_settings_are_frozen_with_the_official_defaults():
    s = InstantDragSettings()
    assert (s.kernel, s.neighbours, s.max_references, s.eps, s.match_distance) == (5, 4, 100, 1e-6, 1e-6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.kernel = 3


def test_splitting_rows_changes_no_bit():
    # Integer points and references take the split path; the result must equal one torch.cdist over all rows.
    generator = torch.Generator().manual_seed(0)
    points = torch.randint(-300, 1400, (CHUNK_ROWS * 2 + 7, 2), generator=generator).float()
    references = torch.randint(0, 1024, (100, 2), generator=generator).float()
    references[:10] = references[10:20]  # equal distances: ties for topk to break the same way
    moves = torch.randint(-60, 61, (100, 2), generator=generator).float()
    moves[:10] += 0.5
    whole = _idw_rows(points, references, moves, DEFAULTS)
    assert torch.equal(idw_move(points, references, moves), whole)


def test_one_whole_pixel_move_for_all_is_the_weighted_result():
    # The shortcut for equal integer moves gives what the weighting computes, rounding included.
    generator = torch.Generator().manual_seed(1)
    points = torch.randint(-200, 1200, (5000, 2), generator=generator).float()
    references = torch.randint(0, 1024, (100, 2), generator=generator).float()
    for move in ([37.0, -12.0], [-1000.0, 999.0], [0.0, 0.0]):
        moves = torch.tensor([move]).expand(100, 2)
        assert torch.equal(idw_move(points, references, moves), _idw_rows(points, references, moves, DEFAULTS))
    moves = torch.tensor([[10.5, 3.0]]).expand(100, 2)  # not whole pixels: the general path decides the ties
    assert torch.equal(idw_move(points, references, moves), _idw_rows(points, references, moves, DEFAULTS))


def test_plan_threads_leave_the_callers_setting():
    region = disc((64, 64), 30, 30, 12)
    handles, targets = [[30, 30], [36, 28]], [[38, 34.5], [44, 33]]
    before = torch.get_num_threads()
    one = bidirectional_warp(region, handles, targets)
    assert torch.get_num_threads() == before
    theirs = bidirectional_warp(region, handles, targets, settings=InstantDragSettings(threads=0))
    assert DEFAULTS.threads == 1 and torch.get_num_threads() == before
    assert np.array_equal(one.source_xy, theirs.source_xy) and np.array_equal(one.inpaint_mask, theirs.inpaint_mask)


def test_a_plan_leaves_other_threads_torch_thread_count_alone(monkeypatch):
    """While a plan runs in one thread: a thread that used torch before and one that first uses torch then (started
    mid-plan) both see torch's own count; the planning thread runs on one and gets its count back after."""
    seen, planning, measured = {}, threading.Event(), threading.Event()
    original = region_warp.idw_move

    def paused_idw_move(*args, **kwargs):  # the plan holds here, mid-way, until the others have looked
        if not planning.is_set():
            seen["planner during"] = torch.get_num_threads()
            seen["plan started"] = time.monotonic()
            planning.set()
            assert measured.wait(30)
        return original(*args, **kwargs)

    def plan():
        seen["planner before"] = torch.get_num_threads()
        bidirectional_warp(disc((600, 600), 300, 300, 200), [[300, 300], [320, 310]], [[340, 320], [350, 300]])
        seen["plan ended"], seen["planner after"] = time.monotonic(), torch.get_num_threads()

    def look(name):
        seen[name] = torch.get_num_threads()
        seen[name + " at"] = time.monotonic()

    monkeypatch.setattr(region_warp, "idw_move", paused_idw_move)
    old_user = threading.Thread(target=lambda: (torch.ones(1), planning.wait(30), look("old user")))
    old_user.start()
    planner = threading.Thread(target=plan)
    planner.start()
    assert planning.wait(30), "the plan never reached its torch work"
    newcomer = threading.Thread(target=look, args=("newcomer",))  # its first torch call comes mid-plan
    newcomer.start()
    newcomer.join(30)
    old_user.join(30)
    measured.set()
    planner.join(60)
    expected = torch.get_num_threads()
    assert expected > 1, "the test needs torch on more than one thread (tests/conftest.py sets 2)"
    assert seen["plan started"] < min(seen["newcomer at"], seen["old user at"]) < seen["plan ended"]
    assert (seen["newcomer"], seen["old user"], seen["planner before"], seen["planner after"]) == (expected,) * 4
    if thread_limit_available():  # where torch's OpenMP runtime is found (its Linux builds)
        assert seen["planner during"] == 1


def test_kept_references_stay_inside_past_float32_integers():
    """Float32 linspace rounds the last of 50 million indices up to 50 million itself (the IndexError a plan at
    16384 px met); below 2^24 references the picks are exactly the official ones."""
    for count in (2 ** 24 + 4, 50_265_448):
        assert torch.linspace(0, count - 1, 100).long().max() >= count  # what the official code indexes with
        keep = kept_references(count, 100)
        assert keep.max() == count - 1 and len(keep) == 100 and (keep[1:] > keep[:-1]).all()
    for count in (101, 5000, 2 ** 24):
        assert torch.equal(kept_references(count, 100), torch.linspace(0, count - 1, 100).long())


def test_a_weighting_over_more_than_2_24_references_runs():
    count = 2 ** 24 + 4
    references = torch.stack([torch.arange(count) % 4096, torch.arange(count) // 4096], 1).float()
    moves = torch.zeros(count, 2)
    moves[-1] = 8.0  # the last reference, kept, moves the point on it
    moved = idw_move(references[-1:].clone(), references, moves)
    assert moved.tolist() == [[3.0 + 8, 4096.0 + 8]]  # (3, 4096): the last of 2^24 + 4 pixels, 4096 a row


def test_filled_outline_stays_inside_it():
    # OpenCV before 4.11 spilled this quad's fill past its outline (opencv/opencv#26130), and so moved regions
    # by a pixel here and there; the official code pins such a version, the pack needs 4.11+ (see the module).
    quad = np.array([[44, 27], [7, 37], [7, 19], [38, 19]], dtype=np.int32)
    filled = _fill(quad, (50, 50))
    outline = np.zeros((50, 50), dtype=np.uint8)
    cv2.polylines(outline, [quad.reshape(-1, 1, 2)], True, 1)
    polygon = quad.reshape(-1, 1, 2).astype(np.float32)
    ys, xs = np.nonzero(filled)
    inside = np.array([cv2.pointPolygonTest(polygon, (float(x), float(y)), False) >= 0 for x, y in zip(xs, ys)])
    assert not ((~inside) & (outline[ys, xs] == 0)).any()
    assert tuple(int(v) for v in cv2.__version__.split(".")[:2]) >= (4, 11)


def test_weights_are_the_inverse_distances():
    # (2, 0) lies 2 px from the first reference and 8 px from the second: weights 1/2 and 1/8, normalised to
    # 0.8 and 0.2, so it moves by 0.8 * (4, 0) + 0.2 * (0, 4) = (3.2, 0.8) and rounds to (5, 1).
    references = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    moves = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
    points = torch.tensor([[2.0, 0.0], [5.0, 0.0], [10.0, 3.0]])
    # (5, 0): equal weights, (2, 2) -> (7, 2); (10, 3): 1/sqrt(109) and 1/3, normalised 0.2232 and 0.7768, so
    # (0.893, 3.107) -> (11, 6).
    assert idw_move(points, references, moves).tolist() == [[5.0, 1.0], [7.0, 2.0], [11.0, 6.0]]


def test_kernel_grows_the_uncovered_area_and_bands_the_moved_outline():
    # A rectangle moved clear of itself: the uncovered area is the whole old rectangle, grown by the kernel's
    # square (kernel // 2 on each side); the band is the moved outline drawn kernel thick, as the reference does.
    hw, (dx, dy) = (48, 64), (24, 2)
    region = np.zeros(hw, dtype=np.uint8)
    region[15:30, 10:20] = 1
    for kernel in (3, 5, 9):
        plan = bidirectional_warp(region, [[14, 20]], [[14 + dx, 20 + dy]], kernel=kernel)
        grow = kernel // 2
        expected = np.zeros(hw, dtype=bool)
        expected[15 - grow:30 + grow, 10 - grow:20 + grow] = True
        band = np.zeros(hw, dtype=np.uint8)
        corners = np.array([[10, 15], [10, 29], [19, 29], [19, 15]], dtype=np.int32) + [dx, dy]
        cv2.drawContours(band, [corners.reshape(-1, 1, 2)], -1, 1, kernel)
        np.testing.assert_array_equal(plan.inpaint_mask, expected | (band > 0))


def test_moved_pixels_that_look_back_off_the_image_are_dropped():
    # Stretched along the left border, 15 pixels of the moved outline's fill map back to x < 0: they are not
    # written (the official bi_warp writes 207 pixels here, parity case stretch_back_off_left_border).
    hw = (48, 48)
    region = disc(hw, 3, 32, 8)
    plan = bidirectional_warp(region, [[3, 24], [0, 31]], [[4, 12], [7, 37]], kernel=0)
    assert len(plan.target_xy) == 207 and plan.moved_mask.sum() == 207
    assert ((plan.source_xy >= 0) & (plan.source_xy < 48)).all()
