"""The API prompt of one DragBench sample, per method: what the runner (tools/run_dragbench.py) queues.

Every prompt loads the sample (DragBench Load Sample), edits it with the method, saves the result, and measures it
(DragBench Mean Distance, and Image Fidelity unless left out).  Node ids are the keys the results are read back
from.  Each stage's inputs come from the methods' settings (core/settings.py), by name; ``--set STAGE.INPUT=VALUE``
overrides any.

* ``dragdiffusion`` and ``gooddrag``: LoRA Identity Tune -> DDIM Inversion -> the drag node (the sample's mask as its
  editable area) -> Latent MasaCtrl Denoise -> VAE Decode, as each paper ran DragBench.
* ``instant_drag`` (Inpaint4Drag's ``evaluation.py``): Drag Region Warp moves the sample's region (its
  ``meta_data_i4p.pkl`` mask where it has one, else its editable mask), the picture is scaled to the inpainting
  model's square (512 for SD1.5, 1024 for SDXL and Flux Fill), the model fills the inpaint mask (empty prompt, no
  classifier-free guidance; SD1.5 and SDXL with their LCM LoRAs, Flux Fill with FluxGuidance 30), and the result,
  scaled back, is pasted into the warped picture inside the region.
"""
from dataclasses import asdict

from core.settings import DRAGDIFFUSION, GOODDRAG_DRAGBENCH, INSTANT_DRAG, MEAN_DISTANCE, node_inputs

DRAG_METHODS = {"dragdiffusion": (DRAGDIFFUSION, "DragEdit_DragLatentOptimize"),
                "gooddrag": (GOODDRAG_DRAGBENCH, "DragEdit_GoodDragLatentOptimize")}
METHODS = (*DRAG_METHODS, INSTANT_DRAG.name)
# The inpainting models of the instant drag on DragBench, by --inpaint-model: SD1.5 as evaluation.py runs it, SDXL as
# Inpaint4Drag's UI, Flux Fill as its model card and ComfyUI's example (Inpaint4Drag's code has no Flux path).
INPAINT_MODELS = {model.family: model
                  for model in (INSTANT_DRAG.sd15_lcm, INSTANT_DRAG.sdxl_lcm, INSTANT_DRAG.flux_fill)}
SAMPLER_INPUTS = ("steps", "cfg", "sampler_name", "scheduler", "denoise")
# What each stock loader reads a file name from, and what kind of file that is (for the runner's messages).
MODEL_INPUTS = {"ckpt_name": "checkpoint", "lora_name": "LoRA", "unet_name": "diffusion model",
                "clip_name1": "text encoder", "clip_name2": "text encoder", "vae_name": "VAE"}


def stages(method: str) -> tuple:
    if method == INSTANT_DRAG.name:
        return ("warp", "inpaint", "mean_distance")
    return ("lora", "inversion", "drag", "denoise", "mean_distance")


def method_inputs(method: str, inpaint_model: str = "sd15") -> dict:
    """Every stage's inputs for ``method`` (the instant drag: on ``inpaint_model``), by stage and input name."""
    if method == INSTANT_DRAG.name:
        # evaluation.py pastes the inpainted picture inside the region mask (its UI inside the inpaint mask)
        inpaint = {**node_inputs(INPAINT_MODELS[inpaint_model].inpaint), "composite_inside": "region"}
        return {"warp": node_inputs(INSTANT_DRAG.warp), "inpaint": inpaint, "mean_distance": node_inputs(MEAN_DISTANCE)}
    settings, _ = DRAG_METHODS[method]
    return {"lora": {**node_inputs(settings.lora), "save_name": "", "overwrite": False},
            "inversion": node_inputs(settings.inversion),
            "drag": {**node_inputs(settings.drag), **node_inputs(settings.drag_node_settings)},
            "denoise": node_inputs(settings.denoise),
            "mean_distance": node_inputs(MEAN_DISTANCE)}  # the protocol's DIFT settings


