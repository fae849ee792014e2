"""ComfyUI models built from ComfyUI's own model classes, with random weights (no checkpoint can be downloaded).

Tiny ones for the host tests (SD1, SDXL, and the rectified-flow Flux and SD3); full SD1.5 and SDXL UNets (the real
block structure and widths) for ``bench/``; and the inpainting models ComfyUI itself detects from their weights
(SDXL inpainting, Flux Fill: :func:`make_detected_model`).
Needs ComfyUI on ``sys.path``.
"""
import copy
import functools

import torch

import comfy.model_base
import comfy.model_detection
import comfy.model_management as mm
import comfy.model_patcher
import comfy.sd
import comfy.supported_models

SD1_UNET = dict(
    in_channels=4, out_channels=4, model_channels=32, num_res_blocks=[1, 1], channel_mult=[1, 2],
    transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1], transformer_depth_middle=1, context_dim=32,
    use_linear_in_transformer=False, adm_in_channels=None, use_temporal_resblock=False, use_temporal_attention=False,
    use_checkpoint=False, image_size=32, use_spatial_transformer=True, legacy=False, num_heads=8,
    num_head_channels=-1,
)
POOLED_DIM = 32
SDXL_UNET = dict(SD1_UNET, use_linear_in_transformer=True, transformer_depth=[0, 1],
                 transformer_depth_output=[0, 0, 1, 1], adm_in_channels=POOLED_DIM + 6 * 256,
                 num_classes="sequential", num_head_channels=16, num_heads=-1)


# The checkpoints' own UNet configurations (what ComfyUI's model detection reads off SD1.5 and SDXL files).
SD15_UNET = dict(
    in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
    transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    transformer_depth_middle=1, context_dim=768, use_linear_in_transformer=False, adm_in_channels=None,
    use_temporal_resblock=False, use_temporal_attention=False, use_checkpoint=False, image_size=32,
    use_spatial_transformer=True, legacy=False, num_heads=8, num_head_channels=-1,
)
SDXL_FULL_UNET = dict(
    in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 4],
    transformer_depth=[0, 0, 2, 2, 10, 10], transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10],
    transformer_depth_middle=10, context_dim=2048, use_linear_in_transformer=True, adm_in_channels=2816,
    num_classes="sequential", use_temporal_resblock=False, use_temporal_attention=False, use_checkpoint=False,
    image_size=32, use_spatial_transformer=True, legacy=False, num_heads=-1, num_head_channels=64,
)
FULL_CONTEXT = {"sd15": (768, None), "sdxl": (2048, 1280)}  # text width, pooled width

# Rectified-flow models (ComfyUI's model sampling CONST) with 16-channel latents.  The text and pooled widths differ
# from each other (T5's 4096 and CLIP's 768 in Flux, 4096 and 2048 in SD3) and the text width from the tiny UNets' 32,
# so that swapped or SD1 conditioning fails loudly (Flux alone would silently cut a too-wide pooled vector).
FLOW_CONTEXT_DIM = 48
FLOW_POOLED_DIM = 16
FLOW_CHANNELS = 16
FLUX_GUIDANCE = 3.5  # what the stock FluxGuidance node puts in the conditioning by default
# Flux dev's layout (guidance embedding, double then single stream blocks) at width 64: 2 heads of 32, whose rotary
# axes (index, row, column) must add up to the head width.
FLUX_DIT = dict(
    image_model="flux", in_channels=FLOW_CHANNELS, out_channels=FLOW_CHANNELS, patch_size=2,
    vec_in_dim=FLOW_POOLED_DIM, context_in_dim=FLOW_CONTEXT_DIM, hidden_size=64, mlp_ratio=4.0, num_heads=2, depth=1,
    depth_single_blocks=1, axes_dim=[8, 12, 12], theta=10000, qkv_bias=True, guidance_embed=True,
)
# ComfyUI's MMDiT is 64 wide per unit of depth (one head per 64), so depth 1 is the smallest; the keys are those its
# model detection reads off an SD3 checkpoint.  Positions for up to 32x32 patches (64x64 latents, 512 px).
SD3_MMDIT = dict(
    in_channels=FLOW_CHANNELS, out_channels=FLOW_CHANNELS, patch_size=2, depth=1, input_size=None,
    adm_in_channels=FLOW_POOLED_DIM, num_patches=32 * 32, pos_embed_max_size=32, pos_embed_scaling_factor=None,
    context_embedder_config={"target": "torch.nn.Linear",
                             "params": {"in_features": FLOW_CONTEXT_DIM, "out_features": 64}},
    x_block_self_attn_layers=[],
)
FLOW_KINDS = ("flux", "sd3")

