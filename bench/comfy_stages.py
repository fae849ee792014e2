"""Benchmark stages through the pack's nodes in a real ComfyUI (``COMFYUI_PATH``), as users run them.

Each stage runs in a fresh process: it imports ComfyUI, loads this pack as a custom node, and queues API-format
prompts through ComfyUI's own ``PromptExecutor`` (with its cache, as the server does).  The stages before the
measured one are executed first, untimed; then the prompt that adds the measured node is executed again, so the
cached nodes are skipped exactly as when a user queues a graph twice.  The model is a full-size SD1.5 or SDXL UNet
(or a tiny one) with random weights, built in memory by the test checkpoint node (``tests/support``).
"""
import asyncio
import json
import os
import time
from dataclasses import replace

import torch

from bench.diffusers_stages import DRAG_POINTS
from bench.measure import Meter
from core.settings import DIFFEDIT, DRAGDIFFUSION, node_inputs
from tests.support import comfy_host


def load_comfy(config: dict):
    nodes = comfy_host.start(os.environ["COMFYUI_PATH"], cpu=config["device"] == "cpu")
    comfy_host.register_test_checkpoint(nodes)
    _register_bench_nodes(nodes, config)


# The bench's architectures as the test checkpoint node names them.
CHECKPOINTS = {"tiny": "sd1", "sd15": "sd15-full", "sdxl": "sdxl-full"}


def _register_bench_nodes(nodes, config):
    from tests.support import comfy_models

    kind = config["model"]

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

    nodes.NODE_CLASS_MAPPINGS.update(BenchInputs=BenchInputs, BenchSink=BenchSink)


def drag_points_json(px: int, flip: bool = False) -> str:
    pairs = [{"handle": [h[0] * px, h[1] * px], "target": [t[0] * px, t[1] * px]} for h, t in DRAG_POINTS]
    if flip:  # a re-drag: the same image, other points
        pairs = [{"handle": p["handle"], "target": [px - 1 - p["target"][0], p["target"][1]]} for p in pairs]
    return json.dumps(pairs)


def graph(config: dict, *, masked: bool = True, flip: bool = False) -> dict:
    """The real-image drag graph and the DiffEdit graph, in API format (node id -> class and inputs), at the
    methods' own settings (``core.settings``) except the step counts the bench sets."""
    px, steps = config["px"], config["inversion_steps"]
    positive, latent = ["in", 3], ["in", 1]
    method, diffedit = DRAGDIFFUSION, DIFFEDIT
    drag_inputs = dict(model=["lora", 0], positive=positive, trajectory=["inv", 1], image=["in", 0],
                       drag_points=drag_points_json(px, flip), **node_inputs(method.drag_node_settings),
                       **node_inputs(replace(method.drag, steps=config["drag_iters"])))
    if masked:
        drag_inputs["mask"] = ["in", 2]
    lora = replace(method.lora, steps=config["lora_steps"])
    return {
        "ckpt": {"class_type": "DragEditTest_Checkpoint", "inputs": {
            "ckpt_name": CHECKPOINTS[config["model"]], "seed": 0, "dtype": config["dtype"]}},
        "in": {"class_type": "BenchInputs", "inputs": {"px": px}},
        "lora": {"class_type": "DragEdit_LoRAIdentityTune", "inputs": dict(
            model=["ckpt", 0], positive=positive, latent=latent, **node_inputs(lora), save_name="", overwrite=False)},
        "inv": {"class_type": "DragEdit_DDIMInversion", "inputs": dict(
            model=["lora", 0], latent=latent, positive=positive,
            **node_inputs(replace(method.inversion, steps=steps, strength=config["strength"])))},
        "drag": {"class_type": "DragEdit_DragLatentOptimize", "inputs": drag_inputs},
        "masa": {"class_type": "DragEdit_LatentMasaCtrlDenoise", "inputs": dict(
            model=["lora", 0], positive=positive, trajectory=["inv", 1], latent=["drag", 0],
            **node_inputs(method.denoise))},
        "dmask": {"class_type": "DragEdit_DiffEditMaskInfer", "inputs": dict(
            model=["ckpt", 0], query=["in", 4], reference=positive, latent=latent,
            **node_inputs(replace(diffedit.mask, samples=config["diffedit_samples"], steps=steps)))},
        "dinv": {"class_type": "DragEdit_DDIMInversion", "inputs": dict(
            model=["ckpt", 0], latent=latent, positive=positive,
            **node_inputs(replace(diffedit.inversion, steps=steps)))},
        "ddec": {"class_type": "DragEdit_MaskedDDIMDecode", "inputs": dict(
            model=["ckpt", 0], positive=["in", 4], negative=positive, cfg=diffedit.decode_cfg, trajectory=["dinv", 1],
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
