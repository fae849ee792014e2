"""GoodDrag Latent Optimize inside real ComfyUI on tiny SD1.x, v-prediction and SDXL-class models."""
import json

import pytest
import torch

from .pack import hand_made_trajectory, pack_module
from .test_drag_nodes import IMAGE_PX, POINTS, image, invert, masactrl, node

FAST = dict(drag_end_step=2, tracks_per_step=2, max_updates_per_track=2, step_bound=4.0, learning_rate=0.05,
            mask_weight=0.2, motion_radius=2, track_radius=4, max_unchanged_tracks=10, cfg=1.0, feature_block=-1)
OTHER_POINTS = json.dumps([{"handle": [40, 44], "target": [30, 70]}, {"handle": [100, 96], "target": [110, 60]}])


def gooddrag(comfy, model, cond, trajectory, picture, points=POINTS, **settings):
    return node(comfy, "DragEdit_GoodDragLatentOptimize").execute(model, cond, trajectory, picture, points,
                    **dict(FAST, **settings)).args


@pytest.fixture
def core_results(comfy, monkeypatch):
    """The core GoodDrag results the node received, in order."""
    node_module, seen = pack_module("nodes.gooddrag"), []
    original = node_module.gooddrag

    def recording(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(node_module, "gooddrag", recording)
    return seen


@pytest.mark.parametrize("kind", ["sd1", "sd1-v", "sdxl"])
def test_gooddrag_then_masactrl_under_inference_mode(comfy, tiny, kind, core_results):
    model, cond = tiny.make_model(kind), tiny.conditioning(kind, seed=3)
    latent, picture = tiny.latent(), image()
    mask = torch.zeros(1, IMAGE_PX, IMAGE_PX)
    mask[:, 16:112, 16:112] = 1
    weights = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    with torch.inference_mode():
        _, trajectory = invert(comfy, model, latent, steps=10, strength=0.7)
        edited, tracked = gooddrag(comfy, model, cond, trajectory, picture, mask=mask)
        final = masactrl(comfy, model, cond, trajectory, edited)
    step = edited["drag_edit_step"]
    assert step["step"] == 2 and step["source"].shape == trajectory.latent_shape
    assert step["sigma"] == pytest.approx(float(trajectory.sampling_sigmas()[2]), rel=1e-5)
    assert tiny.same(weights, dict(model.model.diffusion_model.state_dict()))
    assert torch.isfinite(final["samples"]).all() and "drag_edit_step" not in final
    # tracked_points: where the core's tracking left the handles (2 image px per grid cell), with the targets
    grids = pack_module("core.grids")
    (result,) = core_results
    expected = grids.grid_points_to_image(result.handles, (IMAGE_PX, IMAGE_PX), (IMAGE_PX // 2, IMAGE_PX // 2))
    assert [p["handle"] for p in json.loads(tracked)] == expected.tolist()
    assert [p["target"] for p in json.loads(tracked)] == [p["target"] for p in json.loads(POINTS)]


def test_progress_counts_the_denoising_steps_from_one(comfy, tiny, monkeypatch):
    """Issue 17, defect 4: the bar shows the step being dragged (1 of 2 while the first runs), ending full."""
    import comfy.utils as comfy_utils  # aliased: the fixture is called comfy

    values = []
    original = comfy_utils.ProgressBar.update_absolute
    monkeypatch.setattr(comfy_utils.ProgressBar, "update_absolute",
                        lambda self, value, total=None, preview=None: (values.append((value, total)),
                                                                       original(self, value, total, preview)))
    model, cond = tiny.make_model("sd1"), tiny.conditioning("sd1", seed=3)
    with torch.inference_mode():
        _, trajectory = invert(comfy, model, tiny.latent(), steps=10, strength=0.7)
        values.clear()
        gooddrag(comfy, model, cond, trajectory, image())
    assert values[0] == (1, 2) and values[-1] == (2, 2), values
    assert all(1 <= value <= 2 for value, _ in values)


def test_a_gooddrag_redrag_replays_the_recorded_reference_branch(comfy, tiny, monkeypatch):
    """Issue 17, defect 1: Latent MasaCtrl Denoise keeps the reference branch of the source GoodDrag carries (at
    its step); a second drag of the same image records nothing and denoises exactly as a fresh run would."""
    masactrl_module, masactrl_core = pack_module("nodes.masactrl"), pack_module("core.masactrl")
    recorded = []
    original_add = masactrl_core.ReferenceRecording.add
    monkeypatch.setattr(masactrl_core.ReferenceRecording, "add",
                        lambda self, step, inputs: (recorded.append(step), original_add(self, step, inputs)))
    model, cond = tiny.make_model("sd1"), tiny.conditioning("sd1", seed=3)
    with torch.inference_mode():
        _, trajectory = invert(comfy, model, tiny.latent(), steps=10, strength=0.7)
        first, _ = gooddrag(comfy, model, cond, trajectory, image())
        masactrl(comfy, model, cond, trajectory, first)
        assert recorded == list(range(5)), "the first denoise records the 5 steps left after step 2"
        recorded.clear()
        second, _ = gooddrag(comfy, model, cond, trajectory, image(), points=OTHER_POINTS)
        replayed = masactrl(comfy, model, cond, trajectory, second)
        assert recorded == [], "the re-drag ran the reference branch again"
        masactrl_module._recordings.clear()
        fresh = masactrl(comfy, model, cond, trajectory, second)
    assert recorded == list(range(5)) and torch.equal(replayed["samples"], fresh["samples"])


def test_gooddrag_cancel_leaves_the_shared_model_untouched(comfy, tiny):
    import comfy.model_management as mm  # aliased: the fixture is called comfy

    model, cond = tiny.make_model("sd1"), tiny.conditioning("sd1", seed=3)
    weights = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    with torch.inference_mode():
        _, trajectory = invert(comfy, model, tiny.latent())
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException), torch.inference_mode():
            gooddrag(comfy, model, cond, trajectory, image())
    finally:
        mm.interrupt_current_processing(False)
    assert tiny.same(weights, dict(model.model.diffusion_model.state_dict()))
    assert all(p.grad is None for p in model.model.diffusion_model.parameters())


@pytest.mark.parametrize("settings, message", [
    (dict(drag_end_step=2), "drag_end_step 2 leaves none of the trajectory's 2 denoising steps"),
    (dict(cfg=0.5), "cfg 0.5 is below 1"),
])
def test_bad_settings_are_refused_before_the_model(tiny, no_model_calls, settings, message):
    model = tiny.make_model("sd1")
    with pytest.raises(ValueError, match=message):
        no_model_calls["DragEdit_GoodDragLatentOptimize"].execute(model, tiny.conditioning(),
                 hand_made_trajectory(model), torch.rand(1, 128, 128, 3), POINTS, **dict(FAST, **settings))


def test_points_are_checked_at_queue_time(comfy):
    validate = comfy.NODE_CLASS_MAPPINGS["DragEdit_GoodDragLatentOptimize"].validate_inputs
    assert validate(drag_points=POINTS) is True and validate(drag_points=None) is True
    assert "drag_points has no pairs" in validate(drag_points="[]")
