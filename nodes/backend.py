"""The ComfyUI side of the denoiser protocol of :mod:`core`: a MODEL (ModelPatcher) as a sigma-space denoiser.

Loops run inside ComfyUI's own ``CFGGuider`` as a custom ``Sampler``: the guider
loads the model, prepares conditioning (SDXL's pooled ``y`` included), converts
the LATENT into model space and applies every patch, wrapper, ControlNet and
hook on the MODEL.  The loop body only sees a protocol denoiser.
"""
from typing import Any, Callable

import torch

import comfy.model_management
import comfy.model_sampling
import comfy.samplers

LoopBody = Callable[[Callable, torch.Tensor], tuple[torch.Tensor, Any]]


def model_sampling(model):
    # Patches such as ModelSamplingDiscrete replace the object: always ask the patcher.
    return model.get_model_object("model_sampling")


def prediction_kind(model) -> str:
    """The parameterisation the model is sampled with: ``EPS``, ``V_PREDICTION``, ... (ModelType's names).

    Read from the patched ``model_sampling``, not from the checkpoint: a ModelSamplingDiscrete node turns an eps
    checkpoint into a v-prediction model (and back), and everything the pack computes follows the patch.
    """
    sampling = model_sampling(model)
    kinds = comfy.model_sampling
    # Most specific first: EDM derives from V_PREDICTION, which (like X0) derives from EPS.
    for kind in (kinds.EDM, kinds.V_PREDICTION, kinds.X0, kinds.CONST, kinds.EPS):
        if isinstance(sampling, kind):
            return "FLOW" if kind is kinds.CONST else kind.__name__
    return type(sampling).__name__


class ModelNoiseSpace:
    """:class:`core.noise_space.NoiseSpace` through the model's own ``model_sampling``: ComfyUI's noising and input
    scaling, so eps, v-prediction, EDM and flow-matching (CONST) models, and any patched sampling, are served alike.
    """

    def __init__(self, sampling):
        self.sampling = sampling

    def noised(self, latent, noise, sigma):
        sigma = torch.full((noise.shape[0],), float(sigma), dtype=noise.dtype, device=noise.device)
        return self.sampling.noise_scaling(sigma, noise, latent)

    def input_scale(self, sigma):
        return float(self.sampling.calculate_input(torch.tensor([float(sigma)]), torch.ones(1)))

    def clean_sigma(self, sigma_table):
        # Flows end at 0 (ComfyUI's schedulers and diffusers' FlowMatchEuler); the variance-exploding kinds at the
        # table's first level, as diffusers' DDIM runs for the papers (set_alpha_to_one=False).
        return 0.0 if isinstance(self.sampling, comfy.model_sampling.CONST) else float(sigma_table[0])

    def stock_latent(self, sigma, x):
        """The model-space latent ``x`` at ``sigma`` as a stock sampler's LATENT (no noise added): KSampler and
        SamplerCustom scale their input by ``noise_scaling(sigma, 0, latent)``, so undo that scaling."""
        return self.sampling.inverse_noise_scaling(torch.tensor([float(sigma)]), x)


def noise_space(model) -> ModelNoiseSpace:
    return ModelNoiseSpace(model_sampling(model))


def is_flow(model) -> bool:
    return isinstance(model_sampling(model), comfy.model_sampling.CONST)


def require_unet(model, node: str) -> None:
    """Refuse, with a sentence, a MODEL ``node`` cannot serve yet: the drag methods, their LoRA and MasaCtrl hook a
    UNet's decoder blocks and self-attention and assume its eps/v parameterisation."""
    base = model.model
    unet = type(base.diffusion_model).__name__ == "UNetModel"
    if unet and not is_flow(model):
        return
    what = f"{type(base).__name__} ({'a flow-matching ' if is_flow(model) else 'a '}" \
           f"{'UNet' if unet else 'transformer'} model)"
    raise ValueError(f"{node}: only SD1.x, SD2.x and SDXL checkpoints (UNets, eps or v-prediction) are supported; "
                     f"this MODEL is {what}. On flow-matching models (SD3, Flux) use DDIM Inversion, DiffEdit Mask "
                     "Infer and Masked DDIM Decode.")


def needs_loss_scaling(model) -> bool:
    """Whether backward through this model runs in float16 (and so needs GradScaler against underflow)."""
    base = model.model
    return (base.manual_cast_dtype or base.get_dtype()) == torch.float16


def sigma_table(model) -> torch.Tensor:
    return model_sampling(model).sigmas.detach().float().cpu()


