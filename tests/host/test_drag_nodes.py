"""The DragDiffusion nodes inside real ComfyUI on tiny SD1.x, v-prediction and SDXL-class models."""
import json

import pytest
import torch

IMAGE_PX = 128  # tiny latents are 16x16
POINTS = json.dumps([{"handle": [40, 44], "target": [64, 60]}, {"handle": [100, 96], "target": [90, 80]}])


def node(comfy, node_id):
    return comfy.NODE_CLASS_MAPPINGS[node_id]


def image(seed=5, size=IMAGE_PX):
    return torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(seed))


def invert(comfy, model, latent, steps=10, strength=0.7):
    return node(comfy, "DragEdit_DDIMInversion").execute(model, latent, steps=steps, strength=strength, cfg=1.0).args


def drag(comfy, model, cond, trajectory, picture, points=POINTS, steps=6, **kwargs):
    options = dict(learning_rate=0.05, mask_weight=0.1, cfg=1.0, feature_block=-1, motion_radius=1, track_radius=3)
    options.update(kwargs)
    return node(comfy, "DragEdit_DragLatentOptimize").execute(
        model, cond, trajectory, picture, points, steps, **options).args


def masactrl(comfy, model, cond, trajectory, latent, start_step=0, start_layer=-1, cfg=1.0, negative=None):
    return node(comfy, "DragEdit_LatentMasaCtrlDenoise").execute(
        model, cond, trajectory, latent, start_step, start_layer, cfg, negative=negative).args[0]


@pytest.mark.parametrize("kind", ["sd1", "sd1-v", "sdxl"])
def test_drag_pipeline_under_inference_mode(comfy, tiny, kind):
    model = tiny.make_model(kind)
    cond = tiny.conditioning(kind, seed=3)
    latent, picture = tiny.latent(), image()
    mask = torch.zeros(1, IMAGE_PX, IMAGE_PX)
    mask[:, 16:112, 16:112] = 1
    inputs_before = tiny.snapshot((latent, cond, picture, mask))
    weights_before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    modules_before = [type(m) for m in model.model.diffusion_model.modules()]
    with torch.inference_mode():
        start, trajectory = invert(comfy, model, latent)
        dragged, tracked = drag(comfy, model, cond, trajectory, picture, mask=mask)
        edited = masactrl(comfy, model, cond, trajectory, dragged)
    assert tiny.same(inputs_before, (latent, cond, picture, mask))
    assert tiny.same(weights_before, dict(model.model.diffusion_model.state_dict()))
    assert modules_before == [type(m) for m in model.model.diffusion_model.modules()]
    assert dragged["samples"].shape == start["samples"].shape
    assert not torch.equal(dragged["samples"], start["samples"]), "the drag did not change the latent"
    pairs = json.loads(tracked)
    assert [p["target"] for p in pairs] == [p["target"] for p in json.loads(POINTS)]
    assert edited["samples"].shape == latent["samples"].shape and torch.isfinite(edited["samples"]).all()
