"""Tiny randomly initialised diffusers models with SD-style configs.

No weights can be downloaded where this pack is tested, so tests and the
headless demo build these.  They run the same code paths as real checkpoints:
only the widths are small.
"""
import torch

SD_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
)
CONTEXT_DIM = 32


def scheduler_config(prediction_type: str = "epsilon") -> dict:
    return dict(SD_SCHEDULER_CONFIG, prediction_type=prediction_type)


def randomize_(module: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    """Overwrite every parameter with seeded noise, so zero-initialised output layers do something."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return module


def tiny_unet(seed: int = 0, attention_everywhere: bool = False):
    """An SD1.x-shaped UNet: two resolutions, cross-attention in the lower one (or in both)."""
    from diffusers import UNet2DConditionModel

    first = "CrossAttn" if attention_everywhere else ""
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=(f"{first}DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", f"{first}UpBlock2D"), cross_attention_dim=CONTEXT_DIM,
        attention_head_dim=8, norm_num_groups=32,
    )
    randomize_(unet, seed)
    # Keep norms near identity so activations stay in a sane range.
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "norm" in name:
                parameter.fill_(1.0 if name.endswith("weight") else 0.0)
    return unet.eval().requires_grad_(False)


def tiny_vae(seed: int = 0):
    """A one-level AutoencoderKL (no downsampling): latents at pixel resolution / 1."""
    from diffusers import AutoencoderKL

    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's generator
        torch.manual_seed(seed)
        vae = AutoencoderKL(block_out_channels=(32,), latent_channels=4, norm_num_groups=32, sample_size=16)
    return vae.eval().requires_grad_(False)


def text_embedding(text: str, tokens: int = 8) -> torch.Tensor:
    """A deterministic stand-in for a text encoder: one random embedding per distinct text."""
    seed = sum((i + 1) * ord(c) for i, c in enumerate(text)) % (2 ** 31)
    return torch.randn(1, tokens, CONTEXT_DIM, generator=torch.Generator().manual_seed(seed))
