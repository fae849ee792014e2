"""The DragDiffusion nodes inside real ComfyUI on tiny SD1.x, v-prediction and SDXL-class models."""
import dataclasses
import json

import pytest
import torch

from .pack import pack_module

IMAGE_PX = 128  # tiny latents are 16x16
POINTS = json.dumps([{"handle": [40, 44], "target": [64, 60]}, {"handle": [100, 96], "target": [90, 80]}])


def node(comfy, node_id):
    return comfy.NODE_CLASS_MAPPINGS[node_id]


def image(seed=5, size=IMAGE_PX):
    return torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(seed))


def invert(comfy, model, latent, steps=10, strength=0.7):
    inversion = node(comfy, "DragEdit_DDIMInversion")
    return inversion.execute(model, latent, steps=steps, strength=strength, cfg=1.0).args[:2]  # latent, trajectory


def drag(comfy, model, cond, trajectory, picture, points=POINTS, steps=6, **kwargs):
    options = dict(learning_rate=0.05, mask_weight=0.1, cfg=1.0, feature_block=-1, motion_radius=1, track_radius=3)
    options.update(kwargs)
    return node(comfy, "DragEdit_DragLatentOptimize").execute(model, cond, trajectory, picture, points, steps,
                    **options).args


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


def plain_ddim(model, cond, trajectory, cfg=1.0, negative=None):
    """Plain DDIM from the trajectory's top, through the same ComfyUI machinery, no attention control."""
    backend, ddim = pack_module("nodes.backend"), pack_module("core.ddim")
    sigmas = trajectory.sampling_sigmas()
    out, _ = backend.run_guided(model, cond, negative, cfg, trajectory.latents[-1], sigmas,
                                lambda denoise, x: (ddim.ddim_sample(denoise, x, sigmas), None))
    return out


@pytest.mark.parametrize("kind, cfg", [("sd1", 1.0), ("sdxl", 1.0), ("sd1", 5.0)])
def test_masactrl_with_the_source_latent_is_plain_ddim(comfy, tiny, kind, cfg):
    model, cond, negative = tiny.make_model(kind), tiny.conditioning(kind, seed=3), tiny.conditioning(kind, seed=4)
    with torch.inference_mode():
        start, trajectory = invert(comfy, model, tiny.latent())
        edited = masactrl(comfy, model, cond, trajectory, start, cfg=cfg, negative=negative)
        reference = plain_ddim(model, cond, trajectory, cfg, negative)
        other = masactrl(comfy, model, cond, trajectory, {"samples": start["samples"] + 0.5}, cfg=cfg,
                         negative=negative)
        uncontrolled = plain_ddim(model, cond, dataclasses.replace(trajectory, latents=(
            *trajectory.latents[:-1], start["samples"] + 0.5)), cfg, negative)
    assert torch.equal(edited["samples"], reference)
    assert not torch.equal(other["samples"], uncontrolled), "the reference attention had no effect"


