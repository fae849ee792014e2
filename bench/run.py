"""The pack's cost, stage by stage: time and peak memory, with the reference-equivalent path side by side.

    python bench/run.py                                   # CPU: full SD1.5 UNet, 128 px, few steps
    COMFYUI_PATH=/path/to/ComfyUI python bench/run.py     # also through the nodes in real ComfyUI
    python bench/run.py --device cuda --px 512 --dtype float16 --lora-steps 80 --drag-iters 80 \\
        --inversion-steps 50                              # a GPU at the paper's settings
    python bench/run.py --model sdxl --px 1024 --device cuda --only comfy

Every stage runs in a fresh process (peak memory is per stage: the GPU's allocator peak, or on the CPU the
process's peak resident memory since the stage began).  Two parts:

* ``diffusers``: the core algorithms on a diffusers UNet, the pack's drag (``fast``) against the reference-equivalent
  drag (``reference``: full UNet every iteration, trainable UNet weights, dense upsampled features, fp32 master
  weights under autocast at fp16/bf16) — the ratios the README reports come from here;
* ``comfy``: the nodes as users run them, through ComfyUI's executor and cache, including a re-drag (the same
  graph queued again with only ``drag_points`` changed).  Skipped, with a message, without ``COMFYUI_PATH``.

Prints a table and writes ``bench/results/<date>-<device>-<model>-<px>px-<dtype>.json`` (or ``--out``).
Random weights do not drag anything meaningful: these figures are for cost only.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.measure import emit, run_fresh  # noqa: E402
from core.settings import DIFFEDIT, DRAGDIFFUSION  # noqa: E402

DIFFUSERS_STAGES = ["lora", "inversion", "drag_fast_nomask", "drag_reference_nomask", "drag_fast_mask",
                    "drag_reference_mask", "masactrl", "diffedit"]
PAPER_IMAGE_SIDE = 512  # DragDiffusion's and DiffEdit's SD1.5 experiments
DEFAULTS = {  # per device: the CPU at a size and step counts it runs in minutes, a GPU at the papers' settings
    "cpu": dict(px=128, dtype="float32", lora_steps=4, inversion_steps=10, drag_iters=6, diffedit_samples=2),
    "cuda": dict(px=PAPER_IMAGE_SIDE, dtype="float16", lora_steps=DRAGDIFFUSION.lora.steps,
                 inversion_steps=DRAGDIFFUSION.inversion.steps, drag_iters=DRAGDIFFUSION.drag.steps,
                 diffedit_samples=DIFFEDIT.mask.samples),
}


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default="sd15", choices=["tiny", "sd15", "sdxl"],
                        help="UNet architecture (random weights); sdxl runs in the comfy part only")
    parser.add_argument("--px", type=int, help="image side in pixels")
    parser.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], help="UNet weights")
    parser.add_argument("--lora-steps", type=int)
    parser.add_argument("--inversion-steps", type=int, help="DDIM schedule length (--strength of it is run)")
    parser.add_argument("--strength", type=float, default=DRAGDIFFUSION.inversion.strength,
                        help="the drag's inversion strength (DragDiffusion's by default)")
    parser.add_argument("--drag-iters", type=int, help="drag iterations (no early stop in the bench)")
    parser.add_argument("--diffedit-samples", type=int)
    parser.add_argument("--only", choices=["diffusers", "comfy"], help="run one part")
    parser.add_argument("--stages", help="comma-separated stage names of the parts run (default: all)")
    parser.add_argument("--out", help="JSON path (default: bench/results/...)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # internal: run one stage in this process
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def run_stage_here(part: str, name: str, config: dict) -> None:
    torch.manual_seed(0)
    if part == "diffusers":
        from bench.diffusers_stages import STAGES

        emit(STAGES[name](config))
    else:
        from bench import comfy_stages

        emit(comfy_stages.stage(config, name))


def run_stage(part: str, name: str, config: dict) -> dict:
    return run_fresh(Path(__file__).resolve(), f"{part}: {name}",
                     ["--stage", name, "--part", part, "--config", json.dumps(config)])


def equivalence(scratch: Path) -> dict:
    """The pack's drag against the reference-equivalent drag, from the latents the two stages saved."""
    out = {}
    for masked in ("nomask", "mask"):
        fast, ref = scratch / f"drag_fast_{masked}.pt", scratch / f"drag_reference_{masked}.pt"
        if fast.exists() and ref.exists():
            a, b = torch.load(fast), torch.load(ref)
            out[masked] = {"handles_equal": bool(torch.equal(a["handles"], b["handles"])),
                           "latent_max_abs_diff": float((a["latent"] - b["latent"]).abs().max()),
                           "latent_max_abs": float(b["latent"].abs().max())}
    return out