# The smallest SDXL that ComfyUI's detection names SDXL: its match (supported_models.SDXL.unet_config) fixes 320
# channels, linear projections, the input transformer depths [0, 0, 2, 2, 10, 10], text width 2048 and the 2816-wide
# ADM, but not the channel multipliers nor the middle and output transformers: 320 channels at every level and no
# transformer outside the input blocks (134 M parameters, against SDXL's 2.6 G).  9 input channels make it an
# inpainting model (the latent, the mask, the masked picture's latent).
SDXL_INPAINT_UNET = dict(SDXL_FULL_UNET, in_channels=9, channel_mult=[1, 1, 1], transformer_depth_middle=-1,
                         transformer_depth_output=[0] * 9)
SDXL_CONTEXT = FULL_CONTEXT["sdxl"]
# Flux Fill's input: the 16-channel latent, the masked picture's latent and the mask folded 8x8 into 64 channels,
# 96 before the 2x2 patches (384 after), which is what ComfyUI detects Flux Fill by (supported_models.FluxInpaint).
FLUX_FILL_CHANNELS = 96
FLUX_FILL_DIT = dict(FLUX_DIT, in_channels=FLUX_FILL_CHANNELS)
# ComfyUI's Flux detection reads the depths, inputs and guidance embedding off the weights but assumes Flux's widths;
# the tiny Flux Fill is built at these instead (the full-width one for the bench keeps ComfyUI's).
TINY_FLUX_WIDTHS = {key: FLUX_DIT[key] for key in ("hidden_size", "num_heads", "context_in_dim", "axes_dim")}
# Flux's real widths (what ComfyUI's detection assumes), with ``depth`` double and ``depth_single_blocks`` single
# blocks of Flux's 19 and 38 (bench/instant_drag.py sets them).
FLUX_FILL_FULL_DIT = dict(FLUX_FILL_DIT, vec_in_dim=768, context_in_dim=4096, hidden_size=3072, num_heads=24,
                          axes_dim=[16, 56, 56])
FLUX_FULL_CONTEXT = (4096, 768, 256)  # T5-XXL's width, CLIP-L's pooled width, the tokens ComfyUI pads T5 to
DETECTED_KINDS = ("sdxl-inpaint", "flux-fill")


