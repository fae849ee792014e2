"""Headless DragDiffusion on a real image: the full pipeline through the pack's core, on the diffusers backend.

Usage::

    python -m tools.demo_drag [--model DIR] [--image PATH] [--prompt TEXT] [--points JSON] [--mask PATH]
                              [--out DIR] [--overwrite] [--steps 50] [--strength 0.7] [--lora-steps N]
                              [--lora-rank 16] [--drag-steps 80] [--lr 0.01] [--lam 0.1] [--seed 0] [--size N]

The DragDiffusion counterpart of ``tools/demo.py`` (same model loading, input image and checks).  Without
``--model`` it runs the embedded tiny random models on a synthetic disc: that proves the pipeline end to end, but
with random weights nothing meaningful moves.  ``--model`` takes a local diffusers-format Stable Diffusion folder.

``--points`` is the Drag nodes' JSON ``[{"handle": [x, y], "target": [x, y]}, ...]`` in pixels of the (resized)
image; by default one pair drags the synthetic disc to the right.  ``--mask`` is a picture (resized to the image,
white = editable); without it everything is editable and there is no mask term.

Stages, the same core functions the ComfyUI nodes call: VAE encode (posterior mean x scaling factor) ->
``inject_lora`` + ``train_identity_lora`` on a deep copy of the UNet (identity tuning on the prompt; skipped with
``--lora-steps 0``) -> ``ddim_invert`` (prompt, no CFG) -> ``optimize_drag_latent`` on the decoder features
(``feature_denoiser``) at the inverted noise level -> ``masactrl_denoise`` inside ``reference_attention`` (the
reference branch denoises the inverted latent, the edited branch the dragged one) -> VAE decode.  Every stage after
the LoRA runs on the tuned UNet, as DragDiffusion does.

Points and the supervision grid: the grid is computed from the IMAGE size (``supervision_grid_hw``: half the image
in each direction) and points go image px -> grid with ``image_points_to_grid`` and back with
``grid_points_to_image``, exactly as the Drag node does.  With an SD VAE (latent = image / 8) the decoder features
are upsampled to the grid, as in the reference.  The tiny VAE does not downsample (latent = image size), so there the
same grid is *coarser* than the feature map and the (exact, sparse) bilinear sampling of ``core.drag`` reads it at
half resolution instead; the points need no rescaling, and handle distances are reported in image pixels either way
(their resolution is 2 image px, one grid cell).

Writes input.png, drag_points.png (handles red, targets blue), edited.png, reference.png (the MasaCtrl reference
branch, i.e. the reconstruction) and summary.json to ``--out``.  Exit code 0 on success, 2 on bad input.
"""
import argparse
import copy
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from core.points import parse_drag_points
from core.preview import drag_preview_image
from core.settings import DRAGDIFFUSION
from tools.demo import BadInput, Progress, StageClock, check_paths, chw_to_pil, command, input_image, load_backend

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_FILES = ("input.png", "drag_points.png", "edited.png", "reference.png", "summary.json")
TINY_LORA_STEPS = 10  # keeps the tiny default quick; real models get the reference's 80


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m tools.demo_drag", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="local diffusers Stable Diffusion folder (default: tiny random model)")
    p.add_argument("--image", help="input image (default: a synthetic disc on a gradient)")
    p.add_argument("--prompt", default="an orange ball on a gradient", help="text describing the image")
    p.add_argument("--points", help='JSON [{"handle": [x, y], "target": [x, y]}, ...] in pixels of the resized '
                                    "image (default: drag the synthetic disc to the right)")
    p.add_argument("--mask", help="editable-region picture, white = editable (default: everything editable)")
    p.add_argument("--out", default="demo_drag_output", help="output folder (default: ./demo_drag_output)")
    p.add_argument("--overwrite", action="store_true", help="replace the demo's files in a non-empty --out")
    p.add_argument("--steps", type=int, default=DRAGDIFFUSION.inversion.steps)
    p.add_argument("--strength", type=float, default=DRAGDIFFUSION.inversion.strength,
                   help="inversion strength (DragDiffusion: 0.7)")
    p.add_argument("--lora-steps", type=int,
                   help=f"identity LoRA steps, 0 to skip (default: 80 with --model, {TINY_LORA_STEPS} for the tiny "
                        "model)")
    p.add_argument("--lora-rank", type=int, default=DRAGDIFFUSION.lora.rank)
    p.add_argument("--drag-steps", type=int, default=DRAGDIFFUSION.drag.steps)
    p.add_argument("--lr", type=float, default=DRAGDIFFUSION.drag.learning_rate)
    p.add_argument("--lam", type=float, default=DRAGDIFFUSION.drag.mask_weight, help="weight of the mask term")
    p.add_argument("--seed", type=int, default=DRAGDIFFUSION.lora.training_seed)
    p.add_argument("--size", type=int, help="longer image side (default: 512 with --model, 64 for the tiny model)")
    return p.parse_args(argv)