def ratios(figures: dict) -> dict:
    d, c = figures.get("diffusers", {}), figures.get("comfy", {})
    out = {}
    for masked in ("nomask", "mask"):
        fast, ref = d.get(f"drag_fast_{masked}"), d.get(f"drag_reference_{masked}")
        if fast and ref:
            out[f"drag_{masked}_iteration_speedup"] = round(ref["per_iteration_s"] / fast["per_iteration_s"], 2)
            out[f"drag_{masked}_peak_ratio"] = round(fast["peak_gib"] / ref["peak_gib"], 3)
        node = c.get(f"drag_{masked}")
        if node and ref:
            out[f"node_drag_{masked}_iteration_speedup_vs_reference"] = round(
                ref["per_iteration_s"] / node["per_iteration_s"], 2)
            out[f"node_drag_{masked}_peak_ratio_vs_reference"] = round(node["peak_gib"] / ref["peak_gib"], 3)
    first, replay, drag = d.get("masactrl_first"), d.get("masactrl_redrag"), d.get("drag_fast_mask")
    if first and replay and drag:
        out["redrag_time_ratio_diffusers"] = round((drag["seconds"] + replay["seconds"])
                                                   / (drag["seconds"] + first["seconds"]), 3)
    if "drag_and_masactrl_redrag" in c:
        out["redrag_time_ratio_nodes"] = c["drag_and_masactrl_redrag"]["ratio_to_first"]
    return out


def table(figures: dict) -> str:
    rows = ["| part | stage | seconds | peak GiB | notes |", "| --- | --- | ---: | ---: | --- |"]
    for part, stages in figures.items():
        for name, entry in stages.items():
            notes = ", ".join(f"{k} {v}" for k, v in entry.items() if k not in ("seconds", "peak_gib"))
            rows.append(f"| {part} | {name} | {entry['seconds']} | {entry['peak_gib']} | {notes} |")
    return "\n".join(rows)


def machine(device: str) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError):
        pass
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv=None):
    args = arguments(argv)
    if args.stage:
        return run_stage_here(args.part, args.stage, json.loads(args.config))
    scratch = Path(tempfile.mkdtemp(prefix="drag-bench-"))
    config = dict(device=args.device, model=args.model, px=args.px, dtype=args.dtype, lora_steps=args.lora_steps,
                  inversion_steps=args.inversion_steps, strength=args.strength, drag_iters=args.drag_iters,
                  diffedit_samples=args.diffedit_samples, scratch=str(scratch))
    wanted = set(args.stages.split(",")) if args.stages else None
    parts = {}
    if args.only != "comfy":
        if args.model == "sdxl":
            print("diffusers part: skipped (the diffusers stages build tiny and sd15 UNets; sdxl runs in the comfy "
                  "part)")
        else:
            parts["diffusers"] = [s for s in DIFFUSERS_STAGES if wanted is None or s in wanted]
    comfy_path = os.environ.get("COMFYUI_PATH")
    if args.only != "diffusers":
        if comfy_path and (Path(comfy_path) / "comfy").is_dir():
            from bench.comfy_stages import STAGES as COMFY_STAGES

            parts["comfy"] = [s for s in COMFY_STAGES if wanted is None or s in wanted]
        else:
            print("comfy part: SKIPPED — set COMFYUI_PATH to a ComfyUI checkout (with its requirements installed in "
                  "this Python) to benchmark the nodes in real ComfyUI")
    figures = {}
    print(f"config: {json.dumps({k: v for k, v in config.items() if k != 'scratch'})}")
    for part, names in parts.items():
        for name in names:
            figures.setdefault(part, {}).update(run_stage(part, name, config))
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(args.device), "torch": torch.__version__,
        "comfyui": _comfy_version(comfy_path) if "comfy" in parts else None,
        "config": {k: v for k, v in config.items() if k != "scratch"},
        "figures": figures, "ratios": ratios(figures), "fast_vs_reference_drag": equivalence(scratch),
    }
    print(table(figures))
    print("ratios:", json.dumps(result["ratios"], indent=1))
    print("fast vs reference drag:", json.dumps(result["fast_vs_reference_drag"]))
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / (
        f"{datetime.date.today()}-{args.device}-{args.model}-{args.px}px-{args.dtype}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


def _comfy_version(path):
    try:
        text = (Path(path) / "comfyui_version.py").read_text()
        return text.split('"')[1]
    except (OSError, IndexError):
        return None


if __name__ == "__main__":
    main()
