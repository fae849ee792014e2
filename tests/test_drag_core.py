"""Tests for core/drag.py: tracking, sparse sampling, motion supervision vs a dense reference, and the loop."""

import math

import pytest
import torch
import torch.nn.functional as F

from core.drag import DragProblem, DragResult, DragRun, optimize_drag_latent
from core.drag_model import at_sigma, guided_features
from core.features import sample_upsampled
from core.grids import grid_points_to_image, image_points_to_grid, mask_to_latent_nearest, supervision_grid_hw
from core.motion import CurrentPatchPull, motion_supervision_loss, track_points
from core.settings import DragDiffusionSettings

# ---------------------------------------------------------------------------------------------------------------------
# Independent dense reference (what the reference code computes, for interior handles)

def shifted_patch_dense(up, top, left, height, width):
    """Bilinear read of a height x width window of ``up`` [C,H,W] whose top-left corner is at float (top, left)."""
    y0, x0 = math.floor(top), math.floor(left)
    ay, ax = top - y0, left - x0

    def win(dy, dx):
        return up[:, y0 + dy:y0 + dy + height, x0 + dx:x0 + dx + width]

    return ((1 - ay) * (1 - ax) * win(0, 0) + ay * (1 - ax) * win(1, 0)
            + (1 - ay) * ax * win(0, 1) + ay * ax * win(1, 1))


def motion_supervision_loss_dense(features, grid_hw, handles, targets, r_m=1, reach_threshold=2.0):
    """Upsample the whole map, then slice patches like the reference (valid for interior handles only)."""
    up = F.interpolate(features.reshape(1, -1, *features.shape[-2:]), size=tuple(grid_hw), mode="bilinear",
                       align_corners=False)[0]
    side = 2 * r_m + 1
    loss = up.new_zeros(())
    for (hr, hc), (tr, tc) in zip(handles.tolist(), targets.tolist()):
        norm = math.hypot(tr - hr, tc - hc)
        if norm < reach_threshold:
            continue
        dr, dc = (tr - hr) / norm, (tc - hc) / norm
        anchor = up[:, hr - r_m:hr + r_m + 1, hc - r_m:hc + r_m + 1].detach()
        moved = shifted_patch_dense(up, hr - r_m + dr, hc - r_m + dc, side, side)
        loss = loss + side * side * F.l1_loss(moved, anchor)
    return loss