def _randomize_full(module, seed, dtype):
    """Fan-in-scaled random weights (norms at identity, biases 0), so a deep random UNet stays finite in fp16 (a
    DiT's RMSNorm gain is called ``scale``)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if "norm" in name or tensor.ndim < 2:
                tensor.fill_(1.0 if "norm" in name and name.endswith(("weight", "scale")) else 0.0)
            else:
                fan_in = tensor[0].numel()
                tensor.copy_((torch.randn(tensor.shape, generator=generator) * (0.5 / fan_in ** 0.5)).to(dtype))


def _sd15_base(unet: dict, kind: str, dtype: torch.dtype):
    """An SD1.x BaseModel: ``kind`` ``...-v`` is v-prediction, ``...-inpaint`` an inpainting model (9 input
    channels: the latent, the mask and the masked picture's latent, as ComfyUI detects such checkpoints)."""
    inpaint = kind.endswith("-inpaint")
    config = comfy.supported_models.SD15(dict(unet, in_channels=9) if inpaint else dict(unet))
    config.set_inference_dtype(dtype, None)
    model_type = comfy.model_base.ModelType.V_PREDICTION if kind.endswith("-v") else comfy.model_base.ModelType.EPS
    base = comfy.model_base.BaseModel(config, model_type=model_type)
    if inpaint:
        base.set_inpaint()
    return base


def make_full_model(kind: str = "sd15", seed: int = 0, dtype: torch.dtype = torch.float32):
    """A ModelPatcher around a full-size SD1.5 (``sd15``, ``sd15-inpaint``) or SDXL UNet with random weights, in
    ``dtype``."""
    if kind == "sdxl":
        config = comfy.supported_models.SDXL(dict(SDXL_FULL_UNET))
        config.set_inference_dtype(dtype, None)
        base = comfy.model_base.SDXL(config, model_type=comfy.model_base.ModelType.EPS)
    else:
        base = _sd15_base(SD15_UNET, kind, dtype)
    base.diffusion_model.to(dtype)
    _randomize_full(base.diffusion_model, seed, dtype)
    return comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(),
                                            offload_device=mm.unet_offload_device())


def make_full_vae(seed: int = 0, latent_channels: int = 4):
    """ComfyUI's VAE around SD's autoencoder (the real block structure and widths) with random weights;
    ``latent_channels=16`` is the Flux VAE's structure (no quantisation convolutions)."""
    from diffusers import AutoencoderKL

    flux = latent_channels == FLOW_CHANNELS
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        autoencoder = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                                    latent_channels=latent_channels, down_block_types=("DownEncoderBlock2D",) * 4,
                                    up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512,
                                    use_quant_conv=not flux, use_post_quant_conv=not flux)
    return comfy.sd.VAE(sd=autoencoder.state_dict())


def full_conditioning(kind: str = "sd15", seed: int = 1, tokens: int = 77):
    width, pooled = FULL_CONTEXT[kind]
    generator = torch.Generator().manual_seed(seed)
    extra = {} if pooled is None else {"pooled_output": torch.randn(1, pooled, generator=generator)}
    return [[torch.randn(1, tokens, width, generator=generator), extra]]


def _randomize(module, seed):
    """Small noise everywhere, norms at identity (a DiT's RMSNorm gain is called ``scale``: 0 would blank its
    attention)."""
    generator = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=generator) * 0.05 if "norm" not in k else
             (torch.ones_like(v) if k.endswith(("weight", "scale")) else torch.zeros_like(v))
             for k, v in module.state_dict().items()}
    module.load_state_dict(state)


def _flow_base(kind: str):
    """ComfyUI's Flux (model type FLUX: ModelSamplingFlux, shift 1.15) or SD3 (model type FLOW:
    ModelSamplingDiscreteFlow, the config's shift 3), as its loader builds them from a detected configuration."""
    if kind == "flux":
        config = comfy.supported_models.Flux(dict(FLUX_DIT))
        model_class, model_type = comfy.model_base.Flux, comfy.model_base.ModelType.FLUX
    else:
        config = comfy.supported_models.SD3(dict(SD3_MMDIT))
        model_class, model_type = comfy.model_base.SD3, comfy.model_base.ModelType.FLOW
    config.set_inference_dtype(torch.float32, None)
    return model_class(config, model_type=model_type)


def _detected(state: dict, widths: dict | None = None, dtype: torch.dtype = torch.float32):
    """The ModelPatcher ComfyUI's loader makes of these weights (``comfy.sd.load_diffusion_model_state_dict``: the
    architecture detected from the state dict); ``widths`` replace the widths the detection assumes, the one step
    that path cannot take for a narrowed model."""
    if widths is None:
        return comfy.sd.load_diffusion_model_state_dict(state, model_options={"dtype": dtype})
    config = comfy.model_detection.model_config_from_unet(state, "")
    config.unet_config.update(widths)
    config.set_inference_dtype(dtype, None)
    base = config.get_model(state, "")
    base.load_model_weights(state, "")
    return comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(),
                                            offload_device=mm.unet_offload_device())


