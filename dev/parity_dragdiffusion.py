"""Compare the pack's DragDiffusion (core/drag.py) with a run of the official code on the same weights and inputs.

    python -m dev.parity_dragdiffusion --official-out official.pt --inputs INPUTS [--json parity.json]

``official.pt`` is what a harness around the official ``drag_diffusion_update`` (Yujun-Shi/DragDiffusion) recorded;
no official code is here.  It holds the settings, the inverted latent, per drag update the handles it used (after
tracking), its loss, its mask term and the latent after its Adam step, the final handles, and the final latents of
both branches after latent-MasaCtrl.  ``INPUTS`` holds the same diffusers UNet folder (``model/unet``, random
weights), ``text_embedding.pt`` and ``mask.png`` the official run used.

The pack's run starts from the official inverted latent, so the drag stage is compared on its own:
``optimize_drag_latent`` on a ``DiffusersDragModel``, then ``masactrl_denoise`` of the optimised latent against the
inverted one (the official ``start_layer``/``start_step``).  VP latents (diffusers) and sigma-space latents (the
pack) convert by ``x = z * sqrt(1 + sigma^2)``; every gap is in VP units, relative to the official latent's largest
entry.  The official code's first update has a mask term of exactly 0 (its reference is the latent being
optimised); the report shows the pack's beside it.

A float64 official run is compared in float64, and there every latent must agree within ``--tolerance``.  In
float32 they need not: an L1 term within rounding of zero can take either sign, its gradient jumps, and Adam's
normalised steps amplify the jump.  Exit status 0 only when every handle agrees (and, in float64, every latent).
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from dev.parity_args import official_run_parser


def _gap(ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    diff, peak = float((ours - theirs).abs().max()), float(theirs.abs().max())
    return {"max_abs_diff": diff, "max_abs": peak, "rel_diff": diff / peak if peak else diff}


def _rel(ours: float, theirs: float) -> float:
    return abs(ours - theirs) / abs(theirs) if theirs else abs(ours - theirs)


def pack_run(official: dict, inputs: Path, dtype: torch.dtype):
    """The pack's drag and denoise on the official run's inputs: ``(updates, result, reference, final, sigmas)``."""
    from diffusers import UNet2DConditionModel
    from PIL import Image

    from core.backends.diffusers_unet import (
        DiffusersDragModel,
        DiffusersUNetDenoiser,
        reference_attention,
        self_attention_layers,
    )
    from core.drag import DragProblem, optimize_drag_latent
    from core.drag_model import at_sigma
    from core.grids import image_points_to_grid, mask_to_latent_nearest, supervision_grid_hw
    from core.masactrl import SelfAttentionReference, masactrl_denoise
    from core.schedules import ddim_sigmas
    from core.settings import DragDiffusionSettings
    from tests.support.tiny_models import SD_SCHEDULER_CONFIG

    s = official["settings"]
    unet = UNet2DConditionModel.from_pretrained(inputs / "model" / "unet").eval().requires_grad_(False).to(dtype)
    backend = DiffusersUNetDenoiser(unet, SD_SCHEDULER_CONFIG)
    cond = torch.load(inputs / "text_embedding.pt").to(dtype)
    sigmas = ddim_sigmas(backend.sigma_table, s["n_inference_step"], s["inversion_strength"])  # descending
    image_hw = (s["H"], s["W"])
    grid_hw = supervision_grid_hw(image_hw)
    points = official["points_image_xy"]
    mask = np.array(Image.open(inputs / "mask.png"))
    mask = torch.from_numpy(mask[..., 0] if mask.ndim == 3 else mask).float()
    x_top = official["inverted_latent"].to(dtype) * (1 + float(sigmas[0]) ** 2) ** 0.5
    problem = DragProblem(handles=image_points_to_grid(points[0::2], image_hw, grid_hw),
                          targets=image_points_to_grid(points[1::2], image_hw, grid_hw), grid_hw=grid_hw,
                          mask_latent=mask_to_latent_nearest(mask, grid_hw, tuple(x_top.shape[-2:]))[0, 0])
    settings = DragDiffusionSettings(steps=s["n_pix_step"], learning_rate=s["latent_lr"], mask_weight=s["lam"],
                                     motion_radius=s["r_m"], track_radius=s["r_p"])
    updates = []
    with DiffusersDragModel(backend, cond) as model:
        result = optimize_drag_latent(at_sigma(model.features, float(sigmas[0])), x_top, float(sigmas[0]),
                                      float(sigmas[1]), problem, settings, callback=updates.append)
        layers = self_attention_layers(unet)
        control = SelfAttentionReference([name for name, _ in layers[s["start_layer"]:]], s["start_step"])
        with torch.no_grad(), reference_attention(unet, control):
            reference, final = masactrl_denoise(backend.denoiser(cond), x_top, result.latent, sigmas, control)
    return problem, updates, result, reference, final, sigmas


def per_update_rows(updates: list, theirs: list, lam: float, vp_top: float, dtype) -> list:
    rows = []
    for k in range(max(len(updates), len(theirs))):
        ours = updates[k] if k < len(updates) else None
        official = theirs[k] if k < len(theirs) else None
        row = {"update": k}
        if ours is not None:
            mask_term = None if ours.mask_loss is None else lam * float(ours.mask_loss)
            row.update(pack_handles=ours.handles.tolist(), loss_pack=float(ours.loss), mask_term_pack=mask_term)
        if official is not None:
            row.update(official_handles=official["handles"], loss_official=official["loss"],
                       mask_term_official=official["mask_term"])
        row["handles_equal"] = (ours is not None and official is not None
                                and ours.handles.tolist() == official["handles"])
        if ours is not None and official is not None:
            row["latent"] = _gap(ours.latent / vp_top, official["latent"].to(dtype))
            row["loss_rel_diff"] = _rel(float(ours.loss), official["loss"])
        rows.append(row)
    return rows


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    official = torch.load(args.official_out, weights_only=False)
    s = official["settings"]
    dtype = getattr(torch, args.dtype or s["dtype"])  # by default the official run's
    problem, updates, result, reference, final, sigmas = pack_run(official, Path(args.inputs), dtype)
    vp = lambda level: float(1 + float(level) ** 2) ** 0.5  # noqa: E731  x = z * vp(sigma)
    rows = per_update_rows(updates, official["updates"], s["lam"], vp(sigmas[0]), dtype)
    first_handle_difference = next((r["update"] for r in rows if not r["handles_equal"]), None)
    first_departure = next((r["update"] for r in rows if "latent" not in r
                            or r["latent"]["rel_diff"] > args.tolerance), None)
    report = {
        "official_out": Path(args.official_out).name, "settings": s,
        "pack_dtype": str(dtype).removeprefix("torch."), "tolerance": args.tolerance,
        "start": {"handles_equal": problem.handles.tolist() == official["handles_init"],
                  "targets_equal": problem.targets.tolist() == official["targets"]},
        "updates": {"pack": len(updates), "official": len(official["updates"]),
                    "handles_equal_after_each_update": first_handle_difference is None,
                    "first_handle_difference": first_handle_difference, "first_latent_departure": first_departure},
        "per_update": rows,
        "final_handles": {"pack": result.handles.tolist(), "official": official["final_handles"],
                          "equal": result.handles.tolist() == official["final_handles"]},
        "final_latent": _gap(final / vp(sigmas[-1]), official["final_latent"].to(dtype)),
        "final_reference_latent": _gap(reference / vp(sigmas[-1]), official["final_reference_latent"].to(dtype)),
    }
    ok = (report["start"]["handles_equal"] and report["start"]["targets_equal"]
          and first_handle_difference is None and report["final_handles"]["equal"])
    if s["dtype"] == "float64" and dtype == torch.float64:
        ok = ok and first_departure is None and all(report[key]["rel_diff"] <= args.tolerance
                                                    for key in ("final_latent", "final_reference_latent"))
    report["ok"] = ok
    return report


def summary(report: dict, first: int = 5) -> str:
    updates = report["updates"]
    lines = [f"pack ({report['pack_dtype']}) vs {report['official_out']}: updates pack {updates['pack']}, official "
             f"{updates['official']}; first handle difference {updates['first_handle_difference']}, first latent "
             f"departure (> {report['tolerance']:g}) {updates['first_latent_departure']}"]
    for row in report["per_update"][:first]:
        lines.append(f"  update {row['update']:2d}: handles equal {row['handles_equal']}, latent rel gap "
                     f"{row.get('latent', {}).get('rel_diff', float('nan')):.3g}, loss rel diff "
                     f"{row.get('loss_rel_diff', float('nan')):.3g}, mask term pack {row.get('mask_term_pack')} / "
                     f"official {row.get('mask_term_official')}")
    handles = report["final_handles"]
    lines.append(f"final handles equal {handles['equal']}: pack {handles['pack']}, official {handles['official']}")
    for key in ("final_latent", "final_reference_latent"):
        lines.append(f"{key}: rel gap {report[key]['rel_diff']:.3g} (max abs diff {report[key]['max_abs_diff']:.3g})")
    return "\n".join(lines + [f"ok: {report['ok']}"])


def main(argv=None) -> int:
    args = official_run_parser(__doc__).parse_args(argv)
    report = run(args)
    print(summary(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
