"""Benchmark stages on the diffusers backend: the core algorithms on a diffusers UNet with random weights.

Each function runs in a fresh process (see ``bench/run.py``), sets up untimed, then measures one stage.  The drag
runs twice over: the pack's path (``fast``) and the reference-equivalent one (``reference``: full UNet forward every
iteration, UNet weights left trainable so backward also fills their gradients, the dense upsampled feature map, and
at fp16/bf16 fp32 master weights under autocast), as the official code does.
"""
import contextlib
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench.measure import Meter
from core.backends.diffusers_unet import (
    DiffusersUNetDenoiser,
    feature_denoiser,
    layer_parts,
    reference_attention,
    self_attention_layers,
)
from core.ddim import ddim_invert
from core.diffedit import diffedit_mask, masked_ddim_decode
from core.drag import DragProblem, DragRun, optimize_drag_latent
from core.drag_model import at_sigma
from core.grids import image_points_to_grid, mask_to_latent_nearest, supervision_grid_hw
from core.lora import inject_lora, train_identity_lora
from core.masactrl import ReferenceRecording, SelfAttentionReference, default_start_layer, masactrl_denoise
from core.schedules import ddim_sigmas
from core.settings import DIFFEDIT, DRAGDIFFUSION
from tests.support.tiny_models import SD_SCHEDULER_CONFIG, tiny_unet

# (handle, target) as image fractions: far apart, so no run arrives early and every iteration is a full one
DRAG_POINTS = [([0.15, 0.20], [0.85, 0.80]), ([0.80, 0.15], [0.20, 0.85])]


def build_unet(config: dict):
    from diffusers import UNet2DConditionModel

    device, dtype = torch.device(config["device"]), getattr(torch, config["dtype"])
    if config["model"] == "tiny":
        unet, width = tiny_unet(seed=0), 32
    elif config["model"] == "sd15":
        torch.manual_seed(0)
        unet, width = UNet2DConditionModel(cross_attention_dim=768, sample_size=64), 768  # SD1.5's structure
        with torch.no_grad():
            for parameter in unet.parameters():  # small random weights keep fp16 activations in range
                if parameter.ndim > 1:
                    parameter.mul_(0.5)
    else:
        raise ValueError(f"the diffusers stages build 'tiny' or 'sd15', not {config['model']!r}")
    unet = unet.to(device, dtype).eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(1)
    cond = torch.randn(1, 77, width, generator=generator).to(device, dtype)
    side = config["px"] // 8
    clean = (torch.randn(1, 4, side, side, generator=generator) * 0.8).to(device)
    return unet, cond, clean


def _schedule(backend, config):
    return ddim_sigmas(backend.sigma_table, config["inversion_steps"], config["strength"])


def stage_lora(config: dict) -> dict:
    unet, cond, clean = build_unet(config)
    settings = replace(DRAGDIFFUSION.lora, steps=config["lora_steps"])
    params = inject_lora(unet, rank=settings.rank)  # in place: this process owns the UNet
    backend = DiffusersUNetDenoiser(unet, SD_SCHEDULER_CONFIG)
    with Meter(clean.device) as meter:
        losses = train_identity_lora(backend.denoiser(cond), params, clean, backend.sigma_table.to(clean.device),
                                     settings, loss_scaling=unet.dtype == torch.float16)
    return {"lora_identity_tune": meter.figures(steps=config["lora_steps"],
                                                per_step_s=round(meter.seconds / config["lora_steps"], 4),
                                                finite=all(v == v for v in losses))}


def stage_inversion(config: dict) -> dict:
    unet, cond, clean = build_unet(config)
    backend = DiffusersUNetDenoiser(unet, SD_SCHEDULER_CONFIG)
    sigmas = _schedule(backend, config)
    with Meter(clean.device) as meter, torch.no_grad():
        ddim_invert(backend.denoiser(cond), clean, sigmas.flip(0))
    return {"ddim_inversion": meter.figures(steps=len(sigmas) - 1)}


def _inverted(unet, cond, clean, config):
    backend = DiffusersUNetDenoiser(unet, SD_SCHEDULER_CONFIG)
    sigmas = _schedule(backend, config)
    with torch.no_grad():
        z = ddim_invert(backend.denoiser(cond), clean, sigmas.flip(0))[-1]
    return backend, sigmas, z