def track_points_loop(handle_feats, feats, handles, radius):
    """Per-point reference-style tracking (slice the clipped window, flat argmin)."""
    _, hs, ws = feats.shape
    out = []
    for f0, (r, c) in zip(handle_feats, handles.tolist()):
        r1, r2 = max(0, r - radius), min(hs, r + radius + 1)
        c1, c2 = max(0, c - radius), min(ws, c + radius + 1)
        dist = (feats[:, r1:r2, c1:c2] - f0[:, None, None]).abs().sum(0)
        i = int(dist.flatten().argmin())
        out.append([r1 + i // dist.shape[1], c1 + i % dist.shape[1]])
    return torch.tensor(out)


# ---------------------------------------------------------------------------------------------------------------------
# Points

def test_point_conversion_reference_rounding_and_clamp():
    grid = supervision_grid_hw((512, 768))
    assert grid == (256, 384)
    pts = torch.tensor([[100.0, 51.0], [0.0, 0.0], [768.0, 512.0], [3.0, 5.0]])
    rc = image_points_to_grid(pts, (512, 768), grid)
    # y=51 -> 25.5 -> 26 (half to even); x=3 -> 1.5 -> 2; the far edge is clamped into the grid.
    assert rc.tolist() == [[26, 50], [0, 0], [255, 383], [2, 2]]
    assert rc.dtype == torch.long
    back = grid_points_to_image(torch.tensor([[26, 50], [255, 383]]), (512, 768), grid)
    assert back.tolist() == [[100.0, 52.0], [766.0, 510.0]]
    # odd image size: sup = int(H/2)
    assert supervision_grid_hw((511, 333)) == (255, 166)


def test_mask_to_latent_nearest_twice():
    mask = torch.zeros(64, 48)
    mask[16:48, 8:40] = 255
    m = mask_to_latent_nearest(mask, (32, 24), (8, 6))
    assert m.shape == (1, 1, 8, 6)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert m[0, 0, 2:6, 1:5].eq(1).all() and m.sum() == 16


# ---------------------------------------------------------------------------------------------------------------------
# (a) tracking

def _shifted_pair(c, hs, ws, shift, pad=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    big = torch.randn(c, hs + 2 * pad, ws + 2 * pad, generator=g)
    f0 = big[:, pad:pad + hs, pad:pad + ws]
    dy, dx = shift
    f1 = big[:, pad - dy:pad - dy + hs, pad - dx:pad - dx + ws]  # f1[r, c] = f0[r - dy, c - dx]
    return f0, f1


@pytest.mark.parametrize("shift", [(2, 1), (-3, 3), (0, -2), (1, 0)])
def test_tracking_recovers_integer_shift_including_borders(shift):
    hs, ws = 20, 23
    f0, f1 = _shifted_pair(16, hs, ws, shift)
    dy, dx = shift
    border = torch.tensor([[0, 0], [hs - 1, ws - 1], [0, ws - 1], [hs - 1, 0], [2, ws - 2], [hs - 1, 9], [7, 0]])
    # handles on the border and handles whose match lies on the border, kept if both ends are inside the grid
    handles = torch.cat([torch.tensor([[10, 11]]), border, border - torch.tensor([dy, dx])])
    moved = handles + torch.tensor([dy, dx])
    both = torch.cat([handles, moved], dim=1)
    ok = ((both[:, 0::2] >= 0) & (both[:, 0::2] < hs) & (both[:, 1::2] >= 0) & (both[:, 1::2] < ws)).all(1)
    handles, moved = handles[ok], moved[ok]
    on_border = (handles[:, 0] == 0) | (handles[:, 0] == hs - 1) | (handles[:, 1] == 0) | (handles[:, 1] == ws - 1)
    assert on_border.sum() >= 3 and len(handles) >= 6
    handle_feats = f0[:, handles[:, 0], handles[:, 1]].t()
    assert torch.equal(track_points(handle_feats, f1, handles, radius=3), moved)
    sampler = lambda r, c: f1[:, r, c]  # noqa: E731
    assert torch.equal(track_points(handle_feats, sampler, handles, radius=3, grid_hw=(hs, ws)), moved)


def test_tracking_matches_per_point_loop_on_random_maps():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(8, 13, 11, generator=g)
    handles = torch.tensor([[0, 0], [12, 10], [6, 5], [1, 9], [11, 2]])
    handle_feats = torch.randn(5, 8, generator=g)
    for radius in (1, 3, 5):
        expect = track_points_loop(handle_feats, feats, handles, radius)
        assert torch.equal(track_points(handle_feats, feats, handles, radius=radius), expect)


def test_tracking_ties_pick_first_in_row_major_order():
    hs, ws = 12, 12
    flat = torch.zeros(4, hs, ws)
    handles = torch.tensor([[5, 5], [0, 1], [hs - 1, ws - 1]])
    # everything ties: first position of the clipped window
    got = track_points(torch.zeros(3, 4), flat, handles, radius=3)
    assert got.tolist() == [[2, 2], [0, 0], [hs - 4, ws - 4]]
    # two exact matches in the window: (4, 7) comes before (6, 3) in row-major order
    feats = torch.randn(4, hs, ws, generator=torch.Generator().manual_seed(2)) + 10.0
    target = torch.ones(4)
    feats[:, 6, 3] = target
    feats[:, 4, 7] = target
    got = track_points(target[None], feats, torch.tensor([[5, 5]]), radius=3)
    assert got.tolist() == [[4, 7]]


# ---------------------------------------------------------------------------------------------------------------------
# (b) sparse sampling equals dense F.interpolate

@pytest.mark.parametrize("feat_hw,grid_hw", [((7, 9), (15, 17)), ((64, 64), (256, 256)), ((7, 9), (5, 4)),
                                              ((63, 48), (252, 192)), ((1, 3), (4, 7))])
def test_sample_upsampled_equals_dense(feat_hw, grid_hw):
    g = torch.Generator().manual_seed(3)
    feat = torch.randn(6, *feat_hw, generator=g)
    dense = F.interpolate(feat[None], size=grid_hw, mode="bilinear", align_corners=False)[0]
    # every position (covers all edges and corners) ...
    rows, cols = torch.meshgrid(torch.arange(grid_hw[0]), torch.arange(grid_hw[1]), indexing="ij")
    assert (sample_upsampled(feat, grid_hw, rows, cols) - dense).abs().max() <= 1e-6
    # ... and random positions in an arbitrary shape
    r = torch.randint(0, grid_hw[0], (3, 50), generator=g)
    c = torch.randint(0, grid_hw[1], (3, 50), generator=g)
    got = sample_upsampled(feat, grid_hw, r, c)
    assert got.shape == (6, 3, 50)
    assert (got - dense[:, r, c]).abs().max() <= 1e-6


def test_sample_upsampled_float64_and_half():
    feat = torch.randn(3, 7, 9, dtype=torch.float64)
    dense = F.interpolate(feat[None], size=(15, 17), mode="bilinear", align_corners=False)[0]
    r, c = torch.meshgrid(torch.arange(15), torch.arange(17), indexing="ij")
    assert (sample_upsampled(feat, (15, 17), r, c) - dense).abs().max() <= 1e-12
    half = sample_upsampled(feat.half(), (15, 17), r, c)
    assert half.dtype == torch.float32  # computed in at least fp32
    assert (half - dense).abs().max() <= 1e-2


# ---------------------------------------------------------------------------------------------------------------------
# (c) motion supervision loss and gradients equal the dense reference

def _interior_case(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    grid_hw = (29, 35)
    handles = torch.tensor([[10, 12], [5, 20], [20, 8], [14, 14], [22, 30], [8, 3]])
    targets = torch.tensor([[17, 19], [5, 27], [12, 8], [15, 15], [25, 26], [3, 3]])  # diag, straight, up, <2, ...
    z = torch.randn(1, 4, 8, 9, generator=g, dtype=dtype)
    weight = torch.randn(12, 4, 3, 3, generator=g, dtype=dtype) * 0.3
    return grid_hw, handles, targets, z, weight


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_motion_loss_and_grads_match_dense(dtype, tol):
    grid_hw, handles, targets, z, weight = _interior_case(4, dtype)
    feat = F.conv2d(z, weight, padding=1).detach().requires_grad_(True)

    sparse = motion_supervision_loss(feat, grid_hw, handles, targets, CurrentPatchPull(1))
    (g_sparse,) = torch.autograd.grad(sparse, feat)
    dense = motion_supervision_loss_dense(feat, grid_hw, handles, targets, r_m=1)
    (g_dense,) = torch.autograd.grad(dense, feat)
    assert sparse.item() > 0
    assert abs(sparse.item() - dense.item()) <= tol * max(1.0, abs(dense.item())), (sparse.item(), dense.item())
    assert (g_sparse - g_dense).abs().max() <= tol, (g_sparse - g_dense).abs().max()

    # and through a conv to a latent
    zl = z.clone().requires_grad_(True)
    (gz_sparse,) = torch.autograd.grad(motion_supervision_loss(F.conv2d(zl, weight, padding=1), grid_hw, handles,
                                                               targets), zl)
    (gz_dense,) = torch.autograd.grad(motion_supervision_loss_dense(F.conv2d(zl, weight, padding=1), grid_hw,
                                                                    handles, targets), zl)
    assert gz_sparse.abs().max() > 0
    assert (gz_sparse - gz_dense).abs().max() <= tol, (gz_sparse - gz_dense).abs().max()


def test_motion_loss_r_m_2_and_skips_reached_pairs():
    grid_hw, handles, targets, z, weight = _interior_case(5, torch.float64)
    feat = F.conv2d(z, weight, padding=1)
    a = motion_supervision_loss(feat, grid_hw, handles, targets, CurrentPatchPull(2))
    b = motion_supervision_loss_dense(feat, grid_hw, handles, targets, r_m=2)
    assert abs(a.item() - b.item()) <= 1e-10
    # all pairs within reach -> exactly zero
    assert motion_supervision_loss(feat, grid_hw, handles, handles + 1).item() == 0.0


# ---------------------------------------------------------------------------------------------------------------------
# (d) borders: no crash, finite, full patch (= dense reference on a replicate-padded map)

def test_border_handles_moving_outward_use_replicate_padding():
    g = torch.Generator().manual_seed(6)
    grid_hw = (16, 18)
    feat = torch.randn(1, 5, 7, 9, generator=g, requires_grad=True)
    handles = torch.tensor([[1, 10], [0, 0], [15, 17], [14, 0], [8, 17], [0, 9]])
    targets = torch.tensor([[0, 4], [-4, -3], [19, 20], [18, -2], [10, 25], [-6, 9]])  # outward / off-grid
    loss = motion_supervision_loss(feat, grid_hw, handles, targets)
    assert torch.isfinite(loss) and loss.item() > 0
    (grad,) = torch.autograd.grad(loss, feat)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0

    pad = 3
    up = F.interpolate(feat, size=grid_hw, mode="bilinear", align_corners=False)
    padded = F.pad(up, (pad, pad, pad, pad), mode="replicate")
    expect = torch.zeros(())
    for hnd, tgt in zip(handles, targets):
        # dense reference on the padded *grid* map, one pair at a time (identity-upsampling via a 1x grid)
        up_pad = padded[0]
        norm = (tgt - hnd).double().norm().item()
        d = ((tgt - hnd).double() / norm).tolist()
        hr, hc = (hnd + pad).tolist()
        anchor = up_pad[:, hr - 1:hr + 2, hc - 1:hc + 2]
        moved = shifted_patch_dense(up_pad, hr - 1 + d[0], hc - 1 + d[1], 3, 3)
        assert anchor.shape[-2:] == (3, 3) and moved.shape[-2:] == (3, 3)
        expect = expect + 9 * F.l1_loss(moved, anchor)
    assert abs(loss.item() - expect.item()) <= 1e-5, (loss.item(), expect.item())


# ---------------------------------------------------------------------------------------------------------------------
# (e)-(g) the optimisation loop on a synthetic differentiable backend

class SyntheticBackend:
    """features: local conv of the latent plus a global (spatial-mean) term, so motion supervision has gradients on
    every latent entry; denoised: a smooth nonlinear function of the latent. Feature map is at latent resolution."""

    def __init__(self, seed=0, channels=4, feat_channels=16):
        g = torch.Generator().manual_seed(seed)
        self.w_local = torch.randn(feat_channels, channels, 3, 3, generator=g) * 0.4
        self.w_global = torch.randn(feat_channels, channels, generator=g) * 0.4
        self.calls = 0

    def __call__(self, x, full=True):
        self.calls += 1
        feats = F.conv2d(x, self.w_local, padding=1) + torch.einsum("fc,bc->bf", self.w_global,
                                                                    x.mean((2, 3)))[..., None, None]
        denoised = 0.6 * x + 0.2 * torch.tanh(x)
        return denoised, feats


def _smooth_latent(seed, hw=(16, 16)):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1, 4, hw[0] // 4, hw[1] // 4, generator=g)
    z = F.interpolate(z, size=hw, mode="bicubic", align_corners=False)
    return (z + 0.3 * torch.randn(1, 4, *hw, generator=g)) * 3.0  # sigma-space scale at sigma ~3


GRID = (32, 32)  # image 64x64, latent 16x16 (features at latent resolution, upsampled x2 like SD1.5 at 512)
SIGMA, SIGMA_NEXT = 3.09, 2.87


RUN_OPTIONS = {"vp_units", "loss_scaling", "truncate", "dense_features"}


def drag(forward, z, handles, targets, *, grid_hw=GRID, mask=None, sigma=SIGMA, sigma_next=SIGMA_NEXT,
         callback=None, should_stop=None, **options):
    """optimize_drag_latent with its settings and run options given by name."""
    settings = DragDiffusionSettings(**{k: v for k, v in options.items() if k not in RUN_OPTIONS})
    run = DragRun(**{k: v for k, v in options.items() if k in RUN_OPTIONS})
    problem = DragProblem(handles=handles, targets=targets, grid_hw=grid_hw, mask_latent=mask)
    return optimize_drag_latent(forward, z, sigma, sigma_next, problem, settings, run, callback, should_stop)


def _run(z, mask=None, steps=80, learning_rate=0.05, backend=None, **kw):
    backend = backend or SyntheticBackend()
    handles = torch.tensor([[12, 10], [20, 14]])
    targets = torch.tensor([[12, 19], [20, 22]])
    result = drag(backend, z, handles, targets, mask=mask, steps=steps, learning_rate=learning_rate, **kw)
    return result, handles, targets, backend


def _box_mask():
    mask = torch.zeros(16, 16)
    mask[3:13, 2:14] = 1.0  # editable box around the drags (latent cells)
    return mask


def test_loop_moves_handles_and_respects_mask():
    z = _smooth_latent(0)
    mask = _box_mask()
    result, handles, targets, backend = _run(z, mask=mask)
    assert isinstance(result, DragResult)
    start = (targets - handles).double().norm(dim=1).mean().item()
    end = (targets - result.handles).double().norm(dim=1).mean().item()
    assert end <= 0.5 * start, f"mean handle distance {start:.2f} -> {end:.2f}, handles {result.handles.tolist()}"
    assert result.steps_run == len(result.losses) > 0
    assert all(math.isfinite(v) for v in result.losses)

    change = (result.latent - z).abs()[0].mean(0)
    inside = change[mask.bool()].mean().item()
    outside = change[~mask.bool()].mean().item()
    ratio = outside / inside
    # without a mask the same run changes the outside far more: the term is doing the work
    free, *_ = _run(z, mask=None)
    free_change = (free.latent - z).abs()[0].mean(0)
    free_ratio = free_change[~mask.bool()].mean().item() / free_change[mask.bool()].mean().item()
    assert ratio < 0.1, f"outside/inside latent change ratio {ratio:.4f} (no-mask run: {free_ratio:.4f})"
    assert ratio < 0.5 * free_ratio, f"mask ratio {ratio:.4f} vs no-mask ratio {free_ratio:.4f}"


def test_loop_early_stop_callback_and_should_stop():
    z = _smooth_latent(1)
    # already at the targets: stops on the first check, no update, latent unchanged
    backend = SyntheticBackend()
    h = torch.tensor([[10, 10]])
    res = drag(backend, z, h, h + torch.tensor([[1, 1]]))
    assert res.steps_run == 0 and torch.equal(res.latent, z) and backend.calls == 2

    seen = []
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 3

    res, *_ = _run(z, steps=10, callback=lambda p: seen.append((p.update, p.loss, p.handles.tolist())),
                   should_stop=should_stop)
    assert res.steps_run == 3 and [s[0] for s in seen] == [1, 2, 3]
    assert all(isinstance(s[1], torch.Tensor) and s[1].ndim == 0 for s in seen)


def test_empty_and_none_mask_mean_everything_editable():
    z = _smooth_latent(2)
    none_res, *_ = _run(z, mask=None, steps=6)
    zero_res, *_ = _run(z, mask=torch.zeros(16, 16), steps=6)
    ones_res, *_ = _run(z, mask=torch.ones(1, 1, 16, 16), steps=6)
    masked_res, *_ = _run(z, mask=_box_mask(), steps=6)
    assert torch.equal(none_res.latent, zero_res.latent)
    assert torch.equal(none_res.latent, ones_res.latent)  # all editable: term is identically zero
    assert not torch.equal(none_res.latent, masked_res.latent)
    assert none_res.losses == zero_res.losses


def test_the_first_update_has_no_mask_term_as_in_the_reference():
    """Issue 17, defect 0: the reference computes the mask term's reference from the very latent it optimises, so
    the first update's mask term is exactly 0 and so is its gradient: that update equals the unmasked one, loss and
    latent, bit for bit."""
    z = _smooth_latent(6)
    masked, *_ = _run(z, mask=_box_mask(), steps=1)
    free, *_ = _run(z, mask=None, steps=1)
    assert masked.steps_run == free.steps_run == 1
    assert masked.losses == free.losses
    assert torch.equal(masked.latent, free.latent)
    later, *_ = _run(z, mask=_box_mask(), steps=2)  # from the second update on the mask term acts
    free_later, *_ = _run(z, mask=None, steps=2)
    assert not torch.equal(later.latent, free_later.latent)


def test_runs_under_outer_inference_mode_and_keeps_input():
    z = _smooth_latent(3)
    plain, *_ = _run(z, mask=_box_mask(), steps=5)
    backend = SyntheticBackend()  # weights are ordinary tensors, as a loaded model's are
    with torch.inference_mode():
        z_inf = z.clone()
        mask_inf = _box_mask()
        res, *_ = _run(z_inf, mask=mask_inf, steps=5, backend=backend)
        assert z_inf.is_inference() and res.steps_run == 5
    assert res.steps_run == 5
    assert torch.equal(z_inf, z)  # input untouched
    assert torch.allclose(res.latent, plain.latent, atol=1e-6)


def test_vp_units_match_reference_parametrisation():
    """vp_units=True must equal Adam on the VP latent z = x/sqrt(1+s^2) with the mask term on z_next (reference)."""
    x = _smooth_latent(4)
    mask = _box_mask()
    backend = SyntheticBackend()
    handles, targets = torch.tensor([[12, 10]]), torch.tensor([[12, 19]])
    res = drag(backend, x, handles, targets, mask=mask, steps=4, learning_rate=0.01)
    # hand-written reference loop: Adam on the VP latent, dense features, per-point tracking; the reference latent
    # is the VP latent itself, so its next step is taken from z / s (the round trip the parameter takes)
    s, s_next = (1 + SIGMA ** 2) ** -0.5, (1 + SIGMA_NEXT ** 2) ** -0.5

    def step_next(xx, den):
        return xx + (SIGMA_NEXT - SIGMA) * (xx - den) / SIGMA

    with torch.no_grad():
        x_round_trip = (x * s) / s
        den0, f0 = backend(x_round_trip)
        ref_next = step_next(x_round_trip, den0) * s_next
        up0 = F.interpolate(f0, size=GRID, mode="bilinear", align_corners=False)[0]
        hf = up0[:, handles[:, 0], handles[:, 1]].t()
    zvp = (x * s).clone().requires_grad_(True)
    opt = torch.optim.Adam([zvp], lr=0.01)
    h = handles.clone()
    for k in range(4):
        den, feat = backend(zvp / s)
        if k:
            up = F.interpolate(feat.detach(), size=GRID, mode="bilinear", align_corners=False)[0]
            h = track_points_loop(hf, up, h, 3)
        loss = motion_supervision_loss_dense(feat, GRID, h, targets)
        loss = loss + 0.1 * ((step_next(zvp / s, den) * s_next - ref_next) * (1 - mask)).abs().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(res.latent, zvp.detach() / s, atol=1e-5), (res.latent - zvp.detach() / s).abs().max()


# ---------------------------------------------------------------------------------------------------------------------
# The whole loop on a real (tiny, random) UNet through the diffusers backend

def test_drag_on_a_tiny_unet_moves_the_handle_and_keeps_the_outside():
    from core.backends.diffusers_unet import DiffusersUNetDenoiser, feature_denoiser
    from core.ddim import ddim_invert
    from core.schedules import ddim_sigmas
    from tests.support.tiny_models import scheduler_config, text_embedding, tiny_unet

    backend = DiffusersUNetDenoiser(tiny_unet(seed=0), scheduler_config())
    sigmas = ddim_sigmas(backend.sigma_table, 10, 0.7)
    size = 24
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    blob = torch.exp(-((rows - 9) ** 2 + (cols - 9) ** 2) / 8.0)  # a synthetic object on a flat background
    clean = torch.stack([2 * blob - 0.5, -blob, 1.5 * blob, torch.full_like(blob, 0.3)])[None]
    cond = text_embedding("a photo")
    z = ddim_invert(backend.denoiser(cond), clean, sigmas.flip(0))[-1]
    image_hw = (size * 8, size * 8)
    grid_hw = supervision_grid_hw(image_hw)
    handles = image_points_to_grid([[72, 72]], image_hw, grid_hw)
    targets = image_points_to_grid([[96, 104]], image_hw, grid_hw)
    mask = torch.zeros(size, size)
    mask[4:19, 4:19] = 1
    sigma, sigma_next = float(sigmas[0]), float(sigmas[1])
    with feature_denoiser(backend, cond) as forward:
        result = drag(at_sigma(forward, sigma), z, handles, targets, grid_hw=grid_hw, mask=mask, sigma=sigma,
                      sigma_next=sigma_next, steps=60, learning_rate=0.02)
    before = (targets - handles).double().norm(dim=1).mean()
    after = (targets - result.handles).double().norm(dim=1).mean()
    # observed 20.0 -> 1.4 (arrived after 59 steps)
    assert after <= before / 2, f"handle distance {before:.2f} -> {after:.2f} grid px"
    change = (result.latent - z).abs()[0].mean(0)
    inside, outside = change[mask > 0].mean(), change[mask == 0].mean()
    assert inside >= 4 * outside, f"latent change inside {inside:.4f} vs outside {outside:.4f}"  # observed 6.4x


# ---------------------------------------------------------------------------------------------------------------------
# The pack's drag vs the reference-equivalent drag (bench/: full forward, trainable UNet weights, dense features)

def _tiny_unet_drag(masked, fast, steps=8):
    from core.backends.diffusers_unet import DiffusersUNetDenoiser, feature_denoiser
    from core.ddim import ddim_invert
    from core.schedules import ddim_sigmas
    from tests.support.tiny_models import scheduler_config, text_embedding, tiny_unet

    unet = tiny_unet(seed=0)
    backend = DiffusersUNetDenoiser(unet, scheduler_config())
    sigmas = ddim_sigmas(backend.sigma_table, 10, 0.7)
    clean = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    cond = text_embedding("a photo")
    z = ddim_invert(backend.denoiser(cond), clean, sigmas.flip(0))[-1]
    handles, targets = torch.tensor([[10, 9], [20, 22]]), torch.tensor([[18, 20], [9, 12]])
    mask = torch.zeros(16, 16)
    mask[2:14, 2:14] = 1
    last_block_calls = []
    hook = unet.up_blocks[-1].register_forward_hook(lambda *args: last_block_calls.append(1))
    if not fast:
        unet.requires_grad_(True)  # as the official code leaves it: backward also fills weight gradients
    sigma, sigma_next = float(sigmas[0]), float(sigmas[1])
    try:
        with feature_denoiser(backend, cond) as forward:
            result = drag(at_sigma(forward, sigma), z, handles, targets, grid_hw=(32, 32),
                          mask=mask if masked else None, sigma=sigma, sigma_next=sigma_next, steps=steps,
                          learning_rate=0.05, reach_threshold=0.0, truncate=fast, dense_features=not fast)
    finally:
        hook.remove()
    weight_grads = sum(p.grad is not None for p in unet.parameters())
    return result, len(last_block_calls), weight_grads


@pytest.mark.parametrize("masked", [False, True])
def test_fast_drag_equals_the_reference_equivalent_drag(masked):
    fast, fast_last_calls, fast_grads = _tiny_unet_drag(masked, fast=True)
    ref, ref_last_calls, ref_grads = _tiny_unet_drag(masked, fast=False)
    assert fast.steps_run == ref.steps_run == 8
    assert torch.equal(fast.handles, ref.handles)
    assert not torch.equal(fast.latent, ref.latent) or masked  # different arithmetic, same function
    torch.testing.assert_close(fast.latent, ref.latent, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.tensor(fast.losses), torch.tensor(ref.losses), rtol=1e-5, atol=1e-6)
    assert fast_grads == 0 and ref_grads > 0
    # the reference runs the whole UNet every iteration; without a mask term the pack stops after the feature block
    assert ref_last_calls == 1 + 8
    assert fast_last_calls == (1 + 8 if masked else 0)


def test_loss_scaling_is_exact_in_fp32_and_rescues_fp16_underflow():
    z = _smooth_latent(5)
    plain, *_ = _run(z, mask=_box_mask(), steps=5)
    scaled, *_ = _run(z, mask=_box_mask(), steps=5, loss_scaling=True)
    assert torch.equal(plain.latent, scaled.latent)  # a power-of-two scale is exact in fp32

    class HalfBackend(SyntheticBackend):
        """Features whose last op runs in fp16 at a small scale: its gradient (about 1/C times the scale) is below
        fp16's smallest subnormal, as deep in a real fp16 UNet, unless the loss is scaled."""

        def __call__(self, x, full=True):
            denoised, feats = super().__call__(x, full)
            return denoised, feats.half() * 2e-8

    unscaled, *_ = _run(z, steps=3, backend=HalfBackend())
    rescued, *_ = _run(z, steps=3, backend=HalfBackend(), loss_scaling=True)
    assert all(loss > 0 for loss in unscaled.losses)
    # Adam with an all-zero gradient does not move (up to the VP-unit round trip)
    assert (unscaled.latent - z).abs().max() < 1e-5, "the fp16 gradient was expected to underflow to zero"
    assert (rescued.latent - z).abs().max() > 1e-3


def test_guided_features_mix_as_the_reference_generated_image_mode():
    """``cat([(1 - k) F_u, k F_c])`` over channels with ``k = s / (2s - 1)``: 15/28 at s = 7.5, worked by hand."""
    uncond, cond = torch.full((1, 2, 1, 1), 1.0), torch.full((1, 2, 1, 1), 2.0)
    expected = torch.tensor([13 / 28, 13 / 28, 30 / 28, 30 / 28]).reshape(1, 4, 1, 1)
    assert torch.allclose(guided_features(cond, uncond, 7.5), expected, rtol=0, atol=1e-7)
    k = 3.0 / 5.0  # s = 3
    assert torch.allclose(guided_features(cond, uncond, 3.0),
                          torch.tensor([1 - k, 1 - k, 2 * k, 2 * k]).reshape(1, 4, 1, 1), rtol=0, atol=1e-7)
    assert torch.equal(guided_features(cond, uncond, 1.0), cond) and torch.equal(guided_features(cond, None, 7.5), cond)
    with pytest.raises(ValueError, match="drag guidance must be 1 .* or above"):
        guided_features(cond, uncond, 0.5)  # the pole of k


# ---------------------------------------------------------------------------------------------------------------------
# The drag core split into start / update / schedule computes what the single loop did

@pytest.mark.parametrize("masked, reach", [(False, 0.0), (True, 0.0), (True, 3.0)])
def test_split_drag_core_equals_the_loop_it_replaced(masked, reach):
    """Bit for bit on a tiny UNet: handles, latent, losses, steps (also when it stops early on arrival)."""
    from core.backends.diffusers_unet import DiffusersUNetDenoiser, feature_denoiser
    from core.ddim import ddim_invert
    from core.schedules import ddim_sigmas
    from tests.legacy_drag import legacy_optimize_drag_latent
    from tests.support.tiny_models import scheduler_config, text_embedding, tiny_unet

    backend = DiffusersUNetDenoiser(tiny_unet(seed=0), scheduler_config())
    sigmas = ddim_sigmas(backend.sigma_table, 10, 0.7)
    cond = text_embedding("a photo")
    z = ddim_invert(backend.denoiser(cond), torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5)),
                    sigmas.flip(0))[-1]
    handles, targets = torch.tensor([[10, 9], [20, 22]]), torch.tensor([[13, 12], [17, 19]])
    mask = torch.zeros(16, 16)
    mask[2:14, 2:14] = 1
    sigma, sigma_next = float(sigmas[0]), float(sigmas[1])
    old_calls, new_calls = [], []
    with feature_denoiser(backend, cond) as forward:
        old = legacy_optimize_drag_latent(
            at_sigma(forward, sigma), z, sigma, sigma_next, handles, targets, grid_hw=(32, 32),
            mask_latent=mask if masked else None, steps=12, lr=0.05, reach_threshold=reach,
            callback=lambda step, loss, h: old_calls.append((step, float(loss), h.tolist())))
    with feature_denoiser(backend, cond) as forward:
        new = drag(at_sigma(forward, sigma), z, handles, targets, grid_hw=(32, 32), mask=mask if masked else None,
                   sigma=sigma, sigma_next=sigma_next, steps=12, learning_rate=0.05, reach_threshold=reach,
                   callback=lambda p: new_calls.append((p.update - 1, float(p.loss), p.handles.tolist())))
    seen = [old_calls, new_calls]
    assert new.steps_run == old.steps_run and (reach == 0.0) == (new.steps_run == 12), new.steps_run
    assert torch.equal(new.handles, old.handles) and torch.equal(new.latent, old.latent)
    assert new.losses == old.losses and seen[0] == seen[1]
