"""Bad input is refused with a clear message before any model call."""
import sys

import pytest
import torch


def pack_module(suffix):
    """One of the pack's modules as ComfyUI imported it (under the custom-node folder's name)."""
    return next(m for name, m in sys.modules.items() if name.endswith(suffix) and "drag-diffedit" in name)


@pytest.fixture
def no_model_calls(comfy, monkeypatch):
    backend = pack_module("core.backends.comfy")

    def refuse(*args, **kwargs):
        raise AssertionError("the model was called before the input was checked")

    monkeypatch.setattr(backend, "run_guided", refuse)
    return comfy.NODE_CLASS_MAPPINGS


def test_mask_of_another_size(tiny, no_model_calls):
    model = tiny.make_model("sd1")
    trajectory = _trajectory(tiny, no_model_calls, model)
    with pytest.raises(ValueError, match="mask is 100x100 px but the latent is 16x16"):
        no_model_calls["DragEdit_MaskedDDIMDecode"].execute(model, tiny.conditioning(), tiny.conditioning(), 5.0,
                                                            trajectory, torch.ones(1, 100, 100))


def test_mask_batch_that_does_not_broadcast(tiny, no_model_calls):
    model = tiny.make_model("sd1")
    trajectory = _trajectory(tiny, no_model_calls, model)
    with pytest.raises(ValueError, match="mask batch 3 does not match the latent batch 1"):
        no_model_calls["DragEdit_MaskedDDIMDecode"].execute(model, tiny.conditioning(), tiny.conditioning(), 5.0,
                                                            trajectory, torch.ones(3, 128, 128))


def test_trajectory_from_another_kind_of_model(tiny, no_model_calls):
    trajectory = _trajectory(tiny, no_model_calls, tiny.make_model("sd1"))
    with pytest.raises(ValueError, match="different kind of model.*latent_format: SD15 vs SDXL"):
        no_model_calls["DragEdit_MaskedDDIMDecode"].execute(tiny.make_model("sdxl"), tiny.conditioning(),
                                                            tiny.conditioning(), 5.0, trajectory, torch.ones(1, 128, 128))
    with pytest.raises(ValueError, match="model_type: EPS vs V_PREDICTION"):
        no_model_calls["DragEdit_MaskedDDIMDecode"].execute(tiny.make_model("sd1-v"), tiny.conditioning(),
                                                            tiny.conditioning(), 5.0, trajectory, torch.ones(1, 128, 128))


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
        out, trajectory = inversion.execute(model, latent, steps=50, strength=0.0, cfg=1.0).args
        assert torch.equal(out["samples"], latent["samples"]) and len(trajectory.latents) == 1
        _, full = inversion.execute(model, latent, steps=5, strength=1.0, cfg=1.0).args
    table = model.get_model_object("model_sampling").sigmas
    assert len(full.latents) == 6 and float(full.sigmas[-1]) == pytest.approx(float(table[801]))


def _trajectory(tiny, nodes, model):  # noqa: ARG001 - same call shape as the tests
    # A hand-made trajectory with the model's signature: building one needs no model call.
    trajectory_module, backend = pack_module("nodes.trajectory"), pack_module("core.backends.comfy")
    latents = tuple(torch.randn(1, 4, 16, 16) for _ in range(3))
    return trajectory_module.InversionTrajectory(latents=latents, sigmas=torch.tensor([0.03, 0.5, 1.0]), steps=4,
                                                strength=0.5, cfg=1.0, model_signature=backend.model_signature(model))