def test_layer_mapping_on_full_sd15_and_sdxl_structures(comfy):
    """Default MasaCtrl layers and drag feature block on UNets with the real block structure (narrow widths)."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    unet_tools = pack_module("nodes.unet_hooks")
    masactrl_core = pack_module("core.masactrl")
    common = dict(image_size=32, in_channels=4, out_channels=4, model_channels=32, num_head_channels=8, context_dim=8,
                  use_spatial_transformer=True, use_linear_in_transformer=True, legacy=False)
    sd15 = UNetModel(num_res_blocks=2, channel_mult=[1, 2, 4, 4], transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                     transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], transformer_depth_middle=1,
                     **common)
    sdxl = UNetModel(num_res_blocks=2, channel_mult=[1, 2, 4], transformer_depth=[0, 0, 2, 2, 10, 10],
                     transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10], transformer_depth_middle=10,
                     adm_in_channels=16, num_classes="sequential", **common)
    # (configs as ComfyUI detects them; transformer_depth_output is consumed from its end)
    expected = ((sd15, 16, 10, ("output", 6, 0), 8), (sdxl, 70, 64, ("output", 3, 0), 5))
    for unet, count, start_index, start_key, feature in expected:
        layers = unet_tools.self_attention_layers(unet)
        assert len(layers) == count
        start = masactrl_core.default_start_layer([(key[0], scale) for key, scale in layers])
        assert (start, layers[start][0]) == (start_index, start_key)  # SD1.5: DragDiffusion's start_layer 10
        assert unet_tools.default_feature_block(unet) == feature


def test_generated_image_mode_odd_size_border_and_many_pairs(comfy, tiny):
    """CFG > 1 through drag and denoise; an image that is not a multiple of 8; handles on the border; 12 pairs;
    an empty mask (= everything editable, no mask term)."""
    model, cond, negative = tiny.make_model("sd1"), tiny.conditioning(seed=3), tiny.conditioning(seed=4)
    picture = torch.rand(1, 125, 133, 3, generator=torch.Generator().manual_seed(9))  # latent 15x16
    latent = {"samples": torch.randn(1, 4, 15, 16, generator=torch.Generator().manual_seed(2))}
    pairs = [{"handle": [0, 0], "target": [6, 5]}, {"handle": [133, 125], "target": [120, 118]}]
    pairs += [{"handle": [10 + 10 * i, 60], "target": [14 + 10 * i, 66]} for i in range(10)]
    with torch.inference_mode():
        _, trajectory = invert(comfy, model, latent)
        guided, tracked = drag(comfy, model, cond, trajectory, picture, json.dumps(pairs), steps=3, cfg=5.0,
                               negative=negative, mask=torch.zeros(1, 125, 133))
        unguided, _ = drag(comfy, model, cond, trajectory, picture, json.dumps(pairs), steps=3)
        edited = masactrl(comfy, model, cond, trajectory, guided, cfg=5.0, negative=negative)
    assert guided["samples"].shape == (1, 4, 15, 16) and torch.isfinite(guided["samples"]).all()
    assert not torch.equal(guided["samples"], unguided["samples"]), "cfg had no effect on the drag"
    tracked = json.loads(tracked)
    assert len(tracked) == 12
    assert all(0 <= p["handle"][0] <= 133 and 0 <= p["handle"][1] <= 125 for p in tracked)
    assert torch.isfinite(edited["samples"]).all()


def test_other_patches_still_apply(comfy, tiny):
    """A weight patch (as LoraLoader adds) reaches the drag's private UNet copy; FreeU reaches MasaCtrl."""
    from comfy_extras.nodes_freelunch import FreeU_V2
    model, cond = tiny.make_model("sd1"), tiny.conditioning(seed=3)
    patched = model.clone()
    key = next(k for k in model.model.state_dict() if k.endswith("attn1.to_q.weight"))
    patched.add_patches({key: ("diff", (torch.randn_like(model.model.state_dict()[key]) * 0.5,))}, 1.0)
    freeu = FreeU_V2().patch(model, 1.3, 1.4, 0.9, 0.2)[0]
    picture = image()
    with torch.inference_mode():
        start, trajectory = invert(comfy, model, tiny.latent())
        plain, _ = drag(comfy, model, cond, trajectory, picture, steps=2)
        with_patch, _ = drag(comfy, patched, cond, trajectory, picture, steps=2)
        edited = masactrl(comfy, model, cond, trajectory, plain)
        edited_freeu = masactrl(comfy, freeu, cond, trajectory, plain)
    assert not torch.equal(plain["samples"], with_patch["samples"])
    assert not torch.equal(edited["samples"], edited_freeu["samples"])


def test_masactrl_denoises_from_the_level_the_latent_carries(comfy, tiny):
    """A latent left at step k (as GoodDrag leaves it) is denoised from there, its reference branch the source at
    step k: the same as a trajectory whose top is step k and a latent without a level. Foreign levels are refused."""
    model, cond = tiny.make_model("sd1"), tiny.conditioning("sd1", seed=3)
    with torch.inference_mode():
        _, trajectory = invert(comfy, model, tiny.latent(), steps=10, strength=0.7)  # 7 encoded steps
        k = 3
        edited = trajectory.latents[-1 - k] + 0.05 * torch.randn(trajectory.latent_shape,
                                                                  generator=torch.Generator().manual_seed(1))
        at_level = masactrl(comfy, model, cond, trajectory, {"samples": edited, **trajectory.at_step(k)})
        shorter = dataclasses.replace(trajectory, latents=trajectory.latents[:-k], sigmas=trajectory.sigmas[:-k])
        expected = masactrl(comfy, model, cond, shorter, {"samples": edited})
        from_top = masactrl(comfy, model, cond, trajectory, {"samples": edited})
    assert torch.equal(at_level["samples"], expected["samples"])
    assert not torch.equal(from_top["samples"], expected["samples"])
    assert "drag_edit_step" not in at_level, "the denoised latent is at the end of the schedule"

    for level, message in (({"step": 7, "sigma": 0.0}, "sits at denoising step 7"),
                           ({"step": 2, "sigma": 3.5}, "noise level 3.5.*not a level of this trajectory"),
                           ({"step": "x"}, "must be \\{'step': int, 'sigma': float\\}")):
        with pytest.raises(ValueError, match=message), torch.inference_mode():
            masactrl(comfy, model, cond, trajectory, {"samples": edited, "drag_edit_step": level})


def test_the_drag_writes_its_level_and_refuses_a_latent_from_another_level(comfy, tiny):
    model, cond = tiny.make_model("sd1"), tiny.conditioning("sd1", seed=3)
    with torch.inference_mode():
        _, trajectory = invert(comfy, model, tiny.latent(), steps=10, strength=0.7)
        dragged, _ = drag(comfy, model, cond, trajectory, image(), steps=1)
        assert dragged["drag_edit_step"] == trajectory.at_step(0)["drag_edit_step"]
        lower = {"samples": trajectory.latents[-3], **trajectory.at_step(2)}
        with pytest.raises(ValueError, match="sits at denoising step 2 of the trajectory; DragDiffusion drags at"):
            drag(comfy, model, cond, trajectory, image(), latent=lower)
