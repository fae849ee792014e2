"""Time and memory of the DragDiffusion pipeline at full SD1.5 size (random weights: no checkpoint can be downloaded).

Runs the core through the diffusers backend on an SD1.5-shaped UNet (860 M parameters) at 512x512:
LoRA identity tuning (80 steps, batch 4, rank 16), DDIM inversion (50 steps, strength 0.7 = 35 steps),
drag optimisation (80 steps, two pairs, a mask) and latent-MasaCtrl denoising (35 steps).  Also measures the
drag step with the UNet's weights left trainable, as the reference leaves them, to show what freezing saves.

    python bench/drag_pipeline.py --device cuda --dtype float16 --out results.json

Random weights do not drag anything meaningful; the figures are for cost, plus a check that the fp16 path
(loss scaling) gives finite gradients and a falling LoRA loss.
"""
import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.backends.diffusers_unet import (DiffusersUNetDenoiser, feature_denoiser, layer_parts,  # noqa: E402
                                          reference_attention, self_attention_layers)
from core.ddim import batch_sigma, ddim_invert  # noqa: E402
from core.drag import image_points_to_grid, optimize_drag_latent, supervision_grid_hw  # noqa: E402
from core.lora import inject_lora, train_identity_lora  # noqa: E402
from core.masactrl import SelfAttentionReference, default_start_layer, masactrl_denoise  # noqa: E402
from core.schedules import ddim_sigmas  # noqa: E402
from tools.tiny_models import SD_SCHEDULER_CONFIG  # noqa: E402


def sd15_unet(dtype, device):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64)  # SD1.5's block structure and widths
    with torch.no_grad():
        for parameter in unet.parameters():  # small random weights keep fp16 activations in range
            if parameter.ndim > 1:
                parameter.mul_(0.5)
    return unet.to(device, dtype).eval().requires_grad_(False)


class Stage:
    def __init__(self, device, results, name):
        self.device, self.results, self.name = device, results, name

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        entry = {"seconds": round(time.perf_counter() - self.start, 3)}
        if self.device.type == "cuda":
            entry["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 3)
        self.results.setdefault(self.name, {}).update(entry)
        print(self.name, self.results[self.name], flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--lora-steps", type=int, default=80)
    parser.add_argument("--drag-steps", type=int, default=80)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    results = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "dtype": args.dtype,
               "size": args.size, "torch": torch.__version__}

    unet = sd15_unet(dtype, device)
    results["unet_parameters_m"] = round(sum(p.numel() for p in unet.parameters()) / 1e6, 1)
    side = args.size // 8
    generator = torch.Generator().manual_seed(1)
    clean = (torch.randn(1, 4, side, side, generator=generator) * 0.8).to(device)
    cond = torch.randn(1, 77, 768, generator=generator).to(device, dtype)

    tuned = copy.deepcopy(unet)
    params = inject_lora(tuned, rank=16)
    lora_backend = DiffusersUNetDenoiser(tuned, SD_SCHEDULER_CONFIG)
    with Stage(device, results, "lora_80x4"):
        losses = train_identity_lora(lora_backend.denoiser(cond), params, clean, lora_backend.sigma_table.to(device),
                                     steps=args.lora_steps, batch=4)
    results["lora_80x4"].update(first_loss=round(losses[0], 4), last_loss=round(losses[-1], 4),
                                mean_first_10=round(sum(losses[:10]) / 10, 4),
                                mean_last_10=round(sum(losses[-10:]) / 10, 4),
                                finite=all(map(lambda v: v == v and abs(v) != float("inf"), losses)))
    del tuned, params, lora_backend

    backend = DiffusersUNetDenoiser(unet, SD_SCHEDULER_CONFIG)
    sigmas = ddim_sigmas(backend.sigma_table, 50, 0.7)
    denoise = backend.denoiser(cond)
    with Stage(device, results, "inversion_35"), torch.no_grad():
        z = ddim_invert(denoise, clean, sigmas.flip(0))[-1]

    image_hw = (args.size, args.size)
    grid_hw = supervision_grid_hw(image_hw)
    handles = image_points_to_grid([[200, 260], [330, 180]], image_hw, grid_hw)
    targets = image_points_to_grid([[260, 240], [350, 140]], image_hw, grid_hw)
    mask = torch.zeros(side, side, device=device)
    mask[side // 8: -side // 8, side // 8: -side // 8] = 1
    sigma, sigma_next = float(sigmas[0]), float(sigmas[1])

    def drag(steps):
        with feature_denoiser(backend, cond) as forward:
            return optimize_drag_latent(lambda x: forward(x, batch_sigma(sigma, x)), z, sigma, sigma_next, handles,
                                        targets, grid_hw=grid_hw, mask_latent=mask, steps=steps, reach_threshold=0.5)

    with Stage(device, results, "drag_80"):
        result = drag(args.drag_steps)
    results["drag_80"].update(steps_run=result.steps_run,
                              per_step_s=round(results["drag_80"]["seconds"] / max(1, result.steps_run), 4),
                              finite_losses=all(v == v for v in result.losses),
                              latent_change=round(float((result.latent - z).abs().mean()), 5))
    unet.requires_grad_(True)  # the reference never freezes the UNet during the drag
    with Stage(device, results, "drag_10_unfrozen_weights"):
        unfrozen = drag(10)
    unet.requires_grad_(False).zero_grad(set_to_none=True)
    results["drag_10_unfrozen_weights"]["per_step_s"] = round(
        results["drag_10_unfrozen_weights"]["seconds"] / max(1, unfrozen.steps_run), 4)
    del unfrozen

    layers = self_attention_layers(unet)
    start = default_start_layer(layer_parts(layers))
    control = SelfAttentionReference([name for name, _ in layers[start:]])
    with Stage(device, results, "masactrl_35"), torch.no_grad(), reference_attention(unet, control):
        reference, edited = masactrl_denoise(denoise, z, result.latent.to(z.dtype), sigmas, control)
    results["masactrl_35"].update(start_layer=start, controlled_layers=len(layers) - start,
                                  finite=bool(torch.isfinite(edited).all()))
    print(json.dumps(results, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
