"""Cost measures inside real ComfyUI: the drag borrows the shared model's weights and gives them back whole (after a
run, a cancel and an error), and Latent MasaCtrl Denoise replays a recorded reference branch only for the same
source, model and schedule, with exactly the fresh run's output."""
import dataclasses
import gc

import pytest
import torch

from .pack import pack_module
from .test_drag_nodes import IMAGE_PX, drag, image, invert, masactrl


def _unet_count():
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    gc.collect()
    return sum(isinstance(o, UNetModel) for o in gc.get_objects())


def _weights(model):
    return {k: (v.data_ptr(), v.clone()) for k, v in model.model.diffusion_model.state_dict().items()}


def _same_weights(model, before):
    now = model.model.diffusion_model.state_dict()
    return now.keys() == before.keys() and all(
        now[k].data_ptr() == ptr and torch.equal(now[k], value) for k, (ptr, value) in before.items())


def _drag(comfy, model, cond, trajectory):
    mask = torch.zeros(1, IMAGE_PX, IMAGE_PX)
    mask[:, 16:112, 16:112] = 1
    return drag(comfy, model, cond, trajectory, image(), steps=4, mask=mask)


@pytest.mark.parametrize("ending", ["finished", "cancelled", "failed"])
def test_drag_leaves_the_shared_model_as_it_found_it(comfy, tiny, monkeypatch, ending):
    import comfy.model_management as mm  # aliased: the fixture is called comfy
    import comfy.utils as comfy_utils

    model, cond = tiny.make_model("sd1"), tiny.conditioning("sd1", seed=3)
    with torch.inference_mode():
        _, trajectory = invert(comfy, model, tiny.latent())
    weights, modules, unets = _weights(model), [type(m) for m in model.model.diffusion_model.modules()], _unet_count()
    if ending == "failed":
        def broken(self, *args, **kwargs):
            raise RuntimeError("preview failed")
        monkeypatch.setattr(comfy_utils.ProgressBar, "update_absolute", broken)
    if ending == "cancelled":
        mm.interrupt_current_processing(True)
    try:
        with torch.inference_mode():
            if ending == "finished":
                _drag(comfy, model, cond, trajectory)
            else:
                with pytest.raises((RuntimeError, mm.InterruptProcessingException)):
                    _drag(comfy, model, cond, trajectory)
    finally:
        mm.interrupt_current_processing(False)
    assert _same_weights(model, weights), "the shared UNet's weights moved or changed"
    assert [type(m) for m in model.model.diffusion_model.modules()] == modules
    assert all(p.grad is None for p in model.model.diffusion_model.parameters())
    assert _unet_count() == unets, "the drag's private view of the UNet outlived the node"


class CountingModel:
    """A clone of a tiny model whose UNet calls are counted (the MODEL the MasaCtrl node sees)."""

    def __init__(self, tiny, seed=0):
        self.calls = 0
        self.model = tiny.make_model("sd1", seed=seed).clone()

        def count(apply, args):
            self.calls += 1
            return apply(args["input"], args["timestep"], **args["c"])

        self.model.set_model_unet_function_wrapper(count)


def _denoise(comfy, counting, cond, trajectory, latent):
    counting.calls = 0
    with torch.inference_mode():
        out = masactrl(comfy, counting.model, cond, trajectory, {"samples": latent})["samples"]
    return out, counting.calls


def test_a_redrag_replays_the_reference_branch_and_matches_a_fresh_run_exactly(comfy, tiny):
    counting, cond = CountingModel(tiny), tiny.conditioning("sd1", seed=3)
    with torch.inference_mode():
        _, trajectory = invert(comfy, counting.model, tiny.latent(seed=2), steps=10)
    n = trajectory.encoded_steps
    top = trajectory.latents[-1]
    first_edit, second_edit = top + 0.1, top.flip(-1)

    first, calls = _denoise(comfy, counting, cond, trajectory, first_edit)
    assert calls == 2 * n  # both branches, the reference one recorded
    redrag, calls = _denoise(comfy, counting, cond, trajectory, second_edit)
    assert calls == n, "the re-drag should run the edited branch only"
    fresh, calls = _denoise(comfy, counting, cond, dataclasses.replace(trajectory), second_edit)
    assert calls == 2 * n
    assert torch.equal(redrag, fresh)
    assert not torch.equal(first, redrag)


def test_the_recording_is_not_reused_for_another_image_model_or_step_count(comfy, tiny):
    counting, cond = CountingModel(tiny), tiny.conditioning("sd1", seed=3)
    with torch.inference_mode():
        _, trajectory = invert(comfy, counting.model, tiny.latent(seed=2), steps=10)
        _, other_image = invert(comfy, counting.model, tiny.latent(seed=8), steps=10)
        _, other_steps = invert(comfy, counting.model, tiny.latent(seed=2), steps=12)
    n = trajectory.encoded_steps
    edit = trajectory.latents[-1] + 0.1
    _denoise(comfy, counting, cond, trajectory, edit)  # records

    other_model = CountingModel(tiny, seed=1)  # same kind of model (same signature), other weights
    out, calls = _denoise(comfy, other_model, cond, trajectory, edit)
    assert calls == 2 * n
    fresh, _ = _denoise(comfy, other_model, cond, dataclasses.replace(trajectory), edit)
    assert torch.equal(out, fresh)

    for source in (other_image, other_steps):
        start = source.latents[-1] + 0.1
        out, calls = _denoise(comfy, counting, cond, source, start)
        assert calls == 2 * source.encoded_steps
        fresh, _ = _denoise(comfy, counting, cond, dataclasses.replace(source), start)
        assert torch.equal(out, fresh)

    other_cond = tiny.conditioning("sd1", seed=4)
    _, calls = _denoise(comfy, counting, other_cond, trajectory, edit)
    assert calls == 2 * n


def test_the_drag_backpropagates_through_the_loaded_weights_without_copying_them(comfy, tiny, monkeypatch):
    private = pack_module("nodes.unet_hooks").PrivateUNet
    views = []
    materialize = private.materialize

    def spy(self, model):
        view = materialize(self, model)
        views.append({k: v.data_ptr() for k, v in view.state_dict().items()})
        return view

    monkeypatch.setattr(private, "materialize", spy)
    model, cond = tiny.make_model("sd1"), tiny.conditioning("sd1", seed=3)
    with torch.inference_mode():
        _, trajectory = invert(comfy, model, tiny.latent())
        dragged, _ = _drag(comfy, model, cond, trajectory)
    shared = {k: v.data_ptr() for k, v in model.model.diffusion_model.state_dict().items()}
    assert len(views) == 1 and views[0] == shared
    assert not torch.equal(dragged["samples"], trajectory.latents[-1])
