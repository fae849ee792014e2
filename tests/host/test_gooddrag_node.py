"""GoodDrag Latent Optimize inside real ComfyUI on tiny SD1.x, v-prediction and SDXL-class models."""
import json

import pytest
import torch

from .pack import hand_made_trajectory
from .test_drag_nodes import IMAGE_PX, POINTS, image, invert, masactrl, node

FAST = dict(drag_end_step=2, drags_per_step=2, max_drags_per_track=2, step_bound=4.0, learning_rate=0.05,
            mask_weight=0.2, motion_radius=2, track_radius=4, max_unchanged_tracks=10, cfg=1.0, feature_block=-1)


def gooddrag(comfy, model, cond, trajectory, picture, points=POINTS, **settings):
    return node(comfy, "DragEdit_GoodDragLatentOptimize").execute(
        model, cond, trajectory, picture, points, **dict(FAST, **settings)).args


@pytest.mark.parametrize("kind", ["sd1", "sd1-v", "sdxl"])
def test_gooddrag_then_masactrl_under_inference_mode(comfy, tiny, kind):
    model, cond = tiny.make_model(kind), tiny.conditioning(kind, seed=3)
    latent, picture = tiny.latent(), image()
    mask = torch.zeros(1, IMAGE_PX, IMAGE_PX)
    mask[:, 16:112, 16:112] = 1
    weights = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    with torch.inference_mode():
        _, trajectory = invert(comfy, model, latent, steps=10, strength=0.7)
        edited, tracked = gooddrag(comfy, model, cond, trajectory, picture, mask=mask)
        final = masactrl(comfy, model, cond, trajectory, edited)
    level = edited["drag_edit_level"]
    assert level["step"] == 2 and level["source"].shape == trajectory.latent_shape
    assert level["sigma"] == pytest.approx(float(trajectory.sampling_sigmas()[2]), rel=1e-5)
    assert tiny.same(weights, dict(model.model.diffusion_model.state_dict()))
    assert torch.isfinite(final["samples"]).all() and "drag_edit_level" not in final
    assert [p["target"] for p in json.loads(tracked)] == [p["target"] for p in json.loads(POINTS)]


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
        no_model_calls["DragEdit_GoodDragLatentOptimize"].execute(
            model, tiny.conditioning(), hand_made_trajectory(model), torch.rand(1, 128, 128, 3), POINTS,
            **dict(FAST, **settings))


def test_points_are_checked_at_queue_time(comfy):
    validate = comfy.NODE_CLASS_MAPPINGS["DragEdit_GoodDragLatentOptimize"].validate_inputs
    assert validate(drag_points=POINTS) is True and validate(drag_points=None) is True
    assert "drag_points has no pairs" in validate(drag_points="[]")
