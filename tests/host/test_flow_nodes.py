"""The inversion and DiffEdit nodes on flow-matching models (tiny Flux and SD3: ComfyUI's own classes, random
weights, CONST sampling, 16-channel latents), in real ComfyUI; and the nodes that serve UNets only refusing them."""
import pytest
import torch

from .pack import pack_module

FLOW = ["flux", "sd3"]


def node(comfy, node_id):
    return comfy.NODE_CLASS_MAPPINGS[node_id]


def flow_latent(tiny, seed=2):
    return tiny.latent(channels=tiny.FLOW_CHANNELS, seed=seed)


def invert(comfy, model, latent, positive, **settings):
    settings = {"steps": 10, "strength": 0.8, "cfg": 1.0, **settings}
    return node(comfy, "DragEdit_DDIMInversion").execute(model, latent, positive=positive, **settings).args


@pytest.mark.parametrize("kind, cfg", [("flux", 1.0), ("sd3", 3.0)])  # Flux dev: distilled; SD3: CFG as SD
def test_inversion_mask_and_masked_decode_run_and_leave_the_model_alone(comfy, tiny, kind, cfg):
    model = tiny.make_model(kind)
    query, reference, latent = tiny.conditioning(kind, seed=3), tiny.conditioning(kind, seed=4), flow_latent(tiny)
    inputs_before = tiny.snapshot((latent, query, reference))
    weights_before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    patches_before = (dict(model.patches), dict(model.model_options["transformer_options"]))
    with torch.inference_mode():
        mask, difference = node(comfy, "DragEdit_DiffEditMaskInfer").execute(
            model, query, reference, latent, samples=2, noise_strength=0.5, clamp_ratio=3.0, threshold=0.3, seed=0,
            steps=10).args  # threshold 0.3: a random tiny transformer's text differences are nearly uniform
        start, trajectory, sigmas = invert(comfy, model, latent, reference)
        (edited,) = node(comfy, "DragEdit_MaskedDDIMDecode").execute(
            model, query, reference, cfg, trajectory, mask).args
    assert mask.shape == (1, 128, 128) and 0 < mask.mean() < 1 and difference.shape == (1, 128, 128, 3)
    assert len(trajectory.latents) == 9 and float(trajectory.sigmas[0]) == 0.0 and float(sigmas[-1]) == 0.0
    assert torch.equal(sigmas, trajectory.sampling_sigmas()) and float(sigmas[0]) < 1.0
    assert all(torch.isfinite(t).all() for t in trajectory.latents) and torch.isfinite(edited["samples"]).all()
    keep = (mask[:, ::8, ::8][:, None] == 0).expand_as(latent["samples"])
    assert torch.equal(edited["samples"][keep], latent["samples"][keep])
    assert (edited["samples"] - latent["samples"]).abs().amax() > 0
    assert start["samples"].shape == latent["samples"].shape
    assert tiny.same(inputs_before, (latent, query, reference))
    assert all(torch.equal(v, weights_before[k]) for k, v in model.model.diffusion_model.state_dict().items())
    assert patches_before == (dict(model.patches), dict(model.model_options["transformer_options"]))


@pytest.mark.parametrize("kind", ["flux", "sd3", "sd1"])
def test_a_stock_sampler_continues_the_inverted_latent(comfy, tiny, kind):
    """The recipe: SamplerCustom (Euler, add_noise off) on DDIM Inversion's latent and sigmas decodes exactly as
    Masked DDIM Decode with a full mask (a DDIM step is an Euler step); the flow's (1 - sigma) input scaling is
    undone in the latent the node hands on."""
    import comfy.sample as comfy_sample
    import comfy.samplers as comfy_samplers

    model = tiny.make_model(kind)
    cond = tiny.conditioning(kind, seed=3)
    latent = flow_latent(tiny) if kind in FLOW else tiny.latent()
    with torch.inference_mode():
        start, trajectory, sigmas = invert(comfy, model, latent, cond)
        (decoded,) = node(comfy, "DragEdit_MaskedDDIMDecode").execute(
            model, cond, cond, 1.0, trajectory, torch.ones(1, 128, 128)).args
        stock = comfy_sample.sample_custom(model, torch.zeros_like(start["samples"]), 1.0,
                                           comfy_samplers.sampler_object("euler"), sigmas, cond, cond,
                                           start["samples"], disable_pbar=True, seed=0)
    torch.testing.assert_close(stock, decoded["samples"], rtol=1e-4, atol=1e-4)
    if kind in FLOW:  # the stock latent is the top divided by 1 - sigma, not the top itself
        assert not torch.allclose(start["samples"], trajectory.latents[-1], atol=1e-3)


@pytest.mark.parametrize("kind", FLOW)
def test_a_sigmas_input_defines_the_trajectory(comfy, tiny, kind):
    import comfy.samplers as comfy_samplers

    model = tiny.make_model(kind)
    schedule = comfy_samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", 10)[4:]
    with torch.inference_mode():
        _, trajectory, sigmas = invert(comfy, model, flow_latent(tiny), tiny.conditioning(kind), sigmas=schedule)
    assert torch.equal(sigmas, schedule.float()) and trajectory.encoded_steps == 6


