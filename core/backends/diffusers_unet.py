"""Denoiser backend for a diffusers ``UNet2DConditionModel``.

Lets the core run on a real UNet without ComfyUI (tests, the headless demo).
The sigma table comes from the scheduler config, so it matches ComfyUI's
``model_sampling`` for the same checkpoint.
"""
import contextlib
from typing import Optional

import torch

from ..ddim import Denoiser
from ..drag_model import ForwardTruncated, guided_forward
from ..guidance import classifier_free_guidance
from ..schedules import sigmas_from_alphas_cumprod


class DiffusersUNetDenoiser:
    """``unet(x_vp, t) -> eps | v`` turned into ``(x, sigma) -> x0`` in sigma space."""

    def __init__(self, unet, scheduler_config):
        from diffusers import DDPMScheduler  # only for its beta-schedule arithmetic

        config = dict(scheduler_config)
        self.prediction_type = config.get("prediction_type", "epsilon")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"unsupported prediction_type {self.prediction_type!r}")
        alphas_cumprod = DDPMScheduler.from_config(config).alphas_cumprod
        self.unet = unet
        self.sigma_table = sigmas_from_alphas_cumprod(alphas_cumprod)
        self._log_sigmas = self.sigma_table.double().log()

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Nearest integer timestep in log-sigma, as ComfyUI's ``ModelSamplingDiscrete``."""
        distance = (sigma.detach().double().cpu().log()[:, None] - self._log_sigmas[None]).abs()
        return distance.argmin(dim=1)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, encoder_hidden_states: torch.Tensor,
                 **unet_kwargs) -> torch.Tensor:
        work = torch.promote_types(x.dtype, torch.float32)  # the UNet may be half; the sigma-space maths is not
        sigma = sigma.to(x.device, work).reshape(-1, 1, 1, 1)
        x_vp = x / (1 + sigma ** 2).sqrt()
        t = self.timestep(sigma.flatten()).to(x.device)
        dtype = self.unet.dtype
        out = self.unet(x_vp.to(dtype), t, encoder_hidden_states=encoder_hidden_states.to(dtype),
                        **unet_kwargs).sample.to(work)
        if self.prediction_type == "epsilon":
            return x - sigma * out
        return x / (1 + sigma ** 2) - out * sigma / (1 + sigma ** 2).sqrt()

    def denoiser(self, cond: torch.Tensor, uncond: Optional[torch.Tensor] = None, cfg: float = 1.0,
                 **unet_kwargs) -> Denoiser:
        """Bind conditioning (and CFG when ``cfg != 1``) into a protocol denoiser.

        ``cond``/``uncond`` are text embeddings ``[1 or B, tokens, dim]``.
        """
        def expand(embeds: torch.Tensor, batch: int) -> torch.Tensor:
            if embeds.shape[0] not in (1, batch):
                raise ValueError(f"conditioning batch {embeds.shape[0]} does not broadcast to latent batch {batch}")
            return embeds.expand(batch, *embeds.shape[1:])

        def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            batch = x.shape[0]
            if cfg == 1.0 or uncond is None:
                return self(x, sigma, expand(cond, batch), **unet_kwargs)
            both = torch.cat([expand(uncond, batch), expand(cond, batch)])
            both_x, both_sigma = torch.cat([x, x]), torch.cat([sigma, sigma])
            denoised_uncond, denoised_cond = self(both_x, both_sigma, both, **unet_kwargs).chunk(2)
            return classifier_free_guidance(denoised_cond, denoised_uncond, cfg)

        return denoise


def self_attention_layers(unet) -> list[tuple[str, int]]:
    """Every self-attention module name in execution order, with the latent downscale it runs at."""
    levels = len(unet.down_blocks)
    parts = [(f"down_blocks.{i}", 2 ** i) for i in range(levels)]
    parts.append(("mid_block", 2 ** (levels - 1)))
    parts += [(f"up_blocks.{i}", 2 ** (levels - 1 - i)) for i in range(len(unet.up_blocks))]
    names = [name for name, _ in unet.named_modules() if name.endswith(".attn1")]
    layers = []
    for prefix, scale in parts:
        layers += [(name, scale) for name in names if name.startswith(prefix + ".")]
    return layers


def layer_parts(layers: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """``(part, downscale)`` per layer, as ``core.masactrl.default_start_layer`` takes them."""
    part = {"down_blocks": "input", "mid_block": "middle", "up_blocks": "output"}
    return [(part[name.split(".")[0]], scale) for name, scale in layers]


def default_feature_block(unet) -> int:
    """The up block whose upsampler reaches full latent resolution (SD1.5: ``up_blocks[2]``)."""
    return max(i for i, block in enumerate(unet.up_blocks) if getattr(block, "upsamplers", None))


class _ReferenceAttnProcessor:
    def __init__(self, inner, name, control):
        self.inner, self.name, self.control = inner, name, control

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, *args, **kwargs):
        if encoder_hidden_states is None:
            encoder_hidden_states = self.control.context(self.name, hidden_states)
        return self.inner(attn, hidden_states, encoder_hidden_states, *args, **kwargs)


@contextlib.contextmanager
def reference_attention(unet, control):
    """Route the self-attention layers in ``control.layers`` (module names) through ``control``."""
    modules = dict(unet.named_modules())
    saved = {name: modules[name].processor for name, _ in self_attention_layers(unet)}
    try:
        for name, processor in saved.items():
            modules[name].set_processor(_ReferenceAttnProcessor(processor, name, control))
        yield
    finally:
        for name, processor in saved.items():
            modules[name].set_processor(processor)


class DiffusersDragModel:
    """:class:`core.drag_model.DragModel` over a diffusers UNet; use as a context manager (it hooks
    ``up_blocks[up_block]``, the supervised block, while open)."""

    def __init__(self, backend: DiffusersUNetDenoiser, cond, uncond=None, cfg: float = 1.0, up_block: int = -1):
        self.unet = backend.unet
        self.block = default_feature_block(self.unet) if up_block < 0 else up_block
        self.cfg = cfg
        self._guided = cfg != 1.0 and uncond is not None  # the denoiser then batches [uncond, cond]
        self._denoise = backend.denoiser(cond, uncond, cfg)
        self._captured, self._full, self._handle = None, True, None

    def __enter__(self) -> "DiffusersDragModel":
        self._handle = self.unet.up_blocks[self.block].register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._captured = None
        self._handle.remove()

    def _hook(self, module, args, out):
        self._captured = out
        if not self._full:
            raise ForwardTruncated(out)

    # BlockCapture
    def arm(self, full: bool) -> None:
        self._full = full

    def take(self):
        captured, self._captured = self._captured, None
        if self._guided:
            uncond, cond = captured.chunk(2)
            return cond, uncond
        return captured, None

    # DragModel
    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.arm(True)
        return self._denoise(x, sigma)

    def features(self, x: torch.Tensor, sigma: torch.Tensor, full: bool = True):
        return guided_forward(self._denoise, self, self.cfg, x, sigma, full)


@contextlib.contextmanager
def feature_denoiser(backend: DiffusersUNetDenoiser, cond, uncond=None, cfg: float = 1.0, up_block: int = -1):
    """``forward(x, sigma, full=True) -> (denoised, features)`` for ``core.drag`` (a :class:`DiffusersDragModel`'s
    ``features``); use inside ``with``. The features are the output of ``up_blocks[up_block]``."""
    with DiffusersDragModel(backend, cond, uncond, cfg, up_block) as model:
        yield model.features
