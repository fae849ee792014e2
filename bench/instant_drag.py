"""The instant drag's cost in real ComfyUI (``COMFYUI_PATH``), each stage in a fresh process:

    COMFYUI_PATH=/path/to/ComfyUI python bench/instant_drag.py [--px 256] [--runs 30] [--only warp,preview,templates]
    COMFYUI_PATH=/path/to/ComfyUI python bench/instant_drag.py --px 512 --only inpaint_models [--flux-depths 1,1]

* ``warp_node``: Drag Region Warp's ``execute`` at 512x512 and 1024x1024 (a painted disc of radius side/6, 2 to 4
  pairs with handles on it, drags up to side/8, fresh seeded inputs each run; median of ``--runs`` after warm-ups);
* ``preview_route``: the point editor's live preview, ``POST /drag_edit/region_warp_preview`` on a real server
  started for it, at 512x512 (the request body prepared once, as the editor keeps the picture's data URL;
  median round trip);
* ``templates``: ``template_sd15_inpainting_lcm`` against ``template_dragdiffusion_sd15``, side by side: the shipped
  templates ``instant_drag_lcm.json`` (4 steps) and ``drag_real_image.json`` (DragDiffusion's default steps: LoRA 80,
  inversion 35, drag 80, MasaCtrl 35) through ComfyUI's executor at ``--px``, on full-size SD1.5(-inpainting) UNets
  and SD's VAE with random weights (the test checkpoint node; its model is built and cached before timing).
  Seconds and peak memory (the process's peak resident set since the prompt started) of each, and their ratio.
* ``inpaint_models``: ``template_sd15_inpainting_lcm`` against ``template_flux_fill``: ``instant_drag_flux_fill.json``
  (FluxGuidance 30, 20 steps) on a Flux Fill of Flux's real widths with ``--flux-depths`` of its 19 double and 38
  single blocks (loaded through ComfyUI's own diffusion-model path, which detects it as Flux Fill) and the Flux VAE's
  structure, random weights; the text encoders of both stay stand-ins of their output widths (T5-XXL: 256 tokens of
  4096), both models in float32.

Writes ``bench/results/<date>-cpu-instant-drag-<px>px.json`` (or ``--out``) with the machine and load average:
these figures are for cost only, random weights inpaint and drag nothing meaningful.
"""
import argparse
import base64
import datetime
import io
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.measure import Meter, emit, run_fresh  # noqa: E402
from core.settings import INSTANT_DRAG  # noqa: E402

KERNEL = INSTANT_DRAG.warp.kernel
TARGETS = {"warp_node_512": 50, "warp_node_1024": 200, "preview_route_512": 150}  # median ms
# Each template with the model it runs on (the test loaders' names).
TEMPLATES = {"template_sd15_inpainting_lcm": ("instant_drag_lcm.json", "sd15-inpaint-full"),
             "template_dragdiffusion_sd15": ("drag_real_image.json", "sd15-full"),
             "template_flux_fill": ("instant_drag_flux_fill.json", "flux-fill-full")}