def check_args(args) -> None:
    """Every check that needs no model (points are checked once the image size is known, still before loading)."""
    from core.schedules import encoded_steps

    if not 1 <= args.steps <= 999:
        raise BadInput(f"--steps must be between 1 and 999, got {args.steps}")
    if not 0.0 < args.strength <= 1.0 or encoded_steps(args.steps, args.strength) < 1:
        raise BadInput(f"--strength must be in (0, 1] and cover at least one of the {args.steps} steps, "
                       f"got {args.strength}")
    if args.lora_steps is not None and args.lora_steps < 0:
        raise BadInput(f"--lora-steps must be 0 (no LoRA) or more, got {args.lora_steps}")
    if args.lora_rank < 1:
        raise BadInput(f"--lora-rank must be at least 1, got {args.lora_rank}")
    if args.drag_steps < 0:
        raise BadInput(f"--drag-steps must be 0 or more, got {args.drag_steps}")
    for name in ("lr", "lam"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value >= 0):
            raise BadInput(f"--{name} must be a finite number >= 0, got {value}")
    if args.mask is not None and not Path(args.mask).is_file():
        raise BadInput(f"--mask {args.mask}: no such file")
    check_paths(args)


def drag_points(args, image) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(handles, targets, json)`` in image ``[x, y]`` pixels, validated by the Drag nodes' own parser."""
    width, height = image.size
    text = args.points
    if text is None:  # the synthetic disc's centre (see tools.demo.input_image), a fifth of the image to the right
        cx, cy = round(0.55 * width), round(0.45 * height)
        text = json.dumps([{"handle": [cx, cy], "target": [min(width, cx + round(0.2 * width)), cy]}])
    try:
        handles, targets = parse_drag_points(text, (height, width))
    except ValueError as error:
        raise BadInput(f"--points: {error}") from error
    return handles, targets, text


def load_mask(args, image) -> torch.Tensor | None:
    """``[H, W]`` {0, 1} at the image's size (1 = editable), or None."""
    from PIL import Image

    if args.mask is None:
        return None
    try:
        mask = Image.open(args.mask).convert("L").resize(image.size, Image.NEAREST)
    except Exception as error:  # PIL raises several types for unreadable files
        raise BadInput(f"--mask {args.mask}: cannot read it as an image ({error})") from error
    return (torch.from_numpy(np.asarray(mask).copy()) > 127).float()


def _change(a: torch.Tensor, b: torch.Tensor, inside: torch.Tensor | None) -> dict:
    change = (a.float() - b.float()).abs().mean(dim=1)[0]  # [h, w]
    if inside is None:
        return {"everywhere_mean_abs": float(change.mean())}
    return {"inside_mask_mean_abs": float(change[inside].mean()) if inside.any() else None,
            "outside_mask_mean_abs": float(change[~inside].mean()) if (~inside).any() else None}


