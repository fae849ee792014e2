"""Headless DiffEdit: the full pipeline through the pack's core, on the diffusers backend.

Usage::

    python -m tools.demo [--model DIR] [--image PATH] [--query TEXT] [--reference TEXT]
                         [--out DIR] [--overwrite] [--steps 50] [--strength 0.8] [--cfg 7.5]
                         [--mask-samples 10] [--mask-noise 0.5] [--clamp-ratio 3.0]
                         [--threshold 0.5] [--seed 0] [--size N] [--reconstruct]

Without ``--model`` it runs the embedded tiny random models (``tests.support.tiny_models``) on a
synthetic image: that proves the pipeline end to end, but with random weights the pictures
are noise.  ``--model`` takes a local diffusers-format Stable Diffusion folder
(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/).

Stages, the same core functions the ComfyUI nodes call: VAE encode (posterior mean x
scaling factor) -> ``diffedit_mask`` (query vs reference text) -> ``ddim_invert`` (empty
text) -> ``masked_ddim_decode`` (query text, CFG against empty text) -> VAE decode.

Writes input.png, mask.png, difference_map.png, edited.png (reconstruction.png with
``--reconstruct``) and summary.json to ``--out``.  Exit code 0 on success, 2 on bad input.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from core.settings import DIFFEDIT

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
REQUIRED_FILES = ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                  "tokenizer", "scheduler/scheduler_config.json")
OUTPUT_FILES = ("input.png", "mask.png", "difference_map.png", "edited.png", "reconstruction.png", "summary.json")


class BadInput(Exception):
    """A problem with the arguments: reported as a message with exit code 2."""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="local diffusers Stable Diffusion folder (default: tiny random model)")
    p.add_argument("--image", help="input image (default: a synthetic disc on a gradient)")
    p.add_argument("--query", default="a blue ball on a gradient", help="text of the edited image")
    p.add_argument("--reference", default="a red ball on a gradient", help="text of the input image (may be empty)")
    p.add_argument("--out", default="demo_output", help="output folder (default: ./demo_output)")
    p.add_argument("--overwrite", action="store_true", help="replace the demo's files in a non-empty --out")
    p.add_argument("--steps", type=int, default=DIFFEDIT.inversion.steps)
    p.add_argument("--strength", type=float, default=DIFFEDIT.inversion.strength,
                   help="encoding ratio r of the DDIM schedule")
    p.add_argument("--cfg", type=float, default=DIFFEDIT.decode_cfg)
    p.add_argument("--mask-samples", type=int, default=DIFFEDIT.mask.samples)
    p.add_argument("--mask-noise", type=float, default=DIFFEDIT.mask.noise_strength)
    p.add_argument("--clamp-ratio", type=float, default=DIFFEDIT.mask.clamp_ratio)
    p.add_argument("--threshold", type=float, default=DIFFEDIT.mask.threshold)
    p.add_argument("--seed", type=int, default=DIFFEDIT.mask.seed)
    p.add_argument("--size", type=int, help="longer image side (default: 512 with --model, 64 for the tiny model)")
    p.add_argument("--reconstruct", action="store_true", help="also decode the inversion without edits")
    return p.parse_args(argv)


def check_args(args) -> None:
    """Every check that needs no model, so bad input fails before anything heavy loads."""
    from core.schedules import encoded_steps

    if not 1 <= args.steps <= 999:
        raise BadInput(f"--steps must be between 1 and 999, got {args.steps}")
    for name in ("strength", "mask_noise"):
        value = getattr(args, name)
        if not 0.0 < value <= 1.0 or encoded_steps(args.steps, value) < 1:
            raise BadInput(f"--{name.replace('_', '-')} must be in (0, 1] and cover at least one of the "
                           f"{args.steps} steps, got {value}")
    if args.mask_samples < 1:
        raise BadInput(f"--mask-samples must be at least 1, got {args.mask_samples}")
    if not args.clamp_ratio > 0:
        raise BadInput(f"--clamp-ratio must be positive, got {args.clamp_ratio}")
    if not 0.0 <= args.threshold < 1.0:
        raise BadInput(f"--threshold must be in [0, 1), got {args.threshold}")
    check_paths(args)


def check_paths(args) -> None:
    """The checks shared with tools/demo_drag.py: --size, --image, --model, --out (and --overwrite)."""
    if args.size is not None and not 8 <= args.size <= 4096:
        raise BadInput(f"--size must be between 8 and 4096, got {args.size}")
    if args.image is not None and not Path(args.image).is_file():
        raise BadInput(f"--image {args.image}: no such file")
    if args.model is not None:
        model = Path(args.model)
        if model.is_file() and model.suffix.lower() in SINGLE_FILE_SUFFIXES:
            raise BadInput(f"--model {model} is a single-file checkpoint. The demo needs a diffusers-format folder: "
                           f"use ComfyUI (this pack's nodes) for single-file checkpoints, or convert it to a "
                           f"diffusers folder (diffusers' StableDiffusionPipeline.from_single_file(...)"
                           f".save_pretrained(DIR)).")
        if not model.is_dir():
            raise BadInput(f"--model {model}: no such folder (expected a diffusers-format Stable Diffusion folder)")
        missing = [f for f in REQUIRED_FILES if not (model / f).exists()]
        if missing:
            raise BadInput(f"--model {model} is not a diffusers Stable Diffusion folder: missing {', '.join(missing)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise BadInput(f"--out {out} is not empty; pass --overwrite to replace the demo's files in it, "
                       f"or choose another folder")


class StageClock:
    """Wall time of consecutive stages, in seconds (the GPU is synchronised so its work is counted)."""

    def __init__(self, device: torch.device):
        self.device, self.timings, self._clock = device, {}, time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.timings[stage] = round(now - self._clock, 3)
        self._clock = now


class Progress:
    """Counts denoiser calls of one stage on stderr."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, total, 0

    def wrap(self, denoise):
        def counted(x, sigma):
            out = denoise(x, sigma)
            self.done += 1
            last = self.done == self.total
            if sys.stderr.isatty():  # one line, rewritten in place
                print(f"\r  {self.label}: {self.done}/{self.total}", end="\n" if last else "", file=sys.stderr,
                      flush=True)
            elif last or self.done % max(1, self.total // 4) == 0:  # logs: a few lines per stage
                print(f"  {self.label}: {self.done}/{self.total}", file=sys.stderr, flush=True)
            return out
        return counted


def load_models(args, device):
    """``(unet, vae, scheduler_config, encode_text, dtype)`` for --model or the tiny random model."""
    if args.model is None:
        from tests.support.tiny_models import scheduler_config, text_embedding, tiny_unet, tiny_vae
        with torch.random.fork_rng(devices=[]):  # tiny_vae() takes its weights from the global RNG
            torch.manual_seed(0)
            vae = tiny_vae()
        return tiny_unet().to(device), vae.to(device), scheduler_config(), text_embedding, torch.float32

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    root = Path(args.model)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    kwargs = dict(local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", torch_dtype=dtype, **kwargs)
    # The VAE stays in fp32: it is cheap, and some VAEs overflow in fp16.
    vae = AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=torch.float32, **kwargs)
    text_encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", torch_dtype=dtype, **kwargs)
    tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", **kwargs)
    config = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    unet, vae, text_encoder = (m.to(device).eval().requires_grad_(False) for m in (unet, vae, text_encoder))

    def encode_text(text: str) -> torch.Tensor:
        ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(device)
        return text_encoder(ids)[0]

    return unet, vae, config, encode_text, dtype


def input_image(args, size: int):
    """The input as a PIL image whose sides are multiples of 8, the longer one about ``size``."""
    from PIL import Image

    if args.image is None:  # an orange disc on a blue-green gradient
        side = max(8, round(size / 8) * 8)
        yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
        background = torch.stack([0.2 + 0.3 * xx, 0.4 + 0.4 * yy, 0.8 - 0.3 * xx])
        disc = (((xx - 0.55) ** 2 + (yy - 0.45) ** 2) < 0.28 ** 2).float()
        colour = torch.tensor([0.95, 0.45, 0.1]).reshape(3, 1, 1)
        return chw_to_pil(disc * colour + (1 - disc) * background)
    try:
        image = Image.open(args.image).convert("RGB")
    except Exception as error:  # PIL raises several types for unreadable files
        raise BadInput(f"--image {args.image}: cannot read it as an image ({error})") from error
    scale = size / max(image.size)
    width, height = (max(8, round(side * scale / 8) * 8) for side in image.size)
    return image.resize((width, height), Image.LANCZOS)


def chw_to_pil(chw: torch.Tensor):
    """``[C, H, W]`` in [0, 1] (C = 1 or 3) to a PIL image."""
    from PIL import Image

    array = (chw.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)


def load_backend(args, device):
    """``(backend, vae, scheduler config, encode_text, dtype)``: the model of ``--model`` (or the tiny one) with its
    UNet as a sigma-space denoiser."""
    from core.backends.diffusers_unet import DiffusersUNetDenoiser

    print(f"loading {'tiny random model' if args.model is None else args.model} on {device}", file=sys.stderr)
    unet, vae, config, encode_text, dtype = load_models(args, device)
    try:
        return DiffusersUNetDenoiser(unet, config), vae, config, encode_text, dtype
    except ValueError as error:
        raise BadInput(f"--model {args.model}: {error}") from error


def run(args) -> dict:
    from core.ddim import ddim_invert, ddim_sample
    from core.diffedit import diffedit_mask, masked_ddim_decode
    from core.schedules import ddim_sigmas, encoded_steps

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = args.size or (64 if args.model is None else 512)
    stages = StageClock(device)
    timings, lap = stages.timings, stages.lap

    image = input_image(args, size)
    backend, vae, config, encode_text, dtype = load_backend(args, device)
    query, reference, empty = (encode_text(t).to(device) for t in (args.query, args.reference, ""))
    lap("load")

    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float().div(127.5).sub(1)
    scaling = vae.config.scaling_factor
    latent = vae.encode(pixels.to(device)).latent_dist.mean.float() * scaling
    lap("vae_encode")

    table = backend.sigma_table
    mask_sigma = float(ddim_sigmas(table, args.steps, args.mask_noise)[0])
    noise = torch.randn((args.mask_samples, *latent.shape), generator=torch.Generator().manual_seed(args.seed))
    progress = Progress("mask", 2 * args.mask_samples)
    mask = diffedit_mask(progress.wrap(backend.denoiser(query)), progress.wrap(backend.denoiser(reference)), latent,
                         noise.to(device), mask_sigma, args.clamp_ratio, args.threshold)
    binary = mask.binary[:, None]  # [B, 1, h, w]
    lap("mask")

    sigmas = ddim_sigmas(table, args.steps, args.strength)
    steps = encoded_steps(args.steps, args.strength)
    trajectory = ddim_invert(Progress("invert", steps).wrap(backend.denoiser(empty)), latent, sigmas.flip(0))
    lap("invert")
    edit_denoiser = backend.denoiser(query, empty, args.cfg)
    edited = masked_ddim_decode(Progress("decode", steps).wrap(edit_denoiser), trajectory, sigmas, binary)
    lap("decode")
    reconstruction = None
    if args.reconstruct:
        reconstruction = ddim_sample(Progress("reconstruct", steps).wrap(backend.denoiser(empty)), trajectory[-1],
                                     sigmas)
        lap("reconstruct")

    def decode(z):
        return vae.decode(z / scaling).sample.float().add(1).div(2)[0]

    images = {"edited.png": chw_to_pil(decode(edited))}
    if reconstruction is not None:
        images["reconstruction.png"] = chw_to_pil(decode(reconstruction))
    lap("vae_decode")

    factor = image.size[1] // latent.shape[-2]  # latent to pixel scale: 8 for SD, 1 for the tiny VAE

    def upsample(m):
        return m.repeat_interleave(factor, -2).repeat_interleave(factor, -1)

    images |= {"input.png": image, "mask.png": chw_to_pil(upsample(mask.binary)),
               "difference_map.png": chw_to_pil(upsample(mask.soft))}
    change = (edited - latent).abs().mean(dim=1)[0]  # [h, w]
    inside = binary[0, 0] > 0
    images = {name: images[name] for name in OUTPUT_FILES if name in images}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in set(OUTPUT_FILES) - set(images) - {"summary.json"}:
        (out / name).unlink(missing_ok=True)  # a stale file of an earlier --overwrite'd run
    for name, picture in images.items():
        picture.save(out / name)
    timings["total"] = round(sum(timings.values()), 3)
    summary = {
        "model": "tiny-random" if args.model is None else str(Path(args.model).resolve()),
        "note": ("random weights: the pictures are noise-like; this run proves the pipeline end to end"
                 if args.model is None else None),
        "device": str(device), "unet_dtype": str(dtype).replace("torch.", ""),
        "input": "synthetic" if args.image is None else str(Path(args.image).resolve()),
        "image_size": list(image.size), "latent_shape": list(latent.shape),
        "query": args.query, "reference": args.reference,
        "settings": {k: getattr(args, k) for k in ("steps", "strength", "cfg", "mask_samples", "mask_noise",
                                                   "clamp_ratio", "threshold", "seed")} | {"size": size},
        "schedule": {"encoded_steps": steps, "sigma_max": float(sigmas[0]), "sigma_min": float(sigmas[-1]),
                     "mask_sigma": mask_sigma},
        "timings_s": timings,
        "mask_coverage": float(binary.mean()),
        "latent_change": {
            "inside_mask_mean_abs": float(change[inside].mean()) if inside.any() else None,
            "outside_mask_mean_abs": float(change[~inside].mean()) if (~inside).any() else None,
        },
        "reconstruction_latent_mean_abs_error":
            None if reconstruction is None else float((reconstruction - latent).abs().mean()),
        "files": {name: str((out / name).resolve()) for name in [*images, "summary.json"]},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def findings(summary: dict) -> list[str]:
    change = summary["latent_change"]
    inside = "n/a" if change["inside_mask_mean_abs"] is None else f"{change['inside_mask_mean_abs']:.4g}"
    return [f"mask covers {summary['mask_coverage']:.1%}; mean |latent change| inside {inside}, "
            f"outside {change['outside_mask_mean_abs']} (exactly 0.0 by construction)"]


def main(argv=None) -> int:
    return command(argv, parse_args, check_args, run, "DiffEdit", findings)


def command(argv, parse, check, run_demo, method: str, describe, autograd: bool = False) -> int:
    """A demo's command line: exit 0 with a report, or 2 with the reason for bad arguments.  ``autograd``: the
    demo trains or optimises, so it runs under ``no_grad`` (its loops enable grad) instead of inference mode."""
    args = parse(argv)
    try:
        check(args)
        with torch.no_grad() if autograd else torch.inference_mode():
            summary = run_demo(args)
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report(method, summary, describe(summary))
    return 0


def report(method: str, summary: dict, findings: list[str]) -> None:
    """A demo's closing report on stdout: the run, its ``findings``, the timings and the files written."""
    print(f"{method} demo ({summary['model']}, {summary['device']}): {summary['image_size'][0]}x"
          f"{summary['image_size'][1]} image, {summary['settings']['steps']} steps x strength "
          f"{summary['settings']['strength']} = {summary['schedule']['encoded_steps']} encoded steps")
    for line in findings:
        print(f"  {line}")
    print(f"  timings (s): {', '.join(f'{k} {v}' for k, v in summary['timings_s'].items())}")
    if summary["note"]:
        print(f"  note: {summary['note']}")
    for path in summary["files"].values():
        print(f"  wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