def drag_inputs(side: int, rng: np.random.Generator) -> tuple[str, str]:
    """(drag_points, region) as the point editor writes them: a painted disc and 2-4 pairs on it."""
    radius = side / 6
    cx, cy = rng.uniform(radius + 2, side - radius - 2, size=2)
    region = json.dumps({"size": [side, side], "strokes": [{"radius": radius, "points": [[cx, cy]]}]})
    pairs = []
    for _ in range(int(rng.integers(2, 5))):
        angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(0, radius - 2)
        handle = [round(cx + distance * np.cos(angle)), round(cy + distance * np.sin(angle))]
        target = [float(np.clip(h + rng.integers(-side // 8, side // 8 + 1), 0, side)) for h in handle]
        pairs.append({"handle": handle, "target": target})
    return json.dumps(pairs), region


def median_ms(times: list) -> dict:
    ms = np.array(times) * 1000
    return {"median_ms": round(float(np.median(ms)), 2), "min_ms": round(float(ms.min()), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2), "runs": len(times)}


def stage_warp_node(config: dict) -> dict:
    from tests.support import comfy_host

    node = comfy_host.start(os.environ["COMFYUI_PATH"]).NODE_CLASS_MAPPINGS["DragEdit_RegionWarp"]
    out = {}
    for side in (512, 1024):
        rng = np.random.default_rng(side)
        times = []
        for run in range(config["warmup"] + config["runs"]):
            image = torch.from_numpy(rng.random((1, side, side, 3), dtype=np.float32))
            points, region = drag_inputs(side, rng)
            with torch.inference_mode():
                start = time.perf_counter()
                node.execute(image, points, KERNEL, region=region)
                if run >= config["warmup"]:
                    times.append(time.perf_counter() - start)
        out[f"warp_node_{side}"] = median_ms(times)
    return out


def stage_preview_route(config: dict) -> dict:
    from PIL import Image

    from tests.support.comfy_server import comfy_server

    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:512, 0:512]
    picture = np.stack([rows // 2, cols // 2, 255 - (rows + cols) // 4], axis=-1).astype(np.uint8)
    encoded = io.BytesIO()
    Image.fromarray(picture).save(encoded, format="PNG")
    image = "data:image/png;base64," + base64.b64encode(encoded.getvalue()).decode()
    with comfy_server(Path(tempfile.mkdtemp(prefix="bench-preview-")), os.environ["COMFYUI_PATH"]) as server:
        times = []
        for run in range(config["warmup"] + config["runs"]):
            points, region = drag_inputs(512, rng)
            body = json.dumps({"image": image, "drag_points": points, "region": region, "kernel": KERNEL}).encode()
            request = urllib.request.Request(server["url"] + "drag_edit/region_warp_preview", data=body,
                                             headers={"Content-Type": "application/json"})
            start = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.loads(response.read())
            if run >= config["warmup"]:
                times.append(time.perf_counter() - start)
            assert answer["preview"].startswith("data:image/jpeg")
    return {"preview_route_512": {**median_ms(times), "request_kib": round(len(body) / 1024, 1)}}


def stage_template(config: dict, name: str) -> dict:
    """One template through the executor at ``px``, its models built and cached first (untimed)."""
    from bench.comfy_stages import Executor, _device
    from tests.support import comfy_host
    from tests.support.workflow_api import resize_template, template_prompt

    nodes = comfy_host.start(os.environ["COMFYUI_PATH"])
    template, model = TEMPLATES[name]
    prompt = template_prompt(nodes, template, model)
    loaders = {stand_in for stand_in, _ in comfy_host.test_loader_stand_ins(nodes).values()}
    for node in prompt.values():
        if node["class_type"] == "DragEditTest_DiffusionModel":
            node["inputs"]["depths"] = config["flux_depths"]
    input_dir = Path(nodes.HOST_BASE_DIR) / "input"
    rng = np.random.default_rng(1)
    from PIL import Image
    from safetensors.torch import save_file

    Image.fromarray((rng.random((768, 768, 3)) * 255).astype(np.uint8)).save(input_dir / "example.png")
    save_file({}, str(Path(nodes.HOST_BASE_DIR) / "models" / "loras" / "lcm-lora-sdv1-5.safetensors"))
    resize_template(prompt, config["px"])
    executor = Executor()
    loading = {key: node for key, node in prompt.items() if node["class_type"] in loaders}
    executor.run(loading | {f"sink{key}": {"class_type": "PreviewAny", "inputs": {"source": [key, 0]}}
                            for key in loading})
    meter = Meter(_device())
    with meter:
        executor.run(prompt)
    return {name: meter.figures(template=template, px=config["px"], **_model_figures(nodes, model, config))}


def _model_figures(nodes, model: str, config: dict) -> dict:
    """What the Flux Fill is of the real one (its cached model is the one the template ran)."""
    if model != "flux-fill-full":
        return {"model": model}
    from tests.support import comfy_host

    depths = tuple(int(n) for n in config["flux_depths"].split(","))
    patcher = comfy_host.test_models(nodes).make_detected_model(model, 0, depths)
    return {"model": f"{type(patcher.model.model_config).__name__} at Flux's widths, {depths[0]} of 19 double and "
                     f"{depths[1]} of 38 single blocks",
            "parameters": sum(p.numel() for p in patcher.model.diffusion_model.parameters()),
            "dtype": str(patcher.model.get_dtype())}


STAGES = {"warp": ["warp_node"], "preview": ["preview_route"],
          "templates": ["template_sd15_inpainting_lcm", "template_dragdiffusion_sd15"],
          "inpaint_models": ["template_sd15_inpainting_lcm", "template_flux_fill"]}


def run_here(name: str, config: dict) -> None:
    torch.manual_seed(0)
    if name == "warp_node":
        emit(stage_warp_node(config))
    elif name == "preview_route":
        emit(stage_preview_route(config))
    else:
        emit(stage_template(config, name))


def summarise(figures: dict) -> dict:
    out = {}
    for key, target in TARGETS.items():
        if key in figures:
            out[f"{key}_meets_{target}ms"] = figures[key]["median_ms"] <= target
    instant, drag = figures.get("template_sd15_inpainting_lcm"), figures.get("template_dragdiffusion_sd15")
    if instant and drag:
        out["template_dragdiffusion_sd15_over_sd15_inpainting_lcm_seconds"] = round(drag["seconds"] /
                                                                                 instant["seconds"], 1)
        out["template_sd15_inpainting_lcm_over_dragdiffusion_sd15_peak"] = round(instant["peak_gib"] /
                                                                                 drag["peak_gib"], 3)
    flux = figures.get("template_flux_fill")
    if instant and flux:
        out["template_flux_fill_over_sd15_inpainting_lcm_seconds"] = round(flux["seconds"] / instant["seconds"], 1)
        out["template_flux_fill_over_sd15_inpainting_lcm_peak"] = round(flux["peak_gib"] / instant["peak_gib"], 3)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--px", type=int, default=256, help="the templates' working size (the issue asks >= 256)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", help="comma-separated: warp, preview, templates, inpaint_models (default: all)")
    parser.add_argument("--flux-depths", default="1,1", help="the Flux Fill's double and single blocks (Flux: 19,38)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        run_here(args.stage, json.loads(args.config))
        return 0
    if not os.environ.get("COMFYUI_PATH"):
        raise SystemExit("set COMFYUI_PATH to a ComfyUI checkout: every stage runs the pack in ComfyUI")
    config = {"px": args.px, "runs": args.runs, "warmup": args.warmup, "flux_depths": args.flux_depths}
    groups = args.only.split(",") if args.only else list(STAGES)
    load_before = os.getloadavg()
    figures = {}
    for name in dict.fromkeys(name for group in groups for name in STAGES[group]):  # each stage once
        figures.update(run_fresh(Path(__file__).resolve(), name, ["--stage", name, "--config", json.dumps(config)]))
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": "python bench/instant_drag.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(),
                          "load_average_before": [round(x, 2) for x in load_before],
                          "load_average_after": [round(x, 2) for x in os.getloadavg()]},
              "torch": torch.__version__, "config": config, "targets_ms": TARGETS, "figures": figures,
              "summary": summarise(figures)}
    print(json.dumps(report["summary"], indent=1))
    label = "-".join(["instant-drag", *(groups if args.only else []), f"{args.px}px"])
    out = args.out or ROOT / "bench" / "results" / f"{datetime.date.today()}-cpu-{label}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
