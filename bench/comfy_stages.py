"""Benchmark stages through the pack's nodes in a real ComfyUI (``COMFYUI_PATH``), as users run them.

Each stage runs in a fresh process: it imports ComfyUI, loads this pack as a custom node, and queues API-format
prompts through ComfyUI's own ``PromptExecutor`` (with its cache, as the server does).  The stages before the
measured one are executed first, untimed; then the prompt that adds the measured node is executed again, so the
cached nodes are skipped exactly as when a user queues a graph twice.  The model is a full-size SD1.5 or SDXL UNet
(or a tiny one) with random weights, built in memory by a bench-only loader node.
"""
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.diffusers_stages import DRAG_POINTS
from bench.measure import Meter

PACK_ROOT = Path(__file__).resolve().parents[1]


def load_comfy(config: dict):
    comfy_path = os.environ["COMFYUI_PATH"]
    sys.path.insert(0, comfy_path)
    from comfy.cli_args import args

    args.cpu = config["device"] == "cpu"
    import folder_paths

    base = Path(tempfile.mkdtemp(prefix="bench-comfy-"))
    for sub in ("output", "temp", "input", "models/loras", "custom_nodes"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    folder_paths.set_output_directory(str(base / "output"))
    folder_paths.set_temp_directory(str(base / "temp"))
    folder_paths.set_input_directory(str(base / "input"))
    folder_paths.add_model_folder_path("loras", str(base / "models" / "loras"), is_default=True)
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    link = base / "custom_nodes" / "comfyui-drag-diffedit"
    link.symlink_to(PACK_ROOT, target_is_directory=True)
    if not asyncio.run(nodes.load_custom_node(str(link))):
        raise RuntimeError("ComfyUI could not import the pack")
    _register_bench_nodes(nodes, config)


def _register_bench_nodes(nodes, config):
    from tools import comfy_models

    dtype = getattr(torch, config["dtype"])
    kind = config["model"]

    class BenchCheckpoint:
        RETURN_TYPES = ("MODEL",)
        FUNCTION = "load"
        CATEGORY = "bench"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"seed": ("INT", {"default": 0})}}

        def load(self, seed):
            if kind == "tiny":
                return (comfy_models.make_model("sd1", seed),)
            return (comfy_models.make_full_model(kind, seed, dtype),)

    class BenchInputs:
        RETURN_TYPES = ("IMAGE", "LATENT", "MASK", "CONDITIONING", "CONDITIONING")
        RETURN_NAMES = ("image", "latent", "mask", "positive", "query")
        FUNCTION = "make"
        CATEGORY = "bench"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"px": ("INT", {"default": 512, "max": 4096})}}

        def make(self, px):
            generator = torch.Generator().manual_seed(1)
            image = torch.rand(1, px, px, 3, generator=generator)
            latent = {"samples": torch.randn(1, 4, px // 8, px // 8, generator=generator) * 0.8}
            mask = torch.zeros(1, px, px)
            mask[:, px // 8: -px // 8, px // 8: -px // 8] = 1
            if kind == "tiny":
                positive, query = comfy_models.conditioning("sd1", 3), comfy_models.conditioning("sd1", 4)
            else:
                positive, query = comfy_models.full_conditioning(kind, 3), comfy_models.full_conditioning(kind, 4)
            return image, latent, mask, positive, query

    class BenchSink:
        RETURN_TYPES = ()
        FUNCTION = "take"
        OUTPUT_NODE = True
        CATEGORY = "bench"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"name": ("STRING", {"default": ""})},
                    "optional": {"latent": ("LATENT",), "model": ("MODEL",), "mask": ("MASK",)}}

        def take(self, name, latent=None, model=None, mask=None):
            return {}  # only makes the executor run what it is connected to

    nodes.NODE_CLASS_MAPPINGS.update(BenchCheckpoint=BenchCheckpoint, BenchInputs=BenchInputs, BenchSink=BenchSink)


def drag_points_json(px: int, flip: bool = False) -> str:
    pairs = [{"handle": [h[0] * px, h[1] * px], "target": [t[0] * px, t[1] * px]} for h, t in DRAG_POINTS]
    if flip:  # a re-drag: the same image, other points
        pairs = [{"handle": p["handle"], "target": [px - 1 - p["target"][0], p["target"][1]]} for p in pairs]
    return json.dumps(pairs)


def graph(config: dict, *, masked: bool = True, flip: bool = False) -> dict:
    """The real-image drag graph and the DiffEdit graph, in API format (node id -> class and inputs)."""
    px, steps = config["px"], config["inversion_steps"]
    positive, latent = ["in", 3], ["in", 1]
    drag_inputs = dict(model=["lora", 0], positive=positive, trajectory=["inv", 1], image=["in", 0],
                       drag_points=drag_points_json(px, flip), steps=config["drag_iters"], learning_rate=0.01,
                       mask_weight=0.1, cfg=1.0, feature_block=-1, motion_radius=1, track_radius=3)
    if masked:
        drag_inputs["mask"] = ["in", 2]
    return {
        "ckpt": {"class_type": "BenchCheckpoint", "inputs": {"seed": 0}},
        "in": {"class_type": "BenchInputs", "inputs": {"px": px}},
        "lora": {"class_type": "DragEdit_LoRAIdentityTune", "inputs": dict(
            model=["ckpt", 0], positive=positive, latent=latent, steps=config["lora_steps"], learning_rate=5e-4,
            rank=16, batch_size=4, training_seed=0, save_name="", overwrite=False)},
        "inv": {"class_type": "DragEdit_DDIMInversion", "inputs": dict(
            model=["lora", 0], latent=latent, steps=steps, strength=config["strength"], cfg=1.0, positive=positive)},
        "drag": {"class_type": "DragEdit_DragLatentOptimize", "inputs": drag_inputs},
        "masa": {"class_type": "DragEdit_LatentMasaCtrlDenoise", "inputs": dict(
            model=["lora", 0], positive=positive, trajectory=["inv", 1], latent=["drag", 0], start_step=0,
            start_layer=-1, cfg=1.0)},
        "dmask": {"class_type": "DragEdit_DiffEditMaskInfer", "inputs": dict(
            model=["ckpt", 0], query=["in", 4], reference=positive, latent=latent,
            samples=config["diffedit_samples"], noise_strength=0.5, clamp_ratio=3.0, threshold=0.5, seed=0,
            steps=steps)},
        "dinv": {"class_type": "DragEdit_DDIMInversion", "inputs": dict(
            model=["ckpt", 0], latent=latent, steps=steps, strength=0.8, cfg=1.0, positive=positive)},
        "ddec": {"class_type": "DragEdit_MaskedDDIMDecode", "inputs": dict(
            model=["ckpt", 0], positive=["in", 4], negative=positive, cfg=7.5, trajectory=["dinv", 1],
            mask=["dmask", 0])},
    }


SINK_INPUT = {"ckpt": ("model", 0), "in": ("latent", 1), "lora": ("model", 0), "dmask": ("mask", 0)}


def upto(full: dict, *outputs: str) -> dict:
    """The nodes ``outputs`` need, each of ``outputs`` ending in a sink (the executor runs what outputs need)."""
    keep, todo = set(), list(outputs)
    while todo:
        node = todo.pop()
        if node in keep:
            continue
        keep.add(node)
        todo += [value[0] for value in full[node]["inputs"].values() if isinstance(value, list)]
    prompt = {node: full[node] for node in keep}
    for node in outputs:
        socket, index = SINK_INPUT.get(node, ("latent", 0))
        prompt[f"sink_{node}"] = {"class_type": "BenchSink", "inputs": {socket: [node, index], "name": node}}
    return prompt


class Executor:
    def __init__(self):
        import execution

        class Server:
            client_id = last_node_id = last_prompt_id = None

            def send_sync(self, *args, **kwargs):
                pass

            def queue_updated(self):
                pass

        self.execution = execution
        self.executor = execution.PromptExecutor(Server(), cache_type=execution.CacheType.CLASSIC)
        self.count = 0

    def run(self, prompt: dict):
        valid = asyncio.run(self.execution.validate_prompt(str(self.count), prompt, None))
        if not valid[0]:
            raise RuntimeError(f"prompt rejected: {valid[1]} {valid[3]}")
        self.count += 1
        self.executor.execute(prompt, str(self.count), {}, valid[2])
        if not self.executor.success:
            raise RuntimeError(f"prompt failed: {self.executor.status_messages[-1:]}")


def _iteration_stamps() -> list:
    """Times of the drag node's progress updates (one per iteration, after the loop's early-stop sync)."""
    import comfy.utils

    stamps, update = [], comfy.utils.ProgressBar.update_absolute

    def stamped(self, *args, **kwargs):
        stamps.append(time.perf_counter())
        return update(self, *args, **kwargs)

    comfy.utils.ProgressBar.update_absolute = stamped  # this process runs one stage and exits
    return stamps


def _device():
    import comfy.model_management

    return comfy.model_management.get_torch_device()


def measured(executor, before: dict, prompt: dict) -> Meter:
    executor.run(before)
    meter = Meter(_device())
    with meter:
        executor.run(prompt)
    return meter


def stage(config: dict, name: str) -> dict:
    load_comfy(config)
    full = graph(config)
    executor = Executor()
    if name == "lora":
        meter = measured(executor, upto(full, "in"), upto(full, "lora"))
        return {"lora_identity_tune": meter.figures(steps=config["lora_steps"],
                                                    per_step_s=round(meter.seconds / config["lora_steps"], 4))}
    if name == "inversion":
        meter = measured(executor, upto(full, "lora"), upto(full, "inv"))
        return {"ddim_inversion": meter.figures()}
    if name in ("drag_mask", "drag_nomask"):
        graph_ = graph(config, masked=name == "drag_mask")
        executor.run(upto(graph_, "inv"))
        stamps = _iteration_stamps()  # from here on only the drag reports progress
        meter = Meter(_device())
        with meter:
            executor.run(upto(graph_, "drag"))
        per_iteration = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        return {name: meter.figures(iterations=len(stamps), per_iteration_s=round(per_iteration, 4))}
    if name == "masactrl_redrag":
        # first run: drag + MasaCtrl on top of the cached LoRA and inversion; then the same graph with other points
        first = measured(executor, upto(full, "inv"), upto(full, "masa"))
        redrag = Meter(_device())
        with redrag:
            executor.run(upto(graph(config, flip=True), "masa"))
        return {"drag_and_masactrl_first": first.figures(),
                "drag_and_masactrl_redrag": redrag.figures(ratio_to_first=round(redrag.seconds / first.seconds, 3))}
    if name == "diffedit":
        mask = measured(executor, upto(full, "in", "ckpt"), upto(full, "in", "dmask"))
        decode = measured(executor, upto(full, "dmask", "dinv"), upto(full, "ddec"))
        return {"diffedit_mask": mask.figures(), "diffedit_decode": decode.figures()}
    raise ValueError(f"unknown comfy stage {name!r}")


STAGES = ["lora", "inversion", "drag_nomask", "drag_mask", "masactrl_redrag", "diffedit"]
