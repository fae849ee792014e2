"""The tiny rectified-flow models of the test support (Flux and SD3, ComfyUI's own classes, random weights) run
through ComfyUI's stock sampling, conditioning and nodes: the base that pack tests on flow models stand on."""
import numpy as np
import pytest
import torch
from PIL import Image

from .test_workflows import run_prompt

FLOW = ["flux", "sd3"]
PX = 128  # 16x16 latents


def _sample(tiny, model, positive, negative, steps=3, cfg=1.0, seed=0):
    """ComfyUI's stock sampling (``comfy.sample.sample``, Euler, the simple schedule) from an empty 16-channel
    latent."""
    import comfy.sample

    empty = torch.zeros_like(tiny.latent(channels=tiny.FLOW_CHANNELS)["samples"])
    noise = comfy.sample.prepare_noise(empty, seed)
    with torch.inference_mode():
        return comfy.sample.sample(model, noise, steps, cfg, "euler", "simple", positive, negative, empty,
                                   seed=seed, disable_pbar=True)


@pytest.mark.parametrize("kind", FLOW)
def test_flow_model_is_comfy_rectified_flow(tiny, kind):
    import comfy.model_sampling

    model = tiny.make_model(kind)
    sampling = model.get_model_object("model_sampling")
    assert isinstance(sampling, comfy.model_sampling.CONST)
    expected = {"flux": (comfy.model_sampling.ModelSamplingFlux, 1.15),
                "sd3": (comfy.model_sampling.ModelSamplingDiscreteFlow, 3.0)}[kind]
    assert isinstance(sampling, expected[0]) and sampling.shift == pytest.approx(expected[1])
    assert float(sampling.sigma_max) == pytest.approx(1.0)
    assert model.model.latent_format.latent_channels == 16
    assert type(model.model).__name__ == {"flux": "Flux", "sd3": "SD3"}[kind]
    gains = [v for k, v in model.model.diffusion_model.state_dict().items() if "norm" in k and k.endswith("scale")]
    assert all(torch.all(v == 1) for v in gains) and (kind != "flux" or gains)  # Flux's q/k RMSNorm: 0 blanks them


@pytest.mark.parametrize("kind", FLOW)
@pytest.mark.parametrize("cfg", [1.0, 2.0])  # 1.0 skips the negative (Flux dev's setting); 2.0 batches both
def test_stock_sampling_gives_finite_latents(tiny, kind, cfg):
    model = tiny.make_model(kind)
    out = _sample(tiny, model, tiny.conditioning(kind), tiny.conditioning(kind, seed=3), cfg=cfg)
    assert out.shape == (1, 16, 16, 16)
    assert torch.isfinite(out).all() and out.abs().max() > 0


@pytest.mark.parametrize("kind", FLOW)
def test_conditioning_reaches_the_model(tiny, kind):
    """Another prompt gives another result: the text tokens and pooled vector are consumed, not just tolerated."""
    model = tiny.make_model(kind)
    first = _sample(tiny, model, tiny.conditioning(kind), tiny.conditioning(kind, seed=3))
    other = _sample(tiny, model, tiny.conditioning(kind, seed=5), tiny.conditioning(kind, seed=3))
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("kind", FLOW)
def test_sd_conditioning_is_refused(tiny, kind):
    """The tiny flow models' text width is not the tiny UNets', so a graph that mixes them fails instead of passing."""
    with pytest.raises(RuntimeError, match="shape|size"):
        _sample(tiny, tiny.make_model(kind), tiny.conditioning("sd1"), tiny.conditioning("sd1", seed=3), steps=1)


def test_flux_guidance_is_where_flux_guidance_puts_it(comfy, tiny):
    """Flux dev's distilled guidance is a value in the conditioning (not the sampler's cfg), and the model reads it."""
    cond = tiny.conditioning("flux")
    assert cond[0][1]["guidance"] == tiny.FLUX_GUIDANCE
    stock = comfy.NODE_CLASS_MAPPINGS["FluxGuidance"].execute(tiny.conditioning("flux"), 7.0)[0]
    assert stock[0][1]["guidance"] == 7.0 and torch.equal(stock[0][0], cond[0][0])
    model = tiny.make_model("flux")
    negative = tiny.conditioning("flux", seed=3)
    assert not torch.allclose(_sample(tiny, model, cond, negative), _sample(tiny, model, stock, negative))


