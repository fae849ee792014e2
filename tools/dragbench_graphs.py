"""The API prompt of one DragBench sample, per method: what the runner (tools/run_dragbench.py) queues.

Every prompt loads the sample (DragBench Load Sample), edits it with the method, saves the result, and measures it
(DragBench Mean Distance, and Image Fidelity unless left out).  Node ids are the keys the results are read back
from.  Each stage's inputs come from the methods' settings (core/settings.py), by name; ``--set STAGE.INPUT=VALUE``
overrides any.

* ``dragdiffusion`` and ``gooddrag``: LoRA Identity Tune -> DDIM Inversion -> the drag node (the sample's mask as its
  editable area) -> Latent MasaCtrl Denoise -> VAE Decode, as each paper ran DragBench.
* ``instant`` (Inpaint4Drag's ``evaluation.py``): Drag Region Warp moves the sample's region (its
  ``meta_data_i4p.pkl`` mask where it has one, else its editable mask), the picture is scaled to 512x512, an
  inpainting checkpoint fills the inpaint mask (empty prompt, no guidance; by default an LCM LoRA and 4 steps),
  and the result, scaled back, is pasted into the warped picture inside the region.
"""
from core.settings import DRAGDIFFUSION, GOODDRAG_DRAGBENCH, INSTANT_DRAG, MEAN_DISTANCE, node_inputs

DRAG_METHODS = {"dragdiffusion": (DRAGDIFFUSION, "DragEdit_DragLatentOptimize"),
                "gooddrag": (GOODDRAG_DRAGBENCH, "DragEdit_GoodDragLatentOptimize")}
METHODS = (*DRAG_METHODS, "instant")
INPAINT_SIZE = 512  # evaluation.py inpaints at 512x512 and scales the result back
# evaluation.py pastes the inpainted picture inside the region mask (its UI inside the inpaint mask)
INSTANT_INPAINT = {**node_inputs(INSTANT_DRAG.lcm_inpaint), "composite_inside": "region"}


def stages(method: str) -> tuple:
    if method == "instant":
        return ("warp", "inpaint", "mean_distance")
    return ("lora", "inversion", "drag", "denoise", "mean_distance")


def method_inputs(method: str) -> dict:
    """Every stage's inputs for ``method``, by stage and input name."""
    if method == "instant":
        return {"warp": node_inputs(INSTANT_DRAG.warp), "inpaint": dict(INSTANT_INPAINT),
                "mean_distance": node_inputs(MEAN_DISTANCE)}
    settings, _ = DRAG_METHODS[method]
    return {"lora": {**node_inputs(settings.lora), "save_name": "", "overwrite": False},
            "inversion": node_inputs(settings.inversion),
            "drag": {**node_inputs(settings.drag), **node_inputs(settings.drag_node_settings)},
            "denoise": node_inputs(settings.denoise),
            "mean_distance": node_inputs(MEAN_DISTANCE)}  # the protocol's DIFT settings


def link(node: str, slot: int) -> list:
    return [node, slot]


def _drag_nodes(config: dict) -> tuple[dict, str]:
    """The drag methods' nodes, and the node giving the edited picture."""
    settings = config["settings"]
    return {
        "ckpt": {"class_type": config["loader"], "inputs": {"ckpt_name": config["checkpoint"]}},
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


def _instant_nodes(config: dict) -> tuple[dict, str]:
    """The instant drag's nodes, and the node giving the edited picture."""
    inpaint = {**config["settings"]["inpaint"]}
    lora, paste = inpaint.pop("lora"), inpaint.pop("composite_inside")
    model = link("ckpt", 0)
    nodes = {"ckpt": {"class_type": config["loader"], "inputs": {"ckpt_name": config["inpaint_checkpoint"]}}}
    if lora:
        nodes["lcm"] = {"class_type": "LoraLoaderModelOnly",
                        "inputs": {"model": model, "lora_name": lora, "strength_model": 1.0}}
        model = link("lcm", 0)
    return nodes | {
        "empty": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": link("ckpt", 1)}},
        "warp": {"class_type": "DragEdit_RegionWarp",
                 "inputs": {**config["settings"]["warp"], "image": link("sample", 0), "drag_points": link("sample", 2),
                            "mask": link("sample", 4), "region": ""}},
        "scaled": {"class_type": "ImageScale", "inputs": {"image": link("warp", 0), "upscale_method": "bilinear",
                                                          "width": INPAINT_SIZE, "height": INPAINT_SIZE,
                                                          "crop": "disabled"}},
        "condition": {"class_type": "InpaintModelConditioning", "inputs": {
            "positive": link("empty", 0), "negative": link("empty", 0), "vae": link("ckpt", 2),
            "pixels": link("scaled", 0), "mask": link("warp", 1), "noise_mask": True}},
        "inpaint": {"class_type": "KSampler", "inputs": {
            **inpaint, "seed": 0, "model": model, "positive": link("condition", 0), "negative": link("condition", 1),
            "latent_image": link("condition", 2)}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": link("inpaint", 0), "vae": link("ckpt", 2)}},
        "paste": {"class_type": "ImageCompositeMasked", "inputs": {
            "destination": link("warp", 0), "source": link("decode", 0), "x": 0, "y": 0, "resize_source": True,
            "mask": link("warp", {"region": 3, "inpaint": 1}[paste])}},
    }, "paste"


def build_prompt(sample_on_server: str, config: dict, save_prefix: str) -> dict:
    """The API prompt of one sample."""
    prompt = {"sample": {"class_type": "DragEdit_DragBenchLoadSample", "inputs": {"sample": sample_on_server}}}
    nodes, edited = _instant_nodes(config) if config["method"] == "instant" else _drag_nodes(config)
    prompt |= nodes
    prompt["save"] = {"class_type": "SaveImage", "inputs": {"images": link(edited, 0),
                                                            "filename_prefix": save_prefix}}
    metric = "ckpt"
    if config["metric_checkpoint"] != prompt["ckpt"]["inputs"]["ckpt_name"]:
        metric = "metric_ckpt"
        prompt[metric] = {"class_type": config["loader"], "inputs": {"ckpt_name": config["metric_checkpoint"]}}
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
        for name in ("ckpt_name", "lora_name"):
            if name in node["inputs"]:
                wanted.setdefault(node["class_type"], {}).setdefault(name, set()).add(node["inputs"][name])
    return wanted