def run(args) -> dict:
    from core.backends.diffusers_unet import (
        DiffusersUNetDenoiser,
        feature_denoiser,
        layer_parts,
        reference_attention,
        self_attention_layers,
    )
    from core.ddim import ddim_invert
    from core.drag import DragProblem, optimize_drag_latent
    from core.drag_model import at_sigma
    from core.grids import grid_points_to_image, image_points_to_grid, mask_to_latent_nearest, supervision_grid_hw
    from core.lora import inject_lora, train_identity_lora
    from core.masactrl import SelfAttentionReference, default_start_layer, masactrl_denoise
    from core.schedules import ddim_sigmas, encoded_steps

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = args.size or (64 if args.model is None else 512)
    lora_steps = args.lora_steps if args.lora_steps is not None else (
        TINY_LORA_STEPS if args.model is None else DRAGDIFFUSION.lora.steps)
    stages = StageClock(device)
    timings, lap = stages.timings, stages.lap

    image = input_image(args, size)
    handles_xy, targets_xy, points_json = drag_points(args, image)
    mask = load_mask(args, image)
    backend, vae, config, encode_text, dtype = load_backend(args, device)
    unet = backend.unet
    cond = encode_text(args.prompt).to(device)
    lap("load")

    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float().div(127.5).sub(1)
    scaling = vae.config.scaling_factor
    latent = vae.encode(pixels.to(device)).latent_dist.mean.float() * scaling
    lap("vae_encode")

    losses = []
    if lora_steps:
        tuned = copy.deepcopy(unet)  # peft mutates the module: the loaded UNet stays untouched
        params = inject_lora(tuned, rank=args.lora_rank, seed=args.seed)
        tuned_backend = DiffusersUNetDenoiser(tuned, config)

        def report(step, loss):
            if step + 1 == lora_steps or (step + 1) % max(1, lora_steps // 4) == 0:
                print(f"  lora: {step + 1}/{lora_steps} loss {loss:.4f}", file=sys.stderr, flush=True)

        settings = replace(DRAGDIFFUSION.lora, steps=lora_steps, rank=args.lora_rank, training_seed=args.seed)
        losses = train_identity_lora(tuned_backend.denoiser(cond), params, latent,
                                     tuned_backend.sigma_table.to(device), settings,
                                     prediction=tuned_backend.prediction_type, callback=report)
        tuned.requires_grad_(False)
        backend = tuned_backend  # inversion, drag and MasaCtrl run on the tuned UNet
    lap("lora")

    sigmas = ddim_sigmas(backend.sigma_table, args.steps, args.strength)
    steps = encoded_steps(args.steps, args.strength)
    denoise = backend.denoiser(cond)
    trajectory = ddim_invert(Progress("invert", steps).wrap(denoise), latent, sigmas.flip(0))
    z = trajectory[-1]
    lap("invert")

    image_hw = (image.size[1], image.size[0])
    grid_hw = supervision_grid_hw(image_hw)
    handles = image_points_to_grid(handles_xy, image_hw, grid_hw)
    targets = image_points_to_grid(targets_xy, image_hw, grid_hw)
    latent_hw = tuple(latent.shape[-2:])
    mask_latent = None if mask is None else mask_to_latent_nearest(mask, grid_hw, latent_hw)[0, 0].to(device)
    sigma, sigma_next = float(sigmas[0]), float(sigmas[1])

    def drag_report(progress):
        if progress.update % max(1, args.drag_steps // 4) == 0:
            print(f"  drag: step {progress.update}/{args.drag_steps} loss {float(progress.loss):.4f}",
                  file=sys.stderr, flush=True)

    settings = replace(DRAGDIFFUSION.drag, steps=args.drag_steps, learning_rate=args.lr, mask_weight=args.lam)
    problem = DragProblem(handles=handles, targets=targets, grid_hw=grid_hw, mask_latent=mask_latent)
    with feature_denoiser(backend, cond) as forward:
        result = optimize_drag_latent(at_sigma(forward, sigma), z, sigma, sigma_next, problem, settings,
                                      callback=drag_report)
    lap("drag")

    layers = self_attention_layers(backend.unet)
    start = default_start_layer(layer_parts(layers))
    control = SelfAttentionReference([name for name, _ in layers[start:]])
    with reference_attention(backend.unet, control):
        reference, edited = masactrl_denoise(Progress("masactrl", 2 * steps).wrap(denoise), z,
                                             result.latent.to(z.dtype), sigmas, control)
    lap("masactrl")

    def decode(x):
        return vae.decode(x / scaling).sample.float().add(1).div(2)[0]

    image_chw = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255
    preview = drag_preview_image(image_chw.permute(1, 2, 0), handles_xy, targets_xy)
    images = {"input.png": image, "drag_points.png": preview, "edited.png": chw_to_pil(decode(edited)),
              "reference.png": chw_to_pil(decode(reference))}
    lap("vae_decode")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, picture in images.items():
        picture.save(out / name)

    def distances(points_xy):
        return [round(float(d), 3) for d in (targets_xy - points_xy).norm(dim=1)]

    tracked_xy = grid_points_to_image(result.handles.cpu(), image_hw, grid_hw)
    inside = None if mask_latent is None else mask_latent > 0
    timings["total"] = round(sum(timings.values()), 3)
    summary = {
        "model": "tiny-random" if args.model is None else str(Path(args.model).resolve()),
        "note": ("random weights: nothing meaningful is dragged and the pictures are noise-like; this run proves "
                 "the pipeline end to end" if args.model is None else None),
        "device": str(device), "unet_dtype": str(dtype).replace("torch.", ""),
        "input": "synthetic" if args.image is None else str(Path(args.image).resolve()),
        "image_size": list(image.size), "latent_shape": list(latent.shape),
        "supervision_grid_hw": list(grid_hw),
        "prompt": args.prompt, "points": json.loads(points_json),
        "mask": None if mask is None else {"path": str(Path(args.mask).resolve()),
                                           "editable_fraction": float(mask.mean())},
        "settings": {k: getattr(args, k) for k in ("steps", "strength", "lora_rank", "drag_steps", "lr", "lam",
                                                   "seed")} | {"size": size, "lora_steps": lora_steps},
        "schedule": {"encoded_steps": steps, "sigma_max": float(sigmas[0]), "sigma_min": float(sigmas[-1]),
                     "drag_sigma": sigma, "drag_sigma_next": sigma_next},
        "timings_s": timings,
        "lora": {"steps": len(losses), "first_loss": losses[0] if losses else None,
                 "last_loss": losses[-1] if losses else None},
        "drag": {"steps_run": result.steps_run, "first_loss": result.losses[0] if result.losses else None,
                 "last_loss": result.losses[-1] if result.losses else None,
                 "handle_distance_px_before": distances(handles_xy),
                 "handle_distance_px_after": distances(tracked_xy),
                 "tracked_handles_xy": [[round(float(v), 1) for v in p] for p in tracked_xy]},
        "masactrl": {"start_layer": start, "controlled_layers": len(layers) - start},
        "latent_change": {"drag_vs_inverted": _change(result.latent, z, inside),
                          "edited_vs_reference": _change(edited, reference, inside)},
        "files": {name: str((out / name).resolve()) for name in OUTPUT_FILES},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def findings(summary: dict) -> list[str]:
    drag, lora = summary["drag"], summary["lora"]
    lines = [f"LoRA: {lora['steps']} steps, loss {lora['first_loss']:.4g} -> {lora['last_loss']:.4g}"] if \
        lora["steps"] else []
    return lines + [f"drag: {drag['steps_run']} steps, handle distance (px) {drag['handle_distance_px_before']} -> "
                    f"{drag['handle_distance_px_after']}", f"latent change: {summary['latent_change']}"]


def main(argv=None) -> int:
    # not inference mode: LoRA training and the drag need autograd on these tensors
    return command(argv, parse_args, check_args, run, "DragDiffusion", findings, autograd=True)


if __name__ == "__main__":
    sys.exit(main())
