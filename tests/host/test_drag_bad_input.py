"""The drag nodes refuse bad input with a clear message before any model call."""
import json

import pytest
import torch

from .pack import hand_made_trajectory

GOOD = json.dumps([{"handle": [10, 10], "target": [20, 20]}])


def drag(nodes, tiny, points=GOOD, picture=None, mask=None, latent=None, model=None, trajectory=None, cfg=1.0):
    model = model or tiny.make_model("sd1")
    trajectory = trajectory or hand_made_trajectory(model)
    picture = torch.rand(1, 128, 128, 3) if picture is None else picture
    return nodes["DragEdit_DragLatentOptimize"].execute(model, tiny.conditioning(), trajectory, picture, points, 5,
                    0.01, 0.1, cfg, -1, 1, 3, mask=mask, latent=latent)


@pytest.mark.parametrize("points, message", [
    ("", "drag_points is empty"),
    ("[]", "drag_points has no pairs"),
    ("{not json", "drag_points is not valid JSON"),
    (json.dumps([{"handle": [10, 10]}]), "pair 1 has no target \\(unpaired point\\)"),
    (json.dumps([[10, 10], [20, 20]]), "pair 1 must be an object"),
    (json.dumps([{"handle": [10, 10], "target": [20, "a"]}]), "pair 1 target must be two finite numbers"),
    (json.dumps([{"handle": [10, 10], "target": [20, 20]}, {"handle": [140, 10], "target": [20, 20]}]),
     "pair 2 handle \\(140, 10\\) is outside the 128x128 image"),
    (json.dumps([{"handle": [10, -1], "target": [20, 20]}]), "handle \\(10, -1\\) is negative"),
])
def test_bad_points(tiny, no_model_calls, points, message):
    with pytest.raises(ValueError, match=message):
        drag(no_model_calls, tiny, points)


def test_mask_of_another_size(tiny, no_model_calls):
    with pytest.raises(ValueError, match="mask \\(1, 100, 100\\) must be the image's size 128x128"):
        drag(no_model_calls, tiny, mask=torch.ones(1, 100, 100))


def test_latent_that_does_not_match_the_trajectory(tiny, no_model_calls):
    with pytest.raises(ValueError, match="does not match the trajectory's \\(1, 4, 16, 16\\)"):
        drag(no_model_calls, tiny, latent={"samples": torch.zeros(1, 4, 16, 12)})
    model = tiny.make_model("sd1")
    with pytest.raises(ValueError, match="does not match the trajectory's"):
        no_model_calls["DragEdit_LatentMasaCtrlDenoise"].execute(
            model, tiny.conditioning(), hand_made_trajectory(model),
            {"samples": torch.zeros(1, 4, 8, 8)}, 0, -1, 1.0)


def test_image_that_is_not_the_encoded_one(tiny, no_model_calls):
    with pytest.raises(ValueError, match="image is 64x64 px but the latent is 16x16"):
        drag(no_model_calls, tiny, picture=torch.rand(1, 64, 64, 3))


def test_trajectory_from_another_model(tiny, no_model_calls):
    trajectory = hand_made_trajectory(tiny.make_model("sd1"))
    with pytest.raises(ValueError, match="different kind of model"):
        drag(no_model_calls, tiny, model=tiny.make_model("sd1-v"), trajectory=trajectory)


def test_out_of_range_layer_block_and_step(tiny, no_model_calls):
    model = tiny.make_model("sd1")
    trajectory = hand_made_trajectory(model)
    masactrl = no_model_calls["DragEdit_LatentMasaCtrlDenoise"]
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    with pytest.raises(ValueError, match="start_layer 99 is out of range: this UNet has"):
        masactrl.execute(model, tiny.conditioning(), trajectory, latent, 0, 99, 1.0)
    with pytest.raises(ValueError, match="start_step 2 is past the 2 denoising steps"):
        masactrl.execute(model, tiny.conditioning(), trajectory, latent, 2, -1, 1.0)
    with pytest.raises(ValueError, match="feature_block 9 is out of range"):
        no_model_calls["DragEdit_DragLatentOptimize"].execute(model, tiny.conditioning(), trajectory,
                 torch.rand(1, 128, 128, 3), GOOD, 5, 0.01, 0.1, 1.0, 9, 1, 3)


def test_loadimage_empty_mask_is_no_mask(tiny, no_model_calls):
    """LoadImage without alpha gives a 64x64 zero mask: nothing drawn, not a size error."""
    with pytest.raises(AssertionError, match="the model was called"):  # validation passed, then the model call
        drag(no_model_calls, tiny, mask=torch.zeros(1, 64, 64))


def test_linked_cfg_below_one_is_refused_before_the_model(tiny, no_model_calls):
    """A cfg wired from another node skips the schema's minimum: the node refuses it itself."""
    with pytest.raises(ValueError, match="cfg 0.5 is below 1"):
        drag(no_model_calls, tiny, cfg=0.5)


def test_the_node_resamples_the_mask_as_the_reference_and_the_demo(tiny):
    """The drag's mask resampling (core.grids.mask_to_latent_nearest): nearest to the supervision grid, then to
    the latent; soft edges become 1."""
    import tests.support.comfy_models as tiny

    from .pack import pack_module

    drag_setup, grids = pack_module("nodes.drag_setup"), pack_module("core.grids")
    model = tiny.make_model("sd1")
    mask = torch.zeros(1, 128, 128)
    mask[0, 13:70, 21:99] = 0.25  # soft, and not on the 8 px latent grid
    setup = drag_setup.prepare_drag(model, tiny.conditioning(), hand_made_trajectory(model),
                                    torch.rand(1, 128, 128, 3), GOOD, 1.0, -1, mask=mask)
    mask_latent = setup.mask_latent
    expected = grids.mask_to_latent_nearest(mask[0], (64, 64), (16, 16))[0, 0]
    assert torch.equal(mask_latent, expected) and set(mask_latent.unique().tolist()) == {0.0, 1.0}
    area = torch.nn.functional.avg_pool2d(mask[None], 8)[0, 0]
    assert not torch.equal(mask_latent, area)
