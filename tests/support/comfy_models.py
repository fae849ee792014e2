"""ComfyUI models built from ComfyUI's own model classes, with random weights (no checkpoint can be downloaded).

Tiny ones for the host tests; full SD1.5 and SDXL UNets (the real block structure and widths) for ``bench/``.
Needs ComfyUI on ``sys.path``.
"""
import copy

import torch

import comfy.model_base
import comfy.model_management as mm
import comfy.model_patcher
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


def _randomize_full(module, seed, dtype):
    """Fan-in-scaled random weights (norms at identity, biases 0), so a deep random UNet stays finite in fp16."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if "norm" in name or tensor.ndim < 2:
                tensor.fill_(1.0 if "norm" in name and name.endswith("weight") else 0.0)
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


def make_full_vae(seed: int = 0):
    """ComfyUI's VAE around SD's autoencoder (the real block structure and widths) with random weights."""
    from diffusers import AutoencoderKL

    import comfy.sd

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        autoencoder = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                                    down_block_types=("DownEncoderBlock2D",) * 4,
                                    up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512)
    return comfy.sd.VAE(sd=autoencoder.state_dict())


def full_conditioning(kind: str = "sd15", seed: int = 1, tokens: int = 77):
    width, pooled = FULL_CONTEXT[kind]
    generator = torch.Generator().manual_seed(seed)
    extra = {} if pooled is None else {"pooled_output": torch.randn(1, pooled, generator=generator)}
    return [[torch.randn(1, tokens, width, generator=generator), extra]]


def _randomize(module, seed):
    generator = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=generator) * 0.05 if "norm" not in k else
             (torch.ones_like(v) if k.endswith("weight") else torch.zeros_like(v))
             for k, v in module.state_dict().items()}
    module.load_state_dict(state)


def make_model(kind: str = "sd1", seed: int = 0):
    """A ModelPatcher around a tiny UNet: kind is 'sd1', 'sd1-v' (v-prediction), 'sd1-inpaint' or 'sdxl'."""
    if kind == "sdxl":
        config = comfy.supported_models.SDXL(dict(SDXL_UNET))
        config.set_inference_dtype(torch.float32, None)
        base = comfy.model_base.SDXL(config, model_type=comfy.model_base.ModelType.EPS)
    else:
        base = _sd15_base(SD1_UNET, kind, torch.float32)
    _randomize(base.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(),
                                            offload_device=mm.unet_offload_device())


def conditioning(kind: str = "sd1", seed: int = 1, tokens: int = 77):
    generator = torch.Generator().manual_seed(seed)
    extra = {"pooled_output": torch.randn(1, POOLED_DIM, generator=generator)}
    return [[torch.randn(1, tokens, 32, generator=generator), extra]]


def latent(batch: int = 1, size: int = 16, seed: int = 2):
    return {"samples": torch.randn(batch, 4, size, size, generator=torch.Generator().manual_seed(seed))}


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
