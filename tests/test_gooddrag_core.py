"""GoodDrag's schedule and its information-preserving motion supervision (core/gooddrag.py, core/drag.py)."""
import pytest
import torch
import torch.nn.functional as F

from core.ddim import ddim_sample
from core.drag import DragProblem
from core.gooddrag import AnchoredPull, gooddrag
from core.motion import CurrentPatchPull, motion_supervision_loss
from core.settings import GoodDragSettings
from tests.test_drag_core import GRID, SyntheticBackend, _smooth_latent


def run_gooddrag(model, z, sigmas, handles, targets, callback=None, **settings):
    """gooddrag with its settings given by name."""
    problem = DragProblem(handles=handles, targets=targets, grid_hw=GRID)
    return gooddrag(model, z, sigmas, problem, GoodDragSettings(**settings), callback=callback)


def official_style_loss(f1_map, f0_map, handles, handles_init, targets, r, beta):
    """GoodDrag's formula written the way its code reads it (slices and four shifted patches), for interior points:
    ``(2r)^2 * mean|F0[h0 patch] - bilinear F1[(h + d) patch]|`` with ``d = min(beta, |g-h|) (g-h)/|g-h|``."""
    loss = torch.zeros(())
    for h, h0, g in zip(handles.double(), handles_init, targets.double()):
        dist = (g - h).norm()
        if dist < 2:
            continue
        d = (g - h) / dist * min(beta, dist)
        f0 = f0_map[:, :, h0[0] - r:h0[0] + r + 1, h0[1] - r:h0[1] + r + 1]
        y, x = h[0] + d[0], h[1] + d[1]
        y0, x0 = int(torch.floor(y)), int(torch.floor(x))
        wy, wx = float(y - y0), float(x - x0)
        patch = lambda rr, cc: f1_map[:, :, rr - r:rr + r + 1, cc - r:cc + r + 1]  # noqa: E731
        f1 = ((1 - wx) * (1 - wy) * patch(y0, x0) + (1 - wx) * wy * patch(y0 + 1, x0)
              + wx * (1 - wy) * patch(y0, x0 + 1) + wx * wy * patch(y0 + 1, x0 + 1))
        loss = loss + (2 * r) ** 2 * F.l1_loss(f0, f1)
    return loss


@pytest.mark.parametrize("beta", [4.0, 1.5, 20.0])
def test_information_preserving_loss_matches_the_official_formula(beta):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(1, 8, 16, 16, generator=g)  # the decoder map; the loss reads it upsampled to the grid
    original = torch.randn(1, 8, 16, 16, generator=g)
    up = lambda f: F.interpolate(f, size=GRID, mode="bilinear", align_corners=False)  # noqa: E731
    handles_init = torch.tensor([[10, 9], [20, 14]])
    handles = torch.tensor([[11, 10], [20, 16]])
    targets = torch.tensor([[12, 21], [23, 15]])
    r = 4
    rows = (handles_init[:, :1] + torch.arange(-r, r + 1).repeat_interleave(2 * r + 1))
    cols = (handles_init[:, 1:] + torch.arange(-r, r + 1).repeat(2 * r + 1))
    anchor = up(original)[0][:, rows, cols]  # [C,N,P]: the original handles' patch in the original map
    ours = motion_supervision_loss(feats, GRID, handles, targets, AnchoredPull(anchor, r, beta))
    expected = official_style_loss(up(feats), up(original), handles, handles_init, targets, r, beta)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5)
    # the anchor is what makes it GoodDrag's: DragDiffusion's current-patch anchor gives another number
    plain = motion_supervision_loss(feats, GRID, handles, targets, CurrentPatchPull(r))
    assert abs(plain.item() - ours.item()) > 1e-3


class SyntheticDragModel:
    """The DragModel protocol over SyntheticBackend (features at latent resolution, a smooth denoiser)."""

    def __init__(self):
        self.backend = SyntheticBackend()

    def features(self, x, sigma, full=True):
        return self.backend(x, full)

    def denoise(self, x, sigma):
        return self.backend(x)[0]