def drag_problem(config: dict, device):
    image_hw = (config["px"], config["px"])
    grid_hw = supervision_grid_hw(image_hw)
    to_px = lambda fractions: [[f * config["px"] for f in point] for point in fractions]  # noqa: E731
    handles = image_points_to_grid(to_px([h for h, _ in DRAG_POINTS]), image_hw, grid_hw)
    targets = image_points_to_grid(to_px([t for _, t in DRAG_POINTS]), image_hw, grid_hw)
    side = config["px"] // 8
    mask = torch.zeros(config["px"], config["px"])
    mask[config["px"] // 8: -config["px"] // 8, config["px"] // 8: -config["px"] // 8] = 1
    return grid_hw, handles, targets, mask_to_latent_nearest(mask, grid_hw, (side, side))[0, 0].to(device)


def stage_drag(config: dict, mode: str, masked: bool) -> dict:
    """``mode``: ``fast`` (the pack) or ``reference`` (reference-equivalent). Runs exactly ``drag_iters`` iterations."""
    unet, cond, clean = build_unet(config)
    backend, sigmas, z = _inverted(unet, cond, clean, config)
    grid_hw, handles, targets, mask = drag_problem(config, clean.device)
    sigma, sigma_next = float(sigmas[0]), float(sigmas[1])
    reference = mode == "reference"
    compute_dtype = unet.dtype
    autocast = contextlib.nullcontext()
    if reference:
        unet.requires_grad_(True)  # the official code never freezes the UNet during the drag
        if compute_dtype != torch.float32:  # fp32 master weights under autocast: the official recipe
            unet.float()
            autocast = torch.autocast(clean.device.type, compute_dtype)
    loss_scaling = compute_dtype == torch.float16  # GradScaler only where fp16 gradients can underflow
    stamps = []  # after each iteration (the loop has synced on its early-stop check by then)
    with Meter(clean.device) as meter, feature_denoiser(backend, cond) as forward, autocast:
        # reach_threshold 0: never "arrived", so both modes run the same number of iterations
        problem = DragProblem(handles=handles, targets=targets, grid_hw=grid_hw, mask_latent=mask if masked else None)
        settings = replace(DRAGDIFFUSION.drag, steps=config["drag_iters"], reach_threshold=0.0)
        run = DragRun(loss_scaling=loss_scaling, truncate=not reference, dense_features=reference)
        result = optimize_drag_latent(at_sigma(forward, sigma), z, sigma, sigma_next, problem, settings, run,
                                      callback=lambda progress: stamps.append(time.perf_counter()))
    name = f"drag_{mode}_{'mask' if masked else 'nomask'}"
    torch.save({"latent": result.latent.cpu(), "handles": result.handles.cpu()},
               Path(config["scratch"]) / f"{name}.pt")
    # an iteration's time: between consecutive iterations, so the one-off reference forward is not in it
    per_iteration = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else meter.seconds
    return {name: meter.figures(iterations=result.steps_run, per_iteration_s=round(per_iteration, 4),
                                finite=all(v == v for v in result.losses))}


def stage_masactrl(config: dict) -> dict:
    """The first denoise (both branches, recording the reference) and a re-drag's (edited branch only)."""
    unet, cond, clean = build_unet(config)
    backend, sigmas, z = _inverted(unet, cond, clean, config)
    edited = z + 0.05 * torch.randn(z.shape, generator=torch.Generator().manual_seed(3)).to(z.device)
    layers = self_attention_layers(unet)
    start = default_start_layer(layer_parts(layers))
    control = SelfAttentionReference([name for name, _ in layers[start:]])
    denoise = backend.denoiser(cond)
    recording = ReferenceRecording(max_bytes=2 ** 40, device=torch.device("cpu"))
    with torch.no_grad(), reference_attention(unet, control):
        with Meter(z.device) as first:
            _, out_first = masactrl_denoise(denoise, z, edited, sigmas, control, recording=recording)
        with Meter(z.device) as replay:
            _, out_replay = masactrl_denoise(denoise, z, edited, sigmas, control, recording=recording)
    return {"masactrl_first": first.figures(steps=len(sigmas) - 1),
            "masactrl_redrag": replay.figures(steps=len(sigmas) - 1,
                                              recording_mib=round(recording.nbytes / 2 ** 20, 1),
                                              equal_to_first=bool(torch.equal(out_first, out_replay)))}


def stage_diffedit(config: dict) -> dict:
    unet, cond, clean = build_unet(config)
    backend = DiffusersUNetDenoiser(unet, SD_SCHEDULER_CONFIG)
    query = cond.flip(1)  # another "text"
    samples = config["diffedit_samples"]
    noise = torch.randn((samples, *clean.shape), generator=torch.Generator().manual_seed(0)).to(clean.device)
    mask_sigma = float(ddim_sigmas(backend.sigma_table, config["inversion_steps"], DIFFEDIT.mask.noise_strength)[0])
    sigmas = ddim_sigmas(backend.sigma_table, config["inversion_steps"], DIFFEDIT.inversion.strength)
    with torch.no_grad():
        with Meter(clean.device) as mask_meter:
            mask = diffedit_mask(backend.denoiser(query), backend.denoiser(cond), clean, noise, mask_sigma)
        trajectory = ddim_invert(backend.denoiser(cond), clean, sigmas.flip(0))
        with Meter(clean.device) as decode_meter:
            guided = backend.denoiser(query, cond, DIFFEDIT.decode_cfg)
            masked_ddim_decode(guided, trajectory, sigmas, mask.binary[:, None])
    return {"diffedit_mask": mask_meter.figures(samples=samples),
            "diffedit_decode": decode_meter.figures(steps=len(sigmas) - 1)}


STAGES = {
    "lora": stage_lora,
    "inversion": stage_inversion,
    "drag_fast_nomask": lambda c: stage_drag(c, "fast", False),
    "drag_reference_nomask": lambda c: stage_drag(c, "reference", False),
    "drag_fast_mask": lambda c: stage_drag(c, "fast", True),
    "drag_reference_mask": lambda c: stage_drag(c, "reference", True),
    "masactrl": stage_masactrl,
    "diffedit": stage_diffedit,
}