def test_existing_kinds_unchanged(tiny):
    from tests.support import fakes

    assert tiny.latent()["samples"].shape == (1, 4, 16, 16)
    assert tiny.conditioning()[0][0].shape == (1, 77, 32) and "guidance" not in tiny.conditioning()[0][1]
    assert fakes.FakeVAE().encode(torch.rand(1, 32, 32, 3)).shape == (1, 4, 4, 4)
    with pytest.raises(ValueError, match="unknown tiny model kind"):
        tiny.make_model("flux-schnell")


@pytest.mark.parametrize("kind", FLOW)
def test_checkpoint_node_yields_flow_models(comfy, tiny, kind):
    """The test checkpoint node's MODEL, CLIP and VAE fit together: the stand-in text encoder's widths are the
    model's, the stand-in VAE maps pictures to its 16-channel latents and back."""
    from tests.support import comfy_host

    checkpoint = comfy.NODE_CLASS_MAPPINGS[comfy_host.register_test_checkpoint(comfy)]
    model, clip, vae = checkpoint().load(kind)
    assert model.model.latent_format.latent_channels == 16
    cond = clip.encode_from_tokens_scheduled(clip.tokenize("a cat"))
    assert cond[0][0].shape == (1, 77, tiny.FLOW_CONTEXT_DIM)
    assert cond[0][1]["pooled_output"].shape == (1, tiny.FLOW_POOLED_DIM)
    assert torch.isfinite(_sample(tiny, model, cond, clip.encode_from_tokens_scheduled(""))).all()
    picture = torch.rand(2, PX, PX, 3)
    latents = vae.encode(picture)
    assert latents.shape == (2, 16, PX // 8, PX // 8)
    assert torch.equal(vae.encode(picture), latents)
    decoded = vae.decode(latents)
    assert decoded.shape == picture.shape
    pooled = torch.nn.functional.avg_pool2d(picture.movedim(-1, 1), 8)
    assert torch.allclose(decoded[:, ::8, ::8], pooled.movedim(1, -1), atol=1e-6)  # every repeat decodes the same


def _flow_prompt(checkpoint: str, kind: str, sampler: str) -> dict:
    """Picture -> VAEEncode -> sampler (denoise 0.75) -> VAEDecode -> SaveImage, as a Flux or SD3 graph of stock
    nodes would be wired (Flux: FluxGuidance on the prompt, cfg 1)."""
    positive = ["pos", 0]
    prompt = {
        "ckpt": {"class_type": checkpoint, "inputs": {"ckpt_name": kind}},
        "image": {"class_type": "LoadImage", "inputs": {"image": "flow_example.png"}},
        "enc": {"class_type": "VAEEncode", "inputs": {"pixels": ["image", 0], "vae": ["ckpt", 2]}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["dec", 0], "filename_prefix": f"flow_{kind}"}},
    }
    if kind == "flux":
        prompt["guide"] = {"class_type": "FluxGuidance", "inputs": {"conditioning": ["pos", 0], "guidance": 3.5}}
        positive = ["guide", 0]
    common = {"positive": positive, "negative": ["neg", 0], "latent_image": ["enc", 0],
              "cfg": 1.0 if kind == "flux" else 2.0}
    if sampler == "KSampler":
        prompt["sample"] = {"class_type": "KSampler", "inputs": dict(
            common, model=["ckpt", 0], seed=0, steps=4, sampler_name="euler", scheduler="simple", denoise=0.75)}
    else:
        prompt["select"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
        prompt["sigmas"] = {"class_type": "BasicScheduler", "inputs": {
            "model": ["ckpt", 0], "scheduler": "simple", "steps": 4, "denoise": 0.75}}
        prompt["sample"] = {"class_type": "SamplerCustom", "inputs": dict(
            common, model=["ckpt", 0], add_noise=True, noise_seed=0, sampler=["select", 0], sigmas=["sigmas", 0])}
    return prompt


@pytest.mark.parametrize("kind", FLOW)
@pytest.mark.parametrize("sampler", ["KSampler", "SamplerCustom"])
def test_stock_graph_executes_on_test_checkpoint(comfy, kind, sampler):
    import folder_paths

    from tests.support import comfy_host

    picture = (np.random.default_rng(2).random((PX, PX, 3)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(f"{folder_paths.get_input_directory()}/flow_example.png")
    prompt = _flow_prompt(comfy_host.register_test_checkpoint(comfy), kind, sampler)
    saved = run_prompt(comfy, prompt).history_result["outputs"]["save"]["images"]
    assert len(saved) == 1
    with Image.open(f"{folder_paths.get_output_directory()}/{saved[0]['subfolder']}/{saved[0]['filename']}") as out:
        assert out.size == (PX, PX)
