"""Bad input is refused with a clear message before any model call."""
import pytest
import torch

from .pack import hand_made_trajectory


@pytest.mark.parametrize("mask, message", [
    (torch.ones(1, 100, 100), "mask is 100x100 px but the latent is 16x16"),
    (torch.ones(3, 128, 128), "mask batch 3 does not match the latent batch 1"),
])
def test_masks_the_decode_cannot_use(tiny, no_model_calls, mask, message):
    model = tiny.make_model("sd1")
    trajectory = hand_made_trajectory(model)
    with pytest.raises(ValueError, match=message):
        no_model_calls["DragEdit_MaskedDDIMDecode"].execute(model, tiny.conditioning(), tiny.conditioning(), 5.0,
                                                            trajectory, mask)


def test_trajectory_from_another_kind_of_model(tiny, no_model_calls):
    decode = no_model_calls["DragEdit_MaskedDDIMDecode"].execute
    trajectory, mask = hand_made_trajectory(tiny.make_model("sd1")), torch.ones(1, 128, 128)
    cond = tiny.conditioning()
    with pytest.raises(ValueError, match="different kind of model.*latent_format: SD15 vs SDXL"):
        decode(tiny.make_model("sdxl"), cond, cond, 5.0, trajectory, mask)
    with pytest.raises(ValueError, match="model_type: EPS vs V_PREDICTION"):
        decode(tiny.make_model("sd1-v"), cond, cond, 5.0, trajectory, mask)


def sampling_patched(model, sampling):
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete

    return ModelSamplingDiscrete().patch(model, sampling, False)[0]


@pytest.mark.parametrize("node_id", ["DragEdit_MaskedDDIMDecode", "DragEdit_LatentMasaCtrlDenoise",
                                     "DragEdit_DragLatentOptimize"])
def test_eps_trajectory_with_the_checkpoint_patched_to_v_prediction_and_back(tiny, no_model_calls, node_id):
    """ModelSamplingDiscrete changes what the model predicts, so a trajectory of the unpatched model is not its."""
    cond, image = tiny.conditioning(), torch.rand(1, 128, 128, 3)
    points = '[{"handle": [10, 10], "target": [20, 20]}]'
    for made_with, used_with, message in (("sd1", "v_prediction", "model_type: EPS vs V_PREDICTION"),
                                          ("sd1-v", "eps", "model_type: V_PREDICTION vs EPS")):
        base = tiny.make_model(made_with)
        trajectory, patched = hand_made_trajectory(base), sampling_patched(base, used_with)
        node = no_model_calls[node_id]
        with pytest.raises(ValueError, match=message):
            if node_id == "DragEdit_MaskedDDIMDecode":
                node.execute(patched, cond, cond, 5.0, trajectory, torch.ones(1, 128, 128))
            elif node_id == "DragEdit_LatentMasaCtrlDenoise":
                node.execute(patched, cond, trajectory, {"samples": trajectory.latents[-1]}, 0, -1, 1.0)
            else:
                node.execute(patched, cond, trajectory, image, points, 5, 0.01, 0.1, 1.0, -1, 1, 3)
        # The same patch on both sides is accepted (it fails later, at the refused model call).
        with pytest.raises(AssertionError, match="the model was called"):
            no_model_calls["DragEdit_MaskedDDIMDecode"].execute(
                patched, cond, cond, 5.0, hand_made_trajectory(patched), torch.ones(1, 128, 128))


@pytest.mark.parametrize("wired, value", [("model", {"a": 1}), ("model", "v1-5.safetensors"),
                                          ("trajectory", {"latents": []}), ("trajectory", "trajectory")])
def test_literal_where_a_model_or_trajectory_belongs(tiny, no_model_calls, wired, value):
    model, cond = tiny.make_model("sd1"), tiny.conditioning()
    inputs = dict(model=model, positive=cond, negative=cond, cfg=5.0, trajectory=hand_made_trajectory(model),
                  mask=torch.ones(1, 128, 128))
    inputs[wired] = value
    expected = "MODEL from a loader node" if wired == "model" else "INVERSION_TRAJECTORY output of DDIM Inversion"
    with pytest.raises(ValueError, match=f"{wired} must be .*{expected}"):
        no_model_calls["DragEdit_MaskedDDIMDecode"].execute(**inputs)


def test_latent_with_the_wrong_channel_count(tiny, no_model_calls):
    with pytest.raises(ValueError, match="latent has 16 channels but this model expects 4"):
        no_model_calls["DragEdit_DDIMInversion"].execute(tiny.make_model("sd1"), {"samples": torch.zeros(1, 16, 8, 8)},
                                                         steps=10, strength=0.5, cfg=1.0)


def test_empty_conditioning(tiny, no_model_calls):
    model = tiny.make_model("sd1")
    with pytest.raises(ValueError, match="query is empty: connect a CLIPTextEncode"):
        no_model_calls["DragEdit_DiffEditMaskInfer"].execute(model, [], tiny.conditioning(), tiny.latent(), 2, 0.5,
                                                             3.0, 0.5, 0, 10)


def test_conditioning_batch_that_does_not_broadcast(tiny, no_model_calls):
    model = tiny.make_model("sd1")
    three = [[torch.randn(3, 77, 32), {}]]
    with pytest.raises(ValueError, match="reference has batch 3, which does not broadcast to the latent batch 2"):
        no_model_calls["DragEdit_DiffEditMaskInfer"].execute(model, tiny.conditioning(), three, tiny.latent(batch=2),
                                                             2, 0.5, 3.0, 0.5, 0, 10)


def test_strength_and_steps_out_of_range(tiny, no_model_calls):
    model = tiny.make_model("sd1")
    inversion = no_model_calls["DragEdit_DDIMInversion"]
    with pytest.raises(ValueError, match="strength must be within"):
        inversion.execute(model, tiny.latent(), steps=10, strength=1.5, cfg=1.0)
    with pytest.raises(ValueError, match="steps must be between 1 and 999"):
        inversion.execute(model, tiny.latent(), steps=1000, strength=0.5, cfg=1.0)


def test_not_a_latent(tiny, no_model_calls):
    with pytest.raises(ValueError, match="latent must be a LATENT"):
        no_model_calls["DragEdit_DDIMInversion"].execute(tiny.make_model("sd1"), {"samples": torch.zeros(4, 8)},
                                                        steps=10, strength=0.5, cfg=1.0)


def test_strength_edges(comfy, tiny):
    """0 walks no step and returns the input; 1 starts at the top of the schedule (t = 981 of 50 steps)."""
    inversion = comfy.NODE_CLASS_MAPPINGS["DragEdit_DDIMInversion"]
    model, latent = tiny.make_model("sd1"), tiny.latent()
    with torch.inference_mode():
        out, trajectory, _ = inversion.execute(model, latent, steps=50, strength=0.0, cfg=1.0).args
        assert torch.equal(out["samples"], latent["samples"]) and len(trajectory.latents) == 1
        _, full, _ = inversion.execute(model, latent, steps=5, strength=1.0, cfg=1.0).args
    table = model.get_model_object("model_sampling").sigmas
    assert len(full.latents) == 6 and float(full.sigmas[-1]) == pytest.approx(float(table[801]))