def model_signature(model) -> dict:
    """What a latent trajectory depends on: architecture family, parameterisation, noise table."""
    base = model.model
    table = sigma_table(model)
    return {
        "model_class": type(base).__name__,
        "model_type": prediction_kind(model),
        "latent_format": type(base.latent_format).__name__,
        "latent_channels": int(base.latent_format.latent_channels),
        "sigma_min": round(float(table[0]), 6),
        "sigma_max": round(float(table[-1]), 6),
        "sigma_count": len(table),
    }


def to_model_space(model, latent: torch.Tensor) -> torch.Tensor:
    return model.model.process_latent_in(latent)


def to_latent_space(model, x: torch.Tensor) -> torch.Tensor:
    return model.model.process_latent_out(x)


def zero_conditioning(model, batch: int = 1) -> list:
    """A zeroed text conditioning (as ComfyUI's ConditioningZeroOut) shaped for ``model``."""
    config = model.model.model_config.unet_config
    if "context_dim" not in config:
        raise ValueError(f"{type(model.model).__name__} needs a text conditioning here: connect one (an empty "
                         "prompt through CLIPTextEncode is the unconditional one)")
    context_dim = config.get("context_dim") or 768
    extra = {}
    adm = config.get("adm_in_channels")
    if adm:
        # SDXL's ADM vector is the pooled text embedding plus 6 (refiner: 5) size/crop embeddings of 256.
        size_embeddings = {"SDXL": 6 * 256, "SDXLRefiner": 5 * 256}.get(type(model.model).__name__)
        if size_embeddings is None:
            raise ValueError(f"{type(model.model).__name__} needs a text conditioning: connect one (an empty prompt "
                             "through CLIPTextEncode is the unconditional one)")
        extra["pooled_output"] = torch.zeros(batch, adm - size_embeddings)
    return [[torch.zeros(batch, 77, context_dim), extra]]


def autograd_ready(value):
    """A copy of nested lists/dicts whose tensors are normal tensors (not inference tensors, see ``run_guided``)."""
    if isinstance(value, torch.Tensor):
        with torch.inference_mode(False):
            return value.clone()
    if isinstance(value, dict):
        return {key: autograd_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(autograd_ready(item) for item in value)
    return value


def run_guided(model, positive, negative, cfg: float, latent: torch.Tensor, sigmas: torch.Tensor,
               body: LoopBody, seed: int = 0, autograd: bool = False) -> tuple[torch.Tensor, Any]:
    """Run ``body(denoise, x)`` on the model-space ``latent`` under ComfyUI's guider.

    ``body`` returns ``(x_final, extras)``; ``x_final`` comes back in LATENT
    space (like every ComfyUI sampler output), ``extras`` untouched.  The
    schedule ``sigmas`` is only handed to patches (``sample_sigmas``): the body
    decides how to walk it.

    ``autograd``: the body back-propagates.  ComfyUI executes graphs under
    ``torch.inference_mode()``, whose tensors backward refuses to save, so the
    guider then runs outside it on copies of the inputs.
    """
    if autograd:
        positive, negative, latent = autograd_ready(positive), autograd_ready(negative), autograd_ready(latent)
        with torch.inference_mode(False):
            return run_guided(model, positive, negative, cfg, latent, sigmas, body, seed)
    extras = {}

    class _Loop(comfy.samplers.Sampler):
        def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
                   disable_pbar=False):
            def denoise(x, sigma):
                return model_wrap(x, sigma, **extra_args)

            x, extras["value"] = body(denoise, latent_image)
            return x

    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative if negative is not None else positive)
    guider.set_cfg(cfg)
    if len(sigmas) == 0:
        raise ValueError("run_guided needs at least one sigma")
    latent = latent.to(comfy.model_management.intermediate_device(), torch.float32)
    out = guider.sample(torch.zeros_like(latent), latent, _Loop(), sigmas.float(), seed=seed)
    return out.to(comfy.model_management.intermediate_device()), extras.get("value")


def progress_callback(model, total_steps: int) -> Callable[[int, torch.Tensor, torch.Tensor], None]:
    """Progress bar, latent preview and the Cancel button for a loop of ``total_steps``."""
    import latent_preview

    preview = latent_preview.prepare_callback(model, total_steps)

    def callback(step: int, x: torch.Tensor, denoised: torch.Tensor) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        preview(step, denoised, x, total_steps)

    return callback


def check_interrupt() -> None:
    comfy.model_management.throw_exception_if_processing_interrupted()