@functools.lru_cache(maxsize=None)
def make_detected_model(kind: str, seed: int = 0, depths: tuple = (1, 1), dtype: torch.dtype = torch.float32):
    """An inpainting model that ComfyUI detects from its weights, built once per process and shared (as a loader's
    output is): ``sdxl-inpaint`` (:data:`SDXL_INPAINT_UNET`, loaded through ComfyUI's own diffusion-model path),
    ``flux-fill`` (the tiny Flux's widths with Flux Fill's input, detected as Flux Fill) or ``flux-fill-full``
    (Flux's real widths, ``depths`` double and single blocks, loaded through ComfyUI's own path)."""
    if kind == "sdxl-inpaint":
        config = comfy.supported_models.SDXL(dict(SDXL_INPAINT_UNET))
        config.set_inference_dtype(torch.float32, None)
        network = comfy.model_base.SDXL(config, model_type=comfy.model_base.ModelType.EPS).diffusion_model
        _randomize_full(network, seed, torch.float32)
        return _detected(network.state_dict(), dtype=dtype)
    full = kind == "flux-fill-full"
    if not full and kind != "flux-fill":
        raise ValueError(f"unknown detected model kind {kind!r}")
    config = comfy.supported_models.Flux(dict(FLUX_FILL_FULL_DIT, depth=depths[0], depth_single_blocks=depths[1])
                                         if full else dict(FLUX_FILL_DIT))
    config.set_inference_dtype(torch.float32, None)
    network = comfy.model_base.Flux(config).diffusion_model
    if full:
        _randomize_full(network, seed, torch.float32)
    else:
        _randomize(network, seed)
    return _detected(network.state_dict(), None if full else TINY_FLUX_WIDTHS, dtype)


def make_model(kind: str = "sd1", seed: int = 0):
    """A ModelPatcher around a tiny denoiser: kind is 'sd1', 'sd1-v' (v-prediction), 'sd1-inpaint' or 'sdxl' (UNets,
    4-channel latents), 'flux' or 'sd3' (rectified-flow transformers, 16-channel latents)."""
    if kind == "sdxl":
        config = comfy.supported_models.SDXL(dict(SDXL_UNET))
        config.set_inference_dtype(torch.float32, None)
        base = comfy.model_base.SDXL(config, model_type=comfy.model_base.ModelType.EPS)
    elif kind in FLOW_KINDS:
        base = _flow_base(kind)
    elif kind.startswith("sd1"):
        base = _sd15_base(SD1_UNET, kind, torch.float32)
    else:
        raise ValueError(f"unknown tiny model kind {kind!r}")
    _randomize(base.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(),
                                            offload_device=mm.unet_offload_device())


def conditioning(kind: str = "sd1", seed: int = 1, tokens: int = 77):
    """A CONDITIONING for the tiny ``kind``; Flux's carries the distilled guidance where FluxGuidance puts it."""
    generator = torch.Generator().manual_seed(seed)
    if kind not in FLOW_KINDS:
        extra = {"pooled_output": torch.randn(1, POOLED_DIM, generator=generator)}
        return [[torch.randn(1, tokens, 32, generator=generator), extra]]
    extra = {"pooled_output": torch.randn(1, FLOW_POOLED_DIM, generator=generator)}
    if kind == "flux":
        extra["guidance"] = FLUX_GUIDANCE
    return [[torch.randn(1, tokens, FLOW_CONTEXT_DIM, generator=generator), extra]]


def latent(batch: int = 1, size: int = 16, seed: int = 2, channels: int = 4):
    """Random latents; ``channels=FLOW_CHANNELS`` for Flux and SD3."""
    return {"samples": torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))}


def snapshot(value):
    """A deep copy of tensors inside nested lists/dicts, to prove inputs were not mutated."""
    return copy.deepcopy(value)


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