@pytest.mark.parametrize("schedule, message", [
    (torch.tensor([0.5, 0.6, 0.0]), "must descend strictly"),
    (torch.tensor([0.8, 0.4, 0.1]), "must end at 0"),
    (torch.tensor([1.0, 0.5, 0.0]), "start below 1"),
    (torch.tensor([float("nan"), 0.0]), "must descend strictly"),
    (torch.tensor([0.5]), "at least two levels"),
])
def test_a_bad_sigmas_input_is_refused_before_the_model(tiny, no_model_calls, schedule, message):
    inversion = no_model_calls["DragEdit_DDIMInversion"]
    with pytest.raises(ValueError, match=message):
        inversion.execute(tiny.make_model("flux"), flow_latent(tiny), 10, 0.8, 1.0, tiny.conditioning("flux"),
                          sigmas=schedule)


def test_trajectories_do_not_cross_between_flow_and_unet_models(comfy, tiny, monkeypatch):
    flux, sd1 = tiny.make_model("flux"), tiny.make_model("sd1")
    with torch.inference_mode():
        _, flux_trajectory, _ = invert(comfy, flux, flow_latent(tiny), tiny.conditioning("flux"))
        _, sd_trajectory, _ = invert(comfy, sd1, tiny.latent(), tiny.conditioning("sd1"))

    def refuse(*args, **kwargs):
        raise AssertionError("the model was called before the trajectory was checked")

    monkeypatch.setattr(pack_module("nodes.backend"), "run_guided", refuse)
    decode = node(comfy, "DragEdit_MaskedDDIMDecode")
    for model, trajectory, kind in ((sd1, flux_trajectory, "sd1"), (flux, sd_trajectory, "flux")):
        cond = tiny.conditioning(kind)
        with pytest.raises(ValueError, match="made with a different kind of model") as refused:
            decode.execute(model, cond, cond, 1.0, trajectory, torch.ones(1, 128, 128))
        assert "FLOW" in str(refused.value) and "latent_channels: " in str(refused.value)


@pytest.mark.parametrize("node_id, inputs", [
    ("DragEdit_DDIMInversion", lambda tiny, model: (model, tiny.latent(), 10, 0.8, 1.0)),
    ("DragEdit_DiffEditMaskInfer", lambda tiny, model: (model, tiny.conditioning("flux"), tiny.conditioning("flux"),
                                                        tiny.latent(), 2, 0.5, 3.0, 0.5, 0, 10)),
])
def test_a_four_channel_latent_is_refused_on_a_sixteen_channel_model(tiny, no_model_calls, node_id, inputs):
    with pytest.raises(ValueError, match="has 4 channels but this model expects 16"):
        no_model_calls[node_id].execute(*inputs(tiny, tiny.make_model("flux")))


def test_the_unet_only_nodes_refuse_flow_models_before_any_work(comfy, tiny, no_model_calls):
    flux, cond = tiny.make_model("flux"), tiny.conditioning("flux")
    sentence = "only SD1.x, SD2.x and SDXL checkpoints .* this MODEL is Flux \\(a flow-matching transformer model\\)"
    with pytest.raises(ValueError, match="LoRA Identity Tune: " + sentence):
        no_model_calls["DragEdit_LoRAIdentityTune"].execute(flux, cond, flow_latent(tiny), 2, 1e-4, 2, 1, 0, "",
                                                            False)
    trajectory = pack_module("nodes.trajectory").InversionTrajectory(
        latents=(flow_latent(tiny)["samples"],) * 3, sigmas=torch.tensor([0.0, 0.3, 0.6]), steps=3, strength=1.0,
        cfg=1.0, model_signature=pack_module("nodes.backend").model_signature(flux))
    with pytest.raises(ValueError, match="Latent MasaCtrl Denoise: " + sentence):
        no_model_calls["DragEdit_LatentMasaCtrlDenoise"].execute(flux, cond, trajectory, flow_latent(tiny), 0, 10,
                                                                 1.0)
    setup = pack_module("nodes.drag_setup")
    with pytest.raises(ValueError, match="The drag nodes: " + sentence):
        setup.check_trajectory(flux, trajectory, None)


def test_the_model_noise_space_is_comfys_model_sampling(tiny):
    backend = pack_module("nodes.backend")
    latent, noise = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4)
    flux, sd1 = backend.noise_space(tiny.make_model("flux")), backend.noise_space(tiny.make_model("sd1"))
    torch.testing.assert_close(flux.noised(latent, noise, 0.3), 0.7 * latent + 0.3 * noise)
    torch.testing.assert_close(sd1.noised(latent, noise, 2.0), latent + 2.0 * noise)
    assert flux.input_scale(0.7) == 1.0 and sd1.input_scale(2.0) == pytest.approx(5 ** -0.5)
    table = torch.tensor([0.03, 1.0, 14.6])
    assert flux.clean_sigma(table) == 0.0 and sd1.clean_sigma(table) == pytest.approx(0.03)


def test_an_unconditional_inversion_needs_a_text_on_flow_models(tiny, no_model_calls):
    with pytest.raises(ValueError, match="Flux needs a text conditioning here: connect one"):
        no_model_calls["DragEdit_DDIMInversion"].execute(tiny.make_model("flux"), flow_latent(tiny), 10, 0.8, 1.0)


def test_a_sigmas_input_leaves_gooddrags_static_step_check_to_run_time():
    checks = pack_module("nodes.checks")
    hidden = type("Hidden", (), {"unique_id": "5", "prompt": {
        "4": {"class_type": "DragEdit_DDIMInversion", "inputs": {"steps": 50, "strength": 0.75, "sigmas": ["9", 0]}},
        "5": {"class_type": "DragEdit_GoodDragLatentOptimize", "inputs": {"trajectory": ["4", 1]}}}})()
    assert checks.upstream_inversion_steps(hidden, "trajectory") is None
    del hidden.prompt["4"]["inputs"]["sigmas"]
    assert checks.upstream_inversion_steps(hidden, "trajectory") == 38
