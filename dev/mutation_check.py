"""Do the tests notice a broken algorithm?  Plant one deliberate bug at a time in the core and run the core tests.

    python -m dev.mutation_check [--only N ...] [--json report.json]

Each mutation replaces one exact piece of source (which must occur once) in a copy of the file, runs the core test
files (``-x``, no host tests: they need ComfyUI) and restores the file, also on Ctrl-C.  A mutation is *caught* when
the tests fail.  The exit code is 0 when at least ``--need`` of them are caught.
"""
import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_regions.py", "tests/test_region_warp.py",  # the fast ones first (-x stops at the first failure)
         "tests/test_drag_core.py", "tests/test_gooddrag_core.py", "tests/test_masactrl_core.py",
         "tests/test_diffedit_core.py", "tests/test_ddim.py", "tests/test_flow_matching.py"]


@dataclass(frozen=True)
class Mutation:
    file: str
    what: str
    original: str
    mutated: str


MUTATIONS = [
    Mutation("core/drag.py", "the mask term's sign flipped",
             "loss = loss + mask_weight * mask_loss", "loss = loss - mask_weight * mask_loss"),
    Mutation("core/drag.py", "the mask term dropped",
             "        loss = loss + mask_weight * mask_loss\n", "        loss = loss + 0 * mask_loss\n"),
    Mutation("core/drag.py", "the mask term's reference one level off (z_{t-1} measured at sigma's scale)",
             "scale_next = (1.0 + sigma_next ** 2) ** -0.5 if run.vp_units else 1.0",
             "scale_next = (1.0 + sigma ** 2) ** -0.5 if run.vp_units else 1.0"),
    Mutation("core/drag.py", "a wrong tracking radius (r_p + 1)",
             "track_radius=settings.track_radius if step else None",
             "track_radius=settings.track_radius + 1 if step else None"),
    Mutation("core/drag.py", "a wrong motion radius (r_m + 1)",
             "pull = CurrentPatchPull(settings.motion_radius, settings.reach_threshold)",
             "pull = CurrentPatchPull(settings.motion_radius + 1, settings.reach_threshold)"),
    Mutation("core/drag.py", "the arrival check inverted",
             "if bool(all_reached(handles_host, level.targets_host, pull.reach_threshold)):",
             "if not bool(all_reached(handles_host, level.targets_host, pull.reach_threshold)):"),
    Mutation("core/gooddrag.py", "GoodDrag's weight (2r+1)^2 instead of (2r)^2",
             "return float((2 * self.radius) ** 2)", "return float((2 * self.radius + 1) ** 2)"),
    Mutation("core/gooddrag.py", "GoodDrag's step not bounded by beta",
             "shift = unit * distance.clamp(max=self.step_bound).unsqueeze(1)", "shift = unit * distance.unsqueeze(1)"),
    Mutation("core/gooddrag.py", "the source and the edit swapped after a denoising step",
             "return stepped[1:], stepped[:1]", "return stepped[:1], stepped[1:]"),
    Mutation("core/gooddrag.py", "the denoising step one level off",
             "sigma, sigma_next = float(sigmas[step]), float(sigmas[step + 1])",
             "sigma, sigma_next = float(sigmas[step + 1]), float(sigmas[min(step + 2, len(sigmas) - 1)])"),
    Mutation("core/masactrl.py", "attention shared from one step later than start_step",
             "return layer in self.layers and self.step >= self.start_step",
             "return layer in self.layers and self.step > self.start_step"),
    Mutation("core/masactrl.py", "the edited branch not replaying the reference",
             'control.begin("replay", i)', 'control.begin("off", i)'),
    Mutation("core/diffedit.py", "the decode blends with the encoded latent one level off",
             "x = mask * x + (1 - mask) * trajectory[steps - 1 - i]",
             "x = mask * x + (1 - mask) * trajectory[steps - i]"),
    Mutation("core/diffedit.py", "the mask's clamp dropped",
             "torch.minimum(difference, clamp) / safe_clamp", "difference / safe_clamp"),
    Mutation("core/diffedit.py", "the noised latent's noise not scaled by sigma",
             "noisy = latent + sigma * draw", "noisy = latent + draw"),
    Mutation("core/guidance.py", "the CFG rows swapped (cond and uncond)",
             "return denoised_uncond + scale * (denoised_cond - denoised_uncond)",
             "return denoised_cond + scale * (denoised_uncond - denoised_cond)"),
    Mutation("core/drag_model.py", "the guided drag features' CFG rows swapped",
             "return torch.cat([(1.0 - k) * uncond, k * cond], dim=1)",
             "return torch.cat([(1.0 - k) * cond, k * uncond], dim=1)"),
    Mutation("core/ddim.py", "the inversion's input rescaling inverted",
             "scale = space.input_scale(sigma) / space.input_scale(sigma_next)",
             "scale = space.input_scale(sigma_next) / space.input_scale(sigma)"),
    Mutation("core/noise_space.py", "a flow noised as x0 + sigma * eps",
             "return (1.0 - sigma) * latent + sigma * noise", "return latent + sigma * noise"),
    Mutation("core/noise_space.py", "a flow's input scaled as a variance-exploding model's",
             "        return 1.0\n", "        return (1.0 + float(sigma) ** 2) ** -0.5\n"),
    Mutation("core/noise_space.py", "a flow's schedule ending at the table's first level instead of 0",
             "        return 0.0\n", "        return float(sigma_table[0])\n"),
    Mutation("core/region_warp.py", "inverse-distance weights squared (1/d^2 instead of 1/d)",
             "weights = 1.0 / (nearest + settings.eps)\n", "weights = 1.0 / (nearest + settings.eps) ** 2\n"),
    Mutation("core/region_warp.py", "the uncovered area not dilated by the kernel",
             "uncovered = cv2.dilate(uncovered, np.ones((kernel, kernel), dtype=np.uint8))",
             "uncovered = uncovered"),
    Mutation("core/region_warp.py", "the band along the moved outline drawn thicker (kernel + 2)",
             "cv2.drawContours(band, [moved_outline], -1, 1, kernel)",
             "cv2.drawContours(band, [moved_outline], -1, 1, kernel + 2)"),
    Mutation("core/region_warp.py", "the pixels moved off the image kept (clamped to the border)",
             "inside = (source[:, 0] >= 0) & (source[:, 0] < hw[1]) & (source[:, 1] >= 0) & (source[:, 1] < hw[0])",
             "source = np.clip(source, 0, [hw[1] - 1, hw[0] - 1]); inside = np.ones(len(source), dtype=bool)"),
    Mutation("core/regions.py", "the eraser paints instead of clearing",
             "starts, stops = _subtract(starts, stops, *group)",
             "starts, stops = _merge(np.r_[starts, group[0]], np.r_[stops, group[1]])"),
    Mutation("core/regions.py", "the radius scaled by the width's scale only",
             "radius_scale = math.sqrt(scale[0] * scale[1])", "radius_scale = scale[0]"),
]