def inpaint_files(inpaint_model: str, checkpoint: str, text_encoders=None, vae=None) -> dict:
    """The inpainting model's files: ``checkpoint`` is its checkpoint, or Flux Fill's diffusion model (its text
    encoders and VAE default to the names ComfyUI's example uses)."""
    files = asdict(INPAINT_MODELS[inpaint_model].files)
    if files["checkpoint"]:
        return {"checkpoint": checkpoint}
    return {**files, "diffusion_model": checkpoint, "text_encoders": list(text_encoders or files["text_encoders"]),
            "vae": vae or files["vae"]}


def link(node: str, slot: int) -> list:
    return [node, slot]


def _loader(config: dict, stock: str) -> str:
    """The node class the servers load with in place of the stock loader ``stock`` (a stand-in in the tests)."""
    return config["loaders"].get(stock, stock)


def _drag_nodes(config: dict) -> tuple[dict, str]:
    """The drag methods' nodes, and the node giving the edited picture."""
    settings = config["settings"]
    return {
        "ckpt": {"class_type": _loader(config, "CheckpointLoaderSimple"),
                 "inputs": {"ckpt_name": config["checkpoint"]}},
        "text": {"class_type": "CLIPTextEncode", "inputs": {"text": link("sample", 1), "clip": link("ckpt", 1)}},
        "encode": {"class_type": "VAEEncode", "inputs": {"pixels": link("sample", 0), "vae": link("ckpt", 2)}},
        "lora": {"class_type": "DragEdit_LoRAIdentityTune",
                 "inputs": {**settings["lora"], "model": link("ckpt", 0), "positive": link("text", 0),
                            "latent": link("encode", 0)}},
        "inversion": {"class_type": "DragEdit_DDIMInversion",
                      "inputs": {**settings["inversion"], "model": link("lora", 0), "latent": link("encode", 0),
                                 "positive": link("text", 0)}},
        "drag": {"class_type": DRAG_METHODS[config["method"]][1],
                 "inputs": {**settings["drag"], "model": link("lora", 0), "positive": link("text", 0),
                            "trajectory": link("inversion", 1), "image": link("sample", 0),
                            "drag_points": link("sample", 2), "mask": link("sample", 3)}},
        "denoise": {"class_type": "DragEdit_LatentMasaCtrlDenoise",
                    "inputs": {**settings["denoise"], "model": link("lora", 0), "positive": link("text", 0),
                               "trajectory": link("inversion", 1), "latent": link("drag", 0)}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": link("denoise", 0), "vae": link("ckpt", 2)}},
    }, "decode"


def _inpaint_loaders(config: dict) -> tuple[dict, dict]:
    """The inpainting model's loader nodes, and links to its MODEL, CLIP and VAE."""
    files = config["inpaint_files"]
    if files.get("checkpoint"):
        return ({"ckpt": {"class_type": _loader(config, "CheckpointLoaderSimple"),
                          "inputs": {"ckpt_name": files["checkpoint"]}}},
                {"model": link("ckpt", 0), "clip": link("ckpt", 1), "vae": link("ckpt", 2)})
    first, second = files["text_encoders"]
    return ({"unet": {"class_type": _loader(config, "UNETLoader"),
                      "inputs": {"unet_name": files["diffusion_model"], "weight_dtype": "default"}},
             "text_encoders": {"class_type": _loader(config, "DualCLIPLoader"),
                               "inputs": {"clip_name1": first, "clip_name2": second,
                                          "type": files["text_encoder_type"]}},
             "vae": {"class_type": _loader(config, "VAELoader"), "inputs": {"vae_name": files["vae"]}}},
            {"model": link("unet", 0), "clip": link("text_encoders", 0), "vae": link("vae", 0)})


def _instant_nodes(config: dict) -> tuple[dict, str]:
    """The instant drag's nodes, and the node giving the edited picture."""
    inpaint = config["settings"]["inpaint"]
    nodes, source = _inpaint_loaders(config)
    model, positive = source["model"], link("empty", 0)
    if inpaint["lora"]:
        nodes["lcm"] = {"class_type": "LoraLoaderModelOnly",
                        "inputs": {"model": model, "lora_name": inpaint["lora"], "strength_model": 1.0}}
        model = link("lcm", 0)
    if inpaint["guidance"] is not None:
        nodes["guidance"] = {"class_type": "FluxGuidance",
                             "inputs": {"conditioning": positive, "guidance": inpaint["guidance"]}}
        positive = link("guidance", 0)
    return nodes | {
        "empty": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": source["clip"]}},
        "warp": {"class_type": "DragEdit_RegionWarp",
                 "inputs": {**config["settings"]["warp"], "image": link("sample", 0), "drag_points": link("sample", 2),
                            "mask": link("sample", 4), "region": ""}},
        "scaled": {"class_type": "ImageScale", "inputs": {"image": link("warp", 0), "upscale_method": "bilinear",
                                                          "width": inpaint["size"], "height": inpaint["size"],
                                                          "crop": "disabled"}},
        "condition": {"class_type": "InpaintModelConditioning", "inputs": {
            "positive": positive, "negative": link("empty", 0), "vae": source["vae"], "pixels": link("scaled", 0),
            "mask": link("warp", 1), "noise_mask": inpaint["noise_mask"]}},
        "inpaint": {"class_type": "KSampler", "inputs": {
            **{name: inpaint[name] for name in SAMPLER_INPUTS}, "seed": 0, "model": model,
            "positive": link("condition", 0), "negative": link("condition", 1), "latent_image": link("condition", 2)}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": link("inpaint", 0), "vae": source["vae"]}},
        "paste": {"class_type": "ImageCompositeMasked", "inputs": {
            "destination": link("warp", 0), "source": link("decode", 0), "x": 0, "y": 0, "resize_source": True,
            "mask": link("warp", {"region": 3, "inpaint": 1}[inpaint["composite_inside"]])}},
    }, "paste"


def build_prompt(sample_on_server: str, config: dict, save_prefix: str) -> dict:
    """The API prompt of one sample."""
    prompt = {"sample": {"class_type": "DragEdit_DragBenchLoadSample", "inputs": {"sample": sample_on_server}}}
    instant = config["method"] == INSTANT_DRAG.name
    nodes, edited = _instant_nodes(config) if instant else _drag_nodes(config)
    prompt |= nodes
    prompt["save"] = {"class_type": "SaveImage", "inputs": {"images": link(edited, 0),
                                                            "filename_prefix": save_prefix}}
    metric = "ckpt"
    if "ckpt" not in prompt or config["metric_checkpoint"] != prompt["ckpt"]["inputs"]["ckpt_name"]:
        metric = "metric_ckpt"
        prompt[metric] = {"class_type": _loader(config, "CheckpointLoaderSimple"),
                          "inputs": {"ckpt_name": config["metric_checkpoint"]}}
    prompt["metric_text"] = {"class_type": "CLIPTextEncode",
                             "inputs": {"text": link("sample", 1), "clip": link(metric, 1)}}
    prompt["mean_distance"] = {"class_type": "DragEdit_MeanDistance",
                               "inputs": {**config["settings"]["mean_distance"], "model": link(metric, 0),
                                          "vae": link(metric, 2), "prompt": link("metric_text", 0),
                                          "original": link("sample", 0), "edited": link(edited, 0),
                                          "drag_points": link("sample", 2)}}
    if config["image_fidelity"]:
        prompt["image_fidelity"] = {"class_type": "DragEdit_ImageFidelity",
                                    "inputs": {"original": link("sample", 0), "edited": link(edited, 0)}}
    return prompt


def needed_nodes(config: dict) -> set:
    """The node classes the server must have."""
    prompt = build_prompt("x", config, "x")
    return {node["class_type"] for node in prompt.values()}


def needed_models(config: dict) -> dict:
    """``{loader class: {input name: model names}}`` the server must list."""
    prompt = build_prompt("x", config, "x")
    wanted = {}
    for node in prompt.values():
        for name in MODEL_INPUTS:
            if name in node["inputs"]:
                wanted.setdefault(node["class_type"], {}).setdefault(name, set()).add(node["inputs"][name])
    return wanted
