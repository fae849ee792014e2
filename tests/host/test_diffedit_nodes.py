"""The DiffEdit nodes inside real ComfyUI on tiny SD1.x, v-prediction and SDXL-class models."""
import pytest
import torch

NODE_IDS = ["DragEdit_DDIMInversion", "DragEdit_DiffEditMaskInfer", "DragEdit_MaskedDDIMDecode"]


def node(comfy, node_id):
    return comfy.NODE_CLASS_MAPPINGS[node_id]


def test_pack_registers_its_nodes(comfy):
    for node_id in NODE_IDS:
        assert node_id in comfy.NODE_CLASS_MAPPINGS
        schema = node(comfy, node_id).GET_SCHEMA()
        for input_ in schema.inputs:
            if input_.id not in ("model",):
                assert input_.tooltip or input_.id in ("negative",), f"{node_id}.{input_.id} has no tooltip"


@pytest.mark.parametrize("kind", ["sd1", "sd1-v", "sdxl"])
def test_diffedit_nodes_under_inference_mode(comfy, tiny, kind):
    model = tiny.make_model(kind)
    query, reference = tiny.conditioning(kind, seed=3), tiny.conditioning(kind, seed=4)
    latent = tiny.latent()
    inputs_before = tiny.snapshot((latent, query, reference))
    weights_before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    patches_before = (dict(model.patches), dict(model.model_options["transformer_options"]))

    with torch.inference_mode():
        mask, difference = node(comfy, "DragEdit_DiffEditMaskInfer").execute(
            model, query, reference, latent, samples=2, noise_strength=0.5, clamp_ratio=3.0, threshold=0.5, seed=0,
            steps=10).args
        start, trajectory, _ = node(comfy, "DragEdit_DDIMInversion").execute(
            model, latent, steps=10, strength=0.8, cfg=1.0).args
        (edited,) = node(comfy, "DragEdit_MaskedDDIMDecode").execute(
            model, query, reference, 3.0, trajectory, mask).args

    assert mask.shape == (1, 128, 128) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert 0 < mask.mean() < 1, "random texts should edit part of the image"
    assert difference.shape == (1, 128, 128, 3) and 0 <= difference.min() and difference.max() <= 1
    assert len(trajectory.latents) == 9 and torch.equal(start["samples"], trajectory.latents[-1])
    keep = mask[:, ::8, ::8][:, None] == 0
    assert torch.equal(edited["samples"][keep.expand_as(latent["samples"])],
                       latent["samples"][keep.expand_as(latent["samples"])])
    assert (edited["samples"] - latent["samples"]).abs().amax() > 0
    assert tiny.same(inputs_before, (latent, query, reference))
    assert all(torch.equal(v, weights_before[k]) for k, v in model.model.diffusion_model.state_dict().items())
    assert patches_before == (dict(model.patches), dict(model.model_options["transformer_options"]))


def test_zero_mask_returns_encoded_latent_exactly(comfy, tiny):
    model = tiny.make_model("sd1")
    latent, cond = tiny.latent(), tiny.conditioning()
    with torch.inference_mode():
        inversion = node(comfy, "DragEdit_DDIMInversion")
        _, trajectory, _ = inversion.execute(model, latent, steps=8, strength=0.5, cfg=1.0).args
        (out,) = node(comfy, "DragEdit_MaskedDDIMDecode").execute(
            model, cond, cond, 5.0, trajectory, torch.zeros(1, 128, 128)).args
    assert torch.equal(out["samples"], latent["samples"])


def test_comfy_and_diffusers_backends_invert_alike(comfy, tiny):
    """The same core on ComfyUI's UNet and on diffusers' UNet with converted weights."""
    pytest.importorskip("diffusers")
    from diffusers import UNet2DConditionModel

    import comfy.utils as cu

    from core.backends.diffusers_unet import DiffusersUNetDenoiser
    from core.ddim import ddim_invert
    from core.schedules import ddim_sigmas

    model = tiny.make_model("sd1")
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)
    key_map = cu.unet_to_diffusers(model.model.model_config.unet_config)  # diffusers name -> ComfyUI name
    comfy_state = model.model.diffusion_model.state_dict()
    converted = {diffusers_key: comfy_state[comfy_key] for diffusers_key, comfy_key in key_map.items()
                 if comfy_key in comfy_state}
    assert len(converted) == len(comfy_state), "every ComfyUI weight has a diffusers counterpart"
    unet.load_state_dict(converted, strict=True)

    cond = tiny.conditioning()
    latent = tiny.latent()
    with torch.inference_mode():
        _, trajectory, _ = comfy.NODE_CLASS_MAPPINGS["DragEdit_DDIMInversion"].execute(
            model, latent, steps=10, strength=0.6, cfg=1.0, positive=cond).args
    backend = DiffusersUNetDenoiser(unet.eval(), dict(beta_schedule="scaled_linear", beta_start=0.00085,
                                                      beta_end=0.012, num_train_timesteps=1000))
    sigmas = ddim_sigmas(backend.sigma_table, 10, 0.6).flip(0)
    scale = model.model.latent_format.scale_factor
    with torch.no_grad():
        ours = ddim_invert(backend.denoiser(cond[0][0]), latent["samples"] * scale, sigmas)
    for comfy_latent, diffusers_latent in zip(trajectory.latents, ours):
        assert (comfy_latent * scale - diffusers_latent).abs().max() <= 1e-5  # seen: 1.5e-7
