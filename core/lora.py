"""DragDiffusion's identity-preserving LoRA: one image, the prompt, the plain diffusion loss.

Backend-agnostic: training sees a sigma-space denoiser ``denoise(x, sigma) -> x0``
(k-diffusion convention, ``x = x0 + sigma * noise``) and the UNet module to
inject the adapters into.  Follows the reference ``utils/lora_utils.py::train_lora``
(rank 16, alpha = rank, AdamW 5e-4, 80 steps, batch 4, timesteps uniform over
the training table) with two deliberate deviations:

* no random crops: we train on the whole latent at the size the drag runs at
  (the reference crops 512 px squares, a no-op for square 512 px images);
* no VAE posterior sampling: the LATENT is the encoded mean (what inversion uses).
"""
from typing import Callable, Optional

import torch

from .settings import LoraSettings

TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]
ADAPTER = "default"


def lora_config(rank: int):
    from peft import LoraConfig

    # lora_alpha = r gives scale 1, as the reference's LoRALinearLayer without network_alpha;
    # "gaussian" = down ~ N(0, std 1/r), up = 0, the reference's init.
    return LoraConfig(r=rank, lora_alpha=rank, target_modules=list(TARGET_MODULES), init_lora_weights="gaussian",
                      lora_dropout=0.0)


def inject_lora(unet_module: torch.nn.Module, rank: int, seed: int = 0) -> list[torch.nn.Parameter]:
    """Wrap every attention projection of ``unet_module`` (in place) and return the trainable LoRA parameters.

    Call on a private copy: peft mutates the module.  LoRA weights are kept in
    float32 whatever the base dtype (as the reference: fp32 LoRA on an fp16 UNet).
    The down projections are redrawn from a CPU generator seeded with ``seed``
    (same distribution as peft's "gaussian"), so a run does not depend on the
    global RNG or the device.
    """
    from peft import inject_adapter_in_model

    unet_module.requires_grad_(False)
    with torch.inference_mode(False):
        inject_adapter_in_model(lora_config(rank), unet_module, adapter_name=ADAPTER)
    generator = torch.Generator().manual_seed(seed)
    params = []
    with torch.inference_mode(False), torch.no_grad():
        for name, param in unet_module.named_parameters():
            if ".lora_A." in name:
                param.data = (torch.randn(param.shape, generator=generator) / rank).to(param.device)
            elif ".lora_B." in name:
                param.data = torch.zeros(param.shape, device=param.device)
            else:
                param.requires_grad_(False)
                continue
            param.requires_grad_(True)
            params.append(param)
    if not params:
        raise ValueError("no attention projections (to_q/to_k/to_v/to_out.0) found to put LoRA on")
    return params


def diffusion_loss(denoise: Callable, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor,
                   prediction: str) -> torch.Tensor:
    """The reference's MSE in the model's own parameterisation, computed through a sigma-space denoiser.

    With ``x = x0 + sigma * noise`` and ``denoised = denoise(x, sigma)``:
    eps error = (x0 - denoised) / sigma; for v (VP scale s = sigma / sqrt(1 + sigma^2))
    x0 error = -s * v error, so v error = (x0 - denoised) * sqrt(1 + sigma^2) / sigma.
    """
    s = sigma.reshape(-1, *([1] * (x0.ndim - 1))).to(x0)
    denoised = denoise(x0 + s * noise, sigma)
    if prediction == "epsilon":
        error = (x0 - denoised) / s
    elif prediction == "v_prediction":
        error = (x0 - denoised) * (1 + s ** 2).sqrt() / s
    else:
        raise ValueError(f"unsupported prediction type {prediction!r}: LoRA identity tuning supports "
                         "'epsilon' and 'v_prediction' models")
    return error.float().pow(2).mean()


def train_identity_lora(denoise: Callable, params: list[torch.nn.Parameter], x0: torch.Tensor,
                        sigma_table: torch.Tensor, settings: LoraSettings = LoraSettings(), *,
                        prediction: str = "epsilon", loss_scaling: bool = False,
                        callback: Optional[Callable[[int, float], None]] = None,
                        check_interrupt: Optional[Callable[[], None]] = None) -> list[float]:
    """Fit ``params`` so that ``denoise`` reconstructs ``x0`` (one image, ``[1, C, H, W]``) at random noise levels.

    ``settings.steps`` AdamW steps at ``settings.learning_rate``; each draws noise ~ N(0, I) and a timestep for
    each of ``settings.batch_size`` copies of the image, uniform over ``sigma_table``, from a CPU generator seeded
    with ``settings.training_seed``.  The image is encoded once (the LATENT): no VAE work per step.
    ``loss_scaling``: ``torch.amp.GradScaler`` as the reference, for fp16 UNets.  Returns the loss per step.
    """
    steps, lr, batch, seed = settings.steps, settings.learning_rate, settings.batch_size, settings.training_seed
    if x0.shape[0] != 1:
        raise ValueError(f"identity tuning takes one image latent, got a batch of {x0.shape[0]}")
    generator = torch.Generator().manual_seed(seed)
    table = sigma_table.detach().float().cpu()
    losses = []
    # Inputs may be inference tensors (ComfyUI runs graphs under inference_mode): clone them outside it.
    with torch.inference_mode(False), torch.enable_grad():
        images = x0.detach().clone().float().repeat(batch, *([1] * (x0.ndim - 1)))
        device = images.device
        optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8,
                                      fused=device.type == "cuda")  # one kernel for all adapters
        scaler = torch.amp.GradScaler(device.type, init_scale=2.0 ** 16, enabled=loss_scaling)
        for step in range(steps):
            if check_interrupt is not None:
                check_interrupt()
            noise = torch.randn(images.shape, generator=generator).to(device)
            t = torch.randint(0, len(table), (batch,), generator=generator)
            sigma = table[t].to(device)
            loss = diffusion_loss(denoise, images, noise, sigma, prediction)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.detach())
            if callback is not None:
                callback(step, float(losses[-1]))
    return torch.stack(losses).tolist() if losses else []


def kohya_state_dict(unet_module: torch.nn.Module, prefix: str = "lora_unet_") -> dict[str, torch.Tensor]:
    """The injected adapters under kohya names (``lora_unet_<module path with _>.lora_down/.lora_up/.alpha``).

    With ComfyUI's LDM module names these load through the stock LoRA loader,
    A1111 and most other tools.
    """
    from peft.tuners.lora import LoraLayer

    state = {}
    for name, module in unet_module.named_modules():
        if not isinstance(module, LoraLayer) or ADAPTER not in module.lora_A:
            continue
        key = prefix + name.replace(".", "_")
        state[f"{key}.lora_down.weight"] = module.lora_A[ADAPTER].weight.detach().float().cpu().contiguous()
        state[f"{key}.lora_up.weight"] = module.lora_B[ADAPTER].weight.detach().float().cpu().contiguous()
        state[f"{key}.alpha"] = torch.tensor(float(module.lora_alpha[ADAPTER]))
    return state