def run_one(mutation: Mutation, python: str, timeout: float) -> dict:
    path = ROOT / mutation.file
    source = path.read_text()
    if source.count(mutation.original) != 1:
        raise SystemExit(f"{mutation.file}: the piece to mutate must occur once: {mutation.original!r}")
    started = time.monotonic()
    try:
        path.write_text(source.replace(mutation.original, mutation.mutated))
        run = subprocess.run([python, "-m", "pytest", "-x", "-q", *TESTS], cwd=ROOT,
                             capture_output=True, text=True, timeout=timeout)
        failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
        caught = run.returncode != 0
    except subprocess.TimeoutExpired:
        failed, caught = ["(timed out)"], True
    finally:
        path.write_text(source)
    return {"file": mutation.file, "what": mutation.what, "caught": caught, "by": failed[:1],
            "seconds": round(time.monotonic() - started, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=int, nargs="*", help="mutation numbers (1-based) to run")
    parser.add_argument("--need", type=int, default=9, help="mutations that must be caught")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    chosen = [(i, m) for i, m in enumerate(MUTATIONS, 1) if not args.only or i in args.only]
    results = []
    for number, mutation in chosen:
        result = {"number": number, **run_one(mutation, sys.executable, args.timeout)}
        results.append(result)
        verdict = "caught" if result["caught"] else "MISSED"
        print(f"{number:2d}. {verdict:7s} {mutation.file}: {mutation.what}  {' '.join(result['by'])}", flush=True)
    caught = sum(r["caught"] for r in results)
    print(f"{caught} of {len(results)} caught", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0 if caught >= min(args.need, len(results)) else 1


if __name__ == "__main__":
    sys.exit(main())