def test_alternation_drags_denoises_and_carries_the_source_along():
    model = SyntheticDragModel()
    z = _smooth_latent(0)
    sigmas = torch.tensor([3.09, 2.87, 2.5, 2.1, 1.7, 1.3, 0.9])
    handles, targets = torch.tensor([[12, 10], [20, 14]]), torch.tensor([[12, 19], [20, 22]])
    steps, updates = [], []
    result = run_gooddrag(model, z, sigmas, handles, targets, drag_end_step=4, tracks_per_step=3,
                          max_updates_per_track=2, motion_radius=2, track_radius=4, learning_rate=0.05,
                          callback=lambda p: (steps.append(p.step), updates.append(p.handles.clone())))
    assert result.steps == len(result.handles_per_step) <= 4 and result.updates == len(updates) > 0
    assert steps == sorted(steps) and set(steps) == set(range(result.steps))
    start = (targets - handles).double().norm(dim=1).mean()
    end = (targets - result.handles).double().norm(dim=1).mean()
    assert end < start, (start, end, result.handles.tolist())
    # the source branch is plain DDIM from z, untouched by the drag
    expected_source = ddim_sample(lambda x, s: model.denoise(x, s), z, sigmas[:result.steps + 1])
    torch.testing.assert_close(result.source, expected_source, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(result.latent, result.source)
    assert result.latent.shape == z.shape and torch.isfinite(result.latent).all()


def test_arrival_stops_the_alternation_and_a_border_handle_keeps_a_full_patch():
    """Deviation from the official slicing: a handle on the grid border reads a clamped full-size patch (the
    official code would slice a smaller, shifted one); the run neither fails nor loses the pair.  The first update's
    loss is the official formula on the upsampled map padded by replicating its border (the edit equals the source
    there, so the mask term is exactly zero)."""
    model = SyntheticDragModel()
    z = _smooth_latent(1)
    sigmas = torch.tensor([3.09, 2.87, 2.5, 2.1])
    border, target, r, beta = torch.tensor([[0, 5]]), torch.tensor([[0, 12]]), 4, 4.0
    losses = []
    result = run_gooddrag(model, z, sigmas, border, target, drag_end_step=2, tracks_per_step=2,
                          max_updates_per_track=2, motion_radius=r, track_radius=4, learning_rate=0.05,
                          step_bound=beta, callback=lambda p: losses.append(float(p.loss)))
    assert result.updates > 0 and torch.isfinite(result.latent).all()
    up = F.interpolate(model.backend(z)[1], size=GRID, mode="bilinear", align_corners=False)
    padded = F.pad(up, (r, r, r, r), mode="replicate")
    expected = official_style_loss(padded, padded, border + r, border + r, target + r, r, beta)
    assert losses[0] == pytest.approx(expected.item(), rel=1e-5)
    arrived = run_gooddrag(model, z, sigmas, torch.tensor([[12, 10]]), torch.tensor([[12, 11]]))
    assert arrived.arrived and arrived.updates == 0 and arrived.steps == 1  # its first step still denoises
    assert torch.equal(arrived.latent, ddim_sample(lambda x, s: model.denoise(x, s), z, sigmas[:2]))


def test_a_float64_run_stays_in_float64():
    """The parity runs compare with the official code in float64: the latent, its Adam state and the DDIM steps
    must not drop to float32 on the way (a float32 copy would meet the float64 model weights and fail)."""
    single, double = SyntheticDragModel(), SyntheticDragModel()
    double.backend.w_local, double.backend.w_global = double.backend.w_local.double(), double.backend.w_global.double()
    z = _smooth_latent(2)
    sigmas = torch.tensor([3.09, 2.87, 2.5])
    handles, targets = torch.tensor([[12, 10]]), torch.tensor([[12, 19]])
    settings = dict(drag_end_step=2, tracks_per_step=2, max_updates_per_track=1, motion_radius=2, track_radius=4,
                    learning_rate=0.05)
    result = run_gooddrag(double, z.double(), sigmas, handles, targets, **settings)
    assert result.latent.dtype == result.source.dtype == torch.float64 and result.updates == 4
    reference = run_gooddrag(single, z, sigmas, handles, targets, **settings)
    assert torch.equal(result.handles, reference.handles)
    torch.testing.assert_close(result.latent.float(), reference.latent, rtol=0, atol=1e-4)
