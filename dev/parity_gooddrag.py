"""Compare the pack's GoodDrag (core/gooddrag.py) with a run of the official code on the same weights and inputs.

    python -m dev.parity_gooddrag --official-out official.pt --inputs INPUTS [--json parity.json]

``official.pt`` is what a harness around the official ``GoodDragger.good_drag`` recorded (no official code is
here): its settings, the inverted latent, the handles after every update and after every drag step, the latent
after every denoising step and the final latent.  ``INPUTS`` holds the same diffusers model folder (``model/``,
random weights), ``text_embedding.pt``, ``points.json`` and ``mask.png`` the official run used.  The pack's run
starts from the official inverted latent (so the drag stage is compared on its own) and reports, per drag step,
whether the tracked handles are equal and how far the latents are apart, then the same for the final latent after
latent-MasaCtrl denoising.  VP latents (diffusers) and sigma-space latents (the pack) convert by
``x = z * sqrt(1 + sigma^2)``.

A float64 official run (the harness's ``--float64``) is compared in float64, and there the latents must agree
within ``--tolerance`` (relative to the largest entry).  In float32 they need not: an L1 term of the motion loss
within rounding of zero can take either sign, its gradient jumps, and Adam's normalised steps amplify the jump.
The remaining float64 gap comes from the scheduler's float32 alphas, rounded differently on the two sides.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from dev.parity_args import official_run_parser


def _grid(points):
    return torch.stack([torch.as_tensor(p).long() for p in points])


def run(args) -> dict:
    from diffusers import UNet2DConditionModel
    from PIL import Image

    from core.backends.diffusers_unet import (
        DiffusersDragModel,
        DiffusersUNetDenoiser,
        reference_attention,
        self_attention_layers,
    )
    from core.drag import DragProblem
    from core.gooddrag import gooddrag
    from core.grids import image_points_to_grid, mask_to_latent_nearest, supervision_grid_hw
    from core.masactrl import SelfAttentionReference, masactrl_denoise
    from core.schedules import ddim_sigmas
    from core.settings import GoodDragSettings
    from tests.support.tiny_models import SD_SCHEDULER_CONFIG

    torch.set_num_threads(args.threads)
    official = torch.load(args.official_out, weights_only=False)
    s = official["settings"]
    inputs = Path(args.inputs)
    dtype = getattr(torch, args.dtype or s.get("dtype", "float32"))  # by default the official run's
    unet = UNet2DConditionModel.from_pretrained(inputs / "model" / "unet").eval().requires_grad_(False).to(dtype)
    backend = DiffusersUNetDenoiser(unet, SD_SCHEDULER_CONFIG)
    cond = torch.load(inputs / "text_embedding.pt").to(dtype)
    sigmas = ddim_sigmas(backend.sigma_table, s["n_inference_step"], s["inversion_strength"])  # descending
    vp = lambda sigma: float(1 + float(sigma) ** 2) ** 0.5  # noqa: E731  x = z * vp(sigma)

    image_hw = (s["H"], s["W"])
    grid_hw = supervision_grid_hw(image_hw)
    points = official["points_image_xy"]
    handles = image_points_to_grid(points[0::2], image_hw, grid_hw)
    targets = image_points_to_grid(points[1::2], image_hw, grid_hw)
    mask = np.array(Image.open(inputs / "mask.png"))
    mask = torch.from_numpy(mask[..., 0] if mask.ndim == 3 else mask).float()
    z_top = official["inverted_latent"].to(dtype)
    latent_hw = tuple(z_top.shape[-2:])
    mask_latent = mask_to_latent_nearest(mask, grid_hw, latent_hw)[0, 0]
    problem = DragProblem(handles=handles, targets=targets, grid_hw=grid_hw, mask_latent=mask_latent)
    settings = GoodDragSettings(drag_end_step=s["drag_end_step"], tracks_per_step=s["track_per_denoise"],
                                max_updates_per_track=s["max_drag_per_track"], step_bound=float(s["beta"]),
                                motion_radius=s["r1"], track_radius=s["r2"], mask_weight=s["lam"],
                                learning_rate=s["latent_lr"], loss_threshold=s["drag_loss_threshold"],
                                max_unchanged_tracks=s["max_track_no_change"])

    updates = []
    with DiffusersDragModel(backend, cond) as model:
        result = gooddrag(model, z_top * vp(sigmas[0]), sigmas, problem, settings,
                          callback=lambda progress: updates.append(progress.handles.clone()))
        k = result.steps
        layers = self_attention_layers(unet)
        control = SelfAttentionReference([name for name, _ in layers[10:]])  # the official start_layer=10
        with torch.no_grad(), reference_attention(unet, control):
            _, final = masactrl_denoise(backend.denoiser(cond), result.source, result.latent, sigmas[k:], control)

    report = {"settings": {key: s[key] for key in ("n_inference_step", "inversion_strength", "drag_end_step",
                                                    "track_per_denoise", "max_drag_per_track", "r1", "r2", "beta",
                                                    "lam", "latent_lr", "H", "W", "dtype") if key in s},
              "pack_dtype": str(dtype).removeprefix("torch."),
              "level": {"pack": k, "official": len(official["drag_steps"])}}
    official_updates = [_grid(h["handles"]) for h in official["handles_after_update"]]
    first_difference = next((i for i, (a, b) in enumerate(zip(updates, official_updates)) if not torch.equal(a, b)),
                            None)
    report["updates"] = {"pack": len(updates), "official": len(official_updates),
                         "handles_equal_after_each_update": len(updates) == len(official_updates)
                         and first_difference is None, "first_difference": first_difference}
    steps = []
    for i, step in enumerate(official["drag_steps"]):
        ours = result.handles_per_step[i] if i < len(result.handles_per_step) else None
        theirs = _grid(step["handles_after_drag"])
        steps.append({"step": i, "handles_equal": ours is not None and torch.equal(ours, theirs),
                      "pack": None if ours is None else ours.tolist(), "official": theirs.tolist()})
    report["drag_steps"] = steps
    theirs_k = official["latents_after_denoise_step"][k - 1].to(dtype) * vp(sigmas[k])
    report["latent_at_level"] = {"max_abs_diff": float((result.latent - theirs_k).abs().max()),
                                 "max_abs": float(theirs_k.abs().max())}
    final_theirs = official["final_latent"].to(dtype) * vp(sigmas[-1])
    report["final_latent"] = {"max_abs_diff": float((final - final_theirs).abs().max()),
                              "max_abs": float(final_theirs.abs().max())}
    report["final_handles"] = {"pack": result.handles.tolist(), "official": _grid(official["final_handles"]).tolist()}
    return report


def main(argv=None) -> int:
    args = official_run_parser(__doc__).parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    ok = report["updates"]["handles_equal_after_each_update"] and all(s["handles_equal"] for s in report["drag_steps"])
    if report["settings"].get("dtype") == "float64" and args.dtype in (None, "float64"):
        ok = ok and all(report[key]["max_abs_diff"] <= args.tolerance * report[key]["max_abs"]
                        for key in ("latent_at_level", "final_latent"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
